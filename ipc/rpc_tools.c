/*
 * rpc_tools.c — the socket methods for tools, approvals, scripts and the
 * agent: tools.list, tool.call, approval.respond, script.run, agent.run
 * (docs/protocol.md, docs/agent.md). Thin adapters over the policy gate
 * (daemon/policy.h) and the Lua runtime's hd_runner (daemon/agent.h).
 *
 * A tool call or run is a struct rpc_call of its connection (so its id is
 * reserved, `cancel` finds it, and a half-closed connection waits for it)
 * with cancel/drop hooks. Its approvals go to the same connection: the
 * approver's `user` is the call, the notification carries the call's
 * JSON-RPC id, and approval.respond on that connection answers it. When the
 * connection goes, rpc.c calls drop: the gated call or the run is
 * cancelled, so nothing waits for an answer that cannot come and nothing
 * runs for a client that left.
 */
#include "rpc_impl.h"

#include "params.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SCRIPT ((size_t)16 << 20)

enum { EXT_TOOL = 1, EXT_RUN };

/* ---- calls ---------------------------------------------------------------------- */

static struct rpc_call *call_new(struct rpc_conn *c, json_t *id, int kind)
{
    struct rpc_call *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->c = c;
    k->id = json_incref(id);
    k->ext_kind = kind;
    return k;
}

static void call_link(struct rpc_call *k)
{
    k->next = k->c->calls;
    k->c->calls = k;
}

/* Unlinks and frees k; the connection may be done then. */
static void call_end(struct rpc_call *k)
{
    struct rpc_conn *c = k->c;
    for (struct rpc_call **p = &c->calls; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            break;
        }
    }
    json_decref(k->id);
    free(k);
    rpc_conn_maybe_done(c);
}

static const struct hd_services *svc(struct rpc_conn *c)
{
    return c->r->svc;
}

