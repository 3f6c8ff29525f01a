/*
 * chat.h — hr_chat_render with explicit rendering limits (for the fuzz
 * target and tests, which need small ones to stay fast).
 */
#ifndef HEARTH_CORE_CHAT_H
#define HEARTH_CORE_CHAT_H

#include "jinja.h"

#include <hearth/hearth.h>

/* As hr_chat_render; lim NULL: jinja_limits_default. */
int chat_render(const char *tmpl, const char *messages_json, const char *tools_json,
                const struct hr_chat_opts *opts, const struct jinja_limits *lim, char **out,
                struct hr_err *err);

#endif
