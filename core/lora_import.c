/*
 * lora_import.c — converting a Hugging Face PEFT LoRA adapter to a GGUF
 * adapter (lora.h lora_import_peft), as llama.cpp's convert_lora_to_gguf.py
 * does for the architectures hearth runs (llama, qwen2, qwen3).
 *
 * Input, a directory:
 *   adapter_config.json — r, lora_alpha, target_modules, use_rslora (and
 *     fields refused when they ask for something else than plain LoRA:
 *     use_dora, alpha_pattern, fan_in_fan_out, a peft_type other than LORA);
 *   adapter_model.safetensors — u64 little-endian header length N, N bytes
 *     of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 *     "__metadata__": {...}}, then the data (offsets relative to its start),
 *     row-major, little-endian.
 *
 * Names (after the "base_model.model." prefix PEFT adds):
 *   model.layers.N.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight → blk.N.attn_{q,k,v,output}.weight
 *   model.layers.N.mlp.{gate,up,down}_proj.lora_{A,B}.weight  → blk.N.ffn_{gate,up,down}.weight
 *   lm_head.lora_{A,B}.weight                                 → output.weight
 *   model.embed_tokens.lora_embedding_{A,B}                   → token_embd.weight
 * with .lora_a / .lora_b appended. Shapes: PEFT's lora_A is [r, n_in] and
 * lora_B [n_out, r] (row-major), which are GGUF's ne=[n_in, r] and
 * ne=[r, n_out] with the same bytes. The embedding's lora_embedding_A
 * [r, n_vocab] is transposed into ne=[r, n_vocab]; lora_embedding_B
 * [n_embd, r] is ne=[r, n_embd] as it is.
 *
 * Llama: Hugging Face stores q_proj/k_proj with the two halves of each head
 * apart (rotate-half RoPE); llama.cpp's converter interleaves them
 * (convert_hf_to_gguf.py LlamaModel.permute: reshape(n_head, 2, hd/2, ·)
 * .swapaxes(1, 2)), and for an adapter it permutes the output rows, i.e.
 * lora_B's rows: new row h·hd + 2j + i = old row h·hd + i·hd/2 + j. K uses
 * the KV head count. qwen2/qwen3 use NEOX RoPE: no permutation.
 */
#include "lora.h"

#include "err.h"
#include "gguf.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER ((uint64_t)64 << 20) /* safetensors header limit (JSON text) */

/* ---- adapter_config.json ------------------------------------------------------------- */

struct config {
    int64_t r;
    double alpha;
    bool rslora;
    bool rank_pattern; /* a non-empty rank_pattern: per-module ranks */
    json_t *targets;   /* target_modules (borrowed from root) or NULL */
    json_t *root;
};

static int read_config(const char *path, struct config *c, struct hr_err *err)
{
    json_error_t je;
    c->root = json_load_file(path, 0, &je);
    if (!c->root)
        return hr_err_set(err, access(path, F_OK) ? -ENOENT : -EINVAL, -1, "%s:%d:%d: %s", path,
                          je.line, je.column, je.text);
    json_t *o = c->root, *v;
    if (!json_is_object(o)) return hr_err_set(err, -EINVAL, -1, "%s: not a JSON object", path);
    if ((v = json_object_get(o, "peft_type")) &&
        !(json_is_string(v) && !strcmp(json_string_value(v), "LORA")))
        return hr_err_set(err, -ENOTSUP, -1, "%s: peft_type is not \"LORA\"", path);
    v = json_object_get(o, "r");
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 65536)
        return hr_err_set(err, -EINVAL, -1, "%s: 'r' must be a positive integer", path);
    c->r = json_integer_value(v);
    v = json_object_get(o, "lora_alpha");
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return hr_err_set(err, -EINVAL, -1, "%s: 'lora_alpha' must be a number", path);
    c->alpha = json_number_value(v);
    if ((v = json_object_get(o, "use_rslora")) && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return hr_err_set(err, -EINVAL, -1, "%s: 'use_rslora' must be true or false", path);
        c->rslora = json_is_true(v);
    }
    if ((v = json_object_get(o, "use_dora")) && json_is_true(v))
        return hr_err_set(err, -ENOTSUP, -1, "%s: DoRA adapters (use_dora) are not supported",
                          path);
    if ((v = json_object_get(o, "fan_in_fan_out")) && json_is_true(v))
        return hr_err_set(err, -ENOTSUP, -1,
                          "%s: fan_in_fan_out adapters (GPT-2 style) are not supported", path);
    if ((v = json_object_get(o, "alpha_pattern")) && json_is_object(v) && json_object_size(v))
        return hr_err_set(err, -ENOTSUP, -1,
                          "%s: per-module alphas (alpha_pattern) cannot be stored in one GGUF "
                          "adapter.lora.alpha",
                          path);
    c->rank_pattern =
        (v = json_object_get(o, "rank_pattern")) && json_is_object(v) && json_object_size(v) > 0;
    if (c->rslora && c->rank_pattern)
        return hr_err_set(err, -ENOTSUP, -1,
                          "%s: use_rslora with per-module ranks (rank_pattern) cannot be stored in "
                          "one GGUF adapter.lora.alpha",
                          path);
    v = json_object_get(o, "target_modules");
    if (json_is_array(v))
        c->targets = v;
    else if (v && !json_is_string(v) && !json_is_null(v))
        return hr_err_set(err, -EINVAL, -1,
                          "%s: 'target_modules' must be a list of names or a string", path);
    return 0;
}

