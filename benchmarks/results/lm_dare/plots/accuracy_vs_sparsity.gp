# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_sparsity.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_sparsity.png'
set title 'lm_dare: gpt on fortunes:science,medicine: test perplexity (lower is better) (mean ± std over seeds)'
set xlabel '1 / (1 - target sparsity); for delta methods 1 / (1 - p), p the fraction of the delta dropped'
set ylabel 'test perplexity (lower is better)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [0.769231:130]
set logscale y
set yrange [11.0127:39.8577]
set ytics (12.3, 15.2, 18.8, 23.3, 28.9, 35.8)
plot 'accuracy_vs_sparsity.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'finetuned', \
     'accuracy_vs_sparsity.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'dare', \
     'accuracy_vs_sparsity.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'darex_q', \
     'accuracy_vs_sparsity.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'delta_magnitude'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_sparsity.svg'
replot
unset output
