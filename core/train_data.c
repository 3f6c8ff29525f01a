/*
 * train_data.c — training data (hearth.h "training"): examples parsed from
 * plain text or JSON lines, tokenized with the model's vocabulary, each
 * with a loss mask, then split into training and validation sets and
 * packed into rows.
 *
 * An example is tokens e[0..n) and a mask m[0..n): m[i] = 1 when e[i] is
 * to be predicted (the loss is taken on it, from e[0..i)); m[0] is always
 * 0. Packed into a row at offset s, token e[i] sits at position i and gets
 * the label e[i+1] when m[i+1], else −1.
 *
 * Chat examples are rendered with the model's template (hr_chat_render,
 * with a fixed date so that the data do not change from day to day). The
 * assistant messages' tokens are found by rendering prefixes: for the
 * assistant message i, P = the messages before i with the generation
 * prompt, Q = the messages up to i without it; the tokens of the whole
 * conversation from the end of P's tokens to the end of Q's (each the
 * longest common prefix with the whole's tokens) are the assistant's —
 * its text and whatever the template closes a turn with (an end-of-turn
 * token), which the model must learn to produce.
 */
#include "train.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2026-01-01 00:00 UTC: the date templates print (date_string, strftime_now) */
#define DATA_NOW 1767225600

struct hr_train_data {
    const struct hr_model *model;
    int32_t n_ctx;
    int32_t n, cap;
    int64_t *off; /* [cap + 1]: example i is [off[i], off[i+1]) */
    int32_t *tok;
    uint8_t *mask;
    int64_t n_tok, cap_tok;
    struct hr_train_data_info info;
    /* rendering */
    char bos[64], eos[64];
};

void hr_train_data_free(struct hr_train_data *d)
{
    if (!d) return;
    free(d->off);
    free(d->tok);
    free(d->mask);
    free(d);
}

void hr_train_data_get_info(const struct hr_train_data *d, struct hr_train_data_info *info)
{
    *info = d->info;
}

/* Appends an example of n tokens (mask may be NULL: all learned). */
static int add_example(struct hr_train_data *d, const int32_t *tok, const uint8_t *mask, int64_t n)
{
    if (d->n + 1 >= d->cap) {
        int32_t cap = d->cap ? d->cap * 2 : 256;
        int64_t *off = realloc(d->off, (size_t)(cap + 1) * sizeof *off);
        if (!off) return -ENOMEM;
        d->off = off;
        d->cap = cap;
    }
    if (d->n_tok + n > d->cap_tok) {
        int64_t cap = d->cap_tok ? d->cap_tok * 2 : 65536;
        while (cap < d->n_tok + n)
            cap *= 2;
        int32_t *t = realloc(d->tok, (size_t)cap * sizeof *t);
        if (!t) return -ENOMEM;
        d->tok = t;
        uint8_t *m = realloc(d->mask, (size_t)cap);
        if (!m) return -ENOMEM;
        d->mask = m;
        d->cap_tok = cap;
    }
    if (d->n == 0) d->off[0] = 0;
    memcpy(d->tok + d->n_tok, tok, (size_t)n * sizeof *tok);
    int64_t nl = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t m = i > 0 && (!mask || mask[i]);
        d->mask[d->n_tok + i] = m;
        nl += m;
    }
    d->n_tok += n;
    d->off[++d->n] = d->n_tok;
    d->info.n_examples = d->n;
    d->info.n_tokens += n;
    d->info.n_loss_tokens += nl;
    return 0;
}

/* Tokens of text (owned: free()); *n their count. */
static int tokenize(const struct hr_train_data *d, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t **out, int64_t *n)
{
    const struct hr_vocab *v = hr_model_vocab(d->model);
    size_t cap = len + 16;
    int32_t *tok = malloc(cap * sizeof *tok);
    if (!tok) return -ENOMEM;
    int64_t got = hr_tokenize(v, text, len, add_special, parse_special, tok, cap);
    if (got > (int64_t)cap) {
        free(tok);
        cap = (size_t)got;
        if (!(tok = malloc(cap * sizeof *tok))) return -ENOMEM;
        got = hr_tokenize(v, text, len, add_special, parse_special, tok, cap);
    }
    if (got < 0) {
        free(tok);
        return (int)got;
    }
    *out = tok;
    *n = got;
    return 0;
}

static int64_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* ---- plain text ------------------------------------------------------------------------------ */

/* The whole text, cut into examples of n_ctx tokens that overlap by one, so
 * that every token but the first is predicted once. */
