/*
 * risk.c — the local risk check of a shell command line (risk.h).
 *
 * Two parts. A lexer reads the line as a POSIX shell would split it: words
 * with their quotes removed, the operators that end a simple command (`;`
 * `&` `&&` `||` `|` newline parentheses), redirections with their targets,
 * here-document bodies (skipped), and command substitutions, whose text is
 * checked recursively as a command line of its own. Each simple command is
 * then classified: wrappers that run another command (sudo, env, xargs,
 * timeout, find -exec, sh -c, ssh, ...) are looked through, and what remains
 * is matched against `risk_rules` (risk_table.c): programs, subcommands, options.
 * Pipelines are followed far enough to see a download (curl, wget) feeding a
 * shell or interpreter.
 *
 * The result is the highest level any part of the line reaches, with the
 * reasons found at that level. Nothing here runs, expands or opens anything.
 */
#include "risk_table.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8     /* substitutions / sh -c / -exec nested deeper are not followed */
#define MAX_HEREDOCS 16 /* pending here-documents on one line */

#define SAFE CLI_RISK_SAFE
#define CAUTION CLI_RISK_CAUTION
#define DANGEROUS CLI_RISK_DANGEROUS

static const char *const fetched = "runs a script downloaded from the network, unseen";

/* ---- the report --------------------------------------------------------------------------- */

struct ctx {
    struct cli_risk_report *out;
};

