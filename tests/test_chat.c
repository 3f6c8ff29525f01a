/*
 * test_chat.c — chat-template rendering (core/chat.c, core/jinja*.c): the
 * ten real templates of templates/ rendered byte for byte as the reference
 * did for each of their four conversations (gemma-2's tool_result must fail
 * with its template's own exception), then the pieces of the Jinja
 * interpreter that chat templates lean on (whitespace control, tojson as
 * json.dumps, scoping, filters, Python string methods), the errors it must
 * give with line:column, the limits that stop runaway templates, the
 * request validation, the fallback for models without a template, and
 * hr_model_chat_template.
 *
 * Expected strings other than the reference files were worked out by hand
 * from jinja2's documented behaviour and checked against jinja2 3.1.
 */
#include <criterion/criterion.h>

#include <hearth/hearth.h>

#include "chat.h"
#include "gguf.h"
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* 2026-11-26 12:00:00 UTC: the day the reference renders were made. */
#define REF_NOW INT64_C(1795694400)

static void utc(void)
{
    /* strftime_now and date_string use local time, as transformers does */
    setenv("TZ", "UTC", 1);
    tzset();
}

TestSuite(chat, .init = utc, .timeout = 120);

static const char *const templates[] = {
    "HuggingFaceTB-SmolLM3-3B",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen-Qwen3-0.6B",
    "google-gemma-2-2b-it",
    "ibm-granite-granite-3.3-2B-Instruct",
    "meta-llama-Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct",
    "microsoft-Phi-3.5-mini-instruct",
    "mistralai-Mistral-Nemo-Instruct-2407",
};

static char *read_template(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s.jinja", name);
    const char *path = tu_find(rel);
    cr_assert_not_null(path, "%s not found in refdata or tests/data", rel);
    char *t = tu_read_file(path, NULL);
    cr_assert_not_null(t);
    return t;
}

