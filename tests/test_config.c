/*
 * test_config.c — hearthd's config file (daemon/config.c): the defaults, a
 * file that sets every key, each class of error with its exact
 * FILE:LINE:COLUMN and byte offset (unknown key, wrong type, out of range,
 * bad word, duplicate key, YAML syntax, tabs, top level not a mapping,
 * aliases, tags, several documents, bad UTF-8), ~ and relative path
 * expansion, the default location, missing and unreadable files, LoRA
 * profiles, and that docs/config.md carries hd_config_write_doc()'s output
 * verbatim and that its examples load.
 *
 * Every test runs with HOME set to a fresh temporary directory and
 * XDG_CONFIG_HOME unset, and writes its config there.
 */
#include <criterion/criterion.h>

#include "config.h"
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];   /* the test's temporary directory */
static char home[128]; /* dir/home, $HOME */
static char file[160]; /* dir/hearth.yaml, where load_text writes */

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hearth-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(home, sizeof home, "%s/home", dir);
    snprintf(file, sizeof file, "%s/hearth.yaml", dir);
    cr_assert_eq(mkdir(home, 0700), 0);
    setenv("HOME", home, 1);
    unsetenv("XDG_CONFIG_HOME");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Writes text to `file` and loads it into *cfg. */
static int load_text(const char *text, struct hd_config *cfg, struct hr_err *err)
{
    write_file(file, text, strlen(text));
    return hd_config_load(file, cfg, err);
}

/* The byte offset of 1-based line:column in ASCII text. */
static int64_t ascii_offset(const char *text, int line, int col)
{
    const char *p = text;
    for (int l = 1; l < line; l++) {
        p = strchr(p, '\n');
        cr_assert_not_null(p, "line %d is past the text", line);
        p++;
    }
    return (int64_t)(p - text) + col - 1;
}

/* Loads `text` and checks it is refused with -EINVAL at line:col (and the
 * matching byte offset), the message "FILE:LINE:COL: ..." mentioning `what`,
 * and the config left as it was. */
static void expect_error(const char *text, int line, int col, const char *what)
{
    struct hd_config cfg;
    cr_assert_eq(hd_config_init(&cfg), 0);
    cfg.threads = 77; /* not a default: shows the config was left untouched */
    struct hr_err err;
    hr_err_clear(&err);
    int rc = load_text(text, &cfg, &err);
    cr_assert_eq(rc, -EINVAL, "rc %d for:\n%s", rc, text);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", file, line, col);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "message '%s', wanted '%s...' for:\n%s",
              err.msg, prefix, text);
    cr_assert_not_null(strstr(err.msg, what), "message '%s' does not mention '%s'", err.msg, what);
    cr_assert_eq(err.line, line, "line %d in '%s'", err.line, err.msg);
    cr_assert_eq(err.column, col, "column %d in '%s'", err.column, err.msg);
    cr_assert_eq(err.offset, ascii_offset(text, line, col), "offset %lld for %d:%d",
                 (long long)err.offset, line, col);
    cr_assert_eq(cfg.threads, 77, "a failed load changed the config");
    cr_assert_eq(cfg.plugins.n_load, 3, "a failed load changed the config");
    hd_config_done(&cfg);
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool list_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return false;
    return true;
}

