//! Putting objects: a single PUT, and the multipart primitives.
//!
//! Every PUT and part carries the SHA-256 of exactly the bytes it sends
//! twice: as the signed payload hash (`x-amz-content-sha256`, hex), which
//! every store verifies, and as `x-amz-checksum-sha256` (base64), which AWS
//! verifies and states back. The store refuses damaged data (BadDigest,
//! XAmzContentSHA256Mismatch); it is sent again, and an integrity failure
//! when the attempts run out. Without --force
//! the write is conditional (`If-None-Match: *`); when a retry meets its own
//! earlier attempt (412, or a multipart upload already completed) a HEAD
//! tells ours from another writer's by a marker we stored with the object.
//! A multipart upload without --force first holds its key with a
//! create-only placeholder (`claim`), since not every store makes
//! CompleteMultipartUpload's condition atomic; Complete then goes over it.
//! A store that does not take one of those headers says which (`refusal`):
//! the rest of the run goes on without it. Every PutObject and
//! CreateMultipartUpload carries the configured encryption and storage
//! class and a `Content-Type` from the key's extension (`content_type`); a
//! store refusing the encryption or the class is a configuration error
//! naming the variable (`refused_setting`).
//! Each function here is one request; the transfer engine schedules,
//! retries and aborts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{self, Request};
use super::settings::part_size_for;
use super::S3;
use crate::aws::xml;
use crate::backend::{Attempt, Body, Claim, Multipart, Part, Upload};
use crate::checksum;
use crate::checksum::hex;
use crate::error::{Error, Result, Side};
use crate::http::{Patience, Payload};
use crate::log;

