-- dare.lua: delta-parameter pruning (METHODS.md "Delta-parameter pruning"):
-- DARE (Yu et al. 2024), DAREx-q (Deng et al. 2024) and magnitude pruning of
-- the delta as the control.
--
--   ./prunebench run benchmarks/dare.lua -j 1 --out benchmarks/results
--
-- LeNet-300-100, LeNet-5 and conv4 on Fashion-MNIST. Task A: classes 0-4 only (the 30 000
-- training examples of those classes), 3 epochs of SGD (lr 0.05, momentum
-- 0.9, batch 128); the model is kept as `base`. Task B: all 10 classes,
-- fine-tuned from the base for 2 epochs on the first 10 000 training
-- examples, once with a small rate (lr 0.005) and once with a large one
-- (lr 0.1), so the deltas are small or large. Then the delta w_ft - w_base of
-- every weight tensor but the classifier head's (LeNet-300-100: fc1, fc2;
-- LeNet-5: conv1, conv2, fc1, fc2) is pruned at p in {0.5, 0.7, 0.9, 0.99,
-- 0.999} (the head keeps its whole delta, as in DARE; biases keep their
-- fine-tuned values)
-- and the result is tested on the 10-class test split, with no further
-- training:
--   dare             drop with probability p, rescale the rest by 1/(1 - p)
--   darex_q          the same drop, rescale by 1/q, q chosen by accuracy on
--                    128 training examples (the run's calibration sample)
--   delta_magnitude  keep the (1 - p) largest |delta| per layer, no rescale
--   finetuned        dare at p = 0: the fine-tuned model itself
-- Claims (Yu et al.; Deng et al.): DARE holds to about p = 0.9 and breaks at
-- large p or with large deltas; DAREx-q recovers there; magnitude pruning of
-- the delta beats random dropping when the deltas are large.
--
-- Budget cuts: the papers fine-tune language models on full data sets; here a
-- 784-300-100-10 MLP, LeNet-5 and conv4 at width 0.25 (the third pair; conv1,
-- conv2, conv3, conv4, fc1 and fc2 deltas pruned), 3 + 2 epochs, a
-- 10 000-example fine-tuning subset, 5 seeds (accuracies near collapse at
-- p = 0.999). About 10 minutes at -j 1 for the LeNets, as much again for
-- conv4 (its task-A training is the cost, not the pruning). The cells' compression and theoretical speedup are those of the
-- dense model base + pruned delta (the delta's dropped fraction is the
-- metric delta_sparsity), so no compression or speedup chart is drawn.

local TASK_A = { 0, 1, 2, 3, 4 }
local RATES = { { "small", 0.005 }, { "large", 0.1 } }

local methods = {}
for _, r in ipairs(RATES) do
  local name, lr = r[1], r[2]
  local stages = {
    { "train", classes = TASK_A, label = "task_a" },
    { "keep", "base" },
    { "finetune", subset = 10000, epochs = 2, lr = lr, label = "task_b" },
    "prune",
  }
  methods[#methods + 1] = { "dare", label = "finetuned_" .. name, sparsity = { 0 }, stages = stages }
  methods[#methods + 1] = { "dare", label = "dare_" .. name, stages = stages }
  methods[#methods + 1] = { "darex_q", label = "darex_q_" .. name, stages = stages }
  methods[#methods + 1] = { "delta_magnitude", label = "delta_magnitude_" .. name, stages = stages }
end

experiment "dare" {
  models   = { "lenet300", "lenet5", { "conv4", width = 0.25 } },
  datasets = { "fashion-mnist" },
  methods  = methods,
  sparsity = { 0.5, 0.7, 0.9, 0.99, 0.999 },
  seeds    = { 1, 2, 3, 4, 5 },
  train    = { epochs = 3, batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
  finetune = { epochs = 2, lr = 0.005 },
  plots    = { "accuracy_vs_sparsity", "accuracy_vs_epochs" },
}
