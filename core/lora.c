/*
 * lora.c — LoRA adapter files: opening one and checking it against a base
 * model (FORMATS.md §6, the rules of llama.cpp's llama_adapter_lora_init),
 * binding it to a loaded model (hr_lora_load), its reference count, and the
 * adapter sets of sequences (hearth.h "LoRA adapters").
 *
 * An adapter is only ever read after load: its A and B matrices stay in the
 * adapter's mapped file and any number of sequences on any threads may use
 * it at once. Its lifetime is a reference count (atomic, since the daemon's
 * loop thread drops its reference while the engine thread still evaluates
 * with it): hr_lora_load returns one reference, every sequence whose set
 * names it holds one, hr_lora_retain takes more, hr_lora_free drops one and
 * the last drop unmaps the file.
 */
#include "lora.h"

#include "ctx.h"
#include "err.h"
#include "pool.h"
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the adapter file ----------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

/* Checks a string key of the adapter; `want` NULL: any value, copied to
 * buf. */
static int check_str(const struct gguf_file *f, const char *path, const char *key, const char *want,
                     char *buf, size_t cap, struct hr_err *err)
{
    struct gguf_str s;
    int rc = gguf_get_str(f, key, &s, err);
    if (rc == -ENOENT)
        return hr_err_set(err, -EINVAL, -1, "%s: not a LoRA adapter (no '%s' key)", path, key);
    if (rc < 0) return hr_err_set(err, rc, -1, "%s: key '%s' is not a string", path, key);
    if (want && !gguf_str_eq(s, want))
        return hr_err_set(err, -EINVAL, -1, "%s: not a LoRA adapter (%s is '%.*s', expected '%s')",
                          path, key, (int)(s.len > 64 ? 64 : s.len), s.ptr, want);
    if (buf) snprintf(buf, cap, "%.*s", (int)(s.len >= cap ? cap - 1 : s.len), s.ptr);
    return 0;
}

static const char *tname(uint32_t type)
{
    const char *n = hr_type_name(type);
    return n ? n : "unknown";
}

/* The shape checks of one complete pair against its base tensor, with the
 * reference's hints. */
static int check_pair(const char *path, const char *name, const struct lora_file_pair *p,
                      struct hr_err *err)
{
    const struct gguf_tensor *w = p->base, *a = p->a, *b = p->b;
    const struct gguf_tensor *ts[3] = {w, a, b};
    for (int i = 0; i < 3; i++)
        if (ts[i]->ne[2] != 1 || ts[i]->ne[3] != 1)
            return hr_err_set(err, -EINVAL, (int64_t)ts[i]->info_offset,
                              "%s: tensor '%s' of the %s is not 2-D ([%lld, %lld, %lld, %lld])",
                              path, ts[i]->name, i ? "adapter" : "base model",
                              (long long)ts[i]->ne[0], (long long)ts[i]->ne[1],
                              (long long)ts[i]->ne[2], (long long)ts[i]->ne[3]);
    for (int i = 1; i < 3; i++) {
        const struct quant_kernels *k = quant_kernels(ts[i]->type);
        if (!k || !k->vec_dot || !k->to_float)
            return hr_err_set(err, -ENOTSUP, (int64_t)ts[i]->info_offset,
                              "%s: tensor '%s' has type %s, which hearth cannot compute with", path,
                              ts[i]->name, tname(ts[i]->type));
    }
    long long n_in = w->ne[0], n_out = w->ne[1];
    long long a0 = a->ne[0], a1 = a->ne[1], b0 = b->ne[0], b1 = b->ne[1];
    if (b0 <= 0)
        return hr_err_set(err, -EINVAL, (int64_t)b->info_offset, "%s: '%s' has rank 0", path,
                          b->name);
    if (p->embd) {
        /* A ne=[r, n_vocab], B ne=[r, n_embd] */
        if (a1 != n_out || b1 != n_in || a0 != b0)
            return hr_err_set(err, -EINVAL, (int64_t)a->info_offset,
                              "%s: '%s' pair has shapes A [%lld, %lld] and B [%lld, %lld]; "
                              "the base %s [%lld, %lld] needs A [r, %lld] and B [r, %lld]",
                              path, name, a0, a1, b0, b1, name, n_in, n_out, n_out, n_in);
        return 0;
    }
    if (a0 != n_in || b1 != n_out)
        return hr_err_set(err, -EINVAL, (int64_t)a->info_offset,
                          "%s: tensor '%s' has incorrect shape: A [%lld, %lld] and B [%lld, %lld] "
                          "do not fit the base [%lld, %lld], which needs A [%lld, r] and "
                          "B [r, %lld] (maybe the wrong base model, or A and B swapped?)",
                          path, name, a0, a1, b0, b1, n_in, n_out, n_in, n_out);
    if (a1 != b0)
        return hr_err_set(err, -EINVAL, (int64_t)a->info_offset,
                          "%s: tensor '%s': the rank of A (%lld) differs from the rank of B "
                          "(%lld) (lora_a must be stored transposed, ne=[n_in, r])",
                          path, name, a1, b0);
    return 0;
}

