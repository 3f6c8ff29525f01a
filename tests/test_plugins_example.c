/*
 * test_plugins_example.c — the example plugin of docs/plugins.md
 * (plugins/example) loads and works, so the documentation's code is known
 * to be right.
 */
#include "toolsutil.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *const PLUGINS[] = {"example", NULL};

static void stop(void)
{
    tt_stop();
}

TestSuite(example, .fini = stop, .timeout = 120);

Test(example, count_words)
{
    tt_start(PLUGINS, 0, 0);
    const struct hd_tool_def *d = hd_tools_find(tt_tools, "count_words");
    cr_assert_not_null(d);
    cr_assert_str_eq(d->plugin, "example");
    cr_assert_eq(d->risk, HR_RISK_READ);
    struct tt_result r = tt_call("count_words", "{\"text\":\"the quick brown fox\\njumps\"}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "5 words, 2 lines, 25 characters");
    tt_result_done(&r);
    /* characters, not bytes; min_length */
    r = tt_call("count_words", "{\"text\":\"\\u00e9t\\u00e9 a b\\n\",\"min_length\":2}");
    tt_assert_ok(&r);
    cr_assert_str_eq(r.output, "1 words, 1 lines, 8 characters");
    tt_result_done(&r);
    r = tt_call("count_words", "{\"text\":\"x\",\"min_length\":0}");
    tt_assert_error(&r, HD_TOOL_INVALID, "less than the minimum 1");
    tt_result_done(&r);
}
