/*
 * lora_merge.c — folding LoRA adapters into a model file (lora.h
 * lora_merge), what llama.cpp's llama-export-lora does: for every base
 * tensor W that adapters change,
 *     W' = W + Σ_adapters s·(α/r)·B·A
 * with W dequantized to f32, the product B·A summed in f32 per element
 * (then scaled and added, adapter after adapter, as the reference's graph
 * does), and W' quantized back with the reference quantizers (quant.h) to
 * W's own type — or, with a mix, to the type hearth quantize would choose.
 *
 * Layout of the delta: A ne=[n_in, r] is r rows of n_in, B ne=[r, n_out] is
 * n_out rows of r, W ne=[n_in, n_out] is n_out rows of n_in, so row o of
 * the delta is Σ_k B[o][k]·A[k][·]. token_embd is transposed in the file:
 * A ne=[r, n_vocab] (row t: the r values of token t), B ne=[r, n_embd], and
 * row t of the delta is [Σ_k B[e][k]·A[t][k]]_e.
 *
 * The file is written as hearth quantize writes one (quantize.c): tensors
 * done one at a time in row chunks on a thread pool, appended to an
 * unlinked scratch file next to the output, and the output written from
 * there through the GGUF writer (temporary file + rename). At most one
 * tensor is held in f32.
 */
#include "lora.h"

#include "err.h"
#include "gguf.h"
#include "pool.h"
#include "quant.h"
#include "quantize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGML_QNT_VERSION 2

/* One adapter's change to the tensor being merged. */
struct delta {
    const struct lora_file_pair *p;
    float scale;  /* effective: user·α/r */
    float *a, *b; /* dequantized A and B (owned by the job) */
};

struct job {
    const struct gguf_tensor *t;
    uint32_t to_type;
    float *f32; /* [n_rows][n_in] */
    void *dst;  /* converted rows */
    struct delta *deltas;
    int n_deltas;
    float *tmp; /* [n_threads][n_in]: one row of B·A */
    int64_t n_rows, n_in, n_chunks;
};

