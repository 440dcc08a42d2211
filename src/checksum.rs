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

/// Hashes a stream the way its `Expected` value was computed.
pub struct StreamHasher {
    hasher: Sha256,
    part_size: Option<u64>,
    in_part: u64,
    parts: Vec<[u8; 32]>,
}

impl StreamHasher {
    pub fn new(expected: &Expected) -> StreamHasher {
        let part_size = match expected {
            Expected::Whole(_) => None,
            Expected::Composite { part_size, .. } => Some((*part_size).max(1)),
        };
        StreamHasher {
            hasher: Sha256::new(),
            part_size,
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
                self.parts.push(self.hasher.finalize_reset().into());
                self.in_part = 0;
            }
        }
    }

    /// The value in the form S3 states it: `b64` or `b64-N`.
    pub fn finish(mut self) -> String {
        if self.part_size.is_none() {
            return base64(&self.hasher.finalize());
        }
        if self.in_part > 0 || self.parts.is_empty() {
            self.parts.push(self.hasher.finalize_reset().into());
        }
        composite(&self.parts)
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
        let mut whole = StreamHasher::new(&Expected::Whole(String::new()));
        for chunk in data.chunks(7777) {
            whole.update(chunk);
        }
        assert_eq!(whole.finish(), base64(&sha256(&data)));
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
        let expected = Expected::Composite {
            value: String::new(),
            part_size: 10,
        };
        let mut h = StreamHasher::new(&expected);
        for chunk in data.chunks(3) {
            h.update(chunk);
        }
        let parts: Vec<u8> = data.chunks(10).flat_map(sha256).collect();
        let want = format!("{}-3", base64(&sha256(&parts)));
        assert_eq!(h.finish(), want);
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
