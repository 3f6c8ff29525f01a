/*
 * search.c — the search plugin: search_text (grep-like, literal or POSIX
 * extended regex) and find_files (by name glob), over the workspace.
 *
 * Both walk the tree with walk.c: no symlinks followed, .git skipped,
 * .gitignore honoured. search_text reads each regular file up to 8 MiB,
 * skips binary ones (a NUL byte in the first 8000 bytes), and records the
 * matching line numbers; then it ranks the files — most matching lines
 * first, then shallower paths, then by name — and prints matches with
 * context lines in grep's format until max_results matching lines (or the
 * output cap) are shown:
 *
 *     src/a.c:12: int main(void)      a match: path:line: text
 *     src/a.c-13- {                   context: path-line- text
 *     --                              between groups of lines
 *
 * Ranking needs every file's count before printing, so the first pass only
 * counts and remembers up to max_results line numbers per file; the files
 * shown are read again for their lines.
 */
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX ((size_t)8 << 20)
#define BINARY_PROBE 8000
#define LINE_SHOW 300 /* longest line shown, in bytes (then "...") */
#define TOTAL_BYTES_MAX ((size_t)1 << 30)

typedef const struct hr_host host_t;
typedef struct hr_tool_call call_t;

/* ---- reading files ------------------------------------------------------------------ */

/* Reads a whole regular file (at most FILE_MAX bytes), NUL-terminated.
 * Returns 0, 1 when skipped (too big, not regular, binary), or -errno. */
static int slurp(int fd, char **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > FILE_MAX)
        return 1;
    size_t cap = (size_t)st.st_size, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* shrank meanwhile: search what there is */
        n += (size_t)r;
    }
    buf[n] = 0;
    if (memchr(buf, 0, n < BINARY_PROBE ? n : BINARY_PROBE)) {
        free(buf);
        return 1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- search_text ---------------------------------------------------------------------- */

struct hit_file {
    char *path;
    size_t count;  /* matching lines */
    int64_t *lines; /* the first max_results of them, 1-based */
    size_t n_lines;
    int depth;
};

struct search {
    host_t *h;
    call_t *c;
    const char *pattern;
    size_t pattern_len;
    bool use_regex, icase;
    regex_t re;
    const char *include; /* glob or NULL */
    bool include_path;   /* include has a '/': match the relative path */
    size_t max_results;
    struct hit_file *files;
    size_t n_files, cap_files;
    size_t scanned, skipped, total_lines;
    size_t bytes;
    int error;
};

/* Does line[0..n) (NUL at n) match? */
static bool line_matches(struct search *s, const char *line)
{
    if (s->use_regex)
        return regexec(&s->re, line, 0, NULL, 0) == 0;
    if (s->icase)
        return strcasestr(line, s->pattern) != NULL;
    return strstr(line, s->pattern) != NULL;
}

static int depth_of(const char *rel)
{
    int d = 0;
    for (; *rel; rel++)
        d += *rel == '/';
    return d;
}

static bool search_file(void *user, const char *rel, int dirfd, const char *name, bool is_dir)
{
    struct search *s = user;
    if (is_dir)
        return true;
    if (s->include) {
        const char *base = strrchr(rel, '/');
        base = base ? base + 1 : rel;
        if (!walk_glob(s->include, s->include_path ? rel : base, s->include_path, false))
            return true;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return true;
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp(fd, &buf, &len);
    close(fd);
    if (rc != 0) {
        s->skipped += rc == 1;
        return true;
    }
    s->scanned++;
    s->bytes += len;
    struct hit_file f = {.depth = depth_of(rel)};
    int64_t lineno = 1;
    char *line = buf, *end = buf + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl)
            *nl = 0; /* one NUL-terminated line for the matchers */
        if (line_matches(s, line)) {
            if (f.count < s->max_results) {
                int64_t *p = realloc(f.lines, (f.n_lines + 1) * sizeof *p);
                if (!p) {
                    s->error = -ENOMEM;
                    break;
                }
                f.lines = p;
                f.lines[f.n_lines++] = lineno;
            }
            f.count++;
        }
        if (!nl)
            break;
        line = nl + 1;
        lineno++;
    }
    free(buf);
    if (s->error || f.count == 0) {
        free(f.lines);
        return s->error == 0;
    }
    if (s->n_files == s->cap_files) {
        size_t cap = s->cap_files ? s->cap_files * 2 : 64;
        struct hit_file *p = realloc(s->files, cap * sizeof *p);
        if (!p) {
            free(f.lines);
            s->error = -ENOMEM;
            return false;
        }
        s->files = p;
        s->cap_files = cap;
    }
    if (!(f.path = strdup(rel))) {
        free(f.lines);
        s->error = -ENOMEM;
        return false;
    }
    s->files[s->n_files++] = f;
    s->total_lines += f.count;
    return s->bytes < TOTAL_BYTES_MAX;
}

