/*
 * dbus.c — hearthd's D-Bus service: org.hearth.Hearth1 on the session bus,
 * a thin adapter over the scheduler's request API (daemon/scheduler.h).
 *
 * The libdbus main-loop glue is in dbus_loop.c, argument conversions (the
 * options dict, UTF-8 text) in dbus_args.c. This file has four parts:
 *  1. Peers: one scheduler client per unique bus name (":1.42"), created at
 *     its first request and dropped (hd_sched_drop_client) when the bus
 *     driver says the name is gone: NameOwnerChanged with an empty new owner,
 *     received through a match rule installed before the name is claimed.
 *     The bus delivers a peer's calls before its NameOwnerChanged, so no peer
 *     can vanish unseen.
 *  2. The declarative tables of interfaces, methods, signals and properties,
 *     from which dispatch, signature checks and the introspection XML
 *     (docs/org.hearth.Hearth1.xml) all come.
 *  3. The method handlers.
 *  4. Request events: Ask's deferred reply, the Token/Done/Error signals.
 *  5. Tools and approvals, the LoRA registry, 6. training jobs: the handlers
 *     and signals of the later interface versions.
 *
 * Size: past 1,500 lines because every part reads the same private state
 * (struct ipc_dbus, its peers and pending calls) and the tables of part 2
 * name the handlers of parts 3-6. The next split is parts 5-6 into their own
 * file behind an internal header for that state, as scheduler_impl.h does
 * for the scheduler.
 *
 * Signals are unicast: Token, Done and Error are addressed to the caller's
 * unique name (destination set) and carry the request id first, so a client
 * sees only its own streams and needs no match rule; one client may run
 * several streams at once and tells them apart by the id.
 */
#include "dbus.h"

#include "dbus_args.h"
#include "dbus_loop.h"
#include "params.h"

#include "../daemon/agent.h"
#include "../daemon/log.h"
#include "../daemon/scheduler.h"
#include "../daemon/trainjob.h"
#include "err.h"

#include <hearth/hearth.h>

#include <dbus/dbus.h>
#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "unknown"
#endif

#define ERR_BUSY IPC_DBUS_IFACE ".Error.Busy"
#define ERR_CONTEXT IPC_DBUS_IFACE ".Error.ContextOverflow"
#define ERR_CANCELLED IPC_DBUS_IFACE ".Error.Cancelled"
#define ERR_FAILED IPC_DBUS_IFACE ".Error.Failed"

/* Only disappearances (new owner "") of names, sent by the bus driver. */
#define MATCH_GONE                                                                                 \
    "type='signal',sender='" DBUS_SERVICE_DBUS "',path='" DBUS_PATH_DBUS "',interface='"           \
    DBUS_INTERFACE_DBUS "',member='NameOwnerChanged',arg2=''"

struct peer {
    struct peer *next;
    uint64_t client; /* hd_sched client id */
    char name[];     /* unique bus name */
};

/* One accepted request, from submit until its DONE/ERROR event. */
struct call {
    struct call *next, *prev;
    struct ipc_dbus *d;
    struct peer *peer;
    uint64_t id;
    DBusMessage *ask; /* Ask: the method call answered at DONE (a reference); else NULL */
};

struct tcall;
struct tjob;

struct ipc_dbus {
    struct hd_loop *loop;
    struct tjob *tjobs; /* Train jobs (section 6) */
    uint64_t next_tjob; /* their ids */
    struct hd_sched *sched;
    const struct hd_services *svc; /* tools and the policy gate (ipc_dbus_set_services) */
    struct tcall *tcalls;          /* CallTool calls waiting for their result */
    DBusConnection *conn;
    struct ipc_dbus_loop *attached; /* the loop drives conn */
    bool lost;                      /* the bus connection is gone */
    struct peer *peers;
    struct call *calls;
};

/* ---- 1. peers and calls ------------------------------------------------------------ */

/* `name` is the caller's unique name; NULL (no sender: not a bus
 * connection) matches no peer. */
static struct peer *peer_find(struct ipc_dbus *d, const char *name)
{
    for (struct peer *p = d->peers; name && p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static struct peer *peer_get(struct ipc_dbus *d, const char *name)
{
    struct peer *p = peer_find(d, name);
    if (p)
        return p;
    size_t len = strlen(name);
    p = malloc(sizeof *p + len + 1);
    if (!p)
        return NULL;
    memcpy(p->name, name, len + 1);
    p->client = hd_sched_client_new(d->sched);
    p->next = d->peers;
    d->peers = p;
    return p;
}

static void call_free(struct call *c)
{
    if (!c)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->d->calls == c)
        c->d->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->ask)
        dbus_message_unref(c->ask);
    free(c);
}

static void tcalls_drop_peer(struct ipc_dbus *d, struct peer *p);
static void tjobs_drop_peer(struct ipc_dbus *d, struct peer *p);

/* The peer left the bus: its requests are cancelled and their callbacks
 * never run again, so their calls can go at once. */
static void peer_drop(struct ipc_dbus *d, struct peer *p)
{
    hd_sched_drop_client(d->sched, p->client);
    tcalls_drop_peer(d, p); /* tool calls: cancelled, approvals withdrawn (declined) */
    tjobs_drop_peer(d, p);  /* training jobs: stopped */
    for (struct call *c = d->calls, *next; c; c = next) {
        next = c->next;
        if (c->peer == p)
            call_free(c);
    }
    for (struct peer **pp = &d->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p);
}

static void send_msg(struct ipc_dbus *d, DBusMessage *m)
{
    if (!m)
        return;
    if (!d->lost)
        dbus_connection_send(d->conn, m, NULL);
    dbus_message_unref(m);
}

static DBusHandlerResult on_filter(DBusConnection *conn, DBusMessage *msg, void *data)
{
    struct ipc_dbus *d = data;
    if (dbus_message_is_signal(msg, DBUS_INTERFACE_DBUS, "NameOwnerChanged") &&
        dbus_message_has_sender(msg, DBUS_SERVICE_DBUS)) {
        const char *name, *old_owner, *new_owner;
        if (dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING,
                                  &old_owner, DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID) &&
            name[0] == ':' && !new_owner[0]) {
            struct peer *p = peer_find(d, name);
            if (p)
                peer_drop(d, p);
        }
    } else if (dbus_message_is_signal(msg, DBUS_INTERFACE_LOCAL, "Disconnected") &&
               dbus_message_has_path(msg, DBUS_PATH_LOCAL)) {
        /* Nobody can reach us or be reached: every peer's requests go. The
         * rest of hearthd keeps serving its other frontends. */
        hd_warn("D-Bus: lost the session bus connection; the D-Bus service is gone");
        d->lost = true;
        while (d->peers)
            peer_drop(d, d->peers);
    }
    return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

/* ---- 2. the interface tables ------------------------------------------------------ */

#define MAX_ARGS 5

struct arg {
    const char *type, *name;
};

/* Returns 0 with *reply set (a method return or an error; NULL: the handler
 * kept the call and answers later), or -ENOMEM. */
typedef int (*method_fn)(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);

struct method {
    const char *name;
    struct arg in[MAX_ARGS], out[MAX_ARGS];
    method_fn fn; /* NULL: answered by libdbus itself (org.freedesktop.DBus.Peer) */
    const char *doc;
};

struct signal {
    const char *name;
    struct arg args[MAX_ARGS];
    const char *doc;
};

