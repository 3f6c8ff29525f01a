/*
 * walk.h — inside the search plugin: glob matching, .gitignore rules, and a
 * directory walk beneath the workspace that honours them.
 *
 * The walk never follows symbolic links (they are skipped, so it cannot
 * leave the workspace or loop), never enters .git (nor .hg, .svn), and
 * skips what the .gitignore files on the way exclude. Paths it reports
 * are relative to the workspace ("src/main.c").
 */
#ifndef HEARTH_PLUGINS_SEARCH_WALK_H
#define HEARTH_PLUGINS_SEARCH_WALK_H

#include <hearth/plugin.h>

#include <stdbool.h>
#include <stddef.h>

/* Glob match of `pat` against `s`: '*', '?', '[a-z]', '[!x]' and '\'
 * escapes. With `path`, '*' and '?' stop at '/', and a "**" path component
 * matches any number of directories: "**" + "/x" finds x at any depth,
 * "a/" + "**" + "/b" finds b anywhere below a, and "a/" + "**" everything
 * below a. */
bool walk_glob(const char *pat, const char *s, bool path, bool icase);

struct walk;

/* Called for every file or directory (is_dir) the walk reaches; `rel` is
 * the path relative to the workspace, `dirfd` the directory holding it
 * (`name` in it). Return false to stop the walk. */
typedef bool (*walk_fn)(void *user, const char *rel, int dirfd, const char *name, bool is_dir);

struct walk_opts {
    bool use_ignore;   /* honour .gitignore and .git/info/exclude */
    int max_depth;     /* directories below the start; <= 0: 64 */
    size_t max_entries; /* stop after this many entries; 0: 200000 */
};

/* Walks `start` (relative to the workspace, "." for all of it). Returns 0
 * when it ran to the end, 1 when stopped (by fn, a limit, or
 * cancellation; *why says which: "cancelled", "limit"), or a negative errno
 * with the call's error set (start cannot be opened, out of memory). */
int walk_run(const struct hr_host *h, struct hr_tool_call *c, const char *start,
             const struct walk_opts *opts, walk_fn fn, void *user, const char **why);

/* "a/./b/" → "a/b", "." → "": a start path as the walk reports paths.
 * Owned (free()); NULL when out of memory. */
char *walk_normalize(const char *path);

#endif
