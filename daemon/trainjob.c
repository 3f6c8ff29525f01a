/*
 * trainjob.c — a LoRA training job on a thread of its own (trainjob.h).
 *
 * The thread runs what `hearth train` runs (cli/cmd_train.c): the data are
 * read, split (validation) and packed, the steps take the rows of each
 * epoch in an order shuffled by the seed, the validation loss is measured
 * before and after, the adapter is written. It publishes a snapshot of its
 * progress under a mutex and signals an eventfd that the loop watches; the
 * loop callback hands the snapshot to the owner. Progress is published at
 * most every 200 ms (steps of a tiny model take milliseconds), phase
 * changes and the end always.
 *
 * Ownership: the owner frees the job. Before the end that stops it: the
 * thread is asked to stop and joined — it notices within a layer of a pass,
 * but reading the data and making the trainer (the transposed copies) are
 * not interruptible, so freeing a job in its first seconds may hold the
 * loop that long. Joining, rather than leaving the thread to finish on its
 * own, keeps the model alive for it: hearthd frees the model right after
 * its frontends at shutdown.
 */
#include "trainjob.h"

#include "loop.h"
#include "scheduler.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int n_jobs; /* jobs started and not freed (loop thread only) */

struct hd_trainjob {
    struct hd_loop *loop;
    struct hr_model *model;
    struct hd_trainjob_params p;
    char *data, *output;
    hd_trainjob_fn fn;
    void *user;
    int efd;
    pthread_t thread;
    atomic_bool cancel;

    pthread_mutex_t mu; /* guards ev and msg */
    struct hd_trainjob_event ev;
    char msg[512];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void publish(struct hd_trainjob *j, const struct hd_trainjob_event *ev, const char *msg)
{
    pthread_mutex_lock(&j->mu);
    j->ev = *ev;
    if (msg) snprintf(j->msg, sizeof j->msg, "%s", msg);
    pthread_mutex_unlock(&j->mu);
    uint64_t one = 1;
    ssize_t w = write(j->efd, &one, sizeof one);
    (void)w; /* the counter cannot overflow: the loop drains it */
}

static bool cancelled(void *user)
{
    struct hd_trainjob *j = user;
    return atomic_load(&j->cancel);
}

/* The rows of step s: epoch e's order is a shuffle of the rows by the seed
 * and e (as hearth train's). */
static int32_t step_rows(const struct hr_train_rows *rows, uint64_t seed, int64_t s,
                         int64_t per_epoch, int32_t per_step, int32_t *order, int64_t *order_epoch,
                         const int32_t **out)
{
    int64_t e = s / per_epoch, k = s % per_epoch;
    if (*order_epoch != e) {
        for (int32_t i = 0; i < rows->n_rows; i++)
            order[i] = i;
        uint64_t st = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(e + 1));
        for (int32_t i = rows->n_rows - 1; i > 0; i--) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            int32_t x = (int32_t)((st >> 33) % (uint64_t)(i + 1)), y = order[i];
            order[i] = order[x];
            order[x] = y;
        }
        *order_epoch = e;
    }
    int64_t i0 = k * per_step, n = rows->n_rows - i0 < per_step ? rows->n_rows - i0 : per_step;
    *out = order + i0;
    return (int32_t)n;
}

static double eval(struct hr_train *t, const struct hr_train_rows *val, int *rc, struct hr_err *err)
{
    double loss;
    int64_t n;
    if (!val->n_rows) return NAN;
    *rc = hr_train_eval(t, val, NULL, val->n_rows, &loss, &n, err);
    return *rc < 0 || !n ? NAN : loss / (double)n;
}

