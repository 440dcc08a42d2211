//! Ceph's RADOS Gateway: a real S3 store for the tests.
//!
//! One single-node Ceph cluster per test process, started when a test first
//! asks for a bucket, on free loopback ports, with its configuration, data
//! and logs in a temporary directory: a monitor, one OSD that keeps objects
//! in RAM (`memstore`), and radosgw's beast frontend, with one user whose
//! keys sign every request. Each test gets a bucket of its own ([`Rgw`]), so
//! tests run in parallel on the one cluster.
//!
//! The daemons run in the foreground under a supervising shell whose stdin
//! is a pipe from the test process (the lifeline). When that pipe closes,
//! which happens however the test process ends, the shell stops the daemons
//! newest first (gateway, OSD, monitor) and removes the directory: no daemon
//! outlives the tests, and a killed run leaves nothing that blocks the next.
//! Each daemon is waited for by asking it, under a deadline; a start that
//! fails says which step failed and prints the tail of every daemon's log.
//!
//! The Ceph packages (`ceph-mon`, `ceph-osd`, `radosgw`, `ceph-common`) are
//! installed by `make install`.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::aws::S3Keys;
use crate::s3::Bucket;

/// The gateway user's keys.
pub const ACCESS_KEY: &str = "RGWTESTACCESSKEY";
pub const SECRET_KEY: &str = "RGWTESTSECRETKEY0123456789";

/// How long the whole cluster may take to start (it takes seconds).
const START_DEADLINE: Duration = Duration::from_secs(90);
/// How long one command of the Ceph tools may take.
const COMMAND_TIMEOUT_SECS: &str = "20";

/// A bucket of its own on the test process's gateway.
pub struct Rgw(Bucket);

impl std::ops::Deref for Rgw {
    type Target = Bucket;

    fn deref(&self) -> &Bucket {
        &self.0
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl Rgw {
    /// A new, empty bucket; the first call starts the cluster.
    pub fn bucket() -> Rgw {
        let cluster = match CLUSTER.get_or_init(Cluster::start) {
            Ok(cluster) => cluster,
            Err(why) => panic!("{why}"),
        };
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        let keys = S3Keys {
            access_key: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
        };
        Rgw(Bucket::create(
            &cluster.endpoint,
            format!("rgw-{}-{n}", std::process::id()),
            keys,
        ))
    }
}

struct Cluster {
    endpoint: String,
    /// The supervisor stops the daemons when this pipe closes.
    lifeline: Mutex<ChildStdin>,
    _supervisor: Child,
}

/// Starts each daemon named on a line of its stdin, with its output in
/// `log/<name>.out` and its process id in `run/<name>.supervised`; when stdin closes, stops them newest first, each
/// waited for (killed if it takes longer than the deadline), and removes
/// the directory. Its own process group, so a ^C to the tests does not
/// kill it before it has cleaned up: the closed pipe does that.
const SUPERVISOR: &str = r#"
conf=$1 dir=$2 pids=
while read -r daemon; do
    case $daemon in
        mon) set -- ceph-mon -i a ;;
        osd) set -- ceph-osd -i 0 ;;
        rgw) set -- radosgw -n client.rgw.a ;;
        *) continue ;;
    esac
    "$@" -c "$conf" -f >"$dir/log/$daemon.out" 2>&1 </dev/null &
    pids="$! $pids"
    echo $! >"$dir/run/$daemon.supervised"
done
for pid in $pids; do
    kill "$pid" 2>/dev/null
    (sleep 20; kill -9 "$pid" 2>/dev/null) & deadline=$!
    wait "$pid"
    kill "$deadline" 2>/dev/null
done
rm -rf "$dir"
"#;

