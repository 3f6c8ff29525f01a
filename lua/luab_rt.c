/*
 * luab_rt.c — the Lua runtime: runs, their limits, their tasks, and the
 * pump that resumes them from the event loop (see luab.h).
 *
 * A run is one lua_State, created with a counting allocator (the memory
 * cap) and a count hook installed on its main thread before any coroutine
 * exists, so every coroutine inherits it (lua_newthread copies hooks). The
 * hook adds up instructions (the budget) and, every few calls, compares the
 * clock with the slice deadline set each time Lua is entered: a script that
 * computes longer than lua.slice_ms without waiting is stopped. Stopping
 * ("dooming") a run records the reason; the hook raises it at every later
 * call and the sandbox's pcall/xpcall/coroutine.resume re-raise it, so no
 * script can catch its way out of a stop.
 *
 * Tasks are the run's top-level coroutines: the script's chunk (the main
 * task) and those made by hearth.spawn/timer. Lua code runs only from the
 * pump (a 0 ms loop timer) or from protected calls at start, never inside
 * a scheduler or tool callback: those queue an event on a struct luab_wait
 * and mark the waiting task ready. A task waits by yielding luab_sentinel
 * from C.next (luab_hearth.c); coroutines of the script forward that yield
 * up to the task (prelude.lua's coroutine wrappers). A run ends when no
 * task is left (result: the main task's return values) or at the first
 * error of any task (message plus the coroutine's traceback).
 *
 * Every entry into Lua is protected (lua_pcall with a traceback handler, or
 * lua_resume), and the run's memory cap gets 1 MiB of headroom while an
 * error is being reported, so an exhausted script still gets a traceback.
 */
#include "luab_impl.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOOK_COUNT 1000   /* instructions between hook calls */
#define CLOCK_EVERY 8     /* hook calls between clock reads */
#define REPORT_HEADROOM ((size_t)1 << 20)
#define MAX_SOURCE ((size_t)16 << 20)
#define DEFAULT_MAX_RUNS 32

char luab_sentinel;

/* ---- limits ------------------------------------------------------------------ */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct luab_run *r = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        r->mem -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > r->mem_cap - (r->mem < r->mem_cap ? r->mem : r->mem_cap)) {
        r->mem_hit = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    r->mem = r->mem - old + nsize;
    return p;
}

size_t luab_mem_left(const struct luab_run *r)
{
    return r->mem < r->mem_cap ? r->mem_cap - r->mem : 0;
}

