/*
 * schema.c — the JSON Schema subset of schema.h: a checker for schemas and a
 * validator for values.
 *
 * Both walk the schema recursively, carrying the JSONPath of the place
 * being looked at in a fixed buffer (cut, never overflowed, when a path is
 * absurdly long) for the error message. The validator stops at the first
 * problem: a model fixes one argument at a time anyway, and a short message
 * is easier for it to act on.
 */
#include "schema.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

static int fail(struct hr_err *err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct hr_err *err, const char *where, const char *fmt, ...)
{
    if (err) {
        size_t cap = sizeof err->msg;
        int n = snprintf(err->msg, cap, "%s: ", where);
        size_t used = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg + used, cap - used, fmt, ap);
        va_end(ap);
        err->offset = -1;
        err->line = 0;
        err->column = 0;
    }
    return -EINVAL;
}

/* out = base + sep + tail (+ close), cut to the buffer (a path in a
 * message; cutting only shortens the message). */
static void path_join(char *out, size_t cap, const char *base, const char *sep, const char *tail,
                      const char *close)
{
    const char *parts[] = {base, sep, tail, close};
    size_t o = 0;
    for (size_t i = 0; i < 4; i++)
        for (const char *p = parts[i]; *p && o + 1 < cap; p++)
            out[o++] = *p;
    out[o] = 0;
}

static void path_key(char *out, size_t cap, const char *base, const char *key)
{
    path_join(out, cap, base, ".", key, "");
}

static void path_index(char *out, size_t cap, const char *base, size_t i)
{
    char num[32];
    snprintf(num, sizeof num, "%zu", i);
    path_join(out, cap, base, "[", num, "]");
}

#define PATH_CAP 256

/* ---- types ---------------------------------------------------------------- */

static const char *const TYPE_NAMES[] = {"object", "array",   "string", "integer",
                                         "number", "boolean", "null"};
#define N_TYPES (sizeof TYPE_NAMES / sizeof TYPE_NAMES[0])

static bool is_type_name(const char *s)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(s, TYPE_NAMES[i]) == 0)
            return true;
    return false;
}

/* The JSON Schema type name of a value (integers: "integer"). */
static const char *value_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return isfinite(d) && d == floor(d);
}

