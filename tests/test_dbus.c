/*
 * test_dbus.c — the D-Bus service org.hearth.Hearth1 (ipc/dbus.c), end to
 * end: each test starts the real hearthd on the bundled stories260K model with
 * D-Bus enabled, on the private session bus of `dbus-run-session` (see
 * tests/meson.build), and talks to it as a client with libdbus. Results are
 * checked against the same requests on hearthd's Unix socket (JSON-RPC), so
 * both frontends must agree on what the one scheduler produces.
 *
 * Calls are sent without auto-start, so a hearthd installed on the machine is
 * never activated in place of the one under test.
 */
#include "daemonutil.h"
#include "testutil.h"

#include "dbus.h"
#include "dbus_args.h"
#include "params.h"

#include <hearth/hearth.h>

#include <criterion/criterion.h>
#include <dbus/dbus.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 300000
#define WAIT_MS 300000
/* Fits both the daemon's default max_tokens (the config below) and Ask. */
#define MAX_TOKENS 40

/* ---- the daemon under test ------------------------------------------------------- */

/* daemonutil's du_start writes a config with D-Bus off; these tests write
 * their own and wait for the bus name, then share du_stop (clean exit 0, no
 * sanitizer report, socket removed) and du_connect/du_call_ok. */
static struct du_daemon hd;

static bool name_owned(DBusConnection *c)
{
    return dbus_bus_name_has_owner(c, IPC_DBUS_NAME, NULL);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static DBusConnection *bus(void)
{
    DBusError e;
    dbus_error_init(&e);
    DBusConnection *c = dbus_bus_get_private(DBUS_BUS_SESSION, &e);
    cr_assert(c, "cannot connect to the session bus (run under dbus-run-session): %s",
              e.message);
    dbus_connection_set_exit_on_disconnect(c, FALSE);
    return c;
}

static void bus_close(DBusConnection *c)
{
    dbus_connection_close(c);
    dbus_connection_unref(c);
}

/* In a child: SIGTERM when the test process dies (a timed-out test runs no
 * fini), so no daemon outlives the test run. */
static void die_with(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
}

/* Starts hearthd on `sock` (its stderr into `log`) without waiting, on the
 * session bus of `bus_addr` (NULL: the one of the environment). */
static pid_t spawn(const char *sock, const char *log, const char *bus_addr)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        die_with(parent);
        if (bus_addr)
            setenv("DBUS_SESSION_BUS_ADDRESS", bus_addr, 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDWR);
        if (fd >= 0)
            dup2(fd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execl(du_daemon_bin(), "hearthd", "--foreground", "--config", hd.config, "--socket", sock,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static char *read_log(const char *path)
{
    size_t n;
    char *s = tu_read_file(path, &n);
    return s ? s : strdup("");
}

static void setup(void)
{
    memset(&hd, 0, sizeof hd);
    snprintf(hd.dir, sizeof hd.dir, "/tmp/hearth-dbus-XXXXXX");
    cr_assert(mkdtemp(hd.dir));
    snprintf(hd.socket, sizeof hd.socket, "%s/hearth.sock", hd.dir);
    snprintf(hd.log, sizeof hd.log, "%s/hearthd.log", hd.dir);
    snprintf(hd.config, sizeof hd.config, "%s/hearth.yaml", hd.dir);
    /* One compute thread: the machine may be shared, and spinning workers
     * then crawl. Greedy defaults, so that Ask (which takes no options) is deterministic:
     * top_k 1, because the scheduler reads a default temperature of 0 as
     * "not set" (0.8). */
    char *model = realpath(tu_stories(), NULL);
    cr_assert(model);
    FILE *f = fopen(hd.config, "w");
    cr_assert(f);
    fprintf(f,
            "model: %s\ncontext: 512\nthreads: 1\n"
            "dbus:\n  enabled: true\n"
            "sampling:\n  temperature: 0\n  top_k: 1\n  max_tokens: %d\n"
            "limits:\n  max_requests_per_client: 3\n",
            model, MAX_TOKENS);
    fclose(f);
    free(model);

    DBusConnection *c = bus();
    cr_assert(!name_owned(c), "%s is already owned on this bus", IPC_DBUS_NAME);
    hd.pid = spawn(hd.socket, hd.log, NULL);
    /* Ready when the name is ours (hearthd claims it after the socket). */
    for (int waited = 0; !name_owned(c); waited += 20) {
        int st;
        if (waitpid(hd.pid, &st, WNOHANG) == hd.pid) {
            hd.pid = 0;
            cr_assert_fail("hearthd exited during start-up:\n%s", read_log(hd.log));
        }
        cr_assert(waited < WAIT_MS, "hearthd did not own %s:\n%s", IPC_DBUS_NAME,
                  read_log(hd.log));
        sleep_ms(20);
    }
    bus_close(c);
}

static void teardown(void)
{
    du_stop(&hd);
}

/* ---- the socket, for reference results ------------------------------------------- */

/* One JSON-RPC call on hearthd's socket; returns its result (owned). */
static json_t *rpc(const char *method, json_t *params)
{
    char *text = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    struct du_conn *c = du_connect(hd.socket);
    json_t *r = du_call_ok(c, method, text);
    du_close(c);
    free(text);
    return r;
}

/* The text of a socket request's result; owned. */
static char *rpc_text(const char *method, json_t *params)
{
    json_t *r = rpc(method, params);
    const char *t = json_string_value(json_object_get(r, "text"));
    cr_assert(t, "%s: no text in the result", method);
    char *s = strdup(t);
    json_decref(r);
    return s;
}

/* ---- D-Bus client helpers ------------------------------------------------------ */

static DBusMessage *new_call(const char *iface, const char *method)
{
    DBusMessage *m = dbus_message_new_method_call(IPC_DBUS_NAME, IPC_DBUS_PATH, iface, method);
    cr_assert(m);
    dbus_message_set_auto_start(m, FALSE);
    return m;
}

/* Sends m (consumed) and waits for the reply: owned, or NULL with *e set. */
static DBusMessage *call(DBusConnection *c, DBusMessage *m, DBusError *e)
{
    dbus_error_init(e);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, CALL_TIMEOUT_MS, e);
    dbus_message_unref(m);
    return r;
}

/* Calls expected to fail: asserts the error name, returns the message (owned). */
static char *call_error(DBusConnection *c, DBusMessage *m, const char *name)
{
    DBusError e;
    DBusMessage *r = call(c, m, &e);
    cr_assert(!r, "the call succeeded; expected %s", name);
    cr_assert_str_eq(e.name, name, "error %s (%s); expected %s", e.name, e.message, name);
    char *msg = strdup(e.message);
    dbus_error_free(&e);
    return msg;
}

static DBusMessage *call_ok(DBusConnection *c, DBusMessage *m)
{
    DBusError e;
    const char *member = dbus_message_get_member(m);
    char name[64];
    snprintf(name, sizeof name, "%s", member);
    DBusMessage *r = call(c, m, &e);
    cr_assert(r, "%s failed: %s: %s", name, e.name, e.message);
    return r;
}

/* Appends an a{sv} from `spec`, space-separated "key:type" with type d
 * (double), i (int), t (uint64_t), b (int), s (const char *) or as (const
 * char *const *, NULL-terminated), values following as varargs. */
static void append_opts(DBusMessage *m, const char *spec, va_list ap)
{
    DBusMessageIter it, dict;
    dbus_message_iter_init_append(m, &it);
    cr_assert(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    for (char *save, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *type = strchr(tok, ':');
        cr_assert(type);
        *type++ = 0;
        const char *key = tok;
        DBusMessageIter e, v;
        dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &e);
        dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key);
        dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, type, &v);
        if (!strcmp(type, "d")) {
            double x = va_arg(ap, double);
            dbus_message_iter_append_basic(&v, DBUS_TYPE_DOUBLE, &x);
        } else if (!strcmp(type, "i")) {
            dbus_int32_t x = va_arg(ap, int);
            dbus_message_iter_append_basic(&v, DBUS_TYPE_INT32, &x);
        } else if (!strcmp(type, "t")) {
            dbus_uint64_t x = va_arg(ap, uint64_t);
            dbus_message_iter_append_basic(&v, DBUS_TYPE_UINT64, &x);
        } else if (!strcmp(type, "b")) {
            dbus_bool_t x = va_arg(ap, int) != 0;
            dbus_message_iter_append_basic(&v, DBUS_TYPE_BOOLEAN, &x);
        } else if (!strcmp(type, "s")) {
            const char *x = va_arg(ap, const char *);
            dbus_message_iter_append_basic(&v, DBUS_TYPE_STRING, &x);
        } else if (!strcmp(type, "as")) {
            const char *const *x = va_arg(ap, const char *const *);
            DBusMessageIter a;
            dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "s", &a);
            for (; *x; x++)
                dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, x);
            dbus_message_iter_close_container(&v, &a);
        } else {
            cr_assert_fail("bad option type %s", type);
        }
        dbus_message_iter_close_container(&e, &v);
        dbus_message_iter_close_container(&dict, &e);
    }
    cr_assert(dbus_message_iter_close_container(&it, &dict));
}