/* The pair of base tensor `name`, added if new. */
static struct lora_file_pair *pair_of(struct lora_file *f, char **names, const char *name)
{
    for (int i = 0; i < f->n_pairs; i++)
        if (!strcmp(names[i], name)) return &f->pairs[i];
    return NULL;
}

/* Opens (buf NULL) or parses (buf borrowed) the adapter, then checks it. */
static int file_load(const struct gguf_file *base, const char *path, const void *buf, size_t size,
                     struct lora_file **out, struct hr_err *err)
{
    hr_err_clear(err);
    struct lora_file *f = calloc(1, sizeof *f);
    char **names = NULL;
    int rc = -ENOMEM;
    if (!f) goto fail;
    rc = buf ? gguf_parse(buf, size, GGUF_DEFAULT_BUDGET, &f->gguf, err)
             : gguf_open(path, GGUF_DEFAULT_BUDGET, &f->gguf, err);
    if (rc < 0) { /* name the file, once */
        if (err && !strstr(err->msg, path)) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            hr_err_set(err, rc, err->offset, "%s: %s", path, msg);
        }
        goto fail;
    }
    char arch[64], base_arch[64];
    if ((rc = check_str(f->gguf, path, "general.type", "adapter", NULL, 0, err)) < 0 ||
        (rc = check_str(f->gguf, path, "adapter.type", "lora", NULL, 0, err)) < 0 ||
        (rc = check_str(f->gguf, path, "general.architecture", NULL, arch, sizeof arch, err)) < 0)
        goto fail;
    struct gguf_str bs;
    if (gguf_get_str(base, "general.architecture", &bs, NULL) < 0) {
        rc = hr_err_set(err, -EINVAL, -1, "the base model has no general.architecture");
        goto fail;
    }
    snprintf(base_arch, sizeof base_arch, "%.*s", (int)(bs.len > 63 ? 63 : bs.len), bs.ptr);
    if (strcmp(arch, base_arch) != 0) {
        rc = hr_err_set(err, -EINVAL, -1,
                        "%s: the adapter is for architecture '%s' but the model is '%s'", path,
                        arch, base_arch);
        goto fail;
    }
    rc = gguf_get_f32(f->gguf, "adapter.lora.alpha", &f->alpha, err);
    if (rc == -ENOENT)
        f->alpha = 0.0f;
    else if (rc < 0 || !isfinite(f->alpha)) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: adapter.lora.alpha is not a finite number", path);
        goto fail;
    }
    if (gguf_find_kv(f->gguf, "adapter.alora.invocation_tokens")) {
        rc = hr_err_set(err, -ENOTSUP, -1,
                        "%s: activated LoRA (adapter.alora.invocation_tokens) is not supported",
                        path);
        goto fail;
    }

    rc = -ENOMEM;
    uint64_t nt = f->gguf->n_tensors;
    if (!(f->pairs = calloc(nt ? nt : 1, sizeof *f->pairs)) ||
        !(names = calloc(nt ? nt : 1, sizeof *names)))
        goto fail;
    for (uint64_t i = 0; i < nt; i++) {
        const struct gguf_tensor *t = &f->gguf->tensors[i];
        bool is_a = ends_with(t->name, ".lora_a"), is_b = ends_with(t->name, ".lora_b");
        if (!is_a && !is_b) {
            if (ends_with(t->name, "_norm.weight"))
                continue; /* norm vectors of some converters: ignored, as the reference does */
            rc = hr_err_set(err, -EINVAL, (int64_t)t->info_offset,
                            "%s: tensor '%s' is not a LoRA tensor (name must end in .lora_a or "
                            ".lora_b)",
                            path, t->name);
            goto fail;
        }
        char name[GGUF_MAX_NAME];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(t->name) - 7), t->name);
        struct lora_file_pair *p = pair_of(f, names, name);
        if (!p) {
            const struct gguf_tensor *w = gguf_find_tensor(base, name);
            if (!w) {
                rc = hr_err_set(err, -EINVAL, (int64_t)t->info_offset,
                                "%s: tensor '%s' changes '%s', which the base model does not "
                                "have (maybe the wrong base model?)",
                                path, t->name, name);
                goto fail;
            }
            p = &f->pairs[f->n_pairs];
            if (!(names[f->n_pairs] = strdup(name))) goto fail;
            f->n_pairs++;
            p->base = w;
            p->embd = !strcmp(name, "token_embd.weight");
        }
        if ((is_a ? p->a : p->b) != NULL) {
            rc = hr_err_set(err, -EINVAL, (int64_t)t->info_offset, "%s: tensor '%s' appears twice",
                            path, t->name);
            goto fail;
        }
        if (is_a)
            p->a = t;
        else
            p->b = t;
    }
    for (int i = 0; i < f->n_pairs; i++) {
        struct lora_file_pair *p = &f->pairs[i];
        if (!p->a || !p->b) {
            rc = hr_err_set(err, -EINVAL, -1, "%s: '%s' has %s but no %s (incomplete pair)", path,
                            names[i], p->a ? "lora_a" : "lora_b", p->a ? "lora_b" : "lora_a");
            goto fail;
        }
        if ((rc = check_pair(path, names[i], p, err)) < 0) goto fail;
        p->r = p->b->ne[0];
    }
    if (f->n_pairs == 0) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: the adapter has no LoRA tensors", path);
        goto fail;
    }
    for (int i = 0; i < f->n_pairs; i++)
        free(names[i]);
    free(names);
    *out = f;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0]) hr_err_set(err, rc, -1, "%s: out of memory", path);
    if (names && f)
        for (int i = 0; i < f->n_pairs; i++)
            free(names[i]);
    free(names);
    lora_file_free(f);
    return rc;
}

