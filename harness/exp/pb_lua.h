/* pb_lua: the embedded Lua 5.4 state that runs experiment scripts — the C
 * bindings the prelude (lua/prelude.lua) builds on, and the reading of the
 * expanded matrix (Lua tables) into cells (pb_cell.h). */
#ifndef PB_LUA_H
#define PB_LUA_H

#include <stddef.h>

#include "pb_cell.h"

typedef struct pb_lua pb_lua;

/* The prelude a state loads: $PRUNEBENCH_LUADIR's, the source tree's for a
 * program run from its build tree, else the installed one. */
void pb_lua_prelude_path(char *buf, size_t n);

/* Opens a state with the standard libraries and the prelude. plugin_path and
 * data_dir may be NULL. */
int pb_lua_open(pb_lua **out, const char *plugin_path, const char *data_dir, char *err,
                size_t errlen);
/* Runs a script and returns its expanded experiments. A Lua error is returned
 * as PB_EUSAGE with err = "file.lua:LINE: message" (plus a traceback if
 * with_traceback). */
int pb_lua_run(pb_lua *s, const char *script, pb_experiment **exps, int *nexp, char *err,
               size_t errlen);
/* Under the sandbox (on != 0), scripts run by pb_lua_run see only the
 * experiment language, string, table, math, utf8, coroutine, a few os
 * clocks, print and load of text (see sandbox_env in lua/prelude.lua), and
 * cannot name a method plugin by its file. */
void pb_lua_set_sandbox(pb_lua *s, int on);
void pb_lua_close(pb_lua *s);
/* The state itself, for a caller that restricts it further (the fuzz target
 * removes os and io and bounds memory and instructions). */
struct lua_State *pb_lua_state(pb_lua *s);

#endif
