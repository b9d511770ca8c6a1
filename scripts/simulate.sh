#!/usr/bin/env bash
# Runs the flush thread's simulator (src/worker/sim/) over many seeds, optimised, the
# seeds split over the machine's cores: `bash scripts/simulate.sh [SEEDS] [FIRST]`
# (default: 1 000 000 seeds from 0). A failure prints its seed; `SIM_SEED=n cargo test
# --lib sim:: -- --nocapture` runs it alone and says what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1000000}
first=${2:-0}
jobs=$(nproc)
# The crate links the interpreter it is built for (PyO3).
if [ -x .venv/bin/python ]; then
    export PYO3_PYTHON="$PWD/.venv/bin/python"
fi
cargo test --release --locked --lib --no-run --quiet
per=$(((seeds + jobs - 1) / jobs))
start=$(date +%s)
pids=()
for ((i = 0; i < jobs; i++)); do
    from=$((first + i * per))
    count=$((per < first + seeds - from ? per : first + seeds - from))
    [ "$count" -gt 0 ] || continue
    SIM_FIRST=$from SIM_SEEDS=$count cargo test --release --locked --lib --quiet sim:: &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
echo "$seeds seeds from $first: $([ $status = 0 ] && echo "all kept every promise" || echo FAILED) in $(($(date +%s) - start)) s"
exit $status
