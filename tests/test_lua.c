/*
 * test_lua.c — Lua scripts in hearthd (lua/, docs/lua.md): the real hearthd
 * with the real tool host and plugins, scripts sent with script.run.
 *
 * What is checked: output, logs, arguments and results; JSON; the sandbox
 * (what is missing, binary chunks, __gc); the limits — a runaway loop (also
 * one hiding in pcall), the instruction budget, memory bombs, a slow C call
 * (a backtracking pattern), the bounded string.rep and table functions —
 * each stopped with a clear error while hearthd keeps serving; tracebacks;
 * model requests with streaming callbacks against the socket's own
 * answers; coroutines, tasks and timers; cancel and a client that leaves;
 * tools from Lua with approvals; `hearth run`. The pattern functions are
 * also compared with the standard Lua library run in this process (a
 * differential test: hearthd's matcher is its own code).
 */
#include "daemonutil.h"
#include "test_agent_util.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERR_SCRIPT (-32008)
#define ERR_CANCELLED (-32010)

static struct du_daemon d;
static const char *ws;
static char ws_buf[128];

static void start(const char *tools_yaml, const char *extra_yaml)
{
    snprintf(ws_buf, sizeof ws_buf, "%s", at_workspace_new());
    ws = ws_buf;
    at_start(&d, ws, tools_yaml, extra_yaml);
}

static void stop(void)
{
    du_stop(&d);
    at_workspace_free(ws);
}

/* Runs `src` on a fresh connection; returns the response (owned). */
static json_t *run(const char *src, json_t **notes)
{
    struct du_conn *c = du_connect(d.socket);
    json_t *r = at_script(c, src, ws, AT_DECLINE, notes);
    du_close(c);
    return r;
}

/* Runs `src` and returns result[0] as a new reference. */
static json_t *run1(const char *src)
{
    json_t *resp = run(src, NULL);
    json_t *v = json_incref(json_array_get(json_object_get(at_result(resp), "result"), 0));
    json_decref(resp);
    return v;
}

/* Runs `src`, asserts it fails with ERR_SCRIPT, returns the error message
 * and (optional) the traceback, owned. */
static char *run_fail(const char *src, char **traceback)
{
    json_t *resp = run(src, NULL);
    char *msg = strdup(at_error(resp, ERR_SCRIPT));
    if (traceback) {
        const char *tb = json_string_value(
            json_object_get(json_object_get(json_object_get(resp, "error"), "data"), "traceback"));
        *traceback = strdup(tb ? tb : "");
    }
    json_decref(resp);
    return msg;
}

TestSuite(lua, .timeout = 600);

/* ---- basics ---------------------------------------------------------------------- */

Test(lua, output_logs_arguments_results)
{
    start(NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    json_t *notes = NULL;
    json_t *p = json_pack("{s:s, s:[s, i], s:s}", "source",
                          "local a, b = ...\n"
                          "print('hello', a, b + 1)\n"
                          "hearth.log('warning', 'careful', #hearth.args)\n"
                          "hearth.emit('progress', {done = 3})\n"
                          "return a .. '!', {n = b * 2, list = {1, 2}}, nil",
                          "args", "x", 20, "name", "basics.lua");
    json_t *resp = at_call(c, "script.run", p, AT_DECLINE, &notes, NULL);
    json_t *res = json_object_get(at_result(resp), "result");
    cr_assert_eq(json_array_size(res), 3);
    cr_assert_str_eq(json_string_value(json_array_get(res, 0)), "x!");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(res, 1), "n")), 40);
    cr_assert_eq(json_array_size(json_object_get(json_array_get(res, 1), "list")), 2);
    cr_assert(json_is_null(json_array_get(res, 2)));
    json_t *out = at_notes(notes, "script.output");
    cr_assert_eq(json_array_size(out), 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(out, 0), "params"), "text")),
                     "hello\tx\t21\n");
    json_t *log = at_notes(notes, "script.log");
    cr_assert_eq(json_array_size(log), 1);
    json_t *lp = json_object_get(json_array_get(log, 0), "params");
    cr_assert_str_eq(json_string_value(json_object_get(lp, "level")), "warning");
    cr_assert_str_eq(json_string_value(json_object_get(lp, "message")), "careful 2");
    json_t *ev = at_notes(notes, "script.event");
    cr_assert_eq(json_array_size(ev), 1);
    json_t *ep = json_object_get(json_array_get(ev, 0), "params");
    cr_assert_str_eq(json_string_value(json_object_get(ep, "kind")), "progress");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ep, "data"), "done")), 3);
    json_decref(out);
    json_decref(log);
    json_decref(ev);
    json_decref(notes);
    json_decref(resp);
    du_close(c);
    stop();
}

