//! Files that appear whole or not at all.
//!
//! A download (and a write into the local backend's store) goes to a
//! temporary file beside its destination and is renamed into place only
//! when complete, so a failed or killed run never leaves half a file where a
//! later step would read it. A temporary file is readable and writable by
//! its owner only until the commit, which sets the final mode on the open
//! file just before the rename: nobody else can change its bytes after they
//! were verified.
//!
//! Temporary names carry the writer's host, PID namespace and PID
//! (`.artifact-tmp~HOST~PIDNS~PID~NONCE~NAME`, `TempName`), so a later run
//! can tell a dead run's leftovers from a live run's, even on a volume
//! that containers of one host share: `sweep` removes only names in exactly
//! this format, and of those only a day-old one, or one whose owner ran on
//! this host, in this PID namespace, and is gone. Where a live owner cannot
//! be ruled out (another host, another namespace, a system without
//! `/proc`), the file is left alone until it is a day old.
//!
//! A download may keep a journal beside its temporary file (the NONCE
//! field marked `j`). A dead owner's temporary file that has one is not
//! removed by the sweep but handed back as a `Leftover`, which
//! `transfer::resume` may adopt; a leftover not adopted is removed when
//! dropped. A cancelled or failed run removes its journals with its
//! temporary files.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result, Side};
use crate::log;

const TEMP_PREFIX: &str = ".artifact-tmp~";
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Marks the NONCE field of a journal's name.
const JOURNAL_MARK: char = 'j';
/// How much of the destination's name a temporary name keeps: the whole
/// name stays within the usual 255-byte limit.
const NAME_KEEP: usize = 120;
const HOST_KEEP: usize = 64;

/// Whether a name starts like one of our temporary files (a push never
/// sends such a file, a store never lists one).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Who wrote a temporary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    host: String,
    /// The PID namespace's inode number; 0 where the system does not say.
    namespace: u64,
    pid: u32,
}

impl Owner {
    /// This process.
    fn this() -> &'static Owner {
        static THIS: OnceLock<Owner> = OnceLock::new();
        THIS.get_or_init(|| Owner {
            host: host(),
            namespace: pid_namespace(),
            pid: std::process::id(),
        })
    }

    /// True when the owner is known to be gone: it ran on this host, in
    /// this PID namespace, and no process has its PID. Only Linux's /proc
    /// answers that without unsafe code; elsewhere the namespace is 0 and
    /// every owner counts as alive.
    fn is_gone(&self) -> bool {
        let this = Owner::this();
        self.host == this.host
            && self.namespace != 0
            && self.namespace == this.namespace
            && self.pid != this.pid
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// This machine's name, as temporary files record it: Linux's, else the
/// environment's (HOSTNAME; COMPUTERNAME, which Windows always sets), else
/// what the `hostname` command prints (macOS, and Windows has one too).
fn host() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| {
            let out = std::process::Command::new("hostname")
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            String::from_utf8(out.stdout).ok()
        })
        .unwrap_or_default();
    let clean: String = name
        .trim()
        .chars()
        .filter(|c| is_host_char(*c))
        .take(HOST_KEEP)
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// The PID namespace this process runs in (`readlink /proc/self/ns/pid`
/// is `pid:[4026531836]`): two containers of one host have the same host
/// name and may reuse each other's PIDs, never their namespace. 0 where
/// there is no such link.
fn pid_namespace() -> u64 {
    fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_str()?.to_string();
            link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

/// A temporary file's name, in exactly our format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempName {
    owner: Owner,
    nonce: u64,
    journal: bool,
    /// The destination's name, cut to `NAME_KEEP` characters.
    name: String,
}

impl TempName {
    /// A name no other temporary file has had: this process's, with a
    /// nonce no other name of this process has used.
    pub(crate) fn fresh(dest_name: &str) -> TempName {
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let name: String = dest_name.chars().take(NAME_KEEP).collect();
        TempName {
            owner: Owner::this().clone(),
            nonce: NONCE.fetch_add(1, Ordering::Relaxed),
            journal: false,
            name: if name.is_empty() { "_".into() } else { name },
        }
    }