/* A Chat or Generate call: (s text, a{sv} options). */
static DBusMessage *start_msg(const char *method, const char *text, const char *spec, ...)
{
    DBusMessage *m = new_call(IPC_DBUS_IFACE, method);
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
    va_list ap;
    va_start(ap, spec);
    append_opts(m, spec, ap);
    va_end(ap);
    return m;
}

static uint64_t start(DBusConnection *c, DBusMessage *m)
{
    DBusMessage *r = call_ok(c, m);
    dbus_uint64_t id = 0;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
    cr_assert(id > 0);
    dbus_message_unref(r);
    return id;
}

/* What the signals of one request said. */
struct stream {
    uint64_t id;
    char *tokens;  /* Token texts concatenated (owned) */
    int n_tokens;
    bool done, failed;
    char *text;    /* Done: the whole answer (owned) */
    char reason[32];
    int32_t prompt_tokens, cached_tokens, completion_tokens;
    char message[512]; /* Error */
};

static void stream_free(struct stream *s)
{
    free(s->tokens);
    free(s->text);
}

static void append(char **dst, const char *s)
{
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(s);
    *dst = realloc(*dst, a + b + 1);
    memcpy(*dst + a, s, b + 1);
}

static int32_t usage_i32(DBusMessageIter *dict, const char *want)
{
    DBusMessageIter d = *dict;
    for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY; dbus_message_iter_next(&d)) {
        DBusMessageIter e, v;
        const char *key;
        dbus_message_iter_recurse(&d, &e);
        dbus_message_iter_get_basic(&e, &key);
        dbus_message_iter_next(&e);
        dbus_message_iter_recurse(&e, &v);
        if (!strcmp(key, want)) {
            cr_assert_eq(dbus_message_iter_get_arg_type(&v), DBUS_TYPE_INT32, "usage %s", want);
            dbus_int32_t x;
            dbus_message_iter_get_basic(&v, &x);
            return x;
        }
    }
    cr_assert_fail("usage has no %s", want);
    return -1;
}

/* Handles one message popped from c; signals of requests not in s[] fail
 * the test (they are unicast to their caller). */
static void handle(DBusMessage *m, struct stream *s, int n)
{
    if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL ||
        !dbus_message_has_interface(m, IPC_DBUS_IFACE))
        return;
    cr_assert_str_eq(dbus_message_get_path(m), IPC_DBUS_PATH);
    cr_assert(dbus_message_get_destination(m), "signals are unicast");
    DBusMessageIter it;
    cr_assert(dbus_message_iter_init(m, &it));
    dbus_uint64_t id;
    dbus_message_iter_get_basic(&it, &id);
    struct stream *x = NULL;
    for (int i = 0; i < n; i++)
        if (s[i].id == id)
            x = &s[i];
    cr_assert(x, "received %s of request %llu, which this connection did not make",
              dbus_message_get_member(m), (unsigned long long)id);
    cr_assert(!x->done && !x->failed, "%s after the end of request %llu",
              dbus_message_get_member(m), (unsigned long long)id);
    const char *text;
    if (dbus_message_is_signal(m, IPC_DBUS_IFACE, "Token")) {
        cr_assert(dbus_message_has_signature(m, "ts"));
        dbus_message_iter_next(&it);
        dbus_message_iter_get_basic(&it, &text);
        append(&x->tokens, text);
        x->n_tokens++;
    } else if (dbus_message_is_signal(m, IPC_DBUS_IFACE, "Done")) {
        cr_assert(dbus_message_has_signature(m, "tssa{sv}"));
        const char *reason;
        DBusMessageIter dict;
        dbus_message_iter_next(&it);
        dbus_message_iter_get_basic(&it, &text);
        dbus_message_iter_next(&it);
        dbus_message_iter_get_basic(&it, &reason);
        dbus_message_iter_next(&it);
        dbus_message_iter_recurse(&it, &dict);
        x->text = strdup(text);
        snprintf(x->reason, sizeof x->reason, "%s", reason);
        x->prompt_tokens = usage_i32(&dict, "prompt_tokens");
        x->cached_tokens = usage_i32(&dict, "cached_tokens");
        x->completion_tokens = usage_i32(&dict, "completion_tokens");
        x->done = true;
    } else if (dbus_message_is_signal(m, IPC_DBUS_IFACE, "Error")) {
        cr_assert(dbus_message_has_signature(m, "ts"));
        dbus_message_iter_next(&it);
        dbus_message_iter_get_basic(&it, &text);
        snprintf(x->message, sizeof x->message, "%s", text);
        x->failed = true;
    } else {
        cr_assert_fail("unknown signal %s", dbus_message_get_member(m));
    }
}

static bool all_ended(const struct stream *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!s[i].done && !s[i].failed)
            return false;
    return true;
}

/* Reads c's signals until each stream of s[] ended (Done or Error), or
 * until `until_tokens` Tokens of s[0] arrived when that is > 0. */
