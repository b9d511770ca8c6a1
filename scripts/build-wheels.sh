#!/usr/bin/env bash
# Builds the Linux x86_64 wheels, CPython 3.9 to 3.15, tagged manylinux2014 (glibc 2.17
# and later) the standard way: maturin, with zig as the linker for the old glibc, both
# from PyPI. Then, for each wheel: `auditwheel show` confirms its tag, and a fresh venv of
# its own interpreter installs it and ships records to the bundled receiver (the demo).
# 3.9 to 3.13 come from pyenv (or python3.X on PATH); 3.14 and 3.15 are built and tried
# inside scripts/sid-root.sh, which has them.
#
#     bash scripts/build-wheels.sh [OUT]     # OUT: where the wheels go (default: a temp dir)
#
# WHEEL_PYTHONS="3.12 3.13" builds only those, here. Other platforms come from
# .github/workflows/release.yml. Writes nothing in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${WHEEL_PYTHONS:-}" ]; then
    WHEEL_PYTHONS="3.9 3.10 3.11 3.12 3.13" bash "$0" "$out"
    # The root sees the host's /tmp; an OUT elsewhere gets the wheels copied to it.
    shared=$out
    case "$out" in /tmp/*) ;; *) shared=$(mktemp -d) ;; esac
    WHEEL_PYTHONS="3.14 3.15" bash scripts/sid-root.sh bash scripts/build-wheels.sh "$shared"
    [ "$shared" = "$out" ] || { cp "$shared"/*.whl "$out"/ && rm -rf "$shared"; }
    echo "== wheels"
    ls -l "$out"/*.whl | awk '{printf "%8.1f KB  %s\n", $5 / 1024, $NF}'
    exit 0
fi
read -r -a versions <<<"$WHEEL_PYTHONS"

interpreter_for() {
    local version=$1 prefix
    if command -v pyenv >/dev/null && prefix=$(pyenv prefix "$version" 2>/dev/null); then
        echo "$prefix/bin/python3"
    else
        command -v "python$version" || { echo "Python $version is missing" >&2; exit 1; }
    fi
}

echo "== tools: maturin, zig, auditwheel (from PyPI), with Python ${versions[*]}"
"$(interpreter_for "${versions[0]}")" -m venv "$work/tools"
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

for version in "${versions[@]}"; do
    tag="cp${version/./}"
    wheel=$(ls "$out"/logwell_handler-*-"$tag"-"$tag"-manylinux*.whl)
    platform=$(auditwheel show "$wheel" | tr '\n' ' ' | grep -o 'platform tag: "[^"]*"' | head -1)
    echo "== $(basename "$wheel"): $platform"
    # A fresh venv of its own Python, from the temp dir so that the checkout's python/ is
    # not what gets imported.
    "$(interpreter_for "$version")" -m venv "$work/venv$version"
    "$work/venv$version/bin/python" -m pip install --quiet --no-index "$wheel"
    accepted=$(cd "$work" && env -u LOGWELL_ENDPOINT -u LOGWELL_API_KEY \
        "$work/venv$version/bin/python" -m logwell_handler.demo | grep "server accepted")
    echo "Python $version: $accepted"
done
