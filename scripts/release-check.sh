#!/bin/sh
# `make release-check`: the checks of "Ship it" (#7), on loopback only.
#
#   1. `make static` builds static, stripped musl binaries of at most 3 MiB for
#      x86_64 and aarch64; the aarch64 one runs under qemu (--version, and a
#      local-backend push + pull).
#   2. The x86_64 binary alone in an empty root (chroot: no libc, no /etc, no
#      CA files, no /proc): local backend push + pull; the Hub over TLS with a
#      private CA given by SSL_CERT_FILE, S3 (moto) over TLS with AWS_CA_BUNDLE;
#      without them the same servers are refused with a certificate error.
#   3. `--version` names the version, the commit and the target triple.
#   5. `make release` makes dist/; install.sh installs from it over HTTP (curl
#      and wget), from a directory and from a file:// URL, maps uname's names
#      (Darwin too), refuses a corrupted archive, a missing checksum and
#      unsupported systems.
#   6. The Windows binary runs under Wine: --version, local push -> pull ->
#      yank with backslash paths, the Windows name rules, the Hub over TLS.
#      The macOS binaries cannot run here: their format, size and the
#      libraries they load (only /usr/lib's) are checked, and the test suite
#      compiles for aarch64-apple-darwin.
#
# Installs what it needs (scripts/release-check/deps.sh); a missing tool is
# installed or fails the run, never skips a check. Temp dirs and servers are
# removed on exit.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MAKE=${MAKE:-make}
CARGO=${CARGO:-cargo}
started=$(date +%s)

unset ARTIFACT_BASE_URL ARTIFACT_INSTALL_DIR ARTIFACT_VERSION ARTIFACT_REPO
export LC_ALL=C
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

