/*
 * jinja_methods.c — the Python methods templates call on values
 * (`s.strip()`, `s.split('</think>')`, `d.items()`, `d.get(k)`, loop.cycle)
 * and the string operations they share with the filters: stripping, case
 * mapping (Unicode, through utf8proc), replace, splitlines, and the two
 * formatting languages (`%` and str.format). Strings are UTF-8; positions
 * and lengths are in code points, as in Python.
 *
 * The sandbox transformers uses (ImmutableSandboxedEnvironment) forbids the
 * methods that modify a list or dict; they exist here only to fail with a
 * message that says so.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum mid {
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_STARTSWITH, M_ENDSWITH,
    M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_JOIN,
    M_FORMAT, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISLOWER, M_ISUPPER,
    M_REMOVEPREFIX, M_REMOVESUFFIX,
    M_ITEMS, M_KEYS, M_VALUES, M_GET, M_COPY, M_DICT_UNSAFE,
    M_LIST_INDEX, M_LIST_COUNT, M_LIST_UNSAFE,
    M_LOOP_CYCLE,
};

static const struct {
    enum jv_type t;
    const char *name;
    enum mid id;
} methods[] = {
    {JV_STR, "strip", M_STRIP}, {JV_STR, "lstrip", M_LSTRIP}, {JV_STR, "rstrip", M_RSTRIP},
    {JV_STR, "split", M_SPLIT}, {JV_STR, "rsplit", M_RSPLIT},
    {JV_STR, "splitlines", M_SPLITLINES}, {JV_STR, "startswith", M_STARTSWITH},
    {JV_STR, "endswith", M_ENDSWITH}, {JV_STR, "upper", M_UPPER}, {JV_STR, "lower", M_LOWER},
    {JV_STR, "title", M_TITLE}, {JV_STR, "capitalize", M_CAPITALIZE},
    {JV_STR, "replace", M_REPLACE}, {JV_STR, "find", M_FIND}, {JV_STR, "rfind", M_RFIND},
    {JV_STR, "count", M_COUNT}, {JV_STR, "join", M_JOIN}, {JV_STR, "format", M_FORMAT},
    {JV_STR, "isdigit", M_ISDIGIT}, {JV_STR, "isalpha", M_ISALPHA},
    {JV_STR, "isalnum", M_ISALNUM}, {JV_STR, "isspace", M_ISSPACE},
    {JV_STR, "islower", M_ISLOWER}, {JV_STR, "isupper", M_ISUPPER},
    {JV_STR, "removeprefix", M_REMOVEPREFIX}, {JV_STR, "removesuffix", M_REMOVESUFFIX},
    {JV_DICT, "items", M_ITEMS}, {JV_DICT, "keys", M_KEYS}, {JV_DICT, "values", M_VALUES},
    {JV_DICT, "get", M_GET}, {JV_DICT, "copy", M_COPY}, {JV_DICT, "pop", M_DICT_UNSAFE},
    {JV_DICT, "popitem", M_DICT_UNSAFE}, {JV_DICT, "setdefault", M_DICT_UNSAFE},
    {JV_DICT, "update", M_DICT_UNSAFE}, {JV_DICT, "clear", M_DICT_UNSAFE},
    {JV_LIST, "index", M_LIST_INDEX}, {JV_LIST, "count", M_LIST_COUNT},
    {JV_LIST, "append", M_LIST_UNSAFE}, {JV_LIST, "extend", M_LIST_UNSAFE},
    {JV_LIST, "insert", M_LIST_UNSAFE}, {JV_LIST, "pop", M_LIST_UNSAFE},
    {JV_LIST, "remove", M_LIST_UNSAFE}, {JV_LIST, "clear", M_LIST_UNSAFE},
    {JV_LIST, "sort", M_LIST_UNSAFE}, {JV_LIST, "reverse", M_LIST_UNSAFE},
    {JV_LOOP, "cycle", M_LOOP_CYCLE},
};

static struct jv bound(struct jstate *st, struct jv self, int id, const struct jstr *name)
{
    struct jfunc *f = jx_alloc(&st->c, sizeof *f);
    f->kind = JF_METHOD;
    f->id = id;
    f->self = self;
    f->name = name;
    return (struct jv){.t = JV_FUNC, .fn = f};
}

static struct jv loop_attr(const struct jloop *l, const struct jstr *name, bool *found)
{
    int64_t i = (int64_t)l->i, n = (int64_t)l->items->n;
    *found = true;
    if (js_eqc(name, "index")) return jv_int(i + 1);
    if (js_eqc(name, "index0")) return jv_int(i);
    if (js_eqc(name, "revindex")) return jv_int(n - i);
    if (js_eqc(name, "revindex0")) return jv_int(n - i - 1);
    if (js_eqc(name, "first")) return jv_bool(i == 0);
    if (js_eqc(name, "last")) return jv_bool(i == n - 1);
    if (js_eqc(name, "length")) return jv_int(n);
    if (js_eqc(name, "depth")) return jv_int(l->depth);
    if (js_eqc(name, "depth0")) return jv_int(l->depth - 1);
    if (js_eqc(name, "previtem")) return i > 0 ? l->items->v[i - 1] : jv_undef("previtem");
    if (js_eqc(name, "nextitem")) return i + 1 < n ? l->items->v[i + 1] : jv_undef("nextitem");
    *found = false;
    return jv_undef(NULL);
}

bool jinja_method(struct jstate *st, struct jv v, const struct jstr *name, struct jv *out)
{
    if (v.t == JV_LOOP) {
        bool found;
        struct jv a = loop_attr(v.loop, name, &found);
        if (found) {
            *out = a;
            return true;
        }
    }
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].t == v.t && js_eqc(name, methods[i].name)) {
            *out = bound(st, v, (int)methods[i].id, name);
            return true;
        }
    return false;
}

/* ---- string operations --------------------------------------------------------------------- */

