/*
 * rpc_methods.c — the socket protocol's methods: one declarative table
 * (name, handler, accepted keys, params and result documentation) and the
 * handlers, each a thin adapter over scheduler.h.
 *
 * The table is the single source: rpc.describe returns its documentation
 * strings, and tests check that docs/protocol.md carries each of them
 * verbatim, so the written protocol cannot drift from the served one.
 *
 * complete and chat answer later, from scheduler events: a struct rpc_call
 * links the JSON-RPC id to the scheduler's request until DONE or ERROR.
 */
#include "rpc_impl.h"

#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "0.0.0"
#endif

/* ---- helpers ------------------------------------------------------------------- */

/* An optional string parameter; false after answering with an error. */
static bool opt_string(struct rpc_conn *c, json_t *id, json_t *params, const char *key,
                       const char **out)
{
    json_t *v = json_object_get(params, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool req_string(struct rpc_conn *c, json_t *id, json_t *params, const char *key,
                       const char **out)
{
    if (!opt_string(c, id, params, key, out))
        return false;
    if (!*out) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing '%s' (a string)", key);
        return false;
    }
    return true;
}

static bool opt_bool(struct rpc_conn *c, json_t *id, json_t *params, const char *key, bool def,
                     bool *out)
{
    json_t *v = json_object_get(params, key);
    *out = def;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* The JSON-RPC code for a negative errno of hd_sched_submit. */
static int submit_code(int rc, bool chat)
{
    switch (rc) {
    case -EBUSY: return IPC_ERR_BUSY;
    case -EALREADY: return IPC_ERR_SESSION_BUSY;
    case -E2BIG: return IPC_ERR_CONTEXT;
    case -EINVAL: return chat ? IPC_ERR_TEMPLATE : IPC_ERR_INVALID_PARAMS;
    case -ENOENT: return IPC_ERR_INVALID_PARAMS; /* an unknown LoRA adapter or profile */
    case -ENOMEM: return IPC_ERR_INTERNAL;
    default: return IPC_ERR_ENGINE;
    }
}

/* Tokens per second, to 0.01 (more digits would be noise). */
static double per_second(int32_t n, double ms)
{
    return ms > 0 ? round(n * 100000.0 / ms) / 100 : 0;
}

/* ---- complete / chat ---------------------------------------------------------- */

static void unlink_call(struct rpc_call *k)
{
    struct rpc_conn *c = k->c;
    for (struct rpc_call **p = &c->calls; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            break;
        }
    }
    json_decref(k->id);
    free(k);
}

/* Milliseconds to the microsecond. */
static double ms3(double ms)
{
    return round(ms * 1000) / 1000;
}

static json_t *done_result(const struct rpc_call *k, const struct hd_event *ev)
{
    const struct hd_usage *u = &ev->usage;
    json_t *text = rpc_string(ev->text ? ev->text : "", ev->text ? ev->len : 0);
    json_t *res = json_pack(
        "{s:I, s:o, s:s, s:{s:i, s:i, s:i, s:i}, s:{s:f, s:f, s:f, s:f, s:f}}", "id",
        (json_int_t)ev->id, "text", text, "finish_reason",
        ev->finish_reason ? ev->finish_reason : "stop", "usage", "prompt_tokens", u->prompt_tokens,
        "cached_tokens", u->cached_tokens, "evaluated_tokens", u->evaluated_tokens,
        "completion_tokens", u->completion_tokens, "timings", "queued_ms", ms3(u->queued_ms),
        "prompt_ms", ms3(u->prompt_ms), "generation_ms", ms3(u->generation_ms), "prompt_tokens_per_second",
        per_second(u->evaluated_tokens, u->prompt_ms), "generation_tokens_per_second",
        per_second(u->completion_tokens, u->generation_ms));
    if (res && k->chat) {
        json_t *msg = json_pack("{s:s, s:O}", "role", "assistant", "content",
                                json_object_get(res, "text"));
        if (!msg || json_object_set_new(res, "message", msg) < 0) {
            json_decref(res);
            return NULL;
        }
    }
    return res;
}

static void on_event(void *user, const struct hd_event *ev)
{
    struct rpc_call *k = user;
    struct rpc_conn *c = k->c;
    switch (ev->type) {
    case HD_EV_TEXT:
        if (k->stream && !c->dead && ev->len > 0)
            rpc_send(c, json_pack("{s:s, s:s, s:{s:O, s:o}}", "jsonrpc", "2.0", "method",
                                  "stream", "params", "id", k->id, "text",
                                  rpc_string(ev->text, ev->len)));
        return;
    case HD_EV_DONE: {
        json_t *res = done_result(k, ev);
        if (res)
            rpc_reply(c, k->id, res);
        else
            rpc_conn_kill(c);
        break;
    }
    case HD_EV_ERROR:
        rpc_error(c, k->id, ev->code == -E2BIG ? IPC_ERR_CONTEXT : IPC_ERR_ENGINE, "%s",
                  ev->message ? ev->message : "the request failed");
        break;
    }
    unlink_call(k);
    rpc_conn_maybe_done(c);
}

/* Submits `req` and links the call; answers errors itself. */
static void submit(struct rpc_conn *c, json_t *id, struct hd_request *req, bool stream, bool chat)
{
    struct rpc_call *k = calloc(1, sizeof *k);
    if (!k) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    *k = (struct rpc_call){.c = c, .id = json_incref(id), .stream = stream, .chat = chat};
    struct hr_err err;
    hr_err_clear(&err);
    req->client = c->client;
    int rc = hd_sched_submit(c->r->s, req, on_event, k, &k->req, &err);
    if (rc < 0) {
        rpc_error(c, id, submit_code(rc, chat), "%s", err.msg[0] ? err.msg : strerror(-rc));
        json_decref(k->id);
        free(k);
        return;
    }
    k->next = c->calls;
    c->calls = k;
}

/* The keys complete and chat share, read into req / stream. */
static bool common_keys(struct rpc_conn *c, json_t *id, json_t *params, struct hd_request *req,
                        bool *stream)
{
    struct hr_err err;
    hr_err_clear(&err);
    if (!opt_string(c, id, params, "session", &req->session) ||
        !opt_bool(c, id, params, "stream", false, stream))
        return false;
    if (ipc_params_gen(c->r->s, params, &req->gen, &err) < 0) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "%s", err.msg);
        return false;
    }
    return true;
}

