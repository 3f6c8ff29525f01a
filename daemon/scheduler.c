/*
 * scheduler.c — sessions, the request queue and the engine thread (see scheduler.h).
 *
 * Two threads meet here. The loop thread submits, cancels and receives
 * events; the engine thread owns the evaluation context and runs steps. A
 * step admits queued requests (up to `parallel` running), builds one batch
 * — one token for each generating request, then chunks of the prompts being
 * read — evaluates it with hr_ctx_eval_batch, and samples. Results go back
 * as events through a queue and an eventfd that the loop watches.
 *
 * Ownership of a request: created by submit (loop thread) and listed in
 * s->live, which only the loop thread reads. The engine thread owns its
 * generation state from admission until it posts the final event; after
 * that only the loop thread touches it, and frees it once the final event
 * has been delivered. Everything both threads read is under s->mu, except
 * the cancel flag (atomic), which the abort callback polls mid-pass.
 *
 * Sessions mirror their sequence's cache: sess->tokens are exactly the
 * tokens whose keys and values the sequence holds. A request continuing a
 * session keeps the longest common prefix of its prompt and those tokens.
 * A session with a request queued or running is busy; only the engine
 * thread touches a busy session's tokens and sequence.
 *
 * LoRA adapters: the registry (loop thread) holds one reference to each
 * loaded adapter; a request resolves its names at submit and holds its own
 * references until it is freed; a session remembers the set its sequence
 * was last evaluated with (the sequence holds those references), and a
 * request with another set replaces it and starts the cache over.
 */
#include "scheduler_impl.h"

#include "config.h"
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------- */

int sched_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

int sched_seterr(struct hr_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

static double ms_between(double a, double b)
{
    return a && b && b > a ? (double)(b - a) : 0.0;
}

/* Milliseconds on the monotonic clock, with microsecond resolution: the
 * timings of a tiny model's request are fractions of a millisecond. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Puts `what` in front of err's message. */
static void prefix_err(struct hr_err *err, const char *what)
{
    if (!err)
        return;
    char tmp[sizeof err->msg];
    snprintf(tmp, sizeof tmp, "%s%s", what, err->msg);
    memcpy(err->msg, tmp, sizeof tmp);
}

static void session_free(struct session *ss)
{
    if (!ss)
        return;
    hr_seq_free(ss->seq);
    free(ss->tokens);
    free(ss->loras);
    free(ss->name);
    free(ss);
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    free(r->session_name);
    free(r->prompt);
    for (int i = 0; i < HD_MAX_STOP; i++)
        free(r->stops[i]);
    hr_sampler_free(r->smp);
    hr_grammar_free(r->grammar);
    for (int32_t i = 0; i < r->n_loras; i++)
        hr_lora_free(r->loras[i].lora);
    free(r->loras);
    free(r->text);
    free(r->out);
    free(r->final);
    free(r);
}

/* ---- events (engine thread → loop thread) ---------------------------------------- */

static void post(struct hd_sched *s, struct event *e)
{
    pthread_mutex_lock(&s->mu);
    *s->events_tail = e;
    s->events_tail = &e->next;
    pthread_mutex_unlock(&s->mu);
    uint64_t one = 1;
    ssize_t w = write(s->efd, &one, sizeof one);
    (void)w; /* an eventfd write only fails when the counter would overflow */
}

static void post_text(struct hd_sched *s, struct req *r, const char *text, size_t len)
{
    if (!len)
        return;
    struct event *e = calloc(1, sizeof *e);
    if (!e || !(e->text = malloc(len + 1))) {
        free(e);
        return; /* the piece is lost from the stream but kept in the final text */
    }
    memcpy(e->text, text, len);
    e->text[len] = 0;
    e->len = len;
    e->r = r;
    e->type = HD_EV_TEXT;
    post(s, e);
}

static struct hd_usage usage_of(const struct req *r, double t_end)
{
    struct hd_usage u = {0};
    u.prompt_tokens = r->n_prompt;
    u.cached_tokens = r->cached;
    u.evaluated_tokens = r->pos_prompt > r->cached ? r->pos_prompt - r->cached : 0;
    u.completion_tokens = r->n_gen;
    u.queued_ms = ms_between(r->t_submit, r->t_admit ? r->t_admit : t_end);
    u.prompt_ms = ms_between(r->t_admit, r->t_first ? r->t_first : t_end);
    u.generation_ms = ms_between(r->t_first, t_end);
    return u;
}

/* The request is finished: it leaves the engine's hands with this event. */
static void finish(struct hd_sched *s, struct req *r, const char *reason, int code,
                   const char *msg)
{
    struct event *e = r->final;
    double t = now_ms();
    r->final = NULL;
    e->r = r;
    e->usage = usage_of(r, t);
    if (code) {
        e->type = HD_EV_ERROR;
        e->code = code;
        e->message = strdup(msg ? msg : "request failed"); /* NULL: "" is delivered */
    } else {
        e->type = HD_EV_DONE;
        e->finish_reason = reason;
        e->text = r->out; /* moved: the loop thread frees it with the event */
        e->len = r->out_len;
        r->out = NULL;
        r->out_len = r->out_cap = 0;
    }
    pthread_mutex_lock(&s->mu);
    r->state = RS_FINISHED;
    /* off the active list before the event exists: once posted, the loop
     * thread may free r at any moment */
    for (struct req **p = &s->active; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            s->n_active--;
            break;
        }
    }
    if (r->sess) {
        r->sess->busy = false;
        r->sess->last_used = t;
    }
    s->tokens_generated += r->n_gen;
    pthread_mutex_unlock(&s->mu);
    post(s, e);
}

