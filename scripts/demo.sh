#!/bin/sh
# `make demo`: push, pull and yank on the local backend, in a temp dir.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

export ARTIFACT_BACKEND=local
export ARTIFACT_LOCAL_DIR="$work/store"
export SEMAPHORE_JOB_ID=demo-job SEMAPHORE_WORKFLOW_ID=demo-workflow SEMAPHORE_PROJECT_ID=demo-project
mkdir -p "$ARTIFACT_LOCAL_DIR" dist/reports

echo "build output" > dist/app.txt
echo "<testsuite/>" > dist/reports/junit.xml
step() { echo; echo "\$ $*"; "$@"; }

step "$bin" --version
step "$bin" push workflow dist
step "$bin" push job dist/app.txt -d logs/app.log
echo "piped data" | step "$bin" push project - -d notes.txt
step "$bin" push workflow dist || echo "(exit $? as expected: already exists; add --force to overwrite)"
step "$bin" pull workflow dist -d restored
step diff -r dist restored
step "$bin" pull project notes.txt
step cat notes.txt
step "$bin" yank workflow dist
step "$bin" pull workflow dist -d again || echo "(exit $? as expected: not found after yank)"
echo
echo "Store layout:"
(cd "$ARTIFACT_LOCAL_DIR" && find . -type f | sort)