void luab_doom(struct luab_run *r, const char *fmt, ...)
{
    if (r->doom[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->doom, sizeof r->doom, fmt, ap);
    va_end(ap);
    if (!r->doom[0])
        snprintf(r->doom, sizeof r->doom, "stopped");
}

static void check_limits(struct luab_run *r, bool clock)
{
    if (r->doom[0])
        return;
    if (r->instr > r->instr_cap)
        luab_doom(r,
                  "stopped: the script used up its instruction budget (%lld million "
                  "instructions, lua.instructions): a runaway loop?",
                  (long long)(r->instr_cap / 1000000));
    else if (clock && hd_now_ms() > r->slice_deadline)
        luab_doom(r,
                  "stopped: the script computed for more than %d ms without waiting for "
                  "anything (lua.slice_ms): a runaway loop or a slow library call?",
                  r->slice_ms);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct luab_run *r = luab_run_of(L);
    r->instr += HOOK_COUNT;
    check_limits(r, ++r->ticks % CLOCK_EVERY == 0);
    if (r->doom[0])
        luaL_error(L, "%s", r->doom);
}

void luab_watchdog(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    check_limits(r, true);
    if (r->doom[0])
        luaL_error(L, "%s", r->doom);
}

static int on_panic(lua_State *L)
{
    /* Every entry into Lua is protected: reaching this is a bug in hearthd. */
    const char *msg = lua_tostring(L, -1);
    hd_error("Lua panic (unprotected error): %s", msg ? msg : "?");
    abort();
}

static void enter(struct luab_run *r)
{
    if (r->depth++ == 0)
        r->slice_deadline = hd_now_ms() + r->slice_ms;
}

static void leave(struct luab_run *r)
{
    r->depth--;
}

/* ---- protected calls ----------------------------------------------------------- */

/* Message handler: the error message with the traceback appended. */
static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Splits "message\nstack traceback:\n..." into its parts (owned). */
static void split_error(const char *s, char **msg, char **tb)
{
    const char *t = s ? strstr(s, "\nstack traceback:\n") : NULL;
    *msg = t ? strndup(s, (size_t)(t - s)) : strdup(s ? s : "error");
    *tb = t ? strdup(t + 1) : NULL;
}

/* Calls fn in protected mode with a traceback handler; fn gets `ud` as a
 * light userdata at index 1. Returns the Lua status; on error *error (and
 * *tb, optional) get the message and traceback (owned). */
static int protect(struct luab_run *r, lua_CFunction fn, void *ud, char **error, char **tb)
{
    lua_State *L = r->L;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 4)) {
        *error = strdup("out of Lua stack");
        return LUA_ERRMEM;
    }
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    enter(r);
    int st = lua_pcall(L, 1, 0, top + 1);
    leave(r);
    if (st != LUA_OK) {
        char *m = NULL, *t = NULL;
        if (r->doom[0]) {
            m = strdup(r->doom);
        } else if (st == LUA_ERRMEM) {
            m = NULL;
        } else {
            split_error(lua_tostring(L, -1), &m, &t);
        }
        if (!m && st == LUA_ERRMEM) {
            char buf[160];
            snprintf(buf, sizeof buf, "the script ran out of memory (lua.memory: %zu MiB)",
                     r->mem_cap >> 20);
            m = strdup(buf);
        }
        *error = m;
        if (tb)
            *tb = t;
        else
            free(t);
    }
    lua_settop(L, top);
    return st;
}

/* ---- waits ---------------------------------------------------------------------- */

static void schedule_pump(struct luab_run *r);

struct luab_wait *luab_wait_new(struct luab_run *r, enum luab_wait_kind kind)
{
    struct luab_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->run = r;
    w->kind = kind;
    w->handle = true;
    w->next = r->waits;
    if (r->waits)
        r->waits->prev = w;
    r->waits = w;
    return w;
}

static void qev_free(struct luab_qev *e)
{
    free(e->text);
    json_decref(e->data);
    free(e);
}

