/*
 * luab_hearth.c — the C primitives under the hearth module (prelude.lua
 * builds the module from them; scripts never see this table).
 *
 * Waiting. C.submit, C.tool_call and C.timer return a handle (userdata)
 * on a struct luab_wait; C.next(handle) returns its next event — at once
 * when one is queued, else it records the running task as waiting and
 * yields luab_sentinel (lua_yieldk, continued by next_k when the task is
 * resumed). Events: "text" piece, "done" text info, "error" message,
 * "result" table, "timer". After the last event, C.next returns nil.
 *
 * Memory discipline (STYLE.md 8): C memory that must outlive a Lua call
 * that can raise lives in a luab_box pushed before it is allocated; a
 * handle is pushed before its request or call is started, with its wait
 * marked ended until then, so a raise never leaves a request nobody can
 * cancel.
 */
#include "luab_impl.h"

#include "../ipc/params.h"
#include "log.h"
#include "toolcall.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDLE_MT "hearth.wait"

struct handle {
    struct luab_wait *w;
};

static int handle_gc(lua_State *L)
{
    struct handle *h = luaL_checkudata(L, 1, HANDLE_MT);
    if (h->w) {
        luab_wait_release(h->w);
        h->w = NULL;
    }
    return 0;
}

/* Pushes a handle (not yet pointing at a wait). Raises. */
static struct handle *handle_push(lua_State *L)
{
    struct handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->w = NULL;
    if (luaL_newmetatable(L, HANDLE_MT)) {
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "hearth.wait");
        lua_setfield(L, -2, "__name");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    return h;
}

/* A new wait for handle h, ended until its work is started. Raises. */
static struct luab_wait *handle_wait(lua_State *L, struct handle *h, enum luab_wait_kind kind)
{
    struct luab_wait *w = luab_wait_new(luab_run_of(L), kind);
    if (!w)
        luaL_error(L, "out of memory");
    w->ended = true;
    h->w = w;
    return w;
}

/* ---- waiting ------------------------------------------------------------------ */

/* Pushes the first queued event's values and drops it. */
static int push_event(lua_State *L, struct luab_wait *w)
{
    struct luab_qev *e = w->head;
    luaL_checkstack(L, 3, NULL);
    lua_pushstring(L, e->kind);
    int n = 1;
    if (e->text) {
        lua_pushlstring(L, e->text, e->len);
        n++;
    }
    if (e->data) {
        if (!e->text) {
            lua_pushnil(L); /* keeps positions: kind, text, data */
            n++;
        }
        luab_push_json(L, e->data);
        n++;
    }
    /* pushed: only now is the event dropped (a raise above keeps it queued) */
    w->head = e->next;
    if (!w->head)
        w->tail = NULL;
    free(e->text);
    json_decref(e->data);
    free(e);
    return n;
}

static int next_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    struct handle *h = luaL_checkudata(L, 1, HANDLE_MT);
    struct luab_wait *w = h->w;
    lua_settop(L, 1);
    if (!w || (!w->head && w->ended)) {
        lua_pushnil(L);
        return 1;
    }
    if (w->head)
        return push_event(L, w);
    struct luab_run *r = luab_run_of(L);
    if (!r->current)
        return luaL_error(L, "hearth: nothing to wait in here");
    if (!lua_isyieldable(L))
        return luaL_error(L, "hearth: cannot wait here (inside a metamethod, an iterator of a C "
                             "function, a table.sort comparison or a gsub replacement)");
    w->task = r->current;
    r->current->wait = w;
    lua_pushlightuserdata(L, &luab_sentinel);
    return lua_yieldk(L, 1, 0, next_k);
}

static int l_next(lua_State *L)
{
    return next_k(L, LUA_OK, 0);
}

static int l_cancel(lua_State *L)
{
    struct handle *h = luaL_checkudata(L, 1, HANDLE_MT);
    struct luab_wait *w = h->w;
    struct luab_run *r = luab_run_of(L);
    if (w && !w->ended) {
        if (w->kind == LW_REQUEST)
            hd_sched_cancel(r->rt->p.sched, r->client, w->req); /* DONE follows */
        else {
            h->w = NULL;
            luab_wait_release(w);
        }
    }
    return 0;
}

/* ---- model requests --------------------------------------------------------------- */

