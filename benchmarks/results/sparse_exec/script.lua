-- sparse_exec.lua: measured against theoretical inference speedup.
--
-- LeNet-300-100 on Fashion-MNIST pruned by layerwise magnitude, global
-- magnitude and channel pruning (physically narrower layers) to five
-- sparsities, and by N:M magnitude pruning at 2:4, 1:4, 1:8, 1:16 and 1:32
-- (s = 1 - n/m: 0.5 to 0.969; the engine runs these on its nm format),
-- 3 seeds. Every finished cell records
-- its batch-1 latency and batch-128 throughput as the engine executes it
-- (PB_KERNELS=auto: sparse kernels where the density is below the measured
-- thresholds) and on the dense kernels (infer_us_b1, infer_ips_b128,
-- measured_speedup in cells.csv); the chart plots/measured_speedup draws the
-- measured against the theoretical speedup (flops_dense / flops_eff).
--
--   ./prunebench run benchmarks/sparse_exec.lua -j 2

experiment "sparse_exec" {
  models   = { "lenet300" },
  datasets = { "fashion-mnist" },
  methods  = {
    "dense",
    "magnitude",
    "global_magnitude",
    "channel",
    { "nm", n = 2, m = 4, label = "nm", sparsity = { 0.5 } },
    { "nm", n = 1, m = 4, label = "nm", sparsity = { 0.75 } },
    { "nm", n = 1, m = 8, label = "nm", sparsity = { 0.875 } },
    { "nm", n = 1, m = 16, label = "nm", sparsity = { 0.9375 } },
    { "nm", n = 1, m = 32, label = "nm", sparsity = { 0.96875 } },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95, 0.98 },
  seeds    = { 1, 2, 3 },
  train    = { epochs = 3, batch = 128, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
