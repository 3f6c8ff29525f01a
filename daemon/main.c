/*
 * main.c — hearthd: the only file that wires the frontends to the scheduler.
 *
 * Start-up order: arguments, config (a bad one stops us here, with its
 * file:line:column), the model, then — unless --foreground — the fork into
 * the background (before any thread exists), then the scheduler and the
 * frontends. The parent of the fork waits until the child serves (or says
 * why it cannot), so `hearthd && hearth ask ...` works.
 *
 * Signals arrive through a signalfd on the loop: SIGTERM/SIGINT stop
 * accepting new work, let running requests finish (cancelling them after a
 * grace period) and exit 0; SIGHUP reloads what can change while serving
 * (log level, sampling defaults, tool roots and policy, Lua limits) and says
 * what needs a restart.
 *
 * Tools: the tool host (daemon/tools.h) starts before the frontends; when it
 * cannot, hearthd serves without tools. The policy gate (daemon/policy.h)
 * and the Lua runtime (lua/luab.h) reach the socket and D-Bus frontends as
 * struct hd_services.
 */
#include "agent.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "scheduler.h"
#include "tools.h"

#include "luab.h"

#include "err.h"

#include "dbus.h"
#include "http.h"
#include "ipc.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "0.0.0"
#endif

#define GRACE_MS 10000 /* running requests get this long to finish on SIGTERM */

struct daemon {
    struct hd_config cfg;
    char *config_path; /* as given, or NULL: the default location */
    struct hd_loop *loop;
    struct hr_model *model;
    struct hd_sched *sched;
    struct ipc_rpc *rpc;
    struct ipc_dbus *dbus;
    struct ipc_http *http;
    struct hd_tools *tools;   /* NULL: no tool host (logged) */
    struct hd_gate *gate;
    struct luab_rt *lua;
    struct hd_services svc;   /* what the socket and D-Bus get besides the scheduler */
    char *config_dir;         /* where agent.lua may sit next to the config */
    int sigfd;
    bool stopping;
    int64_t stop_deadline;
    int64_t drain_deadline; /* 0 until the scheduler is idle */
    bool cancelled_all;
};

