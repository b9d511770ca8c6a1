#!/usr/bin/env bash
# Runs each fuzz target (fuzz/; what they check is in src/fuzzing.rs) for FUZZ_SECONDS
# (default 30) each. Installs cargo-fuzz when it is missing. It runs on the stable
# toolchain with no sanitizer (`-s none`): the code fuzzed is safe Rust, so a finding is
# a panic. Builds, corpus and findings go to a temp dir, named and kept on failure;
# nothing is written into the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
command -v cargo-fuzz >/dev/null || cargo install --quiet cargo-fuzz --locked
work=$(mktemp -d)
# The fuzz crate, pointed at this checkout, with the package's own pinned versions.
cp -r fuzz "$work/fuzz"
cp Cargo.lock "$work/fuzz/Cargo.lock"
sed -i "s|^logwell-handler = { path = \"..\" }|logwell-handler = { path = \"$PWD\" }|" "$work/fuzz/Cargo.toml"
# The crate links the interpreter it is built for (PyO3).
if [ -x .venv/bin/python ]; then
    PYO3_PYTHON="$PWD/.venv/bin/python"
else
    PYO3_PYTHON=$(command -v "${PYTHON:-python3}")
fi
export PYO3_PYTHON
export CARGO_TARGET_DIR="$work/target"
for target in spool_frames json_string triage delivery; do
    echo "== fuzz $target (${seconds} s)"
    if ! cargo fuzz run --fuzz-dir "$work/fuzz" --sanitizer none "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>"$work/$target.log"; then
        tail -40 "$work/$target.log" >&2
        echo "fuzz target $target failed: the input is under $work/fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" "$work/$target.log" || true
done
rm -rf "$work"
