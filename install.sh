#!/bin/sh
# Installs the `artifact` CLI from a release: picks the archive for this OS and
# architecture, downloads it with the checksums file, verifies its SHA-256 and
# only then installs the binary.
#
#   curl -fsSL https://github.com/OWNER/artifact/releases/latest/download/install.sh | sh
#   curl -fsSL …/install.sh | sh -s -- -b ~/bin
#   sh install.sh [-b DIR]
#
# Prebuilt: Linux x86_64 (amd64) and arm64 (aarch64), static binaries, and
# macOS (Darwin) x86_64 and arm64. Windows: the PowerShell lines in README.md.
# Anywhere else it fails, pointing at `cargo install`.
#
# Settings (environment):
#   ARTIFACT_BASE_URL     where the release files are: an https:// or http://
#                         URL, a file:// URL or a local directory (a mirror, or
#                         a copy carried to an air-gapped machine). Default:
#                         https://github.com/$ARTIFACT_REPO/releases/latest/download
#                         (or .../releases/download/$ARTIFACT_VERSION).
#   ARTIFACT_VERSION      a release tag such as v0.1.0 (default: the latest)
#   ARTIFACT_REPO         owner/name of the GitHub repository
#   ARTIFACT_INSTALL_DIR  where to put the binary (or -b DIR); default
#                         /usr/local/bin as root, else $HOME/.local/bin
set -eu

# The GitHub repository the releases are published in.
REPO=${ARTIFACT_REPO:-OWNER/artifact}
NAME=artifact
CHECKSUMS=${NAME}_checksums.txt

say() {
    echo "install.sh: $*" >&2
}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

usage() {
    cat <<EOF
usage: install.sh [-b DIR]

Installs the artifact CLI for this machine, after checking its SHA-256.

  -b DIR   install into DIR (default: \$ARTIFACT_INSTALL_DIR, else
           /usr/local/bin as root, else \$HOME/.local/bin)
  -h       this help

Environment: ARTIFACT_BASE_URL (a URL, file:// URL or directory holding the
release files), ARTIFACT_VERSION (a tag, default: the latest release),
ARTIFACT_REPO (owner/name on GitHub), ARTIFACT_INSTALL_DIR.
EOF
}

install_dir=${ARTIFACT_INSTALL_DIR:-}
while getopts b:h opt; do
    case $opt in
    b) install_dir=$OPTARG ;;
    h)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
    usage >&2
    exit 2
fi

# ---------------------------------------------------------------- platform

from_source="build it from source with Rust 1.85 or newer instead:
    cargo install --git https://github.com/$REPO artifact-cli
  or, in a checkout of the repository:
    cargo install --path .
  (the crate is artifact-cli; the binary is artifact)"

unsupported() {
    die "$1
  Prebuilt binaries exist for Linux x86_64 (amd64) and Linux arm64 (aarch64),
  macOS (Darwin) x86_64 and arm64, and Windows x86_64 (see README.md).
  $from_source"
}

os_raw=$(uname -s)
arch_raw=$(uname -m)
case $os_raw in
Linux) os=Linux ;;
Darwin) os=Darwin ;;
*) unsupported "no prebuilt artifact binary for the operating system '$os_raw'." ;;
esac
case $arch_raw in
x86_64 | amd64) arch=x86_64 ;;
aarch64 | arm64) arch=arm64 ;;
*) unsupported "no prebuilt artifact binary for the architecture '$arch_raw' on $os_raw." ;;
esac
archive=${NAME}_${os}_${arch}.tar.gz

# ---------------------------------------------------------------- where from

if [ -n "${ARTIFACT_BASE_URL:-}" ]; then
    base=$ARTIFACT_BASE_URL
elif [ -n "${ARTIFACT_VERSION:-}" ]; then
    base=https://github.com/$REPO/releases/download/$ARTIFACT_VERSION
else
    base=https://github.com/$REPO/releases/latest/download
fi
while :; do
    case $base in
    */) base=${base%/} ;;
    *) break ;;
    esac
done

case $base in
http://* | https://*)
    source_kind=url
    if command -v curl >/dev/null 2>&1; then
        downloader=curl
    elif command -v wget >/dev/null 2>&1; then
        downloader=wget
    else
        die "neither curl nor wget is installed: install one, or download $archive and $CHECKSUMS by hand and set ARTIFACT_BASE_URL to their directory"
    fi
    ;;
