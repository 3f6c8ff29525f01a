/*
 * dbus_loop.c — a libdbus connection on hearthd's event loop (see
 * dbus_loop.h).
 *
 * libdbus asks for watches (a descriptor and the events it wants, enabled
 * or not), timeouts (repeating while enabled) and tells when messages wait
 * to be dispatched. The loop allows one registration per descriptor, and a
 * bus connection has a read and a write watch on its one socket, so watches
 * are grouped per descriptor and the loop is asked for the union of what
 * the enabled ones want.
 */
#include "dbus_loop.h"

#include "../daemon/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

/* A bus connection is one socket; libdbus puts a read and a write watch on
 * it. These bounds are generous; add_watch refuses beyond them. */
#define MAX_FDS 4
#define MAX_WATCHES 4
/* Messages dispatched per loop iteration before yielding to other fds. */
#define DISPATCH_BATCH 64

struct fdslot {
    int fd;          /* -1: free slot */
    uint32_t events; /* registered with the loop; 0: not registered */
    int n;
    DBusWatch *w[MAX_WATCHES];
};

struct ipc_dbus_loop {
    struct hd_loop *loop;
    DBusConnection *conn;
    int64_t dispatch_timer; /* 0: none armed */
    struct fdslot fds[MAX_FDS];
};

static void schedule_dispatch(struct ipc_dbus_loop *d);
static void on_fd(void *user, int fd, uint32_t events);

/* Registers with the loop exactly the events the slot's enabled watches
 * want. A slot with nothing enabled is unregistered rather than kept with
 * no events, because epoll would still report a hang-up on it forever. */
static int slot_update(struct ipc_dbus_loop *d, struct fdslot *s)
{
    uint32_t ev = 0;
    for (int i = 0; i < s->n; i++) {
        if (!dbus_watch_get_enabled(s->w[i]))
            continue;
        unsigned flags = dbus_watch_get_flags(s->w[i]);
        if (flags & DBUS_WATCH_READABLE)
            ev |= EPOLLIN;
        if (flags & DBUS_WATCH_WRITABLE)
            ev |= EPOLLOUT;
    }
    int r = 0;
    if (ev != s->events) {
        if (s->events == 0)
            r = hd_loop_add_fd(d->loop, s->fd, ev, on_fd, d);
        else if (ev == 0)
            hd_loop_del_fd(d->loop, s->fd);
        else
            r = hd_loop_mod_fd(d->loop, s->fd, ev);
        if (r == 0)
            s->events = ev;
    }
    if (s->n == 0)
        s->fd = -1;
    return r;
}

static struct fdslot *slot_of_watch(struct ipc_dbus_loop *d, DBusWatch *w)
{
    for (int i = 0; i < MAX_FDS; i++)
        for (int j = 0; d->fds[i].fd >= 0 && j < d->fds[i].n; j++)
            if (d->fds[i].w[j] == w)
                return &d->fds[i];
    return NULL;
}

static struct fdslot *slot_of_fd(struct ipc_dbus_loop *d, int fd)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (d->fds[i].fd == fd)
            return &d->fds[i];
    return NULL;
}

/* Hands the events to each enabled watch of the fd. dbus_watch_handle may
 * add, remove or free watches (a hang-up removes them all), so the slot is
 * looked up again after each call and a watch is handled at most once. */
static void on_fd(void *user, int fd, uint32_t events)
{
    struct ipc_dbus_loop *d = user;
    unsigned flags = 0;
    if (events & EPOLLIN)
        flags |= DBUS_WATCH_READABLE;
    if (events & EPOLLOUT)
        flags |= DBUS_WATCH_WRITABLE;
    if (events & EPOLLERR)
        flags |= DBUS_WATCH_ERROR;
    if (events & EPOLLHUP)
        flags |= DBUS_WATCH_HANGUP;
    DBusWatch *done[MAX_WATCHES];
    int n_done = 0;
    while (n_done < MAX_WATCHES) {
        struct fdslot *s = slot_of_fd(d, fd);
        DBusWatch *w = NULL;
        for (int i = 0; s && !w && i < s->n; i++) {
            bool seen = false;
            for (int j = 0; j < n_done; j++)
                seen |= done[j] == s->w[i];
            if (!seen && dbus_watch_get_enabled(s->w[i]))
                w = s->w[i];
        }
        if (!w)
            break;
        done[n_done++] = w;
        unsigned f = flags & (dbus_watch_get_flags(w) | DBUS_WATCH_ERROR | DBUS_WATCH_HANGUP);
        if (f)
            dbus_watch_handle(w, f);
    }
    schedule_dispatch(d);
}

static dbus_bool_t add_watch(DBusWatch *w, void *data)
{
    struct ipc_dbus_loop *d = data;
    int fd = dbus_watch_get_unix_fd(w);
    struct fdslot *s = slot_of_fd(d, fd);
    if (!s)
        s = slot_of_fd(d, -1);
    if (!s || s->n == MAX_WATCHES)
        return FALSE;
    s->fd = fd;
    s->w[s->n++] = w;
    if (slot_update(d, s) < 0) {
        s->n--;
        slot_update(d, s);
        return FALSE;
    }
    return TRUE;
}

