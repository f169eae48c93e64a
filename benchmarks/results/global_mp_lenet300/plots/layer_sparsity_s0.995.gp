# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   cd /work/main/benchmarks/results/global_mp_lenet300/plots && gnuplot layer_sparsity_s0.995.gp
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'layer_sparsity_s0.995.png'
set title 'sparsity of each layer at overall target sparsity 0.995'
set xlabel 'layer'
set ylabel 'fraction of weights pruned'
set grid
set key outside right top
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:1.05]
set xtics rotate by -30
plot 'layer_sparsity_s0.995.dat' using 2:xtic(1) title 'global_mp', \
     'layer_sparsity_s0.995.dat' using 3 title 'global_mp_mt', \
     'layer_sparsity_s0.995.dat' using 4 title 'magnitude', \
     'layer_sparsity_s0.995.dat' using 5 title 'snip', \
     'layer_sparsity_s0.995.dat' using 6 title 'synflow'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'layer_sparsity_s0.995.svg'
replot
unset output
