/*
 * embed.c — a build tool: writes a C file defining a Lua source as a byte
 * array, so hearthd carries lua/prelude.lua and lua/agent.lua inside its
 * binary (no lookup of installed files; the code always matches the
 * daemon that runs it).
 *
 *   hearth-lua-embed NAME INPUT.lua OUTPUT.c
 * defines  const char luab_src_NAME[] (NUL-terminated)
 * and      const size_t luab_src_NAME_len (without the NUL).
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NAME INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[2], "rb");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    FILE *out = fopen(argv[3], "w");
    if (!out) {
        perror(argv[3]);
        fclose(in);
        return 1;
    }
    fprintf(out, "/* Generated from %s by lua/embed.c; do not edit. */\n#include <stddef.h>\n\n",
            argv[2]);
    fprintf(out, "extern const char luab_src_%s[];\nextern const size_t luab_src_%s_len;\n",
            argv[1], argv[1]);
    fprintf(out, "const char luab_src_%s[] = {", argv[1]);
    size_t n = 0;
    int c;
    while ((c = fgetc(in)) != EOF) {
        /* as signed char values: char may be signed */
        fprintf(out, "%s%d,", n % 24 == 0 ? "\n    " : "", c > 127 ? c - 256 : c);
        n++;
    }
    fprintf(out, "\n    0};\nconst size_t luab_src_%s_len = %zu;\n", argv[1], n);
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0)
        bad = 1;
    return bad ? 1 : 0;
}
