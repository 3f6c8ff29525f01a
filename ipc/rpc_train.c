/*
 * rpc_train.c — the socket method `train` (docs/protocol.md): trains a
 * LoRA adapter for the daemon's model in the background
 * (daemon/trainjob.h), streams `train.progress` notifications carrying the
 * request id, and when the adapter is written loads it into the adapter
 * registry (hd_sched_lora_load) so requests can use it at once; the final
 * response says what was trained and loaded. `cancel` with the request's id
 * stops the job (answered at once with -32010).
 *
 * One job at a time per daemon: training takes every CPU it gets, and two
 * jobs would only slow each other down.
 */
#include "rpc_impl.h"

#include "../daemon/trainjob.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A train call: the connection frees it as an rpc_call (the first member). */
struct train_call {
    struct rpc_call k;
    struct hd_trainjob *job;
    bool load;
    char name[72];
    char output[PATH_MAX];
};

static int n_jobs; /* running jobs (loop thread only) */

static void call_end(struct train_call *tc)
{
    struct rpc_conn *c = tc->k.c;
    for (struct rpc_call **p = &c->calls; *p; p = &(*p)->next)
        if (*p == &tc->k) {
            *p = tc->k.next;
            break;
        }
    json_decref(tc->k.id);
    free(tc);
    rpc_conn_maybe_done(c);
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static const char *phase_name(enum hd_train_phase p)
{
    static const char *const names[] = {"loading", "validating", "training", "finishing", "done"};
    return names[p];
}

static void job_event(void *user, const struct hd_trainjob_event *ev)
{
    struct train_call *tc = user;
    struct rpc_conn *c = tc->k.c;
    if (ev->phase != HD_TRAIN_DONE) {
        rpc_send(c, json_pack("{s:s, s:s, s:{s:O, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:i, "
                              "s:i}}",
                              "jsonrpc", "2.0", "method", "train.progress", "params", "id",
                              tc->k.id, "phase", phase_name(ev->phase), "step",
                              (json_int_t)ev->step, "total_steps", (json_int_t)ev->total_steps,
                              "tokens", (json_int_t)ev->tokens, "loss", num(ev->loss),
                              "tokens_per_s", num(ev->tokens_per_s), "eta_s", num(ev->eta_s),
                              "val_loss_before", num(ev->val_before), "examples", ev->n_examples,
                              "val_examples", ev->n_val));
        return;
    }
    n_jobs--;
    hd_trainjob_free(tc->job);
    tc->job = NULL;
    if (ev->rc < 0) {
        int code = ev->rc == -EINVAL || ev->rc == -ENOENT || ev->rc == -EACCES
                       ? IPC_ERR_INVALID_PARAMS
                       : IPC_ERR_ENGINE;
        rpc_error(c, tc->k.id, code, "%s", ev->msg ? ev->msg : "training failed");
        call_end(tc);
        return;
    }
    json_t *res =
        json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:b}", "adapter", tc->output, "steps",
                  (json_int_t)ev->step, "tokens", (json_int_t)ev->tokens, "tokens_per_s",
                  num(ev->tokens_per_s), "val_loss_before", num(ev->val_before), "val_loss_after",
                  num(ev->val_after), "val_perplexity_before", num(exp(ev->val_before)),
                  "val_perplexity_after", num(exp(ev->val_after)), "loaded", false);
    if (res && tc->load) {
        const struct hd_lora_entry *e;
        struct hr_err err;
        hr_err_clear(&err);
        if (hd_sched_lora_load(c->r->s, tc->output, tc->name[0] ? tc->name : NULL, &e, &err) == 0) {
            json_object_set_new(res, "loaded", json_true());
            json_object_set_new(res, "name", json_string(e->name));
        } else {
            json_object_set_new(res, "load_error", rpc_string(err.msg, strlen(err.msg)));
        }
    }
    if (res)
        rpc_reply(c, tc->k.id, res);
    else
        rpc_error(c, tc->k.id, IPC_ERR_INTERNAL, "out of memory");
    call_end(tc);
}

static void train_cancel(struct rpc_call *k)
{
    struct train_call *tc = (struct train_call *)k;
    hd_trainjob_free(tc->job); /* stops it; the loop reaps it */
    tc->job = NULL;
    n_jobs--;
    rpc_error(k->c, k->id, IPC_ERR_CANCELLED, "cancelled");
    call_end(tc);
}

static void train_drop(struct rpc_call *k)
{
    struct train_call *tc = (struct train_call *)k;
    hd_trainjob_free(tc->job);
    tc->job = NULL;
    n_jobs--;
}

/* ---- parameters --------------------------------------------------------------------------- */

static bool get_path(struct rpc_conn *c, json_t *id, json_t *params, const char *key,
                     const char **out)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v) || json_string_value(v)[0] != '/') {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' must be an absolute file name", key);
        return false;
    }
    if (json_string_length(v) >= PATH_MAX) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' is too long", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* An optional number in [lo, hi] (integer: a whole one). */
