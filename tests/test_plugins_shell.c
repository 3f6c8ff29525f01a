/*
 * test_plugins_shell.c — run_shell (plugins/shell) through the real tool
 * host: commands run in the workspace and report their exit status; writes
 * outside the workspace fail, reads of the system work and of the rest do
 * not; no network (TCP, UDP, Unix sockets); a scrubbed environment, no
 * leaked descriptors, no capabilities; a timeout kills the command and
 * everything it started; output is capped; and a sandbox that cannot be set
 * up (injected with HEARTH_SANDBOX_FAULT) means the command does not run.
 *
 * Network probes use perl (Essential in Debian: always there) from inside
 * the sandbox.
 */
#include "toolsutil.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const PLUGINS[] = {"shell", NULL};

static void start(void)
{
    setenv("HEARTH_TEST_SECRET", "do-not-leak", 1);
    tt_start(PLUGINS, 0, 0);
    tt_write("outside/secret.txt", "the secret\n");
}

static void stop(void)
{
    tt_stop();
    unsetenv("HEARTH_TEST_SECRET");
    unsetenv("HEARTH_SANDBOX_FAULT");
}

TestSuite(shell, .init = start, .fini = stop, .timeout = 300);

/* Runs a command (JSON-escaped by the caller where needed) and returns the
 * result. */
static struct tt_result run(const char *command, int timeout_s)
{
    json_t *args = json_pack("{s:s}", "command", command);
    if (timeout_s > 0)
        json_object_set_new(args, "timeout", json_integer(timeout_s));
    char *text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    struct tt_result r = tt_call("run_shell", text);
    free(text);
    return r;
}

static char *run_ok(const char *command)
{
    struct tt_result r = run(command, 0);
    tt_assert_ok(&r);
    char *out = strdup(r.output);
    tt_result_done(&r);
    return out;
}

Test(shell, runs_in_the_workspace_and_reports_the_status)
{
    char *out = run_ok("echo hello; echo to stderr >&2");
    cr_assert_str_eq(out, "[exit status 0]\nhello\nto stderr\n");
    free(out);
    out = run_ok("exit 3");
    cr_assert_str_eq(out, "[exit status 3]\n[no output]\n");
    free(out);
    char want[4300];
    snprintf(want, sizeof want, "[exit status 0]\n%s\n%s\n", tt_ws(), tt_ws());
    out = run_ok("pwd; echo $HOME");
    cr_assert_str_eq(out, want);
    free(out);
    out = run_ok("cat");
    cr_assert_str_eq(out, "[exit status 0]\n[no output]\n", "stdin is not /dev/null");
    free(out);
}

Test(shell, writes_only_inside_the_workspace)
{
    char *out = run_ok("echo inside > made.txt && mkdir -p d/e && echo ok");
    cr_assert_str_eq(out, "[exit status 0]\nok\n");
    free(out);
    char *got = tt_read("ws/made.txt");
    cr_assert_str_eq(got, "inside\n");
    free(got);
    cr_assert(tt_exists("ws/d/e"));

    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "echo x > '%s' 2>/dev/null; echo a=$?; "
             "touch '%s' 2>/dev/null; echo b=$?; "
             "mkdir ../escape 2>/dev/null; echo c=$?; "
             "touch /etc/hearth-pwned 2>/dev/null; echo d=$?; "
             "touch /var/tmp/hearth-pwned 2>/dev/null; echo e=$?; "
             "rm -f '%s' 2>/dev/null; echo f=$?; "
             "ln -s /etc/passwd ../link 2>/dev/null; echo g=$?",
             tt_path("outside/new.txt"), tt_path("ws2-file"), tt_path("outside/secret.txt"));
    out = run_ok(cmd);
    for (char k = 'a'; k <= 'g'; k++) {
        char ok0[8];
        snprintf(ok0, sizeof ok0, "%c=0\n", k);
        cr_assert_null(strstr(out, ok0), "step %c succeeded:\n%s", k, out);
    }
    free(out);
    cr_assert(!tt_exists("outside/new.txt"));
    cr_assert(!tt_exists("ws2-file"));
    cr_assert(!tt_exists("escape"));
    cr_assert(!tt_exists("link"));
    cr_assert(tt_exists("outside/secret.txt"));
    cr_assert_eq(access("/etc/hearth-pwned", F_OK), -1);
    cr_assert_eq(access("/var/tmp/hearth-pwned", F_OK), -1);
}