Test(lua, json_round_trip)
{
    start(NULL, NULL);
    json_t *v = run1("local j = hearth.json\n"
                     "local text = '{\"a\":[1,2.5,\"x\",null,true],\"b\":{},\"c\":[],\"d\":{\"e\":false}}'\n"
                     "local t = assert(j.decode(text))\n"
                     "assert(t.a[4] == j.null and t.a[2] == 2.5 and j.is_array(t.c))\n"
                     "local again = j.decode(j.encode(t))\n"
                     "local bad, msg = j.decode('{\"x\": ')\n"
                     "local ok, err = pcall(j.encode, {f = print})\n"
                     "local d = {} for i = 1, 60 do d = {d, d} end  -- 2^60 paths\n"
                     "local _, dag = pcall(j.encode, d)\n"
                     "return {round = j.encode(again, {sort_keys = true}) == j.encode(t, {sort_keys = true}),\n"
                     "        bad = bad == nil and type(msg) == 'string', enc_err = not ok and err, dag = dag,\n"
                     "        empty_obj = j.encode({}), empty_arr = j.encode(j.array()), value = t}");
    cr_assert(json_is_true(json_object_get(v, "round")));
    cr_assert(json_is_true(json_object_get(v, "bad")));
    cr_assert(strstr(json_string_value(json_object_get(v, "enc_err")), "functions"));
    cr_assert_str_eq(json_string_value(json_object_get(v, "empty_obj")), "{}");
    cr_assert(strstr(json_string_value(json_object_get(v, "dag")), "too large"), "%s",
              json_string_value(json_object_get(v, "dag")));
    cr_assert_str_eq(json_string_value(json_object_get(v, "empty_arr")), "[]");
    json_t *want = json_loads("{\"a\":[1,2.5,\"x\",null,true],\"b\":{},\"c\":[],\"d\":{\"e\":false}}",
                              0, NULL);
    cr_assert(json_equal(json_object_get(v, "value"), want));
    json_decref(want);
    json_decref(v);
    stop();
}

/* ---- the sandbox ---------------------------------------------------------------------- */

