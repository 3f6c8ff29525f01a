#!/bin/sh
# bench/run.sh — hearth's benchmark table, reproducible without downloads.
#
# Builds hearth (release) in build-bench-release/, makes random-weight models
# with the real shapes and tensor-type mixes (`hearth mkmodel`) in
# bench/models/ (git-ignored; kept between runs, REGEN=1 remakes them),
# measures this machine's limits (`hearth bench --limits`), runs
# `hearth bench --json` on every model and writes docs/benchmarks.md: the
# machine, the exact commands, hearth's pp128/tg64 next to llama.cpp's, and
# the fraction of each machine's limits (the comparable figure, since the
# llama.cpp numbers come from another CPU).
#
# Environment: THREADS (2), REPS (3), BUILD, MODELS, OUT (paths), REGEN,
# WAIT_IDLE (600: seconds to wait for idle CPUs before the limits; before
# each model 300, or WAIT_IDLE if less), BENCH_TABLE (below).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench-release}
MODELS=${MODELS:-$ROOT/bench/models}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
HEARTH=$BUILD/cli/hearth
T0=$(date +%s)

# shape, mix, llama.cpp pp128 tok/s, llama.cpp tg64 tok/s (CPU backend, 2
# threads, AMD Zen 5; see REF_* below for that machine's limits).
# BENCH_TABLE replaces it (same format), e.g. for a quick trial of the script.
TABLE=${BENCH_TABLE:-'qwen2.5-0.5b q4_0 710 92
qwen2.5-0.5b q8_0 357 62
qwen2.5-0.5b q4_k_m 300 68
llama-3.2-1b q4_k_m 201 43
smollm2-135m q8_0 1053 178'}
REF_CPU='AMD Zen 5'
REF_READ_GBS=44.5    # DRAM read bandwidth, 2 threads
REF_INT8_GOPS=2080   # int8 VNNI peak, 2 threads (no AMX on that CPU)
REF_FP32_GFLOPS=524  # fp32 FMA peak, 2 threads

say() { printf 'bench: %s\n' "$*" >&2; }

# ---- build ---------------------------------------------------------------------
if [ ! -d "$BUILD" ]; then
    say "configuring $BUILD (release)"
    meson setup "$BUILD" "$ROOT" --buildtype=release -Dtests=false >/dev/null
fi
say "building"
ninja -C "$BUILD" -j"$(nproc)" >/dev/null

# ---- models ----------------------------------------------------------------------
mkdir -p "$MODELS"
echo "$TABLE" | while read -r shape mix pp tg; do
    f="$MODELS/$shape-$mix.gguf"
    if [ ! -s "$f" ] || [ -n "${REGEN:-}" ]; then
        say "making $f"
        "$HEARTH" mkmodel --shape "$shape" --type "$mix" -o "$f"
    fi
done
T_MODELS=$(date +%s)

# ---- limits and benchmarks --------------------------------------------------------
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
# Other processes skew every figure: before the limits and before each model,
# wait until the CPUs have been at least 90% idle for 5 s (at most WAIT_IDLE s
# the first time, 300 s (or WAIT_IDLE if less) later); and a model whose tokens/s vary by more than
# 10% (sd / mean), or during whose run other processes took more than 5% of
# the CPU time, was disturbed: run it again, up to 5 times in all.
WAIT_IDLE=${WAIT_IDLE:-600}
WAIT_MODEL=$((WAIT_IDLE < 300 ? WAIT_IDLE : 300))
cpu_busy() { # percent of CPU time not idle over the next 5 s
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 5
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8, $5 + $6 }' /proc/stat)
    echo "$a $b" | awk '{ t = $3 - $1; print (t > 0 ? int(100 * (1 - ($4 - $2) / t)) : 0) }'
}
wait_idle() { # max seconds; sets busy and adds to waited
    w=0
    while busy=$(cpu_busy) && [ "$busy" -gt 10 ] && [ "$w" -lt "$1" ]; do
        if [ "$w" = 0 ]; then say "waiting for idle CPUs (${busy}% busy; up to $1 s)"; fi
        w=$((w + 5))
    done
    waited=$((waited + w))
    if [ "$busy" -gt 10 ]; then say "the machine is still ${busy}% busy; measuring anyway"; fi
}
cpu_jiffies() { # busy (user nice system irq softirq steal) and total jiffies
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
# run_measured OUT CMD...: runs CMD with stdout to OUT (under /usr/bin/time
# when there is one) and prints the share of all CPU time that other
# processes (or the hypervisor, as steal) took meanwhile, in percent; "?"
# without /usr/bin/time.
run_measured() {
    out=$1
    shift
    a=$(cpu_jiffies)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%U %S' -o "$RES/cpu" "$@" >"$out"
        b=$(cpu_jiffies)
        echo "$a $b $(tail -n 1 "$RES/cpu")" | awk -v hz="$(getconf CLK_TCK)" '{
            total = $4 - $2; other = $3 - $1 - ($5 + $6) * hz
            print (total > 0 && other > 0 ? int(100 * other / total + 0.5) : 0) }'
    else
        "$@" >"$out"
        echo "?"
    fi
}
noisy() { # true if a test in the file has sd > 10% of its mean
    awk -F'"tokens_per_second": ' 'NF > 1 {
        split($2, a, ","); m = a[1] + 0
        split($0, b, "\"tokens_per_second_sd\": "); split(b[2], c, ","); sd = c[1] + 0
        if (m <= 0 || sd > 0.1 * m) bad = 1
    } END { exit !bad }' "$1"
}
waited=0
wait_idle "$WAIT_IDLE"
BUSY_START=$busy
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "measuring the machine's limits"
"$HEARTH" bench --limits --json -t "$THREADS" >"$RES/limits.jsonl"
echo "$TABLE" | while read -r shape mix pp tg; do
    f="$MODELS/$shape-$mix.gguf"
    for attempt in 1 2 3 4 5; do
        wait_idle "$WAIT_MODEL"
        say "bench $shape $mix (attempt $attempt)"
        other=$(run_measured "$RES/$shape-$mix.jsonl" "$HEARTH" bench -m "$f" --json \
            -t "$THREADS" -r "$REPS" -p 128 -n 64)
        echo "$attempt $other" >"$RES/$shape-$mix.attempts"
        if noisy "$RES/$shape-$mix.jsonl"; then
            say "$shape $mix: tokens/s varied by more than 10%"
        elif [ "$other" != "?" ] && [ "$other" -gt 5 ]; then
            say "$shape $mix: other processes took ${other}% of the CPU time"
        else
            break
        fi
    done
