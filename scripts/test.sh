#!/usr/bin/env bash
# Runs every test, Rust and Python. Needs Python >= 3.9 and a Rust toolchain; everything
# else (maturin, pytest, the crates) is installed here, into .venv and cargo's cache.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The test dependency group (pyproject.toml); pip reads groups from 25.1 on.
.venv/bin/python -m pip install --quiet -e . --group test

# Build the Rust tests against the same interpreter the extension was built for.
export PYO3_PYTHON="$PWD/.venv/bin/python"
echo "== cargo test"
cargo test --locked
echo "== pytest"
.venv/bin/python -m pytest "$@"