static void *run(void *arg)
{
    struct hd_trainjob *j = arg;
    struct hd_trainjob_event ev = {.phase = HD_TRAIN_LOADING,
                                   .loss = NAN,
                                   .eta_s = NAN,
                                   .tokens_per_s = 0,
                                   .val_before = NAN,
                                   .val_after = NAN};
    struct hr_err err;
    hr_err_clear(&err);
    struct hr_train_data *data = NULL;
    struct hr_train_rows *train = NULL, *val = NULL;
    struct hr_train *t = NULL;
    int32_t *order = NULL;
    int rc;
    publish(j, &ev, NULL);

    struct hr_train_params tp = j->p.train;
    if ((rc = hr_train_data_load(j->model, j->data, j->p.format, tp.n_ctx, &data, &err)) < 0)
        goto done;
    struct hr_train_data_info info;
    hr_train_data_get_info(data, &info);
    int32_t n_val =
        j->p.val < 1.0 ? (int32_t)lround(j->p.val * info.n_examples) : (int32_t)j->p.val;
    ev.n_examples = info.n_examples;
    ev.n_val = n_val;
    if ((rc = hr_train_data_pack(data, tp.n_ctx, n_val, tp.seed, &train, &val, &err)) < 0)
        goto done;
    hr_train_data_free(data);
    data = NULL;
    int32_t per_step = (int32_t)(j->p.batch_tokens / tp.n_ctx);
    per_step = per_step < 1 ? 1 : per_step > train->n_rows ? train->n_rows : per_step;
    int64_t per_epoch = (train->n_rows + per_step - 1) / per_step;
    tp.total_steps = per_epoch * j->p.epochs;
    tp.warmup_steps = llround(j->p.warmup * (double)tp.total_steps);
    ev.total_steps = tp.total_steps;
    if ((rc = hr_train_new(j->model, &tp, &t, &err)) < 0) goto done;
    hr_train_set_abort(t, cancelled, j);
    if (!(order = malloc((size_t)train->n_rows * sizeof *order))) {
        rc = -ENOMEM;
        goto done;
    }

    ev.phase = HD_TRAIN_VALIDATING;
    publish(j, &ev, NULL);
    ev.val_before = eval(t, val, &rc, &err);
    if (rc < 0) goto done;

    ev.phase = HD_TRAIN_TRAINING;
    publish(j, &ev, NULL);
    int64_t order_epoch = -1;
    double t0 = now_s(), last = 0;
    for (int64_t s = 0; s < tp.total_steps; s++) {
        const int32_t *idx;
        int32_t n = step_rows(train, tp.seed, s, per_epoch, per_step, order, &order_epoch, &idx);
        struct hr_train_stats st;
        if ((rc = hr_train_step(t, train, idx, n, &st, &err)) < 0) goto done;
        double el = now_s() - t0;
        ev.step = st.step;
        ev.loss = st.loss;
        ev.tokens += st.n_tokens;
        ev.tokens_per_s = el > 0 ? (double)ev.tokens / el : 0;
        ev.eta_s = el / (double)(s + 1) * (double)(tp.total_steps - s - 1);
        if (el - last >= 0.2 || s + 1 == tp.total_steps) {
            publish(j, &ev, NULL);
            last = el;
        }
    }

    ev.phase = HD_TRAIN_FINISHING;
    publish(j, &ev, NULL);
    ev.val_after = eval(t, val, &rc, &err);
    if (rc < 0) goto done;
    rc = hr_train_save_adapter(t, j->output, &err);
done:
    if (rc == -ECANCELED)
        snprintf(err.msg, sizeof err.msg, "training cancelled after step %lld", (long long)ev.step);
    else if (rc < 0 && !err.msg[0])
        snprintf(err.msg, sizeof err.msg, "%s", strerror(-rc));
    ev.phase = HD_TRAIN_DONE;
    ev.rc = rc;
    free(order);
    hr_train_free(t);
    hr_train_rows_free(train);
    hr_train_rows_free(val);
    hr_train_data_free(data);
    publish(j, &ev, rc < 0 ? err.msg : NULL);
    return NULL;
}

/* On the loop thread: hand the latest snapshot to the owner (the owner may
 * free the job inside fn: nothing touches j after it). */
static void on_event(void *user, int fd, uint32_t events)
{
    struct hd_trainjob *j = user;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&j->mu);
    struct hd_trainjob_event ev = j->ev;
    char msg[sizeof j->msg];
    memcpy(msg, j->msg, sizeof msg);
    pthread_mutex_unlock(&j->mu);
    ev.msg = ev.rc < 0 ? msg : NULL;
    j->fn(j->user, &ev);
}