/* Loop thread: delivers queued events. */
static void on_events(void *user, int fd, uint32_t events)
{
    struct hd_sched *s = user;
    uint64_t v;
    ssize_t rd = read(fd, &v, sizeof v);
    (void)rd;
    (void)events;
    pthread_mutex_lock(&s->mu);
    struct event *list = s->events;
    s->events = NULL;
    s->events_tail = &s->events;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        struct event *e = list;
        list = e->next;
        struct req *r = e->r;
        struct hd_event ev = {
            .type = e->type, .id = r->id, .text = e->text ? e->text : "", .len = e->len,
            .finish_reason = e->finish_reason, .usage = e->usage, .code = e->code,
            .message = e->message ? e->message : ""};
        if (r->fn)
            r->fn(r->user, &ev);
        if (e->type != HD_EV_TEXT) {
            for (struct req **p = &s->live; *p; p = &(*p)->live_next)
                if (*p == r) {
                    *p = r->live_next;
                    break;
                }
            req_free(r);
        }
        free(e->text);
        free(e->message);
        free(e);
    }
}

/* ---- text: UTF-8, stop strings ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (1..4), 0 if incomplete within n
 * bytes, -1 if invalid. */
static int utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
              : (c & 0xF8) == 0xF0 ? 4 : -1;
    if (len < 0 || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
        return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return 0;
        if ((p[i] & 0xC0) != 0x80)
            return -1;
    }
    if (len == 3) {
        unsigned cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
    }
    if (len == 4) {
        unsigned cp = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12);
        if (cp < 0x10000 || cp > 0x10FFFF)
            return -1;
    }
    return len;
}

/* Appends text[scanned .. end) to the answer as valid UTF-8 (invalid bytes
 * become U+FFFD; an incomplete sequence at the end is left unless `final`)
 * and posts it as one piece. */
static void emit(struct hd_sched *s, struct req *r, size_t end, bool final)
{
    size_t start_out = r->out_len;
    const unsigned char *t = (const unsigned char *)r->text;
    size_t i = r->scanned;
    if (sched_grow((void **)&r->out, &r->out_cap, r->out_len + 3 * (end - i) + 1, 1) < 0)
        return;
    while (i < end) {
        int n = utf8_seq(t + i, end - i);
        if (n == 0 && !final)
            break;
        if (n <= 0) {
            memcpy(r->out + r->out_len, "\xEF\xBF\xBD", 3);
            r->out_len += 3;
            i += n == 0 ? end - i : 1;
            continue;
        }
        memcpy(r->out + r->out_len, t + i, (size_t)n);
        r->out_len += (size_t)n;
        i += (size_t)n;
    }
    r->out[r->out_len] = 0;
    r->scanned = i;
    post_text(s, r, r->out + start_out, r->out_len - start_out);
}

/* Appends a token's text; returns true when a stop string ended the answer. */
static bool add_piece(struct hd_sched *s, struct req *r, int32_t tok)
{
    char buf[256];
    int64_t n = hr_token_to_piece(s->vocab, tok, r->print_special, buf, sizeof buf);
    if (n < 0)
        n = 0;
    if (n > (int64_t)sizeof buf)
        n = sizeof buf; /* no real token is this long; cut rather than fail */
    if (sched_grow((void **)&r->text, &r->cap, r->len + (size_t)n + 1, 1) < 0)
        return false;
    memcpy(r->text + r->len, buf, (size_t)n);
    r->len += (size_t)n;
    r->text[r->len] = 0;

    /* a stop string anywhere in the unemitted text ends the answer there */
    size_t hold = 0;
    for (int k = 0; k < r->gen.n_stop; k++) {
        const char *st = r->stops[k];
        size_t sl = strlen(st);
        if (!sl)
            continue;
        size_t from = r->scanned;
        const char *hit = memmem(r->text + from, r->len - from, st, sl);
        if (hit) {
            size_t at = (size_t)(hit - r->text);
            r->len = at;
            r->text[at] = 0;
            emit(s, r, at, true);
            return true;
        }
        /* keep back a tail that could be the start of this stop string */
        for (size_t h = sl - 1; h > 0; h--) {
            if (h <= r->len - r->scanned && memcmp(r->text + r->len - h, st, h) == 0) {
                if (h > hold)
                    hold = h;
                break;
            }
        }
    }
    emit(s, r, r->len - hold, false);
    return false;
}

