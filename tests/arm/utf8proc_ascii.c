/*
 * utf8proc_ascii.c — an ASCII-only stand-in for the two libutf8proc
 * functions core/unicode.c calls, for the aarch64 cross build of
 * tests/arm/meson.build (Debian has no arm64 libutf8proc without multiarch).
 *
 * ARM test harness only: classes and lower-casing are right for ASCII and
 * "other letter" / identity above it. test_neon.c evaluates token ids read
 * from files and never tokenizes text, so nothing it checks depends on them.
 */
#include <utf8proc.h>

utf8proc_category_t utf8proc_category(utf8proc_int32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return UTF8PROC_CATEGORY_LU;
    if (c >= 'a' && c <= 'z')
        return UTF8PROC_CATEGORY_LL;
    if (c >= '0' && c <= '9')
        return UTF8PROC_CATEGORY_ND;
    if (c == ' ')
        return UTF8PROC_CATEGORY_ZS;
    if (c < 32 || c == 127)
        return UTF8PROC_CATEGORY_CC;
    if (c < 128)
        return UTF8PROC_CATEGORY_PO;
    return UTF8PROC_CATEGORY_LO;
}

utf8proc_int32_t utf8proc_tolower(utf8proc_int32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}
