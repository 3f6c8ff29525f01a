/*
 * test_plugins_search.c — the search plugin (plugins/search) through the
 * real tool host: search_text (literal, regex, case, include, context,
 * ranking, caps) and find_files over a tree with .gitignore rules, binary
 * files, .git and a symlink out of the workspace; and walk_glob, compiled
 * in from plugins/search/walk.c, directly.
 */
#include "toolsutil.h"
#include "walk.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const PLUGINS[] = {"search", NULL};

static void start(void)
{
    tt_start(PLUGINS, 0, 0);
    tt_write("ws/.gitignore", "# build products\n*.log\nbuild/\n!keep.log\n/rootonly.txt\n"
                              "docs/**/*.tmp\n");
    tt_write("ws/src/main.c", "a\nneedle 1\nb\nc\nd\ne\nneedle 2\nneedle 3\nf\n");
    tt_write("ws/src/util/helper.c", "int x; /* needle here */\n");
    tt_write("ws/top.txt", "one needle here\n");
    tt_write("ws/app.log", "needle here\n");
    tt_write("ws/keep.log", "needle here\n");
    tt_write("ws/build/out.c", "needle here\n");
    tt_write("ws/rootonly.txt", "needle here\n");
    tt_write("ws/src/rootonly.txt", "needle here\n");
    tt_write("ws/src/app.log", "needle here\n");
    tt_write("ws/docs/a/b/x.tmp", "needle here\n");
    tt_write("ws/docs/readme.md", "A NEEDLE in caps\n");
    tt_write("ws/src/.gitignore", "gen_*.c\n");
    tt_write("ws/src/gen_x.c", "needle here\n");
    tt_write("ws/.git/config", "needle here\n");
    FILE *f = fopen(tt_path("ws/bin.dat"), "wb");
    fwrite("needle\0\1\2", 1, 9, f);
    fclose(f);
    tt_write("outside/secret.txt", "needle outside\n");
    cr_assert_eq(symlink("../outside", tt_path("ws/outlink")), 0);
    cr_assert_eq(symlink("../outside/secret.txt", tt_path("ws/filelink")), 0);
}

static void stop(void)
{
    tt_stop();
}

TestSuite(search, .init = start, .fini = stop, .timeout = 300);

static char *ok(const char *tool, const char *args)
{
    struct tt_result r = tt_call(tool, args);
    tt_assert_ok(&r);
    char *out = strdup(r.output);
    tt_result_done(&r);
    return out;
}

/* Position of the first "PATH:" or "PATH-" line of path in out, or -1. */
static long pos_of(const char *out, const char *path)
{
    size_t n = strlen(path);
    for (const char *p = out; (p = strstr(p, path)); p++)
        if ((p == out || p[-1] == '\n') && (p[n] == ':' || p[n] == '-'))
            return p - out;
    return -1;
}

