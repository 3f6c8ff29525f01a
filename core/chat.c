/*
 * chat.c — hr_chat_render: OpenAI-style chat messages → prompt text through
 * the model's Jinja chat template (jinja*.c), and the plain fallback for
 * models without one.
 *
 * The request is validated and normalized here (content parts joined into
 * a string), then adapted to the template the way llama.cpp's minja does it,
 * since that is what the reference renders were made with: the template is
 * probed with small conversations and, if it cannot render a system
 * message, the system text moves into the next user message; if it renders
 * tool-call arguments only as objects, JSON-string arguments are parsed.
 * Probes run only when the request has something they decide.
 */
#include "chat.h"

#include "err.h"
#include "model.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Nesting depth of a JSON value (jansson parses at most 2048 levels). */
static int json_depth(const json_t *j)
{
    int d = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            int k = json_depth(json_array_get(j, i));
            d = k > d ? k : d;
        }
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            int n = json_depth(v);
            d = n > d ? n : d;
        }
    } else {
        return 0;
    }
    return d + 1;
}

#define MAX_JSON_DEPTH 128 /* requests are a few levels deep; templates walk values recursively */

/* A JSON input: parsed, or an error naming it and jansson's line:column. */
static int load_json(const char *what, const char *text, json_t **out, struct hr_err *err)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) {
        int rc = hr_err_set(err, -EINVAL, je.position, "%s: invalid JSON at %d:%d: %s", what,
                            je.line, je.column, je.text);
        if (err) {
            err->line = je.line;
            err->column = je.column;
        }
        return rc;
    }
    if (json_depth(j) > MAX_JSON_DEPTH) {
        json_decref(j);
        return hr_err_set(err, -EINVAL, -1, "%s: nested more than %d levels deep", what,
                          MAX_JSON_DEPTH);
    }
    *out = j;
    return 0;
}

/* Validates one message and returns a normalized deep copy: content parts
 * [{"type": "text", "text": ...}] become one string joined with "\n", as
 * llama.cpp passes them to templates that take strings. */
static int normalize_message(size_t i, json_t *m, json_t **out, struct hr_err *err)
{
    if (!json_is_object(m))
        return hr_err_set(err, -EINVAL, -1, "messages[%zu]: not an object", i);
    if (!json_is_string(json_object_get(m, "role")))
        return hr_err_set(err, -EINVAL, -1, "messages[%zu]: 'role' must be a string", i);
    json_t *c = json_object_get(m, "content");
    if (c && !json_is_string(c) && !json_is_null(c) && !json_is_array(c))
        return hr_err_set(err, -EINVAL, -1,
                          "messages[%zu]: 'content' must be a string, null or an array of parts", i);
    json_t *tc = json_object_get(m, "tool_calls");
    if (tc && !json_is_array(tc) && !json_is_null(tc))
        return hr_err_set(err, -EINVAL, -1, "messages[%zu]: 'tool_calls' must be an array", i);
    for (size_t k = 0; json_is_array(tc) && k < json_array_size(tc); k++) {
        json_t *call = json_array_get(tc, k), *fn = json_object_get(call, "function");
        if (!json_is_object(call) || (fn && !json_is_object(fn)))
            return hr_err_set(err, -EINVAL, -1,
                              "messages[%zu].tool_calls[%zu]: must be an object with an object "
                              "'function'", i, k);
    }
    json_t *copy = json_deep_copy(m);
    if (!copy)
        return -ENOMEM;
    if (json_is_array(c)) {
        size_t len = 0;
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *part = json_array_get(c, k);
            const char *type = json_string_value(json_object_get(part, "type"));
            json_t *text = json_object_get(part, "text");
            if (!type || strcmp(type, "text") != 0 || !json_is_string(text)) {
                json_decref(copy);
                return hr_err_set(err, -EINVAL, -1,
                                  "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": "
                                  "...} parts are supported", i, k);
            }
            len += json_string_length(text) + 1;
        }
        char *buf = malloc(len + 1);
        if (!buf) {
            json_decref(copy);
            return -ENOMEM;
        }
        size_t n = 0;
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *text = json_object_get(json_array_get(c, k), "text");
            if (k)
                buf[n++] = '\n';
            memcpy(buf + n, json_string_value(text), json_string_length(text));
            n += json_string_length(text);
        }
        int rc = json_object_set_new(copy, "content", json_stringn(buf, n));
        free(buf);
        if (rc < 0) {
            json_decref(copy);
            return -ENOMEM;
        }
    }
    *out = copy;
    return 0;
}

