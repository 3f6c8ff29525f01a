/*
 * test_train.c — LoRA training (hearth.h "training", core/train*.c).
 *
 * Gradients against finite differences: every operation alone (RMSNorm,
 * RoPE NORM/NEOX/YaRN, SwiGLU, cross-entropy, attention with GQA and the
 * packing mask), then whole tiny F32 models of the three architectures
 * (made with `hearth mkmodel`), where the analytic gradient of the loss
 * with respect to every A and B must match central differences along
 * random directions and along the gradient itself. On a quantized base,
 * the gradients through the Q8_0 transposed copies agree with the exact
 * (F32 copy) ones.
 *
 * Then the trainer's contracts: the same seed gives the same adapter bytes
 * (with 1 or 2 threads), the loss falls on a memorisation task, a
 * checkpointed and resumed run equals an uninterrupted one, data errors
 * name their line, packing keeps examples apart (an example's loss is the
 * same alone or after another one in its row), the written adapter is
 * llama.cpp's format and, loaded with hr_lora_load, gives the logits the
 * trainer trained; and `hearth train` end to end on stories260K.
 */
#include "gguf.h"
#include "pool.h"
#include "testutil.h"
#include "train.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hearth/hearth.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 12345;

static float frand(void) /* uniform in (−1, 1) */
{
    return (float)(2.0 * train_rng_unit(&rng) - 1.0);
}

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = frand() * scale;
}

static double wsum(const float *r, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)r[i] * (double)y[i];
    return s;
}

/* |a − b| <= tol·max(|a|, |b|, floor) */
static void expect_close(double a, double b, double tol, double floor, const char *what, int i)
{
    double m = fmax(fmax(fabs(a), fabs(b)), floor);
    cr_expect(fabs(a - b) <= tol * m, "%s[%d]: analytic %.8g, numeric %.8g", what, i, a, b);
}

/* ---- operations ------------------------------------------------------------------------- */

Test(ops, rmsnorm)
{
    enum { N = 37 };
    float x[N], w[N], r[N], y[N], dx[N];
    fill(x, N, 2.0f);
    fill(w, N, 1.5f);
    fill(r, N, 1.0f);
    float rr = top_rmsnorm(y, x, w, N, 1e-5f);
    top_rmsnorm_bwd(dx, r, x, w, rr, N, false);
    for (int i = 0; i < N; i++) {
        float e = 1e-2f, keep = x[i];
        x[i] = keep + e;
        top_rmsnorm(y, x, w, N, 1e-5f);
        double lp = wsum(r, y, N);
        x[i] = keep - e;
        top_rmsnorm(y, x, w, N, 1e-5f);
        double lm = wsum(r, y, N);
        x[i] = keep;
        expect_close(dx[i], (lp - lm) / (2 * e), 2e-2, 1e-2, "rmsnorm dx", i);
    }
    /* accumulate adds */
    float acc[N];
    for (int i = 0; i < N; i++)
        acc[i] = 1.0f;
    top_rmsnorm_bwd(acc, r, x, w, rr, N, true);
    for (int i = 0; i < N; i++)
        cr_expect_float_eq(acc[i], 1.0f + dx[i], 1e-5f);
}

static void check_rope(enum rope_mode mode, bool yarn)
{
    struct hparams hp = {0};
    hp.head_dim = 16;
    hp.n_rot = 16;
    hp.rope_base = 10000.0f;
    hp.rope_freq_scale = yarn ? 0.25f : 1.0f;
    hp.rope_attn_factor = 1.0f;
    hp.rope_yarn = yarn;
    hp.rope_n_ctx_orig = 64;
    hp.rope_mode = mode;
    enum { T = 5, H = 3, N = T * H * 16, NP = 40 };
    int32_t pos[T] = {0, 7, 1, 33, 2};
    float cs[NP * 8], sn[NP * 8], x[N], y[N], r[N], dx[N];
    top_rope_tables(&hp, NULL, NP, cs, sn);
    fill(x, N, 1.0f);
    fill(r, N, 1.0f);
    memcpy(dx, r, sizeof dx);
    top_rope(dx, pos, T, H, &hp, cs, sn, true);
    for (int i = 0; i < N; i++) {
        float e = 1e-2f, keep = x[i];
        x[i] = keep + e;
        memcpy(y, x, sizeof y);
        top_rope(y, pos, T, H, &hp, cs, sn, false);
        double lp = wsum(r, y, N);
        x[i] = keep - e;
        memcpy(y, x, sizeof y);
        top_rope(y, pos, T, H, &hp, cs, sn, false);
        double lm = wsum(r, y, N);
        x[i] = keep;
        expect_close(dx[i], (lp - lm) / (2 * e), 1e-3, 1e-2, "rope dx", i);
    }
    /* the rotation keeps norms only without a magnitude factor; position 0
     * is the identity */
    memcpy(y, x, sizeof y);
    top_rope(y, pos, T, H, &hp, cs, sn, false);
    if (!yarn)
        for (int i = 0; i < H * 16; i++)
            cr_expect_float_eq(y[i], x[i], 1e-6f);
}

Test(ops, rope_norm)
{
    check_rope(ROPE_NORM, false);
}

Test(ops, rope_neox)
{
    check_rope(ROPE_NEOX, false);
}

Test(ops, rope_yarn)
{
    check_rope(ROPE_NEOX, true);
}

Test(ops, swiglu)
{
    enum { N = 50 };
    float g[N], u[N], h[N], r[N], dg[N], du[N];
    fill(g, N, 4.0f);
    fill(u, N, 2.0f);
    fill(r, N, 1.0f);
    top_swiglu_bwd(dg, du, r, g, u, N);
    for (int i = 0; i < N; i++) {
        for (int which = 0; which < 2; which++) {
            float *x = which ? u : g, e = 1e-2f, keep = x[i];
            x[i] = keep + e;
            top_swiglu(h, g, u, N);
            double lp = wsum(r, h, N);
            x[i] = keep - e;
            top_swiglu(h, g, u, N);
            double lm = wsum(r, h, N);
            x[i] = keep;
            expect_close(which ? du[i] : dg[i], (lp - lm) / (2 * e), 1e-2, 1e-2,
                         which ? "swiglu du" : "swiglu dg", i);
        }
    }
}