/* Appends the property's value (a variant) to `it`; false when out of memory. */
typedef bool (*prop_fn)(struct ipc_dbus *d, DBusMessageIter *it);

struct property {
    const char *name, *type;
    prop_fn get;
    const char *emits; /* org.freedesktop.DBus.Property.EmitsChangedSignal */
    const char *doc;
};

struct iface {
    const char *name;
    const struct method *methods;
    const struct signal *signals;
    const struct property *props; /* each list ends with a NULL name */
    const char *doc;
};

static void on_event(void *user, const struct hd_event *ev);
static int m_ask(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_chat(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_generate(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_cancel(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_tokenize(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_close_session(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_introspect(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_list_tools(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_call_tool(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_approve(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_load_lora(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_list_loras(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_unload_lora(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_train(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_cancel_train(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_prop_get(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_prop_get_all(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static int m_prop_set(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply);
static bool p_model(struct ipc_dbus *d, DBusMessageIter *it);
static bool p_arch(struct ipc_dbus *d, DBusMessageIter *it);
static bool p_n_ctx(struct ipc_dbus *d, DBusMessageIter *it);
static bool p_status(struct ipc_dbus *d, DBusMessageIter *it);
static bool p_version(struct ipc_dbus *d, DBusMessageIter *it);
static bool p_iface_version(struct ipc_dbus *d, DBusMessageIter *it);

#define OPTIONS_DOC                                                                                \
    "options (all optional): temperature (d; 0: greedy), top_k (i), top_p (d), min_p (d), "     \
    "repeat_penalty (d), frequency_penalty (d), presence_penalty (d), max_tokens (i), "         \
    "n_predict (i; -1: until the context is full), seed (t), "                                    \
    "stop (as or s), ignore_eos (b), grammar (s: GBNF the answer must match), json_schema (s: "  \
    "JSON Schema text the answer must be a document of), session (s: continue that session's "  \
    "cached sequence), lora (s: a profile of lora.profiles, or a(sd): LoRA adapters and their "  \
    "scales, in order)"

static const struct method hearth_methods[] = {
    {"Ask", {{"s", "prompt"}}, {{"s", "answer"}}, m_ask,
     "Chats with one user message and returns the whole answer when it is done (the "
     "daemon's default sampling; allow a long call timeout). Errors: Busy, ContextOverflow, "
     "Cancelled, Failed."},
    {"Chat", {{"s", "messages_json"}, {"a{sv}", "options"}}, {{"t", "request_id"}}, m_chat,
     "Starts a chat completion of messages_json (a JSON array of OpenAI-style messages, "
     "rendered with the model's chat template) and returns its id at once; the answer "
     "streams to the caller as Token signals and ends with Done or Error. " OPTIONS_DOC "."},
    {"Generate", {{"s", "prompt"}, {"a{sv}", "options"}}, {{"t", "request_id"}}, m_generate,
     "Starts a raw completion of prompt (no chat template), streamed like Chat. Options as "
     "Chat's, plus parse_special (b: match control tokens written in the prompt)."},
    {"Cancel", {{"t", "request_id"}}, {{"b", "cancelled"}}, m_cancel,
     "Cancels one of the caller's own requests; its stream ends with Done, finish_reason "
     "\"cancelled\". False when the caller has no such request."},
    {"Tokenize", {{"s", "text"}}, {{"ai", "tokens"}}, m_tokenize,
     "The token ids of text as a Generate prompt reads it (BOS included when the model "
     "adds it; control tokens not parsed)."},
    {"CloseSession", {{"s", "session"}}, {{"b", "closed"}}, m_close_session,
     "Forgets a session and its cached tokens. False when there is no such session; Busy "
     "while a request of the session runs."},
    {"ListTools", {{0}}, {{"s", "tools_json"}}, m_list_tools,
     "The tools hearthd offers as JSON, as the socket's tools.list returns them: {available, "
     "tools: [{name, description, plugin, risk, policy, reason, parameters}], errors}."},
    {"CallTool", {{"s", "name"}, {"s", "arguments_json"}, {"s", "workspace"}},
     {{"s", "result_json"}}, m_call_tool,
     "Calls one tool in workspace (an absolute directory inside tools.roots) through the "
     "policy; when it asks, ApprovalRequested goes to the caller and the call waits for "
     "Approve. Returns when the call ended: {ok, status, output, error, truncated, asked, "
     "ran} as JSON (status ok, failed, invalid, timeout, crashed, unavailable, denied or "
     "declined). Allow a long call timeout. Errors: Failed (no tool host)."},
    {"Approve", {{"s", "call_id"}, {"b", "approve"}}, {{"b", "found"}}, m_approve,
     "Answers ApprovalRequested: the call runs only after approve true from the peer that "
     "was asked; false, no answer within tools.approval_timeout, or leaving the bus declines "
     "it. found is false when no such approval waits for this peer."},
    {"LoadLora", {{"s", "path"}, {"s", "name"}}, {{"s", "name"}}, m_load_lora,
     "Loads a LoRA adapter file (an absolute path, or a file name in lora.dir) for the model "
     "under name (\"\": the file name without .gguf) and returns the name. Errors: "
     "InvalidArgs (the name is taken, the file is missing or does not fit the model: the "
     "message says what differs)."},
    {"ListLoras", {{0}}, {{"s", "loras_json"}}, m_list_loras,
     "The loaded LoRA adapters and the config's profiles as JSON, as the socket's lora.list "
     "returns them: {adapters: [{name, path, rank, alpha, tensors, bytes}], profiles: [{name, "
     "adapters: [{name, scale}]}]}."},
    {"UnloadLora", {{"s", "name"}}, {{"b", "unloaded"}}, m_unload_lora,
     "Unloads a LoRA adapter; requests using it keep it until they end. False when no "
     "adapter has that name."},
    {"Train", {{"s", "params_json"}}, {{"t", "job_id"}}, m_train,
     "Starts training a LoRA adapter in the background (docs/training.md) and returns its id "
     "at once. params_json is the socket's train params as JSON: data and output (absolute "
     "paths), name, load (true: the adapter joins the registry when written), format, rank, "
     "alpha, targets, epochs, lr, ctx, batch_tokens, val, seed, warmup, threads. Progress "
     "comes to the caller as TrainProgress signals, the end as TrainDone or TrainError. One "
     "job runs at a time. Errors: InvalidArgs (bad params), Busy (a job runs)."},
    {"CancelTrain", {{"t", "job_id"}}, {{"b", "cancelled"}}, m_cancel_train,
     "Stops one of the caller's training jobs (nothing is written; TrainError \"cancelled\" "
     "ends it). False when the caller has no such job. Leaving the bus stops the caller's "
     "jobs too."},
    {NULL},
};

static const struct signal hearth_signals[] = {
    {"Token", {{"t", "request_id"}, {"s", "text"}},
     "A piece of a streamed answer, sent to the caller only."},
    {"Done",
     {{"t", "request_id"}, {"s", "text"}, {"s", "finish_reason"}, {"a{sv}", "usage"}},
     "The stream ended: text is the whole answer (the Tokens concatenated), finish_reason "
     "is stop, length, context or cancelled, usage holds prompt_tokens, cached_tokens, "
     "evaluated_tokens, completion_tokens (i) and queued_ms, prompt_ms, generation_ms (d)."},
    {"Error", {{"t", "request_id"}, {"s", "message"}},
     "The request failed after it was accepted; the last signal of its stream."},
    {"ApprovalRequested",
     {{"s", "call_id"}, {"s", "tool"}, {"s", "arguments_json"}, {"s", "risk"}, {"s", "reason"}},
     "A CallTool of the receiver waits for its approval (risk read, write or exec; reason: "
     "the setting that asks); answer with Approve(call_id, ...). Sent to the caller only."},
    {"TrainProgress", {{"t", "job_id"}, {"s", "progress_json"}},
     "Progress of a training job, to its caller: {phase (loading, validating, training, "
     "finishing), step, total_steps, tokens, loss, tokens_per_s, eta_s, val_loss_before, "
     "examples, val_examples} as JSON (null: not known yet)."},
    {"TrainDone", {{"t", "job_id"}, {"s", "result_json"}},
     "A training job wrote its adapter: {adapter, steps, tokens, tokens_per_s, "
     "val_loss_before, val_loss_after, val_perplexity_before, val_perplexity_after, loaded, "
     "name, load_error} as JSON. The last signal of the job."},
    {"TrainError", {{"t", "job_id"}, {"s", "message"}},
     "A training job failed (bad data: the message names the file and line) or was "
     "cancelled; the last signal of the job."},
    {NULL},
};

static const struct property hearth_props[] = {
    {"Model", "s", p_model, "const", "Path of the loaded model file."},
    {"Architecture", "s", p_arch, "const", "The model's architecture (llama, qwen2, qwen3)."},
    {"ContextLength", "u", p_n_ctx, "const", "Tokens per sequence."},
    {"Status", "a{sv}", p_status, "false",
     "running, queued, sessions, clients, n_ctx, parallel (i); requests_total, "
     "tokens_generated, tokens_evaluated, uptime_ms (x)."},
    {"Version", "s", p_version, "const", "hearthd's version."},
    {"InterfaceVersion", "u", p_iface_version, "const",
     "Version of this interface; grows with every change (docs/api-changes.md)."},
    {NULL},
};

static const struct method introspectable_methods[] = {
    {"Introspect", {{0}}, {{"s", "xml_data"}}, m_introspect, NULL},
    {NULL},
};

static const struct method properties_methods[] = {
    {"Get", {{"s", "interface_name"}, {"s", "property_name"}}, {{"v", "value"}}, m_prop_get, NULL},
    {"GetAll", {{"s", "interface_name"}}, {{"a{sv}", "properties"}}, m_prop_get_all, NULL},
    {"Set", {{"s", "interface_name"}, {"s", "property_name"}, {"v", "value"}}, {{0}}, m_prop_set,
     NULL},
    {NULL},
};

static const struct signal properties_signals[] = {
    {"PropertiesChanged",
     {{"s", "interface_name"}, {"a{sv}", "changed_properties"}, {"as", "invalidated_properties"}},
     NULL},
    {NULL},
};

static const struct method peer_methods[] = {
    {"Ping", {{0}}, {{0}}, NULL, NULL},
    {"GetMachineId", {{0}}, {{"s", "machine_uuid"}}, NULL, NULL},
    {NULL},
};

static const struct signal no_signals[] = {{NULL}};
static const struct property no_props[] = {{NULL}};

static const struct iface ifaces[] = {
    {IPC_DBUS_IFACE, hearth_methods, hearth_signals, hearth_props,
     "hearth, the local AI daemon: chat and completion requests on the loaded model "
     "(docs/dbus.md)."},
    {DBUS_INTERFACE_INTROSPECTABLE, introspectable_methods, no_signals, no_props, NULL},
    {DBUS_INTERFACE_PROPERTIES, properties_methods, properties_signals, no_props, NULL},
    {DBUS_INTERFACE_PEER, peer_methods, no_signals, no_props, NULL},
};
#define N_IFACES (sizeof ifaces / sizeof ifaces[0])

static void signature(const struct arg *a, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < MAX_ARGS && a[i].type; i++)
        strncat(out, a[i].type, cap - strlen(out) - 1);
}

/* A growable string; `oom` sticks once an allocation failed. */
struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void HR_PRINTF(2, 3) bput(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A doc string as an XML comment, word-wrapped within 100 columns. Docs never
 * contain "--", which a comment may not hold. */
static void xml_doc(struct buf *b, const char *doc, int indent)
{
    if (!doc)
        return;
    bput(b, "%*s<!--", indent, "");
    int col = indent + 4;
    for (const char *w = doc; *w;) {
        size_t n = strcspn(w, " ");
        if (col + 1 + (int)n > 96) { /* room for the closing " -->" */
            bput(b, "\n%*s", indent + 5, "");
            col = indent + 5;
        } else {
            bput(b, " ");
            col++;
        }
        bput(b, "%.*s", (int)n, w);
        col += (int)n;
        w += n;
        while (*w == ' ')
            w++;
    }
    bput(b, " -->\n");
}

static void xml_args(struct buf *b, const struct arg *a, const char *dir)
{
    for (int i = 0; i < MAX_ARGS && a[i].type; i++) {
        bput(b, "      <arg name=\"%s\" type=\"%s\"", a[i].name, a[i].type);
        if (dir)
            bput(b, " direction=\"%s\"", dir);
        bput(b, "/>\n");
    }
}

int ipc_dbus_introspect(char **out)
{
    struct buf b = {0};
    bput(&b, "%s", DBUS_INTROSPECT_1_0_XML_DOCTYPE_DECL_NODE);
    bput(&b, "<!-- Generated by hearthd from the tables in ipc/dbus.c; do not edit. -->\n");
    bput(&b, "<node>\n");
    for (size_t i = 0; i < N_IFACES; i++) {
        const struct iface *f = &ifaces[i];
        xml_doc(&b, f->doc, 2);
        bput(&b, "  <interface name=\"%s\">\n", f->name);
        for (const struct method *m = f->methods; m->name; m++) {
            xml_doc(&b, m->doc, 4);
            if (!m->in[0].type && !m->out[0].type) {
                bput(&b, "    <method name=\"%s\"/>\n", m->name);
                continue;
            }
            bput(&b, "    <method name=\"%s\">\n", m->name);
            xml_args(&b, m->in, "in");
            xml_args(&b, m->out, "out");
            bput(&b, "    </method>\n");
        }
        for (const struct signal *s = f->signals; s->name; s++) {
            xml_doc(&b, s->doc, 4);
            bput(&b, "    <signal name=\"%s\">\n", s->name);
            xml_args(&b, s->args, NULL);
            bput(&b, "    </signal>\n");
        }
        for (const struct property *p = f->props; p->name; p++) {
            xml_doc(&b, p->doc, 4);
            bput(&b, "    <property name=\"%s\" type=\"%s\" access=\"read\">\n", p->name, p->type);
            bput(&b,
                 "      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                 "value=\"%s\"/>\n",
                 p->emits);
            bput(&b, "    </property>\n");
        }
        bput(&b, "  </interface>\n");
    }
    bput(&b, "</node>\n");
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return 0;
}

/* ---- 3. method handlers ---------------------------------------------------------- */

static DBusMessage *HR_PRINTF(3, 4) error_reply(DBusMessage *call, const char *name,
                                               const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dbus_message_new_error(call, name, msg);
}

/* The D-Bus error name of a scheduler error (negative errno). */
static const char *error_name(int code)
{
    switch (code) {
    case -EBUSY:
    case -EALREADY:
        return ERR_BUSY;
    case -E2BIG:
        return ERR_CONTEXT;
    case -EINVAL:
    case -ENOENT: /* an unknown LoRA adapter or profile */
        return DBUS_ERROR_INVALID_ARGS;
    case -ENOMEM:
        return DBUS_ERROR_NO_MEMORY;
    default:
        return ERR_FAILED;
    }
}

/* A reply carrying one basic value; NULL when out of memory. */
static DBusMessage *return_basic(DBusMessage *call, int type, const void *value)
{
    DBusMessage *m = dbus_message_new_method_return(call);
    if (m && !dbus_message_append_args(m, type, value, DBUS_TYPE_INVALID)) {
        dbus_message_unref(m);
        m = NULL;
    }
    return m;
}

/* Queues `req` for the caller and makes the reply: the request id (ask
 * false), or nothing yet (ask: answered at DONE), or the error. */
static int submit(struct ipc_dbus *d, DBusMessage *call, struct hd_request *req, bool ask,
                  DBusMessage **reply)
{
    const char *sender = dbus_message_get_sender(call);
    if (!sender) { /* the bus always sets it; nothing could be streamed back without */
        *reply = error_reply(call, ERR_FAILED, "the call has no sender");
        return 0;
    }
    struct peer *p = peer_get(d, sender);
    struct call *c = p ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return -ENOMEM;
    c->d = d;
    c->peer = p;
    req->client = p->client;
    struct hr_err err;
    hr_err_clear(&err);
    int r = hd_sched_submit(d->sched, req, on_event, c, &c->id, &err);
    if (r < 0) {
        free(c);
        *reply = error_reply(call, error_name(r), "%s", err.msg[0] ? err.msg : strerror(-r));
        return 0;
    }
    c->next = d->calls;
    if (d->calls)
        d->calls->prev = c;
    d->calls = c;
    if (ask) {
        c->ask = dbus_message_ref(call);
        *reply = NULL;
        return 0;
    }
    dbus_uint64_t id = c->id;
    *reply = return_basic(call, DBUS_TYPE_UINT64, &id);
    return 0;
}

static int m_ask(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *prompt;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &prompt, DBUS_TYPE_INVALID);
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", prompt);
    char *json = msgs ? json_dumps(msgs, JSON_COMPACT) : NULL;
    json_decref(msgs);
    if (!json)
        return -ENOMEM;
    struct hd_request req = {0};
    req.messages_json = json;
    hd_gen_params_init(d->sched, &req.gen);
    int r = submit(d, call, &req, true, reply);
    free(json);
    return r;
}

/* Chat and Generate: (s text, a{sv} options). */
static int start(struct ipc_dbus *d, DBusMessage *call, bool generate, DBusMessage **reply)
{
    DBusMessageIter it;
    const char *text, *session = NULL;
    bool parse_special = false;
    json_t *opts = NULL;
    struct hr_err err;
    hr_err_clear(&err);
    dbus_message_iter_init(call, &it);
    dbus_message_iter_get_basic(&it, &text);
    dbus_message_iter_next(&it);
    int r = ipc_dbus_read_options(&it, generate, &opts, &session, &parse_special, &err);
    struct hd_request req = {0};
    if (r == 0)
        r = ipc_params_gen(d->sched, opts, &req.gen, &err);
    if (r < 0) {
        json_decref(opts);
        if (r == -ENOMEM)
            return r;
        *reply = error_reply(call, DBUS_ERROR_INVALID_ARGS, "%s", err.msg);
        return 0;
    }
    req.session = session;
    if (generate) {
        req.prompt = text;
        req.parse_special = parse_special;
    } else {
        req.messages_json = text;
    }
    r = submit(d, call, &req, false, reply);
    json_decref(opts); /* after submit: req.gen.stop points into it */
    return r;
}

static int m_chat(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    return start(d, call, false, reply);
}

static int m_generate(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    return start(d, call, true, reply);
}

static int m_cancel(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    dbus_uint64_t id;
    dbus_message_get_args(call, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
    struct peer *p = peer_find(d, dbus_message_get_sender(call));
    dbus_bool_t ok = p && id > 0 && hd_sched_cancel(d->sched, p->client, id) == 0;
    *reply = return_basic(call, DBUS_TYPE_BOOLEAN, &ok);
    return *reply ? 0 : -ENOMEM;
}

static int m_tokenize(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *text;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID);
    const struct hr_vocab *v = hr_model_vocab(hd_sched_model(d->sched));
    size_t len = strlen(text);
    int64_t n = hr_tokenize(v, text, len, true, false, NULL, 0);
    if (n < 0) {
        *reply = error_reply(call, error_name((int)n), "cannot tokenize: %s", strerror((int)-n));
        return 0;
    }
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids)
        return -ENOMEM;
    n = hr_tokenize(v, text, len, true, false, ids, (size_t)n);
    *reply = dbus_message_new_method_return(call);
    if (*reply && !dbus_message_append_args(*reply, DBUS_TYPE_ARRAY, DBUS_TYPE_INT32, &ids,
                                            (int)n, DBUS_TYPE_INVALID)) {
        dbus_message_unref(*reply);
        *reply = NULL;
    }
    free(ids);
    return *reply ? 0 : -ENOMEM;
}

static int m_close_session(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *name;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
    int r = hd_sched_session_close(d->sched, name);
    if (r == -EALREADY) {
        *reply = error_reply(call, ERR_BUSY, "session '%s' has a request running", name);
        return 0;
    }
    dbus_bool_t ok = r == 0;
    *reply = return_basic(call, DBUS_TYPE_BOOLEAN, &ok);
    return *reply ? 0 : -ENOMEM;
}

static int m_introspect(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    char *xml;
    if (ipc_dbus_introspect(&xml) < 0)
        return -ENOMEM;
    *reply = return_basic(call, DBUS_TYPE_STRING, &xml);
    free(xml);
    return *reply ? 0 : -ENOMEM;
}

static bool p_str(DBusMessageIter *it, const char *s)
{
    if (!s)
        s = "";
    return ipc_dbus_append_variant(it, DBUS_TYPE_STRING, &s);
}

static bool p_model(struct ipc_dbus *d, DBusMessageIter *it)
{
    return p_str(it, hd_sched_model_path(d->sched));
}

static bool p_arch(struct ipc_dbus *d, DBusMessageIter *it)
{
    return p_str(it, hr_model_arch(hd_sched_model(d->sched)));
}

static bool p_n_ctx(struct ipc_dbus *d, DBusMessageIter *it)
{
    dbus_uint32_t n = (dbus_uint32_t)hd_sched_n_ctx(d->sched);
    return ipc_dbus_append_variant(it, DBUS_TYPE_UINT32, &n);
}

static bool p_status(struct ipc_dbus *d, DBusMessageIter *it)
{
    struct hd_status st;
    hd_sched_status(d->sched, &st);
    DBusMessageIter v, dict;
    if (!dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, "a{sv}", &v))
        return false;
    if (!dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "{sv}", &dict)) {
        dbus_message_iter_abandon_container(it, &v);
        return false;
    }
    bool ok = ipc_dbus_dict_i32(&dict, "running", st.running) && ipc_dbus_dict_i32(&dict, "queued", st.queued) &&
              ipc_dbus_dict_i32(&dict, "sessions", st.sessions) && ipc_dbus_dict_i32(&dict, "clients", st.clients) &&
              ipc_dbus_dict_i32(&dict, "n_ctx", st.n_ctx) && ipc_dbus_dict_i32(&dict, "parallel", st.parallel) &&
              ipc_dbus_dict_i64(&dict, "requests_total", st.requests_total) &&
              ipc_dbus_dict_i64(&dict, "tokens_generated", st.tokens_generated) &&
              ipc_dbus_dict_i64(&dict, "tokens_evaluated", st.tokens_evaluated) &&
              ipc_dbus_dict_i64(&dict, "uptime_ms", st.uptime_ms);
    if (!ok) {
        dbus_message_iter_abandon_container(&v, &dict);
        dbus_message_iter_abandon_container(it, &v);
        return false;
    }
    return dbus_message_iter_close_container(&v, &dict) &&
           dbus_message_iter_close_container(it, &v);
}

static bool p_version(struct ipc_dbus *d, DBusMessageIter *it)
{
    return p_str(it, HEARTH_VERSION);
}

static bool p_iface_version(struct ipc_dbus *d, DBusMessageIter *it)
{
    dbus_uint32_t v = IPC_DBUS_INTERFACE_VERSION;
    return ipc_dbus_append_variant(it, DBUS_TYPE_UINT32, &v);
}

static const struct iface *iface_find(const char *name)
{
    for (size_t i = 0; i < N_IFACES; i++)
        if (!strcmp(ifaces[i].name, name))
            return &ifaces[i];
    return NULL;
}

/* Properties calls name an interface; "" means ours, as several bindings send. */
static int prop_iface(DBusMessage *call, const char *name, const struct iface **f,
                      DBusMessage **reply)
{
    *f = iface_find(name[0] ? name : IPC_DBUS_IFACE);
    if (*f)
        return 0;
    *reply = error_reply(call, DBUS_ERROR_UNKNOWN_INTERFACE, "no interface '%s' on %s", name,
                         IPC_DBUS_PATH);
    return -1;
}

static int m_prop_get(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *iname, *pname;
    const struct iface *f;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &iname, DBUS_TYPE_STRING, &pname,
                          DBUS_TYPE_INVALID);
    if (prop_iface(call, iname, &f, reply) < 0)
        return 0;
    for (const struct property *p = f->props; p->name; p++) {
        if (strcmp(p->name, pname))
            continue;
        DBusMessageIter it;
        *reply = dbus_message_new_method_return(call);
        if (!*reply)
            return -ENOMEM;
        dbus_message_iter_init_append(*reply, &it);
        if (!p->get(d, &it)) {
            dbus_message_unref(*reply);
            *reply = NULL;
            return -ENOMEM;
        }
        return 0;
    }
    *reply = error_reply(call, DBUS_ERROR_UNKNOWN_PROPERTY, "no property '%s' in interface '%s'",
                         pname, f->name);
    return 0;
}

static int m_prop_get_all(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *iname;
    const struct iface *f;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &iname, DBUS_TYPE_INVALID);
    if (prop_iface(call, iname, &f, reply) < 0)
        return 0;
    DBusMessageIter it, dict;
    DBusMessage *m = dbus_message_new_method_return(call);
    if (!m)
        return -ENOMEM;
    dbus_message_iter_init_append(m, &it);
    bool ok = dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict);
    for (const struct property *p = f->props; ok && p->name; p++) {
        DBusMessageIter e;
        ok = dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &e);
        if (!ok)
            break;
        ok = dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &p->name) && p->get(d, &e);
        if (!ok) {
            dbus_message_iter_abandon_container(&dict, &e);
            break;
        }
        ok = dbus_message_iter_close_container(&dict, &e);
    }
    if (ok)
        ok = dbus_message_iter_close_container(&it, &dict);
    if (!ok) {
        dbus_message_unref(m); /* also releases half-written containers */
        return -ENOMEM;
    }
    *reply = m;
    return 0;
}

static int m_prop_set(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *iname, *pname;
    const struct iface *f;
    DBusMessageIter it;
    dbus_message_iter_init(call, &it);
    dbus_message_iter_get_basic(&it, &iname);
    dbus_message_iter_next(&it);
    dbus_message_iter_get_basic(&it, &pname);
    if (prop_iface(call, iname, &f, reply) < 0)
        return 0;
    for (const struct property *p = f->props; p->name; p++)
        if (!strcmp(p->name, pname)) {
            *reply = error_reply(call, DBUS_ERROR_PROPERTY_READ_ONLY,
                                 "property '%s' is read-only", pname);
            return 0;
        }
    *reply = error_reply(call, DBUS_ERROR_UNKNOWN_PROPERTY, "no property '%s' in interface '%s'",
                         pname, f->name);
    return 0;
}

/* Routes a method call on /org/hearth/Hearth1 by interface (a call without
 * one goes to the first interface that has the method) and checks its
 * signature before the handler reads its arguments unchecked. */
static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *data)
{
    struct ipc_dbus *d = data;
    if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL)
        return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
    const char *iname = dbus_message_get_interface(msg);
    const char *member = dbus_message_get_member(msg);
    const struct method *m = NULL;
    DBusMessage *reply = NULL;
    for (size_t i = 0; !m && i < N_IFACES; i++) {
        if (iname && strcmp(iname, ifaces[i].name))
            continue;
        for (const struct method *x = ifaces[i].methods; !m && x->name; x++)
            if (!strcmp(x->name, member))
                m = x;
    }
    if (!m || !m->fn) {
        if (iname && !iface_find(iname))
            reply = error_reply(msg, DBUS_ERROR_UNKNOWN_INTERFACE,
                                "no interface '%s' on object %s", iname, IPC_DBUS_PATH);
        else
            reply = error_reply(msg, DBUS_ERROR_UNKNOWN_METHOD,
                                "no method '%s' in interface '%s' (see Introspect)", member,
                                iname ? iname : IPC_DBUS_IFACE);
    } else {
        char sig[64];
        signature(m->in, sig, sizeof sig);
        if (!dbus_message_has_signature(msg, sig)) {
            reply = error_reply(msg, DBUS_ERROR_INVALID_ARGS, "%s takes (%s), not (%s)", m->name,
                                sig, dbus_message_get_signature(msg));
        } else if (m->fn(d, msg, &reply) < 0) {
            return DBUS_HANDLER_RESULT_NEED_MEMORY;
        }
    }
    if (reply && dbus_message_get_no_reply(msg)) {
        dbus_message_unref(reply);
        reply = NULL;
    }
    send_msg(d, reply);
    return DBUS_HANDLER_RESULT_HANDLED;
}

/* ---- 4. request events --------------------------------------------------------------- */

static DBusMessage *new_signal(struct call *c, const char *name)
{
    DBusMessage *m = dbus_message_new_signal(IPC_DBUS_PATH, IPC_DBUS_IFACE, name);
    if (m && !dbus_message_set_destination(m, c->peer->name)) {
        dbus_message_unref(m);
        m = NULL;
    }
    return m;
}

static DBusMessage *done_signal(struct call *c, const struct hd_event *ev, const char *text)
{
    DBusMessage *m = new_signal(c, "Done");
    if (!m)
        return NULL;
    dbus_uint64_t id = c->id;
    const char *reason = ev->finish_reason ? ev->finish_reason : "";
    DBusMessageIter it, dict;
    dbus_message_iter_init_append(m, &it);
    const struct hd_usage *u = &ev->usage;
    bool ok = dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT64, &id) &&
              dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &text) &&
              dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &reason) &&
              dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict);
    if (ok) {
        ok = ipc_dbus_dict_i32(&dict, "prompt_tokens", u->prompt_tokens) &&
             ipc_dbus_dict_i32(&dict, "cached_tokens", u->cached_tokens) &&
             ipc_dbus_dict_i32(&dict, "evaluated_tokens", u->evaluated_tokens) &&
             ipc_dbus_dict_i32(&dict, "completion_tokens", u->completion_tokens) &&
             ipc_dbus_dict_dbl(&dict, "queued_ms", u->queued_ms) &&
             ipc_dbus_dict_dbl(&dict, "prompt_ms", u->prompt_ms) &&
             ipc_dbus_dict_dbl(&dict, "generation_ms", u->generation_ms);
        ok = dbus_message_iter_close_container(&it, &dict) && ok;
    }
    if (!ok) {
        dbus_message_unref(m);
        m = NULL;
    }
    return m;
}

/* Scheduler events of one call, on the loop thread. A failed allocation
 * loses that one message (the caller's D-Bus timeout or a missing Token
 * shows it); the call's bookkeeping stays exact. */
static void on_event(void *user, const struct hd_event *ev)
{
    struct call *c = user;
    struct ipc_dbus *d = c->d;
    if (ev->type == HD_EV_TEXT && c->ask)
        return; /* Ask answers with DONE's whole text */
    dbus_uint64_t id = c->id;
    char *text = ev->type == HD_EV_ERROR
                     ? ipc_dbus_text(ev->message ? ev->message : "", ev->message ? strlen(ev->message) : 0)
                     : ipc_dbus_text(ev->text ? ev->text : "", ev->text ? ev->len : 0);
    DBusMessage *m = NULL;
    if (!text) {
        /* nothing to send */
    } else if (c->ask && ev->type == HD_EV_DONE) {
        if (ev->finish_reason && !strcmp(ev->finish_reason, "cancelled"))
            m = error_reply(c->ask, ERR_CANCELLED, "the request was cancelled");
        else
            m = return_basic(c->ask, DBUS_TYPE_STRING, &text);
    } else if (c->ask) {
        m = error_reply(c->ask, error_name(ev->code), "%s", text);
    } else if (ev->type == HD_EV_DONE) {
        m = done_signal(c, ev, text);
    } else {
        m = new_signal(c, ev->type == HD_EV_TEXT ? "Token" : "Error");
        if (m && !dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &text,
                                           DBUS_TYPE_INVALID)) {
            dbus_message_unref(m);
            m = NULL;
        }
    }
    if (m && c->ask && dbus_message_get_no_reply(c->ask)) {
        dbus_message_unref(m);
        m = NULL;
    }
    send_msg(d, m);
    free(text);
    if (ev->type != HD_EV_TEXT)
        call_free(c);
}

/* ---- 5. tools and approvals ----------------------------------------------------------- */

/* A CallTool waiting for its result (a gated call, daemon/policy.h). Its
 * approvals go to the calling peer; the peer leaving cancels it. */
struct tcall {
    struct tcall *next;
    struct ipc_dbus *d;
    struct peer *peer;
    DBusMessage *call; /* answered when the gated call ends (a reference) */
    int64_t gate_id;
};

void ipc_dbus_set_services(struct ipc_dbus *d, const struct hd_services *svc)
{
    d->svc = svc;
}

static struct hd_gate *gate_of(struct ipc_dbus *d)
{
    return d->svc ? d->svc->gate : NULL;
}

static void tcall_unlink(struct tcall *t)
{
    for (struct tcall **p = &t->d->tcalls; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    if (t->call)
        dbus_message_unref(t->call);
    free(t);
}

static void tcalls_drop_peer(struct ipc_dbus *d, struct peer *p)
{
    for (struct tcall *t = d->tcalls, *n; t; t = n) {
        n = t->next;
        if (t->peer != p)
            continue;
        if (gate_of(d))
            hd_gate_cancel(gate_of(d), t->gate_id);
        tcall_unlink(t);
    }
}

static int m_list_tools(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    struct hd_tools *tools = d->svc ? d->svc->tools : NULL;
    json_t *arr = json_array(), *errs = json_array();
    size_t n = 0, ne = 0;
    const struct hd_tool_def *defs = tools ? hd_tools_list(tools, &n) : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        const char *why = "";
        enum hd_policy pol = gate_of(d) ? hd_gate_decide(gate_of(d), defs[i].name, defs[i].risk,
                                                         &why)
                                        : HD_POLICY_DENY;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "name",
                                             defs[i].name, "description",
                                             defs[i].description ? defs[i].description : "",
                                             "plugin", defs[i].plugin ? defs[i].plugin : "",
                                             "risk", hd_tool_risk_name(defs[i].risk), "policy",
                                             hd_policy_name(pol), "reason", why, "parameters",
                                             (json_t *)defs[i].schema));
    }
    const char *const *le = tools ? hd_tools_load_errors(tools, &ne) : NULL;
    for (size_t i = 0; errs && i < ne; i++)
        json_array_append_new(errs, json_string(le[i]));
    json_t *o = arr && errs ? json_pack("{s:b, s:O, s:O}", "available", tools != NULL, "tools",
                                        arr, "errors", errs)
                            : NULL;
    json_decref(arr);
    json_decref(errs);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -ENOMEM;
    *reply = return_basic(call, DBUS_TYPE_STRING, &text);
    free(text);
    return *reply ? 0 : -ENOMEM;
}

