//! SHA-256 as S3 states it: base64, of a whole object or S3's composite of
//! its parts.
//!
//! Uploads sign `x-amz-checksum-sha256` into the request, so the digest must
//! be known before the first byte goes out (`backend::Body` hashes a part
//! once, then sends it). Downloads hash while they stream, through
//! `StreamHasher`, the way the stated value was computed. `file_parts`
//! reads a file once for the MD5 and SHA-256 of each part, which is what
//! an S3 ETag and a composite checksum are made of.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::interrupt;

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The SHA-256 S3 states for an object: of the whole object, or S3's
/// composite of a multipart upload (the SHA-256 of the parts' SHA-256s,
/// with `-N`), which needs the part size to recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Whole(String),
    Composite { value: String, part_size: u64 },
}

/// What a download's bytes must hash to, as the store stated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// SHA-256: of the whole object, or S3's composite of its parts.
    Sha256(Expected),
    /// The storage's MD5 of the whole object (GCS's `x-goog-hash`), base64.
    Md5(String),
    /// An ETag read as an MD5: a single PUT's (hex), or the MD5 of the
    /// parts' MD5s with `-N` at the part size our upload recorded. An ETag
    /// is not always an MD5 (encrypted objects, some stores), so a
    /// mismatch says less than one of the others: see `rests_on_etag`.
    Etag {
        value: String,
        part_size: Option<u64>,
    },
}

/// The hash a `Check` is made of.
#[derive(Clone)]
pub enum Digester {
    Sha256(Sha256),
    Md5(md5::Context),
}

impl Digester {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(bytes),
            Digester::Md5(h) => h.consume(bytes),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Digester::Sha256(h) => h.finalize().to_vec(),
            Digester::Md5(h) => h.finalize().0.to_vec(),
        }
    }
}

impl Check {
    /// A fresh hash of the kind this check is made of.
    pub fn digester(&self) -> Digester {
        match self {
            Check::Sha256(_) => Digester::Sha256(Sha256::new()),
            Check::Md5(_) | Check::Etag { .. } => Digester::Md5(md5::Context::new()),
        }
    }

    /// The part size the stated value was computed at: `None` for a value
    /// of the whole object.
    pub fn part_size(&self) -> Option<u64> {
        match self {
            Check::Sha256(Expected::Composite { part_size, .. }) => Some(*part_size),
            Check::Etag { part_size, .. } => *part_size,
            Check::Sha256(Expected::Whole(_)) | Check::Md5(_) => None,
        }
    }

    /// Whether only an ETag vouches: it may not be an MD5 at all.
    pub fn rests_on_etag(&self) -> bool {
        matches!(self, Check::Etag { .. })
    }

    /// What the value is, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Check::Sha256(_) => "SHA-256",
            Check::Md5(_) => "MD5",
            Check::Etag { .. } => "the ETag's MD5",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Check::Sha256(e) => e.value(),
            Check::Md5(v) | Check::Etag { value: v, .. } => v,
        }
    }

    /// The value these bytes have in this check's form: from the digest
    /// of the whole, or (with a part size) from the digest of each part.
    fn render(&self, digests: &[Vec<u8>]) -> String {
        let combined = || {
            let mut outer = self.digester();
            digests.iter().for_each(|d| outer.update(d));
            outer.finish()
        };
        let whole = || digests.first().cloned().unwrap_or_default();
        match (self, self.part_size()) {
            (Check::Sha256(_), Some(_)) => format!("{}-{}", base64(&combined()), digests.len()),
            (Check::Etag { .. }, Some(_)) => format!("{}-{}", hex(&combined()), digests.len()),
            (Check::Etag { .. }, None) => hex(&whole()),
            (Check::Sha256(_) | Check::Md5(_), _) => base64(&whole()),
        }
    }

    /// Whether bytes whose digests are `digests` (one for the whole, or
    /// one per part at `part_size`) are what the store stated. The value
    /// these bytes have is handed back when they are not.
    pub fn verify(&self, digests: &[Vec<u8>]) -> std::result::Result<(), String> {
        let actual = self.render(digests);
        let same = match self {
            Check::Sha256(expected) => expected.matches(&actual),
            Check::Md5(v) => *v == actual,
            Check::Etag { value, .. } => value.eq_ignore_ascii_case(&actual),
        };
        if same {
            Ok(())
        } else {
            Err(actual)
        }
    }
}

