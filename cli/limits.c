/*
 * limits.c — measuring the machine's limits (see limits.h).
 *
 * Each measurement runs the same kernel on every thread, started together
 * by one flag; the time is from the earliest start to the latest end, and
 * the best of a few runs is kept (interference from other processes only
 * ever makes a run slower).
 *
 *  - read bandwidth: each thread sums its share of a 2 GiB buffer with
 *    256-bit loads into independent accumulators (enough loads in flight
 *    to saturate the memory system; the sums keep the loads alive);
 *  - int8 peak: 16 independent accumulators of vpdpbusd (AVX-512 VNNI),
 *    else pmaddubsw + pmaddwd + paddd (AVX2), over operands in registers;
 *  - fp32 peak: 16 independent FMA chains (AVX-512, else AVX2+FMA);
 *  - AMX int8 peak (when hr_isa_detect() says AMX: the CPU has AMX-INT8 and
 *    Linux granted the tile state): 4 independent chains of TDPBSSD, each
 *    accumulating 16 × 16 int32 from tiles of K = 64 bytes held in tile
 *    registers (2 A × 2 B, as a real 2 × 2-blocked kernel uses them).
 *
 * The SIMD kernels are compiled with function target attributes and chosen
 * at run time with __builtin_cpu_supports (AMX: hr_isa_detect), so this
 * file needs no special flags and the binary runs on any x86-64 (and
 * elsewhere, scalar).
 */
#include "limits.h"

#include "arch/arch.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define X86 1
#include <immintrin.h>
#else
#define X86 0
#endif

#define DEFAULT_BUFFER ((size_t)2 << 30)

/* ---- kernels ------------------------------------------------------------------ */

/* Operands the compiler cannot see through. */
static volatile int8_t op_a = 3, op_b = -2;
static volatile float op_x = 0.9999f, op_y = 1e-4f;

static uint64_t read_scalar(const uint8_t *p, size_t n)
{
    const uint64_t *v = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

/* ops = multiply-adds × 2 */
static double int8_scalar(int64_t iters, uint64_t *sink)
{
    uint32_t acc[16] = {0}; /* unsigned: wraps without undefined behaviour */
    uint32_t a = (uint32_t)op_a, b = (uint32_t)op_b;
    for (int64_t i = 0; i < iters; i++) /* not affine in i: no closed form */
        for (int k = 0; k < 16; k++)
            acc[k] = acc[k] * a + (b + k);
    uint32_t s = 0;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    *sink += s;
    return (double)iters * 16 * 2;
}

static double fp32_scalar(int64_t iters, uint64_t *sink)
{
    float acc[16];
    float x = op_x, y = op_y;
    for (int k = 0; k < 16; k++)
        acc[k] = (float)k;
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < 16; k++)
            acc[k] = acc[k] * x + y;
    float s = 0;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    *sink += (uint64_t)(int64_t)s;
    return (double)iters * 16 * 2;
}

#if X86
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n)
{
    const __m256i *v = (const __m256i *)p;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t k = n / 32;
    for (size_t i = 0; i + 8 <= k; i += 8) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(v + i));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(v + i + 1));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(v + i + 2));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(v + i + 3));
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(v + i + 4));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(v + i + 5));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(v + i + 6));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(v + i + 7));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}

#define REP16(X)                                                                           \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

__attribute__((target("avx512f,avx512vnni"))) static double int8_avx512vnni(int64_t iters,
                                                                             uint64_t *sink)
{
    const __m512i a = _mm512_set1_epi8(op_a), b = _mm512_set1_epi8(op_b);
#define DECL(k) __m512i acc##k = _mm512_set1_epi32(k);
    REP16(DECL)
#undef DECL
    for (int64_t i = 0; i < iters; i++) {
#define STEP(k) acc##k = _mm512_dpbusd_epi32(acc##k, a, b);
        REP16(STEP)
#undef STEP
    }
    __m512i s = _mm512_setzero_si512();
#define SUM(k) s = _mm512_add_epi32(s, acc##k);
    REP16(SUM)
#undef SUM
    uint32_t out[16]; /* the sums wrap: add them unsigned */
    _mm512_storeu_si512(out, s);
    for (int k = 0; k < 16; k++)
        *sink += out[k];
    return (double)iters * 16 * 64 * 2;
}

