/*
 * model.c — loading a model from GGUF: architecture, hyperparameters and
 * weight views (FORMATS.md §4.1, §4.2).
 *
 * Supported architectures: llama (Llama 2/3.x, Mistral, TinyLlama, SmolLM),
 * qwen2 (q/k/v biases, NEOX RoPE, output optionally tied to token_embd) and
 * qwen3 (per-head q/k RMS norm, head size independent of n_embd). Anything
 * else — another architecture, a tensor type without kernels, a missing or
 * misshapen tensor — is refused here with a message naming it, so the
 * forward pass can trust every shape.
 */
#include "model.h"

#include "err.h"
#include "vocab.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct loader {
    struct hr_model *m;
    struct hr_err *err;
    char key[128];
};

static const char *akey(struct loader *ld, const char *suffix)
{
    snprintf(ld->key, sizeof ld->key, "%s.%s", ld->m->arch_name, suffix);
    return ld->key;
}

/* Reads a u32 hyperparameter that may also be stored as a per-layer array
 * (then all layers must agree: hearth has no per-layer shapes yet). */
static int get_hp(struct loader *ld, const char *suffix, int64_t *out, bool required)
{
    const char *key = akey(ld, suffix);
    const struct gguf_kv *kv = gguf_find_kv(ld->m->gguf, key);
    if (!kv) {
        if (required)
            return hr_err_set(ld->err, -EINVAL, -1, "missing required key '%s'", key);
        return -ENOENT;
    }
    if (kv->val.type == GGUF_ARRAY) {
        const struct gguf_value *a = &kv->val;
        if (a->arr.n == 0 || a->arr.type == GGUF_STRING || a->arr.type == GGUF_ARRAY ||
            a->arr.type == GGUF_FLOAT32 || a->arr.type == GGUF_FLOAT64 || a->arr.type == GGUF_BOOL)
            return hr_err_set(ld->err, -EINVAL, (int64_t)kv->offset,
                              "key '%s': expected an integer or an array of integers", key);
        int64_t v0 = gguf_arr_int(a, 0);
        for (uint64_t i = 1; i < a->arr.n; i++)
            if (gguf_arr_int(a, i) != v0)
                return hr_err_set(ld->err, -ENOTSUP, (int64_t)kv->offset,
                                  "key '%s': per-layer values differ (not supported)", key);
        *out = v0;
        return 0;
    }
    int64_t v;
    int rc = gguf_get_i64(ld->m->gguf, key, &v, ld->err);
    if (rc < 0)
        return rc;
    *out = v;
    return 0;
}

static int get_f32(struct loader *ld, const char *suffix, float *out, bool required)
{
    const char *key = akey(ld, suffix);
    int rc = gguf_get_f32(ld->m->gguf, key, out, ld->err);
    if (rc == -ENOENT && required)
        return hr_err_set(ld->err, -EINVAL, -1, "missing required key '%s'", key);
    return rc;
}

static const struct gguf_tensor *find(struct loader *ld, const char *name, bool required)
{
    const struct gguf_tensor *t = gguf_find_tensor(ld->m->gguf, name);
    if (!t && required)
        hr_err_set(ld->err, -EINVAL, -1, "missing tensor '%s'", name);
    return t;
}