/* PEFT's rule for a list of target names: the module path equals one, or
 * ends with "." + one. */
static bool targeted(const struct config *c, const char *module)
{
    if (!c->targets) return true; /* a regex string or "all-linear": not checked */
    size_t i;
    json_t *v;
    size_t ml = strlen(module);
    json_array_foreach(c->targets, i, v)
    {
        if (!json_is_string(v)) continue;
        const char *t = json_string_value(v);
        size_t tl = strlen(t);
        if (!strcmp(module, t) ||
            (ml > tl && module[ml - tl - 1] == '.' && !strcmp(module + ml - tl, t)))
            return true;
    }
    return false;
}

/* ---- adapter_model.safetensors --------------------------------------------------------- */

struct st_tensor {
    char name[256];
    uint32_t type; /* HR_TYPE_F32/F16/BF16 */
    int64_t shape[2];
    const uint8_t *data;
    size_t nbytes;
};

struct safetensors {
    void *map;
    size_t size;
    struct st_tensor *t;
    size_t n;
};

static void st_done(struct safetensors *s)
{
    if (s->map && s->map != MAP_FAILED) munmap(s->map, s->size);
    free(s->t);
}

static int st_open(const char *path, struct safetensors *s, struct hr_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hr_err_set(err, -errno, -1, "%s: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    json_t *h = NULL;
    if (fstat(fd, &sb) < 0) {
        rc = hr_err_set(err, -errno, -1, "%s: %s", path, strerror(errno));
        goto out;
    }
    s->size = (size_t)sb.st_size;
    if (s->size < 8) {
        rc = hr_err_set(err, -EINVAL, 0, "%s: too short for a safetensors file", path);
        goto out;
    }
    s->map = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (s->map == MAP_FAILED) {
        rc = hr_err_set(err, -errno, -1, "%s: cannot map it: %s", path, strerror(errno));
        goto out;
    }
    const uint8_t *b = s->map;
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | b[i];
    if (hn > MAX_HEADER || hn > s->size - 8) {
        rc = hr_err_set(err, -EINVAL, 0, "%s: header length %llu does not fit the file (%zu bytes)",
                        path, (unsigned long long)hn, s->size);
        goto out;
    }
    json_error_t je;
    h = json_loadb((const char *)b + 8, (size_t)hn, 0, &je);
    if (!json_is_object(h)) {
        rc = hr_err_set(err, -EINVAL, 8 + (h ? 0 : je.position),
                        "%s: the header is not a JSON object (%s)", path, h ? "" : je.text);
        goto out;
    }
    const uint8_t *data = b + 8 + hn;
    size_t data_size = s->size - 8 - (size_t)hn;
    if (!(s->t = calloc(json_object_size(h) + 1, sizeof *s->t))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v)
    {
        if (!strcmp(key, "__metadata__")) continue;
        struct st_tensor *t = &s->t[s->n];
        json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
        json_t *off = json_object_get(v, "data_offsets");
        if (strlen(key) >= sizeof t->name || !json_is_string(dt) || !json_is_array(sh) ||
            !json_is_array(off) || json_array_size(off) != 2 ||
            !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1))) {
            rc = hr_err_set(err, -EINVAL, -1, "%s: tensor '%.200s': malformed entry", path, key);
            goto out;
        }
        snprintf(t->name, sizeof t->name, "%s", key);
        const char *d = json_string_value(dt);
        size_t es = 2;
        if (!strcmp(d, "F32"))
            t->type = HR_TYPE_F32, es = 4;
        else if (!strcmp(d, "F16"))
            t->type = HR_TYPE_F16;
        else if (!strcmp(d, "BF16"))
            t->type = HR_TYPE_BF16;
        else {
            rc = hr_err_set(err, -ENOTSUP, -1,
                            "%s: tensor '%s' has dtype %s (hearth imports F32, F16 and BF16)", path,
                            key, d);
            goto out;
        }
        if (json_array_size(sh) != 2) {
            rc = hr_err_set(err, -EINVAL, -1, "%s: tensor '%s' is not 2-D (%zu dimensions)", path,
                            key, json_array_size(sh));
            goto out;
        }
        uint64_t n = es;
        for (int i = 0; i < 2; i++) {
            json_t *e = json_array_get(sh, (size_t)i);
            if (!json_is_integer(e) || json_integer_value(e) <= 0 ||
                json_integer_value(e) > (1 << 24)) {
                rc = hr_err_set(err, -EINVAL, -1, "%s: tensor '%s': bad shape", path, key);
                goto out;
            }
            t->shape[i] = json_integer_value(e);
            n *= (uint64_t)t->shape[i];
        }
        json_int_t o0 = json_integer_value(json_array_get(off, 0));
        json_int_t o1 = json_integer_value(json_array_get(off, 1));
        if (o0 < 0 || o1 < o0 || (uint64_t)o1 > data_size || (uint64_t)(o1 - o0) != n) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "%s: tensor '%s': data_offsets [%lld, %lld] do not hold its %llu "
                            "bytes inside the data (%zu bytes)",
                            path, key, (long long)o0, (long long)o1, (unsigned long long)n,
                            data_size);
            goto out;
        }
        t->data = data + o0;
        t->nbytes = (size_t)n;
        s->n++;
    }
