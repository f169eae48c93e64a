#include "pb_fuzz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "engine/pb_ckpt.h"
#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "exp/pb_csv.h"
#include "exp/pb_lua.h"
#include "exp/pb_store.h"

/* One scratch directory per process, removed at exit. */
static char scratch[4096];

static void remove_scratch(void)
{
    static const char *const names[] = {"in.idx", "test_batch.bin", "cells/0123456789abcdef.row",
                                        "cells/0123456789abcdef.log", "script.lua", "cells", NULL};
    char path[4200];
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", scratch, names[i]);
        remove(path);
    }
    rmdir(scratch);
}

static const char *scratch_dir(void)
{
    if (!scratch[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/pb_fuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(scratch)) {
            perror("mkdtemp");
            abort();
        }
        char cells[4200];
        snprintf(cells, sizeof cells, "%s/cells", scratch);
        mkdir(cells, 0700);
        atexit(remove_scratch);
    }
    return scratch;
}

/* Writes the input to dir/name; a failure is the harness's, so it aborts. */
static void put_file(const char *name, const uint8_t *data, size_t size, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", scratch_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

int pb_fuzz_ckpt(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    if (size >= 4) {
        uint32_t crc = (uint32_t)crc32_z(0L, buf, size - 4);
        memcpy(buf + size - 4, &crc, 4);
    }
    pb_model m;
    int rc = pb_ckpt_load_mem(&m, buf, size, "fuzz.pb", 1, 1, err, errlen);
    if (rc == 0) {
        /* an accepted model must also run: one forward of a zero input, when it is small */
        size_t in = (size_t)m.ic * m.ih * m.iw, total = 0, nz = 0;
        pb_model_count_params(&m, &total, &nz);
        int gen = 0;
        for (int i = 0; i < m.nparams; i++)
            gen |= m.params[i]->generated;
        /* the work of a forward, roughly: outputs times their window; a
         * valid but costly model (avgpool of a 64x64 window) is no bug */
        double work = 0;
        for (int i = 0; i < m.nlayers; i++) {
            const pb_layer *l = &m.layers[i];
            double win = l->k > 1 ? (double)l->k * l->k : 1;
            work += (double)pb_layer_osize(l) * win * (l->kind == PB_CONV ? l->ic : 1);
            if (l->kind == PB_ATTN)
                work += (double)l->ih * l->ih * l->oc; /* T x T scores per head of k dimensions */
        }
        if (!gen && in <= (1u << 14) && total <= (1u << 16) && work <= (1 << 22)) {
            float *x = calloc(in, sizeof(float));
            if (x) {
                pb_model_infer(&m, x, 1);
                free(x);
            }
        }
        pb_model_free(&m);
    }
    free(buf);
    return rc;
}

int pb_fuzz_idx(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    if (size < 1) {
        snprintf(err, errlen, "empty input");
        return -1;
    }
    char path[4200];
    put_file("in.idx", data + 1, size - 1, path, sizeof path);
    uint8_t *x = NULL;
    int dims[3];
    int rc = pb_idx_read(path, 1 + data[0] % 3, &x, dims, err, errlen);
    if (rc == 0) {
        /* every byte the dimensions promise must be there */
        volatile uint8_t sum = 0;
        size_t n = (size_t)dims[0] * dims[1] * dims[2];
        for (size_t i = 0; i < n; i++)
            sum ^= x[i];
        (void)sum;
    }
    free(x);
    return rc;
}

int pb_fuzz_cifar(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    char path[4200];
    put_file("test_batch.bin", data, size, path, sizeof path);
    pb_dataset d;
    int rc = pb_data_load("cifar10", scratch_dir(), PB_SPLIT_TEST, &d, err, errlen);
    if (rc == 0) {
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * d.c * d.h * d.w; i++)
            sum ^= d.x[i];
        for (int i = 0; i < d.n; i++)
            sum ^= d.y[i];
        (void)sum;
        pb_data_free(&d);
    }
    return rc;
}

