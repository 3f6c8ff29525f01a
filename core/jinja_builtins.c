/*
 * jinja_builtins.c — jinja2's tests (jinja2/tests.py) and the global
 * functions of transformers' chat-template environment: range, namespace,
 * dict, raise_exception and strftime_now. Tests not listed here are
 * rejected when the template is parsed.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST(name) static bool name(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a)

/* ---- tests ----------------------------------------------------------------------------------- */

static struct jv test_arg(struct jstate *st, uint32_t pos, const struct jargs *a, const char *what)
{
    ja_check(st, pos, a, 1, NULL, what);
    if (!a->n)
        jx_fail(&st->c, -EINVAL, pos, "test '%s' needs an argument", what);
    return a->v[0];
}

static void no_args(struct jstate *st, uint32_t pos, const struct jargs *a, const char *what)
{
    ja_check(st, pos, a, 0, NULL, what);
}

TEST(t_boolean) { no_args(st, pos, a, "boolean"); return v.t == JV_BOOL; }
TEST(t_callable) { no_args(st, pos, a, "callable"); return v.t == JV_FUNC || v.t == JV_UNDEF; }
TEST(t_defined) { no_args(st, pos, a, "defined"); return v.t != JV_UNDEF; }
TEST(t_undefined) { no_args(st, pos, a, "undefined"); return v.t == JV_UNDEF; }
TEST(t_none) { no_args(st, pos, a, "none"); return v.t == JV_NONE; }
TEST(t_true) { no_args(st, pos, a, "true"); return v.t == JV_BOOL && v.b; }
TEST(t_false) { no_args(st, pos, a, "false"); return v.t == JV_BOOL && !v.b; }
TEST(t_integer) { no_args(st, pos, a, "integer"); return v.t == JV_INT; }
TEST(t_float) { no_args(st, pos, a, "float"); return v.t == JV_FLOAT; }
TEST(t_number) { no_args(st, pos, a, "number"); return jv_is_num(v); }
TEST(t_string) { no_args(st, pos, a, "string"); return v.t == JV_STR; }
TEST(t_mapping) { no_args(st, pos, a, "mapping"); return v.t == JV_DICT; }
TEST(t_escaped) { no_args(st, pos, a, "escaped"); return false; }

/* iterable: anything iter() accepts (Undefined too: it iterates as empty) */
TEST(t_iterable)
{
    no_args(st, pos, a, "iterable");
    return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
}

/* sequence: has len() and __getitem__ (so does Undefined; generators do not) */
TEST(t_sequence)
{
    no_args(st, pos, a, "sequence");
    return v.t == JV_STR || (v.t == JV_LIST && v.l->view != VIEW_GEN) || v.t == JV_DICT ||
           v.t == JV_UNDEF;
}

/* odd, even, divisibleby: value % n compared, as jinja2 does (floats too) */
TEST(t_odd)
{
    no_args(st, pos, a, "odd");
    return jv_equal(&st->c, jinja_arith(st, pos, OP_MOD, v, jv_int(2)), jv_int(1));
}

TEST(t_even)
{
    no_args(st, pos, a, "even");
    return jv_equal(&st->c, jinja_arith(st, pos, OP_MOD, v, jv_int(2)), jv_int(0));
}

TEST(t_divisibleby)
{
    struct jv d = test_arg(st, pos, a, "divisibleby");
    return jv_equal(&st->c, jinja_arith(st, pos, OP_MOD, v, d), jv_int(0));
}

TEST(t_eq) { return jv_equal(&st->c, v, test_arg(st, pos, a, "eq")); }
TEST(t_ne) { return !jv_equal(&st->c, v, test_arg(st, pos, a, "ne")); }
TEST(t_lt) { return jinja_compare(st, pos, v, test_arg(st, pos, a, "lt")) < 0; }
TEST(t_le) { return jinja_compare(st, pos, v, test_arg(st, pos, a, "le")) <= 0; }
TEST(t_gt) { return jinja_compare(st, pos, v, test_arg(st, pos, a, "gt")) > 0; }
TEST(t_ge) { return jinja_compare(st, pos, v, test_arg(st, pos, a, "ge")) >= 0; }
TEST(t_in) { return jinja_contains(st, pos, v, test_arg(st, pos, a, "in")); }

TEST(t_sameas)
{
    struct jv o = test_arg(st, pos, a, "sameas");
    if (v.t != o.t)
        return false;
    switch (v.t) {
    case JV_NONE:
    case JV_UNDEF: return true;
    case JV_BOOL: return v.b == o.b;
    case JV_INT: return v.i == o.i;
    case JV_FLOAT: return v.f == o.f;
    case JV_STR: return v.s == o.s;
    default: return v.l == o.l; /* same pointer, whichever the union member */
    }
}

