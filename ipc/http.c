/*
 * http.c — the HTTP server of hearthd's OpenAI-compatible API: libmicrohttpd
 * on the hearthd loop, connection lifecycle, the security checks (Host,
 * Origin, bearer token, body size) and routing. What the requests and
 * replies mean lives in http_openai.c.
 *
 * libmicrohttpd runs without threads of its own ("external" polling with
 * epoll): its epoll descriptor is registered with the loop, and MHD_run is
 * called when that descriptor is readable and when MHD_get_timeout's timer
 * fires (connection timeouts, and connections MHD still has work for —
 * then the timeout is 0).
 *
 * A request moves through the phases of struct http_req. Once submitted, a
 * non-stream request suspends its connection; the scheduler's DONE resumes
 * it, MHD calls the access handler again and the reply is queued there (the
 * only place MHD allows it). A stream queues a callback response at once;
 * its content reader hands out the SSE bytes collected from the events and
 * suspends the connection when there are none yet; the next event resumes
 * it. MHD without threads of its own has no inter-thread channel, so a
 * resume does not wake its epoll descriptor: a resume also arms a 0 ms
 * "kick" timer that runs MHD (once per loop iteration however many
 * connections were resumed).
 *
 * Lifetimes: the scheduler may call back only while the request's client is
 * registered; MHD's completed notification (the connection ended, for any
 * reason) drops the client, so no event reaches a freed request.
 */
#include "http.h"

#include "http_req.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Seconds a connection may stay idle (not counting suspended time). */
#define IDLE_TIMEOUT_S 120u
/* Milliseconds ipc_http_free waits for complete replies to be sent. */
#define FLUSH_MS 2000

struct ipc_http {
    struct hd_loop *loop;
    struct hd_sched *sched;
    struct MHD_Daemon *mhd;
    int epfd;          /* MHD's epoll descriptor (MHD owns it) */
    int64_t timer;     /* MHD_get_timeout's timer; 0: none */
    int64_t kick;      /* the run after resumes; 0: none */
    int port;
    char *token;       /* NULL: no token required */
    size_t max_body;
    bool cors;
    bool stopped;      /* not accepting connections any more */
    bool stopping;     /* being freed: MHD must not run */
    char *model_id;    /* the model file's name */
    int64_t model_created;
    struct http_req *reqs; /* live requests */
};

struct hd_sched *http_sched(const struct ipc_http *h) { return h->sched; }
const char *http_model_id(const struct ipc_http *h) { return h->model_id; }
int64_t http_model_created(const struct ipc_http *h) { return h->model_created; }

/* ---- running MHD on the loop ------------------------------------------------- */

static void on_timer(void *user);

/* Runs MHD and re-arms the timer from MHD's timeout. */
static void run_mhd(struct ipc_http *h)
{
    MHD_run(h->mhd);
    if (h->timer)
        hd_loop_del_timer(h->loop, h->timer);
    h->timer = 0;
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
        int64_t t = hd_loop_add_timer(h->loop, ms > 3600000 ? 3600000 : (int64_t)ms, false,
                                      on_timer, h);
        h->timer = t > 0 ? t : 0; /* no memory: the next event runs MHD anyway */
    }
}

static void on_timer(void *user)
{
    struct ipc_http *h = user;
    h->timer = 0;
    run_mhd(h);
}

static void on_epoll(void *user, int fd, uint32_t events)
{
    run_mhd(user);
}

static void on_kick(void *user)
{
    struct ipc_http *h = user;
    h->kick = 0;
    run_mhd(h);
}

/* ---- requests ------------------------------------------------------------------ */

static struct http_req *req_new(struct ipc_http *h, struct MHD_Connection *conn)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->conn = conn;
    r->refs = 1;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    return r;
}

static void req_unref(struct http_req *r)
{
    if (--r->refs > 0)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        r->h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    http_buf_done(&r->body);
    http_buf_done(&r->text);
    http_buf_done(&r->out);
    free(r->reply);
    free(r);
}

