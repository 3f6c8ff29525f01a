/*
 * cmd_train.c — `hearth train`: fine-tunes a LoRA adapter for a model on
 * the user's text, on the CPU (hearth.h "training"; docs/training.md).
 *
 *   hearth train -m BASE --data FILE -o ADAPTER.gguf [--rank 16] [--alpha 32]
 *       [--targets q,k,v,o,gate,up,down] [--epochs 2] [--lr 2e-4] [--ctx 512]
 *       [--batch-tokens N] [--val 5%] [--seed S] [--resume CKPT] [--estimate] ...
 *
 * The run: load the model and the data (plain text, or JSON lines of chats,
 * prompt/completion pairs or texts), keep --val of the examples aside, pack
 * the rest into rows of --ctx tokens, then take epochs × ceil(rows /
 * rows-per-step) optimizer steps, each on --batch-tokens tokens of rows in
 * an order shuffled per epoch (by the seed). Validation loss and perplexity
 * are measured before and after. stderr shows a progress bar (a line per
 * step when it is not a terminal); --log FILE writes a line per step.
 *
 * Checkpoints (every --checkpoint-every steps and on Ctrl-C) hold the
 * trainer's state and this command's settings with a hash of the packed
 * data; --resume CKPT continues exactly where the run stopped (the same
 * steps, the same adapter bytes as an uninterrupted run), refusing data or
 * settings that differ. A second Ctrl-C stops at once.
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const usage_text =
    "usage: hearth train -m BASE --data FILE -o ADAPTER.gguf [options]\n"
    "  --rank R              LoRA rank (16)\n"
    "  --alpha A             scale numerator: deltas are scaled by A/R (32)\n"
    "  --targets LIST        products to adapt, of q,k,v,o,gate,up,down (all)\n"
    "  --epochs E            passes over the training rows (2)\n"
    "  --lr LR               peak learning rate (2e-4)\n"
    "  --ctx N               tokens per row (512)\n"
    "  --batch-tokens N      tokens per optimizer step, whole rows (2048)\n"
    "  --val N|P%            examples kept for validation (5%)\n"
    "  --seed S              initialisation, validation split and row order (0)\n"
    "  --resume CKPT         continue a run from its checkpoint\n"
    "  --estimate            print the expected time and memory, then stop\n"
    "  --format auto|text|jsonl   how to read --data (auto: JSONL if it starts with '{')\n"
    "  --warmup N|P%         linear warmup steps (5% of the steps)\n"
    "  --schedule cosine|linear|constant   learning rate after the warmup (cosine)\n"
    "  --weight-decay W      AdamW decoupled weight decay (0)\n"
    "  --clip C              largest global gradient norm, 0 = off (1.0)\n"
    "  --checkpoint FILE     checkpoint path (ADAPTER.gguf.ckpt)\n"
    "  --checkpoint-every N  steps between checkpoints, 0 = only on Ctrl-C (100)\n"
    "  --recompute           keep less: recompute activations in the backward pass\n"
    "  --grad-type auto|f32  transposed base copies for the backward products (auto: q8_0\n"
    "                        for quantized bases)\n"
    "  --log FILE            one tab-separated line per step (and per validation)\n"
    "  --stop-after N        take at most N steps now, then write the checkpoint and stop\n"
    "                        (continue later with --resume)\n"
    "  -t THREADS            compute threads (all CPUs)\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C stops at once */
}

static bool abort_fn(void *user)
{
    (void)user;
    return interrupted != 0;
}

/* ---- options ---------------------------------------------------------------------------- */

/* Settings that a checkpoint fixes: given again on --resume they must agree. */
struct settings {
    int32_t rank;
    double alpha;
    uint32_t targets;
    int64_t epochs;
    double lr;
    int32_t ctx;
    int64_t batch_tokens;
    char val[32];
    uint64_t seed;
    int32_t format;
    char warmup[32];
    int32_t schedule;
    double weight_decay, clip;
    bool recompute;
    uint32_t grad_type;
};