/* The gate asks: the question goes to the calling peer only. */
static void tcall_ask(void *user, const struct hd_approval *a)
{
    struct tcall *t = user;
    DBusMessage *m = dbus_message_new_signal(IPC_DBUS_PATH, IPC_DBUS_IFACE, "ApprovalRequested");
    if (m && (!dbus_message_set_destination(m, t->peer->name) ||
              !dbus_message_append_args(m, DBUS_TYPE_STRING, &a->call_id, DBUS_TYPE_STRING,
                                        &a->tool, DBUS_TYPE_STRING, &a->arguments,
                                        DBUS_TYPE_STRING, &a->risk, DBUS_TYPE_STRING,
                                        &a->reason, DBUS_TYPE_INVALID))) {
        dbus_message_unref(m);
        m = NULL;
    }
    send_msg(t->d, m); /* lost (no memory): the approval times out, declined */
}

static void tcall_done(void *user, const struct hd_gate_result *res)
{
    struct tcall *t = user;
    char *out = ipc_dbus_text(res->output ? res->output : "", res->output_len);
    json_t *o = json_pack("{s:b, s:s, s:s, s:b, s:b, s:b}", "ok", res->status == HD_GATE_OK,
                          "status", hd_gate_status_name(res->status), "output", out ? out : "",
                          "truncated", res->truncated, "asked", res->asked, "ran", res->ran);
    free(out);
    if (o && res->error)
        json_object_set_new(o, "error", json_string(res->error));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    DBusMessage *m = text ? return_basic(t->call, DBUS_TYPE_STRING, &text)
                          : dbus_message_new_error(t->call, ERR_FAILED, "out of memory");
    free(text);
    if (m && dbus_message_get_no_reply(t->call)) {
        dbus_message_unref(m);
        m = NULL;
    }
    send_msg(t->d, m);
    tcall_unlink(t);
}

