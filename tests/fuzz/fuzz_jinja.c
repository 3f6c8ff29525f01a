/*
 * fuzz_jinja.c — libFuzzer target for the chat-template interpreter
 * (core/jinja*.c) and hr_chat_render's request handling (core/chat.c).
 *
 * Input: template source, optionally followed by a NUL byte and a messages
 * JSON array (without one, a fixed conversation with a system message, a
 * tool call with string arguments and a tool result is used, so the
 * capability probes and the message adaptations run too). Rendering uses
 * small limits so that runaway templates end quickly: what is checked is
 * that nothing crashes, leaks or reads out of bounds, that every failure
 * carries a message, and that a success is a NUL-terminated string.
 */
#include "chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char default_messages[] =
    "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"What is in notes.txt?\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"call00001\","
    " \"type\": \"function\", \"function\": {\"name\": \"read_file\","
    " \"arguments\": \"{\\\"path\\\": \\\"notes.txt\\\"}\"}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"call00001\", \"content\": \"buy milk\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"thanks\"}]}]";

static const char tools[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"read_file\", \"description\": \"Read\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"path\": {\"type\": \"string\"}},"
    " \"required\": [\"path\"]}}}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *tmpl = malloc(tlen + 1);
    char *msgs = NULL;
    if (!tmpl)
        return 0;
    memcpy(tmpl, data, tlen);
    tmpl[tlen] = '\0';
    if (nul) {
        size_t mlen = size - tlen - 1;
        if (!(msgs = malloc(mlen + 1))) {
            free(tmpl);
            return 0;
        }
        memcpy(msgs, nul + 1, mlen);
        msgs[mlen] = '\0';
    }
    struct jinja_limits lim = {.max_output = 1 << 20, .max_memory = 32 << 20,
                               .max_steps = 200000, .max_depth = 200};
    struct hr_chat_opts o = {.add_generation_prompt = true, .bos_token = "<s>",
                             .eos_token = "</s>", .now = 1795694400,
                             .extra_json = "{\"enable_thinking\": false}"};
    for (int with_template = 1; with_template >= 0; with_template--) {
        char *out = NULL;
        struct hr_err err;
        int rc = chat_render(with_template ? tmpl : NULL, msgs ? msgs : default_messages, tools,
                             &o, &lim, &out, &err);
        if (rc < 0 && (out || !err.msg[0]))
            abort(); /* failures leave *out alone and always say why */
        if (rc == 0 && (!out || strlen(out) > lim.max_output))
            abort();
        free(out);
    }
    free(msgs);
    free(tmpl);
    return 0;
}
