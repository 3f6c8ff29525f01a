/*
 * dbus_args.c — reading and writing message arguments for the D-Bus
 * frontend (see dbus_args.h).
 *
 * Options are converted to JSON so that the one mapping of sampling keys
 * (ipc/params.c) checks ranges and words them as the socket and HTTP APIs
 * do; the types are checked here first, so a wrong one is named in D-Bus
 * terms ("must be a number (d), not 's'").
 */
#include "dbus_args.h"

#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool ipc_dbus_append_variant(DBusMessageIter *it, int type, const void *value)
{
    char sig[2] = {(char)type, 0};
    DBusMessageIter v;
    if (!dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, sig, &v))
        return false;
    if (!dbus_message_iter_append_basic(&v, type, value)) {
        dbus_message_iter_abandon_container(it, &v);
        return false;
    }
    return dbus_message_iter_close_container(it, &v);
}

/* One {sv} entry of an a{sv} being written at `dict`. */
static bool dict_add(DBusMessageIter *dict, const char *key, int type, const void *value)
{
    DBusMessageIter e;
    if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e))
        return false;
    if (!dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
        !ipc_dbus_append_variant(&e, type, value)) {
        dbus_message_iter_abandon_container(dict, &e);
        return false;
    }
    return dbus_message_iter_close_container(dict, &e);
}

bool ipc_dbus_dict_i32(DBusMessageIter *dict, const char *key, int32_t v)
{
    dbus_int32_t x = v;
    return dict_add(dict, key, DBUS_TYPE_INT32, &x);
}

bool ipc_dbus_dict_i64(DBusMessageIter *dict, const char *key, int64_t v)
{
    dbus_int64_t x = v;
    return dict_add(dict, key, DBUS_TYPE_INT64, &x);
}

bool ipc_dbus_dict_dbl(DBusMessageIter *dict, const char *key, double v)
{
    return dict_add(dict, key, DBUS_TYPE_DOUBLE, &v);
}

/* Options a{sv} → the JSON object ipc_params_gen reads. Each key has one
 * accepted kind, checked here so errors speak D-Bus types. The sampling keys
 * are those of ipc_params_gen_keys (tests/test_dbus.c checks none is
 * missing); `own` keys are the D-Bus frontend's, taken out of the object. */
enum opt_kind { OPT_NUMBER, OPT_INT, OPT_BOOL, OPT_STRINGS, OPT_STRING, OPT_JSON, OPT_LORA };

static const struct opt_def {
    const char *key;
    enum opt_kind kind;
    bool own, generate_only;
} options[] = {
    {"temperature", OPT_NUMBER},
    {"top_k", OPT_INT},
    {"top_p", OPT_NUMBER},
    {"min_p", OPT_NUMBER},
    {"repeat_penalty", OPT_NUMBER},
    {"frequency_penalty", OPT_NUMBER},
    {"presence_penalty", OPT_NUMBER},
    {"max_tokens", OPT_INT},
    {"max_completion_tokens", OPT_INT},
    {"n_predict", OPT_INT},
    {"seed", OPT_INT},
    {"stop", OPT_STRINGS},
    {"ignore_eos", OPT_BOOL},
    {"grammar", OPT_STRING},
    {"json_schema", OPT_JSON},
    {"lora", OPT_LORA},
    {"session", OPT_STRING, true},
    {"parse_special", OPT_BOOL, true, true},
};

static const char *const kind_names[] = {
    [OPT_NUMBER] = "a number (d)",
    [OPT_INT] = "an integer (i, u, x or t)",
    [OPT_BOOL] = "a boolean (b)",
    [OPT_STRINGS] = "a string or an array of strings (s or as)",
    [OPT_STRING] = "a string (s)",
    [OPT_JSON] = "JSON text (s)",
    [OPT_LORA] = "a profile name (s) or adapters with scales (a(sd))",
};

