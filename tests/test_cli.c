/*
 * test_cli.c — the `hearth` command as scripts use it: real child processes,
 * checking stdout (results only), exit status, and the one-line errors.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The README's promise: greedy generation on the bundled model prints the
 * reference story (llama.cpp's output for the same prompt). */
Test(cli, generate_reference_stories, .timeout = 120)
{
    const char *pp = tu_find("ref/stories/prompts.txt");
    cr_assert(pp);
    char *txt = tu_read_file(pp, NULL);
    int checked = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        int idx = atoi(line);
        char *prompt = strchr(line, '|') + 1;
        *strchr(prompt, '|') = '\0';
        char rel[64];
        snprintf(rel, sizeof rel, "ref/stories-text/p%d.txt", idx);
        const char *rp = tu_find(rel);
        cr_assert(rp, "%s missing", rel);
        char *ref = tu_read_file(rp, NULL);
        /* the reference prints " " + prompt + continuation */
        size_t plen = strlen(prompt);
        cr_assert(ref[0] == ' ' && strncmp(ref + 1, prompt, plen) == 0, "%s: '%s'", rel, ref);
        const char *cont = ref + 1 + plen;
        char *out, *err;
        int st = tu_hearth(&out, &err, "generate", "-m", tu_stories(), "-p", prompt, "-n", "64", "--temp",
                     "0", NULL);
        cr_assert_eq(st, 0, "exit %d: %s", st, err);
        /* stdout is the continuation plus one newline */
        size_t olen = strlen(out);
        cr_assert(olen > 0 && out[olen - 1] == '\n');
        out[olen - 1] = '\0';
        size_t clen = strlen(cont);
        while (clen > 0 && cont[clen - 1] == '\n')
            clen--;
        size_t o2 = strlen(out);
        while (o2 > 0 && out[o2 - 1] == '\n')
            out[--o2] = '\0';
        cr_assert(o2 == clen && memcmp(out, cont, clen) == 0,
                  "prompt %d:\n got: '%s'\nwant: '%.*s'", idx, out, (int)clen, cont);
        free(out);
        free(err);
        free(ref);
        checked++;
    }
    free(txt);
    cr_assert_geq(checked, 3);
}

Test(cli, generate_sampling_is_seeded, .timeout = 60)
{
    char *o1, *o2, *o3, *e;
    cr_assert_eq(tu_hearth(&o1, &e, "generate", "-m", tu_stories(), "-p", "Once upon a time", "-n", "40",
                     "--seed", "42", NULL),
                 0, "%s", e);
    free(e);
    cr_assert_eq(tu_hearth(&o2, &e, "generate", "-m", tu_stories(), "-p", "Once upon a time", "-n", "40",
                     "--seed", "42", NULL),
                 0);
    free(e);
    cr_assert_eq(tu_hearth(&o3, &e, "generate", "-m", tu_stories(), "-p", "Once upon a time", "-n", "40",
                     "--seed", "7", "--temp", "1.5", NULL),
                 0);
    free(e);
    cr_assert_str_eq(o1, o2, "same seed must give the same text");
    cr_assert_str_neq(o1, o3, "another seed and temperature should give other text");
    cr_assert_gt(strlen(o1), 20);
    free(o1);
    free(o2);
    free(o3);
}

Test(cli, tokenize_prints_ids, .timeout = 30)
{
    char *out, *err;
    cr_assert_eq(tu_hearth(&out, &err, "tokenize", "-m", tu_stories(), "-p", "Once upon a time", NULL),
                 0, "%s", err);
    /* prompts.txt line 1: "Once upon a time" -> 1,403,407,261,378 */
    const char *pp = tu_find("ref/stories/prompts.txt");
    char *txt = tu_read_file(pp, NULL);
    char *ids = strrchr(strtok(txt, "\n"), '|') + 1;
    for (char *c = ids; *c; c++)
        if (*c == ',')
            *c = ' ';
    char want[256];
    snprintf(want, sizeof want, "%s\n", ids);
    cr_assert_str_eq(out, want);
    free(txt);
    free(out);
    free(err);
}