out:
    json_decref(h);
    close(fd);
    return rc;
}

/* ---- names ------------------------------------------------------------------------------- */

enum part { PART_A, PART_B };

struct name_map {
    char gguf[GGUF_MAX_NAME]; /* base tensor name */
    char module[160];         /* the HF module path, for target_modules */
    enum part part;
    bool embd; /* lora_embedding_{A,B} */
    int perm;  /* 0 none, 1 q (n_head), 2 k (n_head_kv) */
};

/* 0, 1 (skip: a tensor that is not a LoRA matrix, e.g. a norm), or -EINVAL. */
static int map_name(const char *hf, struct name_map *m)
{
    static const struct {
        const char *hf, *gguf;
        int perm;
    } proj[] = {
        {"self_attn.q_proj", "attn_q", 1}, {"self_attn.k_proj", "attn_k", 2},
        {"self_attn.v_proj", "attn_v", 0}, {"self_attn.o_proj", "attn_output", 0},
        {"mlp.gate_proj", "ffn_gate", 0},  {"mlp.up_proj", "ffn_up", 0},
        {"mlp.down_proj", "ffn_down", 0},
    };
    memset(m, 0, sizeof *m);
    const char *n = hf;
    if (!strncmp(n, "base_model.model.", 17)) n += 17;
    char mod[160];
    size_t len = strlen(n);
    const char *suf[] = {".lora_A.weight", ".lora_B.weight", ".lora_embedding_A",
                         ".lora_embedding_B"};
    int which = -1;
    for (int i = 0; i < 4; i++) {
        size_t sl = strlen(suf[i]);
        if (len > sl && !strcmp(n + len - sl, suf[i]) && len - sl < sizeof mod) {
            which = i;
            memcpy(mod, n, len - sl);
            mod[len - sl] = '\0';
            break;
        }
    }
    if (which < 0) {
        if (strstr(n, ".base_layer.weight") || strstr(n, "norm")) return 1;
        return -EINVAL;
    }
    m->part = which % 2 ? PART_B : PART_A;
    m->embd = which >= 2;
    snprintf(m->module, sizeof m->module, "%s", mod);
    if (m->embd) {
        if (strcmp(mod, "model.embed_tokens") != 0) return -EINVAL;
        snprintf(m->gguf, sizeof m->gguf, "token_embd.weight");
        return 0;
    }
    if (!strcmp(mod, "lm_head")) {
        snprintf(m->gguf, sizeof m->gguf, "output.weight");
        return 0;
    }
    unsigned layer;
    int off = 0;
    if (sscanf(mod, "model.layers.%u.%n", &layer, &off) != 1 || off == 0) return -EINVAL;
    for (size_t i = 0; i < sizeof proj / sizeof proj[0]; i++)
        if (!strcmp(mod + off, proj[i].hf)) {
            snprintf(m->gguf, sizeof m->gguf, "blk.%u.%s.weight", layer, proj[i].gguf);
            m->perm = proj[i].perm;
            return 0;
        }
    return -EINVAL;
}