/* Every field of two configs compared. */
static void expect_same(const struct hd_config *a, const struct hd_config *b)
{
    cr_expect(str_eq(a->model, b->model));
    cr_expect_eq(a->threads, b->threads);
    cr_expect_eq(a->context, b->context);
    cr_expect_eq(a->batch, b->batch);
    cr_expect_eq(a->kv_cache, b->kv_cache);
    cr_expect_eq(a->parallel, b->parallel);
    cr_expect_eq(a->sessions, b->sessions);
    cr_expect(str_eq(a->socket, b->socket));
    cr_expect_eq(a->http.enabled, b->http.enabled);
    cr_expect_eq(a->http.port, b->http.port);
    cr_expect(str_eq(a->http.token, b->http.token));
    cr_expect_eq(a->http.cors, b->http.cors);
    cr_expect_eq(a->dbus.enabled, b->dbus.enabled);
    cr_expect_eq(a->sampling.temperature, b->sampling.temperature);
    cr_expect_eq(a->sampling.top_k, b->sampling.top_k);
    cr_expect_eq(a->sampling.top_p, b->sampling.top_p);
    cr_expect_eq(a->sampling.min_p, b->sampling.min_p);
    cr_expect_eq(a->sampling.repeat_penalty, b->sampling.repeat_penalty);
    cr_expect_eq(a->sampling.max_tokens, b->sampling.max_tokens);
    cr_expect(str_eq(a->plugins.dir, b->plugins.dir));
    cr_expect(list_eq(a->plugins.load, a->plugins.n_load, b->plugins.load, b->plugins.n_load));
    cr_expect(list_eq(a->tools.roots, a->tools.n_roots, b->tools.roots, b->tools.n_roots));
    cr_expect_eq(a->tools.policy_read, b->tools.policy_read);
    cr_expect_eq(a->tools.policy_write, b->tools.policy_write);
    cr_expect_eq(a->tools.policy_exec, b->tools.policy_exec);
    cr_expect(list_eq(a->tools.deny, a->tools.n_deny, b->tools.deny, b->tools.n_deny));
    cr_expect_eq(a->tools.timeout, b->tools.timeout);
    cr_expect(str_eq(a->lora.dir, b->lora.dir));
    cr_expect_eq(a->lora.n_profiles, b->lora.n_profiles);
    for (size_t i = 0; i < a->lora.n_profiles && i < b->lora.n_profiles; i++) {
        const struct hd_lora_profile *pa = &a->lora.profiles[i], *pb = &b->lora.profiles[i];
        cr_expect(str_eq(pa->name, pb->name));
        cr_expect_eq(pa->n_uses, pb->n_uses);
        for (size_t j = 0; j < pa->n_uses && j < pb->n_uses; j++) {
            cr_expect(str_eq(pa->uses[j].adapter, pb->uses[j].adapter));
            cr_expect_eq(pa->uses[j].scale, pb->uses[j].scale);
        }
    }
    cr_expect_eq(a->limits.max_message_bytes, b->limits.max_message_bytes);
    cr_expect_eq(a->limits.max_queue, b->limits.max_queue);
    cr_expect_eq(a->limits.max_requests_per_client, b->limits.max_requests_per_client);
    cr_expect_eq(a->limits.max_clients, b->limits.max_clients);
    cr_expect_eq(a->limits.max_prompt_tokens, b->limits.max_prompt_tokens);
    cr_expect_eq(a->log.level, b->log.level);
}

static void expect_defaults(const struct hd_config *cfg)
{
    struct hd_config def;
    cr_assert_eq(hd_config_init(&def), 0);
    expect_same(cfg, &def);
    hd_config_done(&def);
}

/* The generated doc, owned. */
static char *generated_doc(size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    cr_assert_not_null(f);
    cr_assert_eq(hd_config_write_doc(f), 0);
    cr_assert_eq(fclose(f), 0);
    return text;
}

static char *read_doc(void)
{
    char *md = tu_read_file(HEARTH_SOURCE_ROOT "/docs/config.md", NULL);
    cr_assert_not_null(md, "cannot read docs/config.md");
    return md;
}

/* ---- defaults and a full file ------------------------------------------------ */

