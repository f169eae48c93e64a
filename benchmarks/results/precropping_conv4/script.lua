-- precropping.lua: PreCropping (Cai et al. 2022; METHODS.md "Pruning at
-- initialization"): at a given budget, is a layer's density what matters, so
-- that a narrower dense network with SynFlow's layer densities trains as well
-- as SynFlow's sparse mask?
--
--   ./prunebench run benchmarks/precropping.lua -j 1 --out benchmarks/results
--
-- LeNet-5 and LeNet-300-100 on Fashion-MNIST at densities 50 / 20 / 10 / 5 /
-- 2 % (s = 0.5, 0.8, 0.9, 0.95, 0.98), every network trained from scratch with
-- one recipe:
--   synflow                   SynFlow's mask (100 rounds)
--   random_synflow_densities  a random mask with exactly SynFlow's count of
--                             weights in every layer (precropping mode=random)
--   precropping               the dense network whose layer widths give
--                             SynFlow's layer densities (constrained least
--                             squares on log width ratios, weighted by layer
--                             size), freshly initialized
--   dense (narrowed)          uniform width scaling at the same number of
--                             weights, solved as in sparse_vs_dense.lua:
--                             LeNet-5 0.713 / 0.443 / 0.311 / 0.219 / 0.138,
--                             LeNet-300-100 0.5281 / 0.2193 / 0.1111 / 0.056
--                             / 0.0225, and the full network
-- Claim: about equal accuracy for the first three, the cropped network with
-- the real FLOPs and training time saved (flops_eff and wall_s in cells.csv).
--
-- Budget cuts: 3 epochs of SGD (lr 0.05, momentum 0.9, batch 128) instead of
-- the paper's full CIFAR schedules (the masked networks train at dense cost:
-- LeNet-5 took 2-3 s per epoch during the committed run, up to 27 s on a busy
-- host), 3 seeds.
--
-- conv4 (experiment precropping_conv4, results in .../precropping_conv4/; the
-- third model/data pair, cut as init_methods.lua's init_methods_conv4 is):
-- conv4 at width 0.25 (121 360 prunable weights) trained on the first 5 000
-- training examples (the full 10 000 test images), batch 32, 3 epochs, Adam
-- at lr 0.001 for every network: with the LeNets' SGD recipe, conv4 pruned at
-- initialization stays at chance (init_methods.lua says more). Narrowed
-- baselines: conv4 at width W with the same number of weights, solved as in
-- sparse_vs_dense.lua: 0.1765 / 0.1114 / 0.0785 / 0.0553 / 0.0347 (61 416,
-- 24 175, 12 020, 6 011 and 2 205 weights; the last is 9 % under its target,
-- the closest the rounded channel counts come).

local WIDTHS = {
  lenet5   = { 0.713, 0.443, 0.311, 0.219, 0.138 },
  lenet300 = { 0.5281, 0.2193, 0.1111, 0.056, 0.0225 },
}

local models = {}
for _, arch in ipairs({ "lenet5", "lenet300" }) do
  models[#models + 1] = arch
  for _, w in ipairs(WIDTHS[arch]) do models[#models + 1] = { arch, width = w } end
end

experiment "precropping" {
  models   = models,
  datasets = { "fashion-mnist" },
  methods  = {
    "dense",
    "synflow",
    { "precropping", mode = "random", label = "random_synflow_densities" },
    { "precropping", label = "precropping" },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95, 0.98 },
  seeds    = { 1, 2, 3 },
  train    = { epochs = 3, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
  filter   = function(cell) return cell.method == "dense" or cell.width == 1 end,
  plots    = { "accuracy_vs_params", "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_speedup",
               "accuracy_vs_time", "layer_sparsity" },
}

local CONV4 = { 0.25, 0.1765, 0.1114, 0.0785, 0.0553, 0.0347 }
local conv4_models = {}
for _, w in ipairs(CONV4) do conv4_models[#conv4_models + 1] = { "conv4", width = w } end

experiment "precropping_conv4" {
  models   = conv4_models,
  datasets = { { "fashion-mnist", subset = 5000 } },
  methods  = {
    "dense",
    "synflow",
    { "precropping", mode = "random", label = "random_synflow_densities" },
    { "precropping", label = "precropping" },
  },
  sparsity = { 0.5, 0.8, 0.9, 0.95, 0.98 },
  seeds    = { 1, 2, 3 },
  train    = { epochs = 3, batch = 32, opt = "adam", lr = 0.001 },
  filter   = function(cell) return cell.method == "dense" or cell.width == CONV4[1] end,
  plots    = { "accuracy_vs_params", "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_speedup",
               "accuracy_vs_time", "layer_sparsity" },
}
