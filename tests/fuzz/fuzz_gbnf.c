/*
 * fuzz_gbnf.c — libFuzzer target for the GBNF parser and recognizer
 * (core/grammar_parse.c, core/grammar.c) and the JSON Schema converter
 * (core/json_schema.c).
 *
 * Input: grammar or schema text, optionally followed by a NUL byte and a
 * text to feed. The input is compiled as GBNF and, separately, converted as
 * a JSON Schema; every grammar that compiles is fed the text (at most 64
 * bytes, in chunks of 1..3 bytes so UTF-8 splits across feeds) and a few
 * fixed JSON documents. Checked: nothing crashes, leaks or reads out of
 * bounds; every failure carries a message; a grammar the converter produced
 * always compiles; a grammar that is done can end; a rejected feed leaves
 * the state as it was (the same next answer). Parsing is bounded by the
 * grammar size limits (grammar.h), so no input runs long.
 */
#include "grammar.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const docs[] = {"{\"a\": [1, 2.5, \"x\"], \"b\": null}", "[]", "\"s\"", "-0.5e3",
                                   "true"};

static void feed(struct hr_grammar *g, const char *text, size_t n)
{
    size_t i = 0, step = 1;
    while (i < n) {
        size_t k = n - i < step ? n - i : step;
        bool before = grammar_check_text(g, text + i, k);
        int rc = grammar_accept_text(g, text + i, k);
        if ((rc == 0) != before)
            __builtin_trap(); /* check and accept disagree */
        if (rc < 0 && grammar_check_text(g, text + i, k))
            __builtin_trap(); /* a rejected feed changed the state */
        if (hr_grammar_done(g) && !grammar_can_end(g))
            __builtin_trap();
        i += k;
        step = step % 3 + 1;
    }
}

static void exercise(const char *gbnf, const char *text, size_t tlen)
{
    struct hr_grammar *g = NULL;
    struct hr_err err;
    int rc = hr_grammar_new(NULL, gbnf, NULL, &g, &err);
    if (rc < 0) {
        if (!err.msg[0])
            __builtin_trap(); /* every failure says why */
        return;
    }
    feed(g, text, tlen);
    hr_grammar_free(g);
    for (size_t d = 0; d < sizeof docs / sizeof *docs; d++) {
        if (hr_grammar_new(NULL, gbnf, NULL, &g, &err) < 0)
            __builtin_trap(); /* compiled a moment ago */
        feed(g, docs[d], strlen(docs[d]));
        hr_grammar_free(g);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    size_t tlen = nul ? size - glen - 1 : 0;
    if (tlen > 64)
        tlen = 64;
    char *src = malloc(glen + 1);
    if (!src)
        return 0;
    memcpy(src, data, glen);
    src[glen] = '\0';
    const char *text = nul ? (const char *)nul + 1 : "";

    exercise(src, text, tlen);

    char *gbnf = NULL;
    struct hr_err err;
    int rc = hr_grammar_from_json_schema(src, &gbnf, &err);
    if (rc == 0) {
        struct hr_grammar *g = NULL;
        if (hr_grammar_new(NULL, gbnf, NULL, &g, &err) < 0)
            __builtin_trap(); /* the converter made a grammar the parser refuses */
        hr_grammar_free(g);
        exercise(gbnf, text, tlen);
        free(gbnf);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    free(src);
    return 0;
}