/* lora: a(sd) → [{"name": N, "scale": S}, ...]; NULL for another type. */
static json_t *lora_json(DBusMessageIter *v)
{
    char *sig = dbus_message_iter_get_signature(v);
    bool ok = sig && !strcmp(sig, "a(sd)");
    dbus_free(sig);
    if (!ok)
        return NULL;
    json_t *a = json_array();
    DBusMessageIter e, f;
    dbus_message_iter_recurse(v, &e);
    for (; a && dbus_message_iter_get_arg_type(&e) == DBUS_TYPE_STRUCT;
         dbus_message_iter_next(&e)) {
        const char *name;
        double scale;
        dbus_message_iter_recurse(&e, &f);
        dbus_message_iter_get_basic(&f, &name);
        dbus_message_iter_next(&f);
        dbus_message_iter_get_basic(&f, &scale);
        if (json_array_append_new(a, json_pack("{s:s, s:f}", "name", name, "scale", scale)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* The variant's value as JSON of the given kind, or NULL (wrong type). */
static json_t *variant_json(DBusMessageIter *v, enum opt_kind kind, bool *range)
{
    int t = dbus_message_iter_get_arg_type(v);
    DBusBasicValue x;
    *range = true;
    switch (t) {
    case DBUS_TYPE_DOUBLE:
        dbus_message_iter_get_basic(v, &x);
        return kind == OPT_NUMBER ? json_real(x.dbl) : NULL;
    case DBUS_TYPE_BYTE:
    case DBUS_TYPE_INT16:
    case DBUS_TYPE_UINT16:
    case DBUS_TYPE_INT32:
    case DBUS_TYPE_UINT32:
    case DBUS_TYPE_INT64:
    case DBUS_TYPE_UINT64: {
        if (kind != OPT_NUMBER && kind != OPT_INT)
            return NULL;
        dbus_message_iter_get_basic(v, &x);
        json_int_t n = t == DBUS_TYPE_BYTE     ? x.byt
                       : t == DBUS_TYPE_INT16  ? x.i16
                       : t == DBUS_TYPE_UINT16 ? x.u16
                       : t == DBUS_TYPE_INT32  ? x.i32
                       : t == DBUS_TYPE_UINT32 ? x.u32
                       : t == DBUS_TYPE_INT64  ? x.i64
                                               : (json_int_t)x.u64;
        if (t == DBUS_TYPE_UINT64 && x.u64 > INT64_MAX) {
            *range = false;
            return NULL;
        }
        return json_integer(n);
    }
    case DBUS_TYPE_BOOLEAN:
        dbus_message_iter_get_basic(v, &x);
        return kind == OPT_BOOL ? json_boolean(x.bool_val) : NULL;
    case DBUS_TYPE_STRING:
        dbus_message_iter_get_basic(v, &x);
        return kind == OPT_STRINGS || kind == OPT_STRING || kind == OPT_LORA ? json_string(x.str)
                                                                             : NULL;
    case DBUS_TYPE_ARRAY: {
        if (kind == OPT_LORA)
            return lora_json(v);
        if (kind != OPT_STRINGS || dbus_message_iter_get_element_type(v) != DBUS_TYPE_STRING)
            return NULL;
        json_t *a = json_array();
        DBusMessageIter e;
        dbus_message_iter_recurse(v, &e);
        for (; a && dbus_message_iter_get_arg_type(&e) == DBUS_TYPE_STRING;
             dbus_message_iter_next(&e)) {
            dbus_message_iter_get_basic(&e, &x);
            if (json_array_append_new(a, json_string(x.str)) < 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    default:
        return NULL;
    }
}

/* Reads the options dict at `it` into a JSON object (owned, *obj). The
 * session name and parse_special are taken out: they are no sampling keys.
 * Returns 0, or -EINVAL / -ENOMEM with msg set. */
int ipc_dbus_read_options(DBusMessageIter *it, bool generate, json_t **obj, const char **session,
                          bool *parse_special, struct hr_err *err)
{
    int r = 0;
    json_t *o = json_object();
    if (!o)
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    DBusMessageIter dict;
    dbus_message_iter_recurse(it, &dict);
    for (; dbus_message_iter_get_arg_type(&dict) == DBUS_TYPE_DICT_ENTRY;
         dbus_message_iter_next(&dict)) {
        DBusMessageIter e, v;
        const char *key;
        dbus_message_iter_recurse(&dict, &e);
        dbus_message_iter_get_basic(&e, &key);
        dbus_message_iter_next(&e);
        dbus_message_iter_recurse(&e, &v);
        const struct opt_def *opt = NULL;
        for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
            if (!strcmp(options[i].key, key))
                opt = &options[i];
        if (!opt) {
            r = hr_err_set(err, -EINVAL, -1,
                           "unknown option '%s' (see docs/dbus.md for the options)", key);
            goto fail;
        }
        if (opt->generate_only && !generate) {
            r = hr_err_set(err, -EINVAL, -1, "option '%s' applies to Generate only", key);
            goto fail;
        }
        bool range = true;
        json_t *j;
        if (opt->kind == OPT_JSON && dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_STRING) {
            /* JSON written as text: D-Bus has no JSON type */
            const char *text;
            json_error_t je;
            dbus_message_iter_get_basic(&v, &text);
            j = json_loads(text, JSON_DECODE_ANY, &je);
            if (!j) {
                r = hr_err_set(err, -EINVAL, -1, "option '%s' is not JSON: %s (column %d)", key,
                               je.text, je.column);
                goto fail;
            }
        } else {
            j = variant_json(&v, opt->kind, &range);
        }
        if (!j) {
            char *sig = dbus_message_iter_get_signature(&v);
            if (!range)
                r = hr_err_set(err, -EINVAL, -1, "option '%s' is out of range", key);
            else
                r = hr_err_set(err, -EINVAL, -1, "option '%s' must be %s, not '%s'", key,
                               kind_names[opt->kind], sig ? sig : "?");
            dbus_free(sig);
            goto fail;
        }
        if (opt->own) {
            /* Not sampling keys: taken out here (borrowed from the message). */
            DBusBasicValue x;
            dbus_message_iter_get_basic(&v, &x);
            if (opt->kind == OPT_STRING)
                *session = x.str;
            else
                *parse_special = x.bool_val;
            json_decref(j);
            continue;
        }
        if (json_object_set_new(o, key, j) < 0) {
            r = hr_err_set(err, -ENOMEM, -1, "out of memory");
            goto fail;
        }
    }
    *obj = o;
    return 0;
fail:
    json_decref(o);
    return r;
}

/* D-Bus strings must be valid UTF-8 without NUL (libdbus rejects others).
 * The scheduler promises valid UTF-8 but a model may emit a NUL byte: such
 * bytes, and anything invalid, become U+FFFD. Owned result: free(). */
char *ipc_dbus_text(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1), *o = out;
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        int n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                             : (c & 0xf8) == 0xf0 ? 4 : 0;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        bool ok = n > 0 && c != 0 && end - p >= n;
        for (int i = 1; ok && i < n; i++) {
            ok = (p[i] & 0xc0) == 0x80;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= min[n] && cp <= 0x10ffff && (cp & 0xfffff800) != 0xd800;
        if (ok) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        }
    }
    *o = '\0';
    return out;
}
