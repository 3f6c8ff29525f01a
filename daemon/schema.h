/*
 * schema.h — a small JSON Schema validator for tool arguments.
 *
 * Tools declare their arguments with JSON Schema (include/hearth/plugin.h);
 * the daemon checks every call against it before anything runs, because the
 * arguments come from a model and are never trusted. Only the subset tool
 * schemas need is implemented, and hd_schema_check refuses schemas that use
 * anything else, so a schema never promises a check that is not made:
 *
 *   type (a name or an array of names: object, array, string, integer,
 *   number, boolean, null), properties, required, additionalProperties
 *   (boolean or schema), items (one schema), enum, const, minLength and
 *   maxLength (in Unicode code points), minimum, maximum, exclusiveMinimum,
 *   exclusiveMaximum (numbers, draft 6+ meaning), minItems, maxItems; the
 *   annotations title, description, default, examples, format, $schema,
 *   $id, $comment are accepted and ignored.
 *
 * "integer" accepts JSON integers and reals with an integral value (1.0),
 * as JSON Schema does.
 *
 * Error messages name the place in the value JSONPath-style ("$" is the
 * whole value, "$.path", "$.items[2]") and read well to a model, which gets
 * them back as the tool's result: "$.start_line: expected integer, got
 * string", "$: missing required property 'path'".
 *
 * Pure functions, no state, any thread. Used by the tool supervisor
 * (daemon/tools.c), the tool host, and the Lua agent.
 */
#ifndef HEARTH_DAEMON_SCHEMA_H
#define HEARTH_DAEMON_SCHEMA_H

#include <hearth/hearth.h>
#include <jansson.h>

/* Checks that `schema` is a schema of the supported subset (recursively).
 * Returns 0, or -EINVAL with err (optional) naming the place in the schema
 * ("$.properties.path.type: unknown type 'str'", "$.properties.x: unsupported
 * keyword 'oneOf'"). Recursion deeper than 32 levels is refused. */
int hd_schema_check(const json_t *schema, struct hr_err *err);

/* Validates `value` against `schema` (which passed hd_schema_check; an
 * unchecked schema's unsupported keywords are ignored). Returns 0, or
 * -EINVAL with err (optional) holding the first problem found. */
int hd_schema_validate(const json_t *schema, const json_t *value, struct hr_err *err);

#endif
