# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   cd /work/main/benchmarks/results/sparse_vs_dense_lenet300/plots && gnuplot accuracy_vs_flops.gp
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'test accuracy (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test accuracy'
set grid
set key outside right top
set logscale x 10
set xrange [8506.15:692653]
set offsets 0, 0, graph 0.04, graph 0.04
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 title 'dense (lenet300, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 title 'gradual (lenet300, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 title 'dense (lenet300@w0.2193, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 title 'dense (lenet300@w0.1111, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 4 using 1:2:3 with yerrorlines pointsize 0.8 title 'dense (lenet300@w0.056, fashion-mnist)', \
     'accuracy_vs_flops.dat' index 5 using 1:2:3 with yerrorlines pointsize 0.8 title 'dense (lenet300@w0.0225, fashion-mnist)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
