/*
 * quantize.c — the model quantizer (see quantize.h): llama-quantize's
 * per-tensor type rules without an importance matrix, and the conversion of
 * a whole F32/F16/BF16 GGUF file with the reference quantizers.
 *
 * The rules restate llama.cpp's src/llama-quant.cpp (tensor_allows_quantization,
 * llama_tensor_get_type_impl, tensor_type_fallback) for the mixes hearth
 * writes; FORMATS.md §2.4 has the summary. Two counters of llama-quantize
 * matter: it visits tensors sorted by (layer, name) and numbers the attn_v
 * and ffn_down tensors in that order, and the rules compare that number with
 * the layer count ("use more bits" for the first and last eighth and every
 * third layer in between). quantize_choose_type() computes the same number
 * without state (see rank()).
 *
 * Conversion, tensor by tensor: an input tensor is read from the mapping (or
 * widened to f32 when it is F16/BF16), quantized in row chunks on a thread
 * pool (the reference quantizers are row-independent, so the split changes
 * nothing in the bytes), and appended to an unlinked scratch file next to the
 * output. Only when every tensor is done is the scratch file mapped and the
 * output written through the GGUF writer (temp file + rename), with the
 * tensors that keep their type taken straight from the input mapping. So at
 * most one tensor is held in f32 and one in its new type, whatever the model
 * size, and a failure at any point leaves no output behind.
 */
#include "quantize.h"

#include "err.h"
#include "gguf.h"
#include "pool.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGML_QNT_VERSION 2 /* general.quantization_version of every file written */

/* ---- mixes ------------------------------------------------------------------ */

static const struct mix {
    int ftype;
    const char *name;
    uint32_t type; /* default tensor type */
} mixes[] = {
    {QUANTIZE_FTYPE_F32, "F32", HR_TYPE_F32},
    {QUANTIZE_FTYPE_F16, "F16", HR_TYPE_F16},
    {QUANTIZE_FTYPE_BF16, "BF16", HR_TYPE_BF16},
    {QUANTIZE_FTYPE_Q8_0, "Q8_0", HR_TYPE_Q8_0},
    {QUANTIZE_FTYPE_Q4_0, "Q4_0", HR_TYPE_Q4_0},
    {QUANTIZE_FTYPE_Q4_1, "Q4_1", HR_TYPE_Q4_1},
    {QUANTIZE_FTYPE_Q5_0, "Q5_0", HR_TYPE_Q5_0},
    {QUANTIZE_FTYPE_Q5_1, "Q5_1", HR_TYPE_Q5_1},
    {QUANTIZE_FTYPE_Q2_K, "Q2_K", HR_TYPE_Q2_K},
    {QUANTIZE_FTYPE_Q3_K_S, "Q3_K_S", HR_TYPE_Q3_K},
    {QUANTIZE_FTYPE_Q3_K_M, "Q3_K_M", HR_TYPE_Q3_K},
    {QUANTIZE_FTYPE_Q3_K_L, "Q3_K_L", HR_TYPE_Q3_K},
    {QUANTIZE_FTYPE_Q4_K_S, "Q4_K_S", HR_TYPE_Q4_K},
    {QUANTIZE_FTYPE_Q4_K_M, "Q4_K_M", HR_TYPE_Q4_K},
    {QUANTIZE_FTYPE_Q5_K_S, "Q5_K_S", HR_TYPE_Q5_K},
    {QUANTIZE_FTYPE_Q5_K_M, "Q5_K_M", HR_TYPE_Q5_K},
    {QUANTIZE_FTYPE_Q6_K, "Q6_K", HR_TYPE_Q6_K},
};

static const struct mix *find_mix(int ftype)
{
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (mixes[i].ftype == ftype)
            return &mixes[i];
    return NULL;
}

int quantize_ftype_from_name(const char *name)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (!strcasecmp(name, mixes[i].name))
            return mixes[i].ftype;
    return -EINVAL;
}

const char *quantize_ftype_name(int ftype)
{
    const struct mix *m = find_mix(ftype);
    return m ? m->name : NULL;
}

int quantize_ftype_type(int ftype)
{
    const struct mix *m = find_mix(ftype);
    return m ? (int)m->type : -EINVAL;
}

