/*
 * test_agent_dbus.c — tools and approvals over D-Bus (docs/dbus.md): the real
 * hearthd with D-Bus on, the real tool host and plugins, on the private
 * session bus of dbus-run-session (tests/meson.build runs it so).
 *
 * CallTool is sent without blocking; the test then reads the connection's
 * messages: ApprovalRequested signals (unicast to the caller) are answered
 * with Approve on the same connection, and the method return ends the call.
 */
#include "test_agent_util.h"
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char ws[128];
static char dir[128], config[256], sock[256], logpath[256];
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

static bool name_owned(DBusConnection *c)
{
    DBusError e;
    dbus_error_init(&e);
    bool owned = dbus_bus_name_has_owner(c, IPC_DBUS_NAME, &e);
    dbus_error_free(&e);
    return owned;
}

/* hearthd with D-Bus on and tools.roots = the workspace. */
static void setup(void)
{
    snprintf(ws, sizeof ws, "%s", at_workspace_new());
    snprintf(dir, sizeof dir, "/tmp/hearth-agent-dbus-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(config, sizeof config, "%s/hearth.yaml", dir);
    snprintf(sock, sizeof sock, "%s/hearth.sock", dir);
    snprintf(logpath, sizeof logpath, "%s/hearthd.log", dir);
    char *model = realpath(tu_stories(), NULL);
    cr_assert(model);
    FILE *f = fopen(config, "w");
    cr_assert(f);
    fprintf(f, "model: %s\nthreads: 1\ndbus:\n  enabled: true\ntools:\n  roots: [%s]\n", model,
            ws);
    fclose(f);
    free(model);
    pid_t parent = getpid();
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(du_daemon_bin(), "hearthd", "--foreground", "--config", config, "--socket", sock,
              (char *)NULL);
        _exit(127);
    }
    DBusConnection *c = bus();
    long t0 = now_ms();
    while (!name_owned(c)) {
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
    at_workspace_free(ws);
}

static DBusMessage *method(const char *name)
{
    DBusMessage *m = dbus_message_new_method_call(IPC_DBUS_NAME, IPC_DBUS_PATH, IPC_DBUS_IFACE,
                                                  name);
    cr_assert(m);
    dbus_message_set_auto_start(m, FALSE);
    return m;
}

enum answer { YES, NO, LEAVE };

/* CallTool(name, args, ws) answered per `how`; returns the result JSON
 * (owned; NULL with LEAVE: the connection is closed once asked). *asked
 * counts the ApprovalRequested signals. */
static json_t *call_tool(const char *name, const char *args, enum answer how, int *asked)
{
    DBusConnection *c = bus();
    DBusMessage *m = method("CallTool");
    const char *w = ws;
    cr_assert(dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &args,
                                       DBUS_TYPE_STRING, &w, DBUS_TYPE_INVALID));
    dbus_uint32_t serial = 0;
    cr_assert(dbus_connection_send(c, m, &serial));
    dbus_message_unref(m);
    *asked = 0;
    long t0 = now_ms();
    for (;;) {
        cr_assert(now_ms() - t0 < 120000, "no reply to CallTool");
        dbus_connection_read_write(c, 100);
        DBusMessage *in;
        while ((in = dbus_connection_pop_message(c))) {
            if (dbus_message_is_signal(in, IPC_DBUS_IFACE, "ApprovalRequested")) {
                const char *call_id, *tool, *aj, *risk, *reason;
                cr_assert(dbus_message_get_args(in, NULL, DBUS_TYPE_STRING, &call_id,
                                                DBUS_TYPE_STRING, &tool, DBUS_TYPE_STRING, &aj,
                                                DBUS_TYPE_STRING, &risk, DBUS_TYPE_STRING,
                                                &reason, DBUS_TYPE_INVALID));
                cr_assert_str_eq(tool, name);
                cr_assert(strstr(reason, "tools.policy"), "%s", reason);
                (*asked)++;
                if (how == LEAVE) {
                    dbus_message_unref(in);
                    bus_close(c);
                    return NULL;
                }
                DBusMessage *a = method("Approve");
                dbus_bool_t yes = how == YES;
                cr_assert(dbus_message_append_args(a, DBUS_TYPE_STRING, &call_id,
                                                   DBUS_TYPE_BOOLEAN, &yes, DBUS_TYPE_INVALID));
                cr_assert(dbus_connection_send(c, a, NULL));
                dbus_message_unref(a);
                /* a different peer cannot answer it */
                DBusConnection *other = bus();
                DBusMessage *o = method("Approve");
                dbus_bool_t t = TRUE;
                cr_assert(dbus_message_append_args(o, DBUS_TYPE_STRING, &call_id,
                                                   DBUS_TYPE_BOOLEAN, &t, DBUS_TYPE_INVALID));
                DBusMessage *r = dbus_connection_send_with_reply_and_block(other, o, 30000, NULL);
                dbus_message_unref(o);
                cr_assert(r);
                dbus_bool_t found = TRUE;
                cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_BOOLEAN, &found,
                                                DBUS_TYPE_INVALID));
                /* the answer of the asked peer may have been handled first:
                 * either way the other one's never counts */
                cr_assert(!found);
                dbus_message_unref(r);
                bus_close(other);
            } else if (dbus_message_get_type(in) == DBUS_MESSAGE_TYPE_METHOD_RETURN &&
                       dbus_message_get_reply_serial(in) == serial) {
                const char *res;
                cr_assert(dbus_message_get_args(in, NULL, DBUS_TYPE_STRING, &res,
                                                DBUS_TYPE_INVALID));
                json_t *j = json_loads(res, 0, NULL);
                cr_assert(j, "%s", res);
                dbus_message_unref(in);
                bus_close(c);
                return j;
            } else if (dbus_message_get_type(in) == DBUS_MESSAGE_TYPE_ERROR &&
                       dbus_message_get_reply_serial(in) == serial) {
                cr_assert_fail("CallTool failed: %s", dbus_message_get_error_name(in));
            }
            dbus_message_unref(in);
        }
    }
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