static int check_shape(struct loader *ld, const struct gguf_tensor *t, int64_t ne0, int64_t ne1)
{
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return hr_err_set(ld->err, -EINVAL, (int64_t)t->info_offset,
                          "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                          t->name, (long long)t->ne[0], (long long)t->ne[1],
                          (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                          (long long)ne1);
    return 0;
}

/* A matrix ne=[n_in, n_out]. Missing optional → *w zeroed, 0. */
static int get_weight(struct loader *ld, const char *name, int64_t n_in, int64_t n_out,
                      struct weight *w, bool required)
{
    memset(w, 0, sizeof *w);
    const struct gguf_tensor *t = find(ld, name, required);
    if (!t)
        return required ? -EINVAL : 0;
    int rc = check_shape(ld, t, n_in, n_out);
    if (rc < 0)
        return rc;
    const struct quant_kernels *k = quant_kernels(t->type);
    if (!k || !k->vec_dot)
        return hr_err_set(ld->err, -ENOTSUP, (int64_t)t->info_offset,
                          "tensor '%s' has type %s, which hearth cannot compute with yet",
                          t->name, hr_type_name(t->type) ? hr_type_name(t->type) : "?");
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_size = hr_row_size(t->type, n_in);
    w->k = k;
    w->name = t->name;
    return 0;
}

/* A 1-D tensor of n elements, converted to an owned f32 array. */
static int get_vec(struct loader *ld, const char *name, int64_t n, float **out, bool required)
{
    *out = NULL;
    const struct gguf_tensor *t = find(ld, name, required);
    if (!t)
        return required ? -EINVAL : 0;
    int rc = check_shape(ld, t, n, 1);
    if (rc < 0)
        return rc;
    const struct quant_kernels *k = quant_kernels(t->type);
    if (!k || !k->to_float)
        return hr_err_set(ld->err, -ENOTSUP, (int64_t)t->info_offset,
                          "tensor '%s' has unsupported type %s", t->name,
                          hr_type_name(t->type) ? hr_type_name(t->type) : "?");
    struct hr_model *m = ld->m;
    float **owned = realloc(m->owned, (m->n_owned + 1) * sizeof *owned);
    if (!owned)
        return -ENOMEM;
    m->owned = owned;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return -ENOMEM;
    m->owned[m->n_owned++] = v;
    k->to_float(t->data, v, n);
    *out = v;
    return 0;
}

static int load_hparams(struct loader *ld)
{
    struct hr_model *m = ld->m;
    struct hparams *hp = &m->hp;
    int rc;
    if ((rc = get_hp(ld, "context_length", &hp->n_ctx_train, true)) < 0 ||
        (rc = get_hp(ld, "embedding_length", &hp->n_embd, true)) < 0 ||
        (rc = get_hp(ld, "block_count", &hp->n_layer, true)) < 0 ||
        (rc = get_hp(ld, "feed_forward_length", &hp->n_ff, true)) < 0 ||
        (rc = get_hp(ld, "attention.head_count", &hp->n_head, true)) < 0)
        return rc;
    rc = get_hp(ld, "attention.head_count_kv", &hp->n_head_kv, false);
    if (rc == -ENOENT)
        hp->n_head_kv = hp->n_head;
    else if (rc < 0)
        return rc;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_ff <= 0 || hp->n_head <= 0 ||
        hp->n_head_kv <= 0 || hp->n_embd > (1 << 20) || hp->n_layer > 4096 ||
        hp->n_ff > (1 << 22) || hp->n_head > 4096)
        return hr_err_set(ld->err, -EINVAL, -1,
                          "implausible hyperparameters: n_embd %lld, n_layer %lld, n_ff %lld, "
                          "n_head %lld, n_head_kv %lld",
                          (long long)hp->n_embd, (long long)hp->n_layer, (long long)hp->n_ff,
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->n_head % hp->n_head_kv != 0)
        return hr_err_set(ld->err, -EINVAL, -1,
                          "head_count %lld is not a multiple of head_count_kv %lld",
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    int64_t key_len, val_len;
    rc = get_hp(ld, "attention.key_length", &key_len, false);
    if (rc == -ENOENT)
        key_len = hp->n_embd / hp->n_head;
    else if (rc < 0)
        return rc;
    rc = get_hp(ld, "attention.value_length", &val_len, false);
    if (rc == -ENOENT)
        val_len = hp->n_embd / hp->n_head;
    else if (rc < 0)
        return rc;
    if (key_len != val_len || key_len <= 0 || key_len > 1024 || key_len % 2)
        return hr_err_set(ld->err, -EINVAL, -1,
                          "unsupported attention key_length %lld / value_length %lld",
                          (long long)key_len, (long long)val_len);
    hp->head_dim = key_len;
    rc = get_hp(ld, "rope.dimension_count", &hp->n_rot, false);
    if (rc == -ENOENT)
        hp->n_rot = hp->head_dim;
    else if (rc < 0)
        return rc;
    if (hp->n_rot != hp->head_dim)
        return hr_err_set(ld->err, -EINVAL, -1,
                          "rope.dimension_count %lld differs from the head size %lld",
                          (long long)hp->n_rot, (long long)hp->head_dim);
    if ((rc = get_f32(ld, "attention.layer_norm_rms_epsilon", &hp->eps, true)) < 0)
        return rc;
    hp->rope_base = 10000.0f;
    if ((rc = get_f32(ld, "rope.freq_base", &hp->rope_base, false)) < 0 && rc != -ENOENT)
        return rc;
    float factor = 0.0f;
    rc = get_f32(ld, "rope.scaling.factor", &factor, false);
    if (rc == -ENOENT)
        rc = get_f32(ld, "rope.scale_linear", &factor, false);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    hp->rope_freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
    hp->rope_attn_factor = 1.0f;
    if ((rc = get_f32(ld, "rope.scaling.attn_factor", &hp->rope_attn_factor, false)) < 0 &&
        rc != -ENOENT)
        return rc;
    struct gguf_str stype;
    hp->rope_yarn = false;
    rc = gguf_get_str(m->gguf, akey(ld, "rope.scaling.type"), &stype, ld->err);
    if (rc == 0) {
        if (gguf_str_eq(stype, "yarn"))
            hp->rope_yarn = true;
        else if (!gguf_str_eq(stype, "none") && !gguf_str_eq(stype, "linear"))
            return hr_err_set(ld->err, -ENOTSUP, -1, "unsupported rope.scaling.type '%.*s'",
                              (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
    } else if (rc != -ENOENT) {
        return rc;
    }
    rc = get_hp(ld, "rope.scaling.original_context_length", &hp->rope_n_ctx_orig, false);
    if (rc == -ENOENT)
        hp->rope_n_ctx_orig = hp->n_ctx_train;
    else if (rc < 0)
        return rc;
    hp->rope_mode = m->arch == ARCH_LLAMA ? ROPE_NORM : ROPE_NEOX;
    return 0;
}

static int load_weights(struct loader *ld)
{
    struct hr_model *m = ld->m;
    struct hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_q = hp->head_dim * hp->n_head;
    int64_t n_kv = hp->head_dim * hp->n_head_kv, n_ff = hp->n_ff;
    int rc;

    const struct gguf_tensor *te = find(ld, "token_embd.weight", true);
    if (!te)
        return -EINVAL;
    hp->n_vocab = te->ne[1];
    if ((rc = get_weight(ld, "token_embd.weight", n_embd, hp->n_vocab, &m->tok_embd, true)) < 0)
        return rc;
    if ((rc = get_weight(ld, "output.weight", n_embd, hp->n_vocab, &m->output, false)) < 0)
        return rc;
    if (!m->output.data)
        m->output = m->tok_embd;
    if ((rc = get_vec(ld, "output_norm.weight", n_embd, &m->output_norm, true)) < 0)
        return rc;
    if (m->arch == ARCH_QWEN2 &&
        (rc = get_vec(ld, "output.bias", hp->n_vocab, &m->output_bias, false)) < 0)
        return rc;
    if (m->arch == ARCH_LLAMA &&
        (rc = get_vec(ld, "rope_freqs.weight", hp->n_rot / 2, &m->rope_freqs, false)) < 0)
        return rc;
    if (m->arch == ARCH_QWEN2 && n_q != n_embd)
        return hr_err_set(ld->err, -EINVAL, -1, "qwen2 requires n_head*head_dim == n_embd");
    if (gguf_find_tensor(m->gguf, "blk.0.attn_qkv.weight"))
        return hr_err_set(ld->err, -ENOTSUP, -1,
                          "fused attn_qkv tensors are not supported yet (blk.0.attn_qkv.weight)");

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return -ENOMEM;
    char name[GGUF_MAX_NAME + 32];
    for (int64_t i = 0; i < hp->n_layer; i++) {
        struct layer *l = &m->layers[i];
#define N(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)i), name)
        if ((rc = get_vec(ld, N("attn_norm.weight"), n_embd, &l->attn_norm, true)) < 0 ||
            (rc = get_weight(ld, N("attn_q.weight"), n_embd, n_q, &l->wq, true)) < 0 ||
            (rc = get_weight(ld, N("attn_k.weight"), n_embd, n_kv, &l->wk, true)) < 0 ||
            (rc = get_weight(ld, N("attn_v.weight"), n_embd, n_kv, &l->wv, true)) < 0 ||
            (rc = get_vec(ld, N("attn_q.bias"), n_q, &l->bq, false)) < 0 ||
            (rc = get_vec(ld, N("attn_k.bias"), n_kv, &l->bk, false)) < 0 ||
            (rc = get_vec(ld, N("attn_v.bias"), n_kv, &l->bv, false)) < 0 ||
            (rc = get_weight(ld, N("attn_output.weight"), n_q, n_embd, &l->wo, true)) < 0 ||
            (rc = get_vec(ld, N("attn_output.bias"), n_embd, &l->bo, false)) < 0 ||
            (rc = get_vec(ld, N("ffn_norm.weight"), n_embd, &l->ffn_norm, true)) < 0 ||
            (rc = get_weight(ld, N("ffn_gate.weight"), n_embd, n_ff, &l->gate, true)) < 0 ||
            (rc = get_weight(ld, N("ffn_up.weight"), n_embd, n_ff, &l->up, true)) < 0 ||
            (rc = get_weight(ld, N("ffn_down.weight"), n_ff, n_embd, &l->down, true)) < 0)
            return rc;
        if (m->arch == ARCH_QWEN3 &&
            ((rc = get_vec(ld, N("attn_q_norm.weight"), hp->head_dim, &l->q_norm, true)) < 0 ||
             (rc = get_vec(ld, N("attn_k_norm.weight"), hp->head_dim, &l->k_norm, true)) < 0))
            return rc;
        if (gguf_find_tensor(m->gguf, N("ffn_gate_inp.weight")))
            return hr_err_set(ld->err, -ENOTSUP, -1,
                              "mixture-of-experts layers are not supported yet (%s)", name);
#undef N
    }
    return 0;
}

/* The weights read only by matrix products (not tok_embd), or NULL past the
 * last: index 0 is output, then 7 per layer. */
static struct weight *product_weight(struct hr_model *m, int64_t i)
{
    if (i == 0)
        return &m->output;
    i--;
    if (!m->layers || i >= m->hp.n_layer * 7)
        return NULL;
    struct layer *l = &m->layers[i / 7];
    struct weight *ws[7] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down};
    return ws[i % 7];
}

/* Repacking runs over rows in parallel: a 150k-row output alone takes a
 * noticeable fraction of a second on one core. Items are ranges of
 * REPACK_GROUPS·gemm_mr rows of one weight, taken in order under a lock. */
#define REPACK_GROUPS 64
#define REPACK_THREADS 8

struct repack_job {
    struct hr_model *m;
    pthread_mutex_t lock;
    int64_t wi, row; /* next item: weight index, first row */
    long page;       /* > 0: drop the mapped source pages once repacked */
};

static void *repack_thread(void *arg)
{
    struct repack_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        struct weight *w;
        while ((w = product_weight(j->m, j->wi)) != NULL && (!w->packed || j->row >= w->n_out)) {
            j->wi++;
            j->row = 0;
        }
        int64_t r0 = j->row, rows = 0;
        if (w) {
            rows = (int64_t)w->k->gemm_mr * REPACK_GROUPS;
            if (rows > w->n_out - r0)
                rows = w->n_out - r0;
            j->row += rows;
        }
        pthread_mutex_unlock(&j->lock);
        if (!w)
            return NULL;
        const char *src = (const char *)w->data + (size_t)r0 * w->row_size;
        w->k->repack(src, (char *)w->packed + w->k->packed_size(w->n_in, r0), w->n_in, rows);
        if (j->page > 0) { /* whole pages of this range (see repack_weights) */
            uintptr_t a = (uintptr_t)src, e = a + (size_t)rows * w->row_size;
            a = (a + (uintptr_t)j->page - 1) & ~((uintptr_t)j->page - 1);
            e &= ~((uintptr_t)j->page - 1);
            if (e > a)
                madvise((void *)a, e - a, MADV_DONTNEED); /* advice: failure is harmless */
        }
    }
}

/* Makes the packed copy of every product weight whose kernels repack (see
 * struct weight), letting the kernel drop each range's mapped pages from
 * this process once repacked (clean pages of a read-only file mapping: a
 * later read, as of a tied output's embedding rows, faults them back in
 * from the file), so that peak RSS stays near the model's size. */
static int repack_weights(struct hr_model *m)
{
    struct weight *w;
    bool any = false;
    for (int64_t i = 0; (w = product_weight(m, i)) != NULL; i++) {
        const struct quant_kernels *k = w->k;
        if (!k->repack || !k->packed_size || !k->gemm_packed)
            continue;
        size_t sz = (k->packed_size(w->n_in, w->n_out) + 63) & ~(size_t)63;
        w->packed = aligned_alloc(64, sz);
        if (!w->packed)
            return -ENOMEM;
        any = true;
    }
    if (!any)
        return 0;
    /* only a file mapping may be dropped (its pages come back from the file) */
    struct repack_job j = {.m = m, .page = m->gguf->map ? sysconf(_SC_PAGESIZE) : 0};
    if (pthread_mutex_init(&j.lock, NULL) != 0)
        return -ENOMEM;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu < 1 ? 1 : ncpu > REPACK_THREADS ? REPACK_THREADS : (int)ncpu, started = 0;
    pthread_t th[REPACK_THREADS];
    while (started < nt - 1 && pthread_create(&th[started], NULL, repack_thread, &j) == 0)
        started++;
    repack_thread(&j); /* this thread too; with none started it does all */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.lock);
    return 0;
}

