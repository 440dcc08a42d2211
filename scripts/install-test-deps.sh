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
