/*
 * walk.c — glob matching, .gitignore rules and the confined directory walk
 * of the search plugin (see walk.h).
 *
 * .gitignore, the subset implemented (it covers what real repositories
 * use): blank lines and "#" comments; trailing spaces trimmed; "\#", "\!"
 * and "\ " escapes; "!" negates; a trailing "/" matches directories only;
 * a pattern with a "/" at its start or middle is anchored to the directory
 * of its .gitignore and matched against the path below it, any other
 * against the name alone, at any depth; "*", "?", "[...]" and "**" as in
 * walk_glob. Rules are read from .git/info/exclude at the workspace root
 * and from the .gitignore of every directory between the root and the
 * entry; the last rule that matches decides (deeper files and later lines
 * win), and nothing below an excluded directory is visited — so, as in
 * git, "!" cannot re-include a file whose directory is excluded.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IGNORE_FILE_MAX (1 << 20)

/* ---- glob --------------------------------------------------------------------- */

static char fold(char c, bool icase)
{
    return icase && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Matches a bracket expression at p (p[0] == '['). Returns the pattern
 * after it and sets *hit, or NULL when the expression is not closed (the
 * '[' is then literal). */
static const char *bracket(const char *p, char c, bool icase, bool *hit)
{
    const char *q = p + 1;
    bool neg = *q == '!' || *q == '^';
    if (neg)
        q++;
    bool match = false;
    bool first = true;
    c = fold(c, icase);
    while (*q && (*q != ']' || first)) {
        first = false;
        char lo = *q++;
        if (lo == '\\' && *q)
            lo = *q++;
        char hi = lo;
        if (*q == '-' && q[1] && q[1] != ']') {
            q++;
            hi = *q++;
            if (hi == '\\' && *q)
                hi = *q++;
        }
        lo = fold(lo, icase);
        hi = fold(hi, icase);
        if (c >= lo && c <= hi)
            match = true;
    }
    if (*q != ']')
        return NULL;
    *hit = match != neg;
    return q + 1;
}

static bool glob_at(const char *p0, const char *p, const char *s, bool path, bool icase,
                    int depth)
{
    if (depth > 64)
        return false; /* pathological patterns: give up rather than recurse on */
    for (;;) {
        char pc = *p;
        if (pc == 0)
            return *s == 0;
        if (pc == '*') {
            /* "**" as a whole component: any number of directories */
            if (path && p[1] == '*' && (p == p0 || p[-1] == '/') && (p[2] == '/' || p[2] == 0)) {
                if (p[2] == 0)
                    return true;
                const char *rest = p + 3;
                for (const char *t = s;; t++) {
                    if ((t == s || t[-1] == '/') && glob_at(p0, rest, t, path, icase, depth + 1))
                        return true;
                    if (*t == 0)
                        return false;
                }
            }
            while (*p == '*')
                p++;
            for (const char *t = s;; t++) {
                if (glob_at(p0, p, t, path, icase, depth + 1))
                    return true;
                if (*t == 0 || (path && *t == '/'))
                    return false;
            }
        }
        if (*s == 0)
            return false;
        if (pc == '?') {
            if (path && *s == '/')
                return false;
            p++, s++;
            continue;
        }
        if (pc == '[') {
            bool hit = false;
            const char *after = bracket(p, *s, icase, &hit);
            if (after) {
                if (!hit || (path && *s == '/'))
                    return false;
                p = after, s++;
                continue;
            }
        }
        if (pc == '\\' && p[1])
            pc = *++p;
        if (fold(pc, icase) != fold(*s, icase))
            return false;
        p++, s++;
    }
}

bool walk_glob(const char *pat, const char *s, bool path, bool icase)
{
    return glob_at(pat, pat, s, path, icase, 0);
}

/* ---- .gitignore ---------------------------------------------------------------------- */

struct rule {
    char *pat;
    bool neg, dir_only, anchored;
};

/* The rules of one directory's ignore file(s). */
struct level {
    char *dir; /* relative to the workspace, "" for the root */
    struct rule *rules;
    size_t n;
};

static void level_free(struct level *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rules[i].pat);
    free(l->rules);
    free(l->dir);
}