Test(ops, cross_entropy)
{
    enum { V = 300 };
    float z[V], z2[V], d[V];
    fill(z, V, 5.0f);
    memcpy(d, z, sizeof d);
    double loss = top_xent(d, V, 17, 0.5f); /* d = 0.5·(softmax − onehot) */
    double mx = -1e30, s = 0;
    for (int i = 0; i < V; i++)
        mx = fmax(mx, z[i]);
    for (int i = 0; i < V; i++)
        s += exp((double)z[i] - mx);
    cr_expect(fabs(loss - (mx + log(s) - z[17])) < 1e-5, "loss %g", loss);
    for (int i = 0; i < V; i += 7) {
        float e = 1e-2f;
        memcpy(z2, z, sizeof z2);
        z2[i] += e;
        double lp = top_xent(z2, V, 17, 1.0f);
        memcpy(z2, z, sizeof z2);
        z2[i] -= e;
        double lm = top_xent(z2, V, 17, 1.0f);
        expect_close(d[i] * 2.0, (lp - lm) / (2 * e), 1e-2, 1e-4, "xent dz", i);
    }
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += d[i];
    cr_expect(fabs(sum) < 1e-5, "gradient of a softmax sums to 0 (%g)", sum);
}

/* Attention with GQA (4 query heads on 2 KV heads) over a pass holding two
 * rows of 5: the first row packs examples of 2 and 3 tokens, the second
 * one example of 5. */
Test(ops, attention)
{
    enum { T = 10, NH = 4, NKV = 2, HD = 8, NQ = NH * HD, NK = NKV * HD };
    int32_t pos[T] = {0, 1, 0, 1, 2, 0, 1, 2, 3, 4};
    float q[T * NQ], k[T * NK], v[T * NK], o[T * NQ], lse[T * NH], r[T * NQ];
    float dq[T * NQ], dk[T * NK], dv[T * NK], dsum[T * NH];
    float *scratch = malloc(2 * (size_t)top_attn_scratch(5, HD, NH, NKV) * sizeof(float));
    int32_t seg_end[T];
    fill(q, T * NQ, 1.0f);
    fill(k, T * NK, 1.0f);
    fill(v, T * NK, 1.0f);
    fill(r, T * NQ, 1.0f);
    struct pool *pool;
    cr_assert_eq(pool_new(2, &pool), 0);
    float *tr = malloc((size_t)top_attn_tsize(T, NH, NKV, HD) * sizeof(float));
    struct top_attn a = {T,   NH, NKV, HD, 5,  pos,  q,       k,       v, o,
                         lse, r,  dq,  dk, dv, dsum, seg_end, scratch, tr};
    top_attn_fwd(pool, &a);
    top_attn_bwd(pool, &a);
    cr_expect_eq(seg_end[0], 2);
    cr_expect_eq(seg_end[3], 5);
    cr_expect_eq(seg_end[5], 10);
    float *xs[3] = {q, k, v}, *ds[3] = {dq, dk, dv};
    int ns[3] = {T * NQ, T * NK, T * NK};
    const char *names[3] = {"attn dq", "attn dk", "attn dv"};
    float o2[T * NQ];
    a.o = o2;
    for (int w = 0; w < 3; w++)
        for (int i = 0; i < ns[w]; i++) {
            float e = 1e-2f, keep = xs[w][i];
            xs[w][i] = keep + e;
            top_attn_fwd(pool, &a);
            double lp = wsum(r, o2, T * NQ);
            xs[w][i] = keep - e;
            top_attn_fwd(pool, &a);
            double lm = wsum(r, o2, T * NQ);
            xs[w][i] = keep;
            expect_close(ds[w][i], (lp - lm) / (2 * e), 2e-2, 2e-2, names[w], i);
        }
    /* the first example's tokens see nothing of the others: their outputs
     * do not depend on key 2 (the second example's first token) */
    k[2 * NK] += 5.0f;
    top_attn_fwd(pool, &a);
    for (int i = 0; i < 2 * NQ; i++)
        cr_expect_eq(o[i], o2[i]);
    pool_free(pool);
    free(tr);
    free(scratch);
}

/* ---- whole models ------------------------------------------------------------------------ */

static char tmpdir[64];

static void make_tmpdir(void)
{
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-train-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
    tmpdir[0] = 0;
}

