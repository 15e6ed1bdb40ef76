#!/usr/bin/env bash
# Runs every fuzz target for a bounded time; fails on a panic, a hang (one
# input over 10 s) or memory over 2 GiB, and prints the input that did it.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET]      (default 60)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). libFuzzer's
# instrumentation uses unstable compiler flags; RUSTC_BOOTSTRAP lets the
# stable toolchain accept them, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTC_BOOTSTRAP=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FUZZ_SCRATCH="$work/scratch"
mkdir -p "$FUZZ_SCRATCH"

# Seeds: the committed ones (which keep every input that once failed), the
# example pipelines and their data.
mkdir -p "$work/corpus/pipeline_file" "$work/corpus/data_readers"
cp seeds/pipeline_file/* ../pipelines/*.yaml "$work/corpus/pipeline_file/"
cp seeds/data_readers/* ../pipelines/data/*.csv "$work/corpus/data_readers/"

cargo fuzz build

status=0
for target in pipeline_file data_readers; do
    dict=()
    [ -f "$target.dict" ] && dict=("-dict=$target.dict")
    echo "== fuzz $target for ${secs}s"
    if ! cargo fuzz run "$target" "$work/corpus/$target" -- \
            -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
            -max_len=16384 -print_final_stats=1 "${dict[@]}" \
            -artifact_prefix="$work/" 2>"$work/$target.log"; then
        status=1
        tail -n 60 "$work/$target.log"
        for a in "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/leak-*; do
            [ -e "$a" ] || continue
            echo "-- failing input $(basename "$a") (base64); add it to fuzz/seeds/$target/ once fixed:"
            base64 -w0 "$a"; echo
            rm -f "$a"
        done
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$work/$target.log" || true
    fi
done
exit $status