static bool opt_str(struct rpc_conn *c, json_t *id, json_t *params, const char *key,
                    const char **out)
{
    json_t *v = json_object_get(params, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* The workspace parameter: an absolute path (tools.roots are checked when a
 * tool runs). */
static bool opt_workspace(struct rpc_conn *c, json_t *id, json_t *params, const char **out)
{
    if (!opt_str(c, id, params, "workspace", out))
        return false;
    if (*out && (*out)[0] != '/') {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'workspace' must be an absolute directory path (the client's working "
                  "directory)");
        return false;
    }
    return true;
}

/* ---- approvals ------------------------------------------------------------------- */

/* The gate asks: the question goes to this call's connection. */
static void ask(void *user, const struct hd_approval *a)
{
    struct rpc_call *k = user;
    struct rpc_conn *c = k->c;
    json_error_t je;
    json_t *args = json_loads(a->arguments, 0, &je);
    if (!args)
        args = json_string(a->arguments);
    rpc_send(c, json_pack("{s:s, s:s, s:{s:O, s:s, s:s, s:o, s:s, s:s, s:s, s:i}}", "jsonrpc",
                          "2.0", "method", "approval.request", "params", "id", k->id,
                          "call_id", a->call_id, "tool", a->tool, "arguments",
                          args ? args : json_null(), "risk", a->risk, "reason", a->reason,
                          "workspace", a->workspace, "timeout_ms", a->timeout_ms));
}

void rpc_m_approval_respond(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *call_id;
    json_t *approve = json_object_get(params, "approve");
    if (!opt_str(c, id, params, "call_id", &call_id))
        return;
    if (!call_id) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing 'call_id' (from approval.request)");
        return;
    }
    if (!json_is_boolean(approve)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing 'approve' (true or false)");
        return;
    }
    struct hd_gate *gate = svc(c) ? svc(c)->gate : NULL;
    for (struct rpc_call *k = c->calls; gate && k; k = k->next) {
        if (k->ext_kind && hd_gate_answer(gate, k, call_id, json_is_true(approve)) == 0) {
            rpc_reply(c, id, json_object());
            return;
        }
    }
    rpc_error(c, id, IPC_ERR_NO_APPROVAL,
              "no approval '%.100s' is waiting on this connection (answered already, timed "
              "out, or asked of another client)",
              call_id);
}

/* ---- tools.list, tool.call ------------------------------------------------------------ */

void rpc_m_tools_list(struct rpc_conn *c, json_t *id, json_t *params)
{
    (void)params;
    const struct hd_services *s = svc(c);
    json_t *arr = json_array(), *errs = json_array();
    size_t n = 0;
    const struct hd_tool_def *defs = s && s->tools ? hd_tools_list(s->tools, &n) : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        const struct hd_tool_def *d = &defs[i];
        const char *reason = "";
        enum hd_policy p = s->gate ? hd_gate_decide(s->gate, d->name, d->risk, &reason)
                                     : HD_POLICY_DENY;
        json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "name", d->name,
                              "description", d->description ? d->description : "", "plugin",
                              d->plugin ? d->plugin : "", "risk", hd_tool_risk_name(d->risk),
                              "policy", hd_policy_name(p), "reason", reason, "parameters",
                              (json_t *)d->schema);
        if (!t || json_array_append_new(arr, t) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    size_t ne = 0;
    const char *const *le = s && s->tools ? hd_tools_load_errors(s->tools, &ne) : NULL;
    for (size_t i = 0; errs && i < ne; i++)
        json_array_append_new(errs, json_string(le[i]));
    if (!arr || !errs) {
        json_decref(arr);
        json_decref(errs);
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    rpc_reply(c, id, json_pack("{s:b, s:o, s:o}", "available", s && s->tools, "tools", arr,
                               "errors", errs));
}

static void on_gate(void *user, const struct hd_gate_result *res)
{
    struct rpc_call *k = user;
    struct rpc_conn *c = k->c;
    json_t *r = json_pack("{s:b, s:s, s:o, s:b, s:b, s:b}", "ok", res->status == HD_GATE_OK,
                          "status", hd_gate_status_name(res->status), "output",
                          rpc_string(res->output ? res->output : "", res->output_len),
                          "truncated", res->truncated, "asked", res->asked, "ran", res->ran);
    if (r && res->error)
        json_object_set_new(r, "error", rpc_string(res->error, strlen(res->error)));
    if (r)
        rpc_reply(c, k->id, r);
    else
        rpc_error(c, k->id, IPC_ERR_INTERNAL, "out of memory");
    call_end(k);
}

static void tool_cancel(struct rpc_call *k)
{
    struct hd_gate *gate = svc(k->c) ? svc(k->c)->gate : NULL;
    if (gate)
        hd_gate_cancel(gate, k->ext_id);
    rpc_error(k->c, k->id, IPC_ERR_CANCELLED, "cancelled");
    call_end(k);
}

static void tool_drop(struct rpc_call *k)
{
    struct hd_gate *gate = svc(k->c) ? svc(k->c)->gate : NULL;
    if (gate)
        hd_gate_cancel(gate, k->ext_id);
}

void rpc_m_tool_call(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *name, *workspace;
    if (!opt_str(c, id, params, "name", &name) || !opt_workspace(c, id, params, &workspace))
        return;
    if (!name) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing 'name' (a tool, see tools.list)");
        return;
    }
    json_t *a = json_object_get(params, "arguments");
    if (a && !json_is_null(a) && !json_is_object(a) && !json_is_string(a)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'arguments' must be an object (or its JSON text)");
        return;
    }
    if (!id)
        return; /* a notification: nobody to give the result to */
    const struct hd_services *s = svc(c);
    if (!s || !s->gate) {
        rpc_error(c, id, IPC_ERR_UNAVAILABLE, "no tools: hearthd runs without a tool host");
        return;
    }
    char *args = json_is_object(a) ? json_dumps(a, JSON_COMPACT)
                 : json_is_string(a) ? strdup(json_string_value(a))
                                     : strdup("{}");
    struct rpc_call *k = args ? call_new(c, id, EXT_TOOL) : NULL;
    if (!k) {
        free(args);
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    k->cancel = tool_cancel;
    k->drop = tool_drop;
    struct hd_approver ap = {.ask = ask, .user = k};
    struct hd_gate_req gc = {.tool = name, .arguments = args, .workspace = workspace,
                              .approver = &ap};
    int64_t gid = hd_gate_call(s->gate, &gc, on_gate, k);
    free(args);
    if (gid < 0) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "cannot start the call: %s", strerror((int)-gid));
        json_decref(k->id);
        free(k);
        return;
    }
    k->ext_id = gid;
    call_link(k);
}

/* ---- runs ------------------------------------------------------------------------- */

static void run_event(void *user, const char *kind, json_t *data)
{
    struct rpc_call *k = user;
    char method[64];
    /* `chat` marks agent runs: their events are agent.* notifications */
    snprintf(method, sizeof method, "%s.%s", k->chat ? "agent" : "script", kind);
    json_t *params = json_is_object(data) ? json_deep_copy(data) : json_object();
    if (!params)
        return;
    json_object_set(params, "id", k->id);
    rpc_send(k->c, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                             params));
}

