/*
 * jinja_impl.h — internals shared by the files of the Jinja interpreter:
 * jinja_value.c (arena, values, Python str()/repr()/json.dumps), jinja_lex.c
 * (source → tokens), jinja_parse.c (tokens → AST), jinja_eval.c (the
 * evaluator), jinja_ops.c (operators, attribute and item access),
 * jinja_filters.c (filters), jinja_builtins.c (tests, global functions) and
 * jinja_methods.c (str/dict methods, string operations).
 *
 * Memory and errors. Everything a parse or a render allocates comes from
 * one arena (struct jarena) that is freed as a whole, and every error
 * unwinds with longjmp to the entry point (jinja_parse / jinja_render), as
 * Lua's luaD_throw does: nothing is leaked by unwinding because nothing is
 * owned outside the arena, and the deep recursion of the evaluator needs no
 * error plumbing. The arena counts its bytes against the memory limit.
 *
 * Values follow Python's semantics (jinja2 is Python): str() and repr() of
 * every type, int/float arithmetic with int64 overflow reported as an error
 * (Python would switch to big integers; templates never need them),
 * code-point indexing of strings. Strings are UTF-8, length-counted and
 * NUL-terminated; values are immutable once built except namespaces (the
 * sandbox forbids mutating lists and dicts), so they are shared freely.
 */
#ifndef HEARTH_CORE_JINJA_IMPL_H
#define HEARTH_CORE_JINJA_IMPL_H

#include "err.h"
#include "jinja.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JPOS_NONE UINT32_MAX
#define JINJA_MAX_PARSE_DEPTH 100
#define JINJA_MAX_TEMPLATE (16 << 20) /* bytes of template source (real ones: < 100 KiB) */

/* ---- arena and errors ------------------------------------------------------ */

struct jchunk;
struct jarena {
    struct jchunk *head;
    size_t used;  /* bytes of chunks allocated so far */
    size_t limit; /* max bytes of chunks */
    /* the last allocation, so the string builder can grow it in place */
    char *last;
    size_t last_size;
};

/* What a parse or render carries for failing: the jump target, the caller's
 * hr_err, and the template source to turn a byte offset into line:column. */
struct jctx {
    jmp_buf jb;
    int rc;
    struct hr_err *err;
    const char *src;
    size_t src_len;
    struct jarena arena;
};

/* Fails with `code`, message "template:LINE:COL: <fmt>" (pos = byte offset
 * in the template, JPOS_NONE: no position), and unwinds to the entry. */
_Noreturn void jx_fail(struct jctx *c, int code, uint32_t pos, const char *fmt, ...) HR_PRINTF(4, 5);
void *jx_alloc(struct jctx *c, size_t size);      /* zeroed, 16-byte aligned */
void *jx_grow(struct jctx *c, void *p, size_t old, size_t size); /* like realloc */
void jarena_free(struct jarena *a);

/* ---- values ----------------------------------------------------------------- */

enum jv_type {
    JV_UNDEF, /* jinja2 Undefined: prints "", iterates empty, falsy; errors on use */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* list or tuple (jlist.tuple) */
    JV_DICT,
    JV_NS,   /* namespace(): a dict whose attributes `set ns.x` may change */
    JV_FUNC, /* macro, builtin function, bound method */
    JV_LOOP, /* the `loop` variable of a for loop */
};

struct jstr {
    size_t len;
    char s[]; /* len bytes + NUL */
};

struct jv;
/* Lists that stand for other Python objects: dict views, and the lazy
 * iterators (generators) that filters like select and map return, which
 * are always true, have no len() and can be iterated once. */
enum jview { VIEW_NONE, VIEW_ITEMS, VIEW_KEYS, VIEW_VALUES, VIEW_GEN };
struct jlist {
    size_t n, cap;
    struct jv *v;
    bool tuple;
    uint8_t view; /* a dict's items()/keys()/values(): a list printed as Python prints it */
};
struct jdict {
    size_t n, cap;
    const struct jstr **k;
    struct jv *v;
};
struct jfunc;
struct jloop;

struct jv {
    enum jv_type t;
    /* JV_UNDEF from a missed attribute or list index: the type of the object
     * it was looked up on + 1 (uname: the attribute, NULL for an index) */
    uint32_t owner;
    union {
        bool b;
        int64_t i;
        double f;
        const struct jstr *s;
        struct jlist *l;
        struct jdict *d; /* JV_DICT, JV_NS */
        struct jfunc *fn;
        struct jloop *loop;
        const char *uname; /* JV_UNDEF: what was undefined, for messages (may be NULL) */
    };
};

