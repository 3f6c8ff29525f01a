/*
 * test_sched.c — the scheduler (daemon/scheduler.h) driven directly on a real
 * event loop with the bundled model: continuous batching gives every request
 * what it would get alone, sessions reuse their cache, stop strings, limits,
 * cancellation and clients that go away.
 *
 * The reference for "what a request gets alone" is the engine itself: a
 * plain greedy loop over hr_ctx_eval, as `hearth generate --temp 0` runs it.
 */
#include "testutil.h"

#include "loop.h"
#include "scheduler.h"

#include <jansson.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct hr_model *model;
static struct hd_loop *loop;
static struct hd_sched *sched;

struct result {
    bool done, error;
    char *streamed; /* TEXT pieces concatenated */
    size_t len;
    char *text;     /* DONE text */
    char reason[32];
    struct hd_usage usage;
    int n_events;
    int code;
    char message[512];
};

static int outstanding;

static void on_event(void *user, const struct hd_event *ev)
{
    struct result *r = user;
    r->n_events++;
    cr_assert(!r->done && !r->error, "event after the last one");
    if (ev->type == HD_EV_TEXT) {
        cr_assert_gt(ev->len, 0);
        r->streamed = realloc(r->streamed, r->len + ev->len + 1);
        memcpy(r->streamed + r->len, ev->text, ev->len);
        r->len += ev->len;
        r->streamed[r->len] = 0;
        return;
    }
    if (ev->type == HD_EV_DONE) {
        r->done = true;
        r->text = strndup(ev->text, ev->len);
        snprintf(r->reason, sizeof r->reason, "%s", ev->finish_reason);
        r->usage = ev->usage;
    } else {
        r->error = true;
        r->code = ev->code;
        snprintf(r->message, sizeof r->message, "%s", ev->message);
    }
    if (--outstanding == 0)
        hd_loop_quit(loop);
}

static void result_done(struct result *r)
{
    free(r->streamed);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static void start(const struct hd_sched_params *p)
{
    struct hr_err err;
    cr_assert_eq(hr_model_load(tu_stories(), NULL, &model, &err), 0, "%s", err.msg);
    cr_assert_eq(hd_loop_new(&loop), 0);
    cr_assert_eq(hd_sched_new(model, p, loop, &sched, &err), 0, "%s", err.msg);
}

static void stop(void)
{
    hd_sched_free(sched);
    hd_loop_free(loop);
    hr_model_free(model);
    sched = NULL;
    loop = NULL;
    model = NULL;
}

static void gen_greedy(struct hd_gen_params *g, int max_tokens)
{
    hd_gen_params_init(sched, g);
    g->sampling.temp = 0;
    g->max_tokens = max_tokens;
}

static uint64_t submit(uint64_t client, const char *session, const char *prompt,
                       const struct hd_gen_params *g, struct result *r)
{
    struct hd_request rq = {.client = client, .session = session, .prompt = prompt, .gen = *g};
    struct hr_err err;
    uint64_t id = 0;
    int rc = hd_sched_submit(sched, &rq, on_event, r, &id, &err);
    cr_assert_eq(rc, 0, "submit: %s", err.msg);
    outstanding++;
    return id;
}

static void run(void)
{
    if (outstanding > 0)
        cr_assert_eq(hd_loop_run(loop), 0);
}

/* The engine alone: greedy continuation of `prompt`, n tokens or until EOG. */
static char *reference(const char *prompt, int n)
{
    struct hr_ctx *ctx;
    struct hr_err err;
    struct hr_ctx_params cp = {.n_ctx = 512, .n_threads = 1};
    cr_assert_eq(hr_ctx_new(model, &cp, &ctx, &err), 0, "%s", err.msg);
    const struct hr_vocab *v = hr_model_vocab(model);
    int32_t toks[512];
    int64_t nt = hr_tokenize(v, prompt, strlen(prompt), true, false, toks, 512);
    cr_assert(nt > 0 && nt < 512);
    cr_assert_eq(hr_ctx_eval(ctx, toks, (int32_t)nt, false, &err), 0, "%s", err.msg);
    char *out = calloc(1, 8192);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const float *lg = hr_ctx_logits(ctx, -1);
        int32_t best = 0;
        for (int32_t t = 1; t < hr_model_n_vocab(model); t++)
            if (lg[t] > lg[best])
                best = t;
        if (hr_vocab_is_eog(v, best))
            break;
        int64_t pl = hr_token_to_piece(v, best, false, out + len, 8191 - len);
        cr_assert(pl >= 0 && len + (size_t)pl < 8191);
        len += (size_t)pl;
        cr_assert_eq(hr_ctx_eval(ctx, &best, 1, false, &err), 0, "%s", err.msg);
    }
    hr_ctx_free(ctx);
    return out;
}

