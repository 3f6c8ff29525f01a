/*
 * test_plugins_files.c — the files plugin (plugins/files) through the real
 * tool host: each tool's normal use, and every way out of the workspace
 * refused — "..", absolute paths, symlinks to files and directories
 * outside, /proc magic links — with the outside left untouched.
 */
#include "toolsutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const PLUGINS[] = {"files", NULL};

static void start(void)
{
    tt_start(PLUGINS, 0, 0);
    tt_write("ws/a.txt", "one\ntwo\nthree\nfour\nfive\n");
    tt_write("outside/secret.txt", "the secret\n");
}

static void stop(void)
{
    tt_stop();
}

TestSuite(files, .init = start, .fini = stop, .timeout = 300);

/* Calls and asserts success; returns the output (owned). */
static char *ok(const char *tool, const char *args)
{
    struct tt_result r = tt_call(tool, args);
    tt_assert_ok(&r);
    char *out = strdup(r.output);
    tt_result_done(&r);
    return out;
}

static void fails(const char *tool, const char *args, const char *needle)
{
    struct tt_result r = tt_call(tool, args);
    tt_assert_error(&r, HD_TOOL_FAILED, needle);
    tt_result_done(&r);
}

/* ---- read_file ------------------------------------------------------------------ */

Test(files, read_whole_file_and_ranges)
{
    char *out = ok("read_file", "{\"path\":\"a.txt\"}");
    cr_assert_str_eq(out, "one\ntwo\nthree\nfour\nfive\n");
    free(out);
    out = ok("read_file", "{\"path\":\"a.txt\",\"start_line\":2,\"end_line\":3}");
    cr_assert_str_eq(out, "two\nthree\n");
    free(out);
    out = ok("read_file", "{\"path\":\"a.txt\",\"start_line\":4}");
    cr_assert_str_eq(out, "four\nfive\n");
    free(out);
    out = ok("read_file", "{\"path\":\"./a.txt\",\"end_line\":1}");
    cr_assert_str_eq(out, "one\n");
    free(out);
    fails("read_file", "{\"path\":\"a.txt\",\"start_line\":9}", "past the end of 'a.txt' (5 lines)");
    fails("read_file", "{\"path\":\"a.txt\",\"start_line\":3,\"end_line\":2}", "before start_line");
    /* a last line without a newline */
    tt_write("ws/b.txt", "x\ny");
    out = ok("read_file", "{\"path\":\"b.txt\",\"start_line\":2}");
    cr_assert_str_eq(out, "y");
    free(out);
    tt_write("ws/empty.txt", "");
    out = ok("read_file", "{\"path\":\"empty.txt\"}");
    cr_assert_str_eq(out, "[empty file]");
    free(out);
}

Test(files, read_refuses_binary_directories_and_missing_files)
{
    FILE *f = fopen(tt_path("ws/bin.dat"), "wb");
    fwrite("ELF\0\1\2\3", 1, 7, f);
    fclose(f);
    fails("read_file", "{\"path\":\"bin.dat\"}", "looks like a binary file (7 bytes)");
    cr_assert_eq(mkdir(tt_path("ws/dir"), 0755), 0);
    fails("read_file", "{\"path\":\"dir\"}", "is a directory; use list_dir");
    fails("read_file", "{\"path\":\"nothere.txt\"}", "'nothere.txt': no such file or directory");
    cr_assert_eq(mkfifo(tt_path("ws/fifo"), 0644), 0);
    fails("read_file", "{\"path\":\"fifo\"}", "not a regular file");
}

