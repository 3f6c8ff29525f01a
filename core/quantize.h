/*
 * quantize.h — model quantization as llama-quantize does it without an
 * importance matrix (FORMATS.md §2.4, "llama-quantize choices that matter";
 * llama.cpp src/llama-quant.cpp).
 *
 * A quantization "mix" is a llama_ftype (the value stored in
 * general.file_type): it names a default tensor type, and a set of per-tensor
 * rules promotes some tensors (output, attn_v, ffn_down, ...) to more bits and
 * falls back to a block-32 type (or F16) when a row length is not a multiple
 * of the chosen block size. quantize_choose_type() is that decision, on its
 * own, so tools that build models (hearth mkmodel) make the same choices.
 *
 * quantize_model() converts a whole F32/F16/BF16 GGUF file: metadata copied,
 * general.quantization_version = 2 and general.file_type = the mix appended,
 * tensors in input order, each converted with the reference quantizers of
 * quant.h, so the tensor bytes equal llama-quantize's. It does no I/O policy:
 * no printing, the caller gets a progress callback and a struct hr_err.
 */
#ifndef HEARTH_CORE_QUANTIZE_H
#define HEARTH_CORE_QUANTIZE_H

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;

/* llama.cpp's enum llama_ftype (include/llama.h), the mixes hearth writes. */
enum quantize_ftype {
    QUANTIZE_FTYPE_F32 = 0,
    QUANTIZE_FTYPE_F16 = 1,
    QUANTIZE_FTYPE_Q4_0 = 2,
    QUANTIZE_FTYPE_Q4_1 = 3,
    QUANTIZE_FTYPE_Q8_0 = 7,
    QUANTIZE_FTYPE_Q5_0 = 8,
    QUANTIZE_FTYPE_Q5_1 = 9,
    QUANTIZE_FTYPE_Q2_K = 10,
    QUANTIZE_FTYPE_Q3_K_S = 11,
    QUANTIZE_FTYPE_Q3_K_M = 12,
    QUANTIZE_FTYPE_Q3_K_L = 13,
    QUANTIZE_FTYPE_Q4_K_S = 14,
    QUANTIZE_FTYPE_Q4_K_M = 15,
    QUANTIZE_FTYPE_Q5_K_S = 16,
    QUANTIZE_FTYPE_Q5_K_M = 17,
    QUANTIZE_FTYPE_Q6_K = 18,
    QUANTIZE_FTYPE_BF16 = 32,
};

/* The mix named `name` in llama.cpp's spelling ("q4_k_m", "Q8_0", "bf16";
 * case-insensitive), or -EINVAL. */
int quantize_ftype_from_name(const char *name);

/* "Q4_K_M", "F16", ... or NULL for a value that is not a supported mix.
 * Borrowed, static. */
const char *quantize_ftype_name(int ftype);

/* The mix's default tensor type (enum hr_type), or -EINVAL. */
int quantize_ftype_type(int ftype);

/* What the per-tensor rules need to know about the model. Fill it from a
 * file with quantize_model_info_init, or by hand (tools building a model). */
struct quantize_model_info {
    int n_layer;    /* {arch}.block_count */
    int n_head;     /* {arch}.attention.head_count (layer 0 if per layer) */
    int n_head_kv;  /* {arch}.attention.head_count_kv (default n_head) */
    int n_expert;   /* {arch}.expert_count (0: dense) */
    int n_attn_v;   /* tensors whose names contain attn_v.weight,
                       attn_qkv.weight or attn_kv_b.weight */
    bool has_output; /* an "output.weight" exists (else token_embd.weight is
                        tied to the output and treated like it) */
    bool falcon;     /* general.architecture == "falcon" */
    bool type_70b;   /* llama with 80 layers and grouped-query attention */
    /* Optional, borrowed: the model's tensors. llama-quantize counts attn_v
     * and ffn_down tensors in its (layer, name) order and uses that rank as
     * "the layer"; with `tensors` the rank is computed exactly, without it
     * the layer number in the name (blk.N.) is used, which is the same for
     * every model whose layers 0..n_layer-1 each have one attn_v and one
     * ffn_down (llama, qwen2, qwen3, ...). */
    const struct gguf_file *tensors;
};

/* Reads the fields above from a parsed GGUF file (tensors = f, borrowed:
 * keep f alive while the info is used). -EINVAL with err set when
 * general.architecture or {arch}.block_count is missing or malformed. */
int quantize_model_info_init(struct quantize_model_info *info, const struct gguf_file *f,
                             struct hr_err *err);

/* Returned by quantize_choose_type for tensors llama-quantize copies as they
 * are (names not ending in "weight", 1-D tensors, norms, ...). */
#define QUANTIZE_KEEP (-1)

/* The type (enum hr_type) tensor `name` of shape ne (absent dims 1) gets in
 * mix `ftype`, exactly as llama-quantize chooses without an importance
 * matrix, including the fallbacks for row lengths that are not a multiple of
 * the block size (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0, then F16). QUANTIZE_KEEP: the tensor is not converted.
 * -EINVAL: ftype is not a supported mix. */
int quantize_choose_type(const struct quantize_model_info *info, const char *name,
                         const int64_t ne[4], int ftype);

/* Progress of quantize_model, reported once per tensor after it is done. */
struct quantize_progress {
    int index;          /* 1-based */
    int count;          /* number of tensors */
    const char *name;   /* borrowed for the call */
    const int64_t *ne;  /* [4], borrowed for the call */
    uint32_t from_type; /* enum hr_type */
    uint32_t to_type;
    bool fallback;      /* the mix's type did not fit the row length */
    uint64_t in_bytes;  /* tensor size in the input */
    uint64_t out_bytes; /* tensor size in the output */
};

typedef void (*quantize_progress_fn)(void *ud, const struct quantize_progress *p);

struct quantize_params {
    int ftype;                     /* enum quantize_ftype */
    int n_threads;                 /* >= 1 */
    quantize_progress_fn progress; /* optional */
    void *progress_ud;
};

struct quantize_stats {
    uint64_t in_bytes;  /* sum of the input tensor sizes */
    uint64_t out_bytes; /* sum of the output tensor sizes */
    uint64_t out_file_bytes; /* size of the file written */
    int n_tensors;
    int n_converted;    /* tensors whose type changed */
    int n_fallback;     /* tensors that took a fallback type */
};

/* Quantizes the GGUF model at in_path into out_path with mix p->ftype.
 * The input must hold only F32, F16 and BF16 tensors (-ENOTSUP otherwise:
 * re-quantizing a quantized model would compound the error). out_path is
 * written atomically (temporary file + rename) and never left half-written;
 * in_path and out_path must not name the same file.
 * Memory: one tensor in f32 at a time; the converted tensors go to an
 * unlinked scratch file next to out_path until the output is written.
 * Errors (err says which file, tensor or key): -ENOENT/-EACCES/... opening
 * the input, -EINVAL malformed input or bad params, -ENOTSUP quantized or
 * unsupported tensor types, -EEXIST in_path and out_path are the same file,
 * -ENOSPC/-EIO/... writing. *stats (optional) is written on success. */
int quantize_model(const char *in_path, const char *out_path, const struct quantize_params *p,
                   struct quantize_stats *stats, struct hr_err *err);

#endif