Test(shell, reads_the_system_but_not_the_rest)
{
    char *out = run_ok("head -c 5 /etc/passwd; echo; ls /usr/bin/env");
    cr_assert_str_eq(out, "[exit status 0]\nroot:\n/usr/bin/env\n");
    free(out);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cat '%s' 2>&1 >/dev/null | grep -c 'Permission denied'",
             tt_path("outside/secret.txt"));
    out = run_ok(cmd);
    cr_assert_str_eq(out, "[exit status 0]\n1\n", "%s", out);
    free(out);
    /* a disk device: /dev is listed, not opened */
    out = run_ok("ls /dev >/dev/null && echo listed; for d in /dev/sda /dev/vda /dev/nvme0n1 "
                 "/dev/mem; do [ -e $d ] && head -c1 $d >/dev/null 2>&1 && echo read $d; done; "
                 "true");
    cr_assert_str_eq(out, "[exit status 0]\nlisted\n", "%s", out);
    free(out);
}

Test(shell, private_tmp)
{
    char probe[64], cmd[200];
    snprintf(probe, sizeof probe, "/tmp/hearth-shell-probe-%d", (int)getpid());
    unlink(probe);
    snprintf(cmd, sizeof cmd, "echo t > %s && cat %s", probe, probe);
    char *out = run_ok(cmd);
    cr_assert_str_eq(out, "[exit status 0]\nt\n");
    free(out);
    cr_assert_eq(access(probe, F_OK), -1, "/tmp is not private");
}

Test(shell, no_network)
{
    /* a listener on the host's loopback the command must not reach */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    /* and a Unix socket inside the workspace itself */
    int ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    snprintf(u.sun_path, sizeof u.sun_path, "%s", tt_path("ws/sock"));
    cr_assert_eq(bind(ufd, (struct sockaddr *)&u, sizeof u), 0);
    cr_assert_eq(listen(ufd, 4), 0);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => "
             "\"127.0.0.1:%d\", Proto => \"tcp\", Timeout => 3); print $s ? \"tcp connected\\n\" "
             ": \"tcp failed\\n\"'; "
             "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => "
             "\"127.0.0.1:%d\", Proto => \"udp\"); print $s ? \"udp socket\\n\" : \"udp "
             "failed\\n\"'; "
             "perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => \"sock\"); "
             "print $s ? \"unix connected\\n\" : \"unix failed\\n\"'",
             port, port);
    char *out = run_ok(cmd);
    cr_assert_str_eq(out, "[exit status 0]\ntcp failed\nudp failed\nunix failed\n", "%s", out);
    free(out);
    cr_assert_eq(accept(lfd, NULL, NULL), -1, "the TCP listener got a connection");
    cr_assert_eq(accept(ufd, NULL, NULL), -1, "the Unix listener got a connection");
    close(lfd);
    close(ufd);
}

Test(shell, scrubbed_environment_descriptors_and_privileges)
{
    char *out = run_ok("env | cut -d= -f1 | sort | tr '\\n' ' '");
    /* only ours, and what sh itself sets */
    const char *allowed[] = {"HOME", "LANG", "OLDPWD", "PATH", "PWD", "SHLVL", "_"};
    char *copy = strdup(out + strlen("[exit status 0]\n"));
    for (char *tok = strtok(copy, " \n"); tok; tok = strtok(NULL, " \n")) {
        bool ok = false;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            ok = ok || strcmp(tok, allowed[i]) == 0;
        cr_assert(ok, "unexpected variable %s in: %s", tok, out);
    }
    free(copy);
    free(out);
    out = run_ok("env");
    cr_assert_null(strstr(out, "do-not-leak"));
    cr_assert_not_null(strstr(out, "PATH=/usr/local/bin:/usr/bin:/bin"));
    free(out);
    /* nothing but stdin/out/err (ls's own directory descriptor aside) */
    out = run_ok("ls /proc/self/fd | tr '\\n' ' '");
    cr_assert_str_eq(out, "[exit status 0]\n0 1 2 3 ", "%s", out);
    free(out);
    out = run_ok("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | "
                 "tr -s '\\t' ' '");
    cr_assert_str_eq(out, "[exit status 0]\nCapPrm: 0000000000000000\n"
                          "CapEff: 0000000000000000\nCapBnd: 0000000000000000\n"
                          "NoNewPrivs: 1\nSeccomp: 2\n",
                     "%s", out);
    free(out);
}

