#!/bin/sh
# Installs the Debian 12 packages hearth builds, runs and tests with.
# Called by the Makefile when something is missing; safe to run again.
# Needs root (or sudo) and Debian's package archive.
set -eu

PKGS="build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
libcriterion-dev liblua5.4-dev libdbus-1-dev dbus libyaml-dev libjansson-dev
libmicrohttpd-dev libutf8proc-dev libedit-dev"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

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
