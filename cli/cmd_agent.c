/*
 * cmd_agent.c — the `hearth` subcommands for tools, scripts and the agent,
 * clients of a running hearthd (docs/protocol.md, docs/agent.md):
 *
 *   hearth tools [--json]                    the tools and their policy
 *   hearth tool [--yes] NAME ['JSON']        call one tool
 *   hearth run [--yes] SCRIPT.lua [ARGS...]  run a Lua script in the daemon
 *   hearth agent [--yes] [options] "TASK"    run the agent on a task
 *
 * The workspace of tools is the current directory. When the daemon asks for
 * an approval (a write or exec tool, by default), the user is asked on the
 * terminal: the call runs only after "y" or "yes"; anything else — or the
 * end of input — declines it. --yes answers yes to every approval of this
 * command. Results go to stdout; steps, approvals and messages to stderr.
 */
#include "cli.h"

#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_sigint(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

struct aopts {
    const char *socket, *tools, *format, *choice;
    bool yes, json;
    long max_steps, max_tokens;
    double temp;
    long long seed;
    char **rest;
    int n_rest;
};

/* --socket, --yes and, per command, the ones in `allowed` ("json agent"). */
static void parse_aopts(int argc, char **argv, struct aopts *o, const char *allowed)
{
    *o = (struct aopts){.temp = -1, .seed = -1};
    o->rest = calloc((size_t)argc, sizeof *o->rest);
    if (!o->rest)
        cli_die(1, "out of memory");
    bool agent = strstr(allowed, "agent") != NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help\n");
            exit(0);
        }
        if (a[0] != '-' || !strcmp(a, "-") || o->n_rest > 0) {
            /* after the first positional argument everything is an argument
             * (a script's own options, a tool's JSON) */
            o->rest[o->n_rest++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            while (++i < argc)
                o->rest[o->n_rest++] = argv[i];
            break;
        }
        if (!strcmp(a, "--yes") || !strcmp(a, "-y")) {
            o->yes = true;
            continue;
        }
        if (!strcmp(a, "--json") && strstr(allowed, "json")) {
            o->json = true;
            continue;
        }
        bool known = !strcmp(a, "--socket") ||
                     (agent && (!strcmp(a, "--tools") || !strcmp(a, "--format") ||
                                !strcmp(a, "--tool-choice") || !strcmp(a, "--max-steps") ||
                                !strcmp(a, "--temp") || !strcmp(a, "--seed") ||
                                !strcmp(a, "-n") || !strcmp(a, "--max-tokens")));
        if (!known)
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--socket"))
            o->socket = v;
        else if (!strcmp(a, "--tools"))
            o->tools = v;
        else if (!strcmp(a, "--format"))
            o->format = v;
        else if (!strcmp(a, "--tool-choice"))
            o->choice = v;
        else if (!strcmp(a, "--max-steps"))
            o->max_steps = cli_long(a, v, 1, 1000);
        else if (!strcmp(a, "--temp"))
            o->temp = cli_double(a, v, 0, 100);
        else if (!strcmp(a, "--seed"))
            o->seed = cli_long(a, v, 0, INT64_MAX);
        else
            o->max_tokens = cli_long(a, v, 1, INT32_MAX);
    }
}

static struct ipc_client *connect_or_die(const char *path)
{
    struct ipc_client *c;
    struct hr_err err;
    if (ipc_client_connect(path, &c, &err) < 0)
        cli_die(1, "%s", err.msg);
    return c;
}

static char *cwd_or_die(void)
{
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        cli_die(1, "cannot get the current directory: %s", strerror(errno));
    return cwd;
}

/* o[key] when it is a string, else def. */
static const char *str(json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* ---- approvals --------------------------------------------------------------------- */

struct session {
    struct ipc_client *c;
    bool yes;
    bool agent;     /* print agent steps */
    bool text_open; /* agent text printed without a final newline */
};

/* Asks the user; true only for "y" or "yes". */
static bool ask_user(void)
{
    char line[256];
    fputs("Allow it? [y/N] ", stderr);
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin)) {
        fputs("\n(no answer: declined)\n", stderr);
        return false;
    }
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return !strcasecmp(s, "y") || !strcasecmp(s, "yes");
}

