/*
 * test_rpc.c — hearthd's Unix-socket JSON-RPC frontend end to end: the real
 * daemon on the bundled stories260K model, real sockets, the real `hearth`
 * client commands. What docs/protocol.md promises is checked here: framing,
 * every error code, streaming, cancellation, sessions, limits, the socket's
 * permissions, and that answers do not depend on what else the daemon does.
 */
#include "daemonutil.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMPT "Once upon a time"

static json_t *result_of(json_t *resp)
{
    json_t *r = json_object_get(resp, "result");
    char *s = json_dumps(resp, JSON_COMPACT);
    cr_assert(r, "expected a result: %s", s);
    free(s);
    return r;
}

static long long usage(json_t *res, const char *key)
{
    json_t *v = json_object_get(json_object_get(res, "usage"), key);
    cr_assert(json_is_integer(v), "usage.%s missing", key);
    return (long long)json_integer_value(v);
}

static const char *text_of(json_t *res)
{
    const char *t = json_string_value(json_object_get(res, "text"));
    cr_assert(t, "result without text");
    return t;
}

static const char *finish_of(json_t *res)
{
    const char *t = json_string_value(json_object_get(res, "finish_reason"));
    cr_assert(t, "result without finish_reason");
    return t;
}

/* A JSON string literal of s (owned). */
static char *jstr(const char *s)
{
    json_t *j = json_string(s);
    char *out = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    return out;
}

/* A prompt of about n words of story text (owned). */
static char *long_prompt(int n)
{
    static const char *words[] = {"the", "little", "girl", "saw", "a", "big", "red", "ball",
                                  "in", "park", "and", "she", "was", "happy"};
    size_t cap = (size_t)n * 8 + 32;
    char *s = malloc(cap);
    cr_assert(s);
    size_t len = (size_t)sprintf(s, "%s", PROMPT);
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, " %s", words[(i * 7 + i / 3) % 14]);
    return s;
}

/* Appends a request line to *buf (owned, grown) and returns its id: several
 * lines sent with one write arrive in one read, in order. */
static long add_call(struct du_conn *c, char **buf, const char *method, const char *params)
{
    long id = ++c->next_id;
    char *line = NULL;
    int n = asprintf(&line, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"%s\",\"params\":%s}\n",
                     id, method, params);
    cr_assert(n > 0);
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + (size_t)n + 1);
    memcpy(*buf + old, line, (size_t)n + 1);
    free(line);
    return id;
}

static void send_all(struct du_conn *c, char *buf)
{
    cr_assert(du_write(c, buf, strlen(buf)));
    free(buf);
}

/* ---- streaming and reference output ------------------------------------------------ */

Test(rpc, stream_matches_result_and_generate, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    long id = du_send_call(c, "complete",
                           "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":64,"
                           "\"stream\":true}");
    char *stream = NULL;
    json_t *resp = du_wait_response(c, id, &stream);
    json_t *res = result_of(resp);
    const char *text = text_of(res);
    cr_assert_str_eq(stream, text, "the streamed pieces must add up to the result's text");
    cr_assert_gt(strlen(text), 20);
    cr_assert_eq(usage(res, "completion_tokens") > 0, 1);
    cr_assert_eq(usage(res, "prompt_tokens"), usage(res, "cached_tokens") +
                                                  usage(res, "evaluated_tokens"));
    json_t *t = json_object_get(res, "timings");
    cr_assert(json_is_number(json_object_get(t, "generation_tokens_per_second")));
    cr_assert(json_is_number(json_object_get(t, "queued_ms")));

    /* the engine's own command gives the same greedy continuation (same KV
     * cache precision as the daemon's default) */
    char *out, *err;
    int st = tu_hearth(&out, &err, "generate", "-m", tu_stories(), "-p", PROMPT, "-n", "64",
                       "--temp", "0", "--cache-type", "f16", NULL);
    cr_assert_eq(st, 0, "%s", err);
    size_t n = strlen(out);
    cr_assert(n > 0 && out[n - 1] == '\n');
    out[n - 1] = '\0';
    cr_assert_str_eq(text, out, "daemon: '%s'\ngenerate: '%s'", text, out);
    free(out);
    free(err);
    free(stream);
    json_decref(resp);
    du_close(c);
    du_stop(&d);
}

/* 16 clients at once (their requests share forward passes) get the answers
 * each gets alone. */
