//! Continuing what a killed pull left, under one rule for every download.
//!
//! A pull killed part way (kill -9, the OOM killer, a lost runner) leaves
//! its temporary file and a journal beside it (`atomic`, `journal`); the
//! next pull of the same destination adopts them and fetches only what is
//! missing. What it finds is another run's — or the work of anyone who can
//! write into the directory — so nothing found vouches for itself:
//! - only a dead owner's files are taken (`atomic::sweep`: this host, this
//!   PID namespace, a PID that no longer runs), and so only on Linux, where
//!   that can be known; elsewhere leftovers are never adopted;
//! - each file is opened without following symlinks and checked on the
//!   open descriptor, never by path: a regular file, owned by us, one link;
//!   found in the destination's own directory by the sweep, it is moved to
//!   a name of this run's, and its journal is replaced by a new one;
//! - the journal says which object (key, ETag, size) and which spans are on
//!   disk, never what the bytes must hash to: that comes from the store's
//!   answer in this run (`vouching`), and only a cryptographic hash may
//!   vouch for adopted bytes — the store's SHA-256, whole or composite; the
//!   storage's MD5; an ETag that is an MD5 (see below). A CRC, which anyone
//!   who plants bytes can forge, never does;
//! - the final mode is the one the object records (`atomic::Mode`), never
//!   the leftover's.
//!
//! An ETag is not always an MD5 (encrypted objects, some stores' multipart
//! uploads), so a mismatch is never blamed on the store alone: an adopted
//! file that fails an ETag check is discarded and the object fetched whole,
//! checked against the ETag again; if that fails too, the download is
//! accepted on its length, `-v` says that this store's ETags are not MD5s,
//! and ETags vouch for nothing more in this run. No integrity error ever
//! rests on an ETag alone.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::journal::{self, Header, Journal, Spans};
use crate::atomic::{self, Leftover, TempFile};
use crate::checksum::{Check, Expected};
use crate::log;

/// The leftovers of one pull's destination and what this run learned of
/// the store's ETags. Each pull has its own: two pulls in one process
/// never take each other's files.
pub struct Resume {
    /// Dead runs' leftovers found so far, by the path they were for.
    offered: Mutex<HashMap<PathBuf, Leftover>>,
    /// False once one of the store's ETags proved not to be an MD5.
    etags_vouch: AtomicBool,
}

/// A dead run's file, taken over: the temporary file (renamed to this
/// run's name), a new journal beside it, and what the old journal said.
pub struct Adopted {
    pub temp: TempFile,
    pub journal: Journal,
    pub header: Header,
    /// The spans the old journal recorded as written, merged.
    pub spans: Spans,
}

/// Which object a download is of, as far as the store stated it so far.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// What a store states about an object, as far as it can vouch for bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stated<'a> {
    pub size: Option<u64>,
    pub sha256: Option<&'a Expected>,
    /// The storage's MD5 of the whole (GCS), base64.
    pub md5: Option<&'a str>,
    /// The ETag, bare, where it may be an MD5 (`backend::object`).
    pub etag_md5: Option<&'a str>,
    /// The part size our upload recorded.
    pub part_size: Option<u64>,
}

impl Default for Resume {
    fn default() -> Resume {
        Resume {
            offered: Mutex::new(HashMap::new()),
            etags_vouch: AtomicBool::new(true),
        }
    }
}

impl Resume {
    /// Clears `dir` of what dead runs left (`atomic::sweep`) and keeps
    /// their journalled files for the downloads of this pull.
    pub fn sweep(&self, dir: &Path) {
        let found = atomic::sweep(dir);
        if let Ok(mut offered) = self.offered.lock() {
            for leftover in found {
                let dest = offer_key(&dir.join(leftover.dest_name()));
                offered.insert(dest, leftover);
            }
        }
    }