Test(config, defaults_are_the_documented_contract)
{
    struct hd_config c;
    cr_assert_eq(hd_config_init(&c), 0);
    cr_expect_null(c.model);
    cr_expect_eq(c.threads, 0);
    cr_expect_eq(c.context, 4096);
    cr_expect_eq(c.batch, 512);
    cr_expect_eq(c.kv_cache, HR_TYPE_F16);
    cr_expect_eq(c.parallel, 4);
    cr_expect_eq(c.sessions, 16);
    cr_expect_null(c.socket);
    cr_expect_eq(c.http.enabled, false);
    cr_expect_eq(c.http.port, 8080);
    cr_expect_null(c.http.token);
    cr_expect_eq(c.http.cors, false);
    cr_expect_eq(c.dbus.enabled, true);
    cr_expect_float_eq(c.sampling.temperature, 0.8f, 1e-7f);
    cr_expect_eq(c.sampling.top_k, 40);
    cr_expect_float_eq(c.sampling.top_p, 0.95f, 1e-7f);
    cr_expect_float_eq(c.sampling.min_p, 0.05f, 1e-7f);
    cr_expect_eq(c.sampling.repeat_penalty, 1.0f);
    cr_expect_eq(c.sampling.max_tokens, 512);
    cr_expect_null(c.plugins.dir);
    cr_assert_eq(c.plugins.n_load, 3);
    cr_expect_str_eq(c.plugins.load[0], "files");
    cr_expect_str_eq(c.plugins.load[1], "shell");
    cr_expect_str_eq(c.plugins.load[2], "search");
    cr_assert_eq(c.tools.n_roots, 1);
    cr_expect_str_eq(c.tools.roots[0], home, "~ is the home directory");
    cr_expect_eq(c.tools.policy_read, HD_POLICY_ALLOW);
    cr_expect_eq(c.tools.policy_write, HD_POLICY_ASK);
    cr_expect_eq(c.tools.policy_exec, HD_POLICY_ASK);
    cr_expect_eq(c.tools.n_deny, 0);
    cr_expect_eq(c.tools.timeout, 30);
    cr_expect_null(c.lora.dir);
    cr_expect_eq(c.lora.n_profiles, 0);
    cr_expect_eq(c.limits.max_message_bytes, 16777216);
    cr_expect_eq(c.limits.max_queue, 64);
    cr_expect_eq(c.limits.max_requests_per_client, 8);
    cr_expect_eq(c.limits.max_clients, 64);
    cr_expect_eq(c.limits.max_prompt_tokens, 0);
    cr_expect_eq(c.log.level, HD_LOG_INFO);
    hd_config_done(&c);
    cr_expect_null(c.plugins.load, "done zeroes the struct");
    hd_config_done(&c); /* twice, and NULL, are harmless */
    hd_config_done(NULL);
}

static const char full_yaml[] =
    "# every key, none at its default\n"
    "model: /models/m.gguf\n"
    "threads: 3\n"
    "context: 0\n"
    "batch: 64\n"
    "kv_cache: f32\n"
    "parallel: 2\n"
    "sessions: 5\n"
    "socket: '/run/h.sock'\n"
    "http:\n"
    "  enabled: true\n"
    "  port: 9000\n"
    "  token: \"s3 cret\"\n"
    "  cors: True\n"
    "dbus: {enabled: false}\n"
    "sampling:\n"
    "  temperature: 0\n"
    "  top_k: 0\n"
    "  top_p: 1\n"
    "  min_p: 0.0\n"
    "  repeat_penalty: 1.1e0\n"
    "  max_tokens: +100\n"
    "plugins:\n"
    "  dir: plugins\n"
    "  load: [files]\n"
    "tools:\n"
    "  roots:\n"
    "    - /srv\n"
    "    - ~/work\n"
    "  policy: {read: ask, write: deny, exec: allow}\n"
    "  deny: [shell.run, files:rm]\n"
    "  timeout: 5\n"
    "lora:\n"
    "  dir: /lora\n"
    "  profiles:\n"
    "    work: [{style: 0.8}, {terse: -0.25}]\n"
    "    none: []\n"
    "    empty:\n"
    "limits:\n"
    "  max_message_bytes: 65536\n"
    "  max_queue: 3\n"
    "  max_requests_per_client: 2\n"
    "  max_clients: 9\n"
    "  max_prompt_tokens: 100\n"
    "log:\n"
    "  level: debug\n";