Test(rpc, concurrent_clients_get_single_client_answers, .timeout = 600)
{
    struct du_daemon d;
    du_start(&d, NULL, "parallel: 8\n");
    enum { N = 16, P = 4 };
    static const char *prompts[P] = {PROMPT, "The cat", "Lily and Ben went", "One day, a boy"};
    char *alone[P];
    struct du_conn *c0 = du_connect(d.socket);
    for (int i = 0; i < P; i++) {
        char params[256];
        snprintf(params, sizeof params,
                 "{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":48}", prompts[i]);
        json_t *r = du_call_ok(c0, "complete", params);
        alone[i] = strdup(text_of(r));
        json_decref(r);
    }
    du_close(c0);

    struct du_conn *cs[N];
    long ids[N];
    for (int i = 0; i < N; i++)
        cs[i] = du_connect(d.socket);
    for (int i = 0; i < N; i++) {
        char params[256];
        snprintf(params, sizeof params,
                 "{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":48,\"stream\":%s}",
                 prompts[i % P], i % 2 ? "true" : "false");
        ids[i] = du_send_call(cs[i], "complete", params);
    }
    for (int i = 0; i < N; i++) {
        char *stream = NULL;
        json_t *resp = du_wait_response(cs[i], ids[i], &stream);
        const char *text = text_of(result_of(resp));
        cr_assert_str_eq(text, alone[i % P], "client %d: '%s' alone vs '%s' together", i,
                         alone[i % P], text);
        if (i % 2)
            cr_assert_str_eq(stream, text);
        else
            cr_assert_str_empty(stream, "no stream notifications unless asked");
        free(stream);
        json_decref(resp);
        du_close(cs[i]);
    }
    for (int i = 0; i < P; i++)
        free(alone[i]);
    du_stop(&d);
}

/* ---- cancellation and disconnects ------------------------------------------------------ */

Test(rpc, cancel_long_request, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, "context: 2048\n");
    struct du_conn *c = du_connect(d.socket);
    char *p = long_prompt(1200);
    char *pj = jstr(p);
    char params[16384];
    snprintf(params, sizeof params,
             "{\"prompt\":%s,\"temperature\":0,\"max_tokens\":600,\"ignore_eos\":true,"
             "\"stream\":true}",
             pj);
    char *lines = NULL;
    long id = add_call(c, &lines, "complete", params);
    char cp[64];
    snprintf(cp, sizeof cp, "{\"id\":%ld}", id);
    long cid = add_call(c, &lines, "cancel", cp);
    send_all(c, lines);
    json_t *cresp = du_wait_response(c, cid, NULL);
    cr_assert(json_is_true(json_object_get(result_of(cresp), "cancelled")));
    json_decref(cresp);
    json_t *resp = du_wait_response(c, id, NULL);
    json_t *res = result_of(resp);
    cr_assert_str_eq(finish_of(res), "cancelled");
    /* stopped early: the prompt not fully read, or few tokens generated */
    long long pt = usage(res, "prompt_tokens"), ev = usage(res, "evaluated_tokens"),
              gen = usage(res, "completion_tokens");
    cr_assert_gt(pt, 1000);
    cr_assert(ev < pt || gen < 600, "evaluated %lld of %lld, generated %lld of 600", ev, pt, gen);
    json_decref(resp);

    /* the request is gone: a second cancel names no request */
    cr_assert_eq(du_call_err(c, "cancel", cp, NULL), -32006);
    /* and the connection still works */
    json_t *st = du_call_ok(c, "status", NULL);
    json_decref(st);
    free(p);
    free(pj);
    du_close(c);
    du_stop(&d);
}

static json_t *status_of(const char *sock)
{
    struct du_conn *c = du_connect(sock);
    json_t *st = du_call_ok(c, "status", NULL);
    du_close(c);
    return st;
}

Test(rpc, client_disconnecting_mid_stream, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *a = du_connect(d.socket);
    du_send_call(a, "complete",
                 "{\"prompt\":\"" PROMPT "\",\"max_tokens\":100000,\"ignore_eos\":true,"
                 "\"stream\":true}");
    for (int i = 0; i < 3; i++) /* the stream is running */
        json_decref(du_recv_ok(a));
    du_close(a);

    /* another client is served, and the abandoned request stops */
    struct du_conn *b = du_connect(d.socket);
    json_t *r = du_call_ok(b, "complete",
                           "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":16}");
    cr_assert_str_eq(finish_of(r), "length");
    json_decref(r);
    int running = -1;
    for (int tries = 0; tries < 500 && running != 0; tries++) {
        json_t *st = du_call_ok(b, "status", NULL);
        running = (int)json_integer_value(json_object_get(st, "running"));
        json_decref(st);
        if (running)
            usleep(20000);
    }
    cr_assert_eq(running, 0, "the disconnected client's request still runs");
    du_close(b);
    du_stop(&d);
}

/* ---- bad input while another client streams ------------------------------------------- */

static void expect_error(struct du_conn *c, int code, const char *what)
{
    json_t *m = du_recv_ok(c);
    json_t *e = json_object_get(m, "error");
    char *s = json_dumps(m, JSON_COMPACT);
    cr_assert(e, "expected error %d, got %s", code, s);
    cr_assert_eq(json_integer_value(json_object_get(e, "code")), code, "%s", s);
    if (what)
        cr_assert(strstr(json_string_value(json_object_get(e, "message")), what),
                  "message should mention '%s': %s", what, s);
    free(s);
    json_decref(m);
}