static void note(struct ctx *c, enum cli_risk level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(struct ctx *c, enum cli_risk level, const char *fmt, ...)
{
    struct cli_risk_report *r = c->out;
    if (level < r->level || level == SAFE)
        return;
    char why[sizeof r->why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (level > r->level) {
        r->level = level;
        snprintf(r->why, sizeof r->why, "%s", why);
        return;
    }
    /* the same level: add the reason unless it is there or does not fit */
    size_t n = strlen(r->why), m = strlen(why);
    if (strstr(r->why, why) || n + 2 + m >= sizeof r->why)
        return;
    memcpy(r->why + n, "; ", 2);
    memcpy(r->why + n + 2, why, m + 1);
}

/* ---- matching ----------------------------------------------------------------------------- */

/* Calls fn for each space-separated item of list until it returns true. */
static bool any_item(const char *list, const char *word, bool (*fn)(const char *pat, const char *w))
{
    char pat[64];
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        if (n < sizeof pat) {
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (fn(pat, word))
                return true;
        }
        p += n;
    }
    return false;
}

static bool glob_match(const char *pat, const char *w)
{
    return fnmatch(pat, w, 0) == 0;
}

/* As glob_match, and "-x" also finds x in a cluster of short options. */
static bool arg_match(const char *pat, const char *w)
{
    if (pat[0] == '-' && isalnum((unsigned char)pat[1]) && !pat[2] && w[0] == '-' &&
        w[1] != '-') {
        for (const char *q = w + 1; isalnum((unsigned char)*q); q++)
            if (*q == pat[1])
                return true;
        return false;
    }
    return glob_match(pat, w);
}

static bool in_list(const char *list, const char *w)
{
    return any_item(list, w, glob_match);
}

static bool has_arg(const char *list, char **av, int ac)
{
    for (int i = 0; i < ac; i++)
        if (any_item(list, av[i], arg_match))
            return true;
    return false;
}

/* The name a command runs under: "/usr/bin/rm" → "rm". */
static const char *base_name(const char *w)
{
    const char *s = strrchr(w, '/');
    return s && s[1] ? s + 1 : w;
}

/* NAME=VALUE before a command. */
static bool is_assignment(const char *w)
{
    if (!(isalpha((unsigned char)w[0]) || w[0] == '_'))
        return false;
    const char *p = w;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    return *p == '=' || (p[0] == '+' && p[1] == '=');
}

static bool is_option(const char *w)
{
    return w[0] == '-' && w[1];
}

/* Options of some programs that come before the subcommand with a value. */
static bool global_value_option(const char *prog, const char *w)
{
    if (!strcmp(prog, "git"))
        return in_list("-C -c --git-dir --work-tree --namespace", w);
    if (!strcmp(prog, "systemctl"))
        return in_list("-H -M --host --machine -t --type -p --property -s --signal", w);
    if (!strcmp(prog, "docker") || !strcmp(prog, "podman"))
        return in_list("-H --host -c --context --config -l --log-level", w);
    if (!strcmp(prog, "apt") || !strcmp(prog, "apt-get"))
        return in_list("-o -c -t", w);
    return false;
}

/* ---- simple commands ---------------------------------------------------------------------- */

static bool scan(struct ctx *c, const char *line, int depth);

static char *join(char **av, int ac)
{
    size_t n = 1;
    for (int i = 0; i < ac; i++)
        n += strlen(av[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < ac; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, av[i]);
    }
    return s;
}

/* Checks a command line given as words (ssh's remote command, watch). */
static bool scan_words(struct ctx *c, char **av, int ac, int depth)
{
    char *s = join(av, ac);
    if (!s) {
        note(c, CAUTION, "could not be checked completely (out of memory)");
        return false;
    }
    bool fetch = scan(c, s, depth);
    free(s);
    return fetch;
}

/* What the pipeline and the words around a command say about its input. */
struct feed {
    bool piped_in;   /* its stdin is a pipe */
    bool pipe_fetch; /* an earlier command of that pipeline downloads */
    bool subst;      /* a substitution in its words downloads: bash <(curl ...) */
};

/* Classifies one simple command (words without quotes). Returns whether it
 * downloads (so a pipe from it into a shell runs downloaded code). */
static bool classify(struct ctx *c, char **av, int ac, const struct feed *f, int depth)
{
    if (depth > MAX_DEPTH) {
        note(c, CAUTION, "nests commands deeper than hearth checks");
        return false;
    }
    int i = 0;
    const char *prog;
    for (;;) {
        while (i < ac && (is_assignment(av[i]) || in_list(risk_keywords, av[i])))
            i++;
        if (i >= ac)
            return false;
        prog = base_name(av[i]);
        const struct risk_wrapper *w = NULL;
        for (size_t k = 0; k < risk_n_wrappers && !w; k++)
            if (in_list(risk_wrappers[k].names, prog))
                w = &risk_wrappers[k];
        if (!w)
            break;
        if (w->root)
            note(c, CAUTION, "runs as root (%s)", prog);
        for (i++; i < ac && is_option(av[i]); i++) {
            if (!strcmp(av[i], "--")) {
                i++;
                break;
            }
            if (!strcmp(prog, "command") && (!strcmp(av[i], "-v") || !strcmp(av[i], "-V")))
                return false; /* only says what the name is */
            /* su -c COMMAND */
            if (w->none && (!strcmp(av[i], "-c") || !strcmp(av[i], "--command")) && i + 1 < ac)
                scan(c, av[++i], depth + 1);
            else if (w->none && !strncmp(av[i], "--command=", 10))
                scan(c, av[i] + 10, depth + 1);
            else if (in_list(w->values, av[i]))
                i++;
        }
        if (w->none)
            return false;
        i += w->positional;
        if (i >= ac)
            return false;
        if (w->line)
            return scan_words(c, av + i, ac - i, depth + 1);
    }
    char **args = av + i + 1;
    int n = ac - i - 1;

    /* the subcommand: the first operand, past global options and their values */
    const char *sub = NULL;
    for (int k = 0; k < n && !sub; k++) {
        if (global_value_option(prog, args[k]))
            k++;
        else if (!is_option(args[k]))
            sub = args[k];
    }
    for (size_t k = 0; k < risk_n_rules; k++) {
        const struct risk_rule *r = &risk_rules[k];
        if (in_list(r->progs, prog) && (!r->subs || (sub && in_list(r->subs, sub))) &&
            (!r->args || has_arg(r->args, args, n)))
            note(c, r->level, "%s", r->why);
    }

    /* find ... -exec CMD ARGS ; */
    if (!strcmp(prog, "find")) {
        for (int k = 0; k < n; k++) {
            if (!in_list("-exec -execdir -ok -okdir", args[k]))
                continue;
            int e = k + 1;
            while (e < n && strcmp(args[e], ";") && strcmp(args[e], "+"))
                e++;
            struct feed none = {0};
            classify(c, args + k + 1, e - k - 1, &none, depth + 1);
            k = e;
        }
    }

    if (in_list(risk_downloaders, prog))
        return true;

    /* a program whose name comes from a substitution: $(curl ...) */
    if (av[i][0] == '$' || av[i][0] == '`') {
        if (f->subst)
            note(c, DANGEROUS, "%s", fetched);
        return f->subst;
    }
    if (!strcmp(prog, "eval")) {
        if (f->subst)
            note(c, DANGEROUS, "%s", fetched);
        return scan_words(c, args, n, depth + 1) || f->subst;
    }
    if (in_list(risk_interpreters, prog)) {
        bool shell = in_list(risk_shells, prog);
        const char *script = NULL; /* the first operand: a file, or with -c a command line */
        bool dash_c = false;
        for (int k = 0; k < n && !script; k++) {
            if (!strcmp(args[k], "--")) {
                script = k + 1 < n ? args[k + 1] : NULL;
                break;
            }
            if (shell && (!strcmp(args[k], "-o") || !strcmp(args[k], "+o")))
                k++;
            else if (is_option(args[k]) || args[k][0] == '+')
                dash_c = dash_c || (shell && arg_match("-c", args[k]));
            else
                script = args[k];
        }
        if ((f->piped_in && f->pipe_fetch) || f->subst)
            note(c, DANGEROUS, "%s", fetched);
        else if (f->piped_in && !script && !dash_c)
            note(c, CAUTION, "runs the commands it reads from the pipe (%s)", prog);
        if (shell && dash_c && script)
            return scan(c, script, depth + 1) || f->subst;
        return f->subst;
    }
    return false;
}

/* ---- redirections ------------------------------------------------------------------------- */

enum redir { R_OUT, R_APPEND, R_IN, R_RW, R_HEREDOC, R_HEREDOC_TABS, R_HERESTRING };

static void check_target(struct ctx *c, enum redir kind, const char *t)
{
    static const char *const harmless =
        "/dev/null /dev/stdout /dev/stderr /dev/tty /dev/zero /dev/fd/* /proc/self/fd/*";
    static const char *const disks = "/dev/sd* /dev/hd* /dev/vd* /dev/xvd* /dev/nvme* "
                                     "/dev/mmcblk* /dev/dm-* /dev/md* /dev/loop* /dev/mapper/* "
                                     "/dev/disk/* /dev/mem /dev/kmem /dev/port";
    static const char *const system = "/etc/* /boot/* /usr/* /bin/* /sbin/* /lib/* /lib64/* "
                                      "/lib32/* /var/lib/* /opt/*";
    if (kind != R_OUT && kind != R_APPEND)
        return;
    bool append = kind == R_APPEND;
    if (in_list(harmless, t))
        return;
    if (in_list(disks, t))
        note(c, DANGEROUS, "writes over the disk device %s", t);
    else if (!strncmp(t, "/proc/", 6) || !strncmp(t, "/sys/", 5))
        note(c, CAUTION, "changes a kernel setting (%s)", t);
    else if (in_list(system, t))
        note(c, append ? CAUTION : DANGEROUS, "%s the system file %s",
             append ? "appends to" : "overwrites", t);
    else
        note(c, CAUTION, "%s %s (%s redirection)", append ? "appends to" : "overwrites", t,
             append ? ">>" : ">");
}

/* ---- the lexer ---------------------------------------------------------------------------- */

struct buf {
    char *s;
    size_t n, cap;
};

struct lex {
    struct ctx *c;
    const char *p;
    int depth;
    bool oom, broken; /* out of memory; unbalanced quotes or brackets */
    /* the simple command being read */
    char **av;
    int ac, cap;
    struct feed feed;
    bool fetch; /* something in this line downloads */
    struct {
        char *delim;
        bool tabs;
    } heredoc[MAX_HEREDOCS];
    int n_heredoc;
};

static void buf_add(struct lex *L, struct buf *b, const char *s, size_t n)
{
    if (L->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            L->oom = true;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Ends a word (outside quotes). */
static bool is_meta(char ch)
{
    return !ch || is_blank(ch) || ch == '\n' || strchr(";&|()<>", ch);
}

/* p is just past an opening bracket; returns the position of its closing
 * `close` (nested pairs, quotes and escapes skipped), or NULL. */
static const char *skip_group(const char *p, char open, char close)
{
    int level = 1;
    for (; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        } else if (*p == '\'') {
            p = strchr(p + 1, '\'');
            if (!p)
                return NULL;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return NULL;
        } else if (*p == open) {
            level++;
        } else if (*p == close && --level == 0) {
            return p;
        }
    }
    return NULL;
}

/* Checks the text between p and end as a command line of its own. */
static void substitution(struct lex *L, const char *p, const char *end)
{
    char *s = strndup(p, (size_t)(end - p));
    if (!s) {
        L->oom = true;
        return;
    }
    if (scan(L->c, s, L->depth + 1))
        L->feed.subst = L->fetch = true;
    free(s);
}

/* At `$` or a backquote: a substitution or expansion. Adds its text to the
 * word as written and returns the position after it. */
static const char *dollar(struct lex *L, struct buf *w, const char *p)
{
    const char *end;
    if (*p == '`') {
        for (end = p + 1; *end && *end != '`'; end++)
            if (*end == '\\' && end[1])
                end++;
        if (!*end) {
            L->broken = true;
            buf_add(L, w, p, strlen(p));
            return p + strlen(p);
        }
        substitution(L, p + 1, end);
    } else if (p[1] == '(' && p[2] == '(') { /* $(( arithmetic )) */
        end = skip_group(p + 2, '(', ')'); /* starts at the inner '(': ends at the last ')' */
    } else if (p[1] == '(') {
        end = skip_group(p + 2, '(', ')');
        if (end)
            substitution(L, p + 2, end);
    } else if (p[1] == '{') {
        end = skip_group(p + 2, '{', '}');
    } else {
        buf_add(L, w, p, 1);
        return p + 1;
    }
    if (!end) {
        L->broken = true;
        buf_add(L, w, p, strlen(p));
        return p + strlen(p);
    }
    buf_add(L, w, p, (size_t)(end + 1 - p));
    return end + 1;
}

/* Reads one word at L->p (which is not blank nor an operator) with its
 * quotes removed; returns it (owned) or NULL when out of memory. */
static char *read_word(struct lex *L)
{
    struct buf w = {0};
    const char *p = L->p;
    buf_add(L, &w, "", 0);
    /* a process substitution <(...) or >(...) */
    if ((*p == '<' || *p == '>') && p[1] == '(') {
        const char *end = skip_group(p + 2, '(', ')');
        if (!end) {
            L->broken = true;
            end = p + strlen(p) - 1;
        } else {
            substitution(L, p + 2, end);
        }
        buf_add(L, &w, p, (size_t)(end + 1 - p));
        p = end + 1;
    }
    while (!is_meta(*p)) {
        if (*p == '\\') {
            if (p[1] == '\n')
                p += 2;
            else if (!p[1])
                p++;
            else {
                buf_add(L, &w, p + 1, 1);
                p += 2;
            }
        } else if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                L->broken = true;
                end = p + strlen(p);
                buf_add(L, &w, p + 1, (size_t)(end - p - 1));
                p = end;
                break;
            }
            buf_add(L, &w, p + 1, (size_t)(end - p - 1));
            p = end + 1;
        } else if (*p == '"') {
            for (p++; *p && *p != '"';) {
                if (*p == '\\' && p[1] && strchr("$`\"\\\n", p[1])) {
                    if (p[1] != '\n')
                        buf_add(L, &w, p + 1, 1);
                    p += 2;
                } else if (*p == '$' || *p == '`') {
                    p = dollar(L, &w, p);
                } else {
                    buf_add(L, &w, p, 1);
                    p++;
                }
            }
            if (*p == '"')
                p++;
            else
                L->broken = true;
        } else if (*p == '$' && p[1] == '\'') { /* $'...': ANSI-C quoting, kept as written */
            const char *end = p + 2;
            while (*end && *end != '\'')
                end += end[0] == '\\' && end[1] ? 2 : 1;
            if (!*end)
                L->broken = true;
            buf_add(L, &w, p + 2, (size_t)(end - p - 2));
            p = *end ? end + 1 : end;
        } else if (*p == '$' || *p == '`') {
            p = dollar(L, &w, p);
        } else {
            buf_add(L, &w, p, 1);
            p++;
        }
    }
    L->p = p;
    if (L->oom) {
        free(w.s);
        return NULL;
    }
    return w.s;
}

