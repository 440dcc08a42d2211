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