static void wait_free(struct luab_wait *w)
{
    struct luab_run *r = w->run;
    if (w->task && w->task->wait == w)
        w->task->wait = NULL;
    while (w->head) {
        struct luab_qev *e = w->head;
        w->head = e->next;
        qev_free(e);
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        r->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

static void make_ready(struct luab_task *t)
{
    t->ready = true;
    schedule_pump(t->run);
}

int luab_wait_push(struct luab_wait *w, const char *kind, char *text, size_t len, json_t *data,
                   bool last)
{
    if (last)
        w->ended = true;
    if (!w->handle) {
        /* nobody reads it any more: drop the event, and w with the last one */
        free(text);
        json_decref(data);
        if (w->ended)
            wait_free(w);
        return 0;
    }
    int rc = 0;
    struct luab_qev *e = calloc(1, sizeof *e);
    if (!e) {
        free(text);
        json_decref(data);
        rc = -ENOMEM;
    } else {
        *e = (struct luab_qev){.kind = kind, .text = text, .len = len, .data = data};
        if (w->tail)
            w->tail->next = e;
        else
            w->head = e;
        w->tail = e;
    }
    if (w->task && w->task->wait == w) {
        struct luab_task *t = w->task;
        t->wait = NULL;
        w->task = NULL;
        make_ready(t);
    }
    return rc;
}

void luab_wait_release(struct luab_wait *w)
{
    struct luab_run *r = w->run;
    w->handle = false;
    if (w->task && w->task->wait == w)
        w->task->wait = NULL;
    w->task = NULL;
    if (!w->ended) {
        switch (w->kind) {
        case LW_REQUEST:
            /* DONE "cancelled" still comes: w goes then */
            if (hd_sched_cancel(r->rt->p.sched, r->client, w->req) == 0)
                return;
            break;
        case LW_TOOL:
            if (r->rt->p.gate)
                hd_gate_cancel(r->rt->p.gate, w->call);
            break;
        case LW_TIMER:
            if (w->timer)
                hd_loop_del_timer(r->rt->p.loop, w->timer);
            w->timer = 0;
            break;
        }
    }
    wait_free(w);
}

/* ---- tasks ---------------------------------------------------------------------- */

int64_t luab_task_spawn(lua_State *L, int nargs)
{
    struct luab_run *r = luab_run_of(L);
    luaL_checkstack(L, 2, "too many arguments");
    lua_State *co = lua_newthread(L); /* may raise: nothing is held yet */
    int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops co; may raise likewise */
    struct luab_task *t = NULL;
    if (!lua_checkstack(co, nargs + 1) || !(t = calloc(1, sizeof *t))) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        luaL_error(L, "out of memory");
    }
    /* nothing below raises */
    lua_xmove(L, co, nargs + 1); /* the function and its arguments */
    *t = (struct luab_task){.run = r, .co = co, .ref = ref, .nargs = nargs,
                            .id = ++r->next_task, .next = r->tasks};
    r->tasks = t;
    make_ready(t);
    return t->id;
}

static void task_free(struct luab_run *r, struct luab_task *t)
{
    for (struct luab_task **p = &r->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    for (struct luab_wait *w = r->waits; w; w = w->next)
        if (w->task == t)
            w->task = NULL;
    if (t->ref != LUA_NOREF)
        luaL_unref(r->L, LUA_REGISTRYINDEX, t->ref); /* existing slots: does not allocate */
    free(t);
}

void luab_task_kill(struct luab_run *r, int64_t id)
{
    for (struct luab_task *t = r->tasks; t; t = t->next) {
        if (t->id == id && t != r->current) {
            task_free(r, t);
            return;
        }
    }
}

void luab_emit(struct luab_run *r, const char *kind, json_t *data)
{
    if (!r->cancelled && !r->ended && r->sink.event)
        r->sink.event(r->sink_user, kind, data);
}

/* ---- ending --------------------------------------------------------------------- */

static void run_free(struct luab_run *r)
{
    struct luab_rt *rt = r->rt;
    if (r->pump_timer)
        hd_loop_del_timer(rt->p.loop, r->pump_timer);
    /* no request callback after this; then Lua's handles release the rest */
    hd_sched_drop_client(rt->p.sched, r->client);
    for (struct luab_wait *w = r->waits; w; w = w->next) {
        if (w->kind == LW_REQUEST)
            w->ended = true;
        w->task = NULL; /* the tasks go first */
    }
    while (r->tasks) {
        struct luab_task *t = r->tasks;
        r->tasks = t->next;
        free(t);
    }
    if (r->L)
        lua_close(r->L); /* handle __gc: cancels tool calls and timers, frees waits */
    while (r->waits) {
        struct luab_wait *w = r->waits;
        w->handle = false;
        if (!w->ended && w->kind == LW_TOOL && rt->p.gate)
            hd_gate_cancel(rt->p.gate, w->call);
        if (w->kind == LW_TIMER && w->timer)
            hd_loop_del_timer(rt->p.loop, w->timer);
        wait_free(w);
    }
    json_decref(r->result);
    free(r->workspace);
    if (r->prev)
        r->prev->next = r->next;
    else if (rt->runs == r)
        rt->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    rt->n_runs--;
    free(r);
}

/* Reports the end (unless cancelled) and frees the run. */
static void run_end(struct luab_run *r, bool ok, const char *error, const char *tb)
{
    r->ended = true;
    if (!r->cancelled && r->sink.done) {
        json_t *res = NULL;
        if (ok) {
            res = r->result ? r->result : json_array();
            if (r->kind == HD_RUN_AGENT) {
                json_t *first = json_array_get(res, 0);
                res = first ? first : json_null();
            }
        }
        struct hd_run_end e = {.ok = ok, .result = res, .error = error, .traceback = tb};
        if (!ok)
            hd_info("lua: %s '%s' failed: %s", r->kind == HD_RUN_AGENT ? "agent" : "script",
                    r->name, error ? error : "?");
        r->sink.done(r->sink_user, &e);
        if (res && res != r->result && r->kind != HD_RUN_AGENT)
            json_decref(res);
    }
    run_free(r);
}

struct tb_args {
    lua_State *co;
    const char *msg;
    char *out;
};

static int tb_fn(lua_State *L)
{
    struct tb_args *a = lua_touserdata(L, 1);
    luaL_traceback(L, a->co, a->msg, 0);
    a->out = strdup(lua_tostring(L, -1));
    return 0;
}

/* A task ended with an error: the run fails with its message and the
 * coroutine's traceback. */
static void task_failed(struct luab_run *r, struct luab_task *t, int st)
{
    lua_State *co = t->co;
    char *msg = NULL;
    if (r->doom[0]) {
        msg = strdup(r->doom);
    } else if (st == LUA_ERRMEM || (r->mem_hit && lua_type(co, -1) == LUA_TSTRING &&
                                    strstr(lua_tostring(co, -1), "not enough memory"))) {
        char buf[160];
        snprintf(buf, sizeof buf, "the script ran out of memory (lua.memory: %zu MiB)",
                 r->mem_cap >> 20);
        msg = strdup(buf);
    } else {
        const char *m = lua_tostring(co, -1);
        if (m)
            msg = strdup(m);
        else if (lua_type(co, -1) == LUA_TTABLE || lua_type(co, -1) == LUA_TUSERDATA)
            msg = strdup("(error object is not a string)");
        else
            msg = strdup("(error without a message)");
    }
    /* the traceback needs memory: give the report some room */
    r->mem_cap += REPORT_HEADROOM;
    struct tb_args a = {co, NULL, NULL};
    char *err = NULL;
    if (protect(r, tb_fn, &a, &err, NULL) != LUA_OK)
        free(err);
    run_end(r, false, msg ? msg : "error", a.out);
    free(msg);
    free(a.out);
}

/* ---- the pump --------------------------------------------------------------------- */

/* Resumes t once. Returns false when the run ended (and is freed). */
static bool resume_task(struct luab_run *r, struct luab_task *t)
{
    lua_State *co = t->co;
    int nargs = 0;
    if (!t->started) {
        t->started = true;
        nargs = t->nargs;
    }
    t->ready = false;
    r->current = t;
    enter(r);
    int nres = 0;
    int st = lua_resume(co, r->L, nargs, &nres);
    leave(r);
    r->current = NULL;
    if (r->cancelled) {
        run_free(r);
        return false;
    }
    if (st == LUA_YIELD) {
        bool sentinel = nres == 1 && lua_touserdata(co, -1) == &luab_sentinel;
        lua_pop(co, nres);
        if (sentinel && (t->wait || t->ready))
            return true;
        run_end(r, false,
                "coroutine.yield outside a coroutine (the script's own code cannot yield "
                "to hearth; use coroutine.create/resume)",
                NULL);
        return false;
    }
    if (st != LUA_OK) {
        task_failed(r, t, st);
        return false;
    }
    if (t->main) {
        json_t *arr = json_array();
        for (int i = 1; arr && i <= nres; i++) {
            const char *why;
            json_t *v = luab_to_json(co, lua_gettop(co) - nres + i, true, &why);
            json_array_append_new(arr, v ? v : json_null());
        }
        json_decref(r->result);
        r->result = arr;
    }
    lua_settop(co, 0);
    task_free(r, t);
    return true;
}

static void pump(void *user)
{
    struct luab_run *r = user;
    r->pump_timer = 0;
    /* each ready task once; tasks made ready again meanwhile get the next
     * pump (a new 0 ms timer), so other loop work interleaves */
    uint64_t gen = ++r->pump_gen;
    for (;;) {
        struct luab_task *t = r->tasks;
        while (t && !(t->ready && t->gen != gen))
            t = t->next;
        if (!t)
            break;
        t->gen = gen;
        if (!resume_task(r, t))
            return;
    }
    if (!r->tasks)
        run_end(r, true, NULL, NULL);
}

static void schedule_pump(struct luab_run *r)
{
    if (r->pump_timer || r->ended)
        return;
    int64_t t = hd_loop_add_timer(r->rt->p.loop, 0, false, pump, r);
    if (t > 0)
        r->pump_timer = t;
    else
        luab_doom(r, "stopped: cannot schedule the script (%s)", strerror((int)-t));
}

/* ---- starting ---------------------------------------------------------------------- */

struct setup_args {
    const struct hd_run_params *p;
    json_t *args;   /* script: array; agent: object */
    bool compile_error;
};

static int setup_fn(lua_State *L)
{
    struct setup_args *a = lua_touserdata(L, 1);
    struct luab_run *r = luab_run_of(L);
    lua_settop(L, 0);
    lua_pushcfunction(L, luab_sandbox_open);
    lua_call(L, 0, 0);
    if (r->kind == HD_RUN_SCRIPT) {
        char chunk[160];
        snprintf(chunk, sizeof chunk, "=%s", r->name);
        const char *src = a->p->source ? a->p->source : "";
        size_t len = a->p->source ? a->p->source_len : 0;
        if (len >= 4 && !memcmp(src, LUA_SIGNATURE, 4)) {
            a->compile_error = true;
            return luaL_error(L, "%s: binary chunks are not accepted; send the Lua source",
                              r->name);
        }
        if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) {
            a->compile_error = true;
            return lua_error(L);
        }
        size_t n = json_array_size(a->args);
        luaL_checkstack(L, (int)n + 4, "too many arguments");
        for (size_t i = 0; i < n; i++)
            luab_push_json(L, json_array_get(a->args, i));
        luab_task_spawn(L, (int)n);
    } else {
        lua_getglobal(L, "hearth");
        lua_getfield(L, -1, "agent"); /* loads the agent's source */
        if (!lua_istable(L, -1)) {
            a->compile_error = true;
            return luaL_error(L, "the agent script did not return a module table");
        }
        lua_getfield(L, -1, "run");
        luab_push_json(L, a->args);
        luab_task_spawn(L, 1);
    }
    r->tasks->main = true; /* the task just spawned is at the head */
    return 0;
}

static json_t *agent_args(const struct luab_rt *rt, const struct hd_run_params *p,
                          struct hr_err *err)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (p->options_json && p->options_json[0]) {
        json_error_t je;
        json_t *opt = json_loads(p->options_json, 0, &je);
        if (!json_is_object(opt)) {
            json_decref(opt);
            json_decref(o);
            hr_err_set(err, -EINVAL, -1, "agent options must be a JSON object");
            return NULL;
        }
        json_object_update(o, opt);
        json_decref(opt);
    }
    json_object_set_new(o, "task", json_string(p->task ? p->task : ""));
    if (p->tools_json && p->tools_json[0]) {
        json_error_t je;
        json_t *tl = json_loads(p->tools_json, 0, &je);
        if (!json_is_array(tl)) {
            json_decref(tl);
            json_decref(o);
            hr_err_set(err, -EINVAL, -1, "'tools' must be an array of tool names");
            return NULL;
        }
        json_object_set_new(o, "tools", tl);
    }
    json_object_set_new(o, "max_steps",
                        json_integer(p->max_steps > 0 ? p->max_steps : rt->p.agent_max_steps));
    if (!json_object_get(o, "timeout_ms"))
        json_object_set_new(o, "timeout_ms", json_integer(rt->p.agent_timeout_ms));
    return o;
}