/* ---- engine thread ---------------------------------------------------------------- */

static bool abort_cb(void *user)
{
    struct hd_sched *s = user;
    /* the items of the pass are the active requests */
    if (__atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
        return true;
    for (struct req *r = s->active; r; r = r->next)
        if (atomic_load(&r->cancel))
            return true;
    return false;
}

static struct session *find_session(struct hd_sched *s, const char *name)
{
    for (struct session *ss = s->sessions; ss; ss = ss->next)
        if (ss->name && strcmp(ss->name, name) == 0)
            return ss;
    return NULL;
}

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* The session's sequence was evaluated with r's adapter set. */
static bool same_loras(const struct session *ss, const struct req *r)
{
    if (ss->n_loras != r->n_loras)
        return false;
    for (int32_t i = 0; i < r->n_loras; i++)
        if (ss->loras[i].lora != r->loras[i].lora || ss->loras[i].scale != r->loras[i].scale)
            return false;
    return true;
}

/* Under mu: an idle temporary sequence, preferring the one that shares the
 * longest prefix with the prompt (under the same adapters); NULL when all
 * are busy. */
static struct session *pick_temp(struct hd_sched *s, const struct req *r)
{
    struct session *best = NULL;
    int32_t best_len = -1;
    for (struct session *ss = s->sessions; ss; ss = ss->next) {
        if (ss->name || ss->busy)
            continue;
        int32_t l = same_loras(ss, r)
                        ? common_prefix(ss->tokens, ss->n_tokens, r->prompt, r->n_prompt)
                        : 0;
        if (l > best_len) {
            best = ss;
            best_len = l;
        }
    }
    return best;
}

/* Under mu: drops the least recently used idle session to make room. */
static bool evict_one(struct hd_sched *s)
{
    struct session **victim = NULL;
    for (struct session **p = &s->sessions; *p; p = &(*p)->next)
        if (!(*p)->busy && (!victim || (*p)->last_used < (*victim)->last_used))
            victim = p;
    if (!victim)
        return false;
    struct session *ss = *victim;
    *victim = ss->next;
    s->n_sessions--;
    session_free(ss);
    return true;
}

/* Under mu: a new session (named or temporary), evicting if at the limit. */
static struct session *session_add(struct hd_sched *s, const char *name)
{
    if (s->n_sessions >= s->max_sessions && !evict_one(s))
        return NULL;
    struct session *ss = calloc(1, sizeof *ss);
    if (!ss || (name && !(ss->name = strdup(name)))) {
        free(ss);
        return NULL;
    }
    ss->next = s->sessions;
    s->sessions = ss;
    s->n_sessions++;
    return ss;
}

/* Under mu: moves queued requests to the active set. Among the queued, the
 * first one whose client has the fewest running requests goes first, so one
 * busy client cannot starve the others. */
static void admit(struct hd_sched *s, struct req **admitted)
{
    while (s->n_active < s->parallel && s->pending) {
        struct req **best = NULL;
        int best_n = 1 << 30;
        for (struct req **p = &s->pending; *p; p = &(*p)->next) {
            struct req *q = *p;
            /* a session's next request waits while its previous one runs */
            if (q->session_name) {
                struct session *ss = find_session(s, q->session_name);
                if (ss && ss->busy)
                    continue;
            }
            int n = 0;
            for (struct req *a = s->active; a; a = a->next)
                n += a->client == q->client;
            if (n < best_n) {
                best = p;
                best_n = n;
            }
        }
        if (!best)
            return;
        struct req *r = *best;
        struct session *ss = NULL;
        if (r->session_name) {
            ss = find_session(s, r->session_name);
            if (!ss)
                ss = session_add(s, r->session_name);
        } else {
            ss = pick_temp(s, r);
            if (!ss)
                ss = session_add(s, NULL);
        }
        if (!ss)
            return; /* every session busy: wait for one to finish */
        *best = r->next;
        s->n_pending--;
        ss->busy = true;
        r->sess = ss;
        r->next = *admitted;
        *admitted = r;
    }
}

/* Engine thread: prepares an admitted request (sequence, prefix, sampler). */
static void start(struct hd_sched *s, struct req *r)
{
    struct hr_err err;
    struct session *ss = r->sess;
    r->t_admit = now_ms();
    if (!ss->seq) {
        int rc = hr_seq_new(s->ctx, s->n_ctx, &ss->seq, &err);
        if (rc < 0) {
            finish(s, r, NULL, rc, err.msg);
            return;
        }
    }
    /* another adapter set: the cache was computed with the old one */
    if (!same_loras(ss, r)) {
        struct hr_lora_use *copy = NULL;
        if (r->n_loras && !(copy = malloc((size_t)r->n_loras * sizeof *copy))) {
            finish(s, r, NULL, -ENOMEM, "out of memory");
            return;
        }
        int rc = hr_seq_set_loras(ss->seq, r->loras, r->n_loras, &err);
        if (rc < 0) {
            free(copy);
            finish(s, r, NULL, rc, err.msg);
            return;
        }
        if (copy)
            memcpy(copy, r->loras, (size_t)r->n_loras * sizeof *copy);
        free(ss->loras);
        ss->loras = copy;
        ss->n_loras = r->n_loras;
        ss->n_tokens = 0;
    }
    /* keep the common prefix, but always evaluate at least one token so
     * there are logits to sample from */
    int32_t keep = common_prefix(ss->tokens, ss->n_tokens, r->prompt, r->n_prompt);
    if (keep >= r->n_prompt)
        keep = r->n_prompt - 1;
    hr_seq_truncate(ss->seq, keep);
    ss->n_tokens = keep;
    r->cached = keep;
    r->pos_prompt = keep;
    struct hr_sampler_params sp = r->gen.sampling;
    int rc = hr_sampler_new(&sp, hr_model_n_vocab(s->model), &r->smp);
    if (rc < 0) {
        finish(s, r, NULL, rc, "cannot create the sampler");
        return;
    }
    for (int32_t i = 0; i < r->n_prompt; i++)
        hr_sampler_accept(r->smp, r->prompt[i]);
    if (r->grammar)
        hr_sampler_set_grammar(r->smp, r->grammar); /* sees generated tokens only */
    r->state = RS_PREFILL;
}

static int session_push(struct session *ss, const int32_t *toks, int32_t n)
{
    size_t cap = (size_t)ss->cap;
    if (sched_grow((void **)&ss->tokens, &cap, (size_t)ss->n_tokens + (size_t)n, sizeof(int32_t)) < 0)
        return -ENOMEM;
    ss->cap = (int32_t)cap;
    memcpy(ss->tokens + ss->n_tokens, toks, (size_t)n * sizeof(int32_t));
    ss->n_tokens += n;
    return 0;
}

/* Engine thread: the request has logits for its next token. */
static void sample_next(struct hd_sched *s, struct req *r, const float *logits)
{
    if (!r->t_first)
        r->t_first = now_ms();
    int32_t tok = hr_sampler_sample(r->smp, logits);
    if (tok == -ENOENT) { /* the grammar allows no token at all: it is complete */
        emit(s, r, r->len, true);
        finish(s, r, "stop", 0, NULL);
        return;
    }
    if (tok < 0) {
        finish(s, r, NULL, tok, tok == -ENOMEM ? "out of memory while sampling"
                                               : "the sampler failed");
        return;
    }
    hr_sampler_accept_generated(r->smp, tok);
    if (hr_vocab_is_eog(s->vocab, tok) && (!r->gen.ignore_eos || r->grammar)) {
        emit(s, r, r->len, true);
        finish(s, r, "stop", 0, NULL);
        return;
    }
    r->n_gen++;
    if (add_piece(s, r, tok)) {
        finish(s, r, "stop", 0, NULL);
        return;
    }
    if (r->grammar && hr_grammar_done(r->grammar)) {
        emit(s, r, r->len, true);
        finish(s, r, "stop", 0, NULL);
        return;
    }
    if (r->n_gen >= r->gen.max_tokens) {
        emit(s, r, r->len, true);
        finish(s, r, "length", 0, NULL);
        return;
    }
    if (hr_seq_n_past(r->sess->seq) >= hr_seq_n_ctx(r->sess->seq)) {
        emit(s, r, r->len, true);
        finish(s, r, "context", 0, NULL);
        return;
    }
    r->next_token = tok;
    r->state = RS_GEN;
}

/* Engine thread: one forward pass over the active requests. */
static void step(struct hd_sched *s, struct hr_batch_item *items, struct req **owners)
{
    int32_t n_items = 0, budget = s->n_batch, n_prefill = 0;
    /* cancelled requests end here, before they cost a pass */
    for (struct req *r = s->active, *next; r; r = next) {
        next = r->next; /* finish() unlinks r, and r may be gone right after */
        if (atomic_load(&r->cancel)) {
            emit(s, r, r->len, true);
            finish(s, r, "cancelled", 0, NULL);
        }
    }
    for (struct req *r = s->active; r; r = r->next) {
        if (r->state == RS_GEN && budget > 0) {
            items[n_items] = (struct hr_batch_item){r->sess->seq, &r->next_token, 1, NULL};
            owners[n_items++] = r;
            budget--;
        } else if (r->state == RS_PREFILL) {
            n_prefill++;
        }
    }
    /* prompt chunks share what is left of the batch */
    for (struct req *r = s->active; r && budget > 0; r = r->next) {
        if (r->state != RS_PREFILL)
            continue;
        int32_t share = budget / (n_prefill > 0 ? n_prefill : 1);
        if (share < 16)
            share = budget < 16 ? budget : 16;
        int32_t n = r->n_prompt - r->pos_prompt;
        if (n > share)
            n = share;
        items[n_items] = (struct hr_batch_item){r->sess->seq, r->prompt + r->pos_prompt, n, NULL};
        owners[n_items++] = r;
        budget -= n;
        n_prefill--;
    }
    if (!n_items)
        return;

    struct hr_err err;
    int rc = hr_ctx_eval_batch(s->ctx, items, n_items, &err);
    if (rc == -ECANCELED)
        return; /* the next step finishes the cancelled ones and retries the rest */
    if (rc < 0) {
        for (int32_t i = 0; i < n_items; i++) {
            struct req *r = owners[i];
            finish(s, r, NULL, rc, err.msg); /* none of them finished before the pass */
        }
        return;
    }
    int64_t evaluated = 0;
    for (int32_t i = 0; i < n_items; i++) {
        struct req *r = owners[i];
        evaluated += items[i].n;
        if (session_push(r->sess, items[i].tokens, items[i].n) < 0) {
            /* the mirror of the cache is lost: forget the cache too */
            hr_seq_truncate(r->sess->seq, 0);
            r->sess->n_tokens = 0;
            finish(s, r, NULL, -ENOMEM, "out of memory");
            continue;
        }
        if (r->state == RS_PREFILL) {
            r->pos_prompt += items[i].n;
            if (r->pos_prompt < r->n_prompt)
                continue;
        }
        sample_next(s, r, items[i].logits);
    }
    pthread_mutex_lock(&s->mu);
    s->tokens_evaluated += evaluated;
    pthread_mutex_unlock(&s->mu);
}

static void *engine_main(void *arg)
{
    struct hd_sched *s = arg;
    size_t cap = (size_t)s->n_batch;
    struct hr_batch_item *items = calloc(cap, sizeof *items);
    struct req **owners = calloc(cap, sizeof *owners);
    for (;;) {
        struct req *admitted = NULL;
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->active && !s->pending)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit(s, &admitted);
        /* newly admitted join the active list at its end, in queue order */
        struct req *rev = NULL;
        while (admitted) {
            struct req *n = admitted->next;
            admitted->next = rev;
            rev = admitted;
            admitted = n;
        }
        struct req **tail = &s->active;
        while (*tail)
            tail = &(*tail)->next;
        *tail = rev;
        for (struct req *r = rev; r; r = r->next)
            s->n_active++;
        pthread_mutex_unlock(&s->mu);
        for (struct req *r = rev, *next; r; r = next) {
            next = r->next; /* start() may finish r */
            start(s, r);
        }
        if (!items || !owners) {
            for (struct req *r = s->active, *next; r; r = next) {
                next = r->next;
                finish(s, r, NULL, -ENOMEM, "out of memory");
            }
            continue;
        }
        step(s, items, owners);
    }
    free(items);
    free(owners);
    return NULL;
}

