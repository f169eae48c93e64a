# Written by prunebench 0.1.0 from cells.csv and curves.csv; edit and rerun with gnuplot accuracy_at_time-conv4_w0.25.gp
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_at_time-conv4_w0.25.png'
set title 'conv4@w0.25: test accuracy at a training time of 25.1 s (mean ± std over seeds)'
set xlabel ''
set ylabel 'test accuracy'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set style fill solid 0.6 border -1
set boxwidth 0.7
set xtics rotate by -40 left
unset key
set xrange [-0.6:15.6]
set yrange [0:1.23294]
plot 'accuracy_at_time-conv4_w0.25.dat' using 1:2:xtic(5) with boxes lc rgb '#0072b2', \
     '' using 1:2:3 with yerrorbars lc rgb '#000000' pt 0, \
     '' using 1:($2+$3):4 with labels offset 0,0.8

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_at_time-conv4_w0.25.svg'
replot
unset output
