# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_epochs_s0.3.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_epochs_s0.3.png'
set title 'lm_oneshot: gpt, gpt_4x64 on fortunes: perplexity over epochs at s = 0.3 (mean, ± std band)'
set xlabel 'epochs (pruning a trained model includes its pre-training)'
set ylabel 'test perplexity (lower is better)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale y
set yrange [12.6096:17.0759]
set ytics (12.9, 13.6, 14.3, 15, 15.8, 16.6)
set xrange [0:1]
set xtics 1
set mxtics 1
set format x '%.0f'
plot 'accuracy_vs_epochs_s0.3.dat' index 0 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 0 using 1:2 with linespoints pointsize 0.6 lc rgb '#0072b2' pt 7 dt 1 title 'dense (gpt, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 1 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#d55e00' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d55e00' pt 5 dt 1 title 'magnitude (gpt, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 2 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#009e73' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 2 using 1:2 with linespoints pointsize 0.6 lc rgb '#009e73' pt 9 dt 1 title 'wanda (gpt, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 3 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#cc79a7' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 3 using 1:2 with linespoints pointsize 0.6 lc rgb '#cc79a7' pt 13 dt 1 title 'sparsegpt (gpt, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 4 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#999933' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 4 using 1:2 with linespoints pointsize 0.6 lc rgb '#999933' pt 8 dt 1 title 'dense (gpt_4x64, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 5 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 5 using 1:2 with linespoints pointsize 0.6 lc rgb '#0072b2' pt 12 dt 2 title 'magnitude (gpt_4x64, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 6 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#d55e00' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 6 using 1:2 with linespoints pointsize 0.6 lc rgb '#d55e00' pt 10 dt 2 title 'wanda (gpt_4x64, fortunes)', \
     'accuracy_vs_epochs_s0.3.dat' index 7 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#009e73' notitle, \
     'accuracy_vs_epochs_s0.3.dat' index 7 using 1:2 with linespoints pointsize 0.6 lc rgb '#009e73' pt 1 dt 2 title 'sparsegpt (gpt_4x64, fortunes)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_epochs_s0.3.svg'
replot
unset output
