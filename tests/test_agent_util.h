/*
 * test_agent_util.h — what the Lua and agent tests share (test_lua.c,
 * test_agent.c): a scratch workspace, a hearthd whose tools.roots is that
 * workspace, and JSON-RPC calls that collect the call's notifications and
 * answer its approval requests the way the test says.
 *
 * The workspace lives under /var/tmp, not /tmp: run_shell gives commands a
 * private /tmp only when the workspace is not under /tmp (docs/plugins.md).
 */
#ifndef HEARTH_TESTS_AGENT_UTIL_H
#define HEARTH_TESTS_AGENT_UTIL_H

#include "daemonutil.h"

#include <jansson.h>
#include <stdbool.h>

/* How a call answers the approval requests it gets. */
enum at_approve {
    AT_APPROVE,  /* approval.respond approve:true */
    AT_DECLINE,  /* approval.respond approve:false */
    AT_IGNORE,   /* never answer (the daemon's approval timeout decides) */
};

/* A fresh workspace directory (mode 0700) under /var/tmp. Static buffer. */
const char *at_workspace_new(void);
/* WS/rel: rotating static buffers, valid until the 8th next call. */
const char *at_path(const char *ws, const char *rel);
void at_write(const char *ws, const char *rel, const char *content);
bool at_exists(const char *ws, const char *rel);
/* Removes the workspace and everything in it. */
void at_workspace_free(const char *ws);

/* du_start with `tools.roots: [ws]` (plus tools_yaml lines inside the
 * tools section, e.g. "  approval_timeout: 1\n") and extra_yaml after it. */
void at_start(struct du_daemon *d, const char *ws, const char *tools_yaml, const char *extra_yaml);

/* Sends METHOD with params (stolen), then reads until its response:
 * notifications carrying its id are appended to *notes (owned array; NULL:
 * dropped), approval.request ones are also answered per `approve`.
 * *asked (optional) counts the approval requests. Returns the response
 * (owned); asserts one arrives within 120 s. */
json_t *at_call(struct du_conn *c, const char *method, json_t *params, enum at_approve approve,
                json_t **notes, int *asked);
/* script.run of `source` with workspace ws (may be NULL). */
json_t *at_script(struct du_conn *c, const char *source, const char *ws, enum at_approve approve,
                  json_t **notes);
/* The result of a response, asserting it has one (borrowed from resp). */
json_t *at_result(json_t *resp);
/* The error message of a response, asserting it is an error with `code`. */
const char *at_error(json_t *resp, int code);
/* The notifications of `notes` whose method is `method`, in order (a new
 * array: json_decref; its elements are shared with notes). */
json_t *at_notes(json_t *notes, const char *method);

/* The daemon answers status (it keeps serving). */
void at_assert_serving(struct du_daemon *d);

#endif
