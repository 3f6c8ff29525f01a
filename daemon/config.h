/*
 * config.h — hearthd's configuration file, hearth.yaml.
 *
 * The file is YAML (libyaml): one document whose top level is a mapping of
 * the keys listed in docs/config.md, some of them grouped in sections
 * (http, dbus, sampling, plugins, tools, lora, limits, log). It is read once
 * at start into a plain struct hd_config; nothing else in the daemon looks at
 * YAML. The file is strict: a syntax error, an unknown or duplicate key, a
 * value of the wrong type, out of range or not among the allowed words is an
 * error "FILE:LINE:COLUMN: message" (1-based, at the offending key or value),
 * and the daemon refuses to start with it.
 *
 * Every key lives in one declarative table in config.c (path, type, field,
 * range, allowed words, default, doc); the defaults, the parser and the
 * Markdown reference (hd_config_write_doc, docs/config.md) all come from it.
 *
 * Values as the daemon sees them:
 *   - strings and paths are owned (free with hd_config_done). NULL means "not
 *     set": the key was left out, or given as empty ("", null). Then the
 *     caller applies its own default (model, socket, plugin dir).
 *   - paths have "~" and "~/..." expanded to the home directory, and a
 *     relative path is taken relative to the directory of the config file.
 *   - lists (plugins.load, tools.roots, tools.deny) given in the file replace
 *     the default list as a whole.
 *
 * Threading: none inside; a loaded struct hd_config is plain data.
 */
#ifndef HEARTH_DAEMON_CONFIG_H
#define HEARTH_DAEMON_CONFIG_H

#include <hearth/hearth.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* tools.policy.* : what happens when the model calls a tool of that kind. */
enum hd_policy {
    HD_POLICY_ALLOW = 0, /* runs without asking */
    HD_POLICY_ASK = 1,   /* the client is asked to confirm each call */
    HD_POLICY_DENY = 2,  /* never runs */
};

/* log.level: the least severe message logged. */
enum hd_log_level {
    HD_LOG_DEBUG = 0,
    HD_LOG_INFO = 1,
    HD_LOG_WARNING = 2,
    HD_LOG_ERROR = 3,
};

/* One adapter of a LoRA profile, applied with `scale`. */
struct hd_lora_use {
    char *adapter; /* adapter name (looked up in lora.dir by the daemon), owned */
    float scale;
};

/* lora.profiles.NAME: the adapters stacked, in the order written. */
struct hd_lora_profile {
    char *name; /* owned */
    struct hd_lora_use *uses; /* [n_uses], owned; NULL when n_uses is 0 */
    size_t n_uses;
};

struct hd_http_config {
    bool enabled;
    int port;    /* 1..65535, always bound to 127.0.0.1 */
    char *token; /* bearer token required by the HTTP API; NULL: none */
    bool cors;
};

struct hd_dbus_config {
    bool enabled; /* session bus name org.hearth.Hearth1 */
};

/* Defaults for requests that do not say (types as struct hr_sampler_params). */
struct hd_sampling_config {
    float temperature;
    int top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    int max_tokens;
};

struct hd_plugins_config {
    char *dir;   /* path; NULL: the installed plugin directory */
    char **load; /* [n_load] plugin names, owned */
    size_t n_load;
};

struct hd_tools_config {
    char **roots; /* [n_roots] absolute (or config-relative) paths, owned */
    size_t n_roots;
    enum hd_policy policy_read;
    enum hd_policy policy_write;
    enum hd_policy policy_exec;
    char **deny; /* [n_deny] tool names never allowed, owned */
    size_t n_deny;
    int timeout; /* seconds per tool call */
    int approval_timeout; /* seconds a call waits for the client's answer before it is declined */
};

struct hd_lora_config {
    char *dir; /* path; NULL: none */
    struct hd_lora_profile *profiles; /* [n_profiles], owned, in file order */
    size_t n_profiles;
};

struct hd_limits_config {
    size_t max_message_bytes; /* largest JSON-RPC message / HTTP body */
    int max_queue;            /* requests waiting in total before "busy" */
    int max_requests_per_client; /* queued + running per connection */
    int max_clients;
    int max_prompt_tokens; /* 0: the context size */
};

struct hd_log_config {
    enum hd_log_level level;
};

