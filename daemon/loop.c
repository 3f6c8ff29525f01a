/*
 * loop.c — the epoll event loop of hearthd (see loop.h).
 *
 * File descriptors are kept in a small table indexed by registration; the
 * epoll data carries a pointer to the entry. An entry removed from inside a
 * callback is only marked dead and freed after the current batch of events,
 * so a later event of the same batch never touches freed memory.
 *
 * Timers live in a list sorted by deadline; epoll_wait's timeout is the time
 * to the first one. Millisecond precision is all the daemon needs.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct watch {
    int fd;
    bool dead;
    hd_fd_fn fn;
    void *user;
    struct watch *next; /* all watches, and the dead list */
};

struct timer {
    int64_t id, due, period; /* period 0: one-shot */
    hd_timer_fn fn;
    void *user;
    struct timer *next;
};

struct hd_loop {
    int epfd;
    bool quit;
    struct watch *watches;
    struct timer *timers; /* sorted by due */
    int64_t next_timer_id;
};

int64_t hd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hd_loop_new(struct hd_loop **out)
{
    struct hd_loop *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int rc = -errno;
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void hd_loop_free(struct hd_loop *l)
{
    if (!l)
        return;
    for (struct watch *w = l->watches, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (struct timer *t = l->timers, *n; t; t = n) {
        n = t->next;
        free(t);
    }
    close(l->epfd);
    free(l);
}

static struct watch *find(struct hd_loop *l, int fd)
{
    for (struct watch *w = l->watches; w; w = w->next)
        if (w->fd == fd && !w->dead)
            return w;
    return NULL;
}

int hd_loop_add_fd(struct hd_loop *l, int fd, uint32_t events, hd_fd_fn fn, void *user)
{
    if (find(l, fd))
        return -EEXIST;
    struct watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    *w = (struct watch){.fd = fd, .fn = fn, .user = user, .next = l->watches};
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int rc = -errno;
        free(w);
        return rc;
    }
    l->watches = w;
    return 0;
}

int hd_loop_mod_fd(struct hd_loop *l, int fd, uint32_t events)
{
    struct watch *w = find(l, fd);
    if (!w)
        return -ENOENT;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void hd_loop_del_fd(struct hd_loop *l, int fd)
{
    struct watch *w = find(l, fd);
    if (!w)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    w->dead = true; /* freed by reap() once no event of this batch can refer to it */
}

static void reap(struct hd_loop *l)
{
    for (struct watch **p = &l->watches; *p;) {
        struct watch *w = *p;
        if (w->dead) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

static void timer_insert(struct hd_loop *l, struct timer *t)
{
    struct timer **p = &l->timers;
    while (*p && (*p)->due <= t->due)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
}

int64_t hd_loop_add_timer(struct hd_loop *l, int64_t ms, bool repeat, hd_timer_fn fn, void *user)
{
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    if (ms < 0)
        ms = 0;
    *t = (struct timer){.id = ++l->next_timer_id, .due = hd_now_ms() + ms,
                        .period = repeat ? (ms > 0 ? ms : 1) : 0, .fn = fn, .user = user};
    timer_insert(l, t);
    return t->id;
}

void hd_loop_del_timer(struct hd_loop *l, int64_t id)
{
    for (struct timer **p = &l->timers; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct timer *t = *p;
            *p = t->next;
            free(t);
            return;
        }
    }
}

/* Runs the timers that are due. A callback may add or delete timers
 * (including its own), so each one is unlinked before it runs. */
static void run_timers(struct hd_loop *l)
{
    int64_t now = hd_now_ms();
    while (l->timers && l->timers->due <= now) {
        struct timer *t = l->timers;
        l->timers = t->next;
        hd_timer_fn fn = t->fn;
        void *user = t->user;
        if (t->period) {
            t->due = now + t->period;
            timer_insert(l, t);
        } else {
            free(t);
        }
        fn(user);
        if (l->quit)
            return;
    }
}

void hd_loop_quit(struct hd_loop *l)
{
    l->quit = true;
}

int hd_loop_run(struct hd_loop *l)
{
    struct epoll_event evs[64];
    l->quit = false;
    while (!l->quit) {
        int timeout = -1;
        if (l->timers) {
            int64_t d = l->timers->due - hd_now_ms();
            timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
        }
        int n = epoll_wait(l->epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n && !l->quit; i++) {
            struct watch *w = evs[i].data.ptr;
            if (!w->dead)
                w->fn(w->user, w->fd, evs[i].events);
        }
        reap(l);
        if (!l->quit)
            run_timers(l);
    }
    return 0;
}
