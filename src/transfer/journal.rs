//! The journal beside a download's temporary file: which object the bytes
//! are of and which spans of it are on disk, so that a run killed part way
//! (kill -9, the OOM killer, a lost runner) is continued by the next pull
//! instead of started over.
//!
//! Text, one record per line. A header names the object (key, ETag,
//! version, size); then each finished span is appended as `FROM TO`, only
//! after its bytes were written to the temporary file. A line cut short by
//! the kill is ignored. Nothing is synced: a killed process leaves its
//! writes in the page cache, and after a machine crash the whole-file
//! verify before the rename catches what was lost.
//!
//! A journal found on disk is another run's, so it is input, never proof:
//! it says where to look, not what the bytes must hash to — that comes
//! from the store in the run that adopts it (`transfer::resume`). It is
//! read from a file already opened and checked, within `MAX_BYTES` and
//! `MAX_SPANS`. A journal is always created new, readable by its owner
//! only, never reused by name.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic;

/// Progress is recorded about this often, per stream.
pub const RECORD_EVERY: u64 = 256 * 1024;

const MAGIC: &str = "artifact-journal 2";
/// The most of a journal that is read: a record per 256 KiB of a 1 TiB
/// object is under 100 MiB, but spans merge as they are read, and what
/// is past this is simply not trusted to be on disk (it is fetched again).
const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The most separate spans kept: each range in flight adds one, so a
/// journal of 10,000 ranges fits, and memory stays small.
pub(crate) const MAX_SPANS: usize = 20_000;
/// A key is at most 1,024 bytes; a header line is not much more.
const MAX_LINE: usize = 4096;

/// Byte spans `from..to` of the object.
pub type Spans = Vec<(u64, u64)>;

/// The object the bytes are of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub etag: String,
    /// `backend::object::version_of`, when the store stated it.
    pub version: Option<String>,
    pub size: u64,
}

impl Header {
    /// Whether a download now stating these facts is of the same object:
    /// same key, and the same ETag, size and version where both have one.
    pub fn matches(
        &self,
        key: &str,
        etag: Option<&str>,
        version: Option<&str>,
        size: Option<u64>,
    ) -> bool {
        self.key == key
            && etag.is_none_or(|e| e == self.etag)
            && size.is_none_or(|s| s == self.size)
            && match (self.version.as_deref(), version) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    pub(crate) fn text(&self) -> Option<String> {
        let text = format!(
            "{MAGIC}\nkey {}\netag {}\nversion {}\nsize {}\n",
            self.key,
            self.etag,
            self.version.as_deref().unwrap_or(""),
            self.size
        );
        // One field per line: a value holding a line break has no place.
        let fits = text.lines().all(|l| l.len() < MAX_LINE);
        (fits && !text.contains('\r') && text.lines().count() == 5).then_some(text)
    }
}

/// An open journal, appended to from any thread.
pub struct Journal {
    path: PathBuf,
    /// `None` once a write failed: nothing more is recorded.
    file: Mutex<Option<File>>,
}

impl Journal {
    /// Writes a new journal at `path` (which must not exist) for the
    /// object `header` names, or `None` when its facts cannot be written
    /// as one line each, or the file cannot be created.
    pub fn create(path: &Path, header: &Header) -> Option<Journal> {
        let text = header.text()?;
        let mut file = atomic::create_private(path).ok()?;
        file.write_all(text.as_bytes()).ok()?;
        Some(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
        })
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

/// Reads a journal from an open file: its header and the spans it
/// records, merged (`None` when it is not a whole journal header, or
/// its spans are past counting).
pub fn read(file: impl Read) -> Option<(Header, Spans)> {
    let mut lines = Lines {
        reader: BufReader::new(file.take(MAX_BYTES)),
        line: Vec::new(),
    };
    if lines.next()? != MAGIC.as_bytes() {
        return None;
    }
    let mut field = |name: &str| -> Option<String> {
        let line = lines.next()?;
        let value = line.strip_prefix(name.as_bytes())?.strip_prefix(b" ")?;
        String::from_utf8(value.to_vec()).ok()
    };
    let key = field("key")?;
    let etag = field("etag")?;
    let version = Some(field("version")?).filter(|v| !v.is_empty());
    let size = field("size")?.parse().ok()?;
    let header = Header {
        key,
        etag,
        version,
        size,
    };
    let mut spans = Spans::new();
    while let Some(line) = lines.next() {
        let Some((from, to)) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(' '))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        else {
            continue;
        };
        if from < to && to <= size {
            spans.push((from, to));
            if spans.len() > 2 * MAX_SPANS {
                spans = merged(spans);
            }
        }
    }
    let spans = merged(spans);
    (spans.len() <= MAX_SPANS).then_some((header, spans))
}

/// Whole lines, each at most `MAX_LINE` bytes: a longer one ends the
/// reading, and so does a last line the kill cut short (no line break).
struct Lines<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Option<&[u8]> {
        self.line.clear();
        let mut limited = (&mut self.reader).take(MAX_LINE as u64 + 1);
        limited.read_until(b'\n', &mut self.line).ok()?;
        self.line.strip_suffix(b"\n")
    }
}

