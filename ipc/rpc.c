/*
 * rpc.c — the Unix-socket JSON-RPC server: the listening socket and its
 * safety checks, connections with their input and output buffers, NDJSON
 * framing, and the validation of each message before it reaches a method
 * handler (rpc_methods.c). docs/protocol.md is the contract.
 *
 * Flow control. A connection's input is read only while its pending output
 * is below OUT_SOFT: a client that sends requests without reading the
 * answers stops being read, so it cannot make the daemon buffer without
 * bound. Streams already running keep producing output; a peer that takes
 * nothing for STALL_MS while more than OUT_STALL bytes wait, or lets OUT_HARD
 * bytes pile up, is disconnected (its requests are cancelled).
 *
 * Oversized lines are never buffered: past max_message bytes without a
 * newline, the line's bytes are counted and dropped until its newline, and
 * then answered with -32600. The connection survives.
 */
#include "rpc_impl.h"

#include "../daemon/loop.h"
#include "params.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_MAX_MESSAGE (16u << 20)
#define DEFAULT_MAX_CLIENTS 64
#define READ_CHUNK (64u << 10)
#define READS_PER_WAKEUP 4            /* fairness between connections */
#define OUT_SOFT (1u << 20)           /* stop reading requests above this */
#define OUT_STALL (4u << 20)          /* ... drop a peer stalled this long above this */
#define STALL_MS 10000
#define OUT_HARD_MIN (64u << 20)      /* drop at once above max(this, 4 * max_message) */

/* ---- output ------------------------------------------------------------------- */

static void update_events(struct rpc_conn *c)
{
    if (c->dead)
        return;
    uint32_t want = 0;
    /* Discarding stores nothing, so it goes on whatever the output. */
    if (!c->eof && (c->discarding || c->out_len - c->out_off < OUT_SOFT))
        want |= EPOLLIN;
    if (c->out_len > c->out_off)
        want |= EPOLLOUT;
    if (want != c->events && hd_loop_mod_fd(c->r->loop, c->fd, want) == 0)
        c->events = want;
}

static size_t out_hard(const struct rpc_conn *c)
{
    size_t h = 4 * c->r->max_message;
    return h > OUT_HARD_MIN ? h : OUT_HARD_MIN;
}

static void stall_check(void *user);

static void arm_stall(struct rpc_conn *c, int64_t ms)
{
    if (c->stall_timer)
        return;
    int64_t t = hd_loop_add_timer(c->r->loop, ms, false, stall_check, c);
    c->stall_timer = t > 0 ? t : 0;
}

static void stall_check(void *user)
{
    struct rpc_conn *c = user;
    c->stall_timer = 0;
    if (c->dead || c->out_len - c->out_off <= OUT_STALL)
        return;
    int64_t idle = hd_now_ms() - c->last_progress_ms;
    if (idle >= STALL_MS)
        rpc_conn_kill(c);
    else
        arm_stall(c, STALL_MS - idle);
}

/* Writes what the socket takes. */
static void flush(struct rpc_conn *c)
{
    while (!c->dead && c->out_len > c->out_off) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_progress_ms = hd_now_ms();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            rpc_conn_kill(c); /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->out_cap > OUT_SOFT) { /* give back what a big answer took */
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
    } else if (c->out_off > c->out_cap / 2) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    update_events(c);
}

static int out_reserve(struct rpc_conn *c, size_t more)
{
    if (c->out_len + more <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p)
        return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct rpc_conn *c = data;
    if (out_reserve(c, size) < 0)
        return -1;
    memcpy(c->out + c->out_len, buf, size);
    c->out_len += size;
    return 0;
}

