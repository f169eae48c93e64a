/* pb_lua: the embedded Lua state for experiment scripts. */
#include "pb_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/pb_check.h"
#include "engine/pb_data.h"
#include "engine/pb_optim.h"
#include "host/pb_datasel.h"
#include "host/pb_plugin.h"

struct pb_lua {
    lua_State *L;
    char *plugin_path;
    char *data_dir;
    int sandbox;   /* scripts get the prelude's sandbox environment */
};

#define MODEL_MT "pb.model"

typedef struct model_ud {
    pb_model *m;   /* NULL while closed */
    int last;      /* index of the last layer added, -1 = input */
} model_ud;

/* --------------------------------------------------------------- numbers */

/* Argument arg as a number within the range called `range` (pb_check.h), the
 * same range the prelude and the command line use. */
static double check_num(lua_State *L, int arg, const char *range)
{
    const pb_range *r = pb_range_find(range);
    double v = luaL_checknumber(L, arg);
    char err[PB_ERRLEN], msg[PB_ERRLEN + 64];
    if (!r)
        return luaL_error(L, "no range called '%s'", range);
    if (pb_check_num(r, v, err, sizeof err) != PB_OK) {
        snprintf(msg, sizeof msg, "%s: %s", range, err);
        return luaL_argerror(L, arg, msg);
    }
    return v;
}

static int check_int(lua_State *L, int arg, const char *range) { return (int)check_num(L, arg, range); }

static int opt_int(lua_State *L, int arg, const char *range, int def)
{
    return lua_isnoneornil(L, arg) ? def : check_int(L, arg, range);
}

/* ---------------------------------------------------------------- models */

static void model_release(model_ud *u)
{
    if (u->m) {
        pb_model_free(u->m);
        free(u->m);
        u->m = NULL;
    }
}

static int model_gc(lua_State *L)
{
    model_release(luaL_checkudata(L, 1, MODEL_MT));
    return 0;
}

static model_ud *check_model(lua_State *L)
{
    model_ud *u = luaL_checkudata(L, 1, MODEL_MT);
    luaL_argcheck(L, u->m != NULL, 1, "model is closed");
    return u;
}

/* Creates a closed userdata, then acquires the model: an allocation failure
 * in between leaves nothing to leak. */
static model_ud *new_model(lua_State *L)
{
    model_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = NULL;
    u->last = -1;
    luaL_setmetatable(L, MODEL_MT);
    pb_model *m = calloc(1, sizeof *m);
    if (!m)
        luaL_error(L, "out of memory for a model");
    u->m = m;
    return u;
}

static int added(lua_State *L, model_ud *u, int idx, const char *err)
{
    if (idx < 0)
        return luaL_error(L, "%s", err);
    u->last = idx;
    return 0;
}

static int l_model_new(lua_State *L)
{
    const char *arch = luaL_checkstring(L, 1);
    int ic = check_int(L, 2, "input size"), ih = check_int(L, 3, "input size");
    int iw = check_int(L, 4, "input size"), ncls = check_int(L, 5, "input size");
    model_ud *u = new_model(L);
    pb_model_init(u->m, arch, ic, ih, iw, ncls);
    return 1;
}