static const char *tmp_path(const char *name)
{
    static char buf[8][160];
    static int slot;
    make_tmpdir();
    char *p = buf[slot++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

/* A tiny F32 model of `shape` made by hearth mkmodel. Owned. */
static struct hr_model *tiny_model(const char *shape)
{
    char name[64];
    snprintf(name, sizeof name, "%s-f32.gguf", shape);
    const char *path = tmp_path(name);
    char *out = NULL, *err = NULL;
    int st = tu_hearth(&out, &err, "mkmodel", "--shape", shape, "--type", "f32", "-o", path, "-t",
                       "1", NULL);
    cr_assert_eq(st, 0, "mkmodel: %s", err);
    free(out);
    free(err);
    struct hr_model *m;
    struct hr_err e;
    cr_assert_eq(hr_model_load(path, NULL, &m, &e), 0, "%s", e.msg);
    return m;
}

/* Rows of n_ctx tokens with random tokens and labels: row 0 packs two
 * examples (3 tokens, then the rest), row 1 is one example; about 3 labels
 * in 4. */
static struct hr_train_rows *random_rows(int32_t n_rows, int32_t n_ctx, int32_t n_vocab)
{
    struct hr_train_rows *r = calloc(1, sizeof *r);
    size_t n = (size_t)n_rows * (size_t)n_ctx;
    r->n_rows = n_rows;
    r->n_ctx = n_ctx;
    r->tokens = malloc(n * sizeof(int32_t));
    r->labels = malloc(n * sizeof(int32_t));
    r->pos = malloc(n * sizeof(int32_t));
    for (int32_t i = 0; i < n_rows; i++)
        for (int32_t j = 0; j < n_ctx; j++) {
            size_t c = (size_t)i * (size_t)n_ctx + (size_t)j;
            r->tokens[c] = (int32_t)(train_rng_next(&rng) % (uint64_t)n_vocab);
            r->labels[c] =
                train_rng_next(&rng) % 4 ? (int32_t)(train_rng_next(&rng) % (uint64_t)n_vocab) : -1;
            r->pos[c] = i == 0 && j >= 3 ? j - 3 : j;
            r->n_labels += r->labels[c] >= 0;
        }
    return r;
}

/* Loss (mean over labels) of all rows; with grad, t->grad = its gradient. */
static double model_loss(struct hr_train *t, const struct hr_train_rows *rows, bool grad)
{
    int64_t C = rows->n_ctx, T = (int64_t)rows->n_rows * C;
    cr_assert(T <= t->pass_T);
    memcpy(t->tok, rows->tokens, (size_t)T * sizeof(int32_t));
    memcpy(t->lab, rows->labels, (size_t)T * sizeof(int32_t));
    memcpy(t->pos, rows->pos, (size_t)T * sizeof(int32_t));
    if (grad) memset(t->grad, 0, (size_t)t->n_params * sizeof(float));
    double loss = 0;
    cr_assert_eq(tgraph_pass(t, T, grad, (float)(1.0 / (double)rows->n_labels), &loss), 0);
    return loss / (double)rows->n_labels;
}

/* Central differences of the loss along d (a unit vector of parameters)
 * against grad·d. */
static void check_direction(struct hr_train *t, const struct hr_train_rows *rows, const float *d,
                            const char *what)
{
    double gd = 0;
    for (int64_t i = 0; i < t->n_params; i++)
        gd += (double)t->grad[i] * (double)d[i];
    float *keep = malloc((size_t)t->n_params * sizeof(float));
    memcpy(keep, t->param, (size_t)t->n_params * sizeof(float));
    double e = 1e-2, l[2];
    for (int s = 0; s < 2; s++) {
        for (int64_t i = 0; i < t->n_params; i++)
            t->param[i] = keep[i] + (float)((s ? -e : e) * (double)d[i]);
        l[s] = model_loss(t, rows, false);
    }
    memcpy(t->param, keep, (size_t)t->n_params * sizeof(float));
    free(keep);
    double fd = (l[0] - l[1]) / (2 * e);
    cr_expect(fabs(fd - gd) <= 5e-3 * fmax(fabs(gd), 1e-3), "%s: grad·d %.6g, differences %.6g",
              what, gd, fd);
}

static void check_model(const char *shape, bool recompute)
{
    struct hr_model *m = tiny_model(shape);
    struct hr_train_params p;
    hr_train_defaults(&p);
    p.rank = 4;
    p.alpha = 8.0f;
    p.n_ctx = 12;
    p.pass_tokens = 24;
    p.recompute = recompute;
    p.n_threads = 2;
    p.seed = 7;
    struct hr_train *t;
    struct hr_err e;
    cr_assert_eq(hr_train_new(m, &p, &t, &e), 0, "%s", e.msg);
    /* B = 0 would make A's gradient zero: give B values of the size
     * training gives it */
    for (int64_t i = 0; i < m->hp.n_layer * TK_COUNT; i++) {
        const struct train_target *tg = &t->tg[i];
        cr_assert(tg->w);
        fill(t->param + tg->off_bt, p.rank * tg->n_out, 0.05f);
    }
    struct hr_train_rows *rows = random_rows(2, 12, hr_model_n_vocab(m));
    double loss = model_loss(t, rows, true);
    cr_expect(loss > 1.0 && loss < 20.0, "loss %g", loss);
    float *d = malloc((size_t)t->n_params * sizeof(float));
    /* along the gradient (the most sensitive direction), then random ones,
     * then A only and B only of one layer's products */
    double n2 = 0;
    for (int64_t i = 0; i < t->n_params; i++)
        n2 += (double)t->grad[i] * (double)t->grad[i];
    cr_assert(n2 > 0);
    for (int64_t i = 0; i < t->n_params; i++)
        d[i] = (float)((double)t->grad[i] / sqrt(n2));
    check_direction(t, rows, d, "along the gradient");
    for (int k = 0; k < 3; k++) {
        fill(d, t->n_params, 1.0f);
        double s = 0;
        for (int64_t i = 0; i < t->n_params; i++)
            s += (double)d[i] * d[i];
        for (int64_t i = 0; i < t->n_params; i++)
            d[i] = (float)(d[i] / sqrt(s));
        check_direction(t, rows, d, "random direction");
    }
    for (int kind = 0; kind < TK_COUNT; kind++) {
        const struct train_target *tg = &t->tg[(m->hp.n_layer - 1) * TK_COUNT + kind];
        for (int side = 0; side < 2; side++) {
            memset(d, 0, (size_t)t->n_params * sizeof(float));
            int64_t off = side ? tg->off_bt : tg->off_a;
            int64_t n = p.rank * (side ? tg->n_out : tg->n_in);
            double s = 0;
            for (int64_t i = 0; i < n; i++)
                s += (double)t->grad[off + i] * t->grad[off + i];
            for (int64_t i = 0; i < n; i++)
                d[off + i] = (float)(t->grad[off + i] / sqrt(s));
            char what[64];
            snprintf(what, sizeof what, "%s kind %d %s", shape, kind, side ? "B" : "A");
            check_direction(t, rows, d, what);
        }
    }
    free(d);
    hr_train_rows_free(rows);
    hr_train_free(t);
    hr_model_free(m);
}

Test(grad, tiny_llama, .fini = rm_tmpdir)
{
    check_model("tiny-llama", false);
}

Test(grad, tiny_qwen2, .fini = rm_tmpdir)
{
    check_model("tiny-qwen2", false);
}

Test(grad, tiny_qwen3_recompute, .fini = rm_tmpdir)
{
    check_model("tiny-qwen3", true);
}

/* Gradients through the Q8_0 transposed copies (a quantized base's default)
 * point the same way as exact ones (F32 copies), on stories260K Q8_0. */
Test(grad, q8_0_copies_agree)
{
    struct hr_model *m;
    struct hr_err e;
    cr_assert_eq(hr_model_load(tu_data("models/stories260K-q8_0.gguf"), NULL, &m, &e), 0, "%s",
                 e.msg);
    float *g[2];
    int64_t n = 0;
    for (int k = 0; k < 2; k++) {
        struct hr_train_params p;
        hr_train_defaults(&p);
        p.rank = 4;
        p.n_ctx = 32;
        p.seed = 3;
        p.grad_type = k ? HR_TYPE_F32 : 0;
        struct hr_train *t;
        cr_assert_eq(hr_train_new(m, &p, &t, &e), 0, "%s", e.msg);
        uint64_t s = 99;
        for (int64_t i = 0; i < m->hp.n_layer * TK_COUNT; i++) /* nonzero B */
            for (int64_t j = 0; j < p.rank * t->tg[i].n_out; j++)
                t->param[t->tg[i].off_bt + j] = (float)(train_rng_unit(&s) - 0.5) * 0.1f;
        rng = 5;
        struct hr_train_rows *rows = random_rows(2, 32, hr_model_n_vocab(m));
        model_loss(t, rows, true);
        n = t->n_params;
        g[k] = malloc((size_t)n * sizeof(float));
        memcpy(g[k], t->grad, (size_t)n * sizeof(float));
        hr_train_rows_free(rows);
        hr_train_free(t);
    }
    double dot = 0, n0 = 0, n1 = 0;
    for (int64_t i = 0; i < n; i++) {
        dot += (double)g[0][i] * g[1][i];
        n0 += (double)g[0][i] * g[0][i];
        n1 += (double)g[1][i] * g[1][i];
    }
    double cosine = dot / sqrt(n0 * n1);
    cr_expect(cosine > 0.999, "cosine %.6f", cosine);
    cr_expect(fabs(sqrt(n0 / n1) - 1.0) < 0.01, "norms %g and %g", sqrt(n0), sqrt(n1));
    free(g[0]);
    free(g[1]);
    hr_model_free(m);
}

/* ---- data ------------------------------------------------------------------------------ */

static struct hr_model *stories(void)
{
    struct hr_model *m;
    struct hr_err e;
    cr_assert_eq(hr_model_load(tu_stories(), NULL, &m, &e), 0, "%s", e.msg);
    return m;
}

static void expect_line_error(struct hr_model *m, const char *text, int line, const char *what)
{
    struct hr_train_data *d = NULL;
    struct hr_err e;
    int rc = hr_train_data_parse(m, text, strlen(text), "data.jsonl", HR_TRAIN_AUTO, 64, &d, &e);
    cr_expect_eq(rc, -EINVAL, "accepted: %s", text);
    cr_expect_eq(e.line, line, "line %d, message %s", e.line, e.msg);
    char want[32];
    snprintf(want, sizeof want, "data.jsonl:%d:", line);
    cr_expect(strstr(e.msg, want), "message '%s' lacks '%s'", e.msg, want);
    cr_expect(strstr(e.msg, what), "message '%s' lacks '%s'", e.msg, what);
    hr_train_data_free(d);
}

Test(data, errors_name_the_line)
{
    struct hr_model *m = stories();
    const char *ok = "{\"prompt\": \"Tom\", \"completion\": \" had a cat.\"}\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s\n%s{\"prompt\": \"x\", \"completion\": \"y\"\n", ok, ok);
    expect_line_error(m, buf, 4, "invalid JSON");
    snprintf(buf, sizeof buf, "%s{\"foo\": 1}\n", ok);
    expect_line_error(m, buf, 2, "expected an object");
    snprintf(buf, sizeof buf, "%s%s[1, 2]\n", ok, ok);
    expect_line_error(m, buf, 3, "expected a JSON object");
    snprintf(buf, sizeof buf, "{\"prompt\": 1, \"completion\": \"x\"}\n");
    expect_line_error(m, buf, 1, "must both be strings");
    snprintf(buf, sizeof buf, "%s{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
             ok);
    expect_line_error(m, buf, 2, "no assistant message");
    snprintf(buf, sizeof buf, "{\"messages\": [{\"content\": \"hi\"}]}\n");
    expect_line_error(m, buf, 1, "role");
    snprintf(buf, sizeof buf, "{\"messages\": []}\n");
    expect_line_error(m, buf, 1, "non-empty array");
    hr_model_free(m);
}

static void piece(const struct hr_model *m, int32_t tok, char *buf, size_t cap)
{
    size_t n = strlen(buf);
    int64_t k = hr_token_to_piece(hr_model_vocab(m), tok, true, buf + n, cap - n - 1);
    cr_assert(k >= 0 && (size_t)k < cap - n - 1);
    buf[n + (size_t)k] = 0;
}

/* Prompt/completion: the loss is on the completion and the final EOS only;
 * text lines and plain text: on every token but the first. */
Test(data, loss_masks)
{
    struct hr_model *m = stories();
    const char *text = "{\"prompt\": \"Once upon a time\", \"completion\": \" there was a cat.\"}\n"
                       "{\"text\": \"Tom ran.\"}\n";
    struct hr_train_data *d;
    struct hr_err e;
    cr_assert_eq(hr_train_data_parse(m, text, strlen(text), "x", HR_TRAIN_AUTO, 64, &d, &e), 0,
                 "%s", e.msg);
    struct hr_train_data_info info;
    hr_train_data_get_info(d, &info);
    cr_expect_eq(info.n_examples, 2);
    cr_expect_eq(info.n_completion, 1);
    cr_expect_eq(info.n_text, 1);
    struct hr_train_rows *tr, *va;
    cr_assert_eq(hr_train_data_pack(d, 64, 0, 1, &tr, &va, &e), 0, "%s", e.msg);
    cr_expect_eq(va->n_rows, 0);
    cr_assert_eq(tr->n_rows, 1); /* both fit in one row */
    char learned[256] = "";
    int64_t nl = 0, second = -1;
    for (int j = 0; j < 64; j++) {
        if (j > 0 && tr->pos[j] == 0 && second < 0) second = j;
        if (tr->labels[j] >= 0) {
            nl++;
            if (second < 0) /* the completion example */
                piece(m, tr->labels[j], learned, sizeof learned);
        }
    }
    cr_expect_eq(nl, tr->n_labels);
    int32_t eos = hr_vocab_eos(hr_model_vocab(m));
    char want[64] = " there was a cat.";
    piece(m, eos, want, sizeof want);
    cr_expect_str_eq(learned, want);
    cr_assert(second > 0);
    /* the text example learns all its tokens after the first */
    int64_t n_text = 0;
    for (int j = (int)second; j < 64 && (j == second || tr->pos[j] != 0); j++)
        n_text++;
    int64_t lab_text = 0;
    for (int64_t j = second; j < second + n_text - 1; j++)
        lab_text += tr->labels[j] == tr->tokens[j + 1];
    cr_expect_eq(lab_text, n_text - 1);
    cr_expect_eq(tr->labels[second + n_text - 1], -1);
    hr_train_rows_free(tr);
    hr_train_rows_free(va);
    hr_train_data_free(d);

    /* plain text: overlapping chunks of n_ctx, every token but the first learned once */
    const char *plain = "Once upon a time, there was a little dog. The dog liked to run in the "
                        "park with his friend the cat. They played all day long.";
    cr_assert_eq(hr_train_data_parse(m, plain, strlen(plain), "p", HR_TRAIN_AUTO, 8, &d, &e), 0);
    hr_train_data_get_info(d, &info);
    int32_t toks[128];
    int64_t nt = hr_tokenize(hr_model_vocab(m), plain, strlen(plain), true, false, toks, 128);
    cr_expect_eq(info.n_loss_tokens, nt - 1);
    cr_expect_eq(info.n_examples, (nt - 1 + 6) / 7);
    hr_train_data_free(d);
    hr_model_free(m);
}

/* A copy of a tiny model with a chat template of tests/data/templates. */
static struct hr_model *chat_model(const char *shape, const char *template)
{
    struct hr_model *base = tiny_model(shape);
    size_t len;
    char rel[128];
    snprintf(rel, sizeof rel, "templates/%s.jinja", template);
    char *tmpl = tu_read_file(tu_data(rel), &len);
    cr_assert(tmpl);
    struct gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_copy_kv(w, base->gguf, NULL, NULL), 0);
    cr_assert_eq(gguf_writer_add_str(w, "tokenizer.chat_template", tmpl), 0);
    for (uint64_t i = 0; i < base->gguf->n_tensors; i++) {
        const struct gguf_tensor *t = &base->gguf->tensors[i];
        cr_assert_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), 0);
    }
    const char *path = tmp_path("chat.gguf");
    struct hr_err e;
    cr_assert_eq(gguf_writer_write(w, path, &e), 0, "%s", e.msg);
    gguf_writer_free(w);
    free(tmpl);
    hr_model_free(base);
    struct hr_model *m;
    cr_assert_eq(hr_model_load(path, NULL, &m, &e), 0, "%s", e.msg);
    return m;
}