int lora_file_open(const struct gguf_file *base, const char *path, struct lora_file **out,
                   struct hr_err *err)
{
    return file_load(base, path, NULL, 0, out, err);
}

int lora_file_parse(const struct gguf_file *base, const void *buf, size_t size, const char *label,
                    struct lora_file **out, struct hr_err *err)
{
    return file_load(base, label, buf, size, out, err);
}

void lora_file_free(struct lora_file *f)
{
    if (!f) return;
    gguf_free(f->gguf);
    free(f->pairs);
    free(f);
}

/* ---- an adapter bound to a model -------------------------------------------------- */

/* The slot of base tensor `name` in model m, or -1 for a tensor the forward
 * pass has no product for (norms, biases, ...). */
static int64_t slot_of(const struct hr_model *m, const char *name)
{
    if (!strcmp(name, "token_embd.weight")) return LORA_SLOT_EMBD;
    if (!strcmp(name, "output.weight")) return LORA_SLOT_OUTPUT;
    static const char *const kinds[LORA_PER_LAYER] = {
        "attn_q.weight",   "attn_k.weight", "attn_v.weight",   "attn_output.weight",
        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
    };
    long long il;
    int n = 0;
    if (sscanf(name, "blk.%lld.%n", &il, &n) != 1 || n == 0 || il < 0 || il >= m->hp.n_layer)
        return -1;
    for (int k = 0; k < LORA_PER_LAYER; k++)
        if (!strcmp(name + n, kinds[k])) return LORA_SLOT(il, k);
    return -1;
}

static void matrix(struct weight *w, const struct gguf_tensor *t)
{
    w->data = t->data;
    w->type = t->type;
    w->n_in = t->ne[0];
    w->n_out = t->ne[1];
    w->row_size = hr_row_size(t->type, t->ne[0]);
    w->k = quant_kernels(t->type);
    w->name = t->name;
    w->packed = NULL;
}

/* Bᵀ of an F32 or F16 B (n_out rows of r): r rows of n_out, the same
 * element bits. Owned; NULL when out of memory. */
