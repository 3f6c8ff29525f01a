/*
 * policy.h — who may run which tool, and the gate every tool call of a
 * client passes on its way to the tool host.
 *
 * The decision (hd_gate_decide) comes from the config: a tool named in
 * tools.deny never runs; otherwise its risk class picks tools.policy.read,
 * .write or .exec — allow (run), ask (the client confirms each call) or
 * deny. Defaults: read tools run, write and exec tools ask.
 *
 * The gate (hd_gate_call) is what the socket's `tool.call`, the D-Bus
 * `CallTool`, Lua's `hearth.tools.call` and the agent use, so no frontend
 * can skip a step:
 *
 *   1. the call is checked (the tool exists, the arguments match its
 *      schema: hd_tools_validate) — an invalid call is never shown to the
 *      user;
 *   2. the decision: deny ends the call (HD_GATE_DENIED); ask sends an
 *      approval request to the client through the caller's hd_approver and
 *      waits for hd_gate_answer, at most tools.approval_timeout; no answer
 *      in time, a "no", a call without an approver, or the client going away
 *      (its frontend cancels the call) all decline it (HD_GATE_DECLINED);
 *   3. the tool host runs it (hd_tools_call), in the call's workspace, which
 *      hd_tools checks against tools.roots.
 *
 * Nothing a model or a script says can approve a call: only
 * hd_gate_answer, which frontends call for their own client's answer to
 * an approval they forwarded to that same client.
 *
 * Threading: the loop thread only, like daemon/tools.h. Logging: each call
 * that asks, is denied or declined is logged once here (info), with the
 * tool and the reason; results are the caller's.
 */
#ifndef HEARTH_DAEMON_POLICY_H
#define HEARTH_DAEMON_POLICY_H

#include "config.h"
#include "loop.h"
#include "tools.h"

#include <hearth/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_gate;

/* The policy's settings. Pointers are borrowed for the duration of
 * hd_gate_new / hd_gate_update only (names are copied). */
struct hd_policy_params {
    enum hd_policy read, write, exec;
    const char *const *deny; /* [n_deny] tool names that never run */
    size_t n_deny;
    int approval_timeout_ms; /* > 0 */
};

/* From cfg (tools.policy.*, tools.deny, tools.approval_timeout), or the
 * defaults (allow/ask/ask, nothing denied, 120 s) when cfg is NULL.
 * Pointers point into cfg. */
void hd_policy_params_init(struct hd_policy_params *p, const struct hd_config *cfg);

/* A policy gating calls to `tools` (borrowed, may be NULL: every call then
 * ends HD_GATE_UNAVAILABLE). Returns 0 and *out (owned: hd_gate_free),
 * -EINVAL (bad params) or -ENOMEM. */
int hd_gate_new(struct hd_loop *loop, struct hd_tools *tools, const struct hd_policy_params *p,
                  struct hd_gate **out);
/* Applies reloaded settings to calls decided from now on (calls already
 * waiting for an answer keep their deadline). 0, -EINVAL or -ENOMEM (then
 * nothing changed). */
int hd_gate_update(struct hd_gate *g, const struct hd_policy_params *p);
/* Drops every call without calling its callback. Accepts NULL. */
void hd_gate_free(struct hd_gate *g);

/* The decision for a tool of risk class `risk`. *reason (optional) gets a
 * static phrase saying which setting decided ("tools.deny", "tools.policy.exec
 * is ask", ...). */
enum hd_policy hd_gate_decide(const struct hd_gate *g, const char *tool, enum hr_tool_risk risk,
                                const char **reason);
/* "allow", "ask" or "deny". Static. */
const char *hd_policy_name(enum hd_policy p);

/* ---- approvals ------------------------------------------------------------- */

