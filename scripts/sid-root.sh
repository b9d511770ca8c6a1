#!/usr/bin/env bash
# Runs a command with CPython 3.14 and 3.15, which pyenv cannot download here: Debian's
# unstable suite (sid) packages them, but they need a newer C library than the host's, so
# they live in a root of their own. Makes that root if it is missing (debootstrap, then
# the Pythons, gcc and valgrind from sid), reuses it when present, and runs the command
# inside it with the host's Rust toolchain, CA bundle, pip settings and environment, and
# the checkout and /tmp mounted at the same paths. The command starts in the checkout.
#
#     bash scripts/sid-root.sh python3.14 -m venv /tmp/venv314
#     SID_ROOT=/elsewhere bash scripts/sid-root.sh bash -c '...'
#
# Needs root (chroot and mount) and debootstrap (installed from the host's own Debian
# repository when missing). The root goes in $SID_ROOT (default:
# /var/tmp/logwell-handler-sid), never in the checkout. Fails loudly.
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
root=${SID_ROOT:-/var/tmp/logwell-handler-sid}
packages=(python3.14-dev python3.14-venv python3.15-dev python3.15-venv gcc libc6-dev
    # uWSGI, which the tests run, links libcrypt; the instruction benchmark needs valgrind.
    libcrypt-dev valgrind ca-certificates)

fail() {
    echo "scripts/sid-root.sh: $*" >&2
    exit 1
}

[ "$#" -gt 0 ] || fail "no command given (usage: bash scripts/sid-root.sh COMMAND [ARGS...])"
[ "$(id -u)" = 0 ] || fail "needs root, for debootstrap, chroot and mount (running as $(id -un))"
root=${root%/}
case "$root" in
/*/*) ;;
*) fail "SID_ROOT=$root: give an absolute path at least two levels deep" ;;
esac
case "$root" in
"$checkout" | "$checkout"/* | /tmp/* | "$HOME" | "$HOME"/*)
    fail "SID_ROOT=$root is inside the checkout, /tmp or \$HOME, which the root mounts; put it elsewhere"
    ;;
esac

# Everything below runs in a mount namespace of its own: the mounts die with this script
# however it ends (none is left under the root to be deleted with it), and none reaches
# the host (a tmpfs on the root's /dev/shm stays off the host's).
if [ -z "${SID_ROOT_PRIVATE:-}" ]; then
    command -v unshare >/dev/null || fail "unshare (util-linux) is missing"
    SID_ROOT_PRIVATE=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

# The mirror the host's apt sources already name: the only one this network may reach.
mirror() {
    local uri
    uri=$(grep -hoE '^(URIs: *|deb +)https?://[^ ]+/debian/?( |$)' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        grep -oE 'https?://[^ ]+' | head -1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

make_root() {
    if ! command -v debootstrap >/dev/null; then
        echo "== installing debootstrap (apt)"
        apt-get install -y -qq debootstrap >/dev/null ||
            { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } ||
            fail "debootstrap is missing and apt-get could not install it"
    fi
    local partial="$root.partial"
    [ ! -e "$root" ] || fail "$root exists but has no python3.15: remove it, and it is made again"
    rm -rf "$partial"
    echo "== debootstrap sid into $partial (from $(mirror))"
    debootstrap --variant=minbase sid "$partial" "$(mirror)" >"$partial.log" 2>&1 ||
        { tail -20 "$partial.log" >&2; fail "debootstrap failed (log: $partial.log)"; }
    cp /etc/resolv.conf "$partial/etc/resolv.conf"
    echo "== apt-get install ${packages[*]}"
    # sid's Release files can be older than their Valid-Until on a mirror snapshot.
    chroot "$partial" sh -c "apt-get -qq -o Acquire::Check-Valid-Until=false update &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ${packages[*]} >/dev/null" ||
        fail "installing ${packages[*]} in the root failed"
    mv "$partial" "$root"
    rm -f "$partial.log"
}

[ -x "$root/usr/bin/python3.15" ] || make_root

# What the command needs from the host: devices, /proc, /sys, /tmp, the toolchain, the CA
# bundle (the network's egress CA is only in the host's), pip's settings and the checkout.
bind() {
    mkdir -p "$root$2"
    mount --bind "$1" "$root$2"
}
mkdir -p "$root/proc" "$root/sys" "$root/dev"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
bind /dev /dev
bind /dev/pts /dev/pts
mount -t tmpfs shm "$root/dev/shm"
# The host's /tmp: the command's temp dirs and the caller's are one, so a caller can hand
# it a path of its own (an output or a target dir).
tmp_dirs=(/tmp)
[ -n "${TMPDIR:-}" ] && [ "$TMPDIR" != /tmp ] && tmp_dirs+=("$TMPDIR")
for dir in "${tmp_dirs[@]}" "$HOME/.cargo" "$HOME/.rustup" "$checkout"; do
    bind "$dir" "$dir"
done
if [ -d /opt/wheels ]; then bind /opt/wheels /opt/wheels; fi
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$root/etc/pip.conf"; fi

# The host's environment but its PATH, which names the host's pyenv shims.
chroot "$root" /usr/bin/env HOME="$HOME" \
    PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    bash -c 'cd "$0" && exec "$@"' "$checkout" "$@"
