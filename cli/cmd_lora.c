/*
 * cmd_lora.c — `hearth lora`: LoRA adapter files (docs/lora.md).
 *
 *   hearth lora merge BASE ADAPTER[:SCALE]... -o OUT [--type T] [-t THREADS]
 *       fold adapters into a model file (core/lora_merge.c)
 *   hearth lora import DIR -m BASE -o OUT.gguf
 *       convert a PEFT adapter directory to a GGUF adapter (core/lora_import.c)
 *   hearth lora mkadapter -m BASE -o OUT [--rank R] [--alpha A] [--type T]
 *                         [--targets q,k,v,o,gate,up,down,output] [--seed S]
 *       (for benchmarks and tests, not in --help) a random adapter for BASE
 *   hearth lora load FILE [--name N] | list [--json] | unload NAME   [--socket PATH]
 *       the adapters of the running hearthd (socket methods lora.*)
 *
 * and the `--lora FILE[:SCALE]` specs that generate and logits take
 * (cli_lora_parse, cli_lora_load). Results are files; progress on stderr.
 */
#include "cli.h"

#include "client.h"
#include "gguf.h"
#include "lora.h"
#include "quant.h"
#include "quantize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- FILE[:SCALE] ------------------------------------------------------------------ */

void cli_lora_parse(const char *flag, const char *spec, char **path, float *scale)
{
    const char *colon = strrchr(spec, ':');
    *scale = 1.0f;
    size_t n = strlen(spec);
    if (colon && colon[1]) {
        char *end;
        errno = 0;
        double s = strtod(colon + 1, &end);
        if (!errno && !*end && isfinite(s)) { /* else the colon belongs to the path */
            if (fabs(s) > 1e6)
                cli_die(EXIT_USAGE, "%s: scale %g of '%s' is out of range", flag, s, spec);
            *scale = (float)s;
            n = (size_t)(colon - spec);
        }
    }
    if (n == 0) cli_die(EXIT_USAGE, "%s: '%s' names no file", flag, spec);
    *path = strndup(spec, n);
    if (!*path) cli_die(1, "out of memory");
}

struct hr_lora_use *cli_lora_load(struct hr_model *m, char **specs, int n)
{
    struct hr_lora_use *uses = calloc((size_t)(n > 0 ? n : 1), sizeof *uses);
    if (!uses) cli_die(1, "out of memory");
    for (int i = 0; i < n; i++) {
        char *path;
        cli_lora_parse("--lora", specs[i], &path, &uses[i].scale);
        struct hr_err err;
        int rc = hr_lora_load(m, path, &uses[i].lora, &err);
        if (rc < 0) cli_die(1, "%s", err.msg[0] ? err.msg : strerror(-rc));
        struct hr_lora_info info;
        hr_lora_get_info(uses[i].lora, &info);
        fprintf(stderr, "hearth: adapter %s: %d tensors, rank %d, alpha %g, scale %g\n", path,
                info.n_tensors, info.rank, (double)info.alpha, (double)uses[i].scale);
        free(path);
    }
    return uses;
}

void cli_lora_free(struct hr_lora_use *uses, int n)
{
    for (int i = 0; uses && i < n; i++)
        hr_lora_free(uses[i].lora);
    free(uses);
}

/* ---- merge ------------------------------------------------------------------------- */

static void merge_progress(void *ud, const struct lora_merge_progress *p)
{
    (void)ud;
    const char *from = hr_type_name(p->from_type), *to = hr_type_name(p->to_type);
    if (p->n_deltas)
        fprintf(stderr, "[%4d/%4d] %-36s %5s -> %-5s + %d adapter%s\n", p->index, p->count, p->name,
                from, to, p->n_deltas, p->n_deltas > 1 ? "s" : "");
    else if (p->from_type != p->to_type)
        fprintf(stderr, "[%4d/%4d] %-36s %5s -> %-5s\n", p->index, p->count, p->name, from, to);
    else
        fprintf(stderr, "[%4d/%4d] %-36s %5s (kept)\n", p->index, p->count, p->name, from);
}

