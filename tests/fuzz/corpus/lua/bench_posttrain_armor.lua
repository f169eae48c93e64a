
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
