# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_flops.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'sharing_conv4: conv4@w0.25 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [35849.2:1.2357e+07]
set yrange [0.0367759:0.875846]
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'dense (narrowed)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'stable_rps', \
     'accuracy_vs_flops.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'roast', \
     'accuracy_vs_flops.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'hashednets', \
     'accuracy_vs_flops.dat' index 4 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 11 dt 1 title 'global_magnitude', \
     'accuracy_vs_flops.dat' index 5 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 6 dt 1 title 'synflow', \
     'accuracy_vs_flops.dat' index 6 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 4 dt 1 title 'gradual', \
     'accuracy_vs_flops.dat' index 7 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#999933' pt 8 dt 1 title 'roast_init_x0.1', \
     'accuracy_vs_flops.dat' index 8 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 12 dt 2 title 'roast_init_x10', \
     'accuracy_vs_flops.dat' index 9 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 10 dt 2 title 'stable_rps_init_x0.1', \
     'accuracy_vs_flops.dat' index 10 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 1 dt 2 title 'stable_rps_init_x10'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
