//! Fake AWS endpoints for the credential chain: IMDSv2, the ECS/EKS
//! container agent, STS (AssumeRoleWithWebIdentity and AssumeRole) and the
//! SSO portal, each a [`FakeAws`] on a loopback port of its own that
//! records every request. Also `iso8601` (what AWS writes for expiry
//! times), `sha1_hex` (the SSO cache file name), [`verify_sigv4`],
//! which re-signs a recorded request to check its signature, and
//! [`S3Keys::sign`], which signs a test client's request to a real store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::http::{lock, Reply, Request, Server};

pub const IMDS_TOKEN_PATH: &str = "/latest/api/token";
pub const IMDS_ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";
pub const IMDS_SESSION_TOKEN: &str = "fake-imds-session-token";

/// A set of credentials for a fake to hand out.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires: SystemTime,
}

impl Keys {
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: &str) -> Keys {
        Keys {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            session_token: session_token.to_string(),
            // Far enough away that nothing refreshes during a test.
            expires: SystemTime::now() + Duration::from_secs(6 * 3600),
        }
    }

    pub fn expiring_in(mut self, after: Duration) -> Keys {
        self.expires = SystemTime::now() + after;
        self
    }

    /// The JSON IMDS and the container agent answer with.
    pub fn metadata_json(&self) -> serde_json::Value {
        json!({
            "Code": "Success",
            "LastUpdated": iso8601(SystemTime::now()),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": iso8601(self.expires),
        })
    }

    /// STS's answer to `action`, with its `<Credentials>`.
    fn sts_xml(&self, action: &str, extra: &str) -> Reply {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        Reply::xml(
            200,
            format!(
                "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>{extra}\
                 <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
                 <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>\
                 </{action}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></{action}Response>",
                esc(&self.access_key_id),
                esc(&self.secret_access_key),
                esc(&self.session_token),
                iso8601(self.expires)
            ),
        )
    }
}

/// A fake endpoint on a loopback port that records what it is sent;
/// stops when dropped.
pub struct FakeAws {
    server: Server,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeAws {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeAws {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = Server::with_fn(move |req| {
            lock(&log).push(req.clone());
            handler(req)
        });
        FakeAws { server, seen }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.seen).clone()
    }

    /// "METHOD /path" of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Request::line).collect()
    }

    /// IMDSv2 with instance role `role`: the session token needs the TTL
    /// header, the other calls need the session token. The n-th credentials
    /// read (from 0) gets `keys[n]`, the last entry once they run out.
    pub fn imds(role: &'static str, keys: Vec<Keys>) -> FakeAws {
        assert!(!keys.is_empty(), "IMDS needs keys to hand out");
        let reads = AtomicUsize::new(0);
        FakeAws::start(move |req| {
            if req.path() == IMDS_TOKEN_PATH {
                let ttl = req
                    .header("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|t| t.trim().parse::<u64>().ok());
                return match (req.method.as_str(), ttl) {
                    ("PUT", Some(1..=21_600)) => Reply::ok(IMDS_SESSION_TOKEN),
                    ("PUT", _) => Reply::status(400, "missing or bad TTL header"),
                    _ => Reply::status(405, ""),
                };
            }
            if req.method != "GET" {
                return Reply::status(405, "");
            }
            if req.header("x-aws-ec2-metadata-token") != Some(IMDS_SESSION_TOKEN) {
                return Reply::status(401, "");
            }
            match req.path().strip_prefix(IMDS_ROLES_PATH) {
                Some("") => Reply::ok(role),
                Some(r) if r == role => {
                    let n = reads.fetch_add(1, Ordering::SeqCst);
                    Reply::json(keys[n.min(keys.len() - 1)].metadata_json())
                }
                _ => Reply::status(404, ""),
            }
        })
    }

    /// The ECS/EKS container agent: any GET whose Authorization header is
    /// `token` gets `keys`.
    pub fn container(token: &'static str, keys: Keys) -> FakeAws {
        FakeAws::start(
            move |req| match (req.method.as_str(), req.header("authorization")) {
                ("GET", Some(t)) if t == token => Reply::json(keys.metadata_json()),
                ("GET", _) => Reply::with(
                    401,
                    "application/json",
                    r#"{"message":"invalid authorization token"}"#,
                ),
                _ => Reply::status(405, ""),
            },
        )
    }

    /// STS: form-encoded POSTs of AssumeRoleWithWebIdentity (unsigned) and
    /// AssumeRole (must carry a SigV4 Authorization header), both answered
    /// with `keys`. Anything else gets STS's XML error.
    pub fn sts(keys: Keys) -> FakeAws {
        FakeAws::start(move |req| {
            let form = req
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
            if req.method != "POST" || !form {
                return sts_error(400, "InvalidAction", "not a form POST");
            }
            let (Some(action), Some(_role)) = (req.form_field("Action"), req.form_field("RoleArn"))
            else {
                return sts_error(400, "MissingParameter", "Action and RoleArn are required");
            };
            let signed = req
                .header("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="));
            match action.as_str() {
                "AssumeRoleWithWebIdentity" if req.form_field("WebIdentityToken").is_some() => keys.sts_xml(
                    "AssumeRoleWithWebIdentity",
                    "<SubjectFromWebIdentityToken>system:serviceaccount:ci:runner</SubjectFromWebIdentityToken>",
                ),
                "AssumeRole" if signed => keys.sts_xml(
                    "AssumeRole",
                    "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/ci/s</Arn>\
                     <AssumedRoleId>AROAFAKE:s</AssumedRoleId></AssumedRoleUser>",
                ),
                "AssumeRole" => sts_error(403, "MissingAuthenticationToken", "not signed"),
                _ => sts_error(400, "InvalidAction", "unexpected request"),
            }
        })
    }

    /// The SSO portal: `GET /federation/credentials?account_id=…&role_name=…`
    /// with header `x-amz-sso_bearer_token: bearer` gets `keys` as
    /// roleCredentials (expiration in milliseconds).
    pub fn sso_portal(bearer: &'static str, keys: Keys) -> FakeAws {
        FakeAws::start(move |req| {
            if req.method != "GET" || req.path() != "/federation/credentials" {
                return Reply::with(404, "application/json", r#"{"message":"not found"}"#);
            }
            if req.header("x-amz-sso_bearer_token") != Some(bearer) {
                return Reply::with(
                    401,
                    "application/json",
                    r#"{"message":"Session token not found or invalid"}"#,
                );
            }
            let query = req.query_pairs();
            let has = |k: &str| query.iter().any(|(name, v)| name == k && !v.is_empty());
            if !has("account_id") || !has("role_name") {
                return Reply::with(
                    400,
                    "application/json",
                    r#"{"message":"account_id and role_name required"}"#,
                );
            }
            let millis = keys
                .expires
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64;
            Reply::json(json!({"roleCredentials": {
                "accessKeyId": keys.access_key_id,
                "secretAccessKey": keys.secret_access_key,
                "sessionToken": keys.session_token,
                "expiration": millis,
            }}))
        })
    }
}

