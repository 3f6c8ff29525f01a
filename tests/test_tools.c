/*
 * test_tools.c — the tool supervisor (daemon/tools.c) with the real tool
 * host process and the real plugins, dlopen()ed, on a real event loop:
 * the tool list, schema checks before anything runs, workspaces and roots,
 * and a misbehaving plugin (tests/plugins/crashy) that crashes, hangs,
 * floods, exits and leaks — each time the call gets an error result, the
 * tool host is replaced, and later calls work. Broken descriptors
 * (tests/plugins/bad) are refused at load with a reason.
 */
#include "toolsutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ALL[] = {"files", "shell", "search", "crashy", NULL};

static void stop(void)
{
    tt_stop();
}

TestSuite(tools, .fini = stop, .timeout = 300);

/* ---- the list ------------------------------------------------------------------ */

Test(tools, lists_every_tool_with_schema_and_risk)
{
    tt_start(ALL, 0, 0);
    size_t n, n_err;
    const struct hd_tool_def *defs = hd_tools_list(tt_tools, &n);
    hd_tools_load_errors(tt_tools, &n_err);
    cr_assert_eq(n_err, 0);
    const char *want[] = {"read_file", "list_dir", "write_file", "edit_file", "stat",
                          "mkdir", "run_shell", "search_text", "find_files", "crash"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(hd_tools_find(tt_tools, want[i]), "no tool %s", want[i]);
    cr_assert_null(hd_tools_find(tt_tools, "nope"));
    /* load order: plugins as listed, tools in their plugin's order */
    cr_assert_str_eq(defs[0].name, "read_file");
    cr_assert_str_eq(defs[0].plugin, "files");
    cr_assert_eq(hd_tools_find(tt_tools, "read_file")->risk, HR_RISK_READ);
    cr_assert_eq(hd_tools_find(tt_tools, "write_file")->risk, HR_RISK_WRITE);
    cr_assert_eq(hd_tools_find(tt_tools, "run_shell")->risk, HR_RISK_EXEC);
    cr_assert_str_eq(hd_tool_risk_name(HR_RISK_EXEC), "exec");
    for (size_t i = 0; i < n; i++) {
        cr_assert(strlen(defs[i].description) > 0);
        json_error_t je;
        json_t *s = json_loads(defs[i].parameters, 0, &je);
        cr_assert(json_is_object(s), "%s: parameters do not parse", defs[i].name);
        cr_assert(json_equal(s, defs[i].schema));
        cr_assert_str_eq(json_string_value(json_object_get(s, "type")), "object");
        json_decref(s);
    }
}

Test(tools, openai_tools_array)
{
    tt_start(ALL, 0, 0);
    char *text = hd_tools_openai_json(tt_tools);
    cr_assert_not_null(text);
    json_error_t je;
    json_t *arr = json_loads(text, 0, &je);
    free(text);
    size_t n;
    hd_tools_list(tt_tools, &n);
    cr_assert(json_is_array(arr));
    cr_assert_eq(json_array_size(arr), n);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        cr_assert_str_eq(json_string_value(json_object_get(e, "type")), "function");
        json_t *fn = json_object_get(e, "function");
        cr_assert(json_is_string(json_object_get(fn, "name")));
        cr_assert(json_is_string(json_object_get(fn, "description")));
        cr_assert(json_is_object(json_object_get(fn, "parameters")));
    }
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(json_array_get(arr, 0), "function"),
                                          "name")),
        "read_file");
    json_decref(arr);
}