static void pump(DBusConnection *c, struct stream *s, int n, int until_tokens)
{
    for (int waited = 0;; waited += 100) {
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c))) {
            handle(m, s, n);
            dbus_message_unref(m);
            if (until_tokens > 0 && s[0].n_tokens >= until_tokens)
                return;
        }
        if (until_tokens <= 0 && all_ended(s, n))
            return;
        if (waited >= WAIT_MS) {
            char *log = read_log(hd.log);
            cr_assert_fail("no end of the streams after %d ms (request %llu: %d tokens); "
                           "hearthd's log:\n%s",
                           WAIT_MS, (unsigned long long)s[0].id, s[0].n_tokens, log);
        }
        cr_assert(dbus_connection_read_write(c, 100), "the bus connection closed");
    }
}

/* A finished stream's invariants: the Tokens make up the Done text. */
static void assert_complete(const struct stream *s)
{
    cr_assert(s->done, "request %llu failed: %s", (unsigned long long)s->id, s->message);
    cr_assert_str_eq(s->tokens ? s->tokens : "", s->text, "Tokens concatenated != Done text");
    cr_assert(!strcmp(s->reason, "stop") || !strcmp(s->reason, "length"), "finish_reason %s",
              s->reason);
    cr_assert_gt(s->prompt_tokens, 0);
}

static const char *reply_string(DBusMessage *r)
{
    const char *s = NULL;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID),
              "reply signature %s", dbus_message_get_signature(r));
    return s;
}

static DBusMessage *get_property(DBusConnection *c, const char *name)
{
    DBusMessage *m = new_call(DBUS_INTERFACE_PROPERTIES, "Get");
    const char *iface = IPC_DBUS_IFACE;
    dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
                             DBUS_TYPE_INVALID);
    return call_ok(c, m);
}

/* An integer entry of the Status property. */
static int64_t status_entry(DBusConnection *c, const char *key)
{
    DBusMessage *r = get_property(c, "Status");
    DBusMessageIter it, v, dict;
    dbus_message_iter_init(r, &it);
    dbus_message_iter_recurse(&it, &v);
    cr_assert_eq(dbus_message_iter_get_arg_type(&v), DBUS_TYPE_ARRAY);
    dbus_message_iter_recurse(&v, &dict);
    for (; dbus_message_iter_get_arg_type(&dict) == DBUS_TYPE_DICT_ENTRY;
         dbus_message_iter_next(&dict)) {
        DBusMessageIter e, x;
        const char *k;
        dbus_message_iter_recurse(&dict, &e);
        dbus_message_iter_get_basic(&e, &k);
        dbus_message_iter_next(&e);
        dbus_message_iter_recurse(&e, &x);
        if (strcmp(k, key))
            continue;
        int64_t val;
        if (dbus_message_iter_get_arg_type(&x) == DBUS_TYPE_INT32) {
            dbus_int32_t i;
            dbus_message_iter_get_basic(&x, &i);
            val = i;
        } else {
            cr_assert_eq(dbus_message_iter_get_arg_type(&x), DBUS_TYPE_INT64, "Status %s", key);
            dbus_int64_t i;
            dbus_message_iter_get_basic(&x, &i);
            val = i;
        }
        dbus_message_unref(r);
        return val;
    }
    cr_assert_fail("Status has no %s", key);
    return -1;
}

static const char *const PROMPT = "Once upon a time, there was a little dog";

/* ---- tests ---------------------------------------------------------------------- */

TestSuite(dbus, .init = setup, .fini = teardown, .timeout = 300);

/* The generator alone: docs/org.hearth.Hearth1.xml is what the tables say
 * (`ninja -C BUILD dbus-xml` rewrites it). */
Test(dbus_xml, committed_xml_is_generated)
{
    char *xml;
    cr_assert_eq(ipc_dbus_introspect(&xml), 0);
    size_t n;
    char *doc = tu_read_file(tu_data("../../docs/org.hearth.Hearth1.xml"), &n);
    cr_assert(doc, "docs/org.hearth.Hearth1.xml is missing");
    cr_assert_str_eq(doc, xml,
                     "docs/org.hearth.Hearth1.xml is stale: run `ninja -C BUILD dbus-xml`");
    cr_assert(!strstr(xml, "<!---") && strstr(xml, "<interface name=\"org.hearth.Hearth1\">"));
    free(xml);
    free(doc);
}

Test(dbus, introspect_returns_the_committed_xml)
{
    DBusConnection *c = bus();
    DBusMessage *r = call_ok(c, new_call(DBUS_INTERFACE_INTROSPECTABLE, "Introspect"));
    size_t n;
    char *doc = tu_read_file(tu_data("../../docs/org.hearth.Hearth1.xml"), &n);
    cr_assert(doc);
    cr_assert_str_eq(reply_string(r), doc);
    free(doc);
    dbus_message_unref(r);

    /* Parents of the object list their child, so tools can walk the tree. */
    DBusMessage *m = dbus_message_new_method_call(IPC_DBUS_NAME, "/org/hearth",
                                                  DBUS_INTERFACE_INTROSPECTABLE, "Introspect");
    dbus_message_set_auto_start(m, FALSE);
    r = call_ok(c, m);
    cr_assert(strstr(reply_string(r), "<node name=\"Hearth1\""), "%s", reply_string(r));
    dbus_message_unref(r);
    /* org.freedesktop.DBus.Peer, as the XML promises. */
    dbus_message_unref(call_ok(c, new_call(DBUS_INTERFACE_PEER, "Ping")));
    bus_close(c);
}

