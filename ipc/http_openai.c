/*
 * http_openai.c — the OpenAI side of the HTTP API: request bodies of
 * /v1/chat/completions and /v1/completions mapped to scheduler requests, and
 * scheduler events mapped to OpenAI replies and SSE chunks (see docs/http.md).
 *
 * Chat answers of requests with tools go through daemon/toolcall.c. When
 * streamed, content is sent as it comes except what may belong to a tool
 * call (hd_toolcalls_stream_safe), which waits for the end; the calls are
 * then sent as one tool_calls delta.
 */
#include "http_req.h"

#include "../daemon/toolcall.h"
#include "params.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- buffers and errors (shared with http.c) ---------------------------------------- */

int http_buf_add(struct http_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void http_buf_done(struct http_buf *b)
{
    free(b->p);
    *b = (struct http_buf){0};
}

char *http_error_json(const char *message, const char *type, const char *param, const char *code)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type,
                          "param", param, "code", code);
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return s;
}

/* ---- small JSON helpers ------------------------------------------------------------ */

/* Sets o[k] = v (stolen); false when either is NULL or memory runs out. */
static bool set(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) == 0; }

/* A JSON string of s[0..n). Invalid UTF-8 (never expected from the
 * scheduler, but model output is not trusted) is not dropped: each byte of
 * a malformed sequence becomes U+FFFD. */
static json_t *jstr(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    struct http_buf fix = {0};
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *one = k > 0 && i + k <= n ? json_stringn(s + i, k) : NULL; /* jansson judges */
        if (http_buf_add(&fix, one ? s + i : "\xEF\xBF\xBD", one ? k : 3) < 0) {
            json_decref(one);
            http_buf_done(&fix);
            return NULL;
        }
        i += one ? k : 1;
        json_decref(one);
    }
    v = json_stringn(fix.p, fix.len);
    http_buf_done(&fix);
    return v;
}

static void rand_alnum(char *out, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[64];
    if (n > sizeof r)
        n = sizeof r;
    if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n) {
        static uint64_t x = 0x9E3779B97F4A7C15u;
        x ^= (uint64_t)time(NULL);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < n; i++)
        out[i] = A[r[i] % (sizeof A - 1)];
    out[n] = '\0';
}

/* Builds an error reply; returns `status`. */
static unsigned fail(char **reply, unsigned status, const char *type, const char *param,
                     const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *reply = http_error_json(msg, type, param, code);
    return status;
}

/* ---- models -------------------------------------------------------------------------- */

static json_t *model_obj(const struct ipc_http *h)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", http_model_id(h), "object", "model", "created",
                     (json_int_t)http_model_created(h), "owned_by", "hearth");
}