/// CompleteMultipartUpload may take minutes on a large object.
const COMPLETE_WAIT: Duration = Duration::from_secs(15 * 60);
const META_SHA256: &str = "x-amz-meta-sha256";
const META_UPLOAD: &str = "x-amz-meta-artifact-upload";
/// On a placeholder (`Multipart::claim`): the marker its body carries.
pub(super) const META_PENDING: &str = "x-amz-meta-artifact-pending";
pub(super) const META_PART_SIZE: &str = "x-amz-meta-artifact-part-size";
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
        let (sum, payload_sha256) = digests(body)?;
        let req = Request::new("PUT", Some(&upload.locator)).header(META_SHA256, sum.clone());
        let mut req = self.with_condition(self.with_write_headers(req, upload), upload);
        req.payload_sha256 = &payload_sha256;
        let req = self.with_checksum(req, &sum);
        let mut reader = body.reader();
        let mut response = self.client.send(&req, reader.payload())?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            409 | 412 if self.is_ours(upload, META_SHA256, &sum)? => Ok(()),
            409 | 412 if attempt.damaged => Err(Error::Integrity {
                what: format!("upload of '{}'", upload.key),
                detail: "the store reported damaged bytes and kept an object under that key; yank it and push again".into(),
            }),
            _ => {
                let failure = client::failure(&mut response);
                attempt.damaged |= damaged_on_the_way(&failure);
                Err(self.put_error(failure, "PutObject", &req, &upload.key))
            }
        }
    }

    /// `req` with `If-None-Match: *` unless the upload may overwrite or the
    /// store refused conditional writes.
    fn with_condition<'r>(&self, req: Request<'r>, upload: &Upload) -> Request<'r> {
        if upload.overwrite || self.conditions_refused.load(Ordering::Relaxed) {
            return req;
        }
        req.header("if-none-match", "*")
    }

    /// `req` with what every new object is written with: its content type,
    /// and the configured encryption and storage class.
    fn with_write_headers<'r>(&self, req: Request<'r>, upload: &Upload) -> Request<'r> {
        let mut req = req.header("content-type", content_type(&upload.key));
        if let Some(mode) = upload.mode {
            req = req.header(META_MODE, format_mode(mode));
        }
        self.settings
            .write_headers()
            .into_iter()
            .fold(req, |req, (name, value)| req.header(name, value))
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

    /// Removes every placeholder of this run still standing, in parallel,
    /// each with the short limits of clean-up.
    pub(super) fn remove_claims(&self) {
        let claims: Vec<(String, String)> = match self.claims.lock() {
            Ok(mut claims) => claims.drain().collect(),
            Err(_) => return,
        };
        std::thread::scope(|scope| {
            for (locator, marker) in &claims {
                scope.spawn(move || self.remove_placeholder(locator, marker, Patience::Cleanup));
            }
        });
    }

    /// Deletes the object at `locator` if it is still the placeholder
    /// carrying `marker`: a HEAD, then a DELETE. Only a --force push can
    /// replace a placeholder in between (its bytes are then lost, as when
    /// the two pushes had run the other way round).
    fn remove_placeholder(&self, locator: &str, marker: &str, patience: Patience) -> Result<()> {
        if !self.is_marked(locator, META_PENDING, marker, patience)? {
            return Ok(());
        }
        let mut req = Request::new("DELETE", Some(locator));
        req.patience = patience;
        let mut response = self.client.send(&req, Payload::Empty)?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error(client::failure(&mut response), "DeleteObject", locator)),
        }
    }

    /// Forgets the placeholder at `locator`: completed over, or removed.
    fn unclaimed(&self, locator: &str) {
        if let Ok(mut claims) = self.claims.lock() {
            claims.remove(locator);
        }
    }

    /// One AbortMultipartUpload, with the short limits of clean-up: the
    /// request, and S3's failure if it was not a success.
    fn abort_request<'k>(
        &self,
        locator: &'k str,
        id: &str,
    ) -> Result<(Request<'k>, Option<client::S3Failure>)> {
        let mut req = Request::new("DELETE", Some(locator)).query("uploadId", id);
        req.patience = Patience::Cleanup;
        let mut response = self.client.send(&req, Payload::Empty)?;
        let failure = match response.status().as_u16() {
            200..=299 | 404 => None,
            _ => Some(client::failure(&mut response)),
        };
        Ok((req, failure))
    }

    /// Whether the stored object carries our marker: our own earlier
    /// attempt, not another writer's object.
    fn is_ours(&self, upload: &Upload, header: &str, value: &str) -> Result<bool> {
        self.is_marked(&upload.locator, header, value, Patience::Usual)
    }

    /// Whether the object at bucket key `locator` carries `header: value`.
    fn is_marked(
        &self,
        locator: &str,
        header: &str,
        value: &str,
        patience: Patience,
    ) -> Result<bool> {
        let mut req = Request::new("HEAD", Some(locator));
        req.patience = patience;
        let response = self.client.send(&req, Payload::Empty)?;
        let stored = response.headers().get(header).and_then(|v| v.to_str().ok());
        Ok(response.status().is_success() && stored == Some(value))
    }

    /// The error for a failed write `op` sent as `req`. A store that
    /// refuses a header we can do without gets the write again without it,
    /// for the rest of the run (a retryable error; the engine retries).
    fn put_error(
        &self,
        failure: client::S3Failure,
        op: &str,
        req: &Request<'_>,
        key: &str,
    ) -> Error {
        let carries = |name: &str| req.headers.iter().any(|(h, _)| *h == name);
        let refused = refusal(
            &failure,
            carries("x-amz-checksum-sha256") || carries("x-amz-checksum-algorithm"),
            carries("if-none-match") || carries("if-match"),
        );
        if let Some(refused) = refused {
            let (flag, warning) = match refused {
                Refused::Checksums => (
                    &self.checksums_refused,
                    "uploading without them; the store still checks the bytes against the signed payload hash",
                ),
                Refused::Condition => (
                    &self.conditions_refused,
                    "writing without it for the rest of this push, checked against the listing only: two pushes racing to one name can then both succeed",
                ),
            };
            if !flag.swap(true, Ordering::Relaxed) {
                log::info(&format!(
                    "Warning: the store refused {} ({}: {}); {warning}.",
                    refused.headers(),
                    failure.code,
                    failure.message
                ));
            }
            // Retried at once, without the header.
            return Error::Network {
                what: format!("upload of '{key}'"),
                detail: format!("the store does not take {}", refused.headers()),
            };
        }
        let writes_object = matches!(op, "PutObject" | "CreateMultipartUpload");
        let setting = refused_setting(
            &failure,
            carries("x-amz-server-side-encryption"),
            carries("x-amz-storage-class"),
        );
        if let (true, Some(setting)) = (writes_object, setting) {
            return self.setting_error(setting, &failure);
        }
        if damaged_on_the_way(&failure) {
            // Sent again; an integrity failure when the attempts run out.
            return Error::DamagedUpload {
                what: format!("upload of '{key}'"),
                detail: failure.code,
            };
        }
        match self.error(failure, op, key) {
            Error::NotFound(_) => Error::Protocol(format!(
                "S3 lost the upload of '{key}' (NoSuchUpload); push it again"
            )),
            Error::AlreadyExists { .. } => Error::AlreadyExists {
                side: Side::Remote,
                path: key.to_string(),
            },
            Error::PermissionDenied { what, hint }
                if self.settings.encryption.is_none()
                    && matches!(op, "PutObject" | "CreateMultipartUpload") =>
            {
                Error::PermissionDenied {
                    what,
                    hint: format!(
                        "{hint}; a bucket policy may require encryption: set ARTIFACT_S3_SSE (AES256, aws:kms or aws:kms:dsse)"
                    ),
                }
            }
            other => other,
        }
    }
}