static void m_complete(struct rpc_conn *c, json_t *id, json_t *params)
{
    if (!id)
        return; /* a notification: nobody to give the text to */
    struct hd_request req = {0};
    bool stream;
    if (!req_string(c, id, params, "prompt", &req.prompt) ||
        !opt_bool(c, id, params, "parse_special", false, &req.parse_special) ||
        !common_keys(c, id, params, &req, &stream))
        return;
    submit(c, id, &req, stream, false);
}

/* Messages as the template expects them: objects with a string role. */
static bool check_messages(struct rpc_conn *c, json_t *id, json_t *msgs)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'messages' must be a non-empty array of {role, content} objects");
        return false;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                      "'messages'[%zu] must be an object with a string 'role'", i);
            return false;
        }
    }
    return true;
}

static void m_chat(struct rpc_conn *c, json_t *id, json_t *params)
{
    if (!id)
        return;
    struct hd_request req = {0};
    bool stream;
    json_t *msgs = json_object_get(params, "messages");
    json_t *tools = json_object_get(params, "tools");
    json_t *kw = json_object_get(params, "template_kwargs");
    if (!check_messages(c, id, msgs))
        return;
    if (tools && !json_is_null(tools) && !json_is_array(tools)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'tools' must be an array of tool definitions");
        return;
    }
    if (kw && !json_is_null(kw) && !json_is_object(kw)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'template_kwargs' must be an object");
        return;
    }
    if (!common_keys(c, id, params, &req, &stream))
        return;
    char *mj = json_dumps(msgs, JSON_COMPACT);
    char *tj = json_is_array(tools) ? json_dumps(tools, JSON_COMPACT) : NULL;
    char *kj = json_is_object(kw) ? json_dumps(kw, JSON_COMPACT) : NULL;
    if (!mj || (json_is_array(tools) && !tj) || (json_is_object(kw) && !kj)) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
    } else {
        req.messages_json = mj;
        req.tools_json = tj;
        req.template_extra_json = kj;
        submit(c, id, &req, stream, true); /* the scheduler copies what it keeps */
    }
    free(mj);
    free(tj);
    free(kj);
}

static void m_cancel(struct rpc_conn *c, json_t *id, json_t *params)
{
    json_t *target = json_object_get(params, "id");
    if (!target || !(json_is_string(target) || json_is_number(target))) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "missing 'id' (the JSON-RPC id of a request on this connection)");
        return;
    }
    struct rpc_call *k = rpc_find_call(c, target);
    if (!k) {
        char *s = json_dumps(target, JSON_ENCODE_ANY | JSON_COMPACT);
        rpc_error(c, id, IPC_ERR_NO_REQUEST, "no request with id %.200s in flight on this connection",
                  s ? s : "?");
        free(s);
        return;
    }
    bool cancelled = false;
    if (k->cancel) {
        /* a tool call or a run: it answers its own request (and is freed) */
        if (!k->cancelling) {
            k->cancelling = true;
            k->cancel(k);
            cancelled = true;
        }
    } else if (!k->cancelling && hd_sched_cancel(c->r->s, c->client, k->req) == 0) {
        cancelled = k->cancelling = true;
    }
    rpc_reply(c, id, json_pack("{s:b}", "cancelled", cancelled));
}

