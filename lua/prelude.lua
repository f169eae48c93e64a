-- prelude.lua: the language of experiment scripts.
--
-- Loaded by `prunebench run` with one argument, the table of C bindings (pb);
-- returns the functions a script sees (its environment) and a function that
-- hands the declared experiments to C. Every cell is expanded, resolved and
-- validated when its `experiment "name" { ... }` statement runs, so errors name
-- that statement's line and nothing trains before the whole script is valid.
local pb = ...

local api = {}
local declared = {}

-- "num": a number checked against the range of the same name (pb_check.c),
-- the range the command line's option of that name uses
local RECIPE_KEYS = {
  epochs = "num", batch = "num", opt = "optimizer", lr = "num", momentum = "num",
  wd = "num", nesterov = "bool", schedule = "schedule", step_epochs = "num",
  gamma = "num", warmup = "num", max_steps = "num", early_stop = "bool",
}
-- the cell's time limit in wall seconds (0: none), a key of `train` only; not
-- part of the cell's hash, so changing it reruns nothing
RECIPE_KEYS.timeout = "num"
local function timeout_in_train_only(fail, where, t)
  if type(t) == "table" and t.timeout ~= nil then
    fail("%s.timeout: the time limit is the whole cell's: give it in train (or a method's train)", where)
  end
end
local EXPERIMENT_KEYS = {
  models = true, datasets = true, methods = true, sparsity = true, seeds = true,
  train = true, finetune = true, filter = true, exclude = true, target = true,
  plots = true, description = true, stages = true, data = true, budget = true,
}
local METHOD_RESERVED = { label = true, train = true, finetune = true, sparsity = true, stages = true }
local STAGE_KINDS = { train = true, prune = true, finetune = true, calibrate = true, keep = true, load = true }
local STAGE_KEYS = {
  train = { label = true, dataset = true, subset = true, permute = true, classes = true, labels = true },
  finetune = { label = true, dataset = true, subset = true, permute = true, classes = true, labels = true },
  prune = {}, calibrate = { n = true, split = true }, keep = { name = true }, load = { name = true, file = true },
}
local PLOTS = {
  "accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_flops",
  "accuracy_vs_time", "accuracy_vs_epochs", "layer_sparsity",
  "time_to_accuracy", "accuracy_vs_train_flops", "time_to_target", "accuracy_at_time",
  "accuracy_vs_speedup", "measured_speedup",
}

-- charts drawn only when a script lists them
local EXTRA_PLOTS = { "accuracy_vs_sparsity" }

