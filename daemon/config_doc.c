/*
 * config_doc.c — rewrites the generated part of docs/config.md.
 *
 *   hearth-config-doc docs/config.md      (or: ninja -C BUILD config-doc)
 *
 * Keeps the hand-written introduction (everything before the line
 * HD_CONFIG_DOC_MARKER) and replaces the rest with hd_config_write_doc()'s
 * output, which starts with that line. tests/test_config.c fails when the
 * committed file and the key table disagree.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s docs/config.md\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hearth-config-doc: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char chunk[4096];
    size_t n;
    while (mem && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    bool bad = ferror(f);
    fclose(f);
    if (!mem || fclose(mem) != 0 || bad) {
        fprintf(stderr, "hearth-config-doc: %s: cannot read\n", path);
        free(text);
        return 1;
    }
    char *mark = strstr(text, HD_CONFIG_DOC_MARKER);
    if (!mark) {
        fprintf(stderr, "hearth-config-doc: %s: no line \"%s\"\n", path, HD_CONFIG_DOC_MARKER);
        free(text);
        return 1;
    }
    f = fopen(path, "wb");
    int rc = 1;
    if (f && fwrite(text, 1, (size_t)(mark - text), f) == (size_t)(mark - text) &&
        hd_config_write_doc(f) == 0)
        rc = 0;
    if (!f || fclose(f) != 0)
        rc = 1;
    if (rc)
        fprintf(stderr, "hearth-config-doc: %s: cannot write\n", path);
    free(text);
    return rc;
}