static void approval(struct session *ss, json_t *p)
{
    const char *tool = json_string_value(json_object_get(p, "tool"));
    const char *call_id = json_string_value(json_object_get(p, "call_id"));
    char *args = json_dumps(json_object_get(p, "arguments"), JSON_ENCODE_ANY | JSON_COMPACT);
    if (ss->text_open) {
        fputc('\n', stdout);
        fflush(stdout);
        ss->text_open = false;
    }
    fprintf(stderr, "hearth: %s wants to run: %s %s\n", ss->agent ? "the agent" : "hearthd",
            tool ? tool : "?", args ? args : "");
    fprintf(stderr, "  risk: %s (%s); workspace %s\n",
            str(p, "risk", "?"),
            str(p, "reason", ""),
            str(p, "workspace", "?"));
    free(args);
    bool yes = ss->yes;
    if (yes)
        fputs("  approved (--yes)\n", stderr);
    else
        yes = ask_user();
    if (!call_id)
        return;
    json_t *params = json_pack("{s:s, s:b}", "call_id", call_id, "approve", yes);
    struct hr_err err;
    if (!params || ipc_client_send(ss->c, "approval.respond", params, &err) < 0)
        fprintf(stderr, "hearth: could not answer the approval: %s\n",
                params ? err.msg : "out of memory");
    json_decref(params);
}

/* A short, one-line view of a tool's output. */
static void print_snippet(const char *prefix, const char *text)
{
    size_t n = strcspn(text, "\n");
    bool more = text[n] != 0;
    fprintf(stderr, "%s%.*s%s\n", prefix, (int)(n > 160 ? 160 : n), text,
            more || n > 160 ? " ..." : "");
}

static void on_notify(void *user, const char *method, json_t *p)
{
    struct session *ss = user;
    if (!strcmp(method, "approval.request")) {
        approval(ss, p);
        return;
    }
    const char *text = json_string_value(json_object_get(p, "text"));
    if (!strcmp(method, "script.output") || !strcmp(method, "agent.output")) {
        if (text) {
            fputs(text, stdout);
            fflush(stdout);
        }
    } else if (!strcmp(method, "script.log") || !strcmp(method, "agent.log")) {
        fprintf(stderr, "[%s] %s\n", str(p, "level", "info"),
                str(p, "message", ""));
    } else if (!strcmp(method, "script.event")) {
        char *d = json_dumps(json_object_get(p, "data"), JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(stderr, "event %s: %s\n", str(p, "kind", "?"),
                d ? d : "");
        free(d);
    } else if (!strcmp(method, "agent.text")) {
        if (text && text[0]) {
            fputs(text, stdout);
            fflush(stdout);
            ss->text_open = text[strlen(text) - 1] != '\n';
        }
    } else if (!strcmp(method, "agent.tool_call")) {
        if (ss->text_open) {
            fputc('\n', stdout);
            fflush(stdout);
            ss->text_open = false;
        }
        fprintf(stderr, "-> %s %s\n", str(p, "name", "?"),
                str(p, "arguments", ""));
    } else if (!strcmp(method, "agent.tool_result")) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "<- %s: ",
                 str(p, "status", "?"));
        print_snippet(prefix, str(p, "output", ""));
    } else if (!strcmp(method, "agent.step")) {
        json_int_t step = json_integer_value(json_object_get(p, "step"));
        if (step > 1)
            fprintf(stderr, "-- step %lld\n", (long long)step);
    }
}

/* Runs a call with the approval and step callbacks; an error answer ends
 * the program with its message. */
static json_t *run_call_or_die(struct session *ss, const char *method, json_t *params)
{
    struct ipc_call call = {.method = method, .params = params, .on_notify = on_notify,
                            .user = ss, .interrupt = &interrupted};
    json_t *res = NULL;
    struct hr_err err;
    int code = 0;
    int rc = ipc_client_call(ss->c, &call, &res, &code, &err);
    if (ss->text_open) {
        fputc('\n', stdout);
        ss->text_open = false;
    }
    fflush(stdout);
    if (rc == IPC_CLIENT_RPC_ERROR)
        cli_die(1, "%s", err.msg);
    if (rc < 0)
        cli_die(1, "%s", err.msg);
    return res;
}

/* ---- hearth tools ---------------------------------------------------------------------- */

