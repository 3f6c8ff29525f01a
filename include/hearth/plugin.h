/*
 * hearth/plugin.h — the tool plugin ABI: how a shared object gives hearth
 * tools the model can call, and the services hearth lends it while a call
 * runs. This header is the whole contract; a plugin includes it and libc and
 * nothing else from hearth, and never links against the daemon.
 *
 * Shape (PipeWire SPA style):
 *
 *   - A plugin is a shared object NAME.so exporting one symbol,
 *     `hearth_plugin_entry` (HR_PLUGIN_ENTRY), a function returning a
 *     pointer to a constant struct hr_plugin: the plugin's name, version and
 *     tools. Each struct hr_tool names a tool, describes it for the model,
 *     gives the JSON Schema of its arguments, its risk class, and the C
 *     function that runs it.
 *   - Calls go the other way through struct hr_host, a table of services
 *     the host passes in: logging, allocation, the call's arguments, the path
 *     policy (files inside the call's workspace only), cancellation and the
 *     result builder. struct hr_tool_call carries the call's own data.
 *
 * Versions. Every struct starts with (or carries) a struct_size and the
 * entry struct and the host table also an abi_version. HR_PLUGIN_ABI_VERSION
 * changes only for an incompatible change, which the structs' append-only
 * rule exists to avoid: new fields and methods are only ever appended, so a
 * plugin built against an older header keeps working (the host reads only
 * the first struct_size bytes the plugin declares and treats later members
 * as absent), and a plugin built against a newer header checks a member with
 * HR_HOST_HAS before using anything the running host might lack. The sizes,
 * offsets and enum values of this version are pinned by tests/abi/.
 * Changes are recorded in docs/api-changes.md ("Plugin ABI").
 *
 * Where plugins run. Not inside hearthd: the tool host (hearth-toolhost), a
 * child process of the daemon, dlopen()s the plugins at start, checks every
 * descriptor (ABI version, sizes, names, schemas) and runs the calls. A
 * plugin that crashes, hangs past the call's timeout or floods its output is
 * killed with the whole tool host, the call gets an error result, and a new
 * tool host serves the next call. Plugins are never dlclose()d: global
 * state, atexit handlers and threads a plugin starts stay valid for the
 * process's life (which may end at any time with SIGKILL — keep nothing
 * important only in memory).
 *
 * Threading. The host runs one call at a time, on its main thread. A tool
 * function may start threads, but must join them before it returns; the
 * hr_host services may be called only from the thread that runs the call,
 * and only during the call (hr_host.log also from `init`).
 *
 * Errors. Functions that can fail return an int: >= 0 on success, a
 * negative errno on failure (never -1 with errno set). A tool reports
 * failure by calling hr_host.set_error with a one-line message for the model
 * (what went wrong and, ideally, what to do instead), and/or by returning a
 * negative errno (the host then writes "NAME failed: <strerror>" if no
 * message was set). Nothing a plugin gets from the model can be trusted: the
 * host has validated the arguments against the tool's schema, but a path can
 * still try to leave the workspace, and a number can still be huge within
 * the schema's bounds.
 *
 * Minimal plugin (see plugins/example/ and docs/plugins.md):
 *
 *     #include <hearth/plugin.h>
 *
 *     static int hello(const struct hr_host *h, struct hr_tool_call *c)
 *     {
 *         const char *who = h->arg_string(c, "name", NULL);
 *         return h->appendf(c, "hello, %s", who ? who : "world");
 *     }
 *     static const struct hr_tool hello_tool = {
 *         .struct_size = sizeof(struct hr_tool), .risk = HR_RISK_READ,
 *         .name = "hello", .description = "Greets someone.",
 *         .parameters = "{\"type\":\"object\",\"properties\":"
 *                       "{\"name\":{\"type\":\"string\"}}}",
 *         .call = hello,
 *     };
 *     static const struct hr_tool *const tools[] = {&hello_tool};
 *     static const struct hr_plugin plugin = {
 *         .abi_version = HR_PLUGIN_ABI_VERSION, .struct_size = sizeof plugin,
 *         .name = "hello", .version = "1.0", .description = "Greetings.",
 *         .n_tools = 1, .tools = tools,
 *     };
 *     HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
 *     {
 *         return &plugin;
 *     }
 */
#ifndef HEARTH_PLUGIN_H
#define HEARTH_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. A host loads plugins whose abi_version is
 * equal; a plugin sees the host's in hr_host.abi_version. */
#define HR_PLUGIN_ABI_VERSION 1u

/* The one symbol a plugin exports (build with -fvisibility=hidden and mark
 * the entry with HR_PLUGIN_EXPORT, so that nothing else leaks out). */
