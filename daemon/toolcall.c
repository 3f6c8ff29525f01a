/*
 * toolcall.c — the tool-call formats of the model families (see toolcall.h)
 * turned into OpenAI tool_calls.
 *
 * The answer is scanned once, left to right. Each tool-call opener found is
 * tried in place: the JSON after it is delimited by bracket matching (aware
 * of strings and escapes), then parsed with jansson and checked for a name
 * and arguments. A call that fails any step is not a call: its opener is
 * copied to the content and the scan goes on right after it, so the whole
 * malformed text ends up in the content unchanged.
 */
#include "toolcall.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char TAG_OPEN[] = "<tool_call>";
static const char TAG_CLOSE[] = "</tool_call>";
static const char MISTRAL[] = "[TOOL_CALLS]";
static const char MISTRAL_ARGS[] = "[ARGS]";
static const char PYTAG[] = "<|python_tag|>";

/* The openers in the order they are tried at one position. */
static const char *const OPENERS[] = {TAG_OPEN, MISTRAL, PYTAG};
#define N_OPENERS (sizeof OPENERS / sizeof OPENERS[0])

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_ws(const char *t, size_t len, size_t i)
{
    while (i < len && is_ws(t[i]))
        i++;
    return i;
}

static bool starts_with(const char *t, size_t len, size_t i, const char *s)
{
    size_t n = strlen(s);
    return len - i >= n && memcmp(t + i, s, n) == 0;
}

/* t[start] is '{' or '['. Returns the index just past the matching closer,
 * or 0 when the value is unterminated or its brackets do not match. */
static size_t json_span(const char *t, size_t len, size_t start)
{
    char stack[64];
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = start; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\')
                i++; /* skips the escaped character ("\"" does not end the string) */
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (depth == sizeof stack)
                return 0; /* deeper than any tool call; not worth following */
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c)
                return 0;
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

/* ---- output buffers ------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_rtrim(struct buf *b)
{
    while (b->len > 0 && is_ws(b->p[b->len - 1]))
        b->p[--b->len] = '\0';
}

/* Appends a piece of content; the first piece after a call starts on a new
 * line when content precedes the call (the call's own whitespace is gone). */
static int add_text(struct buf *b, bool *sep, const char *s, size_t n)
{
    if (*sep && b->len > 0 && buf_add(b, "\n", 1) < 0)
        return -ENOMEM;
    *sep = false;
    return buf_add(b, s, n);
}

/* A fresh "call_" id: 24 random alphanumerics (random so that ids stay
 * unique across requests and daemon restarts without shared state). */
static void make_id(char out[32])
{
    static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* No entropy yet (early boot): unique enough from the clock and a counter. */
        static unsigned counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ++counter;
        for (size_t i = 0; i < sizeof r; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    memcpy(out, "call_", 5);
    for (size_t i = 0; i < sizeof r; i++)
        out[5 + i] = ALNUM[r[i] % (sizeof ALNUM - 1)];
    out[5 + sizeof r] = '\0';
}

/* Builds the OpenAI form of one call object of the model, or returns NULL
 * when it is not a call. `args_required`: the bare Llama form, where any JSON
 * answer with a "name" would otherwise look like a call. */
static json_t *make_call(json_t *obj, bool args_required)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *name = json_object_get(obj, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return NULL;
    json_t *args = json_object_get(obj, "arguments");
    if (!args)
        args = json_object_get(obj, "parameters");
    if (!args && args_required)
        return NULL;

    char *args_text = NULL;
    if (!args)
        args_text = strdup("{}");
    else if (json_is_object(args))
        args_text = json_dumps(args, JSON_COMPACT);
    else if (json_is_string(args)) /* some models write the arguments as a JSON string */
        args_text = strdup(json_string_value(args));
    else
        return NULL;
    if (!args_text)
        return NULL;

    char id[32];
    make_id(id);
    json_t *call = json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id, "type", "function",
                             "function", "name", name, "arguments", args_text);
    free(args_text);
    return call;
}

/* Parses the JSON value at t[i] ('{' or '[') into calls appended to `calls`.
 * An array must hold only calls. Returns the index past the value, or 0 when
 * it is not (entirely) calls; then `calls` is unchanged. */
static size_t take_json_calls(const char *t, size_t len, size_t i, bool args_required,
                              json_t *calls)
{
    if (i >= len || (t[i] != '{' && t[i] != '['))
        return 0;
    size_t end = json_span(t, len, i);
    if (!end)
        return 0;
    json_t *v = json_loadb(t + i, end - i, 0, NULL);
    if (!v)
        return 0;
    json_t *found = json_array();
    bool ok = found != NULL;
    if (ok && json_is_array(v)) {
        size_t k;
        json_t *el;
        ok = json_array_size(v) > 0;
        json_array_foreach (v, k, el) {
            json_t *c = ok ? make_call(el, args_required) : NULL;
            if (!c || json_array_append_new(found, c) < 0) {
                ok = false;
                break;
            }
        }
    } else if (ok) {
        json_t *c = make_call(v, args_required);
        ok = c && json_array_append_new(found, c) == 0;
    }
    ok = ok && json_array_extend(calls, found) == 0;
    json_decref(found);
    json_decref(v);
    return ok ? end : 0;
}

/* Llama 3.x: one or more JSON calls separated by ';' (or whitespace). */
static size_t take_llama_calls(const char *t, size_t len, size_t i, json_t *calls)
{
    size_t end = take_json_calls(t, len, i, true, calls);
    if (!end)
        return 0;
    for (;;) {
        size_t j = skip_ws(t, len, end);
        if (j < len && t[j] == ';')
            j = skip_ws(t, len, j + 1);
        size_t next = take_json_calls(t, len, j, true, calls);
        if (!next)
            return end;
        end = next;
    }
}

