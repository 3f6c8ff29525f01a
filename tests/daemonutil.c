/* daemonutil.c — see daemonutil.h. */
#include "daemonutil.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 60000 /* ASan builds load and start slowly on a busy machine */
#define STOP_TIMEOUT_MS 60000

const char *du_daemon_bin(void)
{
    const char *b = getenv("HEARTH_DAEMON_BIN");
    return b ? b : "build/hearthd";
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

char *du_log(const struct du_daemon *d)
{
    char *s = tu_read_file(d->log, NULL);
    return s ? s : strdup("(no log)");
}

/* True when something at `path` answers `status` like hearthd. */
static bool answers(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return false;
    }
    static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";
    bool ok = send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1);
    char buf[4096];
    size_t n = 0;
    while (ok && n < sizeof buf - 1) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(buf, '\n', n))
            break;
    }
    close(fd);
    buf[n] = '\0';
    return ok && strstr(buf, "\"protocol_version\"") != NULL;
}

void du_start_at(struct du_daemon *d, const char *socket, const char *model,
                 const char *extra_yaml)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/hearth-test-XXXXXX");
    cr_assert(mkdtemp(d->dir), "mkdtemp: %s", strerror(errno));
    snprintf(d->socket, sizeof d->socket, "%s", socket ? socket : "");
    if (!socket)
        snprintf(d->socket, sizeof d->socket, "%s/hearth.sock", d->dir);
    snprintf(d->config, sizeof d->config, "%s/hearth.yaml", d->dir);
    snprintf(d->log, sizeof d->log, "%s/hearthd.log", d->dir);
    /* the config resolves relative paths against its own directory */
    char *abs = realpath(model ? model : tu_stories(), NULL);
    cr_assert(abs, "model %s: %s", model ? model : tu_stories(), strerror(errno));
    FILE *f = fopen(d->config, "w");
    cr_assert(f);
    fprintf(f, "model: %s\ndbus:\n  enabled: false\n%s", abs, extra_yaml ? extra_yaml : "");
    fclose(f);
    free(abs);

    d->pid = fork();
    cr_assert(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDWR);
        if (fd >= 0)
            dup2(fd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execl(du_daemon_bin(), "hearthd", "--foreground", "--config", d->config, "--socket",
              d->socket, (char *)NULL);
        _exit(127);
    }
    long t0 = now_ms();
    for (;;) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            char *log = du_log(d);
            cr_assert_fail("hearthd (%s) exited during start-up (status %d): %s", du_daemon_bin(), st,
                     log);
        }
        if (answers(d->socket))
            return;
        if (now_ms() - t0 > START_TIMEOUT_MS) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            char *log = du_log(d);
            cr_assert_fail("hearthd did not answer on %s within %d s: %s", d->socket,
                     START_TIMEOUT_MS / 1000, log);
        }
        usleep(20000);
    }
}

void du_start(struct du_daemon *d, const char *model, const char *extra_yaml)
{
    du_start_at(d, NULL, model, extra_yaml);
}

void du_stop(struct du_daemon *d)
{
    if (d->pid <= 0)
        return;
    cr_assert_eq(kill(d->pid, SIGTERM), 0);
    long t0 = now_ms();
    int st = 0;
    for (;;) {
        pid_t p = waitpid(d->pid, &st, WNOHANG);
        if (p == d->pid)
            break;
        if (now_ms() - t0 > STOP_TIMEOUT_MS) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            char *log = du_log(d);
            cr_assert_fail("hearthd did not stop within %d s of SIGTERM: %s", STOP_TIMEOUT_MS / 1000,
                     log);
        }
        usleep(10000);
    }
    d->pid = 0;
    char *log = du_log(d);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hearthd exit status %d (signal %d): %s",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, log);
    free(log);
    struct stat sb;
    cr_assert(lstat(d->socket, &sb) < 0 && errno == ENOENT, "hearthd left its socket %s behind",
              d->socket);
    unlink(d->config);
    unlink(d->log);
    rmdir(d->dir);
}

/* ---- connections ------------------------------------------------------------------ */

struct du_conn *du_connect(const char *path)
{
    struct du_conn *c = calloc(1, sizeof *c);
    cr_assert(c);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c->fd >= 0);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s: %s", path,
                 strerror(errno));
    return c;
}

