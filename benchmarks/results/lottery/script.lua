-- lottery.lua: lottery tickets (Frankle & Carbin 2019), METHODS.md
-- "Iterative magnitude pruning / lottery tickets".
--
--   ./prunebench run benchmarks/lottery.lua -j 2 --out benchmarks/results
--
-- LeNet-300-100 on Fashion-MNIST, iterative magnitude pruning per layer
-- (p = 20 % of the surviving weights of each hidden layer, 10 % of the output
-- layer per round) with rewinding to initialization, until the target
-- sparsity; the last round prunes exactly to the target. Compared:
--   lottery         the winning ticket (survivors rewound to their initial values)
--   lottery_reinit  the ticket's masks, fresh random initialization
--   lottery_random  random masks with the ticket's per-layer kept counts,
--                   rewound to the same initialization
-- at target sparsities 0.5, 0.8, 0.9 and 0.95 (4, 8, 11 and 14 rounds; 0.95
-- leaves 5 % of the weights).
-- The ticket's accuracy after every round (train, evaluate, prune, rewind) is
-- in curves.csv, phase "round" (round r has about 0.8^r of the weights left);
-- the controls only exist at the targets.
--
-- Budget cuts (all four paper scripts share ~60 min on two shared cores):
-- 1 epoch of SGD (lr 0.05, momentum 0.9, batch 128) per round instead of the
-- paper's ~10 epochs (50k iterations, Adam 1.2e-3), no early stopping on a
-- held-out set (the plugin trains a fixed number of epochs; accuracies are
-- test accuracy at the end of each round's training), 2 seeds instead of 5.
-- Every control cell repeats the ticket's whole pruning schedule to get its
-- masks, so each control at each target costs as much as the ticket.

experiment "lottery" {
  models   = { "lenet300" },
  datasets = { "fashion-mnist" },
  methods  = {
    "dense",
    { "lottery", epochs = 1, label = "lottery" },
    { "lottery", epochs = 1, control = "reinit", label = "lottery_reinit" },
    { "lottery", epochs = 1, control = "random", label = "lottery_random" },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95 },
  seeds    = { 1, 2 },
  train    = { epochs = 1, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
  plots    = { "accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_epochs" },
}