static void push_word(struct lex *L, char *w)
{
    if (!w)
        return;
    if (L->ac + 1 >= L->cap) {
        int cap = L->cap ? L->cap * 2 : 16;
        char **t = realloc(L->av, (size_t)cap * sizeof *t);
        if (!t) {
            L->oom = true;
            free(w);
            return;
        }
        L->av = t;
        L->cap = cap;
    }
    L->av[L->ac++] = w;
}

enum end { END_LIST, END_PIPE, END_GROUP };

/* The simple command read so far ends; `how` says what follows it. */
static void end_command(struct lex *L, enum end how)
{
    bool fetch = false;
    if (L->ac > 0)
        fetch = classify(L->c, L->av, L->ac, &L->feed, L->depth);
    for (int i = 0; i < L->ac; i++)
        free(L->av[i]);
    L->ac = 0;
    L->fetch = L->fetch || fetch;
    bool pipe_fetch = L->feed.pipe_fetch || fetch;
    L->feed = (struct feed){0};
    if (how == END_PIPE) {
        L->feed.piped_in = true;
        L->feed.pipe_fetch = pipe_fetch;
    } else if (how == END_GROUP) {
        L->feed.pipe_fetch = pipe_fetch; /* (curl ...) | sh */
    }
}

/* At `<`, `>`, `&>` or digits before them: reads the operator and its
 * target and checks what it writes. */