Test(files, a_long_file_is_cut_with_a_way_to_read_on)
{
    tt_stop();
    tt_start(PLUGINS, 0, 1000);
    char *text = malloc(100 * 20 + 1);
    size_t o = 0;
    for (int i = 1; i <= 100; i++)
        o += (size_t)sprintf(text + o, "line %03d of many\n", i);
    tt_write("ws/long.txt", text);
    free(text);
    struct tt_result r = tt_call("read_file", "{\"path\":\"long.txt\"}");
    tt_assert_ok(&r);
    cr_assert_leq(r.len, 1000);
    cr_assert(strncmp(r.output, "line 001 of many\n", 17) == 0);
    char *note = strstr(r.output, "[showing lines 1-");
    cr_assert_not_null(note, "%s", r.output);
    int last = 0, total = 0, next = 0;
    cr_assert_eq(sscanf(note, "[showing lines 1-%d of %d; read on with start_line=%d]", &last,
                        &total, &next),
                 3);
    cr_assert_eq(total, 100);
    cr_assert_eq(next, last + 1);
    char want[64];
    snprintf(want, sizeof want, "line %03d of many\n[showing", last);
    cr_assert_not_null(strstr(r.output, want), "the cut is not at a line end");
    tt_result_done(&r);
    char args[128];
    snprintf(args, sizeof args, "{\"path\":\"long.txt\",\"start_line\":%d,\"end_line\":%d}", next,
             next);
    r = tt_call("read_file", args);
    tt_assert_ok(&r);
    snprintf(want, sizeof want, "line %03d of many\n", next);
    cr_assert_str_eq(r.output, want);
    tt_result_done(&r);
}

/* ---- list_dir, stat, mkdir ---------------------------------------------------------- */

Test(files, list_dir)
{
    cr_assert_eq(mkdir(tt_path("ws/sub"), 0755), 0);
    tt_write("ws/sub/z.txt", "zz");
    cr_assert_eq(symlink("a.txt", tt_path("ws/link")), 0);
    char *out = ok("list_dir", "{}");
    cr_assert_str_eq(out, "a.txt (24 bytes)\nlink -> a.txt\nsub/\n");
    free(out);
    out = ok("list_dir", "{\"path\":\"sub\"}");
    cr_assert_str_eq(out, "z.txt (2 bytes)\n");
    free(out);
    cr_assert_eq(mkdir(tt_path("ws/void"), 0755), 0);
    out = ok("list_dir", "{\"path\":\"void\"}");
    cr_assert_str_eq(out, "[empty directory]");
    free(out);
    fails("list_dir", "{\"path\":\"a.txt\"}", "not a directory");
}

