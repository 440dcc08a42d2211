//! Semaphore's artifact Hub: signed URLs from the Hub, bytes to storage.
//!
//! The wire protocol is the Go CLI's: one `POST`
//! to `<organization URL>/api/v1/artifacts` with `authorization: <token>` and
//! `{"paths":[…],"type":N}` returns signed URLs; the bytes then go straight to
//! the storage behind them. Push gets a HEAD and a PUT URL per path (a PUT
//! only, when forced), pull one GET URL per object, yank one URL per object
//! to send DELETE to.

use serde_json::{json, Value};

use super::{
    signed_url, Attempt, Backend, Body, ByteRange, Download, Intent, Page, RemoteObject, Upload,
};
use crate::config::{Env, Settings};
use crate::error::{Error, Result};
use crate::http::{self, Http, Payload};
use crate::log;

/// The request types of the Hub's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Push = 0,
    PushForce = 1,
    Pull = 2,
    Yank = 3,
}

#[derive(Debug)]
pub(crate) struct SignedUrl {
    pub(crate) url: String,
    method: String,
}

pub struct Hub {
    http: Http,
    api_url: String,
    token: String,
}

impl Hub {
    pub fn from_env(env: &Env, settings: &Settings) -> Result<Hub> {
        let token = env.require("SEMAPHORE_ARTIFACT_TOKEN")?.to_string();
        let org_url = env.require("SEMAPHORE_ORGANIZATION_URL")?;
        let api_url = api_url(org_url)?;
        log::debug(|| format!("Hub client configured: {api_url}"));
        Ok(Hub {
            http: Http::new(settings.http, settings.connections(), &settings.network)?,
            api_url,
            token,
        })
    }

    /// Asks the Hub for signed URLs.
    fn signed_urls(&self, paths: &[String], kind: Kind) -> Result<Vec<SignedUrl>> {
        let mut body = json!({ "paths": paths });
        if kind != Kind::Push {
            // The Go client omits a zero type, and Hubs expect that.
            body["type"] = json!(kind as u8);
        }
        let body = body.to_string();
        log::debug(|| {
            format!(
                "asking the Hub for {kind:?} URLs for {} path(s)",
                paths.len()
            )
        });
        let headers = [
            ("authorization", self.token.as_str()),
            ("content-type", "application/json"),
        ];
        let mut response = match self.http.call(
            "POST",
            &self.api_url,
            &headers,
            Payload::Bytes(body.as_bytes()),
        ) {
            Ok(r) => r,
            Err(Error::Remote { detail, .. }) if says_missing(&detail) && is_read(kind) => {
                return Err(Error::NotFound(paths.join(", ")))
            }
            Err(e) => return Err(e),
        };
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::PermissionDenied {
                what: format!("the Hub refused the request ({status})"),
                hint: "check SEMAPHORE_ARTIFACT_TOKEN and SEMAPHORE_ORGANIZATION_URL".into(),
            });
        }
        if !(200..300).contains(&status) {
            let detail = http::error_detail(&mut response);
            if says_missing(&detail) && is_read(kind) {
                return Err(Error::NotFound(paths.join(", ")));
            }
            return Err(Error::remote(
                "the Hub's request for signed URLs",
                status,
                detail,
            ));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| Error::Network {
                what: "reading the Hub's answer".into(),
                detail: e.to_string(),
            })?;
        parse_answer(&text, kind, paths)
    }

    /// Sends one storage request and returns its status: a success, or
    /// 404 (an answer for HEAD and DELETE); any other is an error.
    fn storage_call(
        &self,
        method: &str,
        url: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut response = self.http.call(method, url, headers, payload)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) && status != 404 {
            let detail = http::error_detail(&mut response);
            return Err(storage_error(method, key, status, detail));
        }
        Ok(response)
    }
}

fn is_read(kind: Kind) -> bool {
    matches!(kind, Kind::Pull | Kind::Yank)
}

/// Whether a Hub error says the path is not there.
fn says_missing(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("not exist") || d.contains("not found") || d.contains("no such")
}

