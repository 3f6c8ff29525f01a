/*
 * tools.c — the tool host supervisor (see tools.h): starting
 * hearth-toolhost, the tool list, the call queue, timeouts, crashes.
 *
 * State. At most one tool host process at a time: `pid` with its process
 * descriptor `pidfd` (readable when it exits, so the loop learns of a crash
 * without SIGCHLD) and the socket `sock`. A host is "up" while sock >= 0,
 * "dying" when sock is closed but the process not yet reaped (killed, or
 * its socket closed), and "down" when pid is 0. A new host is started only
 * when a call needs one and the old one has been reaped, so a plugin that
 * crashes at every call costs one process per call, never a restart loop.
 *
 * Calls. `queue` holds calls waiting in order, `running` the one the host
 * is working on (still set after a cancel, until the host answers or is
 * killed), `done` the calls refused before they ran, delivered from a 0 ms
 * timer so that a callback never runs inside hd_tools_call. A call is
 * finished exactly once: finish() unlinks it, calls the callback unless it
 * was cancelled, frees it and moves the queue on.
 *
 * The host may write its last reply and exit at once (memory limit); the
 * exit can be seen before the reply is read, so a reaped host's socket is
 * drained before its running call is declared crashed.
 */
#include "tools.h"

#include "log.h"
#include "schema.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef HD_TOOLHOST_INSTALLED
#define HD_TOOLHOST_INSTALLED "/usr/local/libexec/hearth/hearth-toolhost"
#endif
#ifndef HD_TOOLHOST_BUILD
#define HD_TOOLHOST_BUILD ""
#endif
#ifndef HD_PLUGIN_DIR_INSTALLED
#define HD_PLUGIN_DIR_INSTALLED "/usr/local/lib/hearth/plugins"
#endif
#ifndef HD_PLUGIN_DIR_BUILD
#define HD_PLUGIN_DIR_BUILD ""
#endif

#define KILL_GRACE_MS 1000  /* past a call's timeout before the host is killed */
#define CANCEL_GRACE_MS 2000 /* a cancelled call's host gets this long to answer */
#define EOF_GRACE_MS 1000   /* a host that closed its socket gets this long to exit */
#define LIST_MAX_LINE ((size_t)64 << 20)

struct call {
    int64_t id;
    char *tool;
    char *args_text;  /* compact JSON object */
    char *workspace;  /* canonical */
    int timeout_ms;
    size_t cap;
    hd_tools_cb cb;
    void *user;
    bool cancelled;
    enum hd_tool_status pre_status; /* for calls on the done list */
    char *pre_error;
    struct call *next;
};

struct hd_tools {
    struct hd_loop *loop;
    char *toolhost, *dirs;
    char **load;
    size_t n_load;
    char **roots; /* canonical */
    size_t n_roots;
    int timeout_ms;
    size_t cap;
    long rss_limit;

    json_t *list; /* the host's list reply, owned: the defs point into it */
    struct hd_tool_def *defs;
    char **params; /* [n_defs] compact schema texts, owned */
    size_t n_defs;
    const char **errors;
    size_t n_errors;

    pid_t pid;
    int pidfd, sock;
    char *rbuf;
    size_t rlen, rcap;
    char *wbuf;
    size_t wlen, wcap;
    bool want_out;

    struct call *queue, *running, *done;
    int64_t deliver_timer, call_timer, kill_timer;
    int64_t next_id;
    struct hd_tools_stats stats;
};

static void pump(struct hd_tools *t);
static void kill_host(struct hd_tools *t);

/* ---- small helpers --------------------------------------------------------------- */

static int set_err(struct hr_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(struct hr_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->offset = -1;
        err->line = err->column = 0;
    }
    return code;
}

static char **strv_dup(const char *const *v, size_t n)
{
    char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(out[i] = strdup(v[i] ? v[i] : ""))) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool is_exec(const char *path)
{
    return path && *path && access(path, X_OK) == 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *hd_tool_risk_name(enum hr_tool_risk risk)
{
    switch (risk) {
    case HR_RISK_READ: return "read";
    case HR_RISK_WRITE: return "write";
    case HR_RISK_EXEC: return "exec";
    }
    return "exec"; /* unknown: assume the worst */
}

/* ---- params ---------------------------------------------------------------------------- */

void hd_tools_params_init(struct hd_tools_params *p, const struct hd_config *cfg)
{
    *p = (struct hd_tools_params){
        .timeout_ms = 30000,
        .output_cap = 65536,
        .host_rss_limit_mib = 1024,
        .start_timeout_ms = 30000,
    };
    if (!cfg)
        return;
    p->plugin_dir = cfg->plugins.dir;
    p->load = (const char *const *)cfg->plugins.load;
    p->n_load = cfg->plugins.n_load;
    p->roots = (const char *const *)cfg->tools.roots;
    p->n_roots = cfg->tools.n_roots;
    if (cfg->tools.timeout > 0)
        p->timeout_ms = cfg->tools.timeout * 1000;
}

static char *find_toolhost(const char *given)
{
    if (given)
        return strdup(given);
    const char *env = getenv("HEARTH_TOOLHOST");
    if (env && *env)
        return strdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        char path[PATH_MAX + 32];
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof path, "%s/hearth-toolhost", self);
            if (is_exec(path))
                return strdup(path);
        }
    }
    if (is_exec(HD_TOOLHOST_INSTALLED))
        return strdup(HD_TOOLHOST_INSTALLED);
    if (is_exec(HD_TOOLHOST_BUILD))
        return strdup(HD_TOOLHOST_BUILD);
    return strdup(HD_TOOLHOST_INSTALLED); /* fails to start, with its name in the message */
}

