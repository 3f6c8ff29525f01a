/*
 * config.c — hearth.yaml: the key table, the libyaml event parser that fills
 * struct hd_config from it, and the Markdown reference generated from it.
 *
 * One table (`keys` below) describes every key: its dotted path, value type,
 * the struct field it lands in, its range or allowed words, its default and
 * its documentation. hd_config_init applies the defaults from it, the parser
 * looks keys up in it, hd_config_write_doc prints it; nothing about a key is
 * written anywhere else (the header's struct aside). Sections (http, tools,
 * tools.policy, ...) are not entries: a mapping key is a section when some
 * entry's path continues below it.
 *
 * The parser walks libyaml's event stream by recursive descent whose depth
 * is bounded by the table (at most section → section → key, or profiles →
 * profile → list → pair), so hostile nesting never recurses deeper than
 * that: the first event that does not fit the schema is an error. It stops
 * at the first error, so messages come in file order. Values are written
 * into a fresh config that replaces the caller's only when the whole file
 * was accepted.
 *
 * Positions: libyaml's marks are 0-based lines and columns counted in
 * characters, and an index counted in characters too; err->offset is the
 * byte offset, recovered by walking the UTF-8 buffer (the reader has
 * validated it up to any mark we report).
 *
 * One file on purpose, past the usual size: the table, the parser that
 * reads it and the writer that documents it change together.
 */
#include "config.h"

#include "err.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_FILE_BYTES ((size_t)1 << 20)
#define MAX_PATH_KEY 128 /* longest dotted key path we look up; longer ones are unknown */

/* Enum fields are written through an int lvalue (see set_int); the enum
 * types' compatible type is int or unsigned int, which may be accessed so. */
static_assert(sizeof(enum hr_type) == sizeof(int), "enum size");
static_assert(sizeof(enum hd_policy) == sizeof(int), "enum size");
static_assert(sizeof(enum hd_log_level) == sizeof(int), "enum size");

/* ---- the key table -------------------------------------------------------- */

enum ktype {
    K_BOOL,     /* bool */
    K_INT,      /* int, range [min, max] */
    K_SIZE,     /* size_t, range [min, max] */
    K_FLOAT,    /* float, range [min, max] ((min, max] with min_open) */
    K_ENUM,     /* int-sized enum, one of `words` */
    K_STR,      /* char *, NULL when unset */
    K_PATH,     /* char *, ~ expanded, relative to the config file's directory */
    K_NAMES,    /* char ** + size_t count: names (see valid_name) */
    K_PATHS,    /* char ** + size_t count: paths as K_PATH */
    K_PROFILES, /* struct hd_lora_profile * + size_t count; scales in [min, max] */
};

struct word {
    const char *name;
    int value;
};

struct key {
    const char *path; /* dotted: "http.port" */
    enum ktype type;
    size_t off;   /* the field in struct hd_config */
    size_t off_n; /* K_NAMES, K_PATHS, K_PROFILES: the size_t count field */
    double min, max;
    bool min_open;
    const struct word *words; /* K_ENUM: terminated by a NULL name */
    double def;               /* K_BOOL (0/1), K_INT, K_SIZE, K_FLOAT */
    const char *def_word;     /* K_ENUM */
    const char *const *def_list; /* K_NAMES, K_PATHS: NULL-terminated, or NULL = [] */
    const char *doc;          /* Markdown, one line, no '|' */
};

#define F(m) offsetof(struct hd_config, m)
#define BOOL(p, m, d, doc_) {.path = p, .type = K_BOOL, .off = F(m), .def = (d), .doc = doc_}
#define INT(p, m, lo, hi, d, doc_)                                                                 \
    {.path = p, .type = K_INT, .off = F(m), .min = lo, .max = hi, .def = d, .doc = doc_}
#define SIZE(p, m, lo, hi, d, doc_)                                                                \
    {.path = p, .type = K_SIZE, .off = F(m), .min = lo, .max = hi, .def = d, .doc = doc_}
#define FLOAT(p, m, lo, hi, d, doc_)                                                               \
    {.path = p, .type = K_FLOAT, .off = F(m), .min = lo, .max = hi, .def = d, .doc = doc_}
#define ENUM(p, m, w, d, doc_)                                                                     \
    {.path = p, .type = K_ENUM, .off = F(m), .words = w, .def_word = d, .doc = doc_}
#define STR(p, m, doc_) {.path = p, .type = K_STR, .off = F(m), .doc = doc_}
#define PATH(p, m, doc_) {.path = p, .type = K_PATH, .off = F(m), .doc = doc_}
#define LIST(t, p, m, n, d, doc_)                                                                  \
    {.path = p, .type = t, .off = F(m), .off_n = F(n), .def_list = d, .doc = doc_}

static const struct word kv_words[] = {{"f32", HR_TYPE_F32}, {"f16", HR_TYPE_F16}, {NULL, 0}};
static const struct word policy_words[] = {
    {"allow", HD_POLICY_ALLOW}, {"ask", HD_POLICY_ASK}, {"deny", HD_POLICY_DENY}, {NULL, 0}};
static const struct word level_words[] = {{"debug", HD_LOG_DEBUG},
                                          {"info", HD_LOG_INFO},
                                          {"warning", HD_LOG_WARNING},
                                          {"error", HD_LOG_ERROR},
                                          {NULL, 0}};
static const char *const def_plugins[] = {"files", "shell", "search", NULL};
static const char *const def_roots[] = {"~", NULL};

/* Order matters twice: the doc lists keys in this order, and the keys of one
 * section must be contiguous (the generated example config relies on it). */
