# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_sparsity.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_sparsity.png'
set title 'dare: lenet300, lenet5, conv4 on fashion-mnist: test accuracy (mean ± std over seeds)'
set xlabel '1 / (1 - target sparsity); for delta methods 1 / (1 - p), p the fraction of the delta dropped'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [0.769231:1300]
set yrange [0.00494248:0.878482]
plot 'accuracy_vs_sparsity.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'finetuned_small (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'dare_small (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'darex_q_small (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'delta_magnitude_small (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 4 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 11 dt 1 title 'finetuned_large (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 5 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 6 dt 1 title 'dare_large (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 6 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 4 dt 1 title 'darex_q_large (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 7 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#999933' pt 8 dt 1 title 'delta_magnitude_large (lenet300, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 8 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 12 dt 2 title 'finetuned_small (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 9 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 10 dt 2 title 'dare_small (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 10 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 1 dt 2 title 'darex_q_small (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 11 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 2 dt 2 title 'delta_magnitude_small (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 12 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 3 dt 2 title 'finetuned_large (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 13 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 7 dt 2 title 'dare_large (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 14 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 5 dt 2 title 'darex_q_large (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 15 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#999933' pt 9 dt 2 title 'delta_magnitude_large (lenet5, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 16 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 13 dt 3 title 'finetuned_small (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 17 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 11 dt 3 title 'dare_small (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 18 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 6 dt 3 title 'darex_q_small (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 19 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 4 dt 3 title 'delta_magnitude_small (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 20 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 8 dt 3 title 'finetuned_large (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 21 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 12 dt 3 title 'dare_large (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 22 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 10 dt 3 title 'darex_q_large (conv4@w0.25, fashion-mnist)', \
     'accuracy_vs_sparsity.dat' index 23 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#999933' pt 1 dt 3 title 'delta_magnitude_large (conv4@w0.25, fashion-mnist)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_sparsity.svg'
replot
unset output
