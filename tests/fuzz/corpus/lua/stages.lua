for i = 1, 2 do
  experiment ("e" .. i) {
    models   = { "mlp" },
    datasets = { "synthetic" },
    methods  = { { "magnitude", stages = { "train", "prune", "finetune" } }, "snip", "synflow" },
    sparsity = { 0.8 },
    train    = { epochs = 1 },
  }
end