static void redirection(struct lex *L)
{
    const char *p = L->p;
    bool both = *p == '&';
    if (both)
        p++;
    while (isdigit((unsigned char)*p))
        p++;
    enum redir kind;
    if (*p++ == '>') {
        kind = R_OUT;
        if (*p == '>') {
            kind = R_APPEND;
            p++;
        } else if (*p == '|') {
            p++;
        } else if (*p == '&' && !both) { /* >&2, >&- : a copy of a descriptor */
            p++;
            const char *q = p;
            while (isdigit((unsigned char)*q))
                q++;
            if (q > p || *q == '-') {
                L->p = *q == '-' ? q + 1 : q;
                return;
            }
        }
    } else {
        kind = R_IN;
        if (p[0] == '<' && p[1] == '<') {
            kind = R_HERESTRING;
            p += 2;
        } else if (p[0] == '<') {
            kind = R_HEREDOC;
            p++;
            if (*p == '-') {
                kind = R_HEREDOC_TABS;
                p++;
            }
        } else if (*p == '&') { /* <&0 */
            p++;
            while (isdigit((unsigned char)*p) || *p == '-')
                p++;
            L->p = p;
            return;
        } else if (*p == '>') {
            kind = R_RW;
            p++;
        }
    }
    while (is_blank(*p))
        p++;
    L->p = p;
    if (is_meta(*p)) { /* no target: the shell refuses the line */
        L->broken = true;
        return;
    }
    char *t = read_word(L);
    if (!t)
        return;
    if (kind == R_HEREDOC || kind == R_HEREDOC_TABS) {
        if (L->n_heredoc < MAX_HEREDOCS) {
            L->heredoc[L->n_heredoc].delim = t;
            L->heredoc[L->n_heredoc++].tabs = kind == R_HEREDOC_TABS;
            return;
        }
        L->broken = true;
    } else {
        check_target(L->c, kind, t);
    }
    free(t);
}

