# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_time_s0.5.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_time_s0.5.png'
set title 'precropping_conv4: conv4@w0.25 on fashion-mnist: accuracy over time at s = 0.5 (mean, ± std band)'
set xlabel 'wall seconds (pruning a trained model includes its pre-training)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set yrange [0.368039:0.827124]
set xrange [0:6.19708]
plot 'accuracy_vs_time_s0.5.dat' index 0 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#e69f00' notitle, \
     'accuracy_vs_time_s0.5.dat' index 0 using 1:2 with linespoints pointsize 0.6 lc rgb '#e69f00' pt 11 dt 1 title 'dense (conv4@w0.25)', \
     'accuracy_vs_time_s0.5.dat' index 1 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#56b4e9' notitle, \
     'accuracy_vs_time_s0.5.dat' index 1 using 1:2 with linespoints pointsize 0.6 lc rgb '#56b4e9' pt 6 dt 1 title 'synflow (conv4@w0.25)', \
     'accuracy_vs_time_s0.5.dat' index 2 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#000000' notitle, \
     'accuracy_vs_time_s0.5.dat' index 2 using 1:2 with linespoints pointsize 0.6 lc rgb '#000000' pt 4 dt 1 title 'random_synflow_densities (conv4@w0.25)', \
     'accuracy_vs_time_s0.5.dat' index 3 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#999933' notitle, \
     'accuracy_vs_time_s0.5.dat' index 3 using 1:2 with linespoints pointsize 0.6 lc rgb '#999933' pt 8 dt 1 title 'precropping (conv4@w0.25)', \
     'accuracy_vs_time_s0.5.dat' index 4 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_time_s0.5.dat' index 4 using 1:2 with linespoints pointsize 0.6 lc rgb '#0072b2' pt 12 dt 2 title 'dense (conv4@w0.1765)', \
     'accuracy_vs_time_s0.5.dat' index 5 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#d55e00' notitle, \
     'accuracy_vs_time_s0.5.dat' index 5 using 1:2 with linespoints pointsize 0.6 lc rgb '#d55e00' pt 10 dt 2 title 'dense (conv4@w0.1114)', \
     'accuracy_vs_time_s0.5.dat' index 6 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#009e73' notitle, \
     'accuracy_vs_time_s0.5.dat' index 6 using 1:2 with linespoints pointsize 0.6 lc rgb '#009e73' pt 1 dt 2 title 'dense (conv4@w0.0785)', \
     'accuracy_vs_time_s0.5.dat' index 7 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#cc79a7' notitle, \
     'accuracy_vs_time_s0.5.dat' index 7 using 1:2 with linespoints pointsize 0.6 lc rgb '#cc79a7' pt 2 dt 2 title 'dense (conv4@w0.0553)', \
     'accuracy_vs_time_s0.5.dat' index 8 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 noborder lc rgb '#e69f00' notitle, \
     'accuracy_vs_time_s0.5.dat' index 8 using 1:2 with linespoints pointsize 0.6 lc rgb '#e69f00' pt 3 dt 2 title 'dense (conv4@w0.0347)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_time_s0.5.svg'
replot
unset output