enum {
    G_RANK,
    G_ALPHA,
    G_TARGETS,
    G_EPOCHS,
    G_LR,
    G_CTX,
    G_BATCH,
    G_VAL,
    G_SEED,
    G_FORMAT,
    G_WARMUP,
    G_SCHEDULE,
    G_WD,
    G_CLIP,
    G_RECOMPUTE,
    G_GRAD,
    G_COUNT
};
static const char *const flag_names[G_COUNT] = {
    "--rank",         "--alpha", "--targets",   "--epochs",   "--lr",     "--ctx",
    "--batch-tokens", "--val",   "--seed",      "--format",   "--warmup", "--schedule",
    "--weight-decay", "--clip",  "--recompute", "--grad-type"};

struct opts {
    const char *model, *data, *out, *resume, *ckpt, *log;
    bool estimate;
    long threads, ckpt_every, stop_after;
    struct settings s;
    bool given[G_COUNT];
};

static const char *const kind_names[7] = {"q", "k", "v", "o", "gate", "up", "down"};

static uint32_t parse_targets(const char *v)
{
    uint32_t mask = 0;
    char *copy = strdup(v), *save = NULL;
    if (!copy) cli_die(1, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < 7 && strcmp(tok, kind_names[k]))
            k++;
        if (k == 7)
            cli_die(EXIT_USAGE, "--targets: unknown product '%s' (of q,k,v,o,gate,up,down)", tok);
        mask |= 1u << k;
    }
    free(copy);
    if (!mask) cli_die(EXIT_USAGE, "--targets: empty list");
    return mask;
}

static void targets_str(uint32_t mask, char *buf, size_t n)
{
    buf[0] = 0;
    for (int k = 0; k < 7; k++)
        if (mask & (1u << k))
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? "," : "", kind_names[k]);
}

/* N or P% → a count out of `of` */
static int64_t count_or_percent(const char *flag, const char *v, int64_t of)
{
    size_t n = strlen(v);
    if (n && v[n - 1] == '%') {
        char num[32];
        if (n >= sizeof num)
            cli_die(EXIT_USAGE, "%s: '%s' is not a count or a percentage", flag, v);
        memcpy(num, v, n - 1);
        num[n - 1] = 0;
        double p = cli_double(flag, num, 0, 100);
        return (int64_t)llround(p / 100.0 * (double)of);
    }
    return cli_long(flag, v, 0, 1L << 40);
}

