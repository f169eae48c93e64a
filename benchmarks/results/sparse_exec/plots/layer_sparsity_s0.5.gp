# Written by prunebench 0.1.0 from the results CSV files; edit and rerun with
#   gnuplot layer_sparsity_s0.5.gp
# in this directory (the plots directory of the results).
set terminal pngcairo size 960,600 font ',10' noenhanced
set output 'layer_sparsity_s0.5.png'
set title 'sparse_exec: lenet300 on fashion-mnist: values stored in each layer at overall target sparsity 0.5 (mean over seeds)'
set xlabel 'layer'
set ylabel 'values stored: weights kept or a method''s arrays (log; 0 at tic 0)'
set grid
set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9
set logscale y 10
set yrange [0.15625:940800]
set ytics add ('0' 0.25)
set grid noxtics
set xrange [-1:14]
set xtics rotate by -30 scale 0 ('fc1.weight' 1.5, 'fc2.weight' 6.5, 'fc3.weight' 11.5)
G = 5
kept(v) = v > 0 ? v : 0.25
floor = 0.15625
plot 'layer_sparsity_s0.5.dat' using ($0*G - 0.5):2:(G - 1):(0) with vectors nohead dt 2 lw 1.5 lc rgb '#555555' title 'weights in the layer', \
     'layer_sparsity_s0.5.dat' using ($0*G + 0):(kept($3)):($0*G + 0 - 0.42):($0*G + 0 + 0.42):(floor):(kept($3)) with boxxyerror lc rgb '#d55e00' fs solid 0.85 border -1 title 'magnitude', \
     'layer_sparsity_s0.5.dat' using ($0*G + 1):(kept($4)):($0*G + 1 - 0.42):($0*G + 1 + 0.42):(floor):(kept($4)) with boxxyerror lc rgb '#009e73' fs solid 0.85 border -1 title 'global_magnitude', \
     'layer_sparsity_s0.5.dat' using ($0*G + 2):(kept($5)):($0*G + 2 - 0.42):($0*G + 2 + 0.42):(floor):(kept($5)) with boxxyerror lc rgb '#cc79a7' fs solid 0.85 border -1 title 'channel', \
     'layer_sparsity_s0.5.dat' using ($0*G + 3):(kept($6)):($0*G + 3 - 0.42):($0*G + 3 + 0.42):(floor):(kept($6)) with boxxyerror lc rgb '#e69f00' fs solid 0.85 border -1 title 'nm', \
     'layer_sparsity_s0.5.dat' using ($0*G + 0):(kept($3)):(sprintf('%g', $3)) with labels rotate by 90 left offset 0,0.4 font ',7' notitle, \
     'layer_sparsity_s0.5.dat' using ($0*G + 1):(kept($4)):(sprintf('%g', $4)) with labels rotate by 90 left offset 0,0.4 font ',7' notitle, \
     'layer_sparsity_s0.5.dat' using ($0*G + 2):(kept($5)):(sprintf('%g', $5)) with labels rotate by 90 left offset 0,0.4 font ',7' notitle, \
     'layer_sparsity_s0.5.dat' using ($0*G + 3):(kept($6)):(sprintf('%g', $6)) with labels rotate by 90 left offset 0,0.4 font ',7' notitle

set terminal svg size 960,600 dynamic font 'sans,10' noenhanced
set output 'layer_sparsity_s0.5.svg'
replot
unset output