/* ---- public API (loop thread) ----------------------------------------------------- */

int hd_sched_new(struct hr_model *model, const struct hd_sched_params *p, struct hd_loop *loop,
                 struct hd_sched **out, struct hr_err *err)
{
    hr_err_clear(err);
    struct hd_sched *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->model = model;
    s->vocab = hr_model_vocab(model);
    s->loop = loop;
    s->efd = -1;
    s->events_tail = &s->events;
    s->t_start = now_ms();
    s->parallel = p->parallel > 0 ? p->parallel : 4;
    s->max_sessions = p->max_sessions > 0 ? p->max_sessions : 16;
    s->max_queue = p->max_queue > 0 ? p->max_queue : 64;
    s->max_per_client = p->max_per_client > 0 ? p->max_per_client : 8;
    s->defaults = p->defaults;
    s->max_prompt = p->max_prompt_tokens;
    /* temporary sequences count against max_sessions too: keep room for them */
    if (s->max_sessions < s->parallel)
        s->max_sessions = s->parallel;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = -ENOMEM;
    if (p->model_path && !(s->model_path = strdup(p->model_path)))
        goto fail;
    struct hr_ctx_params cp = {.n_ctx = p->n_ctx, .n_batch = p->n_batch,
                               .n_threads = p->n_threads, .kv_type = p->kv_type};
    /* the context's own sequence is not used: keep it small */
    rc = hr_ctx_new(model, &cp, &s->ctx, err);
    if (rc < 0)
        goto fail;
    s->n_ctx = hr_ctx_n_ctx(s->ctx);
    s->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (s->n_batch > s->n_ctx)
        s->n_batch = s->n_ctx;
    hr_ctx_set_abort(s->ctx, abort_cb, s);
    s->max_piece = 1;
    for (int32_t t = 0; t < hr_vocab_n_tokens(s->vocab); t++) {
        char buf[8];
        int64_t n = hr_token_to_piece(s->vocab, t, true, buf, sizeof buf);
        if (n > (int64_t)s->max_piece)
            s->max_piece = (size_t)n;
    }
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        rc = -errno;
        sched_seterr(err, 0, "eventfd: %s", strerror(errno));
        goto fail;
    }
    rc = hd_loop_add_fd(loop, s->efd, EPOLLIN, on_events, s);
    if (rc < 0)
        goto fail;
    rc = -pthread_create(&s->thread, NULL, engine_main, s);
    if (rc < 0) {
        hd_loop_del_fd(loop, s->efd);
        sched_seterr(err, 0, "cannot start the engine thread: %s", strerror(-rc));
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    if (err && !err->msg[0])
        sched_seterr(err, 0, "cannot start the scheduler: %s", strerror(-rc));
    hd_sched_free(s);
    return rc;
}

