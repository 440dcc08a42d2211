//! Putting objects: a single PUT, and the multipart primitives.
//!
//! Every PUT and part carries the signed `x-amz-checksum-sha256` of exactly
//! the bytes it sends, so the store refuses damaged data. Without --force
//! the write is conditional (`If-None-Match: *`); when a retry meets its own
//! earlier attempt (412, or a multipart upload already completed) a HEAD
//! tells ours from another writer's by a marker we stored with the object.
//! Each function here is one request; the transfer engine schedules,
//! retries and aborts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{self, Request, UNSIGNED};
use super::settings::part_size_for;
use super::S3;
use crate::aws::sigv4::hex;
use crate::aws::xml;
use crate::backend::{Attempt, Body, Multipart, Part, Upload};
use crate::checksum;
use crate::error::{Error, Result, Side};
use crate::http::{Patience, Payload};
use crate::log;

/// CompleteMultipartUpload may take minutes on a large object.
const COMPLETE_WAIT: Duration = Duration::from_secs(15 * 60);
const META_SHA256: &str = "x-amz-meta-sha256";
const META_UPLOAD: &str = "x-amz-meta-artifact-upload";
const META_PART_SIZE: &str = "x-amz-meta-artifact-part-size";
/// A file's permission bits, in octal (`0755`).
pub(super) const META_MODE: &str = "x-amz-meta-mode";

/// Permission bits as `x-amz-meta-mode` records them.
fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o777)
}

impl S3 {
    /// One PUT of a whole object.
    pub(super) fn put_object(
        &self,
        upload: &Upload,
        body: &Body<'_>,
        attempt: &mut Attempt,
    ) -> Result<()> {
        let sum = body.sha256_base64()?;
        let mut req = Request::new("PUT", Some(&upload.locator)).header(META_SHA256, sum.clone());
        if let Some(mode) = upload.mode {
            req = req.header(META_MODE, format_mode(mode));
        }
        if !upload.overwrite {
            req = req.header("if-none-match", "*");
        }
        req.payload_sha256 = UNSIGNED;
        let req = self.with_checksum(req, &sum);
        let mut reader = body.reader();
        let mut response = self.client.send(&req, reader.payload())?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            409 | 412 if self.is_ours(upload, META_SHA256, &sum)? => Ok(()),
            409 | 412 if attempt.damaged => Err(Error::Integrity {
                what: format!("upload of '{}'", upload.key),
                detail: "the store reported damaged bytes (BadDigest) and kept an object under that key; yank it and push again".into(),
            }),
            _ => {
                let failure = client::failure(&mut response);
                attempt.damaged |= failure.code == "BadDigest";
                Err(self.put_error(failure, &upload.key))
            }
        }
    }

    /// `req` with the checksum headers for `sum`, unless the store refused them.
    fn with_checksum<'r>(&self, req: Request<'r>, sum: &str) -> Request<'r> {
        if self.checksums_refused.load(Ordering::Relaxed) {
            return req;
        }
        req.header("x-amz-checksum-sha256", sum.to_string())
            .header("x-amz-sdk-checksum-algorithm", "SHA256")
    }

    /// The marker stored with multipart upload `id` when it was created.
    fn upload_marker(&self, id: &str) -> String {
        self.open_uploads
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|(_, marker)| marker.clone()))
            .unwrap_or_default()
    }

    /// Forgets upload `id`: completed or aborted.
    fn closed(&self, id: &str) {
        if let Ok(mut open) = self.open_uploads.lock() {
            open.remove(id);
        }
    }

    /// Aborts every multipart upload of this run still open, in parallel,
    /// each with the short limits of clean-up.
    pub(super) fn abort_open_uploads(&self) {
        let open: Vec<(String, String)> = match self.open_uploads.lock() {
            Ok(mut open) => open.drain().map(|(id, (key, _))| (id, key)).collect(),
            Err(_) => return,
        };
        std::thread::scope(|scope| {
            for (id, key) in &open {
                scope.spawn(move || {
                    let _ = self.abort_request(key, id);
                });
            }
        });
    }

    fn abort_request(&self, locator: &str, id: &str) -> Result<Option<client::S3Failure>> {
        let mut req = Request::new("DELETE", Some(locator)).query("uploadId", id);
        req.patience = Patience::Cleanup;
        let mut response = self.client.send(&req, Payload::Empty)?;
        Ok(match response.status().as_u16() {
            200..=299 | 404 => None,
            _ => Some(client::failure(&mut response)),
        })
    }

    /// Whether the stored object carries our marker: our own earlier
    /// attempt, not another writer's object.
    fn is_ours(&self, upload: &Upload, header: &str, value: &str) -> Result<bool> {
        let req = Request::new("HEAD", Some(&upload.locator));
        let response = self.client.send(&req, Payload::Empty)?;
        let stored = response.headers().get(header).and_then(|v| v.to_str().ok());
        Ok(response.status().is_success() && stored == Some(value))
    }

    fn put_error(&self, failure: client::S3Failure, key: &str) -> Error {
        if refuses_checksums(&failure) && !self.checksums_refused.swap(true, Ordering::Relaxed) {
            log::info(&format!(
                "Warning: the store refused the checksum headers ({}: {}); uploading without them, the bytes are then checked by length only.",
                failure.code, failure.message
            ));
            // Retried at once, without the headers.
            return Error::Network {
                what: format!("upload of '{key}'"),
                detail: "the store does not take x-amz-checksum-sha256".into(),
            };
        }
        if failure.code == "BadDigest" {
            // The bytes were damaged on the way: send them again.
            return Error::Network {
                what: format!("upload of '{key}'"),
                detail: "the store received damaged bytes (BadDigest)".into(),
            };
        }
        match self.error(failure, "PutObject", key) {
            Error::NotFound(_) => Error::Protocol(format!(
                "S3 lost the upload of '{key}' (NoSuchUpload); push it again"
            )),
            Error::AlreadyExists { .. } => Error::AlreadyExists {
                side: Side::Remote,
                path: key.to_string(),
            },
            other => other,
        }
    }
}

