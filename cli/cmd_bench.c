/*
 * cmd_bench.c — `hearth bench`: llama-bench style speed tests.
 *
 *   hearth bench -m MODEL [-p 128] [-n 64] [-d 0] [-t THREADS] [-r REPS] [--json]
 *                [--no-limits] [--lora FILE[:SCALE]]...
 *   hearth bench --limits [-t THREADS] [--json]
 *
 * Tests (each run once as a warm-up, then REPS times; mean ± sample sd):
 *   ppP  evaluate a P-token prompt (random ids) in one batch from an empty
 *        cache; tokens/s = P / time.
 *   tgN  from an empty cache, evaluate one start token (not timed), then
 *        generate N tokens one at a time, greedy (argmax of the logits);
 *        tokens/s = N / time.
 * With -d D (llama-bench's depth) each test starts from a cache holding D
 * tokens of context instead of an empty one: the D tokens (random ids) are
 * evaluated once per context before the warm-up, untimed, and every run
 * truncates the cache back to them ("pp512 @ d2048", JSON "n_depth").
 *
 * Derived figures. Generation reads every weight once per token, so
 * GB/s = (bytes of the weights a token reads) × tokens/s, where those bytes
 * are every tensor of the file except an untied token_embd.weight (of which a
 * token reads one row); with tied embeddings token_embd.weight is the output
 * matrix and counts. Prompt processing is arithmetic: GOP/s = 2 × (elements of
 * the matrices a token multiplies with) × tokens/s (attention scores are not
 * counted, as usual). Each is divided by this machine's limit (limits.h):
 * read bandwidth for tg; for pp the int8 peak when most weight bytes are
 * block-quantized (their dot products are integer), else the fp32 peak.
 * The int8 peak is the vector units' (VNNI), issue 3's yardstick and what
 * llama.cpp's figures are compared with; on a CPU with AMX-INT8 an int8 pp
 * test is also divided by the tiles' peak (JSON "amx_limit_value",
 * "amx_limit_fraction", present only then), the honest fraction of what the
 * silicon could do.
 *
 * With --lora every test runs twice, on the bare base and with the adapters
 * applied to every token (ppP+lora, tgN+lora), the two alternating run by
 * run on contexts of their own, so that a busy machine slows both alike;
 * the cost of the adapters is the median over the pairs of the ratio of
 * their times ("lora cost", also in the +lora JSON objects). The derived
 * rates count the base's weights only.
 *
 * stdout: a Markdown table, or with --json one JSON object per line and
 * test. Progress on stderr. --limits --json: one object per thread count
 * with every limit; "amx_int8_gops" is always there, 0 without AMX.
 */
#include "cli.h"
#include "gguf.h"
#include "limits.h"
#include "quant.h"
#include "quantize.h"
#include "arch/arch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- what the file holds ------------------------------------------------------ */

struct model_info {
    char arch[32];
    uint64_t size;       /* bytes of all tensors */
    uint64_t n_params;   /* elements of all tensors */
    uint64_t read_bytes; /* bytes of the weights one generated token reads */
    uint64_t mm_elems;   /* elements of the matrices one token multiplies with */
    uint64_t type_bytes[HR_TYPE_COUNT]; /* over all tensors */
    uint32_t main_type;  /* the type of most read bytes */
    char type[16];       /* the mix (general.file_type), e.g. "Q4_K_M" */
    char mix[256];       /* "Q4_K 61.2%, Q6_K 20.1%, ..." by bytes */
};