static bool get_num(struct rpc_conn *c, json_t *id, json_t *params, const char *key, double lo,
                    double hi, bool integer, double *out)
{
    json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v)) return true;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi) || (integer && x != floor(x))) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "'%s' must be %s in [%g, %g]", key,
                  integer ? "an integer" : "a number", lo, hi);
        return false;
    }
    *out = x;
    return true;
}

static bool get_targets(struct rpc_conn *c, json_t *id, json_t *params, uint32_t *out)
{
    static const char *const kinds[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    json_t *v = json_object_get(params, "targets");
    if (!v || json_is_null(v)) return true;
    uint32_t mask = 0;
    size_t i;
    json_t *e;
    if (!json_is_array(v) || !json_array_size(v)) goto bad;
    json_array_foreach(v, i, e)
    {
        int k = 0;
        while (k < 7 && !(json_is_string(e) && !strcmp(json_string_value(e), kinds[k])))
            k++;
        if (k == 7) goto bad;
        mask |= 1u << k;
    }
    *out = mask;
    return true;
bad:
    rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
              "'targets' must be a non-empty array of \"q\", \"k\", \"v\", \"o\", \"gate\", "
              "\"up\", \"down\"");
    return false;
}

void rpc_m_train(struct rpc_conn *c, json_t *id, json_t *params)
{
    const char *data, *output;
    if (!get_path(c, id, params, "data", &data) || !get_path(c, id, params, "output", &output))
        return;
    json_t *name = json_object_get(params, "name"), *load = json_object_get(params, "load");
    json_t *format = json_object_get(params, "format");
    if ((name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 64)) ||
        (load && !json_is_boolean(load))) {
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                  "'name' must be a string of at most 64 bytes, 'load' a boolean");
        return;
    }
    struct hd_trainjob_params p = {.data = data,
                                   .output = output,
                                   .val = 0.05,
                                   .epochs = 2,
                                   .batch_tokens = 2048,
                                   .warmup = 0.05};
    hr_train_defaults(&p.train);
    if (format && !json_is_null(format)) {
        const char *f = json_is_string(format) ? json_string_value(format) : "";
        p.format = !strcmp(f, "auto")    ? HR_TRAIN_AUTO
                   : !strcmp(f, "text")  ? HR_TRAIN_TEXT
                   : !strcmp(f, "jsonl") ? HR_TRAIN_JSONL
                                         : -1;
        if (p.format < 0) {
            rpc_error(c, id, IPC_ERR_INVALID_PARAMS,
                      "'format' must be \"auto\", \"text\" or \"jsonl\"");
            return;
        }
    }
    double rank = p.train.rank, alpha = p.train.alpha, epochs = p.epochs, lr = p.train.lr;
    double ctx = p.train.n_ctx, batch = (double)p.batch_tokens, seed = 0, threads = 0;
    if (!get_num(c, id, params, "rank", 1, 4096, true, &rank) ||
        !get_num(c, id, params, "alpha", 1e-6, 1e6, false, &alpha) ||
        !get_num(c, id, params, "epochs", 1, 1e6, true, &epochs) ||
        !get_num(c, id, params, "lr", 1e-12, 10, false, &lr) ||
        !get_num(c, id, params, "ctx", 2, 1 << 20, true, &ctx) ||
        !get_num(c, id, params, "batch_tokens", 1, 1e12, true, &batch) ||
        !get_num(c, id, params, "val", 0, 1e9, false, &p.val) ||
        !get_num(c, id, params, "seed", 0, 9007199254740991.0, true, &seed) ||
        !get_num(c, id, params, "warmup", 0, 1, false, &p.warmup) ||
        !get_num(c, id, params, "threads", 0, 1024, true, &threads) ||
        !get_targets(c, id, params, &p.train.targets))
        return;
    p.train.rank = (int32_t)rank;
    p.train.alpha = (float)alpha;
    p.train.lr = (float)lr;
    p.train.n_ctx = (int32_t)ctx;
    p.train.seed = (uint64_t)seed;
    p.train.n_threads = (int32_t)threads;
    p.epochs = (int32_t)epochs;
    p.batch_tokens = (int64_t)batch;
    if (!id) return;
    if (n_jobs > 0) {
        rpc_error(c, id, IPC_ERR_BUSY, "a training job is already running");
        return;
    }
    struct train_call *tc = calloc(1, sizeof *tc);
    if (!tc) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    tc->k.c = c;
    tc->k.id = json_incref(id);
    tc->k.cancel = train_cancel;
    tc->k.drop = train_drop;
    tc->load = !load || json_is_true(load);
    snprintf(tc->output, sizeof tc->output, "%s", output);
    if (json_is_string(name)) snprintf(tc->name, sizeof tc->name, "%s", json_string_value(name));
    struct hr_err err;
    int rc =
        hd_trainjob_start(c->r->loop, hd_sched_model(c->r->s), &p, job_event, tc, &tc->job, &err);
    if (rc < 0) {
        json_decref(tc->k.id);
        free(tc);
        rpc_error(c, id, IPC_ERR_INTERNAL, "%s", err.msg[0] ? err.msg : strerror(-rc));
        return;
    }
    n_jobs++;
    tc->k.next = c->calls;
    c->calls = &tc->k;
}