static int cmp_hits(const void *a, const void *b)
{
    const struct hit_file *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Appends one line of a result: "path:N: text" (sep ':') or "path-N- text"
 * (sep '-'), cut at LINE_SHOW bytes on a character boundary. */
static int show_line(struct search *s, const char *path, int64_t n, char sep, const char *text)
{
    size_t len = strlen(text);
    bool cut = len > LINE_SHOW;
    if (cut) {
        len = LINE_SHOW;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    return s->h->appendf(s->c, "%s%c%lld%c %.*s%s\n", path, sep, (long long)n, sep, (int)len,
                         text, cut ? " ..." : "");
}

/* Prints the matches of one file with `context` lines around them, at
 * most `budget` matching lines. Returns the matches shown, or -ENOSPC when
 * the output is full. */
static long show_file(struct search *s, const struct hit_file *f, int64_t context, size_t budget,
                      bool first_file)
{
    int fd = s->h->open_path(s->c, f->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp(fd, &buf, &len);
    close(fd);
    if (rc != 0)
        return 0;
    /* line starts */
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++)
        n_lines += buf[i] == '\n';
    char **lines = malloc(n_lines * sizeof *lines);
    if (!lines) {
        free(buf);
        return 0;
    }
    size_t k = 0;
    lines[k++] = buf;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            buf[i] = 0;
            if (k < n_lines)
                lines[k++] = buf + i + 1;
        }
    }
    /* groups: a match's context, merged with the next match's when they
     * touch; matches past the end (the file shrank) are dropped */
    size_t take = f->n_lines < budget ? f->n_lines : budget;
    while (take > 0 && f->lines[take - 1] > (int64_t)n_lines)
        take--;
    long shown = 0;
    bool full = !first_file && s->h->appendf(s->c, "--\n") == -ENOSPC;
    for (size_t mi = 0; mi < take && !full;) {
        int64_t from = f->lines[mi] - context < 1 ? 1 : f->lines[mi] - context;
        int64_t to = f->lines[mi] + context;
        size_t mj = mi + 1;
        while (mj < take && f->lines[mj] - context <= to + 1)
            to = f->lines[mj++] + context;
        if (to > (int64_t)n_lines)
            to = (int64_t)n_lines;
        if (mi > 0 && s->h->appendf(s->c, "--\n") == -ENOSPC) {
            full = true;
            break;
        }
        size_t q = mi;
        for (int64_t l = from; l <= to; l++) {
            bool hit = q < mj && f->lines[q] == l;
            q += hit;
            if (show_line(s, f->path, l, hit ? ':' : '-', lines[l - 1]) == -ENOSPC) {
                full = true;
                break;
            }
        }
        shown += (long)(mj - mi);
        mi = mj;
    }
    free(lines);
    free(buf);
    return full ? -ENOSPC : shown;
}

