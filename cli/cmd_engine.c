/*
 * cmd_engine.c — the local engine subcommands of `hearth`:
 *
 *   hearth generate -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]
 *                   [--min-p P] [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX]
 *                   [--cache-type f32|f16] [--lora FILE[:SCALE]]...
 *   hearth tokenize -m MODEL -p TEXT
 *   hearth logits   -m MODEL --tokens ID,ID,... -o FILE [-t THREADS] [--lora FILE[:SCALE]]...
 *
 * stdout carries only the result (the continuation, the ids, nothing for
 * logits); load time and speed go to stderr.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- option parsing ----------------------------------------------------------- */

struct opts {
    const char *model, *prompt, *tokens, *output;
    long n_predict, threads, ctx, top_k;
    double temp, top_p, min_p, repeat_penalty;
    uint32_t cache_type; /* HR_TYPE_F32 or HR_TYPE_F16 */
    unsigned long long seed;
    int have_seed;
    char **loras; /* --lora specs, in order ([argc]) */
    int n_loras;
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.n_predict = 128, .temp = -1, .top_k = -1, .top_p = -1, .min_p = -1,
                       .repeat_penalty = -1};
    if (!(o->loras = calloc((size_t)argc, sizeof *o->loras)))
        cli_die(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help\n");
            exit(0);
        }
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: %s", a,
                a[0] == '-' ? "missing value" : "unexpected argument (see hearth --help)");
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "--tokens"))
            o->tokens = v;
        else if (!strcmp(a, "--lora"))
            o->loras[o->n_loras++] = argv[i];
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            o->output = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
            o->n_predict = cli_long(a, v, 0, 1 << 24);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            o->threads = cli_long(a, v, 1, 1024);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx"))
            o->ctx = cli_long(a, v, 1, 1 << 24);
        else if (!strcmp(a, "--temp"))
            o->temp = cli_double(a, v, 0, 1e6);
        else if (!strcmp(a, "--top-k"))
            o->top_k = cli_long(a, v, 0, INT32_MAX);
        else if (!strcmp(a, "--top-p"))
            o->top_p = cli_double(a, v, 0, 1);
        else if (!strcmp(a, "--min-p"))
            o->min_p = cli_double(a, v, 0, 1);
        else if (!strcmp(a, "--repeat-penalty"))
            o->repeat_penalty = cli_double(a, v, 0, 1e6);
        else if (!strcmp(a, "--cache-type")) {
            if (!strcmp(v, "f32"))
                o->cache_type = HR_TYPE_F32;
            else if (!strcmp(v, "f16"))
                o->cache_type = HR_TYPE_F16;
            else
                cli_die(EXIT_USAGE, "--cache-type: '%s' is not f32 or f16", v);
        }
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                cli_die(EXIT_USAGE, "--seed: '%s' is not a non-negative integer", v);
            o->have_seed = 1;
        } else
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
    }
}

static int32_t *tokenize(const struct hr_vocab *vocab, const char *text, int64_t *n_out)
{
    size_t len = strlen(text);
    int64_t n = hr_tokenize(vocab, text, len, true, true, NULL, 0);
    if (n < 0)
        cli_die(1, "cannot tokenize the prompt: %s", strerror((int)-n));
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids)
        cli_die(1, "out of memory");
    n = hr_tokenize(vocab, text, len, true, true, ids, (size_t)n);
    *n_out = n;
    return ids;
}

/* ---- UTF-8-safe streaming of pieces --------------------------------------------- */

/* Byte-level tokens may split a character: hold back an incomplete tail until
 * the next piece completes it. */
struct utf8_out {
    char buf[64];
    size_t n;
};

static size_t utf8_seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