void rpc_send(struct rpc_conn *c, json_t *msg)
{
    if (!msg)
        return;
    if (c->dead) {
        json_decref(msg);
        return;
    }
    if (c->out_len == c->out_off)
        c->last_progress_ms = hd_now_ms(); /* the peer's clock starts now */
    /* Compact output has no raw newline: strings escape theirs. Reals keep 15
     * significant digits, so timings print short and any id written with up
     * to 15 digits is echoed as written. */
    int rc = json_dump_callback(msg, dump_cb, c, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(msg);
    if (rc < 0 || dump_cb("\n", 1, c) < 0) {
        rpc_conn_kill(c); /* no memory: the stream is broken mid-message */
        return;
    }
    flush(c);
    if (c->dead)
        return;
    size_t pending = c->out_len - c->out_off;
    if (pending > out_hard(c))
        rpc_conn_kill(c);
    else if (pending > OUT_STALL)
        arm_stall(c, STALL_MS);
}

void rpc_reply(struct rpc_conn *c, json_t *id, json_t *result)
{
    if (!id) {
        json_decref(result);
        return;
    }
    json_t *msg = json_object();
    if (msg && result) {
        json_object_set_new(msg, "jsonrpc", json_string("2.0"));
        json_object_set_new(msg, "id", json_incref(id));
        json_object_set_new(msg, "result", result);
        rpc_send(c, msg);
        return;
    }
    json_decref(msg);
    json_decref(result);
    rpc_conn_kill(c);
}

void rpc_error(struct rpc_conn *c, json_t *id, int code, const char *fmt, ...)
{
    if (!id)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *msg = json_pack("{s:s, s:O, s:{s:i, s:o}}", "jsonrpc", "2.0", "id", id, "error",
                            "code", code, "message", rpc_string(text, strlen(text)));
    if (!msg) {
        rpc_conn_kill(c);
        return;
    }
    rpc_send(c, msg);
}

/* ---- UTF-8 --------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    size_t len;
    uint32_t cp;
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

json_t *rpc_string(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j || !s)
        return j;
    /* Invalid UTF-8 (or a NUL byte): each bad byte becomes U+FFFD. */
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq((const unsigned char *)s + i, len - i);
        if (k == 0 || s[i] == '\0') {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* ---- dispatch -------------------------------------------------------------------- */

struct rpc_call *rpc_find_call(struct rpc_conn *c, json_t *id)
{
    for (struct rpc_call *k = c->calls; k; k = k->next)
        if (json_equal(k->id, id))
            return k;
    return NULL;
}

static const struct rpc_method *find_method(const char *name)
{
    for (size_t i = 0; i < rpc_n_methods; i++)
        if (!strcmp(rpc_methods[i].name, name))
            return &rpc_methods[i];
    return NULL;
}

static bool key_allowed(const struct rpc_method *m, const char *key)
{
    for (const char *const *k = m->keys; k && *k; k++)
        if (!strcmp(*k, key))
            return true;
    if (m->gen_keys)
        for (const char *const *k = ipc_params_gen_keys; *k; k++)
            if (!strcmp(*k, key))
                return true;
    return false;
}

/* One message (a line without its newline). */
static void handle_line(struct rpc_conn *c, const char *line, size_t len)
{
    json_error_t je;
    json_t *msg = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    json_t *null_id = json_null(); /* a singleton: no reference counting */
    if (!msg) {
        rpc_error(c, null_id, IPC_ERR_PARSE, "parse error at column %d: %s", je.column, je.text);
        return;
    }
    if (json_is_array(msg)) {
        rpc_error(c, null_id, IPC_ERR_INVALID_REQUEST,
                  "batches are not supported: send one request per line");
        goto done;
    }
    if (!json_is_object(msg)) {
        rpc_error(c, null_id, IPC_ERR_INVALID_REQUEST, "a request must be a JSON object");
        goto done;
    }
    json_t *id = json_object_get(msg, "id");
    if (id && !json_is_string(id) && !json_is_number(id)) {
        rpc_error(c, null_id, IPC_ERR_INVALID_REQUEST, "'id' must be a number or a string");
        goto done;
    }
    json_t *reply_id = id; /* NULL for a notification: no answer, not even an error */
    json_t *v = json_object_get(msg, "jsonrpc");
    if (!json_is_string(v) || strcmp(json_string_value(v), "2.0")) {
        rpc_error(c, reply_id, IPC_ERR_INVALID_REQUEST, "'jsonrpc' must be \"2.0\"");
        goto done;
    }
    v = json_object_get(msg, "method");
    if (!json_is_string(v)) {
        rpc_error(c, reply_id, IPC_ERR_INVALID_REQUEST, "'method' must be a string");
        goto done;
    }
    const char *name = json_string_value(v);
    const struct rpc_method *m = find_method(name);
    if (!m) {
        rpc_error(c, reply_id, IPC_ERR_NO_METHOD,
                  "unknown method '%.200s' (rpc.describe lists the methods)", name);
        goto done;
    }
    json_t *params = json_object_get(msg, "params");
    if (params && !json_is_object(params)) {
        rpc_error(c, reply_id, IPC_ERR_INVALID_PARAMS,
                  "'params' must be an object (parameters by name)");
        goto done;
    }
    if (id && rpc_find_call(c, id)) {
        char *s = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        rpc_error(c, reply_id, IPC_ERR_INVALID_REQUEST,
                  "id %.200s is already used by a request in flight on this connection",
                  s ? s : "?");
        free(s);
        goto done;
    }
    json_t *empty = NULL;
    if (!params)
        params = empty = json_object();
    if (!params) {
        rpc_conn_kill(c);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(params, key, val) {
        if (!key_allowed(m, key)) {
            rpc_error(c, reply_id, IPC_ERR_INVALID_PARAMS, "unknown parameter '%.200s' of '%s'",
                      key, m->name);
            json_decref(empty);
            goto done;
        }
    }
    m->fn(c, id, params);
    json_decref(empty);
done:
    json_decref(msg);
}

/* Handles the complete lines in the input buffer while output is not backed
 * up; keeps the incomplete rest. */
static void process_input(struct rpc_conn *c)
{
    size_t pos = 0;
    if (!c->in)
        return;
    while (!c->dead && c->out_len - c->out_off < OUT_SOFT) {
        char *nl = memchr(c->in + pos, '\n', c->in_len - pos);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (c->in + pos));
        size_t next = pos + len + 1;
        if (len > 0 && c->in[pos + len - 1] == '\r')
            len--;
        size_t i = 0;
        while (i < len && (c->in[pos + i] == ' ' || c->in[pos + i] == '\t'))
            i++;
        if (len > c->r->max_message) /* arrived whole within one read */
            rpc_error(c, json_null(), IPC_ERR_INVALID_REQUEST,
                      "message too large (%zu bytes, limit %zu)", len, c->r->max_message);
        else if (i < len) /* blank lines are keep-alives, not messages */
            handle_line(c, c->in + pos, len);
        pos = next;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

/* The next line is over the limit: count and drop it (see the file header). */
static void start_discarding(struct rpc_conn *c)
{
    c->discarding = true;
    c->discarded = c->in_len;
    c->in_len = 0;
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
}

/* Bytes just read at c->in[c->in_len - n ..] while discarding. */
static void discard_more(struct rpc_conn *c, size_t n)
{
    char *start = c->in + c->in_len - n;
    char *nl = memchr(start, '\n', n);
    if (!nl) {
        c->discarded += n;
        c->in_len -= n;
        return;
    }
    size_t line = c->discarded + (size_t)(nl - start);
    c->discarding = false;
    c->discarded = 0;
    size_t rest = n - (size_t)(nl - start) - 1;
    memmove(c->in + c->in_len - n, nl + 1, rest);
    c->in_len = c->in_len - n + rest;
    rpc_error(c, json_null(), IPC_ERR_INVALID_REQUEST, "message too large (%zu bytes, limit %zu)",
              line, c->r->max_message);
}

static void read_input(struct rpc_conn *c)
{
    for (int k = 0; k < READS_PER_WAKEUP && !c->dead && !c->eof; k++) {
        if (!c->discarding && c->out_len - c->out_off >= OUT_SOFT)
            break;
        if (c->in_cap - c->in_len < READ_CHUNK) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 2 * READ_CHUNK;
            if (cap < c->in_len + READ_CHUNK)
                cap = c->in_len + READ_CHUNK;
            char *p = realloc(c->in, cap);
            if (!p) {
                rpc_conn_kill(c);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, READ_CHUNK, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            rpc_conn_kill(c);
            return;
        }
        if (n == 0) {
            /* The peer shut down its writing side; it may still read the
             * answers of what it sent. A last line without its newline is
             * still a message (printf '{...}' | socat ...). */
            c->eof = true;
            if (c->discarding) {
                c->in[c->in_len++] = '\n';
                discard_more(c, 1);
            } else if (c->in_len > 0 && !memchr(c->in, '\n', c->in_len)) {
                c->in[c->in_len++] = '\n';
                process_input(c);
            }
            break;
        }
        c->in_len += (size_t)n;
        if (c->discarding) {
            discard_more(c, (size_t)n);
            if (c->discarding)
                continue;
        }
        process_input(c);
        /* Over the limit without a newline: the line itself is too long (with
         * a newline, the lines are only waiting for the output to drain). */
        if (c->in_len > c->r->max_message && !memchr(c->in, '\n', c->in_len))
            start_discarding(c);
    }
    if (!rpc_conn_maybe_done(c))
        update_events(c);
}

bool rpc_conn_maybe_done(struct rpc_conn *c)
{
    if (c->dead)
        return true;
    /* Half-closed and nothing left to answer or send: done. */
    if (c->eof && !c->calls && c->out_len == c->out_off && !memchr(c->in ? c->in : "", '\n',
                                                                      c->in_len)) {
        rpc_conn_kill(c);
        return true;
    }
    return false;
}

static void conn_on_fd(void *user, int fd, uint32_t events)
{
    struct rpc_conn *c = user;
    (void)fd;
    if (c->dead)
        return;
    if (events & (EPOLLHUP | EPOLLERR)) {
        /* Both directions closed: nothing sent can be delivered. */
        rpc_conn_kill(c);
        return;
    }
    if (events & EPOLLOUT) {
        flush(c);
        if (c->dead)
            return;
        /* Output drained below the soft limit: lines left waiting go now. */
        if (c->out_len - c->out_off < OUT_SOFT && c->in_len > 0 && !c->discarding)
            process_input(c);
        if (rpc_conn_maybe_done(c))
            return;
    }
    if (events & EPOLLIN)
        read_input(c);
    else
        update_events(c);
}

/* ---- connections ----------------------------------------------------------------- */

static void conn_free(struct rpc_conn *c)
{
    struct ipc_rpc *r = c->r;
    /* After this no event of c's requests arrives, so the calls can go. */
    hd_sched_drop_client(r->s, c->client);
    for (struct rpc_call *k = c->calls, *n; k; k = n) {
        n = k->next;
        if (k->drop)
            k->drop(k); /* tool calls and runs: stopped, no callback after */
        json_decref(k->id);
        free(k);
    }
    if (!c->dead)
        hd_loop_del_fd(r->loop, c->fd);
    if (c->stall_timer)
        hd_loop_del_timer(r->loop, c->stall_timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->n_conns--;
    free(c->in);
    free(c->out);
    free(c);
}

static void reap(void *user)
{
    struct ipc_rpc *r = user;
    r->reap_timer = 0;
    for (struct rpc_conn *c = r->conns, *n; c; c = n) {
        n = c->next;
        if (c->dead)
            conn_free(c);
    }
}

void rpc_conn_kill(struct rpc_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    hd_loop_del_fd(c->r->loop, c->fd);
    if (!c->r->reap_timer) {
        int64_t t = hd_loop_add_timer(c->r->loop, 0, false, reap, c->r);
        c->r->reap_timer = t > 0 ? t : 0;
    }
}

/* Best effort, for a connection about to be closed: one error line. */
static void refuse(int fd, int code, const char *message)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,\"message\":\"%s\"}}\n",
                     code, message);
    if (n > 0 && (size_t)n < sizeof buf && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* nothing more to do: the peer goes away either way */
    }
}

static void accept_resume(void *user)
{
    struct ipc_rpc *r = user;
    r->accept_timer = 0;
    if (r->listen_fd >= 0)
        hd_loop_mod_fd(r->loop, r->listen_fd, EPOLLIN);
}

static void on_listen(void *user, int lfd, uint32_t events)
{
    struct ipc_rpc *r = user;
    (void)events;
    for (int k = 0; k < 16; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: without a pause this would spin. */
                hd_loop_mod_fd(r->loop, lfd, 0);
                if (!r->accept_timer) {
                    int64_t t = hd_loop_add_timer(r->loop, 200, false, accept_resume, r);
                    r->accept_timer = t > 0 ? t : 0;
                }
            }
            return;
        }
        struct ucred cred;
        socklen_t cl = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != r->uid) {
            close(fd); /* another user: not even an error message */
            continue;
        }
        if (r->n_conns >= r->max_clients) {
            char m[128];
            snprintf(m, sizeof m, "too many clients (limit %d): try again later", r->max_clients);
            refuse(fd, IPC_ERR_BUSY, m);
            close(fd);
            continue;
        }
        struct rpc_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        *c = (struct rpc_conn){.r = r, .fd = fd, .events = EPOLLIN};
        if (hd_loop_add_fd(r->loop, fd, EPOLLIN, conn_on_fd, c) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->client = hd_sched_client_new(r->s);
        c->next = r->conns;
        if (r->conns)
            r->conns->prev = c;
        r->conns = c;
        r->n_conns++;
    }
}

/* ---- the listening socket ---------------------------------------------------------- */

/* mkdir -p with mode 0700 for the missing components of `dir`. */
static int make_dirs(char *dir)
{
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char save = *p;
        *p = '\0';
        int rc = mkdir(dir, 0700);
        int e = errno;
        *p = save;
        if (rc < 0 && e != EEXIST)
            return -e;
        if (save == '\0')
            return 0;
    }
}