char *oai_models_json(const struct ipc_http *h)
{
    json_t *o = json_pack("{s:s, s:[o]}", "object", "list", "data", model_obj(h));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *oai_model_json(const struct ipc_http *h, const char *id)
{
    if (strcmp(id, http_model_id(h)) != 0)
        return NULL;
    json_t *o = model_obj(h);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- requests -------------------------------------------------------------------------- */

/* Brings OpenAI messages into the shape chat templates expect: content
 * parts joined into one string, and tool-call arguments (a JSON string on
 * the wire) as objects, since templates render them with `tojson`. Returns
 * NULL, or a message saying what is wrong. */
static const char *normalize_messages(json_t *msgs, char *why, size_t n)
{
    size_t i;
    json_t *m;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return "'messages' must be a non-empty array";
    json_array_foreach (msgs, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            snprintf(why, n, "'messages[%zu]' must be an object with a string 'role'", i);
            return why;
        }
        json_t *content = json_object_get(m, "content");
        if (json_is_array(content)) {
            struct http_buf joined = {0};
            size_t k;
            json_t *part;
            json_array_foreach (content, k, part) {
                json_t *text = json_object_get(part, "text");
                const char *type = json_string_value(json_object_get(part, "type"));
                if (!json_is_string(text) || !type || strcmp(type, "text") != 0) {
                    http_buf_done(&joined);
                    snprintf(why, n, "'messages[%zu].content[%zu]': only text parts are supported",
                             i, k);
                    return why;
                }
                if (http_buf_add(&joined, json_string_value(text), json_string_length(text)) < 0) {
                    http_buf_done(&joined);
                    return "out of memory";
                }
            }
            json_t *v = json_stringn(joined.p ? joined.p : "", joined.len);
            http_buf_done(&joined);
            if (!set(m, "content", v))
                return "out of memory";
        } else if (content && !json_is_string(content) && !json_is_null(content)) {
            snprintf(why, n, "'messages[%zu].content' must be a string, an array or null", i);
            return why;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        size_t k;
        json_t *call;
        json_array_foreach (calls, k, call) {
            json_t *f = json_object_get(call, "function");
            json_t *args = json_object_get(f, "arguments");
            if (!json_is_string(args))
                continue;
            json_t *obj = json_loads(json_string_value(args), 0, NULL);
            if (json_is_object(obj))
                set(f, "arguments", obj);
            else
                json_decref(obj);
        }
    }
    return NULL;
}

/* The key an ipc_params_gen message names ('top_k' must be ...). */
static const char *quoted_key(const char *msg, char *buf, size_t n)
{
    const char *a = strchr(msg, '\'');
    const char *b = a ? strchr(a + 1, '\'') : NULL;
    if (!b || (size_t)(b - a - 1) >= n)
        return NULL;
    memcpy(buf, a + 1, (size_t)(b - a - 1));
    buf[b - a - 1] = '\0';
    return buf;
}

/* Keys of OpenAI requests hearth cannot honour: refused rather than
 * silently ignored. Returns the status or 0. */
static unsigned unsupported(json_t *body, bool chat, char **reply)
{
    json_t *n = json_object_get(body, "n");
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return fail(reply, 400, "invalid_request_error", "n", NULL, "only 'n': 1 is supported");
    json_t *lp = json_object_get(body, "logprobs");
    if (json_is_true(lp) || (json_is_integer(lp) && json_integer_value(lp) > 0))
        return fail(reply, 400, "invalid_request_error", "logprobs", NULL,
                    "'logprobs' is not supported");
    json_t *bias = json_object_get(body, "logit_bias");
    if (json_is_object(bias) && json_object_size(bias) > 0)
        return fail(reply, 400, "invalid_request_error", "logit_bias", NULL,
                    "'logit_bias' is not supported");
    if (chat) {
        json_t *rf = json_object_get(body, "response_format");
        const char *t = json_string_value(json_object_get(rf, "type"));
        if (rf && !json_is_null(rf) && !(t && strcmp(t, "text") == 0))
            return fail(reply, 400, "invalid_request_error", "response_format", NULL,
                        "only 'response_format' {\"type\": \"text\"} is supported");
        json_t *tc = json_object_get(body, "tool_choice");
        const char *s = json_string_value(tc);
        if (tc && !json_is_null(tc) && !(s && (!strcmp(s, "auto") || !strcmp(s, "none"))))
            return fail(reply, 400, "invalid_request_error", "tool_choice", NULL,
                        "'tool_choice' must be \"auto\" or \"none\"");
        json_t *tools = json_object_get(body, "tools");
        if (tools && !json_is_null(tools) && !json_is_array(tools))
            return fail(reply, 400, "invalid_request_error", "tools", NULL,
                        "'tools' must be an array");
    } else {
        if (json_is_true(json_object_get(body, "echo")))
            return fail(reply, 400, "invalid_request_error", "echo", NULL,
                        "'echo' is not supported");
        const char *sfx = json_string_value(json_object_get(body, "suffix"));
        if (sfx && *sfx)
            return fail(reply, 400, "invalid_request_error", "suffix", NULL,
                        "'suffix' is not supported");
        json_t *best = json_object_get(body, "best_of");
        if (json_is_integer(best) && json_integer_value(best) != 1)
            return fail(reply, 400, "invalid_request_error", "best_of", NULL,
                        "only 'best_of': 1 is supported");
    }
    return 0;
}

static json_t *chunk_base(struct http_req *r);
static bool sse_add(struct http_req *r, json_t *chunk, bool ok);

unsigned oai_submit(struct http_req *r, hd_event_fn fn, char **reply)
{
    struct hd_sched *s = http_sched(r->h);
    bool chat = r->route == ROUTE_CHAT;
    unsigned st = 0;
    char *messages = NULL, *tools = NULL;
    char why[300], key[64];
    struct hr_err err;
    json_error_t je;

    json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &je);
    if (!body) {
        st = fail(reply, 400, "invalid_request_error", NULL, NULL,
                  "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                  je.column);
        goto done;
    }
    if (!json_is_object(body)) {
        st = fail(reply, 400, "invalid_request_error", NULL, NULL,
                  "the request body must be a JSON object");
        goto done;
    }
    if ((st = unsupported(body, chat, reply)))
        goto done;

    struct hd_request req = {0};
    json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        st = fail(reply, 400, "invalid_request_error", "stream", NULL, "'stream' must be a boolean");
        goto done;
    }
    r->stream = json_is_true(stream);
    r->include_usage = json_is_true(json_object_get(json_object_get(body, "stream_options"),
                                                    "include_usage"));
    json_t *session = json_object_get(body, "session");
    if (session && !json_is_string(session) && !json_is_null(session)) {
        st = fail(reply, 400, "invalid_request_error", "session", NULL,
                  "'session' must be a string");
        goto done;
    }
    req.session = json_string_value(session);

    if (chat) {
        json_t *msgs = json_object_get(body, "messages");
        const char *bad = normalize_messages(msgs, why, sizeof why);
        if (bad) {
            st = fail(reply, 400, "invalid_request_error", "messages", NULL, "%s", bad);
            goto done;
        }
        messages = json_dumps(msgs, JSON_COMPACT);
        json_t *t = json_object_get(body, "tools");
        const char *choice = json_string_value(json_object_get(body, "tool_choice"));
        bool none = choice && strcmp(choice, "none") == 0;
        if (json_is_array(t) && json_array_size(t) > 0 && !none) {
            tools = json_dumps(t, JSON_COMPACT);
            r->tools = true;
        }
        if (!messages || (r->tools && !tools)) {
            st = fail(reply, 500, "server_error", NULL, NULL, "out of memory");
            goto done;
        }
        req.messages_json = messages;
        req.tools_json = tools;
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1)
            p = json_array_get(p, 0);
        if (!json_is_string(p)) {
            st = fail(reply, 400, "invalid_request_error", "prompt", NULL,
                      "'prompt' must be a string (or an array of one string)");
            goto done;
        }
        req.prompt = json_string_value(p);
    }

    if (ipc_params_gen(s, body, &req.gen, &err) < 0) {
        st = fail(reply, 400, "invalid_request_error", quoted_key(err.msg, key, sizeof key), NULL,
                  "%s", err.msg);
        goto done;
    }

    req.client = hd_sched_client_new(s);
    int rc = hd_sched_submit(s, &req, fn, r, &r->id, &err);
    if (rc < 0) {
        hd_sched_drop_client(s, req.client);
        r->id = 0;
        const char *what = chat ? "messages" : "prompt";
        if (rc == -EBUSY)
            st = fail(reply, 429, "rate_limit_error", NULL, "rate_limit_exceeded", "%s", err.msg);
        else if (rc == -EALREADY)
            st = fail(reply, 409, "invalid_request_error", "session", "session_busy", "%s",
                      err.msg);
        else if (rc == -E2BIG)
            st = fail(reply, 400, "invalid_request_error", what, "context_length_exceeded", "%s",
                      err.msg);
        else if (rc == -EINVAL)
            st = fail(reply, 400, "invalid_request_error", NULL, NULL, "%s", err.msg);
        else if (rc == -ENOENT) /* an unknown LoRA adapter or profile */
            st = fail(reply, 400, "invalid_request_error", "lora", NULL, "%s", err.msg);
        else
            st = fail(reply, 500, "server_error", NULL, NULL, "%s", err.msg);
        goto done;
    }
    r->client = req.client;
    r->created = (int64_t)time(NULL);
    strcpy(r->oid, chat ? "chatcmpl-" : "cmpl-");
    rand_alnum(r->oid + strlen(r->oid), 24);

    if (r->stream && chat) {
        /* The first chunk names the role, as OpenAI's does. */
        json_t *c = chunk_base(r);
        json_t *ch = json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", 0, "delta", "role",
                               "assistant", "content", "", "logprobs", "finish_reason");
        if (!sse_add(r, c, set(c, "choices", json_pack("[o]", ch)))) {
            hd_sched_drop_client(s, r->client);
            r->client = r->id = 0;
            st = fail(reply, 500, "server_error", NULL, NULL, "out of memory");
        }
    }

