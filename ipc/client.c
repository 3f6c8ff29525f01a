/*
 * client.c — a blocking client of hearthd's socket protocol (see client.h).
 *
 * Requests carry ids counted per connection. While waiting for its answer a
 * call reads lines and sorts them: `stream` notifications of this call go to
 * the text callback, other notifications of this call to the notify
 * callback, answers to a `cancel` sent on the user's Ctrl-C or to requests
 * sent with ipc_client_send are dropped, an error with id null (the daemon refusing the connection or a
 * message) ends the call, anything else is ignored.
 */
#include "client.h"

#include "err.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_LINE (512u << 20) /* an answer this long is a broken daemon */
#define START_HINT "start it with `hearthd` or `make run`"

struct ipc_client {
    int fd;
    char *path;
    char *buf; /* received bytes not yet handled */
    size_t len, cap;
    json_int_t next_id;
};

int ipc_client_default_path(char *buf, size_t cap)
{
    const char *env = getenv("HEARTH_SOCKET");
    const char *rt = getenv("XDG_RUNTIME_DIR");
    int n;
    if (env && env[0])
        n = snprintf(buf, cap, "%s", env);
    else if (rt && rt[0] == '/')
        n = snprintf(buf, cap, "%s/hearth/hearth.sock", rt);
    else
        n = snprintf(buf, cap, "/tmp/hearth-%u/hearth.sock", (unsigned)getuid());
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ipc_client_connect(const char *path, struct ipc_client **out, struct hr_err *err)
{
    hr_err_clear(err);
    char def[sizeof ((struct sockaddr_un *)0)->sun_path];
    if (!path) {
        if (ipc_client_default_path(def, sizeof def) < 0)
            return hr_err_set(err, -ENAMETOOLONG, -1,
                              "the default socket path is too long: pass --socket PATH");
        path = def;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return hr_err_set(err, -ENAMETOOLONG, -1, "socket path %s is too long (at most %zu bytes)",
                          path, sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, path);
    struct ipc_client *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;
    if (c->fd < 0) {
        rc = hr_err_set(err, -errno, -1, "socket: %s", strerror(errno));
        goto fail;
    }
    while ((rc = connect(c->fd, (const struct sockaddr *)&sa, sizeof sa)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        int e = errno;
        if (e == ENOENT)
            rc = hr_err_set(err, -e, -1, "no daemon socket at %s: is hearthd running? " START_HINT,
                            path);
        else if (e == ECONNREFUSED)
            rc = hr_err_set(err, -e, -1, "nothing answers on %s: hearthd is not running; "
                            START_HINT, path);
        else if (e == EACCES)
            rc = hr_err_set(err, -e, -1, "cannot connect to %s: permission denied (a socket "
                            "of another user?)", path);
        else
            rc = hr_err_set(err, -e, -1, "cannot connect to %s: %s", path, strerror(e));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ipc_client_free(c);
    return rc;
}

void ipc_client_free(struct ipc_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->path);
    free(c->buf);
    free(c);
}

static int send_all(struct ipc_client *c, const char *p, size_t n, struct hr_err *err)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return hr_err_set(err, -errno, -1, "lost the connection to hearthd at %s: %s",
                              c->path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_msg(struct ipc_client *c, json_int_t id, const char *method, json_t *params,
                    struct hr_err *err)
{
    json_t *msg = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (!msg || (params && json_object_set(msg, "params", params) < 0)) {
        json_decref(msg);
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    }
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!s)
        return hr_err_set(err, -ENOMEM, -1, "out of memory (or parameters that are not JSON)");
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL: the length is known */
    int rc = send_all(c, s, n + 1, err);
    free(s);
    return rc;
}

int ipc_client_send(struct ipc_client *c, const char *method, json_t *params,
                    struct hr_err *err)
{
    hr_err_clear(err);
    return send_msg(c, ++c->next_id, method, params, err);
}

/* Reads more bytes into the buffer. Returns 0 (data or an interruption:
 * the caller checks its flag and comes back), or a negative errno. */
static int fill(struct ipc_client *c, struct hr_err *err)
{
    if (c->cap - c->len < 65536) {
        if (c->cap >= MAX_LINE)
            return hr_err_set(err, -EPROTO, -1, "an answer from hearthd is longer than %u MiB",
                              MAX_LINE >> 20);
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *p = realloc(c->buf, cap);
        if (!p)
            return hr_err_set(err, -ENOMEM, -1, "out of memory");
        c->buf = p;
        c->cap = cap;
    }
    /* poll with a timeout, so an interrupt flag set just before a blocking
     * read is still seen soon */
    struct pollfd pf = {c->fd, POLLIN, 0};
    int pr = poll(&pf, 1, 200);
    if (pr <= 0)
        return pr < 0 && errno != EINTR ? hr_err_set(err, -errno, -1, "poll: %s", strerror(errno))
                                        : 0;
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0 && errno == EINTR)
        return 0;
    if (r < 0)
        return hr_err_set(err, -errno, -1, "lost the connection to hearthd at %s: %s", c->path,
                          strerror(errno));
    if (r == 0)
        return hr_err_set(err, -ECONNRESET, -1,
                          "hearthd closed the connection at %s (did it stop? see its log)",
                          c->path);
    c->len += (size_t)r;
    return 0;
}

/* Takes the first complete line out of the buffer and parses it: 1 and *msg,
 * 0 when no line is complete yet, or a negative errno. */
static int next_msg(struct ipc_client *c, json_t **msg, struct hr_err *err)
{
    char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - c->buf);
    json_error_t je;
    *msg = json_loadb(c->buf, n, 0, &je);
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    if (!*msg || !json_is_object(*msg)) {
        json_decref(*msg);
        return hr_err_set(err, -EPROTO, -1, "hearthd sent a malformed message (%s)",
                          *msg ? "not an object" : je.text);
    }
    return 1;
}

int ipc_client_call(struct ipc_client *c, const struct ipc_call *call, json_t **result, int *code,
                    struct hr_err *err)
{
    hr_err_clear(err);
    json_int_t id = ++c->next_id, cancel_id = 0;
    int rc = send_msg(c, id, call->method, call->params, err);
    if (rc < 0)
        return rc;
    for (;;) {
        if (call->interrupt && *call->interrupt && !cancel_id) {
            cancel_id = ++c->next_id;
            json_t *p = json_pack("{s:I}", "id", id);
            rc = p ? send_msg(c, cancel_id, "cancel", p, err)
                   : hr_err_set(err, -ENOMEM, -1, "out of memory");
            json_decref(p);
            if (rc < 0)
                return rc;
        }
        json_t *msg = NULL;
        rc = next_msg(c, &msg, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if ((rc = fill(c, err)) < 0)
                return rc;
            continue;
        }
        json_t *mid = json_object_get(msg, "id");
        const char *method = json_string_value(json_object_get(msg, "method"));
        json_t *params = json_object_get(msg, "params");
        if (method && !strcmp(method, "stream") && !mid) {
            json_t *text = json_object_get(params, "text");
            if (call->on_text && json_integer_value(json_object_get(params, "id")) == id &&
                json_is_string(text))
                call->on_text(call->user, json_string_value(text), json_string_length(text));
        } else if (method && !mid) {
            json_t *pid = json_object_get(params, "id");
            if (call->on_notify && json_is_integer(pid) && json_integer_value(pid) == id)
                call->on_notify(call->user, method, params);
        } else if (json_is_null(mid) || (json_is_integer(mid) && json_integer_value(mid) == id)) {
            json_t *e = json_object_get(msg, "error");
            json_t *r = json_object_get(msg, "result");
            if (e) {
                if (code)
                    *code = (int)json_integer_value(json_object_get(e, "code"));
                const char *m = json_string_value(json_object_get(e, "message"));
                hr_err_set(err, 0, -1, "%s", m ? m : "hearthd answered with an error");
                json_decref(msg);
                return IPC_CLIENT_RPC_ERROR;
            }
            if (!r || json_is_null(mid)) {
                json_decref(msg);
                return hr_err_set(err, -EPROTO, -1, "hearthd sent an answer without a result");
            }
            *result = json_incref(r);
            json_decref(msg);
            return 0;
        }
        /* anything else (the answer to our cancel): not this call's business */
        json_decref(msg);
    }
}