    /// Reads `name` when it is in exactly our format, and `None` otherwise:
    /// a file that merely starts like ours is a user's, never removed.
    pub fn parse(name: &str) -> Option<TempName> {
        let mut fields = name.strip_prefix(TEMP_PREFIX)?.splitn(5, '~');
        let mut next = || fields.next();
        let (host, namespace, pid, nonce, rest) = (next()?, next()?, next()?, next()?, next()?);
        let valid_host = (1..=HOST_KEEP).contains(&host.len()) && host.chars().all(is_host_char);
        let (nonce, journal) = match nonce.strip_suffix(JOURNAL_MARK) {
            Some(n) => (n, true),
            None => (nonce, false),
        };
        let valid_rest =
            !rest.is_empty() && !rest.contains('/') && rest.chars().count() <= NAME_KEEP;
        if !valid_host || !valid_rest {
            return None;
        }
        let parsed = TempName {
            owner: Owner {
                host: host.to_string(),
                namespace: number(namespace)?,
                pid: u32::try_from(number(pid)?).ok().filter(|&p| p > 0)?,
            },
            nonce: number(nonce)?,
            journal,
            name: rest.to_string(),
        };
        // One spelling per name: no leading zeros, no sign.
        (parsed.to_string() == name).then_some(parsed)
    }

    /// The name of this file's journal, or of the file a journal is for.
    pub(crate) fn with_journal(&self, journal: bool) -> TempName {
        TempName {
            journal,
            ..self.clone()
        }
    }

    /// The destination's name as far as this name keeps it.
    pub fn dest_name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for TempName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Owner {
            host,
            namespace,
            pid,
        } = &self.owner;
        let mark = if self.journal { "j" } else { "" };
        write!(
            f,
            "{TEMP_PREFIX}{host}~{namespace}~{pid}~{}{mark}~{}",
            self.nonce, self.name
        )
    }
}

/// Digits only, as a number.
fn number(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The temporary files this run has open, so that a run ended by a signal
/// can remove them without waiting for their owners (the signal listener
/// has no run to ask).
static OPEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn track(path: &Path, open: bool) {
    if let Ok(mut set) = OPEN.lock() {
        let set = set.get_or_insert_with(HashSet::new);
        if open {
            set.insert(path.to_path_buf());
        } else {
            set.remove(path);
        }
    }
}

/// Removes every temporary file this run still has open.
pub fn remove_open_temp_files() {
    if let Ok(mut set) = OPEN.lock() {
        for path in set.take().unwrap_or_default() {
            let _ = fs::remove_file(path);
        }
    }
}

/// The permission bits a committed file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The system's default for a new file (0666 less the umask).
    Default,
    /// These bits, less the umask, as `cp` gives a new file.
    New(u32),
    /// Exactly these bits (a file replaced keeps its mode; a store keeps
    /// what it was given).
    Exact(u32),
}

impl Mode {
    /// The mode a pull gives `dest`: the one recorded with the object, else
    /// (with --force) the mode of the file it replaces, else the default.
    /// Setuid, setgid and sticky bits are never applied.
    pub fn for_pull(recorded: Option<u32>, dest: &Path, force: bool) -> Mode {
        match recorded {
            Some(bits) => Mode::New(bits & 0o777),
            None if force => fs::metadata(dest)
                .ok()
                .filter(fs::Metadata::is_file)
                .and_then(|m| permission_bits(&m))
                .map_or(Mode::Default, Mode::Exact),
            None => Mode::Default,
        }
    }

    /// The `rwxrwxrwx` bits a file of this mode ends with.
    pub fn bits(self) -> u32 {
        match self {
            Mode::Default => 0o666 & !umask(),
            Mode::New(bits) => bits & 0o777 & !umask(),
            Mode::Exact(bits) => bits & 0o777,
        }
    }
}

/// The process's umask. Linux states it in /proc; elsewhere it is read by
/// setting it and putting it back, which `init` does before any thread
/// starts, so no file is created meanwhile.
#[cfg(unix)]
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let stated = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            u32::from_str_radix(line.trim(), 8).ok()
        });
        stated.unwrap_or_else(|| {
            use rustix::fs::Mode as Bits;
            let old = rustix::process::umask(Bits::from_raw_mode(0o077));
            rustix::process::umask(old);
            // mode_t is 16 bits on macOS.
            #[allow(clippy::useless_conversion)]
            u32::from(old.as_raw_mode())
        })
    })
}

