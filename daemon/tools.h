/*
 * tools.h — the daemon's side of the tools: the tool host child process,
 * the tool definitions, and asynchronous tool calls on the event loop.
 *
 * What it does. hd_tools_new starts hearth-toolhost (daemon/toolhost_main.c)
 * as a child process connected by a socketpair, which dlopen()s the plugins
 * (include/hearth/plugin.h) and reports their tools. A call
 * (hd_tools_call) is checked here first — the tool exists, the arguments
 * parse and match the tool's JSON Schema (daemon/schema.h), the workspace is
 * an existing directory inside one of the configured roots — then sent to
 * the tool host, and its result comes back through a callback on the loop
 * thread. Calls run one at a time, in the order made; later ones wait.
 *
 * Isolation. A call that outlives its timeout gets the result "timed out
 * after N s", and the tool host is killed (SIGKILL, with its process group).
 * A tool host that dies during a call (a plugin crashed) gives that call
 * "tool host crashed (signal N)". Either way the next call starts a new
 * tool host, so one bad plugin never stops the others for long. Output past
 * the cap is cut (the result says so); a tool host whose memory stays above
 * the limit after a call exits and is replaced.
 *
 * Not here: the policy. Whether a call may run (tools.policy.*, tools.deny,
 * asking the user) is the caller's decision, made before hd_tools_call;
 * hd_tools_list gives each tool's risk class for it. The workspace roots
 * (tools.roots) are enforced here, because no call may run outside them.
 *
 * Protocol (JSON, one message per line, both directions over the
 * socketpair; the tool host reads requests one at a time):
 *   daemon → host  {"op":"list","id":0}
 *                  {"op":"call","id":N,"tool":"read_file","args":{...},
 *                   "workspace":"/abs/dir","timeout_ms":T,"output_cap":C}
 *                  {"op":"cancel","id":N}
 *   host → daemon  {"id":0,"tools":[{"plugin","name","description",
 *                   "parameters":{schema},"risk":"read"|"write"|"exec"}],
 *                   "plugins":[{"name","version","description","path"}],
 *                   "errors":["plugin load problems"]}
 *                  {"id":N,"ok":true,"output":"...","truncated":false}
 *                  {"id":N,"ok":false,"error":"...","output":"...","truncated":B}
 *                  {"op":"log","level":"info","msg":"..."}   (any time)
 *
 * Threading: everything on the loop thread. Logging: problems with the tool
 * host itself (crash, timeout, plugin load errors) are logged here, once;
 * results of calls are the caller's to report.
 */
#ifndef HEARTH_DAEMON_TOOLS_H
#define HEARTH_DAEMON_TOOLS_H

#include "config.h"
#include "loop.h"

#include <hearth/hearth.h>
#include <hearth/plugin.h>
#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_tools;

/* How to start the tools; every pointer is borrowed for the duration of
 * hd_tools_new only. Fill with hd_tools_params_init, then adjust. */
struct hd_tools_params {
    /* The tool host program. NULL: $HEARTH_TOOLHOST, else hearth-toolhost
     * next to the running executable, else the installed one
     * (LIBEXECDIR/hearth/hearth-toolhost), else the one in the build tree. */
    const char *toolhost;
    /* Directories searched for NAME.so, ':'-separated, first match wins.
     * NULL: $HEARTH_PLUGIN_DIR, else the installed plugin directory
     * (LIBDIR/hearth/plugins), else the build tree's plugins/. */
    const char *plugin_dir;
    const char *const *load; /* [n_load] plugin names */
    size_t n_load;
    const char *const *roots; /* [n_roots] directories workspaces must lie in */
    size_t n_roots;
    int timeout_ms;      /* default per call (> 0) */
    size_t output_cap;   /* default bytes of result text per call (> 0) */
    long host_rss_limit_mib; /* tool host memory limit; 0: none */
    int start_timeout_ms;    /* how long the tool host may take to list its tools */
};

/* Defaults (timeout 30 s, output cap 64 KiB, host memory 1024 MiB, start
 * 30 s), with load, roots, timeout and plugin_dir taken from cfg when cfg is
 * not NULL (pointers into cfg: keep it alive until hd_tools_new returns). */
void hd_tools_params_init(struct hd_tools_params *p, const struct hd_config *cfg);

/* One tool, as the tool host reported it. Borrowed: valid until
 * hd_tools_free. */
struct hd_tool_def {
    const char *name;
    const char *description;
    const char *plugin;     /* the plugin that provides it */
    const char *parameters; /* JSON Schema of the arguments, compact JSON text */
    const json_t *schema;   /* the same, parsed (do not modify) */
    enum hr_tool_risk risk;
};

/* Starts the tool host and reads its tool list (blocking, up to
 * p->start_timeout_ms: call before the loop serves clients). Plugins that
 * fail to load are logged and listed by hd_tools_load_errors; the others
 * work. Roots that do not exist are dropped with a warning.
 *
 * Returns 0 and *out (owned: hd_tools_free), or a negative errno with err
 * (optional) saying why: -ENOENT (no tool host program), -EINVAL (bad
 * params), -EPROTO (the tool host died or answered nonsense while
 * starting), -ETIMEDOUT, -ENOMEM. hearthd keeps running without tools
 * then. */
int hd_tools_new(struct hd_loop *loop, const struct hd_tools_params *p, struct hd_tools **out,
                 struct hr_err *err);