/* Block-quantized (not F32/F16/BF16): the mixes with per-tensor rules. */
static bool is_quantized(uint32_t type)
{
    const struct hr_type_info *t = hr_type_info(type);
    return t && t->blck > 1;
}

static int64_t blck(uint32_t type)
{
    const struct hr_type_info *t = hr_type_info(type);
    return t ? t->blck : 1;
}

/* ---- tensor names ------------------------------------------------------------ */

/* ggml_n_dims: the index of the last dimension > 1, plus one (at least 1). */
static uint32_t n_dims_of(const int64_t ne[4])
{
    for (int d = 3; d >= 1; d--)
        if (ne[d] > 1)
            return (uint32_t)d + 1;
    return 1;
}

/* Names llama-quantize never quantizes, whatever their shape (norms, MoE
 * routers, position tables, small recurrent/conv weights, multimodal parts). */
static const char *const never_quantized[] = {
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
};

static bool allows_quantization(const char *name, uint32_t n_dims)
{
    if (n_dims < 2)
        return false;
    /* "Ends in weight" is tested in llama.cpp as
     * name.rfind("weight") == name.size() - 6, which is also true for a
     * 5-character name (npos == size_t(-1)): reproduced for exactness. */
    size_t len = strlen(name);
    if (len != 5 && (len < 6 || strcmp(name + len - 6, "weight") != 0))
        return false;
    for (size_t i = 0; i < sizeof never_quantized / sizeof never_quantized[0]; i++)
        if (strstr(name, never_quantized[i]))
            return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight"))
        return false;
    return true;
}

enum category {
    CAT_OTHER,
    CAT_TOKEN_EMBD,
    CAT_OUTPUT,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_Q,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
};

/* The first match wins, in this order (attn_qkv before attn_v, ...). */
static enum category category_of(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct {
        const char *s;
        enum category c;
    } subs[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV},
        {"attn_kv_b.weight", CAT_ATTN_KV_B},
        {"attn_v.weight", CAT_ATTN_V},
        {"attn_k.weight", CAT_ATTN_K},
        {"attn_q.weight", CAT_ATTN_Q},
        {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},
        {"ffn_gate", CAT_FFN_GATE},
        {"ffn_down", CAT_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strstr(name, subs[i].s))
            return subs[i].c;
    return CAT_OTHER;
}

/* attn_v and the fused tensors that contain it get the attn_v rules. */
static bool is_attn_v(enum category c)
{
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

static bool is_ffn_down(enum category c)
{
    return c == CAT_FFN_DOWN;
}

/* The N of "blk.N." as sscanf("blk.%d.") reads it (-1 without it). */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    if (end == name + 4 || v < -2147483647L - 1 || v > 2147483647L)
        return -1;
    return (int)v;
}

