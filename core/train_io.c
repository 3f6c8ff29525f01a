/*
 * train_io.c — the trainer's files (hearth.h "training"): the adapter and
 * checkpoints, both GGUF.
 *
 * Adapter: exactly what llama.cpp's convert_lora_to_gguf.py writes and
 * llama_adapter_lora_init reads (FORMATS.md §6): general.architecture of
 * the base, general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha (f32); per trained product X (e.g.
 * blk.3.attn_q.weight), F32 tensors X.lora_a ne=[n_in, r] (A: r rows of
 * n_in) and X.lora_b ne=[r, n_out] (B: n_out rows of r), in layer order.
 *
 * Checkpoint (general.type "hearth-train-checkpoint", version key
 * hearth.train.version = 1): the trainer's parameters as keys
 * hearth.train.*, the step, the caller's note, and three F32 vectors of
 * n_params floats — train.param (every pair's A then Bᵀ, pairs in layer
 * order, the trainer's layout), train.adam_m and train.adam_v. The layout
 * follows from the model, the rank and the targets, which a resume checks.
 */
#include "train.h"

#include "err.h"
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_TYPE "hearth-train-checkpoint"
#define CKPT_VERSION 1

int hr_train_save_adapter(const struct hr_train *t, const char *path, struct hr_err *err)
{
    hr_err_clear(err);
    const struct hr_model *m = t->model;
    int64_t r = t->p.rank, n = m->hp.n_layer * TK_COUNT;
    struct gguf_writer *w = gguf_writer_new();
    float *bbuf = malloc((size_t)t->n_params * sizeof(float)); /* the B's, untransposed */
    char(*names)[GGUF_MAX_NAME + 8] = malloc((size_t)n * 2 * sizeof *names);
    int rc = -ENOMEM;
    if (!w || !bbuf || !names) goto fail;
    if ((rc = gguf_writer_add_str(w, "general.architecture", m->arch_name)) < 0 ||
        (rc = gguf_writer_add_str(w, "general.type", "adapter")) < 0 ||
        (rc = gguf_writer_add_str(w, "general.name", "hearth LoRA")) < 0 ||
        (rc = gguf_writer_add_str(w, "adapter.type", "lora")) < 0 ||
        (rc = gguf_writer_add_f32(w, "adapter.lora.alpha", t->p.alpha)) < 0)
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        const struct train_target *tg = &t->tg[i];
        if (!tg->w) continue;
        float *b = bbuf + tg->off_bt; /* B [n_out][r] from Bᵀ [r][n_out] */
        const float *bt = t->param + tg->off_bt;
        for (int64_t o = 0; o < tg->n_out; o++)
            for (int64_t j = 0; j < r; j++)
                b[o * r + j] = bt[j * tg->n_out + o];
        snprintf(names[2 * i], sizeof names[0], "%s.lora_a", tg->w->name);
        snprintf(names[2 * i + 1], sizeof names[0], "%s.lora_b", tg->w->name);
        int64_t ne_a[2] = {tg->n_in, r}, ne_b[2] = {r, tg->n_out};
        if ((rc = gguf_writer_add_tensor(w, names[2 * i], HR_TYPE_F32, 2, ne_a,
                                         t->param + tg->off_a)) < 0 ||
            (rc = gguf_writer_add_tensor(w, names[2 * i + 1], HR_TYPE_F32, 2, ne_b, b)) < 0)
            goto fail;
    }
    rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    free(bbuf);
    free(names);
    return rc;
fail:
    hr_err_set(err, rc, -1, "cannot build the adapter for '%s'%s", path,
               rc == -ENOMEM ? " (out of memory)" : "");
    gguf_writer_free(w);
    free(bbuf);
    free(names);
    return rc;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static int add_i64(struct gguf_writer *w, const char *key, int64_t v)
{
    struct gguf_value val = {.type = GGUF_INT64, .i = v};
    return gguf_writer_add_value(w, key, &val);
}

static int add_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    struct gguf_value val = {.type = GGUF_UINT64, .u = v};
    return gguf_writer_add_value(w, key, &val);
}

