# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot accuracy_vs_flops.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'accuracy_vs_flops.png'
set title 'lm_oneshot: gpt, gpt_4x64 on fortunes: test perplexity (lower is better) (mean ± std over seeds)'
set xlabel 'effective inference FLOPs per example (nonzero weights)'
set ylabel 'test perplexity (lower is better)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale x 10
set xrange [8.82492e+06:5.68985e+07]
set logscale y
set yrange [12.6105:23.1423]
set ytics (13.3, 14.7, 16.2, 18, 19.9, 22)
plot 'accuracy_vs_flops.dat' index 0 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 5 dt 1 title 'magnitude (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 1 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 9 dt 1 title 'wanda (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 2 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 13 dt 1 title 'sparsegpt (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 3 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 11 dt 1 title 'magnitude_2:4 (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 4 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 6 dt 1 title 'wanda_2:4 (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 5 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#000000' pt 4 dt 1 title 'sparsegpt_2:4 (gpt, fortunes)', \
     'accuracy_vs_flops.dat' index 6 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#0072b2' pt 12 dt 2 title 'magnitude (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 7 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#d55e00' pt 10 dt 2 title 'wanda (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 8 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#009e73' pt 1 dt 2 title 'sparsegpt (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 9 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#cc79a7' pt 2 dt 2 title 'magnitude_2:4 (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 10 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#e69f00' pt 3 dt 2 title 'wanda_2:4 (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 11 using 1:2:3 with yerrorlines pointsize 0.8 lc rgb '#56b4e9' pt 7 dt 2 title 'sparsegpt_2:4 (gpt_4x64, fortunes)', \
     'accuracy_vs_flops.dat' index 12 using 1:2:3 with filledcurves fs transparent solid 0.15 noborder lc rgb '#0072b2' notitle, \
     'accuracy_vs_flops.dat' index 12 using 1:4 with lines lw 1.5 dt 2 lc rgb '#0072b2' title 'dense (gpt, fortunes): 13.8006 ± 0.5595 (3 seeds)', \
     'accuracy_vs_flops.dat' index 13 using 1:2:3 with filledcurves fs transparent solid 0.15 noborder lc rgb '#999933' notitle, \
     'accuracy_vs_flops.dat' index 13 using 1:4 with lines lw 1.5 dt 2 lc rgb '#999933' title 'dense (gpt_4x64, fortunes): 14.9260 ± 1.3008 (3 seeds)'

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'accuracy_vs_flops.svg'
replot
unset output
