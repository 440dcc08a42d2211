#!/bin/sh
# `make static`: fully static, stripped executables for Linux x86_64 and
# arm64 (musl), at target/<triple>/release/artifact, and the macOS (x86_64,
# arm64) and Windows (x86_64, artifact.exe) executables beside them. Installs
# the Rust targets and the C compilers that ring's C and assembly need when
# missing.
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

# Windows: Debian's mingw-w64 compiles ring and links (Rust finds
# x86_64-w64-mingw32-gcc by itself); the C runtime is linked in, so the
# executable needs only DLLs every Windows has.
$CARGO build --release --target x86_64-pc-windows-gnu

# macOS: zig (PyPI's ziglang), through cargo-zigbuild, compiles ring and
# links Mach-O without Apple's SDK; the executables load only /usr/lib's
# libSystem, libiconv and libcharset.
$CARGO zigbuild --release --target x86_64-apple-darwin --target aarch64-apple-darwin

status=0
# triple/executable/what `file` must say (a glob)
for build in "x86_64-unknown-linux-musl/artifact/*statically linked*" \
    "aarch64-unknown-linux-musl/artifact/*statically linked*" \
    "x86_64-pc-windows-gnu/artifact.exe/PE32+ executable (console) x86-64*" \
    "x86_64-apple-darwin/artifact/Mach-O 64-bit x86_64 executable*" \
    "aarch64-apple-darwin/artifact/Mach-O 64-bit arm64 executable*"; do
    t=${build%%/*}
    rest=${build#*/}
    exe=${rest%%/*}
    want=${rest#*/}
    bin=$TARGET_DIR/$t/release/$exe
    if [ ! -f "$bin" ]; then
        echo "static: $bin was not built" >&2
        status=1
        continue
    fi
    size=$(wc -c <"$bin" | tr -d ' ')
    kind=$(file -b "$bin")
    echo "static: $bin: $size bytes: $kind"
    # shellcheck disable=SC2254 # $want is a glob
    case $kind in
    $want) ;;
    *)
        echo "static: $bin is not what was built for: file says '$kind', not '$want'" >&2
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