static int m_call_tool(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *name, *args, *ws;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &args,
                          DBUS_TYPE_STRING, &ws, DBUS_TYPE_INVALID);
    const char *sender = dbus_message_get_sender(call);
    if (!gate_of(d)) {
        *reply = error_reply(call, ERR_FAILED, "no tools: hearthd runs without a tool host");
        return 0;
    }
    if (!sender) {
        *reply = error_reply(call, ERR_FAILED, "the call has no sender");
        return 0;
    }
    struct peer *p = peer_get(d, sender);
    struct tcall *t = p ? calloc(1, sizeof *t) : NULL;
    if (!t)
        return -ENOMEM;
    *t = (struct tcall){.d = d, .peer = p, .call = dbus_message_ref(call)};
    struct hd_approver ap = {.ask = tcall_ask, .user = t};
    struct hd_gate_req gr = {.tool = name, .arguments = args, .workspace = ws[0] ? ws : NULL,
                             .approver = &ap};
    int64_t id = hd_gate_call(gate_of(d), &gr, tcall_done, t);
    if (id < 0) {
        dbus_message_unref(t->call);
        free(t);
        if (id == -ENOMEM)
            return -ENOMEM;
        *reply = error_reply(call, ERR_FAILED, "cannot start the call: %s", strerror((int)-id));
        return 0;
    }
    t->gate_id = id;
    t->next = d->tcalls;
    d->tcalls = t;
    *reply = NULL; /* answered by tcall_done */
    return 0;
}