Test(rpc, bad_messages_get_errors_while_a_stream_continues, .timeout = 600)
{
    struct du_daemon d;
    du_start(&d, NULL, "limits:\n  max_message_bytes: 1048576\n");
    struct du_conn *s = du_connect(d.socket);
    /* a stream that runs until cancelled (or the context is full) */
    long sid = du_send_call(s, "complete",
                            "{\"prompt\":\"" PROMPT "\",\"max_tokens\":100000,\"ignore_eos\":true,"
                            "\"stream\":true,\"seed\":3}");
    char *stream = NULL;
    json_t *first = du_recv_ok(s); /* it has started */
    json_t *ft = json_object_get(json_object_get(first, "params"), "text");
    cr_assert(json_is_string(ft));
    stream = strdup(json_string_value(ft));
    json_decref(first);

    struct du_conn *c = du_connect(d.socket);
    du_sendf(c, "{this is not json");
    expect_error(c, -32700, "parse error");
    du_sendf(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}]");
    expect_error(c, -32600, "batch");
    du_sendf(c, "\"a string\"");
    expect_error(c, -32600, NULL);
    du_sendf(c, "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"status\"}");
    expect_error(c, -32600, "jsonrpc");
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":42}");
    expect_error(c, -32600, "method");
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"status\"}");
    expect_error(c, -32600, "id");
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"frobnicate\"}");
    expect_error(c, -32601, "frobnicate");
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"status\",\"params\":[1,2]}");
    expect_error(c, -32602, "params");
    cr_assert_eq(du_call_err(c, "complete", "{\"prompt\":\"x\",\"temprature\":0.5}", NULL),
                 -32602);
    char *msg;
    cr_assert_eq(du_call_err(c, "complete", "{\"prompt\":\"x\",\"top_p\":7}", &msg), -32602);
    cr_assert(strstr(msg, "top_p"), "%s", msg);
    free(msg);
    cr_assert_eq(du_call_err(c, "complete", "{\"prompt\":\"x\",\"stop\":[1]}", &msg), -32602);
    cr_assert(strstr(msg, "stop"), "%s", msg);
    free(msg);
    cr_assert_eq(du_call_err(c, "complete", "{}", &msg), -32602);
    cr_assert(strstr(msg, "prompt"), "%s", msg);
    free(msg);
    cr_assert_eq(du_call_err(c, "chat", "{\"messages\":\"hi\"}", &msg), -32602);
    cr_assert(strstr(msg, "messages"), "%s", msg);
    free(msg);
    cr_assert_eq(du_call_err(c, "detokenize", "{\"tokens\":[1,99999999]}", &msg), -32602);
    free(msg);

    /* 40 MiB in one line: refused, the rest of the line skipped, the connection kept */
    size_t big = 40u << 20;
    char *line = malloc(big + 1);
    memset(line, 'a', big);
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tokenize\","
                               "\"params\":{\"text\":\"";
    memcpy(line, head, sizeof head - 1);
    memcpy(line + big - 3, "\"}}", 3);
    line[big] = '\n';
    cr_assert(du_write(c, line, big + 1));
    free(line);
    expect_error(c, -32600, "message too large (41943040 bytes, limit 1048576)");
    json_t *st = du_call_ok(c, "status", NULL);
    cr_assert_eq(json_integer_value(json_object_get(st, "protocol_version")), 4);
    json_decref(st);

    /* an id already in flight on this connection */
    long lid = du_send_call(c, "complete",
                            "{\"prompt\":\"" PROMPT "\",\"max_tokens\":100000,"
                            "\"ignore_eos\":true}");
    char dup[256];
    snprintf(dup, sizeof dup,
             "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tokenize\",\"params\":{\"text\":\"x\"}}",
             lid);
    du_sendf(c, "%s", dup);
    expect_error(c, -32600, "already");
    char cp[64];
    snprintf(cp, sizeof cp, "{\"id\":%ld}", lid);
    json_decref(du_call_ok(c, "cancel", cp));
    json_t *lr = du_wait_response(c, lid, NULL);
    cr_assert_str_eq(finish_of(result_of(lr)), "cancelled");
    json_decref(lr);

    /* the stream went on undisturbed: stop it; every piece it sent adds up
     * to its text (a context-full end before the cancel is fine too) */
    /* one more piece first, so the answer has more than one token even when
     * a busy machine kept the engine from running ahead of this test */
    json_t *second = du_recv_ok(s);
    json_t *st2 = json_object_get(json_object_get(second, "params"), "text");
    cr_assert(json_is_string(st2), "expected a second piece of the stream");
    stream = realloc(stream, strlen(stream) + json_string_length(st2) + 1);
    strcat(stream, json_string_value(st2));
    json_decref(second);
    char cs[64];
    snprintf(cs, sizeof cs, "{\"id\":%ld}", sid);
    long cid = du_send_call(s, "cancel", cs);
    json_t *resp = NULL, *cresp = NULL;
    while (!resp || !cresp) {
        json_t *m = du_recv_ok(s);
        json_t *mid = json_object_get(m, "id");
        json_t *p = json_object_get(m, "params");
        if (!mid) {
            const char *t = json_string_value(json_object_get(p, "text"));
            cr_assert(t);
            stream = realloc(stream, strlen(stream) + strlen(t) + 1);
            strcat(stream, t);
            json_decref(m);
        } else if (json_integer_value(mid) == sid) {
            resp = m;
        } else {
            cr_assert_eq(json_integer_value(mid), cid);
            cresp = m;
        }
    }
    json_t *res = result_of(resp);
    const char *fr = finish_of(res);
    cr_assert(!strcmp(fr, "cancelled") || !strcmp(fr, "context"), "%s", fr);
    cr_assert_gt(usage(res, "completion_tokens"), 1);
    cr_assert_str_eq(stream, text_of(res));
    free(stream);
    json_decref(cresp);
    json_decref(resp);
    du_close(c);
    du_close(s);
    du_stop(&d);
}