Test(lua, sandbox_keeps_dangerous_libraries_out)
{
    start(NULL, NULL);
    json_t *v = run1("return {io = type(io), execute = type(os.execute), getenv = type(os.getenv),\n"
                     "  remove = type(os.remove), require = type(require), package = type(package),\n"
                     "  debug = type(debug), dofile = type(dofile), loadfile = type(loadfile),\n"
                     "  dump = type(string.dump), time = type(os.time), clock = type(os.clock),\n"
                     "  binary = select(2, load('\\27Lua\\84\\0')),\n"
                     "  text = load('return 1 + 1')()}");
    const char *absent[] = {"io", "execute", "getenv", "remove", "require", "package",
                            "debug", "dofile", "loadfile", "dump"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_assert_str_eq(json_string_value(json_object_get(v, absent[i])), "nil", "%s", absent[i]);
    cr_assert_str_eq(json_string_value(json_object_get(v, "time")), "function");
    cr_assert_str_eq(json_string_value(json_object_get(v, "clock")), "function");
    cr_assert(strstr(json_string_value(json_object_get(v, "binary")), "binary"), "%s",
              json_string_value(json_object_get(v, "binary")));
    cr_assert_eq(json_integer_value(json_object_get(v, "text")), 2);
    json_decref(v);

    /* finalizers run with hooks off: refused */
    char *m = run_fail("setmetatable({}, {__gc = function() while true do end end})", NULL);
    cr_assert(strstr(m, "__gc"), "%s", m);
    free(m);
    /* a binary chunk as the script itself */
    m = run_fail("\x1bLua\x54", NULL);
    cr_assert(strstr(m, "binary"), "%s", m);
    free(m);
    /* each script has its own state: globals do not leak between runs */
    json_decref(run1("leaked = 42"));
    v = run1("return type(leaked)");
    cr_assert_str_eq(json_string_value(v), "nil");
    json_decref(v);
    stop();
}

Test(lua, config_can_allow_libraries)
{
    start(NULL, "lua:\n  allow:\n    io: true\n    os: true\n");
    json_t *v = run1("return {io = type(io.open), getenv = type(os.getenv), debug = type(debug)}");
    cr_assert_str_eq(json_string_value(json_object_get(v, "io")), "function");
    cr_assert_str_eq(json_string_value(json_object_get(v, "getenv")), "function");
    cr_assert_str_eq(json_string_value(json_object_get(v, "debug")), "nil");
    json_decref(v);
    stop();
}

/* ---- limits ------------------------------------------------------------------------------ */

Test(lua, runaway_loop_is_stopped)
{
    start(NULL, "lua:\n  slice_ms: 300\n");
    char *tb = NULL;
    char *m = run_fail("local n = 0\nwhile true do n = n + 1 end", &tb);
    cr_assert(strstr(m, "without waiting") && strstr(m, "lua.slice_ms"), "%s", m);
    cr_assert(strstr(tb, "main chunk"), "%s", tb);
    free(m);
    free(tb);
    /* hiding in pcall does not help: the stop is raised again */
    m = run_fail("while true do pcall(function() while true do end end) end", NULL);
    cr_assert(strstr(m, "without waiting"), "%s", m);
    free(m);
    m = run_fail("local co = coroutine.wrap(function() while true do end end)\n"
                 "while true do pcall(co) end", NULL);
    cr_assert(strstr(m, "without waiting"), "%s", m);
    free(m);
    at_assert_serving(&d);
    /* and the next script runs normally */
    json_t *v = run1("return 1 + 1");
    cr_assert_eq(json_integer_value(v), 2);
    json_decref(v);
    stop();
}

Test(lua, instruction_budget)
{
    start(NULL, "lua:\n  instructions: 3\n  slice_ms: 600000\n");
    json_t *v = run1("local n = 0 for i = 1, 100000 do n = n + i end return n");
    cr_assert_eq(json_integer_value(v), 5000050000LL);
    json_decref(v);
    char *m = run_fail("local n = 0\nwhile true do n = n + 1 end", NULL);
    cr_assert(strstr(m, "instruction budget"), "%s", m);
    free(m);
    at_assert_serving(&d);
    stop();
}

Test(lua, memory_bombs_are_stopped)
{
    start(NULL, "lua:\n  memory: 16777216\n  slice_ms: 20000\n");
    char *m = run_fail("local s = 'x'\nwhile true do s = s .. s end", NULL);
    cr_assert(strstr(m, "out of memory") && strstr(m, "16 MiB"), "%s", m);
    free(m);
    m = run_fail("local t = {}\nfor i = 1, math.maxinteger do t[i] = {i} end", NULL);
    cr_assert(strstr(m, "out of memory"), "%s", m);
    free(m);
    /* caught in pcall, the memory comes back and the script goes on */
    json_t *v = run1("local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end)\n"
                     "return {ok = ok, after = #string.rep('y', 1000)}");
    cr_assert(json_is_false(json_object_get(v, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(v, "after")), 1000);
    json_decref(v);
    at_assert_serving(&d);
    stop();
}

Test(lua, slow_c_calls_are_stopped_or_bounded)
{
    start(NULL, "lua:\n  slice_ms: 300\n");
    /* a backtracking pattern: hours in Lua's own matcher */
    char *tb = NULL;
    char *m = run_fail("return string.rep('a', 30000):find('.-.-.-.-b')", &tb);
    cr_assert(strstr(m, "without waiting"), "%s", m);
    cr_assert(strstr(tb, "string.find"), "%s", tb);
    free(m);
    free(tb);
    m = run_fail("return (string.rep('a', 30000)):gsub('a*a*a*b', '')", NULL);
    cr_assert(strstr(m, "without waiting"), "%s", m);
    free(m);
    /* bounded before they start */
    json_t *v = run1("return #string.rep('', math.maxinteger), #string.rep('', 1e15, '')");
    cr_assert_eq(json_integer_value(v), 0);
    json_decref(v);
    m = run_fail("return string.rep('ab', 1 << 40)", NULL);
    cr_assert(strstr(m, "memory"), "%s", m);
    free(m);
    m = run_fail("return table.move({}, 1, math.maxinteger - 1, 2)", NULL);
    cr_assert(strstr(m, "too many elements"), "%s", m);
    free(m);
    m = run_fail("local t = setmetatable({}, {__len = function() return math.maxinteger - 2 end})\n"
                 "table.insert(t, 1, 'x')", NULL);
    cr_assert(strstr(m, "too many elements"), "%s", m);
    free(m);
    at_assert_serving(&d);
    stop();
}

Test(lua, errors_come_with_a_traceback)
{
    start(NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    json_t *p = json_pack("{s:s, s:s}", "source",
                          "local function inner(x) error('bad value ' .. x) end\n"
                          "local function outer() inner(42) end\n"
                          "outer()\n",
                          "name", "tb.lua");
    json_t *resp = at_call(c, "script.run", p, AT_DECLINE, NULL, NULL);
    cr_assert_str_eq(at_error(resp, ERR_SCRIPT), "tb.lua:1: bad value 42");
    const char *tb = json_string_value(
        json_object_get(json_object_get(json_object_get(resp, "error"), "data"), "traceback"));
    cr_assert(tb && strstr(tb, "tb.lua:1: in upvalue 'inner'") &&
                  strstr(tb, "tb.lua:2: in local 'outer'") && strstr(tb, "tb.lua:3: in main chunk"),
              "%s", tb);
    json_decref(resp);
    /* a syntax error is refused at once, with the line */
    p = json_pack("{s:s, s:s}", "source", "local x = = 1", "name", "syntax.lua");
    resp = at_call(c, "script.run", p, AT_DECLINE, NULL, NULL);
    const char *m = at_error(resp, ERR_SCRIPT);
    cr_assert(strstr(m, "syntax.lua:1:"), "%s", m);
    json_decref(resp);
    du_close(c);
    stop();
}

/* ---- the model -------------------------------------------------------------------------- */

Test(lua, chat_and_generate_stream_like_the_socket)
{
    start(NULL, NULL);
    json_t *v = run1("local pieces = {}\n"
                     "local text, info = hearth.chat('Once upon a time', {max_tokens = 16,\n"
                     "  temperature = 0, on_token = function(p) pieces[#pieces + 1] = p end})\n"
                     "local gen = hearth.generate('Once upon a time', {max_tokens = 12, temperature = 0})\n"
                     "return {text = text, joined = table.concat(pieces), n = #pieces,\n"
                     "        finish = info.finish_reason, completion = info.usage.completion_tokens,\n"
                     "        gen = gen}");
    const char *text = json_string_value(json_object_get(v, "text"));
    cr_assert(text && text[0]);
    cr_assert_str_eq(json_string_value(json_object_get(v, "joined")), text);
    cr_assert_gt(json_integer_value(json_object_get(v, "n")), 1);
    cr_assert_leq(json_integer_value(json_object_get(v, "n")),
                  json_integer_value(json_object_get(v, "completion")));
    cr_assert_leq(json_integer_value(json_object_get(v, "completion")), 16);
    /* the same requests on the socket give the same answers (greedy) */
    struct du_conn *c = du_connect(d.socket);
    json_t *r = du_call_ok(c, "chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a "
                                      "time\"}],\"max_tokens\":16,\"temperature\":0}");
    cr_assert_str_eq(json_string_value(json_object_get(r, "text")), text);
    json_decref(r);
    r = du_call_ok(c, "complete",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    cr_assert_str_eq(json_string_value(json_object_get(r, "text")),
                     json_string_value(json_object_get(v, "gen")));
    json_decref(r);
    du_close(c);
    json_decref(v);

    /* on_token returning false stops the request */
    v = run1("local n = 0\n"
             "local text, info = hearth.generate('Once upon a time', {max_tokens = 200,\n"
             "  ignore_eos = true, on_token = function() n = n + 1 return n < 3 end})\n"
             "return {finish = info.finish_reason, n = info.usage.completion_tokens}");
    cr_assert_str_eq(json_string_value(json_object_get(v, "finish")), "cancelled");
    cr_assert_lt(json_integer_value(json_object_get(v, "n")), 200);
    json_decref(v);
    /* request errors are Lua errors at the script's line */
    char *m = run_fail("hearth.generate('x', {top_p = 7})", NULL);
    cr_assert(strstr(m, "script:1:") && strstr(m, "top_p"), "%s", m);
    free(m);
    stop();
}

/* ---- tasks, coroutines, timers ------------------------------------------------------------ */

Test(lua, coroutines_tasks_and_timers)
{
    start(NULL, NULL);
    json_t *notes = NULL;
    json_t *resp = run(
        "local order = {}\n"
        "local co = coroutine.wrap(function(a)\n"
        "  hearth.sleep(5)                       -- a wait inside the script's own coroutine\n"
        "  local b = coroutine.yield(a + 1)\n"
        "  hearth.sleep(5)\n"
        "  return b * 2\n"
        "end)\n"
        "local first = co(1)\n"
        "local second = co(10)\n"
        "hearth.timer(40, function() print('late') end)\n"
        "hearth.timer(10, function() print('early') end)\n"
        "local t = hearth.spawn(function() hearth.sleep(10000) print('never') end)\n"
        "t.cancel()\n"
        "local t0 = hearth.now()\n"
        "hearth.sleep(20)\n"
        "return first, second, hearth.now() - t0 >= 20\n",
        &notes);
    json_t *res = json_object_get(at_result(resp), "result");
    cr_assert_eq(json_integer_value(json_array_get(res, 0)), 2);
    cr_assert_eq(json_integer_value(json_array_get(res, 1)), 20);
    cr_assert(json_is_true(json_array_get(res, 2)));
    /* the run ended after its timers: both printed, in time order */
    json_t *out = at_notes(notes, "script.output");
    cr_assert_eq(json_array_size(out), 2);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(out, 0), "params"), "text")),
                     "early\n");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(out, 1), "params"), "text")),
                     "late\n");
    json_decref(out);
    json_decref(notes);
    json_decref(resp);
    /* yielding outside a coroutine is an error, not a hang */
    char *m = run_fail("coroutine.yield(1)", NULL);
    cr_assert(strstr(m, "coroutine.yield"), "%s", m);
    free(m);
    stop();
}

