/*
 * toolhost_main.c — hearth-toolhost: the child process of hearthd that
 * loads the tool plugins and runs their calls, so that a plugin that
 * crashes, hangs or leaks takes only this process down (daemon/tools.h has
 * the daemon's side and the protocol).
 *
 *   hearth-toolhost [--fd N] [--dirs DIR[:DIR...]] [--rss-limit MIB] [--parent PID] NAME...
 *       serves the daemon on descriptor N (default 3): JSON lines in both
 *       directions. Plugin NAME is DIR/NAME.so in the first DIR that has it.
 *       With --parent, exits at once unless PID is still its parent (the
 *       daemon died before the host could ask to die with it).
 *   hearth-toolhost --check FILE.so...
 *       loads the given plugins as the daemon would, prints their tools as
 *       JSON on stdout and every problem on stderr; exit status 0 when all
 *       loaded. For plugin authors.
 *
 * At start the plugins are dlopen()ed (RTLD_NOW: a missing symbol is a load
 * error now, not a crash during some call) and never dlclose()d. Every
 * descriptor is checked before anything of it is used: ABI version and
 * struct sizes, names ([a-z][a-z0-9_]*, unique across all plugins), a
 * description, a JSON Schema of the supported subset, a call function. A
 * plugin that fails any check is refused as a whole, with a message the
 * daemon logs; the others still load.
 *
 * Then the host reads requests one line at a time and runs each call to its
 * end before reading the next. The only message that can arrive during a
 * call is a cancel, which hr_host.cancelled() picks up by peeking at the
 * channel; anything else read then waits in a queue. After a call that
 * leaves the resident memory above --rss-limit (a leaking plugin), the host
 * replies, says why in the log, and exits; the daemon starts a new one for
 * the next call.
 */
#include "schema.h"
#include "toolhost.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE ((size_t)256 << 20) /* a request line (write_file content, escaped) */
#define MAX_PLUGINS 64
#define MAX_TOOLS_PER_PLUGIN 256
#define MAX_DESCRIPTION 4096

static int chan = 3;   /* the descriptor to the daemon; -1: --check (log to stderr) */
static char *rbuf;     /* bytes read from chan not yet split into lines */
static size_t rlen, rcap;
static json_t *pending; /* array of requests read while a call ran */

static struct th_plugin plugins[MAX_PLUGINS];
static size_t n_plugins;
static struct th_tool *tools;
static size_t n_tools;
static json_t *load_errors; /* array of strings */
static struct th_call *current;
/* Cancels that arrived for a call not running (yet): the daemon may cancel a
 * call it sent before this host has read it. Ids are never reused. */
static int64_t early_cancels[16];
static unsigned n_early_cancels;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the channel ------------------------------------------------------------------- */

static void send_json(json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) {
        fprintf(stderr, "hearth-toolhost: out of memory encoding a message\n");
        exit(1);
    }
    size_t n = strlen(text);
    text[n++] = '\n'; /* replaces the NUL: the length is known */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(chan, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            exit(0); /* the daemon is gone: nothing left to serve */
        off += (size_t)w;
    }
    free(text);
}

void th_send_log(const char *plugin, int level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[1200];
    snprintf(line, sizeof line, "%s: %s", plugin, msg);
    if (chan < 0) {
        fprintf(stderr, "hearth-toolhost: %s: %s\n", names[level >= 0 && level <= 3 ? level : 1],
                line);
        return;
    }
    size_t n;
    char *clean = th_utf8_clean(line, strlen(line), sizeof line, &n);
    if (!clean)
        return;
    send_json(json_pack("{s:s, s:s, s:s%}", "op", "log", "level",
                        names[level >= 0 && level <= 3 ? level : 1], "msg", clean, n));
    free(clean);
}

/* Parses the complete lines in rbuf: a cancel sets the current call's
 * flag, everything else joins `pending`. Malformed lines are dropped with a
 * log line (the daemon never sends them). */