static void on_req_event(void *user, const struct hd_event *ev)
{
    struct luab_wait *w = user;
    switch (ev->type) {
    case HD_EV_TEXT:
        if (w->text_events && ev->len > 0) {
            char *t = malloc(ev->len + 1);
            if (t) {
                memcpy(t, ev->text, ev->len);
                t[ev->len] = 0;
            }
            luab_wait_push(w, "text", t, t ? ev->len : 0, NULL, false);
        }
        return;
    case HD_EV_DONE: {
        const struct hd_usage *u = &ev->usage;
        json_t *info = json_pack("{s:s, s:{s:i, s:i, s:i, s:i}}", "finish_reason",
                                 ev->finish_reason ? ev->finish_reason : "stop", "usage",
                                 "prompt_tokens", u->prompt_tokens, "cached_tokens",
                                 u->cached_tokens, "evaluated_tokens", u->evaluated_tokens,
                                 "completion_tokens", u->completion_tokens);
        char *t = malloc(ev->len + 1);
        if (t) {
            if (ev->len)
                memcpy(t, ev->text, ev->len);
            t[ev->len] = 0;
        }
        luab_wait_push(w, t ? "done" : "error", t ? t : strdup("out of memory"),
                       t ? ev->len : 13, t ? info : NULL, true);
        if (!t)
            json_decref(info);
        return;
    }
    case HD_EV_ERROR: {
        const char *m = ev->message ? ev->message : "the request failed";
        luab_wait_push(w, "error", strdup(m), strlen(m), NULL, true);
        return;
    }
    }
}

/* Dumps a JSON value into a new box (kept on the stack); returns the text. */
static const char *boxed_dump(lua_State *L, json_t *j)
{
    struct luab_box *b = luab_box_push(L);
    b->json = j; /* stolen */
    b->text = json_dumps(j, JSON_COMPACT);
    if (!b->text)
        luaL_error(L, "out of memory");
    return b->text;
}

/* C.submit(kind, payload, opts) -> handle. kind "chat": payload is the
 * messages array; "complete": the prompt string. opts: sampling keys
 * (ipc/params.h), session, tools (OpenAI array), template_kwargs,
 * parse_special, stream (queue the pieces). */
