/*
 * scheduler_lora.c — the scheduler's LoRA adapter registry (loop thread):
 * adapters loaded by name, hot, reference-counted so that requests in
 * flight keep theirs when one is unloaded; the config's lora.dir and
 * profiles; and resolving a request's `lora` parameter into its adapter
 * set at submit (see scheduler.h).
 */
#include "scheduler_impl.h"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- LoRA registry (loop thread) -------------------------------------------------- */

/* The config's rule for names (lora.profiles refers to adapters by name):
 * 1 to 64 letters, digits or _ . : -, not starting with . : - */
static bool lora_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || strchr(".:-", n[0]))
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_.:-", *p)))
            return false;
    return true;
}

static ssize_t lora_find(const struct hd_sched *s, const char *name)
{
    for (size_t i = 0; i < s->n_lora; i++)
        if (!strcmp(s->lora_ents[i].name, name))
            return (ssize_t)i;
    return -1;
}

/* The file `path` names: itself, or for a bare file name with lora.dir set,
 * DIR/path or DIR/path.gguf when one exists. Owned. */
static char *lora_resolve_path(const struct hd_sched *s, const char *path)
{
    if (s->lora_dir && !strchr(path, '/')) {
        for (int ext = 0; ext < 2; ext++) {
            char *p;
            if (asprintf(&p, "%s/%s%s", s->lora_dir, path, ext ? ".gguf" : "") < 0)
                return NULL;
            if (access(p, F_OK) == 0)
                return p;
            free(p);
        }
    }
    return strdup(path);
}

int hd_sched_lora_load(struct hd_sched *s, const char *path, const char *name,
                       const struct hd_lora_entry **out, struct hr_err *err)
{
    hr_err_clear(err);
    char *file = NULL, *nm = NULL;
    struct hr_lora *l = NULL;
    int rc = -ENOMEM;
    if (!path || !path[0])
        return sched_seterr(err, -EINVAL, "no adapter file given");
    if (!(file = lora_resolve_path(s, path)))
        goto fail;
    if (name && name[0]) {
        nm = strdup(name);
    } else { /* the file name without directory and .gguf */
        const char *b = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".gguf"))
            n -= 5;
        nm = strndup(b, n);
    }
    if (!nm)
        goto fail;
    if (!lora_name_ok(nm)) {
        rc = sched_seterr(err, -EINVAL,
                    "adapter name '%.80s' is not valid (1 to 64 letters, digits or _ . : -, "
                    "not starting with . : -)",
                    nm);
        goto fail;
    }
    if (lora_find(s, nm) >= 0) {
        rc = sched_seterr(err, -EEXIST, "an adapter named '%s' is loaded already (unload it first)",
                    nm);
        goto fail;
    }
    if (sched_grow((void **)&s->lora_ents, &s->lora_cap, s->n_lora + 1, sizeof *s->lora_ents) < 0)
        goto fail;
    size_t cap = s->n_lora;
    if (sched_grow((void **)&s->lora_objs, &cap, s->n_lora + 1, sizeof *s->lora_objs) < 0)
        goto fail;
    if ((rc = hr_lora_load(s->model, file, &l, err)) < 0)
        goto fail;
    struct hd_lora_entry *e = &s->lora_ents[s->n_lora];
    e->name = nm;
    e->path = file;
    hr_lora_get_info(l, &e->info);
    s->lora_objs[s->n_lora++] = l;
    if (out)
        *out = e;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0])
        sched_seterr(err, 0, "out of memory");
    free(file);
    free(nm);
    return rc;
}

int hd_sched_lora_unload(struct hd_sched *s, const char *name)
{
    ssize_t i = lora_find(s, name);
    if (i < 0)
        return -ENOENT;
    free((char *)s->lora_ents[i].name);
    free((char *)s->lora_ents[i].path);
    hr_lora_free(s->lora_objs[i]); /* in-flight users hold their own references */
    memmove(&s->lora_ents[i], &s->lora_ents[i + 1], (s->n_lora - (size_t)i - 1) *
                                                         sizeof *s->lora_ents);
    memmove(&s->lora_objs[i], &s->lora_objs[i + 1], (s->n_lora - (size_t)i - 1) *
                                                         sizeof *s->lora_objs);
    s->n_lora--;
    return 0;
}

size_t hd_sched_lora_list(const struct hd_sched *s, const struct hd_lora_entry **out)
{
    *out = s->lora_ents;
    return s->n_lora;
}

void sched_free_profiles(struct hd_lora_profile_entry *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        for (int k = 0; k < p[i].n_uses; k++)
            free((char *)p[i].uses[k].name);
    }
    free(p);
}

