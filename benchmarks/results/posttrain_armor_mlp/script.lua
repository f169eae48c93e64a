-- posttrain_armor.lua: the 2:4 ARMOR cells of posttrain.lua again, with
-- 2:4 magnitude as the control, to record ARMOR's cost as it runs once
-- factored (ABI 1.2's set_layer_cost): flops_eff counts per example the
-- multiply-adds of the wrappers' blocks and of the kept core values, and
-- `stored` and the layer rows count those values (not the 2 bits of pattern
-- per kept value). Same models, recipe, calibration and seeds as
-- posttrain.lua (LeNet-5's 2:4 cells there have 3 seeds).
--
--   ./prunebench run benchmarks/posttrain_armor.lua -j 2 --out benchmarks/results

local C = 512

local MODELS = {
  mlp = { "mlp", hidden = { 512, 512 }, label = "mlp512" },
  lenet5 = { "lenet5" },
}

for _, arch in ipairs({ "mlp", "lenet5" }) do
  experiment("posttrain_armor_" .. arch) {
    models   = { MODELS[arch] },
    datasets = { "fashion-mnist" },
    methods  = {
      { "nm", n = 2, m = 4, score = "magnitude", label = "magnitude_2:4" },
      { "armor", calib = C, label = "armor_2:4" },
    },
    sparsity = { 0.5 },
    seeds    = { 1, 2, 3 },
    train    = { epochs = arch == "lenet5" and 2 or 4, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
    finetune = { epochs = 0, lr = 0.01 },
    plots    = { "accuracy_vs_compression", "layer_sparsity" },
  }
end
