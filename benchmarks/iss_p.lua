-- iss_p.lua: ISS-P, iterative soft shrinkage by percentage (METHODS.md
-- "ISS-P"), against iterative hard thresholding (the same schedule with
-- alpha = 0), gradual magnitude pruning (Zhu & Gupta) and the prune-at-init
-- methods SNIP and SynFlow, all trained from scratch for the same epochs.
--
--   ./prunebench run benchmarks/iss_p.lua -j 2 --out benchmarks/results
--
-- (results: benchmarks/results/iss_p_lenet300/ and iss_p_lenet5/)
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
