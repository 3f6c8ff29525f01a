/*
 * test_http_openai.c — the OpenAI mapping of the HTTP API (ipc/http_openai.c)
 * fed with scheduler events directly: what the tiny test model never says
 * (tool calls, invalid UTF-8, a full context, engine errors) and how each
 * becomes a reply or SSE chunks. The server side (MHD, security) is tested
 * end to end in test_http.c.
 */
#include "http_req.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* http.c's accessors, which the mapping calls for the model's name. */
struct hd_sched *http_sched(const struct ipc_http *h) { return NULL; }
const char *http_model_id(const struct ipc_http *h) { return "test-model.gguf"; }
int64_t http_model_created(const struct ipc_http *h) { return 1; }

static struct http_req *mk(enum http_route route, bool stream, bool tools, bool usage)
{
    struct http_req *r = calloc(1, sizeof *r);
    r->route = route;
    r->phase = PHASE_RUNNING;
    r->stream = stream;
    r->tools = tools;
    r->include_usage = usage;
    r->id = 1;
    r->created = 1700000000;
    strcpy(r->oid, route == ROUTE_CHAT ? "chatcmpl-test" : "cmpl-test");
    return r;
}

static void done_req(struct http_req *r)
{
    http_buf_done(&r->body);
    http_buf_done(&r->text);
    http_buf_done(&r->out);
    free(r->reply);
    free(r);
}

static void text(struct http_req *r, const char *s)
{
    struct hd_event e = {.type = HD_EV_TEXT, .id = 1, .text = s, .len = strlen(s)};
    cr_assert(oai_event(r, &e));
}

static void done(struct http_req *r, const char *all, size_t len, const char *finish)
{
    struct hd_event e = {.type = HD_EV_DONE, .id = 1, .text = all, .len = len,
                         .finish_reason = finish,
                         .usage = {.prompt_tokens = 5, .cached_tokens = 2, .evaluated_tokens = 3,
                                   .completion_tokens = 7}};
    cr_assert(oai_event(r, &e));
}

static json_t *reply_json(const struct http_req *r, unsigned status)
{
    cr_assert_eq(r->status, status, "status %u: %s", r->status, r->reply);
    cr_assert_not_null(r->reply);
    json_t *o = json_loads(r->reply, 0, NULL);
    cr_assert_not_null(o, "reply is not JSON: %s", r->reply);
    return o;
}

/* The SSE events in r->out: JSON chunks (owned) and whether [DONE] ended them. */
static size_t chunks(const struct http_req *r, json_t **out, size_t cap, bool *done_seen)
{
    size_t n = 0;
    *done_seen = false;
    const char *p = r->out.p ? r->out.p : "";
    while (*p) {
        cr_assert(strncmp(p, "data: ", 6) == 0, "not an SSE data line: %.40s", p);
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end);
        cr_assert(!*done_seen, "an event after [DONE]");
        if (strncmp(p + 6, "[DONE]", 6) == 0) {
            *done_seen = true;
        } else {
            cr_assert_lt(n, cap);
            out[n] = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
            cr_assert_not_null(out[n], "chunk is not JSON: %.*s", (int)(end - p), p);
            n++;
        }
        p = end + 2;
    }
    return n;
}

static json_t *choice0(json_t *chunk) { return json_array_get(json_object_get(chunk, "choices"), 0); }

static void check_args(json_t *call, const char *name, const char *args)
{
    json_t *f = json_object_get(call, "function");
    cr_assert_str_eq(json_string_value(json_object_get(f, "name")), name);
    cr_assert(strncmp(json_string_value(json_object_get(call, "id")), "call_", 5) == 0);
    cr_assert_str_eq(json_string_value(json_object_get(call, "type")), "function");
    json_t *got = json_loads(json_string_value(json_object_get(f, "arguments")), 0, NULL);
    json_t *want = json_loads(args, 0, NULL);
    cr_assert(json_equal(got, want), "arguments %s",
              json_string_value(json_object_get(f, "arguments")));
    json_decref(got);
    json_decref(want);
}

#define CALL "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"

Test(http_openai, reply_with_tool_calls)
{
    struct http_req *r = mk(ROUTE_CHAT, false, true, false);
    done(r, CALL, strlen(CALL), "stop");
    json_t *o = reply_json(r, 200);
    cr_assert_str_eq(json_string_value(json_object_get(o, "object")), "chat.completion");
    cr_assert_str_eq(json_string_value(json_object_get(o, "id")), "chatcmpl-test");
    cr_assert_str_eq(json_string_value(json_object_get(o, "model")), "test-model.gguf");
    json_t *ch = choice0(o);
    cr_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "tool_calls");
    json_t *msg = json_object_get(ch, "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "role")), "assistant");
    cr_assert(json_is_null(json_object_get(msg, "content")), "content must be null");
    json_t *calls = json_object_get(msg, "tool_calls");
    cr_assert_eq(json_array_size(calls), 1);
    check_args(json_array_get(calls, 0), "get_weather", "{\"city\": \"Paris\"}");
    json_t *u = json_object_get(o, "usage");
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), 12);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                    "cached_tokens")), 2);
    json_decref(o);
    done_req(r);
}

