# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_flops.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'precropping: lenet5, lenet300 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [7066.15:1.09143e+06]
set yrange [0.0726242:0.925356]
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'dense (narrowed lenet5, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'synflow (lenet5, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'random_synflow_densities (lenet5, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'precropping (lenet5, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 4 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 11 dt 1 title 'dense (narrowed lenet300, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 5 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 6 dt 1 title 'synflow (lenet300, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 6 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 4 dt 1 title 'random_synflow_densities (lenet300, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 7 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#999933' pt 8 dt 1 title 'precropping (lenet300, fashion-mnist)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
