/*
 * json_schema.c — JSON Schema → GBNF (hr_grammar_from_json_schema). Not
 * written yet: every schema is refused.
 */
#include "grammar.h"

#include <errno.h>
#include <stdio.h>

int hr_grammar_from_json_schema(const char *schema_json, char **gbnf_out, struct hr_err *err)
{
    (void)schema_json;
    (void)gbnf_out;
    hr_err_clear(err);
    if (err)
        snprintf(err->msg, sizeof err->msg, "JSON Schema conversion is not implemented yet");
    return -ENOTSUP;
}
