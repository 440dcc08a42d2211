//! The words the engine and the backends share: objects, bodies, downloads.
//!
//! The engine builds every upload's `Body` (a slice of a file, or bytes in
//! memory) and hands it to a backend; a backend hands every download back
//! as a `Download`: a reader plus what the store stated about it (offset,
//! length, ETag, checksums). Backends only move these; counting, hashing
//! and checking are the engine's.

use std::cell::OnceCell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::checksum::{self, Expected};
use crate::error::{Error, Result};
use crate::http::Payload;
use crate::{interrupt, progress};

/// One object about to be written.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    /// Backend-specific address: a signed URL, or the store's key.
    pub locator: String,
    /// Where to ask whether the key is taken, for backends that check one
    /// object at a time (the Hub's signed HEAD URL).
    pub probe: Option<String>,
    /// Whether it may replace a stored object (--force).
    pub overwrite: bool,
    /// The file's permission bits, for stores that keep them; set by the
    /// engine.
    pub mode: Option<u32>,
}

/// One object found in the store.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub key: String,
    /// The size the store reports, when it reports one.
    pub size: Option<u64>,
    /// Backend-specific address: a signed URL, or the store's key.
    pub locator: String,
    /// The ETag the listing states (S3's; quoted as S3 sends it).
    pub etag: Option<String>,
    /// When it was last written, where the listing says (S3's
    /// LastModified, the local file's mtime; the Hub states none).
    pub modified: Option<std::time::SystemTime>,
}

/// The size of the placeholder a push holds its key with until its
/// multipart upload completes (`Multipart::claim`): a listed object of
/// another size is never one.
pub const PLACEHOLDER_SIZE: u64 = 124;

impl RemoteObject {
    /// Whether the object may be a push's placeholder, which only its
    /// `stat` (`Stated::pending`) can tell: readers treat a placeholder as
    /// absent, with a warning.
    pub fn may_be_placeholder(&self) -> bool {
        self.size == Some(PLACEHOLDER_SIZE)
    }
}

/// One page of a listing, and where the next one starts.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<RemoteObject>,
    pub next: Option<String>,
}

/// Why objects are listed: the Hub hands out different URLs for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Pull,
    Yank,
    /// Only whether anything is stored, before a push: asked as a pull,
    /// but a store that answers a missing name with a bare server error
    /// (as the Go CLI's own test Hub does) is taken to hold nothing.
    Probe,
}

/// The bytes of one upload: a slice of an open file, or bytes in memory.
/// Their SHA-256 is computed at most once, when a backend first asks.
pub struct Body<'a> {
    data: Data<'a>,
    len: u64,
    sha256: OnceCell<[u8; 32]>,
}

#[derive(Clone, Copy)]
enum Data<'a> {
    Slice {
        file: &'a File,
        path: &'a Path,
        offset: u64,
    },
    Bytes(&'a [u8]),
}

impl<'a> Body<'a> {
    /// `len` bytes of `file` (at `path`, for messages) from `offset`.
    pub fn slice(file: &'a File, path: &'a Path, offset: u64, len: u64) -> Body<'a> {
        Body {
            data: Data::Slice { file, path, offset },
            len,
            sha256: OnceCell::new(),
        }
    }

    pub fn bytes(bytes: &'a [u8]) -> Body<'a> {
        Body {
            data: Data::Bytes(bytes),
            len: bytes.len() as u64,
            sha256: OnceCell::new(),
        }
    }

    /// The same body, with its SHA-256 already known (computed while the
    /// file was read for another reason), so it is not read again to hash.
    pub fn with_sha256(self, digest: Option<[u8; 32]>) -> Body<'a> {
        if let Some(digest) = digest {
            let _ = self.sha256.set(digest);
        }
        self
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The SHA-256 of the bytes, read and hashed on the first call only.
    pub fn sha256(&self) -> Result<[u8; 32]> {
        if let Some(digest) = self.sha256.get() {
            return Ok(*digest);
        }
        let digest = match self.data {
            Data::Bytes(bytes) => checksum::sha256(bytes),
            Data::Slice { .. } => {
                let mut reader = self.reader();
                let mut hasher = Sha256::new();
                let mut buf = [0u8; 64 * 1024];
                loop {
                    match reader.read_uncounted(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => hasher.update(&buf[..n]),
                        Err(e) => return Err(self.read_error(e)),
                    }
                }
                hasher.finalize().into()
            }
        };
        Ok(*self.sha256.get_or_init(|| digest))
    }

    /// A fresh reader over the bytes, from their start; what it reads
    /// counts as progress.
    pub fn reader(&self) -> BodyReader<'a> {
        BodyReader {
            data: self.data,
            at: 0,
            len: self.len,
        }
    }

    fn read_error(&self, e: io::Error) -> Error {
        match self.data {
            Data::Slice { path, .. } => Error::local_io("read", path, e),
            Data::Bytes(_) => Error::local_io("read", Path::new("standard input"), e),
        }
    }
}