local function list_words(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = tostring(v) end
  return table.concat(s, ", ")
end

local function contains(t, v)
  for _, x in ipairs(t) do if x == v then return true end end
  return false
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

-- ", did you mean 'hidden'?" when k is a near miss of one of the valid names
local function did_you_mean(k, valid)
  if type(k) ~= "string" then return "" end
  local near = pb.suggest(k, valid)
  return near and string.format(": did you mean '%s'?", near) or ""
end

-- v checked against the range called `range` (pb_check.c); returns the value
-- (an integer for an integer range) or nil and "VALUE is not an integer in [lo, hi]"
local function check_number(range, v)
  return pb.check_number(range, v)
end

-- For a layer function: v within `range`, else an error at the caller's line.
local function arg_number(range, v, what)
  local r, msg = check_number(range, v)
  if r == nil then error(string.format("%s: %s", what, msg), 3) end
  return r
end

-- A layer's option table: only the keys it takes.
local function check_opts(opts, what, valid)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table such as { " .. valid[1] .. " = ... }", 3) end
  for k in pairs(opts) do
    if not contains(valid, k) then
      error(string.format("%s: unknown option '%s'%s (valid: %s)", what, tostring(k), did_you_mean(k, valid),
                          list_words(valid)), 3)
    end
  end
  return opts
end

-- The line of a key in a script: the statement `experiment "x" { ... }` starts
-- at line0; its source is searched from there for each of keys in turn
-- ("train", then "epochs = "), a key written "\"name\"" being a quoted string.
-- nil when the source is not known (pb.source: the text of the script C
-- loaded) or a key is not written literally.
local function source_text(src)
  if src:sub(1, 1) == "@" then return pb.source(src) end
  if src:sub(1, 1) ~= "=" then return src end -- a chunk loaded from a string
  return nil
end

local function key_line(src, line0, keys)
  local text = src and source_text(src)
  if not text then return nil end
  local pos = 1
  for _ = 2, line0 do
    pos = text:find("\n", pos, true)
    if not pos then return nil end
    pos = pos + 1
  end
  local found
  for _, k in ipairs(keys) do
    local k2 = tostring(k)
    local at
    if k2:sub(1, 1) == '"' then
      local word = k2:sub(2, -2)
      at = text:find('"' .. word .. '"', pos, true) or text:find("'" .. word .. "'", pos, true)
    elseif k2:match("^[%a_][%w_]*$") then
      at = text:find("%f[%w_]" .. k2 .. "%s*=[^=]", pos)
    end
    if at then pos, found = at, true end
  end
  if not found then return nil end
  local _, nl = text:sub(1, pos):gsub("\n", "")
  return nl + 1
end

local function fmtnum(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  for _, f in ipairs({ "%.15g", "%.16g" }) do
    local s = string.format(f, v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end

---------------------------------------------------------------------------
-- layers and models
---------------------------------------------------------------------------
local layer_mt = { __name = "pb.layer" }
local model_mt = { __name = "pb.modelspec" }

local function layer(op, fields)
  fields.op = op
  return setmetatable(fields, layer_mt)
end

function api.dense(out, opts)
  opts = check_opts(opts, "dense", { "bias" })
  return layer("dense", { out = arg_number("dense out", out, "dense(out)"), bias = opts.bias ~= false })
end

function api.conv(oc, k, opts)
  opts = check_opts(opts, "conv", { "stride", "pad", "bias" })
  oc = arg_number("conv channels", oc, "conv(channels)")
  k = arg_number("conv kernel", k, "conv(kernel)")
  local stride = arg_number("conv stride", opts.stride or 1, "conv stride")
  local pad = opts.pad
  if pad == nil then pad = k // 2 end
  pad = arg_number("conv pad", pad, "conv pad")
  return layer("conv", { oc = oc, k = k, stride = stride, pad = pad, bias = opts.bias ~= false })
end

function api.maxpool(k, stride)
  k = arg_number("pool window", k, "maxpool(k)")
  return layer("maxpool", { k = k, stride = arg_number("pool stride", stride or k, "maxpool stride") })
end

function api.avgpool(k, stride)
  k = arg_number("pool window", k, "avgpool(k)")
  return layer("avgpool", { k = k, stride = arg_number("pool stride", stride or k, "avgpool stride") })
end

function api.relu() return layer("relu", {}) end
function api.gap() return layer("gap", {}) end
function api.flatten() return layer("flatten", {}) end
function api.bn() return layer("bn", {}) end

function api.dropout(p)
  return layer("dropout", { p = arg_number("dropout", p, "dropout(p)") })
end

-- residual{ ... }: the block's output is added to its input (shapes must match).
function api.residual(body)
  if type(body) ~= "table" then error("residual{...} takes a list of layers", 2) end
  for i, l in ipairs(body) do
    if getmetatable(l) ~= layer_mt then error("residual: element " .. i .. " is not a layer", 2) end
  end
  return layer("residual", { body = body })
end

local function canon_layers(layers)
  local parts = {}
  for _, l in ipairs(layers) do
    local s
    if l.op == "dense" then s = string.format("dense(%d,%d)", l.out, l.bias and 1 or 0)
    elseif l.op == "conv" then
      s = string.format("conv(%d,%d,%d,%d,%d)", l.oc, l.k, l.stride, l.pad, l.bias and 1 or 0)
    elseif l.op == "maxpool" or l.op == "avgpool" then s = string.format("%s(%d,%d)", l.op, l.k, l.stride)
    elseif l.op == "dropout" then s = "dropout(" .. fmtnum(l.p) .. ")"
    elseif l.op == "residual" then s = "residual[" .. canon_layers(l.body) .. "]"
    else s = l.op end
    parts[#parts + 1] = s
  end
  return table.concat(parts, ";")
end

-- model{ name = "mlp_small", dense(300), relu(), dense(10) }
function api.model(t)
  if type(t) ~= "table" then error("model{...} takes a table of layers", 2) end
  local layers = {}
  for i, l in ipairs(t) do
    if getmetatable(l) ~= layer_mt then
      error(string.format("model: element %d is not a layer (use dense(), conv(), relu() ...)", i), 2)
    end
    layers[i] = l
  end
  if #layers == 0 then error("model{...} has no layers", 2) end
  local name = t.name or "custom"
  if type(name) ~= "string" or not name:match("^[%w_%-%.]+$") then
    error("model name must be a word of letters, digits, _ - .", 2)
  end
  return setmetatable({ name = name, layers = layers, canon = canon_layers(layers) }, model_mt)
end

local function add_layers(m, layers)
  for _, l in ipairs(layers) do
    if l.op == "dense" then m:dense(l.out, l.bias)
    elseif l.op == "conv" then m:conv(l.oc, l.k, l.stride, l.pad, l.bias)
    elseif l.op == "maxpool" or l.op == "avgpool" then m:pool(l.op, l.k, l.stride)
    elseif l.op == "dropout" then m:dropout(l.p)
    elseif l.op == "bn" then m:bn()
    elseif l.op == "residual" then
      local before = m:last()
      add_layers(m, l.body)
      m:add(before, m:last())
    else m:simple(l.op) end
  end
end

-- Builds the C model (a pb.model userdata) for a data set's input shape.
local function build_spec(spec, ds)
  local m = pb.model_new(spec.name, ds.c, ds.h, ds.w, ds.ncls)
  add_layers(m, spec.layers)
  m:finalize()
  return m
end

---------------------------------------------------------------------------
-- experiments
---------------------------------------------------------------------------
local function resolve(v, cell)
  if type(v) == "function" then return v(cell) end
  return v
end

-- keys: where the value is written (key_line), for the error's line
local function check_value(fail, where, key, kind, v, keys)
  keys = keys or { key }
  if kind == "num" then
    local r, msg = check_number(key, v)
    if r == nil then fail(keys, "%s.%s: %s", where, key, msg) end
    if math.type(r) == "integer" then return r end
    return r + 0.0
  elseif kind == "bool" then
    if type(v) ~= "boolean" then fail("%s.%s: %s is not true/false", where, key, tostring(v)) end
    return v
  elseif kind == "optimizer" then
    if not contains(pb.optimizers, v) then
      fail("%s.%s: unknown optimizer '%s' (valid: %s)", where, key, tostring(v), list_words(pb.optimizers))
    end
    return v
  elseif kind == "schedule" then
    if not contains(pb.schedules, v) then
      fail("%s.%s: unknown schedule '%s' (valid: %s)", where, key, tostring(v), list_words(pb.schedules))
    end
    return v
  end
end

-- A recipe table as written: known keys, and every value given directly (not
-- as a function of the cell) checked here, so the error names its line.
-- path: the keys leading to the table in the source ({ "train" }).
local function check_recipe_keys(fail, where, t, path)
  if t == nil then return end
  if type(t) ~= "table" then fail("%s must be a table", where) end
  local valid = sorted_keys(RECIPE_KEYS)
  for _, k in ipairs(sorted_keys(t)) do
    if not RECIPE_KEYS[k] then
      fail({ k }, "%s: unknown key '%s'%s (valid: %s)", where, tostring(k), did_you_mean(k, valid), list_words(valid))
    end
    if type(t[k]) ~= "function" then
      local keys = { table.unpack(path or {}) }
      keys[#keys + 1] = k
      check_value(fail, where, k, RECIPE_KEYS[k], t[k], keys)
    end
  end
end

-- Merges recipe layers (later wins), resolving functions with the cell.
local function recipe(fail, where, cell, ...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t then
      for k, v in pairs(t) do
        local r = resolve(v, cell)
        if r ~= nil then out[k] = check_value(fail, where, k, RECIPE_KEYS[k], r) end
      end
    end
  end
  return out
end

local function as_list(fail, what, v, default)
  if v == nil then return default end
  if type(v) ~= "table" or getmetatable(v) == model_mt then return { v } end
  if #v == 0 then fail("%s: the list is empty", what) end
  return v
end

-- { "gpt", layers = 2, dim = 128, heads = 4, ctx = 64, ff = 512 }: the
-- options travel in the architecture's name, "gpt:layers=2,dim=128,...",
-- which the engine parses (and refuses with the reason) when the model is built.
local GPT_KEYS = pb.model_keys.gpt
local function norm_gpt(fail, i, m)
  local opts, given = {}, {}
  for k, v in pairs(m) do
    if k ~= 1 and k ~= "label" then
      local r, msg = check_number("gpt option", v)
      if r == nil then fail({ k }, "models[%d] (gpt): %s: %s", i, tostring(k), msg) end
      given[k] = r
    end
  end
  for _, k in ipairs(GPT_KEYS) do
    if given[k] ~= nil then opts[#opts + 1] = k .. "=" .. given[k] end
  end
  local arch = #opts > 0 and ("gpt:" .. table.concat(opts, ",")) or "gpt"
  return { arch = arch, name = m.label or "gpt", width = 1.0, hidden = {} }
end

local function norm_model(fail, i, m)
  if type(m) == "string" then m = { m } end
  if getmetatable(m) == model_mt then
    return { spec = m, name = m.name, width = 1.0, canon = "lua:" .. m.name .. "[" .. m.canon .. "]" }
  end
  if type(m) ~= "table" or type(m[1]) ~= "string" then
    fail("models[%d]: expected a name, {name, width=...} or model{...}", i)
  end
  local name = m[1]
  if not contains(pb.models, name) then
    fail({ '"' .. name .. '"' }, "models[%d]: unknown model '%s'%s (valid: %s)", i, name,
         did_you_mean(name, pb.models), list_words(pb.models))
  end
  -- the keys this kind of model takes (pb_model.c), and a display label
  local valid = { table.unpack(pb.model_keys[name]) }
  valid[#valid + 1] = "label"
  for k in pairs(m) do
    if k ~= 1 and not contains(valid, k) then
      fail({ k }, "models[%d] (%s): unknown key '%s'%s (valid: %s)", i, name, tostring(k), did_you_mean(k, valid),
           list_words(valid))
    end
  end
  if m.label ~= nil and type(m.label) ~= "string" then fail({ "label" }, "models[%d]: label must be a string", i) end
  if name == "gpt" then return norm_gpt(fail, i, m) end
  local width, msg = check_number("width", m.width or 1.0)
  if width == nil then fail({ "width" }, "models[%d] (%s): width: %s", i, name, msg) end
  local hidden = m.hidden or (name == "mlp" and { 300, 100 }) or {}
  if type(hidden) ~= "table" or (name == "mlp" and #hidden == 0) then
    fail({ "hidden" }, "models[%d] (%s): hidden must be a non-empty list of widths such as { 300, 100 }", i, name)
  end
  for j, h in ipairs(hidden) do
    local r, hmsg = check_number("hidden", h)
    if r == nil then fail({ "hidden" }, "models[%d] (%s): hidden[%d]: %s", i, name, j, hmsg) end
  end
  local display = m.label or name
  if not m.label and width ~= 1.0 then display = string.format("%s@w%g", name, width) end
  return { arch = name, name = display, width = width + 0.0, hidden = hidden }
end

-- { "fortunes", topics = { "science", "medicine" }, ctx = 32 } as the name the
-- engine reads, "fortunes:science,medicine,ctx=32" (pb_text.h); other data
-- sets take neither key.
local function text_spec(fail, where, d)
  local base = d[1]
  if d.topics == nil and d.ctx == nil then return base end
  if base ~= "fortunes" then fail("%s: topics and ctx belong to the text data set fortunes, not %s", where, base) end
  local parts = {}
  if d.topics ~= nil then
    if type(d.topics) ~= "table" or #d.topics == 0 then fail("%s: topics must be a non-empty list of names", where) end
    for j, t in ipairs(d.topics) do
      if type(t) ~= "string" or not t:match("^[%w_%-]+$") then fail("%s: topics[%d] is not a topic name", where, j) end
      parts[#parts + 1] = t
    end
  end
  if d.ctx ~= nil then
    local ctx, msg = check_number("ctx", d.ctx)
    if ctx == nil then fail({ "ctx" }, "%s: ctx: %s", where, msg) end
    parts[#parts + 1] = "ctx=" .. ctx
  end
  return base .. ":" .. table.concat(parts, ",")
end

local function norm_dataset(fail, i, d)
  if type(d) == "string" then d = { d } end
  if type(d) ~= "table" or type(d[1]) ~= "string" then fail("datasets[%d]: expected a name", i) end
  if not contains(pb.datasets, d[1]) then
    fail({ '"' .. d[1] .. '"' }, "datasets[%d]: unknown dataset '%s'%s (valid: %s)", i, d[1],
         did_you_mean(d[1], pb.datasets), list_words(pb.datasets))
  end
  -- the keys this data set takes (pb_data.c)
  local valid = pb.dataset_keys[d[1]]
  for k in pairs(d) do
    if k ~= 1 and not contains(valid, k) then
      fail({ k }, "datasets[%d] (%s): unknown key '%s'%s (valid: %s)", i, d[1], tostring(k), did_you_mean(k, valid),
           list_words(valid))
    end
  end
  local spec = text_spec(fail, string.format("datasets[%d]", i), d)
  local subset, msg = check_number("subset", d.subset or 0)
  if subset == nil then fail({ "subset" }, "datasets[%d]: subset: %s", i, msg) end
  local val, vmsg = check_number("val", d.val or 0)
  if val == nil then fail({ "val" }, "datasets[%d]: val: %s", i, vmsg) end
  return { name = spec, subset = subset, val = val }
end

-- stages = { "train", { "keep", "base" }, { "finetune", permute = 7, epochs = 2 }, "prune" }
-- A stage is a kind, or a table whose first element is the kind; train and
-- finetune stages take recipe keys (over the experiment's) and label, dataset,
-- subset, permute (a derived task: labels permuted by that seed); calibrate
-- takes n and split ("train" or "val"); keep a name; load a name or file.
local function norm_stages(fail, what, list)
  if list == nil then return nil end
  if type(list) ~= "table" or #list == 0 then fail("%s: a non-empty list of stages", what) end
  local out = {}
  for i, st in ipairs(list) do
    if type(st) == "string" then st = { st } end
    if type(st) ~= "table" or type(st[1]) ~= "string" or not STAGE_KINDS[st[1]] then
      fail("%s[%d]: unknown stage %s (valid: calibrate, finetune, keep, load, prune, train)", what, i,
           tostring(type(st) == "table" and st[1] or st))
    end
    local kind = st[1]
    local n = { kind = kind, recipe_keys = {} }
    for k, v in pairs(st) do
      if k ~= 1 then
        if k == 2 and (kind == "keep" or kind == "load") then n.name = v
        elseif STAGE_KEYS[kind][k] then n[k] = v
        elseif (kind == "train" or kind == "finetune") and RECIPE_KEYS[k] then
          if k == "timeout" then timeout_in_train_only(fail, string.format("%s[%d] (%s)", what, i, kind), st) end
          n.recipe_keys[k] = v
        else
          local valid = sorted_keys(STAGE_KEYS[kind])
          if kind == "train" or kind == "finetune" then
            for _, rk in ipairs(sorted_keys(RECIPE_KEYS)) do valid[#valid + 1] = rk end
          end
          fail({ k }, "%s[%d] (%s): unknown key '%s'%s (valid: %s)", what, i, kind, tostring(k),
               did_you_mean(k, valid), list_words(valid))
        end
      end
    end
    if (kind == "keep" or (kind == "load" and n.file == nil)) and
       (type(n.name) ~= "string" or not n.name:match("^[%w_]+$") or #n.name > 31) then
      fail("%s[%d] (%s): needs a name of letters, digits and _ (at most 31), e.g. { \"%s\", \"base\" }", what, i, kind, kind)
    end
    if n.file ~= nil then
      if type(n.file) ~= "string" then fail("%s[%d]: file must be a path", what, i) end
      n.path, n.file = n.file, nil
    end
    if n.label ~= nil and (type(n.label) ~= "string" or not n.label:match("^[%w_]+$")) then
      fail("%s[%d]: label must be a word of letters, digits and _", what, i)
    end
    -- a stage's data set: a name or { name, topics = ..., ctx = ... }
    if type(n.dataset) == "table" then
      local d = n.dataset
      if type(d[1]) ~= "string" or not contains(pb.datasets, d[1]) then
        fail("%s[%d]: unknown dataset '%s'%s (valid: %s)", what, i, tostring(d[1]), did_you_mean(d[1], pb.datasets),
             list_words(pb.datasets))
      end
      -- the data set's own keys but subset and val, which are the stage's
      local valid = {}
      for _, k in ipairs(pb.dataset_keys[d[1]]) do
        if k ~= "subset" and k ~= "val" then valid[#valid + 1] = k end
      end
      for k in pairs(d) do
        if k ~= 1 and not contains(valid, k) then
          fail({ k }, "%s[%d].dataset (%s): unknown key '%s'%s (valid: %s)", what, i, d[1], tostring(k),
               did_you_mean(k, valid), #valid > 0 and list_words(valid) or "none; subset is a key of the stage")
        end
      end
      n.dataset = text_spec(fail, string.format("%s[%d].dataset", what, i), d)
      local ok, info = pcall(pb.dataset_info, n.dataset, 0)
      if not ok then fail("%s[%d]: %s", what, i, tostring(info)) end
    elseif n.dataset ~= nil and not contains(pb.datasets, n.dataset) then
      fail("%s[%d]: unknown dataset '%s' (valid: %s)", what, i, tostring(n.dataset), list_words(pb.datasets))
    end
    for k, range in pairs({ subset = "subset", permute = "permute", n = "calibration examples" }) do
      if n[k] ~= nil then
        local r, msg = check_number(range, n[k])
        if r == nil then fail({ k }, "%s[%d]: %s: %s", what, i, k, msg) end
        n[k] = r
      end
    end
    for k, v in pairs(n.recipe_keys) do
      if type(v) ~= "function" then n.recipe_keys[k] = check_value(fail, string.format("%s[%d]", what, i), k, RECIPE_KEYS[k], v) end
    end
    -- derived tasks: classes = { 0, 1, 2 } keeps those classes' examples;
    -- labels = { ... } maps class k to labels[k + 1] (one 0-based entry per class)
    for _, k in ipairs({ "classes", "labels" }) do
      local v = n[k]
      if v ~= nil then
        if type(v) ~= "table" or #v == 0 then fail("%s[%d]: %s must be a non-empty list of class numbers", what, i, k) end
        local seen = {}
        for j, c in ipairs(v) do
          local r, msg = check_number("class", c)
          if r == nil then fail({ k }, "%s[%d]: %s[%d]: %s (a class number)", what, i, k, j, msg) end
          if k == "classes" then
            if seen[c] then fail("%s[%d]: classes lists class %d twice", what, i, c) end
            seen[c] = true
          end
        end
      end
    end
    if n.split ~= nil then
      if n.split ~= "train" and n.split ~= "val" then fail("%s[%d]: split must be \"train\" or \"val\"", what, i) end
      n.split = n.split == "val" and 1 or 0
    end
    out[i] = n
  end
  return out
end

local function norm_method(fail, i, m)
  if type(m) == "string" then m = { m } end
  if type(m) ~= "table" or type(m[1]) ~= "string" then
    fail("methods[%d]: expected a name or {name, param = value, label = ...}", i)
  end
  local name = m[1]
  local args = {}
  for _, k in ipairs(sorted_keys(m)) do
    if type(k) == "string" and not METHOD_RESERVED[k] then
      local v = m[k]
      if type(v) == "boolean" then v = v and "1" or "0"
      elseif type(v) == "number" then v = fmtnum(v)
      elseif type(v) ~= "string" then fail("methods[%d] (%s): parameter %s must be a number, string or boolean", i, name, k) end
      args[#args + 1] = k .. "=" .. v
    elseif type(k) ~= "string" and k ~= 1 then
      fail("methods[%d] (%s): unexpected positional value %s", i, name, tostring(m[k]))
    end
  end
  local ok, info, kind = pcall(pb.check_method, name, args)
  if not ok then
    -- the built-in baseline is not a plugin, so the plugin search cannot suggest it
    if pb.suggest(name, { "dense" }) then
      fail({ '"' .. name .. '"' }, "methods[%d]: unknown method '%s': did you mean 'dense'? (the unpruned baseline)", i, name)
    end
    fail({ '"' .. name .. '"' }, "methods[%d]: %s", i, tostring(info))
  end
  if kind == "data" then
    fail("methods[%d]: %s is a data-selection method, not a weight method: give it in data = { ... } " ..
         "(and a weight method, or dense, in methods)", i, name)
  end
  local label = m.label or name
  if type(label) ~= "string" then fail("methods[%d]: label must be a string", i) end
  check_recipe_keys(fail, "methods[" .. i .. "].train", m.train, { "methods", "train" })
  check_recipe_keys(fail, "methods[" .. i .. "].finetune", m.finetune, { "methods", "finetune" })
  timeout_in_train_only(fail, "methods[" .. i .. "].finetune", m.finetune)
  local stages = norm_stages(fail, "methods[" .. i .. "].stages", m.stages)
  return { name = name, label = label, args = args, when = info, train = m.train,
           finetune = m.finetune, sparsity = m.sparsity, stages = stages }
end

-- data = { "full", { "rs2", fraction = { 0.05, 0.1 }, replace = true, label = "rs2-repl" }, "el2n" }
-- Every entry is a data-selection method; a list of fractions gives one
-- variant per fraction. Returns the variants {name, args, fraction, label}.
local DATA_RESERVED = { label = true, fraction = true }
local function norm_data(fail, i, d)
  if type(d) == "string" then d = { d } end
  if type(d) ~= "table" or type(d[1]) ~= "string" then
    fail("data[%d]: expected a name or {name, fraction = {...}, param = value, label = ...}", i)
  end
  local name = d[1]
  if name == "dense" then
    fail("data[%d]: dense is the unpruned weight baseline (a method), not a data method; the whole training set is \"full\"", i)
  end
  local base = {}
  for k, v in pairs(d) do
    if type(k) == "string" and not DATA_RESERVED[k] then
      if type(v) == "boolean" then v = v and "1" or "0"
      elseif type(v) == "number" then v = fmtnum(v)
      elseif type(v) ~= "string" then fail("data[%d] (%s): parameter %s must be a number, string or boolean", i, name, k) end
      base[k] = v
    elseif type(k) ~= "string" and k ~= 1 then
      fail("data[%d] (%s): unexpected positional value %s", i, name, tostring(d[k]))
    end
  end
  local fr = d.fraction
  local fracs
  if fr == nil then fracs = { false }
  elseif type(fr) == "number" then fracs = { fr }
  elseif type(fr) == "table" and #fr > 0 then fracs = fr
  else fail("data[%d] (%s): fraction must be a number or a non-empty list of numbers in (0, 1]", i, name) end
  if d.label ~= nil and type(d.label) ~= "string" then fail("data[%d]: label must be a string", i) end
  local out = {}
  for j, f in ipairs(fracs) do
    local kv = {}
    for k, v in pairs(base) do kv[k] = v end
    if f then
      local r, msg = check_number("fraction", f)
      if r == nil then fail({ "fraction" }, "data[%d] (%s): fraction: %s", i, name, msg) end
      kv.fraction = fmtnum(f)
    end
    local args = {}
    for _, k in ipairs(sorted_keys(kv)) do args[#args + 1] = k .. "=" .. kv[k] end
    local ok, when, kind, fraction = pcall(pb.check_method, name, args)
    if not ok then fail({ '"' .. name .. '"' }, "data[%d]: %s", i, tostring(when)) end
    if kind ~= "data" then
      fail("data[%d]: %s prunes weights (kind %s), it is not a data-selection method: give it in methods = { ... }",
           i, name, tostring(kind))
    end
    local label = d.label or name
    if f then label = label .. " r=" .. fmtnum(f) end
    out[#out + 1] = { name = name, args = args, fraction = fraction, label = label }
  end
  return out
end

-- budget = { epochs = 10 } | { steps = 5000 } | { seconds = 60 }: bounds every train stage of a data cell.
local BUDGET_KINDS = { steps = true, epochs = true, seconds = true }
local function norm_budget(fail, b)
  if b == nil then return nil end
  if type(b) ~= "table" then fail("budget must be a table: { epochs = 10 }, { steps = 5000 } or { seconds = 60 }") end
  local kind, v
  for _, k in ipairs(sorted_keys(b)) do
    if not BUDGET_KINDS[k] then
      fail({ k }, "budget: unknown key '%s'%s (valid: epochs, seconds, steps)", tostring(k),
           did_you_mean(k, { "epochs", "seconds", "steps" }))
    end
    if kind then fail("budget: give one of epochs, seconds, steps (got %s and %s)", kind, k) end
    kind, v = k, b[k]
  end
  if not kind then fail("budget: give one of epochs (full-data epochs), seconds, steps") end
  local r, msg = check_number("budget " .. kind, v)
  if r == nil then fail({ "budget", kind }, "budget.%s: %s", kind, msg) end
  return { kind = kind, value = r + 0.0 }
end

local function check_sparsity(fail, what, s)
  local r, msg = check_number("sparsity", s)
  if r == nil then fail({ "sparsity" }, "%s: %s", what, msg) end
  return r + 0.0
end

local function matches(pattern, cell)
  for k, v in pairs(pattern) do
    local cv = cell[k]
    if type(v) == "table" then
      if not contains(v, cv) then return false end
    elseif type(v) == "number" and type(cv) == "number" then
      if math.abs(v - cv) > 1e-12 then return false end
    elseif cv ~= v then return false end
  end
  return true
end

local function declare(name, spec, where, src)
  -- fail(fmt, ...) names the statement's line; fail(keys, fmt, ...) the line
  -- where keys are written in it, when the source shows them (key_line)
  local function fail(fmt, ...)
    local at = where
    if type(fmt) == "table" then
      local line = key_line(src.source, src.line, fmt)
      if line then at = src.short .. ":" .. line end
      return error(string.format("%s: experiment '%s': " .. select(1, ...), at, name, select(2, ...)), 0)
    end
    error(string.format("%s: experiment '%s': " .. fmt, at, name, ...), 0)
  end
  if type(spec) ~= "table" then fail("expected a table: experiment \"%s\" { ... }", name) end
  local exp_keys = sorted_keys(EXPERIMENT_KEYS)
  for k in pairs(spec) do
    if not EXPERIMENT_KEYS[k] then
      fail({ k }, "unknown key '%s'%s (valid: %s)", tostring(k), did_you_mean(k, exp_keys), list_words(exp_keys))
    end
  end
  for _, e in ipairs(declared) do
    if e.name == name then fail("declared twice") end
  end

  local models = {}
  for i, m in ipairs(as_list(fail, "models", spec.models, { "lenet300" })) do models[i] = norm_model(fail, i, m) end
  local datasets = {}
  for i, d in ipairs(as_list(fail, "datasets", spec.datasets, { "fashion-mnist" })) do
    datasets[i] = norm_dataset(fail, i, d)
  end
  local methods = {}
  for i, m in ipairs(as_list(fail, "methods", spec.methods, { "dense" })) do methods[i] = norm_method(fail, i, m) end
  local sparsity = as_list(fail, "sparsity", spec.sparsity, { 0.9 })
  for i, s in ipairs(sparsity) do sparsity[i] = check_sparsity(fail, "sparsity[" .. i .. "]", s) end
  local seeds = as_list(fail, "seeds", spec.seeds, { 1 })
  for i, s in ipairs(seeds) do
    local r, msg = check_number("seed", s)
    if r == nil then fail({ "seeds" }, "seeds[%d]: %s", i, msg) end
    seeds[i] = r
  end
  check_recipe_keys(fail, "train", spec.train, { "train" })
  check_recipe_keys(fail, "finetune", spec.finetune, { "finetune" })
  timeout_in_train_only(fail, "finetune", spec.finetune)
  local exp_stages = norm_stages(fail, "stages", spec.stages)
  local datas = { false }
  if spec.data ~= nil then
    datas = {}
    for i, d in ipairs(as_list(fail, "data", spec.data, {})) do
      for _, v in ipairs(norm_data(fail, i, d)) do datas[#datas + 1] = v end
    end
  end
  local budget = norm_budget(fail, spec.budget)
  if budget and spec.data == nil then
    fail("budget bounds the training of data cells: give data = { ... } (\"full\" for all the data)")
  end
  if spec.filter ~= nil and type(spec.filter) ~= "function" then fail("filter must be a function(cell)") end
  local exclude = spec.exclude or {}
  if type(exclude) ~= "table" then fail("exclude must be a list of tables") end
  for i, x in ipairs(exclude) do
    if type(x) ~= "table" then fail("exclude[%d] must be a table such as {method = \"snip\", sparsity = 0.98}", i) end
  end
  local plots = spec.plots or PLOTS
  if type(plots) ~= "table" then fail("plots must be a list of names") end
  for i, p in ipairs(plots) do
    if not contains(PLOTS, p) and not contains(EXTRA_PLOTS, p) then
      fail("plots[%d]: unknown chart '%s' (valid: %s, %s)", i, tostring(p), list_words(PLOTS), list_words(EXTRA_PLOTS))
    end
  end

  local cells = {}
  local built = {}
  for _, d in ipairs(datasets) do
    local ok, ds = pcall(pb.dataset_info, d.name, d.subset)
    if not ok then fail("datasets: %s", tostring(ds)) end
    for mi, m in ipairs(models) do
      local key = mi .. "/" .. d.name
      if not built[key] then
        local ok2, ud
        if m.spec then ok2, ud = pcall(build_spec, m.spec, ds)
        else ok2, ud = pcall(pb.model_build, m.arch, m.width, m.hidden, ds.c, ds.h, ds.w, ds.ncls) end
        if not ok2 then fail("model '%s' on %s: %s", m.name, d.name, tostring(ud)) end
        built[key] = ud
      end
      for _, seed in ipairs(seeds) do
        for _, me in ipairs(methods) do
          local sps = me.sparsity or sparsity
          if type(sps) == "number" then sps = { sps } end
          if me.name == "dense" then sps = { 0.0 } end
          for _, s in ipairs(sps) do
          for _, dv in ipairs(datas) do
            local cell = {
              experiment = name, model = m.name, arch = m.arch, width = m.width, dataset = d.name,
              method = me.name, label = me.label, sparsity = check_sparsity(fail, "sparsity", s),
              seed = seed, when = me.when,
              data = dv and dv.name or nil, fraction = dv and dv.fraction or nil,
              data_label = dv and dv.label or nil,
            }
            local keep = true
            for _, x in ipairs(exclude) do
              if matches(x, cell) then keep = false break end
            end
            if keep and spec.filter then
              local r = spec.filter(cell)
              if type(r) ~= "boolean" then fail("filter must return true or false (got %s)", tostring(r)) end
              keep = r
            end
            if keep then
              local where_c = string.format("cell %s/%s/%s/s=%g/seed=%d", m.name, d.name, me.label, s, seed)
              if dv then
                where_c = where_c .. "/data=" .. dv.label
                if me.when == "run" then
                  fail("%s: method %s drives its own training (when = run); a data method applies to train stages",
                       where_c, me.name)
                end
                cell.data_args = dv.args
                if budget then cell.budget_kind, cell.budget = budget.kind, budget.value end
              end
              local train = recipe(fail, where_c .. ": train", cell, spec.train, me.train)
              local ft = recipe(fail, where_c .. ": finetune", cell, spec.train, spec.finetune, me.finetune)
              local target = resolve(spec.target, cell)
              -- a text data set's target is a test perplexity (lower is better)
              local text = d.name == "fortunes" or d.name:sub(1, 9) == "fortunes:"
              if target ~= nil then
                local r, msg = check_number(text and "target perplexity" or "target accuracy", target)
                if r == nil and text then
                  fail({ "target" }, "target: %s (a test perplexity: the data set %s is text)", msg, d.name)
                elseif r == nil then
                  fail({ "target" }, "target: %s (a test accuracy)", msg)
                end
                target = r + 0.0
              end
              cell.model_canon = m.canon
              cell.hidden = m.hidden
              cell.proto = m.spec and built[key] or nil
              cell.model_ud = built[key]
              cell.subset, cell.val = d.subset, d.val
              cell.ntrain = ds.ntrain
              cell.args = me.args
              cell.train, cell.finetune = train, ft
              cell.target = target or 0.0
              local sts = me.stages or exp_stages
              if sts then
                local nprune = 0
                cell.stages = {}
                for si, st in ipairs(sts) do
                  local c2 = { kind = st.kind, label = st.label, name = st.name, path = st.path,
                               dataset = st.dataset, subset = st.subset, permute = st.permute, n = st.n,
                               split = st.split, classes = st.classes, labels = st.labels }
                  for _, k in ipairs({ "classes", "labels" }) do
                    for _, cl in ipairs(st[k] or {}) do
                      if cl >= ds.ncls then
                        fail("%s: stages[%d]: %s names class %d, but %s has %d classes (0..%d)", where_c, si, k, cl,
                             d.name, ds.ncls, ds.ncls - 1)
                      end
                    end
                  end
                  if st.labels and #st.labels ~= ds.ncls then
                    fail("%s: stages[%d]: labels maps %d classes, but %s has %d (one entry per class)", where_c, si,
                         #st.labels, d.name, ds.ncls)
                  end
                  if st.kind == "prune" then nprune = nprune + 1 end
                  if next(st.recipe_keys) then
                    local base = st.kind == "finetune" and ft or train
                    c2.recipe = recipe(fail, string.format("%s: stages[%d]", where_c, si), cell, base, st.recipe_keys)
                  end
                  cell.stages[si] = c2
                end
                if me.name == "dense" and nprune > 0 then fail("%s: the dense baseline cannot have a prune stage", where_c) end
                if me.name ~= "dense" and nprune == 0 then fail("%s: the stages have no prune stage", where_c) end
              end
              cells[#cells + 1] = cell
            end
          end
          end
        end
      end
    end
  end
  if #cells == 0 then fail("every cell was filtered out") end
  declared[#declared + 1] = { name = name, cells = cells, plots = plots, where = where }
end

function api.experiment(name)
  local info = debug.getinfo(2, "Sl")
  local where = string.format("%s:%d", info.short_src, info.currentline)
  if type(name) ~= "string" or not name:match("^[%w_][%w_%-%.]*$") then
    error("experiment name must be a word of letters, digits, _ - . not starting with . or - (it names the results directory)", 2)
  end
  local src = { source = info.source, short = info.short_src, line = info.currentline }
  return function(spec) declare(name, spec, where, src) end
end

-- Available to scripts for filters: the list of method plugins on the search path.
api.methods = pb.methods

local function experiments() return declared end

-- The environment of a script run under --sandbox (and the only one a results
-- directory's script could ever be given): the experiment language above,
-- string, table, math, utf8, coroutine, os.clock/time/date/difftime, print,
-- the basic functions that touch no file, and a load of text chunks into this
-- same environment. Everything that reaches files, processes, C code or the
-- interpreter's internals (io, os.execute and the rest of os, require,
-- package, dofile, loadfile, binary chunks, debug, collectgarbage) is absent,
-- and naming it raises an error at the script's line. The prelude keeps its
-- own globals: a script's functions run in the script's environment whoever
-- calls them, so the prelude's use of debug.getinfo gives a script nothing.
-- A script can still loop forever or build huge strings: that is a denial of
-- service (stop the run), not a way out of the sandbox.
local SANDBOX_WHAT = "a sandboxed script has only the experiment language, string, table, math, utf8, " ..
  "coroutine, os.clock/time/date/difftime, print and load of text"
local SANDBOX_REFUSED = {
  io = "io (files and processes)", require = "require (C modules and other files)",
  package = "package (C modules and other files)", dofile = "dofile (a sandboxed script is one file)",
  loadfile = "loadfile (a sandboxed script is one file)", debug = "debug",
  collectgarbage = "collectgarbage",
}
local BASIC = { "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall", "_VERSION" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function sandbox_env()
  local env = copy(api)
  for _, k in ipairs(BASIC) do env[k] = _G[k] end
  env.string = copy(string)
  env.string.dump = function()
    error(string.format("string.dump is not available under --sandbox (%s)", SANDBOX_WHAT), 2)
  end
  env.table, env.math, env.utf8, env.coroutine = copy(table), copy(math), copy(utf8), copy(coroutine)
  -- the library tables a script changes are its own copies; the one table
  -- every string shares is hidden, so a script cannot rewrite the prelude's
  -- string functions through ("").x
  getmetatable("").__metatable = false
  env.os = setmetatable({ clock = os.clock, time = os.time, date = os.date, difftime = os.difftime }, {
    __index = function(_, k)
      error(string.format("os.%s is not available under --sandbox (%s)", tostring(k), SANDBOX_WHAT), 2)
    end,
    __metatable = false,
  })
  local real_load = load
  env.load = function(chunk, name, mode, chunk_env)
    if mode ~= nil and mode ~= "t" then
      error(string.format("load: mode '%s' is not available under --sandbox (binary chunks are refused; " ..
        "use mode \"t\")", tostring(mode)), 2)
    end
    if chunk_env == nil then chunk_env = env end
    return real_load(chunk, name, "t", chunk_env)
  end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      local what = SANDBOX_REFUSED[k]
      if what then error(string.format("%s is not available under --sandbox (%s)", what, SANDBOX_WHAT), 2) end
      return nil
    end,
    __metatable = false,
  })
end

return api, experiments, sandbox_env