/* ---- tokens ------------------------------------------------------------------ */

static void m_tokenize(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *text;
    bool add_special, parse_special;
    if (!req_string(c, id, params, "text", &text) ||
        !opt_bool(c, id, params, "add_special", true, &add_special) ||
        !opt_bool(c, id, params, "parse_special", false, &parse_special))
        return;
    if (!id)
        return;
    const struct hr_vocab *v = hr_model_vocab(hd_sched_model(c->r->s));
    size_t len = json_string_length(json_object_get(params, "text"));
    int32_t small[256], *toks = small;
    int64_t n = hr_tokenize(v, text, len, add_special, parse_special, small, 256);
    if (n > 256) {
        toks = malloc((size_t)n * sizeof *toks);
        if (!toks) {
            rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
            return;
        }
        n = hr_tokenize(v, text, len, add_special, parse_special, toks, (size_t)n);
    }
    if (n < 0) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'text' cannot be tokenized: %s",
                  strerror((int)-n));
        goto out;
    }
    json_t *arr = json_array();
    for (int64_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_integer(toks[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    if (!arr)
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
    else
        rpc_reply(c, id, json_pack("{s:o}", "tokens", arr));
out:
    if (toks != small)
        free(toks);
}

static void m_detokenize(struct rpc_conn *c, json_t *id, json_t *params)
{
    json_t *arr = json_object_get(params, "tokens");
    bool special;
    if (!json_is_array(arr)) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "missing 'tokens' (an array of token ids)");
        return;
    }
    if (!opt_bool(c, id, params, "special", false, &special) || !id)
        return;
    const struct hr_vocab *v = hr_model_vocab(hd_sched_model(c->r->s));
    int32_t n_vocab = hr_vocab_n_tokens(v);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        json_int_t tok = json_integer_value(t);
        if (!json_is_integer(t) || tok < 0 || tok >= n_vocab) {
            rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'tokens'[%zu] is not a token id (0..%d)",
                      i, n_vocab - 1);
            goto out;
        }
        for (;;) {
            int64_t k = hr_token_to_piece(v, (int32_t)tok, special, buf ? buf + len : NULL,
                                          cap - len);
            if (k < 0) {
                rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'tokens'[%zu]: %s", i,
                          strerror((int)-k));
                goto out;
            }
            if ((size_t)k <= cap - len) {
                len += (size_t)k;
                break;
            }
            size_t ncap = cap ? cap * 2 : 256;
            while (ncap < len + (size_t)k)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
    }
    rpc_reply(c, id, json_pack("{s:o}", "text", rpc_string(buf ? buf : "", len)));
out:
    free(buf);
}

/* ---- information ----------------------------------------------------------------- */

static void m_model_info(struct rpc_conn *c, json_t *id, json_t *params)
{
    (void)params;
    struct hd_sched *s = c->r->s;
    struct hr_model *m = hd_sched_model(s);
    const struct hr_vocab *v = hr_model_vocab(m);
    const char *tmpl = hr_model_chat_template(m);
    rpc_reply(c, id,
              json_pack("{s:s, s:s, s:i, s:i, s:i, s:b, s:i, s:i, s:b}", "path",
                        hd_sched_model_path(s), "arch", hr_model_arch(m), "n_vocab",
                        hr_model_n_vocab(m), "n_ctx_train", hr_model_n_ctx_train(m), "n_ctx",
                        hd_sched_n_ctx(s), "chat_template", tmpl && tmpl[0], "bos",
                        hr_vocab_bos(v), "eos", hr_vocab_eos(v), "add_bos", hr_vocab_add_bos(v)));
}

static void m_status(struct rpc_conn *c, json_t *id, json_t *params)
{
    (void)params;
    struct hd_status st;
    hd_sched_status(c->r->s, &st);
    rpc_reply(c, id,
              json_pack("{s:i, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:i, s:i}",
                        "protocol_version", IPC_PROTOCOL_VERSION, "version", HEARTH_VERSION,
                        "model", hd_sched_model_path(c->r->s), "uptime_ms",
                        (json_int_t)st.uptime_ms, "running", st.running, "queued", st.queued,
                        "sessions", st.sessions, "clients", st.clients, "requests_total",
                        (json_int_t)st.requests_total, "tokens_generated",
                        (json_int_t)st.tokens_generated, "tokens_evaluated",
                        (json_int_t)st.tokens_evaluated, "n_ctx", st.n_ctx, "parallel",
                        st.parallel));
}