/* The socket's directory: created when missing, else it must be ours and
 * closed to others, since the socket's own mode is the only other barrier. */
static int check_dir(struct ipc_rpc *r, struct hr_err *err)
{
    char *dir = strdup(r->path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
        rc = make_dirs(dir);
        if (rc < 0) {
            rc = hr_err_set(err, rc, -1, "cannot create the socket directory %s: %s", dir,
                            strerror(-rc));
            goto out;
        }
    }
    struct stat st;
    if (stat(dir, &st) < 0) {
        rc = -errno;
        hr_err_set(err, rc, -1, "socket directory %s: %s", dir, strerror(-rc));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = hr_err_set(err, -ENOTDIR, -1, "%s is not a directory", dir);
    } else if (st.st_uid != r->uid) {
        rc = hr_err_set(err, -EPERM, -1,
                        "socket directory %s belongs to uid %u, not to this user (uid %u): "
                        "choose another socket path",
                        dir, (unsigned)st.st_uid, (unsigned)r->uid);
    } else if (st.st_mode & 077) {
        rc = hr_err_set(err, -EPERM, -1,
                        "socket directory %s has mode %04o, so other users could reach the "
                        "socket: run `chmod 700 %s` or choose another socket path",
                        dir, (unsigned)(st.st_mode & 07777), dir);
    }
out:
    free(dir);
    return rc;
}