/* Any process whose command line holds `marker`? */
static bool process_with(const char *marker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = 0;
        found = strstr(buf, marker) != NULL;
    }
    closedir(d);
    return found;
}

Test(shell, a_timeout_kills_the_command_and_its_children)
{
    /* sleeps marked with our pid, so that concurrent runs do not mix */
    char marker[32], cmd[300];
    snprintf(marker, sizeof marker, "1000.%06d", (int)getpid() % 1000000);
    snprintf(cmd, sizeof cmd,
             "echo started; sleep %s1 & setsid sleep %s2 & (sleep %s3 &) ; sleep %s4", marker,
             marker, marker, marker);
    struct tt_result r = run(cmd, 1);
    tt_assert_error(&r, HD_TOOL_FAILED, "timed out after 1 s and was killed");
    cr_assert_str_eq(r.output, "started\n");
    tt_result_done(&r);
    /* SIGKILL is not instantaneous: allow the kernel a moment to tear down */
    bool alive = true;
    for (int i = 0; i < 300 && alive; i++) {
        alive = process_with(marker);
        if (alive)
            usleep(10000);
    }
    cr_assert(!alive, "a sleep of the command survived the timeout");
    /* the plugin stopped it itself: the tool host was not killed */
    struct hd_tools_stats st;
    hd_tools_get_stats(tt_tools, &st);
    cr_assert_eq(st.host_starts, 1);
    cr_assert_eq(st.timeouts, 0);
}

Test(shell, the_call_deadline_bounds_the_command)
{
    tt_stop();
    tt_start(PLUGINS, 2000, 0); /* calls get 2 s; the command asks for 60 */
    struct tt_result r = run("sleep 30", 60);
    tt_assert_error(&r, HD_TOOL_FAILED, "(the tool call's time limit)");
    tt_result_done(&r);
    struct hd_tools_stats st;
    hd_tools_get_stats(tt_tools, &st);
    cr_assert_eq(st.timeouts, 0, "the plugin did not stop in time itself");
}

Test(shell, output_is_capped)
{
    tt_stop();
    tt_start(PLUGINS, 0, 4096);
    struct tt_result r = run("seq 1 200000; echo done-with-status", 0);
    tt_assert_ok(&r);
    cr_assert(r.truncated);
    cr_assert_leq(r.len, 4096);
    cr_assert(strncmp(r.output, "[exit status 0]\n1\n2\n3\n", 22) == 0, "%s", r.output);
    tt_result_done(&r);
}

Test(shell, an_incomplete_sandbox_means_no_command)
{
    const char *steps[] = {"namespaces", "landlock", "capabilities", "seccomp"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        tt_stop();
        setenv("HEARTH_SANDBOX_FAULT", steps[i], 1);
        tt_start(PLUGINS, 0, 0);
        unsetenv("HEARTH_SANDBOX_FAULT");
        struct tt_result r = run("touch ran", 0);
        tt_assert_error(&r, HD_TOOL_FAILED, "the sandbox could not be set up");
        cr_assert_not_null(strstr(r.error, steps[i]), "%s", r.error);
        cr_assert_not_null(strstr(r.error, "the command was not run"), "%s", r.error);
        tt_result_done(&r);
        cr_assert(!tt_exists("ws/ran"), "the command ran without its %s step", steps[i]);
    }
}
