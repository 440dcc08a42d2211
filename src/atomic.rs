//! Files that appear whole or not at all.
//!
//! A download (and a write into the local backend's store) goes to a
//! temporary file beside its destination and is renamed into place only
//! when complete, so a failed or killed run never leaves half a file where a
//! later step would read it. Temporary names carry the writer's host and PID
//! (`.artifact-tmp~HOST~PID~NONCE~NAME`), so a later run can remove the
//! leftovers of dead runs — only its own host's whose process is gone, or
//! any older than a day — and never a live run's, even on a shared volume.
//!
//! A download may keep a journal beside its temporary file (the NONCE field
//! marked `j`: `.artifact-tmp~HOST~PID~7j~NAME`, never a user file's
//! temporary name). A dead run's temporary file that has one is not removed
//! with the rest but offered (`take_leftover`) to the download of the same
//! destination, which adopts it by renaming both to its own names, or
//! drops it; whatever was offered and not taken is removed when the pull
//! ends (`remove_leftovers`). A cancelled or failed run removes its journals
//! with its temporary files.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result, Side};
use crate::log;

const TEMP_PREFIX: &str = ".artifact-tmp~";
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Marks the NONCE field of a journal's name.
const JOURNAL_MARK: char = 'j';

/// Whether a name is one of our temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// This machine's name, as temporary files record it: Linux's, else the
/// environment's (HOSTNAME; COMPUTERNAME, which Windows always sets), else
/// what the `hostname` command prints (macOS, and Windows has one too).
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
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
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(64)
            .collect();
        if clean.is_empty() {
            "localhost".to_string()
        } else {
            clean
        }
    })
}

/// A fresh temporary path in `dest`'s directory.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the whole name within the usual 255-byte limit.
    let short: String = name.chars().take(120).collect();
    let temp = format!(
        "{TEMP_PREFIX}{}~{}~{nonce}~{short}",
        host(),
        std::process::id()
    );
    dest.with_file_name(temp)
}

/// The fields of a temporary name: host, PID, nonce, name.
fn fields(name: &str) -> Option<[&str; 4]> {
    let mut fields = name.strip_prefix(TEMP_PREFIX)?.splitn(4, '~');
    Some([
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    ])
}

/// The journal's path for the temporary file at `temp`.
fn journal_path_for(temp: &Path) -> PathBuf {
    let name = temp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match fields(&name) {
        Some([host, pid, nonce, rest]) => temp.with_file_name(format!(
            "{TEMP_PREFIX}{host}~{pid}~{nonce}{JOURNAL_MARK}~{rest}"
        )),
        None => temp.with_file_name(format!("{name}{JOURNAL_MARK}")),
    }
}

fn is_journal_name(name: &str) -> bool {
    fields(name).is_some_and(|[_, _, nonce, _]| nonce.ends_with(JOURNAL_MARK))
}

/// The temporary files this run has open, so that a run ended by a signal
/// can remove them without waiting for their owners.
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

/// The permission bits a new file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The system's default for a new file.
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

#[cfg(unix)]
fn open_with(options: &mut OpenOptions, mode: Mode) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    match mode {
        Mode::New(bits) => options.mode(bits),
        // Readable and writable by us until the mode is set exactly.
        Mode::Exact(_) | Mode::Default => options,
    }
}

#[cfg(not(unix))]
fn open_with(options: &mut OpenOptions, _mode: Mode) -> &mut OpenOptions {
    options
}

#[cfg(unix)]
fn set_exact(file: &File, mode: Mode) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match mode {
        Mode::Exact(bits) => file.set_permissions(fs::Permissions::from_mode(bits & 0o777)),
        Mode::New(_) | Mode::Default => Ok(()),
    }
}

#[cfg(not(unix))]
fn set_exact(_file: &File, _mode: Mode) -> io::Result<()> {
    Ok(())
}

/// A temporary file that removes itself unless committed.
pub struct TempFile {
    path: PathBuf,
    file: File,
    committed: bool,
    /// Whether a journal may be beside it (removed with it).
    journaled: bool,
}

