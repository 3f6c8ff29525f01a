/*
 * dbus.h — the D-Bus frontend of hearthd: the service org.hearth.Hearth1 on
 * the session bus (object /org/hearth/Hearth1, interface org.hearth.Hearth1),
 * a thin adapter over the scheduler's request API (daemon/scheduler.h).
 *
 * The interface (methods, signals, properties, errors) is documented in
 * docs/dbus.md; its introspection XML, docs/org.hearth.Hearth1.xml, is
 * generated from the declarative tables in dbus.c (ipc_dbus_introspect).
 *
 * Threads: everything runs on the loop thread. libdbus's watches, timeouts
 * and dispatching are driven by the daemon's loop (daemon/loop.h); nothing
 * here blocks after ipc_dbus_new returns, which connects and claims the name
 * synchronously (once, at start-up).
 */
#ifndef HEARTH_IPC_DBUS_H
#define HEARTH_IPC_DBUS_H

#include <stdint.h>

struct hd_loop;
struct hd_sched;
struct hr_err;
struct ipc_dbus;

#define IPC_DBUS_NAME "org.hearth.Hearth1"
#define IPC_DBUS_PATH "/org/hearth/Hearth1"
#define IPC_DBUS_IFACE "org.hearth.Hearth1"
/* The interface's own version (property InterfaceVersion); every change is
 * recorded in docs/api-changes.md. */
#define IPC_DBUS_INTERFACE_VERSION 4u

/* Connects to the session bus, registers the object and claims the name
 * org.hearth.Hearth1. `loop` and `s` must outlive the frontend. On success
 * *out is owned (free with ipc_dbus_free). Errors (nothing left behind):
 *   -ENOTCONN no session bus to connect to (err has libdbus's reason)
 *   -EEXIST   the name is owned by another process ("another hearthd owns
 *             org.hearth.Hearth1")
 *   -EIO      the bus refused the name or the match rule
 *   -ENOMEM */
int ipc_dbus_new(struct hd_loop *loop, struct hd_sched *s, struct ipc_dbus **out,
                 struct hr_err *err);

/* Drops every bus peer's requests (their callbacks are never called again),
 * flushes what is queued for sending (pending Ask calls get no reply: their
 * callers see the service vanish), releases the name and disconnects.
 * Accepts NULL. */
void ipc_dbus_free(struct ipc_dbus *d);

/* Gives the frontend the tools and the policy gate for ListTools, CallTool
 * and Approve. `svc` is borrowed and must outlive the frontend; without it
 * those methods answer Failed. */
struct hd_services;
void ipc_dbus_set_services(struct ipc_dbus *d, const struct hd_services *svc);

/* The introspection XML of /org/hearth/Hearth1, exactly as Introspect
 * returns it and as docs/org.hearth.Hearth1.xml holds it. Owned: free().
 * Returns 0 or -ENOMEM. */
int ipc_dbus_introspect(char **out);

#endif
