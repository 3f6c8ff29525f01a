/*
 * scheduler.h — the session and request API of hearthd: the one internal API
 * that every frontend (Unix socket JSON-RPC, D-Bus, HTTP, Lua) uses.
 *
 * A scheduler owns the model's evaluation context and runs an engine thread.
 * Frontends submit requests (a raw prompt, or chat messages rendered with the
 * model's chat template) and receive their results as events. Requests that
 * generate at the same time share each forward pass (continuous batching):
 * every step evaluates one token of each generating request plus chunks of
 * the prompts being read, so requests of different sessions advance fairly.
 *
 * Threads: every function here is called on the loop thread (the thread
 * running hd_loop_run for the loop given to hd_sched_new), and every event
 * callback runs on that thread too. Nothing here blocks on the engine.
 *
 * Sessions: a request naming a session continues that session's sequence:
 * the longest common prefix of the new prompt and the session's cached tokens
 * is kept and only the rest is evaluated (reported as cached/evaluated token
 * counts). Requests without a session use a temporary sequence.
 */
#ifndef HEARTH_DAEMON_SCHED_H
#define HEARTH_DAEMON_SCHED_H

#include <hearth/hearth.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_loop;
struct hd_sched;
struct hd_lora_config;

struct hd_sched_params {
    const char *model_path; /* shown in model info and status (copied) */
    int32_t n_threads;      /* compute threads (0: online CPUs) */
    int32_t n_ctx;          /* tokens per sequence (0: min(n_ctx_train, 4096)) */
    int32_t n_batch;        /* most tokens per forward pass (0: 512) */
    uint32_t kv_type;       /* HR_TYPE_F32 or HR_TYPE_F16 */
    int32_t parallel;       /* most requests running at once (0: 4) */
    int32_t max_sessions;   /* sessions kept with their cache (0: 16); LRU idle ones are dropped */
    int32_t max_queue;      /* requests waiting to run before -EBUSY (0: 64) */
    int32_t max_per_client; /* queued + running requests per client (0: 8) */
    int32_t max_prompt_tokens; /* longest prompt accepted (0: the context size) */
    struct hd_gen_params_defaults {
        float temperature, top_p, min_p, repeat_penalty;
        int32_t top_k, max_tokens;
        bool set; /* false: llama.cpp's defaults and 512 tokens; true: these values as they
                     are (temperature 0 is greedy, top_k 0 and min_p 0 are off) */
    } defaults;             /* used by hd_gen_params_init */
};

/* Creates the scheduler and starts its engine thread. `model` must outlive
 * it. Events are delivered through `loop`. */
int hd_sched_new(struct hr_model *model, const struct hd_sched_params *p, struct hd_loop *loop,
                 struct hd_sched **out, struct hr_err *err);
/* Cancels everything, joins the engine thread (which stops within one
 * layer of a forward pass), frees. Pending callbacks are not called. Accepts NULL. */
void hd_sched_free(struct hd_sched *s);

/* Borrowed, valid while the scheduler lives. */
struct hr_model *hd_sched_model(const struct hd_sched *s);
int32_t hd_sched_n_ctx(const struct hd_sched *s);
const char *hd_sched_model_path(const struct hd_sched *s);

/* True when no request is queued or running (for a graceful shutdown). */
bool hd_sched_idle(const struct hd_sched *s);
/* Cancels every request (each ends with DONE "cancelled"). */
void hd_sched_cancel_all(struct hd_sched *s);

/* ---- requests ---------------------------------------------------------------- */

#define HD_MAX_STOP 8
#define HD_MAX_LORA 8

/* One LoRA adapter of a request: a name of the scheduler's registry
 * (hd_sched_lora_load, or NAME.gguf in lora.dir, loaded on first use) and
 * its scale (negative allowed; 0: off). */
struct hd_lora_req {
    const char *name;
    float scale;
};