Test(files, stat_and_mkdir)
{
    cr_assert_eq(chmod(tt_path("ws/a.txt"), 0640), 0);
    char *out = ok("stat", "{\"path\":\"a.txt\"}");
    const char *want = "a.txt: regular file, 24 bytes, mode 0640, modified 20";
    cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
    free(out);
    out = ok("mkdir", "{\"path\":\"x/y/z\"}");
    cr_assert_str_eq(out, "created directory x/y/z");
    free(out);
    struct stat st;
    cr_assert_eq(stat(tt_path("ws/x/y/z"), &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    out = ok("mkdir", "{\"path\":\"x/y\"}");
    cr_assert_str_eq(out, "x/y already exists");
    free(out);
    out = ok("stat", "{\"path\":\"x\"}");
    cr_assert(strncmp(out, "x: directory", 12) == 0, "%s", out);
    free(out);
    fails("mkdir", "{\"path\":\"p/q\",\"parents\":false}", "'p': no such file or directory");
    fails("mkdir", "{\"path\":\"a.txt\"}", "exists and is not a directory");
    /* a link is described, not followed; one leading out says so */
    cr_assert_eq(symlink(tt_path("outside/secret.txt"), tt_path("ws/out")), 0);
    out = ok("stat", "{\"path\":\"out\"}");
    cr_assert_not_null(strstr(out, "symbolic link -> "), "%s", out);
    cr_assert_not_null(strstr(out, "(leads outside the workspace)"), "%s", out);
    free(out);
}

/* ---- write_file, edit_file ---------------------------------------------------------------- */

Test(files, write_new_overwrite_append)
{
    char *out = ok("write_file", "{\"path\":\"new/deep/n.txt\",\"content\":\"hello\\n\"}");
    cr_assert_str_eq(out, "wrote 6 bytes to new/deep/n.txt (new file)");
    free(out);
    char *got = tt_read("ws/new/deep/n.txt");
    cr_assert_str_eq(got, "hello\n");
    free(got);
    /* overwrite keeps the mode (the write goes through a rename) */
    cr_assert_eq(chmod(tt_path("ws/a.txt"), 0600), 0);
    ino_t before;
    struct stat st;
    stat(tt_path("ws/a.txt"), &st);
    before = st.st_ino;
    out = ok("write_file", "{\"path\":\"a.txt\",\"content\":\"replaced\"}");
    cr_assert_str_eq(out, "wrote 8 bytes to a.txt");
    free(out);
    got = tt_read("ws/a.txt");
    cr_assert_str_eq(got, "replaced");
    free(got);
    cr_assert_eq(stat(tt_path("ws/a.txt"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_neq(st.st_ino, before, "not replaced atomically");
    out = ok("write_file", "{\"path\":\"a.txt\",\"content\":\" more\",\"append\":true}");
    free(out);
    got = tt_read("ws/a.txt");
    cr_assert_str_eq(got, "replaced more");
    free(got);
    /* no temporary files left behind */
    out = ok("list_dir", "{}");
    cr_assert_str_eq(out, "a.txt (13 bytes)\nnew/\n");
    free(out);
    fails("write_file", "{\"path\":\"nodir/x.txt\",\"content\":\"\",\"create_dirs\":false}",
          "no such file or directory");
    fails("write_file", "{\"path\":\"new\",\"content\":\"x\"}", "is a directory");
}

Test(files, write_through_a_symlink_inside)
{
    cr_assert_eq(symlink("a.txt", tt_path("ws/alias")), 0);
    char *out = ok("write_file", "{\"path\":\"alias\",\"content\":\"via link\"}");
    free(out);
    struct stat st;
    cr_assert_eq(lstat(tt_path("ws/alias"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced");
    char *got = tt_read("ws/a.txt");
    cr_assert_str_eq(got, "via link");
    free(got);
}

Test(files, edit_file)
{
    tt_write("ws/e.txt", "int x = 1;\nint y = 1;\nreturn x;\n");
    char *out = ok("edit_file",
                   "{\"path\":\"e.txt\",\"old_text\":\"int y = 1;\",\"new_text\":\"int y = 2;\"}");
    cr_assert_str_eq(out, "replaced 1 occurrence in e.txt");
    free(out);
    char *got = tt_read("ws/e.txt");
    cr_assert_str_eq(got, "int x = 1;\nint y = 2;\nreturn x;\n");
    free(got);
    fails("edit_file", "{\"path\":\"e.txt\",\"old_text\":\"int\",\"new_text\":\"long\"}",
          "occurs 2 times in 'e.txt'");
    fails("edit_file", "{\"path\":\"e.txt\",\"old_text\":\"int z\",\"new_text\":\"\"}",
          "old_text was not found in 'e.txt'");
    got = tt_read("ws/e.txt");
    cr_assert_str_eq(got, "int x = 1;\nint y = 2;\nreturn x;\n", "a failed edit changed the file");
    free(got);
    out = ok("edit_file",
             "{\"path\":\"e.txt\",\"old_text\":\"int\",\"new_text\":\"long\",\"all\":true}");
    cr_assert_str_eq(out, "replaced 2 occurrences in e.txt");
    free(out);
    got = tt_read("ws/e.txt");
    cr_assert_str_eq(got, "long x = 1;\nlong y = 2;\nreturn x;\n");
    free(got);
    FILE *f = fopen(tt_path("ws/bin.dat"), "wb");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    fails("edit_file", "{\"path\":\"bin.dat\",\"old_text\":\"a\",\"new_text\":\"b\"}",
          "binary file");
}

/* ---- confinement -------------------------------------------------------------------------- */

Test(files, dotdot_and_absolute_paths_are_refused)
{
    fails("read_file", "{\"path\":\"../outside/secret.txt\"}",
          "'../outside/secret.txt' leaves the workspace ('..' is not allowed)");
    fails("read_file", "{\"path\":\"sub/../../outside/secret.txt\"}", "leaves the workspace");
    fails("read_file", "{\"path\":\"a.txt/..\"}", "leaves the workspace");
    char args[4400];
    snprintf(args, sizeof args, "{\"path\":\"%s\"}", tt_path("outside/secret.txt"));
    fails("read_file", args, "is an absolute path; use a path relative to the workspace");
    fails("read_file", "{\"path\":\"/etc/passwd\"}", "is an absolute path");
    fails("list_dir", "{\"path\":\"..\"}", "leaves the workspace");
    fails("list_dir", "{\"path\":\"/\"}", "absolute path");
    fails("write_file", "{\"path\":\"../outside/new.txt\",\"content\":\"x\"}",
          "leaves the workspace");
    fails("write_file", "{\"path\":\"/tmp/hearth-files-test.txt\",\"content\":\"x\"}",
          "absolute path");
    fails("edit_file", "{\"path\":\"../outside/secret.txt\",\"old_text\":\"the\","
                       "\"new_text\":\"a\"}",
          "leaves the workspace");
    fails("mkdir", "{\"path\":\"../outside/d\"}", "leaves the workspace");
    fails("mkdir", "{\"path\":\"a/../../x\"}", "leaves the workspace");
    fails("stat", "{\"path\":\"../outside\"}", "leaves the workspace");
    cr_assert(!tt_exists("outside/new.txt"));
    cr_assert(!tt_exists("outside/d"));
    cr_assert(!tt_exists("x"));
    cr_assert_eq(access("/tmp/hearth-files-test.txt", F_OK), -1);
    char *got = tt_read("outside/secret.txt");
    cr_assert_str_eq(got, "the secret\n");
    free(got);
}

Test(files, symlinks_out_of_the_workspace_are_refused)
{
    /* to a file outside, absolute and relative */
    cr_assert_eq(symlink(tt_path("outside/secret.txt"), tt_path("ws/abs")), 0);
    cr_assert_eq(symlink("../outside/secret.txt", tt_path("ws/rel")), 0);
    /* a directory outside */
    cr_assert_eq(symlink("../outside", tt_path("ws/outdir")), 0);
    cr_assert_eq(mkdir(tt_path("ws/sub"), 0755), 0);
    cr_assert_eq(symlink("../../outside", tt_path("ws/sub/up")), 0);
    fails("read_file", "{\"path\":\"abs\"}", "'abs' resolves outside the workspace");
    fails("read_file", "{\"path\":\"rel\"}", "resolves outside the workspace");
    fails("read_file", "{\"path\":\"outdir/secret.txt\"}", "resolves outside the workspace");
    fails("read_file", "{\"path\":\"sub/up/secret.txt\"}", "resolves outside the workspace");
    fails("list_dir", "{\"path\":\"outdir\"}", "resolves outside the workspace");
    /* writes through them change nothing outside */
    fails("write_file", "{\"path\":\"abs\",\"content\":\"pwned\"}", "outside the workspace");
    fails("write_file", "{\"path\":\"outdir/new.txt\",\"content\":\"pwned\"}",
          "outside the workspace");
    fails("write_file", "{\"path\":\"outdir/newdir/new.txt\",\"content\":\"pwned\"}",
          "outside the workspace");
    fails("edit_file", "{\"path\":\"rel\",\"old_text\":\"the\",\"new_text\":\"a\"}",
          "outside the workspace");
    fails("mkdir", "{\"path\":\"outdir/d\"}", "outside the workspace");
    fails("write_file", "{\"path\":\"rel\",\"content\":\"x\",\"append\":true}",
          "outside the workspace");
    char *got = tt_read("outside/secret.txt");
    cr_assert_str_eq(got, "the secret\n");
    free(got);
    cr_assert(!tt_exists("outside/new.txt"));
    cr_assert(!tt_exists("outside/newdir"));
    cr_assert(!tt_exists("outside/d"));
    /* links that stay inside work */
    cr_assert_eq(symlink("sub", tt_path("ws/insub")), 0);
    tt_write("ws/sub/in.txt", "inside\n");
    char *out = ok("read_file", "{\"path\":\"insub/in.txt\"}");
    cr_assert_str_eq(out, "inside\n");
    free(out);
}

Test(files, proc_magic_links_are_refused)
{
    cr_assert_eq(symlink("/proc/self/root", tt_path("ws/root")), 0);
    cr_assert_eq(symlink("/proc/self/cwd", tt_path("ws/cwd")), 0);
    cr_assert_eq(symlink("/proc/self/fd/0", tt_path("ws/fd0")), 0);
    fails("read_file", "{\"path\":\"root/etc/passwd\"}", "outside the workspace");
    fails("list_dir", "{\"path\":\"cwd\"}", "outside the workspace");
    fails("read_file", "{\"path\":\"fd0\"}", "outside the workspace");
    fails("write_file", "{\"path\":\"root/tmp/hearth-x\",\"content\":\"x\"}",
          "outside the workspace");
}
