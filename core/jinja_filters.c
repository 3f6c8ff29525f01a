/*
 * jinja_filters.c — jinja2's filters (jinja2/filters.py), each with the
 * semantics of its Python original, and transformers' tojson:
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False), not jinja2's HTML-safe one. Filters that return
 * generators in jinja2 (select, map, unique, items, reverse...) return
 * lists marked VIEW_GEN, which behave as generators do: always true, no
 * len(), iterable once.
 *
 * Filters not listed here are rejected when the template is parsed, so a
 * template never renders with one silently skipped.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FILTER(name) static struct jv name(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a)

static bool bool_arg(const struct jv *v, bool dflt)
{
    return v ? jv_truthy(*v) : dflt;
}

/* jinja2's make_attrgetter: "a.b.0" — each part an item lookup (integer
 * parts index lists), falling back to the attribute. */
static struct jv attr_path(struct jstate *st, uint32_t pos, struct jv v, const struct jstr *path)
{
    const char *p = path->s, *end = p + path->len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot)
            dot = end;
        struct jv key = jv_str(js_new(&st->c, p, (size_t)(dot - p)));
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++)
            digits = digits && *q >= '0' && *q <= '9';
        if (digits && dot - p < 18)
            key = jv_int(strtoll(p, NULL, 10));
        v = jinja_getitem(st, pos, v, key);
        p = dot + 1;
    }
    return v;
}

/* ---- sorting (stable merge sort; comparisons may fail, so no qsort) -------------------- */

struct sort_ctx {
    struct jstate *st;
    uint32_t pos;
    bool case_sensitive;
    bool reverse;
};

static struct jv sort_key(struct sort_ctx *c, struct jv v)
{
    if (!c->case_sensitive && v.t == JV_STR)
        return jv_str(jinja_case(c->st, v.s, CASE_LOWER));
    return v;
}

static void merge_sort(struct sort_ctx *c, struct jv *keys, struct jv *vals, size_t n,
                       struct jv *tk, struct jv *tv)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(c, keys, vals, h, tk, tv);
    merge_sort(c, keys + h, vals + h, n - h, tk, tv);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int cmp = jinja_compare(c->st, c->pos, keys[j], keys[i]);
        bool take_right = c->reverse ? cmp > 0 : cmp < 0;
        if (take_right) {
            tk[k] = keys[j];
            tv[k++] = vals[j++];
        } else {
            tk[k] = keys[i];
            tv[k++] = vals[i++];
        }
    }
    while (i < h) {
        tk[k] = keys[i];
        tv[k++] = vals[i++];
    }
    while (j < n) {
        tk[k] = keys[j];
        tv[k++] = vals[j++];
    }
    memcpy(keys, tk, n * sizeof *keys);
    memcpy(vals, tv, n * sizeof *vals);
}

/* Sorts `vals` by keys (already extracted) in place. */
static void sort_by(struct sort_ctx *c, struct jv *keys, struct jv *vals, size_t n)
{
    jinja_step(c->st, c->pos, n);
    struct jv *tk = jx_alloc(&c->st->c, (n + 1) * sizeof *tk);
    struct jv *tv = jx_alloc(&c->st->c, (n + 1) * sizeof *tv);
    merge_sort(c, keys, vals, n, tk, tv);
}

/* ---- filters ------------------------------------------------------------------------------- */

FILTER(f_abs)
{
    ja_check(st, pos, a, 0, NULL, "abs");
    if (v.t == JV_INT) {
        if (v.i == INT64_MIN)
            jx_fail(&st->c, -EINVAL, pos, "integer overflow");
        return jv_int(v.i < 0 ? -v.i : v.i);
    }
    if (v.t == JV_BOOL)
        return jv_int(v.b);
    if (v.t == JV_FLOAT)
        return jv_float(fabs(v.f));
    jinja_need_defined(st, pos, v);
    jx_fail(&st->c, -EINVAL, pos, "bad operand type for abs(): '%s'", jv_type_name(v));
}

