-- lm.lua: the language-model papers' methods at CPU scale. A decoder-only
-- transformer (the default gpt: 2 blocks of width 128, 4 heads, context 64,
-- tied embedding, 0.44 M parameters) on Debian's fortunes corpus, byte-level,
-- measured in test perplexity (cells.csv test_ppl; lower is better).
--
--   ./prunebench run benchmarks/lm.lua -j 2 --out benchmarks/results
--
-- Pre-training (every experiment, the same recipe and seed, so the same
-- model): the general corpus (all topics), 300 steps of batch 32 (9 600
-- windows of 64 bytes, 0.3 of an epoch), AdamW lr 0.003, weight decay 0.1,
-- 50 warm-up steps, cosine decay. The domain: the topics science and
-- medicine (about 1 800 training windows), its own test documents.
--
-- lm_oneshot (Wanda; SparseGPT): on gpt and on a deeper, narrower gpt_4x64
--   (added by a later build), one-shot pruning of every linear layer
--   (qkv, proj, fc1, fc2 of both blocks) at s = 0.3, 0.5, 0.6, 0.7, 0.8
--   and at 2:4, no
--   retraining, calibration on 128 general training windows (8 192 tokens).
--   Claim: Wanda and SparseGPT stay far closer to the dense perplexity than
--   magnitude pruning, the gap growing with s.
-- lm_domain_general / lm_domain_domain (D-Pruner; ATP): the general model
--   pruned by Wanda and SparseGPT at s = 0.3 to 0.8 with 128 calibration
--   windows from the general corpus (the first) or from the domain (the
--   second), both tested on the domain's test split. Claim: domain
--   calibration keeps the domain's perplexity better. (A finetune stage of
--   0 epochs on the domain makes the domain's test split the one evaluated;
--   the calibration sample comes from the experiment's data set.)
-- lm_dare (DARE; DAREx-q): the general model kept as base, fine-tuned on the
--   domain for 2 epochs (AdamW lr 0.001, constant), then the delta of every
--   linear layer but the last (b1.fc2 keeps its whole delta, as darex_q
--   keeps the last prunable tensor's) dropped at p = 0.5, 0.7, 0.9, 0.95,
--   0.99 by
--   dare (rescale 1/(1-p)), darex_q (rescale 1/q, q by the loss on 128
--   domain training windows) and delta_magnitude (largest |delta| kept, no
--   rescale); finetuned = dare at p = 0. Claim: p = 0.9 keeps the domain
--   perplexity; p = 0.99 does not without DAREx-q's rescaling.
--
-- Five operating points each (the checklist's minimum): the first run had
-- s = 0.5, 0.7 and p = 0.9, 0.99; s = 0.3, 0.6, 0.8 and p = 0.5, 0.7, 0.95
-- were added by a later build (the build column says which).
--
-- 3 seeds (lm_dare 5 at p = 0.99). Charts: perplexity against sparsity,
-- compression and FLOPs (lm_dare against p only: the pruned delta is added
-- back to a dense base, so the model's compression is 1). Budget cuts: the papers prune LLaMA-scale models pre-trained on
-- billions of tokens; here 0.44 M parameters and 0.6 M tokens of
-- pre-training (the whole script must run in under an hour on 2 shared
-- cores, where evaluating the general test split of 4 156 windows costs as
-- much as a hundred training steps), so every absolute perplexity is far from theirs and only the
-- orderings are compared.

local DOMAIN = { "fortunes", topics = { "science", "medicine" } }
local S = { 0.3, 0.5, 0.6, 0.7, 0.8 }
local C = 128
local SEEDS = { 1, 2, 3 }
local GPT = { "gpt" }
-- lm_oneshot's second model (the checklist's third model/data pair beside
-- the domain's): deeper and narrower, 4 blocks of width 64 (4 heads, ff
-- 256, 0.22 M parameters), the same recipe
local GPT_DEEP = { "gpt", layers = 4, dim = 64, heads = 4, ff = 256, label = "gpt_4x64" }
local PRETRAIN = { epochs = 1, max_steps = 300, batch = 32, opt = "adamw", lr = 0.003, wd = 0.1,
                   warmup = 50, schedule = "cosine" }

local function oneshot(methods)
  local m = {
    { "magnitude" },
    { "wanda", calib = C },
    { "sparsegpt", calib = C },
  }
  if methods == "all" then
    m[#m + 1] = { "nm", n = 2, m = 4, score = "magnitude", label = "magnitude_2:4", sparsity = { 0.5 } }
    m[#m + 1] = { "wanda", calib = C, n = 2, m = 4, label = "wanda_2:4", sparsity = { 0.5 } }
    m[#m + 1] = { "sparsegpt", calib = C, n = 2, m = 4, label = "sparsegpt_2:4", sparsity = { 0.5 } }
    table.insert(m, 1, "dense")
  end
  return m
end

experiment "lm_oneshot" {
  models   = { GPT, GPT_DEEP },
  datasets = { "fortunes" },
  methods  = oneshot("all"),
  sparsity = S,
  seeds    = SEEDS,
  train    = PRETRAIN,
  finetune = { epochs = 0 },
  plots    = { "accuracy_vs_sparsity", "accuracy_vs_compression", "accuracy_vs_flops", "accuracy_vs_epochs" },
}

-- the general model, evaluated on the domain (0 epochs of domain training)
local TO_DOMAIN_GENERAL = { "train", { "finetune", dataset = DOMAIN, epochs = 0, label = "domain_eval" }, "prune" }
local TO_DOMAIN_DOMAIN = { { "train", dataset = "fortunes" }, { "finetune", epochs = 0, label = "domain_eval" }, "prune" }

local function with_stages(list, stages)
  local out = {}
  for i, m in ipairs(list) do
    local t = {}
    for k, v in pairs(m) do t[k] = v end
    t.stages = stages
    out[i] = t
  end
  return out
end

local domain_methods = { { "wanda", calib = C }, { "sparsegpt", calib = C } }

experiment "lm_domain_general" {
  models   = { GPT },
  datasets = { "fortunes" },
  methods  = with_stages(domain_methods, TO_DOMAIN_GENERAL),
  sparsity = S,
  seeds    = SEEDS,
  train    = PRETRAIN,
  finetune = { epochs = 0 },
  plots    = { "accuracy_vs_sparsity", "accuracy_vs_compression", "accuracy_vs_flops" },
}

experiment "lm_domain_domain" {
  models   = { GPT },
  datasets = { DOMAIN },
  methods  = with_stages(domain_methods, TO_DOMAIN_DOMAIN),
  sparsity = S,
  seeds    = SEEDS,
  train    = PRETRAIN,
  finetune = { epochs = 0 },
  plots    = { "accuracy_vs_sparsity", "accuracy_vs_compression", "accuracy_vs_flops" },
}

local DARE_STAGES = {
  { "train", dataset = "fortunes" },
  { "keep", "base" },
  { "finetune", epochs = 2, lr = 0.001, schedule = "constant", warmup = 0, label = "domain" },
  "prune",
}

experiment "lm_dare" {
  models   = { GPT },
  datasets = { DOMAIN },
  methods  = {
    { "dare", label = "finetuned", sparsity = { 0 }, stages = DARE_STAGES },
    { "dare", stages = DARE_STAGES },
    { "darex_q", criterion = "loss", stages = DARE_STAGES },
    { "delta_magnitude", stages = DARE_STAGES },
  },
  sparsity = { 0.5, 0.7, 0.9, 0.95, 0.99 },
  seeds    = { 1, 2, 3, 4, 5 },
  -- seeds 4 and 5 only at p = 0.99 (the checklist's 5 seeds at s >= 0.99),
  -- and the fine-tuned model they are paired with
  filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.99 or cell.label == "finetuned" end,
  train    = PRETRAIN,
  finetune = { epochs = 2, batch = 32, opt = "adamw", lr = 0.001, wd = 0.1 },
  plots    = { "accuracy_vs_sparsity" },
}