void hd_sched_free(struct hd_sched *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        hd_loop_del_fd(s->loop, s->efd);
    }
    /* every request is in s->live; events only point at them */
    for (struct event *e = s->events, *n; e; e = n) {
        n = e->next;
        free(e->text);
        free(e->message);
        free(e);
    }
    for (struct req *r = s->live, *n; r; r = n) {
        n = r->live_next;
        req_free(r);
    }
    for (struct session *ss = s->sessions, *n; ss; ss = n) {
        n = ss->next;
        session_free(ss);
    }
    hr_ctx_free(s->ctx);
    while (s->n_lora > 0)
        hd_sched_lora_unload(s, s->lora_ents[s->n_lora - 1].name);
    free(s->lora_ents);
    free(s->lora_objs);
    free(s->lora_dir);
    sched_free_profiles(s->profiles, s->n_profiles);
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->model_path);
    free(s);
}

struct hr_model *hd_sched_model(const struct hd_sched *s)
{
    return s->model;
}

int32_t hd_sched_n_ctx(const struct hd_sched *s)
{
    return s->n_ctx;
}

const char *hd_sched_model_path(const struct hd_sched *s)
{
    return s->model_path ? s->model_path : "";
}

bool hd_sched_idle(const struct hd_sched *s)
{
    return s->live == NULL;
}