__attribute__((target("avx2"))) static double int8_avx2(int64_t iters, uint64_t *sink)
{
    const __m256i a = _mm256_set1_epi8(op_a), b = _mm256_set1_epi8(op_b);
    const __m256i ones = _mm256_set1_epi16(1);
#define DECL(k) __m256i acc##k = _mm256_set1_epi32(k);
    REP16(DECL)
#undef DECL
    for (int64_t i = 0; i < iters; i++) {
#define STEP(k)                                                                            \
    acc##k = _mm256_add_epi32(acc##k, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
        REP16(STEP)
#undef STEP
    }
    __m256i s = _mm256_setzero_si256();
#define SUM(k) s = _mm256_add_epi32(s, acc##k);
    REP16(SUM)
#undef SUM
    uint32_t out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    for (int k = 0; k < 8; k++)
        *sink += out[k];
    return (double)iters * 16 * 32 * 2;
}

__attribute__((target("avx512f"))) static double fp32_avx512(int64_t iters, uint64_t *sink)
{
    const __m512 x = _mm512_set1_ps(op_x), y = _mm512_set1_ps(op_y);
#define DECL(k) __m512 acc##k = _mm512_set1_ps((float)k);
    REP16(DECL)
#undef DECL
    for (int64_t i = 0; i < iters; i++) {
#define STEP(k) acc##k = _mm512_fmadd_ps(acc##k, x, y);
        REP16(STEP)
#undef STEP
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(k) s = _mm512_add_ps(s, acc##k);
    REP16(SUM)
#undef SUM
    *sink += (uint64_t)(int64_t)_mm512_reduce_add_ps(s);
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double fp32_avx2(int64_t iters, uint64_t *sink)
{
    const __m256 x = _mm256_set1_ps(op_x), y = _mm256_set1_ps(op_y);
#define DECL(k) __m256 acc##k = _mm256_set1_ps((float)k);
    REP16(DECL)
#undef DECL
    for (int64_t i = 0; i < iters; i++) {
#define STEP(k) acc##k = _mm256_fmadd_ps(acc##k, x, y);
        REP16(STEP)
#undef STEP
    }
    __m256 s = _mm256_setzero_ps();
#define SUM(k) s = _mm256_add_ps(s, acc##k);
    REP16(SUM)
#undef SUM
    float out[8];
    _mm256_storeu_ps(out, s);
    for (int k = 0; k < 8; k++)
        *sink += (uint64_t)(int64_t)out[k];
    return (double)iters * 16 * 8 * 2;
}
#undef REP16

/* The 64-byte tile configuration (palette 1), as LDTILECFG reads it. */
struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* gcc's ldtilecfg/sttilecfg/tileloadd asm declares less memory than the
 * instructions touch: fence the buffers they read or write for the compiler */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* tmm0-3: C (16 rows × 16 int32), tmm4/5: A (16 rows × 64 int8), tmm6/7: B
 * (16 rows × 64 int8 = K/4 × 4·16). Each TDPBSSD is 16·16·64 multiply-adds.
 * The thread's tile configuration is saved first and put back after (the
 * engine's AMX kernels keep theirs loaded per thread, core/arch/x86/
 * amx_legacy.c, and the caller is one of the threads that measure); a
 * thread that had none releases the tiles (TILERELEASE), returning the tile
 * state to its initial, unsaved condition. */
__attribute__((target("amx-tile,amx-int8"))) static double int8_amx(int64_t iters, uint64_t *sink)
{
    _Alignas(64) struct tilecfg saved, cfg = {.palette = 1};
    _Alignas(64) int8_t a[16 * 64], b[16 * 64];
    _Alignas(64) int32_t c[16 * 16];
    memset(a, op_a, sizeof a);
    memset(b, op_b, sizeof b);
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    MEMORY_BARRIER();
    _tile_storeconfig(&saved); /* all zero when the thread had no configuration */
    MEMORY_BARRIER();
    _tile_loadconfig(&cfg);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
#define SINK(t)                                                                            \
    _tile_stored(t, c, 64);                                                                \
    for (int k = 0; k < 16 * 16; k++)                                                      \
        *sink += (uint32_t)c[k];
    SINK(0) SINK(1) SINK(2) SINK(3)
#undef SINK
    if (saved.palette)
        _tile_loadconfig(&saved);
    else
        _tile_release();
    return (double)iters * 4 * 16 * 16 * 64 * 2;
}
#endif

bool cli_limits_have_amx(void)
{
#if X86
    return hr_isa_detect() == HR_ISA_AMX; /* requests the tile state from Linux */
#else
    return false; /* (on aarch64 the levels above HR_ISA_AMX are NEON's) */
#endif
}

typedef double (*peak_fn)(int64_t iters, uint64_t *sink);
typedef uint64_t (*read_fn)(const uint8_t *p, size_t n);

static peak_fn pick_int8(const char **name)
{
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) {
        *name = "avx512-vnni";
        return int8_avx512vnni;
    }
    if (__builtin_cpu_supports("avx2")) {
        *name = "avx2";
        return int8_avx2;
    }
#endif
    *name = "scalar";
    return int8_scalar;
}

static peak_fn pick_fp32(const char **name)
{
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *name = "avx512";
        return fp32_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "avx2";
        return fp32_avx2;
    }
#endif
    *name = "scalar";
    return fp32_scalar;
}

