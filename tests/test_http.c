/*
 * test_http.c — hearthd's OpenAI-compatible HTTP API, end to end: the real
 * hearthd (HEARTH_DAEMON_BIN) on the bundled model with HTTP on a free
 * loopback port, spoken to by a small raw HTTP/1.1 client (so that bad Host
 * headers, bad bodies and SSE framing are seen exactly), and by the
 * official `openai` npm client (tests/openai/check.mjs) when node and its
 * node_modules are present.
 */
#include "daemonutil.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the daemon ------------------------------------------------------------------ */

static struct {
    struct du_daemon d;
    int port;
} D;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int connect_to(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Starts hearthd with HTTP on a free port; `extra` is appended to the
 * config (YAML, may be ""). */
static void start_daemon(const char *extra)
{
    D.port = free_port();
    char *yaml;
    cr_assert_geq(asprintf(&yaml, "http:\n  enabled: true\n  port: %d\n%s", D.port, extra), 0);
    du_start(&D.d, NULL, yaml);
    free(yaml);
}

/* SIGTERM; the daemon must exit cleanly (status 0: under ASan, no leaks). */
static void stop_daemon(void)
{
    if (D.d.pid > 0)
        du_stop(&D.d);
}

static void teardown(void) { stop_daemon(); }
static void setup_plain(void) { start_daemon(""); }
static void setup_token(void) { start_daemon("  token: s3cret\n"); }
static void setup_small(void) { start_daemon("limits:\n  max_message_bytes: 65536\n"); }
static void setup_cors(void) { start_daemon("  cors: true\n"); }
static void setup_busy(void) { start_daemon("parallel: 1\nlimits:\n  max_queue: 1\n"); }

/* ---- a raw HTTP/1.1 client --------------------------------------------------------- */

struct resp {
    int status;
    char *head; /* status line and headers */
    char *body; /* de-chunked */
    size_t len;
    json_t *json; /* body parsed, when it is JSON */
};

static void resp_done(struct resp *r)
{
    free(r->head);
    free(r->body);
    json_decref(r->json);
}

/* Decodes a chunked body in place; returns its length. */
static size_t dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        cr_assert_not_null(crlf, "bad chunk framing");
        in = (size_t)(crlf - b) + 2;
        if (sz == 0)
            break;
        cr_assert_leq(in + sz, n, "truncated chunk");
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = '\0';
    return out;
}

/* Sends one request (Connection: close) and reads the whole response.
 * `host` NULL: "localhost:PORT". `headers`: extra header lines ending in
 * "\r\n", or NULL. */
