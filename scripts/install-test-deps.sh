#!/bin/sh
# Installs what `make test` needs, only what is missing, so it is cheap to
# run again. A tool that cannot be installed fails the run: checks never skip.
set -eu

need_component() {
    if ! rustup component list --installed 2>/dev/null | grep -q "^$1"; then
        echo "install: rustup component add $1"
        rustup component add "$1"
    fi
}

need_component rustfmt
need_component clippy

# moto's S3 server: the second, independent S3 implementation the suite runs
# against (the first, s3s-fs, is a dev-dependency and runs in process).
MOTO_VERSION=5.2.5
if ! python3 -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || ! command -v moto_server >/dev/null 2>&1; then
    echo "install: pip install moto[server]==$MOTO_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto" >&2; exit 1; }

# Ceph's RADOS Gateway: a real store the suite runs as one more backend
# (one monitor, one in-memory OSD and radosgw, started by testkit/src/rgw.rs).
# Debian's packages; apt-get update only when something must be installed.
CEPH_PACKAGES="ceph-mon ceph-osd radosgw ceph-common"
missing=""
for p in $CEPH_PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || { echo "cannot install$missing: no apt-get on this machine" >&2; exit 1; }
    as_root=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "cannot install$missing: not root and no sudo" >&2; exit 1; }
        as_root="sudo"
    fi
    echo "install: apt-get install$missing"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH after installing the Ceph packages" >&2; exit 1; }
done
