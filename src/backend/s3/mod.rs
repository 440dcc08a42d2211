//! Straight to an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, GCS's S3
//! interface), with no Hub in between.
//!
//! Keys are `[ARTIFACT_S3_PREFIX/]artifacts/…`; a push without
//! --force fails on any existing key before uploading (one LIST of the
//! destination prefix answers that for a whole tree) and writes with
//! `If-None-Match: *`, so two racing pushes cannot both win; a listing of a
//! key gives the object at the key and everything under `key/` (the engine
//! refuses a pull or yank of a name that is both). Large files go
//! up in multipart parts and come down in ranges (`upload`, `download`),
//! which the transfer engine schedules. Yank deletes up to 1,000 keys a
//! request (DeleteObjects), or one at a time where the store has no
//! DeleteObjects (GCS). `aws::sigv4` signs, rust-s3's
//! types parse the list and upload answers, ureq carries the bytes.

mod client;
mod download;
mod settings;
mod upload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use client::{Client, Request, S3Failure};
use settings::S3Settings;

use super::{
    Attempt, Backend, Body, ByteRange, Download, Intent, Multipart, Page, RemoteObject, Stated,
    Upload,
};
use crate::aws::credentials::{self, Chain};
use crate::aws::is_region;
use crate::aws::xml;
use crate::checksum::hex;
use crate::config::{Env, Settings};
use crate::error::{Error, Result, Side};
use crate::http::{Http, Payload};
use crate::http::{HttpSettings, Network};
use crate::{checksum, log, retry};

/// S3's limit on the length of a key, in UTF-8 bytes.
const MAX_KEY_BYTES: usize = 1024;
/// S3's limit on the keys of one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

pub struct S3 {
    client: Client,
    settings: S3Settings,
    /// Where the credentials came from, for hints in errors.
    credential_source: String,
    /// Set when the store refused the checksum headers themselves: uploads
    /// go on without them for the rest of the run.
    checksums_refused: AtomicBool,
    /// Set when the store refused conditional writes (`If-None-Match`):
    /// pushes rely on the listing check alone for the rest of the run.
    conditions_refused: AtomicBool,
    /// Set when the store answered DeleteObjects NotImplemented.
    batch_delete_refused: AtomicBool,
    /// The multipart uploads of this run not yet completed or aborted, by
    /// upload id: (bucket key, the marker stored with the object).
    open_uploads: Mutex<HashMap<String, (String, String)>>,
    /// The placeholders of this run's uploads not yet completed or
    /// removed, by bucket key: the marker each carries.
    claims: Mutex<HashMap<String, String>>,
}

impl S3 {
    pub fn from_env(env: &Env, settings: &Settings) -> Result<S3> {
        let s3 = S3Settings::from_env(env, || credentials::profile_region(env))?;
        let network = settings.network.for_aws();
        let chain = Chain::resolve(env, &network)?;
        let credential_source = chain.source().to_string();
        log::debug(|| format!("S3 credentials from {credential_source}"));
        let http = Http::new(settings.http, settings.connections(), &network)?;
        let region = match &s3.region {
            Some(r) => r.clone(),
            None => detect_region(&s3, settings.http, &network)?,
        };
        let bucket_url = s3.bucket_url(&region);
        log::debug(|| {
            format!(
                "S3 bucket '{}' at {bucket_url} (region {region})",
                s3.bucket
            )
        });
        Ok(S3 {
            client: Client::new(http, Arc::new(chain), region, bucket_url)
                .with_virtual_host(s3.virtual_host_on_endpoint()),
            settings: s3,
            credential_source,
            checksums_refused: AtomicBool::new(false),
            conditions_refused: AtomicBool::new(false),
            batch_delete_refused: AtomicBool::new(false),
            open_uploads: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
        })
    }