    /// Takes over what a dead run left for `dest`, when its journal names
    /// the object `object` describes. `None` when there is nothing, or it
    /// fails a check: it is then removed.
    pub fn adopt(&self, dest: &Path, object: Object<'_>) -> Option<Adopted> {
        let leftover = self.offered.lock().ok()?.remove(&offer_key(dest))?;
        let file = open_checked(&leftover.temp, true)?;
        let (header, spans) = journal::read(open_checked(&leftover.journal, false)?)?;
        if !header.matches(object.key, object.etag, object.version, object.size) {
            log::debug(|| format!("'{}' was left for another object", leftover.temp.display()));
            return None;
        }
        let mut temp = TempFile::take_over(&leftover.temp, file, dest)?;
        let journal = Journal::create(&temp.journal(), &header)?;
        log::debug(|| format!("adopted '{}' of a run that died", leftover.temp.display()));
        // Dropping the leftover removes the old journal.
        Some(Adopted {
            temp,
            journal,
            header,
            spans,
        })
    }

    /// What may vouch for an object's bytes, adopted ones included: the
    /// store's SHA-256 or MD5; else, while this store's ETags have not
    /// proved otherwise, its ETag read as an MD5 — a single PUT's, or a
    /// multipart upload's `-N` when our recorded part size gives exactly N
    /// parts.
    pub fn vouching(&self, stated: Stated<'_>) -> Option<Check> {
        if let Some(expected) = stated.sha256 {
            return Some(Check::Sha256(expected.clone()));
        }
        if let Some(md5) = stated.md5 {
            return Some(Check::Md5(md5.to_string()));
        }
        if !self.etags_vouch.load(Ordering::Relaxed) {
            return None;
        }
        let etag = stated.etag_md5?;
        match etag.split_once('-') {
            None => Some(Check::Etag {
                value: etag.to_string(),
                part_size: None,
            }),
            Some((_, parts)) => {
                let (size, part_size) = (stated.size?, stated.part_size?);
                let parts: u64 = parts.parse().ok()?;
                (part_size > 0 && size.div_ceil(part_size) == parts).then(|| Check::Etag {
                    value: etag.to_string(),
                    part_size: Some(part_size),
                })
            }
        }
    }

    /// A whole download failed an ETag check too: this store's ETags are
    /// not MD5s, and vouch for nothing more in this run.
    pub fn distrust_etags(&self, key: &str) {
        self.etags_vouch.store(false, Ordering::Relaxed);
        log::debug(|| {
            format!("'{key}': its ETag is not the MD5 of its bytes, so this store's ETags are not MD5s; the download is checked by its length only, and ETags are not used to check anything more in this run")
        });
    }
}

/// `path` without `.` components: `./f` and `f` are one destination; the
/// name cut as a temporary name keeps it.
fn offer_key(path: &Path) -> PathBuf {
    let here = |c: &Component| matches!(c, Component::CurDir);
    let mut key: PathBuf = path.components().filter(|c| !here(c)).collect();
    if let Some(name) = key.file_name().map(|n| n.to_string_lossy().into_owned()) {
        let kept: String = name.chars().take(120).collect();
        key.set_file_name(kept);
    }
    key
}

/// Opens a file a dead run left without following a symlink (nor
/// blocking on a FIFO), and keeps it only when the open descriptor is a
/// regular file of ours with one link.
#[cfg(target_os = "linux")]
fn open_checked(path: &Path, write: bool) -> Option<File> {
    use rustix::fs::{FileType, Mode, OFlags};
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    let regular = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile;
    let ours = stat.st_uid == rustix::process::geteuid().as_raw();
    let refused = !regular || !ours || stat.st_nlink != 1;
    if refused {
        log::debug(|| {
            format!(
                "not adopting '{}': not a regular file of ours with one link",
                path.display()
            )
        });
        return None;
    }
    Some(File::from(fd))
}

