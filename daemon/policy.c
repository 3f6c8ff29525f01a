/*
 * policy.c — the tool policy and the gate of every client's tool call (see
 * policy.h).
 *
 * A gated call moves through states: CHECK (refused or decided at once: its
 * result is delivered from a 0 ms timer, so no callback runs inside
 * hd_gate_call), ASK (the approver was asked; a timer declines the call
 * at the approval timeout), RUN (hd_tools_call in flight) and then it is
 * finished: finish() unlinks it, calls the callback, frees it. A call is
 * finished exactly once; hd_gate_cancel frees it without the callback
 * (cancelling its timer or its tool call first).
 *
 * The approval request is sent from a 0 ms timer too (the "ask" callback
 * must not run inside hd_gate_call: the caller may not have recorded the
 * call's id yet, and an approver that answers at once must find the call
 * waiting).
 */
#include "policy.h"

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum state { S_CHECK, S_ASK, S_RUN };

struct gcall {
    struct gcall *next, *prev;
    struct hd_gate *g;
    int64_t id;
    enum state state;
    char *tool, *args, *workspace;
    struct hd_approver approver;
    bool has_approver;
    bool asked;
    char call_id[32];
    int64_t timer;    /* 0 ms delivery, ask, or approval deadline; 0: none */
    int64_t tool_id;  /* hd_tools_call id while S_RUN */
    /* S_CHECK: the result to deliver */
    enum hd_gate_status status;
    char *error;
    hd_gate_cb cb;
    void *user;
};

struct hd_gate {
    struct hd_loop *loop;
    struct hd_tools *tools;
    enum hd_policy read, write, exec;
    char **deny;
    size_t n_deny;
    int approval_timeout_ms;
    int64_t next_id;
    struct gcall *calls;
};

void hd_policy_params_init(struct hd_policy_params *p, const struct hd_config *cfg)
{
    *p = (struct hd_policy_params){
        .read = HD_POLICY_ALLOW,
        .write = HD_POLICY_ASK,
        .exec = HD_POLICY_ASK,
        .approval_timeout_ms = 120000,
    };
    if (!cfg)
        return;
    p->read = cfg->tools.policy_read;
    p->write = cfg->tools.policy_write;
    p->exec = cfg->tools.policy_exec;
    p->deny = (const char *const *)cfg->tools.deny;
    p->n_deny = cfg->tools.n_deny;
    if (cfg->tools.approval_timeout > 0)
        p->approval_timeout_ms = cfg->tools.approval_timeout * 1000;
}

static bool valid_policy(enum hd_policy p)
{
    return p == HD_POLICY_ALLOW || p == HD_POLICY_ASK || p == HD_POLICY_DENY;
}

/* Copies the settings into g; on failure g is unchanged. */
static int apply(struct hd_gate *g, const struct hd_policy_params *p)
{
    if (!p || !valid_policy(p->read) || !valid_policy(p->write) || !valid_policy(p->exec) ||
        p->approval_timeout_ms <= 0 || (p->n_deny && !p->deny))
        return -EINVAL;
    char **deny = p->n_deny ? calloc(p->n_deny, sizeof *deny) : NULL;
    if (p->n_deny && !deny)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_deny; i++) {
        if (!p->deny[i] || !(deny[i] = strdup(p->deny[i]))) {
            for (size_t j = 0; j < i; j++)
                free(deny[j]);
            free(deny);
            return p->deny[i] ? -ENOMEM : -EINVAL;
        }
    }
    for (size_t i = 0; i < g->n_deny; i++)
        free(g->deny[i]);
    free(g->deny);
    g->deny = deny;
    g->n_deny = p->n_deny;
    g->read = p->read;
    g->write = p->write;
    g->exec = p->exec;
    g->approval_timeout_ms = p->approval_timeout_ms;
    return 0;
}

