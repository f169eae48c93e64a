local small = model{ name = "small", conv(4, 3, {pad = 1}), bn(), relu(), maxpool(2),
  residual{ conv(4, 3), relu() }, flatten(), dropout(0.1), dense(16), relu(), dense(10) }
experiment "custom" {
  models   = { small, { "mlp", hidden = {8, 4} }, { "lenet300", width = 0.5 } },
  datasets = { { "synthetic", subset = 64 } },
  methods  = { "dense", "magnitude", { "random", label = "rnd" } },
  sparsity = { 0.5, 0.9 },
  seeds    = { 1, 2 },
  train    = { epochs = 1, batch = 32, opt = "adam", lr = 0.001 },
  finetune = { epochs = 1 },
  plots    = { "accuracy_vs_compression" },
}
