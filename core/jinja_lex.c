/*
 * jinja_lex.c — template source → tokens, with jinja2's whitespace rules as
 * Hugging Face configures them (trim_blocks=True, lstrip_blocks=True):
 *
 *   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`,
 *     `-#}` strip all whitespace after it;
 *   - trim_blocks: the first newline after `%}` or `#}` is dropped (`+%}`
 *     keeps it; `}}` never drops one);
 *   - lstrip_blocks: spaces and tabs between the start of a line and a `{%`
 *     or `{#` are dropped (`{%+` keeps them; never before `{{`);
 *   - `{% raw %}...{% endraw %}` is text.
 *
 * Inside a tag, `}}` and `%}` only end it outside brackets, so dict
 * literals work. String literals are decoded as Python's unicode-escape
 * codec decodes them, which is what jinja2 does. jinja_parse, at the end,
 * normalizes the source (newlines, the trailing one) before lexing it.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
    struct jctx *c;
    const char *s;
    size_t n, pos;
    struct jtok *tok;
    size_t ntok, cap;
    bool line_starting; /* the last match ended with a newline (or at the start) */
};

static struct jtok *push(struct lexer *lx, enum jtok_type t, size_t pos)
{
    if (lx->ntok == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        lx->tok = jx_grow(lx->c, lx->tok, lx->ntok * sizeof *lx->tok, cap * sizeof *lx->tok);
        lx->cap = cap;
    }
    struct jtok *k = &lx->tok[lx->ntok++];
    memset(k, 0, sizeof *k);
    k->t = t;
    k->pos = (uint32_t)pos;
    return k;
}

static void push_data(struct lexer *lx, size_t from, size_t to)
{
    if (to > from)
        push(lx, JT_DATA, from)->s = js_new(lx->c, lx->s + from, to - from);
}

/* Whitespace (str.isspace) of the code point at i, and its length. */
static size_t ws_at(const char *s, size_t n, size_t i)
{
    uint32_t cp;
    size_t len = u8_dec(s + i, s + n, &cp);
    return py_isspace(cp) ? len : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    size_t k;
    while (i < n && (k = ws_at(s, n, i)) > 0)
        i += k;
    return i;
}

/* str.rstrip() of s[from, to): the new end. */
static size_t rstrip(const char *s, size_t from, size_t to)
{
    while (to > from) {
        size_t b = to - 1;
        while (b > from && ((unsigned char)s[b] & 0xc0) == 0x80)
            b--;
        if (!ws_at(s, to, b))
            break;
        to = b;
    }
    return to;
}

/* The text before a tag: whitespace control by its sign (or lstrip_blocks
 * for `{%` and `{#`), then a data token. */
static void data_before_tag(struct lexer *lx, size_t from, size_t tag, char sign, bool lstrip)
{
    size_t end = tag;
    if (sign == '-') {
        end = rstrip(lx->s, from, tag);
    } else if (sign != '+' && lstrip) {
        size_t l = tag;
        while (l > from && lx->s[l - 1] != '\n')
            l--;
        bool after_nl = l > from;
        if ((after_nl || lx->line_starting) && l < tag && skip_ws(lx->s, tag, l) == tag)
            end = l;
    }
    push_data(lx, from, end);
}

static bool starts(const struct lexer *lx, size_t i, const char *p)
{
    size_t k = strlen(p);
    return i <= lx->n && lx->n - i >= k && memcmp(lx->s + i, p, k) == 0;
}

/* Matches `{%[-+]?\s*NAME\s*` at i; returns the position after it or 0. */
static size_t match_tag_name(const struct lexer *lx, size_t i, const char *name)
{
    if (!starts(lx, i, "{%"))
        return 0;
    i += 2;
    if (i < lx->n && (lx->s[i] == '-' || lx->s[i] == '+'))
        i++;
    i = skip_ws(lx->s, lx->n, i);
    if (!starts(lx, i, name))
        return 0;
    i += strlen(name);
    size_t j = skip_ws(lx->s, lx->n, i);
    if (j == i && !starts(lx, i, "-%}") && !starts(lx, i, "%}") && !starts(lx, i, "+%}"))
        return 0;
    return j;
}

