//! Fake AWS credential endpoints for the credential-chain tests.
//!
//! `FakeAws` is a small HTTP/1.1 server on 127.0.0.1 (a thread per
//! connection, one request per connection, `Connection: close`, bodies by
//! Content-Length) that records every request and answers through a
//! handler. The constructors play the endpoints the binary's credential
//! chain calls: IMDSv2, the ECS/EKS container agent, STS
//! (AssumeRoleWithWebIdentity and AssumeRole) and the SSO portal. Each test
//! starts its own server on a fresh port and it stops when dropped, so tests
//! stay parallel and never leave loopback.
//!
//! Also here: `closed_port_url` (nothing can listen), `iso8601` (what AWS
//! writes for expiry times) and `sha1_hex` (the SSO cache file name), each a
//! few lines so the tests do not reuse the code under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The decoded query parameters.
    pub fn query(&self) -> Vec<(String, String)> {
        let query = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        decode_form(query)
    }

    /// The decoded form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Vec<(String, String)> {
        decode_form(&self.body)
    }

    /// One form field of the body.
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// "METHOD /path", for comparing request sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path())
    }
}

fn decode_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }

    pub fn json(value: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    pub fn xml(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "text/xml",
            body,
        }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }
}

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
        serde_json::json!({
            "Code": "Success",
            "LastUpdated": iso8601(SystemTime::now()),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": iso8601(self.expires),
        })
    }

    /// STS's `<Credentials>` element.
    fn sts_xml(&self) -> String {
        format!(
            "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
             <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>",
            xml_escape(&self.access_key_id),
            xml_escape(&self.secret_access_key),
            xml_escape(&self.session_token),
            iso8601(self.expires)
        )
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A fake endpoint on a loopback port; stops when dropped.
pub struct FakeAws {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

pub const IMDS_TOKEN_PATH: &str = "/latest/api/token";
pub const IMDS_ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";
pub const IMDS_SESSION_TOKEN: &str = "fake-imds-session-token";

impl FakeAws {
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log, stopping) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, log) = (handler.clone(), log.clone());
                thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeAws { addr, seen, stop }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// "METHOD /path" of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    /// IMDSv2 with instance role `role`: the session token needs the TTL
    /// header, the other calls need the session token. The n-th credentials
    /// read (from 0) gets `keys[n]`, the last entry once they run out.
    pub fn imds(role: &'static str, keys: Vec<Keys>) -> FakeAws {
        assert!(!keys.is_empty(), "IMDS needs keys to hand out");
        let reads = AtomicUsize::new(0);
        FakeAws::start(move |req| {
            if req.path() == IMDS_TOKEN_PATH {
                return match (req.method.as_str(), ttl(req)) {
                    ("PUT", Some(ttl)) if ttl > 0 && ttl <= 21_600 => {
                        Reply::text(IMDS_SESSION_TOKEN)
                    }
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
                Some("") => Reply::text(role),
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
        FakeAws::start(move |req| {
            if req.method != "GET" {
                return Reply::status(405, "");
            }
            if req.header("authorization") != Some(token) {
                return Reply::status(401, r#"{"message":"invalid authorization token"}"#);
            }
            Reply::json(keys.metadata_json())
        })
    }

    /// STS: form-encoded POSTs of AssumeRoleWithWebIdentity (unsigned) and
    /// AssumeRole (must carry a SigV4 Authorization header), both answered
    /// with `keys`. Anything else gets STS's XML error.
    pub fn sts(keys: Keys) -> FakeAws {
        FakeAws::start(move |req| {
            let form_type = req
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
            if req.method != "POST" || !form_type {
                return sts_error(400, "InvalidAction", "not a form POST");
            }
            let (Some(action), Some(_role)) = (req.form_field("Action"), req.form_field("RoleArn"))
            else {
                return sts_error(400, "MissingParameter", "Action and RoleArn are required");
            };
            match action.as_str() {
                "AssumeRoleWithWebIdentity" if req.form_field("WebIdentityToken").is_some() => {
                    Reply::xml(format!(
                        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                         <AssumeRoleWithWebIdentityResult>\
                         <SubjectFromWebIdentityToken>system:serviceaccount:ci:runner</SubjectFromWebIdentityToken>\
                         {}</AssumeRoleWithWebIdentityResult>\
                         <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>\
                         </AssumeRoleWithWebIdentityResponse>",
                        keys.sts_xml()
                    ))
                }
                "AssumeRole"
                    if req
                        .header("authorization")
                        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=")) =>
                {
                    Reply::xml(format!(
                        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                         <AssumeRoleResult>\
                         <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/ci/s</Arn>\
                         <AssumedRoleId>AROAFAKE:s</AssumedRoleId></AssumedRoleUser>\
                         {}</AssumeRoleResult>\
                         <ResponseMetadata><RequestId>2</RequestId></ResponseMetadata>\
                         </AssumeRoleResponse>",
                        keys.sts_xml()
                    ))
                }
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
                return Reply::status(404, r#"{"message":"not found"}"#);
            }
            if req.header("x-amz-sso_bearer_token") != Some(bearer) {
                return Reply::status(401, r#"{"message":"Session token not found or invalid"}"#);
            }
            let query = req.query();
            let has = |k: &str| query.iter().any(|(name, v)| name == k && !v.is_empty());
            if !has("account_id") || !has("role_name") {
                return Reply::status(400, r#"{"message":"account_id and role_name required"}"#);
            }
            let millis = keys
                .expires
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64;
            Reply::json(serde_json::json!({"roleCredentials": {
                "accessKeyId": keys.access_key_id,
                "secretAccessKey": keys.secret_access_key,
                "sessionToken": keys.session_token,
                "expiration": millis,
            }}))
        })
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and ends; not joined, so
        // a drop can never hang a test.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn ttl(req: &Recorded) -> Option<u64> {
    req.header("x-aws-ec2-metadata-token-ttl-seconds")?
        .trim()
        .parse()
        .ok()
}

fn sts_error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type: "text/xml",
        body: format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Recorded>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // The wake-up connection of Drop, or a probe.
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());
    let reply = handler(&request);
    let text = format!(
        "HTTP/1.1 {} Fake\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

/// A loopback URL where nothing can listen: port 0, so connections are
/// refused at once. (Binding a port and freeing it is not enough: under
/// parallel tests another test's server can take the freed port.)
pub fn closed_port_url() -> String {
    "http://127.0.0.1:0".to_string()
}

/// `2024-05-01T12:00:00Z`, as AWS writes expiry times (UTC, whole seconds).
pub fn iso8601(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// SHA-1 of `data` in lower-case hex (FIPS 180-4), for the SSO cache name.
pub fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, word) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (state, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(v);
        }
    }
    h.iter().map(|v| format!("{v:08x}")).collect()
}

/// Checks the SigV4 `Authorization` header of `req` against `secret`: the
/// canonical request is rebuilt from what arrived (method, path, query, the
/// signed headers, a SHA-256 of the body) and signed again. Returns the
/// access key id the header names, or why the signature does not hold.
pub fn verify_sigv4(req: &Recorded, secret: &str) -> Result<String, String> {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

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
    let mut query: Vec<&str> = req
        .target
        .split_once('?')
        .map(|(_, q)| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    query.sort_unstable();
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{}",
        req.method,
        req.path(),
        query.join("&"),
        hex(&Sha256::digest(req.body.as_bytes()))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    let expected = hex(&hmac(&key, &to_sign));
    if expected == signature {
        Ok(key_id.to_string())
    } else {
        Err(format!(
            "signature mismatch for {key_id} (canonical request:\n{canonical})"
        ))
    }
}