impl S3 {
    /// The configuration error for a write refused for the encryption or
    /// the storage class it asked for.
    fn setting_error(&self, setting: Setting, failure: &client::S3Failure) -> Error {
        let said = if failure.message.is_empty() {
            format!("{} {}", failure.status, failure.code)
        } else {
            format!("{} {}: {}", failure.status, failure.code, failure.message)
        };
        let not_at_rest =
            "on Ceph RGW, AES256 is encryption at rest only where the gateway is configured for it";
        match setting {
            Setting::Encryption => {
                let algorithm = self.settings.encryption.as_ref().map_or("", |e| e.algorithm);
                let over_http = self.settings.endpoint.as_ref().is_some_and(|e| e.scheme == "http");
                let advice = if over_http {
                    format!("Ceph RGW takes it only over https: set an https:// ARTIFACT_S3_ENDPOINT, or unset ARTIFACT_S3_SSE ({not_at_rest})")
                } else {
                    format!("the store may not offer it: unset ARTIFACT_S3_SSE, or set one it offers ({not_at_rest})")
                };
                Error::Config(format!(
                    "the store refused the server-side encryption ARTIFACT_S3_SSE={algorithm} asks for ({said}); {advice}"
                ))
            }
            Setting::StorageClass => Error::Config(format!(
                "the store does not offer the storage class ARTIFACT_S3_STORAGE_CLASS={} ({said}): unset ARTIFACT_S3_STORAGE_CLASS for the store's default, or set a class it offers (Ceph RGW offers STANDARD unless its placement is configured with others)",
                self.settings.storage_class.unwrap_or_default()
            )),
        }
    }
}

impl Multipart for S3 {
    fn part_size(&self, size: u64) -> u64 {
        part_size_for(size, self.settings.part_size)
    }

