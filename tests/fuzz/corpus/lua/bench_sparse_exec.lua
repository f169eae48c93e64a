
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