    /// The bucket key for an artifact key.
    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.prefix)
    }

    /// Whether an object is stored at exactly the bucket key `full`: one
    /// LIST of a single key, as the exact key sorts before every longer
    /// key that starts with it (a HEAD would need s3:GetObject, and 403s
    /// for missing keys without s3:ListBucket).
    fn exists_exactly(&self, full: &str) -> Result<Option<xml::Listed>> {
        let page = self.list_prefix(full, Some(1), None)?;
        Ok(page.objects.into_iter().next().filter(|o| o.key == full))
    }

    /// One ListObjectsV2 page of `prefix`, from `token`.
    /// `max_keys` sizes the page (the server's default is 1000).
    fn list_prefix(
        &self,
        prefix: &str,
        max_keys: Option<u32>,
        token: Option<&str>,
    ) -> Result<xml::ListPage> {
        let mut req = Request::new("GET", None)
            .query("list-type", "2")
            .query("prefix", prefix);
        if let Some(max) = max_keys {
            req = req.query("max-keys", max.to_string());
        }
        if let Some(t) = token {
            req = req.query("continuation-token", t);
        }
        let mut response = self.client.send(&req, Payload::Empty)?;
        if response.status().as_u16() != 200 {
            return Err(self.error(client::failure(&mut response), "ListObjectsV2", prefix));
        }
        xml::list_page(&read_text(&mut response, "ListObjectsV2")?)
    }

    /// Turns S3's answer into the error a user can act on.
    fn error(&self, failure: S3Failure, what: &str, key: &str) -> Error {
        let S3Failure {
            status,
            code,
            message,
            bucket_region,
            ..
        } = failure;
        let bucket = &self.settings.bucket;
        let region = self.client.region();
        let bucket_region = checked_answer(bucket_region, &self.settings);
        match (status, code.as_str()) {
            // S3 gave up waiting for our bytes: worth another attempt.
            (_, "RequestTimeout") => Error::Network {
                what: format!("S3 {what} of '{key}'"),
                detail: format!("{code}: {message}"),
            },
            (301, _) | (400, "AuthorizationHeaderMalformed") | (400, "IllegalLocationConstraintException") => {
                let hint = match bucket_region {
                    Some(r) if r != region => format!("it is in region '{r}': set ARTIFACT_S3_REGION={r}"),
                    _ => "set ARTIFACT_S3_REGION to the bucket's region".to_string(),
                };
                Error::Config(format!("bucket '{bucket}' is not in region '{region}': {hint}"))
            }
            (404, "NoSuchBucket") => Error::Config(format!(
                "bucket '{bucket}' does not exist at {}: check ARTIFACT_S3_BUCKET, ARTIFACT_S3_ENDPOINT and the region",
                self.settings.region_probe_url()
            )),
            (404, _) => Error::NotFound(key.to_string()),
            (401 | 403, _) => Error::PermissionDenied {
                what: format!("S3 refused {what} of '{key}' ({code}: {message})"),
                hint: format!(
                    "check the credentials (found in: {}) and that the bucket policy allows s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on '{bucket}'",
                    self.credential_source
                ),
            },
            (412, _) => Error::AlreadyExists {
                side: Side::Remote,
                path: key.to_string(),
            },
            _ => Error::remote(format!("S3 {what} of '{key}'"), status, format!("{code}: {message}")),
        }
    }

    /// The error for a push without --force onto the stored `listed`, at
    /// artifact key `key`: `Pending` when it is the placeholder of a push
    /// that has not finished (a HEAD tells, for an object of that size).
    fn taken(&self, key: String, listed: xml::Listed) -> Error {
        let object = RemoteObject {
            key,
            size: Some(listed.size),
            locator: listed.key,
            etag: listed.etag,
            modified: listed.modified,
        };
        if object.may_be_placeholder() && self.head_object(&object).is_ok_and(|s| s.pending) {
            return Error::Pending(object.key);
        }
        Error::AlreadyExists {
            side: Side::Remote,
            path: object.key,
        }
    }

    /// The artifact key of a bucket key under our prefix.
    fn artifact_key<'k>(&self, full: &'k str) -> Option<&'k str> {
        full.strip_prefix(self.settings.prefix.as_str())
    }
}

/// Asks the bucket which region it is in: an unsigned HEAD that AWS (and
/// MinIO) answer with `x-amz-bucket-region`, even when it is a 301 or 403.
/// Falls back to us-east-1.
fn detect_region(s3: &S3Settings, http: HttpSettings, network: &Network) -> Result<String> {
    let quick = HttpSettings {
        attempts: 2,
        ..http
    };
    let probe = Http::new(quick, 1, network)?;
    let url = s3.region_probe_url();
    let found = retry::call(&quick.retry_policy(), "bucket region lookup", |_| {
        let response = probe.call("HEAD", &url, &[], Payload::Empty)?;
        Ok(response
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    });
    Ok(match checked_answer(found.ok().flatten(), s3) {
        Some(region) => {
            log::debug(|| format!("bucket '{}' is in region {region}", s3.bucket));
            region
        }
        None => "us-east-1".to_string(),
    })
}

/// A region the store named (`x-amz-bucket-region`), if it is one that may
/// be used (`aws::is_region`): a store's answer must not choose the host
/// that signed requests go to. One that fails is ignored, as if the store
/// had named none, and `-v` says so.
fn checked_answer(named: Option<String>, s3: &S3Settings) -> Option<String> {
    let region = named?;
    if is_region(&region, s3.endpoint.is_none()) {
        return Some(region);
    }
    log::debug(|| {
        format!(
            "ignoring the region '{}' the store named for bucket '{}': it is not a region name",
            region.escape_debug(),
            s3.bucket
        )
    });
    None
}

/// The most of an S3 XML answer that is read: a page of 1,000 keys of
/// 1,024 bytes, every byte escaped, is under 6 MiB, so memory stays within
/// its target whatever a store sends.
const MAX_XML_ANSWER: u64 = 16 * 1024 * 1024;

fn read_text(response: &mut ureq::http::Response<ureq::Body>, what: &str) -> Result<String> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_XML_ANSWER)
        .read_to_string()
        .map_err(|e| Error::Network {
            what: format!("reading the answer to {what}"),
            detail: e.to_string(),
        })
}