static void check_count_or_percent(const char *flag, const char *v)
{
    (void)count_or_percent(flag, v, 100);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    struct settings *s = &o->s;
    s->rank = 16;
    s->alpha = 32;
    s->targets = HR_TRAIN_ALL;
    s->epochs = 2;
    s->lr = 2e-4;
    s->ctx = 512;
    s->batch_tokens = 2048;
    snprintf(s->val, sizeof s->val, "5%%");
    snprintf(s->warmup, sizeof s->warmup, "5%%");
    s->schedule = HR_TRAIN_COSINE;
    s->clip = 1.0;
    o->ckpt_every = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (!strcmp(a, "--estimate")) {
            o->estimate = true;
            continue;
        }
        if (!strcmp(a, "--recompute")) {
            s->recompute = true;
            o->given[G_RECOMPUTE] = true;
            continue;
        }
        if (a[0] != '-')
            cli_die(EXIT_USAGE, "unexpected argument '%s' (see hearth train --help)", a);
        if (i + 1 >= argc) cli_die(EXIT_USAGE, "%s: missing value", a);
        const char *v = argv[++i];
        int g = -1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            o->out = v;
        else if (!strcmp(a, "--resume"))
            o->resume = v;
        else if (!strcmp(a, "--checkpoint"))
            o->ckpt = v;
        else if (!strcmp(a, "--log"))
            o->log = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            o->threads = cli_long(a, v, 1, 1024);
        else if (!strcmp(a, "--checkpoint-every"))
            o->ckpt_every = cli_long(a, v, 0, 1L << 40);
        else if (!strcmp(a, "--stop-after"))
            o->stop_after = cli_long(a, v, 1, 1L << 40);
        else if (!strcmp(a, "--rank"))
            s->rank = (int32_t)cli_long(a, v, 1, 4096), g = G_RANK;
        else if (!strcmp(a, "--alpha"))
            s->alpha = cli_double(a, v, 1e-6, 1e6), g = G_ALPHA;
        else if (!strcmp(a, "--targets"))
            s->targets = parse_targets(v), g = G_TARGETS;
        else if (!strcmp(a, "--epochs"))
            s->epochs = cli_long(a, v, 1, 1000000), g = G_EPOCHS;
        else if (!strcmp(a, "--lr"))
            s->lr = cli_double(a, v, 1e-12, 10), g = G_LR;
        else if (!strcmp(a, "--ctx"))
            s->ctx = (int32_t)cli_long(a, v, 2, 1 << 20), g = G_CTX;
        else if (!strcmp(a, "--batch-tokens"))
            s->batch_tokens = cli_long(a, v, 1, 1L << 40), g = G_BATCH;
        else if (!strcmp(a, "--val")) {
            check_count_or_percent(a, v);
            snprintf(s->val, sizeof s->val, "%s", v);
            g = G_VAL;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            s->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                cli_die(EXIT_USAGE, "--seed: '%s' is not a non-negative integer", v);
            g = G_SEED;
        } else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "auto"))
                s->format = HR_TRAIN_AUTO;
            else if (!strcmp(v, "text"))
                s->format = HR_TRAIN_TEXT;
            else if (!strcmp(v, "jsonl"))
                s->format = HR_TRAIN_JSONL;
            else
                cli_die(EXIT_USAGE, "--format: '%s' is not auto, text or jsonl", v);
            g = G_FORMAT;
        } else if (!strcmp(a, "--warmup")) {
            check_count_or_percent(a, v);
            snprintf(s->warmup, sizeof s->warmup, "%s", v);
            g = G_WARMUP;
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "cosine"))
                s->schedule = HR_TRAIN_COSINE;
            else if (!strcmp(v, "linear"))
                s->schedule = HR_TRAIN_LINEAR;
            else if (!strcmp(v, "constant"))
                s->schedule = HR_TRAIN_CONSTANT;
            else
                cli_die(EXIT_USAGE, "--schedule: '%s' is not cosine, linear or constant", v);
            g = G_SCHEDULE;
        } else if (!strcmp(a, "--weight-decay"))
            s->weight_decay = cli_double(a, v, 0, 10), g = G_WD;
        else if (!strcmp(a, "--clip"))
            s->clip = cli_double(a, v, 0, 1e9), g = G_CLIP;
        else if (!strcmp(a, "--grad-type")) {
            if (!strcmp(v, "auto"))
                s->grad_type = 0;
            else if (!strcmp(v, "f32"))
                s->grad_type = HR_TYPE_F32;
            else if (!strcmp(v, "q8_0"))
                s->grad_type = HR_TYPE_Q8_0;
            else
                cli_die(EXIT_USAGE, "--grad-type: '%s' is not auto, f32 or q8_0", v);
            g = G_GRAD;
        } else
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth train --help)", a);
        if (g >= 0) o->given[g] = true;
    }
    if (!o->model) cli_die(EXIT_USAGE, "missing -m BASE");
    if (!o->data) cli_die(EXIT_USAGE, "missing --data FILE");
    if (!o->out && !o->estimate) cli_die(EXIT_USAGE, "missing -o ADAPTER.gguf");
}

/* ---- checkpoint notes: this command's settings, as JSON ---------------------------------- */

static char *settings_json(const struct settings *s, const char *data, uint64_t data_hash,
                           int64_t n_val, double val_before, int64_t val_labels)
{
    char seed[32], hash[32];
    if (!isfinite(val_before)) /* no validation rows (JSON has no NaN) */
        val_before = 0.0;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)data_hash);
    json_t *o =
        json_pack("{s:i, s:f, s:I, s:I, s:f, s:i, s:I, s:s, s:s, s:i, s:s, s:i, s:f, "
                  "s:f, s:b, s:I, s:s, s:s, s:I, s:f, s:I}",
                  "rank", s->rank, "alpha", s->alpha, "targets", (json_int_t)s->targets, "epochs",
                  (json_int_t)s->epochs, "lr", s->lr, "ctx", s->ctx, "batch_tokens",
                  (json_int_t)s->batch_tokens, "val", s->val, "seed", seed, "format", s->format,
                  "warmup", s->warmup, "schedule", s->schedule, "weight_decay", s->weight_decay,
                  "clip", s->clip, "recompute", s->recompute, "grad_type", (json_int_t)s->grad_type,
                  "data", data, "data_hash", hash, "n_val", (json_int_t)n_val, "val_before",
                  val_before, "val_labels", (json_int_t)val_labels);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt) cli_die(1, "out of memory");
    return txt;
}