static bool in_chars(const struct jstr *chars, uint32_t cp)
{
    const char *p = chars->s, *end = p + chars->len;
    while (p < end) {
        uint32_t c;
        p += u8_dec(p, end, &c);
        if (c == cp)
            return true;
    }
    return false;
}

const struct jstr *jinja_strip(struct jstate *st, const struct jstr *s, const struct jstr *chars,
                               int which)
{
    size_t a = 0, b = s->len;
    while ((which & STRIP_LEFT) && a < b) {
        uint32_t cp;
        size_t k = u8_dec(s->s + a, s->s + b, &cp);
        if (chars ? !in_chars(chars, cp) : !py_isspace(cp))
            break;
        a += k;
    }
    while ((which & STRIP_RIGHT) && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s->s[k] & 0xc0) == 0x80)
            k--;
        uint32_t cp;
        u8_dec(s->s + k, s->s + b, &cp);
        if (chars ? !in_chars(chars, cp) : !py_isspace(cp))
            break;
        b = k;
    }
    jinja_step(st, JPOS_NONE, s->len / 64);
    if (a == 0 && b == s->len)
        return s;
    return js_new(&st->c, s->s + a, b - a);
}

static bool is_cased(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static void put_cp(struct sbuf *b, uint32_t cp)
{
    char enc[4];
    sb_put(b, enc, u8_enc(cp, enc));
}

/* Python's unconditional special casings (SpecialCasing.txt) that map one
 * character to several, for the characters real text has: kind 0 upper,
 * 1 title, 2 lower. */
static bool special_case(struct sbuf *b, uint32_t cp, int kind)
{
    static const struct {
        uint32_t cp;
        const char *upper, *title, *lower;
    } tab[] = {
        {0x00df, "SS", "Ss", NULL},     {0x0130, NULL, NULL, "i\xcc\x87"},
        {0x0149, "\xca\xbcN", "\xca\xbcN", NULL},
        {0xfb00, "FF", "Ff", NULL},     {0xfb01, "FI", "Fi", NULL},
        {0xfb02, "FL", "Fl", NULL},     {0xfb03, "FFI", "Ffi", NULL},
        {0xfb04, "FFL", "Ffl", NULL},   {0xfb05, "ST", "St", NULL},
        {0xfb06, "ST", "St", NULL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (tab[i].cp != cp)
            continue;
        const char *r = kind == 0 ? tab[i].upper : kind == 1 ? tab[i].title : tab[i].lower;
        if (!r)
            return false;
        sb_puts(b, r);
        return true;
    }
    return false;
}

const struct jstr *jinja_case(struct jstate *st, const struct jstr *s, enum jcase mode)
{
    struct sbuf b;
    sb_init(&b, &st->c, 0);
    const char *p = s->s, *end = p + s->len;
    bool prev_cased = false, boundary = true, first = true;
    jinja_step(st, JPOS_NONE, s->len / 64);
    while (p < end) {
        uint32_t cp, out;
        p += u8_dec(p, end, &cp);
        utf8proc_int32_t c = (utf8proc_int32_t)cp;
        int kind; /* 0 upper, 1 title, 2 lower, 3 unchanged */
        switch (mode) {
        case CASE_UPPER: kind = 0; break;
        case CASE_LOWER: kind = 2; break;
        case CASE_TITLE: /* str.title(): title case after an uncased character */
            kind = prev_cased ? 2 : 1;
            prev_cased = is_cased(cp);
            break;
        case CASE_CAPITALIZE: kind = first ? 1 : 2; break;
        case CASE_JINJA_TITLE: /* jinja2's title: words start after [-\s({[<]+ */
            if (cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp)) {
                kind = 3;
                boundary = true;
            } else {
                kind = boundary ? 0 : 2;
                boundary = false;
            }
            break;
        default: kind = 3;
        }
        first = false;
        if (kind == 3 || !special_case(&b, cp, kind)) {
            out = kind == 0 ? (uint32_t)utf8proc_toupper(c)
                : kind == 1 ? (uint32_t)utf8proc_totitle(c)
                : kind == 2 ? (uint32_t)utf8proc_tolower(c)
                            : cp;
            put_cp(&b, out);
        }
    }
    return sb_str(&b);
}

const struct jstr *jinja_replace(struct jstate *st, const struct jstr *s, const struct jstr *old,
                                 const struct jstr *rep, int64_t count)
{
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    jinja_step(st, JPOS_NONE, s->len / 16);
    if (!old->len) { /* Python inserts `rep` around every character */
        const char *p = s->s, *end = p + s->len;
        int64_t done = 0;
        while (count < 0 || done < count) {
            sb_put(&b, rep->s, rep->len);
            done++;
            if (p == end)
                break;
            uint32_t cp;
            size_t k = u8_dec(p, end, &cp);
            sb_put(&b, p, k);
            p += k;
        }
        sb_put(&b, p, (size_t)(end - p));
        return sb_str(&b);
    }
    size_t i = 0;
    int64_t done = 0;
    while (i < s->len && (count < 0 || done < count)) {
        const char *hit = memmem(s->s + i, s->len - i, old->s, old->len);
        if (!hit)
            break;
        size_t h = (size_t)(hit - s->s);
        sb_put(&b, s->s + i, h - i);
        sb_put(&b, rep->s, rep->len);
        i = h + old->len;
        done++;
    }
    sb_put(&b, s->s + i, s->len - i);
    return sb_str(&b);
}

/* Length of a line break at p (Python's str.splitlines boundaries), or 0. */
static size_t line_break(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c == '\r')
        return p + 1 < end && p[1] == '\n' ? 2 : 1;
    if (c == '\n' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e)
        return 1;
    uint32_t cp;
    size_t k = u8_dec(p, end, &cp);
    return cp == 0x85 || cp == 0x2028 || cp == 0x2029 ? k : 0;
}

