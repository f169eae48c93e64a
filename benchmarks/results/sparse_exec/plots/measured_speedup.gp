# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot measured_speedup.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'measured_speedup.png'
set title 'sparse_exec: lenet300 on fashion-mnist: batch-1 inference, measured vs theoretical speedup (mean ± std)'
set xlabel 'theoretical speedup (dense FLOPs / effective FLOPs)'
set ylabel 'measured speedup (dense kernels / kernels as executed)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale xy 2
set xrange [0.8:72.9877]
set yrange [0.4:72.9877]
plot x with lines lc rgb '#999999' dt 2 title 'measured = theoretical', \
     'measured_speedup.dat' index 0 using 1:2:3 with yerrorbars pointsize 1 lc rgb '#0072b2' pt 7 dt 1 title 'dense', \
     'measured_speedup.dat' index 1 using 1:2:3 with yerrorbars pointsize 1 lc rgb '#d55e00' pt 5 dt 1 title 'magnitude', \
     'measured_speedup.dat' index 2 using 1:2:3 with yerrorbars pointsize 1 lc rgb '#009e73' pt 9 dt 1 title 'global_magnitude', \
     'measured_speedup.dat' index 3 using 1:2:3 with yerrorbars pointsize 1 lc rgb '#cc79a7' pt 13 dt 1 title 'channel', \
     'measured_speedup.dat' index 4 using 1:2:3 with yerrorbars pointsize 1 lc rgb '#e69f00' pt 11 dt 1 title 'nm'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'measured_speedup.svg'
replot
unset output