static void m_session_close(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *name;
    if (!req_string(c, id, params, "session", &name))
        return;
    int rc = hd_sched_session_close(c->r->s, name);
    if (rc == -ENOENT)
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "no session '%.200s'", name);
    else if (rc == -EALREADY)
        rpc_error(c, id, IPC_ERR_SESSION_BUSY, "session '%.200s' has a request running", name);
    else if (rc < 0)
        rpc_error(c, id, IPC_ERR_INTERNAL, "%s", strerror(-rc));
    else
        rpc_reply(c, id, json_object());
}

/* ---- LoRA adapters --------------------------------------------------------------- */

static json_t *lora_json(const struct hd_lora_entry *e)
{
    return json_pack("{s:s, s:s, s:i, s:f, s:i, s:I}", "name", e->name, "path", e->path, "rank",
                     e->info.rank, "alpha", (double)e->info.alpha, "tensors", e->info.n_tensors,
                     "bytes", (json_int_t)e->info.n_bytes);
}

static void m_lora_load(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *path, *name;
    if (!req_string(c, id, params, "path", &path) || !opt_string(c, id, params, "name", &name))
        return;
    const struct hd_lora_entry *e;
    struct hr_err err;
    int rc = hd_sched_lora_load(c->r->s, path, name, &e, &err);
    if (rc < 0)
        rpc_error(c, id, rc == -ENOMEM ? IPC_ERR_INTERNAL : IPC_ERR_INVALID_PARAMS, "%s",
                  err.msg[0] ? err.msg : strerror(-rc));
    else
        rpc_reply(c, id, lora_json(e));
}

static void m_lora_list(struct rpc_conn *c, json_t *id, json_t *params)
{
    (void)params;
    const struct hd_lora_entry *e;
    const struct hd_lora_profile_entry *p;
    size_t n = hd_sched_lora_list(c->r->s, &e), np = hd_sched_lora_profiles(c->r->s, &p);
    json_t *arr = json_array(), *pr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, lora_json(&e[i])) < 0)
            arr = (json_decref(arr), NULL);
    for (size_t i = 0; pr && i < np; i++) {
        json_t *uses = json_array();
        for (int k = 0; uses && k < p[i].n_uses; k++)
            if (json_array_append_new(uses, json_pack("{s:s, s:f}", "name", p[i].uses[k].name,
                                                      "scale", (double)p[i].uses[k].scale)) < 0)
                uses = (json_decref(uses), NULL);
        if (!uses ||
            json_array_append_new(pr, json_pack("{s:s, s:o}", "name", p[i].name, "adapters",
                                                uses)) < 0)
            pr = (json_decref(pr), NULL);
    }
    if (!arr || !pr) {
        json_decref(arr);
        json_decref(pr);
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    rpc_reply(c, id, json_pack("{s:o, s:o}", "adapters", arr, "profiles", pr));
}

static void m_lora_unload(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *name;
    if (!req_string(c, id, params, "name", &name))
        return;
    if (hd_sched_lora_unload(c->r->s, name) < 0)
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "no adapter named '%.200s' is loaded", name);
    else
        rpc_reply(c, id, json_object());
}

static void m_describe(struct rpc_conn *c, json_t *id, json_t *params)
{
    (void)params;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < rpc_n_methods; i++) {
        const struct rpc_method *m = &rpc_methods[i];
        if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", m->name, "params",
                                                  m->params, "result", m->result)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    rpc_reply(c, id, json_pack("{s:i, s:o}", "protocol_version", IPC_PROTOCOL_VERSION, "methods",
                               arr));
}

/* ---- the table ------------------------------------------------------------------- */

#define GEN "+ sampling: temperature, top_k, top_p, min_p, repeat_penalty, frequency_penalty, " \
            "presence_penalty, seed, max_tokens, stop, ignore_eos"
#define LORA "lora?: [{name, scale?}]|string, "
#define RESULT "{id, text, finish_reason, usage: {prompt_tokens, cached_tokens, " \
               "evaluated_tokens, completion_tokens}, timings: {queued_ms, prompt_ms, " \
               "generation_ms, prompt_tokens_per_second, generation_tokens_per_second}"

static const char *const k_complete[] = {"prompt", "session", "stream", "parse_special", NULL};
static const char *const k_chat[] = {"messages", "tools", "session", "stream", "template_kwargs",
                                     NULL};
