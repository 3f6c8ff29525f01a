/*
 * test_schema.c — the JSON Schema subset of daemon/schema.h: which schemas
 * are accepted, and every keyword's check with the message a model gets.
 */
#include "schema.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "bad test JSON %s: %s", text, je.text);
    return v;
}

/* Validates value against schema; NULL `needle` expects success, else an
 * error containing it. */
static void check(const char *schema, const char *value, const char *needle)
{
    json_t *s = parse(schema), *v = parse(value);
    struct hr_err err = {0};
    cr_assert_eq(hd_schema_check(s, &err), 0, "schema %s refused: %s", schema, err.msg);
    int rc = hd_schema_validate(s, v, &err);
    if (!needle) {
        cr_assert_eq(rc, 0, "%s against %s: %s", value, schema, err.msg);
    } else {
        cr_assert_eq(rc, -EINVAL, "%s against %s passed", value, schema);
        cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    }
    json_decref(s);
    json_decref(v);
}

static void refused(const char *schema, const char *needle)
{
    json_t *s = parse(schema);
    struct hr_err err = {0};
    cr_assert_eq(hd_schema_check(s, &err), -EINVAL, "schema %s accepted", schema);
    cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    json_decref(s);
}

Test(schema, types)
{
    check("{\"type\":\"string\"}", "\"x\"", NULL);
    check("{\"type\":\"string\"}", "1", "$: expected string, got integer");
    check("{\"type\":\"integer\"}", "3", NULL);
    check("{\"type\":\"integer\"}", "3.0", NULL); /* integral: an integer */
    check("{\"type\":\"integer\"}", "3.5", "expected integer, got number");
    check("{\"type\":\"number\"}", "3", NULL);
    check("{\"type\":\"number\"}", "\"3\"", "expected number, got string");
    check("{\"type\":\"boolean\"}", "false", NULL);
    check("{\"type\":\"boolean\"}", "0", "expected boolean");
    check("{\"type\":\"null\"}", "null", NULL);
    check("{\"type\":\"array\"}", "[]", NULL);
    check("{\"type\":\"object\"}", "[]", "expected object, got array");
    check("{\"type\":[\"string\",\"null\"]}", "null", NULL);
    check("{\"type\":[\"string\",\"null\"]}", "2", "expected string or null, got integer");
    check("true", "{\"anything\":1}", NULL);
    check("false", "1", "no value is allowed here");
    check("{}", "[1,{}]", NULL);
}

Test(schema, objects)
{
    const char *s = "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
                    "\"n\":{\"type\":\"integer\"}},\"required\":[\"path\"],"
                    "\"additionalProperties\":false}";
    check(s, "{\"path\":\"a\"}", NULL);
    check(s, "{\"path\":\"a\",\"n\":2}", NULL);
    check(s, "{}", "$: missing required property 'path'");
    check(s, "{\"path\":1}", "$.path: expected string, got integer");
    check(s, "{\"path\":\"a\",\"x\":1}", "$: unknown property 'x' (allowed: path, n)");
    check("{\"type\":\"object\",\"additionalProperties\":false}", "{\"x\":1}",
          "unknown property 'x' (none allowed)");
    /* additional properties allowed by default, or checked by a schema */
    check("{\"type\":\"object\",\"properties\":{}}", "{\"x\":1}", NULL);
    check("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}",
          "{\"a\":1,\"b\":\"2\"}", "$.b: expected integer, got string");
    /* nested places are named */
    check("{\"type\":\"object\",\"properties\":{\"o\":{\"type\":\"object\",\"properties\":"
          "{\"list\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}}}",
          "{\"o\":{\"list\":[1,2,\"x\"]}}", "$.o.list[2]: expected integer, got string");
}

Test(schema, enums_and_const)
{
    check("{\"enum\":[\"file\",\"dir\"]}", "\"dir\"", NULL);
    check("{\"enum\":[\"file\",\"dir\"]}", "\"link\"", "\"link\" is not one of [\"file\",\"dir\"]");
    check("{\"enum\":[1,2]}", "2.0", NULL); /* numbers compare by value */
    check("{\"enum\":[null,{\"a\":1}]}", "{\"a\":1}", NULL);
    check("{\"const\":\"x\"}", "\"x\"", NULL);
    check("{\"const\":\"x\"}", "\"y\"", "must be \"x\"");
}