static void resume(struct http_req *r)
{
    struct ipc_http *h = r->h;
    if (!r->suspended || !r->conn)
        return;
    r->suspended = false;
    MHD_resume_connection(r->conn);
    if (!h->kick && !h->stopping) {
        int64_t t = hd_loop_add_timer(h->loop, 0, false, on_kick, h);
        /* No memory for a timer: run now (we are not inside MHD here). */
        if (t > 0)
            h->kick = t;
        else
            run_mhd(h);
    }
}

static void cors_headers(struct ipc_http *h, struct MHD_Response *resp)
{
    if (!h->cors)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
}

/* Queues a JSON (or empty, when json is NULL) response. */
static enum MHD_Result queue_json(struct http_req *r, unsigned status, const char *json,
                                  const char *hdr, const char *hdr_value)
{
    size_t len = json ? strlen(json) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(json ? json : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (json)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hdr)
        MHD_add_response_header(resp, hdr, hdr_value);
    cors_headers(r->h, resp);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->phase = PHASE_ANSWERED;
    return ret;
}

static enum MHD_Result queue_error(struct http_req *r, unsigned status, const char *message,
                                   const char *type, const char *code, const char *hdr,
                                   const char *hdr_value)
{
    char *json = http_error_json(message, type, NULL, code);
    if (!json)
        return MHD_NO;
    enum MHD_Result ret = queue_json(r, status, json, hdr, hdr_value);
    free(json);
    return ret;
}

/* ---- streams ------------------------------------------------------------------ */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_req *r = cls;
    size_t avail = r->out.len - r->out_off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, r->out.p + r->out_off, n);
        r->out_off += n;
        if (r->out_off == r->out.len)
            r->out.len = r->out_off = 0;
        return (ssize_t)n;
    }
    if (r->eos)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (!r->conn || !r->id) /* no more events will come */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    /* Nothing yet: wait for the scheduler's next event (MHD's documented
     * pattern for returning 0 from a content reader). */
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    return 0;
}

static void stream_free(void *cls) { req_unref(cls); }

/* ---- scheduler events ------------------------------------------------------------ */

static void on_event(void *user, const struct hd_event *ev)
{
    struct http_req *r = user;
    if (ev->type != HD_EV_TEXT)
        r->id = 0;
    if (!oai_event(r, ev)) {
        /* Out of memory: give up on this request. */
        if (r->id)
            hd_sched_cancel(r->h->sched, r->client, r->id);
        if (r->stream) {
            r->eos = true;
        } else if (r->phase == PHASE_RUNNING) {
            free(r->reply);
            r->reply = NULL;
            r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            r->phase = PHASE_READY;
        }
    }
    if (!r->stream && r->phase == PHASE_RUNNING && r->reply)
        r->phase = PHASE_READY;
    resume(r);
}

/* ---- the access handler -------------------------------------------------------- */

/* "localhost", "127.0.0.1" or "[::1]", optionally with ":port", given as
 * host[0..len). */
static bool loopback_host(const char *host, size_t len)
{
    size_t name = len;
    if (len > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', len);
        if (!close)
            return false;
        name = (size_t)(close - host) + 1;
    } else {
        const char *colon = memchr(host, ':', len);
        if (colon)
            name = (size_t)(colon - host);
    }
    if (name < len) {
        if (host[name] != ':' || name + 1 == len || len - name > 6)
            return false;
        for (size_t i = name + 1; i < len; i++)
            if (host[i] < '0' || host[i] > '9')
                return false;
    }
    return (name == 9 && strncasecmp(host, "localhost", 9) == 0) ||
           (name == 9 && memcmp(host, "127.0.0.1", 9) == 0) ||
           (name == 5 && memcmp(host, "[::1]", 5) == 0);
}

/* An Origin header ("http://localhost:8080") naming this machine. */
static bool loopback_origin(const char *origin)
{
    const char *p = NULL;
    if (strncmp(origin, "http://", 7) == 0)
        p = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        p = origin + 8;
    if (!p)
        return false; /* "null" (file:// pages, sandboxes) and anything else */
    size_t n = strcspn(p, "/");
    return p[n] == '\0' && loopback_host(p, n);
}

