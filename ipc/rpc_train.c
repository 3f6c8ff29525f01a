/*
 * rpc_train.c — the socket method `train` (docs/protocol.md): trains a
 * LoRA adapter for the daemon's model in the background
 * (daemon/trainjob.h), streams `train.progress` notifications carrying the
 * request id, and when the adapter is written loads it into the adapter
 * registry (hd_sched_lora_load) so requests can use it at once; the final
 * response says what was trained and loaded. `cancel` with the request's id
 * stops the job (answered at once with -32010); so does the connection
 * going away. One job runs at a time in the daemon (-32000 otherwise).
 */
#include "rpc_impl.h"

#include "../daemon/trainjob.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A train call: the connection frees it as an rpc_call (the first member). */
struct train_call {
    struct rpc_call k;
    struct hd_trainjob *job;
    struct hd_trainjob_request rq;
};

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

static void job_event(void *user, const struct hd_trainjob_event *ev)
{
    struct train_call *tc = user;
    struct rpc_conn *c = tc->k.c;
    if (ev->phase != HD_TRAIN_DONE) {
        json_t *p = hd_trainjob_progress_json(ev);
        if (p && json_object_set(p, "id", tc->k.id) == 0)
            rpc_send(c, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "train.progress",
                                  "params", p));
        else
            json_decref(p);
        return;
    }
    hd_trainjob_free(tc->job); /* finished: this only joins it */
    tc->job = NULL;
    if (ev->rc < 0) {
        int code = ev->rc == -EINVAL || ev->rc == -ENOENT || ev->rc == -EACCES
                       ? IPC_ERR_INVALID_PARAMS
                       : IPC_ERR_ENGINE;
        rpc_error(c, tc->k.id, code, "%s", ev->msg ? ev->msg : "training failed");
    } else {
        json_t *res = hd_trainjob_result(c->r->s, &tc->rq, ev);
        if (res)
            rpc_reply(c, tc->k.id, res);
        else
            rpc_error(c, tc->k.id, IPC_ERR_INTERNAL, "out of memory");
    }
    call_end(tc);
}

static void train_cancel(struct rpc_call *k)
{
    struct train_call *tc = (struct train_call *)k;
    hd_trainjob_free(tc->job);
    tc->job = NULL;
    rpc_error(k->c, k->id, IPC_ERR_CANCELLED, "cancelled");
    call_end(tc);
}

static void train_drop(struct rpc_call *k)
{
    struct train_call *tc = (struct train_call *)k;
    hd_trainjob_free(tc->job);
    tc->job = NULL;
}

void rpc_m_train(struct rpc_conn *c, json_t *id, json_t *params)
{
    struct train_call *tc = calloc(1, sizeof *tc);
    if (!tc) {
        rpc_error(c, id, IPC_ERR_INTERNAL, "out of memory");
        return;
    }
    char msg[256];
    if (hd_trainjob_parse(params, &tc->rq, msg, sizeof msg) < 0) {
        free(tc);
        rpc_error(c, id, IPC_ERR_INVALID_PARAMS, "%s", msg);
        return;
    }
    if (!id) {
        free(tc);
        return;
    }
    tc->k.c = c;
    tc->k.id = json_incref(id);
    tc->k.cancel = train_cancel;
    tc->k.drop = train_drop;
    struct hr_err err;
    hr_err_clear(&err);
    int rc = hd_trainjob_start(c->r->loop, hd_sched_model(c->r->s), &tc->rq.p, job_event, tc,
                               &tc->job, &err);
    if (rc < 0) {
        json_decref(tc->k.id);
        free(tc);
        rpc_error(c, id, rc == -EBUSY ? IPC_ERR_BUSY : IPC_ERR_INTERNAL, "%s",
                  err.msg[0] ? err.msg : strerror(-rc));
        return;
    }
    tc->k.next = c->calls;
    c->calls = &tc->k;
}