FILTER(f_attr)
{
    ja_check(st, pos, a, 1, NULL, "attr");
    const struct jstr *name = ja_str(st, pos, ja_get(a, 0, NULL), "attr name");
    if (!name)
        jx_fail(&st->c, -EINVAL, pos, "attr needs an attribute name");
    return jinja_getattr(st, pos, v, name);
}

FILTER(f_capitalize)
{
    ja_check(st, pos, a, 0, NULL, "capitalize");
    return jv_str(jinja_case(st, jv_to_str(&st->c, v), CASE_CAPITALIZE));
}

FILTER(f_length)
{
    ja_check(st, pos, a, 0, NULL, "length");
    switch (v.t) {
    case JV_UNDEF: return jv_int(0);
    case JV_STR: jinja_step(st, pos, v.s->len / 64); return jv_int((int64_t)u8_count(v.s->s, v.s->len));
    case JV_LIST:
        if (v.l->view == VIEW_GEN)
            jx_fail(&st->c, -EINVAL, pos, "object of type 'generator' has no len()");
        return jv_int((int64_t)v.l->n);
    case JV_DICT:
    case JV_NS: return jv_int((int64_t)v.d->n);
    default: jx_fail(&st->c, -EINVAL, pos, "object of type '%s' has no len()", jv_type_name(v));
    }
}

FILTER(f_default)
{
    static const char *const kws[] = {"default_value", "boolean", NULL};
    ja_check(st, pos, a, 2, kws, "default");
    const struct jv *d = ja_get(a, 0, "default_value");
    if (v.t == JV_UNDEF || (bool_arg(ja_get(a, 1, "boolean"), false) && !jv_truthy(v)))
        return d ? *d : jv_str(js_new(&st->c, "", 0));
    return v;
}

FILTER(f_dictsort)
{
    static const char *const kws[] = {"case_sensitive", "by", "reverse", NULL};
    ja_check(st, pos, a, 3, kws, "dictsort");
    if (v.t != JV_DICT)
        jx_fail(&st->c, -EINVAL, pos, "dictsort needs a dict, not '%s'", jv_type_name(v));
    const struct jstr *by = ja_str(st, pos, ja_get(a, 1, "by"), "by");
    bool by_value = by && js_eqc(by, "value");
    if (by && !by_value && !js_eqc(by, "key"))
        jx_fail(&st->c, -EINVAL, pos, "You can only sort by either \"key\" or \"value\"");
    struct sort_ctx c = {st, pos, bool_arg(ja_get(a, 0, "case_sensitive"), false),
                         bool_arg(ja_get(a, 2, "reverse"), false)};
    size_t n = v.d->n;
    struct jv *keys = jx_alloc(&st->c, (n + 1) * sizeof *keys);
    struct jv *vals = jx_alloc(&st->c, (n + 1) * sizeof *vals);
    for (size_t i = 0; i < n; i++) {
        struct jlist *pair = jl_new(&st->c, 2);
        pair->tuple = true;
        jl_push(&st->c, pair, jv_str(v.d->k[i]));
        jl_push(&st->c, pair, v.d->v[i]);
        vals[i] = jv_list(pair);
        keys[i] = sort_key(&c, by_value ? v.d->v[i] : jv_str(v.d->k[i]));
    }
    sort_by(&c, keys, vals, n);
    struct jlist *l = jl_new(&st->c, n);
    for (size_t i = 0; i < n; i++)
        jl_push(&st->c, l, vals[i]);
    return jv_list(l);
}

FILTER(f_escape)
{
    ja_check(st, pos, a, 0, NULL, "escape");
    const struct jstr *s = jv_to_str(&st->c, v);
    struct sbuf b;
    sb_init(&b, &st->c, 0);
    for (size_t i = 0; i < s->len; i++) {
        switch (s->s[i]) {
        case '&': sb_puts(&b, "&amp;"); break;
        case '<': sb_puts(&b, "&lt;"); break;
        case '>': sb_puts(&b, "&gt;"); break;
        case '"': sb_puts(&b, "&#34;"); break;
        case '\'': sb_puts(&b, "&#39;"); break;
        default: sb_putc(&b, s->s[i]);
        }
    }
    return jv_str(sb_str(&b));
}

