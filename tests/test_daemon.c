/*
 * test_daemon.c — hearthd's life cycle as a user and systemd see it: bad
 * configs refused at start with their location, a second instance refused,
 * the background start, SIGTERM letting running requests finish, SIGHUP.
 * Real processes, real sockets (tests/daemonutil.h).
 */
#include "daemonutil.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *write_temp(const char *dir, const char *name, const char *text)
{
    char *path = malloc(512);
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static char *tempdir(void)
{
    char *d = strdup("/tmp/hearth-daemon-XXXXXX");
    cr_assert(mkdtemp(d));
    return d;
}

static int run_daemon(char **out, char **err, const char *a1, const char *a2, const char *a3,
                      const char *a4)
{
    char *argv[] = {(char *)du_daemon_bin(), (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    return tu_run(argv, out, err);
}

/* Every kind of bad config stops the start with FILE:LINE:COLUMN. */
Test(daemon, bad_configs_are_refused_with_their_location, .timeout = 60)
{
    static const struct {
        const char *yaml, *where, *what;
    } cases[] = {
        {"threads: 2\nbogus_key: 1\n", ":2:1:", "bogus_key"},
        {"threads: lots\n", ":1:10:", "threads"},
        {"http:\n  port: 70000\n", ":2:9:", "port"},
        {"kv_cache: f8\n", ":1:11:", "kv_cache"},
        {"model: [unclosed\n", ":", "model"},
    };
    char *dir = tempdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = write_temp(dir, "bad.yaml", cases[i].yaml);
        char *out, *err;
        int st = run_daemon(&out, &err, "--foreground", "--config", cfg, NULL);
        cr_assert_neq(st, 0, "case %zu started", i);
        cr_assert(strstr(err, "hearthd: error: "), "case %zu: %s", i, err);
        cr_assert(strstr(err, cfg), "case %zu: no file name: %s", i, err);
        cr_assert(strstr(err, cases[i].where), "case %zu: no %s in: %s", i, cases[i].where, err);
        cr_assert(strstr(err, cases[i].what), "case %zu: no %s in: %s", i, cases[i].what, err);
        /* --check-config says the same without starting anything */
        free(out);
        free(err);
        st = run_daemon(&out, &err, "--check-config", "--config", cfg, NULL);
        cr_assert_neq(st, 0);
        cr_assert(strstr(err, cases[i].where), "%s", err);
        free(out);
        free(err);
        unlink(cfg);
        free(cfg);
    }
    char *cfg = write_temp(dir, "good.yaml", "threads: 1\ncontext: 256\n");
    char *out, *err;
    cr_assert_eq(run_daemon(&out, &err, "--check-config", "--config", cfg, NULL), 0, "%s", err);
    free(out);
    free(err);
    /* a missing explicit config, a missing model, bad flags */
    cr_assert_neq(run_daemon(&out, &err, "--foreground", "--config", "/nonexistent/h.yaml", NULL),
                  0);
    cr_assert(strstr(err, "/nonexistent/h.yaml"), "%s", err);
    free(out);
    free(err);
    cr_assert_neq(run_daemon(&out, &err, "--foreground", "--config", cfg, "--model=/nope.gguf"),
                  0);
    cr_assert(strstr(err, "/nope.gguf"), "%s", err);
    free(out);
    free(err);
    cr_assert_neq(run_daemon(&out, &err, "--http-port", "http", NULL, NULL), 0);
    cr_assert(strstr(err, "--http-port"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(run_daemon(&out, &err, "--version", NULL, NULL, NULL), 0);
    cr_assert(strncmp(out, "hearthd ", 8) == 0, "%s", out);
    free(out);
    free(err);
    unlink(cfg);
    free(cfg);
    rmdir(dir);
    free(dir);
}

/* A second hearthd on the same socket says another one is running, and the
 * first keeps serving. */
Test(daemon, second_instance_is_refused, .timeout = 60)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    char *out, *err;
    char *argv[] = {(char *)du_daemon_bin(), "--foreground", "--config", d.config, "--socket",
                    d.socket, NULL};
    int st = tu_run(argv, &out, &err);
    cr_assert_neq(st, 0);
    cr_assert(strstr(err, "already running"), "%s", err);
    free(out);
    free(err);
    struct du_conn *c = du_connect(d.socket);
    json_t *res = du_call_ok(c, "status", NULL);
    json_decref(res);
    du_close(c);
    du_stop(&d);
}

/* SIGTERM while a request runs: no new connections, the request finishes,
 * exit status 0. */
Test(daemon, sigterm_finishes_running_requests, .timeout = 120)
{
    struct du_daemon d;
    du_start(&d, NULL, "parallel: 1\n");
    struct du_conn *c = du_connect(d.socket);
    long id = du_send_call(c, "complete",
                           "{\"prompt\":\"Once upon a time\",\"max_tokens\":300,"
                           "\"temperature\":0,\"ignore_eos\":true,\"stream\":true}");
    /* wait for the first piece so the request is running */
    json_t *m = du_recv_ok(c);
    json_decref(m);
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    char *stream = NULL;
    json_t *resp = du_wait_response(c, id, &stream);
    json_t *result = json_object_get(resp, "result");
    cr_assert(result, "no result: %s", json_dumps(resp, 0));
    const char *reason = json_string_value(json_object_get(result, "finish_reason"));
    cr_assert_str_eq(reason, "length", "the request was cut short: %s", reason);
    json_t *usage = json_object_get(result, "usage");
    cr_assert_eq(json_integer_value(json_object_get(usage, "completion_tokens")), 300);
    json_decref(resp);
    free(stream);
    du_close(c);
    int status;
    cr_assert_eq(waitpid(d.pid, &status, 0), d.pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    struct stat st;
    cr_assert_neq(stat(d.socket, &st), 0, "the socket file was left behind");
    char *log = du_log(&d);
    cr_assert(strstr(log, "terminated"), "%s", log);
    free(log);
    d.pid = 0; /* already reaped */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d.dir);
    cr_assert_eq(system(cmd), 0);
}

/* SIGHUP reloads the config file; a broken one is reported and the running
 * configuration kept. */
Test(daemon, sighup_reloads, .timeout = 60)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    FILE *f = fopen(d.config, "a");
    cr_assert(f);
    fputs("log:\n  level: debug\n", f);
    fclose(f);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    char *log = NULL;
    for (int i = 0; i < 200; i++) {
        free(log);
        log = du_log(&d);
        if (strstr(log, "reloaded"))
            break;
        usleep(20000);
    }
    cr_assert(strstr(log, "reloaded"), "%s", log);
    free(log);
    f = fopen(d.config, "a");
    fputs("nonsense_key: 1\n", f);
    fclose(f);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    for (int i = 0; i < 200; i++) {
        log = du_log(&d);
        if (strstr(log, "keeping the running configuration"))
            break;
        free(log);
        log = NULL;
        usleep(20000);
    }
    cr_assert(log, "a broken config on reload was not reported");
    cr_assert(strstr(log, "nonsense_key"), "%s", log);
    free(log);
    struct du_conn *c = du_connect(d.socket);
    json_decref(du_call_ok(c, "status", NULL));
    du_close(c);
    du_stop(&d);
}

/* Without --foreground, hearthd returns once it serves, and keeps serving. */
Test(daemon, background_start, .timeout = 60)
{
    char *dir = tempdir();
    char sock[600], state[600];
    snprintf(sock, sizeof sock, "%s/run/hearth.sock", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    char *cfg = write_temp(dir, "h.yaml", "dbus:\n  enabled: false\nthreads: 1\n");
    setenv("XDG_STATE_HOME", state, 1);
    char *argv[] = {(char *)du_daemon_bin(), "--config", cfg, "--socket", sock, NULL};
    char *out, *err;
    int st = tu_run(argv, &out, &err);
    unsetenv("XDG_STATE_HOME");
    cr_assert_eq(st, 0, "%s", err);
    free(out);
    free(err);
    /* it serves right away; SO_PEERCRED tells its pid */
    struct du_conn *c = du_connect(sock);
    json_t *res = du_call_ok(c, "status", NULL);
    json_decref(res);
    struct ucred cred;
    socklen_t cl = sizeof cred;
    cr_assert_eq(getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl), 0);
    du_close(c);
    /* the log went to $XDG_STATE_HOME/hearth/hearthd.log */
    char logp[700];
    snprintf(logp, sizeof logp, "%s/hearth/hearthd.log", state);
    char *log = tu_read_file(logp, NULL);
    cr_assert(log && strstr(log, "serving JSON-RPC"), "%s", log ? log : "(no log)");
    free(log);
    cr_assert_eq(kill(cred.pid, SIGTERM), 0);
    char cmd[1400];
    struct stat sst;
    for (int i = 0; i < 500 && stat(sock, &sst) == 0; i++)
        usleep(10000);
    cr_assert_neq(stat(sock, &sst), 0, "the daemon did not stop");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(cfg);
    free(dir);
}