/* str(v).islower() / isupper(): some cased character, none of the other case */
static bool cased_as(struct jstate *st, struct jv v, bool upper)
{
    const struct jstr *s = jv_to_str(&st->c, v);
    const char *p = s->s, *end = p + s->len;
    bool cased = false;
    while (p < end) {
        uint32_t cp;
        p += u8_dec(p, end, &cp);
        char enc[4];
        size_t n = u8_enc(cp, enc);
        const struct jstr *one = js_new(&st->c, enc, n);
        const struct jstr *lo = jinja_case(st, one, CASE_LOWER), *up = jinja_case(st, one, CASE_UPPER);
        bool is_lower = !js_eq(one, up->s, up->len), is_upper = !js_eq(one, lo->s, lo->len);
        if (upper ? is_lower : is_upper)
            return false;
        cased |= upper ? is_upper : is_lower;
    }
    return cased;
}

TEST(t_lower) { no_args(st, pos, a, "lower"); return cased_as(st, v, false); }
TEST(t_upper) { no_args(st, pos, a, "upper"); return cased_as(st, v, true); }

TEST(t_filter)
{
    no_args(st, pos, a, "filter");
    return v.t == JV_STR && jinja_find_filter(v.s->s, v.s->len) >= 0;
}

TEST(t_test)
{
    no_args(st, pos, a, "test");
    return v.t == JV_STR && jinja_find_test(v.s->s, v.s->len) >= 0;
}