static struct jv first_last(struct jstate *st, uint32_t pos, struct jv v, bool last)
{
    if (last && v.t == JV_LIST && v.l->view == VIEW_GEN)
        jx_fail(&st->c, -EINVAL, pos, "last: 'generator' object is not reversible");
    struct jlist *l = jinja_iter(st, pos, v);
    if (!l->n)
        return jv_undef(NULL);
    return l->v[last ? l->n - 1 : 0];
}

FILTER(f_first)
{
    ja_check(st, pos, a, 0, NULL, "first");
    return first_last(st, pos, v, false);
}

FILTER(f_last)
{
    ja_check(st, pos, a, 0, NULL, "last");
    return first_last(st, pos, v, true);
}

/* Python float(str) for the float/int filters: false if not a number. */
static bool parse_float(const struct jstr *s, double *out)
{
    char buf[64];
    size_t n = 0;
    for (size_t i = 0; i < s->len && n < sizeof buf - 1; i++)
        if (s->s[i] != '_')
            buf[n++] = s->s[i];
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (end == buf || *end || s->len >= sizeof buf - 1)
        return false;
    *out = d;
    return true;
}

FILTER(f_float)
{
    static const char *const kws[] = {"default", NULL};
    ja_check(st, pos, a, 1, kws, "float");
    const struct jv *d = ja_get(a, 0, "default");
    jinja_need_defined(st, pos, v);
    if (jv_is_num(v))
        return jv_float(jv_num(v));
    double f;
    if (v.t == JV_STR && parse_float(v.s, &f))
        return jv_float(f);
    return d ? *d : jv_float(0.0);
}

FILTER(f_int)
{
    static const char *const kws[] = {"default", "base", NULL};
    ja_check(st, pos, a, 2, kws, "int");
    const struct jv *d = ja_get(a, 0, "default");
    int64_t base = ja_int(st, pos, ja_get(a, 1, "base"), 10, "base");
    jinja_need_defined(st, pos, v);
    if (v.t == JV_INT)
        return v;
    if (v.t == JV_BOOL)
        return jv_int(v.b);
    if (v.t == JV_FLOAT && isfinite(v.f) && fabs(v.f) < 9.2e18)
        return jv_int((int64_t)v.f);
    if (v.t == JV_STR && base >= 2 && base <= 36) {
        char *end;
        const char *p = v.s->s;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        errno = 0;
        long long i = strtoll(p, &end, (int)base);
        while (*end == ' ' || *end == '\t' || *end == '\n')
            end++;
        if (end != p && !*end && !errno && (size_t)(end - v.s->s) == v.s->len)
            return jv_int(i);
        double f;
        if (base == 10 && parse_float(v.s, &f) && isfinite(f) && fabs(f) < 9.2e18)
            return jv_int((int64_t)f);
    }
    return d ? *d : jv_int(0);
}

FILTER(f_format)
{
    if (a->n && a->nk)
        jx_fail(&st->c, -EINVAL, pos, "format: can't handle positional and keyword arguments at once");
    struct jv args;
    if (a->nk) {
        struct jdict *d = jd_new(&st->c, a->nk);
        for (uint32_t i = 0; i < a->nk; i++)
            jd_set(&st->c, d, a->k[i], a->kv[i]);
        args = jv_dict(d);
    } else {
        struct jlist *l = jl_new(&st->c, a->n);
        l->tuple = true;
        for (uint32_t i = 0; i < a->n; i++)
            jl_push(&st->c, l, a->v[i]);
        args = jv_list(l);
    }
    return jv_str(jinja_percent(st, pos, jv_to_str(&st->c, v), args));
}

