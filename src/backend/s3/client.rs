//! One signed S3 request: build the URL, sign every header, send, map errors.
//!
//! `aws::sigv4` signs; the request goes over our one ureq agent
//! (`crate::http`), so timeouts, pooling and `-v` lines are shared with the
//! Hub backend. Every header we send but Content-Length is signed: AWS
//! refuses an unsigned `x-amz-*` header, while local test servers let it pass.
//! Every request signs its body's hex SHA-256 (`x-amz-content-sha256`), so
//! the store refuses a body changed on the way.

use std::sync::Arc;
use std::time::SystemTime;

use ureq::http::Response;
use ureq::Body;
use url::Url;

use crate::aws::credentials::Chain;
use crate::aws::sigv4::{self, encode, encode_path, SignedParts};
use crate::aws::xml;
use crate::aws::Credentials;
use crate::error::{Error, Result};
use crate::http::{self, Http, Patience, Payload};

/// SHA-256 of the empty string: the payload hash of a request with no body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An S3 answer that is not a success, as S3 describes it.
#[derive(Debug)]
pub struct S3Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// The header or argument the error names (`<Header>`, `<ArgumentName>`).
    pub header: Option<String>,
    /// `x-amz-bucket-region`, when S3 says where the bucket is.
    pub bucket_region: Option<String>,
}

pub struct Client {
    pub http: Http,
    credentials: Arc<Chain>,
    region: String,
    /// The bucket's URL, without a trailing slash.
    bucket_url: String,
    /// The bucket's host and the endpoint's, under virtual-host addressing
    /// on a custom endpoint.
    virtual_host: Option<(String, String)>,
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
    /// How long the request may take, when not the usual.
    pub patience: Patience,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, key: Option<&'a str>) -> Request<'a> {
        Request {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            payload_sha256: EMPTY_SHA256,
            patience: Patience::Usual,
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
            virtual_host: None,
        }
    }

    /// Tells transport failures apart from a bucket host name that does
    /// not resolve: `hosts` is the bucket's host and the endpoint's.
    pub fn with_virtual_host(mut self, hosts: Option<(String, String)>) -> Client {
        self.virtual_host = hosts;
        self
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
            url.push_str(&encode_path(key));
        } else if !url.ends_with('/') {
            url.push('/');
        }
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() && matches!(*k, "uploads" | "delete") {
                    (*k).to_string()
                } else {
                    format!("{}={}", encode(k), encode(v))
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
        let parsed = Url::parse(&url)
            .map_err(|e| Error::Protocol(format!("cannot build an S3 URL: {e}")))?;
        let credentials = self.credentials.current()?;
        let headers = sign(&parsed, req, &credentials, &self.region, SystemTime::now());
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.http
            .call_with(req.method, &url, &refs, payload, req.patience)
            .map_err(|e| match (&e, &self.virtual_host) {
                (Error::Network { .. }, Some((bucket, endpoint))) => {
                    unresolved_bucket_host(bucket, endpoint, resolves).unwrap_or(e)
                }
                _ => e,
            })
    }
}

/// The configuration error for a bucket host name that does not resolve
/// while the endpoint's does: virtual-host addressing on a store that
/// expects the bucket in the path.
fn unresolved_bucket_host(
    bucket: &str,
    endpoint: &str,
    resolves: impl Fn(&str) -> bool,
) -> Option<Error> {
    (!resolves(bucket) && resolves(endpoint)).then(|| {
        Error::Config(format!(
            "the bucket's host name '{bucket}' does not resolve: with ARTIFACT_S3_ENDPOINT the bucket is addressed by virtual host unless ARTIFACT_S3_FORCE_PATH_STYLE=true; set ARTIFACT_S3_FORCE_PATH_STYLE=true for a store that takes the bucket in the path (MinIO, Ceph and most self-hosted stores)"
        ))
    })
}

/// Whether `authority` (`host[:port]`) resolves to an address.
fn resolves(authority: &str) -> bool {
    use std::net::ToSocketAddrs;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (host, 0)
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some())
}

/// The headers to send: the request's own, `x-amz-content-sha256`, and the
/// signature's.
fn sign(
    url: &Url,
    req: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
) -> Vec<(String, String)> {
    let mut headers: Vec<(&str, &str)> =
        req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("x-amz-content-sha256", req.payload_sha256));
    let signed = sigv4::sign(
        &SignedParts {
            method: req.method,
            url,
            headers: &headers,
            payload_sha256: req.payload_sha256,
        },
        credentials,
        &sigv4::Scope {
            region,
            service: "s3",
            at,
        },
    );
    headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(signed)
        .collect()
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
    let (code, message) = xml::error_code_and_message(&text);
    let code = code.unwrap_or_else(|| default_code(status).to_string());
    let message = message.unwrap_or_else(|| http::summarize_error_body(&text));
    let header = xml::tag(&text, "Header").or_else(|| xml::tag(&text, "ArgumentName"));
    S3Failure {
        status,
        code,
        message,
        header,
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
        let at = crate::time::parse_iso8601("2013-05-24T00:00:00Z").unwrap();
        let req = Request::new("GET", Some("test.txt")).header("range", "bytes=0-9");
        let headers = sign(
            &Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap(),
            &req,
            &creds(),
            "us-east-1",
            at,
        );
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
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
            &Url::parse("http://127.0.0.1:9000/b/k").unwrap(),
            &req,
            &c,
            "us-east-1",
            SystemTime::now(),
        );
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(auth.contains(
            "SignedHeaders=host;if-none-match;x-amz-checksum-sha256;x-amz-content-sha256;x-amz-date;x-amz-meta-sha256;x-amz-security-token, "
        ), "{auth}");
    }

    #[test]
    fn an_unresolvable_bucket_host_asks_for_path_style() {
        let known = |host: &str| host == "minio:9000";
        let err = unresolved_bucket_host("b.minio:9000", "minio:9000", known).unwrap();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("'b.minio:9000' does not resolve"));
        assert!(err
            .to_string()
            .contains("set ARTIFACT_S3_FORCE_PATH_STYLE=true"));
        // Both resolve: a network failure as any other. Neither: the
        // endpoint itself is wrong.
        assert!(unresolved_bucket_host("b.minio:9000", "minio:9000", |_| true).is_none());
        assert!(unresolved_bucket_host("b.minio:9000", "minio:9000", |_| false).is_none());
        assert!(resolves("127.0.0.1:9000"));
    }

    #[test]
    fn urls_are_encoded_as_s3_canonicalizes_them() {
        let c = Client::new(
            Http::new(
                crate::http::HttpSettings {
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