static bool block_quantized(uint32_t t)
{
    const struct hr_type_info *ti = hr_type_info(t);
    return ti && ti->blck > 1;
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

static void model_info(const char *path, struct model_info *mi)
{
    struct gguf_file *f;
    struct hr_err err;
    int rc = gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err);
    if (rc < 0)
        cli_die(1, "%s: %s", path, err.msg[0] ? err.msg : strerror(-rc));
    *mi = (struct model_info){.main_type = HR_TYPE_F32};
    struct gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) == 0)
        snprintf(mi->arch, sizeof mi->arch, "%.*s", (int)(arch.len < 31 ? arch.len : 31),
                 arch.ptr);
    bool tied = !gguf_find_tensor(f, "output.weight");
    uint64_t read_by_type[HR_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        uint64_t elems = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        mi->size += t->nbytes;
        mi->n_params += elems;
        mi->type_bytes[t->type] += t->nbytes;
        if (!tied && !strcmp(t->name, "token_embd.weight"))
            continue; /* a lookup reads one row */
        mi->read_bytes += t->nbytes;
        read_by_type[t->type] += t->nbytes;
        if (t->n_dims >= 2)
            mi->mm_elems += elems;
    }
    for (uint32_t t = 0; t < HR_TYPE_COUNT; t++)
        if (read_by_type[t] > read_by_type[mi->main_type])
            mi->main_type = t;
    uint32_t ft;
    const char *name = gguf_get_u32(f, "general.file_type", &ft, NULL) == 0 && ft <= INT32_MAX
                           ? quantize_ftype_name((int)ft)
                           : NULL;
    snprintf(mi->type, sizeof mi->type, "%s",
             name ? name : hr_type_name(mi->main_type) ? hr_type_name(mi->main_type) : "?");
    upper(mi->type);

    uint64_t left[HR_TYPE_COUNT];
    memcpy(left, mi->type_bytes, sizeof left);
    size_t n = 0;
    for (;;) {
        uint32_t best = HR_TYPE_COUNT;
        for (uint32_t t = 0; t < HR_TYPE_COUNT; t++)
            if (left[t] && (best == HR_TYPE_COUNT || left[t] > left[best]))
                best = t;
        if (best == HR_TYPE_COUNT || n >= sizeof mi->mix)
            break;
        char tn[16];
        snprintf(tn, sizeof tn, "%s", hr_type_name(best) ? hr_type_name(best) : "?");
        upper(tn);
        n += (size_t)snprintf(mi->mix + n, sizeof mi->mix - n, "%s%s %.1f%%", n ? ", " : "", tn,
                              100.0 * (double)left[best] / (double)mi->size);
        left[best] = 0;
    }
    gguf_free(f);
}

/* ---- the tests ------------------------------------------------------------------ */

