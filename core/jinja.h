/*
 * jinja.h — a Jinja2 interpreter for chat templates (the interface chat.c
 * and the fuzz target use; the rest of the engine goes through
 * hr_chat_render in hearth.h).
 *
 * Models ship their chat template as Jinja2 source (GGUF key
 * tokenizer.chat_template), written for Hugging Face transformers, which
 * renders it with jinja2's ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True) plus the loopcontrols extension, a tojson filter that
 * is json.dumps(ensure_ascii=False) and the globals raise_exception and
 * strftime_now. This interpreter reproduces that environment byte for byte
 * for the constructs real templates use: the template is lexed and parsed to
 * an AST once (jinja_parse), then evaluated against a JSON object of
 * variables (jinja_render). Anything it does not implement fails with an
 * error naming the construct and its line:column; it never guesses.
 *
 * Rendering is bounded: output size, memory, evaluation steps and nesting
 * depth all have limits, so a hostile template or request gets an error
 * (-E2BIG), never a hang or a crash.
 */
#ifndef HEARTH_CORE_JINJA_H
#define HEARTH_CORE_JINJA_H

#include <hearth/hearth.h>
#include <jansson.h>

#include <stddef.h>
#include <stdint.h>

struct jinja_limits {
    size_t max_output;  /* bytes of any one rendered string: the result, a macro's output */
    size_t max_memory;  /* bytes of values allocated during one render */
    uint64_t max_steps; /* statements, expression nodes and loop iterations evaluated */
    uint32_t max_depth; /* evaluation nesting (expressions, blocks, macro calls) */
};

/* 64 MiB output, 256 MiB memory, 20M steps, depth 500: far above any real
 * chat template, low enough to stop a runaway one in well under a second. */
void jinja_limits_default(struct jinja_limits *l);

struct jinja_tmpl;

/* Parses `len` bytes of template source. On success *out is owned (free with
 * jinja_tmpl_free). Errors: -EINVAL with err->msg "template:LINE:COL: ..."
 * and err->line/column/offset set (syntax errors, unknown filters and tests,
 * unsupported tags, invalid UTF-8, nesting deeper than 100), -E2BIG (source
 * longer than 16 MiB), -ENOMEM. */
int jinja_parse(const char *src, size_t len, struct jinja_tmpl **out, struct hr_err *err);
void jinja_tmpl_free(struct jinja_tmpl *t);

/* Renders `t` with the variables of the JSON object `vars` (borrowed; NULL:
 * none). `now` is the unix time strftime_now formats (local time zone, as
 * the reference does). `lim` NULL: the defaults. On success *out is owned
 * (free()), NUL-terminated, and *len (may be NULL) is its length. Errors:
 * -EINVAL (runtime errors such as undefined attributes, type errors, and
 * raise_exception, whose message is quoted), -E2BIG (a limit was hit),
 * -ENOMEM; err->msg names the template position as for jinja_parse. */
int jinja_render(const struct jinja_tmpl *t, const json_t *vars, int64_t now,
                 const struct jinja_limits *lim, char **out, size_t *len, struct hr_err *err);

#endif
