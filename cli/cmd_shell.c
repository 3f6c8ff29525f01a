/*
 * cmd_shell.c — the shell helper: `hearth cmd TEXT` proposes one command for
 * a task described in words, `hearth explain COMMAND` explains one. Both are
 * clients of hearthd (docs/protocol.md, `chat`); docs/shell.md is the manual.
 *
 * cmd asks for a JSON answer held to a schema by grammar-constrained
 * sampling (json_schema), so even a small model answers in the shape parsed
 * here: the command, a one-line explanation, the model's risk rating and a
 * note. The rating shown is the higher of the model's and the local check's
 * (cli/risk.h): model output is never trusted alone.
 *
 * Nothing runs unless the user says so at a terminal: the command is run
 * (as `$SHELL -c COMMAND`, in the current directory, on the user's terminal)
 * only after an [e]xecute answer read from a terminal on stdin, and a
 * dangerous one only after typing "yes" as well. When stdin is not a
 * terminal, or with --print, --json or --yes, the proposal is printed and
 * nothing runs. The context sent to the model is the shell's name, the
 * system, the current directory and whether the user is root — never the
 * contents of files.
 */
#include "cli.h"

#include "client.h"
#include "err.h"
#include "risk.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The answer's shape. Lengths bound the answer (and a small model's
 * rambling) whatever the model does; the order of the keys is the order the
 * model writes them in. */
static const char *const proposal_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":500},"
    "\"explanation\":{\"type\":\"string\",\"maxLength\":300},"
    "\"risk\":{\"enum\":[\"safe\",\"caution\",\"dangerous\"]},"
    "\"risk_note\":{\"type\":\"string\",\"maxLength\":200}},"
    "\"required\":[\"command\",\"explanation\",\"risk\",\"risk_note\"],"
    "\"additionalProperties\":false}";

#define CMD_MAX_TOKENS 1024 /* fits the schema's lengths with room to spare */

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

/* ---- options ------------------------------------------------------------------------------ */

struct sopts {
    const char *socket;
    long max_tokens;  /* 0: the default */
    double temp;      /* < 0: the daemon's default */
    long long seed;   /* < 0: random */
    bool print, yes, json, verbose;
    char *text;       /* the words after the options, joined with spaces (owned) */
};

/* Options come before the text (the first word that is not an option ends
 * them, as does "--"), so `hearth explain tar -xzvf a.tgz` needs no quotes.
 * `flags` lists the flags this subcommand takes ("print yes json"). */
static void parse_sopts(int argc, char **argv, struct sopts *o, const char *flags)
{
    *o = (struct sopts){.temp = -1, .seed = -1};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help and docs/shell.md\n");
            exit(0);
        }
        bool *flag = !strcmp(a, "--print") && strstr(flags, "print")  ? &o->print
                     : !strcmp(a, "--yes") && strstr(flags, "yes")    ? &o->yes
                     : !strcmp(a, "--json") && strstr(flags, "json")  ? &o->json
                     : !strcmp(a, "-v") || !strcmp(a, "--verbose") ? &o->verbose
                                                                    : NULL;
        if (flag) {
            *flag = true;
            continue;
        }
        bool value = !strcmp(a, "--socket") || !strcmp(a, "-n") || !strcmp(a, "--max-tokens") ||
                     !strcmp(a, "--temp") || !strcmp(a, "--seed");
        if (!value)
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--socket"))
            o->socket = v;
        else if (!strcmp(a, "--temp"))
            o->temp = cli_double(a, v, 0, 100);
        else if (!strcmp(a, "--seed"))
            o->seed = cli_long(a, v, 0, INT64_MAX);
        else
            o->max_tokens = cli_long(a, v, 1, INT32_MAX);
    }
    size_t len = 1;
    for (int k = i; k < argc; k++)
        len += strlen(argv[k]) + 1;
    if (!(o->text = malloc(len)))
        cli_die(1, "out of memory");
    o->text[0] = '\0';
    for (int k = i; k < argc; k++) {
        if (k > i)
            strcat(o->text, " ");
        strcat(o->text, argv[k]);
    }
}

/* ---- the context and the prompts --------------------------------------------------------- */

/* PRETTY_NAME of /etc/os-release (the distribution, so the model picks apt
 * or dnf), into buf; "" when unknown. */
static void os_name(char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        f = fopen("/usr/lib/os-release", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "PRETTY_NAME=", 12))
            continue;
        char *v = line + 12;
        v[strcspn(v, "\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v[n - 1] = '\0';
            v++;
        }
        size_t len = strlen(v) < cap - 1 ? strlen(v) : cap - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
        break;
    }
    fclose(f);
}