Test(lua, cancel_and_a_client_that_leaves)
{
    start(NULL, NULL);
    struct du_conn *c = du_connect(d.socket);
    long id = du_send_call(c, "script.run", "{\"source\":\"print('started') hearth.sleep(600000)\"}");
    json_t *m = du_recv_ok(c); /* script.output: it runs and waits */
    cr_assert_str_eq(json_string_value(json_object_get(m, "method")), "script.output");
    json_decref(m);
    char params[64];
    snprintf(params, sizeof params, "{\"id\":%ld}", id);
    long cid = du_send_call(c, "cancel", params);
    bool got_run = false, got_cancel = false;
    while (!got_run || !got_cancel) {
        m = du_recv_ok(c);
        json_int_t mid = json_integer_value(json_object_get(m, "id"));
        if (mid == id) {
            at_error(m, ERR_CANCELLED);
            got_run = true;
        } else if (mid == cid) {
            cr_assert(json_is_true(json_object_get(at_result(m), "cancelled")));
            got_cancel = true;
        }
        json_decref(m);
    }
    /* a client that goes away while its script waits for the model */
    du_send_call(c, "script.run",
                 "{\"source\":\"while true do hearth.generate('Once', {max_tokens = 64}) end\"}");
    usleep(200000);
    du_close(c);
    at_assert_serving(&d);
    stop();
}

