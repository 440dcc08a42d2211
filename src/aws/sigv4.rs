//! AWS Signature Version 4: the one signer for every request we sign, S3's
//! (`backend::s3::client`) and STS AssumeRole (`credentials::sts`).
//!
//! The plain algorithm from the AWS documentation, on `hmac` and `sha2`,
//! checked against two of AWS's published examples: S3's GetObject (in
//! `backend::s3::client`) and IAM's ListUsers (here). rust-s3's
//! `s3::signing` could not be the one signer: its scope is always `s3`.
//! Services differ in one rule, which the service name decides: S3 signs
//! the path as sent (encoded once), every other service signs it encoded
//! again. Nothing here is logged: signatures and keys never leave this file
//! except as request headers.

use std::time::SystemTime;

use crate::checksum::hex;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use url::Url;

use super::Credentials;
use crate::time::amz_date;

/// RFC 3986 unreserved characters stay; everything else is %XX (SigV4's
/// `UriEncode`, also right for form bodies).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// In a path, `/` stays too.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// `text` encoded for a query string or form body.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// `text` encoded for a URL path: as `encode`, but `/` stays.
pub fn encode_path(text: &str) -> String {
    utf8_percent_encode(text, PATH_UNRESERVED).to_string()
}

/// What is signed of a request about to be sent.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The URL as sent: the Host header comes from its host and port (the
    /// port only when it is not the scheme's default, as ureq sends it); its
    /// path and query are signed as they are encoded in it.
    pub url: &'a Url,
    /// The headers sent besides Host and the ones `sign` adds; all are signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body's hex SHA-256 (S3 also takes `UNSIGNED-PAYLOAD`, which we never send).
    pub payload_sha256: &'a str,
}

/// What a request is signed for.
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub at: SystemTime,
}

/// The headers to add to a request so that AWS accepts it: `x-amz-date`,
/// `x-amz-security-token` when the credentials have a session token, and
/// `authorization`.
pub fn sign(
    parts: &SignedParts<'_>,
    creds: &Credentials,
    scope: &Scope<'_>,
) -> Vec<(String, String)> {
    let (stamp, day) = amz_date(scope.at);
    let mut added = vec![("x-amz-date".to_string(), stamp.clone())];
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let mut all: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v)))
        .chain(std::iter::once(("host".to_string(), host(parts.url))))
        .chain(added.iter().cloned())
        .collect();
    all.sort();
    let request = canonical_request(
        parts.method,
        &canonical_path(parts.url, scope.service),
        parts.url.query().unwrap_or(""),
        &all,
        parts.payload_sha256,
    );
    let credential_scope = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{credential_scope}\n{}",
        hex_sha256(request.as_bytes())
    );
    let key = signing_key(&creds.secret_access_key, &day, scope.region, scope.service);
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let signed_headers = signed_header_names(&all);
    added.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    added
}

/// The canonical request: method, path, sorted and encoded query, sorted
/// lower-case headers (given sorted), their names, and the payload's hash.
fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    sorted_headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (reencode(k), reencode(v))
        })
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = sorted_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}\n"))
        .collect();
    format!(
        "{method}\n{path}\n{query}\n{headers}\n{}\n{payload_hash}",
        signed_header_names(sorted_headers)
    )
}

fn signed_header_names(sorted_headers: &[(String, String)]) -> String {
    sorted_headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The path as signed: S3 signs it as sent, other services encode it again.
fn canonical_path(url: &Url, service: &str) -> String {
    match service {
        "s3" => url.path().to_string(),
        _ => encode_path(url.path()),
    }
}

/// What the Host header of a request to `url` says.
fn host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// A query component as SigV4 wants it, whatever encoding it came in.
fn reencode(part: &str) -> String {
    encode(&percent_decode_str(part).decode_utf8_lossy())
}

/// Header values are trimmed and inner runs of spaces collapsed.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SHA-256 of `data` in lower-case hex, as SigV4 writes payload hashes.
pub fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso8601;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn example_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
            expires_at: None,
        }
    }

    // AWS's documented example: "GET https://iam.amazonaws.com/?Action=ListUsers
    // &Version=2010-05-08" at 20150830T123600Z, us-east-1, service iam.
    const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

    #[test]
    fn aws_list_users_example() {
        let at = parse_iso8601("2015-08-30T12:36:00Z").unwrap();
        let headers = vec![
            ("content-type".to_string(), CONTENT_TYPE.to_string()),
            ("host".to_string(), "iam.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let request = canonical_request(
            "GET",
            "/",
            "Version=2010-05-08&Action=ListUsers",
            &headers,
            &hex_sha256(b""),
        );
        assert_eq!(
            request,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_sha256(request.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let creds = example_creds(None);
        assert_eq!(
            hex(&signing_key(
                &creds.secret_access_key,
                "20150830",
                "us-east-1",
                "iam"
            )),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );

        let added = sign(
            &SignedParts {
                method: "GET",
                url: &url("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08"),
                headers: &[("Content-Type", CONTENT_TYPE)],
                payload_sha256: &hex_sha256(b""),
            },
            &creds,
            &Scope {
                region: "us-east-1",
                service: "iam",
                at,
            },
        );
        assert_eq!(
            added,
            vec![
                ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
                (
                    "authorization".to_string(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date, \
                     Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let creds = example_creds(Some("TOKEN/with+chars="));
        let added = sign(
            &SignedParts {
                method: "POST",
                url: &url("https://sts.amazonaws.com"),
                headers: &[("content-type", CONTENT_TYPE)],
                payload_sha256: &hex_sha256(b"Action=AssumeRole"),
            },
            &creds,
            &Scope {
                region: "us-east-1",
                service: "sts",
                at: parse_iso8601("2015-08-30T12:36:00Z").unwrap(),
            },
        );
        assert_eq!(
            added[1],
            ("x-amz-security-token".into(), "TOKEN/with+chars=".into())
        );
        let auth = &added[2].1;
        assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{auth}"
        );
        assert!(!auth.contains(&creds.secret_access_key));
    }

    #[test]
    fn only_s3_signs_the_path_as_sent() {
        let sent = url("https://h/a%20b/c");
        assert_eq!(canonical_path(&sent, "s3"), "/a%20b/c");
        assert_eq!(canonical_path(&sent, "execute-api"), "/a%2520b/c");
    }

    #[test]
    fn query_and_header_canonical_forms() {
        assert_eq!(encode("a b+c/~ü"), "a%20b%2Bc%2F~%C3%BC");
        assert_eq!(encode_path("a b+c/~ü"), "a%20b%2Bc/~%C3%BC");
        assert_eq!(
            host(&url("https://sts.amazonaws.com:443/")),
            "sts.amazonaws.com"
        );
        assert_eq!(host(&url("http://127.0.0.1:8080/x")), "127.0.0.1:8080");
        assert_eq!(reencode("a%20b"), "a%20b");
        assert_eq!(reencode("x/y"), "x%2Fy");
        assert_eq!(canonical_value("  a   b  "), "a b");
    }
}