/* Notifications get no answer; ids are echoed as given; the rest of the
 * small methods. */
Test(rpc, ids_notifications_and_small_methods, .timeout = 120)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"status\"}");
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"nonexistent\"}");
    cr_assert(du_write(c, "\n", 1)); /* a blank line */
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"status\"}");
    json_t *m = du_recv_ok(c);
    cr_assert_str_eq(json_string_value(json_object_get(m, "id")), "abc",
                     "notifications and blank lines must not be answered");
    json_decref(m);
    du_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":-7.5,\"method\":\"status\"}");
    m = du_recv_ok(c);
    cr_assert(json_is_real(json_object_get(m, "id")) &&
              json_real_value(json_object_get(m, "id")) == -7.5);
    json_decref(m);

    json_t *r = du_call_ok(c, "tokenize", "{\"text\":\"" PROMPT "\"}");
    json_t *toks = json_object_get(r, "tokens");
    cr_assert_geq(json_array_size(toks), 3);
    json_t *mi = du_call_ok(c, "model.info", NULL);
    cr_assert_eq(json_integer_value(json_array_get(toks, 0)),
                 json_integer_value(json_object_get(mi, "bos")), "BOS first by default");
    cr_assert_eq(json_integer_value(json_object_get(mi, "n_vocab")), 512);
    cr_assert_str_eq(json_string_value(json_object_get(mi, "arch")), "llama");
    cr_assert(json_is_boolean(json_object_get(mi, "chat_template")));
    json_decref(mi);
    /* detokenize(tokenize(x)) without BOS gives x back */
    json_t *no_bos = du_call_ok(c, "tokenize", "{\"text\":\"" PROMPT "\",\"add_special\":false}");
    char *tj = json_dumps(no_bos, JSON_COMPACT);
    json_t *dt = du_call_ok(c, "detokenize", tj);
    const char *back = json_string_value(json_object_get(dt, "text"));
    cr_assert(back && (!strcmp(back, PROMPT) || !strcmp(back, " " PROMPT)), "'%s'", back);
    free(tj);
    json_decref(dt);
    json_decref(no_bos);
    json_decref(r);

    cr_assert_eq(du_call_err(c, "cancel", "{\"id\":12345}", NULL), -32006);
    cr_assert_eq(du_call_err(c, "session.close", "{\"session\":\"nope\"}", NULL), -32602);

    json_t *st = du_call_ok(c, "status", NULL);
    static const char *keys[] = {"protocol_version", "version", "uptime_ms", "running", "queued",
                                 "sessions", "clients", "requests_total", "tokens_generated",
                                 "tokens_evaluated", "n_ctx", "parallel"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(json_object_get(st, keys[i]), "status lacks %s", keys[i]);
    json_decref(st);
    du_close(c);
    du_stop(&d);
}

/* ---- sessions, limits ------------------------------------------------------------------ */