int hr_train_save_checkpoint(const struct hr_train *t, const char *path, const char *note,
                             struct hr_err *err)
{
    hr_err_clear(err);
    const struct hr_train_params *p = &t->p;
    struct gguf_writer *w = gguf_writer_new();
    int rc = -ENOMEM;
    if (!w) goto fail;
    int64_t ne[1] = {t->n_params};
    if ((rc = gguf_writer_add_str(w, "general.architecture", t->model->arch_name)) < 0 ||
        (rc = gguf_writer_add_str(w, "general.type", CKPT_TYPE)) < 0 ||
        (rc = gguf_writer_add_u32(w, "hearth.train.version", CKPT_VERSION)) < 0 ||
        (rc = add_i64(w, "hearth.train.step", t->step)) < 0 ||
        (rc = gguf_writer_add_i32(w, "hearth.train.rank", p->rank)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.alpha", p->alpha)) < 0 ||
        (rc = gguf_writer_add_u32(w, "hearth.train.targets", p->targets)) < 0 ||
        (rc = gguf_writer_add_i32(w, "hearth.train.init", p->init)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.lr", p->lr)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.beta1", p->beta1)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.beta2", p->beta2)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.adam_eps", p->adam_eps)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.weight_decay", p->weight_decay)) < 0 ||
        (rc = gguf_writer_add_f32(w, "hearth.train.clip", p->clip)) < 0 ||
        (rc = add_i64(w, "hearth.train.warmup_steps", p->warmup_steps)) < 0 ||
        (rc = add_i64(w, "hearth.train.total_steps", p->total_steps)) < 0 ||
        (rc = gguf_writer_add_i32(w, "hearth.train.schedule", p->schedule)) < 0 ||
        (rc = gguf_writer_add_i32(w, "hearth.train.n_ctx", p->n_ctx)) < 0 ||
        (rc = gguf_writer_add_i32(w, "hearth.train.pass_tokens", p->pass_tokens)) < 0 ||
        (rc = gguf_writer_add_bool(w, "hearth.train.recompute", p->recompute)) < 0 ||
        (rc = gguf_writer_add_u32(w, "hearth.train.grad_type", p->grad_type)) < 0 ||
        (rc = add_u64(w, "hearth.train.seed", p->seed)) < 0 ||
        (note && (rc = gguf_writer_add_str(w, "hearth.train.note", note)) < 0) ||
        (rc = gguf_writer_add_tensor(w, "train.param", HR_TYPE_F32, 1, ne, t->param)) < 0 ||
        (rc = gguf_writer_add_tensor(w, "train.adam_m", HR_TYPE_F32, 1, ne, t->m)) < 0 ||
        (rc = gguf_writer_add_tensor(w, "train.adam_v", HR_TYPE_F32, 1, ne, t->v)) < 0)
        goto fail;
    rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    return rc;
fail:
    hr_err_set(err, rc, -1, "cannot build the checkpoint for '%s'%s", path,
               rc == -ENOMEM ? " (out of memory)" : "");
    gguf_writer_free(w);
    return rc;
}

static int open_ckpt(const char *path, struct gguf_file **out, struct hr_err *err)
{
    struct gguf_file *f;
    int rc = gguf_open(path, GGUF_DEFAULT_BUDGET, &f, err);
    if (rc < 0) return rc;
    struct gguf_str type;
    uint32_t version;
    if (gguf_get_str(f, "general.type", &type, NULL) < 0 || !gguf_str_eq(type, CKPT_TYPE)) {
        gguf_free(f);
        return hr_err_set(err, -EINVAL, -1, "%s: not a hearth training checkpoint", path);
    }
    if (gguf_get_u32(f, "hearth.train.version", &version, NULL) < 0 || version != CKPT_VERSION) {
        gguf_free(f);
        return hr_err_set(err, -EINVAL, -1, "%s: checkpoint version not supported", path);
    }
    *out = f;
    return 0;
}

static int read_params(const struct gguf_file *f, const char *path, struct hr_train_params *p,
                       int64_t *step, struct hr_err *err)
{
    int64_t i64;
    const struct gguf_kv *seed = gguf_find_kv(f, "hearth.train.seed");
    hr_train_defaults(p);
    struct {
        const char *key;
        float *f;
    } floats[] = {{"hearth.train.alpha", &p->alpha},
                  {"hearth.train.lr", &p->lr},
                  {"hearth.train.beta1", &p->beta1},
                  {"hearth.train.beta2", &p->beta2},
                  {"hearth.train.adam_eps", &p->adam_eps},
                  {"hearth.train.clip", &p->clip},
                  {"hearth.train.weight_decay", &p->weight_decay}};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof floats / sizeof floats[0]; i++)
        rc = gguf_get_f32(f, floats[i].key, floats[i].f, err);
    if (rc < 0) goto bad;