struct jlist *jinja_splitlines(struct jstate *st, const struct jstr *s, bool keepends)
{
    struct jlist *l = jl_new(&st->c, 0);
    const char *p = s->s, *end = p + s->len, *start = p;
    while (p < end) {
        size_t k = line_break(p, end);
        if (!k) {
            p++;
            continue;
        }
        jl_push(&st->c, l, jv_str(js_new(&st->c, start, (size_t)(p - start) + (keepends ? k : 0))));
        p += k;
        start = p;
    }
    if (start < end)
        jl_push(&st->c, l, jv_str(js_new(&st->c, start, (size_t)(end - start))));
    return l;
}

/* ---- %-formatting --------------------------------------------------------------------------- */

static void pad(struct sbuf *b, const struct jstr *s, int width, bool left)
{
    size_t n = u8_count(s->s, s->len);
    if (!left)
        for (size_t i = n; (int64_t)i < width; i++)
            sb_putc(b, ' ');
    sb_put(b, s->s, s->len);
    if (left)
        for (size_t i = n; (int64_t)i < width; i++)
            sb_putc(b, ' ');
}

const struct jstr *jinja_percent(struct jstate *st, uint32_t pos, const struct jstr *fmt,
                                 struct jv args)
{
    const struct jv *vals = &args;
    size_t nvals = 1, used = 0;
    if (args.t == JV_LIST && args.l->tuple) {
        vals = args.l->v;
        nvals = args.l->n;
    }
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    const char *p = fmt->s, *end = p + fmt->len;
    while (p < end) {
        if (*p != '%') {
            sb_putc(&b, *p++);
            continue;
        }
        p++;
        struct jv v;
        bool keyed = false;
        if (p < end && *p == '(') {
            const char *k = ++p;
            while (p < end && *p != ')')
                p++;
            if (p == end)
                jx_fail(&st->c, -EINVAL, pos, "incomplete format key");
            if (args.t != JV_DICT)
                jx_fail(&st->c, -EINVAL, pos, "format requires a mapping");
            struct jv *x = jd_get(args.d, k, (size_t)(p - k));
            if (!x)
                jx_fail(&st->c, -EINVAL, pos, "format: key '%.*s' is missing", (int)(p - k), k);
            v = *x;
            keyed = true;
            p++;
        }
        char flags[8];
        int nf = 0;
        while (p < end && strchr("-+ #0", *p) && *p && nf < 6)
            flags[nf++] = *p++;
        flags[nf] = '\0';
        int width = 0, prec = -1;
        while (p < end && *p >= '0' && *p <= '9' && width < 10000)
            width = width * 10 + (*p++ - '0');
        if (p < end && *p == '.') {
            p++;
            prec = 0;
            while (p < end && *p >= '0' && *p <= '9' && prec < 10000)
                prec = prec * 10 + (*p++ - '0');
        }
        while (p < end && (*p == 'h' || *p == 'l' || *p == 'L'))
            p++;
        if (p == end)
            jx_fail(&st->c, -EINVAL, pos, "incomplete format");
        char conv = *p++;
        if (conv == '%') {
            sb_putc(&b, '%');
            continue;
        }
        if (!keyed) {
            if (used >= nvals)
                jx_fail(&st->c, -EINVAL, pos, "not enough arguments for format string");
            v = vals[used++];
        }
        bool left = strchr(flags, '-') != NULL;
        char spec[48], num[512];
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            struct sbuf t;
            sb_init(&t, &st->c, 0);
            if (conv == 's')
                py_str(&t, v);
            else
                py_repr(&t, v);
            const struct jstr *s = sb_str(&t);
            if (prec >= 0 && (size_t)prec < u8_count(s->s, s->len))
                s = js_new(&st->c, s->s, u8_offset(s->s, s->len, (size_t)prec));
            pad(&b, s, width, left);
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            if (!jv_is_num(v))
                jx_fail(&st->c, -EINVAL, pos, "%%%c format: a number is required, not %s", conv,
                        jv_type_name(v));
            long long n = v.t == JV_FLOAT ? (long long)v.f : v.t == JV_BOOL ? v.b : v.i;
            char c = conv == 'i' || conv == 'u' ? 'd' : conv;
            snprintf(spec, sizeof spec, "%%%s%d%sll%c", flags, width, prec >= 0 ? ".*" : "", c);
            if (prec >= 0)
                snprintf(num, sizeof num, spec, prec, n);
            else
                snprintf(num, sizeof num, spec, n);
            sb_puts(&b, num);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            if (!jv_is_num(v))
                jx_fail(&st->c, -EINVAL, pos, "%%%c format: a real number is required, not %s",
                        conv, jv_type_name(v));
            snprintf(spec, sizeof spec, "%%%s%d.%d%c", flags, width, prec >= 0 ? prec : 6, conv);
            snprintf(num, sizeof num, spec, jv_num(v));
            sb_puts(&b, num);
            break;
        }
        case 'c': {
            const struct jstr *s;
            if (v.t == JV_INT && v.i >= 0 && v.i <= 0x10ffff && !(v.i >= 0xd800 && v.i <= 0xdfff)) {
                char enc[4];
                s = js_new(&st->c, enc, u8_enc((uint32_t)v.i, enc));
            } else if (v.t == JV_STR && u8_count(v.s->s, v.s->len) == 1) {
                s = v.s;
            } else {
                jx_fail(&st->c, -EINVAL, pos, "%%c requires an int or a single character");
            }
            pad(&b, s, width, left);
            break;
        }
        default:
            jx_fail(&st->c, -EINVAL, pos, "unsupported format character '%c'", conv);
        }
    }
    /* as CPython: a list or dict argument is taken as a mapping, whose
     * unused items are not an error */
    if (args.t != JV_DICT && args.t != JV_UNDEF && !(args.t == JV_LIST && !args.l->tuple) &&
        used < nvals)
        jx_fail(&st->c, -EINVAL, pos, "not all arguments converted during string formatting");
    return sb_str(&b);
}