int pb_fuzz_row(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    /* the experiment and cell of the seed rows, so mutations of them get past
     * the name and hash checks into the fields */
    static pb_experiment x = {.name = "sharing_lenet5"};
    static pb_store s;
    static pb_cell c;
    char path[4200];
    s.x = &x;
    snprintf(s.cells, sizeof s.cells, "%s/cells", scratch_dir());
    snprintf(c.hash, sizeof c.hash, "0123456789abcdef");
    put_file("cells/0123456789abcdef.row", data, size, path, sizeof path);
    put_file("cells/0123456789abcdef.log", data, size, path, sizeof path);
    char status[64], reason[512], line[512];
    double acc;
    char why[1024];
    int kind = pb_store_cell_check(&s, &c, why, sizeof why);
    int rc = pb_store_row_status(&s, &c, status, sizeof status, reason, sizeof reason, &acc);
    if (rc != 0)
        snprintf(err, errlen, "%s/0123456789abcdef.row: %s", s.cells,
                 kind == PB_STORE_CELL_DAMAGED ? why : "no status in the row");
    pb_store_last_log_line(&s, &c, line, sizeof line);
    /* the same bytes as a results CSV read back by plot, report and resume */
    pb_csv_table t;
    snprintf(path, sizeof path, "%s/cells/0123456789abcdef.row", scratch_dir());
    char cerr[512];
    if (pb_csv_read(path, &t, cerr, sizeof cerr) == 0) {
        volatile double sum = 0;
        for (int r = 0; r < t.nrows; r++)
            for (int k = -1; k <= t.ncols; k++) {
                sum += (double)strlen(pb_csv_get(&t, r, k));
                sum += pb_csv_getnum(&t, r, k);
            }
        (void)sum;
        pb_csv_col(&t, "status");
        pb_csv_table_free(&t);
    } else if (rc == 0) {
        snprintf(err, errlen, "%s", cerr);
        rc = -1;
    }
    return rc;
}

/* ---- the Lua front end ---- */

static pb_lua *lua_front;
static long lua_budget;  /* bytes the scripts' state may still take */
static int lua_steps;    /* count-hook calls left in this run */

static void *bounded_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    long old = ptr ? (long)osize : 0;
    if (nsize == 0) {
        free(ptr);
        lua_budget += old;
        return NULL;
    }
    if ((long)nsize - old > lua_budget)
        return NULL; /* Lua raises "not enough memory" */
    void *q = realloc(ptr, nsize);
    if (q)
        lua_budget -= (long)nsize - old;
    return q;
}

static void step_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (--lua_steps < 0)
        luaL_error(L, "fuzz: instruction budget exhausted");
}

static void close_front(void)
{
    pb_lua_close(lua_front);
    lua_front = NULL;
}

int pb_fuzz_lua(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    if (!lua_front) {
        char e[1024];
        if (pb_lua_open(&lua_front, NULL, NULL, e, sizeof e) != 0) {
            fprintf(stderr, "pb_fuzz_lua: %s\n", e);
            abort();
        }
        lua_State *L = pb_lua_state(lua_front);
        /* what a fuzzed script must not reach: the file system, processes, C modules */
        static const char *const banned[] = {"os", "io", "package", "require", "dofile", "loadfile",
                                             "load", "collectgarbage", NULL};
        for (int i = 0; banned[i]; i++) {
            lua_pushnil(L);
            lua_setglobal(L, banned[i]);
        }
        /* the prelude reports lines through debug.getinfo; keep only what reads */
        lua_getglobal(L, "debug");
        lua_createtable(L, 0, 2);
        lua_getfield(L, -2, "getinfo");
        lua_setfield(L, -2, "getinfo");
        lua_getfield(L, -2, "traceback");
        lua_setfield(L, -2, "traceback");
        lua_setglobal(L, "debug");
        lua_pop(L, 1);
        lua_budget = 256L << 20;
        lua_setallocf(L, bounded_alloc, NULL);
        lua_sethook(L, step_hook, LUA_MASKCOUNT, 1000);
        atexit(close_front);
    }
    char path[4200];
    put_file("script.lua", data, size, path, sizeof path);
    lua_steps = 2000; /* 2 million instructions */
    pb_experiment *exps = NULL;
    int nexp = 0;
    int rc = pb_lua_run(lua_front, path, &exps, &nexp, err, errlen);
    if (rc == 0)
        pb_cell_free_experiments(exps, nexp);
    return rc;
}

pb_fuzz_fn pb_fuzz_find(const char *name)
{
    static const struct { const char *name; pb_fuzz_fn fn; } targets[] = {
        {"ckpt", pb_fuzz_ckpt}, {"idx", pb_fuzz_idx}, {"cifar", pb_fuzz_cifar},
        {"row", pb_fuzz_row}, {"lua", pb_fuzz_lua}};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (!strcmp(targets[i].name, name))
            return targets[i].fn;
    return NULL;
}