static void usage(FILE *f)
{
    fputs("usage: hearthd [--config FILE] [--model FILE] [--socket PATH] [--http-port PORT]\n"
          "               [--foreground] [--check-config] [--version]\n"
          "\n"
          "The hearth daemon: loads a GGUF model once and serves it over a Unix socket\n"
          "(JSON-RPC), the D-Bus session bus and, when enabled, an OpenAI-compatible HTTP\n"
          "API on 127.0.0.1. Config: $XDG_CONFIG_HOME/hearth/hearth.yaml (docs/config.md).\n",
          f);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hearthd: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The socket path when neither the config nor --socket gives one. */
static char *default_socket(void)
{
    const char *rt = getenv("XDG_RUNTIME_DIR");
    char buf[4096];
    if (rt && rt[0] == '/')
        snprintf(buf, sizeof buf, "%s/hearth/hearth.sock", rt);
    else
        snprintf(buf, sizeof buf, "/tmp/hearth-%u/hearth.sock", (unsigned)getuid());
    return strdup(buf);
}

/* The bundled model: installed next to the data files, or in the source tree. */
static const char *default_model(void)
{
#ifdef HEARTH_MODEL_INSTALLED
    if (access(HEARTH_MODEL_INSTALLED, R_OK) == 0)
        return HEARTH_MODEL_INSTALLED;
#endif
#ifdef HEARTH_MODEL_SOURCE
    if (access(HEARTH_MODEL_SOURCE, R_OK) == 0)
        return HEARTH_MODEL_SOURCE;
#endif
    return NULL;
}

/* ---- shutdown and reload ----------------------------------------------------------- */

static void check_stopped(void *user)
{
    struct daemon *d = user;
    if (!d->cancelled_all && hd_now_ms() >= d->stop_deadline) {
        hd_warn("requests still running after %d s: cancelling them", GRACE_MS / 1000);
        hd_sched_cancel_all(d->sched);
        d->cancelled_all = true;
    }
    if (!hd_sched_idle(d->sched))
        return;
    /* the last answers may still sit in socket buffers: give slow readers
     * a moment (the HTTP frontend flushes its own in ipc_http_free) */
    if (!d->drain_deadline)
        d->drain_deadline = hd_now_ms() + 2000;
    if (!ipc_rpc_output_pending(d->rpc) || hd_now_ms() >= d->drain_deadline)
        hd_loop_quit(d->loop);
}

static void begin_stop(struct daemon *d, const char *why)
{
    if (d->stopping) {
        /* a second signal: do not wait any longer */
        hd_sched_cancel_all(d->sched);
        d->cancelled_all = true;
        return;
    }
    d->stopping = true;
    hd_info("%s: not accepting new connections; finishing running requests", why);
    ipc_rpc_stop(d->rpc);
    ipc_http_stop(d->http);
    luab_rt_stop(d->lua); /* scripts and agents end now: they would keep the engine busy */
    ipc_dbus_free(d->dbus); /* releases the bus name so a new hearthd can take it */
    d->dbus = NULL;
    d->stop_deadline = hd_now_ms() + GRACE_MS;
    check_stopped(d);
    if (hd_loop_add_timer(d->loop, 20, true, check_stopped, d) < 0)
        hd_loop_quit(d->loop);
}

/* ---- tools, policy, Lua ------------------------------------------------------------ */

/* The directory of the config file (given or default), for agent.lua. */
static char *config_dir_of(const char *given)
{
    char *path = given ? strdup(given) : hd_config_default_path();
    if (!path)
        return NULL;
    char *slash = strrchr(path, '/');
    if (!slash) {
        free(path);
        return strdup(".");
    }
    *slash = '\0';
    return path;
}

/* The tool host, the policy gate and the Lua runtime. A tool host that
 * cannot start leaves hearthd serving without tools (said in the log);
 * the rest failing is out of memory. */
static int start_tools(struct daemon *d, struct hr_err *err)
{
    struct hd_tools_params tp;
    hd_tools_params_init(&tp, &d->cfg);
    if (d->cfg.plugins.n_load > 0) {
        struct hr_err terr;
        hr_err_clear(&terr);
        if (hd_tools_new(d->loop, &tp, &d->tools, &terr) < 0)
            hd_warn("tools disabled: %s", terr.msg);
    }
    struct hd_policy_params pp;
    hd_policy_params_init(&pp, &d->cfg);
    int rc = hd_gate_new(d->loop, d->tools, &pp, &d->gate);
    if (rc < 0)
        return hr_err_set(err, rc, -1, "cannot set up the tool policy: %s", strerror(-rc));
    struct luab_rt_params lp;
    luab_rt_params_init(&lp, &d->cfg, d->config_dir);
    lp.loop = d->loop;
    lp.sched = d->sched;
    lp.tools = d->tools;
    lp.gate = d->gate;
    if ((rc = luab_rt_new(&lp, &d->lua, err)) < 0)
        return rc;
    if (lp.agent_script)
        hd_info("agent: using %s", lp.agent_script);
    d->svc = (struct hd_services){d->tools, d->gate, luab_rt_runner(d->lua)};
    return 0;
}

static void reload_tools(struct daemon *d, const struct hd_config *fresh)
{
    struct hr_err err;
    if (d->tools) {
        struct hd_tools_params tp;
        hd_tools_params_init(&tp, fresh);
        if (hd_tools_update(d->tools, &tp) == 1)
            hd_warn("reload: changes to plugins.dir or plugins.load need a restart");
    }
    struct hd_policy_params pp;
    hd_policy_params_init(&pp, fresh);
    if (hd_gate_update(d->gate, &pp) < 0)
        hd_error("reload: the tool policy could not be applied; keeping the running one");
    struct luab_rt_params lp;
    luab_rt_params_init(&lp, fresh, d->config_dir);
    lp.loop = d->loop;
    lp.sched = d->sched;
    lp.tools = d->tools;
    lp.gate = d->gate;
    if (luab_rt_update(d->lua, &lp, &err) < 0)
        hd_error("reload: Lua settings not applied: %s", err.msg);
}

static void reload(struct daemon *d)
{
    struct hd_config fresh = {0};
    struct hr_err err;
    int rc = hd_config_load(d->config_path, &fresh, &err);
    if (rc < 0) {
        hd_error("reload: %s; keeping the running configuration", err.msg);
        hd_config_done(&fresh);
        return;
    }
    hd_log_set_level(fresh.log.level);
    struct hd_gen_params_defaults def = {
        fresh.sampling.temperature, fresh.sampling.top_p,   fresh.sampling.min_p,
        fresh.sampling.repeat_penalty, fresh.sampling.top_k, fresh.sampling.max_tokens, true};
    hd_sched_set_defaults(d->sched, &def);
    if (hd_sched_set_lora_config(d->sched, &fresh.lora) < 0)
        hd_error("reload: lora.dir and lora.profiles not applied (out of memory)");
    reload_tools(d, &fresh);
    const char *restart = NULL;
    if ((fresh.model && (!d->cfg.model || strcmp(fresh.model, d->cfg.model))) ||
        fresh.threads != d->cfg.threads || fresh.context != d->cfg.context ||
        fresh.batch != d->cfg.batch || fresh.parallel != d->cfg.parallel ||
        fresh.http.enabled != d->cfg.http.enabled || fresh.http.port != d->cfg.http.port)
        restart = "; model, threads, context, batch, parallel and http changes need a restart";
    hd_info("reloaded the configuration (log level, sampling defaults, LoRA profiles, tools, "
            "policy, Lua)%s",
            restart ? restart : "");
    hd_config_done(&fresh);
}

static void on_signal(void *user, int fd, uint32_t events)
{
    struct daemon *d = user;
    struct signalfd_siginfo si;
    (void)events;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP)
            reload(d);
        else
            begin_stop(d, si.ssi_signo == SIGINT ? "interrupted" : "terminated");
    }
}