static void *transpose(const struct weight *b)
{
    size_t es = b->type == HR_TYPE_F32 ? 4 : 2, r = (size_t)b->n_in, n = (size_t)b->n_out;
    char *t = malloc(r * n * es);
    if (!t)
        return NULL;
    const char *src = b->data;
    for (size_t o = 0; o < n; o++)
        for (size_t k = 0; k < r; k++)
            memcpy(t + (k * n + o) * es, src + (o * r + k) * es, es);
    return t;
}

int hr_lora_load(struct hr_model *m, const char *path, struct hr_lora **out, struct hr_err *err)
{
    hr_err_clear(err);
    if (!m || !path || !out)
        return hr_err_set(err, -EINVAL, -1, "hr_lora_load: missing model, path or output");
    if (m->vocab_only)
        return hr_err_set(err, -EINVAL, -1, "the model was loaded vocab-only: no weights to adapt");
    struct hr_lora *l = calloc(1, sizeof *l);
    int rc = -ENOMEM;
    if (!l) goto fail;
    atomic_init(&l->refs, 1);
    l->model = m;
    if ((rc = lora_file_open(m->gguf, path, &l->file, err)) < 0) goto fail;
    l->n_slots = LORA_SLOT(m->hp.n_layer, 0);
    rc = -ENOMEM;
    if (!(l->slot = calloc((size_t)l->n_slots, sizeof *l->slot)) ||
        !(l->pairs = calloc((size_t)l->file->n_pairs, sizeof *l->pairs)))
        goto fail;
    for (int i = 0; i < l->file->n_pairs; i++) {
        const struct lora_file_pair *fp = &l->file->pairs[i];
        int64_t s = slot_of(m, fp->base->name);
        if (s < 0) {
            rc = hr_err_set(err, -ENOTSUP, (int64_t)fp->a->info_offset,
                            "%s: the adapter changes '%s'; hearth applies LoRA to the attention "
                            "and feed-forward projections, output and token_embd only",
                            path, fp->base->name);
            goto fail;
        }
        if (s == LORA_SLOT_OUTPUT && m->output.data == m->tok_embd.data) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "%s: the adapter changes output.weight, which this "
                            "model ties to token_embd",
                            path);
            goto fail;
        }
        struct lora_pair *p = &l->pairs[i];
        matrix(&p->a, fp->a);
        matrix(&p->b, fp->b);
        p->r = fp->r;
        if (!fp->embd && (p->b.type == HR_TYPE_F32 || p->b.type == HR_TYPE_F16) &&
            !(p->bt = transpose(&p->b))) {
            rc = -ENOMEM;
            goto fail;
        }
        l->slot[s] = p;
        if (fp->r > l->max_r) l->max_r = (int32_t)fp->r;
        l->n_bytes += fp->a->nbytes + fp->b->nbytes;
    }
    *out = l;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0]) hr_err_set(err, rc, -1, "%s: out of memory", path);
    hr_lora_free(l);
    return rc;
}

struct hr_lora *hr_lora_retain(struct hr_lora *l)
{
    if (l) atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

void hr_lora_free(struct hr_lora *l)
{
    if (!l) return;
    /* acq_rel: the last owner sees every other owner's reads finished */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1) return;
    for (int i = 0; l->pairs && i < l->file->n_pairs; i++)
        free(l->pairs[i].bt);
    lora_file_free(l->file);
    free(l->slot);
    free(l->pairs);
    free(l);
}

void hr_lora_get_info(const struct hr_lora *l, struct hr_lora_info *info)
{
    *info = (struct hr_lora_info){
        .alpha = l->file->alpha,
        .rank = l->max_r,
        .n_tensors = l->file->n_pairs,
        .n_bytes = l->n_bytes,
    };
}

/* ---- adapter sets ------------------------------------------------------------------ */

void lora_set_done(struct lora_set *s)
{
    for (int32_t i = 0; i < s->n; i++)
        hr_lora_free(s->uses[i].lora);
    free(s->uses);
    *s = (struct lora_set){0};
}

void lora_scratch_done(struct lora_scratch *s)
{
    free(s->la);
    free(s->conv);
    *s = (struct lora_scratch){0};
}

