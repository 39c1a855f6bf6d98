# Figure 2 of the paper from long_term_decay's CSV. Run by the long_term_decay_plot target:
#   gnuplot -e "data='< long_term_decay 10000 500000'; output='long_term_decay.png'" long_term_decay.gp
set terminal pngcairo size 800,480 font ",11" noenhanced
set output output
set datafile separator ","
set title "Long-term decay of RoPE (RoFormer Figure 2), d = 128"
set xlabel "relative distance"
set ylabel "relative upper bound"
set xrange [0:256]
set yrange [0:*]
set grid
set key top right autotitle columnhead
plot for [column=2:*] data using 1:column with lines linewidth 2