fn sts_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::xml(
        status,
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ),
    )
}

/// A loopback URL where nothing can listen: port 0, so connections are
/// refused at once (a port bound and freed could be taken meanwhile).
pub fn closed_port_url() -> String {
    "http://127.0.0.1:0".to_string()
}

/// `2024-05-01T12:00:00Z`, as AWS writes expiry times (UTC, whole seconds).
pub fn iso8601(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// SHA-1 of `data` in lower-case hex, for the SSO cache name.
pub fn sha1_hex(data: &[u8]) -> String {
    hex(&Sha1::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks the SigV4 `Authorization` header of `req` against `secret`: the
/// canonical request is rebuilt from what arrived (method, path, query, the
/// signed headers, a SHA-256 of the body) and signed again. Returns the
/// access key id the header names, or why the signature does not hold.
pub fn verify_sigv4(req: &Request, secret: &str) -> Result<String, String> {
    let auth = req
        .header("authorization")
        .ok_or("no Authorization header")?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not an AWS4-HMAC-SHA256 Authorization header")?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name))
            .ok_or(format!("no {name} in the Authorization header"))
    };
    let (credential, signed, signature) = (
        field("Credential=")?,
        field("SignedHeaders=")?,
        field("Signature=")?,
    );
    let (key_id, scope) = credential.split_once('/').ok_or("bad Credential")?;
    let date = scope.split('/').next().unwrap_or_default();
    let amz_date = req.header("x-amz-date").ok_or("no x-amz-date header")?;
    if !amz_date.starts_with(date) {
        return Err(format!("x-amz-date {amz_date} is not in scope {scope}"));
    }
    let mut headers = String::new();
    for name in signed.split(';') {
        let value = req
            .header(name)
            .ok_or(format!("signed header {name} was not sent"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{}",
        req.method,
        req.path(),
        canonical_query(req.query()),
        hex(&Sha256::digest(&req.body))
    );
    if sigv4_signature(secret, scope, amz_date, &canonical) == signature {
        Ok(key_id.to_string())
    } else {
        Err(format!(
            "signature mismatch for {key_id} (canonical request:\n{canonical})"
        ))
    }
}

/// The signature of a canonical request, with the key SigV4 derives from
/// `secret` for `scope` (`date/region/service/aws4_request`).
fn sigv4_signature(secret: &str, scope: &str, amz_date: &str, canonical: &str) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    hex(&hmac(&key, &to_sign))
}

/// A query string (already percent-encoded) in SigV4's canonical form:
/// every parameter as `name=value`, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains('=') {
                p.to_string()
            } else {
                format!("{p}=")
            }
        })
        .collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// What a test client signs an S3 request with (region `us-east-1`).
#[derive(Debug, Clone)]
pub struct S3Keys {
    pub access_key: String,
    pub secret_key: String,
}

impl S3Keys {
    /// The headers that sign a request for `host` (as in the URL): the
    /// payload's SHA-256, the date and `authorization`. Every one of
    /// `headers` (which the request must also carry) is signed; `query` is
    /// what the URL sends after `?`, already percent-encoded.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(String, String)> {
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let payload = hex(&Sha256::digest(body));
        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        signed.push(("host".into(), host.into()));
        signed.push(("x-amz-content-sha256".into(), payload.clone()));
        signed.push(("x-amz-date".into(), amz_date.clone()));
        signed.sort();
        let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
        let names = names.join(";");
        let lines: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical = format!(
            "{method}\n{path}\n{}\n{lines}\n{names}\n{payload}",
            canonical_query(query)
        );
        let scope = format!("{date}/us-east-1/s3/aws4_request");
        let signature = sigv4_signature(&self.secret_key, &scope, &amz_date, &canonical);
        vec![
            ("x-amz-content-sha256".into(), payload),
            ("x-amz-date".into(), amz_date),
            (
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
                    self.access_key
                ),
            ),
        ]
    }
}