/* SIGTERM while scripts keep the model busy or sleep: they end with an error
 * their clients see, and hearthd exits 0 (du_stop checks it). */
Test(lua, shutdown_ends_running_scripts)
{
    start(NULL, NULL);
    struct du_conn *busy = du_connect(d.socket), *idle = du_connect(d.socket);
    long b = du_send_call(busy, "script.run",
                          "{\"source\":\"print('go') while true do hearth.generate('Once', "
                          "{max_tokens = 32}) end\"}");
    long i = du_send_call(idle, "script.run", "{\"source\":\"print('go') hearth.sleep(600000)\"}");
    json_decref(du_recv_ok(busy)); /* script.output: both run */
    json_decref(du_recv_ok(idle));
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    json_t *r = du_wait_response(busy, b, NULL);
    cr_assert(strstr(at_error(r, ERR_SCRIPT), "shutting down"));
    json_decref(r);
    r = du_wait_response(idle, i, NULL);
    cr_assert(strstr(at_error(r, ERR_SCRIPT), "shutting down"));
    json_decref(r);
    du_close(busy);
    du_close(idle);
    /* du_stop signals again and waits: the second SIGTERM only hurries it */
    stop();
}

/* ---- tools ---------------------------------------------------------------------------------- */

Test(lua, tools_from_lua_go_through_the_policy)
{
    start(NULL, NULL);
    at_write(ws, "notes.txt", "alpha\nbeta\n");
    const char *src = "local names = {}\n"
                      "for _, t in ipairs(hearth.tools.list()) do names[t.name] = t.policy end\n"
                      "local r = hearth.tools.call('read_file', {path = 'notes.txt'})\n"
                      "local bad_ok, bad_msg = hearth.tools.validate('read_file', {path = 7})\n"
                      "local w = hearth.tools.call('write_file', {path = 'out.txt', content = 'hi'})\n"
                      "return {read = names.read_file, write = names.write_file, exec = names.run_shell,\n"
                      "        out = r.output, ok = r.ok, bad = bad_ok, bad_msg = bad_msg,\n"
                      "        w_status = w.status, w_asked = w.asked}";
    struct du_conn *c = du_connect(d.socket);
    json_t *resp = at_script(c, src, ws, AT_DECLINE, NULL);
    json_t *v = json_array_get(json_object_get(at_result(resp), "result"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "read")), "allow");
    cr_assert_str_eq(json_string_value(json_object_get(v, "write")), "ask");
    cr_assert_str_eq(json_string_value(json_object_get(v, "exec")), "ask");
    cr_assert(json_is_true(json_object_get(v, "ok")));
    cr_assert_str_eq(json_string_value(json_object_get(v, "out")), "alpha\nbeta\n");
    cr_assert(json_is_false(json_object_get(v, "bad")));
    cr_assert(strstr(json_string_value(json_object_get(v, "bad_msg")), "$.path"));
    cr_assert_str_eq(json_string_value(json_object_get(v, "w_status")), "declined");
    cr_assert(json_is_true(json_object_get(v, "w_asked")));
    cr_assert(!at_exists(ws, "out.txt"));
    json_decref(resp);
    /* approved by the client: it runs */
    resp = at_script(c, src, ws, AT_APPROVE, NULL);
    v = json_array_get(json_object_get(at_result(resp), "result"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "w_status")), "ok");
    cr_assert(at_exists(ws, "out.txt"));
    json_decref(resp);
    du_close(c);
    stop();
}

