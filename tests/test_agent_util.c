/*
 * test_agent_util.c — helpers of the Lua and agent tests (see the header).
 */
#include "test_agent_util.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *at_workspace_new(void)
{
    static char ws[128];
    snprintf(ws, sizeof ws, "/var/tmp/hearth-agent-XXXXXX");
    cr_assert(mkdtemp(ws), "mkdtemp: %s", strerror(errno));
    return ws;
}

const char *at_path(const char *ws, const char *rel)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", ws, rel);
    return b;
}

void at_write(const char *ws, const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ws, rel);
    for (char *s = strchr(path + strlen(ws) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(path, 0700);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(content, f);
    fclose(f);
}

bool at_exists(const char *ws, const char *rel)
{
    struct stat st;
    return lstat(at_path(ws, rel), &st) == 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void at_workspace_free(const char *ws)
{
    if (ws && !strncmp(ws, "/var/tmp/hearth-agent-", 22))
        nftw(ws, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void at_start(struct du_daemon *d, const char *ws, const char *tools_yaml, const char *extra_yaml)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "tools:\n  roots: [%s]\n%s%s", ws, tools_yaml ? tools_yaml : "",
             extra_yaml ? extra_yaml : "");
    du_start(d, NULL, yaml);
}

static void respond(struct du_conn *c, const char *call_id, bool approve)
{
    /* a string id: never equal to the numeric ids of at_call */
    json_t *p = json_pack("{s:s, s:s, s:s, s:{s:s, s:b}}", "jsonrpc", "2.0", "method",
                          "approval.respond", "id", "approval", "params", "call_id", call_id,
                          "approve", approve);
    char *s = json_dumps(p, JSON_COMPACT);
    du_sendf(c, "%s", s);
    free(s);
    json_decref(p);
}

json_t *at_call(struct du_conn *c, const char *method, json_t *params, enum at_approve approve,
                json_t **notes, int *asked)
{
    long id = ++c->next_id;
    json_t *msg = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", (int)id, "method",
                            method, "params", params ? params : json_object());
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    du_sendf(c, "%s", s);
    free(s);
    if (notes && !*notes)
        *notes = json_array();
    if (asked)
        *asked = 0;
    for (;;) {
        bool closed = false;
        json_t *m = du_recv(c, 120000, &closed);
        cr_assert(m, "no answer to %s within 120 s%s", method, closed ? " (connection closed)" : "");
        json_t *mid = json_object_get(m, "id");
        const char *meth = json_string_value(json_object_get(m, "method"));
        json_t *p = json_object_get(m, "params");
        if (meth && json_integer_value(json_object_get(p, "id")) == id) {
            if (!strcmp(meth, "approval.request")) {
                if (asked)
                    (*asked)++;
                if (approve != AT_IGNORE)
                    respond(c, json_string_value(json_object_get(p, "call_id")),
                            approve == AT_APPROVE);
            }
            if (notes)
                json_array_append(*notes, m);
            json_decref(m);
            continue;
        }
        if (json_is_integer(mid) && json_integer_value(mid) == id)
            return m;
        json_decref(m); /* answers to approval.respond, other notifications */
    }
}

json_t *at_script(struct du_conn *c, const char *source, const char *ws, enum at_approve approve,
                  json_t **notes)
{
    json_t *p = json_pack("{s:s}", "source", source);
    if (ws)
        json_object_set_new(p, "workspace", json_string(ws));
    return at_call(c, "script.run", p, approve, notes, NULL);
}

json_t *at_result(json_t *resp)
{
    json_t *e = json_object_get(resp, "error");
    if (e) {
        char *s = json_dumps(e, JSON_COMPACT);
        cr_assert_fail("expected a result, got the error %s", s);
    }
    json_t *r = json_object_get(resp, "result");
    cr_assert(r, "no result");
    return r;
}

const char *at_error(json_t *resp, int code)
{
    json_t *e = json_object_get(resp, "error");
    if (!e) {
        char *s = json_dumps(resp, JSON_COMPACT);
        cr_assert_fail("expected error %d, got %s", code, s);
    }
    cr_assert_eq(json_integer_value(json_object_get(e, "code")), code, "error %s",
                 json_string_value(json_object_get(e, "message")));
    return json_string_value(json_object_get(e, "message"));
}

json_t *at_notes(json_t *notes, const char *method)
{
    json_t *out = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(notes, i, n) {
        const char *m = json_string_value(json_object_get(n, "method"));
        if (m && !strcmp(m, method))
            json_array_append(out, n);
    }
    return out;
}

void at_assert_serving(struct du_daemon *d)
{
    struct du_conn *c = du_connect(d->socket);
    json_t *st = du_call_ok(c, "status", NULL);
    cr_assert(json_integer_value(json_object_get(st, "protocol_version")) >= 2);
    json_decref(st);
    du_close(c);
}
