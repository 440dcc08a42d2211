//! One signed S3 request: build the URL, sign every header, send, map errors.
//!
//! rust-s3's `s3::signing` builds the canonical request, the string to sign
//! and the signing key; the request itself goes over our one ureq agent
//! (`crate::http`), so timeouts, pooling and `-v` lines are shared with the
//! Hub backend. Every header we send but Content-Length is signed: AWS
//! refuses an unsigned `x-amz-*` header, while local test servers let it pass.
//! Bodies are sent as `UNSIGNED-PAYLOAD`; their integrity rides on the signed
//! `x-amz-checksum-sha256` header instead.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use s3::signing;
use sha2::Sha256;
use time::OffsetDateTime;
use ureq::http::{HeaderMap, HeaderName, HeaderValue, Response};
use ureq::Body;

use crate::aws::credentials::Chain;
use crate::aws::Credentials;
use crate::error::{Error, Result};
use crate::http::{self, Http, Payload};

/// SHA-256 of the empty string: the payload hash of a request with no body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// An S3 answer that is not a success, as S3 describes it.
#[derive(Debug)]
pub struct S3Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `x-amz-bucket-region`, when S3 says where the bucket is.
    pub bucket_region: Option<String>,
}

pub struct Client {
    pub http: Http,
    credentials: Arc<Chain>,
    region: String,
    /// The bucket's URL, without a trailing slash.
    bucket_url: String,
}

/// A request about to be signed and sent.
#[derive(Clone)]
pub struct Request<'a> {
    pub method: &'static str,
    /// The object key, or `None` for the bucket itself.
    pub key: Option<&'a str>,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(&'static str, String)>,
    pub payload_sha256: &'a str,
    /// How long the server may take to answer, when longer than usual.
    pub wait: Option<Duration>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, key: Option<&'a str>) -> Request<'a> {
        Request {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            payload_sha256: EMPTY_SHA256,
            wait: None,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl Client {
    pub fn new(http: Http, credentials: Arc<Chain>, region: String, bucket_url: String) -> Client {
        Client {
            http,
            credentials,
            region,
            bucket_url,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The URL of `key` (or of the bucket) with `query`, encoded as S3
    /// canonicalizes it, so the URL sent and the URL signed are the same.
    fn url(&self, key: Option<&str>, query: &[(&'static str, String)]) -> String {
        let mut url = self.bucket_url.clone();
        if let Some(key) = key {
            url.push('/');
            url.push_str(&signing::uri_encode(key, false));
        } else if !url.ends_with('/') {
            url.push('/');
        }
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() && matches!(*k, "uploads" | "delete") {
                    (*k).to_string()
                } else {
                    format!(
                        "{}={}",
                        signing::uri_encode(k, true),
                        signing::uri_encode(v, true)
                    )
                }
            })
            .collect();
        pairs.sort();
        if !pairs.is_empty() {
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        url
    }

    /// Signs and sends one attempt. Retryable statuses come back as errors
    /// (see `crate::http`); other statuses come back as the response.
    pub fn send(&self, req: &Request<'_>, payload: Payload<'_>) -> Result<Response<Body>> {
        let url = self.url(req.key, &req.query);
        let credentials = self.credentials.current()?;
        let headers = sign(
            &url,
            req,
            &credentials,
            &self.region,
            OffsetDateTime::now_utc(),
        )?;
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.http
            .call_with_wait(req.method, &url, &refs, payload, req.wait)
    }
}

/// The headers to send: the request's own, plus the signature's.
fn sign(
    url: &str,
    req: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    now: OffsetDateTime,
) -> Result<Vec<(String, String)>> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::Protocol(format!("cannot build an S3 URL: {e}")))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(Error::Protocol("an S3 URL without a host".into())),
    };
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    headers.push(("x-amz-date".into(), amz_date));
    headers.push((
        "x-amz-content-sha256".into(),
        req.payload_sha256.to_string(),
    ));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    let mut map = HeaderMap::new();
    map.insert("host", header_value(&host)?);
    for (k, v) in &headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| Error::Protocol(format!("bad header name {k}: {e}")))?;
        map.insert(name, header_value(v)?);
    }
    let region_type = s3::Region::Custom {
        region: region.to_string(),
        endpoint: String::new(),
    };
    let signing_error =
        |e: s3::error::S3Error| Error::Protocol(format!("cannot sign the S3 request: {e}"));
    let canonical = signing::canonical_request(req.method, &parsed, &map, req.payload_sha256)
        .map_err(signing_error)?;
    let to_sign = signing::string_to_sign(&now, &region_type, &canonical).map_err(signing_error)?;
    let key = signing::signing_key(&now, &credentials.secret_access_key, &region_type, "s3")
        .map_err(signing_error)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| Error::Protocol(format!("cannot sign: {e}")))?;
    mac.update(to_sign.as_bytes());
    let signature = hex(&mac.finalize().into_bytes());
    let authorization = signing::authorization_header(
        &credentials.access_key_id,
        &now,
        &region_type,
        &signing::signed_header_string(&map),
        &signature,
    )
    .map_err(signing_error)?;
    headers.push(("authorization".into(), authorization));
    Ok(headers)
}

fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v).map_err(|_| Error::Protocol("a header value S3 cannot carry".into()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads S3's description of a failed response: `<Code>`, `<Message>`.
pub fn failure(response: &mut Response<Body>) -> S3Failure {
    let status = response.status().as_u16();
    let bucket_region = response
        .headers()
        .get("x-amz-bucket-region")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let (code, message) = crate::aws::xml::error_code_and_message(&text);
    let code = code.unwrap_or_else(|| default_code(status).to_string());
    let message = message.unwrap_or_else(|| http::summarize_error_body(&text));
    S3Failure {
        status,
        code,
        message,
        bucket_region,
    }
}

fn default_code(status: u16) -> &'static str {
    match status {
        301 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        501 => "NotImplemented",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            expires_at: None,
        }
    }

    /// AWS's documented example: GET /test.txt with a Range header
    /// (S3 API reference, "Signature Calculations for the Authorization
    /// Header: Transferring Payload in a Single Chunk").
    #[test]
    fn matches_the_aws_documented_get_object_example() {
        let now = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        let req = Request::new("GET", Some("test.txt")).header("range", "bytes=0-9");
        let headers = sign(
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &req,
            &creds(),
            "us-east-1",
            now,
        )
        .unwrap();
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn every_header_is_signed_and_the_token_is_sent() {
        let mut c = creds();
        c.session_token = Some("TOKEN".into());
        let req = Request::new("PUT", Some("k"))
            .header("if-none-match", "*")
            .header("x-amz-checksum-sha256", "abc=")
            .header("x-amz-meta-sha256", "abc=");
        let headers = sign(
            "http://127.0.0.1:9000/b/k",
            &req,
            &c,
            "us-east-1",
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(auth.contains(
            "SignedHeaders=host;if-none-match;x-amz-checksum-sha256;x-amz-content-sha256;x-amz-date;x-amz-meta-sha256;x-amz-security-token,"
        ), "{auth}");
    }

    #[test]
    fn urls_are_encoded_as_s3_canonicalizes_them() {
        let c = Client::new(
            Http::new(
                crate::config::HttpSettings {
                    connect_timeout: std::time::Duration::from_secs(1),
                    io_timeout: std::time::Duration::from_secs(1),
                    attempts: 1,
                    retry_delay: std::time::Duration::from_millis(1),
                },
                1,
                &Default::default(),
            )
            .unwrap(),
            Arc::new(
                Chain::resolve(
                    &crate::config::Env::from_pairs([
                        ("AWS_ACCESS_KEY_ID", "AKID"),
                        ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                    ]),
                    &Default::default(),
                )
                .unwrap(),
            ),
            "us-east-1".into(),
            "http://127.0.0.1:9000/b".into(),
        );
        assert_eq!(
            c.url(Some("a b/c+d#e?f%g/ü~.txt"), &[]),
            "http://127.0.0.1:9000/b/a%20b/c%2Bd%23e%3Ff%25g/%C3%BC~.txt"
        );
        assert_eq!(
            c.url(
                None,
                &[("prefix", "a b+/".into()), ("list-type", "2".into())]
            ),
            "http://127.0.0.1:9000/b/?list-type=2&prefix=a%20b%2B%2F"
        );
        assert_eq!(
            c.url(Some("k"), &[("uploads", String::new())]),
            "http://127.0.0.1:9000/b/k?uploads"
        );
    }
}
