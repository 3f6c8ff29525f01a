/*
 * ipc.h — what every frontend of hearthd (socket, D-Bus, HTTP) shares.
 */
#ifndef HEARTH_IPC_IPC_H
#define HEARTH_IPC_IPC_H

#include <stddef.h>

/* Limits a frontend enforces per message and per connection. */
struct ipc_limits {
    size_t max_message_bytes; /* a longer message is refused with an error */
    int max_clients;          /* connections beyond this are refused */
};

#endif