file://*)
    source_kind=dir
    dir=${base#file://}
    case $dir in
    localhost/*) dir=${dir#localhost} ;;
    esac
    case $dir in
    /*) ;;
    *) die "ARTIFACT_BASE_URL='$base': a file:// URL needs an absolute path (file:///path/to/release)" ;;
    esac
    ;;
*://*)
    die "ARTIFACT_BASE_URL='$base': use an https:// or http:// URL, a file:// URL or a directory"
    ;;
*)
    source_kind=dir
    dir=$base
    ;;
esac
if [ "$source_kind" = dir ] && [ ! -d "$dir" ]; then
    die "ARTIFACT_BASE_URL='$base': the directory '$dir' does not exist"
fi

# fetch NAME DEST: one release file into DEST.
fetch() {
    if [ "$source_kind" = dir ]; then
        [ -f "$dir/$1" ] || die "$1 is not in $dir"
        cp "$dir/$1" "$2" || die "cannot copy $dir/$1"
        return
    fi
    say "downloading $base/$1"
    case $downloader in
    curl) curl --fail --silent --show-error --location --retry 3 --output "$2" "$base/$1" ||
        die "cannot download $base/$1 (curl failed, see above)" ;;
    wget) wget --quiet --tries=3 --output-document="$2" "$base/$1" ||
        die "cannot download $base/$1 (wget failed)" ;;
    esac
}

if command -v sha256sum >/dev/null 2>&1; then
    sha_tool=sha256sum
elif command -v shasum >/dev/null 2>&1; then
    sha_tool=shasum
elif command -v openssl >/dev/null 2>&1; then
    sha_tool=openssl
else
    die "no way to compute SHA-256 here: install sha256sum (coreutils) or shasum (perl)"
fi

sha256_of() {
    case $sha_tool in
    sha256sum) sha256sum "$1" ;;
    shasum) shasum -a 256 "$1" ;;
    openssl) openssl dgst -sha256 -r "$1" ;;
    esac | cut -d ' ' -f 1
}

# ---------------------------------------------------------------- where to

if [ -z "$install_dir" ]; then
    if [ "$(id -u)" = 0 ]; then
        install_dir=/usr/local/bin
    elif [ -n "${HOME:-}" ]; then
        install_dir=$HOME/.local/bin
    else
        die "HOME is not set: choose a directory with -b DIR or ARTIFACT_INSTALL_DIR"
    fi
fi

# ---------------------------------------------------------------- download, verify

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t artifact-install) || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fetch "$CHECKSUMS" "$tmp/$CHECKSUMS"
fetch "$archive" "$tmp/$archive"

# A line is "<sha256>  <name>" (or "<sha256> *<name>", sha256sum's binary mode).
expected=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$tmp/$CHECKSUMS" | tr 'A-F' 'a-f')
count=$(printf '%s' "$expected" | grep -c . || true)
[ "$count" = 1 ] || die "$CHECKSUMS from $base has no single line for $archive: nothing was installed"
case $expected in
*[!0-9a-f]*) die "$CHECKSUMS from $base has a malformed checksum for $archive: nothing was installed" ;;
esac
[ ${#expected} = 64 ] || die "$CHECKSUMS from $base has a malformed checksum for $archive: nothing was installed"
actual=$(sha256_of "$tmp/$archive" | tr 'A-F' 'a-f')
[ -n "$actual" ] || die "$sha_tool could not read $archive: nothing was installed"
if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $archive from $base
  expected sha256 $expected (from $CHECKSUMS)
  got      sha256 $actual
  The download is damaged or was tampered with: nothing was installed."
fi
say "verified $archive (sha256 $actual)"

mkdir "$tmp/x"
tar -xzf "$tmp/$archive" -C "$tmp/x" || die "cannot unpack $archive: nothing was installed"
[ -f "$tmp/x/$NAME" ] || die "$archive holds no '$NAME' binary: nothing was installed"

# ---------------------------------------------------------------- install

mkdir -p "$install_dir" 2>/dev/null || die "cannot create $install_dir: choose another with -b DIR, or run as root"
dest=$install_dir/$NAME
# Copy beside the destination, then rename: a running copy is never half-written.
part=$install_dir/.$NAME.install.$$
if ! cp "$tmp/x/$NAME" "$part" 2>/dev/null; then
    rm -f "$part"
    die "cannot write to $install_dir: choose another with -b DIR, or run as root"
fi
if ! chmod 755 "$part" || ! mv -f "$part" "$dest"; then
    rm -f "$part"
    die "cannot install $dest"
fi
say "installed $dest"

if version=$("$dest" --version 2>&1); then
    say "$version"
else
    say "warning: '$dest --version' failed: $version"
fi
case ":${PATH:-}:" in
*":$install_dir:"*) ;;
*) say "note: $install_dir is not on your PATH; add it, or call $dest" ;;
esac
