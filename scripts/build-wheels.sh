#!/usr/bin/env bash
# Builds the Linux x86_64 wheels, CPython 3.9 to 3.13, tagged manylinux2014 (glibc 2.17
# and later) the standard way: maturin, with zig as the linker for the old glibc, both
# from PyPI. Then, for each wheel: `auditwheel show` confirms its tag, and a fresh venv of
# its own interpreter installs it and ships records to the bundled receiver (the demo).
#
#     bash scripts/build-wheels.sh [OUT]     # OUT: where the wheels go (default: a temp dir)
#
# Other platforms come from .github/workflows/release.yml. Writes nothing in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${1:-$(mktemp -d)}
versions=(3.9 3.10 3.11 3.12 3.13)

interpreter_for() {
    local version=$1 prefix
    if command -v pyenv >/dev/null && prefix=$(pyenv prefix "$version" 2>/dev/null); then
        echo "$prefix/bin/python3"
    else
        command -v "python$version" || { echo "Python $version is missing" >&2; exit 1; }
    fi
}

echo "== tools: maturin, zig, auditwheel (from PyPI)"
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip
"$work/tools/bin/python" -m pip install --quiet "maturin>=1.9,<2" ziglang auditwheel
# maturin finds zig through the Python next to it.
export PATH="$work/tools/bin:$PATH"

interpreters=()
for version in "${versions[@]}"; do
    interpreters+=("$(interpreter_for "$version")")
done

echo "== build"
CARGO_TARGET_DIR="$work/target" maturin build --release --zig \
    --compatibility manylinux2014 --target x86_64-unknown-linux-gnu \
    --interpreter "${interpreters[@]}" --out "$out"

echo "== tags (auditwheel show)"
for wheel in "$out"/*.whl; do
    tag=$(auditwheel show "$wheel" | tr '\n' ' ' | grep -o 'platform tag: "[^"]*"' | head -1)
    echo "$(basename "$wheel"): $tag"
done

echo "== smoke test: each wheel in a fresh venv of its own Python"
for version in "${versions[@]}"; do
    tag="cp${version/./}"
    wheel=$(ls "$out"/logwell_handler-*-"$tag"-"$tag"-manylinux*.whl)
    "$(interpreter_for "$version")" -m venv "$work/venv$version"
    "$work/venv$version/bin/python" -m pip install --quiet --no-index "$wheel"
    # From the temp dir, so that the checkout's python/ is not what gets imported.
    accepted=$(cd "$work" && env -u LOGWELL_ENDPOINT -u LOGWELL_API_KEY \
        "$work/venv$version/bin/python" -m logwell_handler.demo | grep "server accepted")
    echo "Python $version: $accepted"
done

echo "== wheels"
ls -l "$out"/*.whl | awk '{printf "%8.1f KB  %s\n", $5 / 1024, $NF}'