Test(cli, logits_file_matches_reference, .timeout = 60)
{
    const char *pp = tu_find("ref/stories/prompts.txt");
    char *txt = tu_read_file(pp, NULL);
    char *ids = strrchr(strtok(txt, "\n"), '|') + 1;
    char tmp[] = "/tmp/hearth-logits-XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert_geq(fd, 0);
    close(fd);
    char *out, *err;
    cr_assert_eq(tu_hearth(&out, &err, "logits", "-m", tu_stories(), "--tokens", ids, "-o", tmp, NULL),
                 0, "%s", err);
    cr_assert_str_empty(out, "logits prints nothing on stdout");
    size_t n_got, n_ref;
    float *got = tu_read_file(tmp, &n_got);
    float *ref = tu_read_file(tu_find("ref/stories/p1.logits.f32"), &n_ref);
    cr_assert_eq(n_got, n_ref);
    cr_assert_eq(n_got, 5 * 512 * sizeof(float));
    for (size_t i = 0; i < n_got / sizeof(float); i++)
        cr_assert_float_eq(got[i], ref[i], 2e-3, "logit %zu", i);
    unlink(tmp);
    free(got);
    free(ref);
    free(out);
    free(err);
    free(txt);
}

Test(cli, bad_input_gives_one_line_errors, .timeout = 60)
{
    char *out, *err;
    int st;
    st = tu_hearth(&out, &err, "generate", "-m", "/nonexistent.gguf", "-p", "x", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "/nonexistent.gguf");
    free(out), free(err);

    /* a truncated model file */
    char tmp[] = "/tmp/hearth-trunc-XXXXXX";
    int fd = mkstemp(tmp);
    size_t len;
    char *model = tu_read_file(tu_stories(), &len);
    cr_assert_eq(write(fd, model, 5000), 5000);
    close(fd);
    free(model);
    st = tu_hearth(&out, &err, "generate", "-m", tmp, "-p", "x", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, tmp);
    cr_assert_str_empty(out);
    free(out), free(err);
    unlink(tmp);

    st = tu_hearth(&out, &err, "generate", "-m", tu_stories(), "-p", "x", "-n", "abc", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "-n");
    free(out), free(err);

    st = tu_hearth(&out, &err, "generate", "-m", tu_stories(), "-p", "x", "--bogus", "1", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "--bogus");
    free(out), free(err);

    st = tu_hearth(&out, &err, "generate", "-m", tu_stories(), NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "-p");
    free(out), free(err);

    st = tu_hearth(&out, &err, "logits", "-m", tu_stories(), "--tokens", "1,403,9999", "-o", "/tmp/x.f32", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "9999");
    free(out), free(err);

    st = tu_hearth(&out, &err, "logits", "-m", tu_stories(), "--tokens", "1,-3", "-o", "/tmp/x.f32", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "--tokens");
    free(out), free(err);

    st = tu_hearth(&out, &err, "frobnicate", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "frobnicate");
    free(out), free(err);
}

/* --cache-type f16 halves the KV cache; greedy output on the bundled model
 * is the same story (its logits move ~1e-3, far from any near-tie here). */
Test(cli, generate_with_f16_cache, .timeout = 60)
{
    char *o32, *o16, *err;
    cr_assert_eq(tu_hearth(&o32, &err, "generate", "-m", tu_stories(), "-p", "Once upon a time",
                           "-n", "32", "--temp", "0", NULL),
                 0, "%s", err);
    free(err);
    cr_assert_eq(tu_hearth(&o16, &err, "generate", "-m", tu_stories(), "-p", "Once upon a time",
                           "-n", "32", "--temp", "0", "--cache-type", "f16", NULL),
                 0, "%s", err);
    free(err);
    cr_assert_str_eq(o16, o32);
    free(o16);
    free(o32);
    int st = tu_hearth(&o16, &err, "generate", "-m", tu_stories(), "-p", "x", "--cache-type",
                       "q4_0", NULL);
    cr_assert_neq(st, 0);
    tu_assert_one_line_error(err, "--cache-type");
    free(o16);
    free(err);
}
