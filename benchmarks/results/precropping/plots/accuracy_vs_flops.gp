# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_flops.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'precropping: lenet5 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test accuracy'
set grid
set key outside right top
set logscale x 10
set xrange [51487.7:1.09143e+06]
set yrange [0.799466:0.890205]
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'dense (narrowed)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'synflow', \
     'accuracy_vs_flops.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'random_synflow_densities', \
     'accuracy_vs_flops.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'precropping'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