/* The text of the labels of rows parsed from one chat line. */
static void chat_learned(struct hr_model *m, const char *text, char *learned, size_t cap)
{
    struct hr_train_data *d;
    struct hr_err e;
    cr_assert_eq(hr_train_data_parse(m, text, strlen(text), "c", HR_TRAIN_JSONL, 256, &d, &e), 0,
                 "%s", e.msg);
    struct hr_train_rows *tr, *va;
    cr_assert_eq(hr_train_data_pack(d, 256, 0, 1, &tr, &va, &e), 0, "%s", e.msg);
    learned[0] = 0;
    for (int j = 0; j < 256; j++)
        if (tr->labels[j] >= 0) piece(m, tr->labels[j], learned, cap);
    hr_train_rows_free(tr);
    hr_train_rows_free(va);
    hr_train_data_free(d);
}

static const char *const chat_line =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
    "{\"role\": \"user\", \"content\": \"Hi there\"}, "
    "{\"role\": \"assistant\", \"content\": \"Hello!\"}, "
    "{\"role\": \"user\", \"content\": \"How are you?\"}, "
    "{\"role\": \"assistant\", \"content\": \"Fine, thanks.\"}]}\n";

/* Chat: the loss is on the assistant messages and the end of their turns,
 * found by rendering prefixes with the model's template. */
