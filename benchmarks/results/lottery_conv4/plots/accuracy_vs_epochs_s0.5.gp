# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_epochs_s0.5.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_epochs_s0.5.png'
set title 'lottery_conv4: conv4@w0.25 on fashion-mnist: accuracy over epochs at s = 0.5 (mean, ± std band)'
set xlabel 'epochs (pruning a trained model includes its pre-training)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set yrange [0.708401:0.872432]
set xrange [0:18]
set xtics 2
set mxtics 1
set format x '%.0f'
plot 'accuracy_vs_epochs_s0.5.dat' index 0 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_epochs_s0.5.dat' index 0 using 1:2 with linespoints pointsize 0.6 lc rgb '#0072b2' pt 7 dt 1 title 'dense', \
     'accuracy_vs_epochs_s0.5.dat' index 1 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#d55e00' notitle, \
     'accuracy_vs_epochs_s0.5.dat' index 1 using 1:2 with linespoints pointsize 0.6 lc rgb '#d55e00' pt 5 dt 1 title 'lottery', \
     'accuracy_vs_epochs_s0.5.dat' index 2 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#009e73' notitle, \
     'accuracy_vs_epochs_s0.5.dat' index 2 using 1:2 with linespoints pointsize 0.6 lc rgb '#009e73' pt 9 dt 1 title 'lottery_reinit', \
     'accuracy_vs_epochs_s0.5.dat' index 3 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#cc79a7' notitle, \
     'accuracy_vs_epochs_s0.5.dat' index 3 using 1:2 with linespoints pointsize 0.6 lc rgb '#cc79a7' pt 13 dt 1 title 'lottery_random'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_epochs_s0.5.svg'
replot
unset output