static void split_lines(void)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(rbuf + start, '\n', rlen - start);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (rbuf + start));
        json_error_t je;
        json_t *msg = json_loadb(rbuf + start, n, 0, &je);
        start += n + 1;
        if (!json_is_object(msg)) {
            th_send_log("toolhost", HR_LOG_ERROR, "dropping a malformed request");
            json_decref(msg);
            continue;
        }
        const char *op = json_string_value(json_object_get(msg, "op"));
        if (op && strcmp(op, "cancel") == 0) {
            json_int_t id = json_integer_value(json_object_get(msg, "id"));
            if (current && current->pub.id == id)
                current->cancelled = true;
            else
                early_cancels[n_early_cancels++ % 16] = id;
            json_decref(msg);
            continue;
        }
        json_array_append_new(pending, msg);
    }
    memmove(rbuf, rbuf + start, rlen - start);
    rlen -= start;
}

/* Reads what is available on chan (blocking when `wait`). Returns false at
 * end of file or error. */
static bool fill(bool wait)
{
    if (!wait) {
        struct pollfd pfd = {.fd = chan, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            return true;
    }
    if (rcap - rlen < 65536) {
        size_t want = rcap ? rcap * 2 : 131072;
        char *p = realloc(rbuf, want);
        if (!p)
            return false;
        rbuf = p;
        rcap = want;
    }
    ssize_t r;
    do
        r = read(chan, rbuf + rlen, rcap - rlen);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return false;
    rlen += (size_t)r;
    if (rlen > MAX_LINE && !memchr(rbuf, '\n', rlen)) {
        th_send_log("toolhost", HR_LOG_ERROR, "request line too long");
        return false;
    }
    split_lines();
    return true;
}

bool th_channel_cancelled(int64_t id)
{
    if (!fill(false)) {
        /* the daemon is gone: stop the call as soon as the plugin lets us */
        return true;
    }
    return current && current->pub.id == id && current->cancelled;
}

/* The next request, blocking; NULL at end of file. Owned. */
static json_t *next_request(void)
{
    while (json_array_size(pending) == 0)
        if (!fill(true))
            return NULL;
    json_t *msg = json_incref(json_array_get(pending, 0));
    json_array_remove(pending, 0);
    return msg;
}

/* ---- loading plugins -------------------------------------------------------------------- */

static void load_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void load_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n;
    char *clean = th_utf8_clean(msg, strlen(msg), sizeof msg, &n);
    if (clean)
        json_array_append_new(load_errors, json_stringn(clean, n));
    free(clean);
}

static bool valid_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return false;
    return n <= HR_PLUGIN_NAME_MAX;
}

static const struct th_tool *find_tool(const char *name)
{
    for (size_t i = 0; i < n_tools; i++)
        if (strcmp(tools[i].desc->name, name) == 0)
            return &tools[i];
    return NULL;
}

/* Sizes a plugin must declare at least: the members of ABI version 1. */
#define V1_PLUGIN_SIZE (offsetof(struct hr_plugin, init) + sizeof(void (*)(void)))
#define V1_TOOL_SIZE (offsetof(struct hr_tool, call) + sizeof(hr_tool_fn))

/* Checks one tool of plugin `pname`; on success *schema gets its parsed
 * parameters. `first` is the plugin's first tool index in `tools` (tools
 * accepted so far of this plugin, for duplicates within it). */
