//! The journal beside a download's temporary file: which object the bytes
//! are of and which spans of it are on disk, so that a run killed part way
//! (kill -9, the OOM killer, a lost runner) is continued by the next pull
//! instead of started over.
//!
//! Text, one record per line. A header names the object (key, ETag,
//! version, size) and the check that verifies the whole file; then each
//! finished span is appended as `FROM TO`, only after its bytes were
//! written to the temporary file. A line cut short by the kill is ignored.
//! Nothing is synced: a killed process leaves its writes in the page cache,
//! and after a machine crash the whole-file verify before the rename
//! catches what was lost. A journal is kept only for downloads with such a
//! check.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::checksum::Expected;

/// Progress is recorded about this often, per stream.
pub const RECORD_EVERY: u64 = 256 * 1024;

const MAGIC: &str = "artifact-journal 1";

/// Byte spans `from..to` of the object.
pub type Spans = Vec<(u64, u64)>;

/// What verifies the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Sha256(Expected),
    /// The storage's MD5, base64.
    Md5(String),
}

/// The object the bytes are of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub etag: String,
    /// `backend::object::version_of`, when the store stated it.
    pub version: Option<String>,
    pub size: u64,
    pub check: Check,
}

impl Header {
    /// Whether a download now stating these facts is of the same object:
    /// same key, ETag and size, and the same version where both have one.
    pub fn matches(&self, key: &str, etag: &str, version: Option<&str>, size: Option<u64>) -> bool {
        self.key == key
            && self.etag == etag
            && size.is_none_or(|s| s == self.size)
            && match (self.version.as_deref(), version) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    fn text(&self) -> Option<String> {
        let check = match &self.check {
            Check::Sha256(Expected::Whole(v)) => format!("sha256 {v}"),
            Check::Sha256(Expected::Composite { value, part_size }) => {
                format!("composite {part_size} {value}")
            }
            Check::Md5(v) => format!("md5 {v}"),
        };
        let text = format!(
            "{MAGIC}\nkey {}\netag {}\nversion {}\nsize {}\ncheck {check}\n",
            self.key,
            self.etag,
            self.version.as_deref().unwrap_or(""),
            self.size
        );
        // One field per line: a value holding a line break has no place.
        (!text.contains('\r') && text.lines().count() == 6).then_some(text)
    }
}

/// An open journal, appended to from any thread.
pub struct Journal {
    path: PathBuf,
    /// `None` once a write failed: nothing more is recorded.
    file: Mutex<Option<File>>,
}

impl Journal {
    /// Writes a new journal at `path` for the object `header` names, or
    /// `None` when its facts cannot be written as one line each.
    pub fn create(path: &Path, header: &Header) -> io::Result<Option<Journal>> {
        let Some(text) = header.text() else {
            return Ok(None);
        };
        let mut file = File::create(path)?;
        file.write_all(text.as_bytes())?;
        Ok(Some(Journal::with(path, file)))
    }

    /// Goes on appending to the journal at `path`.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal::with(path, file))
    }

    fn with(path: &Path, file: File) -> Journal {
        Journal {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
        }
    }

    /// Removes the journal: its bytes are being thrown away.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }

    /// Records that bytes `from..to` are written. A failed write stops the
    /// recording (a line cut short could join the next one); the journal
    /// then claims less than is there, which costs a refetch, never damage.
    pub fn record(&self, from: u64, to: u64) {
        if to <= from {
            return;
        }
        if let Ok(mut file) = self.file.lock() {
            let failed = file
                .as_mut()
                .is_some_and(|f| f.write_all(format!("{from} {to}\n").as_bytes()).is_err());
            if failed {
                *file = None;
            }
        }
    }
}

/// Reads the journal at `path`.
pub fn read(path: &Path) -> Option<(Header, Spans)> {
    parse(&fs::read_to_string(path).ok()?)
}

/// Reads a journal: its header and the spans it records (`None` when it is
/// not a whole journal header).
pub fn parse(text: &str) -> Option<(Header, Spans)> {
    // Only whole lines count: the last may have been cut by the kill.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut lines = whole.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut field = |name: &str| {
        lines
            .next()?
            .strip_prefix(name)?
            .strip_prefix(' ')
            .map(str::to_string)
    };
    let key = field("key")?;
    let etag = field("etag")?;
    let version = Some(field("version")?).filter(|v| !v.is_empty());
    let size = field("size")?.parse().ok()?;
    let check = field("check")?;
    let check = match check.split_once(' ')? {
        ("sha256", v) => Check::Sha256(Expected::Whole(v.to_string())),
        ("md5", v) => Check::Md5(v.to_string()),
        ("composite", rest) => {
            let (part_size, value) = rest.split_once(' ')?;
            Check::Sha256(Expected::Composite {
                value: value.to_string(),
                part_size: part_size.parse().ok()?,
            })
        }
        _ => return None,
    };
    let spans = lines
        .filter_map(|line| {
            let (from, to) = line.split_once(' ')?;
            Some((from.parse().ok()?, to.parse().ok()?))
        })
        .filter(|&(from, to): &(u64, u64)| from < to && to <= size)
        .collect();
    Some((
        Header {
            key,
            etag,
            version,
            size,
            check,
        },
        spans,
    ))
}

