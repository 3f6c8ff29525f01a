#!/bin/sh
# Installs the Debian 12 packages hearth builds, runs and tests with.
# Called by the Makefile when something is missing; safe to run again.
# Needs root (or sudo) and Debian's package archive.
set -eu

PKGS="build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
libcriterion-dev liblua5.4-dev libdbus-1-dev dbus libyaml-dev libjansson-dev
libmicrohttpd-dev libutf8proc-dev libedit-dev zsh
gcc-aarch64-linux-gnu qemu-user"

# node and npm for the openai client test (tests/openai), unless a node is there.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

# The openai npm client tests/test_http.c drives, as pinned by
# tests/openai/package-lock.json. Offline, the test is skipped instead.
npm_ci() {
    dir="$(dirname "$0")/../tests/openai"
    [ -f "$dir/node_modules/openai/package.json" ] && return 0
    command -v npm >/dev/null 2>&1 || return 0
    npm ci --prefix "$dir" --no-audit --no-fund >&2 ||
        echo "hearth: npm ci failed; the openai client test will be skipped" >&2
}

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && { npm_ci; exit 0; }

echo "hearth: installing missing packages:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "hearth: need root to install:$missing (run as root or install sudo)" >&2
        exit 1
    }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
npm_ci