/* str.format: {} {0} {name}, conversions !r !s; format specs are not supported. */
static const struct jstr *str_format(struct jstate *st, uint32_t pos, const struct jstr *fmt,
                                     const struct jargs *a)
{
    struct sbuf b;
    sb_init(&b, &st->c, st->lim.max_output);
    const char *p = fmt->s, *end = p + fmt->len;
    uint32_t auto_idx = 0;
    while (p < end) {
        if (*p == '}') {
            if (p + 1 < end && p[1] == '}') {
                sb_putc(&b, '}');
                p += 2;
                continue;
            }
            jx_fail(&st->c, -EINVAL, pos, "format: single '}' encountered");
        }
        if (*p != '{') {
            sb_putc(&b, *p++);
            continue;
        }
        if (p + 1 < end && p[1] == '{') {
            sb_putc(&b, '{');
            p += 2;
            continue;
        }
        const char *f = ++p;
        while (p < end && *p != '}' && *p != '!' && *p != ':')
            p++;
        size_t flen = (size_t)(p - f);
        char conv = 's';
        if (p < end && *p == '!') {
            if (p + 1 >= end)
                jx_fail(&st->c, -EINVAL, pos, "format: bad conversion");
            conv = p[1];
            p += 2;
        }
        if (p < end && *p == ':')
            jx_fail(&st->c, -EINVAL, pos, "unsupported: format specs in str.format");
        if (p >= end || *p != '}')
            jx_fail(&st->c, -EINVAL, pos, "format: expected '}'");
        p++;
        const struct jv *v;
        if (!flen) {
            v = ja_get(a, auto_idx++, NULL);
        } else if (f[0] >= '0' && f[0] <= '9') {
            v = ja_get(a, (uint32_t)strtoul(f, NULL, 10), NULL);
        } else {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(flen < 120 ? flen : 120), f);
            if (memchr(name, '.', strlen(name)) || memchr(name, '[', strlen(name)))
                jx_fail(&st->c, -EINVAL, pos, "unsupported: attribute access in str.format");
            v = ja_get(a, UINT32_MAX, name);
        }
        if (!v)
            jx_fail(&st->c, -EINVAL, pos, "format: missing argument for field '{%.*s}'",
                    (int)(flen < 60 ? flen : 60), f);
        if (conv == 'r' || conv == 'a')
            py_repr(&b, *v);
        else if (conv == 's')
            py_str(&b, *v);
        else
            jx_fail(&st->c, -EINVAL, pos, "format: unknown conversion '!%c'", conv);
    }
    return sb_str(&b);
}