/// The longest common prefix of the keys, for one LIST that covers them.
fn common_prefix(keys: &[String]) -> &str {
    let Some(first) = keys.first() else { return "" };
    let mut len = first.len();
    for k in &keys[1..] {
        len = first
            .bytes()
            .zip(k.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    &first[..len]
}

impl Backend for S3 {
    fn prepare_push(&self, keys: &[String], force: bool) -> Result<Vec<Upload>> {
        let uploads: Vec<Upload> = keys
            .iter()
            .map(|k| Upload {
                key: k.clone(),
                locator: self.full_key(k),
                probe: None,
                overwrite: force,
                mode: None,
            })
            .collect();
        if let Some(long) = uploads.iter().find(|u| u.locator.len() > MAX_KEY_BYTES) {
            return Err(Error::local_io(
                "push",
                std::path::Path::new(&long.key),
                std::io::Error::other(format!(
                    "its object key would be {} bytes, and S3 keys are at most {MAX_KEY_BYTES}; use a shorter path or --destination",
                    long.locator.len()
                )),
            ));
        }
        if force {
            return Ok(uploads);
        }
        let taken = if let [upload] = &uploads[..] {
            self.exists_exactly(&upload.locator)?
                .map(|listed| (upload.key.clone(), listed))
        } else {
            // One listing of the tree's common prefix, page by page,
            // against the keys about to be written.
            let prefix = self.full_key(common_prefix(keys));
            let ours: HashMap<&str, &str> = uploads
                .iter()
                .map(|u| (u.locator.as_str(), u.key.as_str()))
                .collect();
            let mut token = None;
            loop {
                let page = self.list_prefix(&prefix, None, token.as_deref())?;
                let found = page.objects.into_iter().find_map(|o| {
                    let key = ours.get(o.key.as_str())?.to_string();
                    Some((key, o))
                });
                match (found, page.next) {
                    (Some(found), _) => break Some(found),
                    (None, Some(next)) => token = Some(next),
                    (None, None) => break None,
                }
            }
        };
        match taken {
            Some((key, listed)) => Err(self.taken(key, listed)),
            None => Ok(uploads),
        }
    }

    fn put(&self, upload: &Upload, body: &Body<'_>, attempt: &mut Attempt) -> Result<()> {
        self.put_object(upload, body, attempt)
    }

    fn multipart(&self) -> Option<&dyn Multipart> {
        Some(self)
    }

    fn range_size(&self) -> Option<u64> {
        Some(self.settings.part_size)
    }

    /// The object at `key` and everything under `key/`; sibling keys that
    /// merely start with `key` are never listed. The first page asks for
    /// the exact key and for the first page under `key/` at the same time:
    /// one round trip, not two, before a pull or a yank of a directory can
    /// start. The exact key comes first, so that a name that is both a file
    /// and a tree shows on the first page.
    fn list_page(&self, key: &str, _intent: Intent, token: Option<&str>) -> Result<Page> {
        let full = self.full_key(key);
        let to_object = |listed: xml::Listed| {
            self.artifact_key(&listed.key).map(|artifact| RemoteObject {
                key: artifact.to_string(),
                size: Some(listed.size),
                locator: listed.key.clone(),
                etag: listed.etag,
                modified: listed.modified,
            })
        };
        let under = format!("{full}/");
        let listed = if token.is_none() {
            let (exact, listed) = std::thread::scope(|scope| {
                let probe =
                    std::thread::Builder::new().spawn_scoped(scope, || self.exists_exactly(&full));
                let listed = self.list_prefix(&under, None, None);
                // Without a thread (the system refused one), ask in turn.
                let exact = match probe.map(|probe| probe.join()) {
                    Ok(Ok(exact)) => exact,
                    _ => self.exists_exactly(&full),
                };
                (exact, listed)
            });
            let exact = exact?;
            let mut listed = listed?;
            listed.objects.splice(0..0, exact);
            listed
        } else {
            self.list_prefix(&under, None, token)?
        };
        Ok(Page {
            objects: listed.objects.into_iter().filter_map(to_object).collect(),
            next: listed.next,
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.exists_exactly(&self.full_key(key))?.is_some())
    }

    fn stat(&self, object: &RemoteObject) -> Result<Stated> {
        self.head_object(object)
    }

    fn get(&self, object: &RemoteObject, range: ByteRange<'_>) -> Result<Download<'_>> {
        self.get_object(object, range)
    }

    fn cancel(&self) {
        std::thread::scope(|scope| {
            scope.spawn(|| self.remove_claims());
            self.abort_open_uploads();
        });
    }

    fn delete(&self, object: &RemoteObject) -> Result<()> {
        let req = Request::new("DELETE", Some(&object.locator));
        let mut response = self.client.send(&req, Payload::Empty)?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error(client::failure(&mut response), "DeleteObject", &object.key)),
        }
    }

    fn delete_batch(&self) -> usize {
        if self.batch_delete_refused.load(Ordering::Relaxed) {
            1
        } else {
            MAX_DELETE_KEYS
        }
    }

    /// One DeleteObjects request, with the Content-MD5 S3 requires of it;
    /// keys XML cannot carry go one DELETE at a time instead.
    fn delete_many(&self, objects: &[RemoteObject]) -> Result<Option<Vec<(String, Error)>>> {
        let keys: Vec<&str> = objects.iter().map(|o| o.locator.as_str()).collect();
        if !keys.iter().all(|k| xml::carries(k)) {
            return Ok(None);
        }
        let body = xml::delete_body(&keys);
        let body_sha = hex(&checksum::sha256(body.as_bytes()));
        let mut req = Request::new("POST", None)
            .query("delete", "")
            .header("content-type", "application/xml")
            .header(
                "content-md5",
                checksum::base64(&md5::compute(body.as_bytes()).0),
            );
        req.payload_sha256 = &body_sha;
        let mut response = self.client.send(&req, Payload::Bytes(body.as_bytes()))?;
        let what = format!("{} objects", objects.len());
        if response.status().as_u16() != 200 {
            let failure = client::failure(&mut response);
            if failure.status == 501 || failure.code == "NotImplemented" {
                self.batch_delete_refused.store(true, Ordering::Relaxed);
                log::debug(|| {
                    format!(
                        "the store has no DeleteObjects ({}: {}); deleting one object at a time",
                        failure.code, failure.message
                    )
                });
                return Ok(None);
            }
            return Err(self.error(failure, "DeleteObjects", &what));
        }
        let text = read_text(&mut response, "DeleteObjects")?;
        if xml::is_error_document(&text) {
            let (code, message) = xml::error_code_and_message(&text);
            return Err(Error::remote(
                format!("S3 DeleteObjects of {what}"),
                500,
                format!(
                    "{}: {}",
                    code.unwrap_or_default(),
                    message.unwrap_or_default()
                ),
            ));
        }
        let by_locator: HashMap<&str, &str> = objects
            .iter()
            .map(|o| (o.locator.as_str(), o.key.as_str()))
            .collect();
        Ok(Some(
            xml::delete_errors(&text)
                .into_iter()
                // Already gone counts as deleted, as for a single DELETE.
                .filter(|e| e.code != "NoSuchKey")
                .map(|e| {
                    let key = by_locator
                        .get(e.key.as_str())
                        .map_or(e.key.clone(), |k| k.to_string());
                    let status = if e.code == "AccessDenied" { 403 } else { 500 };
                    let failure = S3Failure {
                        status,
                        code: e.code,
                        message: e.message,
                        header: None,
                        bucket_region: None,
                    };
                    let error = self.error(failure, "DeleteObjects", &key);
                    (key, error)
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(common_prefix(&keys(&["a/b/c"])), "a/b/c");
        assert_eq!(common_prefix(&keys(&["a/b/c", "a/b/d", "a/bx"])), "a/b");
        assert_eq!(common_prefix(&keys(&["x", "y"])), "");
        assert_eq!(common_prefix(&keys(&["é1", "é2"])), "é");
        assert_eq!(common_prefix(&[]), "");
    }
}
