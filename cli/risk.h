/*
 * risk.h — a local check of a shell command line before `hearth cmd` offers
 * to run it: what could it destroy or change? The model proposing a command
 * also rates it, but the daemon never trusts model output, so the CLI shows
 * the higher of the model's rating and this one.
 *
 * The check reads the command the way a POSIX shell splits it (quotes,
 * escapes, `;` `&&` `||` `|` `&`, redirections, here-documents, `$(...)`,
 * backquotes, `<(...)`, `sh -c '...'`), looks through wrappers that run
 * another command (sudo, env, xargs, timeout, find -exec, ...), and matches
 * each simple command against a table of rules (cli/risk.c). It does not
 * expand variables, aliases or globs and does not look at the file system:
 * it finds what a command line says, not what it will meet.
 */
#ifndef HEARTH_CLI_RISK_H
#define HEARTH_CLI_RISK_H

#include <stdbool.h>

/* Ordered: a higher value is riskier. */
enum cli_risk {
    CLI_RISK_SAFE,      /* reads only, or changes nothing that matters */
    CLI_RISK_CAUTION,   /* changes files, settings, processes or packages */
    CLI_RISK_DANGEROUS, /* can destroy data or the system, or cannot be undone */
};

struct cli_risk_report {
    enum cli_risk level;
    /* Why, when level > SAFE: the reasons found at that level, joined by
     * "; " (cut to fit); "" when safe. */
    char why[256];
};

/* Classifies `cmd` (a shell command line, NUL-terminated). Never fails: a
 * line it cannot read completely (unbalanced quotes, nesting deeper than it
 * follows, no memory) is rated at least CLI_RISK_CAUTION, saying so. */
void cli_risk_classify(const char *cmd, struct cli_risk_report *out);

/* Whether `s` holds characters that steer a terminal instead of printing:
 * C0 controls other than tab and newline (escape, carriage return,
 * backspace, ...), DEL, and the C1 controls U+0080..U+009F. Shown on a
 * terminal they can make a command look like another; cli_risk_classify
 * rates such a line dangerous. */
bool cli_risk_has_controls(const char *s);

/* "safe", "caution", "dangerous". */
const char *cli_risk_name(enum cli_risk r);

/* The level named `name` (as cli_risk_name writes it), or -EINVAL. */
int cli_risk_parse(const char *name);

#endif