static const struct key keys[] = {
    PATH("model", model,
         "GGUF model file. Unset: `--model`, else the bundled `models/stories260K.gguf`."),
    INT("threads", threads, 0, 1024, 0, "Compute threads; 0 = the number of online CPUs."),
    INT("context", context, 0, 1 << 20, 4096,
        "KV cache length in tokens per session; 0 = the model's training context, at most 4096."),
    INT("batch", batch, 1, 65536, 512, "Most tokens evaluated in one forward pass."),
    ENUM("kv_cache", kv_cache, kv_words, "f16", "Precision of the KV cache."),
    INT("parallel", parallel, 1, 256, 4,
        "Most requests generating at once (one forward pass serves them all)."),
    INT("sessions", sessions, 1, 4096, 16,
        "Most sessions kept with their KV cache; the least recently used is dropped."),
    PATH("socket", socket,
         "Unix socket of the JSON-RPC API. Unset: `$XDG_RUNTIME_DIR/hearth/hearth.sock`."),
    BOOL("http.enabled", http.enabled, 0, "Serve the OpenAI-compatible HTTP API."),
    INT("http.port", http.port, 1, 65535, 8080,
        "TCP port of the HTTP API, which is always bound to 127.0.0.1."),
    STR("http.token", http.token,
        "Bearer token the HTTP API requires (`Authorization: Bearer TOKEN`). Unset: none."),
    BOOL("http.cors", http.cors, 0,
         "Send CORS headers, so that web pages in a browser may call the HTTP API."),
    BOOL("dbus.enabled", dbus.enabled, 1,
         "Own the session bus name `org.hearth.Hearth1` and serve the D-Bus interface."),
    FLOAT("sampling.temperature", sampling.temperature, 0, 10, 0.8,
          "Default sampling temperature; 0 = greedy (always the most likely token)."),
    INT("sampling.top_k", sampling.top_k, 0, 1000000, 40,
        "Default top-k: sample among the k most likely tokens; 0 = off."),
    FLOAT("sampling.top_p", sampling.top_p, 0, 1, 0.95,
          "Default top-p (nucleus): the most likely tokens covering this probability; 1 = off."),
    FLOAT("sampling.min_p", sampling.min_p, 0, 1, 0.05,
          "Default min-p: drop tokens less likely than this times the best one; 0 = off."),
    {.path = "sampling.repeat_penalty", .type = K_FLOAT, .off = F(sampling.repeat_penalty),
     .min = 0, .max = 10, .min_open = true, .def = 1.0,
     .doc = "Default penalty on recently seen tokens; 1 = off, above 1 repeats less."},
    INT("sampling.max_tokens", sampling.max_tokens, 1, 1 << 20, 512,
        "Default for the most tokens generated in one request."),
    PATH("plugins.dir", plugins.dir,
         "Directory the tool plugins are loaded from. Unset: the installed plugin directory."),
    LIST(K_NAMES, "plugins.load", plugins.load, plugins.n_load, def_plugins,
         "Plugins to load, by name (`NAME.so` in the plugin directory)."),
    LIST(K_PATHS, "tools.roots", tools.roots, tools.n_roots, def_roots,
         "Directories a workspace must lie inside for tools to work in it."),
    ENUM("tools.policy.read", tools.policy_read, policy_words, "allow",
         "Tool calls that only read: run (`allow`), confirm each with the client (`ask`), "
         "or refuse (`deny`)."),
    ENUM("tools.policy.write", tools.policy_write, policy_words, "ask",
         "Tool calls that change files, as for `read`."),
    ENUM("tools.policy.exec", tools.policy_exec, policy_words, "ask",
         "Tool calls that run programs, as for `read`."),
    LIST(K_NAMES, "tools.deny", tools.deny, tools.n_deny, NULL,
         "Tool names never allowed, whatever the policy says."),
    INT("tools.timeout", tools.timeout, 1, 86400, 30, "Seconds a tool call may take."),
    INT("tools.approval_timeout", tools.approval_timeout, 1, 86400, 120,
        "Seconds a call waits for the client to approve it; no answer declines it."),
    PATH("lora.dir", lora.dir, "Directory of LoRA adapters (GGUF files). Unset: none."),
    {.path = "lora.profiles", .type = K_PROFILES, .off = F(lora.profiles),
     .off_n = F(lora.n_profiles), .min = -10, .max = 10,
     .doc = "Named stacks of adapters, `NAME: [{ADAPTER: SCALE}, ...]`, applied in order; "
            "a request picks one by name."},
    SIZE("limits.max_message_bytes", limits.max_message_bytes, 4096, 1 << 30, 16777216,
         "Largest JSON-RPC message or HTTP request body accepted, in bytes."),
    INT("limits.max_queue", limits.max_queue, 1, 65536, 64,
        "Requests waiting in total before new ones are refused as busy."),
    INT("limits.max_requests_per_client", limits.max_requests_per_client, 1, 65536, 8,
        "Requests queued or running per connection."),
    INT("limits.max_clients", limits.max_clients, 1, 65536, 64, "Connections served at once."),
    INT("limits.max_prompt_tokens", limits.max_prompt_tokens, 0, 1 << 20, 0,
        "Longest prompt accepted, in tokens; 0 = the context size."),
    ENUM("log.level", log.level, level_words, "info", "Least severe message logged."),
    SIZE("lua.memory", lua.memory, 1 << 20, (double)(1ull << 40), 67108864,
         "Bytes of memory one Lua script may allocate; past it, allocations fail."),
    INT("lua.instructions", lua.instructions, 1, 1000000, 2000,
        "Millions of Lua VM instructions one script may run in all."),
    INT("lua.slice_ms", lua.slice_ms, 10, 600000, 2000,
        "Milliseconds a script may run without waiting (for the model, a tool, a timer)."),
    BOOL("lua.allow.io", lua.allow_io, 0, "Let scripts use the `io` library."),
    BOOL("lua.allow.os", lua.allow_os, 0,
         "Let scripts use all of `os` (`execute`, `remove`, `getenv`, ...); without it, only "
         "`os.time`, `os.clock`, `os.date`, `os.difftime`."),
    BOOL("lua.allow.debug", lua.allow_debug, 0, "Let scripts use the `debug` library."),
    BOOL("lua.allow.modules", lua.allow_modules, 0,
         "Let scripts use `require` and `package` (Lua and C modules from the system paths)."),
    PATH("agent.script", agent.script,
         "The agent loop's Lua source. Unset: `agent.lua` next to the config file when there "
         "is one, else the built-in `lua/agent.lua`."),
    INT("agent.max_steps", agent.max_steps, 1, 1000, 12,
        "Most model turns the agent takes for one task."),
    INT("agent.timeout", agent.timeout, 1, 86400, 600, "Seconds the agent may spend on one task."),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

#define FIELD(cfg, off, T) ((T *)(void *)((char *)(cfg) + (off)))

static const struct key *find_key(const char *path)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* Whether `path` is a section: some key's path continues below it. */
static bool is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
            return true;
    return false;
}

static const struct word *find_word(const struct word *w, const char *s)
{
    for (; w->name; w++)
        if (strcmp(w->name, s) == 0)
            return w;
    return NULL;
}

/* ---- paths ---------------------------------------------------------------- */

/* The home directory: $HOME, else the password database. Owned, or NULL. */
static char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return strdup(h);
    char buf[16384];
    struct passwd pw, *res = NULL;
    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir &&
        *res->pw_dir)
        return strdup(res->pw_dir);
    return NULL;
}