/* tokenizer.chat_template as a C string (hr_model_chat_template); a NUL
 * inside would silently cut the template, so it makes the file invalid. */
static int load_chat_template(struct hr_model *m, struct hr_err *err)
{
    struct gguf_str s;
    int rc = gguf_get_str(m->gguf, "tokenizer.chat_template", &s, err);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    if (memchr(s.ptr, 0, s.len))
        return hr_err_set(err, -EINVAL, -1, "tokenizer.chat_template contains a NUL byte");
    if (!(m->chat_template = malloc(s.len + 1)))
        return -ENOMEM;
    memcpy(m->chat_template, s.ptr, s.len);
    m->chat_template[s.len] = '\0';
    return 0;
}

int hr_model_load(const char *path, const struct hr_model_params *params, struct hr_model **out,
                  struct hr_err *err)
{
    hr_err_clear(err);
    struct hr_model *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    struct loader ld = {.m = m, .err = err};
    int rc = gguf_open(path, GGUF_DEFAULT_BUDGET, &m->gguf, err);
    if (rc < 0)
        goto fail;
    m->vocab_only = params && params->vocab_only;

    struct gguf_str arch;
    rc = gguf_get_str(m->gguf, "general.architecture", &arch, err);
    if (rc == -ENOENT && m->vocab_only) {
        snprintf(m->arch_name, sizeof m->arch_name, "none");
    } else if (rc < 0) {
        if (rc == -ENOENT)
            rc = hr_err_set(err, -EINVAL, -1, "missing required key 'general.architecture'");
        goto fail;
    } else {
        snprintf(m->arch_name, sizeof m->arch_name, "%.*s",
                 (int)(arch.len < 15 ? arch.len : 15), arch.ptr);
        if (gguf_str_eq(arch, "llama"))
            m->arch = ARCH_LLAMA;
        else if (gguf_str_eq(arch, "qwen2"))
            m->arch = ARCH_QWEN2;
        else if (gguf_str_eq(arch, "qwen3"))
            m->arch = ARCH_QWEN3;
        else if (!m->vocab_only) {
            rc = hr_err_set(err, -ENOTSUP, -1,
                            "unsupported architecture '%.*s' (hearth supports llama, qwen2, qwen3)",
                            (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
            goto fail;
        }
    }

    if ((rc = vocab_load(m->gguf, &m->vocab, err)) < 0 || (rc = load_chat_template(m, err)) < 0)
        goto fail;
    if (!m->vocab_only) {
        if ((rc = load_hparams(&ld)) < 0 || (rc = load_weights(&ld)) < 0 ||
            (rc = repack_weights(m)) < 0)
            goto fail;
        if (hr_vocab_n_tokens(m->vocab) != m->hp.n_vocab) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "vocabulary has %d tokens but token_embd.weight has %lld rows",
                            hr_vocab_n_tokens(m->vocab), (long long)m->hp.n_vocab);
            goto fail;
        }
    }
    *out = m;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0])
        hr_err_set(err, rc, -1, "out of memory while loading %s", path);
    hr_model_free(m);
    return rc;
}

void hr_model_free(struct hr_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    struct weight *w;
    for (int64_t i = 0; (w = product_weight(m, i)) != NULL; i++)
        free(w->packed);
    free(m->owned);
    free(m->layers);
    vocab_free(m->vocab);
    free(m->chat_template);
    gguf_free(m->gguf);
    free(m);
}

const struct hr_vocab *hr_model_vocab(const struct hr_model *m)
{
    return m->vocab;
}

const char *hr_model_arch(const struct hr_model *m)
{
    return m->arch_name;
}

int32_t hr_model_n_vocab(const struct hr_model *m)
{
    return m->vocab_only ? hr_vocab_n_tokens(m->vocab) : (int32_t)m->hp.n_vocab;
}

int32_t hr_model_n_ctx_train(const struct hr_model *m)
{
    return (int32_t)m->hp.n_ctx_train;
}