static bool check_tool(const char *pname, size_t i, const struct hr_tool *t, size_t first,
                       json_t **schema)
{
    if (!t) {
        load_error("plugin '%s': tool %zu is NULL", pname, i);
        return false;
    }
    if (t->struct_size < V1_TOOL_SIZE) {
        load_error("plugin '%s': tool %zu: struct_size %u is smaller than struct hr_tool "
                   "of ABI 1 (%zu)",
                   pname, i, t->struct_size, (size_t)V1_TOOL_SIZE);
        return false;
    }
    if (!valid_name(t->name)) {
        load_error("plugin '%s': tool %zu: name '%.80s' is not plain snake_case "
                   "([a-z][a-z0-9_]*, at most %d bytes)",
                   pname, i, t->name ? t->name : "(null)", HR_PLUGIN_NAME_MAX);
        return false;
    }
    const struct th_tool *dup = find_tool(t->name);
    if (dup) {
        if ((size_t)(dup - tools) >= first)
            load_error("plugin '%s': tool '%s' is defined twice", pname, t->name);
        else
            load_error("plugin '%s': tool '%s' is already provided by plugin '%s'", pname,
                       t->name, dup->plugin->desc->name);
        return false;
    }
    if (t->risk > HR_RISK_EXEC) {
        load_error("plugin '%s': tool '%s': unknown risk class %u", pname, t->name, t->risk);
        return false;
    }
    if (!t->description || !*t->description || strlen(t->description) > MAX_DESCRIPTION) {
        load_error("plugin '%s': tool '%s': the description must be 1 to %d bytes", pname,
                   t->name, MAX_DESCRIPTION);
        return false;
    }
    if (!t->call) {
        load_error("plugin '%s': tool '%s': no call function", pname, t->name);
        return false;
    }
    json_error_t je = {.line = 0, .column = 0, .text = "missing"};
    json_t *s = t->parameters ? json_loads(t->parameters, 0, &je) : NULL;
    if (!s) {
        load_error("plugin '%s': tool '%s': parameters are not JSON: %s (line %d, column %d)",
                   pname, t->name, je.text, je.line, je.column);
        return false;
    }
    struct hr_err err;
    const char *type = json_string_value(json_object_get(s, "type"));
    if (!json_is_object(s) || !type || strcmp(type, "object") != 0) {
        load_error("plugin '%s': tool '%s': parameters must be a schema of \"type\": "
                   "\"object\"",
                   pname, t->name);
        json_decref(s);
        return false;
    }
    if (hd_schema_check(s, &err) < 0) {
        load_error("plugin '%s': tool '%s': parameters: %s", pname, t->name, err.msg);
        json_decref(s);
        return false;
    }
    *schema = s;
    return true;
}

/* Checks a descriptor and adds its tools. On failure nothing is added. */
static bool add_plugin(const char *path, const struct hr_plugin *d)
{
    if (!d) {
        load_error("%s: %s() returned NULL (the plugin refused to load)", path,
                   HR_PLUGIN_ENTRY);
        return false;
    }
    if (d->abi_version != HR_PLUGIN_ABI_VERSION) {
        load_error("%s: plugin ABI version %u, but this tool host speaks version %u "
                   "(rebuild the plugin against this hearth)",
                   path, d->abi_version, HR_PLUGIN_ABI_VERSION);
        return false;
    }
    if (d->struct_size < V1_PLUGIN_SIZE) {
        load_error("%s: struct_size %u is smaller than struct hr_plugin of ABI 1 (%zu)", path,
                   d->struct_size, (size_t)V1_PLUGIN_SIZE);
        return false;
    }
    if (!valid_name(d->name)) {
        load_error("%s: plugin name '%.80s' is not plain snake_case", path,
                   d->name ? d->name : "(null)");
        return false;
    }
    for (size_t i = 0; i < n_plugins; i++) {
        if (strcmp(plugins[i].desc->name, d->name) == 0) {
            load_error("%s: a plugin named '%s' is already loaded (from %s)", path, d->name,
                       plugins[i].path);
            return false;
        }
    }
    if (!d->version) {
        load_error("%s: plugin '%s' has no version", path, d->name);
        return false;
    }
    if (d->n_tools > MAX_TOOLS_PER_PLUGIN || (d->n_tools && !d->tools)) {
        load_error("%s: plugin '%s': bad tool table (%zu tools)", path, d->name, d->n_tools);
        return false;
    }
    if (n_plugins == MAX_PLUGINS) {
        load_error("%s: more than %d plugins", path, MAX_PLUGINS);
        return false;
    }
    struct th_tool *grown = realloc(tools, (n_tools + d->n_tools + 1) * sizeof *tools);
    if (!grown) {
        load_error("%s: out of memory", path);
        return false;
    }
    tools = grown;
    struct th_plugin *p = &plugins[n_plugins];
    *p = (struct th_plugin){.desc = d, .path = strdup(path)};
    th_host_init(p);
    size_t first = n_tools;
    for (size_t i = 0; i < d->n_tools; i++) {
        json_t *schema = NULL;
        if (!check_tool(d->name, i, d->tools[i], first, &schema))
            goto refuse;
        tools[n_tools++] = (struct th_tool){.desc = d->tools[i], .plugin = p, .schema = schema};
    }
    if (d->init) {
        int rc = d->init(&p->host);
        if (rc < 0) {
            load_error("%s: plugin '%s': init failed: %s", path, d->name, strerror(-rc));
            goto refuse;
        }
    }
    n_plugins++;
    return true;
refuse:
    while (n_tools > first)
        json_decref(tools[--n_tools].schema);
    free(p->path);
    *p = (struct th_plugin){0};
    return false;
}