static json_t *read_cases(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s.json", name);
    const char *path = tu_find(rel);
    cr_assert_not_null(path, "%s not found", rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

static struct hr_chat_opts ref_opts(void)
{
    return (struct hr_chat_opts){.add_generation_prompt = true, .bos_token = "<s>",
                                 .eos_token = "</s>", .now = REF_NOW};
}

/* Renders a template source with messages/tools given as JSON text. */
static int render(const char *tmpl, const char *messages, const char *tools,
                  const struct hr_chat_opts *o, char **out, struct hr_err *err)
{
    *out = NULL;
    return hr_chat_render(tmpl, messages, tools, o, out, err);
}

/* Renders `tmpl` with no messages and expects exactly `want`. */
static void expect(const char *tmpl, const char *want)
{
    char *out;
    struct hr_err err;
    int rc = render(tmpl, "[]", NULL, NULL, &out, &err);
    cr_assert_eq(rc, 0, "template %s: %s", tmpl, err.msg);
    cr_expect_str_eq(out, want, "template %s", tmpl);
    free(out);
}

/* Renders `tmpl` and expects failure `code` with `needle` in the message. */
static struct hr_err expect_fail(const char *tmpl, int code, const char *needle)
{
    char *out;
    struct hr_err err;
    int rc = render(tmpl, "[{\"role\": \"user\", \"content\": \"hi\"}]", NULL, NULL, &out, &err);
    cr_assert_eq(rc, code, "template %s: rc %d (%s), wanted %d", tmpl, rc, err.msg, code);
    cr_assert_null(out);
    cr_expect(strstr(err.msg, needle) != NULL, "template %s: message '%s' lacks '%s'", tmpl,
              err.msg, needle);
    return err;
}

/* ---- the reference renders ------------------------------------------------------------ */

Test(chat, reference_templates)
{
    int rendered = 0, rejected = 0;
    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++) {
        char *tmpl = read_template(templates[i]);
        json_t *cases = read_cases(templates[i]);
        const char *name;
        json_t *c;
        json_object_foreach(cases, name, c)
        {
            json_t *req = json_object_get(c, "request");
            char *msgs = json_dumps(json_object_get(req, "messages"), JSON_ENCODE_ANY);
            json_t *tl = json_object_get(req, "tools");
            char *tools = tl ? json_dumps(tl, JSON_ENCODE_ANY) : NULL;
            struct hr_chat_opts o = ref_opts();
            char *out;
            struct hr_err err;
            int rc = render(tmpl, msgs, tools, &o, &out, &err);
            const char *want = json_string_value(json_object_get(c, "prompt"));
            if (want) {
                cr_assert_eq(rc, 0, "%s/%s: %s", templates[i], name, err.msg);
                cr_expect_str_eq(out, want, "%s/%s differs from the reference", templates[i],
                                 name);
                rendered++;
            } else {
                /* the reference refused it: so must we, with the template's own message */
                cr_assert_eq(rc, -EINVAL, "%s/%s: rendered, the reference refused", templates[i],
                             name);
                cr_expect(strstr(err.msg, "raise_exception: ") != NULL, "%s", err.msg);
                cr_expect(err.line > 0 && err.column > 0);
                rejected++;
            }
            free(out);
            free(msgs);
            free(tools);
        }
        json_decref(cases);
        free(tmpl);
    }
    cr_expect_eq(rendered, 39);
    cr_expect_eq(rejected, 1);
}

Test(chat, gemma_rejects_tool_messages)
{
    char *tmpl = read_template("google-gemma-2-2b-it");
    json_t *cases = read_cases("google-gemma-2-2b-it");
    json_t *req = json_object_get(json_object_get(cases, "tool_result"), "request");
    char *msgs = json_dumps(json_object_get(req, "messages"), 0);
    struct hr_chat_opts o = ref_opts();
    char *out;
    struct hr_err err;
    cr_assert_eq(render(tmpl, msgs, NULL, &o, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "Conversation roles must alternate user/assistant/user/assistant/...") !=
                  NULL,
              "%s", err.msg);
    /* its system-role error, reached when the system message is not merged away */
    cr_assert_eq(render(tmpl, "[{\"role\": \"system\", \"content\": \"S\"}]", NULL, &o, &out, &err), 0,
                 "%s", err.msg);
    cr_expect_str_eq(out, "<start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    free(msgs);
    free(tmpl);
    json_decref(cases);
}

Test(chat, extra_variables_and_no_generation_prompt)
{
    char *tmpl = read_template("Qwen-Qwen3-0.6B");
    const char *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    struct hr_chat_opts o = ref_opts();
    o.extra_json = "{\"enable_thinking\": false}";
    char *out;
    struct hr_err err;
    cr_assert_eq(render(tmpl, msgs, NULL, &o, &out, &err), 0, "%s", err.msg);
    cr_expect_str_eq(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    free(out);
    o.extra_json = NULL;
    o.add_generation_prompt = false;
    cr_assert_eq(render(tmpl, msgs, NULL, &o, &out, &err), 0, "%s", err.msg);
    cr_expect_str_eq(out, "<|im_start|>user\nhi<|im_end|>\n");
    free(out);
    o.extra_json = "[1]";
    cr_expect_eq(render(tmpl, msgs, NULL, &o, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "extra_json") != NULL, "%s", err.msg);
    free(tmpl);
}

Test(chat, date_follows_now)
{
    char *tmpl = read_template("meta-llama-Llama-3.2-3B-Instruct");
    struct hr_chat_opts o = ref_opts();
    o.now = INT64_C(1704067200); /* 2024-01-01 */
    char *out;
    struct hr_err err;
    cr_assert_eq(render(tmpl, "[{\"role\": \"user\", \"content\": \"x\"}]", NULL, &o, &out, &err), 0,
                 "%s", err.msg);
    cr_expect(strstr(out, "Today Date: 01 Jan 2024\n") != NULL, "%s", out);
    free(out);
    free(tmpl);
}

/* ---- the interpreter -------------------------------------------------------------------- */

Test(chat, whitespace_control)
{
    /* trim_blocks: the newline after a block tag goes; lstrip_blocks: the
     * indentation before it; neither applies to {{ }} */
    expect("{% if true %}\n  a\n{% endif %}\n", "  a\n");
    expect("  {% if true %}x{% endif %}  \n  {{ 'y' }}\n", "x  \n  y");
    /* explicit control: - strips every whitespace, + keeps */
    expect("a  \n  {%- if true -%}  \n b {%- endif %}", "ab");
    expect("  {%+ if true %}x{% endif +%}\ny", "  x\ny");
    expect("a {{- ' b ' -}} \n c", "a b c");
    expect("{# comment #}\nx{#- c -#}  y", "xy");
    expect("{% raw %}{{ not a tag }}{% endraw %}", "{{ not a tag }}");
    /* \r\n becomes \n, and one trailing newline is dropped */
    expect("a\r\nb\n", "a\nb");
}

Test(chat, expressions)
{
    expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'ab' * 2 }}",
           "3 -4 2 3.5 1024 abab");
    expect("{{ 1 ~ none ~ true }} {{ [1, 'a'] + [none] }} {{ (1,) }} {{ {'k': 'v'} }}",
           "1NoneTrue [1, 'a', None] (1,) {'k': 'v'}");
    expect("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 0.00001 }} {{ 2.5 | round }}",
           "0.30000000000000004 1e+16 1000000000000000.0 1e-05 2.0");
    expect("{{ 'x' if false }}|{{ 'b' if 1 > 2 else 'c' }}|{{ 1 < 2 < 3 }}|{{ 'a' not in 'abc' }}",
           "|c|True|False");
    expect("{{ [3, 1, 2][::-1] }} {{ 'héllo'[1:3] }} {{ 'abc'[-1] }} {{ [1][5] }}",
           "[2, 1, 3] él c ");
    expect("{{ none and 1 }} {{ 0 or 'x' }} {{ not '' }}", "None x True");
}

