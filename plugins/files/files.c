/*
 * files.c — the files plugin: read_file, list_dir, write_file, edit_file,
 * stat and mkdir, all confined to the call's workspace.
 *
 * Confinement. Every path is opened through host->open_path (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, see include/hearth/plugin.h), or,
 * for the last component of a path being created, relative to a parent
 * directory descriptor opened that way — the last component is then a
 * single name that is never "..", and a symlink there is either refused or
 * itself resolved beneath the workspace. No path string is ever handed to
 * a plain open(), so nothing here can be talked out of the workspace.
 *
 * Writes are atomic where the file is a regular file (or new): the content
 * goes to a temporary file in the same directory that is renamed over the
 * target, keeping the old file's permission bits. A symlink inside the
 * workspace that points to a file inside it is written through, in place.
 *
 * Sizes: read_file shows at most the output cap (the model is told how to
 * read on); edit_file works on files up to 8 MiB; write_file takes up to
 * 4 Mi characters (schema). Binary files (a NUL byte in the first 8000
 * bytes, as git decides) are not shown or edited.
 */
#include <hearth/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BINARY_PROBE 8000
#define EDIT_MAX ((size_t)8 << 20)
#define LIST_MAX 1000
#define NOTE_ROOM 200 /* output kept free for a closing note */

typedef const struct hr_host host_t;
typedef struct hr_tool_call call_t;

/* ---- helpers --------------------------------------------------------------------- */

static const char *path_arg(host_t *h, call_t *c, const char *name, const char *def)
{
    const char *p = h->arg_string(c, name, NULL);
    return p && *p ? p : def;
}

static bool looks_binary(const char *buf, size_t n)
{
    return memchr(buf, 0, n < BINARY_PROBE ? n : BINARY_PROBE) != NULL;
}

static int read_all(int fd, char **out, size_t *len, size_t max)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                return -ENOMEM;
            }
            buf = p;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(buf);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            return -EFBIG;
        }
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Splits `path` into its parent (a new string, "." for none) and last
 * component (pointing into path; trailing slashes are ignored). Returns
 * the parent (owned) or NULL when out of memory. */
static char *split_path(const char *path, const char **base, size_t *base_len)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t i = n;
    while (i > 0 && path[i - 1] != '/')
        i--;
    *base = path + i;
    *base_len = n - i;
    if (i == 0)
        return strdup(".");
    size_t plen = i;
    while (plen > 1 && path[plen - 1] == '/')
        plen--;
    return strndup(path, plen);
}

/* Opens the parent directory of `path` beneath the workspace and gives the
 * last component as a NUL-terminated name in name[]. Returns the directory
 * descriptor, or a negative errno with the call's error set. */