/* ---- calling methods ------------------------------------------------------------------------ */

static const struct jstr *str_param(struct jstate *st, uint32_t pos, const struct jargs *a,
                                    uint32_t i, const char *kw, const char *m)
{
    const struct jv *v = ja_get(a, i, kw);
    if (!v || v->t == JV_NONE)
        return NULL;
    if (v->t != JV_STR)
        jx_fail(&st->c, -EINVAL, pos, "%s: argument must be a string, not '%s'", m,
                jv_type_name(*v));
    return v->s;
}

static int64_t int_param(struct jstate *st, uint32_t pos, const struct jargs *a, uint32_t i,
                         const char *kw, int64_t dflt)
{
    const struct jv *v = ja_get(a, i, kw);
    if (!v || v->t == JV_NONE)
        return dflt;
    if (v->t != JV_INT && v->t != JV_BOOL)
        jx_fail(&st->c, -EINVAL, pos, "argument must be an integer, not '%s'", jv_type_name(*v));
    return v->t == JV_BOOL ? v->b : v->i;
}

static struct jv split(struct jstate *st, uint32_t pos, const struct jstr *s, const struct jargs *a,
                       bool right)
{
    static const char *const kws[] = {"sep", "maxsplit", NULL};
    ja_check(st, pos, a, 2, kws, right ? "rsplit" : "split");
    const struct jstr *sep = str_param(st, pos, a, 0, "sep", "split");
    int64_t max = int_param(st, pos, a, 1, "maxsplit", -1);
    if (sep && !sep->len)
        jx_fail(&st->c, -EINVAL, pos, "split: empty separator");
    jinja_step(st, pos, s->len / 16);
    struct jlist *l = jl_new(&st->c, 0);
    const char *b = s->s, *e = s->s + s->len;
    if (sep) {
        if (!right) {
            const char *p = b;
            while (max < 0 || (int64_t)l->n < max) {
                const char *h = memmem(p, (size_t)(e - p), sep->s, sep->len);
                if (!h)
                    break;
                jl_push(&st->c, l, jv_str(js_new(&st->c, p, (size_t)(h - p))));
                p = h + sep->len;
            }
            jl_push(&st->c, l, jv_str(js_new(&st->c, p, (size_t)(e - p))));
            return jv_list(l);
        }
        /* from the right: collect reversed, then flip */
        const char *q = e;
        int64_t done = 0;
        struct jlist *r = jl_new(&st->c, 0);
        while (max < 0 || done < max) {
            const char *h = NULL;
            for (const char *c = q - sep->len; c >= b && (size_t)(q - b) >= sep->len; c--)
                if (memcmp(c, sep->s, sep->len) == 0) {
                    h = c;
                    break;
                }
            if (!h)
                break;
            jl_push(&st->c, r, jv_str(js_new(&st->c, h + sep->len, (size_t)(q - h - sep->len))));
            q = h;
            done++;
        }
        jl_push(&st->c, l, jv_str(js_new(&st->c, b, (size_t)(q - b))));
        for (size_t i = r->n; i-- > 0;)
            jl_push(&st->c, l, r->v[i]);
        return jv_list(l);
    }
    /* whitespace runs; no empty strings */
    struct jlist *words = jl_new(&st->c, 0);
    size_t *starts = NULL, ns = 0;
    const char *p = b;
    size_t cap = 0;
    while (p < e) {
        uint32_t cp;
        size_t k = u8_dec(p, e, &cp);
        if (py_isspace(cp)) {
            p += k;
            continue;
        }
        const char *w = p;
        while (p < e && !py_isspace((u8_dec(p, e, &cp), cp)))
            p += u8_dec(p, e, &cp);
        if (ns == cap) {
            cap = cap ? cap * 2 : 8;
            starts = jx_grow(&st->c, starts, ns * sizeof *starts, cap * sizeof *starts);
        }
        starts[ns++] = (size_t)(w - b);
        jl_push(&st->c, words, jv_str(js_new(&st->c, w, (size_t)(p - w))));
    }
    if (max < 0 || (size_t)max + 1 >= words->n)
        return jv_list(words);
    if (!right) { /* the last piece keeps the rest of the string, right side unstripped */
        for (int64_t i = 0; i < max; i++)
            jl_push(&st->c, l, words->v[i]);
        jl_push(&st->c, l, jv_str(js_new(&st->c, b + starts[max], (size_t)(e - b) - starts[max])));
        return jv_list(l);
    }
    size_t first = words->n - (size_t)max; /* words kept separate at the end */
    const struct jstr *lastw = words->v[first - 1].s;
    size_t head_end = starts[first - 1] + lastw->len;
    jl_push(&st->c, l, jv_str(js_new(&st->c, b, head_end)));
    for (size_t i = first; i < words->n; i++)
        jl_push(&st->c, l, words->v[i]);
    return jv_list(l);
}

