/*
 * example.c — the smallest useful hearth plugin, the one docs/plugins.md
 * walks through: one read-only tool, `count_words`, that counts the words,
 * lines and characters of a text the model passes in.
 *
 * It shows the parts every plugin has: the tool table with a JSON Schema,
 * reading arguments through the host, building the result, reporting an
 * error, and the exported entry point. It is built and tested with the
 * others (tests/test_plugins_example.c) but not installed.
 */
#include <hearth/plugin.h>

#include <errno.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int count_words(const struct hr_host *host, struct hr_tool_call *call)
{
    size_t len = 0;
    /* "text" is required by the schema: the host has checked it is a string */
    const char *text = host->arg_string(call, "text", &len);
    if (!text)
        return host->set_error(call, "no text given");
    int64_t min_length = 1;
    /* optional: -ENOENT leaves the default in place */
    host->arg_int(call, "min_length", &min_length);

    size_t words = 0, lines = 0, chars = 0;
    for (size_t i = 0; i < len;) {
        if (is_space(text[i])) {
            lines += text[i] == '\n';
            chars++;
            i++;
            continue;
        }
        size_t n = 0; /* characters in this word (UTF-8: not bytes) */
        for (; i < len && !is_space(text[i]); i++)
            n += ((unsigned char)text[i] & 0xC0) != 0x80;
        chars += n;
        words += (int64_t)n >= min_length;
    }
    if (len && text[len - 1] != '\n')
        lines++; /* a last line without a newline still counts */

    int rc = host->appendf(call, "%zu words, %zu lines, %zu characters", words, lines, chars);
    /* -ENOSPC means the output cap was reached: the result is cut, not failed */
    return rc == -ENOSPC ? 0 : rc;
}

static const struct hr_tool count_words_tool = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = "count_words",
    .description = "Counts the words, lines and characters of a text. Returns one line, "
                   "e.g. \"12 words, 2 lines, 61 characters\".",
    .parameters = "{\"type\":\"object\","
                  "\"properties\":{"
                  "\"text\":{\"type\":\"string\",\"description\":\"The text to count.\","
                  "\"maxLength\":1000000},"
                  "\"min_length\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,"
                  "\"description\":\"Count only words of at least this many characters "
                  "(default 1).\"}},"
                  "\"required\":[\"text\"],"
                  "\"additionalProperties\":false}",
    .call = count_words,
};

static const struct hr_tool *const tools[] = {&count_words_tool};

static const struct hr_plugin plugin = {
    .abi_version = HR_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct hr_plugin),
    .name = "example",
    .version = "1.0.0",
    .description = "An example plugin: counts words.",
    .n_tools = sizeof tools / sizeof tools[0],
    .tools = tools,
};

HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
    return &plugin;
}