Test(dbus, properties)
{
    DBusConnection *c = bus();
    json_t *info = rpc("model.info", json_object());
    json_t *status = rpc("status", json_object());

    DBusMessage *r = get_property(c, "Model");
    DBusMessageIter it, v;
    const char *s;
    dbus_message_iter_init(r, &it);
    dbus_message_iter_recurse(&it, &v);
    cr_assert_eq(dbus_message_iter_get_arg_type(&v), DBUS_TYPE_STRING);
    dbus_message_iter_get_basic(&v, &s);
    cr_assert_str_eq(s, json_string_value(json_object_get(info, "path")));
    dbus_message_unref(r);

    /* GetAll: every property with its declared type. */
    DBusMessage *m = new_call(DBUS_INTERFACE_PROPERTIES, "GetAll");
    const char *iface = IPC_DBUS_IFACE;
    dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID);
    r = call_ok(c, m);
    cr_assert(dbus_message_has_signature(r, "a{sv}"));
    static const struct {
        const char *name, *sig;
    } want[] = {{"Model", "s"},   {"Architecture", "s"}, {"ContextLength", "u"},
                {"Status", "a{sv}"}, {"Version", "s"},   {"InterfaceVersion", "u"}};
    int seen = 0;
    DBusMessageIter dict;
    dbus_message_iter_init(r, &it);
    dbus_message_iter_recurse(&it, &dict);
    for (; dbus_message_iter_get_arg_type(&dict) == DBUS_TYPE_DICT_ENTRY;
         dbus_message_iter_next(&dict)) {
        DBusMessageIter e;
        const char *k;
        dbus_message_iter_recurse(&dict, &e);
        dbus_message_iter_get_basic(&e, &k);
        dbus_message_iter_next(&e);
        dbus_message_iter_recurse(&e, &v);
        char *sig = dbus_message_iter_get_signature(&v);
        bool known = false;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!strcmp(want[i].name, k)) {
                cr_assert_str_eq(sig, want[i].sig, "property %s", k);
                known = true;
            }
        cr_assert(known, "unexpected property %s", k);
        seen++;
        dbus_uint32_t u;
        if (!strcmp(k, "Architecture")) {
            dbus_message_iter_get_basic(&v, &s);
            cr_assert_str_eq(s, json_string_value(json_object_get(info, "arch")));
        } else if (!strcmp(k, "ContextLength")) {
            dbus_message_iter_get_basic(&v, &u);
            cr_assert_eq(u, json_integer_value(json_object_get(info, "n_ctx")));
        } else if (!strcmp(k, "InterfaceVersion")) {
            dbus_message_iter_get_basic(&v, &u);
            cr_assert_eq(u, IPC_DBUS_INTERFACE_VERSION);
        } else if (!strcmp(k, "Version")) {
            dbus_message_iter_get_basic(&v, &s);
            cr_assert_str_eq(s, json_string_value(json_object_get(status, "version")));
        }
        dbus_free(sig);
    }
    cr_assert_eq(seen, 6);
    dbus_message_unref(r);

    /* Status counts what the scheduler sees. */
    cr_assert_eq(status_entry(c, "running"), 0);
    cr_assert_eq(status_entry(c, "n_ctx"), json_integer_value(json_object_get(info, "n_ctx")));
    int64_t total = status_entry(c, "requests_total");
    struct stream st = {.id = start(c, start_msg("Generate", PROMPT, "temperature:d", 0.0))};
    pump(c, &st, 1, 0);
    assert_complete(&st);
    cr_assert_eq(status_entry(c, "requests_total"), total + 1);
    cr_assert_geq(status_entry(c, "tokens_generated"), st.completion_tokens);
    cr_assert_geq(status_entry(c, "uptime_ms"), 0);
    stream_free(&st);

    /* Read-only, and unknown names are errors. */
    m = new_call(DBUS_INTERFACE_PROPERTIES, "Set");
    const char *name = "Model";
    dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
                             DBUS_TYPE_INVALID);
    DBusMessageIter a, var;
    dbus_message_iter_init_append(m, &a);
    dbus_message_iter_open_container(&a, DBUS_TYPE_VARIANT, "s", &var);
    dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &name);
    dbus_message_iter_close_container(&a, &var);
    free(call_error(c, m, DBUS_ERROR_PROPERTY_READ_ONLY));
    m = new_call(DBUS_INTERFACE_PROPERTIES, "Get");
    name = "Nope";
    dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
                             DBUS_TYPE_INVALID);
    char *msg = call_error(c, m, DBUS_ERROR_UNKNOWN_PROPERTY);
    cr_assert(strstr(msg, "Nope"), "%s", msg);
    free(msg);
    json_decref(info);
    json_decref(status);
    bus_close(c);
}

/* Generate streams exactly what the socket's greedy complete returns. */
Test(dbus, generate_matches_the_socket)
{
    DBusConnection *c = bus();
    char *want = rpc_text("complete", json_pack("{s:s, s:f, s:i}", "prompt", PROMPT,
                                                "temperature", 0.0, "max_tokens", MAX_TOKENS));
    struct stream st = {.id = start(c, start_msg("Generate", PROMPT, "temperature:d max_tokens:i",
                                                 0.0, MAX_TOKENS))};
    pump(c, &st, 1, 0);
    assert_complete(&st);
    cr_assert_gt(st.n_tokens, 1);
    cr_assert_str_eq(st.text, want);
    cr_assert_leq(st.completion_tokens, MAX_TOKENS);
    stream_free(&st);

    /* Sampling options arrive: a stop string cuts the text before it. */
    char stop[8];
    const char *space = strchr(want + 1, ' ');
    cr_assert(space);
    snprintf(stop, sizeof stop, "%.3s", space);
    const char *stops[] = {stop, NULL};
    struct stream st2 = {.id = start(c, start_msg("Generate", PROMPT,
                                                  "temperature:d max_tokens:i stop:as seed:t",
                                                  0.0, MAX_TOKENS, stops, (uint64_t)7))};
    pump(c, &st2, 1, 0);
    assert_complete(&st2);
    cr_assert_str_eq(st2.reason, "stop");
    cr_assert(!strncmp(want, st2.text, strlen(st2.text)) && strlen(st2.text) < strlen(want),
              "'%s' is not cut from '%s' at '%s'", st2.text, want, stop);
    stream_free(&st2);
    free(want);
    bus_close(c);
}

/* Chat streams what the socket's greedy chat returns; Ask answers the
 * same text in one reply (greedy through the config's defaults). */
Test(dbus, chat_and_ask_match_the_socket)
{
    DBusConnection *c = bus();
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", PROMPT);
    char *msgs_json = json_dumps(msgs, JSON_COMPACT);
    char *want = rpc_text("chat", json_pack("{s:O, s:f, s:i}", "messages", msgs, "temperature",
                                            0.0, "max_tokens", MAX_TOKENS));
    struct stream st = {.id = start(c, start_msg("Chat", msgs_json, "temperature:d max_tokens:i",
                                                 0.0, MAX_TOKENS))};
    pump(c, &st, 1, 0);
    assert_complete(&st);
    cr_assert_str_eq(st.text, want);
    stream_free(&st);

    DBusMessage *m = new_call(IPC_DBUS_IFACE, "Ask");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &PROMPT, DBUS_TYPE_INVALID);
    DBusMessage *r = call_ok(c, m);
    cr_assert_str_eq(reply_string(r), want);
    dbus_message_unref(r);
    /* Ask streams nothing. */
    dbus_connection_read_write(c, 0);
    while ((m = dbus_connection_pop_message(c))) {
        cr_assert(!dbus_message_has_interface(m, IPC_DBUS_IFACE), "Ask sent %s",
                  dbus_message_get_member(m));
        dbus_message_unref(m);
    }
    free(want);
    free(msgs_json);
    json_decref(msgs);
    bus_close(c);
}

/* Cancel stops the caller's own request (Done "cancelled"); another
 * caller cannot cancel it, and an ended request is no longer cancellable. */
Test(dbus, cancel_own_requests_only)
{
    DBusConnection *c = bus(), *other = bus();
    bool cancelled = false;
    /* The request may end before the Cancel arrives; a few tries make
     * sure the cancelling path itself ran. */
    for (int attempt = 0; attempt < 20 && !cancelled; attempt++) {
        struct stream st = {.id = start(c, start_msg("Generate", PROMPT,
                                                     "n_predict:i ignore_eos:b", -1, 1))};
        DBusMessage *m = new_call(IPC_DBUS_IFACE, "Cancel");
        dbus_uint64_t id = st.id;
        dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
        DBusMessage *r = call_ok(other, m);
        dbus_bool_t ok = TRUE;
        dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID);
        cr_assert(!ok, "another caller cancelled request %llu", (unsigned long long)id);
        dbus_message_unref(r);

        m = new_call(IPC_DBUS_IFACE, "Cancel");
        dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
        r = call_ok(c, m);
        dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID);
        dbus_message_unref(r);
        pump(c, &st, 1, 0);
        cr_assert(st.done);
        cr_assert_str_eq(st.tokens ? st.tokens : "", st.text);
        if (ok)
            cr_assert_str_eq(st.reason, "cancelled");
        else
            cr_assert_str_neq(st.reason, "cancelled");
        cancelled = ok;
        if (ok)
            cr_log_info("cancelled at attempt %d after %d tokens", attempt + 1, st.n_tokens);
        stream_free(&st);

        m = new_call(IPC_DBUS_IFACE, "Cancel");
        dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
        r = call_ok(c, m);
        dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &ok, DBUS_TYPE_INVALID);
        cr_assert(!ok, "an ended request was cancelled");
        dbus_message_unref(r);
    }
    cr_assert(cancelled, "no request was still running when its Cancel arrived");
    bus_close(other);
    bus_close(c);
}