static int open_parent(host_t *h, call_t *c, const char *path, char *name, size_t cap)
{
    if (path[0] == '/')
        return h->path_error(c, path, -EXDEV);
    const char *base;
    size_t blen;
    char *parent = split_path(path, &base, &blen);
    if (!parent)
        return h->set_error(c, "out of memory");
    if (blen == 0 || blen >= cap || (blen == 1 && base[0] == '.') ||
        (blen == 2 && base[0] == '.' && base[1] == '.')) {
        free(parent);
        if (blen == 2 && base[0] == '.')
            return h->path_error(c, path, -EXDEV);
        return h->set_error(c, "'%s' does not name a file", path);
    }
    memcpy(name, base, blen);
    name[blen] = 0;
    int fd = h->open_path(c, parent, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        fd = h->path_error(c, parent, fd);
    free(parent);
    return fd;
}

/* mkdir -p of `path` (every component), beneath the workspace. Returns 0
 * or a negative errno with the call's error set. */
static int make_dirs(host_t *h, call_t *c, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return h->set_error(c, "out of memory");
    int rc = 0;
    for (char *p = copy;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        /* the component just ended: skip empty ones ("a//b") and "." */
        const char *comp = p;
        while (comp > copy && comp[-1] != '/')
            comp--;
        if (p > comp && strcmp(comp, ".") != 0) {
            char name[256];
            int dfd = open_parent(h, c, copy, name, sizeof name);
            if (dfd < 0) {
                rc = dfd;
                break;
            }
            if (mkdirat(dfd, name, 0777) < 0 && errno != EEXIST) {
                rc = -errno;
                close(dfd);
                h->path_error(c, copy, rc);
                break;
            }
            close(dfd);
            /* it must be a directory we can go into, beneath the workspace */
            int fd = h->open_path(c, copy, O_RDONLY | O_DIRECTORY, 0);
            if (fd < 0) {
                rc = h->path_error(c, copy, fd);
                break;
            }
            close(fd);
        }
        *p = saved;
        if (!saved)
            break;
    }
    free(copy);
    return rc;
}

/* Replaces the content of `path` with data[0..len): atomically through a
 * temporary file and rename for a regular (or new) file, in place through
 * a symlink that resolves inside the workspace. *created tells whether the
 * file is new. Returns 0 or a negative errno with the call's error set. */
static int write_file_at(host_t *h, call_t *c, const char *path, const char *data, size_t len,
                         bool *created)
{
    char name[256], tmp[300];
    int dfd = open_parent(h, c, path, name, sizeof name);
    if (dfd < 0)
        return dfd;
    int rc = 0, fd = -1;
    struct stat st;
    *created = false;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) {
            rc = h->path_error(c, path, -errno);
            goto out;
        }
        *created = true;
        st.st_mode = 0;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = h->set_error(c, "'%s' is a directory", path);
        goto out;
    }
    if (S_ISLNK(st.st_mode)) {
        /* write through the link, which must resolve beneath the workspace */
        fd = h->open_path(c, path, O_WRONLY | O_TRUNC | O_NONBLOCK, 0);
        if (fd < 0) {
            rc = h->path_error(c, path, fd);
            goto out;
        }
        struct stat tst;
        if (fstat(fd, &tst) < 0 || !S_ISREG(tst.st_mode)) {
            rc = h->set_error(c, "'%s' is a link to something that is not a regular file", path);
            goto out;
        }
        if ((rc = write_all(fd, data, len)) < 0)
            h->set_error(c, "writing '%s': %s", path, strerror(-rc));
        goto out;
    }
    if (st.st_mode && !S_ISREG(st.st_mode)) {
        rc = h->set_error(c, "'%s' is not a regular file", path);
        goto out;
    }
    for (int i = 0; i < 100 && fd < 0; i++) {
        snprintf(tmp, sizeof tmp, ".%.200s.hearth-%ld-%d", name, (long)getpid(), i);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                    st.st_mode ? (st.st_mode & 07777) : 0666);
        if (fd < 0 && errno != EEXIST) {
            rc = h->path_error(c, path, -errno);
            goto out;
        }
    }
    if (fd < 0) {
        rc = h->set_error(c, "'%s': cannot create a temporary file next to it", path);
        goto out;
    }
    if (st.st_mode)
        fchmod(fd, st.st_mode & 07777); /* umask must not narrow an existing file's mode */
    if ((rc = write_all(fd, data, len)) < 0 || (close(fd) < 0 && (rc = -errno))) {
        fd = -1;
        unlinkat(dfd, tmp, 0);
        h->set_error(c, "writing '%s': %s", path, strerror(-rc));
        goto out;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, name) < 0) {
        rc = -errno;
        unlinkat(dfd, tmp, 0);
        h->path_error(c, path, rc);
    }
out:
    if (fd >= 0)
        close(fd);
    close(dfd);
    return rc;
}

/* ---- read_file ------------------------------------------------------------------- */