/* {% raw %}...{% endraw %}: the raw text becomes one data token. */
static void lex_raw(struct lexer *lx, size_t tag, size_t after_name)
{
    size_t i = after_name;
    if (starts(lx, i, "-%}"))
        i = skip_ws(lx->s, lx->n, i + 3);
    else if (starts(lx, i, "%}"))
        i += 2;
    else
        jx_fail(lx->c, -EINVAL, (uint32_t)tag, "expected '%%}' after 'raw'");
    lx->line_starting = lx->s[i - 1] == '\n';
    for (size_t j = i; j < lx->n; j++) {
        size_t k = match_tag_name(lx, j, "endraw");
        if (!k)
            continue;
        char sign = lx->s[j + 2] == '-' || lx->s[j + 2] == '+' ? lx->s[j + 2] : 0;
        data_before_tag(lx, i, j, sign, true);
        if (starts(lx, k, "+%}")) {
            k += 3;
        } else if (starts(lx, k, "-%}")) {
            k = skip_ws(lx->s, lx->n, k + 3);
        } else if (starts(lx, k, "%}")) {
            k += 2;
            if (k < lx->n && lx->s[k] == '\n')
                k++;
        } else {
            jx_fail(lx->c, -EINVAL, (uint32_t)j, "expected '%%}' after 'endraw'");
        }
        lx->pos = k;
        lx->line_starting = lx->s[k - 1] == '\n';
        return;
    }
    jx_fail(lx->c, -EINVAL, (uint32_t)tag, "'raw' block is never closed (missing endraw)");
}