/* Generation parameters of one request. */
struct hd_gen_params {
    struct hr_sampler_params sampling; /* temp <= 0: greedy */
    int32_t max_tokens;                /* most tokens generated (> 0) */
    const char *stop[HD_MAX_STOP];     /* stop strings (copied at submit); not part of the text */
    int n_stop;
    bool ignore_eos;                   /* keep going past end-of-generation tokens */
    /* Constrained output (at most one; copied/compiled at submit): */
    const char *grammar;               /* GBNF text, root rule "root" */
    const char *json_schema;           /* JSON Schema text; the answer is a document of it */
    /* LoRA adapters applied to this request's tokens, in order, or the name
     * of a profile of the config (lora.profiles); not both; names resolved
     * at submit. None: the base model alone. A session whose previous
     * request had another set starts over (its cache was computed with
     * that set). */
    struct hd_lora_req lora[HD_MAX_LORA];
    int n_lora;
    const char *lora_profile;
};

/* Fills *g with the scheduler's defaults (seed: random unless set after). */
void hd_gen_params_init(const struct hd_sched *s, struct hd_gen_params *g);
/* Replaces the defaults (config reload). */
void hd_sched_set_defaults(struct hd_sched *s, const struct hd_gen_params_defaults *d);

struct hd_request {
    uint64_t client;           /* from hd_sched_client_new: limits and hd_sched_drop_client */
    const char *session;       /* NULL or "": no session (a temporary sequence) */
    /* Exactly one of prompt / messages_json: */
    const char *prompt;        /* raw text; BOS added as the vocabulary asks; control tokens
                                  written in the text are not parsed (parse_special false) */
    bool parse_special;        /* raw prompt: match control tokens written in the text */
    const char *messages_json; /* chat: JSON array of OpenAI-style messages, rendered with the
                                  model's chat template (control tokens parsed) */
    const char *tools_json;    /* chat: JSON array of OpenAI tool definitions, or NULL; with
                                  tools the answer's text also shows control tokens (a
                                  tool call may begin with one), except end-of-generation */
    const char *template_extra_json; /* chat: extra template variables (JSON object) or NULL */
    struct hd_gen_params gen;
};

enum hd_event_type {
    HD_EV_TEXT,  /* a piece of the answer (valid UTF-8, never part of a stop string) */
    HD_EV_DONE,  /* the request finished; the last event */
    HD_EV_ERROR, /* the request failed after it was accepted; the last event */
};

struct hd_usage {
    int32_t prompt_tokens;     /* tokens of the (rendered) prompt */
    int32_t cached_tokens;     /* of those, reused from the session's cache */
    int32_t evaluated_tokens;  /* of those, evaluated by this request */
    int32_t completion_tokens; /* generated */
    double queued_ms, prompt_ms, generation_ms;
};

struct hd_event {
    enum hd_event_type type;
    uint64_t id;               /* the request */
    /* TEXT: the piece; DONE: the whole answer. Borrowed for the callback. */
    const char *text;
    size_t len;
    /* DONE */
    const char *finish_reason; /* "stop" (end-of-generation token, stop string, or the
                                  grammar is complete), "length"
                                  (max_tokens), "context" (the sequence is full), "cancelled" */
    struct hd_usage usage;
    /* ERROR */
    int code;                  /* negative errno */
    const char *message;       /* one line */
};

/* Called on the loop thread. After DONE or ERROR the request is gone. */
typedef void (*hd_event_fn)(void *user, const struct hd_event *ev);

/* A new client id (one per connection / bus peer / HTTP request). */
uint64_t hd_sched_client_new(struct hd_sched *s);
/* The client went away: cancels its requests and never calls their
 * callbacks again (their `user` pointers may be freed right after). */
void hd_sched_drop_client(struct hd_sched *s, uint64_t client);

/* Queues a request. On success *id is its id (> 0) and fn will be called
 * with its events, ending with DONE or ERROR. Errors (nothing queued, fn never
 * called), each with err->msg:
 *   -EBUSY   the queue is full, or the client has too many requests
 *   -EALREADY the session has a request running
 *   -E2BIG   the prompt does not fit the context (err says the numbers)
 *   -EINVAL  bad request (both/neither prompt and messages, bad JSON, bad
 *            parameters, unknown template construct, template error, a
 *            grammar or JSON Schema that does not compile: err says where)
 *   -ENOENT  an unknown LoRA adapter or profile, or an adapter of lora.dir
 *            that does not load (err says which and why)
 *   -ENOMEM */
