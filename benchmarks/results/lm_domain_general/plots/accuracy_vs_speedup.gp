# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_speedup.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_speedup.png'
set title 'lm_domain_general: gpt on fortunes: test perplexity (lower is better) (mean ± std over seeds)'
set xlabel 'theoretical speedup (dense FLOPs / effective FLOPs per example)'
set ylabel 'test perplexity (lower is better)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 2
set xrange [1.03461:4.11392]
set logscale y
set yrange [12.8011:23.5021]
set ytics (13.5, 14.9, 16.5, 18.2, 20.2, 22.3)
plot 'accuracy_vs_speedup.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'wanda', \
     'accuracy_vs_speedup.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'sparsegpt'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_speedup.svg'
replot
unset output
