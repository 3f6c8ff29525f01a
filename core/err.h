/*
 * err.h — filling a caller's struct hr_err from inside the engine.
 *
 * Every core function that fails sets the message once, where the failure is
 * detected, and returns a negative errno. The helpers accept err == NULL.
 */
#ifndef HEARTH_CORE_ERR_H
#define HEARTH_CORE_ERR_H

#include <hearth/hearth.h>

#if defined(__GNUC__)
#define HR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HR_PRINTF(a, b)
#endif

/* Sets err->msg from the format and err->offset to `offset` (-1: none).
 * Returns `code` (a negative errno) so callers can write
 * `return hr_err_set(err, -EINVAL, off, "...")`. */
int hr_err_set(struct hr_err *err, int code, int64_t offset, const char *fmt, ...) HR_PRINTF(4, 5);

#endif