static int read_file(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", NULL);
    int64_t first = 1, last = INT64_MAX;
    h->arg_int(c, "start_line", &first);
    h->arg_int(c, "end_line", &last);
    if (!path)
        return h->set_error(c, "no path given");
    if (last < first)
        return h->set_error(c, "end_line %lld is before start_line %lld", (long long)last,
                            (long long)first);
    /* O_NONBLOCK: a FIFO must not hang the call at open */
    int fd = h->open_path(c, path, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return h->path_error(c, path, fd);
    int rc = 0;
    char buf[65536];
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = h->path_error(c, path, -errno);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = h->set_error(c, "'%s' is a directory; use list_dir to see what it holds", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = h->set_error(c, "'%s' is not a regular file", path);
        goto out;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

    /* Streams the file line by line: lines [first, last] are appended
     * while they fit the output budget; the rest is only counted, for the
     * note that says how to read on. */
    uint64_t room = h->output_room(c);
    uint64_t budget = room > NOTE_ROOM ? room - NOTE_ROOM : 0;
    uint64_t used = 0;
    int64_t line = 1, shown_last = 0;
    bool probed = false, stopped = false, at_line_start = true;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = h->path_error(c, path, -errno);
            goto out;
        }
        if (r == 0)
            break;
        if (!probed) {
            probed = true;
            if (looks_binary(buf, (size_t)r)) {
                rc = h->set_error(c, "'%s' looks like a binary file (%lld bytes); not shown",
                                  path, (long long)st.st_size);
                goto out;
            }
        }
        if (h->cancelled(c)) {
            rc = h->set_error(c, "cancelled");
            goto out;
        }
        size_t i = 0;
        while (i < (size_t)r) {
            char *nl = memchr(buf + i, '\n', (size_t)r - i);
            size_t end = nl ? (size_t)(nl - buf) + 1 : (size_t)r;
            if (line >= first && line <= last && !stopped) {
                size_t n = end - i;
                if (used + n > budget) {
                    stopped = true; /* this line does not fit: stop showing */
                } else {
                    h->append(c, buf + i, n);
                    used += n;
                    shown_last = line;
                }
            }
            at_line_start = nl != NULL;
            if (nl)
                line++;
            i = end;
        }
    }
    int64_t total = at_line_start ? line - 1 : line; /* lines in the file */
    if (total == 0) {
        h->appendf(c, "[empty file]");
    } else if (first > total) {
        rc = h->set_error(c, "start_line %lld is past the end of '%s' (%lld lines)",
                          (long long)first, path, (long long)total);
    } else if (stopped) {
        h->appendf(c, "%s[showing lines %lld-%lld of %lld; read on with start_line=%lld]",
                   used && !at_line_start ? "\n" : "", (long long)first,
                   (long long)shown_last, (long long)total, (long long)shown_last + 1);
        if (shown_last < first)
            rc = h->set_error(c, "line %lld of '%s' is longer than the output cap",
                              (long long)first, path);
    }
out:
    close(fd);
    return rc;
}