#[cfg(not(unix))]
fn umask() -> u32 {
    0
}

/// Reads what the process's start fixes (umask, host, PID namespace),
/// before any thread runs.
pub fn init() {
    umask();
    Owner::this();
}

/// A file's permission bits (`rwxrwxrwx`), where the system has them.
#[cfg(unix)]
pub fn permission_bits(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
pub fn permission_bits(_meta: &fs::Metadata) -> Option<u32> {
    None
}

/// Opens a new file for reading and writing by its owner only; never an
/// existing one, so never through a symlink.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn set_bits(file: &File, bits: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(bits))
}

#[cfg(not(unix))]
fn set_bits(_file: &File, _bits: u32) -> io::Result<()> {
    Ok(())
}

/// A temporary file that removes itself unless committed.
pub struct TempFile {
    path: PathBuf,
    name: TempName,
    file: File,
    committed: bool,
    /// Whether a journal may be beside it (removed with it).
    journaled: bool,
}

impl TempFile {
    /// Creates the temporary file for `dest`, and `dest`'s parent
    /// directories when they are missing: the file is opened first and the
    /// directories made only if that fails, so a pull of many files into
    /// one directory makes it once, not once per file.
    pub fn create(dest: &Path) -> Result<TempFile> {
        let name = TempName::fresh(&dest_name(dest));
        let path = dest.with_file_name(name.to_string());
        let file = match create_private(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_parents(dest)?;
                create_private(&path)
            }
            other => other,
        }
        .map_err(|e| Error::local_io("create", dest, e))?;
        Ok(TempFile::tracked(path, name, file))
    }

    /// Moves a dead run's file, already opened and checked as `file`, to
    /// a temporary name of this run's beside `dest`; `None` when the name
    /// no longer holds the file checked (someone replaced it meanwhile).
    pub fn take_over(old: &Path, file: File, dest: &Path) -> Option<TempFile> {
        let name = TempName::fresh(&dest_name(dest));
        let path = dest.with_file_name(name.to_string());
        fs::rename(old, &path).ok()?;
        track(&path, true);
        let temp = TempFile {
            path,
            name,
            file,
            committed: false,
            journaled: false,
        };
        same_file(&temp.file, &temp.path).then_some(temp)
    }

    fn tracked(path: PathBuf, name: TempName, file: File) -> TempFile {
        track(&path, true);
        TempFile {
            path,
            name,
            file,
            committed: false,
            journaled: false,
        }
    }

    /// Where this file's journal goes; from now on it is removed with the
    /// file (on a commit, a drop or a signal).
    pub fn journal(&mut self) -> PathBuf {
        let path = self.journal_path();
        if !self.journaled {
            self.journaled = true;
            track(&path, true);
        }
        path
    }

    fn journal_path(&self) -> PathBuf {
        self.path
            .with_file_name(self.name.with_journal(true).to_string())
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the finished file `mode` and moves it to `dest`. With
    /// `overwrite` false, fails with AlreadyExists if `dest` appeared
    /// meanwhile (a hard link cannot replace a file, so two racing writers
    /// cannot both win).
    pub fn commit(
        mut self,
        dest: &Path,
        mode: Mode,
        overwrite: bool,
        display: &str,
        side: Side,
    ) -> Result<()> {
        set_bits(&self.file, mode.bits()).map_err(|e| Error::local_io("chmod", dest, e))?;
        if overwrite {
            fs::rename(&self.path, dest).map_err(|e| Error::local_io("write", dest, e))?;
        } else {
            match fs::hard_link(&self.path, dest) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.path);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists {
                        side,
                        path: display.to_string(),
                    })
                }
                Err(e) => return Err(Error::local_io("write", dest, e)),
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
        track(&self.path, false);
        if self.journaled {
            let journal = self.journal_path();
            let _ = fs::remove_file(&journal);
            track(&journal, false);
        }
    }
}