struct resumed {
    struct settings s;
    char data_hash[32];
    double val_before;
    int64_t val_labels;
};

/* Reads a note back; the given flags must agree with it. */
static void settings_from_json(const char *ckpt, const char *note, const struct opts *o,
                               struct resumed *r)
{
    json_error_t je;
    json_t *j = note ? json_loads(note, 0, &je) : NULL;
    if (!j) cli_die(1, "%s: the checkpoint was not written by hearth train", ckpt);
    struct settings *s = &r->s;
    const char *val = NULL, *seed = NULL, *warmup = NULL, *hash = NULL;
    json_int_t targets = 0, epochs = 0, batch = 0, grad = 0, vl = 0;
    int rank = 0, ctx = 0, format = 0, schedule = 0, recompute = 0;
    if (json_unpack(j,
                    "{s:i, s:F, s:I, s:I, s:F, s:i, s:I, s:s, s:s, s:i, s:s, s:i, s:F, s:F, "
                    "s:b, s:I, s:s, s:F, s:I}",
                    "rank", &rank, "alpha", &s->alpha, "targets", &targets, "epochs", &epochs, "lr",
                    &s->lr, "ctx", &ctx, "batch_tokens", &batch, "val", &val, "seed", &seed,
                    "format", &format, "warmup", &warmup, "schedule", &schedule, "weight_decay",
                    &s->weight_decay, "clip", &s->clip, "recompute", &recompute, "grad_type", &grad,
                    "data_hash", &hash, "val_before", &r->val_before, "val_labels", &vl) < 0)
        cli_die(1, "%s: the checkpoint's settings are incomplete", ckpt);
    s->rank = rank;
    s->targets = (uint32_t)targets;
    s->epochs = epochs;
    s->ctx = ctx;
    s->batch_tokens = batch;
    snprintf(s->val, sizeof s->val, "%s", val);
    s->seed = strtoull(seed, NULL, 10);
    s->format = format;
    snprintf(s->warmup, sizeof s->warmup, "%s", warmup);
    s->schedule = schedule;
    s->recompute = recompute;
    s->grad_type = (uint32_t)grad;
    snprintf(r->data_hash, sizeof r->data_hash, "%s", hash);
    r->val_labels = vl;
    json_decref(j);

    const struct settings *g = &o->s;
    bool same[G_COUNT] = {g->rank == s->rank,
                          g->alpha == s->alpha,
                          g->targets == s->targets,
                          g->epochs == s->epochs,
                          g->lr == s->lr,
                          g->ctx == s->ctx,
                          g->batch_tokens == s->batch_tokens,
                          !strcmp(g->val, s->val),
                          g->seed == s->seed,
                          g->format == s->format,
                          !strcmp(g->warmup, s->warmup),
                          g->schedule == s->schedule,
                          g->weight_decay == s->weight_decay,
                          g->clip == s->clip,
                          g->recompute == s->recompute,
                          g->grad_type == s->grad_type};
    for (int k = 0; k < G_COUNT; k++)
        if (o->given[k] && !same[k])
            cli_die(1,
                    "%s differs from the checkpoint's setting (%s): resume with the same "
                    "settings, or leave the flag out",
                    flag_names[k], ckpt);
}

/* ---- display ------------------------------------------------------------------------------ */

static void fmt_dur(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%.0fs", s);
}

static void fmt_bytes(char *buf, size_t n, uint64_t b)
{
    if (b >= (uint64_t)1 << 30)
        snprintf(buf, n, "%.2f GiB", (double)b / (1 << 30));
    else if (b >= (uint64_t)1 << 20)
        snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, n, "%.1f KiB", (double)b / (1 << 10));
}

