/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char slots[8][4096];
static unsigned slot;

static const char *join(const char *dir, const char *rel)
{
    char *buf = slots[slot++ % 8];
    snprintf(buf, sizeof slots[0], "%s/%s", dir, rel);
    return buf;
}

bool tu_exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

const char *tu_data(const char *rel)
{
    const char *d = getenv("HEARTH_TEST_DATA");
    return join(d ? d : "tests/data", rel);
}

const char *tu_ref(const char *rel)
{
    const char *d = getenv("HEARTH_REFDATA");
    if (!d || !tu_exists(d))
        return NULL;
    return join(d, rel);
}

const char *tu_find(const char *rel)
{
    const char *p = tu_ref(rel);
    if (p && tu_exists(p))
        return p;
    p = tu_data(rel);
    return tu_exists(p) ? p : NULL;
}

void *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

size_t tu_parse_ids(const char *s, int32_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        while (*s == ',' || *s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

const char *tu_hearth_bin(void)
{
    const char *b = getenv("HEARTH_BIN");
    return b ? b : "build/cli/hearth";
}

#define CAP (1u << 20)

/* Reads what is available; returns the read(2) result (0 at end of file). */
static ssize_t drain(int fd, char *buf, size_t *n)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r > 0) {
        size_t take = (size_t)r;
        if (*n + take > CAP)
            take = CAP - *n;
        memcpy(buf + *n, tmp, take);
        *n += take;
    }
    return r;
}

int tu_run(char *const argv[], char **out, char **err)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *ob = calloc(1, CAP + 1), *eb = calloc(1, CAP + 1);
    size_t on = 0, en = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = i ? drain(fds[i].fd, eb, &en) : drain(fds[i].fd, ob, &on);
            if (r <= 0 && !(r < 0 && errno == EINTR)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ob[on] = '\0';
    eb[en] = '\0';
    if (out)
        *out = ob;
    else
        free(ob);
    if (err)
        *err = eb;
    else
        free(eb);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int tu_hearth(char **out, char **err, ...)
{
    char *argv[32] = {(char *)tu_hearth_bin()};
    int n = 1;
    va_list ap;
    va_start(ap, err);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return tu_run(argv, out, err);
}

void tu_assert_one_line_error(const char *err, const char *what)
{
    cr_assert(strncmp(err, "hearth: error: ", 15) == 0, "stderr: '%s'", err);
    const char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "expected exactly one line on stderr, got '%s'", err);
    cr_assert(strstr(err, what), "error '%s' does not mention '%s'", err, what);
}

const char *tu_stories(void)
{
    const char *p = tu_data("../../models/stories260K.gguf");
    cr_assert(tu_exists(p), "bundled model missing at %s", p);
    return p;
}