/* A file at the socket path: a socket nobody answers on is removed; a live
 * one means another daemon. */
static int clear_stale(struct ipc_rpc *r, const struct sockaddr_un *sa, struct hr_err *err)
{
    struct stat st;
    if (lstat(r->path, &st) < 0)
        return errno == ENOENT ? 0 : hr_err_set(err, -errno, -1, "%s: %s", r->path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return hr_err_set(err, -EEXIST, -1, "%s exists and is not a socket: remove it or choose "
                          "another socket path", r->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hr_err_set(err, -errno, -1, "socket: %s", strerror(errno));
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return hr_err_set(err, -EADDRINUSE, -1,
                          "hearthd is already running on %s (stop it first, or choose another "
                          "socket path)", r->path);
    if (e != ECONNREFUSED)
        return hr_err_set(err, -e, -1, "%s: %s", r->path, strerror(e));
    if (unlink(r->path) < 0 && errno != ENOENT)
        return hr_err_set(err, -errno, -1, "cannot remove the stale socket %s: %s", r->path,
                          strerror(errno));
    return 0;
}

static int open_socket(struct ipc_rpc *r, struct hr_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(r->path) >= sizeof sa.sun_path)
        return hr_err_set(err, -ENAMETOOLONG, -1,
                          "socket path %s is too long (at most %zu bytes): choose a shorter one",
                          r->path, sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, r->path);
    int rc = check_dir(r, err);
    if (rc < 0)
        return rc;
    if ((rc = clear_stale(r, &sa, err)) < 0)
        return rc;
    r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->listen_fd < 0)
        return hr_err_set(err, -errno, -1, "socket: %s", strerror(errno));
    /* The socket file is created by bind with the umask's mode: make it 0600
     * from the start rather than chmod it after (no window). The umask is
     * process-wide, but this runs at start-up before anything else creates
     * files. */
    mode_t old = umask(0177);
    rc = bind(r->listen_fd, (const struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (rc < 0)
        return hr_err_set(err, -e, -1, "cannot bind %s: %s", r->path, strerror(e));
    struct stat st;
    if (stat(r->path, &st) == 0) {
        r->sock_dev = st.st_dev;
        r->sock_ino = st.st_ino;
        r->have_sock = true;
    }
    if (listen(r->listen_fd, 128) < 0)
        return hr_err_set(err, -errno, -1, "listen on %s: %s", r->path, strerror(errno));
    if ((rc = hd_loop_add_fd(r->loop, r->listen_fd, EPOLLIN, on_listen, r)) < 0)
        return hr_err_set(err, rc, -1, "cannot watch %s: %s", r->path, strerror(-rc));
    return 0;
}

int ipc_rpc_new(struct hd_loop *loop, struct hd_sched *s, const char *path,
                const struct ipc_limits *lim, struct ipc_rpc **out, struct hr_err *err)
{
    hr_err_clear(err);
    struct ipc_rpc *r = calloc(1, sizeof *r);
    if (!r)
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    r->loop = loop;
    r->s = s;
    r->listen_fd = -1;
    r->uid = geteuid();
    r->max_message = lim && lim->max_message_bytes ? lim->max_message_bytes : DEFAULT_MAX_MESSAGE;
    r->max_clients = lim && lim->max_clients > 0 ? lim->max_clients : DEFAULT_MAX_CLIENTS;
    r->path = strdup(path);
    int rc = -ENOMEM;
    if (!r->path) {
        hr_err_set(err, rc, -1, "out of memory");
        goto fail;
    }
    if ((rc = open_socket(r, err)) < 0)
        goto fail;
    *out = r;
    return 0;
fail:
    ipc_rpc_free(r);
    return rc;
}

void ipc_rpc_stop(struct ipc_rpc *r)
{
    if (!r || r->listen_fd < 0)
        return;
    hd_loop_del_fd(r->loop, r->listen_fd);
    close(r->listen_fd);
    r->listen_fd = -1;
    if (r->accept_timer)
        hd_loop_del_timer(r->loop, r->accept_timer);
    r->accept_timer = 0;
}

void ipc_rpc_free(struct ipc_rpc *r)
{
    if (!r)
        return;
    ipc_rpc_stop(r);
    while (r->conns)
        conn_free(r->conns);
    if (r->reap_timer)
        hd_loop_del_timer(r->loop, r->reap_timer);
    /* Unlink only our own socket file: a daemon started after ipc_rpc_stop
     * may have put its own there. */
    struct stat st;
    if (r->have_sock && stat(r->path, &st) == 0 && st.st_dev == r->sock_dev &&
        st.st_ino == r->sock_ino)
        unlink(r->path);
    free(r->path);
    free(r);
}

void ipc_rpc_set_services(struct ipc_rpc *r, const struct hd_services *svc)
{
    r->svc = svc;
}

int ipc_rpc_n_clients(const struct ipc_rpc *r)
{
    return r ? r->n_conns : 0;
}

bool ipc_rpc_output_pending(const struct ipc_rpc *r)
{
    if (!r)
        return false;
    for (const struct rpc_conn *c = r->conns; c; c = c->next)
        if (!c->dead && c->out_off < c->out_len)
            return true;
    return false;
}