/* a + "/" + b, without doubling a slash that ends a. Owned, or NULL. */
static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    bool slash = !(na == 1 && a[0] == '/');
    char *s = malloc(na + slash + nb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, na);
    if (slash)
        s[na] = '/';
    memcpy(s + na + slash, b, nb + 1);
    return s;
}

char *hd_config_default_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && xdg[0] == '/') /* the XDG spec: relative values are ignored */
        return join(xdg, "hearth/hearth.yaml");
    char *home = home_dir();
    if (!home)
        return NULL;
    char *p = join(home, ".config/hearth/hearth.yaml");
    free(home);
    return p;
}

/* ---- defaults and freeing ------------------------------------------------- */

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_profiles(struct hd_lora_profile *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        for (size_t j = 0; j < p[i].n_uses; j++)
            free(p[i].uses[j].adapter);
        free(p[i].uses);
    }
    free(p);
}

/* Frees the value of one key in cfg and resets it to zero / NULL / empty. */
static void clear_value(struct hd_config *cfg, const struct key *k)
{
    switch (k->type) {
    case K_STR:
    case K_PATH:
        free(*FIELD(cfg, k->off, char *));
        *FIELD(cfg, k->off, char *) = NULL;
        break;
    case K_NAMES:
    case K_PATHS:
        free_list(*FIELD(cfg, k->off, char **), *FIELD(cfg, k->off_n, size_t));
        *FIELD(cfg, k->off, char **) = NULL;
        *FIELD(cfg, k->off_n, size_t) = 0;
        break;
    case K_PROFILES:
        free_profiles(*FIELD(cfg, k->off, struct hd_lora_profile *),
                      *FIELD(cfg, k->off_n, size_t));
        *FIELD(cfg, k->off, struct hd_lora_profile *) = NULL;
        *FIELD(cfg, k->off_n, size_t) = 0;
        break;
    default:
        break;
    }
}

void hd_config_done(struct hd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++)
        clear_value(cfg, &keys[i]);
    memset(cfg, 0, sizeof *cfg);
}

/* Appends an owned string to a list field, growing it in powers of two.
 * On failure the string is freed and the list is unchanged. */
static int list_push(char ***v, size_t *n, char *s)
{
    if (!s)
        return -ENOMEM;
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: full */
        char **nv = realloc(*v, (*n ? 2 * *n : 1) * sizeof *nv);
        if (!nv) {
            free(s);
            return -ENOMEM;
        }
        *v = nv;
    }
    (*v)[(*n)++] = s;
    return 0;
}

/* Grows an array of `size`-byte elements holding n so that one more fits. */
static int grow(void **v, size_t n, size_t size)
{
    if (n & (n - 1))
        return 0;
    void *nv = realloc(*v, (n ? 2 * n : 1) * size);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    return 0;
}

int hd_config_init(struct hd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char *home = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        switch (k->type) {
        case K_BOOL:
            *FIELD(cfg, k->off, bool) = k->def != 0;
            break;
        case K_INT:
            *FIELD(cfg, k->off, int) = (int)k->def;
            break;
        case K_SIZE:
            *FIELD(cfg, k->off, size_t) = (size_t)k->def;
            break;
        case K_FLOAT:
            *FIELD(cfg, k->off, float) = (float)k->def;
            break;
        case K_ENUM:
            *FIELD(cfg, k->off, int) = find_word(k->words, k->def_word)->value;
            break;
        case K_NAMES:
        case K_PATHS:
            for (const char *const *d = k->def_list; d && *d; d++) {
                char *s;
                if (k->type == K_PATHS && strcmp(*d, "~") == 0) {
                    if (!home && !(home = home_dir()))
                        continue; /* no home: the root is left out, never guessed */
                    s = strdup(home);
                } else {
                    s = strdup(*d);
                }
                if (list_push(FIELD(cfg, k->off, char **), FIELD(cfg, k->off_n, size_t), s) < 0)
                    goto fail;
            }
            break;
        default: /* strings and profiles start unset / empty */
            break;
        }
    }
    free(home);
    return 0;
fail:
    free(home);
    hd_config_done(cfg);
    return -ENOMEM;
}

/* ---- the parser ----------------------------------------------------------- */

struct loader {
    yaml_parser_t yp;
    const char *name; /* file name for messages */
    const unsigned char *buf;
    size_t len;
    char *dir;             /* directory part of name, owned; NULL when name has none */
    char *home;            /* owned, looked up on the first "~" */
    struct hd_config *cfg; /* the config being built */
    struct hr_err *err;
};

/* Byte offset of the character at index `chars`: libyaml counts characters,
 * and the UTF-8 before any mark it reports has been validated. */
static int64_t byte_offset(const struct loader *L, size_t chars)
{
    size_t i = 0;
    while (i < L->len && chars) {
        i++;
        while (i < L->len && (L->buf[i] & 0xC0) == 0x80)
            i++;
        chars--;
    }
    return (int64_t)i;
}

static int verr(struct loader *L, int code, size_t line, size_t col, int64_t off, const char *fmt,
                va_list ap)
{
    struct hr_err *err = L->err;
    if (!err)
        return code;
    hr_err_clear(err);
    int n = line ? snprintf(err->msg, sizeof err->msg, "%s:%zu:%zu: ", L->name, line, col)
                 : snprintf(err->msg, sizeof err->msg, "%s: ", L->name);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    err->line = line > INT32_MAX ? INT32_MAX : (int)line;
    err->column = col > INT32_MAX ? INT32_MAX : (int)col;
    err->offset = off;
    return code;
}

/* Sets the error at 1-based (line, col), byte offset off; line 0: no position. */
HR_PRINTF(6, 7)
static int err_at(struct loader *L, int code, size_t line, size_t col, int64_t off,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verr(L, code, line, col, off, fmt, ap);
    va_end(ap);
    return rc;
}

/* Sets the error at libyaml mark m; returns -EINVAL. */
HR_PRINTF(3, 4) static int fail(struct loader *L, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verr(L, -EINVAL, m.line + 1, m.column + 1, byte_offset(L, m.index), fmt, ap);
    va_end(ap);
    return rc;
}

static int fail_nomem(struct loader *L, yaml_mark_t m)
{
    return err_at(L, -ENOMEM, m.line + 1, m.column + 1, byte_offset(L, m.index), "out of memory");
}

