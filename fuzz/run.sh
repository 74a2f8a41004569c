#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for POINTS_FUZZ_SECONDS (default 30) seconds,
# starting from a copy of its seed corpus (fuzz/corpus/<target>/), so that a run adds no
# files to the repository. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/; `cargo fuzz run <target> <that file>` replays it.
#
#   bash fuzz/run.sh                                   # what CI runs (.ci/run)
#   POINTS_FUZZ_SECONDS=900 bash fuzz/run.sh           # a longer local run, every target
#   POINTS_FUZZ_SECONDS=3600 bash fuzz/run.sh rules_sequence merkle_proofs
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${POINTS_FUZZ_SECONDS:-30}"
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); the stable toolchain takes
# them with this.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version
cargo fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    if [[ -d "corpus/$t" ]]; then
        cp corpus/"$t"/* "$work/$t/"
    fi
    log="$work/$t.log"
    if ! cargo fuzz run "$t" "$work/$t" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 80 "$log"
        printf 'fuzz target %s FAILED; its input is in fuzz/artifacts/%s/\n' "$t" "$t"
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    printf '%-18s %10s executions in %ss, corpus %s inputs\n' \
        "$t" "${execs:-?}" "$seconds" "$(find "$work/$t" -type f | wc -l)"
done
