/*
 * test_train_dbus.c — LoRA training over D-Bus (Train, CancelTrain and the
 * TrainProgress/TrainDone/TrainError signals, docs/dbus.md): the real hearthd
 * with D-Bus on, on the private session bus of dbus-run-session
 * (tests/meson.build runs it so), with the bundled stories260K.
 *
 * A job trains with progress signals to its caller and ends with TrainDone;
 * the adapter is then in the registry (ListLoras). Bad params are
 * InvalidArgs, a second job is Busy,
 * CancelTrain ends a job with TrainError "cancelled", and a caller leaving
 * the bus stops its job.
 */
#include "daemonutil.h"
#include "testutil.h"

#include "dbus.h"

#include <criterion/criterion.h>
#include <dbus/dbus.h>
#include <jansson.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[128], config[256], sock[256], logpath[256], data[512];
static pid_t pid;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static DBusConnection *bus(void)
{
    DBusError e;
    dbus_error_init(&e);
    DBusConnection *c = dbus_bus_get_private(DBUS_BUS_SESSION, &e);
    cr_assert(c, "no session bus (run under dbus-run-session): %s", e.message);
    dbus_connection_set_exit_on_disconnect(c, FALSE);
    return c;
}

static void bus_close(DBusConnection *c)
{
    dbus_connection_close(c);
    dbus_connection_unref(c);
}

/* hearthd with D-Bus on and the bundled model; a data file of robot stories. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hearth-train-dbus-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(config, sizeof config, "%s/hearth.yaml", dir);
    snprintf(sock, sizeof sock, "%s/hearth.sock", dir);
    snprintf(logpath, sizeof logpath, "%s/hearthd.log", dir);
    snprintf(data, sizeof data, "%s/robots.jsonl", dir);
    char *model = realpath(tu_stories(), NULL);
    cr_assert(model);
    FILE *f = fopen(config, "w");
    cr_assert(f);
    fprintf(f, "model: %s\nthreads: 1\ndbus:\n  enabled: true\n", model);
    fclose(f);
    free(model);
    f = fopen(data, "w");
    cr_assert(f);
    for (int i = 0; i < 18; i++)
        fprintf(f,
                "{\"text\": \"Once upon a time, there was a small robot named Pip. Pip lost %s. "
                "Pip looked and looked, and found it under a leaf.\"}\n",
                i % 2 ? "a blue gear" : "a shiny bolt");
    fclose(f);
    pid_t parent = getpid();
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) dup2(fd, 2);
        execl(du_daemon_bin(), "hearthd", "--foreground", "--config", config, "--socket", sock,
              (char *)NULL);
        _exit(127);
    }
    DBusConnection *c = bus();
    long t0 = now_ms();
    while (!dbus_bus_name_has_owner(c, IPC_DBUS_NAME, NULL)) {
        int st;
        cr_assert(waitpid(pid, &st, WNOHANG) != pid, "hearthd exited during start-up");
        cr_assert(now_ms() - t0 < 60000, "hearthd did not own %s", IPC_DBUS_NAME);
        usleep(20000);
    }
    bus_close(c);
}

static void teardown(void)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        int st = 0;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hearthd exit status 0x%x", st);
        pid = 0;
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static DBusMessage *method(const char *name)
{
    DBusMessage *m =
        dbus_message_new_method_call(IPC_DBUS_NAME, IPC_DBUS_PATH, IPC_DBUS_IFACE, name);
    cr_assert(m);
    dbus_message_set_auto_start(m, FALSE);
    return m;
}

/* Train(params_json): the job id, or 0 with *ename (owned) set. */
static dbus_uint64_t train(DBusConnection *c, const char *params, char **ename, char **emsg)
{
    DBusMessage *m = method("Train");
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_STRING, &params, DBUS_TYPE_INVALID));
    DBusError e;
    dbus_error_init(&e);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, 60000, &e);
    dbus_message_unref(m);
    if (!r) {
        if (ename) *ename = strdup(e.name);
        if (emsg) *emsg = strdup(e.message);
        dbus_error_free(&e);
        return 0;
    }
    dbus_uint64_t id = 0;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
    dbus_message_unref(r);
    return id;
}

/* The next signal of job `id` (member name in *member, text in *text, both
 * owned); asserts one comes within a minute. */
static void next_signal(DBusConnection *c, dbus_uint64_t id, char **member, char **text)
{
    long t0 = now_ms();
    for (;;) {
        cr_assert(now_ms() - t0 < 60000, "no signal of job %llu", (unsigned long long)id);
        dbus_connection_read_write(c, 100);
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c))) {
            dbus_uint64_t jid;
            const char *t;
            if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL &&
                dbus_message_has_interface(m, IPC_DBUS_IFACE) &&
                dbus_message_get_args(m, NULL, DBUS_TYPE_UINT64, &jid, DBUS_TYPE_STRING, &t,
                                      DBUS_TYPE_INVALID) &&
                jid == id) {
                *member = strdup(dbus_message_get_member(m));
                *text = strdup(t);
                dbus_message_unref(m);
                return;
            }
            dbus_message_unref(m);
        }
    }
}