static struct resp request(const char *method, const char *path, const char *host,
                           const char *headers, const char *body, size_t body_len)
{
    int fd = connect_to("127.0.0.1", D.port);
    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    char hostbuf[64];
    if (!host) {
        snprintf(hostbuf, sizeof hostbuf, "localhost:%d", D.port);
        host = hostbuf;
    }
    char *req = NULL;
    size_t rlen = 0;
    FILE *f = open_memstream(&req, &rlen);
    fprintf(f, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s", method, path, host,
            headers ? headers : "");
    if (body)
        fprintf(f, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    fputs("\r\n", f);
    if (body)
        fwrite(body, 1, body_len, f);
    fclose(f);
    /* The server may answer (413) and close before taking the whole body. */
    for (size_t off = 0; off < rlen;) {
        ssize_t w = send(fd, req + off, rlen - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(req);

    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';

    struct resp r = {0};
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(sep, "no complete response head:\n%s", buf);
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &r.status), 1, "bad status line: %.80s", buf);
    r.head = strndup(buf, (size_t)(sep - buf) + 2);
    size_t blen = n - (size_t)(sep + 4 - buf);
    r.body = malloc(blen + 1);
    memcpy(r.body, sep + 4, blen);
    r.body[blen] = '\0';
    free(buf);
    r.len = strcasestr(r.head, "Transfer-Encoding: chunked") ? dechunk(r.body, blen) : blen;
    r.json = json_loadb(r.body, r.len, 0, NULL);
    return r;
}

static struct resp get(const char *path, const char *host, const char *headers)
{
    return request("GET", path, host, headers, NULL, 0);
}

static struct resp post(const char *path, const char *headers, const char *fmt, ...)
{
    char *body;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    cr_assert_geq(n, 0);
    struct resp r = request("POST", path, NULL, headers, body, (size_t)n);
    free(body);
    return r;
}

/* The response is an OpenAI error with `status`, `type` and (when not NULL) `code`. */
static void assert_error(const struct resp *r, int status, const char *type, const char *code)
{
    cr_assert_eq(r->status, status, "status %d, expected %d: %s", r->status, status, r->body);
    cr_assert_not_null(strcasestr(r->head, "Content-Type: application/json"));
    json_t *e = json_object_get(r->json, "error");
    cr_assert(json_is_object(e), "no error object: %s", r->body);
    const char *msg = json_string_value(json_object_get(e, "message"));
    cr_assert(msg && *msg, "error without a message: %s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(e, "type")), type);
    cr_assert(json_object_get(e, "param") && json_object_get(e, "code"),
              "error lacks param/code: %s", r->body);
    if (code)
        cr_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
}

/* The data: payloads of an SSE body, in order (owned array of owned strings). */
static size_t sse_events(const struct resp *r, char ***out)
{
    size_t n = 0;
    char **ev = NULL;
    const char *p = r->body;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end, "SSE event not terminated by a blank line: %s", p);
        cr_assert(strncmp(p, "data: ", 6) == 0, "SSE line is not data: %.60s", p);
        ev = realloc(ev, (n + 1) * sizeof *ev);
        ev[n++] = strndup(p + 6, (size_t)(end - p - 6));
        p = end + 2;
    }
    *out = ev;
    return n;
}

static void free_events(char **ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    free(ev);
}

/* ---- security ------------------------------------------------------------------- */

TestSuite(http, .init = setup_plain, .fini = teardown, .timeout = 240);

Test(http, host_header_must_be_loopback)
{
    static const char *const bad[] = {"evil.example", "evil.example:80", "localhost.evil.example",
                                      "127.0.0.1.nip.io", "[::1]x", "localhost:80x", "10.0.0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct resp r = get("/v1/models", bad[i], NULL);
        assert_error(&r, 403, "permission_error", NULL);
        resp_done(&r);
    }
    char good[4][64];
    snprintf(good[0], 64, "localhost:%d", D.port);
    snprintf(good[1], 64, "127.0.0.1:%d", D.port);
    snprintf(good[2], 64, "[::1]:%d", D.port);
    snprintf(good[3], 64, "LocalHost");
    for (size_t i = 0; i < 4; i++) {
        struct resp r = get("/v1/models", good[i], NULL);
        cr_assert_eq(r.status, 200, "Host %s: %d %s", good[i], r.status, r.body);
        resp_done(&r);
    }
}

Test(http, foreign_origin_refused)
{
    struct resp r = get("/v1/models", NULL, "Origin: http://evil.example\r\n");
    assert_error(&r, 403, "permission_error", NULL);
    resp_done(&r);
    char hdr[80];
    snprintf(hdr, sizeof hdr, "Origin: http://localhost:%d\r\n", D.port);
    r = get("/v1/models", NULL, hdr);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
}

