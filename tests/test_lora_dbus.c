/*
 * test_lora_dbus.c — LoRA adapters over D-Bus (docs/dbus.md, docs/lora.md):
 * the real hearthd with D-Bus on, on the private session bus of
 * dbus-run-session (tests/meson.build runs it so), the syn-llama-q8_0 model
 * and the lora-llama adapters of tests/data.
 *
 * LoadLora / ListLoras / UnloadLora act on the same registry as the socket's
 * lora.* methods (checked through the socket); bad files and names are
 * InvalidArgs with the reason; the `lora` option of Generate takes a(sd) or
 * a profile name, and an unknown adapter or profile is refused at once.
 */
#include "daemonutil.h"
#include "testutil.h"

#include "dbus.h"

#include <criterion/criterion.h>
#include <dbus/dbus.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[128], config[256], sock[256], logpath[256], adapter_a[4096], adapter_b[4096];
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

/* hearthd with D-Bus on, lora.dir = tests/data/models and a profile. */
static void setup(void)
{
    snprintf(adapter_a, sizeof adapter_a, "%s", tu_data("models/lora-llama-a.gguf"));
    snprintf(adapter_b, sizeof adapter_b, "%s", tu_data("models/lora-llama-b.gguf"));
    snprintf(dir, sizeof dir, "/tmp/hearth-lora-dbus-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(config, sizeof config, "%s/hearth.yaml", dir);
    snprintf(sock, sizeof sock, "%s/hearth.sock", dir);
    snprintf(logpath, sizeof logpath, "%s/hearthd.log", dir);
    char *model = realpath(tu_data("models/syn-llama-q8_0.gguf"), NULL);
    char *models = realpath(tu_data("models"), NULL);
    cr_assert(model && models);
    FILE *f = fopen(config, "w");
    cr_assert(f);
    fprintf(f,
            "model: %s\nthreads: 1\ndbus:\n  enabled: true\nlora:\n  dir: %s\n  profiles:\n"
            "    both: [{lora-llama-a: 0.5}, {lora-llama-b: 1.0}]\n",
            model, models);
    fclose(f);
    free(model);
    free(models);
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
    }
    unlink(config);
    unlink(logpath);
    rmdir(dir);
}

/* Calls `name` with the arguments already appended to m; returns the reply
 * (owned) or NULL with *error_name / *error_msg (owned) set. */
static DBusMessage *call(DBusConnection *c, DBusMessage *m, char **error_name, char **error_msg)
{
    DBusError e;
    dbus_error_init(&e);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, 60000, &e);
    dbus_message_unref(m);
    if (!r) {
        if (error_name) *error_name = strdup(e.name ? e.name : "");
        if (error_msg) *error_msg = strdup(e.message ? e.message : "");
        dbus_error_free(&e);
    }
    return r;
}

static DBusMessage *method(const char *name)
{
    DBusMessage *m =
        dbus_message_new_method_call(IPC_DBUS_NAME, IPC_DBUS_PATH, IPC_DBUS_IFACE, name);
    cr_assert(m);
    dbus_message_set_auto_start(m, FALSE);
    return m;
}

static DBusMessage *load_msg(const char *path, const char *name)
{
    DBusMessage *m = method("LoadLora");
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_STRING, &path, DBUS_TYPE_STRING, &name,
                                       DBUS_TYPE_INVALID));
    return m;
}

/* ListLoras, parsed. */
static json_t *list(DBusConnection *c)
{
    DBusMessage *r = call(c, method("ListLoras"), NULL, NULL);
    cr_assert(r, "ListLoras failed");
    const char *text;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
    json_t *j = json_loads(text, 0, NULL);
    cr_assert(j, "ListLoras: not JSON: %s", text);
    dbus_message_unref(r);
    return j;
}

/* Generate "hi" with the option lora: a(sd) of (names, scales), or the
 * profile name when n < 0. Returns the reply (owned) or NULL with the
 * error set. */
static DBusMessage *generate(DBusConnection *c, const char *const *names, const double *scales,
                             int n, const char *profile, char **ename, char **emsg)
{
    DBusMessage *m = method("Generate");
    const char *prompt = "hi";
    DBusMessageIter it, dict, ent, var, arr, st;
    dbus_message_iter_init_append(m, &it);
    cr_assert(dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &prompt));
    cr_assert(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
    const char *keys[] = {"lora", "max_tokens", "temperature"};
    for (int k = 0; k < 3; k++) {
        cr_assert(dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &ent));
        cr_assert(dbus_message_iter_append_basic(&ent, DBUS_TYPE_STRING, &keys[k]));
        if (k == 0 && n < 0) {
            cr_assert(dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "s", &var));
            cr_assert(dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &profile));
        } else if (k == 0) {
            cr_assert(dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "a(sd)", &var));
            cr_assert(dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "(sd)", &arr));
            for (int i = 0; i < n; i++) {
                cr_assert(dbus_message_iter_open_container(&arr, DBUS_TYPE_STRUCT, NULL, &st));
                cr_assert(dbus_message_iter_append_basic(&st, DBUS_TYPE_STRING, &names[i]));
                cr_assert(dbus_message_iter_append_basic(&st, DBUS_TYPE_DOUBLE, &scales[i]));
                cr_assert(dbus_message_iter_close_container(&arr, &st));
            }
            cr_assert(dbus_message_iter_close_container(&var, &arr));
        } else if (k == 1) {
            dbus_int32_t v = 4;
            cr_assert(dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "i", &var));
            cr_assert(dbus_message_iter_append_basic(&var, DBUS_TYPE_INT32, &v));
        } else {
            double v = 0;
            cr_assert(dbus_message_iter_open_container(&ent, DBUS_TYPE_VARIANT, "d", &var));
            cr_assert(dbus_message_iter_append_basic(&var, DBUS_TYPE_DOUBLE, &v));
        }
        cr_assert(dbus_message_iter_close_container(&ent, &var));
        cr_assert(dbus_message_iter_close_container(&dict, &ent));
    }
    cr_assert(dbus_message_iter_close_container(&it, &dict));
    return call(c, m, ename, emsg);
}

