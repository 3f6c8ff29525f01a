/*
 * test_train_daemon.c — LoRA training in hearthd (the socket method
 * `train`, ipc/rpc_train.c, daemon/trainjob.c): the real daemon with the
 * bundled stories260K trains an adapter in the background, streams
 * train.progress notifications, keeps answering other requests meanwhile,
 * and hot-loads the adapter into its registry when it is written, so a
 * request can use it at once. Bad parameters and bad data are refused
 * (naming the line), a second job is refused while one runs, cancel stops
 * a job with the daemon still serving, and so do a client that goes away
 * and SIGTERM.
 */
#include "daemonutil.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct du_daemon *running;

static void reap(void)
{
    if (running && running->pid > 0) {
        kill(running->pid, SIGKILL);
        waitpid(running->pid, NULL, 0);
        running->pid = 0;
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", running->dir);
        cr_expect_eq(system(cmd), 0);
    }
    running = NULL;
}

TestSuite(train_daemon, .fini = reap);

/* A data file in the daemon's private directory. */
static void write_data(const struct du_daemon *d, const char *name, const char *text, char *path,
                       size_t cap)
{
    snprintf(path, cap, "%s/%s", d->dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static void stories(const struct du_daemon *d, char *path, size_t cap)
{
    char text[8192] = "";
    const char *who[3] = {"Pip", "Zed", "Bo"};
    const char *what[3] = {"a blue gear", "a shiny bolt", "a red button"};
    for (int i = 0; i < 18; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"text\": \"Once upon a time, there was a small robot named %s. %s lost %s. "
                 "%s looked and looked, and found %s under a leaf.\"}\n",
                 who[i % 3], who[i % 3], what[(i / 3) % 3], who[i % 3], what[(i / 3) % 3]);
        strcat(text, line);
    }
    write_data(d, "robots.jsonl", text, path, cap);
}

static const char *greedy(struct du_conn *c, const char *lora, char *buf, size_t cap)
{
    char params[512];
    snprintf(params, sizeof params,
             "{\"prompt\": \"Once upon a time\", \"temperature\": 0, \"max_tokens\": 24%s}", lora);
    json_t *r = du_call_ok(c, "complete", params);
    snprintf(buf, cap, "%s", json_string_value(json_object_get(r, "text")));
    json_decref(r);
    return buf;
}

Test(train_daemon, trains_in_background_and_hot_loads)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    running = &d;
    char data[512], out[512], params[2048];
    stories(&d, data, sizeof data);
    snprintf(out, sizeof out, "%s/robots.gguf", d.dir);
    struct du_conn *c = du_connect(d.socket), *c2 = du_connect(d.socket);
    char base[512];
    greedy(c, "", base, sizeof base);

    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"name\": \"robots\", \"ctx\": 48, "
             "\"epochs\": 8, \"batch_tokens\": 96, \"val\": 2, \"lr\": 0.01, \"seed\": 1, "
             "\"threads\": 1}",
             data, out);
    long id = du_send_call(c, "train", params);
    /* other requests are served meanwhile */
    json_t *st = du_call_ok(c2, "status", NULL);
    json_decref(st);

    int n_progress = 0, n_training = 0;
    int64_t last_step = -1, total = 0;
    json_t *resp = NULL;
    while (!resp) {
        json_t *m = du_recv_ok(c);
        const char *method = json_string_value(json_object_get(m, "method"));
        json_t *p = json_object_get(m, "params");
        if (method && !strcmp(method, "train.progress")) {
            cr_assert_eq(json_integer_value(json_object_get(p, "id")), id);
            n_progress++;
            if (!strcmp(json_string_value(json_object_get(p, "phase")), "training")) {
                int64_t step = json_integer_value(json_object_get(p, "step"));
                cr_expect(step >= last_step, "steps go forward");
                last_step = step;
                total = json_integer_value(json_object_get(p, "total_steps"));
                n_training++;
            }
            json_decref(m);
        } else if (json_integer_value(json_object_get(m, "id")) == id) {
            resp = m;
        } else {
            json_decref(m);
        }
    }
    char *txt = json_dumps(resp, JSON_COMPACT);
    json_t *r = json_object_get(resp, "result");
    cr_assert(r, "train failed: %s", txt);
    cr_expect(n_progress >= 3 && n_training >= 1, "%d notifications", n_progress);
    cr_expect(total > 0 && json_integer_value(json_object_get(r, "steps")) == total, "%s", txt);
    cr_expect(json_is_true(json_object_get(r, "loaded")), "%s", txt);
    cr_expect_str_eq(json_string_value(json_object_get(r, "name")), "robots");
    double before = json_real_value(json_object_get(r, "val_loss_before"));
    double after = json_real_value(json_object_get(r, "val_loss_after"));
    cr_expect(after < before, "validation %g -> %g", before, after);
    cr_expect(tu_exists(out));
    free(txt);
    json_decref(resp);

    /* the registry has it, and a request uses it at once */
    json_t *l = du_call_ok(c, "lora.list", NULL);
    char *ls = json_dumps(l, JSON_COMPACT);
    cr_expect(strstr(ls, "\"robots\""), "%s", ls);
    free(ls);
    json_decref(l);
    char adapted[512];
    greedy(c, ", \"lora\": [{\"name\": \"robots\"}]", adapted, sizeof adapted);
    cr_expect(strcmp(base, adapted), "the adapter changes nothing: '%s'", adapted);
    cr_expect(strstr(adapted, "robot"), "'%s'", adapted);
    du_close(c);
    du_close(c2);
    du_stop(&d);
    running = NULL;
}