Test(tools, broken_plugins_are_refused_with_reasons)
{
    static const char *const load[] = {
        "files",         "bad_abi",      "bad_size",     "bad_name",   "bad_schema",
        "bad_keyword",   "bad_notobject", "bad_dup",     "bad_conflict", "bad_nocall",
        "bad_null",      "bad_risk",     "bad_toolsize", "bad_noentry", "no_such_plugin",
        "Bad/Name",      "search",       NULL};
    tt_start(load, 0, 0);
    size_t n;
    const char *const *errs = hd_tools_load_errors(tt_tools, &n);
    const char *want[] = {"ABI version 99",
                          "bad_size.so: struct_size 8",
                          "'Bad-Name' is not plain snake_case",
                          "parameters are not JSON",
                          "unsupported keyword 'oneOf'",
                          "parameters must be a schema of \"type\": \"object\"",
                          "tool 'bad_one' is defined twice",
                          "tool 'read_file' is already provided by plugin 'files'",
                          "no call function",
                          "returned NULL",
                          "unknown risk class 7",
                          "tool 1: struct_size 8",
                          "no hearth_plugin_entry symbol",
                          "no no_such_plugin.so in",
                          "'Bad/Name' is not plain snake_case"};
    cr_assert_eq(n, sizeof want / sizeof want[0], "%zu load errors", n);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = strstr(errs[k], want[i]) != NULL;
        cr_assert(found, "no load error mentions '%s'", want[i]);
    }
    /* the good plugins around them work, nothing of the bad ones is there */
    cr_assert_null(hd_tools_find(tt_tools, "bad_one"));
    cr_assert_null(hd_tools_find(tt_tools, "bad_two"));
    cr_assert_str_eq(hd_tools_find(tt_tools, "read_file")->plugin, "files");
    cr_assert_not_null(hd_tools_find(tt_tools, "find_files"));
    tt_write("ws/a.txt", "alpha\n");
    struct tt_result r = tt_call("read_file", "{\"path\":\"a.txt\"}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "alpha\n");
    tt_result_done(&r);
}

Test(tools, missing_tool_host_program)
{
    tt_init();
    struct hd_tools_params p;
    hd_tools_params_init(&p, NULL);
    p.toolhost = "/nonexistent/hearth-toolhost";
    char msg[512];
    cr_assert_eq(tt_start_params(&p, msg, sizeof msg), -ENOENT);
    cr_assert_not_null(strstr(msg, "/nonexistent/hearth-toolhost"), "%s", msg);
    cr_assert_null(tt_tools);
}

Test(tools, params_from_config)
{
    struct hd_config cfg;
    cr_assert_eq(hd_config_init(&cfg), 0);
    struct hd_tools_params p;
    hd_tools_params_init(&p, &cfg);
    cr_assert_eq(p.n_load, 3);
    cr_assert_str_eq(p.load[0], "files");
    cr_assert_eq(p.timeout_ms, cfg.tools.timeout * 1000);
    cr_assert_eq(p.n_roots, cfg.tools.n_roots);
    cr_assert_gt(p.output_cap, 0);
    hd_config_done(&cfg);
}

Test(tools, update_applies_roots_and_limits)
{
    tt_start(ALL, 0, 0);
    struct hd_tools_params p;
    hd_tools_params_init(&p, NULL);
    const char *roots[] = {tt_path("outside")};
    p.load = ALL;
    p.n_load = 4;
    p.roots = roots;
    p.n_roots = 1;
    p.timeout_ms = 1500;
    p.output_cap = 99;
    cr_assert_eq(hd_tools_update(tt_tools, &p), 0);
    struct tt_result r = tt_call_in("workspace", "{}", tt_path("outside"), NULL);
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "|cap=99|timeout=1500|"), "%s", r.output);
    tt_result_done(&r);
    r = tt_call("workspace", "{}");
    tt_assert_error(&r, HD_TOOL_INVALID, "not inside the allowed roots");
    tt_result_done(&r);
    /* another plugin list cannot be applied in place */
    p.n_load = 1;
    cr_assert_eq(hd_tools_update(tt_tools, &p), 1);
    p.timeout_ms = 0;
    cr_assert_eq(hd_tools_update(tt_tools, &p), -EINVAL);
}

/* ---- checks before a call runs ---------------------------------------------------------- */