/* Reports libyaml's error: the reader's (bad bytes, at a byte offset), the
 * scanner's or the parser's (at a mark). */
static int fail_syntax(struct loader *L)
{
    yaml_parser_t *p = &L->yp;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return fail_nomem(L, p->mark);
    if (p->error == YAML_READER_ERROR) {
        size_t line = 1, col = 1, end = p->problem_offset < L->len ? p->problem_offset : L->len;
        for (size_t i = 0; i < end; i++) {
            unsigned char c = L->buf[i];
            if (c == '\n' || (c == '\r' && (i + 1 >= L->len || L->buf[i + 1] != '\n'))) {
                line++;
                col = 1;
            } else if ((c & 0xC0) != 0x80) {
                col++;
            }
        }
        return err_at(L, -EINVAL, line, col, (int64_t)end, "not valid YAML text: %s", problem);
    }
    yaml_mark_t m = p->problem_mark;
    int64_t at = byte_offset(L, m.index);
    const char *hint = (size_t)at < L->len && L->buf[at] == '\t'
                           ? " (a tab: YAML indents with spaces only)"
                           : "";
    if (p->context)
        return fail(L, m, "YAML syntax: %s%s, %s at line %zu, column %zu", problem, hint,
                    p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(L, m, "YAML syntax: %s%s", problem, hint);
}

/* The next event, refusing what hearth.yaml never needs: aliases (which would
 * also let a small file expand to a huge config) and explicit tags other
 * than !!str on a scalar. On error *ev needs no yaml_event_delete. */
static int next(struct loader *L, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&L->yp, ev)) {
        memset(ev, 0, sizeof *ev);
        return fail_syntax(L);
    }
    const yaml_char_t *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        int rc = fail(L, ev->start_mark, "YAML aliases (*%.64s) are not supported in the config",
                      (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        return rc;
    }
    case YAML_SCALAR_EVENT:
        tag = ev->data.scalar.tag;
        if (tag && strcmp((const char *)tag, YAML_STR_TAG) == 0)
            tag = NULL;
        break;
    case YAML_SEQUENCE_START_EVENT:
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        tag = ev->data.mapping_start.tag;
        break;
    default:
        break;
    }
    if (tag) {
        int rc = fail(L, ev->start_mark, "YAML tags (%.64s) are not supported in the config",
                      (const char *)tag);
        yaml_event_delete(ev);
        return rc;
    }
    return 0;
}

static const char *sval(const yaml_event_t *ev)
{
    return (const char *)ev->data.scalar.value;
}

/* A plain (unquoted, untagged) scalar: the only kind that can be a number,
 * a boolean or null. A !!str tag counts as quoted (next() dropped it). */
static bool is_plain(const yaml_event_t *ev)
{
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag;
}

/* YAML 1.2 core schema null: empty, ~, null. */
static bool is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || !is_plain(ev))
        return false;
    const char *s = sval(ev);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* Describes a value for "found ..." in messages. */
static const char *what(const yaml_event_t *ev, char *buf, size_t n)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (is_plain(ev) && !ev->data.scalar.length)
            return "nothing";
        snprintf(buf, n, "%s'%.40s%s'", is_plain(ev) ? "" : "the quoted string ", sval(ev),
                 ev->data.scalar.length > 40 ? "..." : "");
        return buf;
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    default:
        return "something else";
    }
}

static int wrong_type(struct loader *L, const char *path, const char *expected,
                      const yaml_event_t *ev)
{
    char buf[64];
    return fail(L, ev->start_mark, "%s: expected %s, found %s", path, expected,
                what(ev, buf, sizeof buf));
}

/* Names of plugins, tools, adapters and profiles: they become file names or
 * protocol words, so no '/', no leading '.', no spaces. */
static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 64 || strlen(s) != n || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return false;
    return true;
}
#define NAME_RULE "1 to 64 letters, digits or _ . : -, not starting with . : -"

/* [-+]?[0-9]+ (YAML 1.2 core int, decimal). */
static bool parse_int(const char *s, long long *v, bool *overflow)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p)
        return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    *v = strtoll(s, NULL, 10);
    *overflow = errno == ERANGE;
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? (YAML 1.2 core float,
 * without .inf/.nan), read in the C locale whatever the process's is. */
static bool parse_float(const char *s, double *v)
{
    const char *p = s + (*s == '+' || *s == '-');
    size_t digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return false;
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    *v = c ? strtod_l(s, NULL, c) : strtod(s, NULL);
    if (c)
        freelocale(c);
    return true;
}

static void range_text(const struct key *k, char *buf, size_t n)
{
    if (k->type == K_FLOAT || k->type == K_PROFILES) {
        if (k->min_open)
            snprintf(buf, n, "above %g, up to %g", k->min, k->max);
        else
            snprintf(buf, n, "%g to %g", k->min, k->max);
    } else {
        snprintf(buf, n, "%lld to %lld", (long long)k->min, (long long)k->max);
    }
}

static int check_float(struct loader *L, const struct key *k, const char *path,
                       const yaml_event_t *ev, float *out)
{
    double v;
    if (ev->type != YAML_SCALAR_EVENT || !is_plain(ev) || !parse_float(sval(ev), &v))
        return wrong_type(L, path, "a number", ev);
    if (!(k->min_open ? v > k->min : v >= k->min) || !(v <= k->max)) {
        char r[64];
        range_text(k, r, sizeof r);
        return fail(L, ev->start_mark, "%s: %s is out of range (%s)", path, sval(ev), r);
    }
    *out = (float)v;
    return 0;
}

/* The path a K_PATH value names: "~" and "~/..." under the home directory,
 * a relative path under the config file's directory. *out NULL for "". */
static int expand_path(struct loader *L, const char *path, const yaml_event_t *ev, char **out)
{
    const char *s = sval(ev);
    *out = NULL;
    if (strlen(s) != ev->data.scalar.length)
        return fail(L, ev->start_mark, "%s: a path cannot contain a NUL byte", path);
    if (!*s)
        return 0;
    if (s[0] == '~') {
        if (s[1] && s[1] != '/')
            return fail(L, ev->start_mark,
                        "%s: '~USER' is not supported, write the whole path ('%.64s')", path, s);
        if (!L->home && !(L->home = home_dir()))
            return fail(L, ev->start_mark,
                        "%s: cannot expand '~': there is no home directory (HOME is unset)",
                        path);
        *out = s[1] ? join(L->home, s + 2) : strdup(L->home);
    } else if (s[0] == '/' || !L->dir) {
        *out = strdup(s);
    } else {
        *out = join(L->dir, s);
    }
    return *out ? 0 : fail_nomem(L, ev->start_mark);
}