static void run_done(void *user, const struct hd_run_end *end)
{
    struct rpc_call *k = user;
    struct rpc_conn *c = k->c;
    if (end->ok) {
        json_t *res = k->chat ? json_incref(end->result)
                              : json_pack("{s:O}", "result", end->result ? end->result
                                                                          : json_null());
        if (res && json_is_object(res))
            rpc_reply(c, k->id, res);
        else {
            json_decref(res);
            rpc_error(c, k->id, IPC_ERR_SCRIPT, "the %s returned no result object",
                      k->chat ? "agent" : "script");
        }
    } else {
        const char *e = end->error ? end->error : "the script failed";
        json_t *data = end->traceback ? json_pack("{s:o}", "traceback",
                                                  rpc_string(end->traceback,
                                                             strlen(end->traceback)))
                                      : json_object();
        json_t *msg = json_pack("{s:s, s:O, s:{s:i, s:o, s:o}}", "jsonrpc", "2.0", "id", k->id,
                                "error", "code", IPC_ERR_SCRIPT, "message",
                                rpc_string(e, strlen(e)), "data", data ? data : json_object());
        if (msg)
            rpc_send(c, msg);
        else
            rpc_conn_kill(c);
    }
    call_end(k);
}

static void run_cancel(struct rpc_call *k)
{
    const struct hd_runner *rn = svc(k->c) ? svc(k->c)->runner : NULL;
    if (rn)
        rn->cancel(rn->impl, (uint64_t)k->ext_id);
    rpc_error(k->c, k->id, IPC_ERR_CANCELLED, "cancelled");
    call_end(k);
}

static void run_drop(struct rpc_call *k)
{
    const struct hd_runner *rn = svc(k->c) ? svc(k->c)->runner : NULL;
    if (rn)
        rn->cancel(rn->impl, (uint64_t)k->ext_id);
}

/* Starts a run for call k (linked on success; freed with an error answer
 * on failure). */
static void start_run(struct rpc_conn *c, json_t *id, struct rpc_call *k,
                      struct hd_run_params *p)
{
    const struct hd_runner *rn = svc(c)->runner;
    static const struct hd_run_sink sink = {.event = run_event, .done = run_done};
    struct hd_approver ap = {.ask = ask, .user = k};
    p->approver = &ap;
    k->cancel = run_cancel;
    k->drop = run_drop;
    uint64_t rid = 0;
    struct hr_err err;
    hr_err_clear(&err);
    int rc = rn->start(rn->impl, p, &sink, k, &rid, &err);
    if (rc < 0) {
        int code = rc == -EBUSY        ? IPC_ERR_BUSY
                   : rc == -ENOMEM     ? IPC_ERR_INTERNAL
                   : rc == -ESHUTDOWN  ? IPC_ERR_UNAVAILABLE
                                   : p->kind == HD_RUN_SCRIPT ? IPC_ERR_SCRIPT
                                                              : IPC_ERR_INVALID_PARAMS;
        rpc_error(c, id, code, "%s", err.msg[0] ? err.msg : strerror(-rc));
        json_decref(k->id);
        free(k);
        return;
    }
    k->ext_id = (int64_t)rid;
    call_link(k);
}

/* Reads a script file the client named (absolute path, at most 16 MiB).
 * Owned, or NULL after answering with an error. */