int hd_gate_new(struct hd_loop *loop, struct hd_tools *tools, const struct hd_policy_params *p,
                  struct hd_gate **out)
{
    if (!loop || !out)
        return -EINVAL;
    struct hd_gate *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->loop = loop;
    g->tools = tools;
    int rc = apply(g, p);
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int hd_gate_update(struct hd_gate *g, const struct hd_policy_params *p)
{
    return g ? apply(g, p) : -EINVAL;
}

static void call_free(struct gcall *c)
{
    struct hd_gate *g = c->g;
    if (c->timer)
        hd_loop_del_timer(g->loop, c->timer);
    if (c->state == S_RUN && c->tool_id > 0 && g->tools)
        hd_tools_cancel(g->tools, c->tool_id);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->tool);
    free(c->args);
    free(c->workspace);
    free(c->error);
    free(c);
}

void hd_gate_free(struct hd_gate *g)
{
    if (!g)
        return;
    while (g->calls)
        call_free(g->calls);
    for (size_t i = 0; i < g->n_deny; i++)
        free(g->deny[i]);
    free(g->deny);
    free(g);
}

const char *hd_policy_name(enum hd_policy p)
{
    switch (p) {
    case HD_POLICY_ALLOW: return "allow";
    case HD_POLICY_ASK: return "ask";
    case HD_POLICY_DENY: return "deny";
    }
    return "deny";
}

enum hd_policy hd_gate_decide(const struct hd_gate *g, const char *tool, enum hr_tool_risk risk,
                                const char **reason)
{
    static const char *const why[3][3] = {
        {"tools.policy.read is allow", "tools.policy.read is ask", "tools.policy.read is deny"},
        {"tools.policy.write is allow", "tools.policy.write is ask",
         "tools.policy.write is deny"},
        {"tools.policy.exec is allow", "tools.policy.exec is ask", "tools.policy.exec is deny"},
    };
    const char *dummy;
    if (!reason)
        reason = &dummy;
    for (size_t i = 0; tool && i < g->n_deny; i++) {
        if (!strcmp(g->deny[i], tool)) {
            *reason = "the tool is listed in tools.deny";
            return HD_POLICY_DENY;
        }
    }
    enum hd_policy p;
    int row;
    switch (risk) {
    case HR_RISK_READ: p = g->read; row = 0; break;
    case HR_RISK_WRITE: p = g->write; row = 1; break;
    case HR_RISK_EXEC: p = g->exec; row = 2; break;
    default:
        /* an unknown class is treated as the most dangerous one */
        *reason = "the tool's risk class is unknown";
        return g->exec == HD_POLICY_ALLOW ? HD_POLICY_ASK : g->exec;
    }
    *reason = why[row][p];
    return p;
}

const char *hd_gate_status_name(enum hd_gate_status s)
{
    switch (s) {
    case HD_GATE_OK: return "ok";
    case HD_GATE_FAILED: return "failed";
    case HD_GATE_INVALID: return "invalid";
    case HD_GATE_TIMEOUT: return "timeout";
    case HD_GATE_CRASHED: return "crashed";
    case HD_GATE_UNAVAILABLE: return "unavailable";
    case HD_GATE_DENIED: return "denied";
    case HD_GATE_DECLINED: return "declined";
    }
    return "failed";
}

/* ---- finishing --------------------------------------------------------------- */

static void finish(struct gcall *c, const struct hd_gate_result *res)
{
    hd_gate_cb cb = c->cb;
    void *user = c->user;
    c->timer = 0; /* the caller is that timer, or it was deleted */
    c->tool_id = 0;
    c->state = S_CHECK; /* nothing left to cancel in call_free */
    call_free(c);
    cb(user, res);
}

/* Finishes a call that did not run, with its status and error. */
static void finish_refused(struct gcall *c)
{
    struct hd_gate_result res = {
        .id = c->id,
        .status = c->status,
        .output = "",
        .error = c->error ? c->error : hd_gate_status_name(c->status),
        .asked = c->asked,
    };
    char *keep = c->error; /* finish() frees c: the message must live through the callback */
    c->error = NULL;
    finish(c, &res);
    free(keep);
}

static void on_deliver(void *user)
{
    struct gcall *c = user;
    c->timer = 0;
    finish_refused(c);
}

/* Refuses c with status and a formatted message, delivered from the loop. */
static int refuse(struct gcall *c, enum hd_gate_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct gcall *c, enum hd_gate_status status, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(c->error);
    c->error = strdup(buf); /* NULL (no memory): the status name stands in */
    c->status = status;
    c->state = S_CHECK;
    int64_t t = hd_loop_add_timer(c->g->loop, 0, false, on_deliver, c);
    if (t < 0)
        return (int)t;
    c->timer = t;
    return 0;
}

