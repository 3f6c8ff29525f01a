/*
 * limits.h — what this machine can do at most, measured: DRAM read
 * bandwidth, int8 dot-product peak (vector units) and fp32 FMA peak, and on
 * a CPU with AMX-INT8 the int8 peak of its matrix tiles, for a given number
 * of threads. `hearth bench` divides its speeds by these to say how close the
 * engine gets to the hardware (token generation is bound by reading the
 * weights, prompt processing by integer or float arithmetic).
 *
 * Units: 1 GB = 1e9 bytes; one multiply-add counts as 2 operations (a VNNI
 * vpdpbusd on 512 bits is 64 multiply-adds = 128 ops, an FMA on 16 floats is
 * 32 flops, an AMX TDPBSSD on 16 × 16 int32 with K = 64 bytes is 16384
 * multiply-adds = 32768 ops), as llama.cpp's and vendors' peak figures count
 * them.
 *
 * int8_gops is the vector (VNNI) peak, the yardstick of prompt processing
 * (issue 3) and the figure comparable across x86 machines; amx_int8_gops is
 * what the tiles could do, several times more, and is 0 when the CPU has no
 * AMX-INT8 or Linux does not grant the tile state (hr_isa_detect() below
 * HR_ISA_AMX).
 *
 * Measuring takes a few seconds and maps a 2 GiB buffer (far larger than
 * any L3 cache, so reads come from DRAM). Results are cached in
 * $XDG_CACHE_HOME/hearth/limits.json (else ~/.cache/hearth/limits.json),
 * one JSON object per line in a JSON array, keyed by the CPU model string
 * and the thread count. Every entry carries "amx_int8_gops" (0 without
 * AMX); an entry that disagrees with this machine about AMX (one written
 * before AMX was measured lacks the key: 0) is stale and measured again.
 * HEARTH_LIMITS_BUFFER_MIB overrides the buffer size (tests); such
 * measurements are neither read from nor written to the cache.
 */
#ifndef HEARTH_CLI_LIMITS_H
#define HEARTH_CLI_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

struct cli_limits {
    int threads;
    double read_gbs;      /* DRAM read bandwidth, GB/s */
    double int8_gops;     /* int8 multiply-add peak, GOP/s */
    double fp32_gflops;   /* fp32 FMA peak, GFLOP/s */
    double amx_int8_gops; /* AMX-INT8 tile peak, GOP/s; 0: no AMX */
    char int8_kernel[16]; /* "avx512-vnni", "avx2", "scalar" */
    char fp32_kernel[16]; /* "avx512", "avx2", "scalar" */
    char read_kernel[16]; /* "avx2", "scalar" */
};

/* Measures with `threads` (>= 1) threads. 0, or -ENOMEM when the buffer
 * cannot be mapped, -EAGAIN when threads cannot be started. */
int cli_limits_measure(int threads, struct cli_limits *out);

/* The limits for `threads` from the cache, or measured (and cached) when
 * absent or when `remeasure` is set. verbose: say on stderr when measuring.
 * A cache that cannot be read or written is ignored (the measurement still
 * counts). Returns what cli_limits_measure returns; *from_cache tells which
 * (may be NULL). */
int cli_limits_get(int threads, bool remeasure, bool verbose, struct cli_limits *out,
                   bool *from_cache);

/* Whether this machine has AMX-INT8 tiles that Linux lets the process use
 * (then cli_limits_measure measures amx_int8_gops). */
bool cli_limits_have_amx(void);

/* The CPU model ("model name" of /proc/cpuinfo, else "unknown"). */
void cli_cpu_model(char *buf, size_t cap);

/* Path of the cache file into buf; -ENOENT when neither XDG_CACHE_HOME nor
 * HOME is set. */
int cli_limits_cache_path(char *buf, size_t cap);

#endif