static inline struct jv jv_undef(const char *name) { return (struct jv){.t = JV_UNDEF, .uname = name}; }
/* "'dict object' has no attribute 'name'" when used */
static inline struct jv jv_undef_attr(struct jv obj, const char *name)
{
    return (struct jv){.t = JV_UNDEF, .owner = (uint32_t)obj.t + 1, .uname = name};
}
static inline struct jv jv_none(void) { return (struct jv){.t = JV_NONE}; }
static inline struct jv jv_bool(bool b) { return (struct jv){.t = JV_BOOL, .b = b}; }
static inline struct jv jv_int(int64_t i) { return (struct jv){.t = JV_INT, .i = i}; }
static inline struct jv jv_float(double f) { return (struct jv){.t = JV_FLOAT, .f = f}; }
static inline struct jv jv_str(const struct jstr *s) { return (struct jv){.t = JV_STR, .s = s}; }
static inline struct jv jv_list(struct jlist *l) { return (struct jv){.t = JV_LIST, .l = l}; }
static inline struct jv jv_dict(struct jdict *d) { return (struct jv){.t = JV_DICT, .d = d}; }
static inline bool jv_is_num(struct jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

const struct jstr *js_new(struct jctx *c, const char *p, size_t n);
const struct jstr *js_cstr(struct jctx *c, const char *p);
bool js_eq(const struct jstr *s, const char *p, size_t n);
static inline bool js_eqc(const struct jstr *s, const char *c)
{
    size_t n = 0;
    while (c[n])
        n++;
    return js_eq(s, c, n);
}

struct jlist *jl_new(struct jctx *c, size_t cap);
void jl_push(struct jctx *c, struct jlist *l, struct jv v);
struct jdict *jd_new(struct jctx *c, size_t cap);
struct jv *jd_get(const struct jdict *d, const char *k, size_t n);
void jd_set(struct jctx *c, struct jdict *d, const struct jstr *k, struct jv v);

/* Deep conversion of a jansson value (object key order is kept). */
struct jv jv_from_json(struct jctx *c, const json_t *j);

bool jv_truthy(struct jv v);
bool jv_equal(struct jctx *c, struct jv a, struct jv b); /* fails past 512 levels */
/* Python's type name ('str', 'NoneType', ...). */
const char *jv_type_name(struct jv v);
/* The number of a JV_INT/JV_BOOL/JV_FLOAT as a double. */
double jv_num(struct jv v);

/* ---- string builder ---------------------------------------------------------- */

struct sbuf {
    struct jctx *c;
    char *p;
    size_t n, cap;
    size_t max; /* longest allowed string (the output limit), 0: none */
};

void sb_init(struct sbuf *b, struct jctx *c, size_t max);
void sb_put(struct sbuf *b, const char *p, size_t n);
void sb_putc(struct sbuf *b, char ch);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) HR_PRINTF(2, 3);
const struct jstr *sb_str(struct sbuf *b); /* the builder stays usable */

/* Python str(v) (Undefined prints ""), repr(v) and repr(float). */
void py_str(struct sbuf *b, struct jv v);
void py_repr(struct sbuf *b, struct jv v);
void py_float_repr(char buf[32], double d);
const struct jstr *jv_to_str(struct jctx *c, struct jv v);

/* json.dumps(v, ensure_ascii, indent (<0: None), separators, sort_keys):
 * 0, or -1 with *bad set to the value that is not serializable. */
struct json_opts {
    int indent;
    bool ensure_ascii, sort_keys;
    const char *item_sep, *key_sep; /* NULL: Python's defaults */
};
int py_json(struct sbuf *b, struct jv v, const struct json_opts *o, struct jv *bad);

/* ---- UTF-8 helpers ------------------------------------------------------------- */

/* Decodes one code point of valid UTF-8 at p (< end); returns its length. */
size_t u8_dec(const char *p, const char *end, uint32_t *cp);
size_t u8_enc(uint32_t cp, char out[4]);
size_t u8_count(const char *p, size_t n); /* code points */
/* Byte offset of code point i (0 <= i <= count). */
size_t u8_offset(const char *p, size_t n, size_t i);
bool u8_valid(const char *p, size_t n, size_t *bad);
bool py_isspace(uint32_t cp); /* str.isspace() */

/* ---- tokens and AST ------------------------------------------------------------ */

enum jtok_type {
    JT_EOF,
    JT_DATA,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
};