static void remove_watch(DBusWatch *w, void *data)
{
    struct ipc_dbus_loop *d = data;
    struct fdslot *s = slot_of_watch(d, w);
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        if (s->w[i] == w) {
            s->w[i] = s->w[--s->n];
            break;
        }
    slot_update(d, s);
}

static void toggle_watch(DBusWatch *w, void *data)
{
    struct ipc_dbus_loop *d = data;
    struct fdslot *s = slot_of_watch(d, w);
    if (s)
        slot_update(d, s);
}

/* libdbus's timeouts repeat every interval while enabled: a repeating loop
 * timer, re-created when toggled. Owned by the DBusTimeout (set_data). */
struct tslot {
    struct ipc_dbus_loop *d;
    int64_t timer; /* 0: none */
};

static void on_timeout(void *user)
{
    DBusTimeout *t = user;
    struct ipc_dbus_loop *d = ((struct tslot *)dbus_timeout_get_data(t))->d;
    dbus_timeout_handle(t); /* may remove and free t */
    schedule_dispatch(d);
}

static dbus_bool_t timeout_arm(struct tslot *ts, DBusTimeout *t)
{
    if (ts->timer > 0)
        hd_loop_del_timer(ts->d->loop, ts->timer);
    ts->timer = 0;
    if (!dbus_timeout_get_enabled(t))
        return TRUE;
    int64_t id = hd_loop_add_timer(ts->d->loop, dbus_timeout_get_interval(t), true, on_timeout, t);
    if (id < 0)
        return FALSE;
    ts->timer = id;
    return TRUE;
}

static dbus_bool_t add_timeout(DBusTimeout *t, void *data)
{
    struct tslot *ts = calloc(1, sizeof *ts);
    if (!ts)
        return FALSE;
    ts->d = data;
    dbus_timeout_set_data(t, ts, free);
    return timeout_arm(ts, t);
}

static void remove_timeout(DBusTimeout *t, void *data)
{
    struct tslot *ts = dbus_timeout_get_data(t);
    if (ts && ts->timer > 0)
        hd_loop_del_timer(ts->d->loop, ts->timer);
    if (ts)
        ts->timer = 0;
}

static void toggle_timeout(DBusTimeout *t, void *data)
{
    struct tslot *ts = dbus_timeout_get_data(t);
    if (ts)
        timeout_arm(ts, t);
}

static void on_dispatch(void *user);

/* Dispatching runs our handlers, which libdbus forbids inside its own
 * callbacks (watch handling, the dispatch-status function): it always runs
 * from a loop timer. */
static void arm_dispatch(struct ipc_dbus_loop *d, int64_t ms)
{
    if (d->dispatch_timer > 0)
        return;
    int64_t id = hd_loop_add_timer(d->loop, ms, false, on_dispatch, d);
    if (id > 0)
        d->dispatch_timer = id;
}

static void schedule_dispatch(struct ipc_dbus_loop *d)
{
    if (d->conn && dbus_connection_get_dispatch_status(d->conn) == DBUS_DISPATCH_DATA_REMAINS)
        arm_dispatch(d, 0);
}

static void on_dispatch(void *user)
{
    struct ipc_dbus_loop *d = user;
    d->dispatch_timer = 0;
    for (int i = 0; i < DISPATCH_BATCH; i++)
        if (dbus_connection_dispatch(d->conn) != DBUS_DISPATCH_DATA_REMAINS)
            return;
    /* More waiting: 1 ms, not 0, so the loop polls its other fds first (a
     * timer due now would run again in the same pass). */
    arm_dispatch(d, 1);
}

static void on_dispatch_status(DBusConnection *conn, DBusDispatchStatus status, void *data)
{
    if (status == DBUS_DISPATCH_DATA_REMAINS)
        arm_dispatch(data, 0);
}

int ipc_dbus_loop_attach(DBusConnection *conn, struct hd_loop *loop, struct ipc_dbus_loop **out)
{
    struct ipc_dbus_loop *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->loop = loop;
    d->conn = conn;
    for (int i = 0; i < MAX_FDS; i++)
        d->fds[i].fd = -1;
    if (!dbus_connection_set_watch_functions(conn, add_watch, remove_watch, toggle_watch, d,
                                             NULL) ||
        !dbus_connection_set_timeout_functions(conn, add_timeout, remove_timeout,
                                               toggle_timeout, d, NULL)) {
        ipc_dbus_loop_detach(d);
        return -ENOMEM;
    }
    dbus_connection_set_dispatch_status_function(conn, on_dispatch_status, d, NULL);
    schedule_dispatch(d); /* messages that arrived before we were attached */
    *out = d;
    return 0;
}

void ipc_dbus_loop_detach(struct ipc_dbus_loop *d)
{
    if (!d)
        return;
    /* Setting NULL functions first calls the old remove functions for every
     * watch and timeout, which unregisters them from the loop. */
    dbus_connection_set_dispatch_status_function(d->conn, NULL, NULL, NULL);
    dbus_connection_set_watch_functions(d->conn, NULL, NULL, NULL, NULL, NULL);
    dbus_connection_set_timeout_functions(d->conn, NULL, NULL, NULL, NULL, NULL);
    if (d->dispatch_timer > 0)
        hd_loop_del_timer(d->loop, d->dispatch_timer);
    free(d);
}