static void die_err(int rc, const struct hr_err *err)
{
    const char *msg = err->msg[0] ? err->msg : strerror(-rc);
    if (err->offset >= 0) cli_die(1, "%s (at byte %lld)", msg, (long long)err->offset);
    cli_die(1, "%s", msg);
}

static long default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

static int lora_merge_cmd(int argc, char **argv)
{
    const char *base = NULL, *out = NULL, *type = NULL;
    long threads = 0;
    struct lora_merge_input *in = calloc((size_t)argc, sizeof *in);
    int n_in = 0;
    if (!in) cli_die(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--type") ||
            !strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!has_val) cli_die(EXIT_USAGE, "%s: missing value", a);
            const char *v = argv[++i];
            if (a[1] == 'o' || !strcmp(a, "--output"))
                out = v;
            else if (!strcmp(a, "--type"))
                type = v;
            else
                threads = cli_long(a, v, 1, 1024);
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        } else if (!base) {
            base = a;
        } else {
            char *path;
            cli_lora_parse("lora merge", a, &path, &in[n_in].scale);
            in[n_in++].path = path;
        }
    }
    if (!base || n_in == 0 || !out)
        cli_die(EXIT_USAGE,
                "usage: hearth lora merge BASE ADAPTER[:SCALE]... -o OUT [--type T] [-t N]");
    struct lora_merge_params p = {.ftype = -1,
                                  .n_threads = (int)(threads ? threads : default_threads()),
                                  .progress = merge_progress};
    if (type && (p.ftype = quantize_ftype_from_name(type)) < 0)
        cli_die(EXIT_USAGE, "--type: unknown type '%s' (the types of hearth quantize)", type);
    struct lora_merge_stats st;
    struct hr_err err;
    double t0 = cli_now();
    int rc = lora_merge(base, in, n_in, out, &p, &st, &err);
    if (rc < 0) die_err(rc, &err);
    fprintf(stderr,
            "hearth: merged %d adapter%s into %s: %d of %d tensors changed, %.1f MiB, "
            "%.1f s\n",
            n_in, n_in > 1 ? "s" : "", out, st.n_merged, st.n_tensors,
            (double)st.out_file_bytes / (1 << 20), cli_now() - t0);
    for (int i = 0; i < n_in; i++)
        free((char *)in[i].path);
    free(in);
    return 0;
}

/* ---- import ------------------------------------------------------------------------ */

static int lora_import_cmd(int argc, char **argv)
{
    const char *dir = NULL, *base = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "-m") ||
            !strcmp(a, "--model")) {
            if (i + 1 >= argc) cli_die(EXIT_USAGE, "%s: missing value", a);
            if (a[1] == 'o' || !strcmp(a, "--output"))
                out = argv[++i];
            else
                base = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
        } else if (!dir) {
            dir = a;
        } else {
            cli_die(EXIT_USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!dir || !out || !base)
        cli_die(EXIT_USAGE, "usage: hearth lora import DIR -m BASE -o OUT.gguf (BASE: the GGUF "
                            "model the adapter was trained on)");
    struct lora_import_stats st;
    struct hr_err err;
    int rc = lora_import_peft(dir, base, out, &st, &err);
    if (rc < 0) die_err(rc, &err);
    fprintf(stderr, "hearth: wrote %s: %d tensor pairs, rank %d, alpha %g\n", out, st.n_pairs,
            st.rank, (double)st.alpha);
    return 0;
}

/* ---- mkadapter ----------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* A random matrix of `rows` rows of n (f32 values of magnitude `amp`) in
 * `type`; owned. */