static char *loras(DBusConnection *c)
{
    DBusMessage *m = method("ListLoras");
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, 60000, NULL);
    dbus_message_unref(m);
    cr_assert(r);
    const char *text;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
    char *s = strdup(text);
    dbus_message_unref(r);
    return s;
}

TestSuite(train_dbus, .init = setup, .fini = teardown, .timeout = 300);

Test(train_dbus, train_progress_done_and_hot_load)
{
    DBusConnection *c = bus();
    char params[2048], *member, *text;
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s/pip.gguf\", \"name\": \"pip\", \"ctx\": 48, "
             "\"epochs\": 6, \"batch_tokens\": 96, \"val\": 2, \"lr\": 0.01, \"threads\": 1}",
             data, dir);
    dbus_uint64_t id = train(c, params, NULL, NULL);
    cr_assert(id > 0);
    int n_progress = 0;
    for (;;) {
        next_signal(c, id, &member, &text);
        if (strcmp(member, "TrainProgress")) break;
        json_t *p = json_loads(text, 0, NULL);
        cr_assert(p && json_is_string(json_object_get(p, "phase")), "%s", text);
        json_decref(p);
        n_progress++;
        free(member);
        free(text);
    }
    cr_assert_str_eq(member, "TrainDone", "%s: %s", member, text);
    json_t *r = json_loads(text, 0, NULL);
    cr_assert(r, "%s", text);
    cr_expect(n_progress >= 3);
    cr_expect(json_is_true(json_object_get(r, "loaded")), "%s", text);
    cr_expect(json_real_value(json_object_get(r, "val_loss_after")) <
                  json_real_value(json_object_get(r, "val_loss_before")),
              "%s", text);
    json_decref(r);
    free(member);
    free(text);
    char *l = loras(c);
    cr_expect(strstr(l, "\"pip\""), "%s", l);
    free(l);

    /* errors: bad params, an unknown key */
    char *ename = NULL, *emsg = NULL;
    cr_expect_eq(train(c, "{\"data\": \"rel\", \"output\": \"/tmp/x\"}", &ename, &emsg), 0);
    cr_expect_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    cr_expect(strstr(emsg, "absolute"), "%s", emsg);
    free(ename);
    free(emsg);
    cr_expect_eq(train(c, "{\"bogus\": 1}", &ename, NULL), 0);
    cr_expect_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    free(ename);
    bus_close(c);
}

Test(train_dbus, busy_cancel_and_leaving)
{
    DBusConnection *c = bus(), *c2 = bus();
    char params[2048], *member, *text, *ename = NULL;
    snprintf(params, sizeof params,
             "{\"data\": \"%s\", \"output\": \"%s/long.gguf\", \"ctx\": 48, \"epochs\": 100000, "
             "\"batch_tokens\": 48, \"val\": 0, \"threads\": 1}",
             data, dir);
    dbus_uint64_t id = train(c, params, NULL, NULL);
    cr_assert(id > 0);
    for (bool training = false; !training;) { /* until it takes steps */
        next_signal(c, id, &member, &text);
        json_t *p = json_loads(text, 0, NULL);
        training = p && json_integer_value(json_object_get(p, "step")) >= 1;
        json_decref(p);
        free(member);
        free(text);
    }
    cr_expect_eq(train(c2, params, &ename, NULL), 0);
    cr_expect_str_eq(ename, IPC_DBUS_IFACE ".Error.Busy");
    free(ename);
    /* only the caller can cancel its job */
    DBusMessage *m = method("CancelTrain");
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c2, m, 60000, NULL);
    dbus_bool_t ok = true;
    cr_assert(r && dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID));
    cr_expect(!ok);
    dbus_message_unref(r);
    r = dbus_connection_send_with_reply_and_block(c, m, 60000, NULL);
    cr_assert(r && dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID));
    cr_expect(ok);
    dbus_message_unref(r);
    dbus_message_unref(m);
    do { /* progress sent before the cancel may come first */
        next_signal(c, id, &member, &text);
        bool progress = !strcmp(member, "TrainProgress");
        if (!progress) {
            cr_expect_str_eq(member, "TrainError");
            cr_expect_str_eq(text, "cancelled");
        }
        free(member);
        free(text);
        if (!progress) break;
    } while (1);

    /* a caller that leaves the bus: its job stops, another may start */
    dbus_uint64_t id2 = train(c2, params, NULL, NULL);
    cr_assert(id2 > 0);
    next_signal(c2, id2, &member, &text);
    free(member);
    free(text);
    bus_close(c2);
    long t0 = now_ms();
    dbus_uint64_t id3;
    while (!(id3 = train(c, params, &ename, NULL))) {
        cr_assert(now_ms() - t0 < 30000, "the job of the caller that left still runs");
        free(ename);
        usleep(50000);
    }
    m = method("CancelTrain");
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_UINT64, &id3, DBUS_TYPE_INVALID));
    r = dbus_connection_send_with_reply_and_block(c, m, 60000, NULL);
    cr_assert(r);
    dbus_message_unref(r);
    dbus_message_unref(m);
    char path[600];
    snprintf(path, sizeof path, "%s/long.gguf", dir);
    cr_expect(access(path, F_OK) != 0, "a stopped job writes nothing");
    bus_close(c);
}