done
T_END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ------------------------------------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
NCPU=$(nproc)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- core cli include 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes in core/, cli/ or include/)"
fi
L3=$(awk '/K$/ { printf "%g MiB", $1 / 1024; next } { print }' \
    /sys/devices/system/cpu/cpu0/cache/index3/size 2>/dev/null || echo unknown)
ISA=$(awk -F'"isa": "' 'NF > 1 { split($2, a, "\""); print a[1]; exit }' "$RES"/*-*.jsonl)
# AMX-INT8 tiles on this machine: `--limits` measured their peak (else 0)
if awk -F'"amx_int8_gops": ' 'NF > 1 && $2 + 0 > 0 { found = 1 } END { exit !found }' \
    "$RES/limits.jsonl"; then
    AMX=1
    AMX_HEAD=' AMX int8 GOP/s |'
    AMX_RULE=' ---: |'
    AMX_METHOD='
and the peak of its AMX int8 tiles (independent TDPBSSD chains on 16 × 16 int32 tiles, K = 64 bytes)'
else
    AMX=0 AMX_HEAD='' AMX_RULE='' AMX_METHOD=''
fi

{
cat <<EOF
# Benchmarks

Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Do not edit by hand: run
the script again.

- hearth: $COMMIT
- the script took $((T_END - T0)) s: $((T_MODELS - T0)) s building and making the models (absent
  ones only), $((T_END - T_MODELS)) s measuring the limits and running the benchmarks
  (including waits for idle CPUs; ${BUSY_START}% busy when measuring started).
- load average (1, 5, 15 min) before measuring: $LOAD_BEFORE; after: $LOAD_AFTER (the
  benchmarks themselves keep $THREADS threads busy; more than that means other processes ran).

The models are **random-weight files with the real shapes**, made by \`hearth mkmodel\`: same
tensor names and shapes, hyperparameters, vocabulary size and per-tensor types as
llama-quantize gives the published models, so every matrix product costs what it costs on the
real file (the output is nonsense). llama.cpp's figures are for the real models.

## Machine

- CPU: $CPU, $NCPU logical CPUs, last-level cache $L3 (as the kernel reports it); hearth's
  kernels: \`$ISA\`
- llama.cpp's figures were measured on another machine ($REF_CPU, 2 threads: DRAM read
  ≈ $REF_READ_GBS GB/s, int8 VNNI peak ≈ $REF_INT8_GOPS GOP/s, fp32 ≈ $REF_FP32_GFLOPS GFLOP/s; no AMX). Raw
  tokens/s are therefore not directly comparable; **the fraction of each machine's own limits
  is.**

Limits of this machine, measured by \`hearth bench --limits -t $THREADS\` (cli/limits.c:
stream-read of a 2 GiB buffer with 256-bit loads; int8 multiply-add peak with independent
vpdpbusd or pmaddubsw chains; fp32 FMA peak; a multiply-add counts as 2 operations)$AMX_METHOD:

| threads | DRAM read GB/s | int8 GOP/s | fp32 GFLOP/s |$AMX_HEAD
| ---: | ---: | ---: | ---: |$AMX_RULE
EOF
awk -v amx="$AMX" '
function jget(line, key,    pat, i, s) {
    pat = "\"" key "\": "; i = index(line, pat); if (!i) return "";
    s = substr(line, i + length(pat));
    if (substr(s, 1, 1) == "\"") { s = substr(s, 2); return substr(s, 1, index(s, "\"") - 1) }
    match(s, /^[-0-9.eE+]+|^null/); return substr(s, 1, RLENGTH)
}
{ printf "| %s | %.1f | %.0f (%s) | %.0f (%s) |", jget($0, "threads"), jget($0, "read_gbs"),
         jget($0, "int8_gops"), jget($0, "int8_kernel"), jget($0, "fp32_gflops"), jget($0, "fp32_kernel")
  if (amx) printf " %.0f (tdpbssd) |", jget($0, "amx_int8_gops")
  printf "\n" }
' "$RES/limits.jsonl"

cat <<EOF

## Commands

\`\`\`sh
meson setup build-bench-release --buildtype=release -Dtests=false && ninja -C build-bench-release
hearth bench --limits --json -t $THREADS
EOF
echo "$TABLE" | while read -r shape mix pp tg; do
    echo "hearth mkmodel --shape $shape --type $mix -o bench/models/$shape-$mix.gguf"
done
echo "$TABLE" | while read -r shape mix pp tg; do
    echo "hearth bench -m bench/models/$shape-$mix.gguf --json -t $THREADS -r $REPS -p 128 -n 64"
done
cat <<EOF
\`\`\`

pp128: a 128-token prompt evaluated in one batch from an empty cache. tg64: 64 tokens generated
one at a time (greedy) after a 1-token start. Each test runs once as a warm-up, then REPS = $REPS
times: mean ± sample standard deviation of tokens/s, $THREADS threads. The script waits for idle
CPUs before each model and runs a model again (up to 5 runs) when its tokens/s vary by more than
10% or when other processes (or the hypervisor) took more than 5% of the CPU time meanwhile;
"runs" says how many it took, "others' CPU" that share during the run shown (the last).

## Speed

| model shape | type | hearth pp128 t/s | llama.cpp pp128 | hearth / llama.cpp | hearth tg64 t/s | llama.cpp tg64 | hearth / llama.cpp | runs | others' CPU |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
echo "$TABLE" | while read -r shape mix pp tg; do
    awk -v shape="$shape" -v mix="$mix" -v lpp="$pp" -v ltg="$tg" -v runs="$(cut -d' ' -f1 "$RES/$shape-$mix.attempts")" -v other="$(cut -d' ' -f2 "$RES/$shape-$mix.attempts")" '
function jget(line, key,    pat, i, s) {
    pat = "\"" key "\": "; i = index(line, pat); if (!i) return "";
    s = substr(line, i + length(pat));
    if (substr(s, 1, 1) == "\"") { s = substr(s, 2); return substr(s, 1, index(s, "\"") - 1) }
    match(s, /^[-0-9.eE+]+|^null/); return substr(s, 1, RLENGTH)
}
jget($0, "test") ~ /^pp/ { pm = jget($0, "tokens_per_second"); ps = jget($0, "tokens_per_second_sd"); type = jget($0, "type") }
jget($0, "test") ~ /^tg/ { tm = jget($0, "tokens_per_second"); ts = jget($0, "tokens_per_second_sd") }
END { printf "| %s | %s | %.1f ± %.1f | %s | %.2f | %.1f ± %.1f | %s | %.2f | %s | %s%% |\n",
             shape, type, pm, ps, lpp, pm / lpp, tm, ts, ltg, tm / ltg, runs, other }
' "$RES/$shape-$mix.jsonl"
done

cat <<EOF

## Fraction of each machine's limits

Prompt processing: GOP/s = 2 × (elements of the weight matrices) × tokens/s, against the int8
peak (block-quantized weights are multiplied as integers). Generation: GB/s = (bytes of weights
read per token: every tensor; the embeddings are tied, so token_embd is the output matrix) ×
tokens/s, against DRAM read bandwidth. llama.cpp's fractions use the same per-token work (the
same shapes and type mixes) with its own tokens/s and its machine's limits.

The int8 peak is that of the vector units (VNNI): issue 3's yardstick for prompt processing, and
the one llama.cpp's figures are measured against. On a CPU with AMX the matrix tiles could do
several times more, and "of AMX peak" is hearth's share of what the silicon could do (— where
a machine has no AMX, as llama.cpp's has not).

| model shape | type | hearth pp GOP/s | of int8 peak | of AMX peak | llama.cpp pp GOP/s | of its int8 peak | of its AMX peak | hearth tg GB/s | of read BW | llama.cpp tg GB/s | of its read BW |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
echo "$TABLE" | while read -r shape mix pp tg; do
    awk -v shape="$shape" -v lpp="$pp" -v ltg="$tg" -v rbw="$REF_READ_GBS" -v ri8="$REF_INT8_GOPS" -v rf32="$REF_FP32_GFLOPS" '
function jget(line, key,    pat, i, s) {
    pat = "\"" key "\": "; i = index(line, pat); if (!i) return "";
    s = substr(line, i + length(pat));
    if (substr(s, 1, 1) == "\"") { s = substr(s, 2); return substr(s, 1, index(s, "\"") - 1) }
    match(s, /^[-0-9.eE+]+|^null/); return substr(s, 1, RLENGTH)
}
jget($0, "test") ~ /^pp/ { pm = jget($0, "tokens_per_second"); gop = jget($0, "gop_per_second");
                           pf = jget($0, "limit_fraction"); plim = jget($0, "limit"); type = jget($0, "type")
                           af = jget($0, "amx_limit_fraction") }
jget($0, "test") ~ /^tg/ { tm = jget($0, "tokens_per_second"); gbs = jget($0, "gbytes_per_second");
                           tf = jget($0, "limit_fraction"); bytes = jget($0, "read_bytes_per_token") }
END {
    lgop = gop / pm * lpp; lgbs = bytes * ltg * 1e-9
    ref = plim == "int8_gops" ? ri8 : rf32
    amx = af == "" ? "—" : sprintf("%.1f%%", 100 * af)
    printf "| %s | %s | %.0f | %.1f%% | %s | %.0f | %.1f%% | — | %.1f | %.1f%% | %.1f | %.1f%% |\n",
           shape, type, gop, 100 * pf, amx, lgop, 100 * lgop / ref, gbs, 100 * tf, lgbs, 100 * lgbs / rbw
}
' "$RES/$shape-$mix.jsonl"
done

if cat "$RES"/*-*.jsonl | awk -F'"limit_fraction": ' 'NF > 1 && $2 + 0 > 1 { found = 1 } END { exit !found }'; then
    cat <<EOF

**Note:** some fractions exceed 100%. Either the limits were measured while other processes
competed for the CPUs or memory (then they are too low: run the script again on a quiet machine),
or the weights did not all come from DRAM: a model smaller than the last-level cache ($L3 here)
is partly read from cache, so generation can beat the DRAM read bandwidth.
EOF
fi

cat <<EOF

## Tensor-type mix of each file

Share of the tensor bytes by type. qwen2.5-0.5b's width (896) and smollm2-135m's (576) are not
multiples of the 256-element K-quant block, so their K mixes fall back heavily (Q4_K → Q5_0,
Q6_K → Q8_0, as llama-quantize does), and their tied output is Q8_0 in every mix.

| file | size | tensor types |
| --- | ---: | --- |
EOF
echo "$TABLE" | while read -r shape mix pp tg; do
    awk -v name="$shape-$mix.gguf" '
function jget(line, key,    pat, i, s) {
    pat = "\"" key "\": "; i = index(line, pat); if (!i) return "";
    s = substr(line, i + length(pat));
    if (substr(s, 1, 1) == "\"") { s = substr(s, 2); return substr(s, 1, index(s, "\"") - 1) }
    match(s, /^[-0-9.eE+]+|^null/); return substr(s, 1, RLENGTH)
}
NR == 1 { printf "| %s | %.1f MiB | %s |\n", name, jget($0, "size_bytes") / 1048576, jget($0, "type_mix") }
' "$RES/$shape-$mix.jsonl"
done

cat <<EOF

## Raw results

\`hearth bench --json\` output, one line per test (and \`--limits\` first):

\`\`\`json
EOF
cat "$RES/limits.jsonl"
echo "$TABLE" | while read -r shape mix pp tg; do cat "$RES/$shape-$mix.jsonl"; done
echo '```'
} >"$OUT.tmp"
# sections other scripts keep up to date in the same file (bench/lora.sh) stay
if [ -f "$OUT" ]; then
    sed -n '/^<!-- begin: bench\/lora.sh -->$/,/^<!-- end: bench\/lora.sh -->$/p' "$OUT" |
        awk 'NR == 1 { print "" } { print }' >>"$OUT.tmp"
fi
mv "$OUT.tmp" "$OUT"
say "wrote $OUT in $((T_END - T0)) s"
