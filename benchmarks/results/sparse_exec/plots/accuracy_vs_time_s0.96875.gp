# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_time_s0.96875.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_time_s0.96875.png'
set title 'sparse_exec: lenet300 on fashion-mnist: accuracy over time at s = 0.96875 (mean, ± std band)'
set xlabel 'wall seconds (pruning a trained model includes its pre-training)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set yrange [0.0839466:0.913555]
set xrange [0:2.40728]
plot 'accuracy_vs_time_s0.96875.dat' index 0 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_time_s0.96875.dat' index 0 using 1:2 with linespoints pointsize 0.6 lc rgb '#0072b2' pt 7 dt 1 title 'dense', \
     'accuracy_vs_time_s0.96875.dat' index 1 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#e69f00' notitle, \
     'accuracy_vs_time_s0.96875.dat' index 1 using 1:2 with linespoints pointsize 0.6 lc rgb '#e69f00' pt 11 dt 1 title 'nm'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_time_s0.96875.svg'
replot
unset output