    /// A PUT of the key with `If-None-Match: *`, which stores make atomic
    /// where they may not make CompleteMultipartUpload so (RGW 16 ignores
    /// the condition there). Its body is `placeholder_body`, its marker
    /// also in `x-amz-meta-artifact-pending`; the marker is kept across
    /// attempts, so a retry that meets its own earlier success (412) knows
    /// it by a HEAD.
    fn claim(&self, upload: &Upload, attempt: &Attempt) -> Result<Option<Claim>> {
        if upload.overwrite || self.conditions_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let marker = match self.claims.lock() {
            Ok(mut claims) => claims
                .entry(upload.locator.clone())
                .or_insert_with(unique_marker)
                .clone(),
            Err(_) => return Err(Error::Protocol("the list of placeholders was lost".into())),
        };
        let body = placeholder_body(&marker);
        let body_sha = hex(&checksum::sha256(body.as_bytes()));
        let req = Request::new("PUT", Some(&upload.locator))
            .header(META_PENDING, marker.clone())
            .header("if-none-match", "*");
        let mut req = self.with_write_headers(req, upload);
        req.payload_sha256 = &body_sha;
        let mut response = self.client.send(&req, Payload::Bytes(body.as_bytes()))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            let etag = response.headers().get("etag").and_then(|v| v.to_str().ok());
            let etag = etag.filter(|e| !e.is_empty()).map(str::to_string);
            return Ok(Some(Claim { marker, etag }));
        }
        if attempt.number > 1
            && matches!(status, 409 | 412)
            && self.is_ours(upload, META_PENDING, &marker)?
        {
            // Ours, its ETag unknown: completed without If-Match.
            return Ok(Some(Claim { marker, etag: None }));
        }
        self.unclaimed(&upload.locator);
        let failure = client::failure(&mut response);
        Err(self.put_error(failure, "PutObject", &req, &upload.key))
    }

    fn unclaim(&self, upload: &Upload, claim: &Claim) -> Result<()> {
        self.remove_placeholder(&upload.locator, &claim.marker, Patience::Cleanup)?;
        self.unclaimed(&upload.locator);
        Ok(())
    }

    fn create(&self, upload: &Upload, part_size: u64) -> Result<String> {
        let marker = unique_marker();
        let req = Request::new("POST", Some(&upload.locator))
            .query("uploads", "")
            .header(META_UPLOAD, marker.clone())
            .header(META_PART_SIZE, part_size.to_string());
        let mut req = self.with_write_headers(req, upload);
        if !self.checksums_refused.load(Ordering::Relaxed) {
            req = req.header("x-amz-checksum-algorithm", "SHA256");
        }
        let mut response = self.client.send(&req, Payload::Empty)?;
        if !response.status().is_success() {
            let failure = client::failure(&mut response);
            return Err(self.put_error(failure, "CreateMultipartUpload", &req, &upload.key));
        }
        let text = super::read_text(&mut response, "CreateMultipartUpload")?;
        let id = xml::upload_id(&text)?;
        if let Ok(mut open) = self.open_uploads.lock() {
            open.insert(id.clone(), (upload.locator.clone(), marker));
        }
        Ok(id)
    }

    fn put_part(&self, upload: &Upload, id: &str, number: u32, body: &Body<'_>) -> Result<Part> {
        let (sum, payload_sha256) = digests(body)?;
        let mut req = Request::new("PUT", Some(&upload.locator))
            .query("partNumber", number.to_string())
            .query("uploadId", id);
        req.payload_sha256 = &payload_sha256;
        let checked = !self.checksums_refused.load(Ordering::Relaxed);
        let req = self.with_checksum(req, &sum);
        let mut reader = body.reader();
        let mut response = self.client.send(&req, reader.payload())?;
        if !response.status().is_success() {
            let failure = client::failure(&mut response);
            return Err(self.put_error(failure, "UploadPart", &req, &upload.key));
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

    /// Over the claim's placeholder (`If-Match` on its ETag), where the
    /// upload has one; else as forced, or on a store without conditional
    /// writes. Never `If-None-Match`: the placeholder holds the key.
    fn complete(
        &self,
        upload: &Upload,
        id: &str,
        parts: &[Part],
        claim: Option<&Claim>,
        attempt: &Attempt,
    ) -> Result<()> {
        let body = xml::complete_body(parts);
        let body_sha = hex(&checksum::sha256(body.as_bytes()));
        let mut req = Request::new("POST", Some(&upload.locator))
            .query("uploadId", id)
            .header("content-type", "application/xml");
        let over = claim.and_then(|c| c.etag.clone());
        if let (Some(etag), false) = (over, self.conditions_refused.load(Ordering::Relaxed)) {
            req = req.header("if-match", etag);
        }
        req.payload_sha256 = &body_sha;
        req.patience = Patience::Long(COMPLETE_WAIT);
        let mut response = self.client.send(&req, Payload::Bytes(body.as_bytes()))?;
        let status = response.status().as_u16();
        if status == 200 {
            let text = super::read_text(&mut response, "CompleteMultipartUpload")?;
            if !xml::is_error_document(&text) {
                self.closed(id);
                self.unclaimed(&upload.locator);
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
            self.unclaimed(&upload.locator);
            return Ok(());
        }
        let failure = client::failure(&mut response);
        Err(self.put_error(failure, "CompleteMultipartUpload", &req, &upload.key))
    }

    fn abort(&self, upload: &Upload, id: &str) -> Result<()> {
        let (req, failure) = self.abort_request(&upload.locator, id)?;
        match failure {
            None => {
                self.closed(id);
                Ok(())
            }
            Some(failure) => {
                Err(self.put_error(failure, "AbortMultipartUpload", &req, &upload.key))
            }
        }
    }
}

/// A body's SHA-256 as it is sent: base64 for `x-amz-checksum-sha256`, and
/// hex for the signed payload hash (`x-amz-content-sha256`), which every
/// store verifies, also those that ignore the checksum header (Ceph RGW).
fn digests(body: &Body<'_>) -> Result<(String, String)> {
    let digest = body.sha256()?;
    Ok((checksum::base64(&digest), hex(&digest)))
}

/// Whether the store refused a body as damaged on the way: the checksum
/// header (`BadDigest`) or the signed payload hash did not match it.
fn damaged_on_the_way(failure: &client::S3Failure) -> bool {
    matches!(
        failure.code.as_str(),
        "BadDigest" | "XAmzContentSHA256Mismatch"
    )
}

/// A configured write setting a store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// ARTIFACT_S3_SSE (`x-amz-server-side-encryption`).
    Encryption,
    /// ARTIFACT_S3_STORAGE_CLASS (`x-amz-storage-class`).
    StorageClass,
}

/// The header a refusal names and its message, lowercase: what tells
/// refusals of one code apart.
fn failure_words(failure: &client::S3Failure) -> String {
    let header = failure.header.as_deref().unwrap_or_default();
    format!("{header} {}", failure.message).to_ascii_lowercase()
}

/// Which of the settings a write carried (`sse`, `class`) a 400 refuses:
/// by AWS's codes (`InvalidEncryptionAlgorithmError`,
/// `InvalidStorageClass`), by the setting its header or message names, or,
/// for a bare `InvalidRequest` or `InvalidArgument` (Ceph RGW 16 names
/// nothing: InvalidRequest to SSE over http, InvalidArgument to a storage
/// class it lacks), the one setting carried, else the one that code meant
/// on RGW.
fn refused_setting(failure: &client::S3Failure, sse: bool, class: bool) -> Option<Setting> {
    if failure.status != 400 {
        return None;
    }
    let named = failure_words(failure);
    let code = failure.code.as_str();
    let bad_request = matches!(code, "InvalidRequest" | "InvalidArgument");
    let names_sse = named.contains("encryption") || named.contains("kms");
    let names_class = named.contains("storage");
    if sse && (code == "InvalidEncryptionAlgorithmError" || bad_request && names_sse) {
        return Some(Setting::Encryption);
    }
    if class && (code == "InvalidStorageClass" || bad_request && names_class) {
        return Some(Setting::StorageClass);
    }
    if !bad_request || !named.trim().is_empty() {
        return None;
    }
    match (sse, class) {
        (true, false) => Some(Setting::Encryption),
        (false, true) => Some(Setting::StorageClass),
        (true, true) if code == "InvalidRequest" => Some(Setting::Encryption),
        (true, true) => Some(Setting::StorageClass),
        (false, false) => None,
    }
}

/// A header a store does not take, which a write can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The checksum headers (`x-amz-checksum-*`).
    Checksums,
    /// The conditional write (`If-None-Match: *`).
    Condition,
}

