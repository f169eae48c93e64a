# Written by prunebench 0.1.0 from cells.csv and curves.csv; edit and rerun with gnuplot time_to_accuracy-conv4_w0.25-r0.3.gp
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'time_to_accuracy-conv4_w0.25-r0.3.png'
set title 'conv4@w0.25: test accuracy vs training time at r = 0.3 (mean ± std over seeds; full data for reference)'
set xlabel 'training clock, s (wall clock since the cell started, less test evaluations; scoring included)'
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set arrow from graph 0, first 0.8 to graph 1, first 0.8 nohead dt 2 lc rgb '#444444'
set label 'target 0.8' at graph 0.01, first 0.8 offset 0,0.6
plot 'time_to_accuracy-conv4_w0.25-r0.3.dat' index 0 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.15 noborder lc rgb '#0072b2' notitle, \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 0 using 1:2 with linespoints pt 7 ps 0.5 dt 1 lc rgb '#0072b2' title 'el2n r=0.3', \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 1 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.15 noborder lc rgb '#d55e00' notitle, \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 1 using 1:2 with linespoints pt 7 ps 0.5 dt 1 lc rgb '#d55e00' title 'rs2 r=0.3', \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 2 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.15 noborder lc rgb '#009e73' notitle, \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 2 using 1:2 with linespoints pt 7 ps 0.5 dt 1 lc rgb '#009e73' title 'static_random r=0.3', \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 3 using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.15 noborder lc rgb '#cc79a7' notitle, \
     'time_to_accuracy-conv4_w0.25-r0.3.dat' index 3 using 1:2 with linespoints pt 7 ps 0.5 dt 1 lc rgb '#cc79a7' title 'full'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'time_to_accuracy-conv4_w0.25-r0.3.svg'
replot
unset output
