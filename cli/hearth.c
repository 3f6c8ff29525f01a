/*
 * hearth.c — the `hearth` command: the table of subcommands and main().
 * Each subcommand lives in its own file (cmd_*.c) and follows the output
 * and error conventions of cli.h.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} commands[] = {
    {"generate", cmd_generate,
     "generate -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
     "           [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX] [--cache-type f32|f16]\n"
     "           [--lora FILE[:SCALE]]...\n"
     "      continue PROMPT with up to N tokens (default 128; --temp 0 is greedy)"},
    {"tokenize", cmd_tokenize,
     "tokenize -m MODEL -p TEXT\n"
     "      print the token ids of TEXT (BOS included when the model adds it)"},
    {"logits", cmd_logits,
     "logits -m MODEL --tokens ID,ID,... -o FILE [-t THREADS] [--lora FILE[:SCALE]]...\n"
     "      evaluate the tokens as one batch; write float32 logits [n_tokens][n_vocab]"},
    {"bench", cmd_bench,
     "bench -m MODEL [-p 128] [-n 64] [-d 0] [-t THREADS] [-r REPS] [--json] [--no-limits]\n"
     "           [--lora FILE[:SCALE]]...\n"
     "      speed: prompt processing (ppP) and generation (tgN) in tokens/s, GB/s, GOP/s\n"
     "      and the fraction of this machine's limits; -d D: from a cache of D tokens\n"
     "  bench --limits [-t THREADS] [--json]\n"
     "      measure the machine: DRAM read bandwidth, int8 and fp32 peaks (cached)"},
    {"mkmodel", cmd_mkmodel,
     "mkmodel --shape NAME --type TYPE -o FILE [--seed S] [-t THREADS] | mkmodel --list\n"
     "      write a random-weight model with the shapes, vocabulary size and tensor types\n"
     "      of a real one (smollm2-135m qwen2.5-0.5b qwen2.5-1.5b qwen3-0.6b llama-3.2-1b)"},
    {"quantize", cmd_quantize,
     "quantize IN OUT TYPE [-t THREADS]\n"
     "      convert an F32/F16/BF16 model to TYPE as llama-quantize does: f32 f16 bf16 q8_0\n"
     "      q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k"},
    {"lora", cmd_lora,
     "lora merge BASE ADAPTER[:SCALE]... -o OUT [--type T] [-t THREADS]\n"
     "      fold LoRA adapters into a model file (each tensor requantized to its type, or T)\n"
     "  lora import DIR -m BASE -o OUT.gguf\n"
     "      convert a PEFT adapter (adapter_config.json + adapter_model.safetensors) to GGUF\n"
     "  lora load FILE [--name N] | lora list [--json] | lora unload NAME  [--socket PATH]\n"
     "      load, list and unload adapters of the running hearthd (docs/lora.md)"},
    {"train", cmd_train,
     "train -m BASE --data FILE -o ADAPTER.gguf [--rank 16] [--alpha 32]\n"
     "           [--targets q,k,v,o,gate,up,down] [--epochs 2] [--lr 2e-4] [--ctx 512]\n"
     "           [--batch-tokens N] [--val 5%] [--seed S] [--resume CKPT] [--estimate]\n"
     "      fine-tune a LoRA adapter on text, chats or prompt/completion pairs (JSONL) on\n"
     "      the CPU; validation perplexity before and after (hearth train --help: all options)"},
    {"ask", cmd_ask,
     "ask [--socket PATH] [--session S] [-n|--max-tokens N] [--temp T] [--seed S] [--raw] [-v]\n"
     "           QUESTION...\n"
     "      ask the running hearthd; the answer streams to stdout (--raw: QUESTION is a\n"
     "      prompt to continue, without the chat template; -v: token counts on stderr)"},
    {"chat", cmd_chat,
     "chat [--socket PATH] [--session S] [--system TEXT] [-n N] [--temp T] [--seed S] [-v]\n"
     "      talk with the running hearthd, one line per turn (/reset starts over, /exit\n"
     "      quits; Ctrl-C stops an answer)"},
    {"status", cmd_status,
     "status [--socket PATH] [--json]\n"
     "      what the running hearthd serves: model, uptime, requests, sessions, tokens"},
    {"tools", cmd_tools,
     "tools [--socket PATH] [--json]\n"
     "      the tools hearthd offers, their risk (read, write, exec) and policy"},
    {"tool", cmd_tool,
     "tool [--socket PATH] [--yes] [--json] NAME ['JSON']\n"
     "      call one tool in the current directory (write/exec tools ask first: only\n"
     "      \"y\" or \"yes\" runs them; --yes approves)"},
    {"run", cmd_run,
     "run [--socket PATH] [--yes] SCRIPT.lua [ARGS...]\n"
     "      run a Lua script in hearthd (docs/lua.md); its output streams here"},
    {"agent", cmd_agent,
     "agent [--socket PATH] [--yes] [--max-steps N] [--tools a,b] [--format F] [-n N]\n"
     "           [--temp T] [--seed S] [--json] TASK...\n"
     "      let the model do TASK with the tools in the current directory, showing its\n"
     "      steps; approvals are asked here (docs/agent.md)"},
    {"cmd", cmd_cmd,
     "cmd [--socket PATH] [--print|--json] [-n N] [--temp T] [--seed S] [-v] TASK...\n"
     "      propose one shell command for TASK, with an explanation and its risk, then\n"
     "      [e]xecute / [d]escribe / [a]bort (runs only on your answer at a terminal; --print:\n"
     "      the command alone, for the key bindings of scripts/hearth.bash and hearth.zsh)"},
    {"explain", cmd_explain,
     "explain [--socket PATH] [-n N] [--temp T] [--seed S] [-v] COMMAND...\n"
     "      explain a shell command, part by part, and what could go wrong"},
};

static void usage(FILE *f)
{
    fputs("usage: hearth COMMAND [OPTIONS]\n\ncommands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    cli_die(EXIT_USAGE, "unknown command '%s' (see hearth --help)", argv[1]);
}