/* After a newline: skips the bodies of the here-documents opened on the
 * line before, each up to its delimiter line. */
static void skip_heredocs(struct lex *L)
{
    for (int k = 0; k < L->n_heredoc; k++) {
        const char *d = L->heredoc[k].delim;
        size_t dn = strlen(d);
        bool found = false;
        while (*L->p && !found) {
            const char *line = L->p;
            if (L->heredoc[k].tabs)
                while (*line == '\t')
                    line++;
            size_t n = strcspn(line, "\n");
            found = n == dn && !memcmp(line, d, dn);
            L->p = line + n + (line[n] == '\n');
        }
        if (!found)
            L->broken = true;
        free(L->heredoc[k].delim);
    }
    L->n_heredoc = 0;
}

/* Checks a command line; returns whether something in it downloads. */
static bool scan(struct ctx *c, const char *line, int depth)
{
    if (depth > MAX_DEPTH) {
        note(c, CAUTION, "nests commands deeper than hearth checks");
        return false;
    }
    struct lex L = {.c = c, .p = line, .depth = depth};
    for (;;) {
        while (is_blank(*L.p) || (L.p[0] == '\\' && L.p[1] == '\n'))
            L.p += *L.p == '\\' ? 2 : 1;
        const char *p = L.p;
        if (!*p || L.oom)
            break;
        if (*p == '#') {
            L.p += strcspn(p, "\n");
        } else if (*p == '\n') {
            L.p++;
            end_command(&L, END_LIST);
            skip_heredocs(&L);
        } else if (*p == ';') {
            L.p += p[1] == ';' || p[1] == '&' ? 2 : 1;
            end_command(&L, END_LIST);
        } else if (*p == '&' && p[1] == '>') {
            redirection(&L);
        } else if (*p == '&') {
            L.p += p[1] == '&' ? 2 : 1;
            end_command(&L, END_LIST);
        } else if (*p == '|') {
            bool either = p[1] == '|';
            L.p += either || p[1] == '&' ? 2 : 1;
            end_command(&L, either ? END_LIST : END_PIPE);
        } else if (*p == '(' || *p == ')') {
            L.p++;
            end_command(&L, *p == '(' ? END_LIST : END_GROUP);
        } else if ((*p == '<' || *p == '>') && p[1] != '(') {
            redirection(&L);
        } else if (isdigit((unsigned char)*p) &&
                   (p[strspn(p, "0123456789")] == '<' || p[strspn(p, "0123456789")] == '>')) {
            redirection(&L);
        } else {
            push_word(&L, read_word(&L));
        }
    }
    if (!L.oom)
        end_command(&L, END_LIST);
    for (int i = 0; i < L.ac; i++)
        free(L.av[i]);
    free(L.av);
    for (int k = 0; k < L.n_heredoc; k++) /* opened on the last line: no body follows */
        free(L.heredoc[k].delim);
    if (L.oom)
        note(c, CAUTION, "could not be checked completely (out of memory)");
    if (L.broken)
        note(c, CAUTION, "has unbalanced quotes, brackets or here-documents, so hearth could "
                         "not check all of it");
    return L.fetch;
}

