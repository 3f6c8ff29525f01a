/*
 * crashy.c — a test plugin that misbehaves on request, for tests/test_tools.c:
 * it crashes (SIGSEGV), hangs ignoring cancellation, floods output, exits,
 * leaks memory, writes to stdout, emits invalid UTF-8, fails with and
 * without a message — plus well-behaved tools that echo their arguments and
 * workspace and one that runs until cancelled. Never installed.
 */
#include <hearth/plugin.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef const struct hr_host host_t;
typedef struct hr_tool_call call_t;

static int crash(host_t *h, call_t *c)
{
    (void)h;
    (void)c;
    raise(SIGSEGV);
    return 0;
}

static int hang(host_t *h, call_t *c)
{
    (void)h;
    (void)c;
    for (;;)
        pause(); /* deaf to cancellation: only SIGKILL ends this */
    return 0;
}

/* Runs until cancelled (or `ms` milliseconds), then says which. */
static int slow(host_t *h, call_t *c)
{
    int64_t ms = 60000;
    h->arg_int(c, "ms", &ms);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (h->cancelled(c))
            return h->set_error(c, "stopped: cancelled");
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
            break;
        usleep(5000);
    }
    h->appendf(c, "slept %lld ms", (long long)ms);
    return 0;
}

/* Appends 64 KiB blocks until the host says the cap is reached (polite),
 * or forever ignoring it when "rude" is set (then the timeout ends it). */
static int flood(host_t *h, call_t *c)
{
    bool rude = false;
    h->arg_bool(c, "rude", &rude);
    static char block[65536];
    memset(block, 'x', sizeof block);
    for (long i = 0;; i++) {
        int rc = h->append(c, block, sizeof block);
        if (rc == -ENOSPC && !rude)
            return 0;
        if (rc < 0 && rc != -ENOSPC)
            return rc;
    }
}

static int exit_now(host_t *h, call_t *c)
{
    int64_t code = 3;
    h->arg_int(c, "code", &code);
    _exit((int)code);
}

/* Reachable leaked blocks: a global the compiler must keep, so that the
 * allocations are real and no leak checker complains. */
void *crashy_kept[1 << 16];

/* Allocates and touches `mib` MiB, never freed. */
static int leak(host_t *h, call_t *c)
{
    int64_t mib = 64;
    h->arg_int(c, "mib", &mib);
    for (int64_t i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p)
            return -ENOMEM;
        memset(p, (int)i, 1 << 20);
        crashy_kept[i & 0xFFFF] = p;
    }
    return h->appendf(c, "leaked %lld MiB", (long long)mib);
}

static int echo_args(host_t *h, call_t *c)
{
    size_t slen = 0;
    const char *s = h->arg_string(c, "s", &slen);
    int64_t i = 0;
    double d = 0;
    bool b = false;
    int ri = h->arg_int(c, "i", &i);
    int rd = h->arg_number(c, "d", &d);
    int rb = h->arg_bool(c, "b", &b);
    const char *o = h->arg_json(c, "o");
    int wrong = h->arg_int(c, "s", &i); /* a string read as an integer */
    int absent = h->arg_bool(c, "nope", &b);
    h->appendf(c, "s=%s slen=%zu i=%lld(%d) d=%g(%d) b=%d(%d) o=%s wrong=%d absent=%d args=%s",
               s ? s : "(null)", slen, (long long)i, ri, d, rd, (int)b, rb, o ? o : "(null)",
               wrong, absent, c->args_json);
    return 0;
}

static int bad_utf8(host_t *h, call_t *c)
{
    return h->append(c, "ok \xff\xfe end", 9);
}

static int print_stdout(host_t *h, call_t *c)
{
    printf("this goes to stdout, not into the protocol\n{\"id\":999}\n");
    fflush(stdout);
    return h->appendf(c, "printed");
}

static int fail_errno(host_t *h, call_t *c)
{
    (void)h;
    (void)c;
    return -EACCES;
}

static int fail_message(host_t *h, call_t *c)
{
    h->appendf(c, "partial");
    return h->set_error(c, "it went wrong\non two lines");
}

static int workspace(host_t *h, call_t *c)
{
    return h->appendf(c, "%s|fd=%d|cap=%llu|timeout=%lld|tool=%s|id=%lld", c->workspace,
                      c->workspace_fd >= 0, (unsigned long long)c->output_cap,
                      (long long)c->timeout_ms, c->tool, (long long)c->id);
}

static int log_spam(host_t *h, call_t *c)
{
    for (int i = 0; i < 200; i++)
        h->log_message(h, HR_LOG_DEBUG, "log line %d", i);
    return h->appendf(c, "logged");
}

#define TOOL(fn, desc, params)                                                                     \
    static const struct hr_tool fn##_tool = {.struct_size = sizeof(struct hr_tool),               \
                                             .risk = HR_RISK_READ,                                 \
                                             .name = #fn,                                          \
                                             .description = desc,                                  \
                                             .parameters = params,                                 \
                                             .call = fn}

#define NO_ARGS "{\"type\":\"object\",\"additionalProperties\":false}"

TOOL(crash, "Crashes with SIGSEGV.", NO_ARGS);
TOOL(hang, "Hangs forever, deaf to cancellation.", NO_ARGS);
TOOL(slow, "Sleeps until cancelled or ms elapse.",
     "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0}}}");
TOOL(flood, "Appends output until the cap (or forever when rude).",
     "{\"type\":\"object\",\"properties\":{\"rude\":{\"type\":\"boolean\"}}}");
TOOL(exit_now, "Exits the tool host.",
     "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"integer\"}}}");
TOOL(leak, "Leaks memory.",
     "{\"type\":\"object\",\"properties\":{\"mib\":{\"type\":\"integer\",\"minimum\":1,"
     "\"maximum\":4096}}}");
TOOL(echo_args, "Echoes its arguments.",
     "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\"},\"i\":{\"type\":"
     "\"integer\"},\"d\":{\"type\":\"number\"},\"b\":{\"type\":\"boolean\"},\"o\":{\"type\":"
     "\"object\"}}}");
TOOL(bad_utf8, "Returns invalid UTF-8.", NO_ARGS);
TOOL(print_stdout, "Prints to stdout.", NO_ARGS);
TOOL(fail_errno, "Fails with EACCES and no message.", NO_ARGS);
TOOL(fail_message, "Fails with a message after some output.", NO_ARGS);
TOOL(workspace, "Describes its call.", NO_ARGS);
TOOL(log_spam, "Logs 200 lines.", NO_ARGS);

static const struct hr_tool *const tools[] = {
    &crash_tool,      &hang_tool,         &slow_tool,       &flood_tool,     &exit_now_tool,
    &leak_tool,       &echo_args_tool,    &bad_utf8_tool,   &print_stdout_tool,
    &fail_errno_tool, &fail_message_tool, &workspace_tool,  &log_spam_tool};

static const struct hr_plugin plugin = {
    .abi_version = HR_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct hr_plugin),
    .name = "crashy",
    .version = "0",
    .description = "Misbehaves on request (tests only).",
    .n_tools = sizeof tools / sizeof tools[0],
    .tools = tools,
};

HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
    return &plugin;
}
