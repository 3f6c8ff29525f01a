/*
 * fuzz_config.c — libFuzzer target for hearthd's config parser
 * (daemon/config.c): parses the input as hearth.yaml over a loaded config
 * and checks the contract either way. Accepted: every string and list the
 * struct claims is there is readable (ASan sees a bad pointer or count),
 * words and ranges hold, and parsing the same bytes again gives the same
 * result. Refused: the config is left as it was, and the message is
 * "NAME:LINE:COLUMN: ..." with a position inside the input.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz/hearth.yaml"

static volatile size_t sink;

static void touch(const char *s)
{
    if (s)
        sink += strlen(s);
}

static void touch_list(char **v, size_t n)
{
    if (n && !v)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (!v[i])
            abort();
        touch(v[i]);
    }
}

static void check(const struct hd_config *c)
{
    touch(c->model);
    touch(c->socket);
    touch(c->http.token);
    touch(c->plugins.dir);
    touch(c->lora.dir);
    touch_list(c->plugins.load, c->plugins.n_load);
    touch_list(c->tools.roots, c->tools.n_roots);
    touch_list(c->tools.deny, c->tools.n_deny);
    if (c->lora.n_profiles && !c->lora.profiles)
        abort();
    for (size_t i = 0; i < c->lora.n_profiles; i++) {
        const struct hd_lora_profile *p = &c->lora.profiles[i];
        touch(p->name);
        if (p->n_uses && !p->uses)
            abort();
        for (size_t j = 0; j < p->n_uses; j++) {
            touch(p->uses[j].adapter);
            if (!(p->uses[j].scale >= -10 && p->uses[j].scale <= 10))
                abort();
        }
    }
    if (c->http.port < 1 || c->http.port > 65535 || c->batch < 1 || c->threads < 0 ||
        (c->kv_cache != HR_TYPE_F32 && c->kv_cache != HR_TYPE_F16) ||
        (unsigned)c->tools.policy_read > HD_POLICY_DENY ||
        (unsigned)c->tools.policy_exec > HD_POLICY_DENY || (unsigned)c->log.level > HD_LOG_ERROR ||
        !(c->sampling.top_p >= 0 && c->sampling.top_p <= 1) ||
        !(c->sampling.repeat_penalty > 0) || c->limits.max_message_bytes < 4096)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hd_config cfg;
    struct hr_err err;
    if (hd_config_init(&cfg) < 0)
        return 0;
    cfg.threads = 12345; /* not a default, and out of range for the file */
    int rc = hd_config_parse(NAME, (const char *)data, size, &cfg, &err);
    if (rc == 0) {
        check(&cfg);
        /* deterministic: the same bytes give the same config */
        struct hd_config again = {0};
        if (hd_config_parse(NAME, (const char *)data, size, &again, &err) != 0 ||
            again.threads != cfg.threads || again.plugins.n_load != cfg.plugins.n_load ||
            again.lora.n_profiles != cfg.lora.n_profiles)
            abort();
        hd_config_done(&again);
    } else if (rc == -EINVAL) {
        if (cfg.threads != 12345 || strncmp(err.msg, NAME ":", strlen(NAME) + 1) != 0 ||
            err.line < 1 || err.column < 1 || err.offset < 0 || (uint64_t)err.offset > size)
            abort();
    } else if (rc != -ENOMEM && rc != -EFBIG) {
        abort();
    }
    hd_config_done(&cfg);
    return 0;
}