static int parse_text(struct hr_train_data *d, const char *buf, size_t len, const char *label,
                      struct hr_err *err)
{
    int32_t *tok;
    int64_t n;
    int rc = tokenize(d, buf, len, true, false, &tok, &n);
    if (rc < 0) return hr_err_set(err, rc, -1, "%s: cannot tokenize the text", label);
    int64_t step = d->n_ctx - 1;
    for (int64_t s = 0; rc == 0 && s + 1 < n; s += step) {
        int64_t m = n - s < d->n_ctx ? n - s : d->n_ctx;
        rc = add_example(d, tok + s, NULL, m);
    }
    free(tok);
    if (rc < 0) return hr_err_set(err, rc, -1, "%s: out of memory", label);
    if (d->n == 0)
        return hr_err_set(err, -EINVAL, -1, "%s: no text to learn from (fewer than 2 tokens)",
                          label);
    return 0;
}

/* ---- JSON lines --------------------------------------------------------------------------------
 */

static int line_err(struct hr_err *err, int code, const char *label, int line, const char *fmt,
                    const char *detail)
{
    hr_err_set(err, code, -1, "%s:%d: %s%s", label, line, fmt, detail ? detail : "");
    if (err) err->line = line;
    return code;
}

/* Renders messages [0, n) of `msgs`; NULL on error (err set). */
static char *render(const struct hr_train_data *d, json_t *msgs, size_t n, const char *tools,
                    bool gen_prompt, struct hr_err *err)
{
    json_t *sub = json_array();
    if (!sub) return NULL;
    for (size_t i = 0; i < n; i++)
        json_array_append(sub, json_array_get(msgs, i));
    char *mj = json_dumps(sub, JSON_COMPACT);
    json_decref(sub);
    if (!mj) return NULL;
    struct hr_chat_opts o = {.add_generation_prompt = gen_prompt,
                             .bos_token = d->bos,
                             .eos_token = d->eos,
                             .now = DATA_NOW};
    char *out = NULL;
    int rc = hr_chat_render(hr_model_chat_template(d->model), mj, tools, &o, &out, err);
    free(mj);
    return rc < 0 ? NULL : out;
}

/* One {"messages": [...]} line. */
static int parse_chat(struct hr_train_data *d, json_t *obj, const char *label, int line,
                      int32_t **tok, int64_t *n, uint8_t **mask, struct hr_err *err)
{
    json_t *msgs = json_object_get(obj, "messages");
    json_t *tools = json_object_get(obj, "tools");
    char *tools_json = NULL, *full = NULL, *part = NULL;
    int32_t *ptok = NULL;
    int rc = -EINVAL;
    struct hr_err e2;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return line_err(err, -EINVAL, label, line, "\"messages\" must be a non-empty array", NULL);
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools))
            return line_err(err, -EINVAL, label, line, "\"tools\" must be an array", NULL);
        if (!(tools_json = json_dumps(tools, JSON_COMPACT))) return -ENOMEM;
    }
    size_t nm = json_array_size(msgs);
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            char what[64];
            snprintf(what, sizeof what, "%zu", i);
            rc = line_err(err, -EINVAL, label, line, "message without a \"role\" string: #", what);
            goto done;
        }
    }
    if (!(full = render(d, msgs, nm, tools_json, false, &e2))) {
        rc = line_err(err, -EINVAL, label, line, "", e2.msg);
        goto done;
    }
    if ((rc = tokenize(d, full, strlen(full), true, true, tok, n)) < 0) goto done;
    if (!(*mask = calloc((size_t)*n + 1, 1))) {
        rc = -ENOMEM;
        goto done;
    }
    bool any = false;
    size_t lf = strlen(full);
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(msgs, i);
        if (strcmp(json_string_value(json_object_get(m, "role")), "assistant")) continue;
        char what[160];
        /* where the message starts: after the conversation before it with
         * the generation prompt, which must be a prefix of the whole */
        free(part);
        if (!(part = render(d, msgs, i, tools_json, true, &e2))) {
            rc = line_err(err, -EINVAL, label, line, "", e2.msg);
            goto done;
        }
        size_t start = strlen(part), stop;
        if (strncmp(part, full, start)) {
            snprintf(what, sizeof what,
                     "%zu: the template does not render the conversation before it as a "
                     "prefix of the whole",
                     i);
            rc = line_err(err, -EINVAL, label, line, "cannot find assistant message #", what);
            goto done;
        }
        int64_t np;
        free(ptok);
        ptok = NULL;
        if ((rc = tokenize(d, part, start, true, true, &ptok, &np)) < 0) goto done;
        int64_t b0 = common_prefix(ptok, np, *tok, *n);
        /* where it ends: after the conversation up to it, when that is a
         * prefix of the whole; templates that render a conversation's last
         * turn apart (Qwen3 keeps the <think> block of the last assistant
         * turn only) need the message's text found in the whole instead,
         * followed by what the template closes the turn with */
        free(part);
        if (!(part = render(d, msgs, i + 1, tools_json, false, &e2))) {
            rc = line_err(err, -EINVAL, label, line, "", e2.msg);
            goto done;
        }
        size_t lq = strlen(part);
        if (lq <= lf && !strncmp(part, full, lq)) {
            stop = lq;
        } else {
            const char *content = json_string_value(json_object_get(m, "content"));
            const char *at = content && content[0] ? strstr(full + start, content) : NULL;
            const char *in_q = NULL;
            for (const char *q = content && content[0] ? strstr(part, content) : NULL; q;
                 q = strstr(q + 1, content))
                in_q = q;
            if (!at || !in_q) {
                snprintf(what, sizeof what,
                         "%zu: the template renders it differently in the whole conversation", i);
                rc = line_err(err, -EINVAL, label, line, "cannot find assistant message #", what);
                goto done;
            }
            const char *close = in_q + strlen(content); /* the turn's closing, from Q */
            stop = (size_t)(at - full) + strlen(content);
            if (!strncmp(full + stop, close, strlen(close))) stop += strlen(close);
        }
        free(ptok);
        ptok = NULL;
        if ((rc = tokenize(d, full, stop, true, true, &ptok, &np)) < 0) goto done;
        int64_t bounds[2] = {b0, common_prefix(ptok, np, *tok, *n)};
        for (int64_t j = bounds[0]; j < bounds[1]; j++)
            (*mask)[j] = 1;
        any |= bounds[1] > bounds[0];
    }
    rc = 0;
    if (!any) rc = line_err(err, -EINVAL, label, line, "no assistant message to learn from", NULL);