static char *find_plugin_dir(const char *given)
{
    if (given)
        return strdup(given);
    const char *env = getenv("HEARTH_PLUGIN_DIR");
    if (env && *env)
        return strdup(env);
    if (!is_dir(HD_PLUGIN_DIR_INSTALLED) && is_dir(HD_PLUGIN_DIR_BUILD))
        return strdup(HD_PLUGIN_DIR_BUILD);
    return strdup(HD_PLUGIN_DIR_INSTALLED);
}

/* ---- the host process --------------------------------------------------------------------- */

static void on_sock(void *user, int fd, uint32_t events);
static void on_pidfd(void *user, int fd, uint32_t events);

static void del_timer(struct hd_tools *t, int64_t *id)
{
    if (*id > 0)
        hd_loop_del_timer(t->loop, *id);
    *id = 0;
}

static int host_start(struct hd_tools *t, struct hr_err *err)
{
    int sv[2] = {-1, -1}, child = -1, rc;
    char **argv = NULL;
    char rss[32], parent[32];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        set_err(err, rc, "tool host: socketpair: %s", strerror(-rc));
        goto fail;
    }
    /* Above the standard descriptors, so dup2 to 3 always makes a copy
     * (dup2 onto itself would keep close-on-exec). */
    child = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    if (child < 0) {
        rc = -errno;
        set_err(err, rc, "tool host: fcntl: %s", strerror(-rc));
        goto fail;
    }
    close(sv[1]);
    sv[1] = -1;

    snprintf(rss, sizeof rss, "%ld", t->rss_limit);
    snprintf(parent, sizeof parent, "%ld", (long)getpid());
    size_t argc = 0;
    if (!(argv = calloc(t->n_load + 12, sizeof *argv))) {
        rc = set_err(err, -ENOMEM, "out of memory");
        goto fail;
    }
    argv[argc++] = t->toolhost;
    argv[argc++] = "--fd";
    argv[argc++] = "3";
    argv[argc++] = "--dirs";
    argv[argc++] = t->dirs;
    argv[argc++] = "--rss-limit";
    argv[argc++] = rss;
    argv[argc++] = "--parent";
    argv[argc++] = parent;
    for (size_t i = 0; i < t->n_load; i++)
        argv[argc++] = t->load[i];

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = -posix_spawn_file_actions_init(&fa)) < 0)
        goto spawn_fail;
    fa_ok = true;
    if ((rc = -posix_spawnattr_init(&attr)) < 0)
        goto spawn_fail;
    attr_ok = true;
    /* stdin from /dev/null, stdout to our stderr (a plugin's printf ends up
     * in the log, never in the protocol), the socket as descriptor 3; the
     * daemon's blocked signals and ignored SIGPIPE are not inherited; its
     * own process group, so that a terminal's ^C reaches only hearthd and a
     * kill of the group reaches whatever the host started. */
    if ((rc = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) < 0 ||
        (rc = -posix_spawn_file_actions_adddup2(&fa, 2, 1)) < 0 ||
        (rc = -posix_spawn_file_actions_adddup2(&fa, child, 3)) < 0 ||
        (rc = -posix_spawnattr_setsigmask(&attr, &none)) < 0 ||
        (rc = -posix_spawnattr_setsigdefault(&attr, &all)) < 0 ||
        (rc = -posix_spawnattr_setpgroup(&attr, 0)) < 0 ||
        (rc = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                   POSIX_SPAWN_SETPGROUP)) < 0)
        goto spawn_fail;
    pid_t pid;
    if ((rc = -posix_spawn(&pid, t->toolhost, &fa, &attr, argv, environ)) < 0)
        goto spawn_fail;
    t->pid = pid;
    t->stats.host_starts++;
    t->stats.host_pid = pid;
    close(child);
    child = -1;
    t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (t->pidfd < 0) {
        rc = -errno;
        set_err(err, rc, "tool host: pidfd_open: %s", strerror(-rc));
        goto fail_started;
    }
    fcntl(t->pidfd, F_SETFD, FD_CLOEXEC);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    t->sock = sv[0];
    sv[0] = -1;
    t->rlen = t->wlen = 0;
    t->want_out = false;
    if ((rc = hd_loop_add_fd(t->loop, t->sock, EPOLLIN, on_sock, t)) < 0 ||
        (rc = hd_loop_add_fd(t->loop, t->pidfd, EPOLLIN, on_pidfd, t)) < 0) {
        set_err(err, rc, "tool host: cannot watch its descriptors: %s", strerror(-rc));
        goto fail_started;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(argv);
    hd_debug("tool host %d started (%s)", (int)pid, t->toolhost);
    return 0;

spawn_fail:
    set_err(err, rc, "cannot start the tool host %s: %s", t->toolhost, strerror(-rc));
    goto fail;
fail_started:
    /* the process runs but cannot be watched: kill and reap it right here */
    if (t->sock >= 0) {
        hd_loop_del_fd(t->loop, t->sock);
        close(t->sock);
    }
    if (t->pidfd >= 0) {
        hd_loop_del_fd(t->loop, t->pidfd);
        close(t->pidfd);
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, NULL, 0);
    t->sock = t->pidfd = -1;
    t->pid = 0;
    t->stats.host_pid = 0;
fail:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    free(argv);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (child >= 0)
        close(child);
    return rc;
}