static const char *prompts[] = {
    "Once upon a time",       "The little dog",          "Lily wanted to",
    "One day, a big",         "Tom and Sue went",        "The sun was",
    "There was a girl named", "In the park,",            "Mom said",
    "The cat sat on",         "Ben had a red",           "It was a rainy day",
    "The bird flew",          "Sam liked to play with", "A tiny fish",
    "The old tree",
};

Test(sched, one_request_equals_the_engine, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512});
    struct hd_gen_params g;
    gen_greedy(&g, 48);
    struct result r = {0};
    submit(hd_sched_client_new(sched), NULL, "Once upon a time", &g, &r);
    run();
    cr_assert(r.done, "error: %s", r.message);
    char *ref = reference("Once upon a time", 48);
    cr_assert_str_eq(r.text, ref);
    cr_assert_str_eq(r.streamed ? r.streamed : "", r.text, "stream != final text");
    cr_assert_eq(r.usage.completion_tokens, 48);
    cr_assert_str_eq(r.reason, "length");
    cr_assert_eq(r.usage.cached_tokens, 0);
    cr_assert_eq(r.usage.evaluated_tokens, r.usage.prompt_tokens);
    free(ref);
    result_done(&r);
    stop();
}

/* 16 clients at once, 4 generating together in every forward pass, prompt
 * chunks mixed with decode tokens: each answer equals its solo answer. */
Test(sched, sixteen_concurrent_clients_match_solo, .timeout = 120)
{
    start(&(struct hd_sched_params){.n_threads = 2, .n_ctx = 256, .n_batch = 24, .parallel = 4,
                                     .max_per_client = 1});
    enum { N = 16 };
    struct result r[N] = {0};
    struct hd_gen_params g;
    gen_greedy(&g, 40);
    for (int i = 0; i < N; i++)
        submit(hd_sched_client_new(sched), NULL, prompts[i], &g, &r[i]);
    struct hd_status st;
    hd_sched_status(sched, &st);
    cr_assert_eq(st.clients, N);
    run();
    for (int i = 0; i < N; i++) {
        cr_assert(r[i].done, "request %d: %s", i, r[i].message);
        char *ref = reference(prompts[i], 40);
        cr_assert_str_eq(r[i].text, ref, "request %d (%s)", i, prompts[i]);
        cr_assert_str_eq(r[i].streamed ? r[i].streamed : "", r[i].text);
        free(ref);
        result_done(&r[i]);
    }
    hd_sched_status(sched, &st);
    cr_assert_eq(st.requests_total, N);
    cr_assert_eq(st.running + st.queued, 0);
    cr_assert(hd_sched_idle(sched));
    stop();
}