TestSuite(agent_dbus, .init = setup, .fini = teardown, .timeout = 300);

Test(agent_dbus, list_tools)
{
    DBusConnection *c = bus();
    DBusMessage *m = method("ListTools");
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, 30000, NULL);
    dbus_message_unref(m);
    cr_assert(r);
    const char *s;
    cr_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID));
    json_t *j = json_loads(s, 0, NULL);
    cr_assert(json_is_true(json_object_get(j, "available")));
    bool write_ask = false;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tools"), i, t) write_ask |=
        !strcmp(str(t, "name"), "write_file") && !strcmp(str(t, "policy"), "ask");
    cr_assert(write_ask);
    json_decref(j);
    dbus_message_unref(r);
    bus_close(c);
}

Test(agent_dbus, approve_runs_decline_does_not)
{
    at_write(ws, "a.txt", "hello\n");
    int asked;
    json_t *r = call_tool("read_file", "{\"path\":\"a.txt\"}", NO, &asked);
    cr_assert(json_is_true(json_object_get(r, "ok")));
    cr_assert_str_eq(str(r, "output"), "hello\n");
    cr_assert_eq(asked, 0);
    json_decref(r);

    r = call_tool("write_file", "{\"path\":\"b.txt\",\"content\":\"x\"}", NO, &asked);
    cr_assert_eq(asked, 1);
    cr_assert_str_eq(str(r, "status"), "declined");
    cr_assert(!at_exists(ws, "b.txt"));
    json_decref(r);

    r = call_tool("write_file", "{\"path\":\"b.txt\",\"content\":\"x\"}", YES, &asked);
    cr_assert_eq(asked, 1);
    cr_assert(json_is_true(json_object_get(r, "ok")), "%s", str(r, "error"));
    cr_assert(at_exists(ws, "b.txt"));
    json_decref(r);
}

Test(agent_dbus, a_caller_that_leaves_runs_nothing)
{
    int asked;
    json_t *r = call_tool("run_shell", "{\"command\":\"touch ran\"}", LEAVE, &asked);
    cr_assert_null(r);
    cr_assert_eq(asked, 1);
    usleep(300000);
    cr_assert(!at_exists(ws, "ran"));
    /* still serving, on the bus and the socket */
    DBusConnection *c = bus();
    cr_assert(name_owned(c));
    bus_close(c);
    struct du_conn *s = du_connect(sock);
    json_decref(du_call_ok(s, "status", NULL));
    du_close(s);
}
