/*
 * jinja_value.c — the Jinja interpreter's memory, errors and values: the
 * arena every parse and render allocates from, failing with line:column,
 * strings, lists and dicts, conversion from jansson, and the Python
 * behaviour templates observe: truthiness, ==, str(), repr(), repr(float)
 * and json.dumps (the reference's tojson).
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- arena -------------------------------------------------------------------------- */

struct jchunk {
    struct jchunk *next;
    size_t size, used;
    _Alignas(16) char data[];
};

#define CHUNK_SIZE ((size_t)64 << 10)

void *jx_alloc(struct jctx *c, size_t size)
{
    struct jarena *a = &c->arena;
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    struct jchunk *h = a->head;
    if (!h || h->size - h->used < size) {
        size_t csize = size > CHUNK_SIZE / 4 ? size : CHUNK_SIZE;
        if (csize > a->limit || a->used > a->limit - csize)
            jx_fail(c, -E2BIG, JPOS_NONE, "template uses more than %zu MiB of memory",
                    a->limit >> 20);
        struct jchunk *n = malloc(sizeof *n + csize);
        if (!n)
            jx_fail(c, -ENOMEM, JPOS_NONE, "out of memory");
        n->size = csize;
        n->used = 0;
        a->used += csize;
        if (h && csize != CHUNK_SIZE) {
            /* a big block: keep filling the current chunk afterwards */
            n->next = h->next;
            h->next = n;
        } else {
            n->next = h;
            a->head = n;
        }
        h = n;
    }
    char *p = h->data + h->used;
    h->used += size;
    memset(p, 0, size);
    a->last = p;
    a->last_size = size;
    return p;
}

void *jx_grow(struct jctx *c, void *p, size_t old, size_t size)
{
    struct jarena *a = &c->arena;
    if (p && p == a->last) {
        struct jchunk *h = a->head;
        size_t need = (size + 15) & ~(size_t)15;
        if (h && (char *)p >= h->data && (char *)p < h->data + h->size &&
            (size_t)((char *)p - h->data) + need <= h->size) {
            h->used = (size_t)((char *)p - h->data) + need;
            a->last_size = need;
            return p;
        }
    }
    void *n = jx_alloc(c, size);
    if (old)
        memcpy(n, p, old < size ? old : size);
    return n;
}

void jarena_free(struct jarena *a)
{
    struct jchunk *h = a->head;
    while (h) {
        struct jchunk *n = h->next;
        free(h);
        h = n;
    }
    a->head = NULL;
    a->used = 0;
    a->last = NULL;
}