Test(http, cors, .init = setup_cors)
{
    /* http.cors: pages of other origins may call the API (preflight and
     * Access-Control-Allow-Origin); the Host check still applies. */
    struct resp r = request("OPTIONS", "/v1/chat/completions", NULL,
                            "Origin: http://app.example\r\n"
                            "Access-Control-Request-Method: POST\r\n"
                            "Access-Control-Request-Headers: authorization, content-type\r\n",
                            NULL, 0);
    cr_assert_eq(r.status, 204, "%d %s", r.status, r.body);
    cr_assert_not_null(strcasestr(r.head, "Access-Control-Allow-Origin: *"), "%s", r.head);
    cr_assert_not_null(strcasestr(r.head, "Access-Control-Allow-Headers: Authorization, Content-Type"));
    resp_done(&r);
    r = get("/v1/models", NULL, "Origin: http://app.example\r\n");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_not_null(strcasestr(r.head, "Access-Control-Allow-Origin: *"), "%s", r.head);
    resp_done(&r);
    r = get("/v1/models", "evil.example", "Origin: http://app.example\r\n");
    assert_error(&r, 403, "permission_error", "bad_host");
    resp_done(&r);
}

Test(http, listens_on_loopback_only)
{
    struct ifaddrs *ifs;
    cr_assert_eq(getifaddrs(&ifs), 0);
    char ip[INET_ADDRSTRLEN] = "";
    for (struct ifaddrs *i = ifs; i && !*ip; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if ((ntohl(a.s_addr) >> 24) != 127)
            inet_ntop(AF_INET, &a, ip, sizeof ip);
    }
    freeifaddrs(ifs);
    if (!*ip)
        cr_skip_test("this machine has no non-loopback IPv4 address to try");
    int fd = connect_to(ip, D.port);
    int e = errno;
    if (fd >= 0)
        close(fd);
    cr_assert_lt(fd, 0, "the HTTP port answers on %s", ip);
    cr_assert_eq(e, ECONNREFUSED, "connect to %s: %s", ip, strerror(e));
}

