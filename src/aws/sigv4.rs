//! AWS Signature Version 4 for the credential calls we sign ourselves.
//!
//! STS AssumeRole must be signed with the source credentials. rust-s3's
//! `s3::signing` is tied to S3 (its canonical forms and `Region` type), so
//! this is the plain algorithm from the AWS documentation, on `hmac` 0.12 and
//! `sha2` 0.10, checked against AWS's published IAM `ListUsers` example.
//! Nothing here is logged: signatures and keys never leave this file except
//! as request headers.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::aws::Credentials;
use crate::time::amz_date;

/// RFC 3986 unreserved characters stay; everything else is %XX (SigV4's
/// `UriEncode`, also right for form bodies).
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` encoded for a query string or form body.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The parts of a request that are signed. `headers` are the headers sent
/// besides Host and the ones `sign` adds (all are signed); `host` is what the
/// Host header will say (host, and `:port` unless the scheme's default).
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
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
pub fn sign(req: &Request<'_>, creds: &Credentials, scope: &Scope<'_>) -> Vec<(String, String)> {
    let (stamp, day) = amz_date(scope.at);
    let mut added = vec![("x-amz-date".to_string(), stamp.clone())];
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let mut all: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v)))
        .chain(std::iter::once(("host".to_string(), req.host.to_string())))
        .chain(added.iter().cloned())
        .collect();
    all.sort();
    let request = canonical_request(req.method, req.path, req.query, &all, &hex_sha256(req.body));
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
    let path = if path.is_empty() { "/" } else { path };
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

pub fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso8601;

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
            &Request {
                method: "GET",
                host: "iam.amazonaws.com",
                path: "/",
                query: "Action=ListUsers&Version=2010-05-08",
                headers: &[("Content-Type", CONTENT_TYPE)],
                body: b"",
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
            &Request {
                method: "POST",
                host: "sts.amazonaws.com",
                path: "/",
                query: "",
                headers: &[("content-type", CONTENT_TYPE)],
                body: b"Action=AssumeRole",
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
    fn query_and_header_canonical_forms() {
        assert_eq!(encode("a b+c/~ü"), "a%20b%2Bc%2F~%C3%BC");
        assert_eq!(reencode("a%20b"), "a%20b");
        assert_eq!(reencode("x/y"), "x%2Fy");
        assert_eq!(canonical_value("  a   b  "), "a b");
    }
}