/* startswith/endswith: a prefix or a tuple of them */
static bool affix(struct jstate *st, uint32_t pos, const struct jstr *s, const struct jargs *a,
                  bool end)
{
    ja_check(st, pos, a, 1, NULL, end ? "endswith" : "startswith");
    const struct jv *x = ja_get(a, 0, NULL);
    if (!x)
        jx_fail(&st->c, -EINVAL, pos, "%s takes one argument", end ? "endswith" : "startswith");
    const struct jv *opts = x;
    size_t n = 1;
    if (x->t == JV_LIST && x->l->tuple) {
        opts = x->l->v;
        n = x->l->n;
    }
    for (size_t i = 0; i < n; i++) {
        if (opts[i].t != JV_STR)
            jx_fail(&st->c, -EINVAL, pos, "%s: argument must be str or a tuple of str, not '%s'",
                    end ? "endswith" : "startswith", jv_type_name(opts[i]));
        const struct jstr *p = opts[i].s;
        if (p->len <= s->len &&
            memcmp(end ? s->s + s->len - p->len : s->s, p->s, p->len) == 0)
            return true;
    }
    return false;
}

static bool str_class(const struct jstr *s, enum mid m)
{
    if (!s->len)
        return false;
    const char *p = s->s, *end = p + s->len;
    bool cased = false;
    while (p < end) {
        uint32_t cp;
        p += u8_dec(p, end, &cp);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        bool alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
        bool digit = c == UTF8PROC_CATEGORY_ND;
        bool numeric = digit || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
        switch (m) {
        case M_ISDIGIT: if (!digit) return false; break;
        case M_ISALPHA: if (!alpha) return false; break;
        case M_ISALNUM: if (!alpha && !numeric) return false; break;
        case M_ISSPACE: if (!py_isspace(cp)) return false; break;
        case M_ISLOWER:
            if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) return false;
            cased |= c == UTF8PROC_CATEGORY_LL;
            break;
        case M_ISUPPER:
            if (c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return false;
            cased |= c == UTF8PROC_CATEGORY_LU;
            break;
        default: return false;
        }
    }
    return m == M_ISLOWER || m == M_ISUPPER ? cased : true;
}