static int rt_start(void *impl, const struct hd_run_params *p, const struct hd_run_sink *sink,
                    void *user, uint64_t *id, struct hr_err *err)
{
    struct luab_rt *rt = impl;
    hr_err_clear(err);
    if (!p || !sink || !sink->done)
        return hr_err_set(err, -EINVAL, -1, "bad run parameters");
    if (rt->stopping)
        return hr_err_set(err, -ESHUTDOWN, -1, "hearthd is shutting down");
    if (rt->n_runs >= rt->p.max_runs)
        return hr_err_set(err, -EBUSY, -1, "too many scripts running (%d): try again later",
                          rt->p.max_runs);
    if (p->kind == HD_RUN_SCRIPT && p->source_len > MAX_SOURCE)
        return hr_err_set(err, -EINVAL, -1, "the script is larger than %zu MiB",
                          MAX_SOURCE >> 20);
    if (p->kind == HD_RUN_AGENT && (!p->task || !p->task[0]))
        return hr_err_set(err, -EINVAL, -1, "the agent needs a task");
    struct setup_args sa = {.p = p};
    if (p->kind == HD_RUN_SCRIPT) {
        json_error_t je;
        sa.args = p->args_json && p->args_json[0] ? json_loads(p->args_json, 0, &je) : json_array();
        if (!json_is_array(sa.args)) {
            json_decref(sa.args);
            return hr_err_set(err, -EINVAL, -1, "the script's arguments must be a JSON array");
        }
    } else {
        sa.args = agent_args(rt, p, err);
        if (!sa.args)
            return err && err->msg[0] ? -EINVAL : hr_err_set(err, -ENOMEM, -1, "out of memory");
    }
    int rc = -ENOMEM;
    struct luab_run *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(sa.args);
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    }
    r->rt = rt;
    r->id = ++rt->next_id;
    r->kind = p->kind;
    snprintf(r->name, sizeof r->name, "%s",
             p->kind == HD_RUN_AGENT ? "agent" : p->name && p->name[0] ? p->name : "script");
    r->mem_cap = rt->p.memory;
    r->instr_cap = rt->p.instructions;
    r->slice_ms = rt->p.slice_ms;
    r->sink = *sink;
    r->sink_user = user;
    r->client = hd_sched_client_new(rt->p.sched);
    if (p->approver && p->approver->ask) {
        r->approver = *p->approver;
        r->has_approver = true;
    }
    r->next = rt->runs;
    if (rt->runs)
        rt->runs->prev = r;
    rt->runs = r;
    rt->n_runs++;
    if (p->workspace && !(r->workspace = strdup(p->workspace)))
        goto fail;
    r->L = lua_newstate(l_alloc, r);
    if (!r->L)
        goto fail;
    *(struct luab_run **)lua_getextraspace(r->L) = r;
    lua_atpanic(r->L, on_panic);
    lua_sethook(r->L, count_hook, LUA_MASKCOUNT, HOOK_COUNT);
    char *msg = NULL;
    r->setup_args = sa.args;
    int st = protect(r, setup_fn, &sa, &msg, NULL);
    r->setup_args = NULL;
    if (st != LUA_OK) {
        rc = sa.compile_error || st != LUA_ERRMEM ? -EINVAL : -ENOMEM;
        hr_err_set(err, rc, -1, "%s", msg ? msg : "cannot start the script");
        free(msg);
        goto fail;
    }
    json_decref(sa.args);
    *id = r->id;
    return 0;