static void lex_comment(struct lexer *lx, size_t tag, size_t body)
{
    for (size_t j = body; j + 1 < lx->n; j++) {
        if (lx->s[j] != '#' || lx->s[j + 1] != '}')
            continue;
        char sign = j > body && (lx->s[j - 1] == '-' || lx->s[j - 1] == '+') ? lx->s[j - 1] : 0;
        size_t k = j + 2;
        if (sign == '-')
            k = skip_ws(lx->s, lx->n, k);
        else if (sign != '+' && k < lx->n && lx->s[k] == '\n')
            k++;
        lx->pos = k;
        lx->line_starting = lx->s[k - 1] == '\n';
        return;
    }
    jx_fail(lx->c, -EINVAL, (uint32_t)tag, "comment is never closed (missing '#}')");
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string literal at i (quote char s[i]); returns the position after it. */
static size_t lex_string(struct lexer *lx, size_t i)
{
    char q = lx->s[i];
    size_t start = i++;
    struct sbuf b;
    sb_init(&b, lx->c, 0);
    for (;;) {
        if (i >= lx->n)
            jx_fail(lx->c, -EINVAL, (uint32_t)start, "string literal is never closed");
        char ch = lx->s[i];
        if (ch == q)
            break;
        if (ch != '\\') {
            sb_putc(&b, ch);
            i++;
            continue;
        }
        if (i + 1 >= lx->n)
            jx_fail(lx->c, -EINVAL, (uint32_t)start, "string literal is never closed");
        char e = lx->s[i + 1];
        i += 2;
        uint32_t cp = 0;
        int ndig = 0;
        switch (e) {
        case '\n': continue; /* line continuation */
        case '\\': sb_putc(&b, '\\'); continue;
        case '\'': sb_putc(&b, '\''); continue;
        case '"': sb_putc(&b, '"'); continue;
        case 'a': sb_putc(&b, '\a'); continue;
        case 'b': sb_putc(&b, '\b'); continue;
        case 'f': sb_putc(&b, '\f'); continue;
        case 'n': sb_putc(&b, '\n'); continue;
        case 'r': sb_putc(&b, '\r'); continue;
        case 't': sb_putc(&b, '\t'); continue;
        case 'v': sb_putc(&b, '\v'); continue;
        case 'x': ndig = 2; break;
        case 'u': ndig = 4; break;
        case 'U': ndig = 8; break;
        case 'N':
            jx_fail(lx->c, -EINVAL, (uint32_t)(i - 2), "unsupported escape \\N{...} in a string");
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < lx->n && lx->s[i] >= '0' && lx->s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(lx->s[i++] - '0');
                goto emit;
            }
            sb_putc(&b, '\\'); /* unknown escapes stay as written */
            i--;
            continue;
        }
        for (int k = 0; k < ndig; k++) {
            int h = i < lx->n ? hexval(lx->s[i]) : -1;
            if (h < 0)
                jx_fail(lx->c, -EINVAL, (uint32_t)(i - 2 - (size_t)k),
                        "truncated \\%c escape in a string", e);
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
    emit:
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            jx_fail(lx->c, -EINVAL, (uint32_t)start, "escape for an invalid code point U+%X", cp);
        char enc[4];
        sb_put(&b, enc, u8_enc(cp, enc));
    }
    push(lx, JT_STRING, start)->s = sb_str(&b);
    return i + 1;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_name_start(char ch) { return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
static bool is_name(char ch) { return is_name_start(ch) || is_digit(ch); }

static size_t lex_number(struct lexer *lx, size_t i)
{
    const char *s = lx->s;
    size_t start = i;
    char buf[128];
    size_t nb = 0;
    int base = 10;
    if (s[i] == '0' && i + 1 < lx->n && strchr("xXoObB", s[i + 1]) && s[i + 1]) {
        base = s[i + 1] == 'x' || s[i + 1] == 'X' ? 16 : s[i + 1] == 'o' || s[i + 1] == 'O' ? 8 : 2;
        i += 2;
        while (i < lx->n && (s[i] == '_' || hexval(s[i]) >= 0) && nb < sizeof buf - 1) {
            if (s[i] != '_') {
                if (hexval(s[i]) >= base)
                    break;
                buf[nb++] = s[i];
            }
            i++;
        }
        if (!nb)
            jx_fail(lx->c, -EINVAL, (uint32_t)start, "invalid number literal");
    } else {
        bool is_float = false;
        while (i < lx->n && (is_digit(s[i]) || (s[i] == '_' && i + 1 < lx->n && is_digit(s[i + 1]))) &&
               nb < sizeof buf - 8) {
            if (s[i] != '_')
                buf[nb++] = s[i];
            i++;
        }
        /* no float right after '.': `x.0.1` is two subscripts */
        bool after_dot = start > 0 && s[start - 1] == '.';
        if (!after_dot && i + 1 < lx->n && s[i] == '.' && is_digit(s[i + 1])) {
            is_float = true;
            buf[nb++] = s[i++];
            while (i < lx->n && (is_digit(s[i]) || s[i] == '_') && nb < sizeof buf - 8) {
                if (s[i] != '_')
                    buf[nb++] = s[i];
                i++;
            }
        }
        if (!after_dot && i < lx->n && (s[i] == 'e' || s[i] == 'E')) {
            size_t j = i + 1;
            if (j < lx->n && (s[j] == '+' || s[j] == '-'))
                j++;
            if (j < lx->n && is_digit(s[j])) {
                is_float = true;
                buf[nb++] = 'e';
                if (s[i + 1] == '-')
                    buf[nb++] = '-';
                i = j;
                while (i < lx->n && (is_digit(s[i]) || s[i] == '_') && nb < sizeof buf - 1) {
                    if (s[i] != '_')
                        buf[nb++] = s[i];
                    i++;
                }
            }
        }
        buf[nb] = '\0';
        if (is_float) {
            push(lx, JT_FLOAT, start)->f = strtod(buf, NULL);
            return i;
        }
    }
    buf[nb] = '\0';
    errno = 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, base);
    if (errno || v > INT64_MAX || nb >= sizeof buf - 8)
        jx_fail(lx->c, -EINVAL, (uint32_t)start, "integer literal too large");
    push(lx, JT_INT, start)->i = (int64_t)v;
    return i;
}

static const struct {
    const char *text;
    enum jop op;
} ops[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE},
    {">=", OP_GE}, {"+", OP_ADD}, {"-", OP_SUB}, {"*", OP_MUL}, {"/", OP_DIV},
    {"%", OP_MOD}, {"~", OP_TILDE}, {"(", OP_LPAREN}, {")", OP_RPAREN}, {"[", OP_LBRACKET},
    {"]", OP_RBRACKET}, {"{", OP_LBRACE}, {"}", OP_RBRACE}, {"<", OP_LT}, {">", OP_GT},
    {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON}, {"|", OP_PIPE}, {",", OP_COMMA},
    {";", OP_SEMICOLON},
};

/* The inside of a `{{ }}` or `{% %}` tag, up to and including its end. */
static void lex_tag(struct lexer *lx, size_t tag, bool block)
{
    int depth = 0;
    size_t i = lx->pos;
    for (;;) {
        i = skip_ws(lx->s, lx->n, i);
        if (i >= lx->n)
            jx_fail(lx->c, -EINVAL, (uint32_t)tag, "tag is never closed (missing '%s')",
                    block ? "%}" : "}}");
        if (depth == 0) {
            const char *end = block ? "%}" : "}}";
            size_t k = 0;
            if (lx->s[i] == '-' && starts(lx, i + 1, end)) {
                push(lx, block ? JT_BLOCK_END : JT_VAR_END, i);
                k = skip_ws(lx->s, lx->n, i + 3);
            } else if (block && starts(lx, i, "+%}")) {
                push(lx, JT_BLOCK_END, i);
                k = i + 3;
            } else if (starts(lx, i, end)) {
                push(lx, block ? JT_BLOCK_END : JT_VAR_END, i);
                k = i + 2;
                if (block && k < lx->n && lx->s[k] == '\n')
                    k++; /* trim_blocks */
            }
            if (k) {
                lx->pos = k;
                lx->line_starting = lx->s[k - 1] == '\n';
                return;
            }
        }
        char ch = lx->s[i];
        if (is_name_start(ch)) {
            size_t j = i;
            while (j < lx->n && is_name(lx->s[j]))
                j++;
            push(lx, JT_NAME, i)->s = js_new(lx->c, lx->s + i, j - i);
            i = j;
        } else if (is_digit(ch)) {
            i = lex_number(lx, i);
        } else if (ch == '\'' || ch == '"') {
            i = lex_string(lx, i);
        } else {
            size_t k;
            for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
                if (starts(lx, i, ops[k].text))
                    break;
            if (k == sizeof ops / sizeof ops[0]) {
                uint32_t cp;
                u8_dec(lx->s + i, lx->s + lx->n, &cp);
                if (cp >= 0x20 && cp < 0x7f)
                    jx_fail(lx->c, -EINVAL, (uint32_t)i, "unexpected character '%c'", (char)cp);
                jx_fail(lx->c, -EINVAL, (uint32_t)i, "unexpected character U+%04X", cp);
            }
            enum jop op = ops[k].op;
            if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE)
                depth++;
            else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE)
                depth = depth > 0 ? depth - 1 : 0; /* the parser reports the stray one */
            push(lx, JT_OP, i)->op = op;
            i += strlen(ops[k].text);
        }
    }
}