static int m_approve(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *call_id;
    dbus_bool_t approve;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &call_id, DBUS_TYPE_BOOLEAN, &approve,
                          DBUS_TYPE_INVALID);
    struct peer *p = peer_find(d, dbus_message_get_sender(call));
    dbus_bool_t found = FALSE;
    for (struct tcall *t = d->tcalls; p && gate_of(d) && t && !found; t = t->next)
        if (t->peer == p && hd_gate_answer(gate_of(d), t, call_id, approve) == 0)
            found = TRUE;
    *reply = return_basic(call, DBUS_TYPE_BOOLEAN, &found);
    return *reply ? 0 : -ENOMEM;
}

/* ---- LoRA adapters (the scheduler's registry) ---------------------------------------- */

static int m_load_lora(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *path, *name;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &path, DBUS_TYPE_STRING, &name,
                          DBUS_TYPE_INVALID);
    const struct hd_lora_entry *e;
    struct hr_err err;
    int r = hd_sched_lora_load(d->sched, path, name, &e, &err);
    if (r == -ENOMEM)
        return -ENOMEM;
    if (r < 0) {
        *reply = error_reply(call, DBUS_ERROR_INVALID_ARGS, "%s",
                             err.msg[0] ? err.msg : strerror(-r));
        return 0;
    }
    *reply = return_basic(call, DBUS_TYPE_STRING, &e->name);
    return *reply ? 0 : -ENOMEM;
}

