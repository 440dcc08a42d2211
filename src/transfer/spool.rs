//! Standard input spooled to a private temporary file, for stores whose
//! uploads need the length before the first byte (the Hub's signed PUT).
//!
//! The spool holds whatever a job pipes in, so nobody else may read it or
//! put a file in its place: it is created new (`create_new`) under a name
//! with 64 random bits, trying another name if that one exists, so a file
//! planted in the temporary directory is never opened; it is readable and
//! writable by its owner only (0600, whatever the umask); and it leaves the
//! directory at once, unlinked on Unix while open, on Windows deleted by the
//! system when its handle closes (`FILE_FLAG_DELETE_ON_CLOSE`, since an open
//! file cannot be removed there), so not even a crash leaves it in %TEMP%.
//!
//! It is bounded only by the free space of the temporary directory
//! (`TMPDIR`, `TEMP` on Windows): a full disk fails the push with exit 8,
//! naming that directory.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Names tried before giving up: each is 64 random bits, so a second try
/// happens only when a file was planted, and a tenth never by chance.
const NAMES_TRIED: usize = 10;

/// The prefix of a spool's name; not the temporary-file prefix of
/// `atomic`, whose stale clean-up must never take a live spool.
const SPOOL_PREFIX: &str = ".artifact-stdin~";

/// Copies all of `input` into a new private spool in `dir`: the spool,
/// read from its start, and its length.
pub fn spool(input: &mut impl Read, dir: &Path) -> Result<(File, u64)> {
    let mut file = create(dir)?;
    let size = fill(input, &mut file, dir)?;
    io::Seek::rewind(&mut file).map_err(|e| Error::local_io("spool standard input in", dir, e))?;
    Ok((file, size))
}

/// A new, empty spool in `dir`, already gone from the directory on Unix.
pub fn create(dir: &Path) -> Result<File> {
    let names = (0..NAMES_TRIED).map(|_| format!("{SPOOL_PREFIX}{:016x}", random_u64()));
    create_named(dir, names)
}

/// A new file at the first of `names` in `dir` that is free.
fn create_named(dir: &Path, names: impl IntoIterator<Item = String>) -> Result<File> {
    let mut tried = 0;
    for name in names {
        let path = dir.join(name);
        match private_new_file().open(&path) {
            Ok(file) => {
                unlink_while_open(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tried += 1,
            Err(e) => return Err(Error::local_io("create a temporary file in", dir, e)),
        }
    }
    Err(Error::local_io(
        "create a temporary file in",
        dir,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{tried} random names were all taken; check who writes files there"),
        ),
    ))
}

/// Copies `input` to `spool`, telling a failed read of standard input from
/// a failed write in `dir` (a full disk, most likely).
fn fill(input: &mut impl Read, spool: &mut impl Write, dir: &Path) -> Result<u64> {
    let stdin = Path::new("standard input");
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::local_io("read", stdin, e)),
        };
        spool
            .write_all(&buf[..n])
            .map_err(|e| Error::local_io("spool standard input to a temporary file in", dir, e))?;
        size += n as u64;
    }
}

/// 64 bits nobody else can predict: std's per-process random SipHash keys
/// (seeded by the OS), over the time and the process.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Read and write, created new (never an existing file, nor through a
/// symlink), owner-only.
#[cfg(unix)]
fn private_new_file() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true).mode(0o600);
    options
}

/// Read and write, created new, deleted by the system when closed. The
/// file is in the user's own %TEMP%, whose ACL keeps other users out.
#[cfg(windows)]
fn private_new_file() -> OpenOptions {
    use std::os::windows::fs::OpenOptionsExt;
    /// `FILE_FLAG_DELETE_ON_CLOSE` of the Windows API.
    const DELETE_ON_CLOSE: u32 = 0x0400_0000;
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(DELETE_ON_CLOSE);
    options
}

/// On Unix the open file outlives its name: remove the name now, so the
/// data is reachable through our handle only. Failing that, the file is
/// still owner-only; the push goes on.
#[cfg(unix)]
fn unlink_while_open(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// On Windows the open file cannot be removed; `DELETE_ON_CLOSE` does it.
#[cfg(windows)]
fn unlink_while_open(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn spool_holds_the_input_and_leaves_no_name_behind() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut file, size) = spool(&mut &bytes[..], dir.path()).unwrap();
        assert_eq!(size, bytes.len() as u64);
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
        #[cfg(unix)]
        assert!(
            names_in(dir.path()).is_empty(),
            "{:?}",
            names_in(dir.path())
        );
    }

    /// Gone with its handle: unlinked at once on Unix, deleted by the
    /// system on close on Windows (where it is in the directory meanwhile).
    #[test]
    fn nothing_is_left_once_the_spool_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = spool(&mut &b"secret"[..], dir.path()).unwrap();
        #[cfg(windows)]
        assert_eq!(names_in(dir.path()).len(), 1);
        drop(file);
        assert!(
            names_in(dir.path()).is_empty(),
            "{:?}",
            names_in(dir.path())
        );
    }

    #[cfg(unix)]
    #[test]
    fn spool_is_owner_only_whatever_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = create(dir.path()).unwrap();
        let mode = file.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600, "{mode:o}");
    }

    #[test]
    fn names_are_never_repeated() {
        let names: std::collections::HashSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(names.len(), 1000);
    }

    /// A name that is taken is never opened, not even a symlink to a
    /// victim: the next name is tried, and the victim stays as it was.
    #[cfg(unix)]
    #[test]
    fn a_planted_name_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("planted")).unwrap();
        let names = ["planted".to_string(), "fresh".to_string()];
        let mut file = create_named(dir.path(), names).unwrap();
        file.write_all(b"secret").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(names_in(dir.path()), ["planted", "victim"]);

        let err =
            create_named(dir.path(), ["planted".to_string(), "victim".to_string()]).unwrap_err();
        assert!(
            err.to_string().contains("2 random names were all taken"),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn a_full_disk_names_the_directory_and_a_bad_read_names_stdin() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = Path::new("/some/tmp");
        let err = fill(&mut &b"data"[..], &mut Full, dir).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spool standard input to a temporary file in '/some/tmp'"),
            "{text}"
        );
        assert!(text.contains("free some disk space"), "{text}");
        assert_eq!(err.exit_code(), 8);

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
        }
        let err = fill(&mut Broken, &mut Vec::new(), dir).unwrap_err();
        assert!(
            err.to_string().contains("failed to read 'standard input'"),
            "{err}"
        );
    }
}