done:
    free(messages);
    free(tools);
    json_decref(body);
    return st;
}

/* ---- events: replies ---------------------------------------------------------------- */

static const char *finish(const char *reason)
{
    if (!reason)
        return "stop";
    if (strcmp(reason, "context") == 0 || strcmp(reason, "length") == 0)
        return "length"; /* a full context is a length limit to an OpenAI client */
    return "stop";
}

static json_t *usage_json(const struct hd_usage *u)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", (int)u->prompt_tokens,
                     "completion_tokens", (int)u->completion_tokens, "total_tokens",
                     (int)(u->prompt_tokens + u->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (int)u->cached_tokens);
}

/* A request-level failure after acceptance, as status + error body. */
static void error_reply(struct http_req *r, int code, const char *message)
{
    bool ctx = code == -E2BIG;
    r->status = ctx || code == -EINVAL ? 400 : code == -ECANCELED ? 503 : 500;
    r->reply = http_error_json(message ? message : "the request failed",
                               r->status == 400   ? "invalid_request_error"
                               : r->status == 503 ? "unavailable_error"
                                                  : "server_error",
                               NULL, ctx ? "context_length_exceeded" : NULL);
}

/* The tool calls of an answer, parsed; false on no memory. */
static bool split_calls(const char *text, size_t len, char **content, json_t **calls)
{
    char *calls_text = NULL;
    struct hr_err err;
    *calls = NULL;
    int n = hd_toolcalls_parse(text, len, content, &calls_text, &err);
    if (n < 0)
        return false;
    if (n > 0) {
        *calls = json_loads(calls_text, 0, NULL);
        free(calls_text);
        if (!*calls) {
            free(*content);
            return false;
        }
    }
    return true;
}

