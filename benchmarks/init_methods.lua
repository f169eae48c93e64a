-- init_methods.lua: pruning at initialization at extreme sparsity (SNIP, GraSP,
-- SynFlow; METHODS.md "Pruning at initialization"), with random as control.
--
--   ./prunebench run benchmarks/init_methods.lua -j 2 --out benchmarks/results
--
-- LeNet-300-100, LeNet-5 and conv4 (cut, see init_methods_conv4 below) on
-- Fashion-MNIST, pruned at initialization to
-- s in {0.9, 0.98, 0.99, 0.995, 0.998, 0.999}, then the sparse network is
-- trained from scratch. SynFlow's claim (Tanaka et al. 2020): it avoids layer
-- collapse (a layer pruned away entirely, or so far that it disconnects the
-- network) at extreme sparsity, where SNIP and GraSP collapse. The
-- layer_sparsity chart and layers.csv show the weights each method leaves per
-- layer; a layer with 0 nonzero weights is a collapse (accuracy 0.10).
--
-- random: uniform random pruning over all prunable weights (scope = global,
-- so every layer keeps about 1-s of its weights) at initialization. The
-- `random` plugin prunes a "trained" model, so its dense model is trained for
-- 0 epochs (= the initialization) and its "fine-tuning" is the full training
-- recipe: the same as training a randomly pruned network from scratch.
--
-- dense: the unpruned network trained with the same recipe, the baseline of
-- Blalock et al.'s checklist (it was added after the other cells had run: its
-- cells come from a later build, recorded in metadata.txt and cells.csv).
--
-- GraSP's Hessian-vector products are exact (forward-over-reverse).
-- Budget cuts (the paper scripts must fit two shared cores): 4 epochs
-- (LeNet-300-100) / 2 epochs (LeNet-5) of SGD (lr 0.05, momentum 0.9, batch
-- 128). Seeds: 3, and 5 at s >= 0.99 where accuracies near collapse spread. The recipes equal global_mp.lua's, so the SNIP and
-- SynFlow cells at the sparsities both scripts share have the same
-- configuration hash as there (they are the same computation): their per-cell
-- files were copied from the global_mp results' cells/ (experiment
-- column rewritten) instead of training them a second time.

local function epochs(lenet300, lenet5)
  return function(cell) return cell.arch == "lenet5" and lenet5 or lenet300 end
end

-- One experiment per model (results in benchmarks/results/init_methods_lenet300/,
-- .../init_methods_lenet5/ and .../init_methods_conv4/; `-e init_methods_conv4`
-- runs only the conv4 one), so each chart compares the methods on one network.

for _, arch in ipairs({ "lenet300", "lenet5" }) do
  experiment("init_methods_" .. arch) {
    models   = { arch },
    datasets = { "fashion-mnist" },
    methods  = {
      "dense",
      "snip",
      "grasp",
      "synflow",
      { "random", scope = "global", train = { epochs = 0 },
        finetune = { epochs = epochs(4, 2), lr = 0.05 } },
    },
    sparsity = { 0.9, 0.98, 0.99, 0.995, 0.998, 0.999 },
    seeds    = { 1, 2, 3, 4, 5 },
    filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.99 end,
    train    = { epochs = epochs(4, 2), batch = 128, opt = "sgd", lr = 0.05, momentum = 0.9 },
    finetune = { epochs = epochs(2, 1), lr = 0.01 },  -- unused by the init methods; as in global_mp.lua
    plots    = { "accuracy_vs_compression", "accuracy_vs_params", "layer_sparsity" },
  }
end

-- conv4 on Fashion-MNIST, the third model/data pair (issue 12). conv4
-- trained on all 60 000 examples and evaluated on the 10 000 test images
-- after every epoch would not fit two shared cores, so this experiment is cut
-- by data, epochs and width, never by points or seeds:
--   * conv4 at width 0.25 (121 594 weights: the same four 3x3 convolutions
--     and three dense layers, 16-16-32-32 channels, 64-64-10 units). Width
--     0.5 (global_mp_conv4's) was tried first: its cells took 85 s each on
--     the shared cores, 104 cells about 75 minutes, three times the dry
--     run's estimate; a quarter of the width costs about a quarter;
--   * trained from scratch on the first 5 000 training examples only (the
--     test set is the full 10 000), batch 32, 3 epochs (global_mp_conv4's
--     dense epochs).
-- Optimizer: Adam, lr 0.001 (its usual default), not the LeNets' SGD 0.05
-- with momentum 0.9. With that SGD recipe 33 of the first 42 cells (seeds 1
-- and 2) stayed at chance through all 3 epochs, test loss 2.305-2.309 from
-- the first epoch on: every cell at s >= 0.995, every random cell, GraSP's at
-- 0.9, and all but one at 0.99; a SynFlow cell at 0.98 stayed there with SGD
-- at lr 0.01 too and reached 0.717 with Adam. The dense conv4 trains with SGD (0.70
-- after 2 epochs at width 0.25): the sparse networks start on a plateau (the
-- harness's initialization is PyTorch's default, U(+-1/sqrt(fan_in)), and
-- seven thinned ReLU layers shrink the signal) that 471 SGD steps do not
-- leave, so the SGD cells measured the budget, not the methods. Adam was
-- the only other recipe tried, and every method and random get the same one.
-- The masks do not depend on the optimizer (they are chosen at
-- initialization, before any step), so layers.csv shows the same collapse
-- either way.
-- Same methods, sparsities, seeds (3; 5 at s >= 0.99) as the LeNets. Not
-- trained to convergence: compare methods within this experiment, not its
-- accuracies with the paper's.
experiment("init_methods_conv4") {
  models   = { { "conv4", width = 0.25 } },
  datasets = { { "fashion-mnist", subset = 5000 } },
  methods  = {
    "dense",
    "snip",
    "grasp",
    "synflow",
    { "random", scope = "global", train = { epochs = 0 },
      finetune = { epochs = 3, lr = 0.001 } },
  },
  sparsity = { 0.9, 0.98, 0.99, 0.995, 0.998, 0.999 },
  seeds    = { 1, 2, 3, 4, 5 },
  filter   = function(cell) return cell.seed <= 3 or cell.sparsity >= 0.99 end,
  train    = { epochs = 3, batch = 32, opt = "adam", lr = 0.001 },
  finetune = { epochs = 1 },  -- unused by the init methods
  plots    = { "accuracy_vs_compression", "accuracy_vs_params", "layer_sparsity" },
}