static void load_file(const char *path)
{
    /* RTLD_LOCAL: plugins cannot see each other's symbols */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        load_error("%s", e ? e : path);
        return;
    }
    const struct hr_plugin *(*entry)(void);
    *(void **)&entry = dlsym(h, HR_PLUGIN_ENTRY);
    if (!entry) {
        load_error("%s: no %s symbol (not a hearth plugin?)", path, HR_PLUGIN_ENTRY);
        return;
    }
    add_plugin(path, entry());
    /* never dlclose()d, whatever happened: the plugin may have run code */
}

static void load_named(const char *name, const char *dirs)
{
    if (!valid_name(name)) {
        load_error("plugin name '%.80s' is not plain snake_case", name);
        return;
    }
    const char *d = dirs;
    while (d && *d) {
        const char *e = strchr(d, ':');
        size_t n = e ? (size_t)(e - d) : strlen(d);
        char path[PATH_MAX];
        if (n > 0 && snprintf(path, sizeof path, "%.*s/%s.so", (int)n, d, name) <
                         (int)sizeof path) {
            if (access(path, F_OK) == 0) {
                load_file(path);
                return;
            }
        }
        d = e ? e + 1 : NULL;
    }
    load_error("plugin '%s': no %s.so in %s", name, name, dirs && *dirs ? dirs : "(no directory)");
}

static const char *risk_name(uint32_t r)
{
    return r == HR_RISK_WRITE ? "write" : r == HR_RISK_EXEC ? "exec" : "read";
}

static json_t *list_reply(json_t *id)
{
    json_t *ts = json_array(), *ps = json_array();
    for (size_t i = 0; i < n_tools; i++) {
        const struct hr_tool *t = tools[i].desc;
        json_array_append_new(ts, json_pack("{s:s, s:s, s:s, s:O, s:s}", "plugin",
                                            tools[i].plugin->desc->name, "name", t->name,
                                            "description", t->description, "parameters",
                                            tools[i].schema, "risk", risk_name(t->risk)));
    }
    for (size_t i = 0; i < n_plugins; i++) {
        const struct hr_plugin *d = plugins[i].desc;
        json_array_append_new(ps, json_pack("{s:s, s:s, s:s, s:s}", "name", d->name, "version",
                                            d->version, "description",
                                            d->description ? d->description : "", "path",
                                            plugins[i].path));
    }
    return json_pack("{s:O, s:o, s:o, s:O}", "id", id ? id : json_null(), "tools", ts,
                     "plugins", ps, "errors", load_errors);
}