int hd_trainjob_start(struct hd_loop *loop, struct hr_model *model,
                      const struct hd_trainjob_params *p, hd_trainjob_fn fn, void *user,
                      struct hd_trainjob **out, struct hr_err *err)
{
    hr_err_clear(err);
    if (!p->data || !p->output || p->epochs < 1 || p->batch_tokens < 1 || !(p->val >= 0) ||
        !(p->warmup >= 0 && p->warmup <= 1))
        return -EINVAL;
    if (n_jobs > 0) {
        if (err) snprintf(err->msg, sizeof err->msg, "a training job is already running");
        return -EBUSY;
    }
    struct hd_trainjob *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->loop = loop;
    j->model = model;
    j->p = *p;
    j->fn = fn;
    j->user = user;
    j->efd = -1;
    int rc = -ENOMEM;
    if (!(j->data = strdup(p->data)) || !(j->output = strdup(p->output))) goto fail;
    j->p.data = j->data;
    j->p.output = j->output;
    pthread_mutex_init(&j->mu, NULL);
    if ((j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = -errno;
        goto fail_mu;
    }
    if ((rc = hd_loop_add_fd(loop, j->efd, EPOLLIN, on_event, j)) < 0) goto fail_fd;
    if ((rc = -pthread_create(&j->thread, NULL, run, j)) < 0) {
        hd_loop_del_fd(loop, j->efd);
        goto fail_fd;
    }
    n_jobs++;
    *out = j;
    return 0;
fail_fd:
    close(j->efd);
fail_mu:
    pthread_mutex_destroy(&j->mu);
fail:
    if (err)
        snprintf(err->msg, sizeof err->msg, "cannot start the training job: %s", strerror(-rc));
    free(j->data);
    free(j->output);
    free(j);
    return rc;
}

void hd_trainjob_cancel(struct hd_trainjob *j)
{
    atomic_store(&j->cancel, true);
}

void hd_trainjob_free(struct hd_trainjob *j)
{
    if (!j) return;
    atomic_store(&j->cancel, true);
    pthread_join(j->thread, NULL);
    hd_loop_del_fd(j->loop, j->efd); /* a pending wake-up of this batch is dropped */
    close(j->efd);
    pthread_mutex_destroy(&j->mu);
    free(j->data);
    free(j->output);
    free(j);
    n_jobs--;
}

/* ---- requests ------------------------------------------------------------------------- */

static int bad(char *msg, size_t cap, const char *what, const char *key)
{
    snprintf(msg, cap, what, key);
    return -EINVAL;
}

static int get_path(json_t *params, const char *key, char *out, size_t outcap, char *msg,
                    size_t cap)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v) || json_string_value(v)[0] != '/')
        return bad(msg, cap, "'%s' must be an absolute file name", key);
    if (json_string_length(v) >= outcap) return bad(msg, cap, "'%s' is too long", key);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* An optional number in [lo, hi] (integer: a whole one). */