int cmd_tools(int argc, char **argv)
{
    struct aopts o;
    parse_aopts(argc, argv, &o, "json");
    if (o.n_rest)
        cli_die(EXIT_USAGE, "hearth tools takes no arguments");
    struct session ss = {.c = connect_or_die(o.socket)};
    json_t *res = run_call_or_die(&ss, "tools.list", NULL);
    if (o.json) {
        char *s = json_dumps(res, JSON_INDENT(2));
        puts(s ? s : "{}");
        free(s);
    } else {
        json_t *tools = json_object_get(res, "tools");
        size_t i;
        json_t *t;
        if (!json_is_true(json_object_get(res, "available")))
            fputs("hearth: hearthd runs without tools (see its log)\n", stderr);
        json_array_foreach(tools, i, t) {
            const char *d = str(t, "description", "");
            printf("%-14s %-5s %-5s %.*s\n", str(t, "name", "?"),
                   str(t, "risk", "?"),
                   str(t, "policy", "?"),
                   (int)strcspn(d, ".\n"), d);
        }
        json_t *errs = json_object_get(res, "errors");
        json_array_foreach(errs, i, t)
            fprintf(stderr, "hearth: plugin problem: %s\n", json_string_value(t) ? json_string_value(t) : "?");
    }
    json_decref(res);
    ipc_client_free(ss.c);
    free(o.rest);
    return 0;
}

/* ---- hearth tool ----------------------------------------------------------------------- */

int cmd_tool(int argc, char **argv)
{
    struct aopts o;
    parse_aopts(argc, argv, &o, "json");
    if (o.n_rest < 1 || o.n_rest > 2)
        cli_die(EXIT_USAGE, "usage: hearth tool [--yes] NAME ['JSON arguments']");
    json_error_t je;
    json_t *args = o.n_rest == 2 ? json_loads(o.rest[1], 0, &je) : json_object();
    if (!json_is_object(args))
        cli_die(EXIT_USAGE, "the arguments must be a JSON object, e.g. '{\"path\": \"README.md\"}'"
                            "%s%s", args ? "" : ": ", args ? "" : je.text);
    char *cwd = cwd_or_die();
    catch_sigint();
    struct session ss = {.c = connect_or_die(o.socket), .yes = o.yes};
    json_t *params = json_pack("{s:s, s:o, s:s}", "name", o.rest[0], "arguments", args,
                               "workspace", cwd);
    json_t *res = run_call_or_die(&ss, "tool.call", params);
    json_decref(params);
    int rc = 0;
    if (o.json) {
        char *s = json_dumps(res, JSON_INDENT(2));
        puts(s ? s : "{}");
        free(s);
        rc = json_is_true(json_object_get(res, "ok")) ? 0 : 1;
    } else {
        const char *out = str(res, "output", "");
        fputs(out, stdout);
        if (out[0] && out[strlen(out) - 1] != '\n')
            fputc('\n', stdout);
        if (json_is_true(json_object_get(res, "truncated")))
            fputs("hearth: (output truncated)\n", stderr);
        if (!json_is_true(json_object_get(res, "ok"))) {
            fprintf(stderr, "hearth: error: %s (%s)\n",
                    str(res, "error", "the call failed"),
                    str(res, "status", "?"));
            rc = 1;
        }
    }
    json_decref(res);
    ipc_client_free(ss.c);
    free(cwd);
    free(o.rest);
    return rc;
}

/* ---- hearth run ------------------------------------------------------------------------ */

static char *read_file_or_die(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        cli_die(1, "cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            cli_die(1, "out of memory");
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap >= ((size_t)16 << 20))
            cli_die(1, "%s is larger than 16 MiB", path);
        cap *= 2;
        buf = realloc(buf, cap);
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad)
        cli_die(1, "cannot read %s", path);
    *len = n;
    return buf;
}

