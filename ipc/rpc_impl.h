/*
 * rpc_impl.h — what the socket server's two files share: the connection and
 * in-flight call records (rpc.c: transport, framing, dispatch) and the method
 * table (rpc_methods.c: one handler per method).
 *
 * Lifetimes: a connection is killed (rpc_conn_kill) by marking it dead; it is
 * freed later on the loop (never inside a handler or a scheduler callback),
 * so every handler may use its `c` until it returns. A call lives from its
 * successful hd_sched_submit until its DONE/ERROR event, or until its
 * connection is freed (after hd_sched_drop_client, which ends the events).
 */
#ifndef HEARTH_IPC_RPC_IMPL_H
#define HEARTH_IPC_RPC_IMPL_H

#include "rpc.h"

#include "../daemon/agent.h"
#include "../daemon/scheduler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct rpc_conn;

/* A request of a connection that runs in the scheduler. */
struct rpc_call {
    struct rpc_conn *c;
    json_t *id;          /* the JSON-RPC id (a reference) */
    uint64_t req;        /* the scheduler's request id */
    bool stream;         /* send `stream` notifications */
    bool chat;           /* the result gets `message` */
    bool cancelling;     /* cancel was asked once already */
    struct rpc_call *next;
    /* Calls that are not scheduler requests (rpc_tools.c: tool.call,
     * script.run, agent.run); NULL for requests. cancel: m_cancel asks it to
     * end (it answers the call and frees it); drop: the connection is being
     * freed (stop the work, answer nothing, free nothing). */
    void (*cancel)(struct rpc_call *k);
    void (*drop)(struct rpc_call *k);
    int64_t ext_id;      /* the gated call's or the run's id */
    int ext_kind;
};

struct rpc_conn {
    struct ipc_rpc *r;
    int fd;
    uint64_t client;     /* hd_sched_client_new */
    bool dead;           /* killed: waiting to be freed */
    bool eof;            /* the peer shut down its side: no more input */
    uint32_t events;     /* what the loop watches now */

    /* input: bytes of the line being assembled (no newline yet), or, when
     * discarding, nothing: the line is over the limit and skipped */
    char *in;
    size_t in_len, in_cap;
    bool discarding;
    size_t discarded;    /* bytes of the oversized line so far */

    /* output: bytes [out_off, out_len) wait to be written */
    char *out;
    size_t out_len, out_off, out_cap;
    int64_t last_progress_ms; /* last time the peer took output (or output appeared) */
    int64_t stall_timer;      /* armed while output is large; 0: none */

    struct rpc_call *calls;
    struct rpc_conn *next, *prev;
};

struct ipc_rpc {
    struct hd_loop *loop;
    struct hd_sched *s;
    char *path;
    int listen_fd;           /* -1 after ipc_rpc_stop */
    dev_t sock_dev;          /* identity of the socket file we created */
    ino_t sock_ino;
    bool have_sock;
    uid_t uid;
    size_t max_message;
    int max_clients;
    int n_conns;
    struct rpc_conn *conns;
    const struct hd_services *svc; /* tools, policy, Lua (ipc_rpc_set_services); NULL: none */
    int64_t reap_timer;      /* frees dead connections; 0: none */
    int64_t accept_timer;    /* resumes accepting after EMFILE; 0: none */
};

/* ---- sending (rpc.c) ----------------------------------------------------------- */

/* Queues one message and tries to write it. Steals `msg`. No-op on a dead
 * connection. May kill the connection (write error, output over the limit). */
void rpc_send(struct rpc_conn *c, json_t *msg);
/* The response to `id` (NULL: a notification, nothing is sent); steals `result`. */
void rpc_reply(struct rpc_conn *c, json_t *id, json_t *result);
/* An error response to `id` (NULL: a notification, nothing is sent; json
 * null: an error not tied to a request). */
void rpc_error(struct rpc_conn *c, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void rpc_conn_kill(struct rpc_conn *c);
/* Kills a half-closed connection that has nothing left to do; true when the
 * connection is dead (now or before). */
bool rpc_conn_maybe_done(struct rpc_conn *c);

/* A JSON string of `len` bytes; invalid UTF-8 is replaced by U+FFFD (model
 * output, detokenized byte tokens). NULL only without memory. */
json_t *rpc_string(const char *s, size_t len);

/* ---- methods (rpc_methods.c) ----------------------------------------------------- */

/* A handler answers through rpc_reply / rpc_error (or later, from a scheduler
 * event). `id` is NULL for a notification; `params` is an object whose keys
 * have been checked against `keys`. */
struct rpc_method {
    const char *name;
    void (*fn)(struct rpc_conn *c, json_t *id, json_t *params);
    const char *const *keys;     /* accepted params, NULL-terminated */
    bool gen_keys;               /* also ipc_params_gen_keys */
    const char *params;          /* documentation: the params object */
    const char *result;          /* documentation: the result */
};

extern const struct rpc_method rpc_methods[];
extern const size_t rpc_n_methods;

/* The call of `c` whose JSON-RPC id equals `id`, or NULL. */
struct rpc_call *rpc_find_call(struct rpc_conn *c, json_t *id);

/* ---- tools, scripts, the agent (rpc_tools.c) ---------------------------------------- */

void rpc_m_tools_list(struct rpc_conn *c, json_t *id, json_t *params);
void rpc_m_tool_call(struct rpc_conn *c, json_t *id, json_t *params);
void rpc_m_approval_respond(struct rpc_conn *c, json_t *id, json_t *params);
void rpc_m_script_run(struct rpc_conn *c, json_t *id, json_t *params);
void rpc_m_agent_run(struct rpc_conn *c, json_t *id, json_t *params);

/* ---- training (rpc_train.c) ------------------------------------------------------------------ */

void rpc_m_train(struct rpc_conn *c, json_t *id, json_t *params);

#endif