/// Reads a `Body` once, exactly its length: a file that turns out shorter
/// is an error, never a short object.
pub struct BodyReader<'a> {
    data: Data<'a>,
    at: u64,
    len: u64,
}

impl BodyReader<'_> {
    /// What an HTTP request carries for this body.
    pub fn payload(&mut self) -> Payload<'_> {
        match self.data {
            Data::Bytes(bytes) => {
                progress::add(bytes.len() as u64);
                Payload::Bytes(bytes)
            }
            Data::Slice { .. } => {
                let len = self.len;
                Payload::Reader(self, len)
            }
        }
    }

    fn read_uncounted(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len - self.at;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match self.data {
            Data::Bytes(bytes) => {
                let start = self.at as usize;
                buf[..want].copy_from_slice(&bytes[start..start + want]);
                want
            }
            Data::Slice { file, offset, .. } => read_at(file, &mut buf[..want], offset + self.at)?,
        };
        if n == 0 {
            return Err(io::Error::other(
                "the file changed size while being pushed; push it again once it is complete",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(signal) = interrupt::received() {
            return Err(io::Error::other(format!("cancelled by {}", signal.name())));
        }
        let n = self.read_uncounted(buf)?;
        progress::add(n as u64);
        Ok(n)
    }
}

/// Reads at `offset` without moving the file's cursor, so that many
/// threads can read one open file.
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Which bytes of an object a GET asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteRange<'a> {
    pub from: u64,
    /// `None`: to the end of the object.
    pub len: Option<u64>,
    /// Only if the object still has this ETag (`If-Match`).
    pub if_match: Option<&'a str>,
}

impl ByteRange<'_> {
    pub fn is_whole(&self) -> bool {
        self.from == 0 && self.len.is_none()
    }

    /// The `Range` header value, unless the whole object is asked for.
    pub fn header(&self) -> Option<String> {
        match (self.from, self.len) {
            (0, None) => None,
            (from, None) => Some(format!("bytes={from}-")),
            (from, Some(len)) => Some(format!("bytes={from}-{}", from + len.max(1) - 1)),
        }
    }
}

/// What the store states about an object without sending it (a HEAD).
#[derive(Debug, Default, Clone)]
pub struct Stated {
    pub etag: Option<String>,
    /// What tells one version of the object from another (`version_of`).
    pub version: Option<String>,
    pub sha256: Option<Expected>,
    /// The permission bits recorded with the object.
    pub mode: Option<u32>,
    /// The part size our multipart upload recorded with the object.
    pub part_size: Option<u64>,
    /// The ETag, bare, where it may be an MD5 (`etag_as_md5`).
    pub etag_md5: Option<String>,
    /// The object is a push's placeholder (`Multipart::claim`): that push
    /// is still running, or died; readers treat it as absent.
    pub pending: bool,
}

/// A GET's answer: the body and what the store said about it.
pub struct Download<'a> {
    pub body: Box<dyn Read + 'a>,
    /// Where in the object the body starts: the range asked for, or 0 when
    /// the store sent the whole object instead.
    pub offset: u64,
    /// How many bytes the body will carry, when stated.
    pub length: Option<u64>,
    pub etag: Option<String>,
    /// What tells one version of the object from another (`version_of`).
    pub version: Option<String>,
    /// The SHA-256 the object's bytes must have, when the store states one
    /// we can check.
    pub sha256: Option<Expected>,
    /// The MD5 the storage states (GCS's `x-goog-hash`), base64.
    pub md5: Option<String>,
    /// The permission bits recorded with the object.
    pub mode: Option<u32>,
    /// The ETag, bare, where it may be an MD5 (`etag_as_md5`).
    pub etag_md5: Option<String>,
    /// The part size our multipart upload recorded with the object.
    pub part_size: Option<u64>,
    /// The object is a push's placeholder (`Stated::pending`).
    pub pending: bool,
}

