/*
 * params.c — sampling and length keys of a JSON request read into struct
 * hd_gen_params (see params.h for the keys and their ranges).
 *
 * Each key is validated on its own and the first bad one is reported by name,
 * so a client sees "'top_p' must be a number in [0, 1]" rather than a
 * generic "invalid params".
 */
#include "params.h"

#include "err.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

const char *const ipc_params_gen_keys[] = {
    "temperature",      "top_k",      "top_p", "min_p",      "repeat_penalty",
    "frequency_penalty", "presence_penalty", "seed", "max_tokens", "max_completion_tokens",
    "n_predict",        "stop",       "ignore_eos", "grammar", "json_schema", "lora", NULL,
};

/* The value of `key`, or NULL when absent or JSON null. */
static json_t *get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A number in [lo, hi], or in (lo, hi] when lo_open. */
static int get_num(json_t *obj, const char *key, double lo, bool lo_open, double hi, float *out,
                   struct hr_err *err)
{
    json_t *v = get(obj, key);
    if (!v)
        return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
        return hr_err_set(err, -EINVAL, -1, "'%s' must be a number in %c%g, %g]", key,
                          lo_open ? '(' : '[', lo, hi);
    *out = (float)x;
    return 0;
}

/* An integer in [lo, hi]; a real with an integral value (5.0) is accepted too,
 * since some JSON encoders write every number as a double. */
static int get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, bool *found,
                   struct hr_err *err)
{
    json_t *v = get(obj, key);
    *found = false;
    if (!v)
        return 0;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -9.2e18 && d <= 9.2e18) || d != floor(d))
            goto bad;
        x = (int64_t)d;
    } else {
        goto bad;
    }
    if (x < lo || x > hi)
        goto bad;
    *out = x;
    *found = true;
    return 0;
bad:
    if (hi == INT64_MAX)
        return hr_err_set(err, -EINVAL, -1, "'%s' must be an integer >= %lld", key, (long long)lo);
    return hr_err_set(err, -EINVAL, -1, "'%s' must be an integer in [%lld, %lld]", key,
                      (long long)lo, (long long)hi);
}

static int get_stop(json_t *obj, struct hd_gen_params *g, struct hr_err *err)
{
    json_t *v = get(obj, "stop");
    if (!v)
        return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return hr_err_set(err, -EINVAL, -1, "'stop' must not be an empty string");
        g->stop[0] = json_string_value(v);
        g->n_stop = 1;
        return 0;
    }
    if (!json_is_array(v))
        return hr_err_set(err, -EINVAL, -1, "'stop' must be a string or an array of strings");
    if (json_array_size(v) > HD_MAX_STOP)
        return hr_err_set(err, -EINVAL, -1, "'stop' has %zu strings (at most %d)",
                          json_array_size(v), HD_MAX_STOP);
    g->n_stop = 0;
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0)
            return hr_err_set(err, -EINVAL, -1, "'stop'[%zu] must be a non-empty string", i);
        g->stop[g->n_stop++] = json_string_value(s);
    }
    return 0;
}

/* lora: a profile name, or an array of adapters — {"name": N, "scale": S}
 * (scale 1 when omitted) or just "N". */
static int get_lora(json_t *obj, struct hd_gen_params *g, struct hr_err *err)
{
    json_t *v = get(obj, "lora");
    if (!v)
        return 0;
    if (json_is_string(v)) {
        if (!json_string_length(v))
            return hr_err_set(err, -EINVAL, -1, "'lora' must not be an empty string");
        g->lora_profile = json_string_value(v);
        return 0;
    }
    if (!json_is_array(v))
        return hr_err_set(err, -EINVAL, -1,
                          "'lora' must be a profile name or an array of {\"name\", \"scale\"}");
    if (json_array_size(v) > HD_MAX_LORA)
        return hr_err_set(err, -EINVAL, -1, "'lora' has %zu adapters (at most %d)",
                          json_array_size(v), HD_MAX_LORA);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        struct hd_lora_req *u = &g->lora[i];
        u->scale = 1.0f;
        if (json_is_string(e)) {
            u->name = json_string_value(e);
        } else if (json_is_object(e)) {
            json_t *n = json_object_get(e, "name"), *sc = get(e, "scale");
            const char *k;
            json_t *x;
            json_object_foreach(e, k, x) {
                if (strcmp(k, "name") != 0 && strcmp(k, "scale") != 0)
                    return hr_err_set(err, -EINVAL, -1, "'lora'[%zu]: unknown key '%.40s'", i, k);
            }
            if (!json_is_string(n))
                return hr_err_set(err, -EINVAL, -1, "'lora'[%zu].name must be a string", i);
            u->name = json_string_value(n);
            if (sc) {
                double d = json_number_value(sc);
                if (!json_is_number(sc) || !isfinite(d) || d < -10 || d > 10)
                    return hr_err_set(err, -EINVAL, -1,
                                      "'lora'[%zu].scale must be a number in [-10, 10]", i);
                u->scale = (float)d;
            }
        } else {
            return hr_err_set(err, -EINVAL, -1,
                              "'lora'[%zu] must be {\"name\": ..., \"scale\": ...} or a name", i);
        }
        if (!u->name[0])
            return hr_err_set(err, -EINVAL, -1, "'lora'[%zu] has an empty name", i);
        g->n_lora = (int)i + 1;
    }
    return 0;
}