static struct jv str_method(struct jstate *st, uint32_t pos, const struct jstr *s, enum mid m,
                            const struct jargs *a, const char *name)
{
    switch (m) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        ja_check(st, pos, a, 1, NULL, name);
        const struct jstr *chars = str_param(st, pos, a, 0, NULL, name);
        int which = m == M_STRIP ? STRIP_BOTH : m == M_LSTRIP ? STRIP_LEFT : STRIP_RIGHT;
        return jv_str(jinja_strip(st, s, chars, which));
    }
    case M_SPLIT:
    case M_RSPLIT:
        return split(st, pos, s, a, m == M_RSPLIT);
    case M_SPLITLINES: {
        static const char *const kws[] = {"keepends", NULL};
        ja_check(st, pos, a, 1, kws, name);
        const struct jv *k = ja_get(a, 0, "keepends");
        return jv_list(jinja_splitlines(st, s, k && jv_truthy(*k)));
    }
    case M_STARTSWITH:
    case M_ENDSWITH:
        return jv_bool(affix(st, pos, s, a, m == M_ENDSWITH));
    case M_UPPER:
    case M_LOWER:
    case M_TITLE:
    case M_CAPITALIZE:
        ja_check(st, pos, a, 0, NULL, name);
        return jv_str(jinja_case(st, s,
                                 m == M_UPPER ? CASE_UPPER
                                 : m == M_LOWER ? CASE_LOWER
                                 : m == M_TITLE ? CASE_TITLE
                                                : CASE_CAPITALIZE));
    case M_REPLACE: {
        static const char *const kws[] = {"count", NULL};
        ja_check(st, pos, a, 3, kws, name);
        const struct jstr *o = str_param(st, pos, a, 0, NULL, name);
        const struct jstr *r = str_param(st, pos, a, 1, NULL, name);
        if (!o || !r)
            jx_fail(&st->c, -EINVAL, pos, "replace takes the old and the new string");
        return jv_str(jinja_replace(st, s, o, r, int_param(st, pos, a, 2, "count", -1)));
    }
    case M_FIND:
    case M_RFIND:
    case M_COUNT: {
        ja_check(st, pos, a, 1, NULL, name);
        const struct jstr *sub = str_param(st, pos, a, 0, NULL, name);
        if (!sub)
            jx_fail(&st->c, -EINVAL, pos, "%s takes a string", name);
        jinja_step(st, pos, s->len / 16);
        if (m == M_COUNT) {
            if (!sub->len)
                return jv_int((int64_t)u8_count(s->s, s->len) + 1);
            int64_t n = 0;
            for (const char *p = s->s, *h; (h = memmem(p, (size_t)(s->s + s->len - p), sub->s,
                                                       sub->len)) != NULL;
                 p = h + sub->len)
                n++;
            return jv_int(n);
        }
        const char *hit = NULL;
        if (m == M_FIND) {
            hit = memmem(s->s, s->len, sub->s, sub->len);
        } else {
            for (size_t i = s->len + 1 - (sub->len <= s->len ? sub->len : s->len + 1); i-- > 0;)
                if (sub->len <= s->len - i && memcmp(s->s + i, sub->s, sub->len) == 0) {
                    hit = s->s + i;
                    break;
                }
        }
        return jv_int(hit ? (int64_t)u8_count(s->s, (size_t)(hit - s->s)) : -1);
    }
    case M_JOIN: {
        ja_check(st, pos, a, 1, NULL, name);
        const struct jv *it = ja_get(a, 0, NULL);
        if (!it)
            jx_fail(&st->c, -EINVAL, pos, "join takes one argument");
        struct jlist *l = jinja_iter(st, pos, *it);
        struct sbuf b;
        sb_init(&b, &st->c, st->lim.max_output);
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != JV_STR)
                jx_fail(&st->c, -EINVAL, pos, "join: sequence item %zu: expected str, %s found", i,
                        jv_type_name(l->v[i]));
            if (i)
                sb_put(&b, s->s, s->len);
            sb_put(&b, l->v[i].s->s, l->v[i].s->len);
        }
        return jv_str(sb_str(&b));
    }
    case M_FORMAT:
        return jv_str(str_format(st, pos, s, a));
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        ja_check(st, pos, a, 1, NULL, name);
        const struct jstr *x = str_param(st, pos, a, 0, NULL, name);
        if (!x)
            jx_fail(&st->c, -EINVAL, pos, "%s takes a string", name);
        if (x->len > s->len)
            return jv_str(s);
        if (m == M_REMOVEPREFIX && memcmp(s->s, x->s, x->len) == 0)
            return jv_str(js_new(&st->c, s->s + x->len, s->len - x->len));
        if (m == M_REMOVESUFFIX && memcmp(s->s + s->len - x->len, x->s, x->len) == 0)
            return jv_str(js_new(&st->c, s->s, s->len - x->len));
        return jv_str(s);
    }
    default:
        ja_check(st, pos, a, 0, NULL, name);
        return jv_bool(str_class(s, m));
    }
}