static uint64_t peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtoull(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb * 1024;
}

struct progress {
    bool tty;
    int64_t total, first; /* steps; first: the step this run started at */
    double t0;
    int64_t tokens;
};

static void show_step(struct progress *pg, const struct hr_train_stats *st, int64_t epoch,
                      int64_t epochs)
{
    double el = cli_now() - pg->t0;
    double tps = el > 0 ? (double)pg->tokens / el : 0;
    int64_t done = st->step - pg->first, left = pg->total - st->step;
    double eta = done > 0 ? el / (double)done * (double)left : NAN;
    char e[32], l[32];
    fmt_dur(e, sizeof e, eta);
    fmt_dur(l, sizeof l, el);
    if (pg->tty) {
        int width = 24, fill = (int)((double)st->step / (double)pg->total * width);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[width] = 0;
        fprintf(stderr,
                "\r\033[K[%s] %3.0f%% step %lld/%lld epoch %lld/%lld  loss %.4f  "
                "%.0f tok/s  ETA %s",
                bar, 100.0 * (double)st->step / (double)pg->total, (long long)st->step,
                (long long)pg->total, (long long)epoch, (long long)epochs, st->loss, tps, e);
        if (st->step == pg->total) fputc('\n', stderr);
    } else {
        fprintf(stderr,
                "hearth: step %lld/%lld epoch %lld/%lld loss %.4f lr %.3g grad-norm %.3f "
                "%.0f tok/s elapsed %s ETA %s\n",
                (long long)st->step, (long long)pg->total, (long long)epoch, (long long)epochs,
                st->loss, st->lr, st->grad_norm, tps, l, e);
    }
    fflush(stderr);
}

/* ---- the run -----------------------------------------------------------------------------------
 */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t rows_hash(uint64_t h, const struct hr_train_rows *r)
{
    size_t n = (size_t)r->n_rows * (size_t)r->n_ctx * sizeof(int32_t);
    h = fnv(h, &r->n_rows, sizeof r->n_rows);
    if (n) {
        h = fnv(h, r->tokens, n);
        h = fnv(h, r->labels, n);
        h = fnv(h, r->pos, n);
    }
    return h;
}

/* The rows of step s (0-based): epoch e's order is a shuffle of the rows by
 * the seed and e; step k of the epoch takes rows [k·per, (k+1)·per). */
static int32_t step_rows(const struct hr_train_rows *rows, uint64_t seed, int64_t s,
                         int64_t per_epoch, int32_t per_step, int32_t *order, int64_t *order_epoch,
                         const int32_t **out)
{
    int64_t e = s / per_epoch, k = s % per_epoch;
    if (*order_epoch != e) {
        for (int32_t i = 0; i < rows->n_rows; i++)
            order[i] = i;
        uint64_t st = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(e + 1));
        for (int32_t i = rows->n_rows - 1; i > 0; i--) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            int32_t j = (int32_t)((st >> 33) % (uint64_t)(i + 1));
            int32_t x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        *order_epoch = e;
    }
    int64_t i0 = k * per_step, n = rows->n_rows - i0 < per_step ? rows->n_rows - i0 : per_step;
    *out = order + i0;
    return (int32_t)n;
}

static double eval_rows(struct hr_train *t, const struct hr_train_rows *val, int64_t *n_labels)
{
    if (!val->n_rows) {
        *n_labels = 0;
        return NAN;
    }
    double loss;
    struct hr_err err;
    int rc = hr_train_eval(t, val, NULL, val->n_rows, &loss, n_labels, &err);
    if (rc == -ECANCELED) return NAN;
    if (rc < 0) cli_die(1, "validation: %s", err.msg);
    return *n_labels ? loss / (double)*n_labels : NAN;
}

static void save_ckpt(struct hr_train *t, const char *path, const char *note)
{
    struct hr_err err;
    if (hr_train_save_checkpoint(t, path, note, &err) < 0) cli_die(1, "%s", err.msg);
}