const struct jtest_def jinja_tests[] = {
    {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
    {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq},
    {"escaped", t_escaped}, {"even", t_even}, {"false", t_false}, {"filter", t_filter},
    {"float", t_float}, {"ge", t_ge}, {">=", t_ge}, {"gt", t_gt}, {"greaterthan", t_gt},
    {">", t_gt}, {"in", t_in}, {"integer", t_integer}, {"iterable", t_iterable},
    {"le", t_le}, {"<=", t_le}, {"lower", t_lower}, {"lt", t_lt}, {"lessthan", t_lt},
    {"<", t_lt}, {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne}, {"none", t_none},
    {"number", t_number}, {"odd", t_odd}, {"sameas", t_sameas}, {"sequence", t_sequence},
    {"string", t_string}, {"test", t_test}, {"true", t_true}, {"undefined", t_undefined},
    {"upper", t_upper}, {NULL, NULL},
};

int jinja_find_test(const char *name, size_t n)
{
    for (int i = 0; jinja_tests[i].name; i++)
        if (strlen(jinja_tests[i].name) == n && memcmp(jinja_tests[i].name, name, n) == 0)
            return i;
    return -1;
}

/* ---- global functions --------------------------------------------------------------------------- */

enum { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME };
static const char *const globals[] = {"range", "namespace", "dict", "raise_exception",
                                      "strftime_now", NULL};

int jinja_find_global(const char *name, size_t n)
{
    for (int i = 0; globals[i]; i++)
        if (strlen(globals[i]) == n && memcmp(globals[i], name, n) == 0)
            return i;
    return -1;
}

static struct jv g_range(struct jstate *st, uint32_t pos, const struct jargs *a)
{
    ja_check(st, pos, a, 3, NULL, "range");
    if (!a->n)
        jx_fail(&st->c, -EINVAL, pos, "range expected at least 1 argument, got 0");
    int64_t start = 0, stop, step = 1;
    if (a->n == 1) {
        stop = ja_int(st, pos, &a->v[0], 0, "range argument");
    } else {
        start = ja_int(st, pos, &a->v[0], 0, "range argument");
        stop = ja_int(st, pos, &a->v[1], 0, "range argument");
        if (a->n == 3)
            step = ja_int(st, pos, &a->v[2], 1, "range step");
    }
    if (step == 0)
        jx_fail(&st->c, -EINVAL, pos, "range() arg 3 must not be zero");
    double count = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                            : ceil(((double)start - (double)stop) / -(double)step);
    if (count < 0)
        count = 0;
    if (count > (double)(st->lim.max_steps - (st->steps < st->lim.max_steps ? st->steps : 0)))
        jx_fail(&st->c, -E2BIG, pos, "range of %.0f items is more than the step limit allows",
                count);
    jinja_step(st, pos, (uint64_t)count / 4);
    struct jlist *l = jl_new(&st->c, (size_t)count);
    for (int64_t i = 0; i < (int64_t)count; i++)
        jl_push(&st->c, l, jv_int(start + i * step));
    return jv_list(l);
}

/* dict(**kw) and namespace(**kw), each also taking mappings positionally */
static struct jdict *dict_of_args(struct jstate *st, uint32_t pos, const struct jargs *a,
                                  const char *what)
{
    struct jdict *d = jd_new(&st->c, a->nk);
    for (uint32_t i = 0; i < a->n; i++) {
        if (a->v[i].t != JV_DICT && a->v[i].t != JV_NS)
            jx_fail(&st->c, -EINVAL, pos, "%s: positional arguments must be mappings, not '%s'",
                    what, jv_type_name(a->v[i]));
        for (size_t k = 0; k < a->v[i].d->n; k++)
            jd_set(&st->c, d, a->v[i].d->k[k], a->v[i].d->v[k]);
    }
    for (uint32_t i = 0; i < a->nk; i++)
        jd_set(&st->c, d, a->k[i], a->kv[i]);
    return d;
}

static const char *const month_names[] = {"January", "February", "March", "April", "May",
                                          "June", "July", "August", "September", "October",
                                          "November", "December"};
static const char *const day_names[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

/* strftime in the C locale (month and day names in English whatever the
 * process locale), glibc's '-' flag (no padding) included. */
static struct jv g_strftime(struct jstate *st, uint32_t pos, const struct jargs *a)
{
    ja_check(st, pos, a, 1, NULL, "strftime_now");
    const struct jstr *fmt = ja_str(st, pos, ja_get(a, 0, NULL), "strftime_now format");
    if (!fmt)
        jx_fail(&st->c, -EINVAL, pos, "strftime_now needs a format");
    time_t now = (time_t)st->now;
    struct tm tm;
    if (!localtime_r(&now, &tm))
        jx_fail(&st->c, -EINVAL, pos, "strftime_now: time out of range");
    struct sbuf b;
    sb_init(&b, &st->c, 0);
    for (size_t i = 0; i < fmt->len; i++) {
        char ch = fmt->s[i];
        if (ch != '%' || i + 1 >= fmt->len) {
            sb_putc(&b, ch);
            continue;
        }
        bool nopad = false;
        ch = fmt->s[++i];
        if (ch == '-' && i + 1 < fmt->len) {
            nopad = true;
            ch = fmt->s[++i];
        }
        int num = -1, width = 2;
        switch (ch) {
        case 'a': sb_put(&b, day_names[tm.tm_wday], 3); break;
        case 'A': sb_puts(&b, day_names[tm.tm_wday]); break;
        case 'b':
        case 'h': sb_put(&b, month_names[tm.tm_mon], 3); break;
        case 'B': sb_puts(&b, month_names[tm.tm_mon]); break;
        case 'd': num = tm.tm_mday; break;
        case 'e':
            if (nopad)
                sb_printf(&b, "%d", tm.tm_mday);
            else
                sb_printf(&b, "%2d", tm.tm_mday);
            break;
        case 'H': num = tm.tm_hour; break;
        case 'I': num = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12; break;
        case 'j': num = tm.tm_yday + 1, width = 3; break;
        case 'm': num = tm.tm_mon + 1; break;
        case 'M': num = tm.tm_min; break;
        case 'p': sb_puts(&b, tm.tm_hour < 12 ? "AM" : "PM"); break;
        case 'S': num = tm.tm_sec; break;
        case 'y': num = tm.tm_year % 100; break;
        case 'Y': sb_printf(&b, "%d", tm.tm_year + 1900); break;
        case 'u': sb_printf(&b, "%d", tm.tm_wday ? tm.tm_wday : 7); break;
        case 'w': sb_printf(&b, "%d", tm.tm_wday); break;
        case 'F': sb_printf(&b, "%d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday); break;
        case 'T': sb_printf(&b, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec); break;
        case '%': sb_putc(&b, '%'); break;
        default:
            jx_fail(&st->c, -EINVAL, pos, "strftime_now: unsupported directive '%%%c'", ch);
        }
        if (num >= 0 && nopad)
            sb_printf(&b, "%d", num);
        else if (num >= 0)
            sb_printf(&b, "%0*d", width, num);
    }
    return jv_str(sb_str(&b));
}

struct jv jinja_call_global(struct jstate *st, uint32_t pos, int id, const struct jargs *a)
{
    switch (id) {
    case G_RANGE:
        return g_range(st, pos, a);
    case G_NAMESPACE:
        return (struct jv){.t = JV_NS, .d = dict_of_args(st, pos, a, "namespace")};
    case G_DICT:
        return jv_dict(dict_of_args(st, pos, a, "dict"));
    case G_RAISE: {
        ja_check(st, pos, a, 1, NULL, "raise_exception");
        const struct jstr *msg = a->n ? jv_to_str(&st->c, a->v[0]) : js_cstr(&st->c, "(no message)");
        jx_fail(&st->c, -EINVAL, pos, "raise_exception: %.400s", msg->s);
    }
    case G_STRFTIME:
        return g_strftime(st, pos, a);
    }
    jx_fail(&st->c, -EINVAL, pos, "internal error: unknown global");
}
