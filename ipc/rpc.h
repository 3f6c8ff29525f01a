/*
 * rpc.h — hearthd's Unix-socket frontend: JSON-RPC 2.0, one message per line
 * (NDJSON) in both directions, over the session/request API of scheduler.h.
 * docs/protocol.md is the wire contract; this header is the daemon side.
 *
 * Everything here runs on the loop thread. The server never blocks: reads
 * and writes are non-blocking, each connection buffers its own input (up to
 * the message limit) and output (sent as the peer reads), and a peer that
 * stops reading while a lot of output waits for it is disconnected.
 */
#ifndef HEARTH_IPC_RPC_H
#define HEARTH_IPC_RPC_H

#include "ipc.h"

#include <hearth/hearth.h>
#include <stdbool.h>

/* The socket protocol's version: grows with every change to the methods,
 * their parameters or results, recorded in docs/api-changes.md. Reported by
 * the `status` method as protocol_version. */
#define IPC_PROTOCOL_VERSION 4

/* JSON-RPC error codes: the standard ones and hearth's application codes
 * (docs/protocol.md lists when each is used). */
enum ipc_rpc_code {
    IPC_ERR_PARSE = -32700,           /* not JSON */
    IPC_ERR_INVALID_REQUEST = -32600, /* not a request object; message too large; batch */
    IPC_ERR_NO_METHOD = -32601,
    IPC_ERR_INVALID_PARAMS = -32602,
    IPC_ERR_INTERNAL = -32603,
    IPC_ERR_BUSY = -32000,            /* queue full, too many requests or clients */
    IPC_ERR_CONTEXT = -32001,         /* the prompt does not fit the context */
    IPC_ERR_SESSION_BUSY = -32002,    /* the session has a request running */
    IPC_ERR_TEMPLATE = -32003,        /* the chat template could not render the messages */
    IPC_ERR_ENGINE = -32004,          /* the request failed while running */
    IPC_ERR_NO_REQUEST = -32006,      /* cancel: no such request on this connection */
    IPC_ERR_NO_APPROVAL = -32007,     /* approval.respond: no such approval waits here */
    IPC_ERR_SCRIPT = -32008,          /* script.run / agent.run: the script failed */
    IPC_ERR_UNAVAILABLE = -32009,     /* no tools / no Lua runtime in this daemon */
    IPC_ERR_CANCELLED = -32010,       /* tool.call / script.run / agent.run cancelled */
};

struct hd_loop;
struct hd_sched;
struct ipc_rpc;

/* Listens on `path` (copied) and serves JSON-RPC on it through `loop`,
 * submitting requests to `s` (both must outlive the server).
 *
 * The socket's directory is created (mode 0700, parents too) when missing;
 * an existing one must be ours and closed to group and others. The socket is
 * created with mode 0600. A socket file left by a dead daemon is replaced;
 * one on which a daemon still answers is an error (-EADDRINUSE, "already
 * running"). Peers of another uid (SO_PEERCRED) are disconnected at once.
 *
 * lim->max_message_bytes: longest request line (0: 16 MiB); lim->max_clients:
 * most connections at once (0: 64), later ones get a busy error and are closed.
 *
 * Errors, with err->msg saying what to do: -ENAMETOOLONG, -EPERM (directory
 * not ours or open to others), -EADDRINUSE, -ENOMEM, other -errno of
 * mkdir/socket/bind/listen. Nothing is left behind on failure. */
int ipc_rpc_new(struct hd_loop *loop, struct hd_sched *s, const char *path,
                const struct ipc_limits *lim, struct ipc_rpc **out, struct hr_err *err);

/* Stops accepting connections (the listening socket is closed, so new
 * clients get "connection refused"); open connections keep being served. */
void ipc_rpc_stop(struct ipc_rpc *r);

/* Closes every connection (their requests are cancelled through
 * hd_sched_drop_client), the listening socket, and unlinks the socket file
 * when it is still the one this server created. Accepts NULL. */
void ipc_rpc_free(struct ipc_rpc *r);

/* Gives the server the tools, the policy gate and the Lua runtime for
 * tools.list, tool.call, approval.respond, script.run and agent.run
 * (docs/protocol.md). `svc` is borrowed and must outlive the server; NULL
 * (the default) answers those methods with "unavailable". */
struct hd_services;
void ipc_rpc_set_services(struct ipc_rpc *r, const struct hd_services *svc);

/* Open connections (for status and tests). */
int ipc_rpc_n_clients(const struct ipc_rpc *r);

/* True while some live connection still has output waiting to be written
 * (a shutdown waits for it before closing). Accepts NULL (false). */
bool ipc_rpc_output_pending(const struct ipc_rpc *r);

#endif