Test(train_daemon, errors_and_cancel)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    running = &d;
    struct du_conn *c = du_connect(d.socket);
    char data[512], bad[512], out[512], params[2048], *msg;
    stories(&d, data, sizeof data);
    snprintf(out, sizeof out, "%s/x.gguf", d.dir);

    cr_expect_eq(
        du_call_err(c, "train", "{\"data\": \"rel.txt\", \"output\": \"/tmp/x.gguf\"}", &msg),
        -32602);
    cr_expect(strstr(msg, "absolute"), "%s", msg);
    free(msg);
    snprintf(params, sizeof params, "{\"data\": \"%s\", \"output\": \"%s\", \"rank\": 0}", data,
             out);
    cr_expect_eq(du_call_err(c, "train", params, NULL), -32602);
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"targets\": [\"q\", \"x\"]}", data, out);
    cr_expect_eq(du_call_err(c, "train", params, NULL), -32602);

    write_data(&d, "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": }\n", bad, sizeof bad);
    snprintf(params, sizeof params, "{\"data\": \"%s\", \"output\": \"%s\"}", bad, out);
    cr_expect_eq(du_call_err(c, "train", params, &msg), -32602);
    cr_expect(strstr(msg, "bad.jsonl:2:"), "%s", msg);
    free(msg);

    /* a long job, cancelled once it trains */
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"ctx\": 48, \"epochs\": 100000, "
             "\"batch_tokens\": 48, \"val\": 0, \"threads\": 1}",
             data, out);
    long id = du_send_call(c, "train", params);
    for (;;) {
        json_t *m = du_recv_ok(c);
        json_t *p = json_object_get(m, "params");
        bool training = p && json_integer_value(json_object_get(p, "id")) == id &&
                        json_integer_value(json_object_get(p, "step")) >= 1;
        json_decref(m);
        if (training) break;
    }
    /* a second job is refused while one runs */
    struct du_conn *c3 = du_connect(d.socket);
    char other[1200];
    snprintf(other, sizeof other, "{\"data\": \"%s\", \"output\": \"%s.2\"}", data, out);
    cr_expect_eq(du_call_err(c3, "train", other, NULL), -32000);
    du_close(c3);
    char cp[64];
    snprintf(cp, sizeof cp, "{\"id\": %ld}", id);
    long cid = du_send_call(c, "cancel", cp);
    int got = 0;
    while (got < 2) {
        json_t *m = du_recv_ok(c);
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id) {
            json_t *e = json_object_get(m, "error");
            cr_expect(e && json_integer_value(json_object_get(e, "code")) == -32010);
            got++;
        } else if (json_is_integer(mid) && json_integer_value(mid) == cid) {
            cr_expect(json_is_true(json_object_get(json_object_get(m, "result"), "cancelled")));
            got++;
        }
        json_decref(m);
    }
    cr_expect(!tu_exists(out), "a cancelled job writes no adapter");
    /* a client that goes away in the middle of a job: the job stops */
    struct du_conn *c2 = du_connect(d.socket);
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"ctx\": 48, \"epochs\": 100000, "
             "\"batch_tokens\": 48, \"val\": 0, \"threads\": 1}",
             data, out);
    id = du_send_call(c2, "train", params);
    for (;;) {
        json_t *m = du_recv_ok(c2);
        json_t *p = json_object_get(m, "params");
        bool training = p && json_integer_value(json_object_get(p, "step")) >= 1;
        json_decref(m);
        if (training) break;
    }
    du_close(c2);
    /* still serving, and a new job may start (once the old one is gone) */
    json_t *st = du_call_ok(c, "status", NULL);
    json_decref(st);
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"ctx\": 48, \"epochs\": 1, \"val\": 0, "
             "\"load\": false, \"threads\": 1}",
             data, out);
    json_t *resp, *r;
    for (int tries = 0;; tries++) { /* the closed connection is freed a moment later */
        resp = du_wait_response(c, du_send_call(c, "train", params), NULL);
        json_t *e = json_object_get(resp, "error");
        if (!e || json_integer_value(json_object_get(e, "code")) != -32000 || tries == 100) break;
        json_decref(resp);
        usleep(50000);
    }
    r = json_object_get(resp, "result");
    cr_assert(r, "the job of the closed connection is still running");
    cr_expect(json_is_false(json_object_get(r, "loaded")));
    cr_expect(json_is_null(json_object_get(r, "val_loss_before")));
    json_decref(resp);
    du_close(c);
    du_stop(&d);
    running = NULL;
}

/* SIGTERM while a job trains: hearthd stops the job and exits cleanly (the
 * job is joined before the model is freed). */
Test(train_daemon, shutdown_while_training)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    running = &d;
    struct du_conn *c = du_connect(d.socket);
    char data[512], out[512], params[2048];
    stories(&d, data, sizeof data);
    snprintf(out, sizeof out, "%s/x.gguf", d.dir);
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s\", \"ctx\": 48, \"epochs\": 100000, "
             "\"batch_tokens\": 48, \"val\": 0, \"threads\": 1}",
             data, out);
    long id = du_send_call(c, "train", params);
    for (;;) {
        json_t *m = du_recv_ok(c);
        json_t *p = json_object_get(m, "params");
        bool training = p && json_integer_value(json_object_get(p, "id")) == id &&
                        json_integer_value(json_object_get(p, "step")) >= 1;
        json_decref(m);
        if (training)
            break;
    }
    du_stop(&d); /* asserts exit status 0 */
    running = NULL;
    du_close(c);
}