Test(data, chat_assistant_spans, .fini = rm_tmpdir)
{
    struct hr_model *m = chat_model("tiny-qwen2", "Qwen-Qwen2.5-7B-Instruct");
    char learned[512];
    chat_learned(m, chat_line, learned, sizeof learned);
    cr_expect_str_eq(learned, "Hello!<|im_end|>\nFine, thanks.<|im_end|>\n");
    hr_model_free(m);
}

/* Qwen3's template renders the last assistant turn apart (with an empty
 * <think> block): earlier turns are found by their text. */
Test(data, chat_assistant_spans_qwen3, .fini = rm_tmpdir)
{
    struct hr_model *m = chat_model("tiny-qwen3", "Qwen-Qwen3-0.6B");
    char learned[512];
    chat_learned(m, chat_line, learned, sizeof learned);
    cr_expect_str_eq(learned, "Hello!<|im_end|>\n<think>\n\n</think>\n\nFine, thanks.<|im_end|>\n");
    hr_model_free(m);
}

/* Packing: examples follow each other in rows, positions restart at each,
 * the rest of a row is label-less padding, and the validation split takes
 * whole examples. */
Test(data, packing)
{
    struct hr_model *m = stories();
    char text[4096] = "";
    for (int i = 0; i < 12; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"prompt\": \"Tom had %d red balls.\", \"completion\": \"%.*s\"}\n", i, 4 * i,
                 " He played and played and played and played and played with them.");
        strcat(text, line);
    }
    struct hr_train_data *d;
    struct hr_err e;
    cr_assert_eq(hr_train_data_parse(m, text, strlen(text), "p", HR_TRAIN_JSONL, 40, &d, &e), 0,
                 "%s", e.msg);
    struct hr_train_data_info info;
    hr_train_data_get_info(d, &info);
    cr_expect_eq(info.n_examples, 12);
    struct hr_train_rows *tr, *va;
    cr_assert_eq(hr_train_data_pack(d, 40, 3, 7, &tr, &va, &e), 0, "%s", e.msg);
    int64_t starts = 0, labels = 0;
    struct hr_train_rows *sets[2] = {tr, va};
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < sets[s]->n_rows; r++)
            for (int j = 0; j < 40; j++) {
                int64_t c = (int64_t)r * 40 + j;
                cr_expect(j == 0
                              ? sets[s]->pos[c] == 0
                              : sets[s]->pos[c] == 0 || sets[s]->pos[c] == sets[s]->pos[c - 1] + 1);
                /* an example's labels are the next token of the same example */
                if (sets[s]->labels[c] >= 0) {
                    cr_expect(j + 1 < 40 && sets[s]->pos[c + 1] == sets[s]->pos[c] + 1);
                    cr_expect_eq(sets[s]->labels[c], sets[s]->tokens[c + 1]);
                    labels++;
                }
                /* an example starts with BOS; padding restarts with EOS */
                starts +=
                    sets[s]->pos[c] == 0 && sets[s]->tokens[c] == hr_vocab_bos(hr_model_vocab(m));
            }
    cr_expect_eq(starts, 12, "12 examples, BOS-led, in the rows");
    cr_expect_eq(labels, info.n_loss_tokens);
    cr_expect_eq(labels, tr->n_labels + va->n_labels);
    cr_expect(va->n_rows >= 1 && tr->n_rows >= 2);
    cr_expect_eq(hr_train_data_pack(d, 40, 12, 7, &tr, &va, &e), -EINVAL);
    cr_expect_eq(hr_train_data_pack(d, 20, 0, 7, &tr, &va, &e), -EINVAL, "examples > row");
    hr_train_rows_free(tr);
    hr_train_rows_free(va);
    hr_train_data_free(d);
    hr_model_free(m);
}

/* No attention across examples: the loss of two examples packed into one
 * row is the sum of their losses alone. */
Test(data, packed_examples_are_independent)
{
    struct hr_model *m = stories();
    struct hr_train_params p;
    hr_train_defaults(&p);
    p.n_ctx = 24;
    p.rank = 4;
    struct hr_train *t;
    struct hr_err e;
    cr_assert_eq(hr_train_new(m, &p, &t, &e), 0, "%s", e.msg);
    uint64_t s = 5;
    for (int64_t i = 0; i < t->n_params; i++) /* a nonzero adapter */
        t->param[i] = (float)(train_rng_unit(&s) - 0.5) * 0.2f;
    int32_t tok[24], lab[24], pos[24];
    for (int j = 0; j < 24; j++) {
        tok[j] = (int32_t)(train_rng_next(&s) % 512);
        lab[j] = (int32_t)(train_rng_next(&s) % 512);
        pos[j] = j < 10 ? j : j - 10; /* A = tokens 0..9, B = 10..23 */
    }
    struct hr_train_rows both = {1, 24, tok, lab, pos, 24};
    double l_both, l_a, l_b;
    int64_t n;
    cr_assert_eq(hr_train_eval(t, &both, NULL, 1, &l_both, &n, &e), 0, "%s", e.msg);
    /* A alone: B's tokens become label-less padding after it; B alone: at the row's start */
    int32_t tok2[24], lab2[24], pos2[24];
    memcpy(tok2, tok, sizeof tok);
    memcpy(lab2, lab, sizeof lab);
    memcpy(pos2, pos, sizeof pos);
    for (int j = 10; j < 24; j++)
        lab2[j] = -1;
    struct hr_train_rows a = {1, 24, tok2, lab2, pos2, 10};
    cr_assert_eq(hr_train_eval(t, &a, NULL, 1, &l_a, &n, &e), 0);
    for (int j = 0; j < 24; j++) {
        tok2[j] = j < 14 ? tok[j + 10] : tok[0];
        lab2[j] = j < 14 ? lab[j + 10] : -1;
        pos2[j] = j < 14 ? j : j - 14;
    }
    struct hr_train_rows b = {1, 24, tok2, lab2, pos2, 14};
    cr_assert_eq(hr_train_eval(t, &b, NULL, 1, &l_b, &n, &e), 0);
    cr_expect(fabs(l_both - (l_a + l_b)) < 1e-6 * fabs(l_both), "%.9g vs %.9g + %.9g", l_both, l_a,
              l_b);
    /* and the same row with the mask broken (one example) does differ */
    for (int j = 0; j < 24; j++)
        pos2[j] = j;
    struct hr_train_rows one = {1, 24, tok, lab, pos2, 24};
    double l_one;
    cr_assert_eq(hr_train_eval(t, &one, NULL, 1, &l_one, &n, &e), 0);
    cr_expect(fabs(l_one - l_both) > 1e-4, "the mask matters");
    hr_train_free(t);
    hr_model_free(m);
}