/* ---- calls ---------------------------------------------------------------------------------- */

/* The workspace as a descriptor, after checking it is still the directory
 * the daemon checked (a rename or symlink swap since then is refused). */
static int open_workspace(const char *ws, char *why, size_t cap)
{
    if (!ws || ws[0] != '/') {
        snprintf(why, cap, "the workspace must be an absolute path");
        return -EINVAL;
    }
    int fd = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, cap, "workspace '%s': %s", ws, strerror(e));
        return -e;
    }
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    if (n < 0 || (real[n] = 0, strcmp(real, ws) != 0)) {
        close(fd);
        snprintf(why, cap, "workspace '%s' is not a canonical directory path", ws);
        return -EINVAL;
    }
    return fd;
}

static void reply_error(json_t *id, const char *msg)
{
    size_t n;
    char *clean = th_utf8_clean(msg, strlen(msg), TH_MAX_ERROR, &n);
    send_json(json_pack("{s:O, s:b, s:s%, s:s, s:b}", "id", id, "ok", 0, "error",
                        clean ? clean : "error", clean ? n : 5, "output", "", "truncated", 0));
    free(clean);
}

/* Resident set size in MiB, or 0 when unknown. */
static long rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

static long rss_limit; /* MiB; 0: none */

/* Runs one call and replies. Returns false when the host must exit after
 * it (the memory limit): the reply then says so ("exit": true), so that
 * the daemon sends nothing more to this process. */
static bool run_call(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *name = json_string_value(json_object_get(msg, "tool"));
    const char *ws = json_string_value(json_object_get(msg, "workspace"));
    json_t *args = json_object_get(msg, "args");
    json_int_t timeout = json_integer_value(json_object_get(msg, "timeout_ms"));
    json_int_t cap = json_integer_value(json_object_get(msg, "output_cap"));
    char why[TH_MAX_ERROR];
    if (!json_is_integer(id) || !name || !json_is_object(args)) {
        reply_error(id ? id : json_null(), "malformed call request");
        return true;
    }
    struct th_tool *tool = (struct th_tool *)find_tool(name);
    if (!tool) {
        snprintf(why, sizeof why, "unknown tool '%.100s'", name);
        reply_error(id, why);
        return true;
    }
    struct hr_err err;
    if (hd_schema_validate(tool->schema, args, &err) < 0) {
        snprintf(why, sizeof why, "invalid arguments for %s: %s", name, err.msg);
        reply_error(id, why);
        return true;
    }
    int wfd = open_workspace(ws, why, sizeof why);
    if (wfd < 0) {
        reply_error(id, why);
        return true;
    }
    char *args_text = json_dumps(args, JSON_COMPACT);
    if (timeout <= 0)
        timeout = 30000;
    if (cap <= 0 || (uint64_t)cap > TH_MAX_OUTPUT_CAP)
        cap = (json_int_t)TH_MAX_OUTPUT_CAP;
    struct th_call c = {
        .pub = {.struct_size = sizeof(struct hr_tool_call),
                .id = json_integer_value(id),
                .tool = tool->desc->name,
                .args_json = args_text ? args_text : "{}",
                .workspace = ws,
                .workspace_fd = wfd,
                .timeout_ms = timeout,
                .deadline_ms = now_ms() + timeout,
                .output_cap = (uint64_t)cap},
        .tool = tool,
        .args = json_incref(args),
    };
    for (unsigned k = 0; k < 16 && k < n_early_cancels; k++)
        c.cancelled = c.cancelled || early_cancels[k] == c.pub.id;
    current = &c;
    int rc = th_call_run(&c);
    current = NULL;
    close(wfd);

    if (rc < 0 && !c.failed) {
        snprintf(c.error, sizeof c.error, "%s failed: %s", name, strerror(-rc));
        c.failed = true;
    }
    size_t olen = 0, elen = 0;
    char *out = th_utf8_clean(c.out ? c.out : "", c.out_len, (size_t)cap, &olen);
    char *e = c.failed ? th_utf8_clean(c.error, strlen(c.error), TH_MAX_ERROR, &elen) : NULL;
    json_t *r = json_pack("{s:O, s:b, s:s%, s:b}", "id", id, "ok", !c.failed, "output",
                          out ? out : "", out ? olen : 0, "truncated", c.truncated);
    if (e)
        json_object_set_new(r, "error", json_stringn(e, elen));
    free(out);
    free(e);
    free(args_text);
    th_call_done(&c);
    long rss = rss_limit > 0 ? rss_mib() : 0;
    bool stay = rss <= rss_limit;
    if (!stay) {
        char text[200];
        snprintf(text, sizeof text,
                 "resident memory %ld MiB is above the limit of %ld MiB (a plugin leaks?); "
                 "exiting, a new tool host serves the next call",
                 rss, rss_limit);
        th_send_log("toolhost", HR_LOG_WARNING, text);
        json_object_set_new(r, "exit", json_true());
    }
    send_json(r);
    return stay;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int check_mode(int argc, char **argv)
{
    chan = -1;
    for (int i = 0; i < argc; i++)
        load_file(argv[i]);
    json_t *list = list_reply(NULL);
    json_dumpf(json_object_get(list, "tools"), stdout, JSON_INDENT(2));
    putchar('\n');
    size_t i;
    json_t *e;
    json_array_foreach(load_errors, i, e) fprintf(stderr, "hearth-toolhost: %s\n",
                                                  json_string_value(e));
    int ok = json_array_size(load_errors) == 0;
    json_decref(list);
    return ok ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: hearth-toolhost [--fd N] [--dirs DIR[:DIR...]] [--rss-limit MIB] "
                    "[--parent PID] NAME...\n       hearth-toolhost --check FILE.so...\n");
}