/* llama-quantize's tensor order: by layer (no layer first), then by name. */
static int order_cmp(const char *a, const char *b)
{
    int la = layer_of(a), lb = layer_of(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* The number llama-quantize gives tensor `name` among the quantizable
 * tensors of its kind (attn_v-like or ffn_down) while visiting in
 * (layer, name) order. Without the tensor list: the layer number. */
static int rank(const struct quantize_model_info *info, const char *name,
                bool (*kind)(enum category))
{
    if (!info->tensors)
        return layer_of(name);
    const struct gguf_file *f = info->tensors;
    int r = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (kind(category_of(t->name)) && allows_quantization(t->name, n_dims_of(t->ne)) &&
            order_cmp(t->name, name) < 0)
            r++;
    }
    return r;
}

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama_tensor_get_type_impl for the mixes of this file (the IQ, TQ and
 * MXFP4 branches cannot be reached from them). t = the mix's default type. */
static int mix_rules(const struct quantize_model_info *info, const char *name, const int64_t ne[4],
                     int ftype, enum category cat, uint32_t t)
{
    const int n_gqa = info->n_head_kv > 0 ? info->n_head / info->n_head_kv : 0;
    const int n_expert = info->n_expert;

    if (cat == CAT_OUTPUT || (!info->has_output && cat == CAT_TOKEN_EMBD)) {
        if (info->falcon || ne[0] % blck(t) != 0)
            return HR_TYPE_Q8_0;
        return t != HR_TYPE_Q8_0 ? HR_TYPE_Q6_K : (int)t;
    }
    if (cat == CAT_TOKEN_EMBD)
        return (int)t;

    if (is_attn_v(cat)) {
        int i = rank(info, name, is_attn_v), n = info->n_attn_v;
        if (ftype == QUANTIZE_FTYPE_Q2_K)
            t = n_gqa >= 4 ? HR_TYPE_Q4_K : HR_TYPE_Q3_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_M)
            t = i < 2 ? HR_TYPE_Q5_K : HR_TYPE_Q4_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_L)
            t = HR_TYPE_Q5_K;
        else if ((ftype == QUANTIZE_FTYPE_Q4_K_M || ftype == QUANTIZE_FTYPE_Q5_K_M) &&
                 use_more_bits(i, n))
            t = HR_TYPE_Q6_K;
        else if (ftype == QUANTIZE_FTYPE_Q4_K_S && i < 4)
            t = HR_TYPE_Q5_K;
        /* 70B: eight query heads share each v head, so attn_v is 8x smaller
         * than attn_q and more bits cost little. */
        if (info->type_70b && (t == HR_TYPE_Q3_K || t == HR_TYPE_Q4_K))
            t = HR_TYPE_Q5_K;
        if (n_expert == 8)
            t = HR_TYPE_Q8_0;
        return (int)t;
    }
    if (cat == CAT_ATTN_K)
        return n_expert == 8 ? HR_TYPE_Q8_0 : (int)t;
    if (cat == CAT_FFN_DOWN) {
        int n = info->n_layer, i;
        if (n_expert > 1) {
            /* expert layers are not consecutive in some models: the
             * layer comes from the name */
            i = layer_of(name);
            if (strncmp(name, "blk.", 4) != 0 || i < 0 || i >= n)
                return -EINVAL;
        } else {
            i = rank(info, name, is_ffn_down);
        }
        if (ftype == QUANTIZE_FTYPE_Q2_K)
            t = HR_TYPE_Q3_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_M)
            t = i < n / 16                              ? HR_TYPE_Q5_K
                : !info->falcon || use_more_bits(i, n) ? HR_TYPE_Q4_K
                                                        : HR_TYPE_Q3_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_L)
            t = info->falcon ? HR_TYPE_Q4_K : HR_TYPE_Q5_K;
        else if (ftype == QUANTIZE_FTYPE_Q4_K_M) {
            if (info->falcon)
                t = i < n / 16 ? HR_TYPE_Q6_K : use_more_bits(i, n) ? HR_TYPE_Q5_K : HR_TYPE_Q4_K;
            else if (use_more_bits(i, n))
                t = HR_TYPE_Q6_K;
        } else if (ftype == QUANTIZE_FTYPE_Q5_K_M && use_more_bits(i, n))
            t = HR_TYPE_Q6_K;
        else if (ftype == QUANTIZE_FTYPE_Q4_K_S && !info->falcon && i < n / 8)
            t = HR_TYPE_Q5_K;
        return (int)t;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (info->falcon)
            return ftype == QUANTIZE_FTYPE_Q3_K_L ? HR_TYPE_Q4_K : (int)t;
        if (n_expert == 8) {
            if (ftype == QUANTIZE_FTYPE_Q2_K || ftype == QUANTIZE_FTYPE_Q3_K_S ||
                ftype == QUANTIZE_FTYPE_Q3_K_M || ftype == QUANTIZE_FTYPE_Q4_K_S ||
                ftype == QUANTIZE_FTYPE_Q4_K_M)
                t = HR_TYPE_Q5_K;
            return (int)t;
        }
        if (ftype == QUANTIZE_FTYPE_Q2_K)
            t = HR_TYPE_Q3_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_M)
            t = HR_TYPE_Q4_K;
        else if (ftype == QUANTIZE_FTYPE_Q3_K_L)
            t = HR_TYPE_Q5_K;
        return (int)t;
    }
    /* attn_q, ffn_gate, ffn_up, others: the default in these mixes */
    return (int)t;
}