_Noreturn void jx_fail(struct jctx *c, int code, uint32_t pos, const char *fmt, ...)
{
    struct hr_err *err = c->err;
    if (err) {
        char msg[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (pos != JPOS_NONE && c->src && pos <= c->src_len) {
            int line = 1, col = 1;
            for (uint32_t i = 0; i < pos; i++) {
                unsigned char ch = (unsigned char)c->src[i];
                if (ch == '\n') {
                    line++;
                    col = 1;
                } else if ((ch & 0xc0) != 0x80) {
                    col++;
                }
            }
            hr_err_set(err, code, pos, "template:%d:%d: %s", line, col, msg);
            err->line = line;
            err->column = col;
        } else {
            hr_err_set(err, code, -1, "template: %s", msg);
        }
    }
    c->rc = code;
    longjmp(c->jb, 1);
}

/* ---- strings, lists, dicts ------------------------------------------------------ */

const struct jstr *js_new(struct jctx *c, const char *p, size_t n)
{
    if (n > SIZE_MAX / 2)
        jx_fail(c, -E2BIG, JPOS_NONE, "string too long");
    struct jstr *s = jx_alloc(c, sizeof *s + n + 1);
    s->len = n;
    if (n)
        memcpy(s->s, p, n);
    s->s[n] = '\0';
    return s;
}

const struct jstr *js_cstr(struct jctx *c, const char *p)
{
    return js_new(c, p, strlen(p));
}

bool js_eq(const struct jstr *s, const char *p, size_t n)
{
    return s->len == n && memcmp(s->s, p, n) == 0;
}

struct jlist *jl_new(struct jctx *c, size_t cap)
{
    struct jlist *l = jx_alloc(c, sizeof *l);
    if (cap) {
        if (cap > SIZE_MAX / sizeof(struct jv) / 2)
            jx_fail(c, -E2BIG, JPOS_NONE, "list too long");
        l->v = jx_alloc(c, cap * sizeof *l->v);
        l->cap = cap;
    }
    return l;
}

void jl_push(struct jctx *c, struct jlist *l, struct jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(struct jv) / 2)
            jx_fail(c, -E2BIG, JPOS_NONE, "list too long");
        l->v = jx_grow(c, l->v, l->n * sizeof *l->v, cap * sizeof *l->v);
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

struct jdict *jd_new(struct jctx *c, size_t cap)
{
    struct jdict *d = jx_alloc(c, sizeof *d);
    if (cap) {
        d->k = jx_alloc(c, cap * sizeof *d->k);
        d->v = jx_alloc(c, cap * sizeof *d->v);
        d->cap = cap;
    }
    return d;
}

/* Linear search: template dicts (messages, tool schemas, scopes) are small. */
struct jv *jd_get(const struct jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (js_eq(d->k[i], k, n))
            return &d->v[i];
    return NULL;
}

void jd_set(struct jctx *c, struct jdict *d, const struct jstr *k, struct jv v)
{
    struct jv *slot = jd_get(d, k->s, k->len);
    if (slot) { /* Python keeps the first position of a key */
        *slot = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(struct jv) / 2)
            jx_fail(c, -E2BIG, JPOS_NONE, "dict too large");
        d->k = jx_grow(c, d->k, d->n * sizeof *d->k, cap * sizeof *d->k);
        d->v = jx_grow(c, d->v, d->n * sizeof *d->v, cap * sizeof *d->v);
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

struct jv jv_from_json(struct jctx *c, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        struct jdict *d = jd_new(c, json_object_size(j));
        const char *k;
        json_t *v;
        /* jansson (>= 2.8) iterates objects in insertion order */
        json_object_foreach((json_t *)j, k, v)
        {
            jd_set(c, d, js_cstr(c, k), jv_from_json(c, v));
        }
        return jv_dict(d);
    }
    case JSON_ARRAY: {
        struct jlist *l = jl_new(c, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            jl_push(c, l, jv_from_json(c, json_array_get(j, i)));
        return jv_list(l);
    }
    case JSON_STRING:
        return jv_str(js_new(c, json_string_value(j), json_string_length(j)));
    case JSON_INTEGER:
        return jv_int(json_integer_value(j));
    case JSON_REAL:
        return jv_float(json_real_value(j));
    case JSON_TRUE:
        return jv_bool(true);
    case JSON_FALSE:
        return jv_bool(false);
    case JSON_NULL:
    default:
        return jv_none();
    }
}

/* ---- truthiness, equality, names ------------------------------------------------- */

bool jv_truthy(struct jv v)
{
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v.b;
    case JV_INT:
        return v.i != 0;
    case JV_FLOAT:
        return v.f != 0.0;
    case JV_STR:
        return v.s->len != 0;
    case JV_LIST:
        return v.l->n != 0 || v.l->view == VIEW_GEN;
    case JV_DICT:
        return v.d->n != 0;
    default:
        return true;
    }
}

double jv_num(struct jv v)
{
    return v.t == JV_FLOAT ? v.f : v.t == JV_BOOL ? (double)v.b : (double)v.i;
}

#define MAX_VALUE_DEPTH 512 /* bounds the stack of every walk over a value */

static bool eq_at(struct jctx *c, struct jv a, struct jv b, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        jx_fail(c, -E2BIG, JPOS_NONE, "values nested more than %d levels deep", MAX_VALUE_DEPTH);
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_BOOL ? a.b : a.i) == (b.t == JV_BOOL ? b.b : b.i);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t)
        return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return js_eq(a.s, b.s->s, b.s->len);
    case JV_LIST:
        if (a.l->view == VIEW_GEN || b.l->view == VIEW_GEN)
            return a.l == b.l;
        if (a.l->tuple != b.l->tuple || a.l->view != b.l->view || a.l->n != b.l->n)
            return false;
        for (size_t i = 0; i < a.l->n; i++)
            if (!eq_at(c, a.l->v[i], b.l->v[i], depth + 1))
                return false;
        return true;
    case JV_DICT:
        if (a.d->n != b.d->n)
            return false;
        for (size_t i = 0; i < a.d->n; i++) {
            struct jv *o = jd_get(b.d, a.d->k[i]->s, a.d->k[i]->len);
            if (!o || !eq_at(c, a.d->v[i], *o, depth + 1))
                return false;
        }
        return true;
    case JV_NS:
        return a.d == b.d;
    case JV_FUNC:
        return a.fn == b.fn;
    case JV_LOOP:
        return a.loop == b.loop;
    default:
        return false;
    }
}