Test(chat, filters_and_methods)
{
    expect("{{ '  a b  '|trim }}|{{ ' x '.strip() }}|{{ 'a\\n'.rstrip('\\n') }}|{{ 'x-y z'|title }}",
           "a b|x|a|X-Y Z");
    expect("{{ 'a,b,c'.split(',', 1) }} {{ ' a  b '.split() }} {{ 'ab'.startswith(('x', 'a')) }}",
           "['a', 'b,c'] ['a', 'b'] True");
    expect("{{ [3, 1, 2]|sort|join('-') }} {{ ['b', 'A']|sort|first }} {{ [1, 2]|last }} "
           "{{ 'abc'|length }} {{ [1, 1, 2]|unique|list }}",
           "1-2-3 A 2 3 [1, 2]");
    expect("{{ [{'r': 'u'}, {'r': 'a'}]|selectattr('r', 'equalto', 'u')|list|length }} "
           "{{ [{'r': 'u'}, {'r': 'a'}]|map(attribute='r')|join }} {{ undefined_x|default('d') }}",
           "1 ua d");
    expect("{{ {'b': 1, 'a': 2}.items()|list }} {{ {'a': 1}.get('z', 0) }} {{ {'a': 1}|items|list }}",
           "[('b', 1), ('a', 2)] 0 [('a', 1)]");
    expect("{{ 'a\\nb'|indent(2) }}|{{ '%s=%d'|format('n', 3) }}|{{ '{} {x}'.format(1, x=2) }}",
           "a\n  b|n=3|1 2");
    expect("{{ 'Straße'|upper }} {{ 'ÉCOLE'|lower }} {{ 'héllo'|length }} {{ '12'|int + 1 }}",
           "STRASSE école 5 13");
}