int hd_sched_set_lora_config(struct hd_sched *s, const struct hd_lora_config *cfg)
{
    char *dir = NULL;
    struct hd_lora_profile_entry *pr = NULL;
    if (cfg->dir && !(dir = strdup(cfg->dir)))
        return -ENOMEM;
    if (cfg->n_profiles && !(pr = calloc(cfg->n_profiles, sizeof *pr))) {
        free(dir);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_profiles; i++) {
        const struct hd_lora_profile *cp = &cfg->profiles[i];
        bool ok = (pr[i].name = strdup(cp->name)) != NULL && cp->n_uses <= HD_MAX_LORA;
        for (size_t k = 0; ok && k < cp->n_uses; k++) {
            ok = (pr[i].uses[k].name = strdup(cp->uses[k].adapter)) != NULL;
            pr[i].uses[k].scale = cp->uses[k].scale;
            pr[i].n_uses += ok;
        }
        if (!ok) {
            sched_free_profiles(pr, cfg->n_profiles);
            free(dir);
            return cp->n_uses > HD_MAX_LORA ? -E2BIG : -ENOMEM;
        }
    }
    free(s->lora_dir);
    sched_free_profiles(s->profiles, s->n_profiles);
    s->lora_dir = dir;
    s->profiles = pr;
    s->n_profiles = cfg->n_profiles;
    return 0;
}

size_t hd_sched_lora_profiles(const struct hd_sched *s, const struct hd_lora_profile_entry **out)
{
    *out = s->profiles;
    return s->n_profiles;
}

/* The adapter of registry name `name`, loading DIR/NAME.gguf from lora.dir
 * on first use; NULL with err set when there is none. */
static struct hr_lora *lora_by_name(struct hd_sched *s, const char *name, struct hr_err *err)
{
    ssize_t i = lora_find(s, name);
    if (i >= 0)
        return s->lora_objs[i];
    if (s->lora_dir && lora_name_ok(name)) {
        char *p;
        if (asprintf(&p, "%s/%s.gguf", s->lora_dir, name) < 0) {
            sched_seterr(err, -ENOMEM, "out of memory");
            return NULL;
        }
        bool exists = access(p, F_OK) == 0;
        int rc = exists ? hd_sched_lora_load(s, p, name, NULL, err) : -ENOENT;
        free(p);
        if (rc == 0)
            return s->lora_objs[s->n_lora - 1];
        if (exists)
            return NULL; /* err says why it did not load */
    }
    sched_seterr(err, -ENOENT, "unknown LoRA adapter '%.80s' (load it with lora.load%s)", name,
           s->lora_dir ? ", or put it in lora.dir" : "");
    return NULL;
}

/* r->loras from the request's names or profile, one reference each. */
int sched_resolve_loras(struct hd_sched *s, struct req *r, const struct hd_gen_params *g,
                         struct hr_err *err)
{
    const struct hd_lora_req *uses = g->lora;
    int n = g->n_lora;
    if (n < 0 || n > HD_MAX_LORA)
        return sched_seterr(err, -EINVAL, "at most %d LoRA adapters", HD_MAX_LORA);
    if (g->lora_profile) {
        if (n > 0)
            return sched_seterr(err, -EINVAL, "give LoRA adapters or a profile, not both");
        const struct hd_lora_profile_entry *p = NULL;
        for (size_t i = 0; i < s->n_profiles && !p; i++)
            if (!strcmp(s->profiles[i].name, g->lora_profile))
                p = &s->profiles[i];
        if (!p)
            return sched_seterr(err, -ENOENT, "unknown LoRA profile '%.80s' (lora.profiles)",
                          g->lora_profile);
        uses = p->uses;
        n = p->n_uses;
    }
    if (n == 0)
        return 0;
    if (!(r->loras = calloc((size_t)n, sizeof *r->loras)))
        return sched_seterr(err, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!uses[i].name)
            return sched_seterr(err, -EINVAL, "LoRA adapter %d has no name", i);
        if (!isfinite(uses[i].scale))
            return sched_seterr(err, -EINVAL, "LoRA adapter '%.80s': the scale is not a number",
                          uses[i].name);
        struct hr_lora *l = lora_by_name(s, uses[i].name, err);
        if (!l)
            return err && strstr(err->msg, "out of memory") ? -ENOMEM : -ENOENT;
        r->loras[r->n_loras++] = (struct hr_lora_use){hr_lora_retain(l), uses[i].scale};
    }
    return 0;
}
