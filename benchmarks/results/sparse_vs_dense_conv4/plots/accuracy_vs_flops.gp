# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_flops.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'sparse_vs_dense_conv4: conv4@w0.25 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [136882:1.2357e+07]
set yrange [-0.0272746:0.869679]
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'dense (narrowed)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'gradual'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