static read_fn pick_read(const char **name)
{
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        *name = "avx2";
        return read_avx2;
    }
#endif
    *name = "scalar";
    return read_scalar;
}

/* ---- running on n threads ------------------------------------------------------- */

enum task { TASK_TOUCH, TASK_READ, TASK_PEAK };

struct team {
    int n;
    atomic_int go; /* 0: wait, 1: run, -1: give up */
    enum task task;
    uint8_t *buf;
    size_t len;
    read_fn read;
    peak_fn peak;
    int64_t iters;
};

struct worker {
    struct team *team;
    int id;
    double t0, t1;
    double ops; /* bytes read or operations done */
    uint64_t sink;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct team *t = w->team;
    /* 4 KiB-aligned share of the buffer */
    size_t share = (t->len / (size_t)t->n) & ~(size_t)4095;
    uint8_t *mine = t->buf + share * (size_t)w->id;
    int go;
    while ((go = atomic_load_explicit(&t->go, memory_order_acquire)) == 0)
        ; /* spin: a start within microseconds of the others */
    if (go < 0)
        return NULL;
    w->t0 = cli_now();
    switch (t->task) {
    case TASK_TOUCH:
        memset(mine, 1 + w->id, share);
        w->ops = (double)share;
        break;
    case TASK_READ:
        w->sink += t->read(mine, share);
        w->ops = (double)share;
        break;
    case TASK_PEAK:
        w->ops = t->peak(t->iters, &w->sink);
        break;
    }
    w->t1 = cli_now();
    return NULL;
}

/* Runs the team's task on every thread (the caller is worker 0); returns
 * operations per second, or a negative errno. */
static double run_team(struct team *t)
{
    pthread_t tid[256];
    struct worker w[256];
    if (t->n < 1 || t->n > 256)
        return -EINVAL;
    atomic_store(&t->go, 0);
    for (int i = 0; i < t->n; i++)
        w[i] = (struct worker){.team = t, .id = i};
    for (int i = 1; i < t->n; i++)
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0) {
            atomic_store_explicit(&t->go, -1, memory_order_release);
            for (int k = 1; k < i; k++)
                pthread_join(tid[k], NULL);
            return -EAGAIN;
        }
    atomic_store_explicit(&t->go, 1, memory_order_release);
    worker_main(&w[0]);
    for (int i = 1; i < t->n; i++)
        pthread_join(tid[i], NULL);
    double t0 = w[0].t0, t1 = w[0].t1, ops = 0;
    for (int i = 0; i < t->n; i++) {
        t0 = w[i].t0 < t0 ? w[i].t0 : t0;
        t1 = w[i].t1 > t1 ? w[i].t1 : t1;
        ops += w[i].ops;
    }
    return ops / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
}

/* Best rate of a peak kernel over five runs of ~0.15 s. */
static double peak_rate(int threads, peak_fn fn)
{
    uint64_t sink = 0;
    const double per_iter = fn(1, &sink); /* operations per iteration and thread */
    struct team t = {.n = threads, .task = TASK_PEAK, .peak = fn, .iters = 1 << 12};
    /* calibrate: grow the run until it takes >= 20 ms (thread start-up no
     * longer matters), then size it for ~0.15 s */
    for (;;) {
        double rate = run_team(&t);
        if (rate <= 0)
            return rate;
        double secs = per_iter * (double)t.iters * threads / rate;
        if (secs >= 0.02 || t.iters >= (int64_t)1 << 40) {
            double iters = (double)t.iters * 0.15 / secs;
            t.iters = iters < 1 ? 1 : (int64_t)iters;
            break;
        }
        t.iters *= 4;
    }
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double x = run_team(&t);
        if (x < 0)
            return x;
        best = x > best ? x : best;
    }
    return best;
}