static bool utf8_check(const char *s)
{
    json_t *j = json_string(s); /* jansson validates UTF-8 */
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

struct render_in {
    const struct jinja_tmpl *t;
    const struct hr_chat_opts *o;
    const struct jinja_limits *lim;
    int64_t now;
    char date[32];
};

/* Renders messages (+ tools, + extra) with the fixed variables. */
static int render(const struct render_in *in, json_t *messages, json_t *tools, json_t *extra,
                  bool add_gen, char **out, size_t *len, struct hr_err *err)
{
    const char *bos = in->o->bos_token ? in->o->bos_token : "";
    const char *eos = in->o->eos_token ? in->o->eos_token : "";
    if (!utf8_check(bos) || !utf8_check(eos))
        return hr_err_set(err, -EINVAL, -1, "bos_token or eos_token is not valid UTF-8");
    json_t *vars = json_object();
    if (!vars)
        return -ENOMEM;
    int rc = 0;
    rc |= json_object_set_new(vars, "bos_token", json_string(bos));
    rc |= json_object_set_new(vars, "eos_token", json_string(eos));
    rc |= json_object_set_new(vars, "date_string", json_string(in->date));
    if (extra)
        rc |= json_object_update(vars, extra);
    rc |= json_object_set(vars, "messages", messages);
    if (tools)
        rc |= json_object_set(vars, "tools", tools);
    else
        json_object_del(vars, "tools"); /* absent, whatever extra_json says */
    rc |= json_object_set_new(vars, "add_generation_prompt", json_boolean(add_gen));
    if (rc < 0) {
        json_decref(vars);
        return -ENOMEM;
    }
    rc = jinja_render(in->t, vars, in->now, in->lim, out, len, err);
    json_decref(vars);
    return rc;
}

/* Does rendering `messages` (no tools, no generation prompt) succeed and
 * contain `needle`? Errors count as no, as in minja's probes. */
static bool probe(const struct render_in *in, json_t *messages, const char *needle)
{
    char *s = NULL;
    bool found = false;
    if (messages && render(in, messages, NULL, NULL, false, &s, NULL, NULL) == 0)
        found = strstr(s, needle) != NULL;
    free(s);
    json_decref(messages);
    return found;
}

static bool supports_system_role(const struct render_in *in)
{
    json_t *m = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                          "<System Needle>", "role", "user", "content", "<User Needle>");
    return probe(in, m, "<System Needle>");
}

/* Tool-call arguments must be objects when a template renders them from
 * an object but not from the same JSON as a string (it escapes the string
 * with tojson). */
static bool requires_object_arguments(const struct render_in *in)
{
    bool as_str = false, as_obj = false;
    for (int obj = 0; obj < 2; obj++) {
        json_t *args = obj ? json_pack("{s:s}", "argument_needle", "print('Hello, World!')")
                           : json_string("{\"argument_needle\": \"print('Hello, World!')\"}");
        json_t *m = json_pack("[{s:s, s:s}, {s:s, s:n, s:[{s:s, s:s, s:{s:o, s:s}}]}]", "role",
                              "user", "content", "<User Needle>", "role", "assistant",
                              "content", "tool_calls", "id", "call_1___", "type", "function",
                              "function", "arguments", args, "name", "ipython");
        char *s = NULL;
        bool hit = false;
        if (m && render(in, m, NULL, NULL, false, &s, NULL, NULL) == 0)
            hit = strstr(s, "\"argument_needle\":") || strstr(s, "'argument_needle':");
        free(s);
        json_decref(m);
        if (obj)
            as_obj = hit;
        else
            as_str = hit;
    }
    return !as_str && as_obj;
}