/* Stops reading the host (it is gone or being killed). */
static void close_sock(struct hd_tools *t)
{
    if (t->sock < 0)
        return;
    hd_loop_del_fd(t->loop, t->sock);
    close(t->sock);
    t->sock = -1;
    t->rlen = t->wlen = 0;
}

/* SIGKILL to the host and its process group; it is reaped through pidfd. */
static void kill_host(struct hd_tools *t)
{
    close_sock(t);
    del_timer(t, &t->kill_timer);
    if (t->pid > 0) {
        kill(-t->pid, SIGKILL);
        kill(t->pid, SIGKILL);
    }
}

static void on_kill_timer(void *user)
{
    struct hd_tools *t = user;
    t->kill_timer = 0;
    if (t->running && t->running->cancelled)
        hd_warn("tool host: cancelled call %lld of %s did not stop; killing the tool host",
                (long long)t->running->id, t->running->tool);
    else
        hd_warn("tool host %d closed its socket but did not exit; killing it", (int)t->pid);
    kill_host(t);
}

/* ---- finishing calls ---------------------------------------------------------------------------- */

static void call_free(struct call *c)
{
    if (!c)
        return;
    free(c->tool);
    free(c->args_text);
    free(c->workspace);
    free(c->pre_error);
    free(c);
}

/* Ends the running call with a result and moves the queue on. */
static void finish(struct hd_tools *t, enum hd_tool_status status, const char *output,
                   size_t output_len, bool truncated, const char *error)
{
    struct call *c = t->running;
    t->running = NULL;
    del_timer(t, &t->call_timer);
    if (c->cancelled && t->sock >= 0)
        del_timer(t, &t->kill_timer); /* the cancel's grace timer, not a dying host's */
    t->stats.calls++;
    if (!c->cancelled) {
        struct hd_tool_result r = {
            .id = c->id,
            .status = status,
            .output = output ? output : "",
            .output_len = output ? output_len : 0,
            .truncated = truncated,
            .error = status == HD_TOOL_OK ? NULL : (error ? error : "tool call failed"),
        };
        c->cb(c->user, &r);
    }
    call_free(c);
    pump(t);
}

static void deliver_done(void *user)
{
    struct hd_tools *t = user;
    t->deliver_timer = 0;
    /* one at a time from the head: a callback may add to (or cancel from)
     * the list while we walk it */
    while (t->done) {
        struct call *c = t->done;
        t->done = c->next;
        t->stats.calls++;
        struct hd_tool_result r = {.id = c->id, .status = c->pre_status, .output = "",
                                   .error = c->pre_error ? c->pre_error : "tool call refused"};
        c->cb(c->user, &r);
        call_free(c);
    }
}

/* Queues an immediate failure for delivery from the loop. Takes c. */
static void refuse(struct hd_tools *t, struct call *c, enum hd_tool_status status,
                   const char *msg)
{
    c->pre_status = status;
    free(c->pre_error);
    c->pre_error = strdup(msg);
    c->next = NULL;
    struct call **p = &t->done;
    while (*p)
        p = &(*p)->next;
    *p = c;
    if (!t->deliver_timer) {
        int64_t id = hd_loop_add_timer(t->loop, 0, false, deliver_done, t);
        t->deliver_timer = id > 0 ? id : 0;
    }
}

/* ---- the channel ----------------------------------------------------------------------------------- */

static int flush_out(struct hd_tools *t)
{
    size_t off = 0;
    while (off < t->wlen) {
        ssize_t w = write(t->sock, t->wbuf + off, t->wlen - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0)
            return -EPIPE;
        off += (size_t)w;
    }
    memmove(t->wbuf, t->wbuf + off, t->wlen - off);
    t->wlen -= off;
    bool want = t->wlen > 0;
    if (want != t->want_out) {
        hd_loop_mod_fd(t->loop, t->sock, EPOLLIN | (want ? EPOLLOUT : 0));
        t->want_out = want;
    }
    return 0;
}

/* Queues one message (takes msg) and writes what the socket takes now. */
static int send_msg(struct hd_tools *t, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!text)
        return -ENOMEM;
    size_t n = strlen(text);
    if (t->wlen + n + 1 > t->wcap) {
        size_t want = t->wcap ? t->wcap : 65536;
        while (want < t->wlen + n + 1)
            want *= 2;
        char *p = realloc(t->wbuf, want);
        if (!p) {
            free(text);
            return -ENOMEM;
        }
        t->wbuf = p;
        t->wcap = want;
    }
    memcpy(t->wbuf + t->wlen, text, n);
    t->wbuf[t->wlen + n] = '\n';
    t->wlen += n + 1;
    free(text);
    return flush_out(t);
}

static void host_log(const json_t *msg)
{
    const char *level = json_string_value(json_object_get(msg, "level"));
    const char *text = json_string_value(json_object_get(msg, "msg"));
    enum hd_log_level l = HD_LOG_INFO;
    if (level && strcmp(level, "debug") == 0)
        l = HD_LOG_DEBUG;
    else if (level && strcmp(level, "warning") == 0)
        l = HD_LOG_WARNING;
    else if (level && strcmp(level, "error") == 0)
        l = HD_LOG_ERROR;
    hd_log(l, "tool host: %s", text ? text : "(no message)");
}

/* The cap applied to text the host sent: it should have cut it already; a
 * cut here keeps whole UTF-8 characters. */
