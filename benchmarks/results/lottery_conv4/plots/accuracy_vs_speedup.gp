# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_speedup.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_speedup.png'
set title 'lottery_conv4: conv4@w0.25 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'theoretical speedup (dense FLOPs / effective FLOPs per example)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 2
set xrange [1.10745:13.0176]
set yrange [0.118621:0.898173]
plot 'accuracy_vs_speedup.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'lottery', \
     'accuracy_vs_speedup.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'lottery_reinit', \
     'accuracy_vs_speedup.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'lottery_random', \
     'accuracy_vs_speedup.dat' index 3 using 1:2:3 with filledcurves fs transparent solid 0.15 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_speedup.dat' index 3 using 1:4 with lines lw 1.5 dt 2 lc rgb '#0072b2' title 'dense: 0.8526 ± 0.0063 (3 seeds)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_speedup.svg'
replot
unset output