struct jtok *jinja_lex(struct jctx *c, const char *src, size_t len, size_t *n_tok)
{
    struct lexer lx = {.c = c, .s = src, .n = len, .line_starting = true};
    while (lx.pos < lx.n) {
        size_t t = lx.pos;
        while (t + 1 < lx.n && !(src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' ||
                                                   src[t + 1] == '#')))
            t++;
        if (t + 1 >= lx.n) {
            push_data(&lx, lx.pos, lx.n);
            break;
        }
        char kind = src[t + 1];
        char sign = t + 2 < lx.n && (src[t + 2] == '-' || src[t + 2] == '+') ? src[t + 2] : 0;
        size_t body = t + 2 + (sign ? 1 : 0);
        data_before_tag(&lx, lx.pos, t, sign, kind != '{');
        if (kind == '#') {
            lex_comment(&lx, t, body);
            continue;
        }
        size_t raw = kind == '%' ? match_tag_name(&lx, t, "raw") : 0;
        if (raw) {
            lex_raw(&lx, t, raw);
            continue;
        }
        push(&lx, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, t);
        lx.pos = body;
        lex_tag(&lx, t, kind == '%');
    }
    push(&lx, JT_EOF, lx.n);
    *n_tok = lx.ntok;
    return lx.tok;
}

/* ---- entry ------------------------------------------------------------------------------ */

int jinja_parse(const char *src, size_t len, struct jinja_tmpl **out, struct hr_err *err)
{
    hr_err_clear(err);
    if (len > JINJA_MAX_TEMPLATE)
        return hr_err_set(err, -E2BIG, -1, "template: longer than %d MiB", JINJA_MAX_TEMPLATE >> 20);
    struct jinja_tmpl *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->c.err = err;
    t->c.arena.limit = (size_t)64 << 20;
    if (len > t->c.arena.limit / 16)
        t->c.arena.limit = len * 16;
    if (setjmp(t->c.jb)) {
        int rc = t->c.rc;
        jinja_tmpl_free(t);
        return rc;
    }
    size_t bad;
    if (!u8_valid(src, len, &bad)) {
        t->c.src = src;
        t->c.src_len = len;
        jx_fail(&t->c, -EINVAL, (uint32_t)bad, "invalid UTF-8");
    }
    /* jinja2 normalizes \r\n and \r to \n and drops one trailing newline
     * (keep_trailing_newline=False) */
    char *s = jx_alloc(&t->c, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n')
        n--;
    s[n] = '\0';
    t->c.src = s;
    t->c.src_len = n;
    size_t n_tok;
    struct jtok *tok = jinja_lex(&t->c, s, n, &n_tok);
    t->root = jinja_parse_tokens(&t->c, tok, n_tok);
    t->c.err = NULL; /* the render has its own */
    *out = t;
    return 0;
}

void jinja_tmpl_free(struct jinja_tmpl *t)
{
    if (!t)
        return;
    jarena_free(&t->c.arena);
    free(t);
}
