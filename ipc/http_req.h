/*
 * http_req.h — inside the HTTP API: one OpenAI request, shared by the server
 * (http.c: connections, security, routing) and the OpenAI mapping
 * (http_openai.c: request JSON → scheduler request, events → response JSON
 * and SSE chunks). Not an interface for other modules.
 */
#ifndef HEARTH_IPC_HTTP_REQ_H
#define HEARTH_IPC_HTTP_REQ_H

#include "../daemon/scheduler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
struct ipc_http;

/* A growable byte string, always NUL-terminated once something was added. */
struct http_buf {
    char *p;
    size_t len, cap;
};

/* Appends s[0..n); -ENOMEM. */
int http_buf_add(struct http_buf *b, const char *s, size_t n);
void http_buf_done(struct http_buf *b);

enum http_route { ROUTE_MODELS, ROUTE_MODEL, ROUTE_CHAT, ROUTE_COMPLETIONS };

enum http_phase {
    PHASE_READING, /* headers and body arriving */
    PHASE_RUNNING, /* submitted; a non-stream request waits suspended */
    PHASE_READY,   /* a non-stream reply (or an error) waits to be queued */
    PHASE_ANSWERED /* a response is queued */
};

/* One HTTP request. Lives while its connection has it (until MHD's
 * completed notification) and, for a stream, while MHD holds the stream
 * response: `refs` counts the two. */
struct http_req {
    struct http_req *prev, *next; /* the server's list of live requests */
    struct ipc_http *h;
    struct MHD_Connection *conn;  /* NULL once the connection is done */
    int refs;
    enum http_route route;
    enum http_phase phase;
    char model_arg[128];          /* ROUTE_MODEL: the id asked for */

    struct http_buf body;
    bool too_big;

    /* What was asked. */
    bool stream, include_usage, tools;
    uint64_t client;              /* scheduler client (one per request); 0: none */
    uint64_t id;                  /* running scheduler request; 0: none */
    char oid[48];                 /* "chatcmpl-…" / "cmpl-…" */
    int64_t created;              /* Unix seconds */

    /* PHASE_READY: the reply to queue. */
    unsigned status;
    char *reply;                  /* owned JSON text */

    /* Streams. */
    bool suspended;               /* by the content reader, waiting for events */
    bool eos;                     /* `out` holds the last bytes */
    struct http_buf text;         /* tools: the answer so far */
    size_t sent;                  /* tools: bytes of `text` sent as content */
    struct http_buf out;          /* SSE bytes MHD has not taken yet */
    size_t out_off;
};

/* From http.c (tests/test_http_openai.c provides its own). */
struct hd_sched *http_sched(const struct ipc_http *h);
const char *http_model_id(const struct ipc_http *h);
int64_t http_model_created(const struct ipc_http *h);

/* An OpenAI error body {"error":{message,type,param,code}} (owned; NULL on
 * no memory). `param`, `code` may be NULL. */
char *http_error_json(const char *message, const char *type, const char *param, const char *code);

/* ---- http_openai.c (also http_buf_*, http_error_json) ---------------------------- */

/* The reply of GET /v1/models (owned JSON text, NULL on no memory). */
char *oai_models_json(const struct ipc_http *h);
/* One model object, or NULL when `id` is not the model's. */
char *oai_model_json(const struct ipc_http *h, const char *id);

/* Parses r->body for r->route and submits it with `fn`/`r` as the event
 * callback. On success returns 0 (r->id, r->client, r->stream, ... set; a
 * stream's first chunk is in r->out). On failure returns the HTTP status
 * and sets *reply to an OpenAI error body (owned). */
unsigned oai_submit(struct http_req *r, hd_event_fn fn, char **reply);

/* Handles one scheduler event. Non-stream: on DONE/ERROR sets r->status
 * and r->reply. Stream: appends SSE data to r->out, and sets r->eos after
 * the last. Returns false only when memory ran out (the caller ends the
 * response with an error). */
bool oai_event(struct http_req *r, const struct hd_event *ev);

/* Ends a running stream with an error event (the request was dropped). */
void oai_stream_abort(struct http_req *r, const char *message);

#endif