impl<'a> Download<'a> {
    /// A download whose body is `body`, holding `length` bytes from `offset`.
    pub fn new(body: Box<dyn Read + 'a>, offset: u64, length: Option<u64>) -> Download<'a> {
        Download {
            body,
            offset,
            length,
            etag: None,
            version: None,
            sha256: None,
            md5: None,
            mode: None,
            etag_md5: None,
            part_size: None,
            pending: false,
        }
    }

    /// The body and the facts every HTTP store states: length,
    /// `Content-Range` (a 206 starts where it says; a 200 at 0) and ETag.
    pub fn from_http(response: ureq::http::Response<ureq::Body>) -> Result<Download<'static>> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let offset = match response.status().as_u16() {
            206 => header("content-range")
                .as_deref()
                .and_then(range_start)
                .ok_or_else(|| {
                    Error::Protocol(
                        "the store answered a range request without a usable Content-Range".into(),
                    )
                })?,
            _ => 0,
        };
        let length = response.body().content_length();
        let etag = header("etag");
        let version = version_of(response.headers());
        let etag_md5 = etag_as_md5(response.headers());
        let body = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        let mut download = Download::new(Box::new(body), offset, length);
        download.etag = etag;
        download.version = version;
        download.etag_md5 = etag_md5;
        Ok(download)
    }
}

/// What tells one version of an object from another in a store's answer:
/// its ETag, its Last-Modified, and the marker our uploads record. A store
/// that ignores `If-Match` (or keeps an ETag across an overwrite) still
/// changes one of them when the object is replaced.
pub fn version_of(headers: &ureq::http::HeaderMap) -> Option<String> {
    let parts: Vec<&str> = ["etag", "last-modified", "x-amz-meta-artifact-upload"]
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("|"))
}

/// The ETag of an answer, bare and lowercase, where it may be the MD5 of
/// the bytes: 32 hex digits (a single PUT), or 32 hex digits and `-N` (the
/// MD5 of the MD5s of N parts), strong (no `W/`), on an answer that names
/// no encryption under which S3's ETags are something else (SSE-KMS,
/// DSSE-KMS, SSE-C). It may still not be one (some stores make ETags of
/// their own): `transfer::resume` says what follows from that.
pub fn etag_as_md5(headers: &ureq::http::HeaderMap) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let kms = get("x-amz-server-side-encryption").is_some_and(|v| v.starts_with("aws:kms"));
    if kms || get("x-amz-server-side-encryption-customer-algorithm").is_some() {
        return None;
    }
    let etag = get("etag")?.trim();
    let bare = etag
        .strip_prefix('"')?
        .strip_suffix('"')?
        .to_ascii_lowercase();
    let (digest, parts) = match bare.split_once('-') {
        Some((digest, parts)) => (digest, Some(parts)),
        None => (bare.as_str(), None),
    };
    let hex = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    let counted = parts.is_none_or(|n| {
        n.parse::<u32>()
            .is_ok_and(|count| (1..=10_000).contains(&count) && count.to_string() == n)
    });
    (hex && counted).then_some(bare)
}

/// The first byte of `bytes FIRST-LAST/SIZE`.
fn range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One uploaded part of a multipart upload, as CompleteMultipartUpload
/// lists it.
pub use crate::aws::xml::Part;

/// What earlier attempts of one write learned.
#[derive(Debug, Default)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: usize,
    /// The store reported damaged bytes on an earlier attempt.
    pub damaged: bool,
}

/// A key held for one multipart upload by a create-only placeholder
/// (`Multipart::claim`).
#[derive(Debug, Clone)]
pub struct Claim {
    /// What the placeholder carries that no other push's does.
    pub marker: String,
    /// The placeholder's ETag, when known: the upload completes only over
    /// it (`If-Match`), where the store checks that.
    pub etag: Option<String>,
}

/// The multipart primitives, for stores that have them: large objects go
/// up in parts, which the engine schedules like any other request.
pub trait Multipart: Sync {
    /// The part size for an object of `size` bytes; objects no larger go
    /// up in one PUT.
    fn part_size(&self, size: u64) -> u64;