fail:
    json_decref(sa.args);
    r->cancelled = true;
    run_free(r);
    if (err && !err->msg[0])
        hr_err_set(err, rc, -1, "out of memory");
    return rc;
}

static void rt_cancel(void *impl, uint64_t id)
{
    struct luab_rt *rt = impl;
    for (struct luab_run *r = rt->runs; r; r = r->next) {
        if (r->id != id || r->cancelled)
            continue;
        r->cancelled = true;
        if (r->depth > 0)
            luab_doom(r, "cancelled"); /* freed when Lua returns */
        else
            run_free(r);
        return;
    }
}

/* ---- the runtime ---------------------------------------------------------------- */

void luab_rt_params_init(struct luab_rt_params *p, const struct hd_config *cfg,
                         const char *config_dir)
{
    static char agent_path[4096];
    *p = (struct luab_rt_params){
        .memory = (size_t)64 << 20,
        .instructions = (int64_t)2000 * 1000000,
        .slice_ms = 2000,
        .agent_max_steps = 12,
        .agent_timeout_ms = 600000,
        .max_runs = DEFAULT_MAX_RUNS,
    };
    if (!cfg)
        return;
    p->memory = cfg->lua.memory;
    p->instructions = (int64_t)cfg->lua.instructions * 1000000;
    p->slice_ms = cfg->lua.slice_ms;
    p->allow_io = cfg->lua.allow_io;
    p->allow_os = cfg->lua.allow_os;
    p->allow_debug = cfg->lua.allow_debug;
    p->allow_modules = cfg->lua.allow_modules;
    p->agent_max_steps = cfg->agent.max_steps;
    p->agent_timeout_ms = cfg->agent.timeout * 1000;
    p->agent_script = cfg->agent.script;
    if (!p->agent_script && config_dir) {
        struct stat st;
        int n = snprintf(agent_path, sizeof agent_path, "%s/agent.lua", config_dir);
        if (n > 0 && (size_t)n < sizeof agent_path && stat(agent_path, &st) == 0 &&
            S_ISREG(st.st_mode))
            p->agent_script = agent_path;
    }
}