/* The user's context as lines "- key: value" (owned). */
static char *context_lines(void)
{
    const char *shell = getenv("SHELL");
    const char *sh = shell && *shell ? strrchr(shell, '/') : NULL;
    sh = sh ? sh + 1 : shell && *shell ? shell : "sh";
    char os[160];
    os_name(os, sizeof os);
    struct utsname u;
    if (uname(&u) < 0)
        memset(&u, 0, sizeof u);
    char *cwd = getcwd(NULL, 0);
    char *s = NULL;
    if (asprintf(&s,
                 "- shell: %s\n- system: %s%s%s %s %s\n- current directory: %s\n"
                 "- running as root: %s\n",
                 sh, os, os[0] ? "; " : "", u.sysname, u.release, u.machine,
                 cwd ? cwd : "(unknown)", geteuid() == 0 ? "yes" : "no") < 0)
        cli_die(1, "out of memory");
    free(cwd);
    return s;
}

static char *cmd_system_prompt(void)
{
    char *ctx = context_lines(), *s = NULL;
    if (asprintf(&s,
                 "You are hearth's shell helper. The user describes a task in words; you "
                 "propose ONE command line that does it, for this system:\n%s"
                 "Answer with a JSON object:\n"
                 "- \"command\": the command line, ready to run (combine steps with pipes or "
                 "&&; no prose, no markdown, no prompt sign)\n"
                 "- \"explanation\": one sentence on what it does\n"
                 "- \"risk\": \"safe\" if it only reads, \"caution\" if it changes files, "
                 "settings, processes or packages, \"dangerous\" if it can destroy data or the "
                 "system or cannot be undone\n"
                 "- \"risk_note\": one short sentence on what could go wrong (\"\" when safe)\n"
                 "Prefer standard tools and options that work on this system; do not invent "
                 "file names the user did not mention.",
                 ctx) < 0)
        cli_die(1, "out of memory");
    free(ctx);
    return s;
}

static char *explain_system_prompt(void)
{
    char *ctx = context_lines(), *s = NULL;
    if (asprintf(&s,
                 "You are hearth's shell helper. The user gives a shell command; explain it for "
                 "this system:\n%s"
                 "First say in one sentence what it does as a whole, then go through its parts "
                 "(programs, options, arguments, pipes, redirections) briefly, then say what "
                 "could go wrong. Plain text, no markdown headings.",
                 ctx) < 0)
        cli_die(1, "out of memory");
    free(ctx);
    return s;
}

/* ---- talking to hearthd ------------------------------------------------------------------- */

static struct ipc_client *connect_or_die(const char *path)
{
    struct ipc_client *c;
    struct hr_err err;
    if (ipc_client_connect(path, &c, &err) < 0)
        cli_die(1, "%s", err.msg);
    return c;
}

/* One `chat` turn: system + user; streamed to on_text when given; json
 * schema when `schema`. Returns the result (owned) or dies with one line. */
static json_t *chat(struct ipc_client *c, const struct sopts *o, const char *system,
                    const char *user, const char *schema, ipc_text_fn on_text, void *ud)
{
    json_t *p = json_object();
    json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", system,
                             "role", "user", "content", user);
    if (!p || !msgs)
        cli_die(1, "the text is not valid UTF-8");
    json_object_set_new(p, "messages", msgs);
    if (schema) {
        json_error_t je;
        json_t *js = json_loads(schema, 0, &je);
        if (!js)
            cli_die(1, "internal: the answer schema is not JSON (%s)", je.text);
        json_object_set_new(p, "json_schema", js);
    }
    if (on_text)
        json_object_set_new(p, "stream", json_true());
    long max = o->max_tokens ? o->max_tokens : schema ? CMD_MAX_TOKENS : 0;
    if (max)
        json_object_set_new(p, "max_tokens", json_integer(max));
    if (o->temp >= 0)
        json_object_set_new(p, "temperature", json_real(o->temp));
    if (o->seed >= 0)
        json_object_set_new(p, "seed", json_integer(o->seed));

    struct ipc_call call = {"chat", p, on_text, ud, &interrupted};
    json_t *res = NULL;
    struct hr_err err;
    int code = 0;
    int rc = ipc_client_call(c, &call, &res, &code, &err);
    json_decref(p);
    if (rc == IPC_CLIENT_RPC_ERROR)
        cli_die(1, "%s (code %d)", err.msg, code);
    if (rc < 0)
        cli_die(1, "%s", err.msg);
    if (o->verbose) {
        json_t *u = json_object_get(res, "usage");
        fprintf(stderr, "[%s; prompt %lld tokens, %lld generated]\n",
                json_string_value(json_object_get(res, "finish_reason")),
                (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
                (long long)json_integer_value(json_object_get(u, "completion_tokens")));
    }
    return res;
}

