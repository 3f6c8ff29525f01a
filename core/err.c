/* err.c — struct hr_err helpers (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hr_err_clear(struct hr_err *err)
{
    if (!err)
        return;
    err->msg[0] = '\0';
    err->offset = -1;
    err->line = 0;
    err->column = 0;
}

int hr_err_set(struct hr_err *err, int code, int64_t offset, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->offset = offset;
    return code;
}