int ipc_params_gen(struct hd_sched *s, json_t *obj, struct hd_gen_params *g, struct hr_err *err)
{
    hd_gen_params_init(s, g);
    if (!json_is_object(obj))
        return 0;
    struct hr_sampler_params *sp = &g->sampling;
    int rc;
    if ((rc = get_num(obj, "temperature", 0, false, 100, &sp->temp, err)) < 0 ||
        (rc = get_num(obj, "top_p", 0, false, 1, &sp->top_p, err)) < 0 ||
        (rc = get_num(obj, "min_p", 0, false, 1, &sp->min_p, err)) < 0 ||
        (rc = get_num(obj, "repeat_penalty", 0, true, 100, &sp->repeat_penalty, err)) < 0 ||
        (rc = get_num(obj, "frequency_penalty", -2, false, 2, &sp->freq_penalty, err)) < 0 ||
        (rc = get_num(obj, "presence_penalty", -2, false, 2, &sp->presence_penalty, err)) < 0)
        return rc;

    int64_t x;
    bool found;
    if ((rc = get_int(obj, "top_k", 0, INT32_MAX, &x, &found, err)) < 0)
        return rc;
    if (found)
        sp->top_k = (int32_t)x;
    if ((rc = get_int(obj, "seed", 0, INT64_MAX, &x, &found, err)) < 0)
        return rc;
    if (found)
        sp->seed = (uint64_t)x;

    /* max_tokens and its aliases: at most one of them. */
    static const char *const len_keys[] = {"max_tokens", "max_completion_tokens", "n_predict"};
    const char *len_key = NULL;
    for (size_t i = 0; i < sizeof len_keys / sizeof len_keys[0]; i++) {
        if (!get(obj, len_keys[i]))
            continue;
        if (len_key)
            return hr_err_set(err, -EINVAL, -1, "'%s' and '%s' both given (they mean the same)",
                              len_key, len_keys[i]);
        len_key = len_keys[i];
    }
    if (len_key && !strcmp(len_key, "n_predict")) {
        /* llama.cpp's spelling, where -1 means "no limit": the context is one. */
        if ((rc = get_int(obj, len_key, -1, INT32_MAX, &x, &found, err)) < 0)
            return rc;
        if (x == 0)
            return hr_err_set(err, -EINVAL, -1, "'n_predict' must be -1 or an integer >= 1");
        g->max_tokens = x < 0 ? hd_sched_n_ctx(s) : (int32_t)x;
    } else if (len_key) {
        if ((rc = get_int(obj, len_key, 1, INT32_MAX, &x, &found, err)) < 0)
            return rc;
        g->max_tokens = (int32_t)x;
    }

    if ((rc = get_stop(obj, g, err)) < 0)
        return rc;
    json_t *ie = get(obj, "ignore_eos");
    if (ie) {
        if (!json_is_boolean(ie))
            return hr_err_set(err, -EINVAL, -1, "'ignore_eos' must be true or false");
        g->ignore_eos = json_is_true(ie);
    }
    /* constrained output: GBNF text, or a JSON Schema (object, or true) */
    json_t *gr = get(obj, "grammar");
    if (gr) {
        if (!json_is_string(gr) || !json_string_length(gr))
            return hr_err_set(err, -EINVAL, -1, "'grammar' must be GBNF text (a non-empty string)");
        g->grammar = json_string_value(gr);
    }
    if ((rc = get_lora(obj, g, err)) < 0)
        return rc;
    json_t *js = get(obj, "json_schema");
    if (js) {
        if (gr)
            return hr_err_set(err, -EINVAL, -1, "give 'grammar' or 'json_schema', not both");
        if (!json_is_object(js) && !json_is_true(js))
            return hr_err_set(err, -EINVAL, -1, "'json_schema' must be a JSON Schema object");
        char *text = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
            return hr_err_set(err, -ENOMEM, -1, "out of memory");
        /* kept alive by the object for as long as the stop strings */
        json_t *keep = json_string_nocheck(text);
        free(text);
        if (!keep || json_object_set_new(obj, "\x01json_schema_text", keep) < 0)
            return hr_err_set(err, -ENOMEM, -1, "out of memory");
        g->json_schema = json_string_value(keep);
    }
    return 0;
}