bool jv_equal(struct jctx *c, struct jv a, struct jv b)
{
    return eq_at(c, a, b, 0);
}

const char *jv_type_name(struct jv v)
{
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST:
        return v.l->view == VIEW_GEN ? "generator" : v.l->view ? "dict view" : v.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_FUNC: return "function";
    case JV_LOOP: return "LoopContext";
    }
    return "?";
}

/* ---- string builder ------------------------------------------------------------------ */

void sb_init(struct sbuf *b, struct jctx *c, size_t max)
{
    b->c = c;
    b->p = NULL;
    b->n = b->cap = 0;
    b->max = max;
}

static void sb_reserve(struct sbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 4 - b->n || (b->max && b->n + extra > b->max))
        jx_fail(b->c, -E2BIG, JPOS_NONE, "rendered text is longer than %zu MiB", b->max >> 20);
    if (b->n + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1)
        cap *= 2;
    b->p = jx_grow(b->c, b->p, b->n, cap);
    b->cap = cap;
}

void sb_put(struct sbuf *b, const char *p, size_t n)
{
    if (!n)
        return;
    sb_reserve(b, n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void sb_putc(struct sbuf *b, char ch)
{
    sb_reserve(b, 1);
    b->p[b->n++] = ch;
}

void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

const struct jstr *sb_str(struct sbuf *b)
{
    return js_new(b->c, b->p ? b->p : "", b->n);
}

/* ---- str(), repr() ----------------------------------------------------------------- */

void py_float_repr(char buf[32], double d)
{
    if (isnan(d)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(d)) {
        strcpy(buf, d < 0 ? "-inf" : "inf");
        return;
    }
    if (d == 0) {
        strcpy(buf, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    /* the shortest digits that read back as d, as Python's repr */
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    char digits[24];
    int nd = 0, e10 = 0;
    bool neg = false;
    const char *s = tmp;
    if (*s == '-') {
        neg = true;
        s++;
    }
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < 20)
            digits[nd++] = *s;
    if (*s == 'e')
        e10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (e10 >= -4 && e10 < 16) {
        if (e10 >= 0) {
            for (int i = 0; i <= e10; i++)
                *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > e10 + 1)
                for (int i = e10 + 1; i < nd; i++)
                    *o++ = digits[i];
            else
                *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -e10 - 1; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = digits[i];
        }
        *o = '\0';
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++)
                *o++ = digits[i];
        }
        int ex = e10 < 0 ? -e10 : e10; /* |e10| <= 324 */
        *o++ = 'e';
        *o++ = e10 < 0 ? '-' : '+';
        if (ex >= 100)
            *o++ = (char)('0' + ex / 100);
        *o++ = (char)('0' + ex / 10 % 10);
        *o++ = (char)('0' + ex % 10);
        *o = '\0';
    }
}

static void repr_str(struct sbuf *b, const struct jstr *s)
{
    bool sq = memchr(s->s, '\'', s->len) != NULL, dq = memchr(s->s, '"', s->len) != NULL;
    char q = sq && !dq ? '"' : '\'';
    sb_putc(b, q);
    const char *p = s->s, *end = s->s + s->len;
    while (p < end) {
        uint32_t cp;
        size_t n = u8_dec(p, end, &cp);
        if (cp == (uint32_t)q || cp == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)cp);
        } else if (cp == '\n') {
            sb_puts(b, "\\n");
        } else if (cp == '\r') {
            sb_puts(b, "\\r");
        } else if (cp == '\t') {
            sb_puts(b, "\\t");
        } else if (cp < 0x20 || cp == 0x7f) {
            sb_printf(b, "\\x%02x", cp);
        } else if (cp < 0x80) {
            sb_putc(b, (char)cp);
        } else {
            /* str.isprintable(): not Other, not a separator other than space */
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
            bool printable = !(cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                               cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
                               cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_ZL ||
                               cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_ZS);
            if (printable)
                sb_put(b, p, n);
            else if (cp < 0x100)
                sb_printf(b, "\\x%02x", cp);
            else if (cp < 0x10000)
                sb_printf(b, "\\u%04x", cp);
            else
                sb_printf(b, "\\U%08x", cp);
        }
        p += n;
    }
    sb_putc(b, q);
}