/// Leftovers are adopted only where a dead owner can be told from a live
/// one.
#[cfg(not(target_os = "linux"))]
fn open_checked(_path: &Path, _write: bool) -> Option<File> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs;

    use super::*;

    /// A dead run's journalled file for `name` in `dir`, as `atomic`
    /// names it, holding `bytes`, its journal naming `key`.
    fn leave(dir: &Path, name: &str, key: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
        let (temp, journal) = atomic::dead_names(name);
        let (temp, journal) = (dir.join(temp), dir.join(journal));
        fs::write(&temp, bytes).unwrap();
        let header = Header {
            key: key.into(),
            etag: "\"e\"".into(),
            version: None,
            size: bytes.len() as u64,
        };
        let j = Journal::create(&journal, &header).unwrap();
        j.record(0, bytes.len() as u64 / 2);
        (temp, journal)
    }

    #[test]
    fn two_pulls_in_one_process_each_adopt_their_own() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        leave(a.path(), "f", "k/a", b"aaaaaaaa");
        leave(b.path(), "f", "k/b", b"bbbbbbbb");
        let (ra, rb) = (Resume::default(), Resume::default());
        ra.sweep(a.path());
        rb.sweep(b.path());
        let object = |key| Object {
            key,
            size: Some(8),
            etag: Some("\"e\""),
            version: None,
        };
        assert!(ra.adopt(&b.path().join("f"), object("k/b")).is_none());
        let mut got_b = rb.adopt(&b.path().join("f"), object("k/b")).unwrap();
        let mut got_a = ra.adopt(&a.path().join("f"), object("k/a")).unwrap();
        assert_eq!(
            (got_a.spans.clone(), got_b.spans.clone()),
            (vec![(0, 4)], vec![(0, 4)])
        );
        let read = |t: &mut TempFile| {
            let mut s = String::new();
            std::io::Read::read_to_string(t.file(), &mut s).unwrap();
            s
        };
        assert_eq!(read(&mut got_a.temp), "aaaaaaaa");
        assert_eq!(read(&mut got_b.temp), "bbbbbbbb");
        // The new journals are private and the old ones gone.
        let names = |d: &Path| fs::read_dir(d).unwrap().count();
        assert_eq!((names(a.path()), names(b.path())), (2, 2));
    }

    #[test]
    fn a_symlink_a_hard_link_or_another_key_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("victim");
        fs::write(&outside, b"do not touch").unwrap();
        // A symlink where the temporary file should be.
        let (temp, _) = leave(dir.path(), "link", "k", b"xxxxxxxx");
        fs::remove_file(&temp).unwrap();
        std::os::unix::fs::symlink(&outside, &temp).unwrap();
        // A hard link to the victim.
        let (temp, _) = leave(dir.path(), "hard", "k", b"xxxxxxxx");
        fs::remove_file(&temp).unwrap();
        fs::hard_link(&outside, &temp).unwrap();
        // A journal for another object.
        leave(dir.path(), "other", "someone-else", b"xxxxxxxx");
        let resume = Resume::default();
        resume.sweep(dir.path());
        for name in ["link", "hard", "other"] {
            let object = Object {
                key: "k",
                size: None,
                etag: None,
                version: None,
            };
            assert!(
                resume.adopt(&dir.path().join(name), object).is_none(),
                "{name}"
            );
        }
        assert_eq!(fs::read(&outside).unwrap(), b"do not touch");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            ["victim"],
            "a refused leftover is removed, the victim kept"
        );
    }

    #[test]
    fn only_a_hash_the_store_states_vouches() {
        let resume = Resume::default();
        let sha = Expected::Whole("SUM=".into());
        let stated = |etag: Option<&'static str>| Stated {
            size: Some(25 * 1024 * 1024),
            etag_md5: etag,
            part_size: Some(8 * 1024 * 1024),
            ..Stated::default()
        };
        assert_eq!(
            resume.vouching(Stated {
                sha256: Some(&sha),
                ..stated(None)
            }),
            Some(Check::Sha256(sha.clone()))
        );
        assert!(resume
            .vouching(stated(Some("abc")))
            .is_some_and(|c| c.rests_on_etag()));
        // 25 MiB in parts of 8 MiB is 4 parts, not 3.
        assert!(resume.vouching(stated(Some("abc-4"))).is_some());
        assert!(resume.vouching(stated(Some("abc-3"))).is_none());
        assert!(resume.vouching(Stated::default()).is_none());
        resume.distrust_etags("k");
        assert!(resume.vouching(stated(Some("abc"))).is_none());
        assert!(resume
            .vouching(Stated {
                sha256: Some(&sha),
                ..stated(None)
            })
            .is_some());
    }
}
