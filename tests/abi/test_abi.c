/*
 * test_abi.c — pins the plugin ABI of include/hearth/plugin.h (version 1) on
 * x86-64 / LP64: struct sizes, member offsets, enum values and the entry
 * symbol's name. A plugin built against this header must keep working with
 * every later host, so none of these may change; a new member goes at the
 * end of its struct (and a new line here), and this file only ever grows.
 * The static_asserts fail the build; the Criterion tests restate them so
 * that the test log shows the ABI was checked.
 */
#include <hearth/plugin.h>

#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) || defined(__aarch64__)
#define PIN(expr, value) _Static_assert((expr) == (value), #expr " changed: plugin ABI break")
#else
#define PIN(expr, value)
#endif

PIN(HR_PLUGIN_ABI_VERSION, 1);
PIN(HR_PLUGIN_NAME_MAX, 64);

PIN(HR_RISK_READ, 0);
PIN(HR_RISK_WRITE, 1);
PIN(HR_RISK_EXEC, 2);
PIN(HR_LOG_DEBUG, 0);
PIN(HR_LOG_INFO, 1);
PIN(HR_LOG_WARNING, 2);
PIN(HR_LOG_ERROR, 3);

PIN(offsetof(struct hr_tool, struct_size), 0);
PIN(offsetof(struct hr_tool, risk), 4);
PIN(offsetof(struct hr_tool, name), 8);
PIN(offsetof(struct hr_tool, description), 16);
PIN(offsetof(struct hr_tool, parameters), 24);
PIN(offsetof(struct hr_tool, call), 32);
PIN(sizeof(struct hr_tool), 40);

PIN(offsetof(struct hr_plugin, abi_version), 0);
PIN(offsetof(struct hr_plugin, struct_size), 4);
PIN(offsetof(struct hr_plugin, name), 8);
PIN(offsetof(struct hr_plugin, version), 16);
PIN(offsetof(struct hr_plugin, description), 24);
PIN(offsetof(struct hr_plugin, n_tools), 32);
PIN(offsetof(struct hr_plugin, tools), 40);
PIN(offsetof(struct hr_plugin, init), 48);
PIN(sizeof(struct hr_plugin), 56);

PIN(offsetof(struct hr_tool_call, struct_size), 0);
PIN(offsetof(struct hr_tool_call, id), 8);
PIN(offsetof(struct hr_tool_call, tool), 16);
PIN(offsetof(struct hr_tool_call, args_json), 24);
PIN(offsetof(struct hr_tool_call, workspace), 32);
PIN(offsetof(struct hr_tool_call, workspace_fd), 40);
PIN(offsetof(struct hr_tool_call, timeout_ms), 48);
PIN(offsetof(struct hr_tool_call, deadline_ms), 56);
PIN(offsetof(struct hr_tool_call, output_cap), 64);
PIN(sizeof(struct hr_tool_call), 72);

PIN(offsetof(struct hr_host, abi_version), 0);
PIN(offsetof(struct hr_host, struct_size), 4);
PIN(offsetof(struct hr_host, log_message), 8);
PIN(offsetof(struct hr_host, alloc), 16);
PIN(offsetof(struct hr_host, arg_string), 24);
PIN(offsetof(struct hr_host, arg_int), 32);
PIN(offsetof(struct hr_host, arg_number), 40);
PIN(offsetof(struct hr_host, arg_bool), 48);
PIN(offsetof(struct hr_host, arg_json), 56);
PIN(offsetof(struct hr_host, open_path), 64);
PIN(offsetof(struct hr_host, path_error), 72);
PIN(offsetof(struct hr_host, cancelled), 80);
PIN(offsetof(struct hr_host, append), 88);
PIN(offsetof(struct hr_host, appendf), 96);
PIN(offsetof(struct hr_host, set_error), 104);
PIN(offsetof(struct hr_host, output_room), 112);
PIN(sizeof(struct hr_host), 120);

Test(plugin_abi, version_and_symbol)
{
    cr_assert_eq(HR_PLUGIN_ABI_VERSION, 1);
    cr_assert_str_eq(HR_PLUGIN_ENTRY, "hearth_plugin_entry");
}

Test(plugin_abi, enum_values)
{
    cr_assert_eq(HR_RISK_READ, 0);
    cr_assert_eq(HR_RISK_WRITE, 1);
    cr_assert_eq(HR_RISK_EXEC, 2);
    cr_assert_eq(HR_LOG_DEBUG, 0);
    cr_assert_eq(HR_LOG_ERROR, 3);
}

Test(plugin_abi, struct_sizes)
{
    cr_assert_eq(sizeof(struct hr_tool), 40);
    cr_assert_eq(sizeof(struct hr_plugin), 56);
    cr_assert_eq(sizeof(struct hr_tool_call), 72);
    cr_assert_eq(sizeof(struct hr_host), 120);
    /* the version fields lead, where a host of any version finds them */
    cr_assert_eq(offsetof(struct hr_plugin, abi_version), 0);
    cr_assert_eq(offsetof(struct hr_plugin, struct_size), 4);
    cr_assert_eq(offsetof(struct hr_host, struct_size), 4);
    cr_assert_eq(offsetof(struct hr_tool, struct_size), 0);
    cr_assert_eq(offsetof(struct hr_tool_call, struct_size), 0);
}

/* HR_HOST_HAS: a member past the declared size is absent, as is a NULL one. */
Test(plugin_abi, optional_members)
{
    struct hr_host h;
    memset(&h, 0, sizeof h);
    h.struct_size = (uint32_t)offsetof(struct hr_host, append);
    h.cancelled = (bool (*)(struct hr_tool_call *))1; /* never called */
    h.append = (int (*)(struct hr_tool_call *, const char *, size_t))1;
    cr_assert(HR_HOST_HAS(&h, cancelled));
    cr_assert(!HR_HOST_HAS(&h, append), "a member beyond struct_size");
    cr_assert(!HR_HOST_HAS(&h, path_error), "a NULL member");
    h.struct_size = sizeof h;
    cr_assert(HR_HOST_HAS(&h, append));
}