/* ---- background start -------------------------------------------------------------- */

/* Forks; the parent waits for the child's "ready" byte (or its error text)
 * on a pipe and exits with the matching status. In the child, returns the
 * pipe's write end; stderr then goes to $XDG_STATE_HOME/hearth/hearthd.log. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid > 0) {
        close(p[1]);
        char buf[1024];
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        if (n > 0 && buf[0] == '\0')
            exit(0);
        if (n > 0) {
            buf[n] = 0;
            fprintf(stderr, "%s", buf);
        } else {
            fprintf(stderr, "hearthd: error: the daemon exited during start-up\n");
        }
        exit(1);
    }
    close(p[0]);
    setsid();
    /* the log goes to a file once the terminal is gone */
    char path[4096];
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (state && state[0] == '/')
        snprintf(path, sizeof path, "%s/hearth", state);
    else
        snprintf(path, sizeof path, "%s/.local/state/hearth", home ? home : "/tmp");
    char *slash = path;
    while ((slash = strchr(slash + 1, '/'))) { /* mkdir -p */
        *slash = 0;
        mkdir(path, 0700);
        *slash = '/';
    }
    mkdir(path, 0700);
    strncat(path, "/hearthd.log", sizeof path - strlen(path) - 1);
    int nul = open("/dev/null", O_RDWR);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(log >= 0 ? log : nul, 2);
        close(nul);
    }
    if (log >= 0)
        close(log);
    return p[1];
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"model", required_argument, NULL, 'm'},
        {"socket", required_argument, NULL, 's'},  {"http-port", required_argument, NULL, 'p'},
        {"foreground", no_argument, NULL, 'f'},    {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct daemon d = {.sigfd = -1};
    const char *model_arg = NULL, *socket_arg = NULL;
    long http_port = 0;
    bool foreground = false, check_only = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:m:s:p:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': d.config_path = optarg; break;
        case 'm': model_arg = optarg; break;
        case 's': socket_arg = optarg; break;
        case 'p': {
            char *end;
            errno = 0;
            http_port = strtol(optarg, &end, 10);
            if (errno || *end || http_port < 1 || http_port > 65535)
                die("--http-port: '%s' is not a port number (1-65535)", optarg);
            break;
        }
        case 'f': foreground = true; break;
        case 'C': check_only = true; break;
        case 'V': printf("hearthd %s\n", HEARTH_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see hearthd --help)", argv[optind]);

    struct hr_err err;
    if (hd_config_init(&d.cfg) < 0)
        die("out of memory");
    int rc = hd_config_load(d.config_path, &d.cfg, &err);
    if (rc < 0)
        die("%s", err.msg);
    hd_log_set_level(d.cfg.log.level);
    if (check_only) {
        printf("configuration OK\n");
        hd_config_done(&d.cfg);
        return 0;
    }
    if (http_port) {
        d.cfg.http.enabled = true;
        d.cfg.http.port = (int)http_port;
    }
    const char *model_path = model_arg ? model_arg : d.cfg.model ? d.cfg.model : default_model();
    if (!model_path)
        die("no model: give one with --model FILE or `model:` in the config");
    char *socket_path = socket_arg ? strdup(socket_arg)
                        : d.cfg.socket ? strdup(d.cfg.socket) : default_socket();
    if (!socket_path)
        die("out of memory");

    int64_t t0 = hd_now_ms();
    rc = hr_model_load(model_path, NULL, &d.model, &err);
    if (rc < 0)
        die("cannot load the model %s: %s", model_path, err.msg);

    int ready_fd = -1;
    if (!foreground)
        ready_fd = daemonize();
    if (d.cfg.context > hr_model_n_ctx_train(d.model)) {
        hd_info("context %d is longer than the model was trained for; using %d", d.cfg.context,
                hr_model_n_ctx_train(d.model));
        d.cfg.context = hr_model_n_ctx_train(d.model);
    }
    hd_info("hearthd %s: model %s (%s, %d tokens of training context) loaded in %lld ms",
            HEARTH_VERSION, model_path, hr_model_arch(d.model), hr_model_n_ctx_train(d.model),
            (long long)(hd_now_ms() - t0));

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    /* blocked before any thread starts, so only the signalfd sees them */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);

    const char *fail = NULL;
    char failbuf[1024];
    if ((rc = hd_loop_new(&d.loop)) < 0) {
        fail = "cannot create the event loop";
        goto out;
    }
    d.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d.sigfd < 0 || hd_loop_add_fd(d.loop, d.sigfd, EPOLLIN, on_signal, &d) < 0) {
        fail = "cannot watch signals";
        goto out;
    }
    struct hd_sched_params sp = {
        .model_path = model_path,
        .n_threads = d.cfg.threads,
        .n_ctx = d.cfg.context,
        .n_batch = d.cfg.batch,
        .kv_type = d.cfg.kv_cache,
        .parallel = d.cfg.parallel,
        .max_sessions = d.cfg.sessions,
        .max_queue = d.cfg.limits.max_queue,
        .max_per_client = d.cfg.limits.max_requests_per_client,
        .max_prompt_tokens = d.cfg.limits.max_prompt_tokens,
        .defaults = {d.cfg.sampling.temperature, d.cfg.sampling.top_p, d.cfg.sampling.min_p,
                     d.cfg.sampling.repeat_penalty, d.cfg.sampling.top_k,
                     d.cfg.sampling.max_tokens, true},
    };
    if ((rc = hd_sched_new(d.model, &sp, d.loop, &d.sched, &err)) < 0) {
        snprintf(failbuf, sizeof failbuf, "cannot start the engine: %s", err.msg);
        fail = failbuf;
        goto out;
    }
    if ((rc = hd_sched_set_lora_config(d.sched, &d.cfg.lora)) < 0) {
        snprintf(failbuf, sizeof failbuf, "lora.profiles: %s",
                 rc == -E2BIG ? "a profile stacks more than 8 adapters" : strerror(-rc));
        fail = failbuf;
        goto out;
    }
    d.config_dir = config_dir_of(d.config_path);
    if ((rc = start_tools(&d, &err)) < 0) {
        snprintf(failbuf, sizeof failbuf, "%s", err.msg);
        fail = failbuf;
        goto out;
    }
    struct ipc_limits lim = {.max_message_bytes = d.cfg.limits.max_message_bytes,
                             .max_clients = d.cfg.limits.max_clients};
    if ((rc = ipc_rpc_new(d.loop, d.sched, socket_path, &lim, &d.rpc, &err)) < 0) {
        snprintf(failbuf, sizeof failbuf, "socket %s: %s", socket_path, err.msg);
        fail = failbuf;
        goto out;
    }
    ipc_rpc_set_services(d.rpc, &d.svc);
    hd_info("serving JSON-RPC on %s", socket_path);
    if (d.cfg.http.enabled) {
        rc = ipc_http_new(d.loop, d.sched, d.cfg.http.port, d.cfg.http.token, &lim, &d.http, &err);
        if (rc < 0) {
            snprintf(failbuf, sizeof failbuf, "HTTP on 127.0.0.1:%d: %s", d.cfg.http.port,
                     err.msg);
            fail = failbuf;
            goto out;
        }
        ipc_http_set_cors(d.http, d.cfg.http.cors);
        hd_info("serving the OpenAI-compatible API on http://127.0.0.1:%d/v1", d.cfg.http.port);
    }
    if (d.cfg.dbus.enabled) {
        /* a desktop without a session bus still gets the socket and HTTP */
        if (ipc_dbus_new(d.loop, d.sched, &d.dbus, &err) < 0) {
            hd_warn("D-Bus disabled: %s", err.msg);
        } else {
            ipc_dbus_set_services(d.dbus, &d.svc);
            hd_info("serving org.hearth.Hearth1 on the session bus");
        }
    }
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "", 1);
        (void)w;
        close(ready_fd);
        ready_fd = -1;
    }
    if ((rc = hd_loop_run(d.loop)) < 0) {
        fail = "the event loop failed";
        goto out;
    }
    hd_info("stopped");
out:
    if (fail) {
        if (ready_fd >= 0) {
            dprintf(ready_fd, "hearthd: error: %s\n", fail);
            close(ready_fd);
        }
        hd_error("%s", fail);
    }
    ipc_http_free(d.http);
    ipc_dbus_free(d.dbus);
    ipc_rpc_free(d.rpc);
    luab_rt_free(d.lua); /* runs first: they use the policy, the tools and the scheduler */
    hd_gate_free(d.gate);
    hd_tools_free(d.tools);
    hd_sched_free(d.sched);
    free(d.config_dir);
    if (d.sigfd >= 0)
        close(d.sigfd);
    hd_loop_free(d.loop);
    hr_model_free(d.model);
    hd_config_done(&d.cfg);
    free(socket_path);
    return fail ? 1 : 0;
}