struct jv jinja_call_method(struct jstate *st, uint32_t pos, const struct jfunc *f,
                            const struct jargs *a)
{
    struct jv self = f->self;
    const char *name = f->name->s;
    enum mid m = (enum mid)f->id;
    if (self.t == JV_STR)
        return str_method(st, pos, self.s, m, a, name);
    switch (m) {
    case M_ITEMS:
    case M_KEYS:
    case M_VALUES: {
        ja_check(st, pos, a, 0, NULL, name);
        struct jlist *l = jl_new(&st->c, self.d->n);
        l->view = m == M_ITEMS ? VIEW_ITEMS : m == M_KEYS ? VIEW_KEYS : VIEW_VALUES;
        for (size_t i = 0; i < self.d->n; i++) {
            if (m == M_KEYS) {
                jl_push(&st->c, l, jv_str(self.d->k[i]));
            } else if (m == M_VALUES) {
                jl_push(&st->c, l, self.d->v[i]);
            } else {
                struct jlist *pair = jl_new(&st->c, 2);
                pair->tuple = true;
                jl_push(&st->c, pair, jv_str(self.d->k[i]));
                jl_push(&st->c, pair, self.d->v[i]);
                jl_push(&st->c, l, jv_list(pair));
            }
        }
        return jv_list(l);
    }
    case M_GET: {
        ja_check(st, pos, a, 2, NULL, name);
        const struct jv *k = ja_get(a, 0, NULL), *d = ja_get(a, 1, NULL);
        if (!k)
            jx_fail(&st->c, -EINVAL, pos, "get expected at least 1 argument, got 0");
        struct jv *v = k->t == JV_STR ? jd_get(self.d, k->s->s, k->s->len) : NULL;
        return v ? *v : d ? *d : jv_none();
    }
    case M_COPY: {
        ja_check(st, pos, a, 0, NULL, name);
        struct jdict *d = jd_new(&st->c, self.d->n);
        for (size_t i = 0; i < self.d->n; i++)
            jd_set(&st->c, d, self.d->k[i], self.d->v[i]);
        return jv_dict(d);
    }
    case M_LIST_INDEX:
    case M_LIST_COUNT: {
        ja_check(st, pos, a, 1, NULL, name);
        const struct jv *x = ja_get(a, 0, NULL);
        if (!x)
            jx_fail(&st->c, -EINVAL, pos, "%s takes exactly one argument", name);
        int64_t n = 0;
        for (size_t i = 0; i < self.l->n; i++) {
            if (!jv_equal(&st->c, self.l->v[i], *x))
                continue;
            if (m == M_LIST_INDEX)
                return jv_int((int64_t)i);
            n++;
        }
        if (m == M_LIST_INDEX)
            jx_fail(&st->c, -EINVAL, pos, "list.index(x): x not in list");
        return jv_int(n);
    }
    case M_LOOP_CYCLE:
        if (!a->n || a->nk)
            jx_fail(&st->c, -EINVAL, pos, "loop.cycle needs at least one positional argument");
        return a->v[self.loop->i % a->n];
    case M_DICT_UNSAFE:
    case M_LIST_UNSAFE:
        jx_fail(&st->c, -EINVAL, pos,
                "%s.%s() would modify a value; the template sandbox does not allow it",
                jv_type_name(self), name);
    default:
        jx_fail(&st->c, -EINVAL, pos, "internal error: method %s", name);
    }
}
