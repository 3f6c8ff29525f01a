/*
 * log.h — hearthd's log: one line per message on stderr.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) each line starts with the
 * syslog priority as "<N>", which journald turns into the entry's priority;
 * elsewhere lines read "hearthd: warning: ...". Log once, where an error is
 * handled (STYLE.md 7).
 */
#ifndef HEARTH_DAEMON_LOG_H
#define HEARTH_DAEMON_LOG_H

#include "config.h"

void hd_log_set_level(enum hd_log_level level);
void hd_log(enum hd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hd_debug(...) hd_log(HD_LOG_DEBUG, __VA_ARGS__)
#define hd_info(...) hd_log(HD_LOG_INFO, __VA_ARGS__)
#define hd_warn(...) hd_log(HD_LOG_WARNING, __VA_ARGS__)
#define hd_error(...) hd_log(HD_LOG_ERROR, __VA_ARGS__)

#endif
