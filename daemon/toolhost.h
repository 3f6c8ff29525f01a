/*
 * toolhost.h — inside hearth-toolhost, the child process that loads the tool
 * plugins and runs their calls (see tools.h for the daemon's side and the
 * protocol). Shared between toolhost_main.c (the protocol loop and plugin
 * loading) and toolhost_call.c (the struct hr_host services a call uses).
 *
 * The tool host is single-threaded and runs one call at a time, so the
 * state of "the call being run" is plain globals in toolhost_main.c.
 */
#ifndef HEARTH_DAEMON_TOOLHOST_H
#define HEARTH_DAEMON_TOOLHOST_H

#include <hearth/plugin.h>
#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most result text kept whatever the daemon asks: the reply must fit the
 * daemon's line limit after JSON escaping. */
#define TH_MAX_OUTPUT_CAP ((uint64_t)16 << 20)
/* Most bytes of an error message. */
#define TH_MAX_ERROR 4096
/* Log lines a plugin may write per call (or during init) before the rest
 * are dropped. */
#define TH_MAX_LOG_LINES 50

/* A loaded plugin: its descriptor and the services table lent to it. The
 * table is per plugin so that log lines can name the plugin. */
struct th_plugin {
    struct hr_host host; /* first: the services see their plugin via the table */
    const struct hr_plugin *desc; /* borrowed from the .so, never unloaded */
    char *path;                   /* owned */
    int log_lines;                /* log lines since the last call started */
};

/* A tool of a loaded plugin. */
struct th_tool {
    const struct hr_tool *desc; /* borrowed from the .so */
    struct th_plugin *plugin;
    json_t *schema; /* parsed parameters, owned */
};

/* The call being run: the public part the plugin sees, and the host's. */
struct th_call {
    struct hr_tool_call pub; /* first: services cast the plugin's pointer back */
    struct th_tool *tool;
    json_t *args;      /* owned */
    json_t *dumps;     /* array of strings arg_json handed out, owned */
    char *out;         /* result text, owned */
    size_t out_len, out_alloc;
    bool truncated;
    bool failed;
    char error[TH_MAX_ERROR];
    bool cancelled; /* the daemon sent a cancel for this call */
};

/* toolhost_call.c: fills a plugin's services table. */
void th_host_init(struct th_plugin *p);
/* Runs `c` (pub filled, workspace open) with its plugin; returns the tool
 * function's value. */
int th_call_run(struct th_call *c);
/* Frees what the call owns (not the struct). */
void th_call_done(struct th_call *c);
/* Returns text[0..n) with invalid UTF-8 replaced by U+FFFD and cut at `cap`
 * bytes on a character boundary (owned: free(); NULL: out of memory). */
char *th_utf8_clean(const char *text, size_t n, size_t cap, size_t *out_len);

/* toolhost_main.c: checks the channel for a cancel of call `id` without
 * blocking; true once one arrived. */
bool th_channel_cancelled(int64_t id);
/* Sends a log line to the daemon ("PLUGIN: message"). */
void th_send_log(const char *plugin, int level, const char *msg);

#endif