/* ---- conversion ---------------------------------------------------------------------------- */

static int get_u32(const struct gguf_file *f, const char *arch, const char *suffix, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u32(f, key, out, NULL);
}

int lora_import_peft(const char *dir, const char *base_path, const char *out_path,
                     struct lora_import_stats *stats, struct hr_err *err)
{
    struct config cfg = {0};
    struct safetensors st = {0};
    struct gguf_file *base = NULL;
    struct gguf_writer *w = NULL;
    struct lora_file *check = NULL;
    struct name_map *maps = NULL;
    uint8_t **owned = NULL;
    void *img = NULL;
    size_t img_size = 0, n_owned = 0;
    char path[4096];
    int rc;

    hr_err_clear(err);
    if (!dir || !base_path || !out_path)
        return hr_err_set(err, -EINVAL, -1, "lora import: missing directory, base or output");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if ((rc = read_config(path, &cfg, err)) < 0) goto fail;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if ((rc = st_open(path, &st, err)) < 0) goto fail;
    if ((rc = gguf_open(base_path, GGUF_DEFAULT_BUDGET, &base, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        hr_err_set(err, rc, err ? err->offset : -1, "%s: %s", base_path, msg);
        goto fail;
    }
    struct gguf_str as;
    char arch[32];
    if (gguf_get_str(base, "general.architecture", &as, NULL) < 0) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: no general.architecture", base_path);
        goto fail;
    }
    snprintf(arch, sizeof arch, "%.*s", (int)(as.len > 31 ? 31 : as.len), as.ptr);
    uint32_t n_head = 0, n_head_kv = 0;
    bool llama = !strcmp(arch, "llama");
    if (llama && get_u32(base, arch, "attention.head_count", &n_head) < 0) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: no %s.attention.head_count", base_path, arch);
        goto fail;
    }
    if (llama && get_u32(base, arch, "attention.head_count_kv", &n_head_kv) < 0) n_head_kv = n_head;

    rc = -ENOMEM;
    if (!(maps = calloc(st.n + 1, sizeof *maps)) || !(owned = calloc(st.n + 1, sizeof *owned)) ||
        !(w = gguf_writer_new()))
        goto fail;
    float alpha = (float)(cfg.rslora ? cfg.alpha * sqrt((double)cfg.r) : cfg.alpha);
    if ((rc = gguf_writer_add_str(w, "general.architecture", arch)) < 0 ||
        (rc = gguf_writer_add_str(w, "general.type", "adapter")) < 0 ||
        (rc = gguf_writer_add_str(w, "adapter.type", "lora")) < 0 ||
        (rc = gguf_writer_add_f32(w, "adapter.lora.alpha", alpha)) < 0)
        goto fail;