Test(chat, tojson_is_json_dumps)
{
    /* key order kept, ", " and ": " separators, non-ASCII as is, Python float repr */
    expect("{{ {'b': [1, 2.0, none, true], 'a': 'é\"\\\\\\n\\u0001'}|tojson }}",
           "{\"b\": [1, 2.0, null, true], \"a\": \"é\\\"\\\\\\n\\u0001\"}");
    /* indent: "," and ": ", empty containers stay closed */
    expect("{{ {'a': [1, {}], 'b': []}|tojson(indent=2) }}",
           "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
    expect("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ 'é'|tojson(ensure_ascii=true) }}",
           "{\"a\": 2, \"b\": 1} \"\\u00e9\"");
    /* messages keep the key order of the request */
    char *out;
    struct hr_err err;
    cr_assert_eq(render("{{ messages[0]|tojson }}", "[{\"z\": 1, \"role\": \"user\", \"a\": [1.5e300]}]",
                        NULL, NULL, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "{\"z\": 1, \"role\": \"user\", \"a\": [1.5e+300]}");
    free(out);
    expect_fail("{{ undefined_x|tojson }}", -EINVAL, "'undefined_x' is undefined");
    expect_fail("{{ namespace()|tojson }}", -EINVAL, "not JSON serializable");
}

Test(chat, scoping)
{
    /* a set in a loop body does not survive the iteration; a namespace does */
    expect("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{% endfor %}{{ x }}", "000");
    expect("{% set ns = namespace(x=0) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}"
           "{{ ns.x }}",
           "3");
    expect("{% if true %}{% set y = 1 %}{% endif %}{{ y }}", "1");
    expect("{% for k, v in {'a': 1, 'b': 2}.items() if v > 1 %}{{ k }}{{ loop.length }}"
           "{% else %}none{% endfor %}",
           "b1");
    expect("{% for i in [1, 2, 3] %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}"
           "{{ loop.previtem }}{% endfor %}",
           "132");
    expect("{% macro m(a, b=a * 2) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, b=5) }}", "1215");
    expect("{% macro w() %}[{{ caller(3) }}]{% endmacro %}{% call(n) w() %}{{ n * 2 }}{% endcall %}",
           "[6]");
    expect("{% set s %} x {% endset %}{% set t | upper %}y{% endset %}[{{ s }}{{ t }}]", "[ x Y]");
    expect("{% filter upper %}ab{% endfilter %}{% with a = 1 %}{{ a }}{% endwith %}{{ a }}", "AB1");
    /* a filter's result is a generator: always true, iterable once */
    expect("{% set g = [1]|select('odd') %}{% if [2]|select('odd') %}T{% endif %}{{ g|list }}"
           "{{ g|list }}",
           "T[1][]");
}

Test(chat, strftime_now)
{
    struct hr_chat_opts o = {.now = REF_NOW};
    char *out;
    struct hr_err err;
    cr_assert_eq(render("{{ strftime_now('%d %b %Y|%B %-d, %Y|%H:%M %a') }}|{{ date_string }}", "[]",
                        NULL, &o, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "26 Nov 2026|November 26, 2026|12:00 Thu|26 Nov 2026");
    free(out);
}

/* ---- errors ------------------------------------------------------------------------------ */

Test(chat, syntax_errors_have_line_and_column)
{
    struct hr_err e = expect_fail("ok\n  {{ 1 + }}", -EINVAL, "template:2:10: syntax error");
    cr_expect_eq(e.line, 2);
    cr_expect_eq(e.column, 10);
    e = expect_fail("{% for x in y %}\n{% endif %}", -EINVAL, "template:2:4: unexpected 'endif'");
    cr_expect_eq(e.line, 2);
    e = expect_fail("\n\n {% if x %}", -EINVAL, "template:3:5: 'if' block is never closed");
    cr_expect_eq(e.line, 3);
    expect_fail("{{ 'abc }}", -EINVAL, "template:1:4: string literal is never closed");
    expect_fail("{{ x", -EINVAL, "template:1:1: tag is never closed");
    expect_fail("{# x", -EINVAL, "comment is never closed");
    expect_fail("{{ x @ y }}", -EINVAL, "template:1:6: unexpected character '@'");
    expect_fail("{% macro m(a=1, b) %}{% endmacro %}", -EINVAL, "non-default argument 'b'");
    expect_fail("{% break %}", -EINVAL, "'break' outside of a for loop");
    expect_fail("\xff", -EINVAL, "invalid UTF-8");
}

Test(chat, unsupported_constructs_are_named)
{
    expect_fail("{{ x|frobnicate }}", -EINVAL, "template:1:6: unknown filter 'frobnicate'");
    expect_fail("{% if x is prime %}{% endif %}", -EINVAL, "template:1:12: unknown test 'prime'");
    expect_fail("\n{% include 'other.jinja' %}", -EINVAL, "template:2:4: unsupported tag 'include'");
    expect_fail("{% extends 'base' %}", -EINVAL, "unsupported tag 'extends'");
    expect_fail("{% for x in y recursive %}{% endfor %}", -EINVAL, "unsupported: recursive");
    expect_fail("{{ f(*args) }}", -EINVAL, "unsupported: *args");
    expect_fail("{{ x[1:2, 3] }}", -EINVAL, "template:1:6: unsupported: a slice inside a tuple");
    expect_fail("{{ 'x'.format_map({}) }}", -EINVAL, "'str object' has no attribute 'format_map'");
}

Test(chat, runtime_errors)
{
    expect_fail("{{ raise_exception('No ' ~ 'way') }}", -EINVAL, "template:1:4: raise_exception: No way");
    expect_fail("{{ 1 + 'a' }}", -EINVAL, "unsupported operand types for +: 'int' and 'str'");
    expect_fail("{{ foo.bar }}", -EINVAL, "'foo' is undefined");
    expect_fail("{{ messages[0].nope.x }}", -EINVAL, "'dict object' has no attribute 'nope'");
    expect_fail("{{ messages[1].role }}", -EINVAL, "list index out of range");
    expect_fail("{{ messages[0].content.nope() }}", -EINVAL, "'str object' has no attribute 'nope'");
    expect_fail("{{ foo + 1 }}", -EINVAL, "'foo' is undefined");
    expect_fail("{% for x in none %}{% endfor %}", -EINVAL, "'NoneType' object is not iterable");
    expect_fail("{{ 1 // 0 }}", -EINVAL, "division or modulo by zero");
    expect_fail("{{ 9223372036854775807 + 1 }}", -EINVAL, "integer overflow");
    expect_fail("{% set x = 1 %}{% set x.y = 2 %}", -EINVAL, "only a namespace()");
    expect_fail("{{ [1].append(2) }}", -EINVAL, "sandbox");
    expect_fail("{% macro m() %}{% endmacro %}{{ m(1) }}", -EINVAL, "takes not more than 0");
    /* undefined values print as nothing, iterate as empty, and test false */
    expect("[{{ nothing }}]{% for x in nothing %}x{% endfor %}{{ nothing is defined }}"
           "{{ 'a' in nothing }}",
           "[]FalseFalse");
}

/* ---- limits -------------------------------------------------------------------------------- */

/* head + n times `rep` + tail, owned */
static char *build(const char *head, const char *rep, int n, const char *tail)
{
    size_t lh = strlen(head), lr = strlen(rep), lt = strlen(tail);
    char *s = malloc(lh + lr * (size_t)n + lt + 1), *p = s;
    cr_assert_not_null(s);
    memcpy(p, head, lh);
    p += lh;
    for (int i = 0; i < n; i++, p += lr)
        memcpy(p, rep, lr);
    memcpy(p, tail, lt + 1);
    return s;
}

/* Nesting that would recurse deeply in the parser is refused there. */
Test(chat, deep_nesting_is_refused)
{
    char *open = build("{{ ", "(", 5000, "1"), *t = build(open, ")", 5000, " }}");
    expect_fail(t, -EINVAL, "nested more than 100 levels");
    free(open);
    free(t);
    open = build("", "{% if true %}", 3000, "x");
    t = build(open, "{% endif %}", 3000, "");
    expect_fail(t, -EINVAL, "nested more than 100 levels");
    free(open);
    free(t);
    t = build("{{ ", "not ", 100000, "1 }}");
    expect_fail(t, -EINVAL, "nested more than 100 levels");
    free(t);
    t = build("{{ ", "-", 100000, "1 }}");
    expect_fail(t, -EINVAL, "nested more than 100 levels");
    free(t);
    /* a long flat chain parses without recursion; evaluating its left-deep
     * tree is bounded by the evaluation depth */
    t = build("{{ 1", " + 1", 20000, " }}");
    expect_fail(t, -E2BIG, "nested more than");
    free(t);
    t = build("{{ 1", " + 1", 200, " }}");
    expect(t, "201");
    free(t);
}

Test(chat, runaway_templates_hit_the_limits)
{
    expect_fail("{% set r = range(10000) %}{% for i in r %}{% for j in r %}{% for k in r %}"
                "{% endfor %}{% endfor %}{% endfor %}",
                -E2BIG, "steps");
    expect_fail("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", -E2BIG, "nested more than");
    expect_fail("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(0) }}", -E2BIG, "");
    expect_fail("{{ 'x' * 1000000000 }}", -E2BIG, "output limit");
    expect_fail("{{ range(10000000000)|length }}", -E2BIG, "range");
    expect_fail("{% for i in range(200000) %}{{ 'x' * 1000 }}{% endfor %}", -E2BIG, "MiB");
    expect_fail("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                "{% endfor %}",
                -E2BIG, "");
}

Test(chat, deep_values_are_refused)
{
    /* built by a loop, a list nested 100000 deep cannot be walked without
     * a bound: comparing, printing or serializing it fails cleanly */
    static const char *const uses[] = {"{{ ns.x == ns.x }}", "{{ ns.x }}", "{{ ns.x|tojson }}",
                                       "{{ ns.x < ns.x }}"};
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        char *t = build("{% set ns = namespace(x=1) %}{% for i in range(100000) %}"
                        "{% set ns.x = [ns.x] %}{% endfor %}", "", 0, uses[i]);
        expect_fail(t, -E2BIG, "nested more than 512 levels");
        free(t);
    }
    expect_fail("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}", -E2BIG, "nested");
    char *out;
    struct hr_err err;
    char *deep = build("[{\"role\": \"user\", \"content\": \"x\", \"x\": ", "[", 200, "");
    char *msgs = build(deep, "]", 200, "}]");
    cr_expect_eq(render("x", msgs, NULL, NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "messages: nested more than 128 levels") != NULL, "%s", err.msg);
    free(deep);
    free(msgs);
}

Test(chat, small_limits)
{
    struct jinja_limits lim = {.max_output = 100, .max_memory = 1 << 20, .max_steps = 1000,
                               .max_depth = 50};
    char *out;
    struct hr_err err;
    cr_expect_eq(chat_render("{{ 'x' * 50 }}", "[]", NULL, NULL, &lim, &out, &err), 0, "%s", err.msg);
    free(out);
    cr_expect_eq(chat_render("{{ 'x' * 101 }}", "[]", NULL, NULL, &lim, &out, &err), -E2BIG);
    cr_expect_eq(chat_render("{% for i in range(2000) %}{% endfor %}", "[]", NULL, NULL, &lim, &out,
                             &err),
                 -E2BIG);
}

/* ---- requests ------------------------------------------------------------------------------ */

Test(chat, bad_requests)
{
    char *out;
    struct hr_err err;
    cr_expect_eq(render("x", "[{\"role\": ", NULL, NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "messages: invalid JSON at 1:") != NULL, "%s", err.msg);
    cr_expect_eq(render("x", "{}", NULL, NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "must be a JSON array") != NULL, "%s", err.msg);
    cr_expect_eq(render("x", "[{\"content\": \"a\"}]", NULL, NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "messages[0]: 'role'") != NULL, "%s", err.msg);
    cr_expect_eq(render("x", "[{\"role\": \"user\", \"content\": 5}]", NULL, NULL, &out, &err), -EINVAL);
    cr_expect_eq(render("x", "[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]", NULL,
                        NULL, &out, &err),
                 -EINVAL);
    cr_expect(strstr(err.msg, "messages[0].content[0]") != NULL, "%s", err.msg);
    cr_expect_eq(render("x", "[]", "{\"a\": 1}", NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "tools") != NULL, "%s", err.msg);
    cr_expect_eq(render("{{ '\\0' }}", "[]", NULL, NULL, &out, &err), -EINVAL);
    cr_expect(strstr(err.msg, "NUL") != NULL, "%s", err.msg);
    cr_expect_eq(hr_chat_render("x", NULL, NULL, NULL, &out, &err), -EINVAL);
}

Test(chat, content_parts_and_argument_strings)
{
    char *out;
    struct hr_err err;
    /* text parts are joined with "\n" */
    cr_assert_eq(render("{{ messages[0].content }}",
                        "[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                        "{\"type\": \"text\", \"text\": \"b\"}]}]",
                        NULL, NULL, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "a\nb");
    free(out);
    /* a template that prints arguments with tojson gets them parsed; one
     * that prints strings as they are keeps the caller's text */
    const char *msgs = "[{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": "
                       "\"function\", \"function\": {\"name\": \"f\", \"arguments\": "
                       "\"{\\\"x\\\":1}\"}}]}]";
    cr_assert_eq(render("{% for m in messages if m.tool_calls %}"
                        "{{ m.tool_calls[0].function.arguments|tojson }}{% endfor %}",
                        msgs, NULL, NULL, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "{\"x\": 1}");
    free(out);
    cr_assert_eq(render("{% for m in messages %}{% set a = m.tool_calls[0].function.arguments %}"
                        "{{ a if a is string else a|tojson }}{% endfor %}",
                        msgs, NULL, NULL, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "{\"x\":1}");
    free(out);
}

Test(chat, leading_bos_is_removed)
{
    struct hr_chat_opts o = {.bos_token = "<s>", .eos_token = "</s>"};
    char *out;
    struct hr_err err;
    cr_assert_eq(render("{{ bos_token }}a{{ bos_token }}{{ eos_token }}", "[]", NULL, &o, &out, &err), 0);
    cr_expect_str_eq(out, "a<s></s>");
    free(out);
}

Test(chat, no_template_fallback)
{
    char *out;
    struct hr_err err;
    struct hr_chat_opts o = {.add_generation_prompt = true};
    cr_assert_eq(render(NULL,
                        "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                        "\"content\": \"Once upon\"}, {\"role\": \"assistant\", \"content\": null}, "
                        "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a time\"}]}]",
                        "[]", &o, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "Be brief.\n\nOnce upon\n\na time");
    free(out);
    cr_assert_eq(render(NULL, "[]", NULL, NULL, &out, &err), 0);
    cr_expect_str_eq(out, "");
    free(out);
}

/* ---- hr_model_chat_template ------------------------------------------------------------ */

static bool skip_template(const char *key, void *ud)
{
    (void)ud;
    return strcmp(key, "tokenizer.chat_template") == 0;
}

Test(chat, model_chat_template)
{
    struct hr_model *m = NULL;
    struct hr_err err;
    struct hr_model_params vo = {.vocab_only = true};
    cr_assert_eq(hr_model_load(tu_stories(), &vo, &m, &err), 0, "%s", err.msg);
    cr_expect_null(hr_model_chat_template(m), "stories260K has no chat template");
    hr_model_free(m);

    /* the same vocabulary with a template added */
    struct gguf_file *f = NULL;
    cr_assert_eq(gguf_open(tu_stories(), GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    struct gguf_writer *w = gguf_writer_new();
    const char *tmpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
    cr_assert_eq(gguf_writer_copy_kv(w, f, skip_template, NULL), 0);
    cr_assert_eq(gguf_writer_add_str(w, "tokenizer.chat_template", tmpl), 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/hearth-chat-%d.gguf", (int)getpid());
    cr_assert_eq(gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    gguf_free(f);
    cr_assert_eq(hr_model_load(path, &vo, &m, &err), 0, "%s", err.msg);
    unlink(path);
    cr_assert_str_eq(hr_model_chat_template(m), tmpl);
    char *out;
    cr_assert_eq(hr_chat_render(hr_model_chat_template(m), "[{\"role\": \"user\", \"content\": \"hi\"}]",
                                NULL, NULL, &out, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(out, "<user>hi");
    free(out);
    hr_model_free(m);
}

/* Models in refdata that ship a template render a conversation with it. */
Test(chat, refdata_vocab_templates)
{
    static const char *const vocabs[] = {"vocab/ggml-vocab-phi-3.gguf", "vocab/ggml-vocab-qwen2.gguf",
                                         "vocab/ggml-vocab-qwen35.gguf"};
    int seen = 0;
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        const char *p = tu_ref(vocabs[i]);
        if (!p || !tu_exists(p))
            continue;
        struct hr_model *m = NULL;
        struct hr_err err;
        struct hr_model_params vo = {.vocab_only = true};
        cr_assert_eq(hr_model_load(p, &vo, &m, &err), 0, "%s: %s", p, err.msg);
        const char *t = hr_model_chat_template(m);
        cr_assert_not_null(t, "%s has tokenizer.chat_template", p);
        struct hr_chat_opts o = ref_opts();
        char *out;
        int rc = hr_chat_render(t, "[{\"role\": \"user\", \"content\": \"Hello there\"}]", NULL, &o,
                                &out, &err);
        cr_expect_eq(rc, 0, "%s: %s", p, err.msg);
        if (rc == 0)
            cr_expect(strstr(out, "Hello there") != NULL, "%s: %s", p, out);
        free(out);
        hr_model_free(m);
        seen++;
    }
    if (!seen)
        cr_skip_test("refdata vocabularies not present");
}