Test(config, full_file_sets_every_key)
{
    struct hd_config c = {0}; /* a zeroed struct is a valid target */
    struct hr_err err;
    cr_assert_eq(load_text(full_yaml, &c, &err), 0, "%s", err.msg);
    char path[256];
    cr_expect_str_eq(c.model, "/models/m.gguf");
    cr_expect_eq(c.threads, 3);
    cr_expect_eq(c.context, 0);
    cr_expect_eq(c.batch, 64);
    cr_expect_eq(c.kv_cache, HR_TYPE_F32);
    cr_expect_eq(c.parallel, 2);
    cr_expect_eq(c.sessions, 5);
    cr_expect_str_eq(c.socket, "/run/h.sock");
    cr_expect_eq(c.http.enabled, true);
    cr_expect_eq(c.http.port, 9000);
    cr_expect_str_eq(c.http.token, "s3 cret");
    cr_expect_eq(c.http.cors, true);
    cr_expect_eq(c.dbus.enabled, false);
    cr_expect_eq(c.sampling.temperature, 0.0f);
    cr_expect_eq(c.sampling.top_k, 0);
    cr_expect_eq(c.sampling.top_p, 1.0f);
    cr_expect_eq(c.sampling.min_p, 0.0f);
    cr_expect_eq(c.sampling.repeat_penalty, 1.1f);
    cr_expect_eq(c.sampling.max_tokens, 100);
    snprintf(path, sizeof path, "%s/plugins", dir);
    cr_expect_str_eq(c.plugins.dir, path, "relative to the config's directory");
    cr_assert_eq(c.plugins.n_load, 1);
    cr_expect_str_eq(c.plugins.load[0], "files");
    cr_assert_eq(c.tools.n_roots, 2);
    cr_expect_str_eq(c.tools.roots[0], "/srv");
    snprintf(path, sizeof path, "%s/work", home);
    cr_expect_str_eq(c.tools.roots[1], path);
    cr_expect_eq(c.tools.policy_read, HD_POLICY_ASK);
    cr_expect_eq(c.tools.policy_write, HD_POLICY_DENY);
    cr_expect_eq(c.tools.policy_exec, HD_POLICY_ALLOW);
    cr_assert_eq(c.tools.n_deny, 2);
    cr_expect_str_eq(c.tools.deny[0], "shell.run");
    cr_expect_str_eq(c.tools.deny[1], "files:rm");
    cr_expect_eq(c.tools.timeout, 5);
    cr_expect_str_eq(c.lora.dir, "/lora");
    cr_assert_eq(c.lora.n_profiles, 3);
    cr_expect_str_eq(c.lora.profiles[0].name, "work");
    cr_assert_eq(c.lora.profiles[0].n_uses, 2);
    cr_expect_str_eq(c.lora.profiles[0].uses[0].adapter, "style");
    cr_expect_eq(c.lora.profiles[0].uses[0].scale, 0.8f);
    cr_expect_str_eq(c.lora.profiles[0].uses[1].adapter, "terse");
    cr_expect_eq(c.lora.profiles[0].uses[1].scale, -0.25f);
    cr_expect_str_eq(c.lora.profiles[1].name, "none");
    cr_expect_eq(c.lora.profiles[1].n_uses, 0);
    cr_expect_str_eq(c.lora.profiles[2].name, "empty");
    cr_expect_eq(c.lora.profiles[2].n_uses, 0);
    cr_expect_eq(c.limits.max_message_bytes, 65536);
    cr_expect_eq(c.limits.max_queue, 3);
    cr_expect_eq(c.limits.max_requests_per_client, 2);
    cr_expect_eq(c.limits.max_clients, 9);
    cr_expect_eq(c.limits.max_prompt_tokens, 100);
    cr_expect_eq(c.log.level, HD_LOG_DEBUG);

    /* loading again over a loaded config replaces it (ASan: nothing leaks) */
    cr_assert_eq(load_text("threads: 1\n", &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c.threads, 1);
    cr_expect_null(c.model, "a new load starts from the defaults");
    cr_expect_eq(c.plugins.n_load, 3);
    hd_config_done(&c);
}

Test(config, empty_values_and_lists)
{
    struct hd_config c;
    struct hr_err err;
    cr_assert_eq(hd_config_init(&c), 0);
    cr_assert_eq(load_text("model:\n"
                           "socket: ''\n"
                           "http: {token: null}\n"
                           "plugins: {load: []}\n"
                           "tools: {roots: [], deny: ~}\n"
                           "lora: {profiles: {}}\n"
                           "dbus:\n",
                           &c, &err),
                 0, "%s", err.msg);
    cr_expect_null(c.model);
    cr_expect_null(c.socket);
    cr_expect_null(c.http.token);
    cr_expect_eq(c.plugins.n_load, 0);
    cr_expect_null(c.plugins.load);
    cr_expect_eq(c.tools.n_roots, 0);
    cr_expect_eq(c.tools.n_deny, 0);
    cr_expect_eq(c.dbus.enabled, true, "an empty section keeps its defaults");
    hd_config_done(&c);
}

Test(config, empty_file_comments_and_bare_document_are_the_defaults)
{
    static const char *const texts[] = {"", "# nothing here\n\n   # at all\n", "---\n", "---\n...\n",
                                        "~\n", "\xEF\xBB\xBF# a BOM\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct hd_config c;
        struct hr_err err;
        cr_assert_eq(hd_config_init(&c), 0);
        c.threads = 9;
        cr_assert_eq(load_text(texts[i], &c, &err), 0, "text %zu: %s", i, err.msg);
        expect_defaults(&c);
        hd_config_done(&c);
    }
}

/* ---- errors, each at its line:column ------------------------------------------ */

Test(config, unknown_keys)
{
    expect_error("threads: 2\nthreds: 3\n", 2, 1, "unknown key 'threds' (did you mean 'threads'?)");
    expect_error("http:\n  enabled: true\n  prot: 80\n", 3, 3,
                 "unknown key 'http.prot' (did you mean 'port'?)");
    expect_error("tools:\n  policy: {read: allow, delete: deny}\n", 2, 25,
                 "unknown key 'tools.policy.delete'");
    expect_error("sampling: {temprature: 1}\n", 1, 12, "did you mean 'temperature'?");
    expect_error("colour: red\n", 1, 1, "known keys here: model, threads,");
    /* a dotted key is not a way around sections */
    expect_error("http.port: 80\n", 1, 1, "unknown key 'http.port'");
    /* a key that is a section's name one level too deep */
    expect_error("http:\n  http: {port: 1}\n", 2, 3, "unknown key 'http.http'");
}

Test(config, wrong_types)
{
    expect_error("threads: many\n", 1, 10, "threads: expected an integer, found 'many'");
    expect_error("threads: 2.5\n", 1, 10, "expected an integer");
    expect_error("http:\n  port: \"8080\"\n", 2, 9, "found the quoted string '8080'");
    expect_error("http:\n  enabled: yes\n", 2, 12, "http.enabled: expected true or false");
    expect_error("http: 8080\n", 1, 7, "http: is a section, expected a mapping");
    expect_error("plugins:\n  load: files\n", 2, 9, "expected a list of names, found 'files'");
    expect_error("plugins:\n  load: [files, [shell]]\n", 2, 17, "expected a name, found a list");
    expect_error("model: [a, b]\n", 1, 8, "model: expected a path, found a list");
    expect_error("sampling: {top_p: high}\n", 1, 19, "sampling.top_p: expected a number");
    expect_error("sampling: {top_p: .nan}\n", 1, 19, "expected a number");
    expect_error("log: {level: {x: 1}}\n", 1, 14, "log.level: expected a word, found a mapping");
    expect_error("lora: {profiles: [a]}\n", 1, 18, "expected a mapping of profiles");
    expect_error("? [a]\n: 1\n", 1, 3, "keys must be plain words");
    expect_error("threads:\n", 1, 9, "expected an integer, found nothing");
}

Test(config, out_of_range)
{
    expect_error("http:\n  port: 70000\n", 2, 9, "http.port: 70000 is out of range (1 to 65535)");
    expect_error("http:\n  port: 0\n", 2, 9, "out of range (1 to 65535)");
    expect_error("threads: -1\n", 1, 10, "threads: -1 is out of range (0 to 1024)");
    expect_error("batch: 99999999999999999999999\n", 1, 8, "is out of range");
    expect_error("sampling:\n  top_p: 1.5\n", 2, 10, "sampling.top_p: 1.5 is out of range (0 to 1)");
    expect_error("sampling:\n  repeat_penalty: 0\n", 2, 19, "(above 0, up to 10)");
    expect_error("sampling: {temperature: 1e400}\n", 1, 25, "out of range");
    expect_error("limits: {max_message_bytes: 100}\n", 1, 29, "out of range (4096 to 1073741824)");
    expect_error("lora:\n  profiles:\n    a: [{x: 11}]\n", 3, 13, "lora.profiles.a: 11 is out of range");
}

Test(config, bad_words)
{
    expect_error("kv_cache: q8_0\n", 1, 11, "kv_cache: 'q8_0' is not one of f32, f16");
    expect_error("kv_cache: F16\n", 1, 11, "is not one of f32, f16");
    expect_error("tools:\n  policy:\n    exec: sometimes\n", 3, 11,
                 "'sometimes' is not one of allow, ask, deny");
    expect_error("log: {level: verbose}\n", 1, 14, "not one of debug, info, warning, error");
}

Test(config, duplicate_keys)
{
    expect_error("threads: 1\nbatch: 8\nthreads: 2\n", 3, 1,
                 "duplicate key 'threads' (first at line 1, column 1)");
    expect_error("http:\n  port: 1\n  port: 2\n", 3, 3, "duplicate key 'http.port' (first at line 2");
    expect_error("http: {port: 1}\nhttp: {token: x}\n", 2, 1, "duplicate key 'http'");
    expect_error("lora:\n  profiles:\n    a: []\n    a: []\n", 4, 5, "duplicate key 'a'");
    expect_error("lora: {profiles: {a: [{x: 1}, {x: 0.5}]}}\n", 1, 32, "adapter 'x' is listed twice");
    expect_error("plugins: {load: [files, shell, files]}\n", 1, 32, "'files' is listed twice");
}

Test(config, lora_profiles_shape)
{
    expect_error("lora: {profiles: {a: [{x: 1, y: 2}]}}\n", 1, 30, "one adapter per list item");
    expect_error("lora: {profiles: {a: [{}]}}\n", 1, 23, "expected {ADAPTER: SCALE}");
    expect_error("lora: {profiles: {a: [x]}}\n", 1, 23, "expected {ADAPTER: SCALE}, found 'x'");
    expect_error("lora: {profiles: {a: x}}\n", 1, 22, "expected a list of {ADAPTER: SCALE}");
    expect_error("lora: {profiles: {a: [{../x: 1}]}}\n", 1, 24, "not a valid adapter name");
    expect_error("lora: {profiles: {'a b': []}}\n", 1, 19, "not a valid profile name");
    expect_error("plugins: {load: [../evil]}\n", 1, 18, "'../evil' is not a valid name");
}

Test(config, yaml_syntax_errors)
{
    expect_error("threads: 1\nplugins: {load: [files, shell}\n", 2, 30, "YAML syntax: ");
    expect_error("model: \"unterminated\n", 2, 1, "YAML syntax: found unexpected end of stream");
    expect_error("model: b: c\n", 1, 9, "YAML syntax: mapping values are not allowed");
    expect_error("http:\n  port: 1\n bad: 2\n", 3, 2,
                 "YAML syntax: did not find expected key, while parsing a block mapping at line 1, "
                 "column 1");
    expect_error("threads: 1\n- 2\n", 2, 1, "YAML syntax: did not find expected key");
}

Test(config, tabs)
{
    expect_error("http:\n\tport: 8080\n", 2, 1, "(a tab: YAML indents with spaces only)");
    /* a tab inside a line is ordinary white space */
    struct hd_config c = {0};
    struct hr_err err;
    cr_assert_eq(load_text("threads:\t2\n", &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c.threads, 2);
    hd_config_done(&c);
}

Test(config, top_level_must_be_a_mapping)
{
    expect_error("- threads\n- 2\n", 1, 1, "the top level must be a mapping of keys (KEY: VALUE), found a list");
    expect_error("threads 2\n", 1, 1, "top level must be a mapping");
    expect_error("\n\n  [1, 2]\n", 3, 3, "found a list");
}

Test(config, unsupported_yaml)
{
    expect_error("sampling: &s {top_k: 1}\nhttp: *s\n", 2, 7, "aliases (*s) are not supported");
    expect_error("threads: !!int 3\n", 1, 10, "tags (tag:yaml.org,2002:int) are not supported");
    expect_error("threads: 1\n---\nthreads: 2\n", 2, 1, "only one YAML document");
    /* a !!str tag is allowed and makes a string */
    struct hd_config c = {0};
    struct hr_err err;
    cr_assert_eq(load_text("http: {token: !!str 1234}\n", &c, &err), 0, "%s", err.msg);
    cr_expect_str_eq(c.http.token, "1234");
    hd_config_done(&c);
}

Test(config, bad_bytes_are_located)
{
    struct hd_config c = {0};
    struct hr_err err;
    /* invalid UTF-8: the reader reports a byte offset, turned into line:col */
    cr_assert_eq(load_text("threads: 1\nmodel: a\xff\n", &c, &err), -EINVAL);
    cr_expect_eq(err.line, 2, "%s", err.msg);
    cr_expect_eq(err.column, 9, "%s", err.msg);
    cr_expect_eq(err.offset, 19);
    cr_expect_not_null(strstr(err.msg, "not valid YAML text"), "%s", err.msg);
    /* a NUL byte in a double-quoted escape */
    expect_error("http: {token: \"a\\0b\"}\n", 1, 15, "cannot contain a NUL byte");
    /* columns count characters, the offset counts bytes */
    cr_assert_eq(load_text("http: {token: \xc3\xa9, port: x}\n", &c, &err), -EINVAL);
    cr_expect_eq(err.line, 1);
    cr_expect_eq(err.column, 24, "%s", err.msg);
    cr_expect_eq(err.offset, 24);
    cr_expect_null(c.http.token, "untouched on failure");
    hd_config_done(&c);
}

/* ---- paths -------------------------------------------------------------------- */

Test(config, tilde_and_relative_paths)
{
    struct hd_config c = {0};
    struct hr_err err;
    char want[256];
    cr_assert_eq(load_text("model: ~/models/m.gguf\n"
                           "socket: ~\n"
                           "plugins: {dir: \"plug ins/x\"}\n"
                           "lora: {dir: /abs/lora}\n"
                           "tools: {roots: [~, ~/src, /data, rel]}\n",
                           &c, &err),
                 0, "%s", err.msg);
    snprintf(want, sizeof want, "%s/models/m.gguf", home);
    cr_expect_str_eq(c.model, want);
    cr_expect_str_eq(c.socket, home, "a plain ~ is a path here, not null");
    snprintf(want, sizeof want, "%s/plug ins/x", dir);
    cr_expect_str_eq(c.plugins.dir, want);
    cr_expect_str_eq(c.lora.dir, "/abs/lora");
    cr_assert_eq(c.tools.n_roots, 4);
    cr_expect_str_eq(c.tools.roots[0], home);
    snprintf(want, sizeof want, "%s/src", home);
    cr_expect_str_eq(c.tools.roots[1], want);
    cr_expect_str_eq(c.tools.roots[2], "/data");
    snprintf(want, sizeof want, "%s/rel", dir);
    cr_expect_str_eq(c.tools.roots[3], want);
    hd_config_done(&c);

    expect_error("model: ~bob/m.gguf\n", 1, 8, "'~USER' is not supported");
    expect_error("tools: {roots: [/a, '']}\n", 1, 21, "tools.roots: expected a path");
    expect_error("tools: {roots: ~}\n", 1, 16, "expected a list of paths, found '~'");

    /* from memory, with no directory in the name, relative paths stay relative */
    cr_assert_eq(hd_config_parse("inline.yaml", "model: m.gguf\n", 14, &c, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(c.model, "m.gguf");
    hd_config_done(&c);
}

/* ---- files and the default location ------------------------------------------ */

Test(config, default_path_follows_xdg)
{
    char *p = hd_config_default_path();
    char want[256];
    snprintf(want, sizeof want, "%s/.config/hearth/hearth.yaml", home);
    cr_expect_str_eq(p, want);
    free(p);
    setenv("XDG_CONFIG_HOME", "/etc/xdg-here/", 1);
    p = hd_config_default_path();
    cr_expect_str_eq(p, "/etc/xdg-here/hearth/hearth.yaml");
    free(p);
    setenv("XDG_CONFIG_HOME", "relative/dir", 1); /* ignored, as the spec says */
    p = hd_config_default_path();
    cr_expect_str_eq(p, want);
    free(p);
}

Test(config, default_file_is_optional_and_used_when_present)
{
    struct hd_config c = {0};
    struct hr_err err;
    cr_assert_eq(hd_config_load(NULL, &c, &err), 0, "missing default file: %s", err.msg);
    expect_defaults(&c);

    char path[256];
    snprintf(path, sizeof path, "%s/.config", home);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.config/hearth", home);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.config/hearth/hearth.yaml", home);
    write_file(path, "threads: 6\nkv_cache: oops\n", 26);
    cr_assert_eq(hd_config_load(NULL, &c, &err), -EINVAL);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s:2:11: ", path);
    cr_expect(strncmp(err.msg, prefix, strlen(prefix)) == 0, "%s", err.msg);
    write_file(path, "threads: 6\n", 11);
    cr_assert_eq(hd_config_load(NULL, &c, &err), 0, "%s", err.msg);
    cr_expect_eq(c.threads, 6);
    hd_config_done(&c);
}

Test(config, missing_or_unreadable_explicit_file)
{
    struct hd_config c;
    struct hr_err err;
    cr_assert_eq(hd_config_init(&c), 0);
    c.threads = 5;
    char path[256];
    snprintf(path, sizeof path, "%s/nope.yaml", dir);
    cr_assert_eq(hd_config_load(path, &c, &err), -ENOENT);
    char want[300];
    snprintf(want, sizeof want, "%s: cannot read: ", path);
    cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    cr_expect_eq(err.line, 0);
    cr_expect_eq(c.threads, 5);

    cr_assert_eq(hd_config_load(dir, &c, &err), -EISDIR, "a directory: %s", err.msg);

    /* larger than 1 MiB: refused before parsing */
    size_t big = (1u << 20) + 1;
    char *text = malloc(big);
    cr_assert_not_null(text);
    memset(text, '#', big);
    text[big - 1] = '\n';
    write_file(file, text, big);
    free(text);
    cr_assert_eq(hd_config_load(file, &c, &err), -EFBIG);
    cr_expect_not_null(strstr(err.msg, "larger than"), "%s", err.msg);
    cr_expect_eq(c.threads, 5);
    hd_config_done(&c);
}

/* ---- docs/config.md ------------------------------------------------------------- */

Test(config, docs_carry_the_generated_reference_verbatim)
{
    size_t len;
    char *gen = generated_doc(&len);
    char *md = read_doc();
    cr_assert(len > 1000, "the reference is %zu bytes", len);
    cr_assert(strncmp(gen, HD_CONFIG_DOC_MARKER "\n", strlen(HD_CONFIG_DOC_MARKER) + 1) == 0);
    const char *at = strstr(md, HD_CONFIG_DOC_MARKER);
    cr_assert_not_null(at, "docs/config.md has no generated part");
    cr_assert_str_eq(at, gen,
                     "docs/config.md differs from hd_config_write_doc(): run "
                     "`ninja -C BUILD config-doc` and commit the result");
    cr_expect(at > md + 200, "a hand-written introduction comes first");
    /* every key of the contract appears in the table */
    static const char *const some[] = {"`model`", "`http.port`", "`tools.policy.exec`",
                                       "`lora.profiles`", "`limits.max_prompt_tokens`",
                                       "`log.level`"};
    for (size_t i = 0; i < sizeof some / sizeof some[0]; i++)
        cr_expect_not_null(strstr(gen, some[i]), "%s missing", some[i]);
    free(gen);
    free(md);
}

Test(config, doc_examples_load)
{
    char *md = read_doc();
    size_t n = 0;
    const char *p = md;
    while ((p = strstr(p, "```yaml\n"))) {
        p += 8;
        const char *end = strstr(p, "```\n");
        cr_assert_not_null(end);
        struct hd_config c = {0};
        struct hr_err err;
        int rc = hd_config_parse(file, p, (size_t)(end - p), &c, &err);
        cr_assert_eq(rc, 0, "example %zu of docs/config.md: %s", n, err.msg);
        if (strstr(p, "# model: PATH") && strstr(p, "# model: PATH") < end)
            expect_defaults(&c); /* the "every key at its default" example */
        else
            cr_expect_eq(c.lora.n_profiles, 2, "the typical example has two profiles");
        hd_config_done(&c);
        n++;
        p = end;
    }
    cr_expect_eq(n, 2, "docs/config.md has a typical example and the defaults");
    free(md);
}