/* ---- running ------------------------------------------------------------------ */

static void on_tool_done(void *user, const struct hd_tool_result *r)
{
    struct gcall *c = user;
    struct hd_gate_result res = {
        .id = c->id,
        .status = (enum hd_gate_status)r->status,
        .output = r->output ? r->output : "",
        .output_len = r->output ? r->output_len : 0,
        .truncated = r->truncated,
        .error = r->error,
        .asked = c->asked,
        .ran = r->status == HD_TOOL_OK || r->status == HD_TOOL_FAILED ||
               r->status == HD_TOOL_TIMEOUT || r->status == HD_TOOL_CRASHED,
    };
    finish(c, &res);
}

/* Hands the call to the tool host; on failure the call is refused. */
static void run(struct gcall *c)
{
    struct hd_gate *g = c->g;
    if (!g->tools) {
        if (refuse(c, HD_GATE_UNAVAILABLE, "no tools: the tool host is not running") < 0)
            finish_refused(c);
        return;
    }
    c->state = S_RUN;
    int64_t id = hd_tools_call(g->tools, c->tool, c->args, c->workspace, on_tool_done, c);
    if (id < 0) {
        if (refuse(c, HD_GATE_FAILED, "cannot start the call: %s", strerror((int)-id)) < 0)
            finish_refused(c);
        return;
    }
    c->tool_id = id;
}

/* ---- asking -------------------------------------------------------------------- */

static void on_approval_timeout(void *user)
{
    struct gcall *c = user;
    c->timer = 0;
    hd_info("tool call %s (%s) declined: no answer within %d s", c->call_id, c->tool,
            c->g->approval_timeout_ms / 1000);
    char buf[160];
    snprintf(buf, sizeof buf, "declined: the user did not answer within %d s",
             (c->g->approval_timeout_ms + 999) / 1000);
    free(c->error);
    c->error = strdup(buf);
    c->status = HD_GATE_DECLINED;
    finish_refused(c);
}

static void on_ask(void *user)
{
    struct gcall *c = user;
    struct hd_gate *g = c->g;
    c->timer = 0;
    const struct hd_tool_def *def = g->tools ? hd_tools_find(g->tools, c->tool) : NULL;
    const char *reason = "";
    if (def)
        hd_gate_decide(g, c->tool, def->risk, &reason);
    int64_t t = hd_loop_add_timer(g->loop, g->approval_timeout_ms, false, on_approval_timeout, c);
    if (t < 0) {
        c->status = HD_GATE_DECLINED;
        finish_refused(c);
        return;
    }
    c->timer = t;
    c->asked = true;
    hd_info("tool call %s: asking the client to approve %s %.200s", c->call_id, c->tool, c->args);
    struct hd_approval a = {
        .call_id = c->call_id,
        .tool = c->tool,
        .arguments = c->args,
        .risk = def ? hd_tool_risk_name(def->risk) : "exec",
        .reason = reason,
        .workspace = c->workspace ? c->workspace : "",
        .timeout_ms = g->approval_timeout_ms,
    };
    /* the approver may answer (or the call be cancelled) right here */
    c->approver.ask(c->approver.user, &a);
}

int hd_gate_answer(struct hd_gate *g, void *approver_user, const char *call_id, bool approve)
{
    if (!g || !call_id)
        return -EINVAL;
    for (struct gcall *c = g->calls; c; c = c->next) {
        if (c->state != S_ASK || !c->asked || strcmp(c->call_id, call_id) ||
            c->approver.user != approver_user)
            continue;
        if (c->timer)
            hd_loop_del_timer(g->loop, c->timer);
        c->timer = 0;
        if (approve) {
            hd_info("tool call %s (%s) approved by the client", c->call_id, c->tool);
            /* runs from the loop, not inside the frontend's handler */
            c->state = S_CHECK;
            run(c);
        } else {
            hd_info("tool call %s (%s) declined by the client", c->call_id, c->tool);
            if (refuse(c, HD_GATE_DECLINED, "declined: the user did not approve this call") < 0)
                finish_refused(c);
        }
        return 0;
    }
    return -ENOENT;
}