    int n_pairs = 0;
    for (size_t i = 0; i < st.n; i++) {
        struct st_tensor *t = &st.t[i];
        struct name_map *m = &maps[i];
        int mr = map_name(t->name, m);
        if (mr == 1) continue;
        if (mr < 0) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "%s/adapter_model.safetensors: tensor '%s' is not a LoRA matrix of a "
                            "module hearth knows (q/k/v/o_proj, gate/up/down_proj, lm_head, "
                            "embed_tokens)",
                            dir, t->name);
            goto fail;
        }
        if (!targeted(&cfg, m->module)) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "%s: tensor '%s' is for module '%s', which target_modules does not "
                            "list",
                            dir, t->name, m->module);
            goto fail;
        }
        /* torch shapes: A [r, n_in], B [n_out, r]; embedding A [r, n_vocab], B [n_embd, r] */
        int64_t rank = m->part == PART_A ? t->shape[0] : t->shape[1];
        if (!cfg.rank_pattern && rank != cfg.r) {
            rc = hr_err_set(err, -EINVAL, -1,
                            "%s: tensor '%s' has rank %lld but adapter_config.json says r = %lld",
                            dir, t->name, (long long)rank, (long long)cfg.r);
            goto fail;
        }
        const void *data = t->data;
        int64_t ne[2] = {t->shape[1], t->shape[0]};
        size_t es = t->type == HR_TYPE_F32 ? 4 : 2;
        if (m->embd && m->part == PART_A) { /* [r, n_vocab] → stored transposed */
            uint8_t *o = malloc(t->nbytes);
            if (!o) {
                rc = -ENOMEM;
                goto fail;
            }
            owned[n_owned++] = o;
            int64_t R = t->shape[0], V = t->shape[1];
            for (int64_t k = 0; k < R; k++)
                for (int64_t v = 0; v < V; v++)
                    memcpy(o + (size_t)(v * R + k) * es, t->data + (size_t)(k * V + v) * es, es);
            data = o;
            ne[0] = R;
            ne[1] = V;
        } else if (llama && m->perm && m->part == PART_B) {
            int64_t n_out = t->shape[0], r = t->shape[1];
            int64_t nh = m->perm == 1 ? n_head : n_head_kv;
            if (nh <= 0 || n_out % (2 * nh)) {
                rc = hr_err_set(err, -EINVAL, -1,
                                "%s: tensor '%s' has %lld rows, not a multiple of 2·%lld heads",
                                dir, t->name, (long long)n_out, (long long)nh);
                goto fail;
            }
            int64_t hd = n_out / nh, half = hd / 2;
            uint8_t *o = malloc(t->nbytes);
            if (!o) {
                rc = -ENOMEM;
                goto fail;
            }
            owned[n_owned++] = o;
            size_t row = (size_t)r * es;
            for (int64_t h = 0; h < nh; h++)
                for (int64_t j = 0; j < half; j++)
                    for (int64_t i2 = 0; i2 < 2; i2++)
                        memcpy(o + (size_t)(h * hd + 2 * j + i2) * row,
                               t->data + (size_t)(h * hd + i2 * half + j) * row, row);
            data = o;
        }
        char gname[GGUF_MAX_NAME + 8];
        snprintf(gname, sizeof gname, "%s.lora_%c", m->gguf, m->part == PART_A ? 'a' : 'b');
        if (strlen(gname) >= GGUF_MAX_NAME) {
            rc = hr_err_set(err, -EINVAL, -1, "%s: tensor name '%s' is too long for GGUF", dir,
                            gname);
            goto fail;
        }
        if ((rc = gguf_writer_add_tensor(w, gname, t->type, 2, ne, data)) < 0) {
            rc = hr_err_set(err, rc, -1, "%s: tensor '%s': cannot add it", dir, gname);
            goto fail;
        }
        n_pairs += m->part == PART_A;
    }
    if ((rc = gguf_writer_write_mem(w, &img, &img_size)) < 0) goto fail;
    /* the full check against the base (pairs complete, shapes) before writing */
    if ((rc = lora_file_parse(base, img, img_size, out_path, &check, err)) < 0) goto fail;
    if ((rc = gguf_writer_write(w, out_path, err)) < 0) goto fail;
    if (stats) *stats = (struct lora_import_stats){n_pairs, (int32_t)cfg.r, alpha};
    rc = 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0]) hr_err_set(err, rc, -1, "out of memory");
    lora_file_free(check);
    free(img);
    gguf_writer_free(w);
    for (size_t i = 0; i < n_owned; i++)
        free(owned[i]);
    free(owned);
    free(maps);
    gguf_free(base);
    st_done(&st);
    json_decref(cfg.root);
    return rc;
}