/* ---- list_dir --------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", ".");
    int fd = h->open_path(c, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        if (fd == -ENOTDIR)
            return h->set_error(c, "'%s' is not a directory; use read_file or stat", path);
        return h->path_error(c, path, fd);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return h->set_error(c, "'%s': %s", path, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0, more = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == LIST_MAX * 4) {
            more++; /* keep counting, stop collecting */
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) {
                rc = h->set_error(c, "out of memory");
                goto out;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = h->set_error(c, "out of memory");
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    if (n == 0)
        h->appendf(c, "[empty directory]");
    size_t shown = n < LIST_MAX ? n : LIST_MAX;
    for (size_t i = 0; i < shown; i++) {
        struct stat st;
        int r;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            r = h->appendf(c, "%s\n", names[i]);
        else if (S_ISDIR(st.st_mode))
            r = h->appendf(c, "%s/\n", names[i]);
        else if (S_ISLNK(st.st_mode)) {
            char target[512];
            ssize_t tl = readlinkat(dirfd(d), names[i], target, sizeof target - 1);
            target[tl > 0 ? tl : 0] = 0;
            r = h->appendf(c, "%s -> %s\n", names[i], target);
        } else if (S_ISREG(st.st_mode))
            r = h->appendf(c, "%s (%lld bytes)\n", names[i], (long long)st.st_size);
        else
            r = h->appendf(c, "%s (special file)\n", names[i]);
        if (r == -ENOSPC)
            break;
    }
    if (n + more > shown)
        h->appendf(c, "[... and %zu more entries]\n", n + more - shown);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* ---- write_file, edit_file ------------------------------------------------------------- */

static int write_file(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", NULL);
    size_t len = 0;
    const char *content = h->arg_string(c, "content", &len);
    bool append = false, create_dirs = true;
    h->arg_bool(c, "append", &append);
    h->arg_bool(c, "create_dirs", &create_dirs);
    if (!path || !content)
        return h->set_error(c, "path and content are required");
    if (path[0] == '/')
        return h->path_error(c, path, -EXDEV);
    const char *base;
    size_t blen;
    char *parent = split_path(path, &base, &blen);
    if (!parent)
        return h->set_error(c, "out of memory");
    int rc = 0;
    if (create_dirs && strcmp(parent, ".") != 0)
        rc = make_dirs(h, c, parent);
    free(parent);
    if (rc < 0)
        return rc;
    bool created = false;
    if (append) {
        int fd = h->open_path(c, path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0666);
        if (fd < 0) {
            if (fd == -EISDIR)
                return h->set_error(c, "'%s' is a directory", path);
            return h->path_error(c, path, fd);
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return h->set_error(c, "'%s' is not a regular file", path);
        }
        rc = write_all(fd, content, len);
        close(fd);
        if (rc < 0)
            return h->set_error(c, "writing '%s': %s", path, strerror(-rc));
        h->appendf(c, "appended %zu bytes to %s", len, path);
        return 0;
    }
    if ((rc = write_file_at(h, c, path, content, len, &created)) < 0)
        return rc;
    h->appendf(c, "wrote %zu bytes to %s%s", len, path, created ? " (new file)" : "");
    return 0;
}

static size_t count_occurrences(const char *hay, size_t n, const char *needle, size_t m)
{
    size_t count = 0;
    for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), needle, m)); p += m)
        count++;
    return count;
}

