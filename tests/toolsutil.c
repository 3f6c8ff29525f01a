/*
 * toolsutil.c — the tools tests' harness (see toolsutil.h).
 */
#include "toolsutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct hd_loop *tt_loop;
struct hd_tools *tt_tools;
static char base[256], ws[300];

void tt_init(void)
{
    snprintf(base, sizeof base, "/var/tmp/hearth-tools-XXXXXX");
    cr_assert_not_null(mkdtemp(base), "mkdtemp: %s", strerror(errno));
    snprintf(ws, sizeof ws, "%s/ws", base);
    cr_assert_eq(mkdir(ws, 0755), 0);
    cr_assert_eq(mkdir(tt_path("outside"), 0755), 0);
    cr_assert_eq(hd_loop_new(&tt_loop), 0);
}

int tt_start_params(const struct hd_tools_params *p, char *msg, size_t cap)
{
    struct hr_err err = {0};
    int rc = hd_tools_new(tt_loop, p, &tt_tools, &err);
    if (msg)
        snprintf(msg, cap, "%s", err.msg);
    return rc;
}

void tt_start(const char *const *plugins, int timeout_ms, size_t output_cap)
{
    tt_init();
    struct hd_tools_params p;
    hd_tools_params_init(&p, NULL);
    size_t n = 0;
    while (plugins[n])
        n++;
    const char *roots[] = {ws};
    p.load = plugins;
    p.n_load = n;
    p.roots = roots;
    p.n_roots = 1;
    if (timeout_ms > 0)
        p.timeout_ms = timeout_ms;
    if (output_cap > 0)
        p.output_cap = output_cap;
    char msg[512];
    int rc = tt_start_params(&p, msg, sizeof msg);
    cr_assert_eq(rc, 0, "hd_tools_new: %d %s", rc, msg);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tt_stop(void)
{
    hd_tools_free(tt_tools);
    tt_tools = NULL;
    hd_loop_free(tt_loop);
    tt_loop = NULL;
    if (base[0]) {
        /* the tests may leave read-only directories behind */
        chmod(ws, 0755);
        nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    base[0] = 0;
}

const char *tt_base(void)
{
    return base;
}

const char *tt_ws(void)
{
    return ws;
}

const char *tt_path(const char *rel)
{
    static char bufs[8][4200];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", base, rel);
    return b;
}

void tt_write(const char *rel, const char *content)
{
    char path[4200];
    snprintf(path, sizeof path, "%s", tt_path(rel));
    for (char *p = path + strlen(base) + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fwrite(content, 1, strlen(content), f);
    fclose(f);
}

char *tt_read(const char *rel)
{
    FILE *f = fopen(tt_path(rel), "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

bool tt_exists(const char *rel)
{
    struct stat st;
    return lstat(tt_path(rel), &st) == 0;
}

static void on_result(void *user, const struct hd_tool_result *res)
{
    struct tt_result *r = user;
    cr_assert(!r->done, "a second callback for call %lld", (long long)res->id);
    cr_assert_eq(res->id, r->id);
    cr_assert_not_null(res->output);
    cr_assert_eq(res->output[res->output_len], 0, "output not NUL-terminated");
    r->done = true;
    r->status = res->status;
    r->output = malloc(res->output_len + 1);
    memcpy(r->output, res->output, res->output_len + 1);
    r->len = res->output_len;
    r->truncated = res->truncated;
    r->error = res->error ? strdup(res->error) : NULL;
    if (res->status == HD_TOOL_OK)
        cr_assert_null(res->error);
    else
        cr_assert_not_null(res->error);
    hd_loop_quit(tt_loop);
}

static void on_guard(void *user)
{
    (void)user;
    cr_assert_fail("no result within 120 s");
}

struct tt_result tt_call_in(const char *tool, const char *args_json, const char *workspace,
                            const struct hd_tools_call_opts *opts)
{
    struct tt_result r = {0};
    r.id = -1;
    /* the id is only known after the call: set it before the loop runs */
    int64_t id = hd_tools_call_ex(tt_tools, tool, args_json, workspace, opts, on_result, &r);
    cr_assert_gt(id, 0, "hd_tools_call: %lld", (long long)id);
    r.id = id;
    int64_t guard = hd_loop_add_timer(tt_loop, 120000, false, on_guard, NULL);
    while (!r.done)
        cr_assert_eq(hd_loop_run(tt_loop), 0);
    hd_loop_del_timer(tt_loop, guard);
    return r;
}

struct tt_result tt_call(const char *tool, const char *args_json)
{
    return tt_call_in(tool, args_json, ws, NULL);
}

void tt_result_done(struct tt_result *r)
{
    free(r->output);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void tt_assert_ok(const struct tt_result *r)
{
    cr_assert_eq(r->status, HD_TOOL_OK, "status %d, error: %s, output: %.300s", r->status,
                 r->error ? r->error : "(none)", r->output);
}

void tt_assert_error(const struct tt_result *r, enum hd_tool_status status, const char *needle)
{
    cr_assert_eq(r->status, status, "status %d (want %d), error: %s, output: %.300s", r->status,
                 status, r->error ? r->error : "(none)", r->output);
    cr_assert_not_null(r->error);
    if (needle)
        cr_assert_not_null(strstr(r->error, needle), "error '%s' lacks '%s'", r->error, needle);
}
