#!/bin/sh
# `make release`: the release files, named as the Go CLI's releases are, in dist/:
#   artifact_Linux_x86_64.tar.gz   artifact_Linux_arm64.tar.gz
#   artifact_Darwin_x86_64.tar.gz  artifact_Darwin_arm64.tar.gz
#   artifact_Windows_x86_64.tar.gz artifact_checksums.txt
# Each archive holds the binary `artifact` (`artifact.exe` for Windows, as
# the Go CLI's does), LICENSE and README.md; the
# checksums file has one "<sha256>  <archive>" line per archive. install.sh
# goes beside them, so a copy of dist/ installs itself on an air-gapped
# machine (ARTIFACT_BASE_URL=. sh install.sh). `make static`
# builds the binaries first. The archives are reproducible: same binaries,
# same commit, same bytes.
set -eu
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
DIST=dist

die() {
    echo "release: $*" >&2
    exit 1
}

# Timestamps in the archives: the commit's time (or SOURCE_DATE_EPOCH).
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

mkdir -p "$DIST"
rm -f "$DIST"/artifact_*.tar.gz "$DIST"/artifact_checksums.txt "$DIST"/install.sh
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

archives=""
# triple, OS and architecture as the Go CLI names them, executable.
for build in x86_64-unknown-linux-musl/Linux/x86_64/artifact \
    aarch64-unknown-linux-musl/Linux/arm64/artifact \
    x86_64-apple-darwin/Darwin/x86_64/artifact \
    aarch64-apple-darwin/Darwin/arm64/artifact \
    x86_64-pc-windows-gnu/Windows/x86_64/artifact.exe; do
    triple=${build%%/*}
    exe=${build##*/}
    rest=${build#*/}
    rest=${rest%/*}
    os=${rest%/*}
    arch=${rest#*/}
    bin=$TARGET_DIR/$triple/release/$exe
    [ -f "$bin" ] || die "$bin is missing: run 'make static' first"
    name=artifact_${os}_$arch.tar.gz
    dir=$stage/${os}_$arch
    mkdir "$dir"
    cp "$bin" "$dir/$exe"
    cp LICENSE README.md "$dir/"
    chmod 755 "$dir/$exe"
    chmod 644 "$dir/LICENSE" "$dir/README.md"
    tar --create --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$epoch" --directory="$dir" "$exe" LICENSE README.md |
        gzip -9 -n >"$DIST/$name"
    archives="$archives $name"
done

# shellcheck disable=SC2086 # one word per archive
(cd "$DIST" && sha256sum $archives >artifact_checksums.txt)
cp install.sh "$DIST/install.sh"
chmod 755 "$DIST/install.sh"

echo "release: $DIST/"
(cd "$DIST" && ls -l artifact_* install.sh && cat artifact_checksums.txt)
