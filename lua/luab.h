/*
 * luab.h — hearthd's Lua 5.4 runtime: scripts and the agent loop, run
 * inside the daemon on its event loop (docs/lua.md, docs/agent.md).
 *
 * Each run (a script, or the agent on a task) gets its own lua_State: its
 * own environment, its own memory cap (a counting lua_Alloc), its own
 * instruction budget (a count hook) and a time slice: a script may run at
 * most lua.slice_ms milliseconds before it waits for something (the model,
 * a tool, a timer) — a watchdog in the count hook and in the library's
 * long C functions (pattern matching) stops it with an error otherwise, so
 * no script can hold the loop. Everything a script waits for is
 * asynchronous: a waiting script is a suspended coroutine, resumed from the
 * loop when its tokens, tool results or timers arrive.
 *
 * Frontends reach runs through struct hd_runner (daemon/agent.h);
 * daemon/main.c creates the runtime and hands its runner to them.
 *
 * Threading: the loop thread only.
 */
#ifndef HEARTH_LUA_LUAB_H
#define HEARTH_LUA_LUAB_H

#include "agent.h"
#include "config.h"
#include "loop.h"
#include "policy.h"
#include "scheduler.h"
#include "tools.h"

#include <hearth/hearth.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct luab_rt;

/* How to run scripts; pointers are borrowed: loop, sched, tools and policy
 * must outlive the runtime (tools and policy may be NULL: no tools);
 * strings only for the duration of luab_rt_new / luab_rt_update. */
struct luab_rt_params {
    struct hd_loop *loop;
    struct hd_sched *sched;
    struct hd_tools *tools;
    struct hd_gate *gate;
    size_t memory;        /* bytes per run */
    int64_t instructions; /* VM instructions per run */
    int slice_ms;         /* longest stretch a run may compute without waiting */
    bool allow_io, allow_os, allow_debug, allow_modules;
    const char *agent_script; /* the agent's source file; NULL: the built-in lua/agent.lua */
    int agent_max_steps;
    int agent_timeout_ms;
    int max_runs;         /* runs at once; 0: 32 */
};

/* From cfg (lua.*, agent.*; agent.script unset: agent.lua in config_dir when
 * it exists), or the defaults (64 MiB, 2e9 instructions, 2 s, nothing
 * allowed, 12 steps, 600 s) when cfg is NULL. config_dir may be NULL.
 * Strings point into cfg or into a static buffer (valid until the next
 * call). */
void luab_rt_params_init(struct luab_rt_params *p, const struct hd_config *cfg,
                         const char *config_dir);

/* Returns 0 and *out (owned: luab_rt_free), or -EINVAL (bad params; err
 * says which), -ENOMEM. */
int luab_rt_new(const struct luab_rt_params *p, struct luab_rt **out, struct hr_err *err);
/* Applies reloaded settings to runs started from now on. 0 or -EINVAL. */
int luab_rt_update(struct luab_rt *rt, const struct luab_rt_params *p, struct hr_err *err);
/* Ends every run with the error "hearthd is shutting down" (reported to
 * its frontend) and refuses new ones (-ESHUTDOWN): called when hearthd
 * stops, so that no script keeps the scheduler busy. Not from inside a
 * run's callback. Accepts NULL. */
void luab_rt_stop(struct luab_rt *rt);
/* Cancels every run (no callbacks) and frees the runtime. Accepts NULL. */
void luab_rt_free(struct luab_rt *rt);

/* The runtime as frontends use it. Borrowed: valid until luab_rt_free. */
const struct hd_runner *luab_rt_runner(struct luab_rt *rt);

/* Runs in progress (for status and tests). */
int luab_rt_n_runs(const struct luab_rt *rt);

#endif