static int l_model_build(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    double width = check_num(L, 2, "width");
    luaL_checktype(L, 3, LUA_TTABLE);
    int hidden[PB_MAX_HIDDEN], nh = (int)luaL_len(L, 3);
    luaL_argcheck(L, nh <= PB_MAX_HIDDEN, 3, "too many hidden layers");
    for (int i = 0; i < nh; i++) {
        lua_geti(L, 3, i + 1);
        char msg[PB_ERRLEN + 32], err[PB_ERRLEN];
        const pb_range *r = pb_range_find("hidden");
        if (!lua_isnumber(L, -1) || pb_check_num(r, lua_tonumber(L, -1), err, sizeof err) != PB_OK) {
            pb_range_describe(r, err, sizeof err);
            snprintf(msg, sizeof msg, "hidden[%d] is not %s", i + 1, err);
            return luaL_argerror(L, 3, msg);
        }
        hidden[i] = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    if (nh == 0) {
        hidden[0] = 300;
        hidden[1] = 100;
        nh = 2;
    }
    int ic = check_int(L, 4, "input size"), ih = check_int(L, 5, "input size");
    int iw = check_int(L, 6, "input size"), ncls = check_int(L, 7, "input size");
    model_ud *u = new_model(L);
    char err[PB_ERRLEN];
    if (pb_model_build(u->m, name, width, hidden, nh, ic, ih, iw, ncls, err, sizeof err) != PB_OK ||
        pb_model_finalize(u->m, 1, err, sizeof err) != PB_OK)
        return luaL_error(L, "%s", err);
    return 1;
}

static int l_model_dense(lua_State *L)
{
    model_ud *u = check_model(L);
    int out = check_int(L, 2, "dense out");
    int bias = lua_isnone(L, 3) ? 1 : lua_toboolean(L, 3);
    char err[PB_ERRLEN];
    added(L, u, pb_model_dense(u->m, NULL, out, bias, err, sizeof err), err);
    return 0;
}

static int l_model_conv(lua_State *L)
{
    model_ud *u = check_model(L);
    int oc = check_int(L, 2, "conv channels"), k = check_int(L, 3, "conv kernel");
    int stride = opt_int(L, 4, "conv stride", 1), pad = opt_int(L, 5, "conv pad", k / 2);
    int bias = lua_isnone(L, 6) ? 1 : lua_toboolean(L, 6);
    char err[PB_ERRLEN];
    added(L, u, pb_model_conv(u->m, NULL, oc, k, stride, pad, bias, err, sizeof err), err);
    return 0;
}

static int l_model_pool(lua_State *L)
{
    static const char *const kinds[] = {"maxpool", "avgpool", NULL};
    model_ud *u = check_model(L);
    int kind = luaL_checkoption(L, 2, NULL, kinds);
    int k = check_int(L, 3, "pool window"), stride = opt_int(L, 4, "pool stride", k);
    char err[PB_ERRLEN];
    added(L, u, pb_model_pool(u->m, kind == 0 ? PB_MAXPOOL : PB_AVGPOOL, k, stride, err, sizeof err), err);
    return 0;
}

static int l_model_simple(lua_State *L)
{
    static const char *const ops[] = {"relu", "gap", "flatten", NULL};
    static const pb_layer_kind kinds[] = {PB_RELU, PB_GAP, PB_FLATTEN};
    model_ud *u = check_model(L);
    int op = luaL_checkoption(L, 2, NULL, ops);
    char err[PB_ERRLEN];
    added(L, u, pb_model_simple(u->m, kinds[op], err, sizeof err), err);
    return 0;
}

static int l_model_bn(lua_State *L)
{
    model_ud *u = check_model(L);
    char err[PB_ERRLEN];
    added(L, u, pb_model_bn(u->m, err, sizeof err), err);
    return 0;
}

static int l_model_dropout(lua_State *L)
{
    model_ud *u = check_model(L);
    double p = check_num(L, 2, "dropout");
    char err[PB_ERRLEN];
    added(L, u, pb_model_dropout(u->m, (float)p, err, sizeof err), err);
    return 0;
}

static int l_model_add(lua_State *L)
{
    model_ud *u = check_model(L);
    lua_Integer a = luaL_checkinteger(L, 2), b = luaL_checkinteger(L, 3);
    luaL_argcheck(L, a >= -1 && a < u->m->nlayers, 2, "not a layer of the model");
    luaL_argcheck(L, b >= -1 && b < u->m->nlayers, 3, "not a layer of the model");
    char err[PB_ERRLEN];
    added(L, u, pb_model_add(u->m, (int)a, (int)b, err, sizeof err), err);
    return 0;
}

static int l_model_last(lua_State *L)
{
    lua_pushinteger(L, check_model(L)->last);
    return 1;
}

static int l_model_finalize(lua_State *L)
{
    model_ud *u = check_model(L);
    char err[PB_ERRLEN];
    pb_model *m = u->m;
    if (m->nlayers == 0)
        return luaL_error(L, "model '%s' has no layers", m->arch);
    const pb_layer *last = &m->layers[m->nlayers - 1];
    if (pb_layer_osize(last) != (size_t)m->ncls)
        return luaL_error(L, "model '%s' ends with %d outputs but the data set has %d classes",
                          m->arch, (int)pb_layer_osize(last), m->ncls);
    if (pb_model_finalize(m, 1, err, sizeof err) != PB_OK)
        return luaL_error(L, "%s", err);
    pb_model_init_weights(m, 1);
    return 0;
}

/* params, inference FLOPs and training FLOPs per example */
static int l_model_info(lua_State *L)
{
    model_ud *u = check_model(L);
    size_t total, nz;
    double fd, fe;
    pb_model_count_params(u->m, &total, &nz);
    pb_model_flops(u->m, &fd, &fe);
    lua_pushinteger(L, (lua_Integer)total);
    lua_pushnumber(L, fd);
    lua_pushnumber(L, pb_model_train_flops(u->m));
    return 3;
}

static int l_model_tostring(lua_State *L)
{
    model_ud *u = luaL_checkudata(L, 1, MODEL_MT);
    lua_pushfstring(L, "pb.model(%s)", u->m ? u->m->arch : "closed");
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"dense", l_model_dense}, {"conv", l_model_conv}, {"pool", l_model_pool},
    {"simple", l_model_simple}, {"bn", l_model_bn}, {"dropout", l_model_dropout},
    {"add", l_model_add}, {"last", l_model_last}, {"finalize", l_model_finalize},
    {"info", l_model_info}, {NULL, NULL}};

static const luaL_Reg model_meta[] = {
    {"__gc", model_gc}, {"__close", model_gc}, {"__tostring", l_model_tostring}, {NULL, NULL}};