/* Keys already seen in one mapping, for duplicate detection (mappings are
 * small: the table bounds every one but lora.profiles). */
struct seen {
    char **keys;
    yaml_mark_t *marks;
    size_t n;
};

static void seen_free(struct seen *s)
{
    free_list(s->keys, s->n);
    free(s->marks);
}

/* Adds key (shown as `shown`) at mark m, or fails if it was there before. */
static int seen_add(struct loader *L, struct seen *s, const char *key, const char *shown,
                    yaml_mark_t m)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return fail(L, m, "duplicate key '%s' (first at line %zu, column %zu)", shown,
                        s->marks[i].line + 1, s->marks[i].column + 1);
    if (grow((void **)&s->marks, s->n, sizeof *s->marks) < 0)
        return fail_nomem(L, m);
    s->marks[s->n] = m;
    size_t n = s->n;
    if (list_push(&s->keys, &n, strdup(key)) < 0)
        return fail_nomem(L, m);
    s->n = n;
    return 0;
}

/* Edit distance of two short strings (suggestions for unknown keys). */
static size_t distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), row[MAX_PATH_KEY + 1];
    if (na > MAX_PATH_KEY || nb > MAX_PATH_KEY)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* "unknown key 'http.prot' (did you mean 'port'?)", or the keys known there. */
static int unknown_key(struct loader *L, const char *prefix, const yaml_event_t *kev)
{
    const char *name = sval(kev);
    size_t np = strlen(prefix), best = SIZE_MAX;
    char known[320] = "", guess[MAX_PATH_KEY] = "";
    size_t used = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *p = keys[i].path;
        if (np && (strncmp(p, prefix, np) != 0 || p[np] != '.'))
            continue;
        const char *c = p + (np ? np + 1 : 0);
        size_t n = strcspn(c, ".");
        char comp[MAX_PATH_KEY];
        snprintf(comp, sizeof comp, "%.*s", (int)n, c);
        /* each component once: skip it if an earlier key had it too */
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            const char *q = keys[j].path;
            dup = (!np || (strncmp(q, prefix, np) == 0 && q[np] == '.')) &&
                  strncmp(q + (np ? np + 1 : 0), comp, n) == 0 &&
                  (q[(np ? np + 1 : 0) + n] == '.' || !q[(np ? np + 1 : 0) + n]);
        }
        if (dup)
            continue;
        size_t d = distance(name, comp);
        if (d < best) {
            best = d;
            snprintf(guess, sizeof guess, "%s", comp);
        }
        if (used < sizeof known)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "",
                                     comp);
    }
    if (best <= 2 && best < strlen(name))
        return fail(L, kev->start_mark, "unknown key '%s%s%.64s' (did you mean '%s'?)", prefix,
                    np ? "." : "", name, guess);
    return fail(L, kev->start_mark, "unknown key '%s%s%.64s' (known keys here: %s)", prefix,
                np ? "." : "", name, known);
}

/* Lists: the SEQUENCE_START has been read; reads items up to SEQUENCE_END
 * into the (cleared) list field of k. */
static int parse_list(struct loader *L, const struct key *k)
{
    char ***v = FIELD(L->cfg, k->off, char **);
    size_t *n = FIELD(L->cfg, k->off_n, size_t);
    for (;;) {
        yaml_event_t ev;
        int rc = next(L, &ev);
        if (rc < 0)
            return rc;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        char *s = NULL;
        if (ev.type != YAML_SCALAR_EVENT || (is_null(&ev) && strcmp(sval(&ev), "~") != 0) ||
            (k->type == K_NAMES && is_null(&ev))) {
            rc = wrong_type(L, k->path, k->type == K_NAMES ? "a name" : "a path", &ev);
        } else if (k->type == K_NAMES) {
            if (!valid_name(sval(&ev), ev.data.scalar.length))
                rc = fail(L, ev.start_mark, "%s: '%.64s' is not a valid name (" NAME_RULE ")",
                          k->path, sval(&ev));
            else if (!(s = strdup(sval(&ev))))
                rc = fail_nomem(L, ev.start_mark);
        } else if ((rc = expand_path(L, k->path, &ev, &s)) == 0 && !s) {
            rc = wrong_type(L, k->path, "a path", &ev); /* '' */
        }
        for (size_t i = 0; rc == 0 && i < *n; i++)
            if (strcmp((*v)[i], s) == 0)
                rc = fail(L, ev.start_mark, "%s: '%.64s' is listed twice", k->path, sval(&ev));
        if (rc == 0 && list_push(v, n, s) < 0)
            rc = fail_nomem(L, ev.start_mark);
        else if (rc < 0)
            free(s);
        yaml_event_delete(&ev);
        if (rc < 0)
            return rc;
    }
}

/* One list item of a profile, {ADAPTER: SCALE}; its MAPPING_START is read. */
static int parse_use(struct loader *L, const struct key *k, const char *pname,
                     struct hd_lora_profile *p, const yaml_event_t *start)
{
    char path[MAX_PATH_KEY + 80];
    snprintf(path, sizeof path, "%s.%s", k->path, pname);
    yaml_event_t a, s, e;
    int rc = next(L, &a);
    if (rc < 0)
        return rc;
    if (a.type != YAML_SCALAR_EVENT) {
        rc = fail(L, start->start_mark, "%s: expected {ADAPTER: SCALE}, found %s", path,
                  a.type == YAML_MAPPING_END_EVENT ? "an empty mapping" : "a nested value");
        yaml_event_delete(&a);
        return rc;
    }
    if (!valid_name(sval(&a), a.data.scalar.length))
        rc = fail(L, a.start_mark, "%s: '%.64s' is not a valid adapter name (" NAME_RULE ")",
                  path, sval(&a));
    for (size_t i = 0; rc == 0 && i < p->n_uses; i++)
        if (strcmp(p->uses[i].adapter, sval(&a)) == 0)
            rc = fail(L, a.start_mark, "%s: adapter '%s' is listed twice", path, sval(&a));
    if (rc == 0 && grow((void **)&p->uses, p->n_uses, sizeof *p->uses) < 0)
        rc = fail_nomem(L, a.start_mark);
    if (rc == 0) {
        struct hd_lora_use *u = &p->uses[p->n_uses];
        u->scale = 0;
        if (!(u->adapter = strdup(sval(&a))))
            rc = fail_nomem(L, a.start_mark);
        else
            p->n_uses++;
    }
    yaml_event_delete(&a);
    if (rc < 0)
        return rc;
    if ((rc = next(L, &s)) < 0)
        return rc;
    rc = check_float(L, k, path, &s, &p->uses[p->n_uses - 1].scale);
    yaml_event_delete(&s);
    if (rc < 0)
        return rc;
    if ((rc = next(L, &e)) < 0)
        return rc;
    if (e.type != YAML_MAPPING_END_EVENT)
        rc = fail(L, e.start_mark,
                  "%s: one adapter per list item, as in [{style: 0.8}, {terse: 0.3}]", path);
    yaml_event_delete(&e);
    return rc;
}