Test(search, finds_ranks_and_honours_gitignore)
{
    char *out = ok("search_text", "{\"pattern\":\"needle\"}");
    cr_assert(strncmp(out, "7 matching lines in 5 files (files with most matches first):\n",
                      61) == 0,
              "%s", out);
    /* most matches first, then shallower paths, then by name */
    const char *order[] = {"src/main.c", "keep.log", "top.txt", "src/rootonly.txt",
                           "src/util/helper.c"};
    long last = -1;
    for (size_t i = 0; i < 5; i++) {
        long p = pos_of(out, order[i]);
        cr_assert_gt(p, last, "%s out of order in:\n%s", order[i], out);
        last = p;
    }
    /* ignored, binary, .git, outside: absent */
    const char *absent[] = {"app.log",       "build/out.c",    "rootonly.txt",
                            "src/app.log",   "docs/a/b/x.tmp", "src/gen_x.c",
                            ".git/config",   "bin.dat",        "outlink/secret.txt",
                            "filelink",      "docs/readme.md"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_assert_eq(pos_of(out, absent[i]), -1, "%s found in:\n%s", absent[i], out);
    cr_assert_null(strstr(out, "outside"), "%s", out);
    free(out);
}

Test(search, context_lines_in_grep_format)
{
    char *out = ok("search_text", "{\"pattern\":\"needle\",\"path\":\"src\",\"include\":\"main.c\","
                                  "\"context\":1}");
    cr_assert_str_eq(out, "3 matching lines in 1 file:\n"
                          "src/main.c-1- a\n"
                          "src/main.c:2: needle 1\n"
                          "src/main.c-3- b\n"
                          "--\n"
                          "src/main.c-6- e\n"
                          "src/main.c:7: needle 2\n"
                          "src/main.c:8: needle 3\n"
                          "src/main.c-9- f\n");
    free(out);
}

Test(search, regex_case_include_and_caps)
{
    char *out = ok("search_text", "{\"pattern\":\"needle [0-9]$\",\"regex\":true,\"context\":0}");
    cr_assert_str_eq(out, "3 matching lines in 1 file:\n"
                          "src/main.c:2: needle 1\n--\n"
                          "src/main.c:7: needle 2\nsrc/main.c:8: needle 3\n");
    free(out);
    out = ok("search_text", "{\"pattern\":\"a needle\",\"ignore_case\":true,\"context\":0}");
    cr_assert_str_eq(out, "1 matching line in 1 file:\ndocs/readme.md:1: A NEEDLE in caps\n");
    free(out);
    out = ok("search_text", "{\"pattern\":\"needle\",\"include\":\"*.c\",\"context\":0}");
    cr_assert_neq(pos_of(out, "src/main.c"), -1);
    cr_assert_neq(pos_of(out, "src/util/helper.c"), -1);
    cr_assert_eq(pos_of(out, "top.txt"), -1);
    free(out);
    out = ok("search_text", "{\"pattern\":\"needle\",\"max_results\":2,\"context\":0}");
    cr_assert_not_null(strstr(out, "[2 of 7 matching lines shown;"), "%s", out);
    cr_assert_not_null(strstr(out, "src/main.c:7: needle 2\n"), "%s", out);
    cr_assert_null(strstr(out, "needle 3"), "%s", out);
    free(out);
    out = ok("search_text", "{\"pattern\":\"zzz not there\"}");
    cr_assert(strncmp(out, "no matches for text 'zzz not there' in ", 39) == 0, "%s", out);
    free(out);
    struct tt_result r = tt_call("search_text", "{\"pattern\":\"(\",\"regex\":true}");
    tt_assert_error(&r, HD_TOOL_FAILED, "bad regular expression '('");
    tt_result_done(&r);
}

Test(search, long_lines_are_cut)
{
    char line[2000];
    memset(line, 'q', sizeof line);
    memcpy(line, "needle", 6);
    line[sizeof line - 2] = '\n';
    line[sizeof line - 1] = 0;
    tt_write("ws/wide.txt", line);
    char *out = ok("search_text", "{\"pattern\":\"needle\",\"include\":\"wide.txt\"}");
    cr_assert_not_null(strstr(out, "qqq ...\n"), "%s", out);
    cr_assert_lt(strlen(out), 400);
    free(out);
}

Test(search, stays_inside_the_workspace)
{
    struct tt_result r = tt_call("search_text", "{\"pattern\":\"needle\",\"path\":\"../outside\"}");
    tt_assert_error(&r, HD_TOOL_FAILED, "leaves the workspace");
    tt_result_done(&r);
    r = tt_call("search_text", "{\"pattern\":\"needle\",\"path\":\"outlink\"}");
    tt_assert_error(&r, HD_TOOL_FAILED, "resolves outside the workspace");
    tt_result_done(&r);
    r = tt_call("find_files", "{\"pattern\":\"*\",\"path\":\"/etc\"}");
    tt_assert_error(&r, HD_TOOL_FAILED, "absolute path");
    tt_result_done(&r);
    r = tt_call("find_files", "{\"pattern\":\"*\",\"path\":\"top.txt\"}");
    tt_assert_error(&r, HD_TOOL_FAILED, "is not a directory");
    tt_result_done(&r);
}

Test(search, find_files)
{
    char *out = ok("find_files", "{\"pattern\":\"*.c\"}");
    cr_assert_str_eq(out, "src/main.c\nsrc/util/helper.c\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"src/**/*.c\"}");
    cr_assert_str_eq(out, "src/main.c\nsrc/util/helper.c\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*\",\"type\":\"dir\"}");
    cr_assert_str_eq(out, "docs/\nsrc/\ndocs/a/\nsrc/util/\ndocs/a/b/\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*.log\",\"include_ignored\":true}");
    cr_assert_str_eq(out, "app.log\nkeep.log\nsrc/app.log\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*.log\"}");
    cr_assert_str_eq(out, "keep.log\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"MAIN.C\",\"ignore_case\":true}");
    cr_assert_str_eq(out, "src/main.c\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*.c\",\"max_results\":1}");
    cr_assert_str_eq(out, "src/main.c\n[1 of 2 shown, shallowest first]\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*.c\",\"path\":\"src/util\",\"type\":\"file\"}");
    cr_assert_str_eq(out, "src/util/helper.c\n");
    free(out);
    out = ok("find_files", "{\"pattern\":\"*.xyz\"}");
    cr_assert_str_eq(out, "no files match '*.xyz'");
    free(out);
}

Test(search, glob)
{
    struct {
        const char *pat, *s;
        bool path, icase, want;
    } cases[] = {
        {"*.c", "main.c", false, false, true},
        {"*.c", "main.h", false, false, false},
        {"*.c", "src/main.c", true, false, false}, /* '*' stops at '/' */
        {"*.c", "src/main.c", false, false, true},
        {"?ain.c", "main.c", false, false, true},
        {"[mn]ain.c", "nain.c", false, false, true},
        {"[!m]ain.c", "main.c", false, false, false},
        {"[a-c]x", "bx", false, false, true},
        {"[a-c]x", "dx", false, false, false},
        {"\\*x", "*x", false, false, true},
        {"\\*x", "ax", false, false, false},
        {"[unclosed", "[unclosed", false, false, true},
        {"**/x.h", "x.h", true, false, true},
        {"**/x.h", "a/b/x.h", true, false, true},
        {"a/**/b", "a/b", true, false, true},
        {"a/**/b", "a/x/y/b", true, false, true},
        {"a/**/b", "ab/x/b", true, false, false},
        {"a/**", "a/x/y", true, false, true},
        {"a/**", "b/x", true, false, false},
        {"docs/**/*.tmp", "docs/a/b/x.tmp", true, false, true},
        {"MAIN.c", "main.C", false, true, true},
        {"MAIN.c", "main.C", false, false, false},
        {"a*b*c*d*e*f*g*h*i*j*k", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(walk_glob(cases[i].pat, cases[i].s, cases[i].path, cases[i].icase),
                     cases[i].want, "glob '%s' on '%s'", cases[i].pat, cases[i].s);
}

Test(search, normalize)
{
    const char *cases[][2] = {{".", ""}, {"./", ""}, {"a/./b/", "a/b"}, {"a//b", "a/b"},
                              {"src", "src"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *n = walk_normalize(cases[i][0]);
        cr_assert_str_eq(n, cases[i][1]);
        free(n);
    }
}
