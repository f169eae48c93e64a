-- sparse_exec.lua: measured against theoretical inference speedup.
--
-- LeNet-300-100 on Fashion-MNIST pruned by layerwise magnitude, global
-- magnitude and channel pruning (physically narrower layers) to five
-- sparsities, 3 seeds. Every finished cell records
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
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95, 0.98 },
  seeds    = { 1, 2, 3 },
  train    = { epochs = 3, batch = 128, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