void du_close(struct du_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

bool du_write(struct du_conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

void du_sendf(struct du_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    bool ok = du_write(c, s, (size_t)n) && du_write(c, "\n", 1);
    free(s);
    cr_assert(ok, "write to hearthd failed: %s", strerror(errno));
}

json_t *du_recv(struct du_conn *c, int timeout_ms, bool *closed)
{
    long deadline = now_ms() + timeout_ms;
    if (closed)
        *closed = false;
    for (;;) {
        char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            json_error_t je;
            json_t *m = json_loadb(c->buf, n, 0, &je);
            cr_assert(m, "hearthd sent a line that is not JSON (%s): %.*s", je.text,
                      (int)(n > 300 ? 300 : n), c->buf);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return m;
        }
        long left = deadline - now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pf = {c->fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return NULL;
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
            cr_assert(c->buf);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (closed)
                *closed = true;
            return NULL;
        }
        c->len += (size_t)r;
    }
}

json_t *du_recv_ok(struct du_conn *c)
{
    bool closed;
    json_t *m = du_recv(c, 60000, &closed);
    cr_assert(m, "no message from hearthd within 60 s%s", closed ? " (connection closed)" : "");
    return m;
}

long du_send_call(struct du_conn *c, const char *method, const char *params_json)
{
    long id = ++c->next_id;
    if (params_json)
        du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"%s\",\"params\":%s}", id, method,
                 params_json);
    else
        du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"%s\"}", id, method);
    return id;
}

static void append(char **s, const char *t, size_t n)
{
    size_t old = *s ? strlen(*s) : 0;
    *s = realloc(*s, old + n + 1);
    cr_assert(*s);
    memcpy(*s + old, t, n);
    (*s)[old + n] = '\0';
}

json_t *du_wait_response(struct du_conn *c, long id, char **stream)
{
    if (stream && !*stream)
        append(stream, "", 0);
    for (;;) {
        json_t *m = du_recv_ok(c);
        json_t *mid = json_object_get(m, "id");
        const char *method = json_string_value(json_object_get(m, "method"));
        if (!mid && method && !strcmp(method, "stream")) {
            json_t *p = json_object_get(m, "params");
            if (stream && json_integer_value(json_object_get(p, "id")) == id) {
                json_t *t = json_object_get(p, "text");
                cr_assert(json_is_string(t));
                append(stream, json_string_value(t), json_string_length(t));
            }
        } else if (json_is_integer(mid) && json_integer_value(mid) == id) {
            return m;
        }
        json_decref(m);
    }
}

json_t *du_call_ok(struct du_conn *c, const char *method, const char *params_json)
{
    long id = du_send_call(c, method, params_json);
    json_t *m = du_wait_response(c, id, NULL);
    json_t *r = json_object_get(m, "result");
    char *s = json_dumps(m, JSON_COMPACT);
    cr_assert(r, "%s(%s) failed: %s", method, params_json ? params_json : "", s);
    free(s);
    json_incref(r);
    json_decref(m);
    return r;
}

int du_call_err(struct du_conn *c, const char *method, const char *params_json, char **message)
{
    long id = du_send_call(c, method, params_json);
    json_t *m = du_wait_response(c, id, NULL);
    json_t *e = json_object_get(m, "error");
    char *s = json_dumps(m, JSON_COMPACT);
    cr_assert(e && !json_object_get(m, "result"), "%s(%s) should fail: %s", method,
              params_json ? params_json : "", s);
    free(s);
    int code = (int)json_integer_value(json_object_get(e, "code"));
    if (message)
        *message = strdup(json_string_value(json_object_get(e, "message")));
    json_decref(m);
    return code;
}

/* ---- child processes with input ------------------------------------------------------ */

#define CAP (1u << 20)

int du_run_input(char *const argv[], const char *input, char **out, char **err)
{
    int pi[2], po[2], pe[2];
    if (pipe(pi) || pipe(po) || pipe(pe))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pi[0], 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(pi[0]);
        close(pi[1]);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    /* the input is small (a few lines): the pipe takes it whole */
    size_t n = strlen(input);
    if (write(pi[1], input, n) != (ssize_t)n) {
        /* the child may have exited early: its status says why */
    }
    close(pi[1]);
    char *bufs[2] = {calloc(1, CAP + 1), calloc(1, CAP + 1)};
    size_t lens[2] = {0, 0};
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
            if (r > 0) {
                size_t take = (size_t)r;
                if (lens[i] + take > CAP)
                    take = CAP - lens[i];
                memcpy(bufs[i] + lens[i], tmp, take);
                lens[i] += take;
            } else if (!(r < 0 && errno == EINTR)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (out)
        *out = bufs[0];
    else
        free(bufs[0]);
    if (err)
        *err = bufs[1];
    else
        free(bufs[1]);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}