enum jop {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_LPAREN, OP_RPAREN, OP_LBRACKET, OP_RBRACKET, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_ASSIGN, OP_DOT, OP_COLON,
    OP_PIPE, OP_COMMA, OP_SEMICOLON,
    /* comparison operators that are keywords */
    OP_IN, OP_NOTIN,
};

struct jtok {
    enum jtok_type t;
    enum jop op;
    uint32_t pos; /* byte offset in the (normalized) source */
    const struct jstr *s; /* NAME, STRING, DATA */
    int64_t i;
    double f;
};

/* Lexes src into tokens (ends with JT_EOF). */
struct jtok *jinja_lex(struct jctx *c, const char *src, size_t len, size_t *n_tok);

enum jnode_kind {
    /* expressions */
    JN_CONST, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL,
    JN_FILTER, JN_TEST, JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_BIN, JN_CMP, JN_COND,
    JN_CONCAT, JN_INPUT, /* the value entering a filter block's chain */
    /* statements */
    JN_BODY, JN_TEXT, JN_OUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_CALLBLOCK,
    JN_FILTERBLOCK, JN_BREAK, JN_CONTINUE, JN_WITH,
};

/* One node shape for everything; what each field means per kind:
 *   CONST val | NAME name | LIST, TUPLE, CONCAT kids | DICT kids (keys), kids2 (values)
 *   ATTR a.name | ITEM a[b] | SLICE a[kids[0]:kids[1]:kids[2]] (NULL = omitted)
 *   CALL a(kids, names=kids2) | FILTER a|name(kids, names=kids2), id = filter
 *   TEST a is [not (op)] name(kids), id = test | NEG, POS, NOT a | AND, OR a b
 *   BIN a op b | CMP a ops[i] kids[i]... | COND b if a else c (c NULL: undefined)
 *   BODY kids | TEXT val | OUT a | IF a body orelse (a BODY, or an IF for elif)
 *   FOR for a in b [if c] body orelse | SET a = b (a NAME, TUPLE of NAMEs, ATTR)
 *   SETBLOCK a, c = filter chain or NULL, body | FILTERBLOCK c body
 *   MACRO name(names = kids2 defaults) body | CALLBLOCK a = the CALL,
 *   names/kids2 = caller's params, body | WITH names = kids2 body */
struct jnode {
    enum jnode_kind kind;
    enum jop op;
    int id;
    uint32_t pos;
    const struct jstr *name;
    struct jv val;
    struct jnode *a, *b, *c, *body, *orelse;
    struct jnode **kids, **kids2;
    const struct jstr **names;
    enum jop *ops;
    uint32_t n, n2;
};

struct jinja_tmpl {
    struct jctx c; /* arena owns the AST and constants; src the normalized source */
    struct jnode *root;
};

/* Parses tokens into the template's AST (errors unwind through t->c). */
struct jnode *jinja_parse_tokens(struct jctx *c, const struct jtok *tok, size_t n_tok);

/* ---- evaluation ----------------------------------------------------------------- */

struct jscope {
    struct jscope *parent;
    struct jdict vars;
};

struct jstate {
    struct jctx c;
    const struct jinja_tmpl *t;
    struct jinja_limits lim;
    uint64_t steps;
    uint32_t depth;
    int64_t now;
    struct sbuf *out;
    struct jscope *globals;
    struct jscope *scope; /* innermost: for-loop iteration, macro call, with */
    struct jv input;      /* JN_INPUT's value */
    int loop_ctl;         /* 1 break, 2 continue, pending */
    struct jv caller;     /* `caller` inside a macro called from a call block */
};

/* Arguments of a call: positional then keyword. */
struct jargs {
    uint32_t n, nk;
    struct jv *v;
    const struct jstr **k;
    struct jv *kv;
};

/* Argument `i` (positional) or keyword `kw` (NULL: none); NULL if absent. */
struct jv *ja_get(const struct jargs *a, uint32_t i, const char *kw);
/* An integer argument (absent or None: dflt), a string one (absent or None:
 * NULL); any other type fails, naming `what`. */
int64_t ja_int(struct jstate *st, uint32_t pos, const struct jv *v, int64_t dflt, const char *what);
const struct jstr *ja_str(struct jstate *st, uint32_t pos, const struct jv *v, const char *what);
/* Fails unless there are at most max_pos positional arguments and every
 * keyword is one of kws (NULL-terminated list, may be NULL). */