/* Compares without an early exit, so the time taken does not reveal how
 * much of a guessed token was right. */
static bool token_ok(const char *want, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *got = auth + 7;
    while (*got == ' ')
        got++;
    size_t wl = strlen(want), gl = strlen(got);
    unsigned char diff = wl != gl;
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0);
    return diff == 0;
}

/* Routes a request; returns 0 or an HTTP status (404, 405) with *allow set
 * for 405. */
static unsigned route(const char *url, const char *method, struct http_req *r, const char **allow)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
               strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (strcmp(url, "/v1/models") == 0) {
        r->route = ROUTE_MODELS;
        *allow = "GET";
        return get ? 0 : MHD_HTTP_METHOD_NOT_ALLOWED;
    }
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11] && strlen(url + 11) < sizeof r->model_arg) {
        r->route = ROUTE_MODEL;
        strcpy(r->model_arg, url + 11);
        *allow = "GET";
        return get ? 0 : MHD_HTTP_METHOD_NOT_ALLOWED;
    }
    if (strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/v1/completions") == 0) {
        r->route = url[4] == 'c' && url[5] == 'h' ? ROUTE_CHAT : ROUTE_COMPLETIONS;
        *allow = "POST";
        return post ? 0 : MHD_HTTP_METHOD_NOT_ALLOWED;
    }
    return MHD_HTTP_NOT_FOUND;
}

/* The first call for a request (headers complete): every check that needs
 * no body. Returns MHD_YES to go on reading, or the result of queueing the
 * refusal. */
static enum MHD_Result check_headers(struct http_req *r, const char *url, const char *method)
{
    struct ipc_http *h = r->h;
    struct MHD_Connection *c = r->conn;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!host || !loopback_host(host, strlen(host)))
        return queue_error(r, MHD_HTTP_FORBIDDEN,
                           "the Host header must name this machine (localhost, 127.0.0.1 or [::1])",
                           "permission_error", "bad_host", NULL, NULL);
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && !h->cors && !loopback_origin(origin))
        return queue_error(r, MHD_HTTP_FORBIDDEN,
                           "requests from web pages of other origins are refused (see http.cors)",
                           "permission_error", "bad_origin", NULL, NULL);
    if (h->cors && strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return queue_json(r, MHD_HTTP_NO_CONTENT, NULL, NULL, NULL); /* preflight */
    if (h->token) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (!token_ok(h->token, auth))
            return queue_error(r, MHD_HTTP_UNAUTHORIZED,
                               "a valid API key is required (Authorization: Bearer TOKEN)",
                               "authentication_error", "invalid_api_key",
                               MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    const char *allow = NULL;
    unsigned st = route(url, method, r, &allow);
    if (st == MHD_HTTP_NOT_FOUND) {
        char msg[256];
        snprintf(msg, sizeof msg, "no such endpoint: %s %.160s", method, url);
        return queue_error(r, st, msg, "not_found_error", "not_found", NULL, NULL);
    }
    if (st == MHD_HTTP_METHOD_NOT_ALLOWED) {
        char msg[256];
        snprintf(msg, sizeof msg, "%.160s accepts only %s", url, allow);
        return queue_error(r, st, msg, "invalid_request_error", "method_not_allowed",
                           MHD_HTTP_HEADER_ALLOW, allow);
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > h->max_body)
        r->too_big = true;
    if (r->too_big)
        return queue_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is too large",
                           "invalid_request_error", "request_too_large", NULL, NULL);
    return MHD_YES;
}