static void repr_at(struct sbuf *b, struct jv v, bool top, int depth);

static void repr_dict_body(struct sbuf *b, const struct jdict *d, int depth)
{
    sb_putc(b, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i)
            sb_puts(b, ", ");
        repr_str(b, d->k[i]);
        sb_puts(b, ": ");
        repr_at(b, d->v[i], false, depth + 1);
    }
    sb_putc(b, '}');
}

static void repr_at(struct sbuf *b, struct jv v, bool top, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        jx_fail(b->c, -E2BIG, JPOS_NONE, "value nested more than %d levels deep", MAX_VALUE_DEPTH);
    char num[32];
    switch (v.t) {
    case JV_UNDEF:
        if (!top)
            sb_puts(b, "Undefined");
        return;
    case JV_NONE:
        sb_puts(b, "None");
        return;
    case JV_BOOL:
        sb_puts(b, v.b ? "True" : "False");
        return;
    case JV_INT:
        sb_printf(b, "%lld", (long long)v.i);
        return;
    case JV_FLOAT:
        py_float_repr(num, v.f);
        sb_puts(b, num);
        return;
    case JV_STR:
        if (top)
            sb_put(b, v.s->s, v.s->len);
        else
            repr_str(b, v.s);
        return;
    case JV_LIST:
        if (v.l->view == VIEW_GEN) {
            sb_puts(b, "<generator object>");
            return;
        }
        if (v.l->view) {
            static const char *const names[] = {"", "dict_items(", "dict_keys(", "dict_values("};
            sb_puts(b, names[v.l->view]);
        }
        sb_putc(b, v.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i)
                sb_puts(b, ", ");
            repr_at(b, v.l->v[i], false, depth + 1);
        }
        if (v.l->tuple && v.l->n == 1)
            sb_putc(b, ',');
        sb_putc(b, v.l->tuple ? ')' : ']');
        if (v.l->view)
            sb_putc(b, ')');
        return;
    case JV_DICT:
        repr_dict_body(b, v.d, depth);
        return;
    case JV_NS:
        sb_puts(b, "<Namespace ");
        repr_dict_body(b, v.d, depth);
        sb_putc(b, '>');
        return;
    case JV_FUNC:
        sb_puts(b, v.fn->kind == JF_MACRO ? "<Macro>" : "<function>");
        return;
    case JV_LOOP:
        sb_printf(b, "<LoopContext %zu/%zu>", v.loop->i + 1, v.loop->items->n);
        return;
    }
}

void py_str(struct sbuf *b, struct jv v)
{
    repr_at(b, v, true, 0);
}

void py_repr(struct sbuf *b, struct jv v)
{
    if (v.t == JV_UNDEF)
        sb_puts(b, "Undefined");
    else
        repr_at(b, v, false, 0);
}

const struct jstr *jv_to_str(struct jctx *c, struct jv v)
{
    if (v.t == JV_STR)
        return v.s;
    struct sbuf b;
    sb_init(&b, c, 0);
    py_str(&b, v);
    return sb_str(&b);
}

/* ---- json.dumps ------------------------------------------------------------------------ */

static void json_str(struct sbuf *b, const char *p, size_t len, bool ascii)
{
    const char *end = p + len;
    sb_putc(b, '"');
    while (p < end) {
        uint32_t cp;
        size_t n = u8_dec(p, end, &cp);
        switch (cp) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\b': sb_puts(b, "\\b"); break;
        case '\f': sb_puts(b, "\\f"); break;
        default:
            if (cp < 0x20 || (ascii && cp > 0x7e && cp < 0x10000)) {
                sb_printf(b, "\\u%04x", cp);
            } else if (ascii && cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                sb_put(b, p, n);
            }
        }
        p += n;
    }
    sb_putc(b, '"');
}

static void json_newline(struct sbuf *b, const struct json_opts *o, int level)
{
    sb_putc(b, '\n');
    for (int i = 0; i < o->indent * level; i++)
        sb_putc(b, ' ');
}