FILTER(f_indent)
{
    static const char *const kws[] = {"width", "first", "blank", NULL};
    ja_check(st, pos, a, 3, kws, "indent");
    const struct jv *w = ja_get(a, 0, "width");
    const struct jstr *ind;
    if (w && w->t == JV_STR) {
        ind = w->s;
    } else {
        int64_t n = ja_int(st, pos, w, 4, "indent width");
        if (n < 0)
            n = 0;
        if (n > 4096)
            jx_fail(&st->c, -E2BIG, pos, "indent width %lld is too large", (long long)n);
        char *sp = jx_alloc(&st->c, (size_t)n + 1);
        memset(sp, ' ', (size_t)n);
        ind = js_new(&st->c, sp, (size_t)n);
    }
    bool first = bool_arg(ja_get(a, 1, "first"), false), blank = bool_arg(ja_get(a, 2, "blank"), false);
    /* jinja2: s += "\n", then indent the lines after the first */
    jinja_need_defined(st, pos, v);
    if (v.t != JV_STR)
        jx_fail(&st->c, -EINVAL, pos, "indent: expected a string, not '%s'", jv_type_name(v));
    const struct jstr *s0 = v.s;
    struct sbuf t;
    sb_init(&t, &st->c, 0);
    sb_put(&t, s0->s, s0->len);
    sb_putc(&t, '\n');
    struct jlist *lines = jinja_splitlines(st, sb_str(&t), false);
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    if (first)
        sb_put(&b, ind->s, ind->len);
    for (size_t i = 0; i < lines->n; i++) {
        const struct jstr *ln = lines->v[i].s;
        if (i) {
            sb_putc(&b, '\n');
            if (blank || ln->len)
                sb_put(&b, ind->s, ind->len);
        }
        sb_put(&b, ln->s, ln->len);
    }
    return jv_str(sb_str(&b));
}

FILTER(f_items)
{
    ja_check(st, pos, a, 0, NULL, "items");
    struct jlist *l = jl_new(&st->c, 0);
    if (v.t == JV_UNDEF)
        return jv_list(l);
    if (v.t != JV_DICT)
        jx_fail(&st->c, -EINVAL, pos, "items: can only get item pairs from a mapping, not '%s'",
                jv_type_name(v));
    for (size_t i = 0; i < v.d->n; i++) {
        struct jlist *pair = jl_new(&st->c, 2);
        pair->tuple = true;
        jl_push(&st->c, pair, jv_str(v.d->k[i]));
        jl_push(&st->c, pair, v.d->v[i]);
        jl_push(&st->c, l, jv_list(pair));
    }
    l->view = VIEW_GEN;
    return jv_list(l);
}

FILTER(f_join)
{
    static const char *const kws[] = {"d", "attribute", NULL};
    ja_check(st, pos, a, 2, kws, "join");
    const struct jv *dv = ja_get(a, 0, "d");
    const struct jstr *sep = dv ? jv_to_str(&st->c, *dv) : NULL;
    const struct jstr *attr = ja_str(st, pos, ja_get(a, 1, "attribute"), "attribute");
    struct jlist *l = jinja_iter(st, pos, v);
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    for (size_t i = 0; i < l->n; i++) {
        if (i && sep)
            sb_put(&b, sep->s, sep->len);
        py_str(&b, attr ? attr_path(st, pos, l->v[i], attr) : l->v[i]);
    }
    jinja_step(st, pos, l->n / 16);
    return jv_str(sb_str(&b));
}

FILTER(f_list)
{
    ja_check(st, pos, a, 0, NULL, "list");
    struct jlist *src = jinja_iter(st, pos, v), *l = jl_new(&st->c, src->n);
    for (size_t i = 0; i < src->n; i++)
        jl_push(&st->c, l, src->v[i]);
    return jv_list(l);
}

FILTER(f_lower)
{
    ja_check(st, pos, a, 0, NULL, "lower");
    return jv_str(jinja_case(st, jv_to_str(&st->c, v), CASE_LOWER));
}

