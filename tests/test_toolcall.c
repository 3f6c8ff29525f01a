/*
 * test_toolcall.c — the tool-call parser (daemon/toolcall.c): each model
 * family's format, several calls, text around calls, malformed calls left
 * as content, and the streaming hold-back.
 */
#include "toolcall.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct parsed {
    int n;
    char *content;
    json_t *calls; /* NULL when none */
};

static struct parsed parse(const char *text)
{
    struct parsed p = {0};
    char *calls = NULL;
    struct hr_err err;
    p.n = hd_toolcalls_parse(text, strlen(text), &p.content, &calls, &err);
    cr_assert_geq(p.n, 0, "parse failed: %s", err.msg);
    cr_assert_not_null(p.content);
    if (p.n == 0) {
        cr_assert_null(calls, "no calls but a tool_calls array");
    } else {
        cr_assert_not_null(calls);
        json_error_t je;
        p.calls = json_loads(calls, 0, &je);
        cr_assert_not_null(p.calls, "tool_calls is not JSON: %s (%s)", je.text, calls);
        cr_assert(json_is_array(p.calls));
        cr_assert_eq(json_array_size(p.calls), (size_t)p.n);
    }
    free(calls);
    return p;
}

static void parsed_done(struct parsed *p)
{
    free(p->content);
    json_decref(p->calls);
}

/* Checks call i: OpenAI shape, name, and arguments equal (as JSON) to `args`. */
static void check_call(const struct parsed *p, size_t i, const char *name, const char *args)
{
    json_t *c = json_array_get(p->calls, i);
    cr_assert(json_is_object(c));
    const char *id = json_string_value(json_object_get(c, "id"));
    cr_assert_not_null(id);
    cr_assert(strncmp(id, "call_", 5) == 0 && strlen(id) > 5, "id %s", id);
    cr_assert_str_eq(json_string_value(json_object_get(c, "type")), "function");
    json_t *f = json_object_get(c, "function");
    cr_assert_str_eq(json_string_value(json_object_get(f, "name")), name);
    const char *a = json_string_value(json_object_get(f, "arguments"));
    cr_assert_not_null(a, "arguments must be a JSON string");
    json_t *got = json_loads(a, 0, NULL);
    json_t *want = json_loads(args, 0, NULL);
    cr_assert_not_null(got, "arguments not JSON: %s", a);
    cr_assert_not_null(want);
    cr_assert(json_equal(got, want), "arguments %s, expected %s", a, args);
    json_decref(got);
    json_decref(want);
}

Test(toolcall, plain_text_has_no_calls)
{
    struct parsed p = parse("The weather is fine. {not a call} [x] <b>bold</b>");
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, "The weather is fine. {not a call} [x] <b>bold</b>");
    parsed_done(&p);
}

Test(toolcall, empty_text)
{
    struct parsed p = parse("");
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, "");
    parsed_done(&p);
}

Test(toolcall, hermes_single)
{
    struct parsed p = parse("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                            "{\"city\": \"Paris\", \"days\": 3}}\n</tool_call>");
    cr_assert_eq(p.n, 1);
    cr_assert_str_eq(p.content, "");
    check_call(&p, 0, "get_weather", "{\"city\":\"Paris\",\"days\":3}");
    parsed_done(&p);
}

Test(toolcall, hermes_several_with_text_around)
{
    struct parsed p = parse("Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": "
                            "{\"x\": \"}{\\\"\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", "
                            "\"arguments\": {}}\n</tool_call>\nDone.");
    cr_assert_eq(p.n, 2);
    cr_assert_str_eq(p.content, "Let me check both.\nDone.");
    check_call(&p, 0, "a", "{\"x\":\"}{\\\"\"}");
    check_call(&p, 1, "b", "{}");
    const char *id0 = json_string_value(json_object_get(json_array_get(p.calls, 0), "id"));
    const char *id1 = json_string_value(json_object_get(json_array_get(p.calls, 1), "id"));
    cr_assert_str_neq(id0, id1, "call ids must be unique");
    parsed_done(&p);
}

Test(toolcall, hermes_without_closing_tag_at_end)
{
    struct parsed p = parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}\n");
    cr_assert_eq(p.n, 1);
    check_call(&p, 0, "f", "{\"a\":[1,2]}");
    cr_assert_str_eq(p.content, "");
    parsed_done(&p);
}

Test(toolcall, hermes_malformed_json_stays_content)
{
    const char *text = "Try: <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call> ok";
    struct parsed p = parse(text);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, text);
    parsed_done(&p);
}

Test(toolcall, hermes_missing_name_stays_content)
{
    const char *text = "<tool_call>{\"arguments\": {}}</tool_call>";
    struct parsed p = parse(text);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, text);
    parsed_done(&p);
}

Test(toolcall, malformed_then_valid)
{
    struct parsed p = parse("<tool_call>{oops}</tool_call>\n<tool_call>{\"name\": \"g\", "
                            "\"arguments\": {\"k\": true}}</tool_call>");
    cr_assert_eq(p.n, 1);
    check_call(&p, 0, "g", "{\"k\":true}");
    cr_assert_str_eq(p.content, "<tool_call>{oops}</tool_call>");
    parsed_done(&p);
}