/* Lua scripts (lua/): the sandbox's limits and what it may let through. */
struct hd_lua_config {
    size_t memory;    /* bytes one script may allocate */
    int instructions; /* millions of VM instructions one script may run */
    int slice_ms;     /* longest a script may run without waiting for something */
    bool allow_io, allow_os, allow_debug, allow_modules; /* libraries let into scripts */
};

/* The agent (lua/agent.lua). */
struct hd_agent_config {
    char *script;  /* path of the agent's Lua source; NULL: agent.lua next to the config, else
                      the built-in one */
    int max_steps; /* model turns per task */
    int timeout;   /* seconds per task */
};

/* One field per key of hearth.yaml; see docs/config.md for each. */
struct hd_config {
    char *model;           /* path; NULL: --model or the bundled model */
    int threads;           /* 0: online CPUs */
    int context;           /* KV cache tokens per session; 0: n_ctx_train capped at 4096 */
    int batch;             /* most tokens per forward pass */
    enum hr_type kv_cache; /* HR_TYPE_F32 or HR_TYPE_F16 (for hr_ctx_params.kv_type) */
    int parallel;          /* most requests generating at once */
    int sessions;          /* most sessions kept with their KV cache */
    char *socket;          /* path; NULL: $XDG_RUNTIME_DIR/hearth/hearth.sock */
    struct hd_http_config http;
    struct hd_dbus_config dbus;
    struct hd_sampling_config sampling;
    struct hd_plugins_config plugins;
    struct hd_tools_config tools;
    struct hd_lora_config lora;
    struct hd_limits_config limits;
    struct hd_log_config log;
    struct hd_lua_config lua;
    struct hd_agent_config agent;
};

/* Fills *cfg with the defaults (overwriting it; it holds nothing to free
 * before). tools.roots gets the home directory, or stays empty when there is
 * none. Returns 0, or -ENOMEM (then *cfg is zeroed: hd_config_done is safe).
 * Callers that cannot handle the error may ignore it: a zeroed config is
 * "everything off", never unsafe. */
int hd_config_init(struct hd_config *cfg);

/* Frees every owned string and list and zeroes *cfg. Accepts NULL and a
 * zeroed struct; calling it twice is harmless. */
void hd_config_done(struct hd_config *cfg);

/* Loads the config file `path` over the defaults.
 *
 * path NULL: hd_config_default_path(); when that file does not exist (or
 * there is no home directory) the result is the defaults and 0. An explicit
 * path that does not exist is an error, -ENOENT.
 *
 * *cfg must be zeroed or hold a config (from hd_config_init or an earlier
 * load). On success its old contents are freed and it holds the defaults
 * with the file's keys applied. On failure it is left untouched and err
 * (optional) holds "FILE:LINE:COLUMN: message" with err->line, err->column
 * (1-based) and err->offset (byte offset) of the offending key or value; an
 * error that has no position (cannot read the file) is "FILE: message" with
 * line and column 0.
 *
 * Returns 0, -ENOENT (missing explicit file), -EINVAL (anything wrong in the
 * file), -EFBIG (file larger than 1 MiB), -ENOMEM, or another -errno from
 * reading the file. */
int hd_config_load(const char *path, struct hd_config *cfg, struct hr_err *err);

/* As hd_config_load, from `len` bytes at `buf` (need not be NUL-terminated).
 * `name` is the file name used in messages and for resolving relative paths
 * (its directory part); it is never opened. */
int hd_config_parse(const char *name, const char *buf, size_t len, struct hd_config *cfg,
                    struct hr_err *err);

/* The default config path: $XDG_CONFIG_HOME/hearth/hearth.yaml when
 * XDG_CONFIG_HOME is set to an absolute path, else ~/.config/hearth/hearth.yaml
 * (HOME, or the password database). Owned: free(). NULL when there is no home
 * directory or no memory. */
char *hd_config_default_path(void);

/* Writes the Markdown reference of every key (a table, then a complete
 * config at the defaults) generated from the key table. docs/config.md is a
 * hand-written introduction followed by exactly this output (tests check it;
 * `ninja -C BUILD config-doc` regenerates it). Returns 0 or -EIO. */
int hd_config_write_doc(FILE *f);

/* The line in docs/config.md after which the generated part starts. */
#define HD_CONFIG_DOC_MARKER "<!-- generated by hd_config_write_doc() from daemon/config.c -->"

#endif