static char *read_script(struct rpc_conn *c, json_t *id, const char *path, size_t *len)
{
    if (path[0] != '/') {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'path' must be absolute (or send 'source')");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "cannot read the script %.200s: %s", path,
                  fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > MAX_SCRIPT) {
        close(fd);
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "the script %.200s is larger than 16 MiB",
                  path);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (buf && n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

void rpc_m_script_run(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *source, *path, *name, *workspace;
    if (!opt_str(c, id, params, "source", &source) || !opt_str(c, id, params, "path", &path) ||
        !opt_str(c, id, params, "name", &name) || !opt_workspace(c, id, params, &workspace))
        return;
    json_t *args = json_object_get(params, "args");
    if (args && !json_is_null(args) && !json_is_array(args)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'args' must be an array");
        return;
    }
    if (!source == !path) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "give the script as 'source' (Lua text) or "
                                                 "'path' (an absolute file name), one of them");
        return;
    }
    if (!id)
        return;
    if (!svc(c) || !svc(c)->runner) {
        rpc_error(c, id, IPC_ERR_UNAVAILABLE, "no Lua runtime in this hearthd");
        return;
    }
    size_t len = source ? json_string_length(json_object_get(params, "source")) : 0;
    char *file = NULL;
    if (path && !(file = read_script(c, id, path, &len)))
        return;
    char *aj = json_is_array(args) ? json_dumps(args, JSON_COMPACT) : NULL;
    struct rpc_call *k = call_new(c, id, EXT_RUN);
    if (!k || (json_is_array(args) && !aj)) {
        free(k);
        free(aj);
        free(file);
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    const char *base = path ? strrchr(path, '/') + 1 : NULL;
    struct hd_run_params p = {
        .kind = HD_RUN_SCRIPT,
        .source = file ? file : source,
        .source_len = len,
        .name = name ? name : base ? base : "script",
        .args_json = aj,
        .workspace = workspace,
    };
    start_run(c, id, k, &p);
    free(aj);
    free(file);
}

void rpc_m_agent_run(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *task, *workspace, *format, *choice;
    if (!opt_str(c, id, params, "task", &task) || !opt_workspace(c, id, params, &workspace) ||
        !opt_str(c, id, params, "format", &format) ||
        !opt_str(c, id, params, "tool_choice", &choice))
        return;
    if (!task || !task[0]) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing 'task' (what the agent should do)");
        return;
    }
    enum hd_tool_format f;
    if (format && hd_tool_format_parse(format, &f) < 0) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'format' must be \"hermes\", \"llama3\" or \"mistral\"");
        return;
    }
    if (choice && strcmp(choice, "auto") && strcmp(choice, "required") && strcmp(choice, "none")) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'tool_choice' must be \"auto\", \"required\" or \"none\"");
        return;
    }
    json_t *tools = json_object_get(params, "tools");
    if (tools && !json_is_null(tools)) {
        size_t i;
        json_t *t;
        bool ok = json_is_array(tools);
        json_array_foreach(tools, i, t) ok = ok && json_is_string(t);
        if (!ok) {
            rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'tools' must be an array of tool names");
            return;
        }
    }
    json_t *ms = json_object_get(params, "max_steps");
    if (ms && !json_is_null(ms) &&
        (!json_is_integer(ms) || json_integer_value(ms) < 1 || json_integer_value(ms) > 1000)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'max_steps' must be an integer in [1, 1000]");
        return;
    }
    json_t *to = json_object_get(params, "timeout");
    if (to && !json_is_null(to) && (!json_is_number(to) || json_number_value(to) <= 0)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'timeout' must be a number of seconds > 0");
        return;
    }
    struct hd_gen_params g;
    struct hr_err err;
    hr_err_clear(&err);
    if (ipc_params_gen(c->r->s, params, &g, &err) < 0) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "%s", err.msg);
        return;
    }
    if (!id)
        return;
    if (!svc(c) || !svc(c)->runner) {
        rpc_error(c, id, IPC_ERR_UNAVAILABLE, "no Lua runtime in this hearthd");
        return;
    }
    /* options for the agent: the sampling keys, format, tool_choice, timeout */
    json_t *opt = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        if (key[0] == '\x01' || !strcmp(key, "task") || !strcmp(key, "workspace") ||
            !strcmp(key, "tools") || !strcmp(key, "max_steps") || !strcmp(key, "timeout") ||
            json_is_null(v))
            continue;
        json_object_set(opt, key, v);
    }
    if (to && json_is_number(to))
        json_object_set_new(opt, "timeout_ms", json_integer((json_int_t)(json_number_value(to) *
                                                                         1000)));
    char *oj = opt ? json_dumps(opt, JSON_COMPACT) : NULL;
    char *tj = json_is_array(tools) ? json_dumps(tools, JSON_COMPACT) : NULL;
    json_decref(opt);
    struct rpc_call *k = oj ? call_new(c, id, EXT_RUN) : NULL;
    if (!k || (json_is_array(tools) && !tj)) {
        free(k);
        free(oj);
        free(tj);
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    k->chat = true; /* an agent run: events become agent.* notifications */
    struct hd_run_params p = {
        .kind = HD_RUN_AGENT,
        .task = task,
        .tools_json = tj,
        .max_steps = ms && json_is_integer(ms) ? (int)json_integer_value(ms) : 0,
        .options_json = oj,
        .workspace = workspace,
    };
    start_run(c, id, k, &p);
    free(oj);
    free(tj);
}