/* tensor_type_fallback: a type whose block does not divide the row length
 * is replaced by a block-32 type, or F16 when even that does not fit (the
 * legacy types, which have no fallback of their own, go to F16 directly, as
 * the stories260K reference files show). */
static uint32_t fallback(uint32_t t, int64_t ne0, bool *fell)
{
    *fell = false;
    if (ne0 % blck(t) == 0)
        return t;
    *fell = true;
    uint32_t r;
    switch (t) {
    case HR_TYPE_Q2_K:
    case HR_TYPE_Q3_K: r = HR_TYPE_Q4_0; break;
    case HR_TYPE_Q4_K: r = HR_TYPE_Q5_0; break;
    case HR_TYPE_Q5_K: r = HR_TYPE_Q5_1; break;
    case HR_TYPE_Q6_K: r = HR_TYPE_Q8_0; break;
    default: r = HR_TYPE_F16; break;
    }
    return ne0 % blck(r) == 0 ? r : HR_TYPE_F16;
}

static int choose(const struct quantize_model_info *info, const char *name, const int64_t ne[4],
                  int ftype, bool *fell)
{
    const struct mix *m = find_mix(ftype);
    *fell = false;
    if (!m || !info || !name || !ne)
        return -EINVAL;
    if (!allows_quantization(name, n_dims_of(ne)))
        return QUANTIZE_KEEP;
    if (!is_quantized(m->type))
        return (int)m->type;
    int t = mix_rules(info, name, ne, ftype, category_of(name), m->type);
    if (t < 0)
        return t;
    return (int)fallback((uint32_t)t, ne[0], fell);
}

int quantize_choose_type(const struct quantize_model_info *info, const char *name,
                         const int64_t ne[4], int ftype)
{
    bool fell;
    return choose(info, name, ne, ftype, &fell);
}

/* ---- model facts ------------------------------------------------------------ */

/* An integer key, or element 0 of an integer array (per-layer values). */
static int get_int(const struct gguf_file *f, const char *key, int dflt, int *out,
                   struct hr_err *err)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) {
        *out = dflt;
        return 0;
    }
    if (kv->val.type == GGUF_ARRAY && kv->val.arr.n > 0 && kv->val.arr.type != GGUF_ARRAY &&
        kv->val.arr.type != GGUF_STRING && kv->val.arr.type != GGUF_FLOAT32 &&
        kv->val.arr.type != GGUF_FLOAT64 && kv->val.arr.type != GGUF_BOOL) {
        int64_t v = gguf_arr_int(&kv->val, 0);
        if (v < 0 || v > INT32_MAX)
            return hr_err_set(err, -EINVAL, (int64_t)kv->offset, "%s: %lld is out of range", key,
                              (long long)v);
        *out = (int)v;
        return 0;
    }
    uint32_t v;
    int rc = gguf_get_u32(f, key, &v, err);
    if (rc < 0)
        return rc;
    if (v > INT32_MAX)
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset, "%s: %u is out of range", key, v);
    *out = (int)v;
    return 0;
}

int quantize_model_info_init(struct quantize_model_info *info, const struct gguf_file *f,
                             struct hr_err *err)
{
    struct quantize_model_info q = {0};
    struct gguf_str arch;
    char key[128];
    int rc;
    if (!info || !f)
        return hr_err_set(err, -EINVAL, -1, "quantize_model_info_init: no info or file");
    if ((rc = gguf_get_str(f, "general.architecture", &arch, err)) < 0) {
        if (rc == -ENOENT)
            rc = hr_err_set(err, -EINVAL, -1, "general.architecture is missing");
        return rc;
    }
    if (arch.len == 0 || arch.len > 64)
        return hr_err_set(err, -EINVAL, -1, "general.architecture has a bad length");
    int al = (int)arch.len;
#define KEY(suffix) (snprintf(key, sizeof key, "%.*s.%s", al, arch.ptr, suffix), key)
    if (!gguf_find_kv(f, KEY("block_count")))
        return hr_err_set(err, -EINVAL, -1, "%s is missing", key);
    if ((rc = get_int(f, key, 0, &q.n_layer, err)) < 0)
        return rc;
    if ((rc = get_int(f, KEY("attention.head_count"), 0, &q.n_head, err)) < 0)
        return rc;
    if ((rc = get_int(f, KEY("attention.head_count_kv"), q.n_head, &q.n_head_kv, err)) < 0)
        return rc;
    if ((rc = get_int(f, KEY("expert_count"), 0, &q.n_expert, err)) < 0)
        return rc;
#undef KEY
    q.has_output = false;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        if (is_attn_v(category_of(name)))
            q.n_attn_v++;
        if (!strcmp(name, "output.weight"))
            q.has_output = true;
    }
    q.falcon = gguf_str_eq(arch, "falcon");
    /* llama.cpp's model type 70B, the only size the rules look at */
    if (q.n_layer == 80)
        q.type_70b = (gguf_str_eq(arch, "llama") && q.n_head != q.n_head_kv) ||
                     gguf_str_eq(arch, "qwen2") || gguf_str_eq(arch, "deci");
    q.tensors = f;
    *info = q;
    return 0;
}