size_t hd_gate_n_waiting(const struct hd_gate *g)
{
    size_t n = 0;
    for (const struct gcall *c = g ? g->calls : NULL; c; c = c->next)
        n += c->state == S_ASK;
    return n;
}

/* ---- the gate ------------------------------------------------------------------- */

/* Steps 1 and 2 of the header for a call just made; returns a negative
 * errno only when nothing could be scheduled (then the call is freed by the
 * caller and cb never runs). */
static int start(struct gcall *c)
{
    struct hd_gate *g = c->g;
    if (!g->tools)
        return refuse(c, HD_GATE_UNAVAILABLE, "no tools: the tool host is not running");
    const struct hd_tool_def *def = hd_tools_find(g->tools, c->tool);
    if (!def)
        return refuse(c, HD_GATE_INVALID, "unknown tool '%.100s'", c->tool);
    struct hr_err err;
    hr_err_clear(&err);
    if (hd_tools_validate(g->tools, c->tool, c->args, &err) < 0)
        return refuse(c, HD_GATE_INVALID, "%s", err.msg[0] ? err.msg : "invalid arguments");
    const char *reason;
    enum hd_policy p = hd_gate_decide(g, c->tool, def->risk, &reason);
    if (p == HD_POLICY_DENY) {
        hd_info("tool call %s (%s) denied: %s", c->call_id, c->tool, reason);
        return refuse(c, HD_GATE_DENIED, "denied by the policy: %s", reason);
    }
    if (p == HD_POLICY_ASK) {
        if (!c->has_approver) {
            hd_info("tool call %s (%s) declined: %s, and nobody can be asked", c->call_id,
                    c->tool, reason);
            return refuse(c, HD_GATE_DECLINED,
                          "declined: %s, and there is no client to ask", reason);
        }
        c->state = S_ASK;
        int64_t t = hd_loop_add_timer(g->loop, 0, false, on_ask, c);
        if (t < 0)
            return (int)t;
        c->timer = t;
        return 0;
    }
    /* allowed: run from the loop so that cb never runs inside hd_gate_call
     * (hd_tools_call itself never calls back synchronously) */
    run(c);
    return 0;
}

int64_t hd_gate_call(struct hd_gate *g, const struct hd_gate_req *call, hd_gate_cb cb, void *user)
{
    if (!g || !call || !call->tool || !cb)
        return -EINVAL;
    struct gcall *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->g = g;
    c->id = ++g->next_id;
    c->cb = cb;
    c->user = user;
    snprintf(c->call_id, sizeof c->call_id, "ap-%lld", (long long)c->id);
    c->tool = strdup(call->tool);
    c->args = strdup(call->arguments && call->arguments[0] ? call->arguments : "{}");
    c->workspace = call->workspace ? strdup(call->workspace) : NULL;
    if (call->approver && call->approver->ask) {
        c->approver = *call->approver;
        c->has_approver = true;
    }
    /* linked first: call_free unlinks */
    c->next = g->calls;
    if (g->calls)
        g->calls->prev = c;
    g->calls = c;
    int rc = -ENOMEM;
    if (!c->tool || !c->args || (call->workspace && !c->workspace))
        goto fail;
    if ((rc = start(c)) < 0)
        goto fail;
    return c->id;
fail:
    c->state = S_CHECK;
    c->tool_id = 0;
    call_free(c);
    return rc;
}

void hd_gate_cancel(struct hd_gate *g, int64_t id)
{
    for (struct gcall *c = g ? g->calls : NULL; c; c = c->next) {
        if (c->id == id) {
            call_free(c);
            return;
        }
    }
}

char *hd_gate_result_text(const struct hd_gate_result *res)
{
    struct hd_tool_result r = {
        .id = res->id,
        .status = res->status == HD_GATE_OK ? HD_TOOL_OK : HD_TOOL_FAILED,
        .output = res->output,
        .output_len = res->output_len,
        .truncated = res->truncated,
        .error = res->error,
    };
    return hd_tool_result_text(&r);
}
