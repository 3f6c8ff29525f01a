/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static enum hd_log_level min_level = HD_LOG_INFO;
static int journal = -1; /* -1: not checked yet */

/* journald sets JOURNAL_STREAM=DEV:INODE for the stream it reads; stderr
 * speaks to it only if it is that very file. */
static bool to_journal(void)
{
    if (journal >= 0)
        return journal;
    journal = 0;
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        journal = 1;
    return journal;
}

void hd_log_set_level(enum hd_log_level level)
{
    min_level = level;
}

void hd_log(enum hd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    static const int prio[] = {7, 6, 4, 3};
    if (level < min_level || level > HD_LOG_ERROR)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (to_journal())
        fprintf(stderr, "<%d>%s\n", prio[level], msg);
    else
        fprintf(stderr, "hearthd: %s: %s\n", names[level], msg);
}