impl TempFile {
    /// Creates the temporary file for `dest`, and `dest`'s parent
    /// directories when they are missing: the file is opened first and the
    /// directories made only if that fails, so a pull of many files into
    /// one directory makes it once, not once per file. It gets `mode`.
    pub fn create(dest: &Path, mode: Mode) -> Result<TempFile> {
        let path = temp_path_for(dest);
        let open = || {
            open_with(
                OpenOptions::new().write(true).read(true).create_new(true),
                mode,
            )
            .open(&path)
            .and_then(|file| set_exact(&file, mode).map(|()| file))
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_parents(dest)?;
                open()
            }
            other => other,
        }
        .map_err(|e| Error::local_io("create", dest, e))?;
        track(&path, true);
        Ok(TempFile {
            path,
            file,
            committed: false,
            journaled: false,
        })
    }

    /// Takes over a dead run's temporary file for `dest`, renaming it and
    /// its journal to this run's names; `None` when that fails (another run
    /// took it first: then it is left to that run).
    pub fn adopt(mut leftover: Leftover, dest: &Path) -> Option<TempFile> {
        let old_journal = leftover.journal.take()?;
        let old = leftover.temp.take()?;
        let path = temp_path_for(dest);
        fs::rename(&old, &path).ok()?;
        track(&path, true);
        let file = OpenOptions::new().read(true).write(true).open(&path);
        let Ok(file) = file else {
            let _ = fs::remove_file(&path);
            track(&path, false);
            return None;
        };
        let mut temp = TempFile {
            path,
            file,
            committed: false,
            journaled: false,
        };
        // Dropping `temp` from here on removes both.
        let journal = temp.journal();
        fs::rename(&old_journal, journal).ok()?;
        log::debug(|| format!("adopted '{}' of a run that died", old.display()));
        Some(temp)
    }

    /// Where this file's journal goes; from now on it is removed with the
    /// file (on a commit, a drop or a signal).
    pub fn journal(&mut self) -> PathBuf {
        if !self.journaled {
            self.journaled = true;
            track(&self.journal_path(), true);
        }
        self.journal_path()
    }

    fn journal_path(&self) -> PathBuf {
        journal_path_for(&self.path)
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Moves the finished file to `dest`. With `overwrite` false, fails
    /// with AlreadyExists if `dest` appeared meanwhile (a hard link cannot
    /// replace a file, so two racing writers cannot both win).
    pub fn commit(mut self, dest: &Path, overwrite: bool, display: &str, side: Side) -> Result<()> {
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

/// A dead run's temporary file and its journal, offered for adoption;
/// removed when dropped unless adopted.
pub struct Leftover {
    temp: Option<PathBuf>,
    journal: Option<PathBuf>,
}

impl Leftover {
    pub fn journal(&self) -> Option<&Path> {
        self.journal.as_deref()
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        for path in [self.temp.take(), self.journal.take()]
            .into_iter()
            .flatten()
        {
            if fs::remove_file(&path).is_ok() {
                log::debug(|| format!("removed a stale temporary file '{}'", path.display()));
            }
        }
    }
}

/// The leftovers offered, by the destination they were a download of.
static OFFERED: Mutex<Option<HashMap<PathBuf, Leftover>>> = Mutex::new(None);

/// `path` without `.` components: `./f` and `f` are one destination.
fn offer_key(path: &Path) -> PathBuf {
    let here = |c: &Component| matches!(c, Component::CurDir);
    path.components().filter(|c| !here(c)).collect()
}

/// The leftover a dead run left for `dest`, if any was offered.
pub fn take_leftover(dest: &Path) -> Option<Leftover> {
    OFFERED.lock().ok()?.as_mut()?.remove(&offer_key(dest))
}

/// Removes every leftover offered from `dir` (`remove_stale`) and not taken.
pub fn remove_leftovers(dir: &Path) {
    if let Ok(mut offered) = OFFERED.lock() {
        if let Some(offered) = offered.as_mut() {
            let dir = offer_key(dir);
            offered.retain(|dest, _| dest.parent() != Some(&dir));
        }
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

/// Removes the temporary files that dead runs left in `dir`, except that
/// a temporary file with a journal, less than a day old, is offered for
/// adoption (`take_leftover`) instead.
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || owner_is_gone(name) {
            stale.push((entry.path(), old, is_journal_name(name)));
        }
    }
    let mut journals: HashSet<PathBuf> = stale
        .iter()
        .filter(|(_, old, journal)| *journal && !old)
        .map(|(path, ..)| path.clone())
        .collect();
    let remove = |path| {
        drop(Leftover {
            temp: Some(path),
            journal: None,
        })
    };
    for (path, old, journal) in stale {
        if journal {
            if old {
                remove(path);
            }
            continue;
        }
        let dest = path
            .file_name()
            .and_then(|n| fields(n.to_str()?))
            .map(|f| offer_key(&dir.join(f[3])));
        let journal = journal_path_for(&path);
        match (dest, OFFERED.lock()) {
            (Some(dest), Ok(mut offered)) if !old && journals.remove(&journal) => {
                let leftover = Leftover {
                    temp: Some(path),
                    journal: Some(journal),
                };
                offered
                    .get_or_insert_with(HashMap::new)
                    .insert(dest, leftover);
            }
            _ => remove(path),
        }
    }
    // Journals whose temporary file is gone.
    journals.into_iter().for_each(remove);
}

/// True when the name records this host and a PID that no longer runs.
/// Only Linux's /proc answers that without asking the OS through unsafe
/// code; elsewhere (macOS, Windows) every owner counts as alive, and its
/// file is removed once a day old.
fn owner_is_gone(name: &str) -> bool {
    let Some([owner_host, pid, ..]) = fields(name) else {
        return false;
    };
    if owner_host != host() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_moves_the_file_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.txt");
        let mut t = TempFile::create(&dest, Mode::Default).unwrap();
        t.file().write_all(b"hello").unwrap();
        t.commit(&dest, false, "out.txt", Side::Local).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");

        let t = TempFile::create(&dest, Mode::Default).unwrap();
        let err = t.commit(&dest, false, "out.txt", Side::Local).unwrap_err();
        assert_eq!(err.exit_code(), 5);

        {
            let mut t = TempFile::create(&dest, Mode::Default).unwrap();
            t.file().write_all(b"partial").unwrap();
        }
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
    }

    #[test]
    fn stale_files_of_dead_local_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}~999999999~0~a", host()));
        let live = dir.path().join(format!(
            "{TEMP_PREFIX}{}~{}~0~b",
            host(),
            std::process::id()
        ));
        let other_host = dir
            .path()
            .join(format!("{TEMP_PREFIX}elsewhere~999999999~0~c"));
        let user_file = dir.path().join("data.txt");
        for p in [&dead, &live, &other_host, &user_file] {
            fs::write(p, b"x").unwrap();
        }
        remove_stale(dir.path());
        assert!(!dead.exists());
        assert!(live.exists() && other_host.exists() && user_file.exists());
    }

    /// A dead run's file with a journal is offered, taken over by renaming
    /// both, and whatever is not taken goes when the pull ends; journals
    /// without their file, and files without a journal, go at once.
    #[test]
    fn a_dead_runs_journalled_file_is_offered_then_adopted_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dead = |nonce: &str, name: &str| {
            let path = dir
                .path()
                .join(format!("{TEMP_PREFIX}{}~999999999~{nonce}~{name}", host()));
            fs::write(&path, b"x").unwrap();
            path
        };
        let (kept, kept_journal) = (dead("0", "kept"), dead("0j", "kept"));
        assert_eq!(journal_path_for(&kept), kept_journal);
        let (unclaimed, unclaimed_journal) = (dead("1", "unclaimed"), dead("1j", "unclaimed"));
        let orphan_journal = dead("2j", "orphan");
        let bare = dead("3", "bare");
        remove_stale(dir.path());
        assert!(!orphan_journal.exists() && !bare.exists());
        assert!(kept.exists() && unclaimed.exists() && unclaimed_journal.exists());

        let dest = dir.path().join("kept");
        let leftover = take_leftover(&dest).unwrap();
        assert!(take_leftover(&dest).is_none(), "offered once");
        let mut temp = TempFile::adopt(leftover, &dest).unwrap();
        assert!(!kept.exists() && !kept_journal.exists(), "renamed to ours");
        let journal = temp.journal();
        assert!(
            journal.exists() && is_journal_name(&journal.file_name().unwrap().to_string_lossy())
        );
        temp.commit(&dest, false, "kept", Side::Local).unwrap();
        assert!(!journal.exists(), "the journal goes with the commit");

        remove_leftovers(dir.path());
        assert!(!unclaimed.exists() && !unclaimed_journal.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kept")]);
    }
}