TestSuite(lora_dbus, .init = setup, .fini = teardown, .timeout = 300);

Test(lora_dbus, load_list_unload_and_the_option)
{
    DBusConnection *c = bus();
    char *ename = NULL, *emsg = NULL;
    DBusMessage *r = call(c, load_msg(adapter_a, ""), &ename, &emsg);
    cr_assert(r, "LoadLora: %s: %s", ename, emsg);
    const char *name;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID));
    cr_assert_str_eq(name, "lora-llama-a");
    dbus_message_unref(r);
    r = call(c, load_msg(adapter_b, "style"), &ename, &emsg);
    cr_assert(r, "LoadLora: %s: %s", ename, emsg);
    dbus_message_unref(r);

    json_t *j = list(c);
    json_t *ads = json_object_get(j, "adapters");
    cr_assert_eq(json_array_size(ads), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ads, 1), "name")), "style");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ads, 1), "rank")), 8);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "profiles"), 0), "name")),
                     "both");
    json_decref(j);

    /* the socket sees the same registry */
    struct du_conn *sc = du_connect(sock);
    json_t *sl = du_call_ok(sc, "lora.list", NULL);
    cr_assert_eq(json_array_size(json_object_get(sl, "adapters")), 2);
    json_decref(sl);

    /* refused: a taken name, a model file, a bad name */
    cr_assert_null(call(c, load_msg(adapter_a, "style"), &ename, &emsg));
    cr_assert_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(emsg, "loaded already"), "%s", emsg);
    free(ename);
    free(emsg);
    char model[4096];
    snprintf(model, sizeof model, "%s", tu_data("models/syn-llama-q8_0.gguf"));
    cr_assert_null(call(c, load_msg(model, "m"), &ename, &emsg));
    cr_assert_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(emsg, "not a LoRA adapter"), "%s", emsg);
    free(ename);
    free(emsg);
    cr_assert_null(call(c, load_msg(adapter_a, "no spaces"), &ename, &emsg));
    cr_assert_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    free(ename);
    free(emsg);

    /* the lora option: adapters with scales, a profile; unknown ones refused at once */
    const char *names[] = {"lora-llama-a", "style"};
    const double scales[] = {0.5, 1.0};
    r = generate(c, names, scales, 2, NULL, &ename, &emsg);
    cr_assert(r, "Generate with lora: %s: %s", ename, emsg);
    dbus_message_unref(r);
    r = generate(c, NULL, NULL, -1, "both", &ename, &emsg);
    cr_assert(r, "Generate with the profile: %s: %s", ename, emsg);
    dbus_message_unref(r);
    const char *unknown[] = {"nope"};
    cr_assert_null(generate(c, unknown, scales, 1, NULL, &ename, &emsg));
    cr_assert_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(emsg, "'nope'"), "%s", emsg);
    free(ename);
    free(emsg);
    cr_assert_null(generate(c, NULL, NULL, -1, "nope", &ename, &emsg));
    cr_assert_str_eq(ename, DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(emsg, "profile 'nope'"), "%s", emsg);
    free(ename);
    free(emsg);

    /* unload: true, then false */
    for (int k = 0; k < 2; k++) {
        DBusMessage *m = method("UnloadLora");
        const char *n = "style";
        cr_assert(dbus_message_append_args(m, DBUS_TYPE_STRING, &n, DBUS_TYPE_INVALID));
        r = call(c, m, &ename, &emsg);
        cr_assert(r, "UnloadLora: %s: %s", ename, emsg);
        dbus_bool_t ok;
        cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID));
        cr_assert_eq(!!ok, k == 0);
        dbus_message_unref(r);
    }
    /* left: lora-llama-a, and lora-llama-b that the profile loaded from lora.dir */
    j = list(c);
    ads = json_object_get(j, "adapters");
    cr_assert_eq(json_array_size(ads), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ads, 0), "name")),
                     "lora-llama-a");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ads, 1), "name")),
                     "lora-llama-b");
    json_decref(j);
    du_close(sc);
    bus_close(c);
}