/* Rows [r0, r1) of the tensor: widen, add the deltas, convert. */
static void run_chunk(void *arg, int64_t i, int thread)
{
    const struct job *j = arg;
    int64_t r0 = j->n_rows * i / j->n_chunks, r1 = j->n_rows * (i + 1) / j->n_chunks;
    if (r1 <= r0) return;
    const struct gguf_tensor *t = j->t;
    float *f = j->f32 + r0 * j->n_in;
    quant_kernels_ref(t->type)->to_float((const uint8_t *)t->data +
                                             (size_t)r0 * hr_row_size(t->type, j->n_in),
                                         f, (r1 - r0) * j->n_in);
    float *d = j->tmp + (int64_t)thread * j->n_in;
    for (int di = 0; di < j->n_deltas; di++) {
        const struct delta *dl = &j->deltas[di];
        int64_t r = dl->p->r;
        for (int64_t o = r0; o < r1; o++) {
            float *w = j->f32 + o * j->n_in;
            if (dl->p->embd) { /* row o = token o: d[e] = Σ_k B[e][k]·A[o][k] */
                const float *ar = dl->a + o * r;
                for (int64_t e = 0; e < j->n_in; e++) {
                    const float *br = dl->b + e * r;
                    float s = 0.0f;
                    for (int64_t k = 0; k < r; k++)
                        s += br[k] * ar[k];
                    d[e] = s;
                }
            } else { /* d[x] = Σ_k B[o][k]·A[k][x] */
                const float *br = dl->b + o * r;
                for (int64_t x = 0; x < j->n_in; x++)
                    d[x] = 0.0f;
                for (int64_t k = 0; k < r; k++) {
                    const float *ak = dl->a + k * j->n_in;
                    float bk = br[k];
                    for (int64_t x = 0; x < j->n_in; x++)
                        d[x] += bk * ak[x];
                }
            }
            for (int64_t x = 0; x < j->n_in; x++)
                w[x] += d[x] * dl->scale;
        }
    }
    if (j->to_type == HR_TYPE_F32)
        memcpy((uint8_t *)j->dst + (size_t)r0 * j->n_in * sizeof(float), f,
               (size_t)((r1 - r0) * j->n_in) * sizeof(float));
    else
        (void)quant_quantize(j->to_type, f,
                             (uint8_t *)j->dst + (size_t)r0 * hr_row_size(j->to_type, j->n_in),
                             r1 - r0, j->n_in);
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool skip_key(const char *key, void *ud)
{
    bool remix = *(const bool *)ud; /* a new mix rewrites these two */
    return (remix &&
            (!strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type"))) ||
           !strcmp(key, "split.no") || !strcmp(key, "split.count") ||
           !strcmp(key, "split.tensors.count");
}

static uint32_t n_dims_of(const int64_t ne[4])
{
    uint32_t n = 4;
    while (n > 1 && ne[n - 1] == 1)
        n--;
    return n;
}

/* A and B of a pair in f32, rows as in the file. */
static int widen(const struct gguf_tensor *t, float **out)
{
    int64_t n = t->ne[0] * t->ne[1];
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return -ENOMEM;
    quant_kernels_ref(t->type)->to_float(t->data, v, n);
    *out = v;
    return 0;
}

struct plan {
    uint32_t to_type;
    bool convert; /* rewritten (deltas or a new type) */
    int n_deltas;
    uint64_t out_bytes;
    uint64_t scratch_off;
};

int lora_merge(const char *base_path, const struct lora_merge_input *adapters, int n_adapters,
               const char *out_path, const struct lora_merge_params *p,
               struct lora_merge_stats *stats, struct hr_err *err)
{
    struct gguf_file *f = NULL;
    struct lora_file **lf = NULL;
    struct gguf_writer *w = NULL;
    struct pool *pool = NULL;
    struct plan *plan = NULL;
    struct delta *deltas = NULL;
    float *f32 = NULL, *tmp = NULL;
    void *obuf = NULL, *map = MAP_FAILED;
    char *scratch_path = NULL;
    size_t map_size = 0;
    int fd = -1, rc;
    struct lora_merge_stats st = {0};
    struct stat sin, sout;

    hr_err_clear(err);
    if (!base_path || !out_path || !p || n_adapters < 1 || !adapters)
        return hr_err_set(err, -EINVAL, -1, "lora_merge: missing paths, adapters or parameters");
    if (p->n_threads < 1 || p->n_threads > 1024)
        return hr_err_set(err, -EINVAL, -1, "thread count %d is not in [1, 1024]", p->n_threads);
    if (p->ftype >= 0 && quantize_ftype_type(p->ftype) < 0)
        return hr_err_set(err, -EINVAL, -1, "unknown quantization type %d", p->ftype);
    if (stat(base_path, &sin) == 0 && stat(out_path, &sout) == 0 && sin.st_dev == sout.st_dev &&
        sin.st_ino == sout.st_ino)
        return hr_err_set(err, -EEXIST, -1, "'%s' and '%s' are the same file", base_path, out_path);
    if ((rc = gguf_open(base_path, GGUF_DEFAULT_BUDGET, &f, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return hr_err_set(err, rc, err ? err->offset : -1, "%s: %s", base_path, msg);
    }
    struct quantize_model_info info;
    if (p->ftype >= 0 && (rc = quantize_model_info_init(&info, f, err)) < 0) goto fail;
    rc = -ENOMEM;
    if (!(lf = calloc((size_t)n_adapters, sizeof *lf)) ||
        !(plan = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *plan)) ||
        !(deltas = calloc((size_t)n_adapters, sizeof *deltas)))
        goto fail;
    for (int i = 0; i < n_adapters; i++)
        if ((rc = lora_file_open(f, adapters[i].path, &lf[i], err)) < 0) goto fail;

    /* plan every tensor before any work: bad input is refused at once */
    uint64_t max_elems = 0, max_out = 0, scratch_size = 0;
    int64_t max_in = 1;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        struct plan *pl = &plan[i];
        for (int a = 0; a < n_adapters; a++)
            for (int k = 0; k < lf[a]->n_pairs; k++)
                pl->n_deltas += lf[a]->pairs[k].base == t && adapters[a].scale != 0.0f;
        pl->to_type = t->type;
        if (p->ftype >= 0) {
            int nt = quantize_choose_type(&info, t->name, t->ne, p->ftype);
            if (nt >= 0) pl->to_type = (uint32_t)nt;
        }
        pl->convert = pl->n_deltas > 0 || pl->to_type != t->type;
        if (!pl->convert) {
            pl->out_bytes = t->nbytes;
            continue;
        }
        const struct quant_kernels *kf = quant_kernels_ref(t->type);
        const struct quant_kernels *kt = quant_kernels_ref(pl->to_type);
        if (!kf || !kf->to_float || !kt || (!kt->from_float && pl->to_type != HR_TYPE_F32)) {
            rc = hr_err_set(err, -ENOTSUP, (int64_t)t->info_offset,
                            "%s: tensor %s: cannot convert %s to %s", base_path, t->name,
                            hr_type_name(t->type) ? hr_type_name(t->type) : "?",
                            hr_type_name(pl->to_type) ? hr_type_name(pl->to_type) : "?");
            goto fail;
        }
        uint64_t elems =
            (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        pl->out_bytes = (uint64_t)hr_row_size(pl->to_type, t->ne[0]) * (elems / (uint64_t)t->ne[0]);
        pl->scratch_off = scratch_size;
        scratch_size += (pl->out_bytes + 63) & ~(uint64_t)63;
        if (elems > max_elems) max_elems = elems;
        if (pl->out_bytes > max_out) max_out = pl->out_bytes;
        if (t->ne[0] > max_in) max_in = t->ne[0];
    }
    if (max_elems > SIZE_MAX / sizeof(float) || scratch_size > SIZE_MAX) {
        rc = hr_err_set(err, -EFBIG, -1, "the model is too large for this machine");
        goto fail;
    }
    if ((max_elems && !(f32 = malloc((size_t)max_elems * sizeof(float)))) ||
        (max_out && !(obuf = malloc((size_t)max_out))) ||
        !(tmp = malloc((size_t)p->n_threads * (size_t)max_in * sizeof(float)))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory (%llu MiB for one tensor)",
                        (unsigned long long)((max_elems * 4 + max_out) >> 20));
        goto fail;
    }

    /* the scratch file: next to the output, unlinked at once (quantize.c) */
    size_t olen = strlen(out_path);
    if (!(scratch_path = malloc(olen + 20))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    memcpy(scratch_path, out_path, olen);
    memcpy(scratch_path + olen, ".scratch.XXXXXX", 16);
    if ((fd = mkostemp(scratch_path, O_CLOEXEC)) < 0) {
        rc = hr_err_set(err, -errno, -1, "cannot create a scratch file next to '%s': %s", out_path,
                        strerror(errno));
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
        int nd = 0;
        if (pl->convert) {
            for (int a = 0; a < n_adapters; a++)
                for (int k = 0; k < lf[a]->n_pairs; k++) {
                    const struct lora_file_pair *lp = &lf[a]->pairs[k];
                    if (lp->base != t || adapters[a].scale == 0.0f) continue;
                    struct delta *dl = &deltas[nd++];
                    *dl =
                        (struct delta){lp, lora_eff_scale(adapters[a].scale, lf[a]->alpha, lp->r)};
                    if (widen(lp->a, &dl->a) < 0 || widen(lp->b, &dl->b) < 0) {
                        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
                        goto fail;
                    }
                }
            int64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
            struct job j = {
                .t = t,
                .to_type = pl->to_type,
                .f32 = f32,
                .dst = obuf,
                .deltas = deltas,
                .n_deltas = nd,
                .tmp = tmp,
                .n_rows = n_rows,
                .n_in = t->ne[0],
            };
            j.n_chunks = n_rows < 8 * (int64_t)p->n_threads ? n_rows : 8 * (int64_t)p->n_threads;
            if (n_rows > 0) pool_run(pool, run_chunk, &j, j.n_chunks);
            for (int d = 0; d < nd; d++) {
                free(deltas[d].a);
                free(deltas[d].b);
                deltas[d].a = deltas[d].b = NULL;
            }
            static const uint8_t zeros[64];
            uint64_t pad = ((pl->out_bytes + 63) & ~(uint64_t)63) - pl->out_bytes;
            if ((rc = write_all(fd, obuf, (size_t)pl->out_bytes)) < 0 ||
                (rc = write_all(fd, zeros, (size_t)pad)) < 0) {
                rc = hr_err_set(err, rc, -1, "cannot write the scratch file next to '%s': %s",
                                out_path, strerror(-rc));
                goto fail;
            }
            st.n_merged += nd > 0;
        }
        if (p->progress) {
            struct lora_merge_progress pr = {
                .index = (int)i + 1,
                .count = (int)f->n_tensors,
                .name = t->name,
                .from_type = t->type,
                .to_type = pl->to_type,
                .n_deltas = nd,
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
    bool remix = p->ftype >= 0;
    if (!(w = gguf_writer_new())) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    if ((rc = gguf_writer_copy_kv(w, f, skip_key, &remix)) < 0 ||
        (remix &&
         ((rc = gguf_writer_add_u32(w, "general.quantization_version", GGML_QNT_VERSION)) < 0 ||
          (rc = gguf_writer_add_u32(w, "general.file_type", (uint32_t)p->ftype)) < 0))) {
        rc = hr_err_set(err, rc, -1, "cannot copy the metadata: %s", strerror(-rc));
        goto fail;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const void *data = plan[i].convert ? (const uint8_t *)map + plan[i].scratch_off : t->data;
        if (plan[i].out_bytes == 0) data = NULL;
        if ((rc = gguf_writer_add_tensor(w, t->name, plan[i].to_type, n_dims_of(t->ne), t->ne,
                                         data)) < 0) {
            rc = hr_err_set(err, rc, -1, "tensor %s: cannot add it to the output", t->name);
            goto fail;
        }
    }
    if ((rc = gguf_writer_write(w, out_path, err)) < 0) goto fail;
    if (stat(out_path, &sout) == 0) st.out_file_bytes = (uint64_t)sout.st_size;
    if (stats) *stats = st;
    rc = 0;
fail:
    gguf_writer_free(w);
    if (map != MAP_FAILED) munmap(map, map_size);
    if (fd >= 0) close(fd);
    pool_free(pool);
    free(scratch_path);
    free(obuf);
    free(f32);
    free(tmp);
    free(plan);
    for (int d = 0; deltas && d < n_adapters; d++) { /* those of a tensor cut short */
        free(deltas[d].a);
        free(deltas[d].b);
    }
    free(deltas);
    if (lf)
        for (int i = 0; i < n_adapters; i++)
            lora_file_free(lf[i]);
    free(lf);
    gguf_free(f);
    return rc;
}