done:
    free(tools_json);
    free(full);
    free(part);
    free(ptok);
    return rc;
}

/* One {"prompt": P, "completion": C} line: loss on C and a final EOS. */
static int parse_completion(struct hr_train_data *d, const char *prompt, const char *completion,
                            int32_t **tok, int64_t *n, uint8_t **mask)
{
    size_t lp = strlen(prompt), lc = strlen(completion);
    char *text = malloc(lp + lc + 1);
    int32_t *ptok = NULL;
    int64_t np;
    int rc = -ENOMEM;
    if (!text) return rc;
    memcpy(text, prompt, lp);
    memcpy(text + lp, completion, lc + 1);
    if ((rc = tokenize(d, text, lp + lc, true, false, tok, n)) < 0 ||
        (rc = tokenize(d, prompt, lp, true, false, &ptok, &np)) < 0)
        goto done;
    int32_t eos = hr_vocab_eos(hr_model_vocab(d->model));
    rc = -ENOMEM;
    if (eos >= 0) {
        int32_t *t2 = realloc(*tok, (size_t)(*n + 1) * sizeof *t2);
        if (!t2) goto done;
        *tok = t2;
        t2[(*n)++] = eos;
    }
    if (!(*mask = calloc((size_t)*n + 1, 1))) goto done;
    for (int64_t j = common_prefix(ptok, np, *tok, *n); j < *n; j++)
        (*mask)[j] = 1;
    rc = 0;
done:
    free(text);
    free(ptok);
    return rc;
}