static int search_text(host_t *h, call_t *c)
{
    struct search s = {.h = h, .c = c, .max_results = 50};
    int64_t context = 2, max_results = 50;
    const char *path = h->arg_string(c, "path", NULL);
    s.pattern = h->arg_string(c, "pattern", &s.pattern_len);
    s.include = h->arg_string(c, "include", NULL);
    h->arg_bool(c, "regex", &s.use_regex);
    h->arg_bool(c, "ignore_case", &s.icase);
    h->arg_int(c, "context", &context);
    h->arg_int(c, "max_results", &max_results);
    if (!s.pattern || s.pattern_len == 0)
        return h->set_error(c, "no pattern given");
    if (strlen(s.pattern) != s.pattern_len)
        return h->set_error(c, "the pattern contains a NUL character");
    if (s.include && !*s.include)
        s.include = NULL;
    s.include_path = s.include && strchr(s.include, '/');
    s.max_results = max_results > 0 ? (size_t)max_results : 50;
    if (s.use_regex) {
        int rc = regcomp(&s.re, s.pattern,
                         REG_EXTENDED | REG_NOSUB | REG_NEWLINE | (s.icase ? REG_ICASE : 0));
        if (rc != 0) {
            char msg[256];
            regerror(rc, &s.re, msg, sizeof msg);
            return h->set_error(c, "bad regular expression '%s': %s (POSIX extended syntax)",
                                s.pattern, msg);
        }
    }
    const char *why = NULL;
    struct walk_opts o = {.use_ignore = true};
    int rc = walk_run(h, c, path && *path ? path : ".", &o, search_file, &s, &why);
    if (rc < 0)
        goto out;
    if (s.error) {
        rc = h->set_error(c, "out of memory");
        goto out;
    }
    if (why && strcmp(why, "cancelled") == 0) {
        rc = h->set_error(c, "search cancelled (or out of time) after %zu files", s.scanned);
        goto out;
    }
    if (s.n_files)
        qsort(s.files, s.n_files, sizeof *s.files, cmp_hits);
    if (s.n_files == 0) {
        h->appendf(c, "no matches for %s '%s' in %zu files%s", s.use_regex ? "regex" : "text",
                   s.pattern, s.scanned,
                   s.skipped ? " (binary and very large files skipped)" : "");
        goto out;
    }
    h->appendf(c, "%zu matching line%s in %zu file%s%s:\n", s.total_lines,
               s.total_lines == 1 ? "" : "s", s.n_files, s.n_files == 1 ? "" : "s",
               s.n_files > 1 ? " (files with most matches first)" : "");
    size_t shown = 0, files_shown = 0;
    for (size_t i = 0; i < s.n_files && shown < s.max_results; i++) {
        long r = show_file(&s, &s.files[i], context, s.max_results - shown, i == 0);
        if (r < 0)
            break;
        shown += (size_t)r;
        files_shown++;
    }
    if (shown < s.total_lines)
        h->appendf(c, "[%zu of %zu matching lines shown; narrow the search with path or "
                      "include, or raise max_results]\n",
                   shown, s.total_lines);
    if (why && strcmp(why, "limit") == 0)
        h->appendf(c, "[the search stopped early: too many files]\n");
    rc = 0;
out:
    for (size_t i = 0; i < s.n_files; i++) {
        free(s.files[i].path);
        free(s.files[i].lines);
    }
    free(s.files);
    if (s.use_regex)
        regfree(&s.re);
    return rc;
}

/* ---- find_files --------------------------------------------------------------------------- */

struct find {
    const char *pattern;
    bool path_mode, icase;
    int type; /* 0 any, 1 files, 2 directories */
    char **found;
    size_t n, cap;
    int error;
};

static bool find_entry(void *user, const char *rel, int dirfd, const char *name, bool is_dir)
{
    (void)dirfd;
    struct find *f = user;
    if ((f->type == 1 && is_dir) || (f->type == 2 && !is_dir))
        return true;
    if (!walk_glob(f->pattern, f->path_mode ? rel : name, f->path_mode, f->icase))
        return true;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        char **p = realloc(f->found, cap * sizeof *p);
        if (!p) {
            f->error = -ENOMEM;
            return false;
        }
        f->found = p;
        f->cap = cap;
    }
    char *copy = malloc(strlen(rel) + 2);
    if (!copy) {
        f->error = -ENOMEM;
        return false;
    }
    sprintf(copy, "%s%s", rel, is_dir ? "/" : "");
    f->found[f->n++] = copy;
    return true;
}

static int cmp_found(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int dx = depth_of(x) - (x[strlen(x) - 1] == '/');
    int dy = depth_of(y) - (y[strlen(y) - 1] == '/');
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return strcmp(x, y);
}

