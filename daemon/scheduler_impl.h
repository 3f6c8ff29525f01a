/*
 * scheduler_impl.h — the scheduler's internal state, shared by its files:
 * scheduler.c (queue, sessions, the engine thread, the public request API)
 * and scheduler_lora.c (the adapter registry and a request's adapter set).
 * Threading and ownership rules are in scheduler.c's header.
 */
#ifndef HEARTH_DAEMON_SCHEDULER_IMPL_H
#define HEARTH_DAEMON_SCHEDULER_IMPL_H

#include "scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

enum req_state { RS_QUEUED, RS_PREFILL, RS_GEN, RS_FINISHED };

struct session {
    char *name;           /* NULL: a temporary sequence of requests without a session */
    struct hr_seq *seq;   /* NULL until first used (created by the engine thread) */
    int32_t *tokens;      /* the cached tokens: [n_tokens] */
    int32_t n_tokens, cap;
    struct hr_lora_use *loras; /* the set seq was evaluated with (seq holds the references) */
    int32_t n_loras;
    bool busy;
    double last_used;
    struct session *next;
};

struct req {
    uint64_t id, client;
    hd_event_fn fn; /* loop thread; NULL once detached */
    void *user;
    struct req *live_next; /* s->live, loop thread */
    struct req *next;      /* s->pending or s->active, under mu */
    struct event *final;   /* allocated at submit, so a request can always end */
    atomic_bool cancel;

    /* set at submit */
    char *session_name;   /* NULL: none */
    int32_t *prompt;
    int32_t n_prompt;
    struct hd_gen_params gen;
    char *stops[HD_MAX_STOP];
    struct hr_grammar *grammar; /* compiled at submit; attached to smp by start() */
    struct hr_lora_use *loras;  /* resolved at submit, one reference each held */
    int32_t n_loras;
    bool print_special;         /* control tokens are part of the text (tool-call markers) */
    double t_submit;

    /* engine thread */
    enum req_state state;
    struct session *sess;
    struct hr_sampler *smp;
    int32_t pos_prompt;   /* prompt tokens now in the cache */
    int32_t next_token;   /* sampled, to be evaluated next (RS_GEN) */
    int32_t n_gen;
    int32_t cached;
    char *text;           /* raw generated text */
    size_t len, cap;
    size_t scanned;       /* text[0 .. scanned) has been emitted or dropped */
    char *out;            /* sanitized text emitted so far (the final answer) */
    size_t out_len, out_cap;
    double t_admit, t_first;
};

struct event {
    struct req *r;
    enum hd_event_type type;
    char *text;
    size_t len;
    const char *finish_reason;
    struct hd_usage usage;
    int code;
    char *message;
    struct event *next;
};

struct hd_sched {
    struct hr_model *model;
    const struct hr_vocab *vocab;
    struct hr_ctx *ctx;
    struct hd_loop *loop;
    char *model_path;
    int32_t n_ctx, n_batch, parallel, max_sessions, max_queue, max_per_client, max_prompt;
    size_t max_piece; /* longest text of one token, in bytes */
    struct hd_gen_params_defaults defaults;
    int efd;
    pthread_t thread;
    bool thread_started;
    double t_start;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    struct req *pending; /* FIFO */
    struct req *active;
    int32_t n_pending, n_active;
    struct session *sessions;
    int32_t n_sessions;
    struct event *events, **events_tail;
    int64_t requests_total, tokens_generated, tokens_evaluated;

    /* loop thread */
    struct req *live;
    uint64_t next_id, next_client;
    int32_t n_clients;
    /* LoRA registry: entries[i] (name and path owned) and its adapter */
    struct hd_lora_entry *lora_ents;
    struct hr_lora **lora_objs;
    size_t n_lora, lora_cap;
    char *lora_dir;
    struct hd_lora_profile_entry *profiles; /* names owned */
    size_t n_profiles;
};

/* Grows *p (an array of `elem`-byte items, *cap of them) to hold `need`. */
int sched_grow(void **p, size_t *cap, size_t need, size_t elem);
/* Formats err->msg (err may be NULL) and returns `code`. */
int sched_seterr(struct hr_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* scheduler_lora.c */
/* Resolves the request's `lora` parameter (adapters or a profile) into
 * r->loras, one reference held per entry. */
int sched_resolve_loras(struct hd_sched *s, struct req *r, const struct hd_gen_params *g,
                        struct hr_err *err);
void sched_free_profiles(struct hd_lora_profile_entry *p, size_t n);

#endif