static int parse_line(struct hr_train_data *d, const char *s, size_t len, const char *label,
                      int line, struct hr_err *err)
{
    json_error_t je;
    json_t *obj = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
    int32_t *tok = NULL;
    uint8_t *mask = NULL;
    int64_t n = 0;
    int rc;
    if (!obj) {
        char what[200];
        snprintf(what, sizeof what, "column %d: %s", je.column, je.text);
        return line_err(err, -EINVAL, label, line, "invalid JSON: ", what);
    }
    json_t *msgs = json_object_get(obj, "messages"), *prompt = json_object_get(obj, "prompt");
    json_t *compl = json_object_get(obj, "completion"), *text = json_object_get(obj, "text");
    if (!json_is_object(obj)) {
        rc = line_err(err, -EINVAL, label, line, "expected a JSON object", NULL);
    } else if (msgs) {
        rc = parse_chat(d, obj, label, line, &tok, &n, &mask, err);
        d->info.n_chat += rc == 0;
    } else if (prompt || compl ) {
        if (!json_is_string(prompt) || !json_is_string(compl ))
            rc = line_err(err, -EINVAL, label, line,
                          "\"prompt\" and \"completion\" must both be strings", NULL);
        else
            rc = parse_completion(d, json_string_value(prompt), json_string_value(compl ), &tok, &n,
                                  &mask);
        d->info.n_completion += rc == 0;
    } else if (json_is_string(text)) {
        const char *tx = json_string_value(text);
        rc = tokenize(d, tx, strlen(tx), true, false, &tok, &n);
        d->info.n_text += rc == 0;
    } else {
        rc = line_err(err, -EINVAL, label, line,
                      "expected an object with \"messages\", \"prompt\" and \"completion\", or "
                      "\"text\"",
                      NULL);
    }
    json_decref(obj);
    if (rc == 0) {
        if (n > d->n_ctx) {
            n = d->n_ctx;
            d->info.n_truncated++;
        }
        int64_t nl = 0;
        for (int64_t i = 1; i < n; i++)
            nl += !mask || mask[i];
        if (nl == 0) /* nothing to learn within n_ctx tokens: left out */
            d->info.n_dropped++;
        else if ((rc = add_example(d, tok, mask, n)) < 0)
            hr_err_set(err, rc, -1, "%s:%d: out of memory", label, line);
    } else if (rc == -ENOMEM) {
        hr_err_set(err, rc, -1, "%s:%d: out of memory", label, line);
    } else if (err && !err->line) {
        line_err(err, rc, label, line, "cannot tokenize the example", NULL);
    }
    free(tok);
    free(mask);
    return rc;
}

static int parse_jsonl(struct hr_train_data *d, const char *buf, size_t len, const char *label,
                       struct hr_err *err)
{
    int line = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        line++;
        size_t a = i, b = e;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r'))
            a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
            b--;
        if (b > a) {
            int rc = parse_line(d, buf + a, b - a, label, line, err);
            if (rc < 0) return rc;
        }
        i = e + 1;
    }
    if (d->n == 0) return hr_err_set(err, -EINVAL, -1, "%s: no examples to learn from", label);
    return 0;
}

/* ---- entry points
 * -------------------------------------------------------------------------------- */

int hr_train_data_parse(const struct hr_model *model, const char *buf, size_t len,
                        const char *label, int32_t format, int32_t n_ctx,
                        struct hr_train_data **out, struct hr_err *err)
{
    hr_err_clear(err);
    if (n_ctx < 2) return hr_err_set(err, -EINVAL, -1, "row length %d is too short", n_ctx);
    if (format < HR_TRAIN_AUTO || format > HR_TRAIN_JSONL)
        return hr_err_set(err, -EINVAL, -1, "unknown data format %d", format);
    if (!label) label = "data";
    if (format == HR_TRAIN_AUTO) {
        size_t i = 0;
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        format = i < len && buf[i] == '{' ? HR_TRAIN_JSONL : HR_TRAIN_TEXT;
    }
    struct hr_train_data *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->model = model;
    d->n_ctx = n_ctx;
    const struct hr_vocab *v = hr_model_vocab(model);
    char *tb[2] = {d->bos, d->eos};
    int32_t ids[2] = {hr_vocab_bos(v), hr_vocab_eos(v)};
    for (int k = 0; k < 2; k++) {
        int64_t n = ids[k] >= 0 ? hr_token_to_piece(v, ids[k], true, tb[k], 63) : -1;
        tb[k][n >= 0 && n < 64 ? n : 0] = 0;
    }
    int rc = format == HR_TRAIN_TEXT ? parse_text(d, buf, len, label, err)
                                     : parse_jsonl(d, buf, len, label, err);
    if (rc < 0) {
        hr_train_data_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int hr_train_data_load(const struct hr_model *model, const char *path, int32_t format,
                       int32_t n_ctx, struct hr_train_data **out, struct hr_err *err)
{
    hr_err_clear(err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hr_err_set(err, -errno, -1, "%s: %s", path, strerror(errno));
    struct stat st;
    char *buf = NULL;
    int rc;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = hr_err_set(err, -EINVAL, -1, "%s: not a regular file", path);
        goto done;
    }
    size_t len = (size_t)st.st_size, got = 0;
    if (!(buf = malloc(len + 1))) {
        rc = hr_err_set(err, -ENOMEM, -1, "%s: out of memory", path);
        goto done;
    }
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0) {
            rc = hr_err_set(err, r < 0 ? -errno : -EIO, -1, "%s: read failed", path);
            goto done;
        }
        got += (size_t)r;
    }
    buf[len] = 0;
    rc = hr_train_data_parse(model, buf, len, path, format, n_ctx, out, err);
done:
    free(buf);
    close(fd);
    return rc;
}

/* ---- split and pack
 * ------------------------------------------------------------------------------- */