void hd_gen_params_init(const struct hd_sched *s, struct hd_gen_params *g)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)g;
    memset(g, 0, sizeof *g);
    hr_sampler_defaults(&g->sampling, seed);
    const struct hd_gen_params_defaults *d = &s->defaults;
    if (d->set) {
        g->sampling.temp = d->temperature;
        g->sampling.top_k = d->top_k;
        g->sampling.top_p = d->top_p;
        g->sampling.min_p = d->min_p;
        g->sampling.repeat_penalty = d->repeat_penalty;
    }
    g->max_tokens = d->max_tokens > 0 ? d->max_tokens : 512;
}

void hd_sched_set_defaults(struct hd_sched *s, const struct hd_gen_params_defaults *d)
{
    s->defaults = *d;
}

uint64_t hd_sched_client_new(struct hd_sched *s)
{
    s->n_clients++;
    return ++s->next_client;
}

void hd_sched_drop_client(struct hd_sched *s, uint64_t client)
{
    for (struct req *r = s->live; r; r = r->live_next) {
        if (r->client == client) {
            r->fn = NULL;
            r->user = NULL;
        }
    }
    hd_sched_cancel(s, client, 0);
    if (s->n_clients > 0)
        s->n_clients--;
}

/* Tokenizes the prompt of a request (raw or rendered chat). */
static int tokenize(const struct hd_sched *s, const char *text, bool parse_special, int32_t **out,
                    int32_t *n_out, struct hr_err *err)
{
    size_t len = strlen(text);
    /* A token covers at most max_piece bytes of text, so a text this long
     * has more tokens than the context holds: refuse it without spending
     * seconds of the loop thread on tokenizing megabytes. */
    int32_t limit = s->max_prompt > 0 && s->max_prompt < s->n_ctx ? s->max_prompt : s->n_ctx;
    if (len / s->max_piece > (size_t)limit)
        return sched_seterr(err, -E2BIG,
                      "the prompt (%zu bytes) has more tokens than the context holds (%d): "
                      "shorten it or raise `context` in the config",
                      len, s->n_ctx);
    size_t cap = len + 8;
    int32_t *toks = malloc(cap * sizeof *toks);
    if (!toks)
        return -ENOMEM;
    int64_t n = hr_tokenize(s->vocab, text, len, true, parse_special, toks, cap);
    if (n > (int64_t)cap) {
        int32_t *t2 = realloc(toks, (size_t)n * sizeof *toks);
        if (!t2) {
            free(toks);
            return -ENOMEM;
        }
        toks = t2;
        n = hr_tokenize(s->vocab, text, len, true, parse_special, toks, (size_t)n);
    }
    if (n < 0) {
        free(toks);
        return sched_seterr(err, (int)n, "cannot tokenize the prompt");
    }
    if (n == 0) {
        free(toks);
        return sched_seterr(err, -EINVAL, "the prompt is empty");
    }
    *out = toks;
    *n_out = (int32_t)n;
    return 0;
}