static void *random_matrix(uint32_t type, int64_t n, int64_t rows, float amp, uint64_t *seed)
{
    float *f = malloc((size_t)(n * rows) * sizeof *f);
    size_t bytes = hr_row_size(type, n) * (size_t)rows;
    void *q = malloc(bytes);
    if (!f || !q) cli_die(1, "out of memory");
    for (int64_t i = 0; i < n * rows; i++)
        f[i] = amp * rng_uniform(seed);
    if (type == HR_TYPE_F32) {
        memcpy(q, f, bytes);
    } else if (quant_quantize(type, f, q, rows, n) < 0) {
        cli_die(1, "cannot write %s rows of %lld values", hr_type_name(type), (long long)n);
    }
    free(f);
    return q;
}

static int lora_mkadapter_cmd(int argc, char **argv)
{
    const char *base = NULL, *out = NULL, *targets = "q,k,v,o,gate,up,down";
    long rank = 16;
    double alpha = 32;
    uint32_t type = HR_TYPE_F16;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) cli_die(EXIT_USAGE, "%s: missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m"))
            base = v;
        else if (!strcmp(a, "-o"))
            out = v;
        else if (!strcmp(a, "--rank"))
            rank = cli_long(a, v, 1, 4096);
        else if (!strcmp(a, "--alpha"))
            alpha = cli_double(a, v, -1e6, 1e6);
        else if (!strcmp(a, "--targets"))
            targets = v;
        else if (!strcmp(a, "--seed"))
            seed = (unsigned long long)cli_long(a, v, 0, 1L << 62);
        else if (!strcmp(a, "--type")) {
            if (!strcmp(v, "f32"))
                type = HR_TYPE_F32;
            else if (!strcmp(v, "f16"))
                type = HR_TYPE_F16;
            else if (!strcmp(v, "bf16"))
                type = HR_TYPE_BF16;
            else if (!strcmp(v, "q8_0"))
                type = HR_TYPE_Q8_0;
            else
                cli_die(EXIT_USAGE, "--type: '%s' is not f32, f16, bf16 or q8_0", v);
        } else
            cli_die(EXIT_USAGE, "unknown option '%s'", a);
    }
    if (!base || !out)
        cli_die(EXIT_USAGE, "usage: hearth lora mkadapter -m BASE -o OUT [--rank R] [--alpha A] "
                            "[--type f32|f16|bf16|q8_0] [--targets q,k,v,o,gate,up,down,output] "
                            "[--seed S]");
    if (type == HR_TYPE_Q8_0 && rank % 32)
        cli_die(EXIT_USAGE, "--type q8_0 needs a rank that is a multiple of 32");
    struct gguf_file *f;
    struct hr_err err;
    int rc = gguf_open(base, GGUF_DEFAULT_BUDGET, &f, &err);
    if (rc < 0) cli_die(1, "%s: %s", base, err.msg);
    struct gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) < 0)
        cli_die(1, "%s: no general.architecture", base);
    char archs[32];
    snprintf(archs, sizeof archs, "%.*s", (int)(arch.len > 31 ? 31 : arch.len), arch.ptr);

    static const struct {
        const char *key, *suffix;
    } kinds[] = {{"q", "attn_q.weight"},      {"k", "attn_k.weight"},
                 {"v", "attn_v.weight"},      {"o", "attn_output.weight"},
                 {"gate", "ffn_gate.weight"}, {"up", "ffn_up.weight"},
                 {"down", "ffn_down.weight"}, {"output", NULL}};
    bool want[8] = {0};
    char *list = strdup(targets), *save = NULL;
    if (!list) cli_die(1, "out of memory");
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t k = 0;
        while (k < 8 && strcmp(t, kinds[k].key))
            k++;
        if (k == 8) cli_die(EXIT_USAGE, "--targets: unknown projection '%s'", t);
        want[k] = true;
    }
    free(list);

    struct gguf_writer *w = gguf_writer_new();
    if (!w || gguf_writer_add_str(w, "general.architecture", archs) < 0 ||
        gguf_writer_add_str(w, "general.type", "adapter") < 0 ||
        gguf_writer_add_str(w, "adapter.type", "lora") < 0 ||
        gguf_writer_add_f32(w, "adapter.lora.alpha", (float)alpha) < 0)
        cli_die(1, "out of memory");
    void **bufs = calloc(f->n_tensors * 2 + 2, sizeof *bufs);
    size_t n_bufs = 0;
    uint64_t s = seed;
    int n_pairs = 0;
    for (uint64_t i = 0; bufs && i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        bool hit = false;
        for (int k = 0; k < 7 && !hit; k++)
            hit = want[k] && !strncmp(t->name, "blk.", 4) &&
                  strlen(t->name) > strlen(kinds[k].suffix) &&
                  !strcmp(t->name + strlen(t->name) - strlen(kinds[k].suffix), kinds[k].suffix) &&
                  t->name[strlen(t->name) - strlen(kinds[k].suffix) - 1] == '.';
        hit = hit || (want[7] && !strcmp(t->name, "output.weight"));
        if (!hit) continue;
        int64_t n_in = t->ne[0], n_out = t->ne[1];
        /* A·x has unit-scale entries; B keeps the delta a fraction of W·x */
        void *a = random_matrix(type, n_in, rank, 1.0f / sqrtf((float)n_in), &s);
        void *b = random_matrix(type, rank, n_out, 0.1f / sqrtf((float)rank), &s);
        bufs[n_bufs++] = a;
        bufs[n_bufs++] = b;
        char na[GGUF_MAX_NAME + 8], nb[GGUF_MAX_NAME + 8];
        snprintf(na, sizeof na, "%s.lora_a", t->name);
        snprintf(nb, sizeof nb, "%s.lora_b", t->name);
        int64_t nea[2] = {n_in, rank}, neb[2] = {rank, n_out};
        if (gguf_writer_add_tensor(w, na, type, 2, nea, a) < 0 ||
            gguf_writer_add_tensor(w, nb, type, 2, neb, b) < 0)
            cli_die(1, "%s: cannot add the pair of %s", out, t->name);
        n_pairs++;
    }
    if (!bufs) cli_die(1, "out of memory");
    if (n_pairs == 0) cli_die(1, "%s: no tensor of the base matches --targets %s", base, targets);
    if ((rc = gguf_writer_write(w, out, &err)) < 0) cli_die(1, "%s", err.msg);
    fprintf(stderr, "hearth: wrote %s: %d pairs, rank %ld, alpha %g, %s\n", out, n_pairs, rank,
            alpha, hr_type_name(type));
    for (size_t i = 0; i < n_bufs; i++)
        free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    gguf_free(f);
    return 0;
}