Test(tools, arguments_are_validated_against_the_schema)
{
    tt_start(ALL, 0, 0);
    struct {
        const char *tool, *args, *needle;
    } cases[] = {
        {"nope", "{}", "unknown tool 'nope'"},
        {"read_file", "{\"path\":", "not valid JSON"},
        {"read_file", "[1]", "must be a JSON object"},
        {"read_file", "{}", "missing required property 'path'"},
        {"read_file", "{\"path\":3}", "$.path: expected string, got integer"},
        {"read_file", "{\"path\":\"a\",\"start_line\":0}", "$.start_line: 0 is less than"},
        {"read_file", "{\"path\":\"a\",\"start_line\":1.5}", "expected integer"},
        {"read_file", "{\"path\":\"a\",\"mode\":1}", "unknown property 'mode'"},
        {"read_file", "{\"path\":\"\"}", "shorter than the minimum 1"},
        {"find_files", "{\"pattern\":\"*\",\"type\":\"link\"}", "is not one of"},
        {"run_shell", "{\"command\":\"true\",\"timeout\":100000}", "greater than the maximum"},
        {"read_file", "{\"path\":\"a\",\"path\":\"b\"}", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_result r = tt_call(cases[i].tool, cases[i].args);
        tt_assert_error(&r, HD_TOOL_INVALID, cases[i].needle);
        tt_result_done(&r);
        struct hr_err err;
        cr_assert_lt(hd_tools_validate(tt_tools, cases[i].tool, cases[i].args, &err), 0);
        cr_assert_not_null(strstr(err.msg, cases[i].needle), "%s", err.msg);
    }
    struct hr_err err;
    cr_assert_eq(hd_tools_validate(tt_tools, "read_file", "{\"path\":\"x\"}", &err), 0);
    cr_assert_eq(hd_tools_validate(tt_tools, "list_dir", NULL, &err), 0);
    cr_assert_eq(hd_tools_validate(tt_tools, "list_dir", "", &err), 0);
    /* the maxLength of a string counts characters, not bytes */
    char args[64];
    snprintf(args, sizeof args, "{\"pattern\":\"%s\"}", "\xc3\xa9\xc3\xa9");
    cr_assert_eq(hd_tools_validate(tt_tools, "find_files", args, &err), 0);
    /* nothing ran: no tool host call was answered */
    struct hd_tools_stats st;
    hd_tools_get_stats(tt_tools, &st);
    cr_assert_eq(st.host_starts, 1);
}

Test(tools, workspace_must_be_an_existing_directory_inside_the_roots)
{
    tt_start(ALL, 0, 0);
    struct tt_result r = tt_call_in("workspace", "{}", "relative/dir", NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "absolute");
    tt_result_done(&r);
    r = tt_call_in("workspace", "{}", tt_path("ws/missing"), NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "not an existing directory");
    tt_result_done(&r);
    r = tt_call_in("workspace", "{}", tt_path("outside"), NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "not inside the allowed roots");
    tt_result_done(&r);
    r = tt_call_in("workspace", "{}", tt_path("ws/../outside"), NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "not inside the allowed roots");
    tt_result_done(&r);
    /* a sibling whose name starts like the root is not inside it */
    cr_assert_eq(mkdir(tt_path("ws2"), 0755), 0);
    r = tt_call_in("workspace", "{}", tt_path("ws2"), NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "not inside the allowed roots");
    tt_result_done(&r);
    /* a symlink into the root is resolved: the tool sees the real path */
    cr_assert_eq(mkdir(tt_path("ws/sub"), 0755), 0);
    cr_assert_eq(symlink(tt_path("ws/sub"), tt_path("outside/link")), 0);
    r = tt_call_in("workspace", "{}", tt_path("outside/link"), NULL);
    tt_assert_ok(&r);
    char want[4300];
    snprintf(want, sizeof want, "%s|fd=1|", tt_path("ws/sub"));
    cr_assert(strncmp(r.output, want, strlen(want)) == 0, "%s", r.output);
    tt_result_done(&r);
    /* and a symlink out of the root is refused */
    cr_assert_eq(symlink(tt_path("outside"), tt_path("ws/out")), 0);
    r = tt_call_in("workspace", "{}", tt_path("ws/out"), NULL);
    tt_assert_error(&r, HD_TOOL_INVALID, "not inside the allowed roots");
    tt_result_done(&r);
}

Test(tools, call_details_reach_the_plugin)
{
    tt_start(ALL, 4000, 12345);
    struct tt_result r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    char want[4300];
    snprintf(want, sizeof want, "%s|fd=1|cap=12345|timeout=4000|tool=workspace|id=", tt_ws());
    cr_assert(strncmp(r.output, want, strlen(want)) == 0, "%s", r.output);
    tt_result_done(&r);
    struct hd_tools_call_opts o = {.timeout_ms = 2500, .output_cap = 777};
    r = tt_call_in("workspace", NULL, tt_ws(), &o);
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "|cap=777|timeout=2500|"), "%s", r.output);
    tt_result_done(&r);
}

