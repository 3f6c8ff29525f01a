/*
 * cmd_quantize.c — `hearth quantize IN OUT TYPE [-t THREADS]`: converts an
 * F32/F16/BF16 GGUF model into one of llama.cpp's quantization mixes with
 * the same per-tensor choices and the same bytes as llama-quantize
 * (core/quantize.h).
 *
 * Nothing goes to stdout (the result is the file); stderr gets one line per
 * tensor as it is done and a summary with the sizes and compression ratio.
 * OUT appears only when complete (written to a temporary file and renamed).
 */
#include "cli.h"

#include "quantize.h"
#include "quant.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const type_names =
    "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s "
    "q5_k_m q6_k";

static void fmt_size(char *buf, size_t n, uint64_t bytes)
{
    if (bytes >= (uint64_t)1 << 30)
        snprintf(buf, n, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= (uint64_t)1 << 20)
        snprintf(buf, n, "%.2f MiB", (double)bytes / (1 << 20));
    else
        snprintf(buf, n, "%.2f KiB", (double)bytes / (1 << 10));
}

static void progress(void *ud, const struct quantize_progress *p)
{
    (void)ud;
    char in[32], out[32];
    fmt_size(in, sizeof in, p->in_bytes);
    fmt_size(out, sizeof out, p->out_bytes);
    const char *from = hr_type_name(p->from_type), *to = hr_type_name(p->to_type);
    if (p->from_type == p->to_type)
        fprintf(stderr, "[%4d/%4d] %-36s %5s  %12s (kept)\n", p->index, p->count, p->name, from,
                in);
    else
        fprintf(stderr, "[%4d/%4d] %-36s %5s -> %-5s %12s -> %12s%s\n", p->index, p->count,
                p->name, from, to, in, out, p->fallback ? "  (fallback: row length)" : "");
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {0};
    int n_pos = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: hearth quantize IN OUT TYPE [-t THREADS]\n  TYPE: %s\n", type_names);
            return 0;
        }
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                cli_die(EXIT_USAGE, "%s: missing value", a);
            threads = cli_long(a, argv[++i], 1, 1024);
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            cli_die(EXIT_USAGE, "unexpected argument '%s' (usage: hearth quantize IN OUT TYPE)",
                    a);
        }
    }
    if (n_pos < 3)
        cli_die(EXIT_USAGE, "missing %s (usage: hearth quantize IN OUT TYPE [-t THREADS])",
                n_pos == 0 ? "IN, OUT and TYPE" : n_pos == 1 ? "OUT and TYPE" : "TYPE");
    const char *in = pos[0], *out = pos[1];
    int ftype = quantize_ftype_from_name(pos[2]);
    if (ftype < 0)
        cli_die(EXIT_USAGE, "unknown quantization type '%s' (one of: %s)", pos[2], type_names);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 64 ? 64 : n;
    }

    struct quantize_params qp = {.ftype = ftype, .n_threads = (int)threads, .progress = progress};
    struct quantize_stats st;
    struct hr_err err;
    hr_err_clear(&err);
    double t0 = cli_now();
    int rc = quantize_model(in, out, &qp, &st, &err);
    if (rc < 0) {
        /* the message names the file it is about */
        const char *msg = err.msg[0] ? err.msg : strerror(-rc);
        if (err.offset >= 0)
            cli_die(1, "%s (at byte %lld)", msg, (long long)err.offset);
        cli_die(1, "%s", msg);
    }
    char a[32], b[32];
    fmt_size(a, sizeof a, st.in_bytes);
    fmt_size(b, sizeof b, st.out_bytes);
    fprintf(stderr,
            "hearth: quantized %s -> %s (%s, %d threads) in %.1f s\n"
            "hearth: tensors %s -> %s (%.2fx smaller), %d of %d converted",
            in, out, quantize_ftype_name(ftype), (int)threads, cli_now() - t0, a, b,
            st.out_bytes ? (double)st.in_bytes / (double)st.out_bytes : 1.0, st.n_converted,
            st.n_tensors);
    if (st.n_fallback)
        fprintf(stderr, ", %d fell back to another type (row length)", st.n_fallback);
    fputc('\n', stderr);
    return 0;
}