impl Refused {
    fn headers(self) -> &'static str {
        match self {
            Refused::Checksums => "the checksum headers (x-amz-checksum-sha256)",
            Refused::Condition => "conditional writes (If-None-Match, If-Match)",
        }
    }
}

/// Which header a failed write says the store does not take, of those the
/// request carried: told apart by the header the error names (`<Header>`,
/// `<ArgumentName>` or its message), not by the status (BadDigest, damaged
/// bytes, is no refusal). A NotImplemented that names no header at all is
/// put on the checksums if the request carried them, else on the
/// condition: a store refusing both loses one per answer.
fn refusal(failure: &client::S3Failure, checksums: bool, condition: bool) -> Option<Refused> {
    let refusing = matches!(
        (failure.status, failure.code.as_str()),
        (400 | 501, "NotImplemented")
            | (
                400,
                "InvalidArgument" | "InvalidRequest" | "UnsupportedHeader" | "BadRequest"
            )
    );
    if !refusing {
        return None;
    }
    let named = failure_words(failure);
    let names_condition = named.contains("if-none-match") || named.contains("if-match");
    let names_checksums = named.contains("checksum");
    if condition && names_condition {
        return Some(Refused::Condition);
    }
    if checksums && names_checksums {
        return Some(Refused::Checksums);
    }
    let anonymous = (failure.status == 501 || failure.code == "NotImplemented")
        && failure.header.is_none()
        && !names_condition
        && !names_checksums;
    match (anonymous, checksums, condition) {
        (true, true, _) => Some(Refused::Checksums),
        (true, false, true) => Some(Refused::Condition),
        _ => None,
    }
}