/* ------------------------------------------------------------- bindings */

static pb_lua *self(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static void push_names(lua_State *L, const char *const *names)
{
    lua_newtable(L);
    for (int i = 0; names[i]; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_methods(lua_State *L)
{
    pb_lua *s = self(L);
    pb_loaded *list = NULL;
    int n = 0;
    char err[PB_ERRLEN];
    if (pb_plugin_list(s->plugin_path, &list, &n, err, sizeof err) != PB_OK)
        return luaL_error(L, "%s", err);
    lua_newtable(L);
    lua_pushstring(L, "dense");
    lua_rawseti(L, -2, 1);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, list[i].desc.name);
        lua_rawseti(L, -2, i + 2);
        pb_plugin_close(&list[i]);
    }
    free(list);
    return 1;
}

static const char *when_word(int when)
{
    switch (when) {
    case PB_WHEN_TRAINED: return "trained";
    case PB_WHEN_INIT: return "init";
    case PB_WHEN_TRAINING: return "training";
    case PB_WHEN_RUN: return "run";
    default: return "unknown";
    }
}

/* check_method(name, {"k=v", ...}) -> when ("dense", "trained", "init", ...) */
static int l_check_method(lua_State *L)
{
    pb_lua *s = self(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int nargs = (int)luaL_len(L, 2);
    if (nargs > PB_JOB_MAX_ARGS)
        return luaL_error(L, "%s: more than %d parameters", name, PB_JOB_MAX_ARGS);
    const char *args[PB_JOB_MAX_ARGS];
    for (int i = 0; i < nargs; i++) {
        lua_geti(L, 2, i + 1);
        args[i] = luaL_checkstring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    if (!strcmp(name, "dense")) {
        if (nargs)
            return luaL_error(L, "dense takes no parameters (got '%s')", args[0]);
        lua_pushstring(L, "dense");
        return 1;
    }
    /* a path names any shared object, and loading it runs its code */
    if (s->sandbox && (strchr(name, '/') || (strlen(name) > 3 && !strcmp(name + strlen(name) - 3, ".so"))))
        return luaL_error(L, "method '%s': a plugin given by its file is not available under --sandbox (name a "
                             "method on the plugin search path, see `prunebench plugins`)", name);
    pb_loaded ld;
    char err[PB_ERRLEN];
    if (pb_plugin_find(name, s->plugin_path, &ld, err, sizeof err) != PB_OK) {
        /* the plugin list does not know about the built-in baseline */
        lua_pushfstring(L, "%s (or dense, the unpruned baseline)", err);
        return lua_error(L);
    }
    double values[64];
    int rc = PB_OK;
    if (pb_plugin_nparams(&ld.desc) > 64)
        rc = pb_err(err, sizeof err, PB_EPLUGIN, "%s: too many parameters", name);
    else
        rc = pb_plugin_parse_args(&ld.desc, args, nargs, values, err, sizeof err);
    int when = ld.desc.when, kind = ld.desc.kind;
    double fraction = 1.0; /* a data method's `fraction` parameter */
    for (int k = 0; rc == PB_OK && ld.desc.params && ld.desc.params[k].name; k++)
        if (!strcmp(ld.desc.params[k].name, "fraction"))
            fraction = values[k];
    pb_plugin_close(&ld);
    if (rc != PB_OK)
        return luaL_error(L, "%s", err);
    lua_pushstring(L, when_word(when));
    lua_pushstring(L, pb_plugin_kind_name(kind));
    lua_pushnumber(L, fraction);
    return 3;
}

/* dataset_info(name, subset) -> {c, h, w, ncls, ntrain}; loads the training split
 * once per name (so a missing data directory is reported before training). */
static int l_dataset_info(lua_State *L)
{
    pb_lua *s = self(L);
    const char *name = luaL_checkstring(L, 1);
    lua_Integer subset = opt_int(L, 2, "subset", 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "pb.datasets");
    if (lua_getfield(L, -1, name) != LUA_TTABLE) {
        lua_pop(L, 1);
        pb_dataset d;
        char err[PB_ERRLEN];
        if (pb_data_load(name, s->data_dir, PB_SPLIT_TRAIN, &d, err, sizeof err) != PB_OK)
            return luaL_error(L, "%s", err);
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, d.c), lua_setfield(L, -2, "c");
        lua_pushinteger(L, d.h), lua_setfield(L, -2, "h");
        lua_pushinteger(L, d.w), lua_setfield(L, -2, "w");
        lua_pushinteger(L, d.ncls), lua_setfield(L, -2, "ncls");
        lua_pushinteger(L, d.n), lua_setfield(L, -2, "ntrain");
        pb_data_free(&d);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
    }
    /* a copy, with the subset applied */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
    if (subset > 0) {
        lua_getfield(L, -1, "ntrain");
        lua_Integer n = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushinteger(L, subset < n ? subset : n);
        lua_setfield(L, -2, "ntrain");
    }
    return 1;
}

/* check_number(range, v) -> v (an integer for an integer range), or nil and
 * "VALUE is not an integer in [lo, hi]": the one check for every number of a
 * script (pb_check.c holds the ranges). */
static int l_check_number(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const pb_range *r = pb_range_find(name);
    if (!r)
        return luaL_error(L, "no range called '%s'", name);
    char err[PB_ERRLEN], want[96];
    if (lua_type(L, 2) != LUA_TNUMBER) {
        pb_range_describe(r, want, sizeof want);
        if (lua_type(L, 2) == LUA_TSTRING)
            lua_pushfstring(L, "'%s' (a string) is not %s", lua_tostring(L, 2), want);
        else
            lua_pushfstring(L, "a %s is not %s", luaL_typename(L, 2), want);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    double v = lua_tonumber(L, 2);
    if (pb_check_num(r, v, err, sizeof err) != PB_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (r->integral)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
    return 1;
}

/* suggest(word, {names}) -> the nearest name when word looks like its typo, or nil */
static int l_suggest(lua_State *L)
{
    const char *word = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n > 256)
        n = 256;
    const char *names[257];
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        names[i] = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
        lua_pop(L, 1); /* still referenced by the table */
    }
    names[n] = NULL;
    const char *near = pb_check_suggest(word, names);
    if (near)
        lua_pushstring(L, near);
    else
        lua_pushnil(L);
    return 1;
}

/* source("@file.lua") -> the text of a script pb_lua_run loaded, or nil */
static int l_source(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "pb.sources");
    lua_pushvalue(L, 1);
    lua_gettable(L, -2);
    return 1;
}

/* {kind = {key, ...}} from a keyset table */
static void push_keysets(lua_State *L, const pb_keyset *sets)
{
    lua_newtable(L);
    for (; sets->kind; sets++) {
        push_names(L, sets->keys);
        lua_setfield(L, -2, sets->kind);
    }
}

static const luaL_Reg pb_funcs[] = {
    {"check_number", l_check_number}, {"suggest", l_suggest}, {"source", l_source},
    {"methods", l_methods}, {"check_method", l_check_method}, {"dataset_info", l_dataset_info},
    {"model_new", l_model_new}, {"model_build", l_model_build}, {NULL, NULL}};

static int luaopen_pb(lua_State *L)
{
    luaL_newmetatable(L, MODEL_MT);
    luaL_setfuncs(L, model_meta, 0);
    luaL_newlib(L, model_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "pb.datasets");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "pb.sources");

    luaL_newlibtable(L, pb_funcs);
    lua_pushlightuserdata(L, lua_touserdata(L, 1));
    luaL_setfuncs(L, pb_funcs, 1);
    push_names(L, pb_model_names), lua_setfield(L, -2, "models");
    push_names(L, pb_dataset_names), lua_setfield(L, -2, "datasets");
    push_names(L, pb_opt_names), lua_setfield(L, -2, "optimizers");
    push_names(L, pb_sched_names), lua_setfield(L, -2, "schedules");
    push_keysets(L, pb_model_keys), lua_setfield(L, -2, "model_keys");
    push_keysets(L, pb_dataset_keys), lua_setfield(L, -2, "dataset_keys");
    return 1;
}

