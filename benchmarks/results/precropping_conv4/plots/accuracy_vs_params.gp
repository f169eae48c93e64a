# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_params.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_params.png'
set title 'precropping_conv4: conv4@w0.25 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'nonzero parameters'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [1726.92:158072]
set yrange [0.612345:0.81549]
plot 'accuracy_vs_params.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'dense (narrowed)', \
     'accuracy_vs_params.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'synflow', \
     'accuracy_vs_params.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'random_synflow_densities', \
     'accuracy_vs_params.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'precropping'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_params.svg'
replot
unset output
