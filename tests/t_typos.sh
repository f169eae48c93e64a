#!/bin/sh
# Keys are strict: an unknown key of a model entry (per model kind), a data
# set entry (per data set), an experiment, recipe, stage, budget or layer
# option is refused at the line it is written on, with the nearest valid key
# ("did you mean") and the list of valid ones; so is a misspelled name.
PB=${top_builddir:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
export OPENBLAS_NUM_THREADS=1
echo 1..21

# script NAME LINES...: experiment "e" { datasets on line 2, the lines from 3 }
script() {
    name=$1; shift
    { echo 'experiment "e" {'; echo '  datasets = { "synthetic" },'
      for l in "$@"; do echo "  $l"; done; echo '}'; } > "$tmp/$name.lua"
}
# refused NAME PATTERN...: run exits 2, every pattern is on stderr (fixed
# strings), and nothing trained
refused() {
    f=$1; shift
    rm -rf "$tmp/r"
    "$PB" run "$tmp/$f.lua" --out "$tmp/r" --no-plot -q 2>"$tmp/e" >"$tmp/o"
    st=$?
    cat "$tmp/e"
    test $st -eq 2 || return 1
    test ! -e "$tmp/r/e" || return 1
    for p in "$@"; do grep -qF -- "$p" "$tmp/e" || return 1; done
}

# the typos of the issue
script hiden 'models = {' '  "lenet300",' '  { "mlp", hiden = { 10 } },' '},'
check "mlp hiden = {10} is refused at its line with did you mean 'hidden'" refused hiden \
    "hiden.lua:5: experiment 'e': models[2] (mlp): unknown key 'hiden': did you mean 'hidden'?" \
    "(valid: width, hidden, label)"
printf 'experiment "e" {\n  models = { "lenet300" },\n  datasets = { { "fashion-mnist", subst = 1000 } },\n}\n' > "$tmp/subst.lua"
check "fashion-mnist subst = 1000 suggests subset (it trained on everything)" refused subst \
    "subst.lua:3: experiment 'e': datasets[1] (fashion-mnist): unknown key 'subst': did you mean 'subset'?" \
    "(valid: subset, val)"
script l5 'models = { { "lenet5", hidden = { 64 } } },'
check "lenet5 takes no hidden list" refused l5 "l5.lua:3: experiment 'e': models[1] (lenet5): unknown key 'hidden' (valid: width, label)"
script l300 'models = { { "lenet300", hidden = { 64 } } },'
check "lenet300 takes no hidden list either (its widths are fixed)" refused l300 "models[1] (lenet300): unknown key 'hidden'"
script meth 'methods = {' '  "dense",' '  "magnitud",' '},'
check "a misspelled method is reported at its line with did you mean" refused meth \
    "meth.lua:5: experiment 'e': methods[2]: unknown method 'magnitud': did you mean 'magnitude'?" "global_magnitude"
script gmeth 'methods = { { "globl_magnitude", label = "g" } },'
check "a method two edits away is still suggested" refused gmeth "did you mean 'global_magnitude'?"

# the other strict tables get the suggestion too
script expkey 'sparsty = { 0.5 },'
check "an experiment key suggests its neighbour" refused expkey \
    "expkey.lua:3: experiment 'e': unknown key 'sparsty': did you mean 'sparsity'?" "(valid: budget, data, datasets,"
script rec 'train = { epochs = 2,' '  bacth = 32 },'
check "a recipe key suggests its neighbour at its line" refused rec \
    "rec.lua:4: experiment 'e': train: unknown key 'bacth': did you mean 'batch'?" "early_stop, epochs"
script mrec 'methods = { { "magnitude", finetune = { epohcs = 2 } } },'
check "a method's recipe key is checked with the suggestion" refused mrec "methods[1].finetune: unknown key 'epohcs': did you mean 'epochs'?"
script gpt 'models = { { "gpt", layer = 2 } },'
check "a gpt key suggests layers" refused gpt "models[1] (gpt): unknown key 'layer': did you mean 'layers'?" "(valid: layers, dim, heads, ctx, ff, label)"
script fort 'datasets = { { "fortunes", topic = { "science" } } },'
check "the text data set's keys are its own: topic suggests topics" refused fort \
    "datasets[1] (fortunes): unknown key 'topic': did you mean 'topics'?" "(valid: subset, val, topics, ctx)"
script imgctx 'models = { "lenet300" },' 'datasets = { { "synthetic", ctx = 32 } },'
check "an image data set refuses a text key" refused imgctx "imgctx.lua:4:" "datasets[1] (synthetic): unknown key 'ctx' (valid: subset, val)"
script stage 'methods = { "magnitude" },' 'stages = { "train", "prune", { "finetune", permut = 3 } },'
check "a stage key suggests permute" refused stage "stage.lua:4:" "unknown key 'permut': did you mean 'permute'?"
script budget 'data = { "full" },' 'budget = { step = 100 },'
check "a budget key suggests steps" refused budget "budget.lua:4:" "budget: unknown key 'step': did you mean 'steps'?"
script conv 'models = { model{ conv(4, 3, { strid = 2 }), relu(), flatten(), dense(10) } },'
check "a layer option suggests its neighbour at the layer's line" refused conv \
    "conv.lua:3: conv: unknown option 'strid': did you mean 'stride'? (valid: stride, pad, bias)"
script model 'models = { "lenet30" },'
check "a misspelled model suggests lenet300" refused model "model.lua:3:" "unknown model 'lenet30': did you mean 'lenet300'?"
script ds 'models = { "lenet300" },' 'datasets = { "fashion_mnist" },'
check "a misspelled data set suggests fashion-mnist" refused ds "ds.lua:4:" "unknown dataset 'fashion_mnist': did you mean 'fashion-mnist'?"
script dens 'methods = { "dens" },'
check "a misspelled dense (not a plugin) suggests dense" refused dens "dens.lua:3:" "unknown method 'dens': did you mean 'dense'?"
script sds 'methods = { "magnitude" },' 'stages = { "train", "prune", { "finetune", dataset = { "fortunes", topcs = { "science" } } } },'
check "a stage's data-set table has strict keys too" refused sds "sds.lua:4:" "stages[3].dataset (fortunes): unknown key 'topcs': did you mean 'topics'?"
script far 'zzzz = { epochs = 1 },'
check "a key near nothing valid gets no guess, only the list" sh -c \
    "! '$PB' run '$tmp/far.lua' --out '$tmp/r' 2>'$tmp/e2'; grep -qF \"far.lua:3: experiment 'e': unknown key 'zzzz' (valid: budget,\" '$tmp/e2' && ! grep -q 'did you mean' '$tmp/e2'"
check "the command line suggests too: --model lenet3000" sh -c \
    "'$PB' train --model lenet3000 -q 2>'$tmp/e2'; test \$? -eq 2 && grep -qF \"unknown model 'lenet3000': did you mean 'lenet300'?\" '$tmp/e2'"
exit $failed