/// The file name of `dest`, as a temporary name keeps it.
fn dest_name(dest: &Path) -> String {
    dest.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `path` (not followed) is the file open as `file`.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> bool {
    false
}

/// A dead run's temporary file and its journal, found by `sweep`; both
/// are removed when dropped, unless adopted first.
pub struct Leftover {
    pub temp: PathBuf,
    pub journal: PathBuf,
    name: TempName,
}

impl Leftover {
    /// The destination's name, as far as the temporary name keeps it.
    pub fn dest_name(&self) -> &str {
        self.name.dest_name()
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        remove_stale_file(&self.temp);
        remove_stale_file(&self.journal);
    }
}

fn remove_stale_file(path: &Path) {
    if fs::remove_file(path).is_ok() {
        log::debug(|| format!("removed a stale temporary file '{}'", path.display()));
    }
}

/// Makes the directories `dest` needs.
fn make_parents(dest: &Path) -> Result<()> {
    let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    fs::create_dir_all(parent).map_err(|e| {
        let e = match e.kind() {
            // A file sits where a directory must go.
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                io::Error::new(io::ErrorKind::NotADirectory, e.to_string())
            }
            _ => e,
        };
        Error::local_io("create directory", parent, e)
    })
}

/// Clears `dir` of what dead runs left: removes every temporary file in
/// exactly our format that is a day old, or whose owner is gone and which
/// has no journal (or is a journal without its file), and hands back a
/// dead owner's journalled files as `Leftover`s. Nothing else is touched:
/// not a live run's file, not another namespace's, not a user's.
pub fn sweep(dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    // Dead owners' files, by their name less the journal mark.
    let mut dead: HashMap<String, (Option<PathBuf>, Option<PathBuf>, TempName)> = HashMap::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(TempName::parse) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            remove_stale_file(&entry.path());
        } else if name.owner.is_gone() {
            let base = name.with_journal(false);
            let found = dead.entry(base.to_string()).or_insert((None, None, base));
            match name.journal {
                true => found.1 = Some(entry.path()),
                false => found.0 = Some(entry.path()),
            }
        }
    }
    let mut leftovers = Vec::new();
    for (temp, journal, name) in dead.into_values() {
        match (temp, journal) {
            (Some(temp), Some(journal)) => leftovers.push(Leftover {
                temp,
                journal,
                name,
            }),
            (one, other) => one.iter().chain(&other).for_each(|p| remove_stale_file(p)),
        }
    }
    leftovers
}