/* ---- the trainer ----------------------------------------------------------------------- */

static struct hr_train_rows *story_rows(struct hr_model *m, int32_t n_ctx)
{
    const char *text =
        "Once upon a time, there was a little girl named Lily. She loved to play with her red "
        "ball in the garden. One day, her ball rolled away under a big tree. Lily looked and "
        "looked. Then a friendly bird showed her where the ball was. Lily said thank you and "
        "they played together until the sun went down. The end.";
    struct hr_train_data *d;
    struct hr_train_rows *tr, *va;
    struct hr_err e;
    cr_assert_eq(hr_train_data_parse(m, text, strlen(text), "s", HR_TRAIN_TEXT, n_ctx, &d, &e), 0);
    cr_assert_eq(hr_train_data_pack(d, n_ctx, 0, 1, &tr, &va, &e), 0);
    hr_train_rows_free(va);
    hr_train_data_free(d);
    return tr;
}

static void train_steps(struct hr_train *t, struct hr_train_rows *rows, int n_steps, double *first,
                        double *last)
{
    struct hr_train_stats st;
    struct hr_err e;
    for (int s = 0; s < n_steps; s++) {
        cr_assert_eq(hr_train_step(t, rows, NULL, rows->n_rows, &st, &e), 0, "%s", e.msg);
        if (s == 0 && first) *first = st.loss;
    }
    if (last) *last = st.loss;
}

static void *adapter_bytes(struct hr_train *t, const char *name, size_t *len)
{
    const char *path = tmp_path(name);
    struct hr_err e;
    cr_assert_eq(hr_train_save_adapter(t, path, &e), 0, "%s", e.msg);
    void *b = tu_read_file(path, len);
    cr_assert(b);
    return b;
}

static struct hr_train *stories_trainer(struct hr_model *m, int threads, uint64_t seed)
{
    struct hr_train_params p;
    hr_train_defaults(&p);
    p.n_ctx = 32;
    p.rank = 8;
    p.alpha = 16;
    p.lr = 1e-2f;
    p.warmup_steps = 2;
    p.total_steps = 8;
    p.n_threads = threads;
    p.seed = seed;
    struct hr_train *t;
    struct hr_err e;
    cr_assert_eq(hr_train_new(m, &p, &t, &e), 0, "%s", e.msg);
    return t;
}

/* The same seed gives the same adapter bytes, with one thread or two; a
 * different seed another adapter. */
Test(trainer, deterministic, .fini = rm_tmpdir)
{
    struct hr_model *m = stories();
    struct hr_train_rows *rows = story_rows(m, 32);
    void *b[3];
    size_t len[3];
    int threads[3] = {2, 1, 2};
    uint64_t seeds[3] = {11, 11, 12};
    for (int k = 0; k < 3; k++) {
        struct hr_train *t = stories_trainer(m, threads[k], seeds[k]);
        train_steps(t, rows, 3, NULL, NULL);
        char name[32];
        snprintf(name, sizeof name, "det%d.gguf", k);
        b[k] = adapter_bytes(t, name, &len[k]);
        hr_train_free(t);
    }
    cr_expect(len[0] == len[1] && !memcmp(b[0], b[1], len[0]), "1 and 2 threads differ");
    cr_expect(len[0] != len[2] || memcmp(b[0], b[2], len[0]), "seeds 11 and 12 agree");
    for (int k = 0; k < 3; k++)
        free(b[k]);
    hr_train_rows_free(rows);
    hr_model_free(m);
}

/* Memorising a short story: the loss falls far. */
Test(trainer, loss_decreases)
{
    struct hr_model *m = stories();
    struct hr_train_rows *rows = story_rows(m, 32);
    struct hr_train *t = stories_trainer(m, 2, 1);
    t->p.total_steps = 40;
    double first, last;
    train_steps(t, rows, 40, &first, &last);
    cr_expect(last < 0.5 * first, "loss %.4f -> %.4f", first, last);
    double loss;
    int64_t n;
    struct hr_err e;
    cr_assert_eq(hr_train_eval(t, rows, NULL, rows->n_rows, &loss, &n, &e), 0);
    cr_expect_eq(n, rows->n_labels);
    cr_expect(loss / (double)n < 0.5 * first, "eval loss %.4f", loss / (double)n);
    hr_train_free(t);
    hr_train_rows_free(rows);
    hr_model_free(m);
}

/* Three steps, a checkpoint, a new trainer from it, three more steps: the
 * same adapter bytes as six steps in one go. */