static int m_list_loras(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const struct hd_lora_entry *e;
    const struct hd_lora_profile_entry *p;
    size_t n = hd_sched_lora_list(d->sched, &e), np = hd_sched_lora_profiles(d->sched, &p);
    json_t *ads = json_array(), *prs = json_array(), *all = NULL;
    for (size_t i = 0; ads && i < n; i++)
        if (json_array_append_new(ads, json_pack("{s:s, s:s, s:i, s:f, s:i, s:I}", "name",
                                                 e[i].name, "path", e[i].path, "rank",
                                                 e[i].info.rank, "alpha",
                                                 (double)e[i].info.alpha, "tensors",
                                                 e[i].info.n_tensors, "bytes",
                                                 (json_int_t)e[i].info.n_bytes)) < 0)
            ads = (json_decref(ads), NULL);
    for (size_t i = 0; prs && i < np; i++) {
        json_t *uses = json_array();
        for (int k = 0; uses && k < p[i].n_uses; k++)
            if (json_array_append_new(uses, json_pack("{s:s, s:f}", "name", p[i].uses[k].name,
                                                      "scale", (double)p[i].uses[k].scale)) < 0)
                uses = (json_decref(uses), NULL);
        if (!uses ||
            json_array_append_new(prs, json_pack("{s:s, s:o}", "name", p[i].name, "adapters",
                                                 uses)) < 0)
            prs = (json_decref(prs), NULL);
    }
    if (ads && prs)
        all = json_pack("{s:o, s:o}", "adapters", ads, "profiles", prs);
    else {
        json_decref(ads);
        json_decref(prs);
    }
    char *text = all ? json_dumps(all, JSON_COMPACT) : NULL;
    json_decref(all);
    if (!text)
        return -ENOMEM;
    *reply = return_basic(call, DBUS_TYPE_STRING, &text);
    free(text);
    return *reply ? 0 : -ENOMEM;
}