Test(schema, strings_count_characters)
{
    check("{\"type\":\"string\",\"minLength\":1}", "\"\"", "shorter than the minimum 1");
    check("{\"type\":\"string\",\"maxLength\":3}", "\"abc\"", NULL);
    check("{\"type\":\"string\",\"maxLength\":3}", "\"abcd\"", "longer than the maximum 3");
    /* three characters, six bytes */
    check("{\"type\":\"string\",\"maxLength\":3}", "\"\\u00e9\\u00e9\\u00e9\"", NULL);
    check("{\"type\":\"string\",\"maxLength\":2}", "\"\\u00e9\\u00e9\\u00e9\"",
          "string of 3 characters");
    /* limits apply to strings only */
    check("{\"maxLength\":1}", "12345", NULL);
}

Test(schema, numbers)
{
    const char *s = "{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}";
    check(s, "1", NULL);
    check(s, "10", NULL);
    check(s, "0", "0 is less than the minimum 1");
    check(s, "11", "11 is greater than the maximum 10");
    check("{\"exclusiveMinimum\":0}", "0", "must be greater than 0");
    check("{\"exclusiveMinimum\":0}", "0.001", NULL);
    check("{\"exclusiveMaximum\":1.5}", "1.5", "must be less than 1.5");
}

Test(schema, arrays)
{
    const char *s = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":2,\"items\":"
                    "{\"type\":\"string\"}}";
    check(s, "[\"a\"]", NULL);
    check(s, "[]", "fewer than the minimum 1");
    check(s, "[\"a\",\"b\",\"c\"]", "more than the maximum 2");
    check(s, "[\"a\",1]", "$[1]: expected string");
}

Test(schema, unsupported_schemas_are_refused)
{
    refused("{\"type\":\"str\"}", "$.type: unknown type 'str'");
    refused("{\"type\":[]}", "non-empty array");
    refused("{\"oneOf\":[]}", "unsupported keyword 'oneOf'");
    refused("{\"properties\":{\"a\":{\"pattern\":\"x\"}}}",
            "$.properties.a: unsupported keyword 'pattern'");
    refused("{\"properties\":{\"a\":{\"$ref\":\"#\"}}}", "unsupported keyword '$ref'");
    refused("{\"required\":\"a\"}", "must be an array");
    refused("{\"required\":[1]}", "is not a string");
    refused("{\"minLength\":-1}", "non-negative integer");
    refused("{\"maxItems\":1.5}", "non-negative integer");
    refused("{\"minimum\":\"1\"}", "must be a number");
    refused("{\"enum\":[]}", "non-empty array");
    refused("{\"properties\":[]}", "must be an object of schemas");
    refused("{\"items\":3}", "a schema must be an object or a boolean");
    refused("[]", "a schema must be an object or a boolean");
    /* annotations are fine */
    json_t *s = parse("{\"title\":\"t\",\"description\":\"d\",\"default\":1,\"examples\":[1],"
                      "\"format\":\"uri\",\"$schema\":\"x\",\"$comment\":\"c\"}");
    cr_assert_eq(hd_schema_check(s, NULL), 0);
    json_decref(s);
}

Test(schema, deep_nesting_is_bounded)
{
    char schema[4096] = "", value[4096] = "";
    size_t o = 0, v = 0;
    for (int i = 0; i < 40; i++) {
        o += (size_t)snprintf(schema + o, sizeof schema - o, "{\"items\":");
        v += (size_t)snprintf(value + v, sizeof value - v, "[");
    }
    o += (size_t)snprintf(schema + o, sizeof schema - o, "true");
    for (int i = 0; i < 40; i++) {
        o += (size_t)snprintf(schema + o, sizeof schema - o, "}");
        v += (size_t)snprintf(value + v, sizeof value - v, "]");
    }
    refused(schema, "nested deeper than 32 levels");
    json_t *s = parse(schema), *val = parse(value);
    struct hr_err err;
    cr_assert_eq(hd_schema_validate(s, val, &err), -EINVAL);
    cr_assert_not_null(strstr(err.msg, "nested deeper"));
    json_decref(s);
    json_decref(val);
}

Test(schema, null_arguments)
{
    struct hr_err err;
    cr_assert_eq(hd_schema_check(NULL, &err), -EINVAL);
    json_t *s = parse("{}");
    cr_assert_eq(hd_schema_validate(s, NULL, &err), -EINVAL);
    cr_assert_eq(hd_schema_validate(s, s, NULL), 0);
    json_decref(s);
}