Test(rpc, session_second_turn_evaluates_only_new_tokens, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    json_t *r1 = du_call_ok(c, "complete",
                            "{\"prompt\":\"" PROMPT "\",\"session\":\"s\",\"temperature\":0,"
                            "\"max_tokens\":24}");
    cr_assert_eq(usage(r1, "cached_tokens"), 0);
    /* the next turn continues the text the session holds */
    char *p2 = malloc(strlen(text_of(r1)) + 64);
    sprintf(p2, "%s%s Then they", PROMPT, text_of(r1));
    char *pj = jstr(p2);
    char params[4096];
    snprintf(params, sizeof params,
             "{\"prompt\":%s,\"session\":\"s\",\"temperature\":0,\"max_tokens\":8}", pj);
    json_t *r2 = du_call_ok(c, "complete", params);
    long long pt = usage(r2, "prompt_tokens"), cached = usage(r2, "cached_tokens"),
              ev = usage(r2, "evaluated_tokens");
    json_t *tk = json_pack("{s:s}", "text", p2);
    char *tkj = json_dumps(tk, JSON_COMPACT);
    json_t *toks = du_call_ok(c, "tokenize", tkj);
    cr_assert_eq(pt, (long long)json_array_size(json_object_get(toks, "tokens")));
    cr_assert_geq(cached, usage(r1, "prompt_tokens"), "turn 1's prompt is reused");
    cr_assert_eq(cached + ev, pt);
    cr_assert_lt(ev, pt - usage(r1, "prompt_tokens") + 2,
                 "only the new tokens are evaluated (%lld of %lld)", ev, pt);
    /* the same prompt without the session evaluates everything */
    snprintf(params, sizeof params, "{\"prompt\":%s,\"temperature\":0,\"max_tokens\":8}", pj);
    json_t *r3 = du_call_ok(c, "complete", params);
    cr_assert_eq(usage(r3, "evaluated_tokens"), pt);
    cr_assert_str_eq(text_of(r3), text_of(r2), "a session does not change the answer");

    json_t *st = du_call_ok(c, "status", NULL);
    cr_assert_geq(json_integer_value(json_object_get(st, "sessions")), 1);
    json_decref(st);
    json_decref(du_call_ok(c, "session.close", "{\"session\":\"s\"}"));
    cr_assert_eq(du_call_err(c, "session.close", "{\"session\":\"s\"}", NULL), -32602);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    json_decref(tk);
    json_decref(toks);
    free(tkj);
    free(pj);
    free(p2);
    du_close(c);
    du_stop(&d);
}

Test(rpc, chat_session_second_turn, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    long id = du_send_call(c, "chat",
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                           "\"session\":\"c\",\"temperature\":0,\"max_tokens\":16}");
    json_t *resp = du_wait_response(c, id, NULL);
    json_t *e = json_object_get(resp, "error");
    if (e) {
        /* a model without a chat template and no fallback */
        cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32003);
        json_decref(resp);
        du_close(c);
        du_stop(&d);
        cr_skip_test("the bundled model has no chat template");
    }
    json_t *r1 = result_of(resp);
    json_t *msg = json_object_get(r1, "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "role")), "assistant");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "content")), text_of(r1));
    json_t *p = json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}], s:s, s:f, s:i}", "messages",
                          "role", "user", "content", "Hello", "role", "assistant", "content",
                          text_of(r1), "role", "user", "content", "Tell me more", "session", "c",
                          "temperature", 0.0, "max_tokens", 8);
    char *pj = json_dumps(p, JSON_COMPACT);
    json_t *r2 = du_call_ok(c, "chat", pj);
    cr_assert_gt(usage(r2, "cached_tokens"), 0);
    cr_assert_eq(usage(r2, "cached_tokens") + usage(r2, "evaluated_tokens"),
                 usage(r2, "prompt_tokens"));
    cr_assert_lt(usage(r2, "evaluated_tokens"), usage(r2, "prompt_tokens"));
    json_decref(r2);
    json_decref(p);
    free(pj);
    json_decref(resp);
    du_close(c);
    du_stop(&d);
}

Test(rpc, context_overflow_is_refused, .timeout = 120)
{
    struct du_daemon d;
    du_start(&d, NULL, "context: 128\n");
    struct du_conn *c = du_connect(d.socket);
    char *p = long_prompt(400);
    char *pj = jstr(p);
    char params[8192];
    snprintf(params, sizeof params, "{\"prompt\":%s}", pj);
    char *msg;
    cr_assert_eq(du_call_err(c, "complete", params, &msg), -32001);
    cr_assert(strstr(msg, "128"), "the message gives the numbers: %s", msg);
    free(msg);
    free(pj);
    free(p);
    json_decref(du_call_ok(c, "status", NULL));
    du_close(c);
    du_stop(&d);
}

