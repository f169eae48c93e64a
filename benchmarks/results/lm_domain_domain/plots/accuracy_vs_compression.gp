# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_compression.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_compression.png'
set title 'lm_domain_domain: gpt on fortunes:science,medicine: test perplexity (lower is better) (mean ± std over seeds)'
set xlabel 'compression ratio (parameters / nonzero parameters)'
set ylabel 'test perplexity (lower is better)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 2
set xrange [1.05298:4.61974]
set logscale y
set yrange [12.7925:23.4592]
set ytics (13.5, 14.9, 16.5, 18.2, 20.2, 22.3)
plot 'accuracy_vs_compression.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 7 dt 1 title 'wanda', \
     'accuracy_vs_compression.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'sparsegpt'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_compression.svg'
replot
unset output