/* The second turn of a session evaluates only what is new. */
Test(sched, session_reuses_its_cache, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512});
    struct hd_gen_params g;
    gen_greedy(&g, 20);
    struct result r1 = {0}, r2 = {0};
    uint64_t c = hd_sched_client_new(sched);
    submit(c, "s1", "Once upon a time", &g, &r1);
    run();
    cr_assert(r1.done);
    char prompt2[2048];
    snprintf(prompt2, sizeof prompt2, "Once upon a time%s. Then the dog", r1.text);
    submit(c, "s1", prompt2, &g, &r2);
    run();
    cr_assert(r2.done, "%s", r2.message);
    cr_assert_gt(r2.usage.cached_tokens, r1.usage.prompt_tokens);
    cr_assert_eq(r2.usage.cached_tokens + r2.usage.evaluated_tokens, r2.usage.prompt_tokens);
    cr_assert_lt(r2.usage.evaluated_tokens, 10, "evaluated %d of %d", r2.usage.evaluated_tokens,
                 r2.usage.prompt_tokens);
    /* and the answer is what a fresh evaluation gives */
    char *ref = reference(prompt2, 20);
    cr_assert_str_eq(r2.text, ref);
    free(ref);
    struct hd_status st;
    hd_sched_status(sched, &st);
    cr_assert_eq(st.sessions, 1);
    cr_assert_eq(hd_sched_session_close(sched, "s1"), 0);
    cr_assert_eq(hd_sched_session_close(sched, "s1"), -ENOENT);
    result_done(&r1);
    result_done(&r2);
    stop();
}

Test(sched, stop_string_ends_the_answer, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512});
    char *ref = reference("Once upon a time", 60);
    /* stop at the third word of the reference answer */
    const char *w = ref;
    for (int i = 0; i < 3; i++)
        w = strchr(w + 1, ' ');
    cr_assert(w);
    char stop_at[16];
    snprintf(stop_at, sizeof stop_at, "%.5s", w);
    struct hd_gen_params g;
    gen_greedy(&g, 60);
    g.stop[0] = stop_at;
    g.n_stop = 1;
    struct result r = {0};
    submit(hd_sched_client_new(sched), NULL, "Once upon a time", &g, &r);
    run();
    cr_assert(r.done);
    cr_assert_str_eq(r.reason, "stop");
    const char *first = strstr(ref, stop_at);
    cr_assert_eq(strlen(r.text), (size_t)(first - ref), "'%s' vs '%s' stop '%s'", r.text, ref,
                 stop_at);
    cr_assert(strncmp(r.text, ref, strlen(r.text)) == 0);
    cr_assert_str_eq(r.streamed ? r.streamed : "", r.text, "the stop string leaked into the stream");
    free(ref);
    result_done(&r);
    stop();
}

Test(sched, limits_and_bad_requests, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512, .parallel = 1, .max_queue = 1,
                                     .max_per_client = 1});
    struct hd_gen_params g;
    gen_greedy(&g, 8);
    struct hr_err err;
    uint64_t id, c = hd_sched_client_new(sched);
    struct hd_request rq = {.client = c, .prompt = "Once upon a time", .gen = g};
    struct result r[3] = {0};
    /* the queue limit: one runs, one waits, the third is refused */
    rq.gen.max_tokens = 400;
    rq.gen.ignore_eos = true;
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[0], &id, &err), 0);
    outstanding++;
    struct hd_status st;
    for (int i = 0; i < 5000; i++) { /* until the engine has taken it */
        hd_sched_status(sched, &st);
        if (st.running == 1)
            break;
        usleep(1000);
    }
    cr_assert_eq(st.running, 1);
    rq.gen = g;
    rq.client = hd_sched_client_new(sched);
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[1], &id, &err), 0);
    outstanding++;
    rq.client = hd_sched_client_new(sched);
    int rc = hd_sched_submit(sched, &rq, on_event, &r[2], &id, &err);
    cr_assert_eq(rc, -EBUSY);
    cr_assert(strstr(err.msg, "waiting (limit 1)"), "%s", err.msg);
    /* the per-client limit (1): the first client has one running */
    rq.client = c;
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[2], &id, &err), -EBUSY);
    cr_assert(strstr(err.msg, "this client already has 1"), "%s", err.msg);
    rq.client = hd_sched_client_new(sched);
    run();
    cr_assert(r[0].done && r[1].done);
    cr_assert_eq(r[2].n_events, 0);
    rq.gen = g;
    /* a prompt longer than the context */
    char longp[4096] = "";
    for (int i = 0; i < 120; i++)
        strcat(longp, "the dog and the cat ");
    rq.prompt = longp;
    rc = hd_sched_submit(sched, &rq, on_event, &r[2], &id, &err);
    cr_assert_eq(rc, -E2BIG);
    cr_assert(strstr(err.msg, "context holds 512"), "%s", err.msg);
    /* neither prompt nor messages; bad max_tokens */
    rq.prompt = NULL;
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[2], &id, &err), -EINVAL);
    rq.prompt = "x";
    rq.gen.max_tokens = 0;
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[2], &id, &err), -EINVAL);
    cr_assert(strstr(err.msg, "max_tokens"), "%s", err.msg);
    for (int i = 0; i < 3; i++)
        result_done(&r[i]);
    stop();
}