/* ------------------------------------------------------------ the state */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Runs the function below nargs arguments under the traceback handler. On an
 * error, err receives the message's first line (file:line: message). */
static int pcall_tb(lua_State *L, int nargs, int nres, char *err, size_t errlen)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (rc == LUA_OK)
        return PB_OK;
    const char *msg = lua_tostring(L, -1);
    size_t n = strcspn(msg, "\n");
    const char *tb = getenv("PRUNEBENCH_LUA_TRACEBACK");
    if (tb && *tb && strcmp(tb, "0"))
        n = strlen(msg);
    pb_err(err, errlen, PB_EUSAGE, "%.*s", (int)n, msg);
    lua_pop(L, 1);
    return PB_EUSAGE;
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

/* The prelude of the source tree when this program runs from its build tree,
 * else the installed one; $PRUNEBENCH_LUADIR overrides both. */
void pb_lua_prelude_path(char *buf, size_t n)
{
    const char *env = getenv("PRUNEBENCH_LUADIR");
    if (env && *env) {
        snprintf(buf, n, "%s/prelude.lua", env);
        return;
    }
    if (pb_plugin_from_build_tree()) {
        snprintf(buf, n, "%s/prelude.lua", PB_SRC_LUADIR);
        if (file_exists(buf))
            return;
    }
    snprintf(buf, n, "%s/prelude.lua", PB_LUADIR);
}

