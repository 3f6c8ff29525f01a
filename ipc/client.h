/*
 * client.h — the client side of hearthd's socket protocol (docs/protocol.md),
 * as the `hearth` CLI uses it: connect, send one request, receive its
 * `stream` notifications through a callback and then its result or error.
 *
 * Blocking and single-threaded: one call at a time per connection. Every
 * error message says what to do next (start the daemon, fix the path, ...).
 */
#ifndef HEARTH_IPC_CLIENT_H
#define HEARTH_IPC_CLIENT_H

#include <hearth/hearth.h>

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

struct ipc_client;

/* The socket path clients use when none is given: $HEARTH_SOCKET, else
 * $XDG_RUNTIME_DIR/hearth/hearth.sock, else /tmp/hearth-UID/hearth.sock (as
 * hearthd chooses it). Writes it NUL-terminated to buf; -ENAMETOOLONG when
 * it does not fit `cap`. */
int ipc_client_default_path(char *buf, size_t cap);

/* Connects to `path` (NULL: ipc_client_default_path). *out is owned: free
 * with ipc_client_free. Errors: -ENOENT / -ECONNREFUSED ("is hearthd
 * running? ..."), -EACCES, -ENAMETOOLONG, other -errno; err->msg says which
 * path and what to do. */
int ipc_client_connect(const char *path, struct ipc_client **out, struct hr_err *err);
void ipc_client_free(struct ipc_client *c);

/* Called with each piece of a streamed answer (`len` bytes, not
 * NUL-terminated, borrowed for the call). */
typedef void (*ipc_text_fn)(void *user, const char *text, size_t len);

/* Called with every other notification that carries this call's id in its
 * params (approval.request, script.output, agent.tool_call, ...): the
 * method and the params (borrowed for the call). It may send messages with
 * ipc_client_send (an approval.respond, say). */
typedef void (*ipc_notify_fn)(void *user, const char *method, json_t *params);

struct ipc_call {
    const char *method;
    json_t *params;        /* borrowed; NULL: no params */
    ipc_text_fn on_text;   /* `stream` notifications of this call, or NULL */
    void *user;
    /* When *interrupt becomes non-zero during the call (a SIGINT handler
     * sets it; the handler must be installed without SA_RESTART so a blocked
     * read returns), a `cancel` for the call is sent once and the call goes on
     * until its final answer (finish_reason "cancelled"). NULL: none. */
    volatile sig_atomic_t *interrupt;
    ipc_notify_fn on_notify; /* NULL: other notifications are ignored */
};

/* Sends a request whose answer is not waited for (ipc_client_call skips it
 * when it arrives); for use inside an on_notify callback. 0 or a negative
 * errno with err->msg. */
int ipc_client_send(struct ipc_client *c, const char *method, json_t *params,
                    struct hr_err *err);

#define IPC_CLIENT_RPC_ERROR 1 /* ipc_client_call: the daemon answered with an error */

/* Sends the request and waits for its answer. Returns 0 with *result the
 * result (owned: json_decref); IPC_CLIENT_RPC_ERROR when the daemon answered
 * with an error: *code is its JSON-RPC code (may be NULL) and err->msg its
 * message; or a negative errno for a broken connection (-EPIPE, -ECONNRESET,
 * -EPROTO for a malformed answer, -ENOMEM), with err->msg. */
int ipc_client_call(struct ipc_client *c, const struct ipc_call *call, json_t **result, int *code,
                    struct hr_err *err);

#endif