static int get_num(json_t *params, const char *key, double lo, double hi, bool integer, double *out,
                   char *msg, size_t cap)
{
    json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v)) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi) || (integer && x != floor(x))) {
        snprintf(msg, cap, "'%s' must be %s in [%g, %g]", key, integer ? "an integer" : "a number",
                 lo, hi);
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int get_targets(json_t *params, uint32_t *out, char *msg, size_t cap)
{
    static const char *const kinds[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    json_t *v = json_object_get(params, "targets");
    if (!v || json_is_null(v)) return 0;
    uint32_t mask = 0;
    size_t i;
    json_t *e;
    if (!json_is_array(v) || !json_array_size(v)) goto fail;
    json_array_foreach(v, i, e)
    {
        int k = 0;
        while (k < 7 && !(json_is_string(e) && !strcmp(json_string_value(e), kinds[k])))
            k++;
        if (k == 7) goto fail;
        mask |= 1u << k;
    }
    *out = mask;
    return 0;
fail:
    return bad(msg, cap,
               "'%s' must be a non-empty array of \"q\", \"k\", \"v\", \"o\", "
               "\"gate\", \"up\", \"down\"",
               "targets");
}

int hd_trainjob_parse(json_t *params, struct hd_trainjob_request *rq, char *msg, size_t cap)
{
    memset(rq, 0, sizeof *rq);
    int rc;
    if ((rc = get_path(params, "data", rq->data, sizeof rq->data, msg, cap)) < 0 ||
        (rc = get_path(params, "output", rq->output, sizeof rq->output, msg, cap)) < 0)
        return rc;
    json_t *name = json_object_get(params, "name"), *load = json_object_get(params, "load");
    json_t *format = json_object_get(params, "format");
    if (name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 64))
        return bad(msg, cap, "'%s' must be a string of at most 64 bytes", "name");
    if (load && !json_is_boolean(load)) return bad(msg, cap, "'%s' must be a boolean", "load");
    if (json_is_string(name)) snprintf(rq->name, sizeof rq->name, "%s", json_string_value(name));
    rq->load = !load || json_is_true(load);
    struct hd_trainjob_params *p = &rq->p;
    *p = (struct hd_trainjob_params){.data = rq->data,
                                     .output = rq->output,
                                     .val = 0.05,
                                     .epochs = 2,
                                     .batch_tokens = 2048,
                                     .warmup = 0.05};
    hr_train_defaults(&p->train);
    if (format && !json_is_null(format)) {
        const char *f = json_is_string(format) ? json_string_value(format) : "";
        p->format = !strcmp(f, "auto")    ? HR_TRAIN_AUTO
                    : !strcmp(f, "text")  ? HR_TRAIN_TEXT
                    : !strcmp(f, "jsonl") ? HR_TRAIN_JSONL
                                          : -1;
        if (p->format < 0)
            return bad(msg, cap, "'%s' must be \"auto\", \"text\" or \"jsonl\"", "format");
    }
    double rank = p->train.rank, alpha = p->train.alpha, epochs = p->epochs, lr = p->train.lr;
    double ctx = p->train.n_ctx, batch = (double)p->batch_tokens, seed = 0, threads = 0;
    if ((rc = get_num(params, "rank", 1, 4096, true, &rank, msg, cap)) < 0 ||
        (rc = get_num(params, "alpha", 1e-6, 1e6, false, &alpha, msg, cap)) < 0 ||
        (rc = get_num(params, "epochs", 1, 1e6, true, &epochs, msg, cap)) < 0 ||
        (rc = get_num(params, "lr", 1e-12, 10, false, &lr, msg, cap)) < 0 ||
        (rc = get_num(params, "ctx", 2, 1 << 20, true, &ctx, msg, cap)) < 0 ||
        (rc = get_num(params, "batch_tokens", 1, 1e12, true, &batch, msg, cap)) < 0 ||
        (rc = get_num(params, "val", 0, 1e9, false, &p->val, msg, cap)) < 0 ||
        (rc = get_num(params, "seed", 0, 9007199254740991.0, true, &seed, msg, cap)) < 0 ||
        (rc = get_num(params, "warmup", 0, 1, false, &p->warmup, msg, cap)) < 0 ||
        (rc = get_num(params, "threads", 0, 1024, true, &threads, msg, cap)) < 0 ||
        (rc = get_targets(params, &p->train.targets, msg, cap)) < 0)
        return rc;
    p->train.rank = (int32_t)rank;
    p->train.alpha = (float)alpha;
    p->train.lr = (float)lr;
    p->train.n_ctx = (int32_t)ctx;
    p->train.seed = (uint64_t)seed;
    p->train.n_threads = (int32_t)threads;
    p->epochs = (int32_t)epochs;
    p->batch_tokens = (int64_t)batch;
    return 0;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *hd_trainjob_progress_json(const struct hd_trainjob_event *ev)
{
    static const char *const phases[] = {"loading", "validating", "training", "finishing", "done"};
    return json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:i, s:i}", "phase",
                     phases[ev->phase], "step", (json_int_t)ev->step, "total_steps",
                     (json_int_t)ev->total_steps, "tokens", (json_int_t)ev->tokens, "loss",
                     num(ev->loss), "tokens_per_s", num(ev->tokens_per_s), "eta_s", num(ev->eta_s),
                     "val_loss_before", num(ev->val_before), "examples", ev->n_examples,
                     "val_examples", ev->n_val);
}

json_t *hd_trainjob_result(struct hd_sched *s, const struct hd_trainjob_request *rq,
                           const struct hd_trainjob_event *ev)
{
    json_t *res =
        json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:b}", "adapter", rq->output, "steps",
                  (json_int_t)ev->step, "tokens", (json_int_t)ev->tokens, "tokens_per_s",
                  num(ev->tokens_per_s), "val_loss_before", num(ev->val_before), "val_loss_after",
                  num(ev->val_after), "val_perplexity_before", num(exp(ev->val_before)),
                  "val_perplexity_after", num(exp(ev->val_after)), "loaded", false);
    if (!res || !rq->load) return res;
    const struct hd_lora_entry *e;
    struct hr_err err;
    hr_err_clear(&err);
    if (hd_sched_lora_load(s, rq->output, rq->name[0] ? rq->name : NULL, &e, &err) == 0) {
        json_object_set_new(res, "loaded", json_true());
        json_object_set_new(res, "name", json_string(e->name));
    } else {
        json_object_set_new(res, "load_error", json_string(err.msg));
    }
    return res;
}
