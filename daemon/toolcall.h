/*
 * toolcall.h — finds the tool calls in a model's answer and turns them into
 * OpenAI `tool_calls`.
 *
 * Chat templates teach each model family its own way of calling a tool; the
 * parser recognises the common ones:
 *
 *   Qwen2.5 / Qwen3 / Hermes   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 *                              (any number of them, text around them allowed)
 *   Llama 3.x                  {"name": "f", "parameters": {...}} as the answer's start,
 *                              optionally after <|python_tag|>; several separated by ';'
 *   Mistral                    [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]
 *
 * The model's output is never trusted: a call whose JSON does not parse, or
 * lacks a string "name" or an object (or string) of arguments, is not a call —
 * its text stays in the content. Nothing here validates arguments against the
 * tool's schema; that is the caller's job before anything runs.
 *
 * Used by the HTTP API (ipc/http.c) and the Lua agent. Pure functions: no
 * logging, no state, any thread.
 */
#ifndef HEARTH_DAEMON_TOOLCALL_H
#define HEARTH_DAEMON_TOOLCALL_H

#include <hearth/hearth.h>

#include <stddef.h>

/* Splits a complete answer text[0..len) into content and tool calls.
 *
 * *content: the text outside the calls (owned, free(); never NULL on
 * success). Whitespace next to a call is dropped (text before and after a
 * call is joined by one '\n'), so an answer that is only calls gives "".
 * Text of malformed calls is kept verbatim.
 * *tool_calls_json: an OpenAI tool_calls array (owned, free()), each element
 * {"id":"call_…","type":"function","function":{"name":…,"arguments":"<JSON text>"}},
 * or NULL when there are no calls. Ids are random and unique per call.
 *
 * Returns the number of calls (>= 0), or -EINVAL (text NULL with len > 0),
 * -ENOMEM; outputs are written only on success. */
int hd_toolcalls_parse(const char *text, size_t len, char **content, char **tool_calls_json,
                       struct hr_err *err);

/* For streaming an answer of a request that offered tools: how many bytes
 * of the partial answer text[0..len) may be sent as content already. The
 * rest is held back: everything from the first tool-call opener (or from a
 * partial opener at the end), a whole answer that starts like a Llama JSON
 * call, and trailing whitespace (dropped if a call follows). The bytes
 * released are always a prefix of the content hd_toolcalls_parse returns for
 * any completion of the text, and the value never decreases as text grows. */
size_t hd_toolcalls_stream_safe(const char *text, size_t len);

#endif
