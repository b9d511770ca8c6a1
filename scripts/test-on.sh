#!/usr/bin/env bash
# Tests the checkout on one more interpreter: a fresh venv of PYTHON in a temp dir, the
# package built and installed there with the test group, then the tests but the slow
# ones. Nothing is written into the checkout. .ci/run calls it for every supported
# Python but the one scripts/test.sh used (for 3.14 and 3.15, inside scripts/sid-root.sh).
#
#     bash scripts/test-on.sh PYTHON [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:?usage: bash scripts/test-on.sh PYTHON [PYTEST ARGS...]}
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$work/target} \
    "$work/venv/bin/python" -m pip install --quiet "$PWD" --group test
PYTHONDONTWRITEBYTECODE=1 "$work/venv/bin/python" -m pytest -p no:cacheprovider \
    -m "not slow" "$@" tests