Test(http, bearer_token, .init = setup_token)
{
    struct resp r = get("/v1/models", NULL, NULL);
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    cr_assert_not_null(strcasestr(r.head, "WWW-Authenticate: Bearer"));
    resp_done(&r);
    r = get("/v1/models", NULL, "Authorization: Bearer wrong\r\n");
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    resp_done(&r);
    r = get("/v1/models", NULL, "Authorization: Bearer s3cre\r\n");
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    resp_done(&r);
    r = get("/v1/models", NULL, "Authorization: Bearer s3cret\r\n");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
    r = post("/v1/completions", "Authorization: Bearer s3cret\r\n",
             "{\"prompt\": \"Once\", \"max_tokens\": 2}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
}

/* ---- protocol errors ------------------------------------------------------------------ */

Test(http, unknown_path_and_wrong_method)
{
    struct resp r = get("/v1/nothing", NULL, NULL);
    assert_error(&r, 404, "not_found_error", NULL);
    resp_done(&r);
    r = get("/", NULL, NULL);
    assert_error(&r, 404, "not_found_error", NULL);
    resp_done(&r);
    r = get("/v1/chat/completions", NULL, NULL);
    assert_error(&r, 405, "invalid_request_error", NULL);
    cr_assert_not_null(strcasestr(r.head, "Allow: POST"));
    resp_done(&r);
    r = post("/v1/models", NULL, "{}");
    assert_error(&r, 405, "invalid_request_error", NULL);
    resp_done(&r);
}

Test(http, body_limit, .init = setup_small)
{
    size_t n = 70000;
    char *big = malloc(n + 64);
    int k = sprintf(big, "{\"prompt\": \"");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "\"}");
    struct resp r = request("POST", "/v1/completions", NULL, NULL, big, strlen(big));
    assert_error(&r, 413, "invalid_request_error", NULL);
    resp_done(&r);
    free(big);
    /* The daemon still serves. */
    r = post("/v1/completions", NULL, "{\"prompt\": \"Once\", \"max_tokens\": 2}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
}

Test(http, bad_requests)
{
    struct resp r = post("/v1/chat/completions", NULL, "{\"messages\": [");
    assert_error(&r, 400, "invalid_request_error", NULL);
    resp_done(&r);
    r = post("/v1/chat/completions", NULL, "[1, 2]");
    assert_error(&r, 400, "invalid_request_error", NULL);
    resp_done(&r);
    r = post("/v1/chat/completions", NULL, "{\"model\": \"x\"}");
    assert_error(&r, 400, "invalid_request_error", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")),
                     "messages");
    resp_done(&r);
    r = post("/v1/chat/completions", NULL,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": 3}");
    assert_error(&r, 400, "invalid_request_error", NULL);
    resp_done(&r);
    r = post("/v1/chat/completions", NULL,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_k\": -2}");
    assert_error(&r, 400, "invalid_request_error", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")),
                     "top_k");
    resp_done(&r);
    r = post("/v1/completions", NULL, "{\"prompt\": 5}");
    assert_error(&r, 400, "invalid_request_error", NULL);
    resp_done(&r);
}

Test(http, context_overflow)
{
    /* A prompt far longer than the model's context (stories260K: 512). */
    size_t words = 3000;
    char *p = malloc(words * 5 + 64);
    size_t k = (size_t)sprintf(p, "{\"prompt\": \"");
    for (size_t i = 0; i < words; i++)
        k += (size_t)sprintf(p + k, "cat ");
    strcpy(p + k, "\"}");
    struct resp r = request("POST", "/v1/completions", NULL, NULL, p, strlen(p));
    assert_error(&r, 400, "invalid_request_error", "context_length_exceeded");
    resp_done(&r);
    free(p);
}

Test(http, busy, .init = setup_busy)
{
    /* parallel 1, queue 1: of several requests sent at once, one runs, one
     * waits, and the rest are refused with 429. */
    enum { N = 6 };
    int fds[N];
    char body[] = "{\"prompt\": \"Once\", \"max_tokens\": 150, \"ignore_eos\": true}";
    for (int i = 0; i < N; i++) {
        fds[i] = connect_to("127.0.0.1", D.port);
        cr_assert_geq(fds[i], 0);
    }
    for (int i = 0; i < N; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
        cr_assert_eq(send(fds[i], req, (size_t)n, MSG_NOSIGNAL), n);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        char buf[8192];
        size_t n = 0;
        ssize_t k;
        while (n < sizeof buf - 1 && (k = recv(fds[i], buf + n, sizeof buf - 1 - n, 0)) > 0)
            n += (size_t)k;
        buf[n] = '\0';
        close(fds[i]);
        int st = 0;
        sscanf(buf, "HTTP/1.1 %d", &st);
        if (st == 200) {
            ok++;
        } else if (st == 429) {
            busy++;
            cr_assert_not_null(strstr(buf, "rate_limit_exceeded"), "%s", buf);
        } else {
            cr_assert_fail("unexpected status %d: %s", st, buf);
        }
    }
    cr_assert_geq(ok, 1);
    cr_assert_geq(busy, 1, "no request was refused (ok %d)", ok);
}

/* ---- models ---------------------------------------------------------------------- */

Test(http, models)
{
    struct resp r = get("/v1/models", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "object")), "list");
    json_t *data = json_object_get(r.json, "data");
    cr_assert_eq(json_array_size(data), 1, "%s", r.body);
    json_t *m = json_array_get(data, 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "id")), "stories260K.gguf");
    cr_assert_str_eq(json_string_value(json_object_get(m, "object")), "model");
    cr_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "hearth");
    cr_assert(json_integer_value(json_object_get(m, "created")) > 0);
    resp_done(&r);

    r = get("/v1/models/stories260K.gguf", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "id")), "stories260K.gguf");
    resp_done(&r);
    r = get("/v1/models/other.gguf", NULL, NULL);
    assert_error(&r, 404, "invalid_request_error", "model_not_found");
    resp_done(&r);
}

/* ---- chat and completions ------------------------------------------------------------- */

#define MESSAGES "[{\"role\": \"system\", \"content\": \"You tell stories.\"}, " \
                 "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"A cat\"}]}]"