int cmd_run(int argc, char **argv)
{
    struct aopts o;
    parse_aopts(argc, argv, &o, "json");
    if (o.n_rest < 1)
        cli_die(EXIT_USAGE, "usage: hearth run [--yes] SCRIPT.lua [ARGS...]");
    size_t len;
    char *src = read_file_or_die(o.rest[0], &len);
    const char *base = strrchr(o.rest[0], '/');
    base = base ? base + 1 : o.rest[0];
    json_t *args = json_array();
    for (int i = 1; args && i < o.n_rest; i++)
        json_array_append_new(args, json_string(o.rest[i]));
    json_t *source = json_stringn(src, len);
    if (!source)
        cli_die(1, "%s is not UTF-8 text", o.rest[0]);
    char *cwd = cwd_or_die();
    catch_sigint();
    struct session ss = {.c = connect_or_die(o.socket), .yes = o.yes};
    json_t *params = json_pack("{s:o, s:s, s:o, s:s}", "source", source, "name", base, "args",
                               args, "workspace", cwd);
    struct ipc_call call = {.method = "script.run", .params = params, .on_notify = on_notify,
                            .user = &ss, .interrupt = &interrupted};
    json_t *res = NULL;
    struct hr_err err;
    int code = 0;
    int rc = ipc_client_call(ss.c, &call, &res, &code, &err);
    fflush(stdout);
    json_decref(params);
    if (rc == IPC_CLIENT_RPC_ERROR) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        rc = 1;
    } else if (rc < 0) {
        cli_die(1, "%s", err.msg);
    } else {
        json_t *vals = json_object_get(res, "result");
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v) {
            if (json_is_string(v)) {
                puts(json_string_value(v));
            } else if (!json_is_null(v)) {
                char *s = json_dumps(v, JSON_ENCODE_ANY | (o.json ? JSON_INDENT(2) : JSON_COMPACT));
                puts(s ? s : "?");
                free(s);
            }
        }
        json_decref(res);
    }
    ipc_client_free(ss.c);
    free(cwd);
    free(src);
    free(o.rest);
    return rc;
}

/* ---- hearth agent ------------------------------------------------------------------------ */

int cmd_agent(int argc, char **argv)
{
    struct aopts o;
    parse_aopts(argc, argv, &o, "json agent");
    if (o.n_rest < 1)
        cli_die(EXIT_USAGE, "usage: hearth agent [--yes] [--max-steps N] [--tools a,b] \"TASK\"");
    /* the task: every positional argument, joined by spaces */
    size_t tl = 0;
    for (int i = 0; i < o.n_rest; i++)
        tl += strlen(o.rest[i]) + 1;
    char *task = calloc(1, tl + 1);
    if (!task)
        cli_die(1, "out of memory");
    for (int i = 0; i < o.n_rest; i++) {
        if (i)
            strcat(task, " ");
        strcat(task, o.rest[i]);
    }
    char *cwd = cwd_or_die();
    json_t *params = json_pack("{s:s, s:s}", "task", task, "workspace", cwd);
    if (!params)
        cli_die(1, "the task is not UTF-8 text");
    if (o.tools) {
        json_t *arr = json_array();
        char *copy = strdup(o.tools), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(t));
        free(copy);
        json_object_set_new(params, "tools", arr);
    }
    if (o.format)
        json_object_set_new(params, "format", json_string(o.format));
    if (o.choice)
        json_object_set_new(params, "tool_choice", json_string(o.choice));
    if (o.max_steps > 0)
        json_object_set_new(params, "max_steps", json_integer(o.max_steps));
    if (o.max_tokens > 0)
        json_object_set_new(params, "max_tokens", json_integer(o.max_tokens));
    if (o.temp >= 0)
        json_object_set_new(params, "temperature", json_real(o.temp));
    if (o.seed >= 0)
        json_object_set_new(params, "seed", json_integer(o.seed));
    catch_sigint();
    struct session ss = {.c = connect_or_die(o.socket), .yes = o.yes, .agent = true};
    struct ipc_call call = {.method = "agent.run", .params = params, .on_notify = on_notify,
                            .user = &ss, .interrupt = &interrupted};
    json_t *res = NULL;
    struct hr_err err;
    int code = 0;
    int rc = ipc_client_call(ss.c, &call, &res, &code, &err);
    if (ss.text_open)
        fputc('\n', stdout);
    fflush(stdout);
    json_decref(params);
    if (rc == IPC_CLIENT_RPC_ERROR) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        rc = 1;
    } else if (rc < 0) {
        cli_die(1, "%s", err.msg);
    } else {
        const char *finish = str(res, "finish", "?");
        if (o.json) {
            char *s = json_dumps(res, JSON_INDENT(2));
            puts(s ? s : "{}");
            free(s);
        }
        if (strcmp(finish, "answer")) {
            fprintf(stderr, "hearth: the agent stopped without an answer (%s)\n", finish);
            rc = 1;
        }
        json_decref(res);
    }
    ipc_client_free(ss.c);
    free(cwd);
    free(task);
    free(o.rest);
    return rc;
}