/// The spans of `0..size` that `done` does not cover, in order.
pub fn missing(done: &[(u64, u64)], size: u64) -> Spans {
    let mut done = done.to_vec();
    done.sort_unstable();
    let mut gaps = Vec::new();
    let mut at = 0;
    for (from, to) in done {
        if from > at {
            gaps.push((at, from.min(size)));
        }
        at = at.max(to);
    }
    if at < size {
        gaps.push((at, size));
    }
    gaps.retain(|(from, to)| from < to);
    gaps
}

/// How many bytes from the start `done` covers without a gap.
pub fn prefix(done: &[(u64, u64)], size: u64) -> u64 {
    missing(done, size).first().map_or(size, |&(from, _)| from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(check: Check) -> Header {
        Header {
            key: "artifacts/jobs/1/a b.bin".into(),
            etag: "\"abc-3\"".into(),
            version: Some("\"abc-3\"|Mon, 01 Jan 2024 00:00:00 GMT".into()),
            size: 1000,
            check,
        }
    }

    #[test]
    fn a_journal_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        for check in [
            Check::Sha256(Expected::Whole("SUM=".into())),
            Check::Sha256(Expected::Composite {
                value: "SUM=-3".into(),
                part_size: 400,
            }),
            Check::Md5("MD5==".into()),
        ] {
            let journal = Journal::create(&path, &header(check.clone()))
                .unwrap()
                .unwrap();
            journal.record(0, 256);
            journal.record(400, 600);
            journal.record(5, 5); // empty: not recorded
            let (read, spans) = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(read, header(check));
            assert_eq!(spans, vec![(0, 256), (400, 600)]);
        }
        let mut no_version = header(Check::Md5("M".into()));
        no_version.version = None;
        Journal::create(&path, &no_version).unwrap().unwrap();
        let (read, spans) = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!((read, spans), (no_version, vec![]));
    }

    #[test]
    fn a_line_cut_short_and_nonsense_are_ignored() {
        let text = header(Check::Md5("M".into())).text().unwrap();
        let journal = format!("{text}0 100\n100 200\n300 99\n900 2000\n200 30");
        let (_, spans) = parse(&journal).unwrap();
        assert_eq!(spans, vec![(0, 100), (100, 200)]);
        // A header cut short is no journal.
        assert!(parse(&text[..text.len() - 3]).is_none());
        assert!(parse("something else\n").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn a_key_with_a_line_break_is_not_journalled() {
        let mut h = header(Check::Md5("M".into()));
        h.key = "a\nb".into();
        let dir = tempfile::tempdir().unwrap();
        assert!(Journal::create(&dir.path().join("j"), &h)
            .unwrap()
            .is_none());
    }

    #[test]
    fn spans_union_into_the_missing_ones() {
        assert_eq!(missing(&[], 10), vec![(0, 10)]);
        assert_eq!(missing(&[(0, 10)], 10), vec![]);
        let done = [(6, 8), (0, 2), (1, 3), (7, 9)];
        assert_eq!(missing(&done, 12), vec![(3, 6), (9, 12)]);
        assert_eq!(prefix(&done, 12), 3);
        assert_eq!(prefix(&[(2, 5)], 12), 0);
        assert_eq!(prefix(&[(0, 12)], 12), 12);
    }

    #[test]
    fn a_journal_matches_only_its_object() {
        let h = header(Check::Md5("M".into()));
        let v = h.version.as_deref();
        assert!(h.matches(&h.key, &h.etag, v, Some(1000)));
        assert!(h.matches(&h.key, &h.etag, None, None));
        assert!(!h.matches("other", &h.etag, v, Some(1000)));
        assert!(!h.matches(&h.key, "\"new\"", v, Some(1000)));
        assert!(!h.matches(&h.key, &h.etag, v, Some(999)));
        assert!(!h.matches(&h.key, &h.etag, Some("other"), Some(1000)));
    }
}