static void check_usage(json_t *u)
{
    cr_assert(json_is_object(u));
    json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t c = json_integer_value(json_object_get(u, "completion_tokens"));
    cr_assert_gt(p, 0);
    cr_assert_gt(c, 0);
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), p + c);
    json_t *cached = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
    cr_assert(json_is_integer(cached));
}

/* Non-stream chat content; checks the reply's shape. */
static char *chat_once(const char *extra, const char **finish)
{
    struct resp r = post("/v1/chat/completions", NULL,
                         "{\"model\": \"m\", \"messages\": " MESSAGES ", \"temperature\": 0, "
                         "\"max_tokens\": 20%s}", extra);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *o = r.json;
    cr_assert(strncmp(json_string_value(json_object_get(o, "id")), "chatcmpl-", 9) == 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "object")), "chat.completion");
    cr_assert_str_eq(json_string_value(json_object_get(o, "model")), "stories260K.gguf");
    cr_assert(json_integer_value(json_object_get(o, "created")) > 0);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    cr_assert_str_eq(json_string_value(json_object_get(msg, "role")), "assistant");
    const char *content = json_string_value(json_object_get(msg, "content"));
    cr_assert_not_null(content, "%s", r.body);
    cr_assert_null(json_object_get(msg, "tool_calls"));
    static char fr[32];
    snprintf(fr, sizeof fr, "%s", json_string_value(json_object_get(ch, "finish_reason")));
    cr_assert(!strcmp(fr, "stop") || !strcmp(fr, "length"), "finish_reason %s", fr);
    *finish = fr;
    check_usage(json_object_get(o, "usage"));
    char *s = strdup(content);
    resp_done(&r);
    return s;
}

/* Streamed chat: the concatenated content deltas; checks the SSE framing. */
static char *chat_stream(const char *extra, const char **finish, bool usage)
{
    struct resp r = post("/v1/chat/completions", NULL,
                         "{\"messages\": " MESSAGES ", \"temperature\": 0, \"max_tokens\": 20, "
                         "\"stream\": true%s%s}", usage ? ", \"stream_options\": "
                                                          "{\"include_usage\": true}" : "", extra);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_not_null(strcasestr(r.head, "Content-Type: text/event-stream"), "%s", r.head);
    char **ev;
    size_t n = sse_events(&r, &ev);
    cr_assert_geq(n, 3, "%s", r.body);
    cr_assert_str_eq(ev[n - 1], "[DONE]");
    char *content = calloc(1, 1);
    static char fr[32];
    fr[0] = '\0';
    bool saw_role = false, saw_usage = false;
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = json_loads(ev[i], 0, NULL);
        cr_assert_not_null(c, "chunk is not JSON: %s", ev[i]);
        cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "chat.completion.chunk");
        cr_assert(strncmp(json_string_value(json_object_get(c, "id")), "chatcmpl-", 9) == 0);
        json_t *choices = json_object_get(c, "choices");
        if (usage)
            cr_assert(json_object_get(c, "usage") != NULL, "include_usage: every chunk has usage");
        if (json_array_size(choices) == 0) {
            cr_assert(usage && i == n - 2, "a chunk without choices: %s", ev[i]);
            check_usage(json_object_get(c, "usage"));
            saw_usage = true;
        } else {
            cr_assert(!*fr, "a chunk after the one with finish_reason");
            json_t *ch = json_array_get(choices, 0);
            json_t *d = json_object_get(ch, "delta");
            cr_assert(json_is_object(d));
            if (json_object_get(d, "role"))
                saw_role = i == 0;
            const char *piece = json_string_value(json_object_get(d, "content"));
            if (piece) {
                content = realloc(content, strlen(content) + strlen(piece) + 1);
                strcat(content, piece);
            }
            const char *f = json_string_value(json_object_get(ch, "finish_reason"));
            if (f)
                snprintf(fr, sizeof fr, "%s", f);
        }
        json_decref(c);
    }
    cr_assert(saw_role, "the first chunk names the role");
    cr_assert(*fr, "no chunk with a finish_reason");
    cr_assert_eq(saw_usage, usage);
    *finish = fr;
    free_events(ev, n);
    resp_done(&r);
    return content;
}