static const char *finish_of(json_t *res)
{
    const char *fr = json_string_value(json_object_get(res, "finish_reason"));
    return fr ? fr : "";
}

/* ---- the proposal ------------------------------------------------------------------------- */

struct proposal {
    char *command, *explanation, *note; /* owned */
    enum cli_risk model, shown;         /* the model's rating; the higher of both */
    struct cli_risk_report local;
};

static void proposal_done(struct proposal *p)
{
    free(p->command);
    free(p->explanation);
    free(p->note);
}

/* Replaces what would steer the terminal (cli_risk_has_controls) with
 * spaces, in place, keeping `keep` (e.g. "\n\t"): model text is printed,
 * never interpreted. The result is still valid UTF-8. */
static void scrub(char *s, size_t n, const char *keep)
{
    unsigned char *p = (unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if ((p[i] < 0x20 && !(p[i] && strchr(keep, p[i]))) || p[i] == 0x7f)
            p[i] = ' ';
        else if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            p[i] = p[i + 1] = ' ';
    }
}

static char *trimmed(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\n\r", s[n - 1]))
        n--;
    return strndup(s, n);
}

/* Reads the model's answer. The schema makes the shape likely, not certain
 * (a daemon of another version, a cut-off answer): every field is checked. */
static int parse_proposal(const char *text, struct proposal *p, struct hr_err *err)
{
    *p = (struct proposal){0};
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return hr_err_set(err, -EPROTO, -1, "the model's answer is not JSON (%s)", je.text);
    const char *cmd = json_string_value(json_object_get(doc, "command"));
    const char *expl = json_string_value(json_object_get(doc, "explanation"));
    const char *risk = json_string_value(json_object_get(doc, "risk"));
    const char *note = json_string_value(json_object_get(doc, "risk_note"));
    int level = risk ? cli_risk_parse(risk) : -EINVAL;
    int rc = 0;
    if (!cmd || !expl || !note || level < 0) {
        rc = hr_err_set(err, -EPROTO, -1,
                        "the model's answer lacks command, explanation, risk or risk_note");
        goto fail;
    }
    p->command = trimmed(cmd);
    p->explanation = trimmed(expl);
    p->note = trimmed(note);
    if (!p->command || !p->explanation || !p->note) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    if (!p->command[0]) {
        rc = hr_err_set(err, -EPROTO, -1, "the model proposed an empty command; try other words");
        goto fail;
    }
    if (cli_risk_has_controls(p->command)) {
        rc = hr_err_set(err, -EPROTO, -1,
                        "the model's command holds terminal control characters (which could "
                        "hide what it does): not shown; try other words");
        goto fail;
    }
    scrub(p->explanation, strlen(p->explanation), "");
    scrub(p->note, strlen(p->note), "");
    p->model = (enum cli_risk)level;
    cli_risk_classify(p->command, &p->local);
    p->shown = p->local.level > p->model ? p->local.level : p->model;
    json_decref(doc);
    return 0;
fail:
    json_decref(doc);
    proposal_done(p);
    *p = (struct proposal){0};
    return rc;
}

/* "risk: LEVEL — why" from both ratings (owned). */
static char *risk_line(const struct proposal *p)
{
    const char *name = cli_risk_name(p->shown);
    char *s = NULL;
    int n;
    if (p->local.level > p->model)
        n = asprintf(&s, "risk: %s — %s (hearth's check; the model said %s)", name, p->local.why,
                     cli_risk_name(p->model));
    else
        n = asprintf(&s, "risk: %s%s%s%s%s", name, p->note[0] ? " — " : "", p->note,
                     p->local.level > CLI_RISK_SAFE ? "; hearth's check: " : "",
                     p->local.level > CLI_RISK_SAFE ? p->local.why : "");
    if (n < 0)
        cli_die(1, "out of memory");
    return s;
}

static bool color_ok(int fd)
{
    const char *term = getenv("TERM");
    return isatty(fd) && !getenv("NO_COLOR") && !(term && !strcmp(term, "dumb"));
}

