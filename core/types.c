/*
 * types.c — the size table of every ggml type id (FORMATS.md §1.5).
 *
 * The GGUF reader validates tensors against it, so it lists every id a file
 * may carry, including types hearth cannot compute with (IQ*, TQ*, MXFP4 ...):
 * those load as data and are refused by the model loader by name.
 */
#include "quant.h"

static const struct hr_type_info type_table[HR_TYPE_COUNT] = {
    [0] = {"f32", 1, 4},        [1] = {"f16", 1, 2},        [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},     [6] = {"q5_0", 32, 22},     [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},     [9] = {"q8_1", 32, 36},     [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},  [12] = {"q4_K", 256, 144},  [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},  [15] = {"q8_K", 256, 292},  [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74}, [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},  [21] = {"iq3_s", 256, 110}, [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},       [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},       [27] = {"i64", 1, 8},       [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},  [30] = {"bf16", 1, 2},      [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},  [39] = {"mxfp4", 32, 17},   [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},   [42] = {"q2_0", 64, 18},
};

const struct hr_type_info *hr_type_info(uint32_t type)
{
    if (type >= HR_TYPE_COUNT || type_table[type].blck == 0)
        return NULL;
    return &type_table[type];
}

const char *hr_type_name(uint32_t type)
{
    const struct hr_type_info *t = hr_type_info(type);
    return t ? t->name : NULL;
}

size_t hr_row_size(uint32_t type, int64_t n)
{
    const struct hr_type_info *t = hr_type_info(type);
    return t ? (size_t)(n / t->blck) * t->size : 0;
}