    /// Before an upload that may not overwrite, holds its key with a
    /// small placeholder written only if the key is free: where completing
    /// an upload is no atomic create-only write, racing pushes meet this
    /// one, and a loser sends no part (`AlreadyExists`). `None` where the
    /// store has no conditional writes. The default holds nothing.
    fn claim(&self, _upload: &Upload, _attempt: &Attempt) -> Result<Option<Claim>> {
        Ok(None)
    }

    /// Removes the placeholder of an upload that will not complete, if it
    /// is still ours.
    fn unclaim(&self, _upload: &Upload, _claim: &Claim) -> Result<()> {
        Ok(())
    }

    /// Starts an upload and returns its id.
    fn create(&self, upload: &Upload, part_size: u64) -> Result<String>;

    fn put_part(&self, upload: &Upload, id: &str, number: u32, body: &Body<'_>) -> Result<Part>;

    /// Completes the upload, over its `claim`'s placeholder when it has one.
    fn complete(
        &self,
        upload: &Upload,
        id: &str,
        parts: &[Part],
        claim: Option<&Claim>,
        attempt: &Attempt,
    ) -> Result<()>;

    /// Drops the parts of an upload that will not complete.
    fn abort(&self, upload: &Upload, id: &str) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        let whole = ByteRange::default();
        assert!(whole.is_whole());
        assert_eq!(whole.header(), None);
        let rest = ByteRange {
            from: 10,
            ..ByteRange::default()
        };
        assert_eq!(rest.header().as_deref(), Some("bytes=10-"));
        let span = ByteRange {
            from: 10,
            len: Some(5),
            if_match: None,
        };
        assert_eq!(span.header().as_deref(), Some("bytes=10-14"));
        assert_eq!(range_start("bytes 10-14/100"), Some(10));
        assert_eq!(range_start("bytes */100"), None);
    }

    #[test]
    fn which_etags_may_be_md5s() {
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        let etag = |value: &str, extra: &[(&'static str, &str)]| {
            let mut map = ureq::http::HeaderMap::new();
            map.insert("etag", value.parse().unwrap());
            for (k, v) in extra {
                map.insert(*k, v.parse().unwrap());
            }
            etag_as_md5(&map)
        };
        assert_eq!(etag(&format!("\"{md5}\""), &[]).as_deref(), Some(md5));
        let upper = format!("\"{}-3\"", md5.to_uppercase());
        assert_eq!(etag(&upper, &[]), Some(format!("{md5}-3")));
        let aes = [("x-amz-server-side-encryption", "AES256")];
        assert!(etag(&format!("\"{md5}\""), &aes).is_some());
        for (value, extra) in [
            (format!("W/\"{md5}\""), &[][..]),
            (md5.to_string(), &[][..]),
            ("\"abc\"".to_string(), &[][..]),
            (format!("\"{md5}-0\""), &[][..]),
            (format!("\"{md5}-10001\""), &[][..]),
            (format!("\"{md5}-x\""), &[][..]),
            (
                format!("\"{md5}\""),
                &[("x-amz-server-side-encryption", "aws:kms")][..],
            ),
            (
                format!("\"{md5}\""),
                &[("x-amz-server-side-encryption", "aws:kms:dsse")][..],
            ),
            (
                format!("\"{md5}\""),
                &[("x-amz-server-side-encryption-customer-algorithm", "AES256")][..],
            ),
        ] {
            assert_eq!(etag(&value, extra), None, "{value} {extra:?}");
        }
    }

    #[test]
    fn a_body_hashes_once_and_reads_exactly_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let body = Body::slice(&file, &path, 2, 5);
        assert_eq!(body.sha256().unwrap(), checksum::sha256(b"23456"));
        let mut out = Vec::new();
        body.reader().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"23456");
        // A slice past the end of a file that shrank is an error.
        let short = Body::slice(&file, &path, 8, 5);
        assert!(short.reader().read_to_end(&mut Vec::new()).is_err());
        assert!(short.sha256().is_err()); // A digest already known is not computed again.
        let known = Body::slice(&file, &path, 8, 5).with_sha256(Some([7; 32]));
        assert_eq!(known.sha256().unwrap(), [7; 32]);
    }
}