/* What the client is asked; borrowed for the duration of the ask callback. */
struct hd_approval {
    const char *call_id;   /* names the approval in the answer ("ap-7"); unique per daemon */
    const char *tool;
    const char *arguments; /* the call's arguments, compact JSON text */
    const char *risk;      /* "read", "write", "exec" */
    const char *reason;    /* why the client is asked (the deciding setting) */
    const char *workspace;
    int timeout_ms;        /* how long the call waits for the answer */
};

/* The client a call's approval goes to, given by the frontend that started
 * the work (a socket connection, a bus peer). `user` also identifies the
 * client: only an answer given with the same `user` counts. */
struct hd_approver {
    /* Forwards the question to the client; the answer comes back through
     * hd_gate_answer. Called on the loop thread, never from inside
     * hd_gate_call. */
    void (*ask)(void *user, const struct hd_approval *a);
    void *user;
};

/* The client's answer to approval `call_id`. Returns 0, or -ENOENT when no
 * call waits for that answer from this client (unknown id, already
 * answered, timed out, or asked of another client). The call's callback
 * runs later, never from inside this function. */
int hd_gate_answer(struct hd_gate *g, void *approver_user, const char *call_id, bool approve);

/* ---- gated calls ------------------------------------------------------------- */

/* How a gated call ended. The first six mirror enum hd_tool_status. */
enum hd_gate_status {
    HD_GATE_OK = HD_TOOL_OK,
    HD_GATE_FAILED = HD_TOOL_FAILED,
    HD_GATE_INVALID = HD_TOOL_INVALID,         /* unknown tool, bad arguments, bad workspace */
    HD_GATE_TIMEOUT = HD_TOOL_TIMEOUT,
    HD_GATE_CRASHED = HD_TOOL_CRASHED,
    HD_GATE_UNAVAILABLE = HD_TOOL_UNAVAILABLE, /* no tool host (or no tools at all) */
    HD_GATE_DENIED,   /* the policy refuses this tool */
    HD_GATE_DECLINED, /* the client said no, did not answer in time, or could not be asked */
};

/* "ok", "failed", "invalid", "timeout", "crashed", "unavailable", "denied",
 * "declined". Static. */
const char *hd_gate_status_name(enum hd_gate_status s);

/* A gated call's result, borrowed for the duration of the callback. */
struct hd_gate_result {
    int64_t id;
    enum hd_gate_status status;
    const char *output; /* the tool's text ("" when it did not run) */
    size_t output_len;
    bool truncated;
    const char *error;  /* one line for the model/user; NULL when OK */
    bool asked;         /* the client was asked */
    bool ran;           /* the tool host ran the call (OK, FAILED, TIMEOUT, CRASHED) */
};

/* Called exactly once per call on the loop thread — never from inside
 * hd_gate_call — unless the call is cancelled first. */
typedef void (*hd_gate_cb)(void *user, const struct hd_gate_result *res);

struct hd_gate_req {
    const char *tool;
    const char *arguments; /* a JSON object as text; NULL or "" mean {} */
    const char *workspace; /* as hd_tools_call's */
    const struct hd_approver *approver; /* copied; NULL: calls that must ask are declined */
};

/* Starts a gated call (steps in the file header). Every outcome arrives
 * through cb. Returns the call's id (> 0), or -EINVAL (g, c, c->tool or cb
 * NULL), -ENOMEM; then cb is never called. */
int64_t hd_gate_call(struct hd_gate *g, const struct hd_gate_req *c, hd_gate_cb cb, void *user);

/* Cancels a call: its callback is not called; a pending approval is
 * withdrawn, a running tool call cancelled (hd_tools_cancel). Unknown ids
 * are ignored. */
void hd_gate_cancel(struct hd_gate *g, int64_t id);

/* Text to give a model for a result: the output (with a note when it was
 * truncated), or "error: ..." when the call failed or did not run. Owned:
 * free(); NULL when out of memory. */
char *hd_gate_result_text(const struct hd_gate_result *res);

/* Calls waiting for an answer (for tests and status). */
size_t hd_gate_n_waiting(const struct hd_gate *g);

#endif