/* lora.profiles: its MAPPING_START is read; NAME: [{ADAPTER: SCALE}, ...]. */
static int parse_profiles(struct loader *L, const struct key *k)
{
    struct hd_lora_profile **v = FIELD(L->cfg, k->off, struct hd_lora_profile *);
    size_t *n = FIELD(L->cfg, k->off_n, size_t);
    struct seen seen = {0};
    int rc;
    for (;;) {
        yaml_event_t kev, vev;
        if ((rc = next(L, &kev)) < 0)
            goto fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        if (kev.type != YAML_SCALAR_EVENT)
            rc = fail(L, kev.start_mark, "%s: profile names must be plain words", k->path);
        else if (!valid_name(sval(&kev), kev.data.scalar.length))
            rc = fail(L, kev.start_mark, "%s: '%.64s' is not a valid profile name (" NAME_RULE ")",
                      k->path, sval(&kev));
        else
            rc = seen_add(L, &seen, sval(&kev), sval(&kev), kev.start_mark);
        if (rc == 0 && grow((void **)v, *n, sizeof **v) < 0)
            rc = fail_nomem(L, kev.start_mark);
        struct hd_lora_profile *p = NULL;
        if (rc == 0) {
            p = &(*v)[*n];
            memset(p, 0, sizeof *p);
            if (!(p->name = strdup(sval(&kev))))
                rc = fail_nomem(L, kev.start_mark);
            else
                (*n)++;
        }
        yaml_event_delete(&kev);
        if (rc < 0 || (rc = next(L, &vev)) < 0)
            goto fail;
        char path[MAX_PATH_KEY + 80];
        snprintf(path, sizeof path, "%s.%s", k->path, p->name);
        if (vev.type == YAML_SEQUENCE_START_EVENT) {
            for (;;) {
                yaml_event_t iev;
                if ((rc = next(L, &iev)) < 0)
                    break;
                if (iev.type == YAML_SEQUENCE_END_EVENT) {
                    yaml_event_delete(&iev);
                    break;
                }
                if (iev.type == YAML_MAPPING_START_EVENT)
                    rc = parse_use(L, k, p->name, p, &iev);
                else
                    rc = wrong_type(L, path, "{ADAPTER: SCALE}", &iev);
                yaml_event_delete(&iev);
                if (rc < 0)
                    break;
            }
        } else if (!is_null(&vev)) {
            rc = wrong_type(L, path, "a list of {ADAPTER: SCALE}", &vev);
        }
        yaml_event_delete(&vev);
        if (rc < 0)
            goto fail;
    }
    rc = 0;
fail:
    seen_free(&seen);
    return rc;
}

/* The value of key k, whose first event ev has been read. */
static int parse_value(struct loader *L, const struct key *k, const yaml_event_t *ev)
{
    const char *path = k->path;
    long long i;
    bool overflow;
    switch (k->type) {
    case K_BOOL: {
        static const char *const t[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
        if (ev->type == YAML_SCALAR_EVENT && is_plain(ev))
            for (size_t j = 0; j < 6; j++)
                if (strcmp(sval(ev), t[j]) == 0) {
                    *FIELD(L->cfg, k->off, bool) = j < 3;
                    return 0;
                }
        return wrong_type(L, path, "true or false", ev);
    }
    case K_INT:
    case K_SIZE:
        if (ev->type != YAML_SCALAR_EVENT || !is_plain(ev) || !parse_int(sval(ev), &i, &overflow))
            return wrong_type(L, path, "an integer", ev);
        if (overflow || i < (long long)k->min || i > (long long)k->max) {
            char r[64];
            range_text(k, r, sizeof r);
            return fail(L, ev->start_mark, "%s: %.40s is out of range (%s)", path, sval(ev), r);
        }
        if (k->type == K_INT)
            *FIELD(L->cfg, k->off, int) = (int)i;
        else
            *FIELD(L->cfg, k->off, size_t) = (size_t)i;
        return 0;
    case K_FLOAT:
        return check_float(L, k, path, ev, FIELD(L->cfg, k->off, float));
    case K_ENUM: {
        if (ev->type != YAML_SCALAR_EVENT || is_null(ev))
            return wrong_type(L, path, "a word", ev);
        const struct word *w = find_word(k->words, sval(ev));
        if (!w) {
            char list[128] = "";
            size_t used = 0;
            for (const struct word *x = k->words; x->name && used < sizeof list; x++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                         used ? ", " : "", x->name);
            return fail(L, ev->start_mark, "%s: '%.40s' is not one of %s", path, sval(ev), list);
        }
        *FIELD(L->cfg, k->off, int) = w->value;
        return 0;
    }
    case K_STR:
    case K_PATH: {
        if (ev->type != YAML_SCALAR_EVENT)
            return wrong_type(L, path, k->type == K_STR ? "a string" : "a path", ev);
        char *s = NULL;
        int rc = 0;
        bool null = is_null(ev) && !(k->type == K_PATH && strcmp(sval(ev), "~") == 0);
        if (null) {
            /* unset */
        } else if (k->type == K_PATH) {
            rc = expand_path(L, path, ev, &s);
        } else if (strlen(sval(ev)) != ev->data.scalar.length) {
            rc = fail(L, ev->start_mark, "%s: a string cannot contain a NUL byte", path);
        } else if (ev->data.scalar.length && !(s = strdup(sval(ev)))) {
            rc = fail_nomem(L, ev->start_mark);
        }
        if (rc < 0)
            return rc;
        clear_value(L->cfg, k);
        *FIELD(L->cfg, k->off, char *) = s;
        return 0;
    }
    case K_NAMES:
    case K_PATHS:
        if (ev->type == YAML_SEQUENCE_START_EVENT) {
            clear_value(L->cfg, k);
            return parse_list(L, k);
        }
        if (is_null(ev) && (k->type == K_NAMES || strcmp(sval(ev), "~") != 0)) {
            clear_value(L->cfg, k); /* but "roots: ~" is not a list */
            return 0;
        }
        return wrong_type(L, path, k->type == K_NAMES ? "a list of names" : "a list of paths", ev);
    case K_PROFILES:
        if (ev->type == YAML_MAPPING_START_EVENT) {
            clear_value(L->cfg, k);
            return parse_profiles(L, k);
        }
        if (is_null(ev)) {
            clear_value(L->cfg, k);
            return 0;
        }
        return wrong_type(L, path, "a mapping of profiles", ev);
    }
    return -EINVAL;
}

/* A mapping of keys under `prefix` ("" at the top); its MAPPING_START has
 * been read. Recursion depth is bounded by the table's section depth. */
static int parse_mapping(struct loader *L, const char *prefix)
{
    struct seen seen = {0};
    size_t np = strlen(prefix);
    int rc;
    for (;;) {
        yaml_event_t kev, vev;
        if ((rc = next(L, &kev)) < 0)
            goto fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = fail(L, kev.start_mark, "keys must be plain words, found %s",
                      kev.type == YAML_MAPPING_START_EVENT ? "a mapping" : "a list");
            yaml_event_delete(&kev);
            goto fail;
        }
        /* a key with a '.' or a NUL never matches: "http.port: 1" at the top
         * is unknown, so each value has one spelling and duplicates show */
        char path[MAX_PATH_KEY] = "";
        const char *name = sval(&kev);
        bool ok = kev.data.scalar.length == strlen(name) && *name && !strchr(name, '.') &&
                  np + 1 + strlen(name) < sizeof path;
        const struct key *k = NULL;
        bool section = false;
        if (ok) {
            snprintf(path, sizeof path, "%s%s%s", prefix, np ? "." : "", name);
            k = find_key(path);
            section = !k && is_section(path);
        }
        if (!k && !section)
            rc = unknown_key(L, prefix, &kev);
        else
            rc = seen_add(L, &seen, path, path, kev.start_mark);
        yaml_event_delete(&kev);
        if (rc < 0 || (rc = next(L, &vev)) < 0)
            goto fail;
        if (k) {
            rc = parse_value(L, k, &vev);
        } else if (vev.type == YAML_MAPPING_START_EVENT) {
            rc = parse_mapping(L, path);
        } else if (!is_null(&vev)) {
            char buf[64];
            rc = fail(L, vev.start_mark, "%s: is a section, expected a mapping of its keys, found %s",
                      path, what(&vev, buf, sizeof buf));
        }
        yaml_event_delete(&vev);
        if (rc < 0)
            goto fail;
    }
    rc = 0;
fail:
    seen_free(&seen);
    return rc;
}