Test(http, chat_stream_equals_non_stream)
{
    const char *f1, *f2;
    char *a = chat_once("", &f1);
    char *fr1 = strdup(f1);
    char *b = chat_stream("", &f2, false);
    cr_assert_str_eq(b, a, "greedy stream and non-stream differ");
    cr_assert_str_eq(f2, fr1);
    cr_assert_gt(strlen(a), 0);
    free(b);
    b = chat_stream("", &f2, true);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    free(fr1);
}

Test(http, chat_with_tools)
{
    /* The tiny model does not call tools, but the tools path (prompt with
     * tools, hold-back while streaming, parsing at the end) must give the
     * same content both ways. */
    const char *tools = ", \"tool_choice\": \"auto\", \"tools\": [{\"type\": \"function\", "
                        "\"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
                        "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
                        "{\"type\": \"string\"}}}}}]";
    const char *f1, *f2;
    char *a = chat_once(tools, &f1);
    char *fr1 = strdup(f1);
    char *b = chat_stream(tools, &f2, false);
    cr_assert_str_eq(b, a);
    cr_assert_str_eq(f2, fr1);
    free(a);
    free(b);
    free(fr1);
}

Test(http, completions)
{
    const char *body = "{\"prompt\": \"Once upon a time\", \"temperature\": 0, \"max_tokens\": 20%s}";
    struct resp r = post("/v1/completions", NULL, body, "");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *o = r.json;
    cr_assert(strncmp(json_string_value(json_object_get(o, "id")), "cmpl-", 5) == 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "object")), "text_completion");
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    const char *text = json_string_value(json_object_get(ch, "text"));
    cr_assert(text && *text, "%s", r.body);
    check_usage(json_object_get(o, "usage"));
    char *want = strdup(text);
    resp_done(&r);

    r = post("/v1/completions", NULL, body, ", \"stream\": true");
    cr_assert_eq(r.status, 200, "%s", r.body);
    char **ev;
    size_t n = sse_events(&r, &ev);
    cr_assert_str_eq(ev[n - 1], "[DONE]");
    char got[4096] = "";
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = json_loads(ev[i], 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "text_completion");
        const char *t = json_string_value(json_object_get(json_array_get(json_object_get(c, "choices"), 0), "text"));
        cr_assert_not_null(t, "%s", ev[i]);
        strncat(got, t, sizeof got - strlen(got) - 1);
        json_decref(c);
    }
    cr_assert_str_eq(got, want);
    free_events(ev, n);
    resp_done(&r);
    free(want);
}