static bool has_role(json_t *messages, const char *role)
{
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const char *r = json_string_value(json_object_get(json_array_get(messages, i), "role"));
        if (r && strcmp(r, role) == 0)
            return true;
    }
    return false;
}

/* Calls f(function object, arguments string) for each tool call whose
 * arguments are a string. */
static int each_string_arguments(json_t *messages, int (*f)(json_t *fn, json_t *args))
{
    int n = 0;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *tc = json_object_get(json_array_get(messages, i), "tool_calls");
        for (size_t k = 0; k < json_array_size(tc); k++) {
            json_t *fn = json_object_get(json_array_get(tc, k), "function");
            json_t *args = json_object_get(fn, "arguments");
            if (json_is_string(args)) {
                n++;
                if (f && f(fn, args) < 0)
                    return -ENOMEM;
            }
        }
    }
    return n;
}

static int parse_arguments(json_t *fn, json_t *args)
{
    json_t *v = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
    if (!v)
        return 0; /* not JSON: the template gets the string, as minja leaves it */
    return json_object_set_new(fn, "arguments", v) < 0 ? -ENOMEM : 0;
}

/* minja's system-role polyfill: system texts are held and prepended to the
 * next user message ("system\nuser"); a message of another role with
 * content first flushes them as a user message of their own. */
struct text {
    char *p;
    size_t n;
};

static int text_add(struct text *t, const char *sep, const char *s, size_t n)
{
    size_t sl = t->n ? strlen(sep) : 0;
    char *p = realloc(t->p, t->n + sl + n + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p + t->n, sep, sl);
    memcpy(p + t->n + sl, s, n);
    t->p = p;
    t->n += sl + n;
    return 0;
}

static int flush_system(json_t *out, struct text *pending)
{
    if (!pending->n)
        return 0;
    json_t *u = json_pack("{s:s, s:s%}", "role", "user", "content", pending->p, pending->n);
    pending->n = 0;
    return json_array_append_new(out, u);
}

static json_t *merge_system(json_t *messages)
{
    json_t *out = json_array();
    struct text pending = {0};
    for (size_t i = 0; out && i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *c = json_object_get(m, "content");
        if (json_is_string(c)) {
            const char *text = json_string_value(c);
            size_t tlen = json_string_length(c);
            if (strcmp(role, "system") == 0) {
                if (text_add(&pending, "\n", text, tlen) < 0)
                    goto fail;
                continue;
            }
            if (strcmp(role, "user") == 0 && pending.n) {
                if (tlen && text_add(&pending, "\n", text, tlen) < 0)
                    goto fail;
                json_t *u = json_deep_copy(m);
                if (!u || json_object_set_new(u, "content", json_stringn(pending.p, pending.n)) < 0 ||
                    json_array_append_new(out, u) < 0)
                    goto fail;
                pending.n = 0;
                continue;
            }
            if (strcmp(role, "user") != 0 && flush_system(out, &pending) < 0)
                goto fail;
        }
        if (json_array_append(out, m) < 0)
            goto fail;
    }
    if (out && flush_system(out, &pending) < 0)
        goto fail;
    free(pending.p);
    return out;
fail:
    free(pending.p);
    json_decref(out);
    return NULL;
}