/* stream: nothing, or one document whose root is a mapping or null. */
static int parse_stream(struct loader *L)
{
    yaml_event_t ev;
    int rc;
    if ((rc = next(L, &ev)) < 0) /* STREAM_START */
        return rc;
    yaml_event_delete(&ev);
    if ((rc = next(L, &ev)) < 0)
        return rc;
    bool empty = ev.type == YAML_STREAM_END_EVENT; /* no document at all */
    yaml_event_delete(&ev);
    if (empty)
        return 0;
    if ((rc = next(L, &ev)) < 0) /* the root */
        return rc;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        rc = parse_mapping(L, "");
    } else if (!is_null(&ev)) {
        char buf[64];
        rc = fail(L, ev.start_mark, "the top level must be a mapping of keys (KEY: VALUE), found %s",
                  what(&ev, buf, sizeof buf));
    }
    yaml_event_delete(&ev);
    if (rc < 0 || (rc = next(L, &ev)) < 0) /* DOCUMENT_END */
        return rc;
    yaml_event_delete(&ev);
    if ((rc = next(L, &ev)) < 0)
        return rc;
    if (ev.type == YAML_DOCUMENT_START_EVENT)
        rc = fail(L, ev.start_mark, "only one YAML document is allowed in the config");
    yaml_event_delete(&ev);
    return rc;
}

/* Replaces *cfg with tmp, freeing cfg's old contents. */
static void replace(struct hd_config *cfg, struct hd_config *tmp)
{
    hd_config_done(cfg);
    *cfg = *tmp;
}

int hd_config_parse(const char *name, const char *buf, size_t len, struct hd_config *cfg,
                    struct hr_err *err)
{
    struct loader L = {.name = name ? name : "(config)", .buf = (const unsigned char *)buf,
                       .len = len, .err = err};
    struct hd_config tmp;
    int rc;
    bool parser = false;
    if (len > MAX_FILE_BYTES)
        return err_at(&L, -EFBIG, 0, 0, -1, "larger than %zu bytes", MAX_FILE_BYTES);
    if (hd_config_init(&tmp) < 0)
        return err_at(&L, -ENOMEM, 0, 0, -1, "out of memory");
    L.cfg = &tmp;
    const char *slash = strrchr(L.name, '/');
    if (slash && !(L.dir = strndup(L.name, slash == L.name ? 1 : (size_t)(slash - L.name)))) {
        rc = err_at(&L, -ENOMEM, 0, 0, -1, "out of memory");
        goto fail;
    }
    if (!yaml_parser_initialize(&L.yp)) {
        rc = err_at(&L, -ENOMEM, 0, 0, -1, "out of memory");
        goto fail;
    }
    parser = true;
    yaml_parser_set_input_string(&L.yp, L.buf, len);
    yaml_parser_set_encoding(&L.yp, YAML_UTF8_ENCODING);
    if ((rc = parse_stream(&L)) < 0)
        goto fail;
    yaml_parser_delete(&L.yp);
    free(L.dir);
    free(L.home);
    replace(cfg, &tmp);
    return 0;
fail:
    if (parser)
        yaml_parser_delete(&L.yp);
    free(L.dir);
    free(L.home);
    hd_config_done(&tmp);
    return rc;
}

/* Reads a whole file of at most MAX_FILE_BYTES. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = NULL;
    size_t n = 0;
    int rc;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto fail;
    }
    if (!(buf = malloc(MAX_FILE_BYTES + 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (;;) { /* one byte more than allowed tells "too large" */
        ssize_t r = read(fd, buf + n, MAX_FILE_BYTES + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > MAX_FILE_BYTES) {
            rc = -EFBIG;
            goto fail;
        }
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    close(fd);
    return rc;
}