Test(trainer, checkpoint_resume, .fini = rm_tmpdir)
{
    struct hr_model *m = stories();
    struct hr_train_rows *rows = story_rows(m, 32);
    struct hr_train *t = stories_trainer(m, 2, 4);
    train_steps(t, rows, 6, NULL, NULL);
    size_t l1, l2;
    void *b1 = adapter_bytes(t, "straight.gguf", &l1);
    hr_train_free(t);

    t = stories_trainer(m, 2, 4);
    train_steps(t, rows, 3, NULL, NULL);
    const char *ck = tmp_path("run.ckpt");
    struct hr_err e;
    cr_assert_eq(hr_train_save_checkpoint(t, ck, "{\"mine\": 1}", &e), 0, "%s", e.msg);
    hr_train_free(t);

    struct hr_train_params p;
    int64_t step;
    char *note;
    cr_assert_eq(hr_train_checkpoint_info(ck, &p, &step, &note, &e), 0, "%s", e.msg);
    cr_expect_eq(step, 3);
    cr_expect_str_eq(note, "{\"mine\": 1}");
    free(note);
    cr_expect_eq(p.rank, 8);
    cr_expect_eq(p.total_steps, 8);
    cr_expect_eq(p.seed, 4);
    p.n_threads = 1; /* the thread count does not matter */
    cr_assert_eq(hr_train_new(m, &p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(hr_train_load_checkpoint(t, ck, &e), 0, "%s", e.msg);
    cr_expect_eq(hr_train_get_step(t), 3);
    train_steps(t, rows, 3, NULL, NULL);
    void *b2 = adapter_bytes(t, "resumed.gguf", &l2);
    cr_expect(l1 == l2 && !memcmp(b1, b2, l1), "resumed run differs");
    hr_train_free(t);

    /* a trainer of another rank is refused, naming it */
    p.rank = 4;
    cr_assert_eq(hr_train_new(m, &p, &t, &e), 0);
    cr_expect_eq(hr_train_load_checkpoint(t, ck, &e), -EINVAL);
    cr_expect(strstr(e.msg, "rank"), "%s", e.msg);
    hr_train_free(t);
    /* an adapter is not a checkpoint */
    cr_expect_eq(hr_train_checkpoint_info(tmp_path("resumed.gguf"), NULL, NULL, NULL, &e), -EINVAL);
    free(b1);
    free(b2);
    hr_train_rows_free(rows);
    hr_model_free(m);
}

/* The adapter is llama.cpp's format, and hearth's own LoRA support, given
 * it, computes the loss the trainer computes. */
Test(trainer, adapter_file, .fini = rm_tmpdir)
{
    struct hr_model *m = stories();
    struct hr_train_rows *rows = story_rows(m, 32);
    struct hr_train *t = stories_trainer(m, 2, 9);
    train_steps(t, rows, 4, NULL, NULL);
    const char *path = tmp_path("a.gguf");
    struct hr_err e;
    cr_assert_eq(hr_train_save_adapter(t, path, &e), 0, "%s", e.msg);

    struct gguf_file *f;
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &e), 0, "%s", e.msg);
    struct gguf_str sv;
    float alpha;
    cr_assert_eq(gguf_get_str(f, "general.type", &sv, &e), 0);
    cr_expect(gguf_str_eq(sv, "adapter"));
    cr_assert_eq(gguf_get_str(f, "adapter.type", &sv, &e), 0);
    cr_expect(gguf_str_eq(sv, "lora"));
    cr_assert_eq(gguf_get_str(f, "general.architecture", &sv, &e), 0);
    cr_expect(gguf_str_eq(sv, "llama"));
    cr_assert_eq(gguf_get_f32(f, "adapter.lora.alpha", &alpha, &e), 0);
    cr_expect_float_eq(alpha, 16.0f, 0);
    cr_expect_eq(f->n_tensors, (uint64_t)m->hp.n_layer * 7 * 2);
    const struct gguf_tensor *ta = gguf_find_tensor(f, "blk.1.ffn_down.weight.lora_a");
    const struct gguf_tensor *tb = gguf_find_tensor(f, "blk.1.ffn_down.weight.lora_b");
    cr_assert(ta && tb);
    cr_expect(ta->type == HR_TYPE_F32 && ta->ne[0] == m->hp.n_ff && ta->ne[1] == 8);
    cr_expect(tb->type == HR_TYPE_F32 && tb->ne[0] == 8 && tb->ne[1] == m->hp.n_embd);
    /* B's row o holds B[o][0..r): the trainer's Bᵀ[j][o] */
    const struct train_target *tg = &t->tg[1 * TK_COUNT + TK_DOWN];
    float bv;
    memcpy(&bv, (const char *)tb->data + (3 * 8 + 5) * sizeof(float), sizeof bv);
    cr_expect_eq(bv, t->param[tg->off_bt + 5 * tg->n_out + 3]);
    gguf_free(f);

    struct hr_lora *lora;
    cr_assert_eq(hr_lora_load(m, path, &lora, &e), 0, "%s", e.msg);
    struct hr_ctx_params cp = {.n_ctx = 64, .n_threads = 2};
    struct hr_ctx *c;
    cr_assert_eq(hr_ctx_new(m, &cp, &c, &e), 0, "%s", e.msg);
    struct hr_lora_use use = {lora, 1.0f};
    cr_assert_eq(hr_ctx_set_loras(c, &use, 1, &e), 0, "%s", e.msg);
    double ref = 0, got;
    int64_t n;
    int32_t V = hr_model_n_vocab(m);
    for (int r = 0; r < rows->n_rows; r++) {
        hr_ctx_truncate(c, 0);
        int32_t *tok = rows->tokens + r * 32, *lab = rows->labels + r * 32;
        cr_assert_eq(hr_ctx_eval(c, tok, 32, true, &e), 0, "%s", e.msg);
        for (int j = 0; j < 32; j++) {
            if (lab[j] < 0) continue;
            const float *z = hr_ctx_logits(c, j);
            double mx = -1e30, s = 0;
            for (int v = 0; v < V; v++)
                mx = fmax(mx, z[v]);
            for (int v = 0; v < V; v++)
                s += exp((double)z[v] - mx);
            ref += mx + log(s) - z[lab[j]];
        }
    }
    cr_assert_eq(hr_train_eval(t, rows, NULL, rows->n_rows, &got, &n, &e), 0);
    cr_expect(fabs(got - ref) < 1e-4 * fabs(ref), "trainer %.8g, engine with the adapter %.8g", got,
              ref);
    /* and the base without it differs: the adapter does something */
    hr_ctx_set_loras(c, NULL, 0, &e);
    hr_ctx_truncate(c, 0);
    cr_assert_eq(hr_ctx_eval(c, rows->tokens, 32, true, &e), 0);
    hr_ctx_free(c);
    hr_lora_free(lora);
    hr_train_free(t);
    hr_train_rows_free(rows);
    hr_model_free(m);
}

/* ---- hearth train ---------------------------------------------------------------------- */

static const char *write_text(const char *name, const char *text)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *story_file(void)
{
    char text[8192] = "";
    const char *names[4] = {"Tom", "Mia", "Ben", "Sue"};
    const char *things[4] = {"a red ball", "a small dog", "a blue kite", "a big box"};
    for (int i = 0; i < 24; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "%s had %s. Every day, %s played with it in the park. %s was very happy.\n\n",
                 names[i % 4], things[(i / 4) % 4], names[i % 4], names[i % 4]);
        strcat(text, line);
    }
    return write_text("stories.txt", text);
}