die() {
    echo "release-check: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- build

[ "$(id -u)" = 0 ] || die "run as root: the empty-root checks use chroot (and deps.sh apt-get)"
sh scripts/release-check/deps.sh check
t0=$(date +%s)
$MAKE --no-print-directory release || die "'make release' failed (see above)"
t1=$(date +%s)
echo "release-check: make release took $((t1 - t0)) s"

case ${CARGO_TARGET_DIR:-target} in
/*) TARGET_DIR=${CARGO_TARGET_DIR} ;;
*) TARGET_DIR=$ROOT/${CARGO_TARGET_DIR:-target} ;;
esac
X86=$TARGET_DIR/x86_64-unknown-linux-musl/release/artifact
ARM=$TARGET_DIR/aarch64-unknown-linux-musl/release/artifact
DIST=$ROOT/dist
CHROOT=$(command -v chroot)
QEMU=$(command -v qemu-aarch64-static)
MAX_BYTES=3145728
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
COMMIT=${ARTIFACT_BUILD_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
[ -n "$VERSION" ] || die "cannot read the version from Cargo.toml"

# ---------------------------------------------------------------- harness

work=$(mktemp -d)
pids=""
cleanup() {
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${WINEPREFIX:-}" ]; then
        wineserver -k 2>/dev/null || true
        wineserver -w 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
failures=""

# check DESCRIPTION FUNCTION [ARGS…]: FUNCTION explains a failure on its output.
check() {
    desc=$1
    shift
    if "$@" >"$work/check.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok - $desc"
    else
        failed=$((failed + 1))
        failures="$failures
  - $desc"
        echo "FAIL - $desc"
        sed 's/^/    | /' "$work/check.log"
    fi
}

# run CODE CMD…: CMD must exit CODE; its stdout and stderr go to $out.
out=$work/out
run() {
    want=$1
    shift
    set +e
    "$@" >"$out" 2>&1
    got=$?
    set -e
    if [ "$got" != "$want" ]; then
        echo "expected exit $want, got $got from: $*"
        sed 's/^/> /' "$out"
        return 1
    fi
}

# has TEXT: the last command's output holds TEXT.
has() {
    grep -qF -- "$1" "$out" || {
        echo "the output lacks '$1':"
        sed 's/^/> /' "$out"
        return 1
    }
}

same() {
    cmp "$1" "$2" || {
        echo "$1 and $2 differ"
        return 1
    }
}

# start NAME PROGRAM ARGS…: a server in the background that writes its port to
# the file named by its last argument (added here); sets $port.
start() {
    name=$1
    shift
    "$@" "$work/$name.port" >"$work/$name.log" 2>&1 &
    pids="$pids $!"
    pid=$!
    i=0
    while [ ! -s "$work/$name.port" ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 300 ]; then
            sed 's/^/    | /' "$work/$name.log" >&2
            die "the $name server did not start"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    port=$(cat "$work/$name.port")
}

# ---------------------------------------------------------------- 1, 3: the static binaries

static_ok() { # BINARY
    kind=$(file -b "$1")
    size=$(wc -c <"$1" | tr -d ' ')
    echo "$1: $size bytes: $kind"
    case $kind in
    *"statically linked"*) ;;
    *)
        echo "file does not call it statically linked"
        return 1
        ;;
    esac
    case $kind in
    *"not stripped"* | *"dynamically linked"* | *interpreter*)
        echo "not stripped, or dynamically linked"
        return 1
        ;;
    esac
    [ "$size" -le $MAX_BYTES ] || {
        echo "$size bytes is over 3 MiB ($MAX_BYTES)"
        return 1
    }
}

version_ok() { # TRIPLE CMD…
    triple=$1
    shift
    run 0 "$@" --version || return 1
    want="artifact $VERSION (commit $COMMIT, $triple)"
    [ "$(cat "$out")" = "$want" ] || {
        echo "expected '$want', got '$(cat "$out")'"
        return 1
    }
}

arm_round_trip() {
    d=$work/arm
    mkdir -p "$d/store" "$d/out"
    head -c 300000 /dev/urandom >"$d/data.bin"
    set -- env -i ARTIFACT_BACKEND=local ARTIFACT_LOCAL_DIR="$d/store" SEMAPHORE_JOB_ID=rc-arm "$QEMU" "$ARM"
    run 0 "$@" push job "$d/data.bin" || return 1
    has "Successfully pushed artifact for current job." || return 1
    same "$d/data.bin" "$d/store/artifacts/jobs/rc-arm/data.bin" || return 1
    run 0 "$@" pull job data.bin -d "$d/out/data.bin" || return 1
    same "$d/data.bin" "$d/out/data.bin"
}

check "x86_64 binary is static, stripped, at most 3 MiB" static_ok "$X86"
check "aarch64 binary is static, stripped, at most 3 MiB" static_ok "$ARM"
check "x86_64 --version: version, commit, target" version_ok x86_64-unknown-linux-musl "$X86"
check "aarch64 --version under qemu: version, commit, target" version_ok aarch64-unknown-linux-musl "$QEMU" "$ARM"
check "aarch64 under qemu: local backend push then pull, same bytes" arm_round_trip

# ---------------------------------------------------------------- 2: an empty root

# A private CA and a certificate for 127.0.0.1 that it signed.
pki=$work/pki
mkdir "$pki"
(
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=artifact release-check CA" -keyout ca.key -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem
) >"$work/pki.log" 2>&1 || {
    cat "$work/pki.log" >&2
    die "openssl could not make the test CA"
}

TOKEN=release-check-token
# The test kit's Hub (testkit/src/bin/kit-hub.rs); moto and the mirror are servers.py's.
$CARGO build --quiet -p testkit --bin kit-hub || die "cannot build the test kit's Hub"
start hub "$TARGET_DIR/debug/kit-hub" "$pki/server.pem" "$pki/server.key" "$TOKEN"
HUB=https://127.0.0.1:$port
start s3 python3 "$ROOT/scripts/release-check/servers.py" s3 "$pki/server.pem" "$pki/server.key"
S3=https://127.0.0.1:$port
curl --silent --show-error --fail --noproxy '*' --cacert "$pki/ca.pem" -X PUT "$S3/rc-bucket" >/dev/null ||
    die "cannot create the bucket on moto"

# The root: the binary where the Dockerfile puts it, the CA, test files.
# Nothing else: no /etc (no CA bundle, passwd, hosts, resolv.conf), no /proc,
# no /tmp, no libc.
jroot=$work/root
mkdir -p "$jroot/data" "$jroot/store" "$jroot/out"
cp "$X86" "$jroot/artifact"
cp "$pki/ca.pem" "$jroot/ca.pem"
head -c 200000 /dev/urandom >"$jroot/data/in.bin"

# jail [NAME=VALUE…] -- ARGS…: /artifact ARGS in the root, with only these variables.
jail() {
    envs=0
    for a; do
        [ "$a" = -- ] && break
        envs=$((envs + 1))
    done
    i=0
    total=$#
    while [ $i -lt $total ]; do
        a=$1
        shift
        if [ $i -eq $envs ]; then
            set -- "$@" "$CHROOT" "$jroot" /artifact
        else
            set -- "$@" "$a"
        fi
        i=$((i + 1))
    done
    env -i "$@"
}

root_is_empty() {
    found=$(cd "$jroot" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')
    [ "$found" = "./artifact ./ca.pem ./data ./out ./store " ] || {
        echo "the root holds: $found"
        return 1
    }
}

root_version() {
    version_ok x86_64-unknown-linux-musl jail --
}

LOCAL="ARTIFACT_BACKEND=local ARTIFACT_LOCAL_DIR=/store SEMAPHORE_JOB_ID=rc-local"
root_local() {
    # shellcheck disable=SC2086 # one word per variable
    run 0 jail $LOCAL -- push job /data/in.bin || return 1
    same "$jroot/data/in.bin" "$jroot/store/artifacts/jobs/rc-local/in.bin" || return 1
    # shellcheck disable=SC2086
    run 0 jail $LOCAL -- pull job in.bin -d /out/local.bin || return 1
    same "$jroot/data/in.bin" "$jroot/out/local.bin"
}

HUB_ENV="SEMAPHORE_ORGANIZATION_URL=$HUB SEMAPHORE_ARTIFACT_TOKEN=$TOKEN SEMAPHORE_JOB_ID=rc-hub"
root_hub() {
    # shellcheck disable=SC2086
    run 0 jail $HUB_ENV SSL_CERT_FILE=/ca.pem -- -v push job /data/in.bin || return 1
    has "no CA store on this machine: trusting the compiled-in Mozilla roots" || return 1
    has "Successfully pushed artifact for current job." || return 1
    # shellcheck disable=SC2086
    run 0 jail $HUB_ENV SSL_CERT_FILE=/ca.pem -- pull job in.bin -d /out/hub.bin || return 1
    same "$jroot/data/in.bin" "$jroot/out/hub.bin"
}

# refused: exit 1 with the TLS message and the certificate's reason.
refused() {
    run 1 "$@" || return 1
    has "the TLS handshake failed (" || return 1
    grep -i "the TLS handshake failed (.*certificate" "$out" | grep -qi "UnknownIssuer\|unknown issuer" || {
        echo "no certificate reason (UnknownIssuer) in the TLS error:"
        sed 's/^/> /' "$out"
        return 1
    }
}

root_hub_refused() {
    # shellcheck disable=SC2086
    refused jail $HUB_ENV ARTIFACT_RETRY_ATTEMPTS=1 -- push job /data/in.bin -d refused.bin || return 1
    # SSL_CERT_FILE with the wrong CA (only AWS_CA_BUNDLE, which is for S3) is refused too.
    # shellcheck disable=SC2086
    refused jail $HUB_ENV ARTIFACT_RETRY_ATTEMPTS=1 AWS_CA_BUNDLE=/ca.pem -- push job /data/in.bin -d refused.bin
}

S3_ENV="ARTIFACT_BACKEND=s3 ARTIFACT_S3_BUCKET=rc-bucket ARTIFACT_S3_ENDPOINT=$S3 ARTIFACT_S3_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SEMAPHORE_JOB_ID=rc-s3"
root_s3() {
    # shellcheck disable=SC2086
    run 0 jail $S3_ENV AWS_CA_BUNDLE=/ca.pem -- push job /data/in.bin || return 1
    has "Successfully pushed artifact for current job." || return 1
    # shellcheck disable=SC2086
    run 0 jail $S3_ENV AWS_CA_BUNDLE=/ca.pem -- pull job in.bin -d /out/s3.bin || return 1
    same "$jroot/data/in.bin" "$jroot/out/s3.bin"
}

root_s3_refused() {
    # shellcheck disable=SC2086
    refused jail $S3_ENV ARTIFACT_RETRY_ATTEMPTS=1 -- push job /data/in.bin -d refused.bin
}

check "empty root holds only the binary and the test's files" root_is_empty
check "empty root: --version" root_version
check "empty root: local backend push then pull, same bytes" root_local
check "empty root: Hub over TLS, private CA in SSL_CERT_FILE: push then pull, same bytes" root_hub
check "empty root: Hub over TLS without the CA is refused (certificate error, exit 1)" root_hub_refused
check "empty root: S3 (moto) over TLS, private CA in AWS_CA_BUNDLE: push then pull, same bytes" root_s3
check "empty root: S3 over TLS without the CA is refused (certificate error, exit 1)" root_s3_refused

# ---------------------------------------------------------------- 6: Windows under Wine, macOS as built

WIN=$TARGET_DIR/x86_64-pc-windows-gnu/release/artifact.exe
MAC_X86=$TARGET_DIR/x86_64-apple-darwin/release/artifact
MAC_ARM=$TARGET_DIR/aarch64-apple-darwin/release/artifact

# A Wine prefix of our own. Wine 8 (Debian 12) lacks bcryptprimitives.dll,
# which Rust's standard library imports (ProcessPrng; every Windows 10 and
# later has it): a stand-in compiled here from wine-bcryptprimitives.c
# answers from RtlGenRandom. Wine alone needs it; the release does not ship it.
export WINEPREFIX="$work/wine" WINEDEBUG=-all
wine wineboot --init >"$work/wineboot.log" 2>&1 || {
    cat "$work/wineboot.log" >&2
    die "wineboot could not make a Wine prefix"
}
x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    scripts/release-check/wine-bcryptprimitives.c -ladvapi32 ||
    die "cannot build the bcryptprimitives.dll stand-in for Wine"

# A Unix path as Windows names it under Wine (drive Z: is /).
winpath() {
    printf 'Z:%s' "$1" | tr / "\\\\"
}

# format_ok BINARY KIND: `file` says KIND..., and it is at most 3 MiB.
format_ok() {
    kind=$(file -b "$1")
    size=$(wc -c <"$1" | tr -d ' ')
    echo "$1: $size bytes: $kind"
    case $kind in
    "$2"*) ;;
    *) return 1 ;;
    esac
    [ "$size" -le $MAX_BYTES ]
}

win_local() {
    d=$work/win
    mkdir -p "$d/store" "$d/in/sub"
    head -c 300000 /dev/urandom >"$d/in/sub/data.bin"
    echo top >"$d/in/top.txt"
    s=$d/store/artifacts/jobs/rc-win
    set -- env -C "$d" ARTIFACT_BACKEND=local ARTIFACT_LOCAL_DIR="$(winpath "$d/store")" SEMAPHORE_JOB_ID=rc-win wine "$WIN"
    # Backslashes are separators: the keys use '/'.
    run 0 "$@" push job 'in' -d 'win\in' || return 1
    has "Successfully pushed artifact for current job." || return 1
    same "$d/in/sub/data.bin" "$s/win/in/sub/data.bin" || return 1
    run 0 "$@" pull job 'win\in' -d out || return 1
    same "$d/in/sub/data.bin" "$d/out/sub/data.bin" || return 1
    same "$d/in/top.txt" "$d/out/top.txt" || return 1
    # Without --force an existing file is not overwritten; with it, it is.
    run 5 "$@" push job 'in' -d 'win\in' || return 1
    run 0 "$@" push job 'in' -d 'win\in' --force || return 1
    run 0 "$@" yank job 'win/in' || return 1
    [ ! -e "$s/win/in/top.txt" ] || {
        echo "yank left $s/win/in/top.txt"
        return 1
    }
    run 4 "$@" pull job 'win/in' -d again
}

# Names Windows cannot hold, pushed from Linux to the Hub, pulled under Wine.
win_names() {
    d=$work/win-names
    long=$(printf 'a%.0s' $(seq 150))/$(printf 'b%.0s' $(seq 150)).txt
    mkdir -p "$d/names" "$d/case" "$d/long/$(dirname "$long")"
    echo x >"$d/names/CON.txt"
    echo x >"$d/case/A.txt"
    echo x >"$d/case/a.txt"
    echo deep >"$d/long/$long"
    hub="SSL_CERT_FILE=$pki/ca.pem SEMAPHORE_ORGANIZATION_URL=$HUB SEMAPHORE_ARTIFACT_TOKEN=$TOKEN SEMAPHORE_JOB_ID=rc-win-names"
    for dir in names case long; do
        # shellcheck disable=SC2086 # one word per variable
        run 0 env -C "$d" $hub "$X86" push job "$dir" || return 1
    done
    # shellcheck disable=SC2086
    set -- env -C "$d" $hub wine "$WIN"
    run 1 "$@" pull job names -d names-out || return 1
    has "Windows cannot hold the name 'CON.txt'" || return 1
    run 1 "$@" pull job case -d case-out || return 1
    has "differ only in case" || return 1
    # A path past Windows' 260 characters: std uses the \\?\ form.
    run 0 "$@" pull job long -d long-out || return 1
    same "$d/long/$long" "$d/long-out/$long"
}

win_hub() {
    d=$work/win
    head -c 200000 /dev/urandom >"$d/hub.bin"
    set -- env -C "$d" SSL_CERT_FILE="$pki/ca.pem" SEMAPHORE_ORGANIZATION_URL="$HUB" SEMAPHORE_ARTIFACT_TOKEN=$TOKEN SEMAPHORE_JOB_ID=rc-win-hub wine "$WIN"
    run 0 "$@" push job hub.bin || return 1
    has "Successfully pushed artifact for current job." || return 1
    run 0 "$@" pull job hub.bin -d hub-out.bin || return 1
    same "$d/hub.bin" "$d/hub-out.bin" || return 1
    run 0 "$@" yank job hub.bin || return 1
    run 4 "$@" pull job hub.bin -d hub-again.bin
}

win_hub_refused() {
    refused env -C "$work/win" SEMAPHORE_ORGANIZATION_URL="$HUB" SEMAPHORE_ARTIFACT_TOKEN=$TOKEN \
        SEMAPHORE_JOB_ID=rc-win-hub ARTIFACT_RETRY_ATTEMPTS=1 wine "$WIN" push job hub.bin -d refused.bin
}

# macOS cannot run here: what can be proven is the format, the size and
# that only libraries every macOS has in /usr/lib are loaded: libSystem, and
# libiconv with libcharset (Rust's std links iconv on Apple targets) — no
# framework, nothing from Homebrew.
mac_ok() { # BINARY ARCH
    format_ok "$1" "Mach-O 64-bit $2 executable" || return 1
    llvm-objdump --macho --dylibs-used "$1" >"$work/dylibs" || return 1
    cat "$work/dylibs"
    libs=$(tail -n +2 "$work/dylibs" | awk '{print $1}')
    [ -n "$libs" ] || return 1
    for lib in $libs; do
        case $lib in
        /usr/lib/libSystem.B.dylib | /usr/lib/libiconv.2.dylib | /usr/lib/libcharset.1.dylib) ;;
        *)
            echo "loads $lib"
            return 1
            ;;
        esac
    done
}

check "Windows binary is PE32+ x86-64 (console), at most 3 MiB" format_ok "$WIN" "PE32+ executable (console) x86-64"
check "Windows --version under Wine: version, commit, target" version_ok x86_64-pc-windows-gnu wine "$WIN"
check "Windows under Wine: local backend push (backslash paths) -> pull -> no-clobber, --force -> yank" win_local
check "Windows under Wine: reserved names and case-only twins refused; a path past 260 characters pulled" win_names
check "Windows under Wine: Hub over TLS (private CA in SSL_CERT_FILE): push -> pull -> yank" win_hub
check "Windows under Wine: Hub over TLS without the CA is refused (certificate error, exit 1)" win_hub_refused
check "macOS x86_64 binary: Mach-O x86_64, at most 3 MiB, loads only /usr/lib's libSystem, libiconv, libcharset" mac_ok "$MAC_X86" x86_64
check "macOS arm64 binary: Mach-O arm64, at most 3 MiB, loads only /usr/lib's libSystem, libiconv, libcharset" mac_ok "$MAC_ARM" arm64

# The test suite for macOS compiles (unit and integration tests, with zig as
# the C compiler) but cannot link here: the test kit's S3 server (s3s, through
# chrono's iana-time-zone) links CoreFoundation, a framework only Apple's SDK
# has, and no package registry ships that SDK. The shipped binary links.
mac_tests_build() {
    cargo-zigbuild check --target aarch64-apple-darwin --bin artifact --tests
}
check "macOS arm64: the test suite compiles (zig as the C compiler)" mac_tests_build

# ---------------------------------------------------------------- 5: release files and install.sh

dist_ok() {
    (cd "$DIST" && ls) >"$work/dist.ls"
    printf '%s\n' artifact_Darwin_arm64.tar.gz artifact_Darwin_x86_64.tar.gz artifact_Linux_arm64.tar.gz \
        artifact_Linux_x86_64.tar.gz artifact_Windows_x86_64.tar.gz artifact_checksums.txt \
        install.sh >"$work/dist.want"
    cmp -s "$work/dist.ls" "$work/dist.want" || {
        echo "dist/ holds:"
        cat "$work/dist.ls"
        return 1
    }
    (cd "$DIST" && sha256sum -c artifact_checksums.txt) || return 1
    same install.sh "$DIST/install.sh" || return 1
    for pair in Linux_x86_64:artifact:"$X86" Linux_arm64:artifact:"$ARM" \
        Darwin_x86_64:artifact:"$MAC_X86" Darwin_arm64:artifact:"$MAC_ARM" \
        Windows_x86_64:artifact.exe:"$WIN"; do
        name=${pair%%:*}
        rest=${pair#*:}
        exe=${rest%%:*}
        d=$work/unpack-$name
        mkdir -p "$d"
        tar -xzf "$DIST/artifact_$name.tar.gz" -C "$d" || return 1
        found=$(cd "$d" && find . -mindepth 1 | sort | tr '\n' ' ')
        [ "$found" = "./LICENSE ./README.md ./$exe " ] || {
            echo "artifact_$name.tar.gz holds: $found"
            return 1
        }
        same "$d/$exe" "${rest#*:}" || return 1
        [ -x "$d/$exe" ] || {
            echo "the binary in artifact_$name.tar.gz is not executable"
            return 1
        }
    done
}

lint() {
    shellcheck -s sh install.sh scripts/static.sh scripts/release.sh scripts/release-check.sh \
        scripts/release-check/*.sh
}

dockerfile_ok() {
    # shellcheck disable=SC2016 # ${TRIPLE} is the Dockerfile's
    for line in 'ARG TRIPLE=x86_64-unknown-linux-musl' 'FROM scratch' \
        'COPY target/${TRIPLE}/release/artifact /artifact' 'ENTRYPOINT ["/artifact"]'; do
        grep -qxF "$line" Dockerfile || {
            echo "the Dockerfile lacks the line: $line"
            return 1
        }
    done
    # What its COPY takes by default is what `make static` built.
    [ -f "$TARGET_DIR/x86_64-unknown-linux-musl/release/artifact" ]
}

check "dist/: five archives (artifact or artifact.exe, LICENSE, README.md), their checksums, install.sh" dist_ok
check "shellcheck: install.sh and the release scripts" lint
check "Dockerfile: FROM scratch, the static binary, ENTRYPOINT [\"/artifact\"]" dockerfile_ok

# A mirror: dist/ as it is; a copy with a byte flipped in the x86_64 archive;
# one where the x86_64 archive is another valid archive (the arm64 one: gzip
# and tar find nothing wrong, only the checksum does); one whose checksums
# file lacks the x86_64 line.
www=$work/www
mkdir -p "$www"
ln -s "$DIST" "$www/release"
cp -R "$DIST" "$www/bad"
python3 -c '
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(b)
' "$www/bad/artifact_Linux_x86_64.tar.gz"
cp -R "$DIST" "$www/swapped"
cp "$DIST/artifact_Linux_arm64.tar.gz" "$www/swapped/artifact_Linux_x86_64.tar.gz"
cp -R "$DIST" "$www/nosum"
grep -v x86_64 "$DIST/artifact_checksums.txt" >"$www/nosum/artifact_checksums.txt"
start mirror python3 "$ROOT/scripts/release-check/servers.py" static "$www"
MIRROR=http://127.0.0.1:$port

# Tool sets: a PATH of exactly the tools install.sh may use, one with curl
# and shasum, one with wget and sha256sum.
for set in curl wget; do
    mkdir "$work/bin-$set"
    if [ "$set" = curl ]; then extra="curl shasum"; else extra="wget sha256sum"; fi
    for tool in sh dash uname id mktemp rm cp mv chmod mkdir tar gzip awk tr grep cut cat $extra; do
        p=$(command -v "$tool") || die "$tool is not installed"
        ln -s "$p" "$work/bin-$set/$tool"
    done
done

# fake_uname DIR S M: a uname that says S for -s and M for -m.
fake_uname() {
    mkdir -p "$1"
    # shellcheck disable=SC2016 # $1 is the fake uname's own argument
    printf '#!/bin/sh\ncase "$1" in -s) echo %s ;; -m) echo %s ;; *) echo %s ;; esac\n' "$2" "$3" "$2" >"$1/uname"
    chmod 755 "$1/uname"
}

# installed DIR BINARY TRIPLE [RUNNER]: DIR/artifact is BINARY and runs.
installed() {
    same "$1/artifact" "$2" || return 1
    [ -x "$1/artifact" ] || {
        echo "$1/artifact is not executable"
        return 1
    }
    set -- "$3" ${4:+"$4"} "$1/artifact"
    version_ok "$@"
}

nothing_installed() { # DIR
    [ -z "$(ls -A "$1" 2>/dev/null)" ] || {
        echo "$1 holds: $(ls -A "$1")"
        return 1
    }
}

inst_http() {
    d=$work/i-http
    run 0 env ARTIFACT_BASE_URL="$MIRROR/release" ARTIFACT_INSTALL_DIR="$d" dash install.sh || return 1
    has "verified artifact_Linux_x86_64.tar.gz" || return 1
    installed "$d" "$X86" x86_64-unknown-linux-musl
}

inst_tools() { # SET
    d=$work/i-$1
    run 0 env PATH="$work/bin-$1" ARTIFACT_BASE_URL="$MIRROR/release/" dash install.sh -b "$d" || return 1
    installed "$d" "$X86" x86_64-unknown-linux-musl
}

inst_dir() {
    d=$work/i-dir
    run 0 env ARTIFACT_BASE_URL=dist dash install.sh -b "$d" || return 1
    installed "$d" "$X86" x86_64-unknown-linux-musl || return 1
    # Again, over the installed one: replaced, nothing left behind.
    run 0 env ARTIFACT_BASE_URL="$DIST" dash install.sh -b "$d" || return 1
    [ "$(ls -A "$d")" = artifact ] || {
        echo "$d holds: $(ls -A "$d")"
        return 1
    }
}

# A copy of dist/ carried to an air-gapped machine installs itself.
inst_airgap() {
    cp -R "$DIST" "$work/carried"
    d=$work/i-airgap
    run 0 env -C "$work/carried" ARTIFACT_BASE_URL=. ARTIFACT_INSTALL_DIR="$d" sh ./install.sh || return 1
    installed "$d" "$X86" x86_64-unknown-linux-musl
}

inst_file_url() {
    d=$work/i-file
    run 0 env ARTIFACT_BASE_URL="file://$DIST" ARTIFACT_INSTALL_DIR="$d" dash install.sh || return 1
    installed "$d" "$X86" x86_64-unknown-linux-musl
}

inst_corrupt() {
    d=$work/i-bad-http
    run 1 env ARTIFACT_BASE_URL="$MIRROR/bad" dash install.sh -b "$d" || return 1
    has "checksum mismatch for artifact_Linux_x86_64.tar.gz" || return 1
    has "nothing was installed" || return 1
    nothing_installed "$d" || return 1
    d=$work/i-bad-dir
    run 1 env ARTIFACT_BASE_URL="$www/bad" dash install.sh -b "$d" || return 1
    has "checksum mismatch for artifact_Linux_x86_64.tar.gz" || return 1
    nothing_installed "$d" || return 1
    d=$work/i-swapped
    run 1 env ARTIFACT_BASE_URL="file://$www/swapped" dash install.sh -b "$d" || return 1
    has "checksum mismatch for artifact_Linux_x86_64.tar.gz" || return 1
    nothing_installed "$d"
}

inst_nosum() {
    d=$work/i-nosum
    run 1 env ARTIFACT_BASE_URL="$MIRROR/nosum" dash install.sh -b "$d" || return 1
    has "has no single line for artifact_Linux_x86_64.tar.gz" || return 1
    nothing_installed "$d"
}

inst_404() {
    d=$work/i-404
    run 1 env ARTIFACT_BASE_URL="$MIRROR/no-such-release" dash install.sh -b "$d" || return 1
    has "cannot download $MIRROR/no-such-release/artifact_checksums.txt" || return 1
    nothing_installed "$d"
}

inst_unsupported() {
    fake_uname "$work/u-freebsd" FreeBSD amd64
    run 1 env PATH="$work/u-freebsd:$PATH" ARTIFACT_BASE_URL="$DIST" dash install.sh -b "$work/i-freebsd" || return 1
    has "operating system 'FreeBSD'" || return 1
    has "Linux x86_64 (amd64) and Linux arm64 (aarch64)" || return 1
    has "cargo install --git https://github.com/" || return 1
    has "artifact-cli" || return 1
    has "cargo install --path ." || return 1
    nothing_installed "$work/i-freebsd" || return 1
    fake_uname "$work/u-riscv" Linux riscv64
    run 1 env PATH="$work/u-riscv:$PATH" ARTIFACT_BASE_URL="$DIST" dash install.sh -b "$work/i-riscv" || return 1
    has "architecture 'riscv64'" || return 1
    has "cargo install" || return 1
    nothing_installed "$work/i-riscv"
}

inst_arch_names() {
    fake_uname "$work/u-amd64" Linux amd64
    run 0 env PATH="$work/u-amd64:$PATH" ARTIFACT_BASE_URL="$DIST" dash install.sh -b "$work/i-amd64" || return 1
    installed "$work/i-amd64" "$X86" x86_64-unknown-linux-musl || return 1
    for m in aarch64 arm64; do
        fake_uname "$work/u-$m" Linux $m
        run 0 env PATH="$work/u-$m:$PATH" ARTIFACT_BASE_URL="$MIRROR/release" dash install.sh -b "$work/i-$m" || return 1
        has "verified artifact_Linux_arm64.tar.gz" || return 1
        installed "$work/i-$m" "$ARM" aarch64-unknown-linux-musl "$QEMU" || return 1
    done
}

# macOS: uname says Darwin and x86_64 or arm64; the binary cannot run here,
# so it is compared with what was built.
inst_darwin() {
    for pair in x86_64:"$MAC_X86" arm64:"$MAC_ARM"; do
        m=${pair%%:*}
        fake_uname "$work/u-darwin-$m" Darwin "$m"
        run 0 env PATH="$work/u-darwin-$m:$PATH" ARTIFACT_BASE_URL="$MIRROR/release" dash install.sh \
            -b "$work/i-darwin-$m" || return 1
        has "verified artifact_Darwin_$m.tar.gz" || return 1
        same "$work/i-darwin-$m/artifact" "${pair#*:}" || return 1
        [ -x "$work/i-darwin-$m/artifact" ] || return 1
    done
}

inst_default_dir() {
    # Not root: $HOME/.local/bin. (As root it is /usr/local/bin, not touched here.)
    mkdir -p "$work/u-user"
    printf '#!/bin/sh\necho 1000\n' >"$work/u-user/id"
    chmod 755 "$work/u-user/id"
    run 0 env PATH="$work/u-user:$PATH" HOME="$work/home" ARTIFACT_BASE_URL="$DIST" dash install.sh || return 1
    has "installed $work/home/.local/bin/artifact" || return 1
    installed "$work/home/.local/bin" "$X86" x86_64-unknown-linux-musl
}

check "install.sh from the HTTP mirror of dist/ (curl), then artifact --version" inst_http
check "install.sh over HTTP with only curl and shasum on PATH" inst_tools curl
check "install.sh over HTTP with only wget and sha256sum on PATH" inst_tools wget
check "install.sh from a local directory (-b DIR), and again over it" inst_dir
check "install.sh from a copy of dist/ (air-gapped: ARTIFACT_BASE_URL=. sh install.sh)" inst_airgap
check "install.sh from a file:// URL" inst_file_url
check "install.sh refuses a corrupted or swapped archive (HTTP, directory, file://): exit 1, nothing installed" inst_corrupt
check "install.sh refuses an archive with no checksum line" inst_nosum
check "install.sh fails clearly when the release is not there" inst_404
check "install.sh on an unsupported OS or architecture names the supported ones and cargo install" inst_unsupported
check "install.sh maps amd64 to x86_64 and aarch64/arm64 to arm64" inst_arch_names
check "install.sh installs into \$HOME/.local/bin when not root" inst_default_dir
check "install.sh on macOS (uname faked: Darwin x86_64, Darwin arm64) installs the Darwin binary" inst_darwin

# ---------------------------------------------------------------- summary

ended=$(date +%s)
echo "release-check: build $((t1 - t0)) s, checks $((ended - t1)) s, total $((ended - started)) s"
if [ "$failed" -gt 0 ]; then
    echo "release-check: these checks failed:$failures" >&2
fi
echo "release-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