struct result {
    char test[32];
    int n_prompt, n_gen, n_depth;
    double mean, sd; /* tokens/s */
    double *samples;
    int reps;
    double cost; /* +lora: median time ratio to the bare base − 1 */
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Fills the cache of ctx with n_depth random tokens (hr_ctx_eval splits
 * them into passes of the context's n_batch), unless it holds them already. */
static void fill_depth(struct hr_ctx *ctx, int32_t n_vocab, int n_depth)
{
    if (n_depth <= 0 || hr_ctx_n_past(ctx) >= n_depth)
        return;
    struct hr_err err;
    uint64_t rng = 0xD1B54A32D192ED03ull;
    int32_t *toks = malloc((size_t)n_depth * sizeof *toks);
    if (!toks)
        cli_die(1, "out of memory");
    for (int i = 0; i < n_depth; i++)
        toks[i] = (int32_t)(rng_next(&rng) % (uint64_t)n_vocab);
    hr_ctx_truncate(ctx, 0);
    double t0 = cli_now();
    if (hr_ctx_eval(ctx, toks, n_depth, false, &err) < 0)
        cli_die(1, "%s", err.msg);
    fprintf(stderr, "hearth: bench depth: %d tokens of context in %.2f s\n", n_depth,
            cli_now() - t0);
    free(toks);
}

/* One timed run from a cache of n_depth tokens; returns tokens/s. */
static double run_once(struct hr_ctx *ctx, int32_t n_vocab, int n_prompt, int n_gen,
                       int n_depth, uint64_t *rng)
{
    struct hr_err err;
    fill_depth(ctx, n_vocab, n_depth);
    hr_ctx_truncate(ctx, n_depth);
    if (n_prompt > 0) {
        int32_t *toks = malloc((size_t)n_prompt * sizeof *toks);
        if (!toks)
            cli_die(1, "out of memory");
        for (int i = 0; i < n_prompt; i++)
            toks[i] = (int32_t)(rng_next(rng) % (uint64_t)n_vocab);
        double t0 = cli_now();
        if (hr_ctx_eval(ctx, toks, n_prompt, false, &err) < 0)
            cli_die(1, "%s", err.msg);
        double t1 = cli_now();
        free(toks);
        return n_prompt / (t1 - t0);
    }
    int32_t tok = (int32_t)(rng_next(rng) % (uint64_t)n_vocab);
    if (hr_ctx_eval(ctx, &tok, 1, false, &err) < 0)
        cli_die(1, "%s", err.msg);
    double t0 = cli_now();
    for (int i = 0; i < n_gen; i++) {
        tok = argmax(hr_ctx_logits(ctx, -1), n_vocab);
        if (hr_ctx_eval(ctx, &tok, 1, false, &err) < 0)
            cli_die(1, "%s", err.msg);
    }
    double t1 = cli_now();
    return n_gen / (t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The test r[0] on ctx[0] and, when ctx[1] is set, r[1] on ctx[1], the two
 * alternating run by run with the same random tokens. */
static void run_test(struct hr_ctx *ctx[2], int32_t n_vocab, struct result r[2], int reps)
{
    int n = ctx[1] ? 2 : 1;
    uint64_t rng[2] = {0x9E3779B97F4A7C15ull, 0x9E3779B97F4A7C15ull};
    for (int v = 0; v < n; v++) {
        r[v].reps = reps;
        if (!(r[v].samples = calloc((size_t)reps, sizeof *r[v].samples)))
            cli_die(1, "out of memory");
        double w = run_once(ctx[v], n_vocab, r[v].n_prompt, r[v].n_gen, r[v].n_depth, &rng[v]);
        fprintf(stderr, "hearth: bench %s warm-up: %.2f tok/s\n", r[v].test, w);
    }
    for (int i = 0; i < reps; i++)
        for (int v = 0; v < n; v++) {
            r[v].samples[i] =
                run_once(ctx[v], n_vocab, r[v].n_prompt, r[v].n_gen, r[v].n_depth, &rng[v]);
            fprintf(stderr, "hearth: bench %s %d/%d: %.2f tok/s\n", r[v].test, i + 1, reps,
                    r[v].samples[i]);
        }
    for (int v = 0; v < n; v++) {
        double sum = 0, ss = 0;
        for (int i = 0; i < reps; i++)
            sum += r[v].samples[i];
        r[v].mean = sum / reps;
        for (int i = 0; i < reps; i++)
            ss += (r[v].samples[i] - r[v].mean) * (r[v].samples[i] - r[v].mean);
        r[v].sd = reps > 1 ? sqrt(ss / (reps - 1)) : 0;
    }
    if (n == 2) { /* time with / time without, per pair */
        double *q = malloc((size_t)reps * sizeof *q);
        if (!q)
            cli_die(1, "out of memory");
        for (int i = 0; i < reps; i++)
            q[i] = r[0].samples[i] / r[1].samples[i];
        qsort(q, (size_t)reps, sizeof *q, cmp_double);
        r[1].cost = reps % 2 ? q[reps / 2] - 1 : (q[reps / 2 - 1] + q[reps / 2]) / 2 - 1;
        free(q);
    }
}

/* ---- output ---------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

struct derived {
    double rate;          /* GB/s (tg) or GOP/s (pp) */
    const char *unit;     /* "GB/s", "GOP/s" */
    const char *limit;    /* "read_gbs", "int8_gops", "fp32_gflops" */
    double limit_value;   /* 0: limits not known */
    double fraction;
    double amx_value;     /* int8 pp on a CPU with AMX: the tiles' peak; else 0 */
    double amx_fraction;
};

static struct derived derive(const struct result *r, const struct model_info *mi,
                             const struct cli_limits *lim)
{
    struct derived d = {0};
    if (r->n_prompt > 0) {
        d.rate = 2.0 * (double)mi->mm_elems * r->mean * 1e-9;
        d.unit = "GOP/s";
        bool q = block_quantized(mi->main_type);
        d.limit = q ? "int8_gops" : "fp32_gflops";
        d.limit_value = lim ? (q ? lim->int8_gops : lim->fp32_gflops) : 0;
        d.amx_value = lim && q ? lim->amx_int8_gops : 0;
    } else {
        d.rate = (double)mi->read_bytes * r->mean * 1e-9;
        d.unit = "GB/s";
        d.limit = "read_gbs";
        d.limit_value = lim ? lim->read_gbs : 0;
    }
    d.fraction = d.limit_value > 0 ? d.rate / d.limit_value : 0;
    d.amx_fraction = d.amx_value > 0 ? d.rate / d.amx_value : 0;
    return d;
}

static void print_json(const char *path, const struct model_info *mi, int threads,
                       const struct result *r, const struct cli_limits *lim)
{
    struct derived d = derive(r, mi, lim);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("{\"test\": \"%s\", \"tokens_per_second\": %.3f, \"tokens_per_second_sd\": %.3f, ",
           r->test, r->mean, r->sd);
    printf("\"samples\": [");
    for (int i = 0; i < r->reps; i++)
        printf("%s%.3f", i ? ", " : "", r->samples[i]);
    printf("], \"model\": ");
    json_str(stdout, base);
    printf(", \"path\": ");
    json_str(stdout, path);
    printf(", \"arch\": ");
    json_str(stdout, mi->arch);
    printf(", \"type\": \"%s\", \"type_mix\": \"%s\", \"size_bytes\": %llu, \"params\": %llu, "
           "\"read_bytes_per_token\": %llu, \"threads\": %d, \"isa\": \"%s\", "
           "\"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"reps\": %d, ",
           mi->type, mi->mix, (unsigned long long)mi->size, (unsigned long long)mi->n_params,
           (unsigned long long)mi->read_bytes, threads, hr_isa_name(hr_isa_active()),
           r->n_prompt, r->n_gen, r->n_depth, r->reps);
    printf("\"%s\": %.3f, \"limit\": \"%s\", ",
           r->n_prompt > 0 ? "gop_per_second" : "gbytes_per_second", d.rate, d.limit);
    if (lim)
        printf("\"limit_value\": %.3f, \"limit_fraction\": %.4f", d.limit_value, d.fraction);
    else
        printf("\"limit_value\": null, \"limit_fraction\": null");
    if (d.amx_value > 0)
        printf(", \"amx_limit_value\": %.3f, \"amx_limit_fraction\": %.4f", d.amx_value,
               d.amx_fraction);
    if (strstr(r->test, "+lora"))
        printf(", \"lora_cost\": %.4f", r->cost);
    printf("}\n");
}

static void print_row(const char *path, const struct model_info *mi, int threads,
                      const struct result *r, const struct cli_limits *lim)
{
    struct derived d = derive(r, mi, lim);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char frac[128] = "-";
    if (lim && d.amx_value > 0) /* "31.0% of 1698.0 GOP/s int8 (VNNI), 4.1% of 12800 (AMX)" */
        snprintf(frac, sizeof frac, "%.1f%% of %.1f GOP/s int8 (VNNI), %.1f%% of %.0f (AMX)",
                 100 * d.fraction, d.limit_value, 100 * d.amx_fraction, d.amx_value);
    else if (lim)
        snprintf(frac, sizeof frac, "%.1f%% of %.1f %s", 100 * d.fraction, d.limit_value,
                 r->n_prompt > 0 ? (block_quantized(mi->main_type) ? "GOP/s int8" : "GFLOP/s fp32")
                                 : "GB/s read");
    printf("| %s | %s | %.1f MiB | %.1f M | %d | %s | %s | %.2f ± %.2f | %.1f %s | %s |\n", base,
           mi->type, (double)mi->size / (1 << 20), (double)mi->n_params * 1e-6, threads,
           hr_isa_name(hr_isa_active()), r->test, r->mean, r->sd, d.rate, d.unit, frac);
}

/* ---- --limits ---------------------------------------------------------------------- */

static int show_limits(int threads, bool json)
{
    char cpu[256], path[4096];
    cli_cpu_model(cpu, sizeof cpu);
    int counts[2] = {1, threads};
    int n = threads > 1 ? 2 : 1;
    bool amx = cli_limits_have_amx(); /* the AMX column only where there are tiles */
    if (!json) {
        printf("cpu: %s\n\n", cpu);
        printf("| threads | read GB/s | int8 GOP/s | fp32 GFLOP/s |%s\n",
               amx ? " AMX int8 GOP/s |" : "");
        printf("| ---: | ---: | ---: | ---: |%s\n", amx ? " ---: |" : "");
    }
    for (int i = 0; i < n; i++) {
        struct cli_limits l;
        int rc = cli_limits_get(counts[i], true, true, &l, NULL);
        if (rc < 0)
            cli_die(1, "cannot measure the machine's limits: %s", strerror(-rc));
        if (json) {
            printf("{\"cpu\": ");
            json_str(stdout, cpu);
            printf(", \"threads\": %d, \"read_gbs\": %.3f, \"read_kernel\": \"%s\", "
                   "\"int8_gops\": %.3f, \"int8_kernel\": \"%s\", \"fp32_gflops\": %.3f, "
                   "\"fp32_kernel\": \"%s\", \"amx_int8_gops\": %.3f}\n",
                   l.threads, l.read_gbs, l.read_kernel, l.int8_gops, l.int8_kernel,
                   l.fp32_gflops, l.fp32_kernel, l.amx_int8_gops);
        } else {
            printf("| %d | %.1f (%s loads) | %.0f (%s) | %.0f (%s) |", l.threads, l.read_gbs,
                   l.read_kernel, l.int8_gops, l.int8_kernel, l.fp32_gflops, l.fp32_kernel);
            if (amx)
                printf(" %.0f (tdpbssd) |", l.amx_int8_gops);
            putchar('\n');
        }
        fflush(stdout);
    }
    if (!json && cli_limits_cache_path(path, sizeof path) == 0)
        fprintf(stderr, "hearth: cached in %s\n", path);
    return 0;
}

/* ---- the command ---------------------------------------------------------------------- */

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    long n_prompt = 128, n_gen = 64, n_depth = 0, reps = 3;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    bool json = false, limits_only = false, no_limits = false;
    char **loras = calloc((size_t)argc, sizeof *loras);
    int n_loras = 0;
    if (!loras)
        cli_die(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help\n");
            free(loras);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "--limits")) {
            limits_only = true;
            continue;
        }
        if (!strcmp(a, "--no-limits")) {
            no_limits = true;
            continue;
        }
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: %s", a,
                    a[0] == '-' ? "missing value" : "unexpected argument (see hearth --help)");
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt"))
            n_prompt = cli_long(a, v, 0, 1 << 16);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen"))
            n_gen = cli_long(a, v, 0, 1 << 16);
        else if (!strcmp(a, "-d") || !strcmp(a, "--depth"))
            n_depth = cli_long(a, v, 0, 1 << 20);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            threads = cli_long(a, v, 1, 256);
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions"))
            reps = cli_long(a, v, 1, 1000);
        else if (!strcmp(a, "--lora"))
            loras[n_loras++] = argv[i];
        else
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
    }
    if (threads < 1)
        threads = 1;
    if (limits_only) {
        free(loras);
        return show_limits((int)threads, json);
    }
    if (!model)
        cli_die(EXIT_USAGE, "missing -m MODEL");
    if (n_prompt == 0 && n_gen == 0)
        cli_die(EXIT_USAGE, "nothing to measure: -p and -n are both 0");

    struct model_info mi;
    model_info(model, &mi);
    struct hr_model *m = cli_load_model(model, false, true);
    if (n_depth + n_prompt + 1 > hr_model_n_ctx_train(m) ||
        n_depth + n_gen + 1 > hr_model_n_ctx_train(m))
        cli_die(1, "-d/-p/-n: the model's context holds %d tokens", hr_model_n_ctx_train(m));

    struct cli_limits lim;
    bool have_lim = false;
    if (!no_limits) {
        int rc = cli_limits_get((int)threads, false, true, &lim, NULL);
        if (rc < 0)
            fprintf(stderr, "hearth: note: cannot measure the machine's limits (%s)\n",
                    strerror(-rc));
        have_lim = rc == 0;
    }

    long n_ctx = n_depth + (n_prompt > n_gen + 1 ? n_prompt : n_gen + 1);
    /* a pass of the prompt; at least 512 rows for filling the depth (the
     * batch size only sizes the scratch) */
    long n_batch = n_prompt > 0 ? n_prompt : 1;
    long fill_batch = n_depth < 512 ? n_depth : 512;
    if (n_batch < fill_batch)
        n_batch = fill_batch;
    struct hr_ctx_params cp = {.n_ctx = (int32_t)n_ctx,
                               .n_batch = (int32_t)n_batch,
                               .n_threads = (int32_t)threads};
    struct hr_ctx *ctx;
    struct hr_err err;
    if (hr_ctx_new(m, &cp, &ctx, &err) < 0)
        cli_die(1, "%s", err.msg);
    int32_t n_vocab = hr_model_n_vocab(m);
    struct hr_lora_use *uses = cli_lora_load(m, loras, n_loras);
    struct hr_ctx *ctxs[2] = {ctx, NULL};
    if (n_loras) { /* the adapters on a context of their own, the base bare */
        if (hr_ctx_new(m, &cp, &ctxs[1], &err) < 0 ||
            hr_ctx_set_loras(ctxs[1], uses, n_loras, &err) < 0)
            cli_die(1, "%s", err.msg);
    }

    struct result res[2][2]; /* test × (bare, +lora) */
    int n_res = 0;
    for (int v = 0; v < 2; v++) {
        if (n_prompt > 0) {
            res[0][v] = (struct result){.n_prompt = (int)n_prompt, .n_depth = (int)n_depth};
            snprintf(res[0][v].test, sizeof res[0][v].test, "pp%ld%s", n_prompt,
                     v ? "+lora" : "");
        }
        if (n_gen > 0) {
            struct result *r = &res[n_prompt > 0][v];
            *r = (struct result){.n_gen = (int)n_gen, .n_depth = (int)n_depth};
            snprintf(r->test, sizeof r->test, "tg%ld%s", n_gen, v ? "+lora" : "");
        }
        for (int i = 0; i < (n_prompt > 0) + (n_gen > 0) && n_depth > 0; i++) {
            /* llama-bench's "pp512 @ d2048" */
            size_t len = strlen(res[i][v].test);
            snprintf(res[i][v].test + len, sizeof res[i][v].test - len, " @ d%ld", n_depth);
        }
    }
    n_res = (n_prompt > 0) + (n_gen > 0);
    if (!json) {
        printf("| model | type | size | params | threads | isa | test | t/s | rate | of limit |\n");
        printf("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |\n");
    }
    for (int i = 0; i < n_res; i++) {
        run_test(ctxs, n_vocab, res[i], (int)reps);
        for (int v = 0; v < (ctxs[1] ? 2 : 1); v++) {
            if (json)
                print_json(model, &mi, (int)threads, &res[i][v], have_lim ? &lim : NULL);
            else
                print_row(model, &mi, (int)threads, &res[i][v], have_lim ? &lim : NULL);
            free(res[i][v].samples);
        }
        fflush(stdout);
    }
    if (!json && ctxs[1]) {
        printf("\nlora cost (median of %ld paired runs, time per token with the adapters / "
               "without):", reps);
        for (int i = 0; i < n_res; i++)
            printf(" %s %+.1f%%", res[i][1].test, 100 * res[i][1].cost);
        putchar('\n');
    }
    if (!json)
        fprintf(stderr, "hearth: type mix by bytes: %s\n", mi.mix);
    hr_ctx_free(ctxs[1]);
    hr_ctx_free(ctx);
    cli_lora_free(uses, n_loras);
    free(loras);
    hr_model_free(m);
    return 0;
}
