#!/usr/bin/env bash
# Installs valgrind, which bench/instructions.py counts instructions with, from the
# system's packages. Does nothing when it is there already.
set -euo pipefail
if command -v valgrind >/dev/null; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then
    sudo="sudo"
fi
if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >/dev/null
elif command -v dnf >/dev/null; then
    $sudo dnf install -y -q valgrind
elif command -v brew >/dev/null; then
    brew install valgrind
else
    echo "valgrind is missing and no known package manager is here: install valgrind" >&2
    exit 1
fi
command -v valgrind >/dev/null