static int edit_file(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", NULL);
    size_t olen = 0, nlen = 0;
    const char *old_text = h->arg_string(c, "old_text", &olen);
    const char *new_text = h->arg_string(c, "new_text", &nlen);
    bool all = false;
    h->arg_bool(c, "all", &all);
    if (!path || !old_text || !new_text || olen == 0)
        return h->set_error(c, "path, a non-empty old_text and new_text are required");
    int fd = h->open_path(c, path, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return h->path_error(c, path, fd);
    struct stat st;
    char *data = NULL, *out = NULL;
    size_t len = 0;
    int rc;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return h->set_error(c, "'%s' is not a regular file", path);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    rc = read_all(fd, &data, &len, EDIT_MAX);
    close(fd);
    if (rc == -EFBIG)
        return h->set_error(c, "'%s' is larger than %zu MiB; edit_file does not change it", path,
                            EDIT_MAX >> 20);
    if (rc < 0)
        return h->path_error(c, path, rc);
    if (looks_binary(data, len)) {
        rc = h->set_error(c, "'%s' looks like a binary file; not edited", path);
        goto out;
    }
    size_t count = count_occurrences(data, len, old_text, olen);
    if (count == 0) {
        rc = h->set_error(c, "old_text was not found in '%s' (it must match exactly, including "
                             "whitespace and indentation; read_file shows the current text)",
                          path);
        goto out;
    }
    if (count > 1 && !all) {
        rc = h->set_error(c, "old_text occurs %zu times in '%s'; include more of the surrounding "
                             "text to make it unique, or set all to true to replace every one",
                          count, path);
        goto out;
    }
    size_t replace = all ? count : 1;
    size_t out_len = len - replace * olen + replace * nlen;
    if (!(out = malloc(out_len + 1))) {
        rc = h->set_error(c, "out of memory");
        goto out;
    }
    size_t o = 0;
    const char *p = data, *end = data + len;
    for (size_t k = 0; k < replace; k++) {
        const char *hit = memmem(p, (size_t)(end - p), old_text, olen);
        memcpy(out + o, p, (size_t)(hit - p));
        o += (size_t)(hit - p);
        memcpy(out + o, new_text, nlen);
        o += nlen;
        p = hit + olen;
    }
    memcpy(out + o, p, (size_t)(end - p));
    o += (size_t)(end - p);
    bool created;
    if ((rc = write_file_at(h, c, path, out, o, &created)) < 0)
        goto out;
    h->appendf(c, "replaced %zu occurrence%s in %s", replace, replace == 1 ? "" : "s", path);
out:
    free(data);
    free(out);
    return rc;
}

/* ---- stat, mkdir --------------------------------------------------------------------------- */

static int stat_tool(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", NULL);
    if (!path)
        return h->set_error(c, "no path given");
    /* O_PATH | O_NOFOLLOW: the thing itself, also when it is a symlink */
    int fd = h->open_path(c, path, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0)
        return h->path_error(c, path, fd);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return h->path_error(c, path, e);
    }
    char when[64] = "?";
    struct tm tm;
    if (gmtime_r(&st.st_mtime, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *type = S_ISREG(st.st_mode)    ? "regular file"
                       : S_ISDIR(st.st_mode)  ? "directory"
                       : S_ISLNK(st.st_mode)  ? "symbolic link"
                       : S_ISFIFO(st.st_mode) ? "fifo"
                       : S_ISSOCK(st.st_mode) ? "socket"
                                              : "device";
    h->appendf(c, "%s: %s", path, type);
    if (S_ISREG(st.st_mode))
        h->appendf(c, ", %lld bytes", (long long)st.st_size);
    if (S_ISLNK(st.st_mode)) {
        char target[1024];
        ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        int in = h->open_path(c, path, O_PATH, 0);
        h->appendf(c, " -> %s%s", target,
                   in >= 0 ? "" : in == -ENOENT ? " (dangling)" : " (leads outside the workspace)");
        if (in >= 0)
            close(in);
    }
    h->appendf(c, ", mode %04o, modified %s", (unsigned)(st.st_mode & 07777), when);
    close(fd);
    return 0;
}

static int mkdir_tool(host_t *h, call_t *c)
{
    const char *path = path_arg(h, c, "path", NULL);
    bool parents = true;
    h->arg_bool(c, "parents", &parents);
    if (!path)
        return h->set_error(c, "no path given");
    int fd = h->open_path(c, path, O_PATH | O_NOFOLLOW, 0);
    if (fd >= 0) {
        struct stat st;
        bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        close(fd);
        if (!dir)
            return h->set_error(c, "'%s' exists and is not a directory", path);
        h->appendf(c, "%s already exists", path);
        return 0;
    }
    if (fd != -ENOENT)
        return h->path_error(c, path, fd);
    int rc;
    if (parents) {
        rc = make_dirs(h, c, path);
    } else {
        char name[256];
        int dfd = open_parent(h, c, path, name, sizeof name);
        if (dfd < 0)
            return dfd;
        rc = mkdirat(dfd, name, 0777) < 0 ? h->path_error(c, path, -errno) : 0;
        close(dfd);
    }
    if (rc < 0)
        return rc;
    h->appendf(c, "created directory %s", path);
    return 0;
}

/* ---- the tool table ---------------------------------------------------------------------------- */

#define PATH_PROP(what)                                                                            \
    "\"path\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":4096,"                            \
    "\"description\":\"" what " (relative to the workspace)\"}"

static const struct hr_tool read_file_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "read_file",
    .description = "Reads a text file in the workspace and returns its content exactly (no "
                   "line numbers). Give start_line/end_line (1-based, inclusive) to read part "
                   "of a long file; a result that does not fit says how to read on. Binary "
                   "files are refused.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP("File to read") ","
                  "\"start_line\":{\"type\":\"integer\",\"minimum\":1,"
                  "\"description\":\"First line to return (default 1)\"},"
                  "\"end_line\":{\"type\":\"integer\",\"minimum\":1,"
                  "\"description\":\"Last line to return (default: the last)\"}},"
                  "\"required\":[\"path\"],\"additionalProperties\":false}",
    .call = read_file,
};

static const struct hr_tool list_dir_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "list_dir",
    .description = "Lists a directory of the workspace, one entry per line, sorted: "
                   "directories end with '/', files show their size, links their target.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP(
        "Directory to list, default '.'") "},\"additionalProperties\":false}",
    .call = list_dir,
};

