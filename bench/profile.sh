#!/bin/sh
# Where the machine's CPU goes while one tool moves one workload: `perf
# record -a` during five pulls (or pushes) by artifact or s5cmd against
# bench-s3 (TCP_NODELAY s3s-fs, data on tmpfs); then the share of each
# process (the tool, the server, idle), the server's hottest symbols, and the
# tool's. Pulls land on tmpfs, or on PROFILE_OUT (e.g. a directory on the
# runner's disk), each in a new directory. Run `make bench` once first: it
# builds bench-s3 and installs s5cmd.
#
#   sh bench/profile.sh artifact|s5cmd small|mid down|up
#   PROFILE_OUT=bench/work/profile sh bench/profile.sh artifact small down
set -eu
TOOL=${1:?usage: bench/profile.sh artifact|s5cmd small|mid down|up}
WL=${2:?workload: small or mid}
DIR=${3:?direction: down or up}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/server/target/release
ART=${BENCH_ARTIFACT:-$HERE/../target/release/artifact}
S5=$("$HERE/work/venv/bin/python" -c 'import os, s5cmd; print(os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd"))')
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
for b in "$BIN/bench-s3" "$BIN/bench-gen" "$ART" "$S5"; do
    [ -x "$b" ] || { echo "profile.sh: $b is missing; run make bench first" >&2; exit 1; }
done
W=$(mktemp -d /dev/shm/artifact-profile.XXXXXX)
OUT=${PROFILE_OUT:-$W/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
trap 'kill $SERVER 2>/dev/null; rm -rf "$W"; [ -z "${PROFILE_OUT:-}" ] || rm -rf "$OUT"/pull-*' EXIT
mkdir -p "$W/s3/bkt"
case $WL in
small) "$BIN/bench-gen" --out "$W/data" --files 1000 --size 4K --per-dir 10 --fanout 10 --depth 2 ;;
mid) "$BIN/bench-gen" --out "$W/data" --files 100 --size 1M ;;
*) echo "profile.sh: workload is small or mid" >&2; exit 2 ;;
esac >/dev/null
"$BIN/bench-s3" --root "$W/s3" --port 0 --access-key AK --secret-key SK --port-file "$W/port" </dev/null >/dev/null 2>&1 &
SERVER=$!
while [ ! -s "$W/port" ]; do sleep 0.1; done
URL=http://127.0.0.1:$(cat "$W/port")
export AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK AWS_REGION=us-east-1 \
    ARTIFACT_BACKEND=s3 ARTIFACT_S3_BUCKET=bkt ARTIFACT_S3_ENDPOINT=$URL \
    ARTIFACT_S3_REGION=us-east-1 SEMAPHORE_JOB_ID=profile
push() {
    if [ "$TOOL" = artifact ]; then "$ART" push job "$W/data" -f
    else "$S5" --endpoint-url "$URL" cp "$W/data/*" s3://bkt/artifacts/jobs/profile/data/; fi >/dev/null 2>&1
}
N=0
pull() {
    N=$((N + 1))
    if [ "$TOOL" = artifact ]; then "$ART" pull job data -d "$OUT/pull-$N"
    else "$S5" --endpoint-url "$URL" cp "s3://bkt/artifacts/jobs/profile/data/*" "$OUT/pull-$N/"; fi >/dev/null 2>&1
    sync
}
push
perf record -F 2000 -g -a -o "$W/perf.data" >/dev/null 2>&1 &
PERF=$!
sleep 0.5
for i in 1 2 3 4 5; do if [ "$DIR" = down ]; then pull; else push; fi; done
kill -INT $PERF; wait $PERF || true
TOOL_COMM=$(basename "$( [ "$TOOL" = artifact ] && echo "$ART" || echo "$S5")")
echo "# all CPUs while $TOOL moves $WL $DIR (5 times, pulls onto $(df --output=fstype "$OUT" | tail -1)): samples by process"
perf report -i "$W/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep '%' | head -8
echo "# bench-s3: by binary, then by symbol"
perf report -i "$W/perf.data" --no-children --pid "$SERVER" --sort dso --stdio -g none 2>/dev/null | grep '%' | head -6
perf report -i "$W/perf.data" --no-children --pid "$SERVER" --sort sym --stdio -g none 2>/dev/null | grep '%' | head -15
echo "# $TOOL_COMM: by symbol"
perf report -i "$W/perf.data" --no-children --comm "$TOOL_COMM" --sort sym --stdio -g none 2>/dev/null | grep '%' | head -15