static int check_params(const struct luab_rt_params *p, struct hr_err *err)
{
    if (!p || !p->loop || !p->sched)
        return hr_err_set(err, -EINVAL, -1, "the Lua runtime needs the loop and the scheduler");
    if (p->memory < ((size_t)1 << 20) || p->instructions < 1000000 || p->slice_ms <= 0 ||
        p->agent_max_steps <= 0 || p->agent_timeout_ms <= 0 || p->max_runs < 0)
        return hr_err_set(err, -EINVAL, -1, "Lua limits out of range");
    return 0;
}

static int apply(struct luab_rt *rt, const struct luab_rt_params *p, struct hr_err *err)
{
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    char *script = NULL;
    if (p->agent_script && !(script = strdup(p->agent_script)))
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    free(rt->agent_script);
    rt->agent_script = script;
    rt->p = *p;
    rt->p.agent_script = rt->agent_script;
    if (rt->p.max_runs == 0)
        rt->p.max_runs = DEFAULT_MAX_RUNS;
    return 0;
}

int luab_rt_new(const struct luab_rt_params *p, struct luab_rt **out, struct hr_err *err)
{
    hr_err_clear(err);
    struct luab_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    int rc = apply(rt, p, err);
    if (rc < 0) {
        free(rt);
        return rc;
    }
    rt->runner = (struct hd_runner){.impl = rt, .start = rt_start, .cancel = rt_cancel};
    *out = rt;
    return 0;
}

int luab_rt_update(struct luab_rt *rt, const struct luab_rt_params *p, struct hr_err *err)
{
    hr_err_clear(err);
    return apply(rt, p, err);
}

void luab_rt_stop(struct luab_rt *rt)
{
    if (!rt)
        return;
    rt->stopping = true;
    /* each run ends with an error its client sees; none is inside Lua now
     * (this runs from a signal handler on the loop, between callbacks) */
    while (rt->runs)
        run_end(rt->runs, false, "stopped: hearthd is shutting down", NULL);
}

void luab_rt_free(struct luab_rt *rt)
{
    if (!rt)
        return;
    while (rt->runs) {
        rt->runs->cancelled = true;
        run_free(rt->runs);
    }
    free(rt->agent_script);
    free(rt);
}

const struct hd_runner *luab_rt_runner(struct luab_rt *rt)
{
    return &rt->runner;
}

int luab_rt_n_runs(const struct luab_rt *rt)
{
    return rt ? rt->n_runs : 0;
}