Test(lua, script_from_a_path_and_hearth_run)
{
    start(NULL, NULL);
    at_write(ws, "s.lua", "local who = ...\nprint('hi ' .. who)\nreturn #hearth.args\n");
    struct du_conn *c = du_connect(d.socket);
    json_t *p = json_pack("{s:s, s:[s, s]}", "path", at_path(ws, "s.lua"), "args", "you", "x");
    json_t *resp = at_call(c, "script.run", p, AT_DECLINE, NULL, NULL);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(at_result(resp), "result"), 0)),
                 2);
    json_decref(resp);
    du_close(c);

    char *out = NULL, *err = NULL;
    int st = tu_hearth(&out, &err, "run", "--socket", d.socket, at_path(ws, "s.lua"), "there",
                       NULL);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert_str_eq(out, "hi there\n1\n");
    free(out);
    free(err);
    at_write(ws, "bad.lua", "local t = nil\nreturn t.x\n");
    st = tu_hearth(&out, &err, "run", "--socket", d.socket, at_path(ws, "bad.lua"), NULL);
    cr_assert_eq(st, 1);
    cr_assert(strstr(err, "bad.lua:2:"), "%s", err);
    free(out);
    free(err);
    stop();
}

/* ---- the pattern functions against Lua's own ------------------------------------------------- */