Test(rpc, busy_when_the_queue_is_full, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, "parallel: 1\nlimits:\n  max_queue: 1\n");
    struct du_conn *c = du_connect(d.socket);
    long ids[3];
    char *lines = NULL;
    for (int i = 0; i < 3; i++)
        ids[i] = add_call(c, &lines, "complete",
                          "{\"prompt\":\"" PROMPT "\",\"max_tokens\":100000,\"ignore_eos\":true}");
    send_all(c, lines);
    /* At most one runs and one waits, and none ends by itself: at least one
     * of the three is refused (which ones depends on when the engine takes
     * the first from the queue). Cancel whatever was accepted. */
    json_t *resp[3] = {NULL, NULL, NULL};
    int busy = 0;
    lines = NULL;
    for (int i = 0; i < 3; i++) {
        char cp[64];
        snprintf(cp, sizeof cp, "{\"id\":%ld}", ids[i]);
        add_call(c, &lines, "cancel", cp);
    }
    send_all(c, lines);
    for (int got = 0; got < 3;) {
        json_t *m = du_recv(c, 60000, NULL);
        if (!m) {
            json_t *st = status_of(d.socket);
            char *sj = json_dumps(st, JSON_COMPACT), *log = du_log(&d);
            cr_assert_fail("%d of 3 answers (%s %s %s); status %s; log: %s", got,
                           resp[0] ? "1" : "-", resp[1] ? "2" : "-", resp[2] ? "3" : "-", sj, log);
        }
        json_t *mid = json_object_get(m, "id");
        for (int i = 0; i < 3; i++)
            if (json_integer_value(mid) == ids[i] && !resp[i]) {
                resp[i] = json_incref(m);
                got++;
            }
        json_decref(m);
    }
    for (int i = 0; i < 3; i++) {
        json_t *e = json_object_get(resp[i], "error");
        if (e) {
            cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32000);
            cr_assert(strstr(json_string_value(json_object_get(e, "message")), "busy"));
            busy++;
        } else {
            cr_assert_str_eq(finish_of(result_of(resp[i])), "cancelled");
        }
        json_decref(resp[i]);
    }
    cr_assert_geq(busy, 1, "three requests cannot fit one slot and a queue of one");
    cr_assert_leq(busy, 2, "the first request always fits");
    du_close(c);
    du_stop(&d);
}

Test(rpc, too_many_clients_get_busy, .timeout = 120)
{
    struct du_daemon d;
    du_start(&d, NULL, "limits:\n  max_clients: 2\n");
    /* the start-up probe's connection may not be reaped yet: wait for it */
    struct du_conn *a = du_connect(d.socket);
    for (int tries = 0;; tries++) {
        json_t *st = du_call_ok(a, "status", NULL);
        long long n = json_integer_value(json_object_get(st, "clients"));
        json_decref(st);
        if (n == 1)
            break;
        cr_assert_lt(tries, 500, "%lld clients, expected 1", n);
        usleep(10000);
    }
    struct du_conn *b = du_connect(d.socket);
    json_decref(du_call_ok(b, "status", NULL));
    struct du_conn *x = du_connect(d.socket);
    bool closed = false;
    json_t *m = du_recv(x, 30000, &closed);
    cr_assert(m, "the third client gets an error before being closed");
    json_t *e = json_object_get(m, "error");
    cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32000);
    json_decref(m);
    du_close(x);
    du_close(a);
    /* a slot is free again once a client has left */
    json_t *st = NULL;
    for (int tries = 0; tries < 200 && !st; tries++) {
        /* until the daemon has seen `a` go, it refuses (and closes) `y` */
        struct du_conn *y = du_connect(d.socket);
        static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";
        json_t *resp = du_write(y, req, sizeof req - 1) ? du_recv(y, 30000, NULL) : NULL;
        if (json_object_get(resp, "result"))
            st = json_incref(json_object_get(resp, "result"));
        json_decref(resp);
        du_close(y);
        if (!st)
            usleep(20000);
    }
    cr_assert(st);
    json_decref(st);
    du_close(b);
    du_stop(&d);
}

/* A client that sends requests without reading the answers does not hold
 * up the daemon; a half-closed client still gets its answers. */
Test(rpc, slow_reader_and_half_close, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *slow = du_connect(d.socket);
    char *p = long_prompt(8000);
    char *pj = jstr(p);
    size_t cap = strlen(pj) + 128;
    char *params = malloc(cap);
    snprintf(params, cap, "{\"text\":%s}", pj);
    for (int i = 0; i < 16; i++) /* ~45 KB each way: some 700 KB in, 1.5 MB out */
        du_send_call(slow, "tokenize", params);
    struct du_conn *c = du_connect(d.socket);
    json_t *r = du_call_ok(c, "complete",
                           "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":16}");
    json_decref(r);
    /* the slow one's answers are all there when it reads */
    for (int i = 0; i < 16; i++) {
        json_t *m = du_recv_ok(slow);
        cr_assert(json_array_size(json_object_get(json_object_get(m, "result"), "tokens")) > 8000);
        json_decref(m);
    }
    du_close(slow);

    long id = du_send_call(c, "complete",
                           "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":16}");
    shutdown(c->fd, SHUT_WR);
    json_t *resp = du_wait_response(c, id, NULL);
    cr_assert_str_eq(finish_of(result_of(resp)), "length");
    json_decref(resp);
    bool closed = false;
    cr_assert_null(du_recv(c, 30000, &closed));
    cr_assert(closed, "the daemon closes a half-closed connection once it has answered");
    du_close(c);
    free(params);
    free(pj);
    free(p);
    du_stop(&d);
}

