/*
 * luab_impl.h — what the files of the Lua runtime share.
 *
 *   luab_rt.c       the runtime and its runs: states, the allocator and the
 *                   limits, tasks (coroutines) and the pump that resumes them
 *   luab_sandbox.c  the environment each script gets (safe libraries)
 *   luab_pattern.c  string.find/match/gmatch/gsub with a watchdog, and the
 *                   bounded string.rep and table functions
 *   luab_json.c     Lua values <-> jansson, hearth.json
 *   luab_hearth.c   the C primitives of the hearth module (prelude.lua is
 *                   the module, written over them)
 *
 * Ownership across the Lua boundary (STYLE.md 8): nothing a C function
 * called from Lua allocates outside Lua is held while it calls a Lua API
 * function that may raise; such resources live in userdata with a __gc
 * (luab_box) or in records owned by the run (struct luab_wait), which the
 * run frees when it ends.
 */
#ifndef HEARTH_LUA_LUAB_IMPL_H
#define HEARTH_LUA_LUAB_IMPL_H

#include "luab.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct luab_run;
struct luab_task;

struct luab_rt {
    struct luab_rt_params p;
    char *agent_script;     /* owned copy of p.agent_script */
    struct hd_runner runner;
    struct luab_run *runs;
    int n_runs;
    uint64_t next_id;
    bool stopping;          /* luab_rt_stop: no new runs */
};

/* ---- waiting ------------------------------------------------------------------ */

enum luab_wait_kind { LW_REQUEST, LW_TOOL, LW_TIMER };

/* One queued event of a wait. */
struct luab_qev {
    struct luab_qev *next;
    const char *kind; /* static: "text", "done", "error", "result", "timer" */
    char *text;       /* owned, may be NULL */
    size_t len;
    json_t *data;     /* owned, may be NULL */
};

/* Something a task can wait for: a model request, a tool call, a timer.
 * Owned by the run (run->waits); a Lua handle userdata points at it until
 * it is collected (then `handle` is false and the wait is cancelled). A
 * wait is freed when nothing can refer to it any more: no handle and no
 * callback to come — or when the run ends. */
struct luab_wait {
    struct luab_wait *next, *prev;
    struct luab_run *run;
    enum luab_wait_kind kind;
    struct luab_task *task;  /* waiting on this, or NULL */
    struct luab_qev *head, *tail;
    bool handle;             /* a Lua handle refers to it */
    bool ended;              /* the last event has been queued: no callback to come */
    bool text_events;        /* LW_REQUEST: queue the answer's pieces (a streaming callback) */
    uint64_t req;            /* LW_REQUEST: the scheduler's id */
    int64_t call;            /* LW_TOOL: hd_gate_call id */
    int64_t timer;           /* LW_TIMER: loop timer id; 0 after it fired */
};

/* A top-level coroutine of a run. */
struct luab_task {
    struct luab_task *next;
    struct luab_run *run;
    int64_t id;
    lua_State *co;     /* anchored in the registry by `ref` */
    int ref;
    int nargs;         /* first resume: the function and its arguments are on co */
    bool started;
    bool ready;        /* will be resumed by the pump */
    bool main;         /* the script's chunk: its results are the run's */
    uint64_t gen;      /* the pump that last resumed it */
    struct luab_wait *wait; /* what it waits for, or NULL */
};

struct luab_run {
    struct luab_run *next, *prev;
    struct luab_rt *rt;
    uint64_t id;
    enum hd_run_kind kind;
    char name[128];
    lua_State *L;
    /* limits */
    size_t mem, mem_cap;
    bool mem_hit;           /* an allocation was refused */
    int64_t instr, instr_cap;
    int slice_ms;
    int64_t slice_deadline; /* while Lua runs: hd_now_ms() past which it is stopped */
    unsigned ticks;
    char doom[256];         /* non-empty: the run is being stopped, for this reason */
    int depth;              /* > 0 while inside Lua (resume or pcall) */
    bool cancelled;         /* the frontend cancelled: no callbacks, free when out of Lua */
    bool ended;             /* done was (or is being) reported */
    /* who to tell */
    struct hd_run_sink sink;
    void *sink_user;
    uint64_t client;        /* the run's own scheduler client */
    char *workspace;
    struct hd_approver approver;
    bool has_approver;
    /* tasks */
    struct luab_task *tasks;
    struct luab_task *current; /* being resumed */
    int64_t next_task;
    int64_t pump_timer;
    uint64_t pump_gen;
    struct luab_wait *waits;
    json_t *result;         /* the main task's return values (an array), once it ended */
    const json_t *setup_args; /* during start only: the script's arguments or the agent's */
};