fn storage_error(method: &str, key: &str, status: u16, detail: String) -> Error {
    match status {
        401 | 403 => Error::PermissionDenied {
            what: format!("the storage refused {method} of '{key}' ({status})"),
            hint:
                "the signed URL may have expired or been damaged by a proxy; run the command again"
                    .into(),
        },
        _ => Error::remote(format!("{method} request for '{key}'"), status, detail),
    }
}

/// `SEMAPHORE_ORGANIZATION_URL` with its path replaced by `/api/v1/artifacts`.
fn api_url(org_url: &str) -> Result<String> {
    let shown = log::redact_configured_url(org_url);
    let invalid = || {
        Error::Config(format!(
            "SEMAPHORE_ORGANIZATION_URL='{shown}' is not a URL such as https://myorg.semaphoreci.com"
        ))
    };
    if org_url.contains('@') {
        return Err(Error::Config(format!(
            "SEMAPHORE_ORGANIZATION_URL='{shown}' carries a user or password, which the Hub does not take: give https://myorg.semaphoreci.com; the Hub is authorized by SEMAPHORE_ARTIFACT_TOKEN"
        )));
    }
    let (scheme, rest) = org_url.split_once("://").ok_or_else(invalid)?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(invalid());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(invalid());
    }
    Ok(format!("{scheme}://{authority}/api/v1/artifacts"))
}

/// Decodes `{"urls":[{"url":…,"method":…}],"error":""}`.
pub(crate) fn parse_answer(text: &str, kind: Kind, paths: &[String]) -> Result<Vec<SignedUrl>> {
    let bad = |why: &str| Error::Protocol(format!("the Hub's answer cannot be used: {why}"));
    let value: Value = serde_json::from_str(text).map_err(|_| bad("it is not JSON"))?;
    if let Some(err) = value
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        if is_read(kind) && says_missing(err) {
            return Err(Error::NotFound(paths.join(", ")));
        }
        return Err(Error::Protocol(format!(
            "the Hub refused the request: {err}"
        )));
    }
    let urls = match value.get("urls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(urls)) => urls,
        Some(_) => return Err(bad("'urls' is not a list")),
    };
    urls.iter()
        .map(|u| {
            let url = u
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a URL is missing"))?;
            let method = u
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            Ok(SignedUrl {
                url: url.to_string(),
                method,
            })
        })
        .collect()
}

/// The PUT URL for each path, in order, checking the count the Go CLI checks.
fn pair_push_urls(
    urls: Vec<SignedUrl>,
    keys: &[String],
    force: bool,
) -> Result<Vec<(Option<String>, String)>> {
    let per_key = if force { 1 } else { 2 };
    if urls.len() != keys.len() * per_key {
        return Err(Error::Protocol(format!(
            "bad number of signed URLs ({}) for {} push - should be {}",
            urls.len(),
            if force { "forceful" } else { "non-forceful" },
            keys.len() * per_key
        )));
    }
    for (i, u) in urls.iter().enumerate() {
        let want = if force || i % 2 == 1 { "PUT" } else { "HEAD" };
        if !u.method.is_empty() && u.method != want {
            return Err(Error::Protocol(format!(
                "the Hub's answer cannot be used: URL {} is for {} where {want} was expected",
                i + 1,
                u.method
            )));
        }
    }
    let mut it = urls.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    while let Some(first) = it.next() {
        if force {
            out.push((None, first.url));
        } else {
            let put = it.next().map(|u| u.url).unwrap_or_default();
            out.push((Some(first.url), put));
        }
    }
    Ok(out)
}

impl Backend for Hub {
    fn prepare_push(&self, keys: &[String], force: bool) -> Result<Vec<Upload>> {
        let kind = if force { Kind::PushForce } else { Kind::Push };
        let pairs = pair_push_urls(self.signed_urls(keys, kind)?, keys, force)?;
        Ok(keys
            .iter()
            .zip(pairs)
            .map(|(key, (head, put))| Upload {
                key: key.clone(),
                locator: put,
                probe: head,
                overwrite: force,
                mode: None,
            })
            .collect())
    }