int cmd_train(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o);
    struct settings s = o.s;
    struct resumed res = {0};
    int64_t start_step = 0;
    struct hr_err err;
    if (o.resume) {
        char *note = NULL;
        if (hr_train_checkpoint_info(o.resume, NULL, &start_step, &note, &err) < 0)
            cli_die(1, "%s", err.msg);
        settings_from_json(o.resume, note, &o, &res);
        free(note);
        s = res.s;
    }
    char ckpt_buf[4096];
    const char *ckpt = o.ckpt;
    if (!ckpt && o.out) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", o.out);
        ckpt = ckpt_buf;
    }

    double t_load = cli_now();
    struct hr_model *m = cli_load_model(o.model, false, false);
    struct hr_train_data *data;
    if (hr_train_data_load(m, o.data, s.format, s.ctx, &data, &err) < 0) cli_die(1, "%s", err.msg);
    struct hr_train_data_info di;
    hr_train_data_get_info(data, &di);
    int64_t n_val = count_or_percent("--val", s.val, di.n_examples);
    if (n_val >= di.n_examples)
        cli_die(1, "--val %s keeps all %d examples for validation: none would be left to train on",
                s.val, di.n_examples);
    struct hr_train_rows *train, *val;
    if (hr_train_data_pack(data, s.ctx, (int32_t)n_val, s.seed, &train, &val, &err) < 0)
        cli_die(1, "%s", err.msg);
    hr_train_data_free(data);
    uint64_t hash = rows_hash(rows_hash(0xcbf29ce484222325ull, train), val);
    if (o.resume) {
        char h[32];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)hash);
        if (strcmp(h, res.data_hash))
            cli_die(1,
                    "%s: the data differ from those of the checkpoint %s (another file, or "
                    "edited since)",
                    o.data, o.resume);
    }
    fprintf(stderr,
            "hearth: %s (%s); %s: %d examples (%d chat, %d prompt/completion, %d text), "
            "%lld tokens, %lld to learn; read in %.1f s\n",
            o.model, hr_model_arch(m), o.data, di.n_examples, di.n_chat, di.n_completion, di.n_text,
            (long long)di.n_tokens, (long long)di.n_loss_tokens, cli_now() - t_load);
    if (di.n_truncated || di.n_dropped)
        fprintf(stderr,
                "hearth: %d examples cut to --ctx %d tokens, %d left out (nothing to "
                "learn within --ctx tokens)\n",
                di.n_truncated, s.ctx, di.n_dropped);

    int32_t per_step = (int32_t)(s.batch_tokens / s.ctx);
    if (per_step < 1) per_step = 1;
    if (per_step > train->n_rows) per_step = train->n_rows;
    int64_t per_epoch = (train->n_rows + per_step - 1) / per_step;
    int64_t total = per_epoch * s.epochs;

    struct hr_train_params p;
    hr_train_defaults(&p);
    p.rank = s.rank;
    p.alpha = (float)s.alpha;
    p.targets = s.targets;
    p.lr = (float)s.lr;
    p.weight_decay = (float)s.weight_decay;
    p.clip = (float)s.clip;
    p.warmup_steps = count_or_percent("--warmup", s.warmup, total);
    p.total_steps = total;
    p.schedule = s.schedule;
    p.n_ctx = s.ctx;
    p.recompute = s.recompute;
    p.grad_type = s.grad_type;
    p.n_threads = (int32_t)o.threads;
    p.seed = s.seed;

    struct hr_train_estimate est;
    if (hr_train_estimate(m, &p, &est, &err) < 0) cli_die(1, "%s", err.msg);
    uint64_t mem = est.bytes_model + est.bytes_transposed + est.bytes_optimizer +
                   est.bytes_activations + est.bytes_scratch;
    char b[6][32], tg[64];
    fmt_bytes(b[0], 32, est.bytes_model);
    fmt_bytes(b[1], 32, est.bytes_transposed);
    fmt_bytes(b[2], 32, est.bytes_activations);
    fmt_bytes(b[3], 32, est.bytes_optimizer);
    fmt_bytes(b[4], 32, est.bytes_scratch);
    fmt_bytes(b[5], 32, mem);
    targets_str(s.targets, tg, sizeof tg);
    FILE *plan = o.estimate ? stdout : stderr;
    fprintf(plan,
            "plan: %d training rows of %d tokens, %d validation rows; %lld epochs x %lld steps "
            "of %d rows = %lld steps, %lld tokens\n"
            "adapter: rank %d, alpha %g, on %s: %lld parameters\n"
            "memory: model %s + transposed copies %s + activations %s + optimizer %s + "
            "scratch %s = about %s\n",
            train->n_rows, s.ctx, val->n_rows, (long long)s.epochs, (long long)per_epoch, per_step,
            (long long)total, (long long)total * per_step * s.ctx, s.rank, s.alpha, tg,
            (long long)est.n_params, b[0], b[1], b[2], b[3], b[4], b[5]);

    if (o.estimate) {
        /* measure: a throwaway trainer takes one step of one row to warm
         * up, then one more, timed */
        struct hr_train *probe;
        if (hr_train_new(m, &p, &probe, &err) < 0) cli_die(1, "%s", err.msg);
        int32_t one = 0;
        double dt = 0;
        for (int k = 0; k < 2; k++) {
            double t0 = cli_now();
            if (hr_train_step(probe, train, &one, 1, NULL, &err) < 0) cli_die(1, "%s", err.msg);
            dt = cli_now() - t0;
        }
        hr_train_free(probe);
        double tps = (double)s.ctx / dt;
        double train_s = (double)(total - start_step) * per_step * s.ctx / tps;
        double val_s = 2.0 * (double)val->n_rows * s.ctx / (tps * 3.0);
        char d[32];
        fmt_dur(d, sizeof d, train_s + val_s);
        printf("work: %.2f GFLOP per token (%.2f in the base's products)\n"
               "speed: %.1f tokens/s measured on one row (%.1f GFLOP/s)\n"
               "time: about %s for %lld steps%s\n",
               est.flop_per_token / 1e9, est.flop_per_token_base / 1e9, tps,
               tps * est.flop_per_token / 1e9, d, (long long)(total - start_step),
               val->n_rows ? " and the two validations" : "");
        hr_train_rows_free(train);
        hr_train_rows_free(val);
        hr_model_free(m);
        return 0;
    }

    double t_new = cli_now();
    struct hr_train *t;
    if (hr_train_new(m, &p, &t, &err) < 0) cli_die(1, "%s", err.msg);
    if (o.resume && hr_train_load_checkpoint(t, o.resume, &err) < 0) cli_die(1, "%s", err.msg);
    fprintf(stderr, "hearth: trainer ready in %.1f s%s\n", cli_now() - t_new,
            o.resume ? " (resumed)" : "");

    FILE *log = NULL;
    if (o.log && !(log = fopen(o.log, o.resume ? "a" : "w")))
        cli_die(1, "%s: %s", o.log, strerror(errno));
    if (log && !o.resume)
        fprintf(log, "# step\tepoch\tloss\tlr\tgrad_norm\ttokens_per_s\telapsed_s\n");

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    hr_train_set_abort(t, abort_fn, NULL);

    double val_before = res.val_before;
    int64_t val_labels = res.val_labels;
    if (!o.resume) {
        val_before = eval_rows(t, val, &val_labels);
        if (val->n_rows)
            fprintf(stderr, "hearth: validation before: loss %.4f, perplexity %.3f (%lld tokens)\n",
                    val_before, exp(val_before), (long long)val_labels);
        if (log && val->n_rows) fprintf(log, "# val\t0\t%.6f\t%.4f\n", val_before, exp(val_before));
    }
    char *note = settings_json(&s, o.data, hash, n_val, val_before, val_labels);

    int32_t *order = malloc((size_t)(train->n_rows ? train->n_rows : 1) * sizeof *order);
    if (!order) cli_die(1, "out of memory");
    int64_t order_epoch = -1;
    struct progress pg = {isatty(2) != 0, total, start_step, cli_now(), 0};
    double first_loss = NAN, last_loss = NAN;
    int64_t step = start_step;
    int64_t stop_at = o.stop_after ? start_step + o.stop_after : total;
    if (stop_at > total) stop_at = total;
    while (step < stop_at && !interrupted) {
        const int32_t *idx;
        int32_t n = step_rows(train, s.seed, step, per_epoch, per_step, order, &order_epoch, &idx);
        struct hr_train_stats st;
        int rc = hr_train_step(t, train, idx, n, &st, &err);
        if (rc == -ECANCELED) break;
        if (rc < 0) cli_die(1, "step %lld: %s", (long long)step + 1, err.msg);
        step = st.step;
        pg.tokens += st.n_tokens;
        if (isnan(first_loss)) first_loss = st.loss;
        last_loss = st.loss;
        show_step(&pg, &st, step / per_epoch + (step % per_epoch != 0), s.epochs);
        if (log) {
            fprintf(log, "%lld\t%lld\t%.6f\t%.6g\t%.6f\t%.1f\t%.2f\n", (long long)step,
                    (long long)((step - 1) / per_epoch + 1), st.loss, st.lr, st.grad_norm,
                    (double)pg.tokens / (cli_now() - pg.t0), cli_now() - pg.t0);
            fflush(log);
        }
        if (o.ckpt_every > 0 && step % o.ckpt_every == 0 && step < total) save_ckpt(t, ckpt, note);
    }
    double elapsed = cli_now() - pg.t0;
    if (interrupted || step < total) {
        if (pg.tty && step < total) fputc('\n', stderr);
        save_ckpt(t, ckpt, note);
        if (step > start_step)
            fprintf(stderr, "hearth: trained %lld steps (%lld tokens) in %.1f s: %.1f tokens/s\n",
                    (long long)(step - start_step), (long long)pg.tokens, elapsed,
                    elapsed > 0 ? (double)pg.tokens / elapsed : 0.0);
        fprintf(stderr,
                "hearth: %s after step %lld of %lld; checkpoint written to %s\n"
                "hearth: continue with: hearth train -m %s --data %s -o %s --resume %s\n",
                interrupted ? "interrupted" : "stopped", (long long)step, (long long)total, ckpt,
                o.model, o.data, o.out, ckpt);
        if (log) fclose(log);
        free(order);
        free(note);
        hr_train_free(t);
        hr_train_rows_free(train);
        hr_train_rows_free(val);
        hr_model_free(m);
        return interrupted ? 130 : 0;
    }

    int64_t vl_after = 0;
    double val_after = eval_rows(t, val, &vl_after);
    if (hr_train_save_adapter(t, o.out, &err) < 0) cli_die(1, "%s", err.msg);
    if (log && val->n_rows)
        fprintf(log, "# val\t%lld\t%.6f\t%.4f\n", (long long)step, val_after, exp(val_after));
    if (ckpt && !o.ckpt && access(ckpt, F_OK) == 0)
        unlink(ckpt); /* the automatic checkpoint is stale once the adapter is written */

    struct stat sb;
    char asz[32], rss[32], el[32];
    fmt_bytes(asz, sizeof asz, stat(o.out, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    fmt_bytes(rss, sizeof rss, peak_rss());
    fmt_dur(el, sizeof el, elapsed);
    fprintf(stderr,
            "hearth: trained %lld steps (%lld tokens) in %s: %.1f tokens/s; peak memory %s\n",
            (long long)(step - start_step), (long long)pg.tokens, el,
            elapsed > 0 ? (double)pg.tokens / elapsed : 0.0, rss);
    if (!isnan(first_loss))
        fprintf(stderr, "hearth: training loss %.4f at the first step, %.4f at the last\n",
                first_loss, last_loss);
    if (val->n_rows)
        fprintf(stderr,
                "hearth: validation loss %.4f -> %.4f, perplexity %.3f -> %.3f (%lld tokens)\n",
                val_before, val_after, exp(val_before), exp(val_after), (long long)vl_after);
    fprintf(stderr, "hearth: wrote %s (%s); use it with: hearth generate -m %s --lora %s ...\n",
            o.out, asz, o.model, o.out);
    if (log) fclose(log);
    free(order);
    free(note);
    hr_train_free(t);
    hr_train_rows_free(train);
    hr_train_rows_free(val);
    hr_model_free(m);
    return 0;
}