static void show(const struct proposal *p)
{
    bool color = color_ok(1);
    const char *bold = color ? "\033[1m" : "", *off = color ? "\033[0m" : "";
    const char *rc = !color                           ? ""
                     : p->shown == CLI_RISK_DANGEROUS ? "\033[1;31m"
                     : p->shown == CLI_RISK_CAUTION   ? "\033[33m"
                                                      : "\033[32m";
    char *risk = risk_line(p);
    printf("%s$ %s%s\n", bold, p->command, off);
    if (p->explanation[0])
        printf("  %s\n", p->explanation);
    printf("  %s%s%s\n", rc, risk, off);
    fflush(stdout);
    free(risk);
}

static void print_json(const struct proposal *p)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "command", p->command,
                          "explanation", p->explanation, "risk", cli_risk_name(p->shown),
                          "risk_note", p->note, "model_risk", cli_risk_name(p->model),
                          "local_risk", cli_risk_name(p->local.level), "local_why",
                          p->local.why);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!s)
        cli_die(1, "out of memory");
    puts(s);
    free(s);
    json_decref(j);
}

/* ---- explanations ------------------------------------------------------------------------- */

struct sink {
    bool last_newline, any;
};

/* Each piece is whole UTF-8 characters (docs/protocol.md), so a C1 control
 * is never split between two pieces. */
static void on_text(void *user, const char *text, size_t len)
{
    struct sink *k = user;
    if (!len)
        return;
    char buf[1024];
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        if (n < len - off && ((unsigned char)text[off + n - 1] == 0xc2))
            n--; /* keep a 2-byte character in one chunk */
        memcpy(buf, text + off, n);
        scrub(buf, n, "\n\t");
        fwrite(buf, 1, n, stdout);
        off += n;
    }
    fflush(stdout);
    k->last_newline = text[len - 1] == '\n';
    k->any = true;
}

/* Streams the model's explanation of `command` to stdout, then the local
 * check when it found something. Returns the finish reason's exit status
 * (130: cancelled with Ctrl-C). */
static int explain(struct ipc_client *c, const struct sopts *o, const char *command)
{
    char *system = explain_system_prompt();
    struct sink k = {.last_newline = true};
    interrupted = 0;
    json_t *res = chat(c, o, system, command, NULL, on_text, &k);
    free(system);
    if (!k.any || !k.last_newline)
        fputc('\n', stdout);
    int status = strcmp(finish_of(res), "cancelled") ? 0 : 130;
    json_decref(res);
    struct cli_risk_report r;
    cli_risk_classify(command, &r);
    if (r.level > CLI_RISK_SAFE) {
        bool color = color_ok(1);
        printf("%shearth's check: %s — %s%s\n",
               !color ? "" : r.level == CLI_RISK_DANGEROUS ? "\033[1;31m" : "\033[33m",
               cli_risk_name(r.level), r.why, color ? "\033[0m" : "");
    }
    fflush(stdout);
    return status;
}

int cmd_explain(int argc, char **argv)
{
    struct sopts o;
    parse_sopts(argc, argv, &o, "");
    if (!o.text[o.text[0] ? strspn(o.text, " \t\n") : 0])
        cli_die(EXIT_USAGE, "missing the command: hearth explain 'COMMAND'");
    struct ipc_client *c = connect_or_die(o.socket);
    catch_sigint();
    int status = explain(c, &o, o.text);
    ipc_client_free(c);
    free(o.text);
    return status;
}

/* ---- asking and running ------------------------------------------------------------------- */

/* Asks `question` on stderr and reads one key from the terminal on stdin,
 * without waiting for Enter. Keys typed before the question are dropped
 * (before it is shown, so a quick answer to it is not), so nothing typed
 * while the model was thinking can answer it. Returns the byte, or -1 (end
 * of input, Ctrl-C, Ctrl-D, an error). */
static int ask_key(const char *question)
{
    struct termios old, raw;
    bool term = tcgetattr(0, &old) == 0;
    if (term) {
        raw = old;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(0, TCSANOW, &raw);
        tcflush(0, TCIFLUSH);
    }
    fputs(question, stderr);
    fflush(stderr);
    unsigned char ch;
    ssize_t r;
    interrupted = 0;
    while ((r = read(0, &ch, 1)) < 0 && errno == EINTR && !interrupted)
        ;
    if (term)
        tcsetattr(0, TCSANOW, &old);
    if (r != 1 || interrupted || ch == 3 || ch == 4)
        return -1;
    return ch;
}

/* Asks `question` and reads a line from the terminal (echoed and edited as
 * usual; earlier typing dropped); true when the line is `want`. */
