#!/bin/sh
# Installs what `make static` (`deps.sh build`) and `make release-check`
# (`deps.sh check`) need, and only what is missing, so running it again costs
# nothing. A tool that cannot be installed fails the run: no check is skipped.
set -eu

what=${1:-check}
case $what in
build | check) ;;
*)
    echo "usage: deps.sh build|check" >&2
    exit 2
    ;;
esac

die() {
    echo "release deps: $*" >&2
    exit 1
}

# Rust's standard library for every released target.
TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin"
if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup target list --installed)
    for t in $TARGETS; do
        if ! printf '%s\n' "$installed" | grep -qx "$t"; then
            echo "install: rustup target add $t"
            rustup target add "$t" || die "rustup target add $t failed"
        fi
    done
else
    for t in $TARGETS; do
        sysroot=$(rustc --print sysroot)
        [ -d "$sysroot/lib/rustlib/$t" ] ||
            die "the Rust target $t is not installed and there is no rustup to add it"
    done
fi

# Debian packages, by the command (or file) each one brings:
#   musl-gcc (musl-tools)            compiles ring's C and assembly for x86_64 musl
#   aarch64-linux-gnu-gcc            compiles ring for aarch64 musl, and links
#   libc6-dev-arm64-cross            the C headers that cross compiler needs
#   file                             tells whether an executable is statically linked
#   x86_64-w64-mingw32-gcc           compiles ring for Windows, and links
#   wine64, wine                     run the Windows executable
#   llvm-objdump (llvm)              lists the libraries a macOS executable loads
#   qemu-aarch64-static              runs the aarch64 binary on an x86_64 machine
#   openssl                          makes the private CA and the server certificate
#   the linter of the same name      lints install.sh and these scripts
#   dash                             a strict POSIX sh to run install.sh with
#   curl, wget                       install.sh downloads with either: both are tested
#   shasum (perl)                    install.sh's other way to compute SHA-256
#   chroot (coreutils)               makes the empty root
missing=""
need() {
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need_file() {
    [ -e "$1" ] || missing="$missing $2"
}
need musl-gcc musl-tools
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
# ring's C includes <string.h> and friends: the cross compiler's headers (a
# package gcc-aarch64-linux-gnu only recommends).
need_file /usr/aarch64-linux-gnu/include/string.h libc6-dev-arm64-cross
need file file
need x86_64-w64-mingw32-gcc gcc-mingw-w64-x86-64
if [ "$what" = check ]; then
    need wine "wine64 wine"
    need llvm-objdump llvm
    need qemu-aarch64-static qemu-user-static
    need openssl openssl
    need shellcheck shellcheck
    need dash dash
    need curl curl
    need wget wget
    need shasum perl
    need chroot coreutils
    need python3 python3
fi

if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing Debian packages:$missing (no apt-get here: install them by hand)"
    [ "$(id -u)" = 0 ] ||
        die "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)"
    echo "install: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # one word per package
    if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
        # A fresh image has no package lists yet.
        apt-get update -qq >/dev/null || die "apt-get update failed"
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
            die "apt-get install$missing failed"
    fi
fi

for cmd in musl-gcc aarch64-linux-gnu-gcc file x86_64-w64-mingw32-gcc; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing"
done
[ -e /usr/aarch64-linux-gnu/include/string.h ] ||
    die "the aarch64 C headers (libc6-dev-arm64-cross) are still missing after installing"

# zig links Mach-O without Apple's SDK; cargo-zigbuild drives it. Pinned as
# a pair that works together (both from PyPI).
ZIG_VERSION=0.14.1
ZIGBUILD_VERSION=0.24.1
if ! python3 -c "import ziglang" 2>/dev/null ||
    [ "$(python3 -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ] ||
    [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $ZIGBUILD_VERSION" ]; then
    echo "install: pip install ziglang==$ZIG_VERSION cargo-zigbuild==$ZIGBUILD_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check \
        "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" ||
        die "pip install ziglang cargo-zigbuild failed"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v cargo-zigbuild >/dev/null 2>&1 || die "cargo-zigbuild is not on PATH after installing"
[ "$what" = build ] && exit 0

for cmd in qemu-aarch64-static openssl shellcheck dash curl wget shasum chroot python3 wine llvm-objdump; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing"
done
python3 -c 'import ssl' 2>/dev/null || die "python3 has no ssl module"

# moto's S3 server, behind TLS, is the S3 endpoint of the empty-root check
# (the same version `make test` installs).
MOTO_VERSION=5.2.5
if ! python3 -c 'import moto.server' 2>/dev/null || ! command -v moto_server >/dev/null 2>&1; then
    echo "install: pip install moto[server]==$MOTO_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ||
        die "pip install moto[server] failed"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v moto_server >/dev/null 2>&1 || die "moto_server is not on PATH after installing moto"
