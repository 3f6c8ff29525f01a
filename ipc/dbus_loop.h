/*
 * dbus_loop.h — drives a libdbus connection from hearthd's event loop
 * (daemon/loop.h): libdbus's watches become loop descriptors, its timeouts
 * loop timers, and incoming messages are dispatched from a loop timer on the
 * loop thread. No thread, no blocking call. Internal to the D-Bus frontend.
 */
#ifndef HEARTH_IPC_DBUS_LOOP_H
#define HEARTH_IPC_DBUS_LOOP_H

#include <dbus/dbus.h>

struct hd_loop;
struct ipc_dbus_loop;

/* Installs the watch, timeout and dispatch-status functions on `conn`
 * (which must outlive the attachment) and dispatches what is already
 * queued. On success *out is owned (ipc_dbus_loop_detach). Returns 0 or
 * -ENOMEM (nothing left installed). */
int ipc_dbus_loop_attach(DBusConnection *conn, struct hd_loop *loop, struct ipc_dbus_loop **out);

/* Removes every watch and timeout from the loop and uninstalls the
 * functions; call before closing the connection. Accepts NULL. */
void ipc_dbus_loop_detach(struct ipc_dbus_loop *l);

#endif