static int l_submit(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *kind = luaL_checkstring(L, 1);
    bool chat = !strcmp(kind, "chat");
    if (!chat && strcmp(kind, "complete"))
        return luaL_error(L, "unknown request kind '%s'", kind);
    const char *why = NULL;
    struct luab_box *ob = luab_box_push(L); /* the options */
    if (lua_isnoneornil(L, 3))
        ob->json = json_object();
    else if (lua_istable(L, 3))
        ob->json = luab_to_json(L, 3, false, &why);
    if (!json_is_object(ob->json))
        return luaL_error(L, "request options must be a table%s%s", why ? ": " : "",
                          why ? why : "");
    json_t *opts = ob->json;
    struct hd_request req = {0};
    struct hr_err err;
    hr_err_clear(&err);
    if (ipc_params_gen(r->rt->p.sched, opts, &req.gen, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    json_t *v = json_object_get(opts, "session");
    if (v && !json_is_string(v))
        return luaL_error(L, "'session' must be a string");
    req.session = json_string_value(v);
    bool stream = json_is_true(json_object_get(opts, "stream"));
    if (chat) {
        if (!lua_istable(L, 2))
            return luaL_error(L, "chat: the messages must be an array of {role, content} tables");
        json_t *msgs = luab_to_json(L, 2, false, &why);
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            json_decref(msgs);
            return luaL_error(L, "chat: the messages must be a non-empty array%s%s",
                              why ? ": " : "", why ? why : "");
        }
        req.messages_json = boxed_dump(L, msgs);
        json_t *tools = json_object_get(opts, "tools");
        if (tools && !json_is_array(tools))
            return luaL_error(L, "'tools' must be an array of tool definitions");
        if (tools)
            req.tools_json = boxed_dump(L, json_incref(tools));
        json_t *kw = json_object_get(opts, "template_kwargs");
        if (kw && !json_is_object(kw))
            return luaL_error(L, "'template_kwargs' must be a table");
        if (kw)
            req.template_extra_json = boxed_dump(L, json_incref(kw));
    } else {
        req.prompt = luaL_checkstring(L, 2);
        req.parse_special = json_is_true(json_object_get(opts, "parse_special"));
    }
    struct handle *h = handle_push(L);
    struct luab_wait *w = handle_wait(L, h, LW_REQUEST);
    req.client = r->client;
    int rc = hd_sched_submit(r->rt->p.sched, &req, on_req_event, w, &w->req, &err);
    if (rc < 0) {
        h->w = NULL;
        luab_wait_release(w);
        return luaL_error(L, "%s", err.msg[0] ? err.msg : strerror(-rc));
    }
    w->ended = false;
    w->text_events = stream;
    return 1;
}

/* ---- tools ------------------------------------------------------------------------ */

static void on_tool_result(void *user, const struct hd_gate_result *res)
{
    struct luab_wait *w = user;
    char *text = hd_gate_result_text(res);
    json_t *o = json_pack("{s:b, s:s, s:s%, s:b, s:b, s:b}", "ok", res->status == HD_GATE_OK,
                          "status", hd_gate_status_name(res->status), "output",
                          res->output ? res->output : "", res->output ? res->output_len : 0,
                          "truncated", res->truncated, "asked", res->asked, "ran", res->ran);
    if (!o) /* output that is not UTF-8: without it */
        o = json_pack("{s:b, s:s, s:s, s:b, s:b, s:b}", "ok", res->status == HD_GATE_OK,
                      "status", hd_gate_status_name(res->status), "output", "", "truncated",
                      res->truncated, "asked", res->asked, "ran", res->ran);
    if (o && res->error)
        json_object_set_new(o, "error", json_string(res->error));
    if (o && text) {
        json_t *t = json_string(text);
        json_object_set_new(o, "text", t ? t : json_string(res->error ? res->error : ""));
    }
    free(text);
    if (!o)
        luab_wait_push(w, "error", strdup("out of memory"), 13, NULL, true);
    else
        luab_wait_push(w, "result", NULL, 0, o, true);
}

/* C.tool_call(name, args) -> handle; args: a table or JSON text. */
static int l_tool_call(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *args = "{}";
    if (lua_type(L, 2) == LUA_TSTRING) {
        args = lua_tostring(L, 2);
    } else if (lua_istable(L, 2)) {
        const char *why = NULL;
        json_t *j = luab_to_json(L, 2, false, &why);
        if (!j)
            return luaL_error(L, "tool arguments: %s", why ? why : "not JSON");
        args = boxed_dump(L, j);
    } else if (!lua_isnoneornil(L, 2)) {
        return luaL_error(L, "tool arguments must be a table or JSON text");
    }
    struct handle *h = handle_push(L);
    struct luab_wait *w = handle_wait(L, h, LW_TOOL);
    if (!r->rt->p.gate) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "ok", 0, "status",
                              "unavailable", "output", "", "error",
                              "no tools: hearthd runs without a tool host", "text",
                              "error: no tools: hearthd runs without a tool host", "truncated", 0,
                              "asked", 0, "ran", 0);
        w->ended = false;
        luab_wait_push(w, "result", NULL, 0, o, true);
        return 1;
    }
    struct hd_gate_req gc = {
        .tool = name,
        .arguments = args,
        .workspace = r->workspace,
        .approver = r->has_approver ? &r->approver : NULL,
    };
    int64_t id = hd_gate_call(r->rt->p.gate, &gc, on_tool_result, w);
    if (id < 0) {
        h->w = NULL;
        luab_wait_release(w);
        return luaL_error(L, "cannot call %s: %s", name, strerror((int)-id));
    }
    w->call = id;
    w->ended = false;
    return 1;
}

static const char *risk_of(const struct hd_tool_def *d)
{
    return hd_tool_risk_name(d->risk);
}

static int l_tools_list(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    size_t n = 0;
    const struct hd_tool_def *defs = r->rt->p.tools ? hd_tools_list(r->rt->p.tools, &n) : NULL;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const struct hd_tool_def *d = &defs[i];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, d->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, d->description ? d->description : "");
        lua_setfield(L, -2, "description");
        lua_pushstring(L, d->plugin ? d->plugin : "");
        lua_setfield(L, -2, "plugin");
        lua_pushstring(L, risk_of(d));
        lua_setfield(L, -2, "risk");
        const char *reason = "";
        enum hd_policy p = r->rt->p.gate
                               ? hd_gate_decide(r->rt->p.gate, d->name, d->risk, &reason)
                               : HD_POLICY_DENY;
        lua_pushstring(L, hd_policy_name(p));
        lua_setfield(L, -2, "policy");
        luab_push_json(L, d->schema);
        lua_setfield(L, -2, "parameters");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* C.tools_validate(name, args) -> true | false, message */
