-- quickstart.lua: the default experiment of prunebench.
--
-- LeNet-300-100 on Fashion-MNIST pruned by six methods to five sparsities,
-- one seed, sized to finish in under 10 minutes on 2 cores:
--
--   ./prunebench run benchmarks/quickstart.lua -j 2
--
-- Results land in results/quickstart/ (cells.csv, curves.csv, layers.csv,
-- metadata.txt) and the charts in results/quickstart/plots/.
--
-- Budgets: the dense model trains 4 epochs (once, cached, shared by every
-- method that prunes a trained model); magnitude, global magnitude and random
-- then fine-tune 2 epochs; SNIP and SynFlow prune at initialization and train
-- the sparse network for the same 4 epochs; lottery tickets run 3 rounds of
-- 1 epoch (train, prune, rewind to initialization) and retrain the ticket.

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