int hd_sched_render_chat(const struct hd_sched *s, const char *messages_json,
                         const char *tools_json, const char *extra_json, char **out,
                         struct hr_err *err)
{
    char bos[64] = "", eos[64] = "";
    int32_t b = hr_vocab_bos(s->vocab), e = hr_vocab_eos(s->vocab);
    int64_t n;
    if (b >= 0 && (n = hr_token_to_piece(s->vocab, b, true, bos, sizeof bos - 1)) >= 0 &&
        n < (int64_t)sizeof bos)
        bos[n] = 0;
    else
        bos[0] = 0;
    if (e >= 0 && (n = hr_token_to_piece(s->vocab, e, true, eos, sizeof eos - 1)) >= 0 &&
        n < (int64_t)sizeof eos)
        eos[n] = 0;
    else
        eos[0] = 0;
    struct hr_chat_opts o = {.add_generation_prompt = true, .bos_token = bos, .eos_token = eos,
                             .now = 0, .extra_json = extra_json};
    return hr_chat_render(hr_model_chat_template(s->model), messages_json, tools_json, &o, out,
                          err);
}

int hd_sched_submit(struct hd_sched *s, const struct hd_request *rq, hd_event_fn fn, void *user,
                    uint64_t *id, struct hr_err *err)
{
    hr_err_clear(err);
    if (!rq->prompt == !rq->messages_json)
        return sched_seterr(err, -EINVAL, "a request needs exactly one of a prompt or messages");
    if (rq->gen.max_tokens <= 0)
        return sched_seterr(err, -EINVAL, "max_tokens must be positive (got %d)", rq->gen.max_tokens);
    if (rq->gen.n_stop < 0 || rq->gen.n_stop > HD_MAX_STOP)
        return sched_seterr(err, -EINVAL, "at most %d stop strings", HD_MAX_STOP);

    /* limits first: they are cheap, rendering and tokenizing are not */
    int per_client = 0, live = 0;
    for (struct req *q = s->live; q; q = q->live_next) {
        live++;
        per_client += q->client == rq->client;
    }
    if (per_client >= s->max_per_client)
        return sched_seterr(err, -EBUSY, "busy: this client already has %d requests (limit %d)",
                      per_client, s->max_per_client);
    pthread_mutex_lock(&s->mu);
    int32_t queued = s->n_pending;
    bool sess_busy = false;
    if (rq->session && rq->session[0]) {
        struct session *ss = find_session(s, rq->session);
        sess_busy = ss && ss->busy;
        for (struct req *q = s->pending; q && !sess_busy; q = q->next)
            sess_busy = q->session_name && strcmp(q->session_name, rq->session) == 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (queued >= s->max_queue)
        return sched_seterr(err, -EBUSY, "busy: %d requests are waiting (limit %d); try again later",
                      queued, s->max_queue);
    if (sess_busy)
        return sched_seterr(err, -EALREADY,
                      "session \"%s\" has a request running; wait for it or cancel it",
                      rq->session);
    (void)live;

    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = -ENOMEM;
    char *text = NULL;
    if (!(r->final = calloc(1, sizeof *r->final)))
        goto fail;
    if (rq->session && rq->session[0] && !(r->session_name = strdup(rq->session)))
        goto fail;
    r->gen = rq->gen;
    for (int i = 0; i < rq->gen.n_stop; i++) {
        if (!rq->gen.stop[i] || !(r->stops[i] = strdup(rq->gen.stop[i])))
            goto fail;
        r->gen.stop[i] = NULL;
    }
    if (rq->gen.grammar || rq->gen.json_schema) {
        char *gbnf = NULL;
        if (rq->gen.grammar && rq->gen.json_schema) {
            rc = sched_seterr(err, -EINVAL, "give a grammar or a JSON Schema, not both");
            goto fail;
        }
        if (rq->gen.json_schema) {
            rc = hr_grammar_from_json_schema(rq->gen.json_schema, &gbnf, err);
            if (rc < 0) {
                prefix_err(err, "json_schema: ");
                goto fail;
            }
        }
        rc = hr_grammar_new(s->vocab, gbnf ? gbnf : rq->gen.grammar, NULL, &r->grammar, err);
        free(gbnf);
        if (rc < 0) {
            prefix_err(err, "grammar: ");
            goto fail;
        }
    }
    r->gen.grammar = r->gen.json_schema = NULL; /* not kept: compiled above */
    if ((rc = sched_resolve_loras(s, r, &rq->gen, err)) < 0)
        goto fail;
    memset(r->gen.lora, 0, sizeof r->gen.lora); /* not kept: resolved above */
    r->gen.n_lora = 0;
    r->gen.lora_profile = NULL;
    /* With tools, the answer may open a call with a control token
     * (<|python_tag|>, [TOOL_CALLS]): the tool-call parser must see it.
     * End-of-generation tokens still end the answer without being printed. */
    r->print_special = rq->tools_json != NULL;
    if (rq->messages_json) {
        rc = hd_sched_render_chat(s, rq->messages_json, rq->tools_json,
                                  rq->template_extra_json, &text, err);
        if (rc < 0)
            goto fail;
        rc = tokenize(s, text, true, &r->prompt, &r->n_prompt, err);
    } else {
        rc = tokenize(s, rq->prompt, rq->parse_special, &r->prompt, &r->n_prompt, err);
    }
    if (rc < 0)
        goto fail;
    if (r->n_prompt >= s->n_ctx) {
        rc = -E2BIG;
        sched_seterr(err, 0,
               "the prompt has %d tokens but the context holds %d (with room for at "
               "least one generated token): shorten it or raise `context` in the config",
               r->n_prompt, s->n_ctx);
        goto fail;
    }
    if (s->max_prompt > 0 && r->n_prompt > s->max_prompt) {
        rc = -E2BIG;
        sched_seterr(err, 0, "the prompt has %d tokens; the limit is %d (limits.max_prompt_tokens)",
               r->n_prompt, s->max_prompt);
        goto fail;
    }
    free(text);
    text = NULL;
    r->id = ++s->next_id;
    r->client = rq->client;
    r->fn = fn;
    r->user = user;
    r->t_submit = now_ms();
    r->state = RS_QUEUED;
    atomic_init(&r->cancel, false);
    r->live_next = s->live;
    s->live = r;
    pthread_mutex_lock(&s->mu);
    struct req **tail = &s->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    s->n_pending++;
    s->requests_total++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *id = r->id;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0])
        sched_seterr(err, 0, "out of memory");
    free(text);
    req_free(r);
    return rc;
}