/* The request is complete: answer it, submit it, or queue its ready reply. */
static enum MHD_Result handle(struct http_req *r)
{
    struct ipc_http *h = r->h;
    if (r->phase == PHASE_READY) {
        if (!r->reply)
            return queue_error(r, r->status, "out of memory", "server_error", NULL, NULL, NULL);
        return queue_json(r, r->status, r->reply, NULL, NULL);
    }
    if (r->phase != PHASE_READING) {
        /* Resumed with nothing to send yet (should not happen): wait again. */
        if (r->phase == PHASE_RUNNING && !r->suspended) {
            MHD_suspend_connection(r->conn);
            r->suspended = true;
        }
        return MHD_YES;
    }
    if (r->too_big)
        return queue_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is too large",
                           "invalid_request_error", "request_too_large", NULL, NULL);

    char *json = NULL;
    enum MHD_Result ret;
    if (r->route == ROUTE_MODELS || r->route == ROUTE_MODEL) {
        json = r->route == ROUTE_MODELS ? oai_models_json(h) : oai_model_json(h, r->model_arg);
        if (!json && r->route == ROUTE_MODEL)
            return queue_error(r, MHD_HTTP_NOT_FOUND, "no such model", "invalid_request_error",
                               "model_not_found", NULL, NULL);
        ret = json ? queue_json(r, MHD_HTTP_OK, json, NULL, NULL) : MHD_NO;
        free(json);
        return ret;
    }

    unsigned st = oai_submit(r, on_event, &json);
    if (st) {
        ret = json ? queue_json(r, st, json, NULL, NULL) : MHD_NO;
        free(json);
        return ret;
    }
    if (!r->stream) {
        r->phase = PHASE_RUNNING;
        MHD_suspend_connection(r->conn);
        r->suspended = true;
        return MHD_YES;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, r, stream_free);
    if (!resp)
        return MHD_NO; /* the completed notification drops the client */
    r->refs++; /* the response's; released by stream_free */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    cors_headers(h, resp);
    ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->phase = PHASE_ANSWERED;
    return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **req_cls)
{
    struct ipc_http *h = cls;
    struct http_req *r = *req_cls;
    if (!r) {
        r = req_new(h, conn);
        if (!r)
            return MHD_NO;
        *req_cls = r;
        return check_headers(r, url, method);
    }
    if (*upload_size > 0) {
        /* Past the limit the rest is read and dropped, then 413 (MHD takes
         * no reply while a body is arriving). */
        if (!r->too_big && r->body.len + *upload_size > h->max_body)
            r->too_big = true;
        if (!r->too_big && http_buf_add(&r->body, upload, *upload_size) < 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->phase == PHASE_ANSWERED)
        return MHD_YES;
    return handle(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ipc_http *h = cls;
    struct http_req *r = *req_cls;
    if (!r)
        return;
    *req_cls = NULL;
    if (r->client)
        hd_sched_drop_client(h->sched, r->client); /* cancels; no more events */
    r->client = r->id = 0;
    r->conn = NULL;
    r->suspended = false;
    req_unref(r);
}

/* ---- the server ------------------------------------------------------------------ */

/* The model's id (its file name) and "created" (the file's time). */
static int model_info(struct ipc_http *h)
{
    const char *path = hd_sched_model_path(h->sched);
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    h->model_id = strdup(base && *base ? base : "hearth");
    if (!h->model_id)
        return -ENOMEM;
    struct stat st;
    h->model_created = path && stat(path, &st) == 0 ? (int64_t)st.st_mtime : (int64_t)time(NULL);
    return 0;
}

int ipc_http_new(struct hd_loop *loop, struct hd_sched *s, int port, const char *token,
                 const struct ipc_limits *lim, struct ipc_http **out, struct hr_err *err)
{
    hr_err_clear(err);
    int rc = -EINVAL;
    struct ipc_http *h = NULL;
    if (port < 1 || port > 65535) {
        if (err)
            snprintf(err->msg, sizeof err->msg, "http: port %d is not in 1..65535", port);
        goto fail;
    }
    rc = -ENOMEM;
    h = calloc(1, sizeof *h);
    if (!h)
        goto fail;
    h->loop = loop;
    h->sched = s;
    h->epfd = -1;
    h->port = port;
    h->max_body = lim && lim->max_message_bytes ? lim->max_message_bytes : 1u << 20;
    if (token && *token && !(h->token = strdup(token)))
        goto fail;
    if (model_info(h) < 0)
        goto fail;

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned max_conn = lim && lim->max_clients > 0 ? (unsigned)lim->max_clients : 64u;
    errno = 0;
    h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port, NULL,
                              NULL, on_access, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                              MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                              MHD_OPTION_CONNECTION_LIMIT, max_conn,
                              MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->mhd) {
        rc = errno == EADDRINUSE || errno == EACCES ? -errno : -EIO;
        if (err)
            snprintf(err->msg, sizeof err->msg, "http: cannot serve on 127.0.0.1:%d%s%s", port,
                     errno ? ": " : "", errno ? strerror(errno) : "");
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    h->epfd = info ? info->epoll_fd : -1;
    rc = h->epfd >= 0 ? hd_loop_add_fd(loop, h->epfd, EPOLLIN, on_epoll, h) : -EIO;
    if (rc < 0) {
        h->epfd = -1;
        if (err)
            snprintf(err->msg, sizeof err->msg, "http: cannot watch the server: %s",
                     strerror(-rc));
        goto fail;
    }
    run_mhd(h); /* arms the timer */
    *out = h;
    return 0;

fail:
    ipc_http_free(h);
    return rc;
}

void ipc_http_set_cors(struct ipc_http *h, bool on) { h->cors = on; }

int ipc_http_port(const struct ipc_http *h) { return h->port; }

void ipc_http_stop(struct ipc_http *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = true;
    MHD_socket fd = MHD_quiesce_daemon(h->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

/* A reply complete on our side that the client has not got yet. */
static bool unsent(const struct ipc_http *h)
{
    for (const struct http_req *r = h->reqs; r; r = r->next)
        if (r->conn && (r->phase == PHASE_READY || r->phase == PHASE_ANSWERED))
            return true;
    return false;
}

void ipc_http_free(struct ipc_http *h)
{
    if (!h)
        return;
    if (h->mhd) {
        h->stopped = h->stopping = true;
        if (h->epfd >= 0)
            hd_loop_del_fd(h->loop, h->epfd);
        /* No more events (the scheduler may outlive us). Requests still
         * running end now: a stream ends where it is, a waiting reply
         * becomes a 503. MHD must not be stopped with suspended
         * connections, so every one is resumed. */
        for (struct http_req *r = h->reqs; r; r = r->next) {
            if (r->client)
                hd_sched_drop_client(h->sched, r->client);
            if (r->id && r->stream) {
                oai_stream_abort(r, "hearthd is stopping");
            } else if (r->id) {
                free(r->reply);
                r->reply = http_error_json("hearthd is stopping", "unavailable_error", NULL, NULL);
                r->status = MHD_HTTP_SERVICE_UNAVAILABLE;
                r->phase = PHASE_READY;
            }
            r->client = r->id = 0;
            r->eos = true;
            resume(r);
        }
        /* Replies already complete (the loop may have been left right after
         * the last DONE) still reach their clients, for a bounded time. */
        int64_t end = hd_now_ms() + FLUSH_MS;
        MHD_run(h->mhd);
        while (unsent(h) && hd_now_ms() < end) {
            struct pollfd p = {.fd = h->epfd, .events = POLLIN};
            MHD_UNSIGNED_LONG_LONG ms;
            int wait = MHD_get_timeout(h->mhd, &ms) == MHD_YES && ms < 50 ? (int)ms : 50;
            poll(&p, 1, wait);
            MHD_run(h->mhd);
        }
        for (struct http_req *r = h->reqs; r; r = r->next)
            resume(r);
        MHD_stop_daemon(h->mhd); /* completed notifications free the requests */
    }
    if (h->timer)
        hd_loop_del_timer(h->loop, h->timer);
    if (h->kick)
        hd_loop_del_timer(h->loop, h->kick);
    while (h->reqs) { /* none left normally; never leak */
        h->reqs->refs = 1;
        req_unref(h->reqs);
    }
    free(h->token);
    free(h->model_id);
    free(h);
}