/* ---- conversion --------------------------------------------------------------- */

struct plan {
    uint32_t to_type;
    bool convert, fell;
    uint64_t out_bytes;
    uint64_t scratch_off; /* where the converted bytes are in the scratch file */
};

/* One tensor's work for the pool: rows [0, nrows) of n_per_row elements. */
struct job {
    const void *src;     /* input rows (from_type) */
    float *f32;          /* rows in f32 */
    void *dst;           /* output rows (to_type) */
    uint32_t from_type, to_type;
    int64_t nrows, n_per_row, n_chunks;
    bool widen;          /* src -> f32 first */
};

static void run_chunk(void *arg, int64_t i, int thread)
{
    (void)thread;
    const struct job *j = arg;
    int64_t r0 = j->nrows * i / j->n_chunks, r1 = j->nrows * (i + 1) / j->n_chunks;
    if (r1 <= r0)
        return;
    float *f = j->f32 + r0 * j->n_per_row;
    if (j->widen)
        quant_kernels_ref(j->from_type)
            ->to_float((const uint8_t *)j->src + (size_t)r0 * hr_row_size(j->from_type, j->n_per_row),
                       f, (r1 - r0) * j->n_per_row);
    /* cannot fail: the type and row length were checked when planning */
    (void)quant_quantize(j->to_type, f,
                         (uint8_t *)j->dst + (size_t)r0 * hr_row_size(j->to_type, j->n_per_row),
                         r1 - r0, j->n_per_row);
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool skip_key(const char *key, void *ud)
{
    (void)ud;
    /* rewritten below, or meaningless in a single output file */
    return !strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type") ||
           !strcmp(key, "split.no") || !strcmp(key, "split.count") ||
           !strcmp(key, "split.tensors.count");
}

/* Makes an error about the input name the input file (the GGUF reader's
 * parse errors name the field, not the file). Keeps the offset. */
static int about_input(struct hr_err *err, int rc, const char *path)
{
    if (err && !strstr(err->msg, path)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        hr_err_set(err, rc, err->offset, "%s: %s", path, msg);
    }
    return rc;
}

static bool is_float_type(uint32_t t)
{
    return t == HR_TYPE_F32 || t == HR_TYPE_F16 || t == HR_TYPE_BF16;
}

int quantize_model(const char *in_path, const char *out_path, const struct quantize_params *p,
                   struct quantize_stats *stats, struct hr_err *err)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    struct pool *pool = NULL;
    struct plan *plan = NULL;
    float *f32 = NULL;
    void *obuf = NULL;
    char *scratch_path = NULL;
    void *map = MAP_FAILED;
    size_t map_size = 0;
    int fd = -1, rc;
    struct quantize_model_info info;
    struct quantize_stats st = {0};
    struct stat sin, sout;

    if (!in_path || !out_path || !p)
        return hr_err_set(err, -EINVAL, -1, "quantize_model: missing path or parameters");
    const struct mix *mix = find_mix(p->ftype);
    if (!mix)
        return hr_err_set(err, -EINVAL, -1, "unknown quantization type %d", p->ftype);
    if (p->n_threads < 1 || p->n_threads > 1024)
        return hr_err_set(err, -EINVAL, -1, "thread count %d is not in [1, 1024]", p->n_threads);
    if (stat(in_path, &sin) == 0 && stat(out_path, &sout) == 0 && sin.st_dev == sout.st_dev &&
        sin.st_ino == sout.st_ino)
        return hr_err_set(err, -EEXIST, -1, "'%s' and '%s' are the same file", in_path, out_path);

    hr_err_clear(err);
    if ((rc = gguf_open(in_path, GGUF_DEFAULT_BUDGET, &f, err)) < 0)
        return about_input(err, rc, in_path);
    if ((rc = quantize_model_info_init(&info, f, err)) < 0) {
        rc = about_input(err, rc, in_path);
        goto fail;
    }
    if (f->n_tensors > INT32_MAX) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: too many tensors (%llu)", in_path,
                        (unsigned long long)f->n_tensors);
        goto fail;
    }

    /* Plan: every tensor's new type and size, before any work, so bad input
     * is refused at once and the buffers are sized for the largest tensor. */
    if (!(plan = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *plan))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    uint64_t max_elems = 0, max_out = 0, scratch_size = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        struct plan *pl = &plan[i];
        if (!is_float_type(t->type)) {
            const char *tn = hr_type_name(t->type);
            rc = hr_err_set(err, -ENOTSUP, (int64_t)t->info_offset,
                            is_quantized(t->type)
                                ? "tensor %s is %s: the model is already quantized (hearth "
                                  "quantize needs an F32, F16 or BF16 model)"
                                : "tensor %s has type %s, which hearth quantize does not handle",
                            t->name, tn ? tn : "?");
            rc = about_input(err, rc, in_path);
            goto fail;
        }
        int nt = choose(&info, t->name, t->ne, p->ftype, &pl->fell);
        if (nt == -EINVAL) {
            rc = hr_err_set(err, -EINVAL, (int64_t)t->info_offset,
                            "cannot tell the layer of tensor %s (n_layer %d)", t->name,
                            info.n_layer);
            rc = about_input(err, rc, in_path);
            goto fail;
        }
        pl->to_type = nt == QUANTIZE_KEEP ? t->type : (uint32_t)nt;
        pl->convert = pl->to_type != t->type;
        if (!pl->convert) {
            pl->out_bytes = t->nbytes;
            continue;
        }
        if (!quant_kernels_ref(pl->to_type) || !quant_kernels_ref(t->type)) {
            rc = hr_err_set(err, -ENOTSUP, -1, "tensor %s: no %s quantizer", t->name,
                            hr_type_name(pl->to_type));
            goto fail;
        }
        uint64_t elems = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] *
                         (uint64_t)t->ne[3];
        pl->out_bytes = (uint64_t)hr_row_size(pl->to_type, t->ne[0]) * (uint64_t)t->ne[1] *
                        (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        pl->scratch_off = scratch_size;
        scratch_size += (pl->out_bytes + 63) & ~(uint64_t)63;
        if (elems > max_elems)
            max_elems = elems;
        if (pl->out_bytes > max_out)
            max_out = pl->out_bytes;
    }
    if (max_elems > SIZE_MAX / sizeof(float) || scratch_size > SIZE_MAX) {
        rc = hr_err_set(err, -EFBIG, -1, "the model is too large for this machine");
        goto fail;
    }
    if ((max_elems && !(f32 = malloc((size_t)max_elems * sizeof(float)))) ||
        (max_out && !(obuf = malloc((size_t)max_out)))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory (%llu MiB for one tensor)",
                        (unsigned long long)((max_elems * 4 + max_out) >> 20));
        goto fail;
    }

    /* The scratch file lives next to the output (same file system, so the
     * space it needs is checked where the output goes) and is unlinked at
     * once, so nothing is left behind whatever happens. */
    size_t olen = strlen(out_path);
    if (!(scratch_path = malloc(olen + 20))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    memcpy(scratch_path, out_path, olen);
    memcpy(scratch_path + olen, ".scratch.XXXXXX", 16);
    if ((fd = mkostemp(scratch_path, O_CLOEXEC)) < 0) {
        rc = hr_err_set(err, -errno, -1, "cannot create a scratch file next to '%s': %s",
                        out_path, strerror(errno));
        goto fail;
    }
    unlink(scratch_path);

    if ((rc = pool_new(p->n_threads, &pool)) < 0) {
        rc = hr_err_set(err, rc, -1, "cannot start %d threads: %s", p->n_threads, strerror(-rc));
        goto fail;
    }

    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        struct plan *pl = &plan[i];
        st.in_bytes += t->nbytes;
        st.out_bytes += pl->out_bytes;
        if (pl->convert) {
            int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
            struct job j = {
                .src = t->data,
                .f32 = f32,
                .dst = obuf,
                .from_type = t->type,
                .to_type = pl->to_type,
                .nrows = nrows,
                .n_per_row = t->ne[0],
                .widen = true,
            };
            /* F32 input is quantized in place from the mapping when it is
             * float-aligned (it is unless general.alignment < 4). */
            if (t->type == HR_TYPE_F32 && ((uintptr_t)t->data % _Alignof(float)) == 0) {
                j.f32 = (float *)(uintptr_t)t->data;
                j.widen = false;
            }
            j.n_chunks = nrows < 8 * (int64_t)p->n_threads ? nrows : 8 * (int64_t)p->n_threads;
            if (nrows > 0)
                pool_run(pool, run_chunk, &j, j.n_chunks);
            uint64_t pad = ((pl->out_bytes + 63) & ~(uint64_t)63) - pl->out_bytes;
            static const uint8_t zeros[64];
            if ((rc = write_all(fd, obuf, (size_t)pl->out_bytes)) < 0 ||
                (rc = write_all(fd, zeros, (size_t)pad)) < 0) {
                rc = hr_err_set(err, rc, -1, "cannot write the scratch file next to '%s': %s",
                                out_path, strerror(-rc));
                goto fail;
            }
            st.n_converted++;
            st.n_fallback += pl->fell;
        }
        if (p->progress) {
            struct quantize_progress pr = {
                .index = (int)i + 1,
                .count = (int)f->n_tensors,
                .name = t->name,
                .ne = t->ne,
                .from_type = t->type,
                .to_type = pl->to_type,
                .fallback = pl->fell,
                .in_bytes = t->nbytes,
                .out_bytes = pl->out_bytes,
            };
            p->progress(p->progress_ud, &pr);
        }
    }
    st.n_tensors = (int)f->n_tensors;

    if (scratch_size > 0) {
        map_size = (size_t)scratch_size;
        map = mmap(NULL, map_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            rc = hr_err_set(err, -errno, -1, "cannot map the scratch file: %s", strerror(errno));
            goto fail;
        }
    }

    if (!(w = gguf_writer_new())) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    /* llama-quantize copies the pairs, then sets these two, which puts them
     * last (its setter removes an existing key and appends). */
    if ((rc = gguf_writer_copy_kv(w, f, skip_key, NULL)) < 0 ||
        (rc = gguf_writer_add_u32(w, "general.quantization_version", GGML_QNT_VERSION)) < 0 ||
        (rc = gguf_writer_add_u32(w, "general.file_type", (uint32_t)p->ftype)) < 0) {
        rc = hr_err_set(err, rc, -1, "cannot copy the metadata: %s", strerror(-rc));
        goto fail;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const void *data =
            plan[i].convert ? (const uint8_t *)map + plan[i].scratch_off : t->data;
        if (plan[i].out_bytes == 0)
            data = NULL;
        if ((rc = gguf_writer_add_tensor(w, t->name, plan[i].to_type, n_dims_of(t->ne), t->ne,
                                         data)) < 0) {
            rc = hr_err_set(err, rc, -1, "tensor %s: cannot add it to the output", t->name);
            goto fail;
        }
    }
    if ((rc = gguf_writer_write(w, out_path, err)) < 0)
        goto fail;
    if (stat(out_path, &sout) == 0)
        st.out_file_bytes = (uint64_t)sout.st_size;
    if (stats)
        *stats = st;
    rc = 0;
fail:
    gguf_writer_free(w);
    if (map != MAP_FAILED)
        munmap(map, map_size);
    if (fd >= 0)
        close(fd);
    pool_free(pool);
    free(scratch_path);
    free(obuf);
    free(f32);
    free(plan);
    gguf_free(f);
    return rc;
}
