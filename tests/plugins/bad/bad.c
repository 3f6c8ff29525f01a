/*
 * bad.c — broken plugin descriptors for tests/test_tools.c: built once per
 * defect (BAD_ABI, BAD_SIZE, ... selected with -D, see
 * tests/plugins/meson.build) into bad_<defect>.so, each of which the tool
 * host must refuse with a message naming the problem, while it loads the
 * good plugins next to it.
 */
#include <hearth/plugin.h>

#include <stddef.h>

static int noop(const struct hr_host *h, struct hr_tool_call *c)
{
    (void)c;
    return h->appendf(c, "should never run");
}

#define OBJ "{\"type\":\"object\"}"

#if defined(BAD_NAME)
#define NAME1 "Bad-Name"
#else
#define NAME1 "bad_one"
#endif
#if defined(BAD_DUP)
#define NAME2 "bad_one"
#elif defined(BAD_CONFLICT)
#define NAME2 "read_file" /* the files plugin's */
#else
#define NAME2 "bad_two"
#endif
#if defined(BAD_SCHEMA)
#define SCHEMA2 "{\"type\":\"object\",\"properties\":"
#elif defined(BAD_KEYWORD)
#define SCHEMA2 "{\"type\":\"object\",\"properties\":{\"x\":{\"oneOf\":[]}}}"
#elif defined(BAD_NOTOBJECT)
#define SCHEMA2 "{\"type\":\"array\"}"
#else
#define SCHEMA2 OBJ
#endif

static const struct hr_tool one = {
    .struct_size = sizeof(struct hr_tool),
    .risk = HR_RISK_READ,
    .name = NAME1,
    .description = "A tool of a broken plugin.",
    .parameters = OBJ,
    .call = noop,
};

static const struct hr_tool two = {
#if defined(BAD_TOOLSIZE)
    .struct_size = 8,
#else
    .struct_size = sizeof(struct hr_tool),
#endif
#if defined(BAD_RISK)
    .risk = 7,
#else
    .risk = HR_RISK_WRITE,
#endif
    .name = NAME2,
    .description = "Another tool of a broken plugin.",
    .parameters = SCHEMA2,
#if defined(BAD_NOCALL)
    .call = NULL,
#else
    .call = noop,
#endif
};

static const struct hr_tool *const tools[] = {&one, &two};

static const struct hr_plugin plugin = {
#if defined(BAD_ABI)
    .abi_version = 99,
#else
    .abi_version = HR_PLUGIN_ABI_VERSION,
#endif
#if defined(BAD_SIZE)
    .struct_size = 8,
#else
    .struct_size = sizeof(struct hr_plugin),
#endif
    .name = PLUGIN_NAME, /* bad_<defect>, from the build */
    .version = "0",
    .description = "Broken on purpose.",
    .n_tools = 2,
    .tools = tools,
};

#if !defined(BAD_NOENTRY)
HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry(void)
{
#if defined(BAD_NULL)
    (void)plugin;
    return NULL;
#else
    return &plugin;
#endif
}
#else
/* exported under another name: the host finds no entry point */
HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry_v0(void);
HR_PLUGIN_EXPORT const struct hr_plugin *hearth_plugin_entry_v0(void)
{
    return &plugin;
}
#endif
