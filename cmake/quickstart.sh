#!/bin/sh
# Usage: cmake/quickstart.sh test|bench|asan|fuzz
# Installs the Debian 12 packages the preset needs that are missing (apt-get, via sudo when not
# root), then runs `cmake --workflow --preset <preset>`. With the packages installed, run the
# preset directly.
set -eu
preset=${1:-test}
case "$preset" in
  # clang and libclang-rt-dev (its libFuzzer and sanitizer runtimes, which apt does not pull in
  # with --no-install-recommends) build the fuzz targets the test preset runs (tests/fuzz).
  test) packages="cmake make g++ clang libclang-rt-dev libxsimd-dev libeigen3-dev libgtest-dev libbenchmark-dev" ;;
  bench) packages="cmake make g++ libxsimd-dev libeigen3-dev libgtest-dev libbenchmark-dev" ;;
  asan) packages="cmake make g++ clang libclang-rt-dev libomp-dev libxsimd-dev libeigen3-dev libgtest-dev libbenchmark-dev" ;;
  fuzz) packages="cmake make clang libclang-rt-dev libxsimd-dev libeigen3-dev libgtest-dev" ;;
  *) echo "usage: $0 test|bench|asan|fuzz" >&2; exit 2 ;;
esac
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "rotary: installing$missing"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
cd "$(dirname "$0")/.."
exec cmake --workflow --preset "$preset"