/* Bytes one thread needs to convert a row for any product of the model:
 * the widest input (n_ff or n_q or n_embd, or a rank) in the largest
 * activation format (f32, no format is larger), rounded up to 64. */
static size_t conv_bytes(const struct hr_model *m, int32_t max_r)
{
    int64_t w = m->hp.n_embd;
    if (m->hp.n_head * m->hp.head_dim > w) w = m->hp.n_head * m->hp.head_dim;
    if (m->hp.n_ff > w) w = m->hp.n_ff;
    if (max_r > w) w = max_r;
    return ((size_t)w * sizeof(float) + 63) & ~(size_t)63;
}

int lora_set_replace(struct hr_ctx *c, struct lora_set *set, const struct hr_lora_use *uses,
                     int32_t n, struct hr_err *err)
{
    hr_err_clear(err);
    if (n < 0 || (n > 0 && !uses))
        return hr_err_set(err, -EINVAL, -1, "invalid adapter list (%d entries)", n);
    int64_t rank_sum = 0;
    int32_t max_r = 0;
    for (int32_t i = 0; i < n; i++) {
        const struct hr_lora *l = uses[i].lora;
        if (!l) return hr_err_set(err, -EINVAL, -1, "adapter %d is NULL", i);
        if (l->model != c->model)
            return hr_err_set(err, -EINVAL, -1, "adapter %d was loaded for another model", i);
        if (!isfinite(uses[i].scale))
            return hr_err_set(err, -EINVAL, -1, "adapter %d: scale is not a finite number", i);
        rank_sum += l->max_r;
        if (l->max_r > max_r) max_r = l->max_r;
    }
    if (rank_sum > INT32_MAX / 2)
        return hr_err_set(err, -EINVAL, -1, "adapter ranks too large (%lld)", (long long)rank_sum);

    /* grow the context's scratch first: after this nothing can fail */
    struct lora_scratch *sc = &c->lora;
    int nt = pool_size(c->pool);
    size_t ldt = (size_t)(max_r > LORA_TMP_ROWS ? max_r : LORA_TMP_ROWS);
    size_t tmp = LORA_NC * (((ldt * sizeof(float)) + 63) & ~(size_t)63);
    size_t conv = LORA_NC * conv_bytes(c->model, max_r);
    if (rank_sum > sc->rank_cap) {
        float *la = malloc((size_t)c->n_batch * (size_t)rank_sum * sizeof(float));
        if (!la) return hr_err_set(err, -ENOMEM, -1, "out of memory for the adapters' scratch");
        free(sc->la);
        sc->la = la;
        sc->rank_cap = (int32_t)rank_sum;
    }
    size_t old_conv = sc->conv_size - sc->tmp_size;
    if (n > 0 && (conv > old_conv || tmp > sc->tmp_size || nt > sc->n_threads)) {
        if (conv < old_conv) conv = old_conv;
        if (tmp < sc->tmp_size) tmp = sc->tmp_size;
        void *cv = aligned_alloc(64, (conv + tmp) * (size_t)nt);
        if (!cv) return hr_err_set(err, -ENOMEM, -1, "out of memory for the adapters' scratch");
        free(sc->conv);
        sc->conv = cv;
        sc->conv_size = conv + tmp;
        sc->tmp_size = tmp;
        sc->n_threads = nt;
    }
    struct hr_lora_use *copy = NULL;
    if (n > 0) {
        if (!(copy = malloc((size_t)n * sizeof *copy)))
            return hr_err_set(err, -ENOMEM, -1, "out of memory");
        for (int32_t i = 0; i < n; i++) {
            copy[i] = uses[i];
            hr_lora_retain(copy[i].lora);
        }
    }
    lora_set_done(set);
    set->uses = copy;
    set->n = n;
    set->rank_sum = (int32_t)rank_sum;
    return 0;
}

int hr_seq_set_loras(struct hr_seq *seq, const struct hr_lora_use *uses, int32_t n,
                     struct hr_err *err)
{
    return lora_set_replace(seq->ctx, &seq->loras, uses, n, err);
}

int hr_ctx_set_loras(struct hr_ctx *ctx, const struct hr_lora_use *uses, int32_t n,
                     struct hr_err *err)
{
    return lora_set_replace(ctx, &ctx->seq0->loras, uses, n, err);
}