static size_t cut_utf8(const char *s, size_t n, size_t cap)
{
    if (n <= cap)
        return n;
    size_t i = cap;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static void handle_reply(struct hd_tools *t, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    struct call *c = t->running;
    if (!c || !json_is_integer(id) || json_integer_value(id) != c->id) {
        hd_error("tool host: a reply for call %lld, which is not running; restarting it",
                 (long long)json_integer_value(id));
        if (c) {
            t->stats.crashes++;
            finish(t, HD_TOOL_CRASHED, NULL, 0, false, "tool host protocol error");
        }
        kill_host(t);
        return;
    }
    const json_t *out = json_object_get(msg, "output");
    const char *text = json_is_string(out) ? json_string_value(out) : "";
    size_t len = json_is_string(out) ? json_string_length(out) : 0;
    size_t cut = cut_utf8(text, len, c->cap);
    bool truncated = json_is_true(json_object_get(msg, "truncated")) || cut < len;
    bool ok = json_is_true(json_object_get(msg, "ok"));
    const char *error = json_string_value(json_object_get(msg, "error"));
    char *copy = strndup(text, cut); /* NUL-terminated at the cut */
    if (json_is_true(json_object_get(msg, "exit"))) {
        /* The host exits after this reply (memory limit): nothing more may
         * be sent to it; the next call waits for its exit and a new one. */
        close_sock(t);
        int64_t tid = hd_loop_add_timer(t->loop, EOF_GRACE_MS, false, on_kill_timer, t);
        t->kill_timer = tid > 0 ? tid : 0;
    }
    finish(t, ok ? HD_TOOL_OK : HD_TOOL_FAILED, copy ? copy : "", copy ? cut : 0, truncated,
           ok ? NULL : (error ? error : "the tool failed"));
    free(copy);
}

/* Processes the complete lines in rbuf. Stops early when the host is
 * killed meanwhile (sock < 0). */
static void process_lines(struct hd_tools *t)
{
    size_t start = 0;
    while (t->sock >= 0) {
        char *nl = memchr(t->rbuf + start, '\n', t->rlen - start);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (t->rbuf + start));
        json_error_t je;
        json_t *msg = json_loadb(t->rbuf + start, n, 0, &je);
        start += n + 1;
        if (!json_is_object(msg)) {
            json_decref(msg);
            hd_error("tool host: malformed message (%s); restarting it", je.text);
            if (t->running) {
                t->stats.crashes++;
                finish(t, HD_TOOL_CRASHED, NULL, 0, false, "tool host protocol error");
            }
            kill_host(t);
            return;
        }
        const char *op = json_string_value(json_object_get(msg, "op"));
        if (op && strcmp(op, "log") == 0)
            host_log(msg);
        else
            handle_reply(t, msg);
        json_decref(msg);
    }
    if (t->sock >= 0) {
        memmove(t->rbuf, t->rbuf + start, t->rlen - start);
        t->rlen -= start;
    }
}

/* Longest line accepted from the host now: a reply carries at most the
 * cap of text, which JSON escaping can grow six-fold (\u00XX). */
static size_t max_line(const struct hd_tools *t)
{
    return t->running ? t->running->cap * 6 + 65536 : LIST_MAX_LINE;
}

/* Reads what the socket has. Returns 1 at end of file (or error), else 0. */
static int read_some(struct hd_tools *t)
{
    for (;;) {
        if (t->rcap - t->rlen < 65536) {
            size_t want = t->rcap ? t->rcap * 2 : 131072;
            char *p = realloc(t->rbuf, want);
            if (!p)
                return 1;
            t->rbuf = p;
            t->rcap = want;
        }
        ssize_t r = read(t->sock, t->rbuf + t->rlen, t->rcap - t->rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return 1;
        t->rlen += (size_t)r;
        process_lines(t);
        if (t->sock < 0)
            return 0;
        if (t->rlen > max_line(t)) {
            hd_error("tool host: a message of more than %zu bytes; killing it", max_line(t));
            if (t->running)
                finish(t, HD_TOOL_FAILED, NULL, 0, true,
                       "the tool's output was far larger than its cap; the tool host was "
                       "restarted");
            kill_host(t);
            return 0;
        }
    }
}

static void on_sock(void *user, int fd, uint32_t events)
{
    struct hd_tools *t = user;
    (void)fd;
    if (events & EPOLLOUT) {
        if (flush_out(t) < 0)
            events |= EPOLLHUP;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_some(t) == 1 && t->sock >= 0) {
        /* End of file: the host is exiting (or closed the socket by
         * mistake). Its exit arrives through pidfd; make sure it comes. */
        close_sock(t);
        del_timer(t, &t->kill_timer);
        int64_t id = hd_loop_add_timer(t->loop, EOF_GRACE_MS, false, on_kill_timer, t);
        t->kill_timer = id > 0 ? id : 0;
    }
}

static void describe_status(int st, char *out, size_t cap)
{
    if (WIFSIGNALED(st))
        snprintf(out, cap, "signal %d", WTERMSIG(st));
    else if (WIFEXITED(st))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(st));
    else
        snprintf(out, cap, "status %d", st);
}

/* The host process has exited: reap it, read what it still sent, fail the
 * call it was running, and start the next call. */