/* Generation that reaches the end of the context stops with "context". */
Test(sched, context_full, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 64});
    struct hd_gen_params g;
    gen_greedy(&g, 500);
    g.ignore_eos = true;
    struct result r = {0};
    submit(hd_sched_client_new(sched), NULL, "Once upon a time", &g, &r);
    run();
    cr_assert(r.done);
    cr_assert_str_eq(r.reason, "context");
    cr_assert_eq(r.usage.prompt_tokens + r.usage.completion_tokens, 64 + 1,
                 "prompt %d + generated %d", r.usage.prompt_tokens, r.usage.completion_tokens);
    result_done(&r);
    stop();
}

/* Cancel: a queued request ends at once, a running one within a token. */
static struct result *cancel_after_first;
static uint64_t cancel_id;

static void on_event_cancel(void *user, const struct hd_event *ev)
{
    if (ev->type == HD_EV_TEXT && user == cancel_after_first && cancel_id) {
        cr_assert_eq(hd_sched_cancel(sched, 0, cancel_id), 0);
        cancel_id = 0;
    }
    on_event(user, ev);
}

Test(sched, cancel, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 2048, .parallel = 1});
    struct hd_gen_params g;
    gen_greedy(&g, 2000);
    g.ignore_eos = true;
    struct result r[3] = {0};
    uint64_t c = hd_sched_client_new(sched), id;
    struct hr_err err;
    struct hd_request rq = {.client = c, .prompt = "Once upon a time", .gen = g};
    cancel_after_first = &r[0];
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event_cancel, &r[0], &cancel_id, &err), 0);
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &r[1], &id, &err), 0);
    outstanding += 2;
    /* r[1] waits behind r[0] (parallel 1): cancelling it ends it unrun */
    cr_assert_eq(hd_sched_cancel(sched, c, id), 0);
    cr_assert_eq(hd_sched_cancel(sched, c + 1, 999), -ENOENT);
    run();
    cr_assert(r[0].done && r[1].done);
    cr_assert_str_eq(r[1].reason, "cancelled");
    cr_assert_eq(r[1].usage.completion_tokens, 0);
    cr_assert_eq(r[1].usage.evaluated_tokens, 0);
    cr_assert_str_eq(r[0].reason, "cancelled");
    /* cancelled at its first piece: it stops long before its 2000 tokens (how
     * many it made first depends on how fast this loop thread ran) */
    cr_assert_lt(r[0].usage.completion_tokens, 1000, "%d tokens", r[0].usage.completion_tokens);
    for (int i = 0; i < 3; i++)
        result_done(&r[i]);
    stop();
}

/* A client that goes away: its requests are cancelled and its callbacks are
 * never called again, while another client's request completes. */
static int dropped_calls;
static void on_event_dropped(void *user, const struct hd_event *ev)
{
    (void)user;
    (void)ev;
    dropped_calls++;
}