Test(http_openai, reply_keeps_text_around_calls)
{
    const char *all = "Checking.\n" CALL;
    struct http_req *r = mk(ROUTE_CHAT, false, true, false);
    done(r, all, strlen(all), "stop");
    json_t *o = reply_json(r, 200);
    json_t *msg = json_object_get(choice0(o), "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "content")), "Checking.");
    cr_assert_eq(json_array_size(json_object_get(msg, "tool_calls")), 1);
    json_decref(o);
    done_req(r);
}

Test(http_openai, no_tools_no_parsing)
{
    /* Without tools in the request, the same text is plain content. */
    struct http_req *r = mk(ROUTE_CHAT, false, false, false);
    done(r, CALL, strlen(CALL), "stop");
    json_t *o = reply_json(r, 200);
    json_t *msg = json_object_get(choice0(o), "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "content")), CALL);
    cr_assert_null(json_object_get(msg, "tool_calls"));
    cr_assert_str_eq(json_string_value(json_object_get(choice0(o), "finish_reason")), "stop");
    json_decref(o);
    done_req(r);
}

Test(http_openai, stream_holds_back_tool_calls)
{
    static const char *const pieces[] = {"Let me ", "check.", " <tool", "_call>\n{\"name\": \"f\", ",
                                         "\"arguments\": {\"a\": 1}}\n</tool_call>"};
    struct http_req *r = mk(ROUTE_CHAT, true, true, false);
    char all[256] = "";
    for (size_t i = 0; i < 5; i++) {
        text(r, pieces[i]);
        strcat(all, pieces[i]);
    }
    done(r, all, strlen(all), "stop");
    cr_assert(r->eos);
    json_t *c[32];
    bool fin;
    size_t n = chunks(r, c, 32, &fin);
    cr_assert(fin, "no [DONE]");
    char content[256] = "";
    int n_calls = 0;
    char finish[32] = "";
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(json_string_value(json_object_get(c[i], "object")),
                         "chat.completion.chunk");
        json_t *d = json_object_get(choice0(c[i]), "delta");
        const char *piece = json_string_value(json_object_get(d, "content"));
        if (piece) {
            cr_assert_null(strchr(piece, '<'), "tool-call text leaked into content: %s", piece);
            strcat(content, piece);
        }
        json_t *calls = json_object_get(d, "tool_calls");
        if (calls) {
            n_calls++;
            cr_assert_eq(json_array_size(calls), 1);
            json_t *call = json_array_get(calls, 0);
            cr_assert_eq(json_integer_value(json_object_get(call, "index")), 0);
            check_args(call, "f", "{\"a\": 1}");
        }
        const char *f = json_string_value(json_object_get(choice0(c[i]), "finish_reason"));
        if (f) {
            cr_assert(!*finish, "two chunks with a finish_reason");
            cr_assert_eq(i, n - 1, "the finish_reason chunk is the last");
            snprintf(finish, sizeof finish, "%s", f);
        }
        json_decref(c[i]);
    }
    cr_assert_str_eq(content, "Let me check.");
    cr_assert_eq(n_calls, 1);
    cr_assert_str_eq(finish, "tool_calls");
    done_req(r);
}

Test(http_openai, stream_usage_and_context)
{
    struct http_req *r = mk(ROUTE_COMPLETIONS, true, false, true);
    text(r, "Once");
    text(r, " more");
    done(r, "Once more", 9, "context");
    json_t *c[8];
    bool fin;
    size_t n = chunks(r, c, 8, &fin);
    cr_assert(fin);
    cr_assert_eq(n, 4, "two pieces, the finish, the usage");
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(json_string_value(json_object_get(c[i], "object")), "text_completion");
        cr_assert_not_null(json_object_get(c[i], "usage"), "include_usage: usage on every chunk");
    }
    cr_assert_str_eq(json_string_value(json_object_get(choice0(c[0]), "text")), "Once");
    cr_assert(json_is_null(json_object_get(c[0], "usage")));
    cr_assert_str_eq(json_string_value(json_object_get(choice0(c[2]), "finish_reason")), "length",
                     "a full context is 'length' to OpenAI clients");
    cr_assert_eq(json_array_size(json_object_get(c[3], "choices")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c[3], "usage"),
                                                    "completion_tokens")), 7);
    for (size_t i = 0; i < n; i++)
        json_decref(c[i]);
    done_req(r);
}

Test(http_openai, invalid_utf8_is_replaced)
{
    struct http_req *r = mk(ROUTE_COMPLETIONS, false, false, false);
    done(r, "a\xff" "b\xc3", 4, "length");
    json_t *o = reply_json(r, 200);
    cr_assert_str_eq(json_string_value(json_object_get(choice0(o), "text")),
                     "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
    json_decref(o);
    done_req(r);
}

Test(http_openai, errors)
{
    struct http_req *r = mk(ROUTE_CHAT, false, false, false);
    struct hd_event e = {.type = HD_EV_ERROR, .id = 1, .code = -E2BIG,
                         .message = "the sequence is full"};
    cr_assert(oai_event(r, &e));
    json_t *o = reply_json(r, 400);
    json_t *err = json_object_get(o, "error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "context_length_exceeded");
    cr_assert_str_eq(json_string_value(json_object_get(err, "message")), "the sequence is full");
    json_decref(o);
    done_req(r);

    r = mk(ROUTE_CHAT, false, false, false);
    done(r, "partial", 7, "cancelled");
    o = reply_json(r, 503);
    json_decref(o);
    done_req(r);

    /* In a stream: an error event, no [DONE] (the openai clients raise it). */
    r = mk(ROUTE_CHAT, true, false, false);
    text(r, "Hi");
    e.code = -EIO;
    e.message = "engine failure";
    cr_assert(oai_event(r, &e));
    cr_assert(r->eos);
    json_t *c[4];
    bool fin;
    size_t n = chunks(r, c, 4, &fin);
    cr_assert(!fin);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c[1], "error"), "message")),
                     "engine failure");
    json_decref(c[0]);
    json_decref(c[1]);
    done_req(r);
}