static void on_pidfd(void *user, int fd, uint32_t events)
{
    struct hd_tools *t = user;
    (void)fd;
    (void)events;
    int st = 0;
    pid_t r = waitpid(t->pid, &st, WNOHANG);
    if (r == 0)
        return; /* not yet (spurious wake-up) */
    if (t->sock >= 0)
        read_some(t); /* a last reply written just before exiting */
    close_sock(t);
    del_timer(t, &t->kill_timer);
    hd_loop_del_fd(t->loop, t->pidfd);
    close(t->pidfd);
    t->pidfd = -1;
    char how[64];
    describe_status(r < 0 ? 0 : st, how, sizeof how);
    if (t->running) {
        struct call *c = t->running;
        char msg[256];
        bool crashed = r > 0 && WIFSIGNALED(st);
        snprintf(msg, sizeof msg, crashed ? "tool host crashed (%s)" : "tool host exited (%s)",
                 how);
        hd_warn("tool host %d %s during call %lld of %s", (int)t->pid,
                crashed ? "crashed" : "exited", (long long)c->id, c->tool);
        t->stats.crashes++;
        t->pid = 0;
        t->stats.host_pid = 0;
        finish(t, HD_TOOL_CRASHED, NULL, 0, false, msg);
        return; /* finish pumped */
    }
    hd_debug("tool host %d ended (%s)", (int)t->pid, how);
    t->pid = 0;
    t->stats.host_pid = 0;
    pump(t);
}

/* ---- running calls ----------------------------------------------------------------------------------- */

static void on_call_timeout(void *user)
{
    struct hd_tools *t = user;
    t->call_timer = 0;
    struct call *c = t->running;
    if (!c)
        return;
    char msg[128];
    snprintf(msg, sizeof msg, "timed out after %g s", c->timeout_ms / 1000.0);
    hd_warn("tool host: call %lld of %s %s; killing the tool host", (long long)c->id, c->tool,
            msg);
    t->stats.timeouts++;
    /* kill first: finish() pumps, and the next call must wait for a new host */
    kill_host(t);
    finish(t, HD_TOOL_TIMEOUT, NULL, 0, false, msg);
}

/* Starts the next waiting call if the host is free (starting a host when
 * there is none). */