/* ---- load, list, unload on hearthd ---------------------------------------------------- */

/* Calls `method` with `params` (consumed) on the daemon at `sock` (NULL:
 * the default socket); dies with the daemon's message. Owned result. */
static json_t *daemon_call(const char *sock, const char *method, json_t *params)
{
    struct ipc_client *c;
    struct hr_err err;
    if (!params) cli_die(1, "out of memory");
    if (ipc_client_connect(sock, &c, &err) < 0) cli_die(1, "%s", err.msg);
    struct ipc_call call = {method, params, NULL, NULL, NULL};
    json_t *res = NULL;
    int code = 0;
    if (ipc_client_call(c, &call, &res, &code, &err) != 0) cli_die(1, "%s", err.msg);
    ipc_client_free(c);
    json_decref(params);
    return res;
}

static void fmt_bytes(char *buf, size_t n, json_int_t b)
{
    if (b >= 1 << 20)
        snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, n, "%.1f KiB", (double)b / (1 << 10));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "?";
}

static int jint(json_t *o, const char *key)
{
    return (int)json_integer_value(json_object_get(o, key));
}

static int lora_client_cmd(const char *sub, int argc, char **argv)
{
    const char *sock = NULL, *name = NULL, *pos = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--socket") || !strcmp(a, "--name")) {
            if (i + 1 >= argc) cli_die(EXIT_USAGE, "%s: missing value", a);
            if (a[2] == 's')
                sock = argv[++i];
            else
                name = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth lora --help)", a);
        } else if (!pos) {
            pos = a;
        } else {
            cli_die(EXIT_USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!strcmp(sub, "load")) {
        if (!pos || json)
            cli_die(EXIT_USAGE, "usage: hearth lora load FILE [--name N] [--socket PATH]");
        /* the daemon has its own working directory: a file that exists here
         * goes as an absolute path, anything else as written (a name the
         * daemon looks up in lora.dir) */
        char *abs = realpath(pos, NULL);
        json_t *p = json_pack("{s:s}", "path", abs ? abs : pos);
        free(abs);
        if (p && name && json_object_set_new(p, "name", json_string(name)) < 0)
            cli_die(1, "out of memory");
        json_t *r = daemon_call(sock, "lora.load", p);
        char sz[32];
        fmt_bytes(sz, sizeof sz, json_integer_value(json_object_get(r, "bytes")));
        printf("loaded %s: %s (%d tensors, rank %d, alpha %g, %s)\n", jstr(r, "name"),
               jstr(r, "path"), jint(r, "tensors"), jint(r, "rank"),
               json_number_value(json_object_get(r, "alpha")), sz);
        json_decref(r);
        return 0;
    }
    if (!strcmp(sub, "unload")) {
        if (!pos || name || json)
            cli_die(EXIT_USAGE, "usage: hearth lora unload NAME [--socket PATH]");
        json_decref(daemon_call(sock, "lora.unload", json_pack("{s:s}", "name", pos)));
        printf("unloaded %s\n", pos);
        return 0;
    }
    if (pos || name) cli_die(EXIT_USAGE, "usage: hearth lora list [--json] [--socket PATH]");
    json_t *r = daemon_call(sock, "lora.list", json_object());
    if (json) {
        char *t = json_dumps(r, JSON_INDENT(2));
        if (t) puts(t);
        free(t);
        json_decref(r);
        return 0;
    }
    json_t *ads = json_object_get(r, "adapters"), *prs = json_object_get(r, "profiles"), *e;
    size_t i;
    if (!json_array_size(ads))
        puts("no adapters loaded");
    else
        printf("%-24s %5s %8s %7s %10s  %s\n", "NAME", "RANK", "ALPHA", "TENSORS", "SIZE", "PATH");
    json_array_foreach(ads, i, e)
    {
        char sz[32];
        fmt_bytes(sz, sizeof sz, json_integer_value(json_object_get(e, "bytes")));
        printf("%-24s %5d %8g %7d %10s  %s\n", jstr(e, "name"), jint(e, "rank"),
               json_number_value(json_object_get(e, "alpha")), jint(e, "tensors"), sz,
               jstr(e, "path"));
    }
    json_array_foreach(prs, i, e)
    {
        if (i == 0) puts("\nprofiles:");
        printf("  %s:", jstr(e, "name"));
        size_t k;
        json_t *u;
        json_array_foreach(json_object_get(e, "adapters"), k, u)
            printf("%s %s:%g", k ? " +" : "", jstr(u, "name"),
                   json_number_value(json_object_get(u, "scale")));
        putchar('\n');
    }
    json_decref(r);
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------- */

int cmd_lora(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs("usage: hearth lora merge BASE ADAPTER[:SCALE]... -o OUT [--type T] [-t N]\n"
              "       hearth lora import DIR -m BASE -o OUT.gguf\n"
              "       hearth lora load FILE [--name N] [--socket PATH]   (running hearthd)\n"
              "       hearth lora list [--json] [--socket PATH]\n"
              "       hearth lora unload NAME [--socket PATH]\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "merge")) return lora_merge_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "import")) return lora_import_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "mkadapter")) return lora_mkadapter_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "load") || !strcmp(sub, "list") || !strcmp(sub, "unload"))
        return lora_client_cmd(sub, argc - 1, argv + 1);
    cli_die(EXIT_USAGE, "unknown lora command '%s' (merge, import, load, list, unload)", sub);
}