void ja_check(struct jstate *st, uint32_t pos, const struct jargs *a, uint32_t max_pos,
              const char *const *kws, const char *what);

typedef struct jv (*jfilter_fn)(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a);
typedef bool (*jtest_fn)(struct jstate *st, uint32_t pos, struct jv v, const struct jargs *a);
struct jfilter_def {
    const char *name;
    jfilter_fn fn;
};
struct jtest_def {
    const char *name;
    jtest_fn fn;
};
/* Index in the tables below, or -1. */
int jinja_find_filter(const char *name, size_t n);
int jinja_find_test(const char *name, size_t n);
extern const struct jfilter_def jinja_filters[];
extern const struct jtest_def jinja_tests[];

/* Global functions (range, namespace, dict, raise_exception, strftime_now). */
int jinja_find_global(const char *name, size_t n);
struct jv jinja_call_global(struct jstate *st, uint32_t pos, int id, const struct jargs *a);

enum jfunc_kind { JF_GLOBAL, JF_METHOD, JF_MACRO, JF_CALLER };
struct jfunc {
    enum jfunc_kind kind;
    int id;              /* GLOBAL, METHOD */
    struct jv self;      /* METHOD: the receiver */
    const struct jnode *node; /* MACRO, CALLER: the definition */
    struct jscope *scope;     /* MACRO, CALLER: where it was defined */
    struct jv caller;         /* CALLER: the `caller` the enclosing macro had */
    const struct jstr *name;  /* METHOD: its name, for messages */
};

/* Method `name` of v (str, dict, list, loop), as a bound function, or false. */
bool jinja_method(struct jstate *st, struct jv v, const struct jstr *name, struct jv *out);
struct jv jinja_call_method(struct jstate *st, uint32_t pos, const struct jfunc *f,
                            const struct jargs *a);

struct jloop {
    struct jlist *items;
    size_t i;
    int depth;
};

/* Evaluator services the builtins use. */
void jinja_step(struct jstate *st, uint32_t pos, uint64_t n); /* charges n steps */
struct jv jinja_getattr(struct jstate *st, uint32_t pos, struct jv obj, const struct jstr *name);
struct jv jinja_getitem(struct jstate *st, uint32_t pos, struct jv obj, struct jv key);
/* obj[start:stop:step]; sv[k] None or Undefined: omitted. */
struct jv jinja_slice(struct jstate *st, uint32_t pos, struct jv obj, const struct jv sv[3]);
struct jv jinja_call(struct jstate *st, uint32_t pos, struct jv fn, const struct jargs *a);
/* Items of an iterable as a list (dict: keys; str: characters; Undefined:
 * empty); fails for anything else. */
struct jlist *jinja_iter(struct jstate *st, uint32_t pos, struct jv v);
/* a < b (Python ordering of numbers, strings, lists); fails otherwise. */
int jinja_compare(struct jstate *st, uint32_t pos, struct jv a, struct jv b);
/* Fails when v is Undefined (using it as a value is an error in jinja2). */
void jinja_need_defined(struct jstate *st, uint32_t pos, struct jv v);
/* a <op> b for the arithmetic operators (OP_ADD .. OP_POW). */
struct jv jinja_arith(struct jstate *st, uint32_t pos, enum jop op, struct jv a, struct jv b);
/* a in b, as Python's `in` (Undefined b: false). */
bool jinja_contains(struct jstate *st, uint32_t pos, struct jv a, struct jv b);

/* ---- string operations (jinja_methods.c), shared by filters and methods ----------- */

enum { STRIP_LEFT = 1, STRIP_RIGHT = 2, STRIP_BOTH = 3 };
/* str.strip/lstrip/rstrip; chars NULL: whitespace. */
const struct jstr *jinja_strip(struct jstate *st, const struct jstr *s, const struct jstr *chars,
                               int which);
enum jcase { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE, CASE_JINJA_TITLE };
const struct jstr *jinja_case(struct jstate *st, const struct jstr *s, enum jcase mode);
/* str.replace(old, new, count) (count < 0: all). */
const struct jstr *jinja_replace(struct jstate *st, const struct jstr *s, const struct jstr *old,
                                 const struct jstr *rep, int64_t count);
/* fmt % args (printf-style, as the `format` filter and the % operator). */
const struct jstr *jinja_percent(struct jstate *st, uint32_t pos, const struct jstr *fmt,
                                 struct jv args);
/* str.splitlines() */
struct jlist *jinja_splitlines(struct jstate *st, const struct jstr *s, bool keepends);

#endif