static void pump(struct hd_tools *t)
{
    while (!t->running && t->queue) {
        if (t->pid > 0 && t->sock < 0)
            return; /* dying: wait for it to be reaped (on_pidfd pumps again) */
        struct call *c = t->queue;
        if (t->pid == 0) {
            struct hr_err err;
            if (host_start(t, &err) < 0) {
                hd_error("%s", err.msg);
                t->queue = c->next;
                char msg[600];
                snprintf(msg, sizeof msg, "tools are unavailable: %s", err.msg);
                refuse(t, c, HD_TOOL_UNAVAILABLE, msg);
                continue;
            }
        }
        t->queue = c->next;
        c->next = NULL;
        t->running = c;
        json_error_t je;
        json_t *args = json_loads(c->args_text, 0, &je);
        int rc = send_msg(t, json_pack("{s:s, s:I, s:s, s:o, s:s, s:i, s:I}", "op", "call", "id",
                                       (json_int_t)c->id, "tool", c->tool, "args", args,
                                       "workspace", c->workspace, "timeout_ms", c->timeout_ms,
                                       "output_cap", (json_int_t)c->cap));
        if (rc < 0) {
            hd_error("tool host: cannot send call %lld: %s", (long long)c->id, strerror(-rc));
            kill_host(t);
            finish(t, HD_TOOL_CRASHED, NULL, 0, false, "cannot reach the tool host");
            return;
        }
        int64_t id =
            hd_loop_add_timer(t->loop, (int64_t)c->timeout_ms + KILL_GRACE_MS, false,
                              on_call_timeout, t);
        t->call_timer = id > 0 ? id : 0;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------------ */

/* Reads lines until the reply with id 0 (the list), handling log lines,
 * for at most ms milliseconds. Returns the reply (owned) or NULL. */
static json_t *read_list_reply(struct hd_tools *t, int ms, struct hr_err *err)
{
    int64_t deadline = hd_now_ms() + ms;
    for (;;) {
        char *nl;
        while (t->rlen && (nl = memchr(t->rbuf, '\n', t->rlen))) {
            size_t n = (size_t)(nl - t->rbuf);
            json_error_t je;
            json_t *msg = json_loadb(t->rbuf, n, 0, &je);
            memmove(t->rbuf, t->rbuf + n + 1, t->rlen - n - 1);
            t->rlen -= n + 1;
            const char *op = json_string_value(json_object_get(msg, "op"));
            if (op && strcmp(op, "log") == 0) {
                host_log(msg);
                json_decref(msg);
                continue;
            }
            if (!json_is_object(msg) || !json_is_array(json_object_get(msg, "tools"))) {
                json_decref(msg);
                set_err(err, -EPROTO, "tool host: malformed tool list");
                return NULL;
            }
            return msg;
        }
        int64_t left = deadline - hd_now_ms();
        if (left <= 0) {
            set_err(err, -ETIMEDOUT, "tool host: no tool list within %d ms", ms);
            return NULL;
        }
        struct pollfd pfd = {.fd = t->sock, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        if (t->rcap - t->rlen < 65536) {
            size_t want = t->rcap ? t->rcap * 2 : 131072;
            char *p = realloc(t->rbuf, want);
            if (!p) {
                set_err(err, -ENOMEM, "out of memory");
                return NULL;
            }
            t->rbuf = p;
            t->rcap = want;
        }
        ssize_t r = read(t->sock, t->rbuf + t->rlen, t->rcap - t->rlen);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            int st = 0;
            char how[64] = "no status";
            /* it is exiting: give it a moment to be reaped for the message */
            for (int i = 0; i < 100 && waitpid(t->pid, &st, WNOHANG) == 0; i++)
                usleep(10000);
            describe_status(st, how, sizeof how);
            set_err(err, -EPROTO, "tool host ended while loading the plugins (%s)", how);
            return NULL;
        }
        t->rlen += (size_t)r;
        if (t->rlen > LIST_MAX_LINE) {
            set_err(err, -EPROTO, "tool host: tool list too large");
            return NULL;
        }
    }
}

static int take_list(struct hd_tools *t, json_t *reply, struct hr_err *err)
{
    json_t *tools = json_object_get(reply, "tools");
    json_t *errors = json_object_get(reply, "errors");
    size_t n = json_array_size(tools);
    t->list = reply;
    t->defs = calloc(n + 1, sizeof *t->defs);
    t->params = calloc(n + 1, sizeof *t->params);
    t->errors = calloc(json_array_size(errors) + 1, sizeof *t->errors);
    if (!t->defs || !t->params || !t->errors)
        return set_err(err, -ENOMEM, "out of memory");
    size_t i;
    json_t *e;
    json_array_foreach(tools, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *desc = json_string_value(json_object_get(e, "description"));
        const char *plugin = json_string_value(json_object_get(e, "plugin"));
        const char *risk = json_string_value(json_object_get(e, "risk"));
        json_t *schema = json_object_get(e, "parameters");
        if (!name || !desc || !plugin || !risk || !json_is_object(schema))
            return set_err(err, -EPROTO, "tool host: malformed tool %zu in its list", i);
        if (!(t->params[i] = json_dumps(schema, JSON_COMPACT)))
            return set_err(err, -ENOMEM, "out of memory");
        t->defs[i] = (struct hd_tool_def){
            .name = name,
            .description = desc,
            .plugin = plugin,
            .parameters = t->params[i],
            .schema = schema,
            .risk = strcmp(risk, "read") == 0    ? HR_RISK_READ
                    : strcmp(risk, "write") == 0 ? HR_RISK_WRITE
                                                 : HR_RISK_EXEC,
        };
        t->n_defs++;
    }
    json_array_foreach(errors, i, e)
    {
        if (json_is_string(e)) {
            t->errors[t->n_errors++] = json_string_value(e);
            hd_warn("tool plugins: %s", json_string_value(e));
        }
    }
    return 0;
}

/* The canonical existing directories of roots[n], NULL-terminated (owned:
 * strv_free with *count). NULL when out of memory. */
static char **canonical_roots(const char *const *roots, size_t n, size_t *count)
{
    char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        char *real = roots[i] ? realpath(roots[i], NULL) : NULL;
        if (!real || !is_dir(real)) {
            hd_warn("tools.roots: '%s' is not an existing directory; ignored",
                    roots[i] ? roots[i] : "(null)");
            free(real);
            continue;
        }
        out[(*count)++] = real;
    }
    return out;
}

int hd_tools_update(struct hd_tools *t, const struct hd_tools_params *p)
{
    if (!t || !p || p->timeout_ms <= 0 || p->output_cap == 0 || (p->n_load && !p->load) ||
        (p->n_roots && !p->roots))
        return -EINVAL;
    size_t n_roots;
    char **roots = canonical_roots(p->roots, p->n_roots, &n_roots);
    char *host = find_toolhost(p->toolhost), *dirs = find_plugin_dir(p->plugin_dir);
    if (!roots || !host || !dirs) {
        strv_free(roots, roots ? n_roots : 0);
        free(host);
        free(dirs);
        return -ENOMEM;
    }
    strv_free(t->roots, t->n_roots);
    t->roots = roots;
    t->n_roots = n_roots;
    t->timeout_ms = p->timeout_ms;
    t->cap = p->output_cap;
    t->rss_limit = p->host_rss_limit_mib;
    bool same = strcmp(host, t->toolhost) == 0 && strcmp(dirs, t->dirs) == 0 &&
                p->n_load == t->n_load;
    for (size_t i = 0; same && i < p->n_load; i++)
        same = strcmp(p->load[i] ? p->load[i] : "", t->load[i]) == 0;
    free(host);
    free(dirs);
    return same ? 0 : 1;
}

int hd_tools_new(struct hd_loop *loop, const struct hd_tools_params *p, struct hd_tools **out,
                 struct hr_err *err)
{
    int rc;
    if (!loop || !p || !out)
        return set_err(err, -EINVAL, "hd_tools_new: missing argument");
    if (p->timeout_ms <= 0 || p->output_cap == 0 || (p->n_load && !p->load) ||
        (p->n_roots && !p->roots))
        return set_err(err, -EINVAL, "hd_tools_new: bad parameters");
    struct hd_tools *t = calloc(1, sizeof *t);
    if (!t)
        return set_err(err, -ENOMEM, "out of memory");
    t->loop = loop;
    t->sock = t->pidfd = -1;
    t->timeout_ms = p->timeout_ms;
    t->cap = p->output_cap;
    t->rss_limit = p->host_rss_limit_mib;
    t->toolhost = find_toolhost(p->toolhost);
    t->dirs = find_plugin_dir(p->plugin_dir);
    t->load = strv_dup(p->load, p->n_load);
    t->roots = canonical_roots(p->roots, p->n_roots, &t->n_roots);
    if (!t->toolhost || !t->dirs || !t->load || !t->roots) {
        rc = set_err(err, -ENOMEM, "out of memory");
        goto fail;
    }
    t->n_load = p->n_load;
    if (!is_exec(t->toolhost)) {
        rc = set_err(err, -ENOENT, "no tool host program at %s (set HEARTH_TOOLHOST?)",
                     t->toolhost);
        goto fail;
    }
    if ((rc = host_start(t, err)) < 0)
        goto fail;
    if ((rc = send_msg(t, json_pack("{s:s, s:i}", "op", "list", "id", 0))) < 0) {
        set_err(err, rc, "tool host: cannot send: %s", strerror(-rc));
        goto fail;
    }
    json_t *reply = read_list_reply(t, p->start_timeout_ms > 0 ? p->start_timeout_ms : 30000, err);
    if (!reply) {
        rc = -EPROTO;
        if (err && strstr(err->msg, "no tool list within"))
            rc = -ETIMEDOUT;
        goto fail;
    }
    if ((rc = take_list(t, reply, err)) < 0)
        goto fail;
    hd_info("tools: %zu from %zu plugin%s (%s)", t->n_defs,
            json_array_size(json_object_get(reply, "plugins")),
            json_array_size(json_object_get(reply, "plugins")) == 1 ? "" : "s", t->dirs);
    *out = t;
    return 0;
fail:
    hd_tools_free(t);
    return rc;
}

void hd_tools_free(struct hd_tools *t)
{
    if (!t)
        return;
    del_timer(t, &t->deliver_timer);
    del_timer(t, &t->call_timer);
    del_timer(t, &t->kill_timer);
    close_sock(t); /* the host sees end of file and exits */
    if (t->pid > 0) {
        bool gone = false;
        if (t->pidfd >= 0) {
            struct pollfd pfd = {.fd = t->pidfd, .events = POLLIN};
            gone = poll(&pfd, 1, 2000) > 0;
        }
        if (!gone) {
            kill(-t->pid, SIGKILL);
            kill(t->pid, SIGKILL);
        }
        waitpid(t->pid, NULL, 0);
    }
    if (t->pidfd >= 0) {
        hd_loop_del_fd(t->loop, t->pidfd);
        close(t->pidfd);
    }
    struct call *lists[] = {t->queue, t->running, t->done};
    for (size_t i = 0; i < 3; i++) {
        for (struct call *c = lists[i], *n; c; c = n) {
            n = c->next;
            call_free(c);
        }
    }
    strv_free(t->load, t->n_load);
    strv_free(t->roots, t->n_roots);
    if (t->params)
        for (size_t i = 0; i < t->n_defs; i++)
            free(t->params[i]);
    free(t->params);
    free(t->defs);
    free(t->errors);
    json_decref(t->list);
    free(t->toolhost);
    free(t->dirs);
    free(t->rbuf);
    free(t->wbuf);
    free(t);
}

/* ---- queries --------------------------------------------------------------------------------------------- */

const struct hd_tool_def *hd_tools_list(const struct hd_tools *t, size_t *n)
{
    *n = t ? t->n_defs : 0;
    return t ? t->defs : NULL;
}

const struct hd_tool_def *hd_tools_find(const struct hd_tools *t, const char *name)
{
    if (!t || !name)
        return NULL;
    for (size_t i = 0; i < t->n_defs; i++)
        if (strcmp(t->defs[i].name, name) == 0)
            return &t->defs[i];
    return NULL;
}

const char *const *hd_tools_load_errors(const struct hd_tools *t, size_t *n)
{
    *n = t ? t->n_errors : 0;
    return t ? t->errors : NULL;
}

char *hd_tools_openai_json(const struct hd_tools *t)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t i = 0; t && i < t->n_defs; i++) {
        const struct hd_tool_def *d = &t->defs[i];
        json_t *fn = json_pack("{s:s, s:s, s:O}", "name", d->name, "description",
                               d->description, "parameters", (json_t *)d->schema);
        if (!fn || json_array_append_new(arr, json_pack("{s:s, s:o}", "type", "function",
                                                        "function", fn)) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

void hd_tools_get_stats(const struct hd_tools *t, struct hd_tools_stats *out)
{
    *out = t->stats;
    size_t q = t->running ? 1 : 0;
    for (const struct call *c = t->queue; c; c = c->next)
        q++;
    out->queued = q;
}

/* ---- making calls ------------------------------------------------------------------------------------------ */

/* Parses args_json into an object (NULL or "" → {}). */
static json_t *parse_args(const char *args_json, struct hr_err *err)
{
    if (!args_json || !*args_json)
        return json_object();
    json_error_t je;
    json_t *v = json_loads(args_json, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        set_err(err, -EINVAL, "arguments are not valid JSON: %s (column %d)", je.text,
                je.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        set_err(err, -EINVAL, "arguments must be a JSON object");
        return NULL;
    }
    return v;
}

static int validate(const struct hd_tools *t, const char *name, const char *args_json,
                    json_t **args_out, struct hr_err *err)
{
    const struct hd_tool_def *d = hd_tools_find(t, name);
    if (!d) {
        char names[256] = "";
        size_t len = 0;
        for (size_t i = 0; i < t->n_defs; i++) {
            int n = snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                             t->defs[i].name);
            if (n < 0 || (size_t)n >= sizeof names - len)
                break;
            len += (size_t)n;
        }
        return set_err(err, -ENOENT, "unknown tool '%.100s' (available: %s)", name,
                       len ? names : "none");
    }
    struct hr_err e;
    json_t *args = parse_args(args_json, &e);
    if (!args)
        return set_err(err, -EINVAL, "invalid arguments for %s: %s", name, e.msg);
    if (hd_schema_validate(d->schema, args, &e) < 0) {
        json_decref(args);
        return set_err(err, -EINVAL, "invalid arguments for %s: %s", name, e.msg);
    }
    if (args_out)
        *args_out = args;
    else
        json_decref(args);
    return 0;
}

int hd_tools_validate(const struct hd_tools *t, const char *name, const char *args_json,
                      struct hr_err *err)
{
    if (!t || !name)
        return set_err(err, -EINVAL, "no tool name");
    return validate(t, name, args_json, NULL, err);
}

/* The canonical workspace, or NULL with a message when it is not an
 * existing directory inside a root. Owned. */
static char *check_workspace(const struct hd_tools *t, const char *ws, char *why, size_t cap)
{
    if (!ws || ws[0] != '/') {
        snprintf(why, cap, "the workspace must be an absolute directory path (got '%.200s')",
                 ws ? ws : "");
        return NULL;
    }
    char *real = realpath(ws, NULL);
    if (!real || !is_dir(real)) {
        snprintf(why, cap, "workspace '%.200s' is not an existing directory", ws);
        free(real);
        return NULL;
    }
    for (size_t i = 0; i < t->n_roots; i++) {
        size_t n = strlen(t->roots[i]);
        if (strcmp(t->roots[i], "/") == 0 ||
            (strncmp(real, t->roots[i], n) == 0 && (real[n] == 0 || real[n] == '/')))
            return real;
    }
    snprintf(why, cap, "workspace '%.200s' is not inside the allowed roots (tools.roots)", real);
    free(real);
    return NULL;
}

int64_t hd_tools_call_ex(struct hd_tools *t, const char *name, const char *args_json,
                         const char *workspace, const struct hd_tools_call_opts *opts,
                         hd_tools_cb cb, void *user)
{
    if (!t || !name || !cb)
        return -EINVAL;
    struct call *c = calloc(1, sizeof *c);
    if (!c || !(c->tool = strdup(name))) {
        free(c);
        return -ENOMEM;
    }
    c->id = ++t->next_id;
    c->cb = cb;
    c->user = user;
    c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : t->timeout_ms;
    c->cap = opts && opts->output_cap > 0 ? opts->output_cap : t->cap;

    struct hr_err err;
    json_t *args = NULL;
    char why[600];
    if (validate(t, name, args_json, &args, &err) < 0) {
        refuse(t, c, HD_TOOL_INVALID, err.msg);
        return c->id;
    }
    c->args_text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    if (!c->args_text) {
        call_free(c);
        return -ENOMEM;
    }
    if (!(c->workspace = check_workspace(t, workspace, why, sizeof why))) {
        refuse(t, c, HD_TOOL_INVALID, why);
        return c->id;
    }
    struct call **p = &t->queue;
    while (*p)
        p = &(*p)->next;
    *p = c;
    int64_t id = c->id; /* pump may finish (and free) it at once */
    pump(t);
    return id;
}

int64_t hd_tools_call(struct hd_tools *t, const char *name, const char *args_json,
                      const char *workspace, hd_tools_cb cb, void *user)
{
    return hd_tools_call_ex(t, name, args_json, workspace, NULL, cb, user);
}

void hd_tools_cancel(struct hd_tools *t, int64_t id)
{
    if (!t || id <= 0)
        return;
    struct call **lists[] = {&t->queue, &t->done};
    for (size_t i = 0; i < 2; i++) {
        for (struct call **p = lists[i]; *p; p = &(*p)->next) {
            if ((*p)->id == id) {
                struct call *c = *p;
                *p = c->next;
                call_free(c);
                return;
            }
        }
    }
    struct call *c = t->running;
    if (!c || c->id != id || c->cancelled)
        return;
    c->cancelled = true;
    if (t->sock < 0 || send_msg(t, json_pack("{s:s, s:I}", "op", "cancel", "id",
                                             (json_int_t)id)) < 0) {
        kill_host(t);
        finish(t, HD_TOOL_CRASHED, NULL, 0, false, "cancelled");
        return;
    }
    del_timer(t, &t->kill_timer);
    int64_t tid = hd_loop_add_timer(t->loop, CANCEL_GRACE_MS, false, on_kill_timer, t);
    t->kill_timer = tid > 0 ? tid : 0;
}

char *hd_tool_result_text(const struct hd_tool_result *r)
{
    const char *out = r->output ? r->output : "";
    size_t olen = r->output ? r->output_len : 0;
    const char *error = r->status == HD_TOOL_OK ? NULL : (r->error ? r->error : "failed");
    size_t cap = olen + (error ? strlen(error) : 0) + 128;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    size_t n = 0;
    memcpy(text, out, olen);
    n = olen;
    if (r->truncated)
        n += (size_t)snprintf(text + n, cap - n, "%s[output truncated after %zu bytes]",
                              n && text[n - 1] != '\n' ? "\n" : "", olen);
    if (error)
        n += (size_t)snprintf(text + n, cap - n, "%serror: %s", n && text[n - 1] != '\n' ? "\n" : "",
                              error);
    text[n] = 0;
    return text;
}