Test(http, session_reuses_cache)
{
    struct resp r = post("/v1/completions", NULL,
                         "{\"prompt\": \"Once upon a time there was a dog\", \"max_tokens\": 2, "
                         "\"session\": \"s1\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
    r = post("/v1/completions", NULL,
             "{\"prompt\": \"Once upon a time there was a dog and a cat\", \"max_tokens\": 2, "
             "\"session\": \"s1\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *d = json_object_get(json_object_get(r.json, "usage"), "prompt_tokens_details");
    cr_assert_gt(json_integer_value(json_object_get(d, "cached_tokens")), 0, "%s", r.body);
    resp_done(&r);
}

Test(http, client_gone_mid_stream)
{
    /* A client that leaves during a stream cancels its request; the daemon
     * goes on serving. */
    int fd = connect_to("127.0.0.1", D.port);
    const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 400, \"ignore_eos\": true, "
                       "\"stream\": true}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n"
                     "\r\n%s", strlen(body), body);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char buf[256];
    cr_assert_gt(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
    struct resp r = post("/v1/completions", NULL, "{\"prompt\": \"Once\", \"max_tokens\": 3}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_done(&r);
}

Test(http, sigterm_finishes_streams)
{
    /* SIGTERM stops new connections but a stream already running is served
     * to its end; then the daemon exits cleanly (teardown checks). */
    int fd = connect_to("127.0.0.1", D.port);
    cr_assert_geq(fd, 0);
    /* Short enough to end within the daemon's grace period even under ASan. */
    const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 60, \"ignore_eos\": true, "
                       "\"stream\": true}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    static char buf[1 << 20];
    size_t cap = sizeof buf, len = 0;
    ssize_t k = recv(fd, buf, cap - 1, 0); /* the stream has started */
    cr_assert_gt(k, 0);
    len = (size_t)k;
    cr_assert_eq(kill(D.d.pid, SIGTERM), 0);
    while (len < cap - 1 && (k = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fd);
    cr_assert_not_null(strstr(buf, "data: [DONE]"), "the stream was cut by SIGTERM:\n%s", buf);
    cr_assert_not_null(strstr(buf, "\"finish_reason\":\"length\""), "%s", buf);
    /* Not accepting any more (the daemon may also be gone already). */
    int fd2 = connect_to("127.0.0.1", D.port);
    cr_assert_lt(fd2, 0, "a new connection was accepted after SIGTERM");
}

/* ---- the official openai client ------------------------------------------------------------ */

Test(http, openai_npm_client)
{
    char dir[1024], script[1100], mods[1100];
    const char *data = getenv("HEARTH_TEST_DATA"); /* tests/data: tests/openai is next to it */
    cr_assert_not_null(data);
    snprintf(dir, sizeof dir, "%s/../openai", data);
    snprintf(script, sizeof script, "%s/check.mjs", dir);
    snprintf(mods, sizeof mods, "%s/node_modules/openai/package.json", dir);
    if (system("node --version >/dev/null 2>&1") != 0)
        cr_skip_test("node is not installed (scripts/install-deps.sh installs nodejs and npm)");
    if (!tu_exists(mods))
        cr_skip_test("tests/openai/node_modules is missing: run npm ci --prefix tests/openai "
                     "(scripts/install-deps.sh does)");

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", D.port);
    setenv("HEARTH_BASE_URL", url, 1);
    setenv("HEARTH_API_KEY", "none", 1);
    char *out = NULL, *err = NULL;
    char env[] = "/usr/bin/env", node[] = "node";
    char *argv[] = {env, node, script, NULL};
    int st = tu_run(argv, &out, &err);
    cr_assert_eq(st, 0, "node check.mjs failed (%d):\n%s\n%s", st, out, err);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    cr_assert_not_null(o, "check.mjs printed no JSON: %s", out);

    json_t *m = json_array_get(json_object_get(o, "models"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "id")), "stories260K.gguf");
    json_t *chat = json_object_get(o, "chat"), *cs = json_object_get(o, "chat_stream");
    cr_assert_str_eq(json_string_value(json_object_get(chat, "object")), "chat.completion");
    cr_assert_str_eq(json_string_value(json_object_get(chat, "role")), "assistant");
    const char *content = json_string_value(json_object_get(chat, "content"));
    cr_assert(content && *content, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(cs, "content")), content,
                     "the client's streamed chat differs from the non-streamed one");
    cr_assert_str_eq(json_string_value(json_object_get(cs, "finish_reason")),
                     json_string_value(json_object_get(chat, "finish_reason")));
    check_usage(json_object_get(chat, "usage"));
    check_usage(json_object_get(cs, "usage"));

    json_t *c = json_object_get(o, "completion"), *cst = json_object_get(o, "completion_stream");
    cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "text_completion");
    const char *text = json_string_value(json_object_get(c, "text"));
    cr_assert(text && *text, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(cst, "text")), text);

    json_t *bad = json_object_get(o, "bad_request");
    cr_assert_eq(json_integer_value(json_object_get(bad, "status")), 400, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(bad, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(bad, "param")), "n");
    json_decref(o);
    free(out);
    free(err);
}
