/*
 * toolsutil.h — shared by the tools tests (test_tools.c, test_plugins_*.c):
 * a real event loop with a real struct hd_tools — the real hearth-toolhost
 * loading the real plugins by dlopen (HEARTH_TOOLHOST, HEARTH_PLUGIN_DIR set
 * by tests/meson.build) — a scratch tree to work in, and calls made
 * synchronously by running the loop until the callback comes.
 *
 * The scratch tree is BASE/ws (the workspace, the only root) and
 * BASE/outside (a place tools must not reach), BASE a fresh directory under
 * /var/tmp (not /tmp: run_shell gives commands a private /tmp only when the
 * workspace is not under /tmp).
 */
#ifndef HEARTH_TESTS_TOOLSUTIL_H
#define HEARTH_TESTS_TOOLSUTIL_H

#include "loop.h"
#include "tools.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tt_result {
    int64_t id;
    bool done;
    enum hd_tool_status status;
    char *output; /* owned, NUL-terminated */
    size_t len;
    bool truncated;
    char *error; /* owned; NULL when OK */
};

extern struct hd_loop *tt_loop;
extern struct hd_tools *tt_tools;

/* Makes the scratch tree and a loop; does not start the tools. */
void tt_init(void);
/* tt_init, then hd_tools with `plugins` (NULL-terminated names), roots
 * {BASE/ws}, and the given per-call timeout (ms) and output cap (0: the
 * defaults). Asserts success. */
void tt_start(const char *const *plugins, int timeout_ms, size_t output_cap);
/* Starts hd_tools with p (load, roots... as the caller set them). Returns
 * hd_tools_new's value. */
int tt_start_params(const struct hd_tools_params *p, char *msg, size_t cap);
/* Frees the tools and the loop, removes the scratch tree. */
void tt_stop(void);

const char *tt_base(void);
const char *tt_ws(void);
/* BASE/rel. Rotating static buffers: valid until the 8th next call. */
const char *tt_path(const char *rel);
/* Writes / reads BASE/rel (parents created on write). tt_read: owned, NULL
 * when missing. */
void tt_write(const char *rel, const char *content);
char *tt_read(const char *rel);
bool tt_exists(const char *rel);

/* Calls a tool in the workspace and waits for the result. */
struct tt_result tt_call(const char *tool, const char *args_json);
struct tt_result tt_call_in(const char *tool, const char *args_json, const char *workspace,
                            const struct hd_tools_call_opts *opts);
void tt_result_done(struct tt_result *r);

/* Criterion assertions on a result. */
void tt_assert_ok(const struct tt_result *r);
void tt_assert_error(const struct tt_result *r, enum hd_tool_status status, const char *needle);

#endif
