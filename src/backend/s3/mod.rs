//! Straight to an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, GCS's S3
//! interface), with no Hub in between.
//!
//! The seed's contract (`shared/seed/s3-backend.md`) over the same engine as
//! the Hub: keys are `[ARTIFACT_S3_PREFIX/]artifacts/…`; a push without
//! --force fails on any existing key before uploading (one LIST of the
//! destination prefix answers that for a whole tree) and writes with
//! `If-None-Match: *`, so two racing pushes cannot both win; pull and yank
//! take the object at the key, else everything under `key/`. Large files go
//! up in parallel multipart parts and come down in parallel ranges
//! (`upload`, `download`). rust-s3 signs and parses; ureq carries the bytes.

mod client;
mod download;
mod settings;
mod upload;

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use client::{Client, Request, S3Failure};
use settings::S3Settings;

use super::{Backend, Intent, RemoteObject, Source, Upload};
use crate::aws::credentials::{self, Chain};
use crate::aws::xml;
use crate::config::{Env, HttpSettings, Network, Settings};
use crate::error::{Error, Result, Side};
use crate::http::{Http, Payload};
use crate::{log, retry};

/// S3's limit on the length of a key, in UTF-8 bytes.
const MAX_KEY_BYTES: usize = 1024;

pub struct S3 {
    client: Client,
    settings: S3Settings,
    parallelism: usize,
    /// Where the credentials came from, for hints in errors.
    credential_source: String,
    /// Set when the store refused the checksum headers themselves: uploads
    /// go on without them for the rest of the run.
    checksums_refused: AtomicBool,
}