static bool reply_event(struct http_req *r, const struct hd_event *ev)
{
    if (ev->type == HD_EV_TEXT)
        return true;
    if (ev->type == HD_EV_ERROR) {
        error_reply(r, ev->code, ev->message);
        return r->reply != NULL;
    }
    if (ev->finish_reason && strcmp(ev->finish_reason, "cancelled") == 0) {
        error_reply(r, -ECANCELED, "the request was cancelled");
        return r->reply != NULL;
    }

    const char *fr = finish(ev->finish_reason);
    json_t *o = json_object();
    json_t *choice = json_object();
    json_t *msg = r->route == ROUTE_CHAT ? json_pack("{s:s}", "role", "assistant") : NULL;
    bool ok = o && choice && (msg || r->route != ROUTE_CHAT);
    ok = ok && set(o, "id", json_string(r->oid)) &&
         set(o, "object", json_string(msg ? "chat.completion" : "text_completion")) &&
         set(o, "created", json_integer(r->created)) &&
         set(o, "model", json_string(http_model_id(r->h)));
    if (ok && msg) {
        char *content = NULL;
        json_t *calls = NULL;
        ok = json_object_set(choice, "message", msg) == 0;
        if (ok && r->tools) {
            ok = split_calls(ev->text, ev->len, &content, &calls);
            if (ok) {
                ok = set(msg, "content", calls && !*content ? json_null()
                                                            : jstr(content, strlen(content)));
                free(content);
            }
            if (calls) {
                ok = set(msg, "tool_calls", calls) && ok;
                fr = "tool_calls";
            }
        } else if (ok) {
            ok = set(msg, "content", jstr(ev->text, ev->len));
        }
    } else if (ok) {
        ok = set(choice, "text", jstr(ev->text, ev->len));
    }
    ok = ok && set(choice, "index", json_integer(0)) && set(choice, "logprobs", json_null()) &&
         set(choice, "finish_reason", json_string(fr));
    ok = ok && set(o, "choices", json_pack("[O]", choice)) &&
         set(o, "usage", usage_json(&ev->usage));
    r->status = MHD_HTTP_OK;
    r->reply = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(msg);
    json_decref(choice);
    json_decref(o);
    return r->reply != NULL;
}

/* ---- events: streams ---------------------------------------------------------------- */

/* Appends "data: <chunk>\n\n" (chunk stolen) when `ok` (building the chunk
 * went well). */
static bool sse_add(struct http_req *r, json_t *chunk, bool ok)
{
    char *s = chunk && ok ? json_dumps(chunk, JSON_COMPACT) : NULL;
    json_decref(chunk);
    if (!s)
        return false;
    ok = http_buf_add(&r->out, "data: ", 6) == 0 && http_buf_add(&r->out, s, strlen(s)) == 0 &&
         http_buf_add(&r->out, "\n\n", 2) == 0;
    free(s);
    return ok;
}

static json_t *chunk_base(struct http_req *r)
{
    bool chat = r->route == ROUTE_CHAT;
    json_t *c = json_pack("{s:s, s:s, s:I, s:s}", "id", r->oid, "object",
                          chat ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)r->created, "model", http_model_id(r->h));
    if (c && r->include_usage && !set(c, "usage", json_null())) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* One chunk with one choice: a chat delta (stolen) or a completion text. */