#define HR_PLUGIN_ENTRY "hearth_plugin_entry"
#define HR_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Longest plugin or tool name, in bytes. Names are plain snake_case,
 * [a-z][a-z0-9_]*, so that they work in every model's tool-call format. */
#define HR_PLUGIN_NAME_MAX 64

/* What a tool may do to the user's machine. The policy (tools.policy.* in
 * hearth.yaml) decides per class whether a call runs, asks the user, or is
 * refused; declare the strongest thing the tool can do. */
enum hr_tool_risk {
    HR_RISK_READ = 0,  /* only reads (files, directory listings, searches) */
    HR_RISK_WRITE = 1, /* creates, changes or deletes files */
    HR_RISK_EXEC = 2,  /* runs programs */
};

/* Levels for hr_host.log_message (the daemon's log.level filters them). */
enum hr_log_level {
    HR_LOG_DEBUG = 0,
    HR_LOG_INFO = 1,
    HR_LOG_WARNING = 2,
    HR_LOG_ERROR = 3,
};

struct hr_host;
struct hr_tool_call;

/* Runs one call. Reads the arguments and the workspace through `host` and
 * `call`, builds the result with host->append/appendf, and returns 0 on
 * success. Failure: host->set_error and/or a negative errno (see the file
 * comment). `host` and `call` are borrowed for the duration of the call. */
typedef int (*hr_tool_fn)(const struct hr_host *host, struct hr_tool_call *call);

/* One tool. Static constant data owned by the plugin (never freed). */
struct hr_tool {
    uint32_t struct_size; /* sizeof(struct hr_tool) as the plugin was built */
    uint32_t risk;        /* enum hr_tool_risk */
    /* [a-z][a-z0-9_]*, at most HR_PLUGIN_NAME_MAX bytes, unique among all
     * loaded plugins (a later duplicate is refused). */
    const char *name;
    /* For the model: what the tool does, when to use it, what it returns.
     * One paragraph, plain text, at most 4096 bytes. */
    const char *description;
    /* JSON Schema (a JSON text) of the arguments object: {"type":"object",
     * "properties":{...},"required":[...],"additionalProperties":false}.
     * Supported keywords: type, properties, required, additionalProperties,
     * items, enum, const, minLength, maxLength, minimum, maximum,
     * exclusiveMinimum, exclusiveMaximum, minItems, maxItems, plus the
     * annotations title, description, default, examples, format, $schema,
     * $comment. Anything else makes the host refuse the tool, so a schema
     * never promises a check that is not made. `default` is documentation
     * only: an argument left out is absent, the tool applies its default. */
    const char *parameters;
    hr_tool_fn call; /* required */
};

/* What hearth_plugin_entry returns: static constant data owned by the
 * plugin, valid for the life of the process. */
struct hr_plugin {
    uint32_t abi_version; /* HR_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct hr_plugin) */
    const char *name;     /* as tool names; conventionally the .so's name */
    const char *version;  /* free-form, e.g. "1.2.0" */
    const char *description; /* one line, for `hearth tools` */
    size_t n_tools;
    const struct hr_tool *const *tools; /* [n_tools] */
    /* Optional (NULL: none). Called once after the descriptor is accepted,
     * before any call; may log. Returning a negative errno refuses the
     * plugin (log why first). */
    int (*init)(const struct hr_host *host);
};

/* The call being run. Owned by the host; valid (and constant) until the
 * tool function returns. */
struct hr_tool_call {
    uint32_t struct_size; /* sizeof(struct hr_tool_call) as the host was built */
    uint32_t reserved;
    int64_t id;            /* unique per tool host, for log messages */
    const char *tool;      /* the tool's name */
    const char *args_json; /* the arguments object as compact JSON text */
    /* The workspace: an absolute, canonical directory path inside the
     * configured roots, and a descriptor of it (O_RDONLY|O_DIRECTORY). All
     * file access goes beneath it, through host->open_path. Do not close
     * the descriptor; do not chdir() the tool host (other calls follow). */
    const char *workspace;
    int workspace_fd;
    int reserved2;
    /* Limits. deadline_ms is on CLOCK_MONOTONIC (milliseconds): past it the
     * daemon kills the tool host. A tool that runs long work (a child
     * process, a big search) should stop a little before it and say so. */
    int64_t timeout_ms;
    int64_t deadline_ms;
    uint64_t output_cap; /* bytes of result text kept (see append) */
};

/* The host's services. Owned by the host, valid for the life of the
 * process; the same table for every call of a plugin. */
struct hr_host {
    uint32_t abi_version; /* the host's HR_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct hr_host) as the host was built */

