//! Test helpers: a tiny HTTP server on 127.0.0.1 that plays IMDS, the
//! container agent, STS or SSO, and records what it was sent.
//!
//! Each test starts its own server on a fresh port, so tests stay parallel
//! and never touch the real network. The server answers one request per
//! connection (`Connection: close`), which keeps it a dozen lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::Env;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
}

impl Default for Reply {
    fn default() -> Reply {
        Reply {
            status: 200,
            body: String::new(),
            content_type: "text/plain",
        }
    }
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply {
            body: body.to_string(),
            ..Reply::default()
        }
    }

    pub fn json(value: serde_json::Value) -> Reply {
        Reply {
            body: value.to_string(),
            content_type: "application/json",
            ..Reply::default()
        }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            ..Reply::default()
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

pub struct FakeServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeServer { url, seen }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Recorded>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let request = Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let text = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

/// A loopback URL where nothing listens: connections are refused at once.
pub fn closed_port_url() -> String {
    // Port 0 can never be listening, unlike a port bound and released
    // (which another test's server may take meanwhile).
    "http://127.0.0.1:0".to_string()
}

/// An environment with HOME at `home` (so no real ~/.aws is read), IMDS
/// pointed at a closed port (so no real network is touched), and `pairs`.
/// Pairs win over those two defaults.
pub fn env_in(home: &Path, pairs: &[(&str, &str)]) -> Env {
    let mut all: Vec<(String, String)> = vec![
        ("HOME".into(), home.to_string_lossy().into_owned()),
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
            closed_port_url(),
        ),
    ];
    for (k, v) in pairs {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    Env::from_pairs(all)
}

/// Writes `text` to `home/rel`, creating directories.
pub fn write(home: &Path, rel: &str, text: &str) -> std::path::PathBuf {
    let path = home.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub const ASSUME_ROLE_OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAASSUMED</AccessKeyId>
      <SecretAccessKey>assumed/secret+key</SecretAccessKey>
      <SessionToken>assumed-token&amp;more</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

/// Credentials JSON as IMDS and the container agent write it.
pub fn metadata_json(key: &str, expires: &str) -> serde_json::Value {
    serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": key,
        "SecretAccessKey": format!("{key}-secret"),
        "Token": format!("{key}-token"),
        "Expiration": expires,
    })
}

/// IMDSv2 that insists on its token, serving `role` with credentials
/// `AKIDIMDS` expiring at `expires`.
pub fn fake_imds(role: &'static str, expires: &'static str) -> FakeServer {
    const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
    FakeServer::start(move |req| {
        if req.method == "PUT" && req.path() == "/latest/api/token" {
            return match req.header("x-aws-ec2-metadata-token-ttl-seconds") {
                Some("21600") => Reply::ok("imds-token"),
                _ => Reply::status(400, "missing ttl"),
            };
        }
        if req.header("x-aws-ec2-metadata-token") != Some("imds-token") {
            return Reply::status(401, "");
        }
        match req.path().strip_prefix(ROLES) {
            Some("") => Reply::ok(&format!("{role}\n")),
            Some(r) if r == role => Reply::json(metadata_json("AKIDIMDS", expires)),
            _ => Reply::status(404, ""),
        }
    })
}