impl Cluster {
    fn start() -> Result<Cluster, String> {
        for tool in ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!(
                    "{tool} is not installed: run `make install` (it installs Ceph's packages with apt-get)"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("artifact-rgw-")
            .tempdir()
            .map_err(|e| format!("cannot make the cluster's directory: {e}"))?
            .keep();
        for sub in ["log", "run", "mon", "osd", "rgw", "crash"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir {sub}: {e}"))?;
        }
        let [mon_port, rgw_port] = free_ports()?;
        let conf = dir.join("ceph.conf");
        fs::write(&conf, config(&dir, mon_port, rgw_port))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let mut supervisor = Command::new("sh")
            .args(["-c", SUPERVISOR, "rgw-supervisor"])
            .arg(&conf)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("CEPH_ARGS")
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the cluster's supervisor: {e}"))?;
        let Some(lifeline) = supervisor.stdin.take() else {
            return Err("the supervisor has no stdin".to_string());
        };
        let mut cluster = Cluster {
            endpoint: format!("http://127.0.0.1:{rgw_port}"),
            lifeline: Mutex::new(lifeline),
            _supervisor: supervisor,
        };
        let ceph = Ceph { conf, dir };
        let deadline = Instant::now() + START_DEADLINE;
        cluster
            .bring_up(&ceph, deadline)
            .map_err(|why| format!("Ceph RGW did not start: {why}\n{}", ceph.log_tails()))?;
        Ok(cluster)
    }

    /// Each daemon in turn, each waited for by asking it.
    fn bring_up(&mut self, ceph: &Ceph, deadline: Instant) -> Result<(), String> {
        ceph.run("ceph-mon", &["--mkfs", "-i", "a"])?;
        self.launch("mon")?;
        wait_for("the monitor to answer", deadline, || {
            ceph.alive("mon")?;
            ceph.run("ceph", &["osd", "stat"])?;
            Ok(())
        })?;
        let uuid = uuid();
        let id = ceph.run("ceph", &["osd", "new", &uuid])?;
        if id.trim() != "0" {
            return Err(format!("`ceph osd new` gave id {id:?}, not 0"));
        }
        ceph.run("ceph-osd", &["--mkfs", "-i", "0", "--osd-uuid", &uuid])?;
        self.launch("osd")?;
        wait_for("the OSD to be up", deadline, || {
            ceph.alive("osd")?;
            let stat = ceph.run("ceph", &["osd", "stat", "-f", "json"])?;
            let stat: serde_json::Value =
                serde_json::from_str(&stat).map_err(|e| format!("osd stat: {e}: {stat}"))?;
            match stat["num_up_osds"].as_u64() {
                Some(1) => Ok(()),
                _ => Err(NotYet::Retry(format!("osd stat: {stat}"))),
            }
        })?;
        self.launch("rgw")?;
        let root = format!("{}/", self.endpoint);
        wait_for("the gateway to answer HTTP", deadline, || {
            ceph.alive("rgw")?;
            http_status(&root)?;
            Ok(())
        })?;
        ceph.run(
            "radosgw-admin",
            &[
                "user",
                "create",
                "--uid=artifact-tests",
                "--display-name=artifact tests",
                &format!("--access-key={ACCESS_KEY}"),
                &format!("--secret={SECRET_KEY}"),
            ],
        )?;
        Ok(())
    }

    /// Tells the supervisor to start `daemon`.
    fn launch(&mut self, daemon: &str) -> Result<(), String> {
        let mut lifeline = self.lifeline.lock().map_err(|e| e.to_string())?;
        writeln!(lifeline, "{daemon}").map_err(|e| format!("start {daemon}: {e}"))
    }
}

/// The cluster's configuration: what it takes to run well on one node.
fn config(dir: &Path, mon_port: u16, rgw_port: u16) -> String {
    let d = dir.display();
    format!(
        "[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
run dir = {d}/run
crash dir = {d}/crash
# No keys at all; the gateway must then ask the monitor for crc mode,
# or it retries with -13 (permission denied) forever.
auth cluster required = none
auth service required = none
auth client required = none
# One OSD: pools of one copy, placed across OSDs rather than hosts.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false

[mon]
mon data = {d}/mon
log file = {d}/log/mon.log
mon cluster log file = {d}/log/cluster.log
# Commit at once: without it a cold start takes 15 s, not 2.
paxos propose interval = 0.01
# A full test disk must not stop the monitor.
mon data avail crit = 0

[osd]
osd data = {d}/osd
public addr = 127.0.0.1
log file = {d}/log/osd.log
osd objectstore = memstore
memstore device bytes = 4294967296
# Stopping after the gateway: do not wait long for the monitor's ack.
osd mon shutdown timeout = 2

[client.rgw.a]
log file = {d}/log/rgw.log
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
rgw enable lc threads = false
",
        fsid = uuid()
    )
}

/// The Ceph tools, run against the cluster's configuration.
struct Ceph {
    conf: PathBuf,
    dir: PathBuf,
}

impl Ceph {
    /// Runs `tool args` under a timeout; gives its stdout, or why it failed.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("timeout")
            .args([COMMAND_TIMEOUT_SECS, tool, "-c"])
            .arg(&self.conf)
            .args(args)
            .env_remove("CEPH_ARGS")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{tool} {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Fails (for good: no waiting helps) if `daemon` has exited.
    fn alive(&self, daemon: &str) -> Result<(), NotYet> {
        let recorded = self.dir.join("run").join(format!("{daemon}.supervised"));
        let Ok(pid) = fs::read_to_string(recorded) else {
            return Ok(()); // not started yet
        };
        // A dead child the supervisor has not reaped yet is a zombie.
        let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        match state {
            None | Some("Z") | Some("X") => {
                Err(NotYet::Stop(format!("the {daemon} daemon exited")))
            }
            Some(_) => Ok(()),
        }
    }

    /// The last lines of every daemon's log and output.
    fn log_tails(&self) -> String {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        let mut out = String::new();
        for path in names {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
        out
    }
}

/// Why a poll failed.
enum NotYet {
    /// Not ready yet: poll again until the deadline.
    Retry(String),
    /// Waiting longer cannot help.
    Stop(String),
}

impl From<String> for NotYet {
    fn from(why: String) -> NotYet {
        NotYet::Retry(why)
    }
}

/// Polls `ready` until it holds; past `deadline`, or when `ready` says
/// waiting cannot help, says what was awaited and the last answer.
fn wait_for(
    what: &str,
    deadline: Instant,
    mut ready: impl FnMut() -> Result<(), NotYet>,
) -> Result<(), String> {
    loop {
        match ready() {
            Ok(()) => return Ok(()),
            Err(NotYet::Stop(why)) => return Err(format!("while waiting for {what}: {why}")),
            Err(NotYet::Retry(last)) if Instant::now() >= deadline => {
                return Err(format!("timed out waiting for {what}; last: {last}"))
            }
            Err(NotYet::Retry(_)) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The status of a GET of `url`, or why there was none.
fn http_status(url: &str) -> Result<u16, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// Loopback ports free now, and distinct: each is held until all are found.
fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no free loopback port: {e}"))?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener
            .local_addr()
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
    }
    Ok(ports)
}

fn uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|e| panic!("no uuid from the kernel: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_stores_lists_and_serves_objects() {
        let started = Instant::now();
        let rgw = Rgw::bucket();
        eprintln!("cluster up in {:?}", started.elapsed());
        let other = Rgw::bucket();
        rgw.put_object("a/b c.txt", b"hello");
        rgw.put_object("z", b"");
        assert_eq!(rgw.object("a/b c.txt").unwrap(), b"hello");
        assert_eq!(rgw.object("missing"), None);
        assert_eq!(rgw.keys(), vec!["a/b c.txt", "z"]);
        assert!(other.keys().is_empty());
        assert!(rgw.open_uploads().is_empty());
    }
}