static int json_at(struct sbuf *b, struct jv v, const struct json_opts *o, int level,
                   struct jv *bad)
{
    if (level > MAX_VALUE_DEPTH)
        jx_fail(b->c, -E2BIG, JPOS_NONE, "value nested more than %d levels deep", MAX_VALUE_DEPTH);
    const char *isep = o->item_sep ? o->item_sep : o->indent >= 0 ? "," : ", ";
    const char *ksep = o->key_sep ? o->key_sep : ": ";
    char num[32];
    switch (v.t) {
    case JV_NONE:
        sb_puts(b, "null");
        return 0;
    case JV_BOOL:
        sb_puts(b, v.b ? "true" : "false");
        return 0;
    case JV_INT:
        sb_printf(b, "%lld", (long long)v.i);
        return 0;
    case JV_FLOAT:
        if (isnan(v.f))
            sb_puts(b, "NaN");
        else if (isinf(v.f))
            sb_puts(b, v.f < 0 ? "-Infinity" : "Infinity");
        else {
            py_float_repr(num, v.f);
            sb_puts(b, num);
        }
        return 0;
    case JV_STR:
        json_str(b, v.s->s, v.s->len, o->ensure_ascii);
        return 0;
    case JV_LIST:
        if (v.l->view == VIEW_GEN) {
            *bad = v;
            return -1;
        }
        if (!v.l->n) {
            sb_puts(b, "[]");
            return 0;
        }
        sb_putc(b, '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i)
                sb_puts(b, isep);
            if (o->indent >= 0)
                json_newline(b, o, level + 1);
            if (json_at(b, v.l->v[i], o, level + 1, bad) < 0)
                return -1;
        }
        if (o->indent >= 0)
            json_newline(b, o, level);
        sb_putc(b, ']');
        return 0;
    case JV_DICT: {
        const struct jdict *d = v.d;
        if (!d->n) {
            sb_puts(b, "{}");
            return 0;
        }
        size_t *ord = jx_alloc(b->c, d->n * sizeof *ord);
        for (size_t i = 0; i < d->n; i++) {
            ord[i] = i;
            /* insertion sort by code point (= UTF-8 byte order) when asked */
            for (size_t j = i; o->sort_keys && j > 0; j--) {
                const struct jstr *x = d->k[ord[j - 1]], *y = d->k[ord[j]];
                size_t m = x->len < y->len ? x->len : y->len;
                int cmp = memcmp(x->s, y->s, m);
                if (cmp < 0 || (cmp == 0 && x->len <= y->len))
                    break;
                size_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        }
        sb_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                sb_puts(b, isep);
            if (o->indent >= 0)
                json_newline(b, o, level + 1);
            json_str(b, d->k[ord[i]]->s, d->k[ord[i]]->len, o->ensure_ascii);
            sb_puts(b, ksep);
            if (json_at(b, d->v[ord[i]], o, level + 1, bad) < 0)
                return -1;
        }
        if (o->indent >= 0)
            json_newline(b, o, level);
        sb_putc(b, '}');
        return 0;
    }
    default:
        *bad = v;
        return -1;
    }
}

int py_json(struct sbuf *b, struct jv v, const struct json_opts *o, struct jv *bad)
{
    return json_at(b, v, o, 0, bad);
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

size_t u8_dec(const char *p, const char *end, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t avail = (size_t)(end - p);
    if (s[0] < 0x80 || avail < 2) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xe0) {
        *cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (s[0] < 0xf0 || avail < 4) {
        if (avail < 3) {
            *cp = s[0];
            return 1;
        }
        *cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
          ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    return 4;
}

size_t u8_enc(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t u8_count(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)p[i] & 0xc0) != 0x80;
    return k;
}

size_t u8_offset(const char *p, size_t n, size_t i)
{
    size_t off = 0;
    while (i > 0 && off < n) {
        off++;
        while (off < n && ((unsigned char)p[off] & 0xc0) == 0x80)
            off++;
        i--;
    }
    return off;
}

bool u8_valid(const char *p, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            goto fail;
        }
        if (n - i < len)
            goto fail;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto fail;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto fail;
        i += len;
    }
    return true;
fail:
    if (bad)
        *bad = i;
    return false;
}

bool py_isspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 ||
           cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}
