-- posttrain.lua: one-shot post-training pruning with calibration data
-- (METHODS.md "Post-training, with calibration data"): magnitude, Wanda,
-- SparseGPT, ECoFLaP and iCBS at s = 0.5 ... 0.9, and 2:4 by magnitude,
-- Wanda, SparseGPT and ARMOR, on a trained MLP 784-512-512-10, LeNet-5 and
-- conv4 (width 0.25).
--
--   ./prunebench run benchmarks/posttrain.lua -j 1 --out benchmarks/results
--
-- No fine-tuning: the accuracy is the model's right after pruning (cells.csv
-- test_acc, equal to pruned_acc there). Exception: on the MLP, magnitude and
-- SparseGPT at s = 0.8 and 0.9 are also fine-tuned for one epoch (labels
-- *_ft1), whose cells carry both pruned_acc (one-shot) and test_acc (tuned).
--
-- The dense model every cell prunes is the baseline (method dense), and both
-- compression and theoretical speedup are charted (Blalock et al.'s
-- checklist). 2:4 is the N:M methods' one operating point, as in their papers.
--
-- Claims tested: SparseGPT >= Wanda >= magnitude, the gap growing with s;
-- ECoFLaP > uniform Wanda at s >= 0.7; iCBS improves on its starting (Wanda)
-- mask; ARMOR beats 2:4 magnitude / Wanda / SparseGPT without fine-tuning.
--
-- Every calibration-using method sees the same 512 training examples per
-- seed (calib = 512: the host's sample is a function of seed and size); the
-- wanda_c128 / sparsegpt_c128 cells at s = 0.8 use 128.
--
-- Budget cuts (the dry-run estimate at -j 1 must stay under 15 min on this
-- 2-core machine, where LeNet-5 trains at ~27 s per epoch): dense models
-- trained 4 epochs (MLP) and 2 epochs (LeNet-5) of SGD (lr 0.05, momentum
-- 0.9, batch 128, constant rate), once per seed and shared by every cell
-- through the dense cache; 3 seeds (LeNet-5 at s >= 0.8: 5); iCBS with its defaults (blocks of 16,
-- 3 passes); ARMOR with wrapper blocks of 16 and 40 iterations.

local S = { 0.5, 0.6, 0.7, 0.8, 0.9 }
local C = 512

local function methods(arch)
  local m = {
    "dense",
    { "magnitude" },
    { "wanda", calib = C },
    { "sparsegpt", calib = C },
    { "ecoflap", calib = C },
    { "icbs", calib = C, start = "wanda" },
    { "wanda", calib = 128, label = "wanda_c128", sparsity = { 0.8 } },
    { "sparsegpt", calib = 128, label = "sparsegpt_c128", sparsity = { 0.8 } },
    { "nm", n = 2, m = 4, score = "magnitude", label = "magnitude_2:4", sparsity = { 0.5 } },
    { "wanda", calib = C, n = 2, m = 4, label = "wanda_2:4", sparsity = { 0.5 } },
    { "sparsegpt", calib = C, n = 2, m = 4, label = "sparsegpt_2:4", sparsity = { 0.5 } },
    { "armor", calib = C, label = "armor_2:4", sparsity = { 0.5 } },
  }
  if arch == "mlp" then
    m[#m + 1] = { "magnitude", label = "magnitude_ft1", sparsity = { 0.8, 0.9 }, finetune = { epochs = 1 } }
    m[#m + 1] = { "sparsegpt", calib = C, label = "sparsegpt_ft1", sparsity = { 0.8, 0.9 }, finetune = { epochs = 1 } }
  end
  return m
end

local MODELS = {
  mlp = { "mlp", hidden = { 512, 512 }, label = "mlp512" },
  lenet5 = { "lenet5" },
  conv4 = { "conv4", width = 0.25 },
}
-- conv4 (the third model/data pair) is cut as in sparse_vs_dense.lua's conv4
-- experiment: width 0.25, the dense model trained on the first 5 000
-- training examples (calibration draws from those), batch 32, 5 epochs of
-- SGD; tested on the full 10 000 test images. 5 seeds at s >= 0.8 as LeNet-5.
local DATA = { mlp = "fashion-mnist", lenet5 = "fashion-mnist", conv4 = { "fashion-mnist", subset = 5000 } }
local EPOCHS = { mlp = 4, lenet5 = 2, conv4 = 5 }
local BATCH = { mlp = 128, lenet5 = 128, conv4 = 32 }

for _, arch in ipairs({ "mlp", "lenet5", "conv4" }) do
  experiment("posttrain_" .. arch) {
    models   = { MODELS[arch] },
    datasets = { DATA[arch] },
    methods  = methods(arch),
    sparsity = S,
    seeds    = arch ~= "mlp" and { 1, 2, 3, 4, 5 } or { 1, 2, 3 },
    -- LeNet-5 one-shot at s >= 0.8 is near collapse for some methods: 5 seeds there
    filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.8 end,
    train    = { epochs = EPOCHS[arch], batch = BATCH[arch], opt = "sgd", lr = 0.05, momentum = 0.9 },
    finetune = { epochs = 0, lr = 0.01 },
    plots    = { "accuracy_vs_compression", "accuracy_vs_speedup", "layer_sparsity" },
  }
end
