/*
 * agent.c — which tool-call format a chat template teaches (see agent.h).
 *
 * The families are told apart by what their templates write, checked in
 * this order (tested on the reference templates of ../shared/refdata):
 *   "<tool_call>"                          Qwen 2.5/3, Hermes 2/3
 *   "[TOOL_CALLS]" or "[AVAILABLE_TOOLS]"   Mistral
 *   "<|start_header_id|>" and "tools"       Llama 3.1/3.2/3.3
 * Anything else — no template, or one without tool support — gets Hermes,
 * which small models follow best and the agent explains in its own prompt.
 */
#include "agent.h"

#include <errno.h>
#include <string.h>

enum hd_tool_format hd_tool_format_of(const char *t)
{
    if (!t)
        return HD_TOOLFMT_HERMES;
    if (strstr(t, "<tool_call>"))
        return HD_TOOLFMT_HERMES;
    if (strstr(t, "[TOOL_CALLS]") || strstr(t, "[AVAILABLE_TOOLS]"))
        return HD_TOOLFMT_MISTRAL;
    if (strstr(t, "<|start_header_id|>") && strstr(t, "tools"))
        return HD_TOOLFMT_LLAMA3;
    return HD_TOOLFMT_HERMES;
}

const char *hd_tool_format_name(enum hd_tool_format f)
{
    switch (f) {
    case HD_TOOLFMT_HERMES: return "hermes";
    case HD_TOOLFMT_LLAMA3: return "llama3";
    case HD_TOOLFMT_MISTRAL: return "mistral";
    }
    return "hermes";
}

int hd_tool_format_parse(const char *name, enum hd_tool_format *out)
{
    static const enum hd_tool_format all[] = {HD_TOOLFMT_HERMES, HD_TOOLFMT_LLAMA3,
                                              HD_TOOLFMT_MISTRAL};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++) {
        if (!strcmp(name, hd_tool_format_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

bool hd_template_has_tools(const char *t)
{
    return t && strstr(t, "tools") != NULL;
}