static void utf8_put(struct utf8_out *u, const char *s, size_t n, bool flush)
{
    for (size_t i = 0; i < n; i++) {
        if (u->n == sizeof u->buf) {
            fwrite(u->buf, 1, u->n, stdout);
            u->n = 0;
        }
        u->buf[u->n++] = s[i];
    }
    /* print everything up to the start of an incomplete trailing sequence */
    size_t keep = 0;
    for (size_t back = 1; back <= 4 && back <= u->n; back++) {
        unsigned char c = (unsigned char)u->buf[u->n - back];
        if ((c & 0xC0) == 0x80)
            continue;
        if (utf8_seq_len(c) > back)
            keep = back;
        break;
    }
    if (flush)
        keep = 0;
    fwrite(u->buf, 1, u->n - keep, stdout);
    memmove(u->buf, u->buf + u->n - keep, keep);
    u->n = keep;
    fflush(stdout);
}

/* ---- commands ------------------------------------------------------------------- */

int cmd_generate(int argc, char **argv)
{
    struct opts opts, *o = &opts;
    parse_opts(argc, argv, o);
    if (!o->prompt)
        cli_die(EXIT_USAGE, "missing -p PROMPT");
    struct hr_model *m = cli_load_model(o->model, false, true);
    const struct hr_vocab *vocab = hr_model_vocab(m);
    int64_t n_prompt;
    int32_t *prompt = tokenize(vocab, o->prompt, &n_prompt);
    if (n_prompt == 0)
        cli_die(1, "the prompt gives no tokens");

    long n_ctx = o->ctx ? o->ctx : n_prompt + o->n_predict;
    if (n_ctx > hr_model_n_ctx_train(m) && !o->ctx)
        n_ctx = hr_model_n_ctx_train(m);
    if (n_prompt >= n_ctx)
        cli_die(1, "the prompt has %lld tokens; the context holds %ld", (long long)n_prompt, n_ctx);
    struct hr_ctx_params cp = {.n_ctx = (int32_t)n_ctx, .n_threads = (int32_t)o->threads,
                               .kv_type = o->cache_type};
    struct hr_ctx *ctx;
    struct hr_err err;
    int rc = hr_ctx_new(m, &cp, &ctx, &err);
    if (rc < 0)
        cli_die(1, "%s", err.msg);
    struct hr_lora_use *loras = cli_lora_load(m, o->loras, o->n_loras);
    if ((rc = hr_ctx_set_loras(ctx, loras, o->n_loras, &err)) < 0)
        cli_die(1, "%s", err.msg);

    uint64_t seed = o->seed;
    if (!o->have_seed && getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)time(NULL);
    struct hr_sampler_params sp;
    hr_sampler_defaults(&sp, seed);
    if (o->temp >= 0)
        sp.temp = (float)o->temp;
    if (o->top_k >= 0)
        sp.top_k = (int32_t)o->top_k;
    if (o->top_p >= 0)
        sp.top_p = (float)o->top_p;
    if (o->min_p >= 0)
        sp.min_p = (float)o->min_p;
    if (o->repeat_penalty >= 0)
        sp.repeat_penalty = (float)o->repeat_penalty;
    struct hr_sampler *smp;
    if ((rc = hr_sampler_new(&sp, hr_model_n_vocab(m), &smp)) < 0)
        cli_die(1, "cannot create the sampler: %s", strerror(-rc));
    for (int64_t i = 0; i < n_prompt; i++)
        hr_sampler_accept(smp, prompt[i]);

    double t0 = cli_now();
    if ((rc = hr_ctx_eval(ctx, prompt, (int32_t)n_prompt, false, &err)) < 0)
        cli_die(1, "%s", err.msg);
    double t1 = cli_now();
    struct utf8_out out = {.n = 0};
    long n_gen = 0;
    char piece[256];
    while (n_gen < o->n_predict) {
        int32_t tok = hr_sampler_sample(smp, hr_ctx_logits(ctx, -1));
        if (hr_vocab_is_eog(vocab, tok))
            break;
        hr_sampler_accept(smp, tok);
        n_gen++;
        int64_t len = hr_token_to_piece(vocab, tok, false, piece, sizeof piece);
        if (len > 0)
            utf8_put(&out, piece, len < (int64_t)sizeof piece ? (size_t)len : sizeof piece,
                     false);
        if (n_gen == o->n_predict || hr_ctx_n_past(ctx) >= hr_ctx_n_ctx(ctx))
            break;
        if ((rc = hr_ctx_eval(ctx, &tok, 1, false, &err)) < 0)
            cli_die(1, "%s", err.msg);
    }
    utf8_put(&out, "", 0, true);
    fputc('\n', stdout);
    double t2 = cli_now();
    fprintf(stderr,
            "hearth: prompt %lld tokens in %.1f ms (%.1f tok/s); generated %ld tokens in %.1f ms "
            "(%.1f tok/s)\n",
            (long long)n_prompt, (t1 - t0) * 1e3, (double)n_prompt / (t1 - t0), n_gen,
            (t2 - t1) * 1e3, n_gen > 0 ? (double)n_gen / (t2 - t1) : 0.0);
    hr_sampler_free(smp);
    hr_ctx_free(ctx);
    cli_lora_free(loras, o->n_loras);
    free(o->loras);
    free(prompt);
    hr_model_free(m);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    struct opts opts, *o = &opts;
    parse_opts(argc, argv, o);
    if (!o->prompt)
        cli_die(EXIT_USAGE, "missing -p TEXT");
    struct hr_model *m = cli_load_model(o->model, true, false);
    int64_t n;
    int32_t *ids = tokenize(hr_model_vocab(m), o->prompt, &n);
    for (int64_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    free(o->loras);
    hr_model_free(m);
    return 0;
}

int cmd_logits(int argc, char **argv)
{
    struct opts opts, *o = &opts;
    parse_opts(argc, argv, o);
    if (!o->tokens)
        cli_die(EXIT_USAGE, "missing --tokens ID,ID,...");
    if (!o->output)
        cli_die(EXIT_USAGE, "missing -o FILE");
    /* parse the id list strictly: digits separated by commas */
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    const char *s = o->tokens;
    for (size_t pos = 0;; pos++) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end && *end != ','))
            cli_die(EXIT_USAGE, "--tokens: entry %zu ('%.*s') is not a token id", pos + 1,
                (int)strcspn(s, ","), s);
        if (n == cap) {
            cap *= 2;
            ids = realloc(ids, cap * sizeof *ids);
            if (!ids)
                cli_die(1, "out of memory");
        }
        ids[n++] = (int32_t)v;
        if (!*end)
            break;
        s = end + 1;
    }
    struct hr_model *m = cli_load_model(o->model, false, false);
    int32_t n_vocab = hr_model_n_vocab(m);
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= n_vocab)
            cli_die(1, "--tokens: id %d at position %zu is out of range (vocabulary has %d tokens)",
                ids[i], i + 1, n_vocab);
    struct hr_ctx_params cp = {.n_ctx = (int32_t)n, .n_batch = (int32_t)n,
                               .n_threads = (int32_t)o->threads};
    struct hr_ctx *ctx;
    struct hr_err err;
    if (hr_ctx_new(m, &cp, &ctx, &err) < 0)
        cli_die(1, "%s", err.msg);
    struct hr_lora_use *loras = cli_lora_load(m, o->loras, o->n_loras);
    if (hr_ctx_set_loras(ctx, loras, o->n_loras, &err) < 0)
        cli_die(1, "%s", err.msg);
    if (hr_ctx_eval(ctx, ids, (int32_t)n, true, &err) < 0)
        cli_die(1, "%s", err.msg);
    FILE *f = fopen(o->output, "wb");
    if (!f)
        cli_die(1, "%s: %s", o->output, strerror(errno));
    for (size_t i = 0; i < n; i++)
        if (fwrite(hr_ctx_logits(ctx, (int32_t)i), sizeof(float), (size_t)n_vocab, f) !=
            (size_t)n_vocab)
            cli_die(1, "%s: write failed: %s", o->output, strerror(errno));
    if (fclose(f) != 0)
        cli_die(1, "%s: %s", o->output, strerror(errno));
    fprintf(stderr, "hearth: wrote %zu x %d logits to %s\n", n, n_vocab, o->output);
    hr_ctx_free(ctx);
    cli_lora_free(loras, o->n_loras);
    free(o->loras);
    hr_model_free(m);
    free(ids);
    return 0;
}