/* A caller leaving the bus mid-stream loses its requests (its scheduler
 * client is dropped) and the daemon goes on serving others. */
Test(dbus, disconnect_mid_stream)
{
    DBusConnection *c = bus();
    int64_t clients = status_entry(c, "clients");
    DBusConnection *gone = bus();
    struct stream st = {.id = start(gone, start_msg("Generate", PROMPT, "n_predict:i ignore_eos:b",
                                                    -1, 1))};
    cr_assert_eq(status_entry(c, "clients"), clients + 1);
    pump(gone, &st, 1, 1); /* it is streaming */
    bus_close(gone);
    stream_free(&st);
    for (int waited = 0; status_entry(c, "clients") != clients; waited += 20) {
        cr_assert(waited < WAIT_MS, "the departed caller's client was never dropped");
        sleep_ms(20);
    }
    for (int waited = 0; status_entry(c, "running") + status_entry(c, "queued") > 0;
         waited += 20) {
        cr_assert(waited < WAIT_MS, "the departed caller's request still runs");
        sleep_ms(20);
    }
    DBusMessage *m = new_call(IPC_DBUS_IFACE, "Ask");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &PROMPT, DBUS_TYPE_INVALID);
    dbus_message_unref(call_ok(c, m));
    bus_close(c);
}

/* Two callers at once: each sees only its own streams, both get the
 * greedy text of their prompt; two Asks in flight both come back. */
Test(dbus, concurrent_callers)
{
    static const char *const prompts[2] = {"Once upon a time, there was a little dog",
                                           "Lily and Tom went to the park"};
    DBusConnection *c[2] = {bus(), bus()};
    char *want[2];
    for (int i = 0; i < 2; i++)
        want[i] = rpc_text("complete", json_pack("{s:s, s:f, s:i}", "prompt", prompts[i],
                                                 "temperature", 0.0, "max_tokens", MAX_TOKENS));
    struct stream st[2][2];
    memset(st, 0, sizeof st);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2; i++)
            st[i][round].id = start(c[i], start_msg("Generate", prompts[i],
                                                    "temperature:d max_tokens:i", 0.0,
                                                    MAX_TOKENS));
    for (int i = 0; i < 2; i++) {
        pump(c[i], st[i], 2, 0); /* fails on a signal of the other caller */
        for (int round = 0; round < 2; round++) {
            assert_complete(&st[i][round]);
            cr_assert_str_eq(st[i][round].text, want[i], "caller %d, round %d", i, round);
            stream_free(&st[i][round]);
        }
    }

    DBusPendingCall *p[2];
    for (int i = 0; i < 2; i++) {
        DBusMessage *m = new_call(IPC_DBUS_IFACE, "Ask");
        dbus_message_append_args(m, DBUS_TYPE_STRING, &prompts[i], DBUS_TYPE_INVALID);
        cr_assert(dbus_connection_send_with_reply(c[i], m, &p[i], CALL_TIMEOUT_MS) && p[i]);
        dbus_message_unref(m);
    }
    for (int i = 0; i < 2; i++) {
        dbus_pending_call_block(p[i]);
        DBusMessage *r = dbus_pending_call_steal_reply(p[i]);
        cr_assert_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN, "Ask %d: %s", i,
                     dbus_message_get_error_name(r));
        cr_assert_gt(strlen(reply_string(r)), 0);
        dbus_message_unref(r);
        dbus_pending_call_unref(p[i]);
        free(want[i]);
        bus_close(c[i]);
    }
}

Test(dbus, errors)
{
    DBusConnection *c = bus();
    char *msg = call_error(c, new_call(IPC_DBUS_IFACE, "Frobnicate"), DBUS_ERROR_UNKNOWN_METHOD);
    cr_assert(strstr(msg, "Frobnicate"), "%s", msg);
    free(msg);
    free(call_error(c, new_call("org.hearth.Nope", "Ask"), DBUS_ERROR_UNKNOWN_INTERFACE));

    /* Arguments: signature, options, JSON. */
    DBusMessage *m = new_call(IPC_DBUS_IFACE, "Ask");
    dbus_int32_t n = 3;
    dbus_message_append_args(m, DBUS_TYPE_INT32, &n, DBUS_TYPE_INVALID);
    msg = call_error(c, m, DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(msg, "(s)"), "%s", msg);
    free(msg);
    msg = call_error(c, start_msg("Generate", PROMPT, "tempreature:d", 0.5),
                     DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(msg, "tempreature"), "%s", msg);
    free(msg);
    msg = call_error(c, start_msg("Generate", PROMPT, "top_k:s", "many"), DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(msg, "top_k"), "%s", msg);
    free(msg);
    msg = call_error(c, start_msg("Generate", PROMPT, "top_p:d", 7.0), DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(msg, "top_p"), "%s", msg);
    free(msg);
    msg = call_error(c, start_msg("Chat", PROMPT, "parse_special:b", 1), DBUS_ERROR_INVALID_ARGS);
    cr_assert(strstr(msg, "parse_special"), "%s", msg);
    free(msg);
    free(call_error(c, start_msg("Chat", "[{\"role\": \"user\",", NULL), DBUS_ERROR_INVALID_ARGS));

    /* A prompt longer than the context. */
    char *longp = NULL;
    for (int i = 0; i < 200; i++)
        append(&longp, "the dog ran and the cat sat. ");
    msg = call_error(c, start_msg("Generate", longp, NULL), IPC_DBUS_IFACE ".Error.ContextOverflow");
    free(msg);
    free(longp);

    /* Busy: more requests than the config allows one caller (3). The four
     * calls are sent at once; should the first ones end before the fourth
     * arrives, the round is repeated. */
    bool busy = false;
    for (int round = 0; round < 10 && !busy; round++) {
        DBusPendingCall *p[4];
        for (int i = 0; i < 4; i++) {
            m = start_msg("Generate", PROMPT, "n_predict:i ignore_eos:b", -1, 1);
            cr_assert(dbus_connection_send_with_reply(c, m, &p[i], CALL_TIMEOUT_MS) && p[i]);
            dbus_message_unref(m);
        }
        for (int i = 0; i < 4; i++) {
            dbus_pending_call_block(p[i]);
            DBusMessage *r = dbus_pending_call_steal_reply(p[i]);
            dbus_pending_call_unref(p[i]);
            if (dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_ERROR) {
                cr_assert_eq(i, 3, "request %d of 4 refused: %s", i + 1,
                             dbus_message_get_error_name(r));
                cr_assert_str_eq(dbus_message_get_error_name(r), IPC_DBUS_IFACE ".Error.Busy");
                busy = true;
            } else {
                dbus_uint64_t id;
                cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
                DBusMessage *cm = new_call(IPC_DBUS_IFACE, "Cancel");
                dbus_message_append_args(cm, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
                dbus_message_unref(call_ok(c, cm));
            }
            dbus_message_unref(r);
        }
    }
    cr_assert(busy, "a fourth request of one caller was never refused as busy");
    bus_close(c);
}

Test(dbus, tokenize_matches_the_socket)
{
    DBusConnection *c = bus();
    json_t *want = rpc("tokenize", json_pack("{s:s}", "text", PROMPT));
    json_t *toks = json_object_get(want, "tokens");
    DBusMessage *m = new_call(IPC_DBUS_IFACE, "Tokenize");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &PROMPT, DBUS_TYPE_INVALID);
    DBusMessage *r = call_ok(c, m);
    dbus_int32_t *ids;
    int n;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_INT32, &ids, &n,
                                    DBUS_TYPE_INVALID));
    cr_assert_eq((size_t)n, json_array_size(toks));
    cr_assert_gt(n, 3);
    for (int i = 0; i < n; i++)
        cr_assert_eq(ids[i], json_integer_value(json_array_get(toks, (size_t)i)), "token %d", i);
    dbus_message_unref(r);
    json_decref(want);
    bus_close(c);
}