/* Each case runs in hearthd and in a plain lua_State with the standard
 * string library; the printed results must agree, errors included. */
static const char *const pattern_chunk =
    "local out = {}\n"
    "local function ser(...)\n"
    "  local t = table.pack(...)\n"
    "  local s = {}\n"
    "  for i = 1, t.n do s[i] = type(t[i]) .. ':' .. tostring(t[i]) end\n"
    "  return table.concat(s, ',')\n"
    "end\n"
    "local function try(f, ...)\n"
    "  local r = table.pack(pcall(f, ...))\n"
    "  if r[1] then out[#out + 1] = ser(table.unpack(r, 2, r.n))\n"
    "  else out[#out + 1] = 'error:' .. tostring(r[2]):gsub('^[^:]*:%d+: ', '') end\n"
    "end\n"
    "local long = string.rep('ab', 50) .. 'c'\n"
    "local finds = {\n"
    "  {'hello world', 'o w'}, {'hello', 'l+'}, {'hello', '()ll()'}, {'abc', '^b'},\n"
    "  {'abc', 'b', 3}, {'abc', '', 10}, {'abc', '', 4}, {'a.b', '.', 1, true},\n"
    "  {'x = 10, y = 20', '(%w+) = (%d+)'}, {'THE (quick) fox', '%((%a+)%)'},\n"
    "  {'[[x]] y', '%b[]'}, {'THE (quick) fox', '%f[%a]%a+', 5}, {'aaa', 'a-b'},\n"
    "  {'aaab', 'a-b'}, {'hello', '(h)(e)(l)(l)(o)'}, {'abcabc', '(abc)%1'}, {'', ''},\n"
    "  {'abc', '[a-b]+'}, {'a]b', '[]]'}, {'a^b', '[%^]'}, {'caf\\195\\169', '\\195\\169'},\n"
    "  {'abc', '[^a]+'}, {'  trim  ', '^%s*(.-)%s*$'}, {'x', '%'}, {'x', '[a'},\n"
    "  {'x', '(()'}, {'x', '%1'}, {'x', '(x'}, {'x', 'x)'}, {'abc', '%f'}, {'abc', '%b'},\n"
    "  {'abc', '$'}, {'a$c', '$c'}, {'abc', 'c$'}, {'abc', '^'}, {'aXb', '%u'},\n"
    "  {'a1b2', '%d%a'}, {'ab_c1', '[%w_]+'}, {'hello', 'l*'}, {'hello', 'x?h'},\n"
    "  {long, '(ab)*c'}, {long, 'a.-c'}, {long, '[^c]*$'}, {'key=val;k2=v2', '(%w+)=(%w+)', 8},\n"
    "  {'abc', 'b', -1}, {'abc', 'b', -2}, {'abc', 'b', -10}, {'a+b', '+', 1, true},\n"
    "  {'f(a(b)c)', '%b()'}, {'THE END', '%f[%z]'}, {'a.b', '%.'}, {'A1-b2', '[%a%-]+'},\n"
    "  {'x', '[%a-z]'}, {'-', '[a-]'}, {'a', '[]'}, {'abc', '(a)(b)(c)(d?)'},\n"
    "}\n"
    "for _, c in ipairs(finds) do\n"
    "  try(string.find, table.unpack(c))\n"
    "  if not c[4] then try(string.match, c[1], c[2], c[3]) end\n"
    "end\n"
    "local function all(s, p, init)\n"
    "  local r = {}\n"
    "  for a, b in string.gmatch(s, p, init) do r[#r + 1] = tostring(a) .. '|' .. tostring(b) end\n"
    "  return table.concat(r, ' ')\n"
    "end\n"
    "for _, c in ipairs({{'one two  three', '%a+'}, {'k=v, a=b', '(%w+)=(%w+)'},\n"
    "                    {'abc', ''}, {'aaa', 'a*'}, {'^a^a', '^a'}, {'one two', '()%a+', 4},\n"
    "                    {'x', '('}}) do\n"
    "  try(all, table.unpack(c))\n"
    "end\n"
    "local subs = {\n"
    "  {'hello world', 'o', '0'}, {'hello world', '(o)', '[%1%1]'}, {'abc', '%w', '%0%0'},\n"
    "  {'abc', '', '-'}, {'hello', 'l', 'L', 1}, {'abc', 'b', '%%'}, {'abc', 'b', '%z'},\n"
    "  {'abc', '^a', 'A'}, {'aaa', '^a', 'A'}, {'$1 and $2', '%$(%d)', {['1'] = 'one'}},\n"
    "  {'x y z', '%a', function(c) if c == 'y' then return nil end return c:upper() end},\n"
    "  {'abc', '(b)', function() return false end}, {'abc', 'b', function() return 7 end},\n"
    "  {'abc', 'b', function() return {} end}, {'abc', '()b()', '%1-%2'}, {'abc', 'b', 5},\n"
    "  {'abc', 'b', true}, {'hello world', '(%w+) (%w+)', '%2 %1'}, {'abc', 'x*', '-'},\n"
    "}\n"
    "for _, c in ipairs(subs) do try(string.gsub, table.unpack(c)) end\n"
    "return table.concat(out, '\\n')\n";

Test(lua, patterns_agree_with_the_standard_library)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    cr_assert_eq(luaL_loadstring(L, pattern_chunk), LUA_OK, "%s", lua_tostring(L, -1));
    cr_assert_eq(lua_pcall(L, 0, 1, 0), LUA_OK, "%s", lua_tostring(L, -1));
    char *want = strdup(lua_tostring(L, -1));
    lua_close(L);

    start(NULL, NULL);
    json_t *v = run1(pattern_chunk);
    const char *got = json_string_value(v);
    cr_assert(got);
    /* line by line, for a readable failure */
    char *w = want, *g = (char *)got;
    for (int line = 1; *w || *g; line++) {
        size_t wn = strcspn(w, "\n"), gn = strcspn(g, "\n");
        cr_assert(wn == gn && !memcmp(w, g, wn), "case %d: standard Lua '%.*s', hearthd '%.*s'",
                  line, (int)wn, w, (int)gn, g);
        w += wn + (w[wn] == '\n');
        g += gn + (g[gn] == '\n');
    }
    json_decref(v);
    free(want);
    stop();
}
