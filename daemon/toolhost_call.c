/*
 * toolhost_call.c — the services the tool host lends a plugin during a call
 * (struct hr_host of include/hearth/plugin.h): arguments, the path policy,
 * cancellation, the result builder, logging and allocation.
 *
 * The path policy is the part that matters for safety. Every path a tool
 * opens goes through openat2() relative to the workspace descriptor with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: the kernel refuses any step —
 * "..", an absolute symlink, a relative symlink climbing out, a /proc magic
 * link — that would leave the workspace, atomically with the open, so a
 * symlink swapped in between a check and the use changes nothing. Absolute
 * paths and ".." components are refused before the kernel is asked, which
 * only serves clearer messages. There is no fallback when openat2 is
 * missing (Linux < 5.6): a weaker emulation is exactly the kind of check
 * that gets raced, so the tools fail instead.
 */
#include "toolhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct th_call *CALL(struct hr_tool_call *c)
{
    return (struct th_call *)c; /* pub is the first member */
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- logging and memory ------------------------------------------------------------ */

static void log_message(const struct hr_host *host, int level, const char *fmt, ...)
{
    struct th_plugin *p = (struct th_plugin *)host; /* host is the first member */
    if (p->log_lines > TH_MAX_LOG_LINES)
        return;
    char msg[1024];
    if (p->log_lines++ == TH_MAX_LOG_LINES) {
        snprintf(msg, sizeof msg, "more than %d log lines in one call; dropping the rest",
                 TH_MAX_LOG_LINES);
        level = HR_LOG_WARNING;
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (level < HR_LOG_DEBUG || level > HR_LOG_ERROR)
        level = HR_LOG_INFO;
    th_send_log(p->desc && p->desc->name ? p->desc->name : "plugin", level, msg);
}

static void *host_alloc(const struct hr_host *host, void *ptr, size_t size)
{
    (void)host;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

/* ---- arguments ----------------------------------------------------------------------- */

static const json_t *arg(struct hr_tool_call *c, const char *name)
{
    const json_t *v = name ? json_object_get(CALL(c)->args, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

static const char *arg_string(struct hr_tool_call *c, const char *name, size_t *len)
{
    const json_t *v = arg(c, name);
    if (!json_is_string(v))
        return NULL;
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

static int arg_int(struct hr_tool_call *c, const char *name, int64_t *out)
{
    const json_t *v = arg(c, name);
    if (!v)
        return -ENOENT;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return -EINVAL;
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d))
        return -EINVAL;
    if (d < -9.2e18 || d > 9.2e18)
        return -ERANGE;
    *out = (int64_t)d;
    return 0;
}

static int arg_number(struct hr_tool_call *c, const char *name, double *out)
{
    const json_t *v = arg(c, name);
    if (!v)
        return -ENOENT;
    if (!json_is_number(v))
        return -EINVAL;
    *out = json_number_value(v);
    return 0;
}

static int arg_bool(struct hr_tool_call *c, const char *name, bool *out)
{
    const json_t *v = arg(c, name);
    if (!v)
        return -ENOENT;
    if (!json_is_boolean(v))
        return -EINVAL;
    *out = json_is_true(v);
    return 0;
}

static const char *arg_json(struct hr_tool_call *c, const char *name)
{
    struct th_call *tc = CALL(c);
    const json_t *v = arg(c, name);
    if (!v)
        return NULL;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return NULL;
    /* kept alive in the call until it ends, as the header promises */
    if (!tc->dumps && !(tc->dumps = json_array()))
        goto fail;
    json_t *s = json_string(text);
    if (!s || json_array_append_new(tc->dumps, s) < 0)
        goto fail;
    free(text);
    return json_string_value(s);
fail:
    free(text);
    return NULL;
}

/* ---- the path policy ------------------------------------------------------------------ */

/* True when some '/'-separated component of path is "..". */
static bool has_dotdot(const char *path)
{
    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static int open_path(struct hr_tool_call *c, const char *path, int flags, unsigned mode)
{
    if (!path || !*path)
        return -ENOENT;
    if (path[0] == '/' || has_dotdot(path))
        return -EXDEV;
    struct open_how how = {
        .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd;
    do
        fd = syscall(SYS_openat2, c->workspace_fd, path, &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return fd < 0 ? -errno : (int)fd;
}

static int path_error(struct hr_tool_call *c, const char *path, int err);

/* set_error without the format attribute's varargs, for internal use. */
static void error_text(struct th_call *tc, const char *text)
{
    snprintf(tc->error, sizeof tc->error, "%s", text);
    for (char *p = tc->error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    tc->failed = true;
}

static int path_error(struct hr_tool_call *c, const char *path, int err)
{
    char msg[TH_MAX_ERROR];
    const char *p = path ? path : "";
    if (err >= 0)
        err = -EIO;
    if (err == -EXDEV && p[0] == '/')
        snprintf(msg, sizeof msg,
                 "'%s' is an absolute path; use a path relative to the workspace", p);
    else if (err == -EXDEV && has_dotdot(p))
        snprintf(msg, sizeof msg, "'%s' leaves the workspace ('..' is not allowed)", p);
    else if (err == -EXDEV)
        snprintf(msg, sizeof msg,
                 "'%s' resolves outside the workspace (through a symbolic link)", p);
    else if (err == -ELOOP)
        snprintf(msg, sizeof msg,
                 "'%s': too many symbolic links, or a link that is not allowed", p);
    else if (err == -ENOSYS)
        snprintf(msg, sizeof msg,
                 "'%s': this kernel lacks openat2(), which confines file access to the "
                 "workspace; file tools are disabled",
                 p);
    else if (err == -ENOENT)
        snprintf(msg, sizeof msg, "'%s': no such file or directory", *p ? p : "(empty path)");
    else
        snprintf(msg, sizeof msg, "'%s': %s", p, strerror(-err));
    error_text(CALL(c), msg);
    return err;
}

/* ---- cancellation ------------------------------------------------------------------------ */

static bool cancelled(struct hr_tool_call *c)
{
    struct th_call *tc = CALL(c);
    if (tc->cancelled)
        return true;
    if (now_ms() >= c->deadline_ms || th_channel_cancelled(c->id))
        tc->cancelled = true;
    return tc->cancelled;
}

/* ---- the result ------------------------------------------------------------------------------ */

/* Largest n' <= n such that text[0..n') does not end inside a UTF-8
 * sequence that continues past n'. */
static size_t utf8_cut(const char *text, size_t n, size_t total)
{
    if (n >= total)
        return total;
    size_t i = n, lo = n >= 3 ? n - 3 : 0;
    /* back over continuation bytes to the start of the character at n */
    while (i > lo && ((unsigned char)text[i] & 0xC0) == 0x80)
        i--;
    return ((unsigned char)text[i] & 0xC0) == 0x80 ? n : i;
}

static int append(struct hr_tool_call *c, const char *text, size_t len)
{
    struct th_call *tc = CALL(c);
    if (tc->truncated)
        return -ENOSPC;
    if (!text && len)
        return -EINVAL;
    size_t room = c->output_cap > tc->out_len ? (size_t)(c->output_cap - tc->out_len) : 0;
    size_t take = len;
    if (len > room) {
        take = utf8_cut(text, room, len);
        tc->truncated = true;
    }
    if (tc->out_len + take + 1 > tc->out_alloc) {
        size_t want = tc->out_alloc ? tc->out_alloc : 4096;
        while (want < tc->out_len + take + 1)
            want *= 2;
        char *p = realloc(tc->out, want);
        if (!p)
            return -ENOMEM;
        tc->out = p;
        tc->out_alloc = want;
    }
    memcpy(tc->out + tc->out_len, text, take);
    tc->out_len += take;
    tc->out[tc->out_len] = 0;
    return tc->truncated ? -ENOSPC : 0;
}

static int appendf(struct hr_tool_call *c, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return append(c, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = append(c, big, (size_t)n);
    free(big);
    return rc;
}

static int set_error(struct hr_tool_call *c, const char *fmt, ...)
{
    char msg[TH_MAX_ERROR];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_text(CALL(c), msg);
    return -EIO;
}

static uint64_t output_room(struct hr_tool_call *c)
{
    struct th_call *tc = CALL(c);
    if (tc->truncated || c->output_cap <= tc->out_len)
        return 0;
    return c->output_cap - tc->out_len;
}

/* ---- calls -------------------------------------------------------------------------------------- */

void th_host_init(struct th_plugin *p)
{
    p->host = (struct hr_host){
        .abi_version = HR_PLUGIN_ABI_VERSION,
        .struct_size = sizeof(struct hr_host),
        .log_message = log_message,
        .alloc = host_alloc,
        .arg_string = arg_string,
        .arg_int = arg_int,
        .arg_number = arg_number,
        .arg_bool = arg_bool,
        .arg_json = arg_json,
        .open_path = open_path,
        .path_error = path_error,
        .cancelled = cancelled,
        .append = append,
        .appendf = appendf,
        .set_error = set_error,
        .output_room = output_room,
    };
}

int th_call_run(struct th_call *c)
{
    c->tool->plugin->log_lines = 0;
    return c->tool->desc->call(&c->tool->plugin->host, &c->pub);
}

void th_call_done(struct th_call *c)
{
    json_decref(c->args);
    json_decref(c->dumps);
    free(c->out);
    c->args = c->dumps = NULL;
    c->out = NULL;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *th_utf8_clean(const char *text, size_t n, size_t cap, size_t *out_len)
{
    /* worst case every byte becomes the 3-byte U+FFFD */
    size_t alloc = (n < cap ? n : cap) * 3 + 1;
    char *out = malloc(alloc);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        const char *piece = k ? text + i : "\xEF\xBF\xBD";
        size_t plen = k ? k : 3;
        if (o + plen > cap)
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += k ? k : 1;
    }
    out[o] = 0;
    *out_len = o;
    return out;
}