void hr_train_rows_free(struct hr_train_rows *r)
{
    if (!r) return;
    free(r->tokens);
    free(r->labels);
    free(r->pos);
    free(r);
}

/* Packs examples ex[0..n) in order into rows of n_ctx. */
static int pack(const struct hr_train_data *d, const int32_t *ex, int32_t n, int32_t n_ctx,
                struct hr_train_rows **out)
{
    struct hr_train_rows *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->n_ctx = n_ctx;
    /* count rows first */
    int64_t rows = 0, fill = n_ctx;
    for (int32_t i = 0; i < n; i++) {
        int64_t len = d->off[ex[i] + 1] - d->off[ex[i]];
        if (fill + len > n_ctx) {
            rows++;
            fill = 0;
        }
        fill += len;
    }
    size_t cells = (size_t)rows * (size_t)n_ctx;
    r->n_rows = (int32_t)rows;
    if (cells && (!(r->tokens = malloc(cells * sizeof(int32_t))) ||
                  !(r->labels = malloc(cells * sizeof(int32_t))) ||
                  !(r->pos = malloc(cells * sizeof(int32_t))))) {
        hr_train_rows_free(r);
        return -ENOMEM;
    }
    int32_t pad = hr_vocab_eos(hr_model_vocab(d->model));
    if (pad < 0) pad = 0;
    int64_t row = -1;
    fill = n_ctx;
    for (int32_t i = 0;; i++) {
        int64_t len = i < n ? d->off[ex[i] + 1] - d->off[ex[i]] : n_ctx + 1;
        if (fill + len > n_ctx) {
            if (row >= 0) /* pad the rest of the row: one label-less run of its own */
                for (int64_t j = fill; j < n_ctx; j++) {
                    size_t c = (size_t)(row * n_ctx + j);
                    r->tokens[c] = pad;
                    r->labels[c] = -1;
                    r->pos[c] = (int32_t)(j - fill);
                }
            if (i == n) break;
            row++;
            fill = 0;
        }
        const int32_t *tok = d->tok + d->off[ex[i]];
        const uint8_t *mask = d->mask + d->off[ex[i]];
        for (int64_t j = 0; j < len; j++) {
            size_t c = (size_t)(row * n_ctx + fill + j);
            r->tokens[c] = tok[j];
            r->labels[c] = j + 1 < len && mask[j + 1] ? tok[j + 1] : -1;
            r->pos[c] = (int32_t)j;
            r->n_labels += r->labels[c] >= 0;
        }
        fill += len;
    }
    *out = r;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int hr_train_data_pack(const struct hr_train_data *d, int32_t n_ctx, int32_t n_val, uint64_t seed,
                       struct hr_train_rows **train, struct hr_train_rows **val, struct hr_err *err)
{
    hr_err_clear(err);
    if (n_val < 0 || n_val >= d->n)
        return hr_err_set(err, -EINVAL, -1,
                          "cannot keep %d of %d examples for validation (at least one must be "
                          "left for training)",
                          n_val, d->n);
    for (int32_t i = 0; i < d->n; i++)
        if (d->off[i + 1] - d->off[i] > n_ctx)
            return hr_err_set(err, -EINVAL, -1, "example %d has %lld tokens, more than a row of %d",
                              i, (long long)(d->off[i + 1] - d->off[i]), n_ctx);
    int32_t *perm = malloc((size_t)d->n * sizeof *perm);
    struct hr_train_rows *tr = NULL, *va = NULL;
    int rc = -ENOMEM;
    if (!perm) goto fail;
    for (int32_t i = 0; i < d->n; i++)
        perm[i] = i;
    uint64_t s = seed ^ 0x76616c2d73706c74ull; /* "val-splt" */
    for (int32_t i = d->n - 1; i > 0; i--) {
        int32_t j = (int32_t)(train_rng_next(&s) % (uint64_t)(i + 1));
        int32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    /* both sets in file order */
    qsort(perm, (size_t)n_val, sizeof *perm, cmp_i32);
    qsort(perm + n_val, (size_t)(d->n - n_val), sizeof *perm, cmp_i32);
    if ((rc = pack(d, perm, n_val, n_ctx, &va)) < 0 ||
        (rc = pack(d, perm + n_val, d->n - n_val, n_ctx, &tr)) < 0)
        goto fail;
    free(perm);
    *train = tr;
    *val = va;
    return 0;
fail:
    free(perm);
    hr_train_rows_free(tr);
    hr_train_rows_free(va);
    return hr_err_set(err, rc, -1, "cannot pack the examples (out of memory)");
}