int pb_lua_open(pb_lua **out, const char *plugin_path, const char *data_dir, char *err,
                size_t errlen)
{
    *out = NULL;
    pb_lua *s = calloc(1, sizeof *s);
    if (!s)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    s->plugin_path = plugin_path ? strdup(plugin_path) : NULL;
    s->data_dir = data_dir ? strdup(data_dir) : NULL;
    s->L = luaL_newstate();
    if (!s->L) {
        pb_lua_close(s);
        return pb_err(err, errlen, PB_ENOMEM, "cannot create a Lua state");
    }
    lua_State *L = s->L;
    luaL_openlibs(L);

    char path[1100];
    pb_lua_prelude_path(path, sizeof path);
    int rc;
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        rc = pb_err(err, errlen, PB_EINTERNAL, "%s", lua_tostring(L, -1));
        pb_lua_close(s);
        return rc;
    }
    lua_pushcfunction(L, luaopen_pb);
    lua_pushlightuserdata(L, s);
    if ((rc = pcall_tb(L, 1, 1, err, errlen)) != PB_OK) {
        pb_lua_close(s);
        return rc;
    }
    /* prelude(pb) -> api, experiments, sandbox_env; kept in the registry */
    if ((rc = pcall_tb(L, 1, 3, err, errlen)) != PB_OK) {
        pb_lua_close(s);
        return rc;
    }
    if (!lua_istable(L, -3) || !lua_isfunction(L, -2) || !lua_isfunction(L, -1)) {
        pb_lua_close(s);
        return pb_err(err, errlen, PB_EINTERNAL, "%s did not return (api, experiments, sandbox_env)", path);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "pb.sandbox_env");
    lua_setfield(L, LUA_REGISTRYINDEX, "pb.experiments");
    lua_setfield(L, LUA_REGISTRYINDEX, "pb.api");
    *out = s;
    return PB_OK;
}

void pb_lua_set_sandbox(pb_lua *s, int on) { s->sandbox = on != 0; }

void pb_lua_close(pb_lua *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    free(s->plugin_path);
    free(s->data_dir);
    free(s);
}

/* ---------------------------------------------------- reading the cells */

typedef struct reader {
    lua_State *L;
    int rc;
    char *err;
    size_t errlen;
} reader;

static char *dupfield(reader *r, int idx, const char *key)
{
    char *s = NULL;
    if (lua_getfield(r->L, idx, key) == LUA_TSTRING)
        s = strdup(lua_tostring(r->L, -1));
    lua_pop(r->L, 1);
    if (!s && r->rc == PB_OK)
        r->rc = pb_err(r->err, r->errlen, PB_EINTERNAL, "cell field '%s' missing", key);
    return s;
}

static double numfield(lua_State *L, int idx, const char *key, double def)
{
    double v = def;
    if (lua_getfield(L, idx, key) == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A number the prelude has checked, checked again against the same range
 * before a cast to int or long could wrap it (a second front end, or a
 * prelude edited by hand, must not train with epochs = -2147483648). */
static double checked(reader *r, int idx, const char *where, const char *key, const char *range, double def)
{
    double v = numfield(r->L, idx, key, def);
    char err[PB_ERRLEN];
    if (pb_check_num(pb_range_find(range), v, err, sizeof err) != PB_OK && r->rc == PB_OK)
        r->rc = pb_err(r->err, r->errlen, PB_EUSAGE, "%s%s%s: %s", where, *where ? "." : "", key, err);
    return r->rc == PB_OK ? v : def;
}

/* the value on top of the stack, checked against range */
static double checked_top(reader *r, const char *range)
{
    double v = lua_isnumber(r->L, -1) ? lua_tonumber(r->L, -1) : NAN;
    char err[PB_ERRLEN];
    if (pb_check_num(pb_range_find(range), v, err, sizeof err) != PB_OK) {
        if (r->rc == PB_OK)
            r->rc = pb_err(r->err, r->errlen, PB_EUSAGE, "%s: %s", range, err);
        return 1;
    }
    return v;
}

static void read_recipe(reader *r, int idx, const char *key, pb_train_cfg *c)
{
    lua_State *L = r->L;
    pb_train_defaults(c);
    if (lua_getfield(L, idx, key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int t = lua_gettop(L);
    int lr_given = 0;
    if (lua_getfield(L, t, "opt") == LUA_TSTRING) {
        int k = pb_name_lookup(pb_opt_names, "optimizer", lua_tostring(L, -1), r->err, r->errlen);
        if (k < 0)
            r->rc = PB_EUSAGE;
        else
            c->opt.kind = (pb_opt_kind)k;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "schedule") == LUA_TSTRING) {
        int k = pb_name_lookup(pb_sched_names, "schedule", lua_tostring(L, -1), r->err, r->errlen);
        if (k < 0)
            r->rc = PB_EUSAGE;
        else
            c->opt.sched = (pb_sched_kind)k;
    }
    lua_pop(L, 1);
    lr_given = lua_getfield(L, t, "lr") == LUA_TNUMBER;
    lua_pop(L, 1);
    if ((c->opt.kind == PB_OPT_ADAM || c->opt.kind == PB_OPT_ADAMW) && !lr_given)
        c->opt.lr = 0.001;
    c->epochs = (int)checked(r, t, key, "epochs", "epochs", c->epochs);
    c->batch = (int)checked(r, t, key, "batch", "batch", c->batch);
    c->opt.lr = checked(r, t, key, "lr", "lr", c->opt.lr);
    c->opt.momentum = checked(r, t, key, "momentum", "momentum", c->opt.momentum);
    c->opt.wd = checked(r, t, key, "wd", "wd", c->opt.wd);
    c->opt.nesterov = (int)numfield(L, t, "nesterov", c->opt.nesterov);
    c->opt.step_epochs = (int)checked(r, t, key, "step_epochs", "step_epochs", c->opt.step_epochs);
    c->opt.gamma = checked(r, t, key, "gamma", "gamma", c->opt.gamma);
    c->opt.warmup_steps = (long)checked(r, t, key, "warmup", "warmup", (double)c->opt.warmup_steps);
    c->max_steps = (long)checked(r, t, key, "max_steps", "max_steps", (double)c->max_steps);
    c->early_stop = (int)numfield(L, t, "early_stop", c->early_stop);
    lua_pop(L, 1);
}

static char *optstr(lua_State *L, int idx, const char *key)
{
    char *v = NULL;
    if (lua_getfield(L, idx, key) == LUA_TSTRING)
        v = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return v;
}

/* A stage's derived task: classes = {k, ...} into a bitmask, labels = {...}
 * into the label map (the prelude has checked both). */
static void read_task(lua_State *L, int t, pb_stage *st)
{
    if (lua_getfield(L, t, "classes") == LUA_TTABLE)
        for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; i++) {
            lua_geti(L, -1, i);
            lua_Integer k = lua_tointeger(L, -1);
            if (k >= 0 && k < PB_STAGE_MAX_CLASSES)
                st->classes |= 1ull << k;
            lua_pop(L, 1);
        }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "labels") == LUA_TTABLE)
        for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n && st->nlabel_map < PB_STAGE_MAX_CLASSES; i++) {
            lua_geti(L, -1, i);
            st->label_map[st->nlabel_map++] = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    lua_pop(L, 1);
}