/// The names of a temporary file for `name` and its journal, as a dead
/// run of this host and namespace left them (for resume's tests, which
/// run on Linux only).
#[cfg(all(test, target_os = "linux"))]
pub fn dead_names(name: &str) -> (String, String) {
    let (temp, journal) = (tests::dead_name("0", name), tests::dead_name("0j", name));
    (temp, journal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(super) fn dead_name(nonce: &str, name: &str) -> String {
        let this = Owner::this();
        format!(
            "{TEMP_PREFIX}{}~{}~999999999~{nonce}~{name}",
            this.host, this.namespace
        )
    }

    #[test]
    fn commit_moves_the_file_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.txt");
        let mut t = TempFile::create(&dest).unwrap();
        t.file().write_all(b"hello").unwrap();
        t.commit(&dest, Mode::Default, false, "out.txt", Side::Local)
            .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");

        let t = TempFile::create(&dest).unwrap();
        let err = t
            .commit(&dest, Mode::Default, false, "out.txt", Side::Local)
            .unwrap_err();
        assert_eq!(err.exit_code(), 5);

        {
            let mut t = TempFile::create(&dest).unwrap();
            t.file().write_all(b"partial").unwrap();
        }
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
    }

    /// Private until the commit, then exactly the mode asked for: never
    /// setuid, setgid or sticky.
    #[cfg(unix)]
    #[test]
    fn a_temporary_file_is_private_until_its_commit_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let t = TempFile::create(&dest).unwrap();
        assert_eq!(permission_bits(&t.file.metadata().unwrap()), Some(0o600));
        t.commit(&dest, Mode::Exact(0o4755), true, "f", Side::Local)
            .unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&dest).unwrap().permissions());
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(Mode::New(0o7777).bits(), 0o777 & !umask());
    }

    #[test]
    fn names_in_exactly_our_format_and_nothing_else() {
        let ours = TempName::fresh("a~b.txt");
        let text = ours.to_string();
        assert_eq!(TempName::parse(&text), Some(ours.clone()));
        let journal = ours.with_journal(true).to_string();
        assert!(TempName::parse(&journal).unwrap().journal);
        for other in [
            ".artifact-tmp~",
            ".artifact-tmp~my notes.txt",
            ".artifact-tmp~h~1~2~x",    // the format before PID namespaces
            ".artifact-tmp~h~01~2~3~x", // leading zero
            ".artifact-tmp~h~1~0~3~x",  // PID 0
            ".artifact-tmp~h~1~+2~3~x",
            ".artifact-tmp~h~1~2~3k~x",
            ".artifact-tmp~h~1~2~3~",
            ".artifact-tmp~h h~1~2~3~x",
            ".artifact-tmp~~1~2~3~x",
        ] {
            assert_eq!(TempName::parse(other), None, "{other:?}");
        }
        let long = TempName::fresh(&"é".repeat(300));
        assert_eq!(long.dest_name().chars().count(), NAME_KEEP);
        assert!(TempName::parse(&long.to_string()).is_some());
    }

    #[test]
    fn the_sweep_removes_only_dead_and_day_old_files_of_our_format() {
        let dir = tempfile::tempdir().unwrap();
        let this = Owner::this();
        let dead = dir.path().join(dead_name("0", "a"));
        let live = dir.path().join(TempName::fresh("b").to_string());
        let other_host = dir.path().join(format!(
            "{TEMP_PREFIX}elsewhere~{}~999999999~0~c",
            this.namespace
        ));
        let other_namespace = dir.path().join(format!(
            "{TEMP_PREFIX}{}~{}~999999999~0~d",
            this.host,
            this.namespace + 1
        ));
        let user_file = dir.path().join("data.txt");
        let look_alike = dir.path().join(".artifact-tmp~notes");
        let old_look_alike = dir.path().join(".artifact-tmp~h~1~2~old");
        let old_ours = dir.path().join(format!("{TEMP_PREFIX}elsewhere~1~2~3~old"));
        for p in [
            &dead,
            &live,
            &other_host,
            &other_namespace,
            &user_file,
            &look_alike,
            &old_look_alike,
            &old_ours,
        ] {
            fs::write(p, b"x").unwrap();
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86400);
        for p in [&old_look_alike, &old_ours] {
            let file = File::options().write(true).open(p).unwrap();
            file.set_modified(two_days_ago).unwrap();
        }
        assert!(sweep(dir.path()).is_empty());
        assert!(!old_ours.exists());
        assert_eq!(dead.exists(), this.namespace == 0, "a dead owner's file");
        for kept in [
            &live,
            &other_host,
            &other_namespace,
            &user_file,
            &look_alike,
            &old_look_alike,
        ] {
            assert!(kept.exists(), "{kept:?} was removed");
        }
    }

    /// A dead run's file with a journal is handed back, and removed with
    /// its journal when not adopted; journals without their file, and
    /// files without a journal, go at once.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_dead_runs_journalled_file_is_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let dead = |nonce: &str, name: &str| {
            let path = dir.path().join(dead_name(nonce, name));
            fs::write(&path, b"x").unwrap();
            path
        };
        let (kept, kept_journal) = (dead("0", "kept"), dead("0j", "kept"));
        let orphan_journal = dead("2j", "orphan");
        let bare = dead("3", "bare");
        let leftovers = sweep(dir.path());
        assert!(!orphan_journal.exists() && !bare.exists());
        assert_eq!(leftovers.len(), 1);
        assert_eq!(leftovers[0].dest_name(), "kept");
        assert_eq!(
            (&leftovers[0].temp, &leftovers[0].journal),
            (&kept, &kept_journal)
        );
        drop(leftovers);
        assert!(!kept.exists() && !kept_journal.exists());
    }
}
