-- sparse_vs_dense.lua: large-sparse vs small-dense (Zhu & Gupta 2017),
-- METHODS.md "Gradual magnitude".
--
--   ./prunebench run benchmarks/sparse_vs_dense.lua -j 2 --out benchmarks/results
--
-- (results: benchmarks/results/sparse_vs_dense_lenet300/, sparse_vs_dense_lenet5/ and
-- sparse_vs_dense_conv4/; `-e sparse_vs_dense_conv4` runs only the conv4 one, whose
-- cuts are stated where it is declared, at the end)
--
-- LeNet-300-100 trained from scratch while pruned gradually (method `gradual`,
-- cubic schedule, s_i = 0, dt = 100 steps, pruning from 10 % to 65 % of the
-- steps, mask frozen afterwards) to s_f in {0.5, 0.8, 0.9, 0.95, 0.98} (0.5
-- added after the others had run, by a later build), against the
-- dense LeNet-300-100 narrowed by a width multiplier w so that its weights
-- match the large-sparse model's nonzero prunable weights:
--     784*300w + 300w*100w + 100w*10 = (1 - s) * 266200
-- (hidden sizes round(300w), round(100w); w is solved below, then nudged so the
-- rounded layer sizes come closest to the target count). The same with LeNet-5
-- (conv 6w, conv 16w, fc 120w, fc 84w; prunable weights 61470):
--     25*6w + 6w*16w*25 + 400w*120w + 120w*84w + 84w*10 = (1 - s) * 61470.
-- Every cell uses the same recipe (SGD 0.05, momentum 0.9, batch 128) and the
-- same epochs; the full-width dense model is the reference.
--
-- Budget cuts (the paper scripts must fit two shared cores):
-- LeNet-300-100 trains 5 epochs, LeNet-5 2 epochs, 3 seeds each
-- (Zhu & Gupta train to convergence).

local SPARSITIES = { 0.5, 0.8, 0.9, 0.95, 0.98 }

local function round(x) return math.floor(x + 0.5) end  -- lround for x >= 0

-- weights of the width-scaled models, with the harness's rounding of layer sizes
local function lenet300_weights(w)
  local h1, h2 = round(300 * w), round(100 * w)
  return 784 * h1 + h1 * h2 + h2 * 10
end
local function lenet5_weights(w)
  local c1, c2, f1, f2 = round(6 * w), round(16 * w), round(120 * w), round(84 * w)
  return 25 * c1 + 25 * c1 * c2 + 25 * c2 * f1 + f1 * f2 + f2 * 10
end

-- positive root of a*w^2 + b*w = target, then the w nearby (step 1e-4, within
-- +-15 %) whose rounded layer sizes give the count closest to target
local function solve_width(a, b, target, count)
  local w0 = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
  local best, berr = w0, math.abs(count(w0) - target)
  for i = -1500, 1500 do
    local w = w0 * (1 + i * 1e-4)
    local err = math.abs(count(w) - target)
    if err < berr or (err == berr and math.abs(w - w0) < math.abs(best - w0)) then best, berr = w, err end
  end
  return tonumber(string.format("%.4f", best)), w0
end

-- One experiment per network (results in benchmarks/results/sparse_vs_dense_lenet300/
-- and .../sparse_vs_dense_lenet5/): the full-width model (dense and gradual)
-- and its four narrowed dense counterparts.
local models = { lenet300 = { "lenet300" }, lenet5 = { "lenet5" } }
for _, s in ipairs(SPARSITIES) do
  local t300 = (1 - s) * 266200
  local w, w0 = solve_width(30000, 236200, t300, lenet300_weights)
  print(string.format("lenet300 s=%.2f: target %.0f weights, w=%.4f (root %.4f) -> %d weights",
                      s, t300, w, w0, lenet300_weights(w)))
  table.insert(models.lenet300, { "lenet300", width = w })
  local t5 = (1 - s) * 61470
  local w5, w50 = solve_width(60480, 990, t5, lenet5_weights)
  print(string.format("lenet5   s=%.2f: target %.0f weights, w=%.4f (root %.4f) -> %d weights",
                      s, t5, w5, w50, lenet5_weights(w5)))
  table.insert(models.lenet5, { "lenet5", width = w5 })