Test(sched, dropped_client, .timeout = 60)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512, .parallel = 2});
    struct hd_gen_params g;
    gen_greedy(&g, 100);
    g.ignore_eos = true;
    uint64_t gone = hd_sched_client_new(sched), stays = hd_sched_client_new(sched), id;
    struct hr_err err;
    struct hd_request rq = {.client = gone, .prompt = "Once upon a time", .gen = g};
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event_dropped, NULL, &id, &err), 0);
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event_dropped, NULL, &id, &err), 0);
    struct result r = {0};
    gen_greedy(&g, 30);
    submit(stays, NULL, "The little dog", &g, &r);
    hd_sched_drop_client(sched, gone);
    run();
    cr_assert(r.done);
    char *ref = reference("The little dog", 30);
    cr_assert_str_eq(r.text, ref);
    free(ref);
    cr_assert_eq(dropped_calls, 0);
    /* the dropped requests end and are freed (ASan would see a leak otherwise) */
    for (int i = 0; i < 200 && !hd_sched_idle(sched); i++) {
        hd_loop_add_timer(loop, 5, false, (hd_timer_fn)hd_loop_quit, loop);
        hd_loop_run(loop);
    }
    cr_assert(hd_sched_idle(sched));
    cr_assert_eq(dropped_calls, 0);
    result_done(&r);
    stop();
}

/* Constrained output: with a JSON Schema, every answer of a model that has
 * never seen JSON is a document of the schema; a bad grammar is refused at
 * submit with its position. */
Test(sched, grammar_and_json_schema, .timeout = 120)
{
    start(&(struct hd_sched_params){.n_threads = 1, .n_ctx = 512, .parallel = 4});
    enum { N = 4 };
    struct result r[N] = {0};
    struct hd_gen_params g;
    for (int i = 0; i < N; i++) {
        hd_gen_params_init(sched, &g);
        g.sampling.temp = 1.0f;
        g.sampling.seed = 1000 + (uint64_t)i;
        g.max_tokens = 200;
        g.json_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
                        "\"maxLength\":12},\"age\":{\"type\":\"integer\",\"minimum\":0,"
                        "\"maximum\":120}},\"required\":[\"name\",\"age\"],"
                        "\"additionalProperties\":false}";
        submit(hd_sched_client_new(sched), NULL, "Once upon a time", &g, &r[i]);
    }
    run();
    for (int i = 0; i < N; i++) {
        cr_assert(r[i].done, "%s", r[i].message);
        cr_assert_str_eq(r[i].reason, "stop", "request %d: %s after %d tokens: %s", i,
                         r[i].reason, r[i].usage.completion_tokens, r[i].text);
        json_error_t je;
        json_t *doc = json_loads(r[i].text, 0, &je);
        cr_assert(doc, "not JSON: '%s' (%s)", r[i].text, je.text);
        cr_assert(json_is_object(doc) && json_object_size(doc) == 2, "%s", r[i].text);
        json_t *name = json_object_get(doc, "name"), *age = json_object_get(doc, "age");
        cr_assert(json_is_string(name) && json_is_integer(age), "%s", r[i].text);
        cr_assert(json_integer_value(age) >= 0 && json_integer_value(age) <= 120);
        json_decref(doc);
        result_done(&r[i]);
    }
    /* the same through GBNF: one of three words */
    hd_gen_params_init(sched, &g);
    g.sampling.temp = 1.0f;
    g.grammar = "root ::= (\"yes\" | \"no\" | \"maybe\") \".\"";
    struct result one = {0};
    submit(hd_sched_client_new(sched), NULL, "Once upon a time", &g, &one);
    run();
    cr_assert(one.done);
    cr_assert(!strcmp(one.text, "yes.") || !strcmp(one.text, "no.") || !strcmp(one.text, "maybe."),
              "%s", one.text);
    result_done(&one);
    /* errors name what is wrong */
    struct hr_err err;
    uint64_t id;
    g.grammar = "root ::= (\"a\"";
    struct hd_request rq = {.client = 1, .prompt = "x", .gen = g};
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &one, &id, &err), -EINVAL);
    cr_assert(strncmp(err.msg, "grammar: 1:", 11) == 0, "%s", err.msg);
    rq.gen.grammar = NULL;
    rq.gen.json_schema = "{\"type\":\"string\",\"pattern\":\"a+\"}";
    cr_assert_eq(hd_sched_submit(sched, &rq, on_event, &one, &id, &err), -EINVAL);
    cr_assert(strstr(err.msg, "json_schema: ") && strstr(err.msg, "pattern"), "%s", err.msg);
    stop();
}