FILTER(f_upper)
{
    ja_check(st, pos, a, 0, NULL, "upper");
    return jv_str(jinja_case(st, jv_to_str(&st->c, v), CASE_UPPER));
}

FILTER(f_title)
{
    ja_check(st, pos, a, 0, NULL, "title");
    return jv_str(jinja_case(st, jv_to_str(&st->c, v), CASE_JINJA_TITLE));
}

/* Arguments after the filter/test name, as their own jargs. */
static struct jargs rest_args(const struct jargs *a, uint32_t skip)
{
    struct jargs r = *a;
    r.n = a->n > skip ? a->n - skip : 0;
    r.v = a->n > skip ? a->v + skip : NULL;
    return r;
}

FILTER(f_map)
{
    struct jlist *src = jinja_iter(st, pos, v), *l = jl_new(&st->c, src->n);
    const struct jv *attr = ja_get(a, UINT32_MAX, "attribute");
    if (attr) {
        static const char *const kws[] = {"attribute", "default", NULL};
        ja_check(st, pos, a, 0, kws, "map");
        const struct jstr *path = ja_str(st, pos, attr, "attribute");
        const struct jv *dflt = ja_get(a, UINT32_MAX, "default");
        for (size_t i = 0; i < src->n; i++) {
            struct jv x = path ? attr_path(st, pos, src->v[i], path) : jv_undef(NULL);
            jl_push(&st->c, l, x.t == JV_UNDEF && dflt ? *dflt : x);
        }
        l->view = VIEW_GEN;
        return jv_list(l);
    }
    if (!a->n || a->v[0].t != JV_STR)
        jx_fail(&st->c, -EINVAL, pos, "map needs a filter name or attribute=");
    int f = jinja_find_filter(a->v[0].s->s, a->v[0].s->len);
    if (f < 0)
        jx_fail(&st->c, -EINVAL, pos, "map: unknown filter '%.60s'", a->v[0].s->s);
    struct jargs r = rest_args(a, 1);
    for (size_t i = 0; i < src->n; i++)
        jl_push(&st->c, l, jinja_filters[f].fn(st, pos, src->v[i], &r));
    l->view = VIEW_GEN;
    return jv_list(l);
}

static struct jv min_max(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a,
                         bool max)
{
    static const char *const kws[] = {"case_sensitive", "attribute", NULL};
    ja_check(st, pos, a, 2, kws, max ? "max" : "min");
    struct sort_ctx c = {st, pos, bool_arg(ja_get(a, 0, "case_sensitive"), false), false};
    const struct jstr *attr = ja_str(st, pos, ja_get(a, 1, "attribute"), "attribute");
    struct jlist *l = jinja_iter(st, pos, v);
    if (!l->n)
        return jv_undef(NULL);
    size_t best = 0;
    struct jv bk = sort_key(&c, attr ? attr_path(st, pos, l->v[0], attr) : l->v[0]);
    for (size_t i = 1; i < l->n; i++) {
        struct jv k = sort_key(&c, attr ? attr_path(st, pos, l->v[i], attr) : l->v[i]);
        int cmp = jinja_compare(st, pos, k, bk);
        if (max ? cmp > 0 : cmp < 0) {
            best = i;
            bk = k;
        }
    }
    return l->v[best];
}

FILTER(f_max) { return min_max(st, pos, v, a, true); }
FILTER(f_min) { return min_max(st, pos, v, a, false); }