/// Lowercase hex, as ETags spell MD5s.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a stream the way its `Check` value was computed: whole, or part
/// by part.
pub struct StreamHasher {
    hasher: Digester,
    fresh: Digester,
    part_size: Option<u64>,
    in_part: u64,
    parts: Vec<Vec<u8>>,
}

impl StreamHasher {
    pub fn new(check: &Check) -> StreamHasher {
        StreamHasher {
            hasher: check.digester(),
            fresh: check.digester(),
            part_size: check.part_size().map(|p| p.max(1)),
            in_part: 0,
            parts: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let Some(part_size) = self.part_size else {
            self.hasher.update(data);
            return;
        };
        while !data.is_empty() {
            let room = usize::try_from(part_size - self.in_part).unwrap_or(usize::MAX);
            let take = room.min(data.len());
            self.hasher.update(&data[..take]);
            self.in_part += take as u64;
            data = &data[take..];
            if self.in_part == part_size {
                let done = std::mem::replace(&mut self.hasher, self.fresh.clone());
                self.parts.push(done.finish());
                self.in_part = 0;
            }
        }
    }

    /// The digests `Check::verify` takes: the whole's, or each part's.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        if self.part_size.is_none() || self.in_part > 0 || self.parts.is_empty() {
            self.parts.push(self.hasher.finish());
        }
        self.parts
    }
}

/// S3's composite checksum of parts with these SHA-256 digests: `b64-N`.
pub fn composite(parts: &[[u8; 32]]) -> String {
    let mut outer = Sha256::new();
    for digest in parts {
        outer.update(digest);
    }
    format!("{}-{}", base64(&outer.finalize()), parts.len())
}

/// The digests of one part of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartDigests {
    /// When asked for.
    pub md5: Option<[u8; 16]>,
    pub sha256: [u8; 32],
}

/// The SHA-256 (and, `with_md5`, the MD5) of each `part_size` part of the
/// `size` bytes of the file at `path` (one part when it is no larger; an
/// empty file is one empty part), in one read. A file that is not `size`
/// bytes long is an error.
pub fn file_parts(
    path: &Path,
    size: u64,
    part_size: u64,
    with_md5: bool,
) -> Result<Vec<PartDigests>> {
    let read_error = |e| Error::local_io("read", path, e);
    let mut file = File::open(path).map_err(read_error)?.take(size + 1);
    let part_size = part_size.max(1);
    let mut parts = Vec::with_capacity(usize::try_from(size / part_size + 1).unwrap_or(1));
    let mut buf = vec![0u8; 256 * 1024];
    let new_md5 = || with_md5.then(md5::Context::new);
    let (mut md5, mut sha) = (new_md5(), Sha256::new());
    let (mut in_part, mut total) = (0u64, 0u64);
    loop {
        interrupt::check()?;
        let room = usize::try_from(part_size - in_part).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = file.read(&mut buf[..want]).map_err(read_error)?;
        if n == 0 {
            break;
        }
        if let Some(md5) = &mut md5 {
            md5.consume(&buf[..n]);
        }
        sha.update(&buf[..n]);
        in_part += n as u64;
        total += n as u64;
        if in_part == part_size {
            parts.push(PartDigests {
                md5: std::mem::replace(&mut md5, new_md5()).map(|m| m.finalize().0),
                sha256: sha.finalize_reset().into(),
            });
            in_part = 0;
        }
    }
    if total != size {
        return Err(read_error(std::io::Error::other(format!(
            "the file changed size while being read ({size} -> {total} bytes)"
        ))));
    }
    if in_part > 0 || parts.is_empty() {
        parts.push(PartDigests {
            md5: md5.map(|m| m.finalize().0),
            sha256: sha.finalize().into(),
        });
    }
    Ok(parts)
}