/* Tries the call that starts with `opener` at t[i]; returns the index past
 * it, or 0 when it is not a valid call. */
static size_t take_opener(const char *t, size_t len, size_t i, const char *opener, json_t *calls)
{
    size_t j = skip_ws(t, len, i + strlen(opener));
    if (opener == TAG_OPEN) {
        size_t n_before = json_array_size(calls);
        size_t end = take_json_calls(t, len, j, false, calls);
        if (!end)
            return 0;
        size_t k = skip_ws(t, len, end);
        if (starts_with(t, len, k, TAG_CLOSE))
            return k + strlen(TAG_CLOSE);
        if (k == len) /* the answer ended before the closing tag: still a complete call */
            return k;
        /* Something else after the JSON: not the format; undo. */
        while (json_array_size(calls) > n_before)
            json_array_remove(calls, json_array_size(calls) - 1);
        return 0;
    }
    if (opener == MISTRAL) {
        if (j < len && (t[j] == '[' || t[j] == '{'))
            return take_json_calls(t, len, j, false, calls);
        /* The newer form: [TOOL_CALLS]name[ARGS]{...} */
        size_t k = j;
        while (k < len && !is_ws(t[k]) && t[k] != '[' && t[k] != '{')
            k++;
        if (k == j || !starts_with(t, len, k, MISTRAL_ARGS))
            return 0;
        size_t a = skip_ws(t, len, k + strlen(MISTRAL_ARGS));
        if (a >= len || t[a] != '{')
            return 0;
        size_t end = json_span(t, len, a);
        json_t *args = end ? json_loadb(t + a, end - a, 0, NULL) : NULL;
        json_t *obj = json_is_object(args) ? json_pack("{s:s%, s:O}", "name", t + j, k - j,
                                                       "arguments", args)
                                           : NULL;
        json_t *c = obj ? make_call(obj, true) : NULL;
        json_decref(obj);
        json_decref(args);
        if (!c || json_array_append_new(calls, c) < 0)
            return 0;
        return end;
    }
    return take_llama_calls(t, len, j, calls); /* PYTAG */
}

int hd_toolcalls_parse(const char *text, size_t len, char **content, char **tool_calls_json,
                       struct hr_err *err)
{
    hr_err_clear(err);
    if (!text && len > 0) {
        if (err)
            snprintf(err->msg, sizeof err->msg, "toolcalls: no text");
        return -EINVAL;
    }
    if (!text)
        text = "";

    struct buf out = {0};
    char *calls_text = NULL;
    json_t *calls = json_array();
    if (!calls || buf_add(&out, "", 0) < 0)
        goto nomem;

    size_t pos = 0;
    bool drop_ws = false; /* just after a call: its following whitespace goes */
    bool sep = false;     /* text after a call is set off from text before it */

    /* Llama 3.x: the answer itself is the call. */
    size_t first = skip_ws(text, len, 0);
    size_t end = take_llama_calls(text, len, first, calls);
    if (end) {
        pos = end;
        drop_ws = sep = true;
    }

    while (pos < len) {
        if (drop_ws) {
            pos = skip_ws(text, len, pos);
            drop_ws = false;
            continue;
        }
        /* The next opener, if any. */
        size_t at = len;
        const char *opener = NULL;
        for (size_t i = pos; i < len && !opener; i++) {
            if (text[i] != '<' && text[i] != '[')
                continue;
            for (size_t k = 0; k < N_OPENERS; k++) {
                if (starts_with(text, len, i, OPENERS[k])) {
                    at = i;
                    opener = OPENERS[k];
                    break;
                }
            }
        }
        if (at > pos && add_text(&out, &sep, text + pos, at - pos) < 0)
            goto nomem;
        if (!opener)
            break;
        end = take_opener(text, len, at, opener, calls);
        if (end) {
            buf_rtrim(&out);
            pos = end;
            drop_ws = sep = true;
        } else {
            if (add_text(&out, &sep, opener, strlen(opener)) < 0)
                goto nomem;
            pos = at + strlen(opener);
        }
    }

    size_t n = json_array_size(calls);
    if (n > 0) {
        calls_text = json_dumps(calls, JSON_COMPACT);
        if (!calls_text)
            goto nomem;
    }
    json_decref(calls);
    *content = out.p;
    *tool_calls_json = calls_text;
    return (int)n;

nomem:
    json_decref(calls);
    free(out.p);
    if (err)
        snprintf(err->msg, sizeof err->msg, "toolcalls: out of memory");
    return -ENOMEM;
}

size_t hd_toolcalls_stream_safe(const char *text, size_t len)
{
    if (!text)
        return 0;
    size_t first = skip_ws(text, len, 0);
    if (first == len || text[first] == '{')
        return 0; /* nothing yet, or possibly a Llama call: wait for the end */

    size_t safe = len;
    for (size_t i = first; i < len && safe == len; i++) {
        if (text[i] != '<' && text[i] != '[')
            continue;
        for (size_t k = 0; k < N_OPENERS; k++) {
            size_t n = strlen(OPENERS[k]);
            size_t have = len - i < n ? len - i : n;
            /* A whole opener, or the start of one cut off by the end of the text. */
            if (memcmp(text + i, OPENERS[k], have) == 0) {
                safe = i;
                break;
            }
        }
    }
    while (safe > 0 && is_ws(text[safe - 1]))
        safe--;
    return safe;
}
