
experiment "quickstart" {
  models   = { "lenet300" },
  datasets = { "fashion-mnist" },
  methods  = {
    "dense",
    "random",
    "magnitude",
    "global_magnitude",
    "snip",
    "synflow",
    { "lottery", rounds = 3, epochs = 1 },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95, 0.98 },
  seeds    = { 1 },
  train    = { epochs = 4, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
  finetune = { epochs = 2, lr = 0.01 },
  plots    = { "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_time",
               "accuracy_vs_epochs", "layer_sparsity" },
}
