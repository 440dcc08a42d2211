#!/bin/sh
# `make static`: fully static, stripped executables for Linux x86_64 and
# arm64 (musl), at target/<triple>/release/artifact. Installs the Rust
# targets and the C compilers that ring's C and assembly need when missing.
set -eu
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TRIPLES="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
MAX_BYTES=3145728 # 3 MiB

sh scripts/release-check/deps.sh build

# x86_64: musl-tools' gcc wrapper compiles ring against musl's headers; Rust
# links with its own self-contained musl. aarch64: Debian's cross gcc
# compiles ring and drives the link (Rust again brings musl's crt and libc).
export CC_x86_64_unknown_linux_musl=musl-gcc
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
# Rust links x86_64 musl as a static PIE, which `file` calls "static-pie
# linked" (and file before 5.39 "dynamically linked"); a plain static
# executable, like aarch64's here and like Go's, is what everyone's `file`
# calls "statically linked". (RUSTFLAGS, when set, takes precedence.)
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS:--C relocation-model=static}"

set --
for t in $TRIPLES; do set -- "$@" --target "$t"; done
$CARGO build --release "$@"

status=0
for t in $TRIPLES; do
    bin=$TARGET_DIR/$t/release/artifact
    if [ ! -f "$bin" ]; then
        echo "static: $bin was not built" >&2
        status=1
        continue
    fi
    size=$(wc -c <"$bin" | tr -d ' ')
    kind=$(file -b "$bin")
    echo "static: $bin: $size bytes: $kind"
    case $kind in
    *"statically linked"*) ;;
    *)
        echo "static: $bin is not statically linked" >&2
        status=1
        ;;
    esac
    case $kind in
    *"not stripped"*)
        echo "static: $bin is not stripped" >&2
        status=1
        ;;
    esac
    if [ "$size" -gt "$MAX_BYTES" ]; then
        echo "static: $bin is $size bytes, over the limit of $MAX_BYTES (3 MiB)" >&2
        status=1
    fi
done
exit $status