static int m_unload_lora(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *name;
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
    dbus_bool_t ok = hd_sched_lora_unload(d->sched, name) == 0;
    *reply = return_basic(call, DBUS_TYPE_BOOLEAN, &ok);
    return *reply ? 0 : -ENOMEM;
}

/* ---- 6. training jobs (daemon/trainjob.h) ----------------------------------------------- */

/* A Train job of a peer; freed when it ends, is cancelled, or its peer leaves. */
struct tjob {
    struct tjob *next;
    struct ipc_dbus *d;
    struct peer *peer;
    uint64_t id;
    struct hd_trainjob *job;
    struct hd_trainjob_request rq;
};

static void tjob_free(struct tjob *t)
{
    for (struct tjob **p = &t->d->tjobs; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    hd_trainjob_free(t->job);
    free(t);
}

static void tjobs_drop_peer(struct ipc_dbus *d, struct peer *p)
{
    for (struct tjob *t = d->tjobs, *n; t; t = n) {
        n = t->next;
        if (t->peer == p) tjob_free(t);
    }
}

/* A job signal to its peer: (t id, s text). */
static void tjob_signal(struct tjob *t, const char *name, const char *text)
{
    DBusMessage *m = dbus_message_new_signal(IPC_DBUS_PATH, IPC_DBUS_IFACE, name);
    if (m && (!dbus_message_set_destination(m, t->peer->name) ||
              !dbus_message_append_args(m, DBUS_TYPE_UINT64, &t->id, DBUS_TYPE_STRING, &text,
                                        DBUS_TYPE_INVALID))) {
        dbus_message_unref(m);
        m = NULL;
    }
    send_msg(t->d, m);
}

static void tjob_json_signal(struct tjob *t, const char *name, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text) tjob_signal(t, name, text);
    free(text);
}

static void tjob_event(void *user, const struct hd_trainjob_event *ev)
{
    struct tjob *t = user;
    if (ev->phase != HD_TRAIN_DONE) {
        tjob_json_signal(t, "TrainProgress", hd_trainjob_progress_json(ev));
        return;
    }
    if (ev->rc < 0)
        tjob_signal(t, "TrainError", ev->msg ? ev->msg : "training failed");
    else
        tjob_json_signal(t, "TrainDone", hd_trainjob_result(t->d->sched, &t->rq, ev));
    tjob_free(t); /* the job is finished: this only joins its thread */
}

static const char *const train_keys[] = {
    "data", "output", "name",         "load", "format", "rank",   "alpha",   "targets", "epochs",
    "lr",   "ctx",    "batch_tokens", "val",  "seed",   "warmup", "threads", NULL};