impl S3 {
    pub fn from_env(env: &Env, settings: &Settings) -> Result<S3> {
        let s3 = S3Settings::from_env(env, || credentials::profile_region(env))?;
        let network = settings.network.for_aws();
        let chain = Chain::resolve(env, &network)?;
        let credential_source = chain.source().to_string();
        log::debug(|| format!("S3 credentials from {credential_source}"));
        let http = Http::new(settings.http, settings.parallelism, &network)?;
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
            client: Client::new(http, Arc::new(chain), region, bucket_url),
            settings: s3,
            parallelism: settings.parallelism,
            credential_source,
            checksums_refused: AtomicBool::new(false),
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
    fn exists_exactly(&self, full: &str) -> Result<Option<(String, u64)>> {
        let mut first = None;
        self.list_prefix(full, Some(1), &mut |page| {
            first = page.into_iter().next();
            Ok(false)
        })?;
        Ok(first.filter(|(k, _)| k == full))
    }

    /// ListObjectsV2 of `prefix`, as (key, size), one page at a time to
    /// `page` until it answers `false` or the listing ends. `max_keys`
    /// sizes the pages (the server's default is 1000).
    fn list_prefix(
        &self,
        prefix: &str,
        max_keys: Option<u32>,
        page: &mut dyn FnMut(Vec<(String, u64)>) -> Result<bool>,
    ) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut req = Request::new("GET", None)
                .query("list-type", "2")
                .query("prefix", prefix);
            if let Some(max) = max_keys {
                req = req.query("max-keys", max.to_string());
            }
            if let Some(t) = &token {
                req = req.query("continuation-token", t.clone());
            }
            let text = retry::run(&self.client.http.settings, "ListObjectsV2", || {
                let mut response = self.client.send(&req, Payload::Empty)?;
                if response.status().as_u16() != 200 {
                    return Err(self.error(
                        client::failure(&mut response),
                        "ListObjectsV2",
                        prefix,
                    ));
                }
                read_text(&mut response, "ListObjectsV2")
            })?;
            let listed = xml::list_page(&text)?;
            if !page(listed.objects)? {
                return Ok(());
            }
            match listed.next {
                Some(next) => token = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Turns S3's answer into the error a user can act on.
    fn error(&self, failure: S3Failure, what: &str, key: &str) -> Error {
        let S3Failure {
            status,
            code,
            message,
            bucket_region,
        } = failure;
        let bucket = &self.settings.bucket;
        let region = self.client.region();
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
            _ => Error::Remote {
                what: format!("S3 {what} of '{key}'"),
                status,
                detail: format!("{code}: {message}"),
            },
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
    let found = retry::run(&quick, "bucket region lookup", || {
        let response = probe.call("HEAD", &url, &[], Payload::Empty)?;
        Ok(response
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    });
    Ok(match found {
        Ok(Some(region)) => {
            log::debug(|| format!("bucket '{}' is in region {region}", s3.bucket));
            region
        }
        _ => "us-east-1".to_string(),
    })
}

fn read_text(response: &mut ureq::http::Response<ureq::Body>, what: &str) -> Result<String> {
    response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
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
        if !force && keys.len() == 1 {
            if self.exists(&keys[0])? {
                return Err(Error::AlreadyExists {
                    side: Side::Remote,
                    path: keys[0].clone(),
                });
            }
        } else if !force {
            // One listing of the tree's common prefix, page by page,
            // against the keys about to be written.
            let prefix = self.full_key(common_prefix(keys));
            let ours: HashMap<&str, &str> = uploads
                .iter()
                .map(|u| (u.locator.as_str(), u.key.as_str()))
                .collect();
            let mut taken = None;
            self.list_prefix(&prefix, None, &mut |page| {
                taken = page
                    .iter()
                    .find_map(|(k, _)| ours.get(k.as_str()).map(|key| key.to_string()));
                Ok(taken.is_none())
            })?;
            if let Some(path) = taken {
                return Err(Error::AlreadyExists {
                    side: Side::Remote,
                    path,
                });
            }
        }
        Ok(uploads)
    }

    fn put(&self, upload: &Upload, source: Source<'_>, force: bool) -> Result<u64> {
        let uploader = upload::Uploader {
            s3: self,
            key: &upload.key,
            full_key: &upload.locator,
            force,
        };
        match source {
            Source::File(path, size) => uploader.file(path, size),
            Source::Stdin => uploader.stdin(),
        }
    }

    /// The object at `key` if there is one, else everything under `key/`;
    /// sibling keys that merely start with `key` are never listed.
    fn list(&self, key: &str, intent: Intent) -> Result<Vec<RemoteObject>> {
        let mut all = Vec::new();
        self.list_pages(key, intent, &mut |page| {
            all.extend(page);
            Ok(true)
        })?;
        Ok(all)
    }

    fn list_pages(
        &self,
        key: &str,
        _intent: Intent,
        page: &mut dyn FnMut(Vec<RemoteObject>) -> Result<bool>,
    ) -> Result<()> {
        let full = self.full_key(key);
        let to_object = |(k, size): (String, u64)| {
            self.artifact_key(&k).map(|artifact| RemoteObject {
                key: artifact.to_string(),
                size: Some(size),
                locator: k.clone(),
            })
        };
        if let Some(exact) = self.exists_exactly(&full)? {
            return page(to_object(exact).into_iter().collect()).map(drop);
        }
        self.list_prefix(&format!("{full}/"), None, &mut |listed| {
            page(listed.into_iter().filter_map(to_object).collect())
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.exists_exactly(&self.full_key(key))?.is_some())
    }

    fn get(&self, object: &RemoteObject, out: &mut File) -> Result<u64> {
        download::Downloader { s3: self, object }.to_file(out)
    }

    fn delete(&self, object: &RemoteObject) -> Result<()> {
        let req = Request::new("DELETE", Some(&object.locator));
        retry::run(
            &self.client.http.settings,
            &format!("DELETE '{}'", object.key),
            || {
                let mut response = self.client.send(&req, Payload::Empty)?;
                match response.status().as_u16() {
                    200..=299 | 404 => Ok(()),
                    _ => {
                        Err(self.error(client::failure(&mut response), "DeleteObject", &object.key))
                    }
                }
            },
        )
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