/* A client that stops reading while megabytes of answers wait for it is
 * disconnected (after 10 s: docs/protocol.md, Limits); others are served. */
Test(rpc, stalled_reader_is_disconnected, .timeout = 600)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *slow = du_connect(d.socket);
    char *p = long_prompt(1000000); /* ~4 MB of text: ~5.5 MB of token ids */
    json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s}}", "jsonrpc", "2.0", "id", 1, "method",
                            "tokenize", "params", "text", p);
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    free(p);
    cr_assert(du_write(slow, line, strlen(line)) && du_write(slow, "\n", 1));
    free(line);
    /* wait, without reading, until the daemon hangs up */
    struct pollfd pf = {slow->fd, POLLRDHUP, 0};
    int pr = poll(&pf, 1, 300000);
    cr_assert(pr == 1 && (pf.revents & (POLLHUP | POLLRDHUP)),
              "the stalled client was not disconnected (poll %d, revents %#x)", pr, pf.revents);
    /* what it did receive is a cut-off answer */
    bool closed = false;
    json_t *m = du_recv(slow, 10000, &closed);
    cr_assert_null(m, "the answer should have been cut off");
    cr_assert(closed);
    cr_assert_gt(slow->len, 0, "part of the answer arrived");
    du_close(slow);
    json_t *st = status_of(d.socket);
    cr_assert_eq(json_integer_value(json_object_get(st, "running")), 0);
    json_decref(st);
    du_stop(&d);
}

/* ---- the socket file ------------------------------------------------------------------- */

Test(rpc, socket_and_directory_permissions, .timeout = 300)
{
    char base[] = "/tmp/hearth-perm-XXXXXX";
    cr_assert(mkdtemp(base));
    char dir[128], sock[160];
    snprintf(dir, sizeof dir, "%s/run/hearth", base);
    snprintf(sock, sizeof sock, "%s/hearth.sock", dir);
    struct du_daemon d;
    du_start_at(&d, sock, NULL, NULL);
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "directory mode %o", st.st_mode & 0777);
    cr_assert_eq(lstat(sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);

    /* a second daemon on the same socket refuses to start; the first serves on */
    char *argv[] = {(char *)du_daemon_bin(), "--foreground", "--config", d.config, "--socket",
                    sock, NULL};
    char *out, *err;
    int rc = tu_run(argv, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "already running"), "%s", err);
    free(out);
    free(err);
    json_decref(status_of(sock));

    /* another user is turned away even where the file modes would let it in */
    char run[160];
    snprintf(run, sizeof run, "%s/run", base);
    if (geteuid() == 0) {
        chmod(base, 0711);
        chmod(run, 0711);
        chmod(dir, 0777);
        chmod(sock, 0666);
        pid_t pid = fork();
        if (pid == 0) {
            if (setuid(65534) < 0)
                _exit(3);
            struct sockaddr_un sa = {.sun_family = AF_UNIX};
            strcpy(sa.sun_path, sock); /* short: /tmp/hearth-perm-XXXXXX/... */
            int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                _exit(4);
            static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";
            if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0) {
                /* closed already: fine */
            }
            char buf[256];
            ssize_t n = read(fd, buf, sizeof buf);
            _exit(n <= 0 ? 0 : 5); /* closed without an answer */
        }
        int ws;
        waitpid(pid, &ws, 0);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "other uid: child status %d signal %d",
                  WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        chmod(dir, 0700);
        chmod(run, 0700);
        chmod(base, 0700);
    }
    du_stop(&d);

    /* a stale socket file (nobody answers) is replaced */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sock); /* short: /tmp/hearth-perm-XXXXXX/... */
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    du_start_at(&d, sock, NULL, NULL);
    du_stop(&d);

    /* a directory open to others is refused with a clear error */
    chmod(dir, 0755);
    char cfg[200];
    snprintf(cfg, sizeof cfg, "%s/hearth.yaml", base);
    FILE *f = fopen(cfg, "w");
    char *model = realpath(tu_stories(), NULL);
    fprintf(f, "model: %s\ndbus:\n  enabled: false\n", model);
    free(model);
    fclose(f);
    char *argv2[] = {(char *)du_daemon_bin(), "--foreground", "--config", cfg, "--socket", sock,
                     NULL};
    rc = tu_run(argv2, &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "chmod 700"), "%s", err);
    cr_assert(lstat(sock, &st) < 0, "no socket created in an open directory");
    free(out);
    free(err);
    unlink(cfg);
    rmdir(dir);
    rmdir(run);
    rmdir(base);
}

