
local rounds = function(cell) return cell.model == "lenet5" and 4 or 8 end

local function wanted(cell)
  local lenet5 = cell.model == "lenet5"
  if cell.seed > 3 and (lenet5 or cell.fraction ~= 0.01) then return false end
  if cell.data == "el2n" then return cell.fraction == 0.01 or (cell.fraction == 0.3 and not lenet5) end
  if cell.data == "grand" or cell.data == "forgetting" then return not lenet5 end
  if cell.data_label:match("^rs2%-repl") then return not lenet5 end
  return true
end

experiment "rs2" {
  models   = { "lenet300", "lenet5" },
  datasets = { "fashion-mnist" },
  methods  = { "dense" },
  data     = {
    "full",
    { "rs2", fraction = { 0.01, 0.05, 0.1, 0.3 } },
    { "rs2", fraction = { 0.01, 0.05, 0.1, 0.3 }, replace = true, label = "rs2-repl" },
    { "static_random", fraction = { 0.01, 0.05, 0.1, 0.3 } },
    { "el2n", fraction = { 0.01, 0.3 }, epochs = 1 },
    { "grand", fraction = 0.01, epochs = 1 },
    { "forgetting", fraction = 0.01, epochs = 2 },
  },
  seeds    = { 1, 2, 3, 4, 5 },
  filter   = wanted,
  train    = { epochs = rounds, batch = 128, opt = "sgd", lr = 0.1, momentum = 0.9, nesterov = true,
               wd = 5e-4, schedule = "cosine" },
  target   = 0.80,
  plots    = { "time_to_accuracy", "accuracy_vs_train_flops", "time_to_target", "accuracy_at_time" },
}