static int m_train(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    const char *text, *sender = dbus_message_get_sender(call);
    dbus_message_get_args(call, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID);
    if (!sender) {
        *reply = error_reply(call, ERR_FAILED, "the call has no sender");
        return 0;
    }
    json_error_t je;
    json_t *params = json_loads(text, 0, &je);
    if (!json_is_object(params)) {
        json_decref(params);
        *reply = error_reply(call, DBUS_ERROR_INVALID_ARGS, "params_json is not a JSON object (%s)",
                             je.text);
        return 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        size_t k = 0;
        while (train_keys[k] && strcmp(train_keys[k], key))
            k++;
        if (!train_keys[k]) {
            *reply = error_reply(call, DBUS_ERROR_INVALID_ARGS, "unknown key '%s'", key);
            json_decref(params);
            return 0;
        }
    }
    struct peer *p = peer_get(d, sender);
    struct tjob *t = p ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        json_decref(params);
        return -ENOMEM;
    }
    char msg[256];
    int rc = hd_trainjob_parse(params, &t->rq, msg, sizeof msg);
    json_decref(params);
    if (rc < 0) {
        free(t);
        *reply = error_reply(call, DBUS_ERROR_INVALID_ARGS, "%s", msg);
        return 0;
    }
    t->d = d;
    t->peer = p;
    t->id = ++d->next_tjob;
    struct hr_err err;
    hr_err_clear(&err);
    rc = hd_trainjob_start(d->loop, hd_sched_model(d->sched), &t->rq.p, tjob_event, t, &t->job,
                           &err);
    if (rc < 0) {
        free(t);
        if (rc == -ENOMEM) return -ENOMEM;
        *reply = error_reply(call, rc == -EBUSY ? ERR_BUSY : ERR_FAILED, "%s",
                             err.msg[0] ? err.msg : strerror(-rc));
        return 0;
    }
    t->next = d->tjobs;
    d->tjobs = t;
    *reply = return_basic(call, DBUS_TYPE_UINT64, &t->id);
    return *reply ? 0 : -ENOMEM;
}

static int m_cancel_train(struct ipc_dbus *d, DBusMessage *call, DBusMessage **reply)
{
    dbus_uint64_t id;
    dbus_message_get_args(call, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
    struct peer *p = peer_find(d, dbus_message_get_sender(call));
    dbus_bool_t found = false;
    for (struct tjob *t = d->tjobs; p && t; t = t->next)
        if (t->id == id && t->peer == p) {
            tjob_signal(t, "TrainError", "cancelled");
            tjob_free(t);
            found = true;
            break;
        }
    *reply = return_basic(call, DBUS_TYPE_BOOLEAN, &found);
    return *reply ? 0 : -ENOMEM;
}

/* ---- construction ---------------------------------------------------------------- */

static const DBusObjectPathVTable vtable = {.message_function = on_message};

/* Which process owns the name, for the error message; 0 if unknown. Blocks
 * (start-up only). */
static uint32_t name_owner_pid(DBusConnection *conn)
{
    DBusMessage *m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
                                                  DBUS_INTERFACE_DBUS,
                                                  "GetConnectionUnixProcessID");
    const char *name = IPC_DBUS_NAME;
    dbus_uint32_t pid = 0;
    if (m && dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID)) {
        DBusMessage *r = dbus_connection_send_with_reply_and_block(conn, m, 5000, NULL);
        if (r && !dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &pid, DBUS_TYPE_INVALID))
            pid = 0;
        if (r)
            dbus_message_unref(r);
    }
    if (m)
        dbus_message_unref(m);
    return pid;
}

int ipc_dbus_new(struct hd_loop *loop, struct hd_sched *s, struct ipc_dbus **out,
                 struct hr_err *err)
{
    DBusError de;
    dbus_error_init(&de);
    int r;
    struct ipc_dbus *d = calloc(1, sizeof *d);
    if (!d)
        return hr_err_set(err, -ENOMEM, -1, "out of memory");
    d->sched = s;
    d->loop = loop;

    /* A private connection: the frontend owns its lifetime and its main-loop
     * hooks, which a shared one would hand to anyone else in the process. */
    d->conn = dbus_bus_get_private(DBUS_BUS_SESSION, &de);
    if (!d->conn) {
        r = hr_err_set(err, -ENOTCONN, -1, "D-Bus: cannot connect to the session bus: %s",
                       de.message ? de.message : "unknown error");
        goto fail;
    }
    dbus_connection_set_exit_on_disconnect(d->conn, FALSE);
    if (!dbus_connection_add_filter(d->conn, on_filter, d, NULL)) {
        r = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    if (!dbus_connection_try_register_object_path(d->conn, IPC_DBUS_PATH, &vtable, d, &de)) {
        r = hr_err_set(err, -EIO, -1, "D-Bus: cannot register %s: %s", IPC_DBUS_PATH,
                       de.message);
        goto fail;
    }
    /* Before the name is claimed: no client can call us before it is in place. */
    dbus_bus_add_match(d->conn, MATCH_GONE, &de);
    if (dbus_error_is_set(&de)) {
        r = hr_err_set(err, -EIO, -1, "D-Bus: cannot add the NameOwnerChanged match rule: %s",
                       de.message);
        goto fail;
    }
    int rn = dbus_bus_request_name(d->conn, IPC_DBUS_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &de);
    if (rn < 0) {
        r = hr_err_set(err, -EIO, -1, "D-Bus: cannot own %s: %s", IPC_DBUS_NAME, de.message);
        goto fail;
    }
    if (rn != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
        uint32_t pid = name_owner_pid(d->conn);
        if (pid)
            r = hr_err_set(err, -EEXIST, -1, "another hearthd owns %s (pid %u)", IPC_DBUS_NAME,
                           (unsigned)pid);
        else
            r = hr_err_set(err, -EEXIST, -1, "another hearthd owns %s", IPC_DBUS_NAME);
        goto fail;
    }
    /* From here on the loop drives the connection. Calls that arrived while
     * we blocked above (an activating client's) are waiting: dispatch them. */
    if (ipc_dbus_loop_attach(d->conn, loop, &d->attached) < 0) {
        r = hr_err_set(err, -ENOMEM, -1, "D-Bus: cannot watch the bus connection");
        goto fail;
    }
    *out = d;
    return 0;
fail:
    dbus_error_free(&de);
    ipc_dbus_free(d);
    return r;
}

void ipc_dbus_free(struct ipc_dbus *d)
{
    if (!d)
        return;
    /* Pending Ask callers get an answer rather than a timeout. */
    for (struct call *c = d->calls; c; c = c->next)
        if (c->ask && !dbus_message_get_no_reply(c->ask))
            send_msg(d, dbus_message_new_error(c->ask, ERR_FAILED, "hearthd is shutting down"));
    for (struct tcall *t = d->tcalls; t; t = t->next)
        if (!dbus_message_get_no_reply(t->call))
            send_msg(d, dbus_message_new_error(t->call, ERR_FAILED, "hearthd is shutting down"));
    while (d->peers)
        peer_drop(d, d->peers);
    if (d->conn) {
        if (d->attached && !d->lost)
            dbus_connection_flush(d->conn); /* blocks until written (shutdown only) */
        /* Detach first: closing must not call back into a frontend being freed. */
        ipc_dbus_loop_detach(d->attached);
        dbus_connection_close(d->conn);
        dbus_connection_unref(d->conn);
    }
    free(d);
}
