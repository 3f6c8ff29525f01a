/*
 * http.h — hearthd's OpenAI-compatible HTTP API (libmicrohttpd): a thin
 * adapter from OpenAI requests to the scheduler's request API.
 *
 *   GET  /v1/models             the loaded model
 *   GET  /v1/models/{id}
 *   POST /v1/chat/completions   chat (messages, tools → tool_calls), SSE streaming
 *   POST /v1/completions        raw prompt, SSE streaming
 *
 * Security: the server listens on 127.0.0.1 only; requests whose Host header
 * is not a loopback name get 403 (DNS rebinding), so do requests from a
 * browser page of another origin unless CORS is enabled; a bearer token is
 * required when one is configured (401). The whole protocol is described in
 * docs/http.md.
 *
 * Threads: everything runs on the loop thread. libmicrohttpd runs in
 * "external" mode: its epoll descriptor is watched by the hearthd loop and
 * MHD_run is called when it is readable and on MHD's own timeout. A request
 * being generated suspends its connection; the scheduler's events resume it.
 */
#ifndef HEARTH_IPC_HTTP_H
#define HEARTH_IPC_HTTP_H

#include "../daemon/loop.h"
#include "../daemon/scheduler.h"
#include "ipc.h"

#include <hearth/hearth.h>

#include <stdbool.h>

struct ipc_http;

/* Starts serving on 127.0.0.1:port (1..65535) with `loop` and `s`, which
 * must outlive the server. `token`: the bearer token clients must send, or
 * NULL / "" for none (copied). `lim`: the largest request body (413 beyond)
 * and the most simultaneous connections. Errors: -EADDRINUSE (port taken),
 * -EINVAL (bad port), -ENOMEM, other negative errno; err->msg says which. */
int ipc_http_new(struct hd_loop *loop, struct hd_sched *s, int port, const char *token,
                 const struct ipc_limits *lim, struct ipc_http **out, struct hr_err *err);

/* CORS (config http.cors): answer preflight requests and send
 * Access-Control-Allow-Origin, so that pages of any origin may call the API
 * (the Host check and the token still apply). Off by default. */
void ipc_http_set_cors(struct ipc_http *h, bool on);

/* The port the server listens on. */
int ipc_http_port(const struct ipc_http *h);

/* Stops accepting connections (SIGTERM); the open ones are served to the end. */
void ipc_http_stop(struct ipc_http *h);

/* Cancels the requests still running, closes every connection, frees.
 * Accepts NULL. Call before hd_sched_free. */
void ipc_http_free(struct ipc_http *h);

#endif