/* tmpl NULL: the contents joined by blank lines. */
static int render_plain(json_t *messages, char **out, struct hr_err *err)
{
    size_t len = 0;
    for (size_t i = 0; i < json_array_size(messages); i++)
        len += json_string_length(json_object_get(json_array_get(messages, i), "content")) + 2;
    char *s = malloc(len + 1);
    if (!s)
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *c = json_object_get(json_array_get(messages, i), "content");
        if (!json_string_length(c))
            continue;
        if (n) {
            memcpy(s + n, "\n\n", 2);
            n += 2;
        }
        memcpy(s + n, json_string_value(c), json_string_length(c));
        n += json_string_length(c);
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

int chat_render(const char *tmpl, const char *messages_json, const char *tools_json,
                const struct hr_chat_opts *opts, const struct jinja_limits *lim, char **out,
                struct hr_err *err)
{
    static const struct hr_chat_opts zero_opts;
    json_t *raw = NULL, *messages = NULL, *tools = NULL, *extra = NULL;
    struct jinja_tmpl *t = NULL;
    char *res = NULL;
    size_t len = 0;
    int rc;
    hr_err_clear(err);
    if (!opts)
        opts = &zero_opts;
    if (!messages_json || !out)
        return hr_err_set(err, -EINVAL, -1, "no messages");

    if ((rc = load_json("messages", messages_json, &raw, err)) < 0)
        goto fail;
    if (!json_is_array(raw)) {
        rc = hr_err_set(err, -EINVAL, -1, "messages: must be a JSON array");
        goto fail;
    }
    if (!(messages = json_array())) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(raw); i++) {
        json_t *m = NULL;
        if ((rc = normalize_message(i, json_array_get(raw, i), &m, err)) < 0)
            goto fail;
        if (json_array_append_new(messages, m) < 0) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if (tools_json) {
        if ((rc = load_json("tools", tools_json, &tools, err)) < 0)
            goto fail;
        if (json_is_null(tools)) {
            json_decref(tools);
            tools = NULL;
        } else if (!json_is_array(tools)) {
            rc = hr_err_set(err, -EINVAL, -1, "tools: must be a JSON array");
            goto fail;
        }
    }
    if (opts->extra_json) {
        if ((rc = load_json("extra_json", opts->extra_json, &extra, err)) < 0)
            goto fail;
        if (!json_is_object(extra)) {
            rc = hr_err_set(err, -EINVAL, -1, "extra_json: must be a JSON object");
            goto fail;
        }
    }

    if (!tmpl) {
        rc = render_plain(messages, &res, err);
        if (rc < 0)
            goto fail;
        goto done;
    }

    if ((rc = jinja_parse(tmpl, strlen(tmpl), &t, err)) < 0)
        goto fail;
    struct render_in in = {.t = t, .o = opts, .lim = lim};
    in.now = opts->now ? opts->now : (int64_t)time(NULL);
    {
        static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        time_t tt = (time_t)in.now;
        struct tm tm;
        if (localtime_r(&tt, &tm))
            snprintf(in.date, sizeof in.date, "%02d %s %d", tm.tm_mday, mon[tm.tm_mon],
                     tm.tm_year + 1900);
    }

    if (has_role(messages, "system") && !supports_system_role(&in)) {
        json_t *merged = merge_system(messages);
        if (!merged) {
            rc = -ENOMEM;
            goto fail;
        }
        json_decref(messages);
        messages = merged;
    }
    if (each_string_arguments(messages, NULL) > 0 && requires_object_arguments(&in) &&
        each_string_arguments(messages, parse_arguments) < 0) {
        rc = -ENOMEM;
        goto fail;
    }

    if ((rc = render(&in, messages, tools, extra, opts->add_generation_prompt, &res, &len, err)) < 0)
        goto fail;
    if (memchr(res, '\0', len)) {
        rc = hr_err_set(err, -EINVAL, -1, "the rendered prompt contains a NUL character");
        goto fail;
    }
    /* the tokenizer adds BOS itself: a template's leading bos_token would double it */
    size_t bl = opts->bos_token ? strlen(opts->bos_token) : 0;
    if (bl && len >= bl && memcmp(res, opts->bos_token, bl) == 0)
        memmove(res, res + bl, len - bl + 1);
done:
    *out = res;
    res = NULL;
    rc = 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0])
        hr_err_set(err, rc, -1, "out of memory");
    free(res);
    jinja_tmpl_free(t);
    json_decref(raw);
    json_decref(messages);
    json_decref(tools);
    json_decref(extra);
    return rc;
}

int hr_chat_render(const char *tmpl, const char *messages_json, const char *tools_json,
                   const struct hr_chat_opts *opts, char **out, struct hr_err *err)
{
    return chat_render(tmpl, messages_json, tools_json, opts, NULL, out, err);
}

const char *hr_model_chat_template(const struct hr_model *model)
{
    return model->chat_template;
}