/* The run a state belongs to (kept in the extra space of every thread). */
static inline struct luab_run *luab_run_of(lua_State *L)
{
    return *(struct luab_run **)lua_getextraspace(L);
}

/* ---- luab_rt.c ------------------------------------------------------------------ */

/* Raises the run's stop reason when it is being stopped or past its time
 * slice; long C functions call it every few thousand steps. */
void luab_watchdog(lua_State *L);
/* Stops the run (the reason is reported; later hooks raise it again, and
 * pcall does not catch it). */
void luab_doom(struct luab_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes the run may still allocate. */
size_t luab_mem_left(const struct luab_run *r);

/* A new wait of the run, linked (owned by the run). NULL without memory. */
struct luab_wait *luab_wait_new(struct luab_run *r, enum luab_wait_kind kind);
/* Queues an event on w (steals text and data) and wakes its task. `last`:
 * no callback will come after this one. Returns 0 or -ENOMEM (the event is
 * dropped: the waiting task then sees the wait end). */
int luab_wait_push(struct luab_wait *w, const char *kind, char *text, size_t len, json_t *data,
                   bool last);
/* The handle is gone: cancels what is in flight and frees w when nothing
 * can call back any more. */
void luab_wait_release(struct luab_wait *w);

/* Starts a task running the function at the top of L's stack under the
 * n arguments above it (all popped). Raises on memory errors. */
int64_t luab_task_spawn(lua_State *L, int nargs);
/* Ends a task of the run (not the running one): it never runs again. */
void luab_task_kill(struct luab_run *r, int64_t id);

/* Reports an event to the run's frontend (no-op once cancelled). */
void luab_emit(struct luab_run *r, const char *kind, json_t *data);

/* The light userdata value every hearth wait yields. */
extern char luab_sentinel;

/* ---- luab_sandbox.c -------------------------------------------------------------- */

/* Fills the globals of a fresh state with the safe libraries (per the
 * runtime's allow_* settings) and the hearth module. Call through
 * lua_pcall (raises). */
int luab_sandbox_open(lua_State *L);

/* ---- luab_pattern.c -------------------------------------------------------------- */

/* Replaces string.find/match/gmatch/gsub/rep and table.insert/remove/move
 * in the table at the top of the stack's string and table libraries (see
 * the file). Raises. */
void luab_pattern_install(lua_State *L, int string_idx, int table_idx);

/* ---- luab_json.c ------------------------------------------------------------------ */

/* A userdata that owns C memory until it is collected: the way C functions
 * keep jansson values and malloc'd text across Lua calls that may raise. */
struct luab_box {
    json_t *json;
    char *text;
};
/* Pushes a new empty box (raises on memory errors). */
struct luab_box *luab_box_push(lua_State *L);

/* Converts the Lua value at idx to JSON without raising: tables with the
 * array marker or keys 1..n are arrays, others objects (string or integer
 * keys); hearth.json.null is null. lenient: values JSON cannot hold
 * (functions, ...) become their type name instead of failing. Returns a
 * new reference, or NULL with why (static) set. */
json_t *luab_to_json(lua_State *L, int idx, bool lenient, const char **why);
/* Pushes the Lua value of j (objects and arrays as tables with their
 * marker metatables, null as hearth.json.null). Raises. */
void luab_push_json(lua_State *L, const json_t *j);
/* Registers hearth.json's functions into the table at the top of the stack
 * and creates the marker metatables and null. Raises. */
void luab_json_open(lua_State *L);

/* ---- luab_hearth.c ----------------------------------------------------------------- */

/* Pushes the table of C primitives prelude.lua builds the hearth module
 * from. Raises. */
void luab_hearth_push_primitives(lua_State *L);

/* Embedded Lua sources (generated from lua/prelude.lua and lua/agent.lua). */
extern const char luab_src_prelude[];
extern const size_t luab_src_prelude_len;
extern const char luab_src_agent[];
extern const size_t luab_src_agent_len;

#endif