/* A session keeps its tokens between requests until closed. */
Test(dbus, sessions)
{
    DBusConnection *c = bus();
    struct stream a = {.id = start(c, start_msg("Generate", PROMPT,
                                                "temperature:d max_tokens:i session:s", 0.0, 8,
                                                "s1"))};
    pump(c, &a, 1, 0);
    assert_complete(&a);
    char *next = NULL;
    append(&next, PROMPT);
    append(&next, a.text);
    append(&next, " and");
    struct stream b = {.id = start(c, start_msg("Generate", next,
                                                "temperature:d max_tokens:i session:s", 0.0, 8,
                                                "s1"))};
    pump(c, &b, 1, 0);
    assert_complete(&b);
    cr_assert_gt(b.cached_tokens, 0, "the session's tokens were not reused");
    for (int i = 0; i < 2; i++) {
        DBusMessage *m = new_call(IPC_DBUS_IFACE, "CloseSession");
        const char *name = "s1";
        dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
        DBusMessage *r = call_ok(c, m);
        dbus_bool_t closed;
        cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &closed, DBUS_TYPE_INVALID));
        cr_assert_eq(closed, i == 0, "CloseSession #%d returned %d", i + 1, closed);
        dbus_message_unref(r);
    }
    stream_free(&a);
    stream_free(&b);
    free(next);
    bus_close(c);
}

/* A second hearthd cannot take the name: it says who has it and keeps
 * serving its socket; the first one still answers on the bus. */
Test(dbus, name_already_owned)
{
    char sock[320], log[320];
    snprintf(sock, sizeof sock, "%s/second.sock", hd.dir);
    snprintf(log, sizeof log, "%s/second.log", hd.dir);
    pid_t pid = spawn(sock, log, NULL);
    char *text = NULL;
    for (int waited = 0;; waited += 20) {
        free(text);
        text = read_log(log);
        if (strstr(text, "another hearthd owns " IPC_DBUS_NAME))
            break;
        int st;
        cr_assert(waitpid(pid, &st, WNOHANG) == 0, "the second hearthd exited:\n%s", text);
        cr_assert(waited < WAIT_MS, "no clear error from the second hearthd:\n%s", text);
        sleep_ms(20);
    }
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "pid %d", (int)hd.pid);
    cr_assert(strstr(text, pidtext), "the error does not name the owner (%s):\n%s", pidtext,
              text);
    free(text);
    kill(pid, SIGTERM);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second hearthd status 0x%x", st);
    unlink(log);

    DBusConnection *c = bus();
    DBusMessage *r = get_property(c, "InterfaceVersion");
    dbus_message_unref(r);
    bus_close(c);
}

/* ---- a private bus of our own ----------------------------------------------------- */

/* Starts a session-type dbus-daemon listening in hd.dir (its output in
 * hd.dir/bus.log), with `services` as its service directory (NULL: none),
 * and returns a registered connection to it; *addr gets its address. */
