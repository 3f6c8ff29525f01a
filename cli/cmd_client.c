/*
 * cmd_client.c — the `hearth` subcommands that talk to a running hearthd over
 * its socket (docs/protocol.md): ask (one question, streamed), chat (an
 * interactive conversation kept in a daemon session) and status.
 *
 * The answer streams to stdout as it arrives; messages and statistics go to
 * stderr; failures are one line "hearth: error: ..." (cli.h). Ctrl-C during
 * an answer cancels it on the daemon (the request ends "cancelled").
 */
#include "cli.h"

#include "client.h"

#include <editline/readline.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Without SA_RESTART, so a blocked read returns and the flag is seen. */
static void catch_sigint(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- options ---------------------------------------------------------------------- */

struct copts {
    const char *socket, *session, *system;
    long max_tokens;    /* 0: the daemon's default */
    double temp;        /* < 0: the daemon's default */
    long long seed;     /* < 0: random */
    bool raw, json, verbose;
    char **rest;        /* positional arguments */
    int n_rest;
};

/* Parses the options a subcommand takes: `allowed` lists them by group
 * ("session system gen raw json verbose"; --socket is always there). */
static void parse_copts(int argc, char **argv, struct copts *o, const char *allowed)
{
    *o = (struct copts){.temp = -1, .seed = -1};
    o->rest = calloc((size_t)argc, sizeof *o->rest);
    if (!o->rest)
        cli_die(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help\n");
            exit(0);
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            o->rest[o->n_rest++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            while (++i < argc)
                o->rest[o->n_rest++] = argv[i];
            break;
        }
        /* flags without a value */
        if (!strcmp(a, "--raw") && strstr(allowed, "raw")) {
            o->raw = true;
            continue;
        }
        if (!strcmp(a, "--json") && strstr(allowed, "json")) {
            o->json = true;
            continue;
        }
        if ((!strcmp(a, "-v") || !strcmp(a, "--verbose")) && strstr(allowed, "verbose")) {
            o->verbose = true;
            continue;
        }
        /* options with a value */
        bool gen = strstr(allowed, "gen") != NULL;
        const char **str = !strcmp(a, "--socket")                               ? &o->socket
                           : !strcmp(a, "--session") && strstr(allowed, "session") ? &o->session
                           : !strcmp(a, "--system") && strstr(allowed, "system")   ? &o->system
                                                                                   : NULL;
        bool num = gen && (!strcmp(a, "--max-tokens") || !strcmp(a, "-n") ||
                           !strcmp(a, "--temp") || !strcmp(a, "--seed"));
        if (!str && !num)
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: missing value", a);
        const char *v = argv[++i];
        if (str)
            *str = v;
        else if (!strcmp(a, "--temp"))
            o->temp = cli_double(a, v, 0, 100);
        else if (!strcmp(a, "--seed"))
            o->seed = cli_long(a, v, 0, INT64_MAX);
        else
            o->max_tokens = cli_long(a, v, 1, INT32_MAX);
    }
}

/* The sampling keys the options set, on a params object. */
static void put_gen(json_t *p, const struct copts *o)
{
    if (o->max_tokens > 0)
        json_object_set_new(p, "max_tokens", json_integer(o->max_tokens));
    if (o->temp >= 0)
        json_object_set_new(p, "temperature", json_real(o->temp));
    if (o->seed >= 0)
        json_object_set_new(p, "seed", json_integer(o->seed));
}

static struct ipc_client *connect_or_die(const char *path)
{
    struct ipc_client *c;
    struct hr_err err;
    if (ipc_client_connect(path, &c, &err) < 0)
        cli_die(1, "%s", err.msg);
    return c;
}

/* Runs one call; dies with the daemon's (or the connection's) message. */
static json_t *call_or_die(struct ipc_client *c, const struct ipc_call *call)
{
    json_t *res = NULL;
    struct hr_err err;
    int code = 0;
    int rc = ipc_client_call(c, call, &res, &code, &err);
    if (rc == IPC_CLIENT_RPC_ERROR)
        cli_die(1, "%s (code %d)", err.msg, code);
    if (rc < 0)
        cli_die(1, "%s", err.msg);
    return res;
}

/* ---- streaming output ------------------------------------------------------------------ */

struct sink {
    bool last_newline; /* the last byte written was '\n' (or nothing was written) */
    bool any;
};

static void on_text(void *user, const char *text, size_t len)
{
    struct sink *k = user;
    if (len == 0)
        return;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    k->last_newline = text[len - 1] == '\n';
    k->any = true;
}

static void end_line(const struct sink *k)
{
    if (!k->any || !k->last_newline)
        fputc('\n', stdout);
    fflush(stdout);
}

static void print_usage_line(json_t *res)
{
    json_t *u = json_object_get(res, "usage"), *t = json_object_get(res, "timings");
    fprintf(stderr,
            "[%s; prompt %lld tokens (%lld cached, %lld evaluated), %lld generated, "
            "%.1f tokens/s]\n",
            json_string_value(json_object_get(res, "finish_reason")),
            (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
            (long long)json_integer_value(json_object_get(u, "cached_tokens")),
            (long long)json_integer_value(json_object_get(u, "evaluated_tokens")),
            (long long)json_integer_value(json_object_get(u, "completion_tokens")),
            json_number_value(json_object_get(t, "generation_tokens_per_second")));
}

/* ---- ask ---------------------------------------------------------------------------- */

int cmd_ask(int argc, char **argv)
{
    struct copts o;
    parse_copts(argc, argv, &o, "session gen raw verbose");
    if (o.n_rest == 0)
        cli_die(EXIT_USAGE, "missing the question: hearth ask \"...\"");
    /* the words of the question, joined as the shell split them */
    size_t len = 0;
    for (int i = 0; i < o.n_rest; i++)
        len += strlen(o.rest[i]) + 1;
    char *prompt = malloc(len + 1);
    if (!prompt)
        cli_die(1, "out of memory");
    prompt[0] = '\0';
    for (int i = 0; i < o.n_rest; i++) {
        if (i)
            strcat(prompt, " ");
        strcat(prompt, o.rest[i]);
    }

    json_t *p = json_object();
    if (o.raw)
        json_object_set_new(p, "prompt", json_string(prompt));
    else
        json_object_set_new(p, "messages", json_pack("[{s:s, s:s}]", "role", "user", "content",
                                                     prompt));
    json_object_set_new(p, "stream", json_true());
    if (o.session)
        json_object_set_new(p, "session", json_string(o.session));
    put_gen(p, &o);
    if (json_object_size(p) == 0 || !json_object_get(p, o.raw ? "prompt" : "messages"))
        cli_die(1, "the question is not valid UTF-8");

    struct ipc_client *c = connect_or_die(o.socket);
    catch_sigint();
    struct sink k = {.last_newline = true};
    struct ipc_call call = {o.raw ? "complete" : "chat", p, on_text, &k, &interrupted};
    json_t *res = call_or_die(c, &call);
    end_line(&k);
    if (o.verbose)
        print_usage_line(res);
    const char *fr = json_string_value(json_object_get(res, "finish_reason"));
    int status = fr && !strcmp(fr, "cancelled") ? 130 : 0;
    json_decref(res);
    json_decref(p);
    ipc_client_free(c);
    free(prompt);
    free(o.rest);
    return status;
}

/* ---- chat --------------------------------------------------------------------------- */

/* libedit's character source: a Ctrl-C at the prompt ends the line reading
 * (readline returns NULL) instead of being retried. */
static int chat_getc(FILE *f)
{
    unsigned char ch;
    for (;;) {
        ssize_t r = read(fileno(f), &ch, 1);
        if (r == 1)
            return ch;
        if (r < 0 && errno == EINTR && !interrupted)
            continue;
        return EOF;
    }
}

/* One line of input without its newline (owned: free), or NULL at the end. */
static char *read_line(bool tty)
{
    if (tty) {
        char *line = readline("> ");
        if (line && line[0])
            add_history(line);
        return line;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    return line;
}

static json_t *new_history(const char *system)
{
    json_t *h = json_array();
    if (h && system)
        json_array_append_new(h, json_pack("{s:s, s:s}", "role", "system", "content", system));
    return h;
}

int cmd_chat(int argc, char **argv)
{
    struct copts o;
    parse_copts(argc, argv, &o, "session system gen verbose");
    if (o.n_rest)
        cli_die(EXIT_USAGE, "unexpected argument '%s' (see hearth --help)", o.rest[0]);
    /* A session of our own unless one is named: it is closed at the end. */
    char own[64];
    const char *session = o.session;
    if (!session) {
        snprintf(own, sizeof own, "chat-%ld-%lld", (long)getpid(), (long long)time(NULL));
        session = own;
    }
    struct ipc_client *c = connect_or_die(o.socket);
    bool tty = isatty(0);
    if (tty) {
        rl_readline_name = "hearth";
        rl_catch_signals = 0;
        rl_getc_function = chat_getc;
        rl_initialize();
        using_history();
        fprintf(stderr, "hearth chat: /reset starts over, /exit or Ctrl-D quits, Ctrl-C stops "
                        "an answer\n");
    }
    catch_sigint();
    json_t *history = new_history(o.system);
    if (!history)
        cli_die(1, "out of memory");
    for (;;) {
        interrupted = 0;
        char *line = read_line(tty);
        if (!line || interrupted) {
            free(line);
            break;
        }
        if (!line[strspn(line, " \t\r")]) {
            free(line);
            continue;
        }
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/reset")) {
            free(line);
            json_decref(history);
            history = new_history(o.system);
            /* the daemon's cache of the old conversation is of no use now */
            json_t *p = json_pack("{s:s}", "session", session), *res = NULL;
            struct ipc_call call = {"session.close", p, NULL, NULL, NULL};
            struct hr_err err;
            int rc = ipc_client_call(c, &call, &res, NULL, &err);
            json_decref(p);
            json_decref(res);
            if (rc < 0)
                cli_die(1, "%s", err.msg);
            if (tty)
                fprintf(stderr, "(new conversation)\n");
            continue;
        }
        size_t turn = json_array_size(history);
        json_t *user = json_pack("{s:s, s:s}", "role", "user", "content", line);
        free(line);
        if (!user) {
            fprintf(stderr, "hearth: that line is not valid UTF-8; try again\n");
            continue;
        }
        json_array_append_new(history, user);
        json_t *p = json_pack("{s:O, s:s, s:b}", "messages", history, "session", session,
                              "stream", 1);
        put_gen(p, &o);
        struct sink k = {.last_newline = true};
        struct ipc_call call = {"chat", p, on_text, &k, &interrupted};
        json_t *res = call_or_die(c, &call);
        json_decref(p);
        end_line(&k);
        if (o.verbose)
            print_usage_line(res);
        const char *fr = json_string_value(json_object_get(res, "finish_reason"));
        if (fr && !strcmp(fr, "cancelled")) {
            /* the turn did not happen: the next question follows the last answer */
            fprintf(stderr, "(cancelled)\n");
            while (json_array_size(history) > turn)
                json_array_remove(history, turn);
        } else {
            json_array_append_new(history,
                                  json_pack("{s:s, s:O}", "role", "assistant", "content",
                                            json_object_get(res, "text")));
        }
        json_decref(res);
    }
    if (!o.session) {
        json_t *p = json_pack("{s:s}", "session", session), *res = NULL;
        struct ipc_call call = {"session.close", p, NULL, NULL, NULL};
        struct hr_err err;
        ipc_client_call(c, &call, &res, NULL, &err); /* best effort: the daemon forgets idle ones */
        json_decref(p);
        json_decref(res);
    }
    json_decref(history);
    ipc_client_free(c);
    free(o.rest);
    return 0;
}

/* ---- status ------------------------------------------------------------------------- */

static long long geti(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

int cmd_status(int argc, char **argv)
{
    struct copts o;
    parse_copts(argc, argv, &o, "json");
    if (o.n_rest)
        cli_die(EXIT_USAGE, "unexpected argument '%s' (see hearth --help)", o.rest[0]);
    struct ipc_client *c = connect_or_die(o.socket);
    struct ipc_call call = {"status", NULL, NULL, NULL, NULL};
    json_t *st = call_or_die(c, &call);
    call.method = "model.info";
    json_t *mi = call_or_die(c, &call);
    if (o.json) {
        json_object_set(st, "model", mi);
        char *s = json_dumps(st, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
        if (!s)
            cli_die(1, "out of memory");
        puts(s);
        free(s);
    } else {
        long long up = geti(st, "uptime_ms") / 1000;
        printf("hearthd %s (protocol %lld), up %lldh %02lldm %02llds\n",
               json_string_value(json_object_get(st, "version")), geti(st, "protocol_version"),
               up / 3600, up / 60 % 60, up % 60);
        printf("model:     %s (%s, %lld tokens, context %lld per session%s)\n",
               json_string_value(json_object_get(mi, "path")),
               json_string_value(json_object_get(mi, "arch")), geti(mi, "n_vocab"),
               geti(mi, "n_ctx"),
               json_is_true(json_object_get(mi, "chat_template")) ? ", chat template" : "");
        printf("requests:  %lld running, %lld queued (at most %lld at once), %lld served\n",
               geti(st, "running"), geti(st, "queued"), geti(st, "parallel"),
               geti(st, "requests_total"));
        printf("sessions:  %lld\n", geti(st, "sessions"));
        printf("clients:   %lld\n", geti(st, "clients"));
        printf("tokens:    %lld evaluated, %lld generated\n", geti(st, "tokens_evaluated"),
               geti(st, "tokens_generated"));
    }
    json_decref(st);
    json_decref(mi);
    ipc_client_free(c);
    free(o.rest);
    return 0;
}