Test(toolcall, arguments_given_as_string)
{
    struct parsed p = parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"q\\\": 1}\"}"
                            "</tool_call>");
    cr_assert_eq(p.n, 1);
    check_call(&p, 0, "f", "{\"q\": 1}");
    parsed_done(&p);
}

Test(toolcall, llama_json)
{
    struct parsed p = parse("  {\"name\": \"search\", \"parameters\": {\"query\": \"cats\"}}");
    cr_assert_eq(p.n, 1);
    check_call(&p, 0, "search", "{\"query\":\"cats\"}");
    cr_assert_str_eq(p.content, "");
    parsed_done(&p);
}

Test(toolcall, llama_python_tag_several)
{
    struct parsed p = parse("<|python_tag|>{\"name\": \"a\", \"parameters\": {\"n\": 1}}; "
                            "{\"type\": \"function\", \"name\": \"b\", \"parameters\": {}}");
    cr_assert_eq(p.n, 2);
    check_call(&p, 0, "a", "{\"n\":1}");
    check_call(&p, 1, "b", "{}");
    cr_assert_str_eq(p.content, "");
    parsed_done(&p);
}

Test(toolcall, llama_json_without_parameters_is_content)
{
    /* A JSON answer that merely has a "name" is not a call. */
    const char *text = "{\"name\": \"Alice\", \"age\": 30}";
    struct parsed p = parse(text);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, text);
    parsed_done(&p);
}

Test(toolcall, mistral_array)
{
    struct parsed p = parse("[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}}, "
                            "{\"name\": \"b\", \"arguments\": {\"y\": \"z\"}}]");
    cr_assert_eq(p.n, 2);
    check_call(&p, 0, "a", "{\"x\":1}");
    check_call(&p, 1, "b", "{\"y\":\"z\"}");
    cr_assert_str_eq(p.content, "");
    parsed_done(&p);
}

Test(toolcall, mistral_name_args_form)
{
    struct parsed p = parse("Sure. [TOOL_CALLS]get_time[ARGS]{\"tz\": \"UTC\"}");
    cr_assert_eq(p.n, 1);
    check_call(&p, 0, "get_time", "{\"tz\":\"UTC\"}");
    cr_assert_str_eq(p.content, "Sure.");
    parsed_done(&p);
}

Test(toolcall, mistral_malformed_stays_content)
{
    const char *text = "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": 5}]";
    struct parsed p = parse(text);
    cr_assert_eq(p.n, 0, "an array with one bad element is not taken in part");
    cr_assert_str_eq(p.content, text);
    parsed_done(&p);
}

Test(toolcall, unterminated_json_stays_content)
{
    const char *text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"b\"";
    struct parsed p = parse(text);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.content, text);
    parsed_done(&p);
}

Test(toolcall, null_text_is_einval)
{
    char *c = (char *)1, *t = (char *)1;
    struct hr_err err;
    cr_assert_eq(hd_toolcalls_parse(NULL, 3, &c, &t, &err), -EINVAL);
    cr_assert_eq(c, (char *)1, "outputs written on failure");
    cr_assert_neq(err.msg[0], '\0');
}

/* Streaming: the released prefix never shrinks and is a prefix of the final content. */
static void check_stream(const char *text)
{
    size_t len = strlen(text), prev = 0;
    struct parsed p = parse(text);
    for (size_t n = 0; n <= len; n++) {
        size_t safe = hd_toolcalls_stream_safe(text, n);
        cr_assert_leq(safe, n);
        cr_assert_geq(safe, prev, "released text shrank at %zu of \"%s\"", n, text);
        cr_assert_leq(safe, strlen(p.content), "released more than the content at %zu", n);
        cr_assert(memcmp(text, p.content, safe) == 0, "released text is not a content prefix");
        prev = safe;
    }
    parsed_done(&p);
}

Test(toolcall, stream_holds_back_calls)
{
    const char *text = "Checking. <tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
    /* Everything before the opener except the whitespace is released early. */
    cr_assert_eq(hd_toolcalls_stream_safe(text, 12), 9); /* "Checking. <t" */
    cr_assert_eq(hd_toolcalls_stream_safe(text, 10), 9); /* trailing space held */
    cr_assert_eq(hd_toolcalls_stream_safe(text, strlen(text)), 9);
    check_stream(text);
    check_stream("Hi [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}] and");
    check_stream("Plain answer with [brackets] and <tags> but no call.");
    check_stream("<tool_call>{bad}</tool_call> after");
}

Test(toolcall, stream_holds_back_llama_json)
{
    const char *text = " {\"name\": \"f\", \"parameters\": {}}";
    for (size_t n = 0; n <= strlen(text); n++)
        cr_assert_eq(hd_toolcalls_stream_safe(text, n), 0);
    check_stream(text);
    cr_assert_eq(hd_toolcalls_stream_safe("Hello", 5), 5);
}