static const char *const k_cancel[] = {"id", NULL};
static const char *const k_tokenize[] = {"text", "add_special", "parse_special", NULL};
static const char *const k_detokenize[] = {"tokens", "special", NULL};
static const char *const k_session[] = {"session", NULL};
static const char *const k_none[] = {NULL};
static const char *const k_tool_call[] = {"name", "arguments", "workspace", NULL};
static const char *const k_approval[] = {"call_id", "approve", NULL};
static const char *const k_script[] = {"source", "path", "name", "args", "workspace", NULL};
static const char *const k_lora_load[] = {"path", "name", NULL};
static const char *const k_lora_unload[] = {"name", NULL};
static const char *const k_train[] = {"data",  "output", "name", "load", "format", "rank",
                                      "alpha", "targets", "epochs", "lr", "ctx", "batch_tokens",
                                      "val", "seed", "warmup", "threads", NULL};
static const char *const k_agent[] = {"task",   "workspace",   "tools", "max_steps",
                                      "format", "tool_choice", "timeout", NULL};

const struct rpc_method rpc_methods[] = {
    {"complete", m_complete, k_complete, true,
     "{prompt: string, session?: string, stream?: bool, parse_special?: bool, " LORA GEN "}",
     RESULT "}"},
    {"chat", m_chat, k_chat, true,
     "{messages: [{role, content}], tools?: array, session?: string, stream?: bool, "
     "template_kwargs?: object, " LORA GEN "}",
     RESULT ", message: {role: \"assistant\", content}}"},
    {"cancel", m_cancel, k_cancel, false, "{id: number|string}", "{cancelled: bool}"},
    {"tokenize", m_tokenize, k_tokenize, false,
     "{text: string, add_special?: bool (true), parse_special?: bool (false)}",
     "{tokens: [int]}"},
    {"detokenize", m_detokenize, k_detokenize, false, "{tokens: [int], special?: bool (false)}",
     "{text}"},
    {"model.info", m_model_info, k_none, false, "{}",
     "{path, arch, n_vocab, n_ctx_train, n_ctx, chat_template: bool, bos, eos, add_bos: bool}"},
    {"status", m_status, k_none, false, "{}",
     "{protocol_version, version, model, uptime_ms, running, queued, sessions, clients, "
     "requests_total, tokens_generated, tokens_evaluated, n_ctx, parallel}"},
    {"session.close", m_session_close, k_session, false, "{session: string}", "{}"},
    {"lora.load", m_lora_load, k_lora_load, false, "{path: string, name?: string}",
     "{name, path, rank, alpha, tensors, bytes}"},
    {"lora.list", m_lora_list, k_none, false, "{}",
     "{adapters: [{name, path, rank, alpha, tensors, bytes}], profiles: [{name, adapters: "
     "[{name, scale}]}]}"},
    {"lora.unload", m_lora_unload, k_lora_unload, false, "{name: string}", "{}"},
    {"tools.list", rpc_m_tools_list, k_none, false, "{}",
     "{available: bool, tools: [{name, description, plugin, risk, policy, parameters}], "
     "errors: [string]}"},
    {"tool.call", rpc_m_tool_call, k_tool_call, false,
     "{name: string, arguments?: object|string, workspace?: string}",
     "{ok: bool, status, output, error?, truncated: bool, asked: bool, ran: bool}"},
    {"approval.respond", rpc_m_approval_respond, k_approval, false,
     "{call_id: string, approve: bool}", "{}"},
    {"script.run", rpc_m_script_run, k_script, false,
     "{source?: string, path?: string, name?: string, args?: array, workspace?: string}",
     "{result: array}"},
    {"agent.run", rpc_m_agent_run, k_agent, true,
     "{task: string, workspace?: string, tools?: [string], max_steps?: int, format?: string, "
     "tool_choice?: string, timeout?: number, " GEN "}",
     "{answer, finish, steps, tool_calls}"},
    {"train", rpc_m_train, k_train, false,
     "{data: string (absolute), output: string (absolute), name?: string, load?: bool (true), "
     "format?: string, rank?: int, alpha?: number, targets?: [string], epochs?: int, lr?: number, "
     "ctx?: int, batch_tokens?: int, val?: number, seed?: int, warmup?: number, threads?: int}",
     "{adapter, steps, tokens, tokens_per_s, val_loss_before, val_loss_after, "
     "val_perplexity_before, val_perplexity_after, loaded: bool, name?, load_error?}"},
    {"rpc.describe", m_describe, k_none, false, "{}",
     "{protocol_version, methods: [{name, params, result}]}"},
};
const size_t rpc_n_methods = sizeof rpc_methods / sizeof rpc_methods[0];