    /* Writes one line to the daemon's log, prefixed with the plugin's name.
     * level: enum hr_log_level. Rate-limited per call. */
    void (*log_message)(const struct hr_host *host, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* realloc() on the host's behalf: ptr NULL allocates, size 0 frees
     * (returns NULL). Returns NULL when out of memory (ptr stays valid).
     * Today this is the C library's realloc; a host may account for or cap
     * plugin memory through it. Plugins may use malloc() too (the tool host
     * watches its total memory after every call either way); memory is
     * theirs to free in both cases. */
    void *(*alloc)(const struct hr_host *host, void *ptr, size_t size);

    /* ---- arguments (already validated against the tool's schema) ---- */

    /* The string argument `name` (a top-level key of the arguments): a
     * NUL-terminated UTF-8 string, borrowed until the call returns, or NULL
     * when absent or not a string. *len (optional) gets its length in bytes
     * (the string may contain NUL bytes). */
    const char *(*arg_string)(struct hr_tool_call *call, const char *name, size_t *len);
    /* Integer, number and boolean arguments. Return 0 and set *out; -ENOENT
     * when absent (or null): *out untouched, apply your default; -EINVAL
     * when of another type; -ERANGE (arg_int) when not an integer within
     * int64_t. arg_number accepts integers too. */
    int (*arg_int)(struct hr_tool_call *call, const char *name, int64_t *out);
    int (*arg_number)(struct hr_tool_call *call, const char *name, double *out);
    int (*arg_bool)(struct hr_tool_call *call, const char *name, bool *out);
    /* Any argument as compact JSON text (arrays, objects), borrowed until
     * the call returns; NULL when absent. */
    const char *(*arg_json)(struct hr_tool_call *call, const char *name);

    /* ---- the path policy ---- */

    /* Opens `path`, relative to the workspace, like openat2(workspace_fd,
     * path, {flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS}):
     * refused with -EXDEV are absolute paths, any ".." component, and
     * symbolic links (at any step) that lead outside the workspace or are
     * absolute; /proc-style magic links give -ELOOP. "." is the workspace.
     * flags as open(2) (O_CLOEXEC is added). Returns the descriptor (owned:
     * close() it) or a negative errno (-ENOENT, -ENOTDIR, -EACCES, ...). A
     * kernel without openat2 gives -ENOSYS: the file tools refuse to work
     * rather than fall back to something weaker. */
    int (*open_path)(struct hr_tool_call *call, const char *path, int flags, unsigned mode);
    /* Sets the call's error to a clear message for the failure `err` (a
     * negative errno from open_path) on `path` — "'../x' leaves the
     * workspace ('..' is not allowed)", "'/etc/passwd' is an absolute path;
     * use a path relative to the workspace", "'a.txt': no such file or
     * directory" — and returns err, so: return host->path_error(c, p, fd); */
    int (*path_error)(struct hr_tool_call *call, const char *path, int err);

    /* ---- cancellation ---- */

    /* True once the daemon cancelled the call or its deadline passed. Cheap
     * enough to call every few milliseconds; long loops should, and then
     * return promptly (set_error or a partial result, as fits). */
    bool (*cancelled)(struct hr_tool_call *call);

    /* ---- the result ---- */

    /* Appends text to the result (UTF-8; invalid bytes are replaced when
     * the result is sent). At most call->output_cap bytes are kept: past it
     * append keeps what fits (cut at a character boundary), marks the result
     * truncated (the model is told) and returns -ENOSPC, also for every
     * later append; stop producing output then. Returns 0 otherwise. */
    int (*append)(struct hr_tool_call *call, const char *text, size_t len);
    int (*appendf)(struct hr_tool_call *call, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Marks the call failed with a one-line message for the model (a later
     * set_error replaces it; at most 4096 bytes are kept). Text appended so
     * far is sent along as partial output. Returns -EIO, so that
     * `return host->set_error(c, "...")` fails the call. */
    int (*set_error)(struct hr_tool_call *call, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Bytes append can still take before the cap. */
    uint64_t (*output_room)(struct hr_tool_call *call);
};

/* True when the struct at p (with a struct_size field) of type `type` is
 * large enough to hold `member`. */
#define HR_STRUCT_HAS(p, type, member)                                                             \
    ((p)->struct_size >= offsetof(type, member) + sizeof(((type *)0)->member))
/* True when the host provides method `member`: use before calling any
 * method added after ABI version 1 (all version-1 methods are always set). */
#define HR_HOST_HAS(host, member)                                                                  \
    (HR_STRUCT_HAS(host, struct hr_host, member) && (host)->member != NULL)

/* The entry point every plugin defines (and exports with HR_PLUGIN_EXPORT).
 * Called once, right after dlopen; must return the same constant pointer
 * on every call, or NULL to refuse loading. */
const struct hr_plugin *hearth_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif
