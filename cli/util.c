/* util.c — helpers shared by the hearth subcommands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hearth: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

long cli_long(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        cli_die(EXIT_USAGE, "%s: '%s' is not an integer in [%ld, %ld]", flag, v, lo, hi);
    return x;
}

double cli_double(const char *flag, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
        cli_die(EXIT_USAGE, "%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    return x;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct hr_model *cli_load_model(const char *path, bool vocab_only, bool verbose)
{
    if (!path)
        cli_die(EXIT_USAGE, "missing -m MODEL");
    struct hr_err err;
    struct hr_model *m = NULL;
    struct hr_model_params mp = {.vocab_only = vocab_only};
    double t0 = cli_now();
    int rc = hr_model_load(path, &mp, &m, &err);
    if (rc < 0) {
        if (err.offset >= 0)
            cli_die(1, "%s: %s (at byte %lld)", path, err.msg[0] ? err.msg : strerror(-rc),
                    (long long)err.offset);
        cli_die(1, "%s: %s", path, err.msg[0] ? err.msg : strerror(-rc));
    }
    if (verbose)
        fprintf(stderr, "hearth: loaded %s (%s, %d tokens) in %.0f ms\n", path, hr_model_arch(m),
                hr_model_n_vocab(m), (cli_now() - t0) * 1e3);
    return m;
}