static const struct hr_tool write_file_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_WRITE,
    .name = "write_file",
    .description = "Writes a text file in the workspace, replacing its content (or appending "
                   "with append=true). Missing parent directories are created unless "
                   "create_dirs is false. To change part of a file, prefer edit_file.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP("File to write") ","
                  "\"content\":{\"type\":\"string\",\"maxLength\":4194304,"
                  "\"description\":\"The complete new content\"},"
                  "\"append\":{\"type\":\"boolean\",\"description\":\"Append instead of "
                  "replacing (default false)\"},"
                  "\"create_dirs\":{\"type\":\"boolean\",\"description\":\"Create missing "
                  "parent directories (default true)\"}},"
                  "\"required\":[\"path\",\"content\"],\"additionalProperties\":false}",
    .call = write_file,
};

static const struct hr_tool edit_file_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_WRITE,
    .name = "edit_file",
    .description = "Edits a text file in the workspace by replacing old_text with new_text. "
                   "old_text must match the file exactly (whitespace included) and occur "
                   "exactly once, unless all=true replaces every occurrence.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP("File to edit") ","
                  "\"old_text\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1048576,"
                  "\"description\":\"Exact text to replace\"},"
                  "\"new_text\":{\"type\":\"string\",\"maxLength\":4194304,"
                  "\"description\":\"Replacement text\"},"
                  "\"all\":{\"type\":\"boolean\",\"description\":\"Replace every occurrence "
                  "(default false)\"}},"
                  "\"required\":[\"path\",\"old_text\",\"new_text\"],"
                  "\"additionalProperties\":false}",
    .call = edit_file,
};

static const struct hr_tool stat_tool_def = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "stat",
    .description = "Tells what a path in the workspace is: type, size, permissions, "
                   "modification time (UTC), and a symbolic link's target.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP("Path to look at") "},"
                  "\"required\":[\"path\"],\"additionalProperties\":false}",
    .call = stat_tool,
};

static const struct hr_tool mkdir_tool_def = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_WRITE,
    .name = "mkdir",
    .description = "Creates a directory in the workspace (with its missing parents unless "
                   "parents is false). An existing directory is not an error.",
    .parameters = "{\"type\":\"object\",\"properties\":{" PATH_PROP("Directory to create") ","
                  "\"parents\":{\"type\":\"boolean\",\"description\":\"Create missing parents "
                  "(default true)\"}},"
                  "\"required\":[\"path\"],\"additionalProperties\":false}",
    .call = mkdir_tool,
};

static const struct hr_tool *const tools[] = {&read_file_tool,  &list_dir_tool, &write_file_tool,
                                              &edit_file_tool, &stat_tool_def, &mkdir_tool_def};

static const struct hr_plugin plugin = {
    .abi_version = HR_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct hr_plugin),
    .name = "files",
    .version = "1.0.0",
    .description = "Read, list, write and edit files inside the workspace.",
    .n_tools = sizeof tools / sizeof tools[0],
    .tools = tools,
};

HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
    return &plugin;
}
