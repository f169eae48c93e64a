
local function round(x) return math.floor(x + 0.5) end

local function lenet300_weights(w)
  local h1, h2 = math.max(1, round(300 * w)), math.max(1, round(100 * w))
  return 784 * h1 + h1 * h2 + h2 * 10
end
local function lenet5_weights(w)
  local c1, c2 = math.max(1, round(6 * w)), math.max(1, round(16 * w))
  local f1, f2 = math.max(1, round(120 * w)), math.max(1, round(84 * w))
  return 25 * c1 + 25 * c1 * c2 + 25 * c2 * f1 + f1 * f2 + f2 * 10
end

local function solve_width(a, b, target, count)
  local w0 = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
  local best, berr = w0, math.abs(count(w0) - target)
  for i = -1500, 1500 do
    local w = w0 * (1 + i * 1e-4)
    local err = math.abs(count(w) - target)
    if err < berr or (err == berr and math.abs(w - w0) < math.abs(best - w0)) then best, berr = w, err end
  end
  return tonumber(string.format("%.4f", best))
end

local S = { 0.9, 0.99, 0.999 }
local NET = {
  lenet300 = { N = 266200, a = 30000, b = 236200, count = lenet300_weights, epochs = 3,
               sweep = { 0.9, 0.99 }, hashed = S, narrow = { 0.9, 0.99 } },
  lenet5   = { N = 61470, a = 60480, b = 990, count = lenet5_weights, epochs = 1,
               sweep = { 0.9 }, hashed = { 0.9, 0.99 }, narrow = { 0.9, 0.99 } },
}

for _, arch in ipairs({ "lenet300", "lenet5" }) do
  local n = NET[arch]
  local models = { arch }
  for _, s in ipairs(n.narrow) do
    local w = solve_width(n.a, n.b, (1 - s) * n.N, n.count)
    print(string.format("%s s=%g: narrowed width %.4f, %d weights (target %.0f)", arch, s, w, n.count(w), (1 - s) * n.N))
    table.insert(models, { arch, width = w })
  end
  local methods = {
    "dense",
    { "stable_rps", sparsity = S },
    { "roast", sparsity = S },
    { "hashednets", sparsity = n.hashed },
    { "global_magnitude", sparsity = S },
    { "synflow", sparsity = S },
  }
  table.insert(methods, { "gradual", sparsity = S })
  if arch == "lenet300" then
    table.insert(methods, { "lottery", rounds = 2, sparsity = S })
  end
  for _, m in ipairs({ "roast", "stable_rps" }) do
    for _, k in ipairs({ 0.1, 10 }) do
      table.insert(methods, { m, init_scale = k, label = string.format("%s_init_x%g", m, k), sparsity = n.sweep })
    end
  end
  experiment("sharing_" .. arch) {
    models   = models,
    datasets = { "fashion-mnist" },
    methods  = methods,
    sparsity = S,
    seeds    = { 1, 2, 3, 4, 5 },
    -- only dense cells on the narrowed models; seeds 4 and 5 only where
    -- accuracies are near collapse (1000x, and the bimodal roast and
    -- hashednets cells of LeNet-5 at 10x)
    filter   = function(cell)
      if cell.method ~= "dense" and cell.width ~= 1.0 then return false end
      if cell.seed <= 3 then return true end
      return cell.sparsity == 0.999 or
             (cell.arch == "lenet5" and cell.sparsity == 0.9 and
              (cell.label == "roast" or cell.label == "hashednets"))
    end,
    train    = { epochs = n.epochs, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
    finetune = { epochs = 1, lr = 0.01 },
    plots    = { "accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_flops", "layer_sparsity" },
  }
end