int hd_config_load(const char *path, struct hd_config *cfg, struct hr_err *err)
{
    char *def = path ? NULL : hd_config_default_path();
    const char *file = path ? path : def;
    char *buf = NULL;
    size_t len = 0;
    int rc = file ? read_file(file, &buf, &len) : -ENOENT;
    if (rc < 0 && !path && (rc == -ENOENT || rc == -ENOTDIR)) {
        /* no config file at the default place: the defaults */
        struct hd_config tmp;
        struct loader L = {.name = file ? file : "(config)", .err = err};
        if ((rc = hd_config_init(&tmp)) == 0)
            replace(cfg, &tmp);
        else
            err_at(&L, rc, 0, 0, -1, "out of memory");
        goto out;
    }
    if (rc < 0) {
        struct loader L = {.name = file, .err = err};
        if (rc == -EFBIG)
            err_at(&L, rc, 0, 0, -1, "larger than %zu bytes", MAX_FILE_BYTES);
        else
            err_at(&L, rc, 0, 0, -1, "cannot read: %s", strerror(-rc));
        goto out;
    }
    rc = hd_config_parse(file, buf, len, cfg, err);
out:
    free(buf);
    free(def);
    return rc;
}

/* ---- the Markdown reference ----------------------------------------------- */

static const char *const type_names[] = {
    [K_BOOL] = "boolean",       [K_INT] = "integer",      [K_SIZE] = "integer (bytes)",
    [K_FLOAT] = "number",       [K_ENUM] = "word",        [K_STR] = "string",
    [K_PATH] = "path",          [K_NAMES] = "list of names", [K_PATHS] = "list of paths",
    [K_PROFILES] = "mapping of profiles",
};

/* A number as YAML writes it, keeping a float a float ("1.0", not "1"). */
static void fmt_float(double v, char *buf, size_t n)
{
    snprintf(buf, n, "%g", v);
    if (!strpbrk(buf, ".e"))
        snprintf(buf + strlen(buf), n - strlen(buf), ".0");
}

/* The default in YAML; "" when the key is unset by default. */
static void default_text(const struct key *k, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    switch (k->type) {
    case K_BOOL:
        snprintf(buf, n, "%s", k->def != 0 ? "true" : "false");
        break;
    case K_INT:
    case K_SIZE:
        snprintf(buf, n, "%lld", (long long)k->def);
        break;
    case K_FLOAT:
        fmt_float(k->def, buf, n);
        break;
    case K_ENUM:
        snprintf(buf, n, "%s", k->def_word);
        break;
    case K_NAMES:
    case K_PATHS:
        used = (size_t)snprintf(buf, n, "[");
        for (const char *const *d = k->def_list; d && *d && used < n; d++)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", d == k->def_list ? "" : ", ", *d);
        if (used < n)
            snprintf(buf + used, n - used, "]");
        break;
    case K_PROFILES:
        snprintf(buf, n, "{}");
        break;
    default:
        break;
    }
}

static void allowed_text(const struct key *k, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    switch (k->type) {
    case K_BOOL:
        snprintf(buf, n, "`true`, `false`");
        break;
    case K_INT:
    case K_SIZE:
    case K_FLOAT:
        range_text(k, buf, n);
        break;
    case K_ENUM:
        for (const struct word *w = k->words; w->name && used < n; w++)
            used += (size_t)snprintf(buf + used, n - used, "%s`%s`", used ? ", " : "", w->name);
        break;
    case K_STR:
        snprintf(buf, n, "any text");
        break;
    case K_PATH:
    case K_PATHS:
        snprintf(buf, n, "`~/` is home; relative: to the config's directory");
        break;
    case K_NAMES:
        snprintf(buf, n, "names: " NAME_RULE);
        break;
    case K_PROFILES: {
        char r[64];
        range_text(k, r, sizeof r);
        snprintf(buf, n, "names as for lists; scales %s", r);
        break;
    }
    }
}

/* Writes the complete config at the defaults, sections opened as the
 * (contiguous) keys of each come up; unset keys as comments. */
static void write_example(FILE *f)
{
    const char *prev = "";
    size_t prev_n = 0; /* length of prev's parent path ("" at the top) */
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *p = keys[i].path;
        const char *leaf = strrchr(p, '.');
        size_t parent_n = leaf ? (size_t)(leaf - p) : 0;
        leaf = leaf ? leaf + 1 : p;
        /* whole components this key's parent shares with the previous one's */
        size_t depth = 0, pos = 0;
        while (pos < parent_n && pos < prev_n) {
            size_t e = pos;
            while (e < parent_n && p[e] != '.')
                e++;
            bool same = strncmp(p + pos, prev + pos, e - pos) == 0 &&
                        (e == prev_n || (e < prev_n && prev[e] == '.'));
            if (!same)
                break;
            depth++;
            pos = e + 1;
        }
        /* open the sections below the shared part */
        while (pos < parent_n) {
            size_t e = pos;
            while (e < parent_n && p[e] != '.')
                e++;
            fprintf(f, "%*s%.*s:\n", (int)(2 * depth), "", (int)(e - pos), p + pos);
            depth++;
            pos = e + 1;
        }
        char def[128];
        default_text(&keys[i], def, sizeof def);
        if (def[0])
            fprintf(f, "%*s%s: %s\n", (int)(2 * depth), "", leaf, def);
        else
            fprintf(f, "%*s# %s: %s\n", (int)(2 * depth), "", leaf,
                    keys[i].type == K_PATH ? "PATH" : "TEXT");
        prev = p;
        prev_n = parent_n;
    }
}

int hd_config_write_doc(FILE *f)
{
    fprintf(f, "%s\n\n", HD_CONFIG_DOC_MARKER);
    fprintf(f, "## Keys\n\n"
               "A key `a.b` is the key `b` inside the section `a`. Unset: the key has no value "
               "unless the file gives one, and the daemon decides (see Meaning).\n\n"
               "| Key | Type | Default | Allowed | Meaning |\n"
               "| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        char def[128], allowed[160];
        default_text(k, def, sizeof def);
        allowed_text(k, allowed, sizeof allowed);
        fprintf(f, "| `%s` | %s | %s%s%s | %s | %s |\n", k->path, type_names[k->type],
                def[0] ? "`" : "", def[0] ? def : "unset", def[0] ? "`" : "", allowed, k->doc);
    }
    fprintf(f, "\n## Every key at its default\n\n"
               "This file is what hearthd uses when there is no config file.\n\n```yaml\n");
    write_example(f);
    fprintf(f, "```\n");
    return ferror(f) ? -EIO : 0;
}