Test(tools, arguments_through_the_host_services)
{
    tt_start(ALL, 0, 0);
    struct tt_result r = tt_call(
        "echo_args",
        "{\"s\":\"h\\u00e9llo\",\"i\":-42,\"d\":2.5,\"b\":true,\"o\":{\"k\":[1,2]}}");
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "s=h\xc3\xa9llo slen=6 i=-42(0) d=2.5(0) b=1(0) "
                                        "o={\"k\":[1,2]}"),
                       "%s", r.output);
    cr_assert_not_null(strstr(r.output, "wrong=-22 absent=-2"), "%s", r.output);
    tt_result_done(&r);
    /* integral reals are integers (JSON Schema), read by arg_int */
    r = tt_call("echo_args", "{\"i\":7.0}");
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "i=7(0)"), "%s", r.output);
    tt_result_done(&r);
    /* absent arguments: -ENOENT */
    r = tt_call("echo_args", "{}");
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "s=(null) slen=0 i=0(-2) d=0(-2) b=0(-2) o=(null)"),
                       "%s", r.output);
    tt_result_done(&r);
}

/* ---- results -------------------------------------------------------------------------- */

Test(tools, errors_from_plugins)
{
    tt_start(ALL, 0, 0);
    struct tt_result r = tt_call("fail_errno", "{}");
    tt_assert_error(&r, HD_TOOL_FAILED, "fail_errno failed: Permission denied");
    tt_result_done(&r);
    r = tt_call("fail_message", "{}");
    tt_assert_error(&r, HD_TOOL_FAILED, "it went wrong on two lines");
    cr_assert_null(strchr(r.error, '\n'));
    cr_assert_str_eq(r.output, "partial");
    struct hd_tool_result res = {.status = r.status, .output = r.output, .output_len = r.len,
                                 .error = r.error};
    char *text = hd_tool_result_text(&res);
    cr_assert_str_eq(text, "partial\nerror: it went wrong on two lines");
    free(text);
    tt_result_done(&r);
}