/* Adds the rules of ignore-file text buf[0..n) to l. */
static int parse_rules(struct level *l, char *buf, size_t n)
{
    for (char *line = buf, *end; line < buf + n; line = end + 1) {
        end = memchr(line, '\n', (size_t)(buf + n - line));
        if (!end)
            end = buf + n;
        *end = 0;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = 0;
        while (len && line[len - 1] == ' ' && !(len >= 2 && line[len - 2] == '\\'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        struct rule r = {0};
        char *p = line;
        if (*p == '!') {
            r.neg = true;
            p++;
        } else if (*p == '\\' && (p[1] == '!' || p[1] == '#')) {
            p++;
        }
        len = strlen(p);
        if (len && p[len - 1] == '/') {
            r.dir_only = true;
            p[--len] = 0;
        }
        if (len == 0)
            continue;
        if (*p == '/') {
            r.anchored = true;
            p++;
        } else if (strchr(p, '/')) {
            r.anchored = true;
        }
        if (!*p)
            continue;
        struct rule *grown = realloc(l->rules, (l->n + 1) * sizeof *grown);
        if (!grown || !(r.pat = strdup(p))) {
            if (grown)
                l->rules = grown;
            return -ENOMEM;
        }
        l->rules = grown;
        l->rules[l->n++] = r;
    }
    return 0;
}

/* Reads file `rel` (relative to the workspace) into l's rules, if it is a
 * regular file. Missing files are fine. */
static int load_rules(const struct hr_host *h, struct hr_tool_call *c, struct level *l,
                      const char *rel)
{
    int fd = h->open_path(c, rel, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= IGNORE_FILE_MAX) {
        char *buf = malloc((size_t)st.st_size + 1);
        ssize_t r = buf ? read(fd, buf, (size_t)st.st_size) : -1;
        if (r >= 0)
            rc = parse_rules(l, buf, (size_t)r);
        free(buf);
    }
    close(fd);
    return rc;
}

struct walk {
    const struct hr_host *h;
    struct hr_tool_call *c;
    const struct walk_opts *o;
    walk_fn fn;
    void *user;
    struct level *levels;
    size_t n_levels, cap_levels;
    size_t entries;
    const char *why;
};

/* Pushes the ignore rules of directory `dir` (relative; "" is the root). */
static int push_level(struct walk *w, const char *dir)
{
    if (!w->o->use_ignore)
        return 0;
    if (w->n_levels == w->cap_levels) {
        size_t cap = w->cap_levels ? w->cap_levels * 2 : 16;
        struct level *p = realloc(w->levels, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        w->levels = p;
        w->cap_levels = cap;
    }
    struct level *l = &w->levels[w->n_levels];
    *l = (struct level){.dir = strdup(dir)};
    if (!l->dir)
        return -ENOMEM;
    char rel[4200];
    int rc = 0;
    if (!*dir)
        rc = load_rules(w->h, w->c, l, ".git/info/exclude");
    snprintf(rel, sizeof rel, "%s%s.gitignore", dir, *dir ? "/" : "");
    if (rc == 0)
        rc = load_rules(w->h, w->c, l, rel);
    if (rc < 0) {
        level_free(l); /* not pushed: the caller pops only after success */
        return rc;
    }
    w->n_levels++;
    return 0;
}

static void pop_level(struct walk *w)
{
    if (w->o->use_ignore && w->n_levels)
        level_free(&w->levels[--w->n_levels]);
}

static bool ignored(const struct walk *w, const char *rel, bool is_dir)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    bool result = false;
    for (size_t i = 0; i < w->n_levels; i++) {
        const struct level *l = &w->levels[i];
        size_t dl = strlen(l->dir);
        const char *below = rel;
        if (dl) {
            if (strncmp(rel, l->dir, dl) != 0 || rel[dl] != '/')
                continue;
            below = rel + dl + 1;
        }
        for (size_t k = 0; k < l->n; k++) {
            const struct rule *r = &l->rules[k];
            if (r->dir_only && !is_dir)
                continue;
            bool m = r->anchored ? walk_glob(r->pat, below, true, false)
                                 : walk_glob(r->pat, base, false, false);
            if (m)
                result = !r->neg;
        }
    }
    return result;
}

/* ---- the walk ---------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool skip_dir_name(const char *name)
{
    return strcmp(name, ".git") == 0 || strcmp(name, ".hg") == 0 || strcmp(name, ".svn") == 0;
}

/* Walks the directory open as `fd` (owned: closed here) at `rel`. Returns
 * 0 to go on, 1 to stop, or a negative errno. */
static int walk_dir(struct walk *w, int fd, const char *rel, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0; /* unreadable directory: skipped */
    }
    /* sorted, so that results do not depend on the file system's order */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = -ENOMEM;
                goto out;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (w->h->cancelled(w->c)) {
            w->why = "cancelled";
            rc = 1;
            break;
        }
        if (++w->entries > w->o->max_entries) {
            w->why = "limit";
            rc = 1;
            break;
        }
        struct stat st;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        bool is_dir = S_ISDIR(st.st_mode);
        if (!is_dir && !S_ISREG(st.st_mode))
            continue; /* symlinks (never followed), devices, fifos, sockets */
        if (is_dir && skip_dir_name(names[i]))
            continue;
        char *child = malloc(strlen(rel) + strlen(names[i]) + 2);
        if (!child) {
            rc = -ENOMEM;
            break;
        }
        sprintf(child, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        if (w->o->use_ignore && ignored(w, child, is_dir)) {
            free(child);
            continue;
        }
        if (!w->fn(w->user, child, dirfd(d), names[i], is_dir)) {
            w->why = "stopped";
            rc = 1;
        } else if (is_dir && depth < w->o->max_depth) {
            int cfd = openat(dirfd(d), names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd >= 0) {
                if ((rc = push_level(w, child)) == 0) {
                    rc = walk_dir(w, cfd, child, depth + 1);
                    pop_level(w);
                } else {
                    close(cfd);
                }
            }
        }
        free(child);
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

char *walk_normalize(const char *path)
{
    char *out = malloc(strlen(path) + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && !(n == 1 && p[0] == '.')) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    out[o] = 0;
    return out;
}

int walk_run(const struct hr_host *h, struct hr_tool_call *c, const char *start,
             const struct walk_opts *opts, walk_fn fn, void *user, const char **why)
{
    struct walk_opts o = *opts;
    if (o.max_depth <= 0)
        o.max_depth = 64;
    if (o.max_entries == 0)
        o.max_entries = 200000;
    struct walk w = {.h = h, .c = c, .o = &o, .fn = fn, .user = user};
    if (start[0] == '/')
        return h->path_error(c, start, -EXDEV); /* normalizing would hide it */
    char *rel = walk_normalize(start);
    if (!rel)
        return h->set_error(c, "out of memory");
    int fd = h->open_path(c, *rel ? rel : ".", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        int e = fd;
        free(rel);
        if (e == -ENOTDIR)
            return h->set_error(c, "'%s' is not a directory", start);
        return h->path_error(c, start, e);
    }
    /* the rules of every directory from the root down to the start */
    int rc = push_level(&w, "");
    for (char *p = rel; rc == 0 && *p; p++) {
        if (p[1] == '/' || p[1] == 0) {
            char saved = p[1];
            p[1] = 0;
            rc = push_level(&w, rel);
            p[1] = saved;
        }
    }
    if (rc == 0)
        rc = walk_dir(&w, fd, rel, 0);
    else
        close(fd);
    while (w.n_levels)
        pop_level(&w);
    free(w.levels);
    free(rel);
    if (rc == -ENOMEM)
        return h->set_error(c, "out of memory");
    if (why)
        *why = w.why;
    return rc;
}
