/*
 * dbus_args.h — message arguments of the D-Bus frontend: the options dict
 * (a{sv}) of Chat and Generate read into the JSON object the shared
 * parameter mapping (params.h) takes, a{sv} entries and variants written,
 * and model text made fit for a D-Bus string. Internal to ipc/dbus*.c.
 */
#ifndef HEARTH_IPC_DBUS_ARGS_H
#define HEARTH_IPC_DBUS_ARGS_H

#include <dbus/dbus.h>
#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hr_err;

/* Reads the a{sv} at `it` (checked to be one) into a new JSON object of
 * sampling keys for ipc_params_gen: owned, *obj. Every key must be one of
 * the documented options, with its D-Bus type (integers: any integer type;
 * numbers: d or an integer). "session" and "parse_special" (allowed only
 * when `generate`) are no sampling keys and come out in *session (borrowed
 * from the message; left alone when absent) and *parse_special. Returns 0,
 * or -EINVAL / -ENOMEM with err->msg naming the key and its expected type. */
int ipc_dbus_read_options(DBusMessageIter *it, bool generate, json_t **obj, const char **session,
                          bool *parse_special, struct hr_err *err);

/* D-Bus strings must be valid UTF-8 without NUL (libdbus refuses others).
 * Returns a copy of `len` bytes of `s` in which NUL bytes and invalid
 * sequences became U+FFFD. Owned: free(); NULL when out of memory. */
char *ipc_dbus_text(const char *s, size_t len);

/* Writers; each returns false when out of memory (the caller drops the
 * message being built). A variant of one basic value at `it`: */
bool ipc_dbus_append_variant(DBusMessageIter *it, int type, const void *value);
/* One {sv} entry of the a{sv} being written at `dict`: */
bool ipc_dbus_dict_i32(DBusMessageIter *dict, const char *key, int32_t v);
bool ipc_dbus_dict_i64(DBusMessageIter *dict, const char *key, int64_t v);
bool ipc_dbus_dict_dbl(DBusMessageIter *dict, const char *key, double v);

#endif
