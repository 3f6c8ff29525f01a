/*
 * loop.h — hearthd's event loop: one thread, epoll over file descriptors,
 * one-shot and repeating timers, and wake-ups from other threads.
 *
 * Every frontend (socket, D-Bus, HTTP) registers its descriptors here, and
 * the scheduler delivers request events through it (an eventfd), so all
 * frontend code and all request callbacks run on the loop thread and need
 * no locks of their own.
 */
#ifndef HEARTH_DAEMON_LOOP_H
#define HEARTH_DAEMON_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct hd_loop;

/* Called on the loop thread with the epoll events that fired (EPOLLIN, ...). */
typedef void (*hd_fd_fn)(void *user, int fd, uint32_t events);
/* Called on the loop thread when a timer expires. */
typedef void (*hd_timer_fn)(void *user);

int hd_loop_new(struct hd_loop **out);
/* Frees the loop; descriptors still registered are not closed. Accepts NULL. */
void hd_loop_free(struct hd_loop *loop);

/* Runs until hd_loop_quit. Returns 0, or a negative errno if epoll fails. */
int hd_loop_run(struct hd_loop *loop);
/* Makes hd_loop_run return after the current iteration. Loop thread only. */
void hd_loop_quit(struct hd_loop *loop);

/* Watches fd for `events` (EPOLLIN/EPOLLOUT/...); one registration per fd.
 * The registration is removed with hd_loop_del_fd (do that before close). */
int hd_loop_add_fd(struct hd_loop *loop, int fd, uint32_t events, hd_fd_fn fn, void *user);
int hd_loop_mod_fd(struct hd_loop *loop, int fd, uint32_t events);
/* Safe to call from inside that fd's own callback. */
void hd_loop_del_fd(struct hd_loop *loop, int fd);

/* Timers: fn runs once after `ms` milliseconds (and then every `ms` when
 * repeat). Returns a timer id > 0, or a negative errno. */
int64_t hd_loop_add_timer(struct hd_loop *loop, int64_t ms, bool repeat, hd_timer_fn fn,
                          void *user);
/* Cancels a timer (no-op for an unknown or expired id). Safe inside its callback. */
void hd_loop_del_timer(struct hd_loop *loop, int64_t id);

/* Milliseconds on the monotonic clock. */
int64_t hd_now_ms(void);

#endif