static int l_tools_validate(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *args = "{}";
    if (lua_type(L, 2) == LUA_TSTRING) {
        args = lua_tostring(L, 2);
    } else if (lua_istable(L, 2)) {
        const char *why = NULL;
        json_t *j = luab_to_json(L, 2, false, &why);
        if (!j) {
            lua_pushboolean(L, 0);
            lua_pushfstring(L, "arguments are not JSON: %s", why ? why : "?");
            return 2;
        }
        args = boxed_dump(L, j);
    }
    if (!r->rt->p.tools) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "no tools: hearthd runs without a tool host");
        return 2;
    }
    struct hr_err err;
    hr_err_clear(&err);
    if (hd_tools_validate(r->rt->p.tools, name, args, &err) < 0) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err.msg[0] ? err.msg : "invalid call");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* C.tool_policy(name) -> "allow"|"ask"|"deny", reason */
static int l_tool_policy(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *name = luaL_checkstring(L, 1);
    const struct hd_tool_def *d = r->rt->p.tools ? hd_tools_find(r->rt->p.tools, name) : NULL;
    if (!d || !r->rt->p.gate) {
        lua_pushliteral(L, "deny");
        lua_pushliteral(L, "no such tool");
        return 2;
    }
    const char *reason = "";
    lua_pushstring(L, hd_policy_name(hd_gate_decide(r->rt->p.gate, name, d->risk, &reason)));
    lua_pushstring(L, reason);
    return 2;
}

/* ---- tool calls in text, grammars ------------------------------------------------- */

/* C.toolcall_parse(text) -> content, calls ({id, name, arguments (JSON text)}) */
static int l_toolcall_parse(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    struct luab_box *cb = luab_box_push(L);
    struct luab_box *tb = luab_box_push(L);
    struct hr_err err;
    hr_err_clear(&err);
    int n = hd_toolcalls_parse(text, len, &cb->text, &tb->text, &err);
    if (n < 0)
        return luaL_error(L, "cannot parse the tool calls: %s", err.msg);
    lua_pushstring(L, cb->text);
    json_error_t je;
    tb->json = tb->text ? json_loads(tb->text, 0, &je) : json_array();
    if (!tb->json)
        return luaL_error(L, "out of memory");
    size_t i;
    json_t *c;
    lua_createtable(L, (int)json_array_size(tb->json), 0);
    json_array_foreach(tb->json, i, c) {
        json_t *fn = json_object_get(c, "function");
        lua_createtable(L, 0, 3);
        lua_pushstring(L, json_string_value(json_object_get(c, "id")));
        lua_setfield(L, -2, "id");
        lua_pushstring(L, json_string_value(json_object_get(fn, "name")));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, json_string_value(json_object_get(fn, "arguments")));
        lua_setfield(L, -2, "arguments");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 2;
}

static int l_toolcall_stream_safe(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_pushinteger(L, (lua_Integer)hd_toolcalls_stream_safe(text, len));
    return 1;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* GBNF text with every use and definition of rule `from` renamed `to`
 * (string literals, character classes and comments left alone). Owned, or
 * NULL without memory. */
static char *rename_rule(const char *g, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), n = strlen(g);
    size_t count = 0;
    for (const char *p = g; (p = strstr(p, from)); p += nf)
        count++;
    size_t cap = n + count * (nt > nf ? nt - nf : 0) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char c = g[i];
        if (c == '"' || c == '[') {
            char close = c == '"' ? '"' : ']';
            out[o++] = g[i++];
            while (i < n && g[i] != close) {
                if (g[i] == '\\' && i + 1 < n)
                    out[o++] = g[i++];
                out[o++] = g[i++];
            }
            if (i < n)
                out[o++] = g[i++];
        } else if (c == '#') {
            while (i < n && g[i] != '\n')
                out[o++] = g[i++];
        } else if (ident_char(c)) {
            size_t j = i;
            while (j < n && ident_char(g[j]))
                j++;
            if (j - i == nf && !memcmp(g + i, from, nf)) {
                memcpy(out + o, to, nt);
                o += nt;
            } else {
                memcpy(out + o, g + i, j - i);
                o += j - i;
            }
            i = j;
        } else {
            out[o++] = g[i++];
        }
    }
    out[o] = 0;
    return out;
}

