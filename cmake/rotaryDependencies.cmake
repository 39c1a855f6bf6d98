# xsimd and Eigen, as Debian 12 packages them (libxsimd-dev 8.1, libeigen3-dev 3.4).
# Debian's xsimd export links a library named xtl that libxtl-dev would provide but Debian does not
# package; xsimd 8.1 does not need it, so an empty stand-in keeps the link line valid.
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED)
endif()
find_package(xsimd 8.1 REQUIRED)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
