/*
 * risk_table.h — inside the risk check (risk.h): the shape of its tables,
 * which risk_table.c fills and risk.c reads. To teach the check a new
 * command, add a row to risk_table.c and a case to tests/test_shell_helper.c.
 */
#ifndef HEARTH_CLI_RISK_TABLE_H
#define HEARTH_CLI_RISK_TABLE_H

#include "risk.h"

#include <stdbool.h>
#include <stddef.h>

/* A rule applies to a simple command when its program's name matches one of
 * `progs`, its first operand (the subcommand: `push` in `git push`) matches
 * one of `subs` (NULL: any), and one of its arguments matches one of `args`
 * (NULL: none needed). Lists are space-separated fnmatch patterns; an args
 * pattern "-x" (a dash and one letter or digit) also matches that letter in
 * a cluster of short options ("-rf" has -r and -f). Every rule that applies
 * counts; the highest level wins. */
struct risk_rule {
    const char *progs, *subs, *args;
    enum cli_risk level;
    const char *why;
};

/* Programs that run another command: skipped (with their options) so the
 * command they run is the one classified. `values`: options that take the
 * next word as their value. `positional`: operands before the command
 * (timeout's duration, ssh's host). `line`: the rest is a shell command line
 * (joined with spaces) rather than a program and its arguments; `none`: the
 * rest is not a command at all (su: a user name; its command comes with -c). */
struct risk_wrapper {
    const char *names, *values;
    int positional;
    bool root, line, none;
};

extern const struct risk_rule risk_rules[];
extern const size_t risk_n_rules;
extern const struct risk_wrapper risk_wrappers[];
extern const size_t risk_n_wrappers;

/* Space-separated fnmatch patterns of program names. */
extern const char *const risk_interpreters; /* read a script from stdin when given none */
extern const char *const risk_shells;       /* of those, the shells: -c takes a command line */
extern const char *const risk_downloaders;  /* what they print comes from the network */
extern const char *const risk_keywords;     /* reserved words a simple command may start with */

#endif
