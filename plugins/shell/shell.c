/*
 * shell.c — the shell plugin: run_shell runs one command with /bin/sh -c in
 * the workspace, confined by sandbox.c, with a timeout and an output cap.
 *
 * The result starts with how the command ended — "[exit status N]" or
 * "[killed by signal N]" — followed by its combined stdout and stderr. A
 * non-zero exit is a normal result (the model needs the output to see what
 * went wrong); the call fails only when the command could not be run
 * (sandbox), or ran out of time: then the whole process group — and with a
 * PID namespace everything the command started — is killed and the error
 * says so, with the output produced so far.
 *
 * The time limit is the smaller of the `timeout` argument and what is left
 * of the call's own deadline (less a margin to reply), so the plugin
 * reports its timeout itself instead of being killed with the tool host.
 * Output beyond the call's cap is read and thrown away (so the command is
 * not blocked on a full pipe) and the result is marked truncated.
 */
#include "sandbox.h"

#include <hearth/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_S 60
#define REPLY_MARGIN_MS 500 /* of the call's deadline, kept for replying */
#define DRAIN_MS 1000       /* reading on after the command exits */

typedef const struct hr_host host_t;
typedef struct hr_tool_call call_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* LANG for the command: the tool host's when it is a plain locale name,
 * else C.UTF-8. */
static const char *command_lang(void)
{
    const char *l = getenv("LANG");
    if (!l || !*l || strlen(l) > 64)
        return "C.UTF-8";
    for (const char *p = l; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-' || *p == '@'))
            return "C.UTF-8";
    return l;
}

static void kill_all(const struct sandbox_child *ch)
{
    kill(-ch->pid, SIGKILL); /* the process group */
    kill(ch->pid, SIGKILL);  /* with a PID namespace: everything in it */
}

static int run_shell(host_t *h, call_t *c)
{
    size_t len = 0;
    const char *command = h->arg_string(c, "command", &len);
    int64_t timeout_s = DEFAULT_TIMEOUT_S;
    h->arg_int(c, "timeout", &timeout_s);
    if (!command || len == 0)
        return h->set_error(c, "no command given");
    if (strlen(command) != len)
        return h->set_error(c, "the command contains a NUL character");

    int64_t start = now_ms();
    int64_t limit = timeout_s * 1000;
    bool call_limited = false;
    if (c->deadline_ms - REPLY_MARGIN_MS - start < limit) {
        limit = c->deadline_ms - REPLY_MARGIN_MS - start;
        call_limited = true;
    }
    if (limit < 100)
        return h->set_error(c, "no time left to run a command in this call");

    struct sandbox_child ch;
    char why[512];
    int rc = sandbox_spawn(command, c->workspace_fd, c->workspace, command_lang(), &ch, why,
                           sizeof why);
    if (rc < 0)
        return h->set_error(c, "the sandbox could not be set up (%s); the command was not run",
                            why);

    /* collect what fits the result; count the rest */
    size_t keep = (size_t)h->output_room(c), n = 0, dropped = 0;
    char *buf = malloc(keep + 1);
    if (!buf) {
        kill_all(&ch);
        waitpid(ch.pid, NULL, 0);
        close(ch.out);
        close(ch.pidfd);
        return h->set_error(c, "out of memory");
    }
    int64_t deadline = start + limit, drain_until = 0;
    bool exited = false, out_open = true, timed_out = false, cancelled = false;
    int status = 0;
    while (out_open || !exited) {
        int64_t now = now_ms();
        if (!exited && now >= deadline) {
            timed_out = true;
            break;
        }
        if (exited && now >= drain_until)
            break; /* something outside the group holds the pipe: stop reading */
        if (!exited && h->cancelled(c)) {
            cancelled = true;
            break;
        }
        struct pollfd p[2] = {{.fd = out_open ? ch.out : -1, .events = POLLIN},
                              {.fd = exited ? -1 : ch.pidfd, .events = POLLIN}};
        int64_t wait = (exited ? drain_until : deadline) - now;
        if (wait > 100)
            wait = 100; /* look at cancellation now and then */
        int pr = poll(p, 2, (int)wait);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (p[0].revents) {
            char chunk[65536];
            ssize_t r = read(ch.out, chunk, sizeof chunk);
            if (r > 0) {
                size_t take = (size_t)r <= keep - n ? (size_t)r : keep - n;
                memcpy(buf + n, chunk, take);
                n += take;
                dropped += (size_t)r - take;
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                out_open = false;
            }
        }
        if (p[1].revents && !exited) {
            if (waitpid(ch.pid, &status, WNOHANG) == ch.pid) {
                exited = true;
                /* without a PID namespace, background children would live
                 * on: the group goes with the shell */
                if (!ch.pid_ns)
                    kill(-ch.pid, SIGKILL);
                drain_until = now_ms() + DRAIN_MS;
            }
        }
    }
    if (!exited) {
        kill_all(&ch);
        waitpid(ch.pid, &status, 0);
    }
    close(ch.out);
    close(ch.pidfd);

    double took = (double)(now_ms() - start) / 1000.0;
    if (timed_out || cancelled) {
        h->append(c, buf, n);
        free(buf);
        if (cancelled)
            return h->set_error(c, "the command was cancelled after %.1f s and killed", took);
        return h->set_error(c, "the command timed out after %lld s%s and was killed (with the "
                               "processes it started); output so far is above",
                            (long long)(limit + 999) / 1000,
                            call_limited ? " (the tool call's time limit)" : "");
    }
    if (WIFSIGNALED(status))
        h->appendf(c, "[killed by signal %d]\n", WTERMSIG(status));
    else
        h->appendf(c, "[exit status %d]\n", WEXITSTATUS(status));
    if (n == 0 && dropped == 0)
        h->appendf(c, "[no output]\n");
    /* when output was dropped, n filled the room before the header took
     * its part: this append hits the cap and marks the result truncated */
    h->append(c, buf, n);
    free(buf);
    return 0;
}

static const struct hr_tool run_shell_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_EXEC,
    .name = "run_shell",
    .description =
        "Runs a shell command (/bin/sh -c) in the workspace and returns its exit status and "
        "combined output. The command runs sandboxed: it can read the system directories and "
        "the workspace, write only inside the workspace (and a private /tmp), and has no "
        "network. The environment holds only PATH, HOME (the workspace) and LANG. It is "
        "killed, with everything it started, after `timeout` seconds.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":65536,"
                  "\"description\":\"The command line, as for sh -c\"},"
                  "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600,"
                  "\"description\":\"Seconds before the command is killed (default 60; the "
                  "tool call's own limit may be shorter)\"}},"
                  "\"required\":[\"command\"],\"additionalProperties\":false}",
    .call = run_shell,
};

static const struct hr_tool *const tools[] = {&run_shell_tool};

/* Says once, at load, how commands will be confined (or that they will
 * not run): the log then explains failing calls before anyone asks. */
static int shell_init(const struct hr_host *host)
{
    int abi = sandbox_landlock_abi();
    if (abi < 1)
        host->log_message(host, HR_LOG_WARNING,
                          "Landlock is not available: run_shell will refuse every command");
    else
        host->log_message(host, HR_LOG_DEBUG, "Landlock ABI %d", abi);
    return 0;
}

static const struct hr_plugin plugin = {
    .abi_version = HR_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct hr_plugin),
    .name = "shell",
    .version = "1.0.0",
    .description = "Run shell commands in a sandbox confined to the workspace.",
    .n_tools = sizeof tools / sizeof tools[0],
    .tools = tools,
    .init = shell_init,
};

HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
    return &plugin;
}