Test(tools, invalid_utf8_and_stdout_do_not_break_the_protocol)
{
    tt_start(ALL, 0, 0);
    struct tt_result r = tt_call("bad_utf8", "{}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "ok \xef\xbf\xbd\xef\xbf\xbd end");
    tt_result_done(&r);
    r = tt_call("print_stdout", "{}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "printed");
    tt_result_done(&r);
    r = tt_call("log_spam", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
    r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
    struct hd_tools_stats st;
    hd_tools_get_stats(tt_tools, &st);
    cr_assert_eq(st.host_starts, 1, "the tool host was restarted");
    cr_assert_eq(st.crashes, 0);
}

Test(tools, output_is_capped)
{
    tt_start(ALL, 0, 1000);
    struct tt_result r = tt_call("flood", "{}");
    tt_assert_ok(&r);
    cr_assert(r.truncated);
    cr_assert_eq(r.len, 1000);
    struct hd_tool_result res = {.status = r.status, .output = r.output, .output_len = r.len,
                                 .truncated = true};
    char *text = hd_tool_result_text(&res);
    cr_assert_not_null(strstr(text, "[output truncated after 1000 bytes]"));
    free(text);
    tt_result_done(&r);
    /* a small cap per call */
    struct hd_tools_call_opts o = {.output_cap = 10};
    r = tt_call_in("flood", "{}", tt_ws(), &o);
    cr_assert(r.truncated);
    cr_assert_eq(r.len, 10);
    tt_result_done(&r);
}

/* ---- misbehaving plugins ----------------------------------------------------------------- */

Test(tools, a_crash_fails_the_call_and_the_next_call_works)
{
    tt_start(ALL, 0, 0);
    struct hd_tools_stats before, after;
    hd_tools_get_stats(tt_tools, &before);
    struct tt_result r = tt_call("crash", "{}");
    /* SIGSEGV, or SIGABRT when a sanitizer reports it first */
    tt_assert_error(&r, HD_TOOL_CRASHED, "tool host crashed (signal ");
    tt_result_done(&r);
    tt_write("ws/a.txt", "after the crash\n");
    r = tt_call("read_file", "{\"path\":\"a.txt\"}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "after the crash\n");
    tt_result_done(&r);
    hd_tools_get_stats(tt_tools, &after);
    cr_assert_eq(after.host_starts, before.host_starts + 1);
    cr_assert_eq(after.crashes, 1);
    cr_assert_neq(after.host_pid, before.host_pid);
}

Test(tools, a_hang_times_out_and_the_next_call_works)
{
    tt_start(ALL, 1000, 0);
    struct hd_tools_stats before, after;
    hd_tools_get_stats(tt_tools, &before);
    pid_t old = before.host_pid;
    struct tt_result r = tt_call("hang", "{}");
    tt_assert_error(&r, HD_TOOL_TIMEOUT, "timed out after 1 s");
    tt_result_done(&r);
    r = tt_call("echo_args", "{\"s\":\"alive\"}");
    tt_assert_ok(&r);
    cr_assert_not_null(strstr(r.output, "s=alive"));
    tt_result_done(&r);
    hd_tools_get_stats(tt_tools, &after);
    cr_assert_eq(after.timeouts, 1);
    cr_assert_eq(after.host_starts, before.host_starts + 1);
    /* the old tool host is gone (killed and reaped) */
    cr_assert_eq(kill(old, 0), -1);
    /* a rude flood (appending forever past the cap) ends the same way */
    r = tt_call("flood", "{\"rude\":true}");
    tt_assert_error(&r, HD_TOOL_TIMEOUT, "timed out after 1 s");
    tt_result_done(&r);
}

Test(tools, an_exit_fails_the_call)
{
    tt_start(ALL, 0, 0);
    struct tt_result r = tt_call("exit_now", "{\"code\":3}");
    tt_assert_error(&r, HD_TOOL_CRASHED, "tool host exited (exit status 3)");
    tt_result_done(&r);
    r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
}

Test(tools, a_leaking_host_is_replaced_after_the_call)
{
    tt_init();
    struct hd_tools_params p;
    hd_tools_params_init(&p, NULL);
    const char *roots[] = {tt_ws()};
    p.load = ALL;
    p.n_load = 4;
    p.roots = roots;
    p.n_roots = 1;
    p.host_rss_limit_mib = 200;
    cr_assert_eq(tt_start_params(&p, NULL, 0), 0);
    struct hd_tools_stats before, after;
    hd_tools_get_stats(tt_tools, &before);
    struct tt_result r = tt_call("leak", "{\"mib\":300}");
    tt_assert_ok(&r); /* the call itself succeeded */
    cr_assert_str_eq(r.output, "leaked 300 MiB");
    tt_result_done(&r);
    r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
    hd_tools_get_stats(tt_tools, &after);
    cr_assert_eq(after.host_starts, before.host_starts + 1);
    cr_assert_eq(after.crashes, 0);
}

/* ---- several calls, cancellation ------------------------------------------------------------ */

struct seq {
    int n;
    int64_t ids[8];
    enum hd_tool_status status[8];
    int64_t chained; /* a call made from inside a callback */
};

static void on_seq(void *user, const struct hd_tool_result *res)
{
    struct seq *s = user;
    cr_assert_lt(s->n, 8);
    s->ids[s->n] = res->id;
    s->status[s->n++] = res->status;
    if (s->n == 2 && !s->chained)
        s->chained = hd_tools_call(tt_tools, "workspace", "{}", tt_ws(), on_seq, s);
    if (s->n == 6)
        hd_loop_quit(tt_loop);
}

Test(tools, calls_are_answered_in_order_across_a_crash)
{
    tt_start(ALL, 0, 0);
    struct seq s = {0};
    int64_t a = hd_tools_call(tt_tools, "workspace", "{}", tt_ws(), on_seq, &s);
    int64_t b = hd_tools_call(tt_tools, "crash", "{}", tt_ws(), on_seq, &s);
    int64_t c = hd_tools_call(tt_tools, "nope", "{}", tt_ws(), on_seq, &s);
    int64_t d = hd_tools_call(tt_tools, "workspace", "{}", tt_ws(), on_seq, &s);
    int64_t e = hd_tools_call(tt_tools, "echo_args", "{}", tt_ws(), on_seq, &s);
    cr_assert(a > 0 && b > a && c > b && d > c && e > d);
    cr_assert_eq(s.n, 0, "a callback ran inside hd_tools_call");
    cr_assert_eq(hd_loop_run(tt_loop), 0);
    cr_assert_eq(s.n, 6);
    /* the refused call comes whenever the loop gets to it (it never
     * queued); the others in the order made, the crash between them */
    int64_t want[] = {a, b, d, e, s.chained};
    enum hd_tool_status want_status[] = {HD_TOOL_OK, HD_TOOL_CRASHED, HD_TOOL_OK, HD_TOOL_OK,
                                         HD_TOOL_OK};
    int k = 0;
    for (int i = 0; i < 6; i++) {
        if (s.ids[i] == c) {
            cr_assert_eq(s.status[i], HD_TOOL_INVALID);
            continue;
        }
        cr_assert_lt(k, 5);
        cr_assert_eq(s.ids[i], want[k], "result %d is call %lld", i, (long long)s.ids[i]);
        cr_assert_eq(s.status[i], want_status[k]);
        k++;
    }
    cr_assert_eq(k, 5);
}

static void never(void *user, const struct hd_tool_result *res)
{
    (void)user;
    cr_assert_fail("callback of cancelled call %lld", (long long)res->id);
}

static void quit_later(void *user)
{
    (void)user;
    hd_loop_quit(tt_loop);
}

Test(tools, cancelled_calls_get_no_callback)
{
    tt_start(ALL, 0, 0);
    struct hd_tools_stats before, after;
    hd_tools_get_stats(tt_tools, &before);
    /* running and cooperative: stops, the tool host stays */
    int64_t running = hd_tools_call(tt_tools, "slow", "{}", tt_ws(), never, NULL);
    int64_t queued = hd_tools_call(tt_tools, "slow", "{}", tt_ws(), never, NULL);
    int64_t refused = hd_tools_call(tt_tools, "nope", "{}", tt_ws(), never, NULL);
    hd_tools_cancel(tt_tools, queued);
    hd_tools_cancel(tt_tools, refused);
    hd_loop_add_timer(tt_loop, 200, false, quit_later, NULL);
    hd_loop_run(tt_loop);
    hd_tools_cancel(tt_tools, running);
    hd_tools_cancel(tt_tools, running); /* twice: harmless */
    hd_tools_cancel(tt_tools, 12345);   /* unknown: harmless */
    struct tt_result r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
    hd_tools_get_stats(tt_tools, &after);
    cr_assert_eq(after.host_starts, before.host_starts);
    /* running and deaf to it: the tool host is killed after the grace time */
    int64_t deaf = hd_tools_call(tt_tools, "hang", "{}", tt_ws(), never, NULL);
    hd_loop_add_timer(tt_loop, 200, false, quit_later, NULL);
    hd_loop_run(tt_loop);
    hd_tools_cancel(tt_tools, deaf);
    r = tt_call("workspace", "{}");
    tt_assert_ok(&r);
    tt_result_done(&r);
    hd_tools_get_stats(tt_tools, &after);
    cr_assert_eq(after.host_starts, before.host_starts + 1);
}

Test(tools, free_with_calls_pending)
{
    tt_start(ALL, 0, 0);
    hd_tools_call(tt_tools, "slow", "{}", tt_ws(), never, NULL);
    hd_tools_call(tt_tools, "hang", "{}", tt_ws(), never, NULL);
    hd_loop_add_timer(tt_loop, 100, false, quit_later, NULL);
    hd_loop_run(tt_loop);
    struct hd_tools_stats st;
    hd_tools_get_stats(tt_tools, &st);
    pid_t pid = st.host_pid;
    cr_assert_gt(pid, 0);
    /* a refused call still waiting for delivery is dropped too */
    hd_tools_call(tt_tools, "nope", "{}", tt_ws(), never, NULL);
    hd_tools_free(tt_tools);
    tt_tools = NULL;
    cr_assert_eq(kill(pid, 0), -1, "the tool host outlived hd_tools_free");
}