/* select/reject/selectattr/rejectattr */
static struct jv select_common(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a,
                               bool attr_mode, bool keep)
{
    struct jlist *src = jinja_iter(st, pos, v), *l = jl_new(&st->c, 0);
    uint32_t skip = 0;
    const struct jstr *attr = NULL;
    if (attr_mode) {
        if (!a->n || a->v[0].t != JV_STR)
            jx_fail(&st->c, -EINVAL, pos, "%s needs an attribute name",
                    keep ? "selectattr" : "rejectattr");
        attr = a->v[0].s;
        skip = 1;
    }
    int test = -1;
    if (a->n > skip) {
        if (a->v[skip].t != JV_STR)
            jx_fail(&st->c, -EINVAL, pos, "the test name must be a string");
        test = jinja_find_test(a->v[skip].s->s, a->v[skip].s->len);
        if (test < 0)
            jx_fail(&st->c, -EINVAL, pos, "unknown test '%.60s'", a->v[skip].s->s);
        skip++;
    }
    struct jargs r = rest_args(a, skip);
    for (size_t i = 0; i < src->n; i++) {
        jinja_step(st, pos, 1);
        struct jv x = attr ? attr_path(st, pos, src->v[i], attr) : src->v[i];
        bool ok = test >= 0 ? jinja_tests[test].fn(st, pos, x, &r) : jv_truthy(x);
        if (ok == keep)
            jl_push(&st->c, l, src->v[i]);
    }
    l->view = VIEW_GEN;
    return jv_list(l);
}

FILTER(f_select) { return select_common(st, pos, v, a, false, true); }
FILTER(f_reject) { return select_common(st, pos, v, a, false, false); }
FILTER(f_selectattr) { return select_common(st, pos, v, a, true, true); }
FILTER(f_rejectattr) { return select_common(st, pos, v, a, true, false); }

FILTER(f_replace)
{
    static const char *const kws[] = {"old", "new", "count", NULL};
    ja_check(st, pos, a, 3, kws, "replace");
    const struct jv *o = ja_get(a, 0, "old"), *n = ja_get(a, 1, "new");
    if (!o || !n)
        jx_fail(&st->c, -EINVAL, pos, "replace needs the old and the new string");
    int64_t count = ja_int(st, pos, ja_get(a, 2, "count"), -1, "count");
    return jv_str(jinja_replace(st, jv_to_str(&st->c, v), jv_to_str(&st->c, *o), jv_to_str(&st->c, *n), count));
}

FILTER(f_reverse)
{
    ja_check(st, pos, a, 0, NULL, "reverse");
    if (v.t == JV_STR) {
        struct jlist *chars = jinja_iter(st, pos, v);
        struct sbuf b;
        sb_init(&b, &st->c, 0);
        for (size_t i = chars->n; i-- > 0;)
            sb_put(&b, chars->v[i].s->s, chars->v[i].s->len);
        return jv_str(sb_str(&b));
    }
    bool was_gen = v.t == JV_LIST && v.l->view == VIEW_GEN;
    struct jlist *src = jinja_iter(st, pos, v), *l = jl_new(&st->c, src->n);
    for (size_t i = src->n; i-- > 0;)
        jl_push(&st->c, l, src->v[i]);
    if (!was_gen) /* reversed() is an iterator; a generator is listed and reversed */
        l->view = VIEW_GEN;
    return jv_list(l);
}

FILTER(f_round)
{
    static const char *const kws[] = {"precision", "method", NULL};
    ja_check(st, pos, a, 2, kws, "round");
    int64_t prec = ja_int(st, pos, ja_get(a, 0, "precision"), 0, "precision");
    const struct jstr *method = ja_str(st, pos, ja_get(a, 1, "method"), "method");
    if (!jv_is_num(v))
        jx_fail(&st->c, -EINVAL, pos, "round needs a number, not '%s'", jv_type_name(v));
    if (prec < -300 || prec > 300)
        jx_fail(&st->c, -EINVAL, pos, "round: precision out of range");
    double x = jv_num(v), m = pow(10.0, (double)prec), r;
    if (!method || js_eqc(method, "common")) {
        if (v.t != JV_FLOAT)
            return jv_int(v.t == JV_BOOL ? v.b : v.i);
        r = nearbyint(x * m) / m; /* round half to even, as Python's round() */
    } else if (js_eqc(method, "ceil")) {
        r = ceil(x * m) / m;
    } else if (js_eqc(method, "floor")) {
        r = floor(x * m) / m;
    } else {
        jx_fail(&st->c, -EINVAL, pos, "method must be common, ceil or floor");
    }
    return jv_float(r);
}