/* cell.stages: a list of {kind=, label=, name=, path=, dataset=, subset=,
 * permute=, n=, split=, recipe={...}} the prelude has validated. */
static void read_stages(reader *r, int idx, pb_cell *c)
{
    lua_State *L = r->L;
    if (lua_getfield(L, idx, "stages") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    int n = (int)luaL_len(L, -1);
    if (n > PB_JOB_MAX_STAGES && r->rc == PB_OK)
        r->rc = pb_err(r->err, r->errlen, PB_EUSAGE, "more than %d stages", PB_JOB_MAX_STAGES);
    for (int i = 0; i < n && i < PB_JOB_MAX_STAGES; i++) {
        lua_geti(L, -1, i + 1);
        int t = lua_gettop(L);
        pb_stage *st = &c->stages[c->nstages++];
        memset(st, 0, sizeof *st);
        char *kind = optstr(L, t, "kind");
        int k = 0;
        while (kind && pb_stage_names[k] && strcmp(pb_stage_names[k], kind))
            k++;
        if ((!kind || !pb_stage_names[k]) && r->rc == PB_OK)
            r->rc = pb_err(r->err, r->errlen, PB_EINTERNAL, "stage %d: unknown kind", i + 1);
        free(kind);
        st->kind = (pb_stage_kind)k;
        st->label = optstr(L, t, "label");
        st->name = optstr(L, t, "name");
        st->path = optstr(L, t, "path");
        st->dataset = optstr(L, t, "dataset");
        st->subset = (int)checked(r, t, "stage", "subset", "subset", 0);
        st->permute = (uint64_t)checked(r, t, "stage", "permute", "permute", 0);
        st->n = (int)checked(r, t, "stage", "n", "calibration examples", 0);
        st->split = (int)numfield(L, t, "split", 0);
        read_task(L, t, st);
        if (lua_getfield(L, t, "recipe") == LUA_TTABLE) {
            lua_pop(L, 1);
            pb_train_cfg *cfg = &c->stage_recipe[c->nstages - 1];
            read_recipe(r, t, "recipe", cfg);
            cfg->seed = (uint64_t)c->seed;
            cfg->target_acc = c->target;
            cfg->log_epochs = cfg->progress = 0;
            st->recipe = cfg;
        } else {
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The data axis of a cell: data, data_label, data_args, fraction, budget_kind, budget. */
static void read_data(reader *r, int idx, pb_cell *c)
{
    lua_State *L = r->L;
    if (!(c->data = optstr(L, idx, "data")))
        return;
    c->data_label = optstr(L, idx, "data_label");
    c->data_fraction = numfield(L, idx, "fraction", 1.0);
    char *bk = optstr(L, idx, "budget_kind");
    for (int k = 0; bk && pb_budget_names[k]; k++)
        if (!strcmp(pb_budget_names[k], bk))
            c->budget_kind = k;
    free(bk);
    c->budget = numfield(L, idx, "budget", 0);
    if (lua_getfield(L, idx, "data_args") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        size_t total = 1;
        for (int i = 0; i < n && i < PB_JOB_MAX_ARGS; i++) {
            lua_geti(L, -1, i + 1);
            c->data_args[c->ndata_args++] = strdup(lua_tostring(L, -1));
            total += strlen(c->data_args[c->ndata_args - 1]) + 1;
            lua_pop(L, 1);
        }
        c->data_args_joined = calloc(total, 1);
        for (int i = 0; c->data_args_joined && i < c->ndata_args; i++) {
            if (i)
                strcat(c->data_args_joined, " ");
            strcat(c->data_args_joined, c->data_args[i]);
        }
    }
    lua_pop(L, 1);
}

static void read_cell(reader *r, int idx, pb_cell *c)
{
    lua_State *L = r->L;
    memset(c, 0, sizeof *c);
    c->model = dupfield(r, idx, "model");
    c->dataset = dupfield(r, idx, "dataset");
    c->method = dupfield(r, idx, "method");
    c->label = dupfield(r, idx, "label");
    c->when = dupfield(r, idx, "when");
    if (lua_getfield(L, idx, "arch") == LUA_TSTRING)
        c->arch = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    c->width = checked(r, idx, "", "width", "width", 1.0);
    c->subset = (int)checked(r, idx, "", "subset", "subset", 0);
    c->val = (int)checked(r, idx, "", "val", "val", 0);
    c->sparsity = checked(r, idx, "", "sparsity", "sparsity", 0);
    c->seed = (long)checked(r, idx, "", "seed", "seed", 1);
    c->target = numfield(L, idx, "target", 0);
    c->ntrain = (int)numfield(L, idx, "ntrain", 0);
    if (lua_getfield(L, idx, "hidden") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        for (int i = 0; i < n && i < PB_MAX_HIDDEN; i++) {
            lua_geti(L, -1, i + 1);
            c->hidden[c->nhidden++] = (int)checked_top(r, "hidden");
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "proto") == LUA_TUSERDATA) {
        model_ud *u = luaL_testudata(L, -1, MODEL_MT);
        c->proto = u ? u->m : NULL;
    }
    lua_pop(L, 1);
    /* the canonical model description: a Lua model's layer list, or the name */
    char *canon = NULL;
    if (lua_getfield(L, idx, "model_canon") == LUA_TSTRING)
        canon = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "model_ud") == LUA_TUSERDATA) {
        model_ud *u = luaL_testudata(L, -1, MODEL_MT);
        if (u && u->m) {
            size_t total, nz;
            double fe;
            pb_model_count_params(u->m, &total, &nz);
            pb_model_flops(u->m, &c->flops, &fe);
            c->params = (double)total;
            c->train_flops_ex = pb_model_train_flops(u->m);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "args") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        size_t total = 1;
        for (int i = 0; i < n && i < PB_JOB_MAX_ARGS; i++) {
            lua_geti(L, -1, i + 1);
            c->args[c->nargs++] = strdup(lua_tostring(L, -1));
            total += strlen(c->args[c->nargs - 1]) + 1;
            lua_pop(L, 1);
        }
        c->args_joined = calloc(total, 1);
        for (int i = 0; c->args_joined && i < c->nargs; i++) {
            if (i)
                strcat(c->args_joined, " ");
            strcat(c->args_joined, c->args[i]);
        }
    }
    lua_pop(L, 1);
    read_recipe(r, idx, "train", &c->train);
    read_recipe(r, idx, "finetune", &c->finetune);
    if (lua_getfield(L, idx, "train") == LUA_TTABLE)
        c->timeout_s = numfield(L, lua_gettop(L), "timeout", 0);
    lua_pop(L, 1);
    c->train.seed = c->finetune.seed = (uint64_t)c->seed;
    c->train.target_acc = c->finetune.target_acc = c->target;
    c->train.log_epochs = c->finetune.log_epochs = 0;
    c->train.progress = c->finetune.progress = 0;
    read_stages(r, idx, c);
    read_data(r, idx, c);
    /* model_canon is kept in config through the arch/proto description */
    c->config = canon; /* replaced by pb_cell_finish */
    if (r->rc == PB_OK)
        r->rc = pb_cell_finish(c, r->err, r->errlen);
}

static int read_experiments(lua_State *L, pb_experiment **out, int *nout, char *err, size_t errlen)
{
    reader r = {.L = L, .rc = PB_OK, .err = err, .errlen = errlen};
    int list = lua_gettop(L);
    int n = (int)luaL_len(L, list);
    pb_experiment *exps = calloc((size_t)(n ? n : 1), sizeof *exps);
    if (!exps)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    for (int e = 0; e < n && r.rc == PB_OK; e++) {
        pb_experiment *x = &exps[e];
        lua_geti(L, list, e + 1);
        int t = lua_gettop(L);
        x->name = dupfield(&r, t, "name");
        x->where = dupfield(&r, t, "where");
        lua_getfield(L, t, "plots");
        x->nplots = (int)luaL_len(L, -1);
        x->plots = calloc((size_t)x->nplots + 1, sizeof(char *));
        for (int i = 0; x->plots && i < x->nplots; i++) {
            lua_geti(L, -1, i + 1);
            x->plots[i] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, t, "cells");
        int nc = (int)luaL_len(L, -1);
        x->cells = calloc((size_t)nc, sizeof *x->cells);
        if (!x->cells || !x->plots) {
            r.rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
        }
        for (int i = 0; i < nc && r.rc == PB_OK; i++) {
            lua_geti(L, -1, i + 1);
            read_cell(&r, lua_gettop(L), &x->cells[i]);
            x->ncells++;
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    /* two cells with one configuration would share a result file */
    for (int e = 0; e < n && r.rc == PB_OK; e++)
        for (int i = 0; i < exps[e].ncells && r.rc == PB_OK; i++)
            for (int k = 0; k < i; k++)
                if (!strcmp(exps[e].cells[i].hash, exps[e].cells[k].hash)) {
                    r.rc = pb_err(err, errlen, PB_EUSAGE,
                                  "%s: experiment '%s': cells %d and %d have the same configuration "
                                  "(%s %s sparsity %g seed %ld); give one method a different label",
                                  exps[e].where, exps[e].name, k + 1, i + 1, exps[e].cells[i].model,
                                  exps[e].cells[i].label, exps[e].cells[i].sparsity, exps[e].cells[i].seed);
                    break;
                }
    if (r.rc != PB_OK) {
        pb_cell_free_experiments(exps, n);
        return r.rc;
    }
    *out = exps;
    *nout = n;
    return PB_OK;
}

/* Keeps the script's text under its chunk name ("@path") in the registry, so
 * the prelude can name the line a key is written on (pb.source) without
 * reading files itself. A script too large or unreadable keeps nothing: errors
 * then name the statement's line. */
static void keep_source(lua_State *L, const char *script)
{
    FILE *f = fopen(script, "rb");
    if (!f)
        return;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char chunk[4096];
    size_t n, total = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && total < (16u << 20)) {
        luaL_addlstring(&b, chunk, n);
        total += n;
    }
    int bad = ferror(f) || total >= (16u << 20);
    fclose(f);
    luaL_pushresult(&b);
    if (bad) {
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "pb.sources");
    lua_insert(L, -2);
    lua_pushfstring(L, "@%s", script);
    lua_insert(L, -2);
    lua_settable(L, -3);
    lua_pop(L, 1);
}

int pb_lua_run(pb_lua *s, const char *script, pb_experiment **exps, int *nexp, char *err,
               size_t errlen)
{
    lua_State *L = s->L;
    *exps = NULL;
    *nexp = 0;
    int top = lua_gettop(L);
    if (luaL_loadfilex(L, script, "t") != LUA_OK) {
        int rc = pb_err(err, errlen, PB_EUSAGE, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return rc;
    }
    keep_source(L, script);
    /* the script's _ENV: the prelude's functions over the standard globals,
     * or under --sandbox the prelude's closed environment */
    if (s->sandbox) {
        lua_getfield(L, LUA_REGISTRYINDEX, "pb.sandbox_env");
        int erc = pcall_tb(L, 0, 1, err, errlen);
        if (erc != PB_OK) {
            lua_settop(L, top);
            return erc;
        }
        lua_setupvalue(L, -2, 1);
    } else {
        lua_newtable(L);
        lua_getfield(L, LUA_REGISTRYINDEX, "pb.api");
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushglobaltable(L);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        lua_setupvalue(L, -2, 1);
    }
    int rc = pcall_tb(L, 0, 0, err, errlen);
    if (rc == PB_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, "pb.experiments");
        rc = pcall_tb(L, 0, 1, err, errlen);
    }
    if (rc == PB_OK) {
        if (luaL_len(L, -1) == 0)
            rc = pb_err(err, errlen, PB_EUSAGE, "%s: declares no experiment (use experiment \"name\" { ... })", script);
        else
            rc = read_experiments(L, exps, nexp, err, errlen);
    }
    /* which plugin files the cells use: in metadata, and for out-of-tree
     * plugins in the cell hashes */
    for (int e = 0; rc == PB_OK && e < *nexp; e++)
        rc = pb_cell_provenance(&(*exps)[e], s->plugin_path, err, errlen);
    if (rc != PB_OK && *exps) {
        pb_cell_free_experiments(*exps, *nexp);
        *exps = NULL;
        *nexp = 0;
    }
    lua_settop(L, top);
    return rc;
}

struct lua_State *pb_lua_state(pb_lua *s) { return s->L; }
