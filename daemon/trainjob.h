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
#include <stdbool.h>
#include <stdint.h>

struct hd_loop;
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
 * stop it (no more events).
 * Errors: -EINVAL (parameters), -ENOMEM, or the thread/eventfd errno. */
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

#endif