#define I32(key, dst)                                                                              \
    do {                                                                                           \
        if ((rc = gguf_get_i64(f, key, &i64, err)) < 0) goto bad;                                  \
        dst = (int32_t)i64;                                                                        \
    } while (0)
    I32("hearth.train.rank", p->rank);
    I32("hearth.train.init", p->init);
    I32("hearth.train.schedule", p->schedule);
    I32("hearth.train.n_ctx", p->n_ctx);
    I32("hearth.train.pass_tokens", p->pass_tokens);
#undef I32
    if ((rc = gguf_get_u32(f, "hearth.train.targets", &p->targets, err)) < 0 ||
        (rc = gguf_get_u32(f, "hearth.train.grad_type", &p->grad_type, err)) < 0 ||
        (rc = gguf_get_bool(f, "hearth.train.recompute", &p->recompute, err)) < 0 ||
        (rc = gguf_get_i64(f, "hearth.train.warmup_steps", &p->warmup_steps, err)) < 0 ||
        (rc = gguf_get_i64(f, "hearth.train.total_steps", &p->total_steps, err)) < 0 ||
        (rc = gguf_get_i64(f, "hearth.train.step", step, err)) < 0)
        goto bad;
    if (!seed || seed->val.type != GGUF_UINT64) {
        rc = hr_err_set(err, -EINVAL, -1, "key 'hearth.train.seed' missing or not UINT64");
        goto bad;
    }
    p->seed = seed->val.u;
    return 0;
bad:;
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err ? err->msg : "a key is missing or malformed");
    return hr_err_set(err, -EINVAL, -1, "%s: malformed checkpoint: %s", path, why);
}

int hr_train_checkpoint_info(const char *path, struct hr_train_params *p, int64_t *step,
                             char **note, struct hr_err *err)
{
    hr_err_clear(err);
    struct gguf_file *f;
    int rc = open_ckpt(path, &f, err);
    if (rc < 0) return rc;
    struct hr_train_params pp;
    int64_t st;
    if ((rc = read_params(f, path, &pp, &st, err)) < 0) goto done;
    if (note) {
        struct gguf_str s;
        *note = NULL;
        if (gguf_get_str(f, "hearth.train.note", &s, NULL) == 0) {
            if (!(*note = malloc(s.len + 1))) {
                rc = -ENOMEM;
                goto done;
            }
            memcpy(*note, s.ptr, s.len);
            (*note)[s.len] = 0;
        }
    }
    if (p) *p = pp;
    if (step) *step = st;
done:
    gguf_free(f);
    return rc;
}

int hr_train_load_checkpoint(struct hr_train *t, const char *path, struct hr_err *err)
{
    hr_err_clear(err);
    struct gguf_file *f;
    int rc = open_ckpt(path, &f, err);
    if (rc < 0) return rc;
    struct hr_train_params pp;
    int64_t step;
    if ((rc = read_params(f, path, &pp, &step, err)) < 0) goto done;
    struct gguf_str arch;
    rc = -EINVAL;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) < 0 ||
        !gguf_str_eq(arch, t->model->arch_name)) {
        hr_err_set(err, rc, -1, "%s: the checkpoint is for another architecture", path);
        goto done;
    }
    if (pp.rank != t->p.rank || pp.targets != t->p.targets) {
        hr_err_set(err, rc, -1,
                   "%s: the checkpoint has rank %d and targets 0x%x, the trainer %d "
                   "and 0x%x",
                   path, pp.rank, pp.targets, t->p.rank, t->p.targets);
        goto done;
    }
    const char *names[3] = {"train.param", "train.adam_m", "train.adam_v"};
    float *dst[3] = {t->param, t->m, t->v};
    for (int i = 0; i < 3; i++) {
        const struct gguf_tensor *tt = gguf_find_tensor(f, names[i]);
        if (!tt || tt->type != HR_TYPE_F32 || tt->n_dims != 1 || tt->ne[0] != t->n_params) {
            hr_err_set(err, rc, -1, "%s: tensor %s missing or not %lld F32 values (another model?)",
                       path, names[i], (long long)t->n_params);
            goto done;
        }
    }
    for (int i = 0; i < 3; i++)
        memcpy(dst[i], gguf_find_tensor(f, names[i])->data, (size_t)t->n_params * sizeof(float));
    t->step = step;
    rc = 0;
done:
    gguf_free(f);
    return rc;
}