/// The `Content-Type` of an object, from its key's extension: the types a
/// person opens from a bucket in a browser, else `application/octet-stream`.
fn content_type(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    let extension = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "log" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// A value no other upload will store: time, process and a counter, in
/// hex of fixed widths (58 characters), so that a placeholder carrying one
/// has one size.
fn unique_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{nanos:032x}-{:08x}-{:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The body of a placeholder: says what it is to whoever opens it, and
/// names its marker; `PLACEHOLDER_SIZE` bytes, whose test checks.
fn placeholder_body(marker: &str) -> String {
    format!("artifact: a push of this name has not finished (or died); marker {marker}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::object::PLACEHOLDER_SIZE;

    #[test]
    fn placeholders_have_one_size() {
        for _ in 0..3 {
            let body = placeholder_body(&unique_marker());
            assert_eq!(body.len() as u64, PLACEHOLDER_SIZE, "{body:?}");
        }
    }

    #[test]
    fn content_types_from_extensions() {
        for (key, want) in [
            ("a/index.html", "text/html; charset=utf-8"),
            ("a/b/REPORT.HTM", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("x.json", "application/json"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("build.log", "text/plain; charset=utf-8"),
            ("junit.xml", "application/xml"),
            ("logo.svg", "image/svg+xml"),
            ("shot.png", "image/png"),
            ("shot.jpg", "image/jpeg"),
            ("shot.JPEG", "image/jpeg"),
            ("doc.pdf", "application/pdf"),
            ("dist.zip", "application/zip"),
            ("dist.tar.gz", "application/gzip"),
            ("dist.tar", "application/x-tar"),
            ("binary", "application/octet-stream"),
            ("a.b/noext", "application/octet-stream"),
            (".gitignore", "application/octet-stream"),
            ("x.exe", "application/octet-stream"),
        ] {
            assert_eq!(content_type(key), want, "{key}");
        }
    }

    fn failure(status: u16, code: &str, message: &str, header: Option<&str>) -> client::S3Failure {
        client::S3Failure {
            status,
            code: code.into(),
            message: message.into(),
            header: header.map(str::to_string),
            bucket_region: None,
        }
    }

    #[test]
    fn refusals_are_told_apart_by_the_header_they_name() {
        let not_implemented = "A header you provided implies functionality that is not implemented";
        let header = Some("If-None-Match");
        let condition = failure(501, "NotImplemented", not_implemented, header);
        assert_eq!(refusal(&condition, true, true), Some(Refused::Condition));
        assert_eq!(refusal(&condition, true, false), None);
        let message = "x-amz-checksum-sha256 is not supported";
        let checksum = failure(400, "InvalidArgument", message, None);
        assert_eq!(refusal(&checksum, true, true), Some(Refused::Checksums));
        assert_eq!(refusal(&checksum, false, true), None);
        let header = Some("x-amz-sdk-checksum-algorithm");
        let argument = failure(400, "InvalidArgument", "bad", header);
        assert_eq!(refusal(&argument, true, true), Some(Refused::Checksums));
        // Naming neither: a NotImplemented is put on what the request
        // carried, the checksums first; another 400 is no refusal.
        let bare = failure(501, "NotImplemented", not_implemented, None);
        assert_eq!(refusal(&bare, true, true), Some(Refused::Checksums));
        assert_eq!(refusal(&bare, false, true), Some(Refused::Condition));
        assert_eq!(refusal(&bare, false, false), None);
        let other = failure(501, "NotImplemented", "", Some("Transfer-Encoding"));
        assert_eq!(refusal(&other, true, true), None);
        let bare_400 = failure(400, "NotImplemented", not_implemented, None);
        assert_eq!(refusal(&bare_400, true, true), Some(Refused::Checksums));
        let bad_request = failure(400, "InvalidArgument", "something else", None);
        assert_eq!(refusal(&bad_request, true, true), None);
        let digest = failure(400, "BadDigest", "checksum mismatch", None);
        assert_eq!(refusal(&digest, true, true), None);
    }

    #[test]
    fn refused_settings_are_told_apart() {
        use Setting::*;
        // Ceph RGW 16 names nothing.
        let rgw_sse = failure(400, "InvalidRequest", "", None);
        let rgw_class = failure(400, "InvalidArgument", "", None);
        assert_eq!(refused_setting(&rgw_sse, true, false), Some(Encryption));
        assert_eq!(refused_setting(&rgw_sse, true, true), Some(Encryption));
        assert_eq!(refused_setting(&rgw_class, false, true), Some(StorageClass));
        assert_eq!(refused_setting(&rgw_class, true, true), Some(StorageClass));
        assert_eq!(refused_setting(&rgw_class, true, false), Some(Encryption));
        assert_eq!(refused_setting(&rgw_sse, false, false), None);
        // AWS's codes, and what a message names.
        let aws_class = failure(
            400,
            "InvalidStorageClass",
            "The storage class you specified is not valid",
            None,
        );
        assert_eq!(refused_setting(&aws_class, true, true), Some(StorageClass));
        let algorithm = failure(400, "InvalidEncryptionAlgorithmError", "bad", None);
        assert_eq!(refused_setting(&algorithm, true, true), Some(Encryption));
        let kms = failure(
            400,
            "InvalidArgument",
            "Server Side Encryption with AWS KMS managed key requires HTTP header",
            None,
        );
        assert_eq!(refused_setting(&kms, true, true), Some(Encryption));
        // Anything else is not put on the settings.
        let checksum = failure(
            400,
            "InvalidArgument",
            "x-amz-checksum-sha256 is not supported",
            None,
        );
        assert_eq!(refused_setting(&checksum, true, true), None);
        assert_eq!(
            refused_setting(&failure(403, "AccessDenied", "", None), true, true),
            None
        );
        assert_eq!(
            refused_setting(&failure(400, "BadDigest", "", None), true, true),
            None
        );
    }
}
