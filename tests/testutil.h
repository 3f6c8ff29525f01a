/*
 * testutil.h — small helpers shared by the test executables: locating test
 * data, reading whole files, running a child process and capturing output.
 */
#ifndef HEARTH_TESTUTIL_H
#define HEARTH_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Path of a file under tests/data (HEARTH_TEST_DATA). Static buffer per call
 * slot: valid until the 8th next call. */
const char *tu_data(const char *rel);
/* Path under ../shared/refdata (HEARTH_REFDATA), or NULL when refdata is not
 * present on this machine (a fresh clone): callers then skip that sweep. */
const char *tu_ref(const char *rel);
/* Returns the first of tu_ref(rel) / tu_data(rel) that exists, or NULL. */
const char *tu_find(const char *rel);
bool tu_exists(const char *path);

/* Reads a whole file; *len gets its size. Owned: free(). NULL on failure. */
void *tu_read_file(const char *path, size_t *len);
/* Parses comma- or space-separated integers; returns the count (<= cap). */
size_t tu_parse_ids(const char *s, int32_t *out, size_t cap);

/* Runs argv (argv[0] is a path), capturing stdout and stderr (each cut at
 * 1 MiB, NUL-terminated, owned: free()). Returns the exit status, or
 * 128+signal when killed, or -1 when it could not run. */
int tu_run(char *const argv[], char **out, char **err);

/* Path of the hearth binary (HEARTH_BIN). */
const char *tu_hearth_bin(void);

/* Runs the hearth binary with the given arguments (NULL-terminated); output
 * and status as tu_run. */
int tu_hearth(char **out, char **err, ...);

/* Criterion assertion: `err` is exactly one line starting "hearth: error: "
 * and mentions `what` (the CLI's contract for bad input). */
void tu_assert_one_line_error(const char *err, const char *what);

/* The bundled default model (models/stories260K.gguf); asserts it exists. */
const char *tu_stories(void);

#endif