FILTER(f_safe)
{
    ja_check(st, pos, a, 0, NULL, "safe");
    return jv_str(jv_to_str(&st->c, v)); /* Markup(value): a string */
}

FILTER(f_sort)
{
    static const char *const kws[] = {"reverse", "case_sensitive", "attribute", NULL};
    ja_check(st, pos, a, 3, kws, "sort");
    struct sort_ctx c = {st, pos, bool_arg(ja_get(a, 1, "case_sensitive"), false),
                         bool_arg(ja_get(a, 0, "reverse"), false)};
    const struct jstr *attr = ja_str(st, pos, ja_get(a, 2, "attribute"), "attribute");
    struct jlist *src = jinja_iter(st, pos, v);
    size_t n = src->n;
    struct jv *keys = jx_alloc(&st->c, (n + 1) * sizeof *keys);
    struct jv *vals = jx_alloc(&st->c, (n + 1) * sizeof *vals);
    for (size_t i = 0; i < n; i++) {
        vals[i] = src->v[i];
        keys[i] = sort_key(&c, attr ? attr_path(st, pos, src->v[i], attr) : src->v[i]);
    }
    sort_by(&c, keys, vals, n);
    struct jlist *l = jl_new(&st->c, n);
    for (size_t i = 0; i < n; i++)
        jl_push(&st->c, l, vals[i]);
    return jv_list(l);
}

FILTER(f_string)
{
    ja_check(st, pos, a, 0, NULL, "string");
    return jv_str(jv_to_str(&st->c, v));
}

FILTER(f_sum)
{
    static const char *const kws[] = {"attribute", "start", NULL};
    ja_check(st, pos, a, 2, kws, "sum");
    const struct jstr *attr = ja_str(st, pos, ja_get(a, 0, "attribute"), "attribute");
    const struct jv *start = ja_get(a, 1, "start");
    struct jlist *l = jinja_iter(st, pos, v);
    struct jv acc = start ? *start : jv_int(0);
    for (size_t i = 0; i < l->n; i++) {
        struct jv x = attr ? attr_path(st, pos, l->v[i], attr) : l->v[i];
        if (!jv_is_num(acc) || !jv_is_num(x))
            jx_fail(&st->c, -EINVAL, pos, "sum: unsupported operand types '%s' and '%s'",
                    jv_type_name(acc), jv_type_name(x));
        if (acc.t != JV_FLOAT && x.t != JV_FLOAT) {
            int64_t r, p = acc.t == JV_BOOL ? acc.b : acc.i, q = x.t == JV_BOOL ? x.b : x.i;
            if (__builtin_add_overflow(p, q, &r))
                jx_fail(&st->c, -EINVAL, pos, "integer overflow");
            acc = jv_int(r);
        } else {
            acc = jv_float(jv_num(acc) + jv_num(x));
        }
    }
    return acc;
}

