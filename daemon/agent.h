/*
 * agent.h — scripts and the agent as the frontends see them: the contract
 * between the socket and D-Bus frontends (ipc/) and the Lua runtime (lua/),
 * which daemon/main.c connects.
 *
 * Frontends never include lua/: they start runs through a struct hd_runner
 * (implemented by lua/luab.h) found in struct hd_services, next to the
 * tools and the policy gate. A run is a Lua script (`script.run`) or the
 * agent loop on a task (`agent.run`); it reports events (output, log lines,
 * agent steps) and ends exactly once with a result or an error.
 *
 * Also here: which tool-call format a model uses (hd_tool_format_of), which
 * the agent needs to write its prompt and read the answers.
 *
 * Threading: the loop thread only.
 */
#ifndef HEARTH_DAEMON_AGENT_H
#define HEARTH_DAEMON_AGENT_H

#include "policy.h"
#include "tools.h"

#include <hearth/hearth.h>
#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- tool-call formats ---------------------------------------------------------- */

/* How a model family writes tool calls (daemon/toolcall.h parses all three). */
enum hd_tool_format {
    HD_TOOLFMT_HERMES,  /* Qwen 2.5/3, Hermes: <tool_call>{"name", "arguments"}</tool_call> */
    HD_TOOLFMT_LLAMA3,  /* Llama 3.x: {"name", "parameters"} (after <|python_tag|>) */
    HD_TOOLFMT_MISTRAL, /* Mistral: [TOOL_CALLS][{"name", "arguments"}, ...] */
};

/* The format a chat template teaches (NULL or no tool support: Hermes, the
 * most common one and the one small models follow best). */
enum hd_tool_format hd_tool_format_of(const char *chat_template);
/* "hermes", "llama3", "mistral". Static. */
const char *hd_tool_format_name(enum hd_tool_format f);
/* Parses a name as hd_tool_format_name gives it; -EINVAL for others. */
int hd_tool_format_parse(const char *name, enum hd_tool_format *out);
/* Whether the template renders a `tools` list itself (it mentions `tools`). */
bool hd_template_has_tools(const char *chat_template);

/* ---- runs ------------------------------------------------------------------------ */

enum hd_run_kind {
    HD_RUN_SCRIPT, /* a Lua script */
    HD_RUN_AGENT,  /* the agent loop on a task */
};

/* What to run. Everything is borrowed for the duration of start() only.
 * A run is a scheduler client of its own (its requests end with it), so
 * frontends stop a run's work with cancel(), not hd_sched_drop_client. */
struct hd_run_params {
    enum hd_run_kind kind;
    /* script */
    const char *source;     /* Lua source text (never a binary chunk) */
    size_t source_len;
    const char *name;       /* shown in messages and tracebacks ("hello.lua"); NULL: "script" */
    const char *args_json;  /* JSON array: the script's arguments (`...`, hearth.args); NULL: [] */
    /* agent */
    const char *task;
    const char *tools_json; /* JSON array of the tool names offered; NULL: every tool */
    int max_steps;          /* 0: agent.max_steps of the config */
    const char *options_json; /* JSON object of further agent options (sampling keys,
                                 "format", "timeout"); NULL: none */
    /* both */
    const char *workspace;  /* absolute directory for the tools; NULL: tool calls fail */
    const struct hd_approver *approver; /* copied; NULL: calls that must ask are declined */
};

/* How a run ended; borrowed for the duration of the done callback. */
struct hd_run_end {
    bool ok;
    json_t *result;        /* ok: the script's return values (an array), or the agent's
                              result object {answer, steps, finish} */
    const char *error;     /* !ok: one paragraph (the Lua error message) */
    const char *traceback; /* !ok: the Lua traceback, or NULL */
};

/* Where a run's events go. Both callbacks run on the loop thread, never
 * from inside start(). */
struct hd_run_sink {
    /* kind: "output" {text} (print), "log" {level, message}, "event" {kind,
     * data} (hearth.emit in a script), or for the agent its step kinds
     * ("step", "text", "tool_call_start", "tool_call", "tool_result",
     * "answer": docs/agent.md). data is borrowed for the call. Approvals do
     * not pass here: they go to the run's hd_approver. */
    void (*event)(void *user, const char *kind, json_t *data);
    /* The last callback of the run. */
    void (*done)(void *user, const struct hd_run_end *end);
};

struct hd_runner {
    void *impl;
    /* Starts a run; on success *id (> 0) names it and the sink will be
     * called. Errors (nothing started, no callback): -EINVAL with err (bad
     * params, a script that does not compile: err has Lua's message), -EBUSY
     * (too many runs), -ENOMEM. */
    int (*start)(void *impl, const struct hd_run_params *p, const struct hd_run_sink *sink,
                 void *user, uint64_t *id, struct hr_err *err);
    /* Stops a run at once: its requests and tool calls are cancelled, its
     * Lua state closed; no callback of its sink runs after this. Unknown
     * ids are ignored. */
    void (*cancel)(void *impl, uint64_t id);
};

/* What main.c hands the frontends besides the scheduler. Any member may be
 * NULL (no tools, no Lua): the frontend then answers that the feature is
 * unavailable. */
struct hd_services {
    struct hd_tools *tools;
    struct hd_gate *gate;
    const struct hd_runner *runner;
};

#endif
