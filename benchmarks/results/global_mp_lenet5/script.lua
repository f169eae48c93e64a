-- global_mp.lua: Global MP and MT (Gupta et al. 2022), METHODS.md "Global magnitude".
--
--   ./prunebench run benchmarks/global_mp.lua -j 2 --out benchmarks/results
--
-- (results: benchmarks/results/global_mp_lenet300/ and global_mp_lenet5/)
--
-- Trained LeNet-300-100 and LeNet-5 on Fashion-MNIST are pruned one-shot to
-- s in {0.9, 0.95, 0.98, 0.99, 0.995, 0.998} (and 0.999 for the three
-- magnitude methods, to push s until some layer collapses), then fine-tuned
-- with the mask fixed. Compared: global MP, global MP + minimum threshold
-- (MT, mt = 0.0005, label global_mp_mt), layerwise magnitude, and the
-- prune-at-init methods SNIP and SynFlow (these train the sparse network from
-- scratch with the same `train` recipe instead of pruning the trained model).
-- The layer_sparsity chart shows the weights each method keeps per layer.
--
-- Budget cuts (the whole set of four paper scripts must fit ~60 min on two
-- shared cores, which other jobs loaded ~2x while these ran): 2 seeds instead
-- of 3; the dense models train 4 epochs
-- (LeNet-300-100) / 2 epochs (LeNet-5) instead of to convergence, fine-tuning
-- is 2 / 1 epochs; SNIP and SynFlow train for the same 4 / 2 epochs.

local function epochs(lenet300, lenet5)
  return function(cell) return cell.arch == "lenet5" and lenet5 or lenet300 end
end

local extreme = { 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999 }

-- One experiment per model, so each chart compares the methods on one network:
-- results in benchmarks/results/global_mp_lenet300/ and .../global_mp_lenet5/.
local SEEDS = { lenet300 = { 1, 2 }, lenet5 = { 1, 2 } }

for _, arch in ipairs({ "lenet300", "lenet5" }) do
  experiment("global_mp_" .. arch) {
    models   = { arch },
    datasets = { "fashion-mnist" },
    methods  = {
      "dense",
      { "global_magnitude", label = "global_mp", sparsity = extreme },
      { "global_magnitude", min_threshold = 0.0005, label = "global_mp_mt", sparsity = extreme },
      { "magnitude", sparsity = extreme },
      "snip",
      "synflow",
    },
    sparsity = { 0.9, 0.95, 0.98, 0.99, 0.995, 0.998 },
    seeds    = SEEDS[arch],
    train    = { epochs = epochs(4, 2), batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
    finetune = { epochs = epochs(2, 1), lr = 0.01 },
    plots    = { "accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_flops",
                 "layer_sparsity" },
  }
end