/* Applies a reloaded configuration (SIGHUP): the roots, the default
 * timeout and output cap (for calls made from now on) and the tool host's
 * memory limit (from its next start). The tool host program, the plugin
 * directory and the plugin list cannot change in place: returns 1 when p
 * differs from the running setup in them (create a new hd_tools to apply
 * them), 0 when everything in p was applied, -EINVAL (bad p), -ENOMEM. */
int hd_tools_update(struct hd_tools *t, const struct hd_tools_params *p);

/* Kills the tool host and frees everything. Calls not yet answered are
 * dropped: their callbacks are never called. Not from inside a callback of
 * this hd_tools. Accepts NULL. */
void hd_tools_free(struct hd_tools *t);

/* The tools, in load order (plugins in plugins.load order, then each
 * plugin's order). Borrowed array of *n entries, valid until hd_tools_free. */
const struct hd_tool_def *hd_tools_list(const struct hd_tools *t, size_t *n);
/* The tool named `name`, or NULL. Borrowed as above. */
const struct hd_tool_def *hd_tools_find(const struct hd_tools *t, const char *name);
/* Problems loading plugins ("plugin 'x': no x.so in /dir", ...). Borrowed
 * array of *n strings, valid until hd_tools_free. */
const char *const *hd_tools_load_errors(const struct hd_tools *t, size_t *n);

/* The tools as an OpenAI `tools` array, [{"type":"function","function":
 * {"name","description","parameters"}}], the form chat templates and the
 * HTTP API take. Owned: free(). NULL when out of memory. */
char *hd_tools_openai_json(const struct hd_tools *t);

/* "read", "write" or "exec". Static. */
const char *hd_tool_risk_name(enum hr_tool_risk risk);

/* Checks a call without running it: the tool exists and args_json (a JSON
 * object; NULL or "" mean {}) is valid for its schema. Returns 0, -ENOENT
 * (unknown tool) or -EINVAL, with err (optional) holding the message the
 * model should see ("invalid arguments for read_file: $.path: expected
 * string, got integer"). */
int hd_tools_validate(const struct hd_tools *t, const char *name, const char *args_json,
                      struct hr_err *err);

/* How a call ended. */
enum hd_tool_status {
    HD_TOOL_OK = 0,      /* the tool ran and succeeded */
    HD_TOOL_FAILED,      /* the tool ran and reported an error */
    HD_TOOL_INVALID,     /* refused before running: unknown tool, bad arguments, workspace */
    HD_TOOL_TIMEOUT,     /* killed after its timeout */
    HD_TOOL_CRASHED,     /* the tool host died during the call */
    HD_TOOL_UNAVAILABLE, /* no tool host could be started */
};

/* A call's result, passed to the callback; borrowed: valid during the
 * callback only (copy what you keep). */
struct hd_tool_result {
    int64_t id;                 /* as hd_tools_call returned */
    enum hd_tool_status status;
    const char *output;         /* result text (UTF-8, NUL-terminated), "" when none;
                                   on failure the partial output, if any */
    size_t output_len;
    bool truncated;             /* output was cut at the cap */
    const char *error;          /* one line for the model; NULL when status is OK */
};

/* Called exactly once per call on the loop thread — never from inside
 * hd_tools_call — unless the call is cancelled first. May call
 * hd_tools_call and hd_tools_cancel. */
typedef void (*hd_tools_cb)(void *user, const struct hd_tool_result *res);

/* Per-call settings; zero fields take the defaults of hd_tools_new. */
struct hd_tools_call_opts {
    int timeout_ms;
    size_t output_cap;
};

/* Calls tool `name` with args_json (a JSON object as text; NULL or "" mean
 * {}) in `workspace` (an absolute path of an existing directory inside one
 * of the roots; symlinks are resolved, and the tool sees the canonical
 * path). Every outcome, including an unknown tool, invalid arguments or a
 * workspace outside the roots (HD_TOOL_INVALID), arrives through cb.
 *
 * Returns the call's id (> 0), or -EINVAL (t, name or cb NULL), -ENOMEM;
 * then cb is never called. */
int64_t hd_tools_call(struct hd_tools *t, const char *name, const char *args_json,
                      const char *workspace, hd_tools_cb cb, void *user);
/* As hd_tools_call with per-call settings (opts may be NULL). */
int64_t hd_tools_call_ex(struct hd_tools *t, const char *name, const char *args_json,
                         const char *workspace, const struct hd_tools_call_opts *opts,
                         hd_tools_cb cb, void *user);

/* Cancels call `id`: its callback will not be called. A waiting call is
 * dropped; a running one is told to stop (hr_host.cancelled), and the tool
 * host is killed if it has not answered 2 s later. Unknown or finished ids
 * are ignored. */
void hd_tools_cancel(struct hd_tools *t, int64_t id);

/* Text to give the model for a result: the output, a note when it was
 * truncated, and "error: ..." when the call failed. Owned: free(); NULL
 * when out of memory. */
char *hd_tool_result_text(const struct hd_tool_result *res);

/* Counters, for status displays and tests. */
struct hd_tools_stats {
    uint64_t calls;       /* calls answered (any status) */
    uint64_t host_starts; /* tool host processes started */
    uint64_t crashes;     /* tool hosts that died during a call */
    uint64_t timeouts;    /* calls killed after their timeout */
    int host_pid;         /* the running tool host, 0 when none */
    size_t queued;        /* calls waiting, plus the one running */
};
void hd_tools_get_stats(const struct hd_tools *t, struct hd_tools_stats *out);

#endif
