# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   cd /work/main/benchmarks/results/init_methods_lenet300/plots && gnuplot layer_sparsity_s0.998.gp
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'layer_sparsity_s0.998.png'
set title 'sparsity of each layer at overall target sparsity 0.998'
set xlabel 'layer'
set ylabel 'fraction of weights pruned'
set grid
set key outside right top
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:1.05]
set xtics rotate by -30
plot 'layer_sparsity_s0.998.dat' using 2:xtic(1) title 'snip', \
     'layer_sparsity_s0.998.dat' using 3 title 'grasp', \
     'layer_sparsity_s0.998.dat' using 4 title 'synflow', \
     'layer_sparsity_s0.998.dat' using 5 title 'random'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'layer_sparsity_s0.998.svg'
replot
unset output