/* name(){ name|name& };name — the classic fork bomb, with any name. */
static bool fork_bomb(const char *cmd)
{
    char *s = malloc(strlen(cmd) + 1), *q = s;
    if (!s)
        return false;
    for (const char *p = cmd; *p; p++)
        if (!isspace((unsigned char)*p))
            *q++ = *p;
    *q = '\0';
    regex_t re;
    bool hit = false;
    /* POSIX basic syntax: \(\) groups, \1 refers back; ( ) { } | & are literal */
    if (regcomp(&re, "\\([[:alnum:]_:.]\\{1,\\}\\)(){\\1|\\1&};*\\1", REG_NOSUB) == 0) {
        hit = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
    }
    free(s);
    return hit;
}

bool cli_risk_has_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f ||
            (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return true;
    return false;
}

void cli_risk_classify(const char *cmd, struct cli_risk_report *out)
{
    *out = (struct cli_risk_report){.level = SAFE};
    struct ctx c = {out};
    if (cli_risk_has_controls(cmd))
        note(&c, DANGEROUS, "holds terminal control characters, which can hide what it does");
    if (fork_bomb(cmd))
        note(&c, DANGEROUS, "is a fork bomb: it starts processes until the machine stops");
    scan(&c, cmd, 0);
}

static const char *const names[] = {"safe", "caution", "dangerous"};

const char *cli_risk_name(enum cli_risk r)
{
    return (unsigned)r < 3 ? names[r] : "?";
}

int cli_risk_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i]))
            return i;
    return -EINVAL;
}