static DBusConnection *private_bus(const char *services, pid_t *pid, char *addr, size_t cap)
{
    char buscfg[320], buslog[320];
    snprintf(buscfg, sizeof buscfg, "%s/bus.conf", hd.dir);
    snprintf(buslog, sizeof buslog, "%s/bus.log", hd.dir);
    snprintf(addr, cap, "unix:path=%s/bus", hd.dir);
    FILE *f = fopen(buscfg, "w");
    cr_assert(f);
    fprintf(f,
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
            " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
            "<busconfig>\n  <type>session</type>\n  <auth>EXTERNAL</auth>\n"
            "  <listen>%s</listen>\n",
            addr);
    if (services)
        fprintf(f, "  <servicedir>%s</servicedir>\n", services);
    fprintf(f, "  <policy context=\"default\">\n"
               "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
               "    <allow eavesdrop=\"true\"/>\n    <allow own=\"*\"/>\n"
               "  </policy>\n</busconfig>\n");
    fclose(f);
    pid_t parent = getpid();
    *pid = fork();
    cr_assert(*pid >= 0);
    if (*pid == 0) {
        die_with(parent);
        int fd = open(buslog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char arg[400];
        snprintf(arg, sizeof arg, "--config-file=%s", buscfg);
        execlp("dbus-daemon", "dbus-daemon", arg, "--nofork", "--nopidfile", (char *)NULL);
        _exit(127);
    }
    DBusConnection *c = NULL;
    for (int waited = 0; !c; waited += 20) {
        cr_assert(waited < WAIT_MS, "the private bus did not start:\n%s", read_log(buslog));
        sleep_ms(20);
        c = dbus_connection_open_private(addr, NULL);
    }
    dbus_connection_set_exit_on_disconnect(c, FALSE);
    DBusError e;
    dbus_error_init(&e);
    cr_assert(dbus_bus_register(c, &e), "%s", e.message);
    return c;
}

/* D-Bus activation with the activation file meson installs (its Exec=
 * pointed at the hearthd under test, with a test config): on a private bus
 * whose service directory holds it, the first call starts hearthd, which
 * answers the very call that started it. */
Test(dbus_activation, first_call_starts_hearthd, .timeout = 300)
{
    const char *tmpl_path = getenv("HEARTH_DBUS_SERVICE_FILE");
    cr_assert(tmpl_path, "HEARTH_DBUS_SERVICE_FILE is not set (tests/meson.build sets it)");
    size_t n;
    char *tmpl = tu_read_file(tmpl_path, &n);
    cr_assert(tmpl, "cannot read %s", tmpl_path);
    cr_assert(strstr(tmpl, "\n[D-BUS Service]\n") && strstr(tmpl, "\nName=" IPC_DBUS_NAME "\n"),
              "%s", tmpl);
    char *exec = strstr(tmpl, "\nExec=");
    cr_assert(exec, "%s", tmpl);
    exec += 6;
    char *eol = strchr(exec, '\n');
    cr_assert(eol);
    *eol = 0;
    cr_assert(strstr(exec, "/hearthd --foreground") && exec[0] == '/', "Exec=%s", exec);

    memset(&hd, 0, sizeof hd);
    snprintf(hd.dir, sizeof hd.dir, "/tmp/hearth-dbus-XXXXXX");
    cr_assert(mkdtemp(hd.dir));
    char services[320], svc[400], buslog[320], sock[320], cfg[320], addr[360];
    snprintf(services, sizeof services, "%s/services", hd.dir);
    cr_assert_eq(mkdir(services, 0700), 0);
    snprintf(svc, sizeof svc, "%s/org.hearth.Hearth1.service", services);
    snprintf(buslog, sizeof buslog, "%s/bus.log", hd.dir);
    snprintf(sock, sizeof sock, "%s/hearth.sock", hd.dir);
    snprintf(cfg, sizeof cfg, "%s/hearth.yaml", hd.dir);

    char *model = realpath(tu_stories(), NULL);
    FILE *f = fopen(cfg, "w");
    cr_assert(f && model);
    fprintf(f, "model: %s\nthreads: 1\ndbus:\n  enabled: true\n", model);
    fclose(f);
    free(model);
    f = fopen(svc, "w");
    cr_assert(f);
    *eol = '\n';
    fprintf(f, "%.*s", (int)(exec - tmpl), tmpl); /* everything up to Exec= */
    fprintf(f, "%s --foreground --config %s --socket %s", du_daemon_bin(), cfg, sock);
    fputs(eol, f); /* the rest, from the end of the Exec line */
    fclose(f);
    free(tmpl);
    pid_t bus_pid;
    DBusConnection *c = private_bus(services, &bus_pid, addr, sizeof addr);
    DBusError e;
    cr_assert(!name_owned(c));

    DBusMessage *m = dbus_message_new_method_call(IPC_DBUS_NAME, IPC_DBUS_PATH, IPC_DBUS_IFACE,
                                                  "Tokenize");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &PROMPT, DBUS_TYPE_INVALID);
    DBusMessage *r = call(c, m, &e);
    cr_assert(r, "the activating call failed: %s: %s\nbus log:\n%s", e.name, e.message,
              read_log(buslog));
    cr_assert(dbus_message_has_signature(r, "ai"));
    dbus_message_unref(r);

    /* Stop the activated hearthd (the bus's child, not ours). */
    m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
                                     "GetConnectionUnixProcessID");
    const char *name = IPC_DBUS_NAME;
    dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
    r = call(c, m, &e);
    cr_assert(r, "%s", e.message);
    dbus_uint32_t pid = 0;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &pid, DBUS_TYPE_INVALID) && pid);
    dbus_message_unref(r);
    cr_assert_eq(kill((pid_t)pid, SIGTERM), 0);
    for (int waited = 0; name_owned(c) || kill((pid_t)pid, 0) == 0; waited += 20) {
        cr_assert(waited < WAIT_MS, "the activated hearthd did not stop");
        sleep_ms(20);
    }
    bus_close(c);
    kill(bus_pid, SIGTERM);
    int st;
    cr_assert(waitpid(bus_pid, &st, 0) == bus_pid);
    char *log = read_log(buslog);
    cr_assert(!strstr(log, "Sanitizer") && !strstr(log, "runtime error"),
              "hearthd reported an error:\n%s", log);
    free(log);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hd.dir);
    cr_assert_eq(system(cmd), 0);
}

/* The bus going away mid-stream costs only the D-Bus service: hearthd says
 * so, its requests are dropped, and it goes on serving its socket. */
Test(dbus_activation, bus_lost_keeps_serving, .timeout = 300)
{
    memset(&hd, 0, sizeof hd);
    snprintf(hd.dir, sizeof hd.dir, "/tmp/hearth-dbus-XXXXXX");
    cr_assert(mkdtemp(hd.dir));
    snprintf(hd.socket, sizeof hd.socket, "%s/hearth.sock", hd.dir);
    snprintf(hd.log, sizeof hd.log, "%s/hearthd.log", hd.dir);
    snprintf(hd.config, sizeof hd.config, "%s/hearth.yaml", hd.dir);
    char *model = realpath(tu_stories(), NULL);
    FILE *f = fopen(hd.config, "w");
    cr_assert(f && model);
    fprintf(f, "model: %s\nthreads: 1\ndbus:\n  enabled: true\n", model);
    fclose(f);
    free(model);
    char addr[360];
    pid_t bus_pid;
    DBusConnection *c = private_bus(NULL, &bus_pid, addr, sizeof addr);
    hd.pid = spawn(hd.socket, hd.log, addr);
    for (int waited = 0; !name_owned(c); waited += 20) {
        cr_assert(waited < WAIT_MS, "hearthd did not own %s:\n%s", IPC_DBUS_NAME,
                  read_log(hd.log));
        sleep_ms(20);
    }
    struct stream st = {.id = start(c, start_msg("Generate", PROMPT, "n_predict:i ignore_eos:b",
                                                 -1, 1))};
    pump(c, &st, 1, 1);
    stream_free(&st);
    kill(bus_pid, SIGKILL);
    int status;
    cr_assert(waitpid(bus_pid, &status, 0) == bus_pid);
    bus_close(c);
    char *log = NULL;
    for (int waited = 0;; waited += 20) {
        free(log);
        log = read_log(hd.log);
        if (strstr(log, "lost the session bus"))
            break;
        cr_assert(waited < WAIT_MS, "hearthd did not notice the bus going away:\n%s", log);
        sleep_ms(20);
    }
    free(log);
    struct du_conn *sc = du_connect(hd.socket);
    json_t *r = du_call_ok(sc, "complete", "{\"prompt\": \"Once\", \"max_tokens\": 4}");
    cr_assert(json_string_value(json_object_get(r, "text")));
    json_decref(r);
    r = du_call_ok(sc, "status", NULL);
    /* the socket connection is the one client left; the bus peer's is gone */
    cr_assert_eq(json_integer_value(json_object_get(r, "clients")), 1);
    json_decref(r);
    du_close(sc);
    char path[400];
    snprintf(path, sizeof path, "%s/bus.conf", hd.dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bus.log", hd.dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bus", hd.dir); /* the killed bus's socket */
    unlink(path);
    du_stop(&hd); /* exit 0 and a clean sanitizer report */
}

/* ---- argument conversions (no bus needed) ------------------------------------------- */

static void assert_text(const char *in, size_t len, const char *want)
{
    char *out = ipc_dbus_text(in, len);
    cr_assert(out);
    cr_assert(dbus_validate_utf8(out, NULL), "not valid for D-Bus: %s", out);
    cr_assert_str_eq(out, want);
    free(out);
}

