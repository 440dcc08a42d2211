//! Putting one object: a single PUT, or a multipart upload in parallel parts.
//!
//! Every PUT and part carries the signed `x-amz-checksum-sha256` of exactly
//! the bytes it sends, so the store refuses damaged data. A file's bytes are
//! hashed, then streamed from disk; only standard input is held in memory,
//! one part per worker, so memory is bounded by parts in flight, never by
//! the object's size. Without --force the write is conditional
//! (`If-None-Match: *`); when a retry meets its own earlier attempt (412, or
//! a multipart upload already completed) a HEAD tells ours from another
//! writer's by a marker we stored with the object. A failed multipart upload
//! is aborted, so no parts are left behind.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{self, Request, UNSIGNED};
use super::settings::part_size_for;
use super::S3;
use crate::aws::sigv4::hex;
use crate::aws::xml::{self, Part};
use crate::backend::check_unchanged;
use crate::checksum;
use crate::error::{Error, Result, Side};
use crate::http::Payload;
use crate::{log, pool, progress, retry};

/// Parts of one object in flight at once (each is one request).
const PARTS_IN_FLIGHT: usize = 16;
/// Files up to this size are read into memory once rather than read twice
/// from disk; with one file per worker, memory stays at workers × this.
const READ_ONCE_MAX: u64 = 256 * 1024;
/// CompleteMultipartUpload may take minutes on a large object.
const COMPLETE_WAIT: Duration = Duration::from_secs(15 * 60);
const META_SHA256: &str = "x-amz-meta-sha256";
const META_UPLOAD: &str = "x-amz-meta-artifact-upload";

/// Where a PUT's bytes come from.
#[derive(Clone, Copy)]
enum Data<'a> {
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    Bytes(&'a [u8]),
}

impl Data<'_> {
    fn len(&self) -> u64 {
        match self {
            Data::File { len, .. } => *len,
            Data::Bytes(b) => b.len() as u64,
        }
    }

    /// The SHA-256 of the bytes, checking that a file still has them all.
    fn sha256(&self) -> Result<[u8; 32]> {
        match *self {
            Data::Bytes(b) => Ok(checksum::sha256(b)),
            Data::File { path, offset, len } => {
                let mut file = File::open(path).map_err(|e| Error::local_io("open", path, e))?;
                let (digest, seen) = checksum::sha256_of_range(&mut file, offset, len)
                    .map_err(|e| Error::local_io("read", path, e))?;
                if seen != len {
                    return Err(changed_size(path));
                }
                Ok(digest)
            }
        }
    }
}

fn changed_size(path: &Path) -> Error {
    Error::local_io(
        "read",
        path,
        io::Error::other(
            "the file changed size while being pushed; push it again once it is complete",
        ),
    )
}

pub struct Uploader<'a> {
    pub s3: &'a S3,
    pub key: &'a str,
    pub full_key: &'a str,
    pub force: bool,
}