static size_t buffer_size(bool *overridden)
{
    const char *e = getenv("HEARTH_LIMITS_BUFFER_MIB");
    *overridden = false;
    if (e && *e) {
        char *end;
        long mib = strtol(e, &end, 10);
        if (!*end && mib >= 1 && mib <= (1 << 20)) {
            *overridden = true;
            return (size_t)mib << 20;
        }
    }
    return DEFAULT_BUFFER;
}

int cli_limits_measure(int threads, struct cli_limits *out)
{
    struct cli_limits l = {.threads = threads};
    const char *name;
    bool overridden;
    size_t len = buffer_size(&overridden);
    if (threads < 1 || threads > 256)
        return -EINVAL;

    peak_fn fi = pick_int8(&name);
    snprintf(l.int8_kernel, sizeof l.int8_kernel, "%s", name);
    double r = peak_rate(threads, fi);
    if (r < 0)
        return (int)r;
    l.int8_gops = r * 1e-9;
    peak_fn ff = pick_fp32(&name);
    snprintf(l.fp32_kernel, sizeof l.fp32_kernel, "%s", name);
    if ((r = peak_rate(threads, ff)) < 0)
        return (int)r;
    l.fp32_gflops = r * 1e-9;
#if X86
    if (cli_limits_have_amx()) {
        if ((r = peak_rate(threads, int8_amx)) < 0)
            return (int)r;
        l.amx_int8_gops = r * 1e-9;
    }
#endif

    read_fn rf = pick_read(&name);
    snprintf(l.read_kernel, sizeof l.read_kernel, "%s", name);
    uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -ENOMEM;
    /* no MADV_HUGEPAGE: faulting in 2 GiB of huge pages takes seconds in a
     * VM and gains nothing measurable for a sequential read */
    struct team t = {.n = threads, .task = TASK_TOUCH, .buf = buf, .len = len, .read = rf};
    double best = run_team(&t); /* fault the pages in, from the threads that read them */
    t.task = TASK_READ;
    for (int rep = 0; best >= 0 && rep < 4; rep++) {
        double x = run_team(&t);
        best = x < 0 ? x : rep == 0 || x > best ? x : best;
    }
    munmap(buf, len);
    if (best < 0)
        return (int)best;
    l.read_gbs = best * 1e-9;
    *out = l;
    return 0;
}

/* ---- CPU model and the cache ------------------------------------------------------ */

void cli_cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (!v)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        snprintf(buf, cap, "%s", v);
        break;
    }
    fclose(f);
}

int cli_limits_cache_path(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg == '/')
        n = snprintf(buf, cap, "%s/hearth/limits.json", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.cache/hearth/limits.json", home);
    else
        return -ENOENT;
    return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

/* JSON string contents with " and \ escaped (the CPU model string). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[n++] = '\\';
        out[n++] = c < 0x20 ? ' ' : (char)c;
    }
    out[n] = '\0';
}

static void format_entry(const char *cpu, const struct cli_limits *l, char *out, size_t cap)
{
    char esc[512];
    json_escape(cpu, esc, sizeof esc);
    snprintf(out, cap,
             "{\"cpu\": \"%s\", \"threads\": %d, \"read_gbs\": %.3f, \"read_kernel\": \"%s\", "
             "\"int8_gops\": %.3f, \"int8_kernel\": \"%s\", \"fp32_gflops\": %.3f, "
             "\"fp32_kernel\": \"%s\", \"amx_int8_gops\": %.3f}",
             esc, l->threads, l->read_gbs, l->read_kernel, l->int8_gops, l->int8_kernel,
             l->fp32_gflops, l->fp32_kernel, l->amx_int8_gops);
}

/* The value after "key": in a line written by format_entry. */
static const char *field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? p + strlen(pat) : NULL;
}

static bool field_str(const char *line, const char *key, char *out, size_t cap)
{
    const char *p = field(line, key);
    if (!p || *p != '"')
        return false;
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 < cap)
            out[n++] = *p;
    }
    out[n] = '\0';
    return *p == '"';
}

static bool field_num(const char *line, const char *key, double *out)
{
    const char *p = field(line, key);
    if (!p)
        return false;
    char *end;
    *out = strtod(p, &end);
    return end != p;
}

enum entry { ENTRY_OTHER, ENTRY_STALE, ENTRY_OK };

/* Parses one cache line: ENTRY_OTHER when it is not an entry for (cpu,
 * threads), ENTRY_STALE when it is one but must be measured again (it
 * disagrees with this machine about AMX: written before AMX was measured,
 * or under a kernel that granted the tile state when this one does not, or
 * the reverse), ENTRY_OK when *l holds it. */