impl Expected {
    /// Whether `actual` (from `StreamHasher::finish`) is this value. A
    /// composite stated without its `-N` (moto's HEAD does that) matches
    /// on the digest alone.
    pub fn matches(&self, actual: &str) -> bool {
        match self {
            Expected::Whole(v) => v == actual,
            Expected::Composite { value, .. } => {
                if value.contains('-') {
                    value == actual
                } else {
                    actual.split('-').next() == Some(value.as_str())
                }
            }
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Expected::Whole(v) | Expected::Composite { value: v, .. } => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // SHA-256("") and SHA-256("abc"), base64.
        assert_eq!(
            base64(&sha256(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn streams_hash_as_whole_buffers_do() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let check = Check::Sha256(Expected::Whole(base64(&sha256(&data))));
        let mut whole = StreamHasher::new(&check);
        for chunk in data.chunks(7777) {
            whole.update(chunk);
        }
        assert_eq!(check.verify(&whole.finish()), Ok(()));
        let md5 = Check::Etag {
            value: hex(&md5::compute(&data).0),
            part_size: None,
        };
        let mut h = StreamHasher::new(&md5);
        data.chunks(1000).for_each(|c| h.update(c));
        assert_eq!(md5.verify(&h.finish()), Ok(()));
        let gcs = Check::Md5(base64(&md5::compute(&data).0));
        let mut h = StreamHasher::new(&gcs);
        h.update(&data[1..]);
        assert!(gcs.verify(&h.finish()).is_err());
    }

    #[test]
    fn file_parts_are_read_once_per_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let parts = file_parts(&path, 25, 10, true).unwrap();
        assert_eq!(parts.len(), 3);
        for (part, bytes) in parts.iter().zip(data.chunks(10)) {
            assert_eq!(part.md5, Some(md5::compute(bytes).0));
            assert_eq!(part.sha256, sha256(bytes));
        }
        let whole = file_parts(&path, 25, 25, false).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].sha256, sha256(&data));
        assert_eq!(whole[0].md5, None);
        let empty = dir.path().join("e");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            file_parts(&empty, 0, 10, true).unwrap()[0].md5,
            Some(md5::compute(b"").0)
        );
        // A file of another size than planned is an error.
        assert!(file_parts(&path, 24, 10, false).is_err());
        assert!(file_parts(&path, 26, 10, false).is_err());
    }

    #[test]
    fn composites_are_the_digest_of_the_part_digests() {
        let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
        let parts: Vec<u8> = data.chunks(10).flat_map(sha256).collect();
        let want = format!("{}-3", base64(&sha256(&parts)));
        let check = Check::Sha256(Expected::Composite {
            value: want.clone(),
            part_size: 10,
        });
        let mut h = StreamHasher::new(&check);
        for chunk in data.chunks(3) {
            h.update(chunk);
        }
        assert_eq!(check.verify(&h.finish()), Ok(()));
        let md5s: Vec<u8> = data.chunks(10).flat_map(|c| md5::compute(c).0).collect();
        let etag = Check::Etag {
            value: format!("{}-3", hex(&md5::compute(&md5s).0)),
            part_size: Some(10),
        };
        let mut h = StreamHasher::new(&etag);
        data.chunks(4).for_each(|c| h.update(c));
        assert_eq!(etag.verify(&h.finish()), Ok(()));
        let stated = Expected::Composite {
            value: want.clone(),
            part_size: 10,
        };
        assert!(stated.matches(&want));
        let without_count = Expected::Composite {
            value: want.split('-').next().unwrap().to_string(),
            part_size: 10,
        };
        assert!(without_count.matches(&want));
        assert!(!stated.matches("AAAA-3"));
    }
}
