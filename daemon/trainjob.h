/*
 * trainjob.h — LoRA training in hearthd's background (hearth.h "training";
 * the socket method `train`, docs/protocol.md): a job reads the data, trains
 * an adapter for the daemon's model on a thread of its own and reports
 * progress to the loop thread, where the frontend turns it into
 * notifications and, at the end, loads the new adapter into the registry.
 *
 * Threads: the job's thread owns its trainer (and the trainer's compute
 * threads); the model is shared with the scheduler (immutable). Events are
 * handed over through an eventfd on the loop: every callback runs on the
 * loop thread. A job competes with requests for the CPUs: it is meant for
 * an otherwise quiet machine (or few threads, hd_trainjob_params.n_threads).
 */
#ifndef HEARTH_DAEMON_TRAINJOB_H
#define HEARTH_DAEMON_TRAINJOB_H

#include <hearth/hearth.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct hd_loop;
struct hd_sched;
struct hd_trainjob;

struct hd_trainjob_params {
    const char *data;   /* file of training data (absolute path), copied */
    const char *output; /* where the adapter goes (absolute path), copied */
    int32_t format;     /* enum hr_train_format */
    double val;         /* < 1: share of the examples kept for validation; >= 1: a count */
    int32_t epochs;
    int64_t batch_tokens;
    struct hr_train_params train; /* total_steps and warmup_steps are set by the job */
    double warmup;                /* share of the steps */
};

/* What the job reports: progress while it runs (phase < HD_TRAIN_DONE), then
 * exactly one final event (HD_TRAIN_DONE: rc == 0, the adapter is written;
 * or rc < 0 with msg: failed, -ECANCELED when cancelled). */
enum hd_train_phase {
    HD_TRAIN_LOADING,    /* reading data, making the trainer */
    HD_TRAIN_VALIDATING, /* validation before */
    HD_TRAIN_TRAINING,   /* steps */
    HD_TRAIN_FINISHING,  /* validation after, writing the adapter */
    HD_TRAIN_DONE,
};

struct hd_trainjob_event {
    enum hd_train_phase phase;
    int64_t step, total_steps, tokens;
    double loss;                  /* of the last step (NaN before the first) */
    double tokens_per_s;          /* training tokens per second so far */
    double eta_s;                 /* seconds left (NaN until a step is done) */
    double val_before, val_after; /* mean validation loss (NaN: none yet, or no validation) */
    int32_t n_examples, n_val;
    int rc;          /* HD_TRAIN_DONE: 0 or a negative errno */
    const char *msg; /* HD_TRAIN_DONE with rc < 0: why (borrowed for the call) */
};

/* Called on the loop thread; `ev` borrowed for the call. */
typedef void (*hd_trainjob_fn)(void *user, const struct hd_trainjob_event *ev);

/* Starts a job on `model` (borrowed: it must outlive the job). *out is owned:
 * free with hd_trainjob_free — after the final event, or at any time to
 * stop it (no more events). One job runs at a time in a daemon (training
 * takes every CPU it gets): -EBUSY while another one exists. Other errors:
 * -EINVAL (parameters), -ENOMEM, or the thread/eventfd errno. */
int hd_trainjob_start(struct hd_loop *loop, struct hr_model *model,
                      const struct hd_trainjob_params *p, hd_trainjob_fn fn, void *user,
                      struct hd_trainjob **out, struct hr_err *err);

/* Asks the job to stop after the step in progress; the final event follows
 * with rc -ECANCELED. */
void hd_trainjob_cancel(struct hd_trainjob *j);

/* Stops the job if it runs (it notices within a layer of a pass; reading
 * the data and making the trainer cannot be interrupted, so this may wait
 * that long), joins its thread and frees it. Loop thread; may be called from
 * the job's own callback. Accepts NULL. */
void hd_trainjob_free(struct hd_trainjob *j);

/* ---- what the frontends share (the JSON of the socket's `train`) ------------------ */

/* A request: the job's parameters and what happens to the adapter. */
struct hd_trainjob_request {
    struct hd_trainjob_params p; /* p.data and p.output point at the arrays below */
    char data[PATH_MAX], output[PATH_MAX];
    char name[72]; /* registry name; "" = the file name without .gguf */
    bool load;     /* load the adapter into the registry when written */
};

/* Fills *rq from the params object of the socket's `train` (docs/protocol.md;
 * the D-Bus Train method takes the same object as JSON text): data and
 * output absolute paths, name, load, format, rank, alpha, targets, epochs,
 * lr, ctx, batch_tokens, val, seed, warmup, threads; unknown keys are the
 * caller's to refuse. -EINVAL with msg naming the key. */
int hd_trainjob_parse(json_t *params, struct hd_trainjob_request *rq, char *msg, size_t cap);

/* A progress event as JSON: {phase, step, total_steps, tokens, loss,
 * tokens_per_s, eta_s, val_loss_before, examples, val_examples} (numbers not
 * known yet are null). New reference; NULL without memory. */
json_t *hd_trainjob_progress_json(const struct hd_trainjob_event *ev);

/* After a final event with rc 0: loads the adapter into s's registry when
 * rq->load (loop thread), and returns the result {adapter, steps, tokens,
 * tokens_per_s, val_loss_before, val_loss_after, val_perplexity_before,
 * val_perplexity_after, loaded, name?, load_error?}. New reference; NULL
 * without memory. */
json_t *hd_trainjob_result(struct hd_sched *s, const struct hd_trainjob_request *rq,
                           const struct hd_trainjob_event *ev);

#endif