static bool sse_choice(struct http_req *r, json_t *delta, const char *text, size_t len,
                       const char *fr)
{
    json_t *c = chunk_base(r);
    json_t *ch = json_object();
    bool ok = set(ch, "index", json_integer(0));
    if (r->route == ROUTE_CHAT)
        ok = set(ch, "delta", delta) && ok;
    else
        ok = ok && set(ch, "text", jstr(text, len));
    ok = ok && set(ch, "logprobs", json_null()) &&
         set(ch, "finish_reason", fr ? json_string(fr) : json_null());
    if (!ok) {
        json_decref(ch);
        json_decref(c);
        return false;
    }
    return sse_add(r, c, set(c, "choices", json_pack("[o]", ch)));
}

static bool sse_text(struct http_req *r, const char *s, size_t n)
{
    if (n == 0)
        return true;
    if (r->route == ROUTE_CHAT) {
        json_t *v = jstr(s, n);
        return v && sse_choice(r, json_pack("{s:o}", "content", v), NULL, 0, NULL);
    }
    return sse_choice(r, NULL, s, n, NULL);
}

static bool sse_error(struct http_req *r, int code, const char *message)
{
    error_reply(r, code, message);
    bool ok = r->reply && http_buf_add(&r->out, "data: ", 6) == 0 &&
              http_buf_add(&r->out, r->reply, strlen(r->reply)) == 0 &&
              http_buf_add(&r->out, "\n\n", 2) == 0;
    free(r->reply);
    r->reply = NULL;
    r->eos = true;
    return ok;
}

static bool stream_done(struct http_req *r, const struct hd_event *ev)
{
    const char *fr = finish(ev->finish_reason);
    bool ok = true;
    if (r->tools) {
        char *content;
        json_t *calls;
        if (!split_calls(ev->text, ev->len, &content, &calls))
            return false;
        /* What was sent is a prefix of the content (hd_toolcalls_stream_safe). */
        size_t clen = strlen(content);
        if (r->sent <= clen && memcmp(content, r->text.p ? r->text.p : "", r->sent) == 0)
            ok = sse_text(r, content + r->sent, clen - r->sent);
        free(content);
        if (calls) {
            size_t i;
            json_t *call;
            json_array_foreach (calls, i, call)
                ok = ok && set(call, "index", json_integer((json_int_t)i));
            json_t *delta = json_pack("{s:o}", "tool_calls", calls); /* steals calls */
            if (ok)
                ok = sse_choice(r, delta, NULL, 0, NULL);
            else
                json_decref(delta);
            fr = "tool_calls";
        }
    }
    if (r->route == ROUTE_CHAT)
        ok = ok && sse_choice(r, json_object(), NULL, 0, fr);
    else
        ok = ok && sse_choice(r, NULL, "", 0, fr);
    if (ok && r->include_usage) {
        json_t *c = chunk_base(r);
        ok = sse_add(r, c, set(c, "choices", json_array()) &&
                               set(c, "usage", usage_json(&ev->usage)));
    }
    ok = ok && http_buf_add(&r->out, "data: [DONE]\n\n", 14) == 0;
    r->eos = true;
    return ok;
}

static bool stream_event(struct http_req *r, const struct hd_event *ev)
{
    if (ev->type == HD_EV_ERROR)
        return sse_error(r, ev->code, ev->message);
    if (ev->type == HD_EV_DONE) {
        if (ev->finish_reason && strcmp(ev->finish_reason, "cancelled") == 0)
            return sse_error(r, -ECANCELED, "the request was cancelled");
        return stream_done(r, ev);
    }
    if (!r->tools)
        return sse_text(r, ev->text, ev->len);
    if (http_buf_add(&r->text, ev->text, ev->len) < 0)
        return false;
    size_t safe = hd_toolcalls_stream_safe(r->text.p, r->text.len);
    if (safe <= r->sent)
        return true;
    size_t from = r->sent;
    r->sent = safe;
    return sse_text(r, r->text.p + from, safe - from);
}

void oai_stream_abort(struct http_req *r, const char *message)
{
    sse_error(r, -ECANCELED, message);
}

bool oai_event(struct http_req *r, const struct hd_event *ev)
{
    return r->stream ? stream_event(r, ev) : reply_event(r, ev);
}