impl Multipart for S3 {
    fn part_size(&self, size: u64) -> u64 {
        part_size_for(size, self.settings.part_size)
    }

    fn create(&self, upload: &Upload, part_size: u64) -> Result<String> {
        let marker = unique_marker();
        let mut req = Request::new("POST", Some(&upload.locator))
            .query("uploads", "")
            .header(META_UPLOAD, marker.clone())
            .header(META_PART_SIZE, part_size.to_string());
        if !self.checksums_refused.load(Ordering::Relaxed) {
            req = req.header("x-amz-checksum-algorithm", "SHA256");
        }
        if let Some(mode) = upload.mode {
            req = req.header(META_MODE, format_mode(mode));
        }
        let mut response = self.client.send(&req, Payload::Empty)?;
        if !response.status().is_success() {
            return Err(self.put_error(client::failure(&mut response), &upload.key));
        }
        let text = super::read_text(&mut response, "CreateMultipartUpload")?;
        let id = xml::upload_id(&text)?;
        if let Ok(mut open) = self.open_uploads.lock() {
            open.insert(id.clone(), (upload.locator.clone(), marker));
        }
        Ok(id)
    }

    fn put_part(&self, upload: &Upload, id: &str, number: u32, body: &Body<'_>) -> Result<Part> {
        let sum = body.sha256_base64()?;
        let mut req = Request::new("PUT", Some(&upload.locator))
            .query("partNumber", number.to_string())
            .query("uploadId", id);
        req.payload_sha256 = UNSIGNED;
        let checked = !self.checksums_refused.load(Ordering::Relaxed);
        let req = self.with_checksum(req, &sum);
        let mut reader = body.reader();
        let mut response = self.client.send(&req, reader.payload())?;
        if !response.status().is_success() {
            return Err(self.put_error(client::failure(&mut response), &upload.key));
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "S3 stored part {number} of '{}' but sent no ETag",
                    upload.key
                ))
            })?;
        Ok(Part {
            number,
            etag,
            sha256: checked.then_some(sum),
        })
    }

    fn complete(&self, upload: &Upload, id: &str, parts: &[Part], attempt: &Attempt) -> Result<()> {
        let body = xml::complete_body(parts);
        let body_sha = hex(&checksum::sha256(body.as_bytes()));
        let mut req = Request::new("POST", Some(&upload.locator))
            .query("uploadId", id)
            .header("content-type", "application/xml");
        if !upload.overwrite {
            req = req.header("if-none-match", "*");
        }
        req.payload_sha256 = &body_sha;
        req.patience = Patience::Long(COMPLETE_WAIT);
        let mut response = self.client.send(&req, Payload::Bytes(body.as_bytes()))?;
        let status = response.status().as_u16();
        if status == 200 {
            let text = super::read_text(&mut response, "CompleteMultipartUpload")?;
            if !xml::is_error_document(&text) {
                self.closed(id);
                return Ok(());
            }
            let (code, message) = xml::error_code_and_message(&text);
            return Err(Error::remote(
                format!("S3 CompleteMultipartUpload of '{}'", upload.key),
                500,
                format!(
                    "{}: {}",
                    code.unwrap_or_default(),
                    message.unwrap_or_default()
                ),
            ));
        }
        // A retry whose first attempt completed meets 412, NoSuchUpload, or
        // (s3s-fs) AccessDenied for the finished upload: ours if the stored
        // object has this upload's id.
        if attempt.number > 1
            && matches!(status, 403 | 404 | 409 | 412)
            && self.is_ours(upload, META_UPLOAD, &self.upload_marker(id))?
        {
            self.closed(id);
            return Ok(());
        }
        Err(self.put_error(client::failure(&mut response), &upload.key))
    }

    fn abort(&self, upload: &Upload, id: &str) -> Result<()> {
        match self.abort_request(&upload.locator, id)? {
            None => {
                self.closed(id);
                Ok(())
            }
            Some(failure) => Err(self.put_error(failure, &upload.key)),
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
