experiment "lm" {
  models   = { { "gpt", layers = 1, dim = 16, heads = 2, ctx = 8, ff = 32 } },
  datasets = { "fortunes:ctx=8" },
  methods  = { "dense", "magnitude" },
  sparsity = { 0.5 },
  train    = { epochs = 1, schedule = "cosine", warmup = 2 },
}