static bool ask_word_is(const char *question, const char *want)
{
    char line[64];
    size_t n = 0;
    tcflush(0, TCIFLUSH);
    fputs(question, stderr);
    fflush(stderr);
    interrupted = 0;
    for (;;) {
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r < 0 && errno == EINTR && !interrupted)
            continue;
        if (r != 1 || interrupted || ch == '\n')
            break;
        if (n + 1 < sizeof line)
            line[n++] = ch;
    }
    line[n] = '\0';
    return !interrupted && !strcmp(line, want);
}

/* Runs `command` as `$SHELL -c command` (/bin/sh when SHELL is unset) in
 * the current directory, with this process's terminal and environment, and
 * returns its exit status (128+N when killed by signal N). Ctrl-C while it
 * runs goes to the command, not to hearth. */
static int run_in_shell(const char *command)
{
    const char *sh = getenv("SHELL");
    if (!sh || !*sh)
        sh = "/bin/sh";
    fflush(stdout);
    fflush(stderr);
    struct sigaction ign = {0}, old_int, old_quit;
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid < 0)
        cli_die(1, "cannot start %s: %s", sh, strerror(errno));
    if (pid == 0) {
        signal(SIGINT, SIG_DFL); /* ignored signals would stay ignored across exec */
        signal(SIGQUIT, SIG_DFL);
        execl(sh, sh, "-c", command, (char *)NULL);
        fprintf(stderr, "hearth: error: cannot run %s: %s\n", sh, strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

/* The [e]xecute / [d]escribe / [a]bort question. Returns the exit status:
 * the command's when it ran, 1 when it did not. Frees the connection before
 * running anything. */
static int ask_and_run(struct ipc_client **c, const struct sopts *o, const struct proposal *p)
{
    for (;;) {
        int key = ask_key("[e]xecute, [d]escribe, [a]bort? ");
        fprintf(stderr, "%c\n", key > 32 && key < 127 ? key : ' ');
        if (key == 'e' || key == 'E' || key == 'y' || key == 'Y') {
            if (p->shown == CLI_RISK_DANGEROUS) {
                if (!ask_word_is("This command is dangerous. Type yes and Enter to run it: ",
                                 "yes"))
                    break;
            }
            ipc_client_free(*c);
            *c = NULL;
            return run_in_shell(p->command);
        }
        if (key == 'd' || key == 'D') {
            if (explain(*c, o, p->command) == 130)
                fputs("(stopped)\n", stderr);
            continue;
        }
        if (key < 0 || strchr("aAnNqQ\r\n\033", key))
            break;
    }
    fputs("(not run)\n", stderr);
    return 1;
}

int cmd_cmd(int argc, char **argv)
{
    struct sopts o;
    parse_sopts(argc, argv, &o, "print yes json");
    if (!o.text[o.text[0] ? strspn(o.text, " \t\n") : 0])
        cli_die(EXIT_USAGE, "missing the task: hearth cmd \"what you want to do\"");
    struct ipc_client *c = connect_or_die(o.socket);
    catch_sigint();
    char *system = cmd_system_prompt();
    json_t *res = chat(c, &o, system, o.text, proposal_schema, NULL, NULL);
    free(system);
    const char *fr = finish_of(res);
    if (!strcmp(fr, "cancelled"))
        exit(130);
    if (!strcmp(fr, "length") || !strcmp(fr, "context"))
        cli_die(1, "the model's answer was cut off after %lld tokens; allow more with -n N",
                (long long)json_integer_value(
                    json_object_get(json_object_get(res, "usage"), "completion_tokens")));
    struct proposal p;
    struct hr_err err;
    if (parse_proposal(json_string_value(json_object_get(res, "text")), &p, &err) < 0)
        cli_die(1, "%s", err.msg);
    json_decref(res);

    int status = 0;
    if (o.json) {
        print_json(&p);
    } else if (o.print) {
        /* the command alone on stdout (the key bindings put it on the prompt line);
         * the rating where the user still sees it */
        printf("%s\n", p.command);
        fflush(stdout);
        if (p.shown > CLI_RISK_SAFE) {
            char *risk = risk_line(&p);
            fprintf(stderr, "hearth: %s\n", risk);
            free(risk);
        }
    } else {
        show(&p);
        if (o.yes)
            fputs("hearth: not run: --yes does not run commands; hearth runs one only when you "
                  "answer at a terminal\n",
                  stderr);
        else if (!isatty(0))
            fputs("hearth: not run: stdin is not a terminal (hearth runs a command only when "
                  "you answer at one)\n",
                  stderr);
        else
            status = ask_and_run(&c, &o, &p);
    }
    proposal_done(&p);
    ipc_client_free(c);
    free(o.text);
    return status;
}