static bool type_matches(const char *type, const json_t *v)
{
    if (strcmp(type, "integer") == 0)
        return is_integral(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    return strcmp(type, value_type(v)) == 0;
}

/* ---- the schema checker ------------------------------------------------------ */

static const char *const ANNOTATIONS[] = {"title",   "description", "default", "examples",
                                          "format",  "$schema",     "$id",     "$comment"};

static bool is_annotation(const char *k)
{
    for (size_t i = 0; i < sizeof ANNOTATIONS / sizeof ANNOTATIONS[0]; i++)
        if (strcmp(k, ANNOTATIONS[i]) == 0)
            return true;
    return false;
}

static bool is_count(const json_t *v)
{
    return is_integral(v) && json_number_value(v) >= 0;
}

static int check(const json_t *s, const char *where, int depth, struct hr_err *err);

static int check_type(const json_t *t, const char *where, struct hr_err *err)
{
    if (json_is_string(t)) {
        if (!is_type_name(json_string_value(t)))
            return fail(err, where, "unknown type '%s'", json_string_value(t));
        return 0;
    }
    if (!json_is_array(t) || json_array_size(t) == 0)
        return fail(err, where, "must be a type name or a non-empty array of them");
    size_t i;
    const json_t *e;
    json_array_foreach(t, i, e)
    {
        if (!json_is_string(e) || !is_type_name(json_string_value(e)))
            return fail(err, where, "item %zu is not a type name", i);
    }
    return 0;
}

static int check_keyword(const char *k, const json_t *v, const char *where, int depth,
                         struct hr_err *err)
{
    char at[PATH_CAP];
    path_key(at, sizeof at, where, k);
    if (strcmp(k, "type") == 0)
        return check_type(v, at, err);
    if (strcmp(k, "properties") == 0) {
        if (!json_is_object(v))
            return fail(err, at, "must be an object of schemas");
        const char *name;
        const json_t *sub;
        json_object_foreach((json_t *)v, name, sub)
        {
            char p[PATH_CAP];
            path_key(p, sizeof p, at, name);
            int rc = check(sub, p, depth + 1, err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (strcmp(k, "required") == 0) {
        if (!json_is_array(v))
            return fail(err, at, "must be an array of property names");
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return fail(err, at, "item %zu is not a string", i);
        }
        return 0;
    }
    if (strcmp(k, "additionalProperties") == 0) {
        if (json_is_boolean(v))
            return 0;
        return check(v, at, depth + 1, err);
    }
    if (strcmp(k, "items") == 0)
        return check(v, at, depth + 1, err);
    if (strcmp(k, "enum") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(err, at, "must be a non-empty array");
        return 0;
    }
    if (strcmp(k, "const") == 0)
        return 0;
    if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0 ||
        strcmp(k, "minItems") == 0 || strcmp(k, "maxItems") == 0) {
        if (!is_count(v))
            return fail(err, at, "must be a non-negative integer");
        return 0;
    }
    if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0 ||
        strcmp(k, "exclusiveMinimum") == 0 || strcmp(k, "exclusiveMaximum") == 0) {
        if (!json_is_number(v))
            return fail(err, at, "must be a number");
        return 0;
    }
    if (is_annotation(k))
        return 0;
    return fail(err, where, "unsupported keyword '%s'", k);
}

static int check(const json_t *s, const char *where, int depth, struct hr_err *err)
{
    if (depth > MAX_DEPTH)
        return fail(err, where, "nested deeper than %d levels", MAX_DEPTH);
    if (json_is_boolean(s))
        return 0; /* true accepts anything, false nothing */
    if (!json_is_object(s))
        return fail(err, where, "a schema must be an object or a boolean");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        int rc = check_keyword(k, v, where, depth, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int hd_schema_check(const json_t *schema, struct hr_err *err)
{
    if (!schema)
        return fail(err, "$", "no schema");
    return check(schema, "$", 0, err);
}

/* ---- the validator --------------------------------------------------------------- */

/* Unicode code points in a UTF-8 string (jansson strings are valid UTF-8):
 * every byte that is not a continuation byte starts one. */
static size_t utf8_length(const char *s, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        cps += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cps;
}

/* A short rendering of a value for messages: scalars as JSON (strings cut),
 * containers by type. */
static void describe(const json_t *v, char *out, size_t cap)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        snprintf(out, cap, "\"%.40s%s\"", s, n > 40 ? "..." : "");
    } else if (json_is_object(v) || json_is_array(v)) {
        snprintf(out, cap, "an %s", json_is_object(v) ? "object" : "array");
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", t ? t : "?");
        free(t);
    }
}

static int validate(const json_t *s, const json_t *v, const char *where, int depth,
                    struct hr_err *err);

static int validate_type(const json_t *t, const json_t *v, const char *where,
                         struct hr_err *err)
{
    if (json_is_string(t)) {
        if (type_matches(json_string_value(t), v))
            return 0;
        return fail(err, where, "expected %s, got %s", json_string_value(t), value_type(v));
    }
    if (!json_is_array(t))
        return 0;
    char names[128] = "";
    size_t i, len = 0;
    const json_t *e;
    json_array_foreach(t, i, e)
    {
        if (!json_is_string(e))
            continue;
        if (type_matches(json_string_value(e), v))
            return 0;
        int n = snprintf(names + len, sizeof names - len, "%s%s", i ? " or " : "",
                         json_string_value(e));
        if (n > 0 && (size_t)n < sizeof names - len)
            len += (size_t)n;
    }
    return fail(err, where, "expected %s, got %s", names, value_type(v));
}

static int validate_object(const json_t *s, const json_t *v, const char *where, int depth,
                           struct hr_err *err)
{
    const json_t *props = json_object_get(s, "properties");
    const json_t *req = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    if (json_is_array(req)) {
        size_t i;
        const json_t *e;
        json_array_foreach(req, i, e)
        {
            const char *name = json_string_value(e);
            if (name && !json_object_get(v, name))
                return fail(err, where, "missing required property '%s'", name);
        }
    }
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        char at[PATH_CAP];
        path_key(at, sizeof at, where, k);
        const json_t *sub = json_is_object(props) ? json_object_get(props, k) : NULL;
        if (!sub) {
            if (json_is_false(addl)) {
                if (json_is_object(props) && json_object_size(props) > 0) {
                    /* list what is allowed: the model can pick the right name */
                    char names[256] = "";
                    size_t len = 0;
                    const char *pk;
                    const json_t *pv;
                    json_object_foreach((json_t *)props, pk, pv)
                    {
                        int n = snprintf(names + len, sizeof names - len, "%s%s",
                                         len ? ", " : "", pk);
                        if (n < 0 || (size_t)n >= sizeof names - len)
                            break;
                        len += (size_t)n;
                    }
                    return fail(err, where, "unknown property '%s' (allowed: %s)", k, names);
                }
                return fail(err, where, "unknown property '%s' (none allowed)", k);
            }
            if (json_is_object(addl)) {
                int rc = validate(addl, val, at, depth + 1, err);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        int rc = validate(sub, val, at, depth + 1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int validate_number(const json_t *s, const json_t *v, const char *where,
                           struct hr_err *err)
{
    double x = json_number_value(v);
    const json_t *b;
    char got[64];
    describe(v, got, sizeof got);
    if ((b = json_object_get(s, "minimum")) && json_is_number(b) && x < json_number_value(b))
        return fail(err, where, "%s is less than the minimum %g", got, json_number_value(b));
    if ((b = json_object_get(s, "maximum")) && json_is_number(b) && x > json_number_value(b))
        return fail(err, where, "%s is greater than the maximum %g", got, json_number_value(b));
    if ((b = json_object_get(s, "exclusiveMinimum")) && json_is_number(b) &&
        x <= json_number_value(b))
        return fail(err, where, "%s must be greater than %g", got, json_number_value(b));
    if ((b = json_object_get(s, "exclusiveMaximum")) && json_is_number(b) &&
        x >= json_number_value(b))
        return fail(err, where, "%s must be less than %g", got, json_number_value(b));
    return 0;
}

static int validate_string(const json_t *s, const json_t *v, const char *where,
                           struct hr_err *err)
{
    size_t n = utf8_length(json_string_value(v), json_string_length(v));
    const json_t *b;
    if ((b = json_object_get(s, "minLength")) && json_is_number(b) &&
        (double)n < json_number_value(b))
        return fail(err, where, "string of %zu characters is shorter than the minimum %g", n,
                    json_number_value(b));
    if ((b = json_object_get(s, "maxLength")) && json_is_number(b) &&
        (double)n > json_number_value(b))
        return fail(err, where, "string of %zu characters is longer than the maximum %g", n,
                    json_number_value(b));
    return 0;
}

static int validate_array(const json_t *s, const json_t *v, const char *where, int depth,
                          struct hr_err *err)
{
    size_t n = json_array_size(v);
    const json_t *b;
    if ((b = json_object_get(s, "minItems")) && json_is_number(b) &&
        (double)n < json_number_value(b))
        return fail(err, where, "array of %zu items has fewer than the minimum %g", n,
                    json_number_value(b));
    if ((b = json_object_get(s, "maxItems")) && json_is_number(b) &&
        (double)n > json_number_value(b))
        return fail(err, where, "array of %zu items has more than the maximum %g", n,
                    json_number_value(b));
    const json_t *items = json_object_get(s, "items");
    if (!items)
        return 0;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e)
    {
        char at[PATH_CAP];
        path_index(at, sizeof at, where, i);
        int rc = validate(items, e, at, depth + 1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Numbers compare by value (1 equals 1.0) in enum and const, as JSON
 * Schema says; everything else by json_equal. */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

static int validate(const json_t *s, const json_t *v, const char *where, int depth,
                    struct hr_err *err)
{
    if (depth > MAX_DEPTH)
        return fail(err, where, "nested deeper than %d levels", MAX_DEPTH);
    if (json_is_true(s))
        return 0;
    if (json_is_false(s))
        return fail(err, where, "no value is allowed here");
    if (!json_is_object(s))
        return 0;
    const json_t *t = json_object_get(s, "type");
    int rc;
    if (t && (rc = validate_type(t, v, where, err)) < 0)
        return rc;
    const json_t *e = json_object_get(s, "enum");
    if (json_is_array(e)) {
        bool found = false;
        size_t i;
        const json_t *x;
        json_array_foreach(e, i, x) found = found || same_value(x, v);
        if (!found) {
            char *allowed = json_dumps(e, JSON_COMPACT);
            char got[64];
            describe(v, got, sizeof got);
            rc = fail(err, where, "%s is not one of %s", got, allowed ? allowed : "the allowed values");
            free(allowed);
            return rc;
        }
    }
    const json_t *c = json_object_get(s, "const");
    if (c && !same_value(c, v)) {
        char *want = json_dumps(c, JSON_ENCODE_ANY | JSON_COMPACT);
        rc = fail(err, where, "must be %s", want ? want : "the constant value");
        free(want);
        return rc;
    }
    if (json_is_object(v))
        return validate_object(s, v, where, depth, err);
    if (json_is_array(v))
        return validate_array(s, v, where, depth, err);
    if (json_is_string(v))
        return validate_string(s, v, where, err);
    if (json_is_number(v))
        return validate_number(s, v, where, err);
    return 0;
}

int hd_schema_validate(const json_t *schema, const json_t *value, struct hr_err *err)
{
    if (!schema || !value)
        return fail(err, "$", "no value");
    return validate(schema, value, "$", 0, err);
}
