-- iss_p.lua: ISS-P, iterative soft shrinkage by percentage (METHODS.md
-- "ISS-P"), against iterative hard thresholding (the same schedule with
-- alpha = 0), gradual magnitude pruning (Zhu & Gupta) and the prune-at-init
-- methods SNIP and SynFlow, all trained from scratch for the same epochs.
--
--   ./prunebench run benchmarks/iss_p.lua -j 2 --out benchmarks/results
--
-- (results: benchmarks/results/iss_p_lenet300/, iss_p_lenet5/ and iss_p_conv4/;
-- `-e iss_p_conv4` runs only the conv4 one, whose cuts are stated at the end)
--
-- ISS-P's schedule is its defaults, stated here as parameters: alpha = 0.95
-- (the weights in the shrink set are multiplied by 0.95 after every step),
-- the shrink fraction rising on the cubic schedule over the first half of the
-- steps (ramp = 0.5), the hard mask frozen at 80 % of the steps (kp = 0.8),
-- the rest fine-tuning with it. IHT is the same with alpha = 0. Gradual
-- pruning prunes on the cubic schedule every 100 steps.
--
-- Sparsities 0.9, 0.95, 0.98, 0.99 and 0.995; 3 seeds, 5 at s >= 0.99 where
-- accuracies spread. Budget: LeNet-300-100 trains 8 epochs, LeNet-5 4
-- (SGD 0.05, momentum 0.9, batch 128, cosine schedule), every method the same.

local function by_arch(lenet300, lenet5)
  return function(cell) return cell.arch == "lenet5" and lenet5 or lenet300 end
end

local ISS = { alpha = 0.95, ramp = 0.5, kp = 0.8 }

for _, arch in ipairs({ "lenet300", "lenet5" }) do
  experiment("iss_p_" .. arch) {
    models   = { arch },
    datasets = { "fashion-mnist" },
    methods  = {
      "dense",
      { "iss_p", alpha = ISS.alpha, ramp = ISS.ramp, kp = ISS.kp, label = "iss_p" },
      { "iss_p", alpha = 0, ramp = ISS.ramp, kp = ISS.kp, label = "iht" },
      { "gradual", label = "gradual" },
      "snip",
      "synflow",
    },
    sparsity = { 0.9, 0.95, 0.98, 0.99, 0.995 },
    seeds    = { 1, 2, 3, 4, 5 },
    filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.99 end,
    train    = { epochs = by_arch(8, 4), batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9,
                 schedule = "cosine" },
    plots    = { "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_epochs", "layer_sparsity" },
  }
end

-- conv4 on Fashion-MNIST, the third model/data pair (issue 12), cut as
-- init_methods.lua's init_methods_conv4 is (conv4 trained on all 60 000
-- examples and evaluated on the 10 000 test images after every epoch would
-- not fit two shared cores), by data, epochs and width, never by points or
-- seeds:
--   * conv4 at width 0.25 (121 594 weights; 16-16-32-32 channels, 64-64-10
--     units);
--   * every method trains on the first 5 000 training examples only (the
--     test set is the full 10 000), batch 32, 3 epochs, cosine schedule;
--   * that is 471 steps, against LeNet-5's 1 876 here, so gradual's dt is
--     scaled from 100 to 25 steps to prune as often over its schedule as on
--     LeNet-5 (11 pruning steps). ISS-P's and IHT's schedules are fractions
--     of the steps and stay the defaults above.
-- Same methods, sparsities, seeds (3; 5 at s >= 0.99), optimizer and lr as
-- the LeNets.
experiment("iss_p_conv4") {
  models   = { { "conv4", width = 0.25 } },
  datasets = { { "fashion-mnist", subset = 5000 } },
  methods  = {
    "dense",
    { "iss_p", alpha = ISS.alpha, ramp = ISS.ramp, kp = ISS.kp, label = "iss_p" },
    { "iss_p", alpha = 0, ramp = ISS.ramp, kp = ISS.kp, label = "iht" },
    { "gradual", label = "gradual", dt = 25 },
    "snip",
    "synflow",
  },
  sparsity = { 0.9, 0.95, 0.98, 0.99, 0.995 },
  seeds    = { 1, 2, 3, 4, 5 },
  filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.99 end,
  train    = { epochs = 3, batch = 32, opt = "sgd", lr = 0.05, momentum = 0.9,
               schedule = "cosine" },
  plots    = { "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_epochs", "layer_sparsity" },
}