int hd_sched_submit(struct hd_sched *s, const struct hd_request *req, hd_event_fn fn, void *user,
                    uint64_t *id, struct hr_err *err);

/* Cancels a request (queued or running): it ends with DONE, finish_reason
 * "cancelled", within one token (also during prompt processing). Returns 0,
 * or -ENOENT if there is no such request of that client (client 0: any). */
int hd_sched_cancel(struct hd_sched *s, uint64_t client, uint64_t id);

/* ---- sessions ---------------------------------------------------------------- */

/* Forgets a session and its cache. -ENOENT: none; -EALREADY: a request runs. */
int hd_sched_session_close(struct hd_sched *s, const char *name);

/* ---- LoRA adapters ------------------------------------------------------------- */

/* The registry of loaded adapters, by name. Loading and unloading happen on
 * the loop thread while requests run: an adapter is reference counted
 * (hr_lora_retain), each request holds the adapters of its set from submit
 * to its end and each session's sequence those it was last evaluated with,
 * so unloading only drops the registry's reference — nothing in flight
 * notices. */
struct hd_lora_entry {
    const char *name;
    const char *path;
    struct hr_lora_info info;
};

/* Loads the adapter at `path` (a bare file name is looked up in lora.dir
 * first, with or without ".gguf") under `name` (NULL or "": the file name
 * without directory and ".gguf"; 1 to 64 letters, digits or _ . : -, not
 * starting with . : -, as names in the config). On success *out (may be
 * NULL) is the new entry, borrowed until the next load or unload. Errors:
 * -EEXIST (the name is taken: unload it first), -EINVAL (a bad name; an
 * adapter that does not fit the model, err saying what differs),
 * -ENOENT/-EACCES (the file), -ENOTSUP, -ENOMEM. */
int hd_sched_lora_load(struct hd_sched *s, const char *path, const char *name,
                       const struct hd_lora_entry **out, struct hr_err *err);
/* Removes `name` from the registry (requests and sessions using it keep it
 * until they are done with it). -ENOENT: no such adapter. */
int hd_sched_lora_unload(struct hd_sched *s, const char *name);
/* The loaded adapters in load order: *out borrowed until the next load or
 * unload; returns their number. */
size_t hd_sched_lora_list(const struct hd_sched *s, const struct hd_lora_entry **out);
/* lora.dir and lora.profiles of the config (at start and on reload; copied).
 * -E2BIG: a profile has more than HD_MAX_LORA adapters; -ENOMEM. */
int hd_sched_set_lora_config(struct hd_sched *s, const struct hd_lora_config *cfg);

/* A profile of lora.profiles: adapter names (resolved per request) and scales. */
struct hd_lora_profile_entry {
    char *name;
    struct hd_lora_req uses[HD_MAX_LORA];
    int n_uses;
};
/* The profiles in config order: *out borrowed until the next
 * hd_sched_set_lora_config; returns their number. */
size_t hd_sched_lora_profiles(const struct hd_sched *s, const struct hd_lora_profile_entry **out);

/* ---- status ------------------------------------------------------------------ */

struct hd_status {
    int32_t running, queued, sessions, clients;
    int64_t requests_total, tokens_generated, tokens_evaluated;
    int64_t uptime_ms;
    int32_t n_ctx, parallel;
};
void hd_sched_status(const struct hd_sched *s, struct hd_status *st);

/* Renders chat messages to the prompt text the model will read (what a chat
 * request evaluates). Owned result: free(). Errors as hd_sched_submit's -EINVAL. */
int hd_sched_render_chat(const struct hd_sched *s, const char *messages_json,
                         const char *tools_json, const char *extra_json, char **out,
                         struct hr_err *err);

#endif