/* C.grammar_from_schema(schema (table or JSON text), rule_name?) -> GBNF;
 * with rule_name, the schema's root rule gets that name. */
static int l_grammar_from_schema(lua_State *L)
{
    const char *schema;
    if (lua_istable(L, 1)) {
        const char *why = NULL;
        json_t *j = luab_to_json(L, 1, false, &why);
        if (!j)
            return luaL_error(L, "schema: %s", why ? why : "not JSON");
        schema = boxed_dump(L, j);
    } else {
        schema = luaL_checkstring(L, 1);
    }
    const char *name = luaL_optstring(L, 2, NULL);
    struct luab_box *b = luab_box_push(L);
    struct hr_err err;
    hr_err_clear(&err);
    if (hr_grammar_from_json_schema(schema, &b->text, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    if (name && strcmp(name, "root")) {
        for (const char *p = name; *p; p++)
            if (!ident_char(*p))
                return luaL_error(L, "bad rule name '%s'", name);
        struct luab_box *b2 = luab_box_push(L);
        b2->text = rename_rule(b->text, "root", name);
        if (!b2->text)
            return luaL_error(L, "out of memory");
        lua_pushstring(L, b2->text);
        return 1;
    }
    lua_pushstring(L, b->text);
    return 1;
}

/* ---- the rest ---------------------------------------------------------------------- */

static void on_timer(void *user)
{
    struct luab_wait *w = user;
    w->timer = 0;
    luab_wait_push(w, "timer", NULL, 0, NULL, true);
}

/* C.timer(ms) -> handle */
static int l_timer(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    lua_Number ms = luaL_checknumber(L, 1);
    if (!(ms >= 0) || ms > 1e12)
        return luaL_error(L, "sleep: %f is not a number of milliseconds", (double)ms);
    struct handle *h = handle_push(L);
    struct luab_wait *w = handle_wait(L, h, LW_TIMER);
    int64_t t = hd_loop_add_timer(r->rt->p.loop, (int64_t)ms, false, on_timer, w);
    if (t < 0) {
        h->w = NULL;
        luab_wait_release(w);
        return luaL_error(L, "cannot start a timer: %s", strerror((int)-t));
    }
    w->timer = t;
    w->ended = false;
    return 1;
}

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int64_t id = luab_task_spawn(L, lua_gettop(L) - 1);
    lua_pushinteger(L, id);
    return 1;
}

static int l_kill(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    lua_Integer id = luaL_checkinteger(L, 1);
    if (r->current && r->current->id == id)
        return luaL_error(L, "a task cannot cancel itself (return from it instead)");
    luab_task_kill(r, id);
    return 0;
}

static int l_emit(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *kind = luaL_checkstring(L, 1);
    const char *why;
    json_t *data = lua_isnoneornil(L, 2) ? json_object() : luab_to_json(L, 2, true, &why);
    json_t *ev;
    if (r->kind == HD_RUN_AGENT) {
        ev = json_is_object(data) ? data : json_pack("{s:o}", "data", data ? data : json_null());
        luab_emit(r, kind, ev);
    } else {
        ev = json_pack("{s:s, s:o}", "kind", kind, "data", data ? data : json_null());
        luab_emit(r, "event", ev);
    }
    json_decref(ev);
    return 0;
}

static int l_output(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_t *t = json_stringn(s, len);
    json_t *ev = json_pack("{s:o}", "text", t ? t : json_string("(output that is not UTF-8)"));
    luab_emit(r, "output", ev);
    json_decref(ev);
    return 0;
}

static int l_log(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    static const char *const levels[] = {"debug", "info", "warning", "error", NULL};
    int lvl = luaL_checkoption(L, 1, "info", levels);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    hd_log(HD_LOG_DEBUG, "lua %s '%s': %s: %.500s", r->kind == HD_RUN_AGENT ? "agent" : "script",
           r->name, levels[lvl], s);
    json_t *m = json_stringn(s, len);
    json_t *ev = json_pack("{s:s, s:o}", "level", levels[lvl], "message",
                           m ? m : json_string("(a message that is not UTF-8)"));
    luab_emit(r, "log", ev);
    json_decref(ev);
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushinteger(L, hd_now_ms());
    return 1;
}

static int l_doomed(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    if (r->doom[0])
        lua_pushstring(L, r->doom);
    else
        lua_pushnil(L);
    return 1;
}

/* C.session_close(name) -> true | false, why */
static int l_session_close(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *name = luaL_checkstring(L, 1);
    int rc = hd_sched_session_close(r->rt->p.sched, name);
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, rc == -ENOENT ? "no such session" : rc == -EALREADY
                                                               ? "the session has a request running"
                                                               : strerror(-rc));
    return 2;
}