static int find_files(host_t *h, call_t *c)
{
    struct find f = {0};
    int64_t max_results = 200;
    bool include_ignored = false;
    const char *path = h->arg_string(c, "path", NULL);
    const char *type = h->arg_string(c, "type", NULL);
    f.pattern = h->arg_string(c, "pattern", NULL);
    h->arg_bool(c, "ignore_case", &f.icase);
    h->arg_bool(c, "include_ignored", &include_ignored);
    h->arg_int(c, "max_results", &max_results);
    if (!f.pattern || !*f.pattern)
        return h->set_error(c, "no pattern given");
    f.path_mode = strchr(f.pattern, '/') != NULL;
    f.type = type && strcmp(type, "file") == 0 ? 1 : type && strcmp(type, "dir") == 0 ? 2 : 0;
    const char *why = NULL;
    struct walk_opts o = {.use_ignore = !include_ignored};
    int rc = walk_run(h, c, path && *path ? path : ".", &o, find_entry, &f, &why);
    if (rc < 0)
        goto out;
    if (f.error) {
        rc = h->set_error(c, "out of memory");
        goto out;
    }
    if (why && strcmp(why, "cancelled") == 0) {
        rc = h->set_error(c, "find_files cancelled (or out of time)");
        goto out;
    }
    rc = 0;
    if (f.n == 0) {
        h->appendf(c, "no %s match '%s'", f.type == 2 ? "directories" : "files", f.pattern);
        goto out;
    }
    qsort(f.found, f.n, sizeof *f.found, cmp_found);
    size_t shown = 0;
    for (; shown < f.n && (int64_t)shown < max_results; shown++)
        if (h->appendf(c, "%s\n", f.found[shown]) == -ENOSPC)
            break;
    if (shown < f.n)
        h->appendf(c, "[%zu of %zu shown, shallowest first]\n", shown, f.n);
    if (why && strcmp(why, "limit") == 0)
        h->appendf(c, "[the search stopped early: too many files]\n");
out:
    for (size_t i = 0; i < f.n; i++)
        free(f.found[i]);
    free(f.found);
    return rc;
}

/* ---- the tool table -------------------------------------------------------------------------- */

static const struct hr_tool search_text_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "search_text",
    .description =
        "Searches the text files of the workspace for a literal string (or a POSIX extended "
        "regular expression with regex=true), recursively, skipping binary files, .git and "
        "what .gitignore excludes. Returns matching lines as 'path:line: text' with context "
        "lines as 'path-line- text', files with the most matches first.",
    .parameters =
        "{\"type\":\"object\",\"properties\":{"
        "\"pattern\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1000,"
        "\"description\":\"Text (or regular expression) to find, within one line\"},"
        "\"path\":{\"type\":\"string\",\"maxLength\":4096,\"description\":\"Directory to "
        "search, relative to the workspace (default '.')\"},"
        "\"regex\":{\"type\":\"boolean\",\"description\":\"Treat pattern as a POSIX extended "
        "regular expression (default false)\"},"
        "\"ignore_case\":{\"type\":\"boolean\",\"description\":\"Ignore ASCII case (default "
        "false)\"},"
        "\"include\":{\"type\":\"string\",\"maxLength\":256,\"description\":\"Only files "
        "whose name matches this glob, e.g. '*.c'\"},"
        "\"context\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10,\"description\":"
        "\"Lines of context around each match (default 2)\"},"
        "\"max_results\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500,\"description\":"
        "\"Most matching lines to show (default 50)\"}},"
        "\"required\":[\"pattern\"],\"additionalProperties\":false}",
    .call = search_text,
};

static const struct hr_tool find_files_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "find_files",
    .description =
        "Finds files (and directories) in the workspace whose name matches a glob pattern "
        "('*.md', 'test_*'); a pattern with '/' matches the whole relative path ('src/**/"
        "*.h'). Skips .git and what .gitignore excludes. Lists paths, shallowest first; "
        "directories end with '/'.",
    .parameters =
        "{\"type\":\"object\",\"properties\":{"
        "\"pattern\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1000,"
        "\"description\":\"Glob: * ? [abc] and ** for any directories\"},"
        "\"path\":{\"type\":\"string\",\"maxLength\":4096,\"description\":\"Directory to "
        "search, relative to the workspace (default '.')\"},"
        "\"type\":{\"type\":\"string\",\"enum\":[\"file\",\"dir\",\"any\"],"
        "\"description\":\"What to list (default any)\"},"
        "\"ignore_case\":{\"type\":\"boolean\",\"description\":\"Ignore ASCII case (default "
        "false)\"},"
        "\"include_ignored\":{\"type\":\"boolean\",\"description\":\"Also list what "
        ".gitignore excludes (default false)\"},"
        "\"max_results\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5000,"
        "\"description\":\"Most paths to list (default 200)\"}},"
        "\"required\":[\"pattern\"],\"additionalProperties\":false}",
    .call = find_files,
};

static const struct hr_tool *const tools[] = {&search_text_tool, &find_files_tool};

static const struct hr_plugin plugin = {
    .abi_version = HR_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct hr_plugin),
    .name = "search",
    .version = "1.0.0",
    .description = "Search file contents and names in the workspace.",
    .n_tools = sizeof tools / sizeof tools[0],
    .tools = tools,
};

HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
    return &plugin;
}