end

-- conv4 (the third pair, cut as below): the large model is conv4 at width 0.25
-- (prunable weights 121 360), its narrowed dense counterparts conv4 at width
-- W < 0.25 (channels round(64W), round(64W), round(128W), round(128W); dense
-- round(256W), round(256W), 10):
--     9c1 + 9c1^2 + 9c1c3 + 9c3^2 + 49c3f + f^2 + 10f = (1 - s) * 121360.
local function conv4_weights(w)
  local c1, c3, f = round(64 * w), round(128 * w), round(256 * w)
  return 9 * c1 + 9 * c1 * c1 + 9 * c1 * c3 + 9 * c3 * c3 + 49 * c3 * f + f * f + 10 * f
end
local CONV4_WIDTH, CONV4_PRUNABLE = 0.25, conv4_weights(0.25)
models.conv4 = { { "conv4", width = CONV4_WIDTH } }
for _, s in ipairs(SPARSITIES) do
  local t = (1 - s) * CONV4_PRUNABLE
  local w, w0 = solve_width(1929216, 3136, t, conv4_weights)
  print(string.format("conv4    s=%.2f: target %.0f weights, w=%.4f (root %.4f) -> %d weights",
                      s, t, w, w0, conv4_weights(w)))
  table.insert(models.conv4, { "conv4", width = w })
end

local SEEDS = { lenet300 = { 1, 2, 3 }, lenet5 = { 1, 2, 3 } }
local EPOCHS = { lenet300 = 5, lenet5 = 2 }

for _, arch in ipairs({ "lenet300", "lenet5" }) do
  experiment("sparse_vs_dense_" .. arch) {
    models   = models[arch],
    datasets = { "fashion-mnist" },
    methods  = { "dense", { "gradual", sparsity = SPARSITIES } },
    seeds    = SEEDS[arch],
    -- gradual only on the full-width model
    filter   = function(cell) return cell.method == "dense" or cell.width == 1.0 end,
    train    = { epochs = EPOCHS[arch], batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
    plots    = { "accuracy_vs_params", "accuracy_vs_flops", "accuracy_vs_epochs" },
  }
end

-- conv4 on Fashion-MNIST, the third model/data pair (issue 12), cut as
-- init_methods.lua's init_methods_conv4 is (conv4 trained on all 60 000
-- examples and evaluated on the 10 000 test images after every epoch would
-- not fit two shared cores), by data, epochs and width, never by points or
-- seeds:
--   * the large model is conv4 at width 0.25 (121 594 weights; 16-16-32-32
--     channels, 64-64-10 units), not full width;
--   * every cell trains on the first 5 000 training examples only (the test
--     set is the full 10 000), batch 32 (128 gives too few steps on 5 000
--     examples), 5 epochs (EPOCHS_CONV4) as LeNet-300-100 here;
--   * that is 157 steps an epoch against LeNet-300-100's 469, so gradual's
--     dt is scaled from 100 to 34 steps (DT_CONV4) to prune as often over the
--     schedule as there (13 pruning steps between 10 % and 65 % of training);
--     start, end and the cubic schedule are the defaults, as on the LeNets.
-- Same sparsities, seeds (3), optimizer and lr as the LeNets.
local EPOCHS_CONV4, DT_CONV4 = 5, 34
experiment("sparse_vs_dense_conv4") {
  models   = models.conv4,
  datasets = { { "fashion-mnist", subset = 5000 } },
  methods  = { "dense", { "gradual", sparsity = SPARSITIES, dt = DT_CONV4 } },
  seeds    = { 1, 2, 3 },
  filter   = function(cell) return cell.method == "dense" or cell.width == CONV4_WIDTH end,
  train    = { epochs = EPOCHS_CONV4, batch = 32, opt = "sgd", lr = 0.05, momentum = 0.9 },
  plots    = { "accuracy_vs_params", "accuracy_vs_flops", "accuracy_vs_epochs" },
}
