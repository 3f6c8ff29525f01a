/*
 * daemonutil.h — helpers for tests that run the real hearthd: start it in
 * the foreground on a private socket with a test config, talk JSON-RPC to it
 * over real sockets, stop it and check it exited cleanly.
 *
 * Every helper asserts (Criterion) on failure, with the daemon's log in the
 * message when it died, so a test body reads as the protocol exchange only.
 */
#ifndef HEARTH_TESTS_DAEMONUTIL_H
#define HEARTH_TESTS_DAEMONUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct du_daemon {
    pid_t pid;
    char dir[256];    /* private directory (mode 0700), removed by du_stop */
    char socket[320]; /* dir/hearth.sock unless du_start_at chose another */
    char config[320]; /* dir/hearth.yaml */
    char log[320];    /* dir/hearthd.log: the daemon's stderr */
};

/* Path of the hearthd binary (HEARTH_DAEMON_BIN). */
const char *du_daemon_bin(void);

/* Writes a config (`model: MODEL` (NULL: the bundled stories260K), `dbus:
 * enabled: false`, then `extra_yaml` verbatim, may be NULL) in a new private
 * directory, starts `hearthd --foreground --config ... --socket ...` and
 * waits until the socket answers `status`. */
void du_start(struct du_daemon *d, const char *model, const char *extra_yaml);
/* As du_start with the socket at `socket` (a path of the caller's choice). */
void du_start_at(struct du_daemon *d, const char *socket, const char *model,
                 const char *extra_yaml);
/* SIGTERM; asserts the daemon exits with status 0 and removed its socket;
 * removes the private directory. */
void du_stop(struct du_daemon *d);
/* The daemon's log so far (owned: free). */
char *du_log(const struct du_daemon *d);

/* A connection with its own receive buffer. */
struct du_conn {
    int fd;
    char *buf;
    size_t len, cap;
    long next_id;
};

/* Connects to `path`; asserts. Owned: du_close. */
struct du_conn *du_connect(const char *path);
void du_close(struct du_conn *c);
/* Writes `len` bytes exactly (blocking); false when the peer is gone. */
bool du_write(struct du_conn *c, const void *data, size_t len);
/* Writes one line: the formatted text and '\n'; asserts. */
void du_sendf(struct du_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The next message, or NULL after timeout_ms (or when the daemon closed the
 * connection: *closed is then set, when given). Owned: json_decref. */
json_t *du_recv(struct du_conn *c, int timeout_ms, bool *closed);
/* The next message; asserts one arrives within 60 s. */
json_t *du_recv_ok(struct du_conn *c);

/* Sends {"jsonrpc":"2.0","id":N,"method":METHOD,"params":PARAMS} with a new
 * id N (params: JSON text, or NULL) and returns N. */
long du_send_call(struct du_conn *c, const char *method, const char *params_json);
/* Waits for the response with id `id`: stream notifications for it are
 * appended to *stream (owned, NUL-terminated; NULL to drop them), other
 * messages are skipped. Returns the whole response (owned). */
json_t *du_wait_response(struct du_conn *c, long id, char **stream);
/* du_send_call + du_wait_response; asserts the response has a result and
 * returns the result (owned). */
json_t *du_call_ok(struct du_conn *c, const char *method, const char *params_json);
/* du_send_call + du_wait_response; asserts the response is an error and
 * returns its code; *message gets the message (owned) when given. */
int du_call_err(struct du_conn *c, const char *method, const char *params_json, char **message);

/* Runs argv with `input` on its stdin; stdout/stderr captured as tu_run. */
int du_run_input(char *const argv[], const char *input, char **out, char **err);

#endif