/// The same spans, sorted, overlapping and touching ones joined.
fn merged(mut spans: Spans) -> Spans {
    spans.sort_unstable();
    let mut out: Spans = Vec::with_capacity(spans.len().min(MAX_SPANS + 1));
    for (from, to) in spans {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
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

    fn header() -> Header {
        Header {
            key: "artifacts/jobs/1/a b.bin".into(),
            etag: "\"abc-3\"".into(),
            version: Some("\"abc-3\"|Mon, 01 Jan 2024 00:00:00 GMT".into()),
            size: 1000,
        }
    }

    fn read_path(path: &Path) -> Option<(Header, Spans)> {
        read(File::open(path).unwrap())
    }

    #[test]
    fn a_journal_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let journal = Journal::create(&path, &header()).unwrap();
        journal.record(0, 256);
        journal.record(400, 600);
        journal.record(5, 5); // empty: not recorded
        journal.record(256, 300); // touches the first: merged
        assert_eq!(
            read_path(&path),
            Some((header(), vec![(0, 300), (400, 600)]))
        );
        // Created new, and private.
        assert!(Journal::create(&path, &header()).is_none());
        #[cfg(unix)]
        {
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(crate::atomic::permission_bits(&meta), Some(0o600));
        }
        let mut no_version = header();
        no_version.version = None;
        let other = dir.path().join("k");
        Journal::create(&other, &no_version).unwrap();
        assert_eq!(read_path(&other), Some((no_version, vec![])));
    }

    #[test]
    fn a_line_cut_short_and_nonsense_are_ignored() {
        let text = header().text().unwrap();
        let journal = format!("{text}0 100\n100 200\n300 99\n900 2000\nx y\n200 30");
        let (_, spans) = read(journal.as_bytes()).unwrap();
        assert_eq!(spans, vec![(0, 200)]);
        // A header cut short is no journal.
        assert!(read(&text.as_bytes()[..text.len() - 3]).is_none());
        assert!(read(&b"something else\n"[..]).is_none());
        assert!(read(&b""[..]).is_none());
        // The first journal format, which named its own check, is not read.
        let first = "artifact-journal 1\nkey k\netag e\nversion \nsize 10\ncheck md5 M\n0 5\n";
        assert!(read(first.as_bytes()).is_none());
    }

    /// However a journal was written, reading it is bounded: a huge line
    /// ends it, and more separate spans than a download could have make
    /// it no journal at all.
    #[test]
    fn a_hostile_journal_is_read_within_bounds() {
        let text = header().text().unwrap();
        let long = format!("{text}{}\n0 10\n", "9".repeat(10 * MAX_LINE));
        assert_eq!(read(long.as_bytes()).map(|(_, s)| s), Some(vec![]));
        let mut header = header();
        header.size = u64::MAX;
        let mut many = header.text().unwrap();
        for i in 0..(MAX_SPANS as u64 + 1) {
            many.push_str(&format!("{} {}\n", i * 2, i * 2 + 1));
        }
        assert!(read(many.as_bytes()).is_none());
        let mut key = header.clone();
        key.key = "k".repeat(MAX_LINE);
        assert!(key.text().is_none());
    }

    /// A name that can be predicted from a PID is never written through:
    /// a symlink planted there is refused, its target untouched.
    #[cfg(unix)]
    #[test]
    fn a_journal_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("j");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(Journal::create(&path, &header()).is_none());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_key_with_a_line_break_is_not_journalled() {
        let mut h = header();
        h.key = "a\nb".into();
        let dir = tempfile::tempdir().unwrap();
        assert!(Journal::create(&dir.path().join("j"), &h).is_none());
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
        let h = header();
        let v = h.version.as_deref();
        let e = Some(h.etag.as_str());
        assert!(h.matches(&h.key, e, v, Some(1000)));
        assert!(h.matches(&h.key, None, None, None));
        assert!(!h.matches("other", e, v, Some(1000)));
        assert!(!h.matches(&h.key, Some("\"new\""), v, Some(1000)));
        assert!(!h.matches(&h.key, e, v, Some(999)));
        assert!(!h.matches(&h.key, e, Some("other"), Some(1000)));
    }
}