Test(dbus_args, text_is_made_valid_utf8)
{
    assert_text("plain", 5, "plain");
    assert_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5", 14,
                "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5");
    assert_text("a\0b", 3, "a\xef\xbf\xbd" "b");                 /* NUL */
    assert_text("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");        /* overlong '/' */
    assert_text("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    assert_text("x\xe2\x82", 3, "x\xef\xbf\xbd\xef\xbf\xbd");      /* cut short */
    assert_text("\xf4\x90\x80\x80", 4,
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* above U+10FFFF */
    assert_text("\x80z", 2, "\xef\xbf\xbdz");                      /* stray continuation */
    assert_text("", 0, "");
}

/* Runs ipc_dbus_read_options on the a{sv} of a Generate/Chat message. */
static int read_opts(DBusMessage *m, bool generate, json_t **obj, const char **session,
                     bool *parse_special, struct hr_err *err)
{
    DBusMessageIter it;
    cr_assert(dbus_message_iter_init(m, &it));
    dbus_message_iter_next(&it); /* the text */
    *obj = NULL;
    return ipc_dbus_read_options(&it, generate, obj, session, parse_special, err);
}

Test(dbus_args, options_become_sampling_json)
{
    const char *stops[] = {"\n\n", "The end", NULL};
    DBusMessage *m = start_msg("Generate", "p",
                               "temperature:d top_k:i seed:t stop:as session:s parse_special:b "
                               "max_tokens:i",
                               0.25, 7, (uint64_t)1234567890123ull, stops, "s1", 1, 16);
    json_t *o;
    const char *session = NULL;
    bool special = false;
    struct hr_err err;
    cr_assert_eq(read_opts(m, true, &o, &session, &special, &err), 0, "%s", err.msg);
    cr_assert_str_eq(session, "s1");
    cr_assert(special);
    cr_assert(json_is_real(json_object_get(o, "temperature")));
    cr_assert_float_eq(json_real_value(json_object_get(o, "temperature")), 0.25, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(o, "top_k")), 7);
    cr_assert_eq(json_integer_value(json_object_get(o, "seed")), 1234567890123ll);
    cr_assert_eq(json_integer_value(json_object_get(o, "max_tokens")), 16);
    cr_assert_eq(json_array_size(json_object_get(o, "stop")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "stop"), 1)), "The end");
    cr_assert(!json_object_get(o, "session") && !json_object_get(o, "parse_special"));
    cr_assert_eq(json_object_size(o), 5);
    json_decref(o);
    dbus_message_unref(m);

    /* A number may come as an integer; one stop string as s. */
    m = start_msg("Chat", "[]", "temperature:i stop:s", 1, "x");
    session = NULL;
    cr_assert_eq(read_opts(m, false, &o, &session, &special, &err), 0, "%s", err.msg);
    cr_assert_eq(json_number_value(json_object_get(o, "temperature")), 1.0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "stop")), "x");
    cr_assert_null(session);
    json_decref(o);
    dbus_message_unref(m);
}

Test(dbus_args, bad_options_are_named)
{
    static const struct {
        const char *spec, *method, *words;
    } bad[] = {
        {"top_k:d", "Generate", "'top_k' must be an integer"},
        {"temperature:s", "Generate", "'temperature' must be a number (d), not 's'"},
        {"ignore_eos:i", "Generate", "'ignore_eos' must be a boolean"},
        {"session:b", "Generate", "'session' must be a string"},
        {"seed:t", "Generate", "'seed' is out of range"},
        {"parse_special:b", "Chat", "'parse_special' applies to Generate only"},
        {"colour:s", "Chat", "unknown option 'colour'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        DBusMessage *m;
        if (strstr(bad[i].spec, ":d"))
            m = start_msg(bad[i].method, "p", bad[i].spec, 1.5);
        else if (strstr(bad[i].spec, ":t"))
            m = start_msg(bad[i].method, "p", bad[i].spec, (uint64_t)1 << 63);
        else if (strstr(bad[i].spec, ":s"))
            m = start_msg(bad[i].method, "p", bad[i].spec, "x");
        else
            m = start_msg(bad[i].method, "p", bad[i].spec, 1);
        json_t *o;
        const char *session = NULL;
        bool special = false;
        struct hr_err err;
        int r = read_opts(m, !strcmp(bad[i].method, "Generate"), &o, &session, &special, &err);
        cr_assert_eq(r, -EINVAL, "%s was accepted", bad[i].spec);
        cr_assert(strstr(err.msg, bad[i].words), "%s: '%s' lacks '%s'", bad[i].spec, err.msg,
                  bad[i].words);
        cr_assert_null(o);
        dbus_message_unref(m);
    }
}

/* Every sampling key the shared mapping reads is a D-Bus option too. */
Test(dbus_args, every_params_key_is_an_option)
{
    for (const char *const *k = ipc_params_gen_keys; *k; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "%s:i", *k);
        DBusMessage *m = start_msg("Generate", "p", spec, 1);
        json_t *o = NULL;
        const char *session = NULL;
        bool special = false;
        struct hr_err err;
        hr_err_clear(&err);
        int r = read_opts(m, true, &o, &session, &special, &err);
        cr_assert(r == 0 || !strstr(err.msg, "unknown option"), "'%s': %s", *k, err.msg);
        json_decref(o);
        dbus_message_unref(m);
    }
}

Test(dbus_args, json_schema_is_json_text)
{
    DBusMessage *m = start_msg("Chat", "[]", "json_schema:s grammar:s",
                               "{\"type\": \"object\"}", "root ::= \"a\"");
    json_t *o;
    const char *session = NULL;
    bool special = false;
    struct hr_err err;
    cr_assert_eq(read_opts(m, false, &o, &session, &special, &err), 0, "%s", err.msg);
    cr_assert(json_is_object(json_object_get(o, "json_schema")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "grammar")), "root ::= \"a\"");
    json_decref(o);
    dbus_message_unref(m);
    m = start_msg("Chat", "[]", "json_schema:s", "{\"type\": ");
    cr_assert_eq(read_opts(m, false, &o, &session, &special, &err), -EINVAL);
    cr_assert(strstr(err.msg, "'json_schema' is not JSON"), "%s", err.msg);
    dbus_message_unref(m);
}

/* Constrained output reaches the scheduler: the answers are what the
 * grammar and the schema allow. */
Test(dbus, grammar_and_json_schema)
{
    DBusConnection *c = bus();
    struct stream st[2] = {
        {.id = start(c, start_msg("Generate", PROMPT, "grammar:s max_tokens:i",
                                  "root ::= \"yes\" | \"no\"", MAX_TOKENS))},
        {.id = start(c, start_msg("Generate", PROMPT, "json_schema:s max_tokens:i",
                                  "{\"type\": \"boolean\"}", MAX_TOKENS))},
    };
    pump(c, st, 2, 0);
    assert_complete(&st[0]);
    assert_complete(&st[1]);
    cr_assert(!strcmp(st[0].text, "yes") || !strcmp(st[0].text, "no"), "'%s'", st[0].text);
    json_t *b = json_loads(st[1].text, JSON_DECODE_ANY, NULL);
    cr_assert(json_is_boolean(b), "'%s' is no JSON boolean", st[1].text);
    json_decref(b);
    stream_free(&st[0]);
    stream_free(&st[1]);
    bus_close(c);
}
