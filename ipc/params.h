/*
 * params.h — the JSON → request mapping every JSON frontend shares (the
 * Unix-socket JSON-RPC server, the OpenAI-compatible HTTP API): sampling and
 * length keys of a request object read into struct hd_gen_params, with the
 * same names, ranges and error messages everywhere.
 *
 * Keys (all optional; JSON null means "not given"):
 *   temperature        number in [0, 100]         0: greedy
 *   top_k              integer >= 0                0: off
 *   top_p              number in [0, 1]            1: off
 *   min_p              number in [0, 1]            0: off
 *   repeat_penalty     number in (0, 100]          1: off
 *   frequency_penalty  number in [-2, 2]           0: off
 *   presence_penalty   number in [-2, 2]           0: off
 *   seed               integer in [0, 2^63)        default: random
 *   max_tokens         integer >= 1 (aliases max_completion_tokens, n_predict;
 *                      n_predict -1 means "until the context is full")
 *   stop               string or array of at most HD_MAX_STOP non-empty strings
 *   ignore_eos         boolean
 *   grammar            string: GBNF (docs/grammar.md) the answer must match
 *   json_schema        object: a JSON Schema the answer must be a document of
 *   lora               LoRA adapters: an array of at most HD_MAX_LORA
 *                      {"name": loaded adapter, "scale": number in [-10, 10],
 *                      default 1} (or just the name), or a string: a profile
 *                      of the config's lora.profiles
 */
#ifndef HEARTH_IPC_PARAMS_H
#define HEARTH_IPC_PARAMS_H

#include "../daemon/scheduler.h"

#include <jansson.h>

/* The keys ipc_params_gen reads, NULL-terminated (for frontends that reject
 * unknown keys). */
extern const char *const ipc_params_gen_keys[];

/* Fills *g with hd_gen_params_init(s) and then the keys above found in `obj`
 * (a JSON object). Other keys are ignored. The stop strings in g->stop are
 * borrowed from `obj`, as are g->grammar, g->json_schema (the schema's
 * text is kept in `obj` under a private key) and the LoRA names: valid while it lives
 * (hd_sched_submit copies them).
 * Errors: -EINVAL with err->msg naming the key and what it must be
 * ("'top_k' must be an integer >= 0"); *g is then unspecified. */
int ipc_params_gen(struct hd_sched *s, json_t *obj, struct hd_gen_params *g, struct hr_err *err);

#endif