int hd_sched_cancel(struct hd_sched *s, uint64_t client, uint64_t id)
{
    int found = 0;
    for (struct req *r = s->live; r; r = r->live_next) {
        if ((id && r->id != id) || (client && r->client != client))
            continue;
        found++;
        atomic_store(&r->cancel, true);
        /* a queued request ends right away */
        pthread_mutex_lock(&s->mu);
        bool queued = false;
        for (struct req **p = &s->pending; *p; p = &(*p)->next) {
            if (*p == r) {
                *p = r->next;
                s->n_pending--;
                queued = true;
                break;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (queued)
            finish(s, r, "cancelled", 0, NULL);
    }
    return found || !id ? 0 : -ENOENT;
}

void hd_sched_cancel_all(struct hd_sched *s)
{
    hd_sched_cancel(s, 0, 0);
}

int hd_sched_session_close(struct hd_sched *s, const char *name)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&s->mu);
    for (struct session **p = &s->sessions; *p; p = &(*p)->next) {
        struct session *ss = *p;
        if (!ss->name || strcmp(ss->name, name) != 0)
            continue;
        if (ss->busy) {
            rc = -EALREADY;
            break;
        }
        *p = ss->next;
        s->n_sessions--;
        session_free(ss);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void hd_sched_status(const struct hd_sched *s, struct hd_status *st)
{
    struct hd_sched *m = (struct hd_sched *)s; /* the mutex is not part of the logical state */
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&m->mu);
    st->running = s->n_active;
    st->queued = s->n_pending;
    for (struct session *ss = s->sessions; ss; ss = ss->next)
        st->sessions += ss->name != NULL;
    st->requests_total = s->requests_total;
    st->tokens_generated = s->tokens_generated;
    st->tokens_evaluated = s->tokens_evaluated;
    pthread_mutex_unlock(&m->mu);
    st->clients = s->n_clients;
    st->uptime_ms = (int64_t)(now_ms() - s->t_start);
    st->n_ctx = s->n_ctx;
    st->parallel = s->parallel;
}