/* ---- the protocol's description ------------------------------------------------------------ */

/* docs/protocol.md carries each method's params and result exactly as
 * rpc.describe (the method table) gives them. */
Test(rpc, describe_matches_docs, .timeout = 120)
{
    const char *doc_path = tu_data("../../docs/protocol.md");
    char *doc = tu_read_file(doc_path, NULL);
    cr_assert(doc, "%s missing", doc_path);
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    json_t *r = du_call_ok(c, "rpc.describe", NULL);
    json_t *methods = json_object_get(r, "methods");
    cr_assert_geq(json_array_size(methods), 9);
    size_t i;
    json_t *m;
    json_array_foreach(methods, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        char want[2048];
        snprintf(want, sizeof want, "### `%s`\n", name);
        cr_assert(strstr(doc, want), "docs/protocol.md has no section %s", want);
        snprintf(want, sizeof want, "Params: `%s`",
                 json_string_value(json_object_get(m, "params")));
        cr_assert(strstr(doc, want), "docs/protocol.md lacks '%s'", want);
        snprintf(want, sizeof want, "Result: `%s`",
                 json_string_value(json_object_get(m, "result")));
        cr_assert(strstr(doc, want), "docs/protocol.md lacks '%s'", want);
        /* and the method works as listed: a call never answers "unknown method" */
        long id = du_send_call(c, name, NULL);
        json_t *resp = du_wait_response(c, id, NULL);
        json_t *e = json_object_get(resp, "error");
        cr_assert(!e || json_integer_value(json_object_get(e, "code")) != -32601);
        json_decref(resp);
    }
    json_decref(r);
    free(doc);
    du_close(c);
    du_stop(&d);
}

/* ---- the hearth client commands --------------------------------------------------------- */

Test(rpc, cli_ask_status_chat, .timeout = 300)
{
    struct du_daemon d;
    du_start(&d, NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    json_t *r = du_call_ok(c, "complete",
                           "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":32}");
    char *want = malloc(strlen(text_of(r)) + 2);
    sprintf(want, "%s\n", text_of(r));

    char *out, *err;
    int st = tu_hearth(&out, &err, "ask", "--socket", d.socket, "--raw", "--temp", "0", "-n", "32",
                       PROMPT, NULL);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert_str_eq(out, want);
    free(out);
    free(err);

    st = tu_hearth(&out, &err, "status", "--socket", d.socket, NULL);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert(strstr(out, "stories260K.gguf") && strstr(out, "(protocol 4)"), "%s", out);
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "status", "--socket", d.socket, "--json", NULL);
    cr_assert_eq(st, 0, "%s", err);
    json_t *sj = json_loads(out, 0, NULL);
    cr_assert(sj, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(sj, "protocol_version")), 4);
    cr_assert_geq(json_integer_value(json_object_get(sj, "requests_total")), 2);
    json_decref(sj);
    free(out);
    free(err);

    /* the chat over piped stdin: two turns in one session, then /exit */
    json_t *probe = json_pack("{s:[{s:s,s:s}], s:i}", "messages", "role", "user", "content", "Hi",
                              "max_tokens", 1);
    char *pj = json_dumps(probe, JSON_COMPACT);
    long pid = du_send_call(c, "chat", pj);
    json_t *pr = du_wait_response(c, pid, NULL);
    bool can_chat = json_object_get(pr, "result") != NULL;
    json_decref(pr);
    json_decref(probe);
    free(pj);
    if (can_chat) {
        char *argv[] = {(char *)tu_hearth_bin(), "chat", "--socket", d.socket, "--temp", "0",
                        "-n", "12", "-v", NULL};
        st = du_run_input(argv, "Hello there\nWhat next?\n/exit\nnot sent\n", &out, &err);
        cr_assert_eq(st, 0, "%s", err);
        cr_assert_gt(strlen(out), 2);
        /* -v: one statistics line per turn; the second reuses the first's tokens */
        char *l1 = strstr(err, "cached"), *l2 = l1 ? strstr(l1 + 1, "cached") : NULL;
        cr_assert(l1 && l2, "two turns expected: %s", err);
        cr_assert(!strstr(l2 + 1, "cached"), "the line after /exit is not sent: %s", err);
        char *open = strrchr(err, '(');
        long cached = open ? strtol(open + 1, NULL, 10) : 0;
        cr_assert_gt(cached, 0, "second turn: %s", err);
        free(out);
        free(err);
    }

    json_decref(r);
    free(want);
    du_close(c);
    du_stop(&d);

    /* no daemon: one line saying what to do */
    st = tu_hearth(&out, &err, "ask", "--socket", d.socket, "hello", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "hearthd");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "status", "--socket", "/nonexistent/hearth.sock", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "is hearthd running");
    free(out);
    free(err);
}