static int count_lines(const char *path, const char *prefix)
{
    size_t len;
    char *s = tu_read_file(path, &len);
    cr_assert(s);
    int n = 0;
    for (char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        n += !strncmp(l, prefix, strlen(prefix));
    free(s);
    return n;
}

Test(cli, train_end_to_end, .fini = rm_tmpdir)
{
    const char *data = story_file();
    const char *out = tmp_path("out.gguf"), *log = tmp_path("log.tsv");
    char *so, *se;
    int st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", out, "--ctx",
                       "32", "--epochs", "2", "--batch-tokens", "96", "--val", "10%", "--lr",
                       "1e-2", "--seed", "3", "-t", "2", "--log", log, NULL);
    cr_assert_eq(st, 0, "stderr: %s", se);
    cr_expect(strstr(se, "validation before: loss"), "%s", se);
    cr_expect(strstr(se, "validation loss"), "%s", se);
    cr_expect(strstr(se, "perplexity"), "%s", se);
    cr_expect(strstr(se, "tokens/s"), "%s", se);
    cr_expect_str_eq(so, "", "results go to the file");
    /* the validation perplexity fell */
    const char *v = strstr(se, "validation loss ");
    double before = 0, after = 0;
    cr_assert(v && sscanf(v, "validation loss %lf -> %lf", &before, &after) == 2, "%s", se);
    cr_expect(after < before, "%g -> %g", before, after);
    /* a line per step in the log, and the validations */
    cr_expect(count_lines(log, "# val") == 2);
    cr_expect(count_lines(log, "1\t") == 1);
    struct hr_model *m = stories();
    struct hr_lora *lora;
    struct hr_err e;
    cr_expect_eq(hr_lora_load(m, out, &lora, &e), 0, "%s", e.msg);
    hr_lora_free(lora);
    hr_model_free(m);
    cr_expect(!tu_exists(tmp_path("out.gguf.ckpt")), "the automatic checkpoint is removed");
    free(so);
    free(se);

    /* --estimate: time and memory on stdout, nothing trained */
    const char *out2 = tmp_path("never.gguf");
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", out2, "--ctx", "32",
                   "--estimate", "-t", "1", NULL);
    cr_assert_eq(st, 0, "%s", se);
    cr_expect(strstr(so, "memory:") && strstr(so, "time:") && strstr(so, "tokens/s"), "%s", so);
    cr_expect(!tu_exists(out2));
    free(so);
    free(se);
}

/* Stopping after two steps and resuming gives the uninterrupted run's
 * adapter; the checkpoint refuses other settings or other data. */
Test(cli, train_resume, .fini = rm_tmpdir)
{
    const char *data = story_file();
    const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf"), *ck = tmp_path("b.ckpt");
    char *so, *se;
#define COMMON "--ctx", "32", "--epochs", "2", "--batch-tokens", "64", "--val", "2", "--seed", "5"
    int st =
        tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", a, COMMON, NULL);
    cr_assert_eq(st, 0, "%s", se);
    free(so);
    free(se);
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", b, COMMON,
                   "--checkpoint", ck, "--stop-after", "2", "-t", "1", NULL);
    cr_assert_eq(st, 0, "%s", se);
    cr_expect(strstr(se, "stopped after step 2"), "%s", se);
    cr_expect(tu_exists(ck) && !tu_exists(b));
    free(so);
    free(se);
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", b, "--resume", ck,
                   "--rank", "8", NULL);
    cr_expect_eq(st, 1);
    tu_assert_one_line_error(se, "--rank");
    free(so);
    free(se);
    const char *other = write_text("other.txt", "Once upon a time there was a frog. It sang.\n"
                                                "The frog sang every day and every night.\n"
                                                "One day the frog met a duck by the pond.\n"
                                                "The duck and the frog sang together.\n"
                                                "They were very happy and sang all day.\n"
                                                "The sun went down and they went home.\n");
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", other, "-o", b, "--resume", ck,
                   NULL);
    cr_expect_eq(st, 1);
    tu_assert_one_line_error(se, "differ");
    free(so);
    free(se);
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", b, "--resume", ck,
                   "--epochs", "2", NULL);
    cr_assert_eq(st, 0, "%s", se);
    free(so);
    free(se);
    size_t la, lb;
    void *ba = tu_read_file(a, &la), *bb = tu_read_file(b, &lb);
    cr_assert(ba && bb);
    cr_expect(la == lb && !memcmp(ba, bb, la), "resumed adapter differs");
    free(ba);
    free(bb);
#undef COMMON
}

Test(cli, train_bad_input, .fini = rm_tmpdir)
{
    const char *bad = write_text("bad.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                                              "{\"prompt\": \"a\", \"completion\": }\n");
    char *so, *se;
    int st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", bad, "-o",
                       tmp_path("x.gguf"), NULL);
    cr_expect_eq(st, 1);
    tu_assert_one_line_error(se, "bad.jsonl:2:");
    free(so);
    free(se);
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "-o", tmp_path("x.gguf"), NULL);
    cr_expect_eq(st, 2);
    tu_assert_one_line_error(se, "--data");
    free(so);
    free(se);
    st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", bad, "-o", tmp_path("x.gguf"),
                   "--targets", "q,x", NULL);
    cr_expect_eq(st, 2);
    tu_assert_one_line_error(se, "'x'");
    free(so);
    free(se);
}

/* Ctrl-C: the run stops after the step in progress, writes its checkpoint
 * and says how to continue (exit 130); --resume goes on from there. */
Test(cli, train_sigint, .fini = rm_tmpdir)
{
    const char *data = story_file();
    const char *out = tmp_path("i.gguf"), *log = tmp_path("i.log"), *errf = tmp_path("i.err");
    char *argv[] = {(char *)tu_hearth_bin(),
                    "train",
                    "-m",
                    (char *)tu_stories(),
                    "--data",
                    (char *)data,
                    "-o",
                    (char *)out,
                    "--ctx",
                    "32",
                    "--epochs",
                    "100000",
                    "--batch-tokens",
                    "32",
                    "--val",
                    "0",
                    "-t",
                    "1",
                    "--log",
                    (char *)log,
                    NULL};
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    /* wait (up to a minute) until it has taken three steps */
    bool started = false;
    for (int i = 0; i < 600 && !started; i++) {
        usleep(100000);
        started = tu_exists(log) && count_lines(log, "3\t") > 0;
    }
    kill(pid, SIGINT);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(started, "no step in a minute");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    size_t len;
    char *se = tu_read_file(errf, &len);
    cr_assert(se);
    cr_expect(strstr(se, "interrupted after step") && strstr(se, "--resume"), "%s", se);
    free(se);
    const char *ck = tmp_path("i.gguf.ckpt");
    cr_assert(tu_exists(ck));
    struct hr_train_params p;
    int64_t step;
    struct hr_err e;
    cr_assert_eq(hr_train_checkpoint_info(ck, &p, &step, NULL, &e), 0, "%s", e.msg);
    cr_expect(step >= 3);
    char *so;
    int st = tu_hearth(&so, &se, "train", "-m", tu_stories(), "--data", data, "-o", out, "--resume",
                       ck, "--stop-after", "1", NULL);
    cr_expect_eq(st, 0, "%s", se);
    char want[64];
    snprintf(want, sizeof want, "stopped after step %lld", (long long)step + 1);
    cr_expect(strstr(se, want), "%s", se);
    free(so);
    free(se);
}