static int l_model_info(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    struct hd_sched *s = r->rt->p.sched;
    struct hr_model *m = hd_sched_model(s);
    const char *tmpl = hr_model_chat_template(m);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, hr_model_arch(m));
    lua_setfield(L, -2, "arch");
    lua_pushstring(L, hd_sched_model_path(s));
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, hd_sched_n_ctx(s));
    lua_setfield(L, -2, "n_ctx");
    lua_pushinteger(L, hr_model_n_ctx_train(m));
    lua_setfield(L, -2, "n_ctx_train");
    lua_pushboolean(L, tmpl && tmpl[0]);
    lua_setfield(L, -2, "chat_template");
    lua_pushboolean(L, hd_template_has_tools(tmpl));
    lua_setfield(L, -2, "template_tools");
    lua_pushstring(L, hd_tool_format_name(hd_tool_format_of(tmpl)));
    lua_setfield(L, -2, "tool_format");
    return 1;
}

/* C.load_agent() -> the agent module (the configured file or the built-in
 * lua/agent.lua), run once in this state. */
static int l_load_agent(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const char *path = r->rt->p.agent_script;
    int st;
    if (path) {
        struct luab_box *b = luab_box_push(L);
        FILE *f = fopen(path, "re");
        if (!f)
            return luaL_error(L, "cannot read the agent script %s: %s", path, strerror(errno));
        size_t cap = 1 << 20, n = 0;
        b->text = malloc(cap + 1);
        if (b->text)
            n = fread(b->text, 1, cap, f);
        bool big = b->text && n == cap && fgetc(f) != EOF;
        fclose(f);
        if (!b->text)
            return luaL_error(L, "out of memory");
        if (big)
            return luaL_error(L, "the agent script %s is larger than 1 MiB", path);
        char name[300];
        snprintf(name, sizeof name, "@%s", path);
        st = luaL_loadbufferx(L, b->text, n, name, "t");
    } else {
        st = luaL_loadbufferx(L, luab_src_agent, luab_src_agent_len, "=agent.lua", "t");
    }
    if (st != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

void luab_hearth_push_primitives(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"next", l_next},
        {"cancel", l_cancel},
        {"submit", l_submit},
        {"tool_call", l_tool_call},
        {"tools_list", l_tools_list},
        {"tools_validate", l_tools_validate},
        {"tool_policy", l_tool_policy},
        {"toolcall_parse", l_toolcall_parse},
        {"toolcall_stream_safe", l_toolcall_stream_safe},
        {"grammar_from_schema", l_grammar_from_schema},
        {"timer", l_timer},
        {"spawn", l_spawn},
        {"kill", l_kill},
        {"emit", l_emit},
        {"output", l_output},
        {"log", l_log},
        {"now", l_now},
        {"doomed", l_doomed},
        {"model_info", l_model_info},
        {"session_close", l_session_close},
        {"load_agent", l_load_agent},
        {NULL, NULL},
    };
    struct luab_run *r = luab_run_of(L);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, &luab_sentinel);
    lua_setfield(L, -2, "sentinel");
    lua_pushstring(L, r->kind == HD_RUN_AGENT ? "agent" : "script");
    lua_setfield(L, -2, "run_kind");
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
    if (r->workspace) {
        lua_pushstring(L, r->workspace);
        lua_setfield(L, -2, "workspace");
    }
    if (r->setup_args) {
        luab_push_json(L, r->setup_args);
        lua_setfield(L, -2, "args");
    }
}
