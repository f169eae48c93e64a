
experiment "lottery" {
  models   = { "lenet300" },
  datasets = { { "fashion-mnist", val = 5000 } },
  methods  = {
    "dense",
    { "lottery", epochs = 6, label = "lottery" },
    { "lottery", epochs = 6, control = "reinit", label = "lottery_reinit" },
    { "lottery", epochs = 6, control = "random", label = "lottery_random" },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95 },
  seeds    = { 1, 2, 3 },
  train    = { epochs = 6, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9, early_stop = true },
  plots    = { "accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_epochs" },
}