impl Uploader<'_> {
    pub fn file(&self, path: &Path, size: u64) -> Result<u64> {
        if size <= READ_ONCE_MAX {
            // Small files are read once and sent from memory: one open and
            // one read instead of a hash pass and a send pass.
            let bytes = std::fs::read(path).map_err(|e| Error::local_io("read", path, e))?;
            if bytes.len() as u64 != size {
                return Err(changed_size(path));
            }
            self.single(Data::Bytes(&bytes))?;
            check_unchanged(path, size)?;
            return Ok(size);
        }
        check_unchanged(path, size)?;
        let part = part_size_for(size, self.s3.settings.part_size);
        if size <= part {
            self.single(Data::File {
                path,
                offset: 0,
                len: size,
            })?;
            check_unchanged(path, size)?;
            return Ok(size);
        }
        let parts: Vec<(u32, u64, u64)> = (0..size.div_ceil(part))
            .map(|i| (i as u32 + 1, i * part, part.min(size - i * part)))
            .collect();
        self.multipart(part, |id| {
            let workers = self.s3.parallelism.min(PARTS_IN_FLIGHT);
            pool::all(pool::run(&parts, workers, |&(number, offset, len)| {
                self.part(id, number, Data::File { path, offset, len })
            }))
        })?;
        check_unchanged(path, size)?;
        Ok(size)
    }

    /// Standard input, streamed: one PUT when it fits in a part, else a
    /// multipart upload that reads a batch of parts, sends them in
    /// parallel, and reads the next.
    pub fn stdin(&self) -> Result<u64> {
        let part = self.s3.settings.part_size;
        let mut input = io::stdin().lock();
        let first = read_part(&mut input, part)?;
        if (first.len() as u64) < part {
            self.single(Data::Bytes(&first))?;
            return Ok(first.len() as u64);
        }
        let mut total = 0u64;
        let mut pending = Some(first);
        self.multipart(part, |id| {
            let batch_size = self.s3.parallelism.clamp(1, PARTS_IN_FLIGHT);
            let mut sent = Vec::new();
            loop {
                let mut batch: Vec<(u32, Vec<u8>)> = Vec::with_capacity(batch_size);
                while batch.len() < batch_size {
                    let chunk = match pending.take() {
                        Some(c) => c,
                        None => read_part(&mut input, part)?,
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    batch.push((sent.len() as u32 + batch.len() as u32 + 1, chunk));
                }
                if batch.is_empty() {
                    return Ok(sent);
                }
                let last = batch.last().is_some_and(|(_, c)| (c.len() as u64) < part);
                total += batch.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
                let done = pool::run(&batch, batch_size, |(number, chunk)| {
                    self.part(id, *number, Data::Bytes(chunk))
                });
                sent.extend(pool::all(done)?);
                if last {
                    return Ok(sent);
                }
            }
        })?;
        Ok(total)
    }

    /// One PUT of the whole object.
    fn single(&self, data: Data<'_>) -> Result<u64> {
        let sum = checksum::base64(&data.sha256()?);
        let mut base = Request::new("PUT", Some(self.full_key)).header(META_SHA256, sum.clone());
        if !self.force {
            base = base.header("if-none-match", "*");
        }
        base.payload_sha256 = UNSIGNED;
        // Set when the store said the bytes arrived damaged (BadDigest).
        let damaged = Cell::new(false);
        retry::run(
            &self.s3.client.http.settings,
            &format!("PUT '{}'", self.key),
            || {
                let req = self.with_checksum(base.clone(), &sum);
                let mut response = self.send(&req, data)?;
                match response.status().as_u16() {
                200..=299 => Ok(()),
                409 | 412 if self.is_ours(META_SHA256, &sum)? => Ok(()),
                409 | 412 if damaged.get() => Err(Error::Integrity {
                    what: format!("upload of '{}'", self.key),
                    detail: "the store reported damaged bytes (BadDigest) and kept an object under that key; yank it and push again".into(),
                }),
                _ => {
                    let failure = client::failure(&mut response);
                    damaged.set(damaged.get() || failure.code == "BadDigest");
                    Err(self.put_error(failure))
                }
            }
            },
        )?;
        Ok(data.len())
    }

    /// `req` with the checksum headers for `sum`, unless the store refused them.
    fn with_checksum<'r>(&self, req: Request<'r>, sum: &str) -> Request<'r> {
        if self.s3.checksums_refused.load(Ordering::Relaxed) {
            return req;
        }
        req.header("x-amz-checksum-sha256", sum.to_string())
            .header("x-amz-sdk-checksum-algorithm", "SHA256")
    }

    fn part(&self, upload_id: &str, number: u32, data: Data<'_>) -> Result<Part> {
        let sum = checksum::base64(&data.sha256()?);
        let mut base = Request::new("PUT", Some(self.full_key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id);
        base.payload_sha256 = UNSIGNED;
        retry::run(
            &self.s3.client.http.settings,
            &format!("PUT '{}' part {number}", self.key),
            || {
                let checked = !self.s3.checksums_refused.load(Ordering::Relaxed);
                let req = self.with_checksum(base.clone(), &sum);
                let mut response = self.send(&req, data)?;
                if !response.status().is_success() {
                    return Err(self.put_error(client::failure(&mut response)));
                }
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::Protocol(format!(
                            "S3 stored part {number} of '{}' but sent no ETag",
                            self.key
                        ))
                    })?;
                Ok(Part {
                    number,
                    etag,
                    sha256: checked.then(|| sum.clone()),
                })
            },
        )
    }

    /// Create, send the parts (`send_parts`), complete; abort on failure.
    fn multipart(
        &self,
        part_size: u64,
        send_parts: impl FnOnce(&str) -> Result<Vec<Part>>,
    ) -> Result<()> {
        let marker = unique_marker();
        let create = Request::new("POST", Some(self.full_key))
            .query("uploads", "")
            .header(META_UPLOAD, marker.clone())
            .header("x-amz-meta-artifact-part-size", part_size.to_string());
        let text = retry::run(
            &self.s3.client.http.settings,
            &format!("CreateMultipartUpload '{}'", self.key),
            || {
                let mut req = create.clone();
                if !self.s3.checksums_refused.load(Ordering::Relaxed) {
                    req = req.header("x-amz-checksum-algorithm", "SHA256");
                }
                let mut response = self.s3.client.send(&req, Payload::Empty)?;
                if !response.status().is_success() {
                    return Err(self.put_error(client::failure(&mut response)));
                }
                super::read_text(&mut response, "CreateMultipartUpload")
            },
        )?;
        let upload_id = xml::upload_id(&text)?;
        log::debug(|| format!("multipart upload of '{}' started", self.key));
        let result =
            send_parts(&upload_id).and_then(|parts| self.complete(&upload_id, &parts, &marker));
        if result.is_err() {
            self.abort(&upload_id);
        }
        result
    }

    fn complete(&self, upload_id: &str, parts: &[Part], marker: &str) -> Result<()> {
        let body = xml::complete_body(parts);
        let body_sha = hex(&checksum::sha256(body.as_bytes()));
        let mut req = Request::new("POST", Some(self.full_key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml");
        if !self.force {
            req = req.header("if-none-match", "*");
        }
        req.payload_sha256 = &body_sha;
        req.wait = Some(COMPLETE_WAIT);
        retry::run(
            &self.s3.client.http.settings,
            &format!("CompleteMultipartUpload '{}'", self.key),
            || {
                let mut response = self.s3.client.send(&req, Payload::Bytes(body.as_bytes()))?;
                let status = response.status().as_u16();
                if status == 200 {
                    let text = super::read_text(&mut response, "CompleteMultipartUpload")?;
                    if !xml::is_error_document(&text) {
                        return Ok(());
                    }
                    let (code, message) = xml::error_code_and_message(&text);
                    return Err(Error::Remote {
                        what: format!("S3 CompleteMultipartUpload of '{}'", self.key),
                        status: 500,
                        detail: format!(
                            "{}: {}",
                            code.unwrap_or_default(),
                            message.unwrap_or_default()
                        ),
                    });
                }
                // A retry whose first attempt completed meets 412, NoSuchUpload, or
                // (s3s-fs) AccessDenied for the finished upload.
                if matches!(status, 403 | 404 | 409 | 412) && self.is_ours(META_UPLOAD, marker)? {
                    return Ok(());
                }
                Err(self.put_error(client::failure(&mut response)))
            },
        )
    }

    /// Best effort: a failed upload must not leave its parts in the bucket.
    fn abort(&self, upload_id: &str) {
        let req = Request::new("DELETE", Some(self.full_key)).query("uploadId", upload_id);
        let aborted = retry::run(
            &self.s3.client.http.settings,
            "AbortMultipartUpload",
            || {
                let mut response = self.s3.client.send(&req, Payload::Empty)?;
                match response.status().as_u16() {
                    200..=299 | 404 => Ok(()),
                    _ => Err(self.put_error(client::failure(&mut response))),
                }
            },
        );
        match aborted {
            Ok(()) => log::debug(|| format!("multipart upload of '{}' aborted", self.key)),
            Err(e) => log::info(&format!(
                "Warning: could not abort the unfinished upload of '{}' ({e}); a bucket lifecycle rule for incomplete multipart uploads cleans such leftovers.",
                self.key
            )),
        }
    }

    /// Whether the stored object carries our marker: our own earlier
    /// attempt, not another writer's object.
    fn is_ours(&self, header: &str, value: &str) -> Result<bool> {
        let req = Request::new("HEAD", Some(self.full_key));
        let response = self.s3.client.send(&req, Payload::Empty)?;
        let stored = response.headers().get(header).and_then(|v| v.to_str().ok());
        Ok(response.status().is_success() && stored == Some(value))
    }

    fn send(&self, req: &Request<'_>, data: Data<'_>) -> Result<ureq::http::Response<ureq::Body>> {
        match data {
            Data::Bytes(bytes) => {
                let response = self.s3.client.send(req, Payload::Bytes(bytes))?;
                progress::add(bytes.len() as u64);
                Ok(response)
            }
            Data::File { path, offset, len } => {
                let mut file = File::open(path).map_err(|e| Error::local_io("open", path, e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| Error::local_io("read", path, e))?;
                let mut body = progress::Counting(file.take(len));
                self.s3.client.send(req, Payload::Reader(&mut body, len))
            }
        }
    }

    fn put_error(&self, failure: client::S3Failure) -> Error {
        if refuses_checksums(&failure) && !self.s3.checksums_refused.swap(true, Ordering::Relaxed) {
            log::info(&format!(
                "Warning: the store refused the checksum headers ({}: {}); uploading without them, the bytes are then checked by length only.",
                failure.code, failure.message
            ));
            // Retried at once, without the headers.
            return Error::Network {
                what: format!("upload of '{}'", self.key),
                detail: "the store does not take x-amz-checksum-sha256".into(),
            };
        }
        if failure.code == "BadDigest" {
            // The bytes were damaged on the way: send them again.
            return Error::Network {
                what: format!("upload of '{}'", self.key),
                detail: "the store received damaged bytes (BadDigest)".into(),
            };
        }
        match self.s3.error(failure, "PutObject", self.key) {
            Error::NotFound(_) => Error::Protocol(format!(
                "S3 lost the upload of '{}' (NoSuchUpload); push it again",
                self.key
            )),
            Error::AlreadyExists { .. } => Error::AlreadyExists {
                side: Side::Remote,
                path: self.key.to_string(),
            },
            other => other,
        }
    }
}

/// Whether a failed upload says the store does not take the checksum
/// headers themselves (as opposed to BadDigest: damaged bytes).
fn refuses_checksums(failure: &client::S3Failure) -> bool {
    let mentions = |what: &str| failure.message.to_ascii_lowercase().contains(what);
    match (failure.status, failure.code.as_str()) {
        (400 | 501, "NotImplemented") => true,
        (400, "InvalidArgument" | "InvalidRequest" | "UnsupportedHeader") => {
            mentions("checksum") || mentions("header")
        }
        _ => false,
    }
}

/// Reads up to `size` bytes: a full part, or less at the end of the input.
fn read_part(input: &mut impl Read, size: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    input
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| Error::local_io("read", Path::new("standard input"), e))?;
    Ok(buf)
}

/// A value no other upload will store: time, process and a counter.
fn unique_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{nanos:x}-{:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