FILTER(f_tojson)
{
    static const char *const kws[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    ja_check(st, pos, a, 4, kws, "tojson");
    struct json_opts o = {.indent = -1};
    o.ensure_ascii = bool_arg(ja_get(a, 0, "ensure_ascii"), false);
    const struct jv *ind = ja_get(a, 1, "indent");
    if (ind && ind->t != JV_NONE) {
        int64_t n = ja_int(st, pos, ind, 0, "indent");
        if (n > 64)
            jx_fail(&st->c, -EINVAL, pos, "tojson: indent %lld is too large", (long long)n);
        o.indent = n < 0 ? 0 : (int)n;
    }
    const struct jv *sep = ja_get(a, 2, "separators");
    if (sep && sep->t != JV_NONE) {
        if (sep->t != JV_LIST || sep->l->n != 2 || sep->l->v[0].t != JV_STR ||
            sep->l->v[1].t != JV_STR)
            jx_fail(&st->c, -EINVAL, pos, "tojson: separators must be two strings");
        o.item_sep = sep->l->v[0].s->s;
        o.key_sep = sep->l->v[1].s->s;
    }
    o.sort_keys = bool_arg(ja_get(a, 3, "sort_keys"), false);
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    struct jv bad;
    if (py_json(&b, v, &o, &bad) < 0) {
        if (bad.t == JV_UNDEF && bad.uname)
            jx_fail(&st->c, -EINVAL, pos, "tojson: '%.100s' is undefined", bad.uname);
        jx_fail(&st->c, -EINVAL, pos, "tojson: object of type '%s' is not JSON serializable",
                jv_type_name(bad));
    }
    return jv_str(sb_str(&b));
}

FILTER(f_trim)
{
    static const char *const kws[] = {"chars", NULL};
    ja_check(st, pos, a, 1, kws, "trim");
    const struct jstr *chars = ja_str(st, pos, ja_get(a, 0, "chars"), "chars");
    return jv_str(jinja_strip(st, jv_to_str(&st->c, v), chars, STRIP_BOTH));
}

FILTER(f_unique)
{
    static const char *const kws[] = {"case_sensitive", "attribute", NULL};
    ja_check(st, pos, a, 2, kws, "unique");
    struct sort_ctx c = {st, pos, bool_arg(ja_get(a, 0, "case_sensitive"), false), false};
    const struct jstr *attr = ja_str(st, pos, ja_get(a, 1, "attribute"), "attribute");
    struct jlist *src = jinja_iter(st, pos, v), *l = jl_new(&st->c, 0), *seen = jl_new(&st->c, 0);
    jinja_step(st, pos, src->n * src->n / 64);
    for (size_t i = 0; i < src->n; i++) {
        struct jv k = sort_key(&c, attr ? attr_path(st, pos, src->v[i], attr) : src->v[i]);
        bool dup = false;
        for (size_t j = 0; j < seen->n && !dup; j++)
            dup = jv_equal(&st->c, seen->v[j], k);
        if (!dup) {
            jl_push(&st->c, seen, k);
            jl_push(&st->c, l, src->v[i]);
        }
    }
    l->view = VIEW_GEN;
    return jv_list(l);
}

FILTER(f_wordcount)
{
    ja_check(st, pos, a, 0, NULL, "wordcount");
    const struct jstr *s = jv_to_str(&st->c, v);
    int64_t n = 0;
    bool in = false;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        size_t k = u8_dec(s->s + i, s->s + s->len, &cp);
        bool word = !py_isspace(cp) && !(cp < 0x80 && cp != '_' && !((cp | 32) >= 'a' && (cp | 32) <= 'z') &&
                                         !(cp >= '0' && cp <= '9'));
        if (word && !in)
            n++;
        in = word;
        i += k;
    }
    return jv_int(n);
}

const struct jfilter_def jinja_filters[] = {
    {"abs", f_abs}, {"attr", f_attr}, {"capitalize", f_capitalize}, {"count", f_length},
    {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape}, {"first", f_first}, {"float", f_float}, {"format", f_format},
    {"indent", f_indent}, {"int", f_int}, {"items", f_items}, {"join", f_join},
    {"last", f_last}, {"length", f_length}, {"list", f_list}, {"lower", f_lower},
    {"map", f_map}, {"max", f_max}, {"min", f_min}, {"reject", f_reject},
    {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round}, {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr},
    {"sort", f_sort}, {"string", f_string}, {"sum", f_sum}, {"title", f_title},
    {"tojson", f_tojson}, {"trim", f_trim}, {"unique", f_unique}, {"upper", f_upper},
    {"wordcount", f_wordcount}, {NULL, NULL},
};

int jinja_find_filter(const char *name, size_t n)
{
    for (int i = 0; jinja_filters[i].name; i++)
        if (strlen(jinja_filters[i].name) == n && memcmp(jinja_filters[i].name, name, n) == 0)
            return i;
    return -1;
}
