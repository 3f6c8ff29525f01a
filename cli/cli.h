/*
 * cli.h — what the `hearth` command's subcommand files share: the command
 * table entry points and small helpers for errors and option values.
 *
 * Conventions for every subcommand: results on stdout, progress and timings
 * on stderr; bad input exits 1 (usage errors 2) after one line
 * "hearth: error: ..." saying what and where.
 */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stdint.h>

#define EXIT_USAGE 2

/* Each subcommand gets argv with argv[0] = the subcommand's name. */
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_lora(int argc, char **argv);
int cmd_train(int argc, char **argv);
/* cmd_client.c: clients of a running hearthd */
int cmd_ask(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_status(int argc, char **argv);
/* cmd_agent.c: tools, scripts and the agent on hearthd */
int cmd_tools(int argc, char **argv);
int cmd_tool(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_agent(int argc, char **argv);
/* cmd_shell.c: the shell helper (docs/shell.md) */
int cmd_cmd(int argc, char **argv);
int cmd_explain(int argc, char **argv);

/* Prints "hearth: error: <message>" and exits with `status`. */
_Noreturn void cli_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict parsing of an option's value: the whole string, within [lo, hi];
 * otherwise a usage error naming the flag. */
long cli_long(const char *flag, const char *v, long lo, long hi);
double cli_double(const char *flag, const char *v, double lo, double hi);

/* Monotonic seconds. */
double cli_now(void);

/* Loads a model or dies with a one-line error naming the file (and byte
 * offset for malformed files). verbose: print the load time to stderr. */
struct hr_model *cli_load_model(const char *path, bool vocab_only, bool verbose);

/* cmd_lora.c: `--lora FILE[:SCALE]` (scale 1 when omitted; a suffix that is
 * not a number is part of the file name). parse: *path owned (free()).
 * load: loads every spec for m or dies naming the file; returns n uses
 * (free with cli_lora_free). */
void cli_lora_parse(const char *flag, const char *spec, char **path, float *scale);
struct hr_lora_use *cli_lora_load(struct hr_model *m, char **specs, int n);
void cli_lora_free(struct hr_lora_use *uses, int n);

#endif