    fn is_taken(&self, upload: &Upload) -> Result<bool> {
        let Some(head) = &upload.probe else {
            return Ok(false);
        };
        let response = self.storage_call("HEAD", head, &upload.key, &[], Payload::Empty)?;
        Ok(response.status().is_success())
    }

    fn put(&self, upload: &Upload, body: &Body<'_>, _attempt: &mut Attempt) -> Result<()> {
        let mut reader = body.reader();
        let response =
            self.storage_call("PUT", &upload.locator, &upload.key, &[], reader.payload())?;
        if response.status().as_u16() == 404 {
            return Err(storage_error("PUT", &upload.key, 404, String::new()));
        }
        log::debug(|| format!("stored '{}' ({})", upload.key, response.status().as_u16()));
        Ok(())
    }

    fn list_page(&self, key: &str, intent: Intent, _token: Option<&str>) -> Result<Page> {
        let kind = match intent {
            Intent::Pull | Intent::Probe => Kind::Pull,
            Intent::Yank => Kind::Yank,
        };
        let urls = match self.signed_urls(&[key.to_string()], kind) {
            // Such a Hub answers a pull of a name with nothing stored with a
            // 500: a push need not wait for its retries to learn that (a
            // throttled or unavailable Hub, 502 to 504, is asked again).
            Err(Error::Remote { status: 500, .. }) if intent == Intent::Probe => {
                let status = 500;
                log::debug(|| {
                    format!(
                        "the Hub answered {status} to a pull of '{key}': taken as nothing stored"
                    )
                });
                return Err(Error::NotFound(key.to_string()));
            }
            other => other?,
        };
        let objects = urls
            .into_iter()
            .map(|u| {
                let object_key = match intent {
                    Intent::Pull | Intent::Probe => signed_url::object_key(&u.url)?,
                    // Yank needs no file names; keep what can be read for -v.
                    Intent::Yank => {
                        signed_url::object_key(&u.url).unwrap_or_else(|_| key.to_string())
                    }
                };
                Ok(RemoteObject {
                    key: object_key,
                    size: None,
                    locator: u.url,
                    etag: None,
                    modified: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Page {
            objects,
            next: None,
        })
    }

    fn get(&self, object: &RemoteObject, range: ByteRange<'_>) -> Result<Download<'_>> {
        let range_header = range.header();
        let mut headers = Vec::new();
        if let Some(value) = &range_header {
            headers.push(("range", value.as_str()));
        }
        if let Some(etag) = range.if_match {
            headers.push(("if-match", etag));
        }
        let response = self.storage_call(
            "GET",
            &object.locator,
            &object.key,
            &headers,
            Payload::Empty,
        )?;
        if response.status().as_u16() == 404 {
            return Err(Error::NotFound(object.key.clone()));
        }
        let md5 = gcs_md5(response.headers());
        let mut download = Download::from_http(response)?;
        download.md5 = md5;
        Ok(download)
    }

    fn delete(&self, object: &RemoteObject) -> Result<()> {
        self.storage_call("DELETE", &object.locator, &object.key, &[], Payload::Empty)?;
        Ok(())
    }
}

/// The MD5 that GCS states for an object (`x-goog-hash: crc32c=…,md5=…`).
/// What a download is verified against; an S3 ETag is not always an MD5
/// (SSE-KMS, multipart), so it only checks what a killed run left.
fn gcs_md5(headers: &ureq::http::HeaderMap) -> Option<String> {
    headers
        .get_all("x-goog-hash")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| part.trim().strip_prefix("md5=").map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<SignedUrl> {
        (0..n)
            .map(|i| SignedUrl {
                url: format!("http://127.0.0.1/{i}"),
                method: if i % 2 == 0 {
                    "HEAD".into()
                } else {
                    "PUT".into()
                },
            })
            .collect()
    }

    #[test]
    fn api_url_replaces_the_path() {
        assert_eq!(
            api_url("https://org.semaphoreci.com").unwrap(),
            "https://org.semaphoreci.com/api/v1/artifacts"
        );
        assert_eq!(
            api_url("https://org.semaphoreci.com/projects/x?y=1").unwrap(),
            "https://org.semaphoreci.com/api/v1/artifacts"
        );
        assert_eq!(
            api_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/api/v1/artifacts"
        );
        for with_password in [
            "https://u:secret@org",
            "https://u:sec/ret@org",
            "u:secret@org",
        ] {
            let err = api_url(with_password).unwrap_err().to_string();
            assert!(!err.contains("secret") && !err.contains("sec/"), "{err}");
            assert!(err.contains("SEMAPHORE_ARTIFACT_TOKEN"), "{err}");
        }
        for bad in ["org.semaphoreci.com", "ftp://x", "https://"] {
            let err = api_url(bad).unwrap_err();
            assert_eq!(err.exit_code(), 3, "{bad}");
            assert!(err.to_string().contains("SEMAPHORE_ORGANIZATION_URL"));
        }
    }

    #[test]
    fn push_urls_pair_by_position() {
        let keys = vec!["a".to_string(), "b".to_string()];
        let pairs = pair_push_urls(urls(4), &keys, false).unwrap();
        assert_eq!(
            pairs[0],
            (
                Some("http://127.0.0.1/0".into()),
                "http://127.0.0.1/1".into()
            )
        );
        assert_eq!(
            pairs[1],
            (
                Some("http://127.0.0.1/2".into()),
                "http://127.0.0.1/3".into()
            )
        );
        let mut puts = urls(2);
        puts[0].method = "PUT".into();
        let forced = pair_push_urls(puts, &keys, true).unwrap();
        assert_eq!(forced[1], (None, "http://127.0.0.1/1".into()));
        let swapped: Vec<SignedUrl> = urls(4).into_iter().rev().collect();
        assert!(pair_push_urls(swapped, &keys, false)
            .unwrap_err()
            .to_string()
            .contains("where HEAD was expected"));
        let err = pair_push_urls(urls(3), &keys, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad number of signed URLs (3) for non-forceful push - should be 4"),
            "{err}"
        );
        assert!(pair_push_urls(urls(4), &keys, true).is_err());
    }

    #[test]
    fn answers_and_hub_errors() {
        let paths = vec!["artifacts/jobs/1/x".to_string()];
        let ok = parse_answer(
            r#"{"urls":[{"url":"http://h/k","method":"get"}],"error":""}"#,
            Kind::Pull,
            &paths,
        )
        .unwrap();
        assert_eq!(
            (ok[0].url.as_str(), ok[0].method.as_str()),
            ("http://h/k", "GET")
        );
        assert!(parse_answer(r#"{"urls":null}"#, Kind::Pull, &paths)
            .unwrap()
            .is_empty());
        let missing =
            parse_answer(r#"{"error":"path does not exist"}"#, Kind::Pull, &paths).unwrap_err();
        assert_eq!(missing.exit_code(), 4);
        let refused =
            parse_answer(r#"{"error":"quota exceeded"}"#, Kind::Push, &paths).unwrap_err();
        assert!(refused.to_string().contains("quota exceeded"));
        assert!(parse_answer("<html>", Kind::Pull, &paths).is_err());
    }
}

/// Generated Hub answers: random bytes and damaged JSON.
#[cfg(test)]
mod hostile {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    use super::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(vec![Kind::Push, Kind::PushForce, Kind::Pull, Kind::Yank])
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(14),
            ..ProptestConfig::with_cases(256)
        })]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), kind in kind()) {
            let _ = parse_answer(&String::from_utf8_lossy(&bytes), kind, &["p".to_string()]);
        }

        /// JSON of any shape: an answer or an error, never a panic; every
        /// URL returned is one the answer held.
        #[test]
        fn any_json_never_panics(value in any_json(), kind in kind()) {
            crate::fuzzing::hub_answer_promises(&value.to_string(), kind);
        }
    }

    /// Any JSON value, biased toward the answer's own field names.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            Just(Value::String(String::new())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["urls", "url", "method", "error", "x"]),
                        inner
                    ),
                    0..5
                )
                .prop_map(|fields| {
                    Value::Object(
                        fields
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }
}