static enum entry parse_entry(const char *line, const char *cpu, int threads, bool amx,
                              struct cli_limits *l)
{
    char c[512];
    double th, bw, i8, f32, ax = 0;
    if (!field_str(line, "cpu", c, sizeof c) || strcmp(c, cpu) != 0 ||
        !field_num(line, "threads", &th) || (int)th != threads)
        return ENTRY_OTHER;
    if (!field_num(line, "read_gbs", &bw) || !field_num(line, "int8_gops", &i8) ||
        !field_num(line, "fp32_gflops", &f32) || !(bw > 0) || !(i8 > 0) || !(f32 > 0))
        return ENTRY_STALE;
    if (field(line, "amx_int8_gops") && (!field_num(line, "amx_int8_gops", &ax) || !(ax >= 0)))
        return ENTRY_STALE;
    if ((ax > 0) != amx)
        return ENTRY_STALE;
    *l = (struct cli_limits){.threads = threads, .read_gbs = bw, .int8_gops = i8,
                             .fp32_gflops = f32, .amx_int8_gops = ax};
    if (!field_str(line, "int8_kernel", l->int8_kernel, sizeof l->int8_kernel))
        snprintf(l->int8_kernel, sizeof l->int8_kernel, "?");
    if (!field_str(line, "fp32_kernel", l->fp32_kernel, sizeof l->fp32_kernel))
        snprintf(l->fp32_kernel, sizeof l->fp32_kernel, "?");
    if (!field_str(line, "read_kernel", l->read_kernel, sizeof l->read_kernel))
        snprintf(l->read_kernel, sizeof l->read_kernel, "?");
    return ENTRY_OK;
}

static bool cache_lookup(const char *path, const char *cpu, int threads, struct cli_limits *l)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    bool amx = cli_limits_have_amx();
    while (!found && fgets(line, sizeof line, f))
        found = parse_entry(line, cpu, threads, amx, l) == ENTRY_OK;
    fclose(f);
    return found;
}

static int mkdir_p(char *dir)
{
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            int rc = mkdir(dir, 0755);
            *p = '/';
            if (rc < 0 && errno != EEXIST)
                return -errno;
        }
    return mkdir(dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Rewrites the cache with every other entry kept and this one replaced. */
static int cache_store(const char *path, const char *cpu, const struct cli_limits *l)
{
    char dir[4096], tmp[4200], line[2048], mine[2048];
    struct cli_limits other;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -EINVAL;
    *slash = '\0';
    int rc = mkdir_p(dir);
    if (rc < 0)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    FILE *out = fdopen(fd, "w");
    if (!out) {
        rc = -errno;
        close(fd);
        unlink(tmp);
        return rc;
    }
    fputs("[\n", out);
    bool first = true;
    FILE *in = fopen(path, "r");
    while (in && fgets(line, sizeof line, in)) {
        if (!strchr(line, '{') || parse_entry(line, cpu, l->threads, false, &other) != ENTRY_OTHER)
            continue; /* brackets, blank lines, the entry being replaced (stale or not) */
        line[strcspn(line, "\n")] = '\0';
        size_t n = strlen(line);
        if (n && line[n - 1] == ',')
            line[n - 1] = '\0';
        fprintf(out, "%s%s", first ? "" : ",\n", line);
        first = false;
    }
    if (in)
        fclose(in);
    format_entry(cpu, l, mine, sizeof mine);
    fprintf(out, "%s%s\n]\n", first ? "" : ",\n", mine);
    if (fflush(out) != 0 || fsync(fd) != 0)
        rc = -errno;
    if (fclose(out) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int cli_limits_get(int threads, bool remeasure, bool verbose, struct cli_limits *out,
                   bool *from_cache)
{
    char cpu[256], path[4096];
    bool overridden;
    buffer_size(&overridden);
    cli_cpu_model(cpu, sizeof cpu);
    bool have_path = !overridden && cli_limits_cache_path(path, sizeof path) == 0;
    if (from_cache)
        *from_cache = false;
    if (have_path && !remeasure && cache_lookup(path, cpu, threads, out)) {
        if (from_cache)
            *from_cache = true;
        return 0;
    }
    if (verbose)
        fprintf(stderr, "hearth: measuring this machine's limits with %d thread%s (a few s)\n",
                threads, threads == 1 ? "" : "s");
    int rc = cli_limits_measure(threads, out);
    if (rc < 0)
        return rc;
    if (have_path && cache_store(path, cpu, out) < 0 && verbose)
        fprintf(stderr, "hearth: note: cannot write %s; limits not cached\n", path);
    return 0;
}