int main(int argc, char **argv)
{
    const char *dirs = NULL;
    pid_t parent = 0;
    int i = 1;
    load_errors = json_array();
    pending = json_array();
    if (!load_errors || !pending)
        return 1;
    if (argc > 1 && strcmp(argv[1], "--check") == 0)
        return check_mode(argc - 2, argv + 2);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc)
            chan = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dirs") == 0 && i + 1 < argc)
            dirs = argv[++i];
        else if (strcmp(argv[i], "--rss-limit") == 0 && i + 1 < argc)
            rss_limit = atol(argv[++i]);
        else if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc)
            parent = (pid_t)atol(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    struct stat st;
    if (chan < 0 || fstat(chan, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "hearth-toolhost: descriptor %d is not a socket; this program is run "
                        "by hearthd\n",
                chan);
        return 2;
    }
    /* Not for the programs plugins start (run_shell): they must not reach
     * the daemon through this descriptor. */
    fcntl(chan, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    /* Die with the daemon; the daemon also kills us, this covers its crash
     * (and --parent the case that it died before prctl). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != parent)
        return 0;

    for (; i < argc; i++)
        load_named(argv[i], dirs);

    json_t *msg;
    while ((msg = next_request())) {
        const char *op = json_string_value(json_object_get(msg, "op"));
        if (op && strcmp(op, "list") == 0) {
            send_json(list_reply(json_object_get(msg, "id")));
        } else if (op && strcmp(op, "call") == 0) {
            if (!run_call(msg)) {
                json_decref(msg);
                break;
            }
        } else {
            th_send_log("toolhost", HR_LOG_ERROR, "unknown request");
        }
        json_decref(msg);
    }
    for (size_t k = 0; k < n_tools; k++)
        json_decref(tools[k].schema);
    for (size_t k = 0; k < n_plugins; k++)
        free(plugins[k].path);
    free(tools);
    free(rbuf);
    json_decref(pending);
    json_decref(load_errors);
    return 0;
}
