//! Store quirks: what real stores do that the suite's local servers don't.
//!
//! `QuirksProxy` is a loopback HTTP proxy in front of an S3 server (s3s-fs
//! or moto) that forwards every request unchanged — Host header and
//! signature included, so s3s-fs still verifies it — and, per `Quirks`,
//! answers some requests itself the way a real store does:
//! - a bucket policy that requires encryption: PutObject and
//!   CreateMultipartUpload without `x-amz-server-side-encryption` get
//!   403 AccessDenied, as AWS answers a policy denial;
//! - a store without conditional writes (GCS's XML API, older MinIO and
//!   Ceph): `501 NotImplemented` naming `If-None-Match`;
//! - a store without the checksum headers: 400 InvalidArgument or
//!   501 NotImplemented naming the `x-amz-checksum-*` header of a write;
//! - a store without DeleteObjects (GCS): `501 NotImplemented` to
//!   `POST ?delete`.
//!
//! Every request is recorded (method, target, headers) so tests can count
//! and inspect what the binary sent. Requests are not pipelined by the
//! client, so a connection is read one request at a time and the answers
//! flow back as raw bytes; a refused request's body is read in full before
//! the answer, and the connection is then closed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::{Store, TestEnv};

/// Which refusals the proxy makes. The default forwards everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// 403 AccessDenied to PutObject and CreateMultipartUpload without
    /// `x-amz-server-side-encryption`.
    pub require_encryption: bool,
    /// 501 NotImplemented naming `If-None-Match` to a write carrying it.
    pub no_conditional_writes: bool,
    /// This status (400 or 501), naming the header, to a request carrying
    /// an `x-amz-checksum-*` or `x-amz-sdk-checksum-*` header.
    pub no_checksums: Option<u16>,
    /// 501 NotImplemented to DeleteObjects (`POST ?delete`).
    pub no_delete_objects: bool,
}

/// One request the binary sent through the proxy.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The status the proxy answered itself, if it refused the request.
    pub refused: Option<u16>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A write of a whole object: PUT that is not an UploadPart.
    pub fn is_put_object(&self) -> bool {
        self.method == "PUT" && !self.target.contains("partNumber=")
    }

    pub fn is_create_multipart(&self) -> bool {
        self.method == "POST" && self.target.ends_with("?uploads")
    }

    pub fn is_delete_objects(&self) -> bool {
        self.method == "POST" && self.target.ends_with("?delete")
    }
}

pub struct QuirksProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl QuirksProxy {
    /// A proxy to `upstream` (`http://host:port`) with `quirks`.
    pub fn start(upstream: &str, quirks: Quirks) -> QuirksProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("an upstream of the form http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let log = Arc::clone(&log2);
                thread::spawn(move || {
                    let _ = serve(client, upstream, quirks, &log);
                });
            }
        });
        QuirksProxy {
            addr,
            log,
            stop,
            accept: Some(accept),
        }
    }

    /// Puts a proxy with `quirks` between `env`'s binary and its S3 server.
    pub fn in_front_of(env: &mut TestEnv, quirks: Quirks) -> QuirksProxy {
        let upstream = match &env.store {
            Store::S3(s) => s.endpoint(),
            Store::Moto(m) => m.endpoint.clone(),
            _ => panic!("the quirks proxy stands in front of an S3 server"),
        };
        let proxy = QuirksProxy::start(&upstream, quirks);
        env.set_env("ARTIFACT_S3_ENDPOINT", &proxy.endpoint());
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("log").clone()
    }

    /// How many requests so far match `filter`.
    pub fn count(&self, filter: impl Fn(&Recorded) -> bool) -> usize {
        self.requests().iter().filter(|r| filter(r)).count()
    }
}

impl Drop for QuirksProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Serves one client connection: each request is refused or forwarded on
/// one upstream connection, whose answers are copied back as they come.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    quirks: Quirks,
    log: &Mutex<Vec<Recorded>>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (mut answers, mut back) = (server.try_clone()?, client.try_clone()?);
    let pump = thread::spawn(move || {
        let _ = io::copy(&mut answers, &mut back);
        let _ = back.shutdown(Shutdown::Write);
    });
    let mut reader = BufReader::new(client.try_clone()?);
    let mut to_server = server.try_clone()?;
    let result = loop {
        let Some((head, mut recorded)) = read_head(&mut reader)? else {
            break Ok(());
        };
        let length: u64 = recorded
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if let Some((status, body)) = refusal(&quirks, &recorded) {
            io::copy(&mut (&mut reader).take(length), &mut io::sink())?;
            recorded.refused = Some(status);
            log.lock().expect("log").push(recorded);
            let answer = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                if status == 403 { "Forbidden" } else if status == 400 { "Bad Request" } else { "Not Implemented" },
                body.len()
            );
            (&client).write_all(answer.as_bytes())?;
            break Ok(());
        }
        log.lock().expect("log").push(recorded);
        to_server.write_all(&head)?;
        io::copy(&mut (&mut reader).take(length), &mut to_server)?;
    };
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    let _ = pump.join();
    result
}

/// Reads one request head: its bytes as sent, and what it says. `None` at
/// the end of the connection.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<(Vec<u8>, Recorded)>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if reader.read_until(b'\n', &mut head)? == 0 {
            return Ok(None);
        }
        if head[start..] == *b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some((
        head,
        Recorded {
            method,
            target,
            headers,
            refused: None,
        },
    )))
}

/// The status and body the proxy answers `request` with, if it refuses it.
fn refusal(quirks: &Quirks, request: &Recorded) -> Option<(u16, String)> {
    let error = |code: &str, message: &str, header: Option<&str>| {
        let header = header.map_or(String::new(), |h| format!("<Header>{h}</Header>"));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{header}<RequestId>quirks</RequestId></Error>"
        )
    };
    let not_implemented = "A header you provided implies functionality that is not implemented";
    let writes = request.is_put_object() || request.is_create_multipart();
    if quirks.require_encryption
        && writes
        && request.header("x-amz-server-side-encryption").is_none()
    {
        return Some((403, error("AccessDenied", "Access Denied", None)));
    }
    if quirks.no_conditional_writes && request.header("if-none-match").is_some() {
        let body = error("NotImplemented", not_implemented, Some("If-None-Match"));
        return Some((501, body));
    }
    let write = request.method == "PUT" || request.method == "POST";
    if let (Some(status), true) = (quirks.no_checksums, write) {
        let checksum = request.headers.iter().find(|(n, _)| {
            n.starts_with("x-amz-checksum-") || n.starts_with("x-amz-sdk-checksum-")
        });
        if let Some((name, _)) = checksum {
            let body = if status == 400 {
                error(
                    "InvalidArgument",
                    &format!("The {name} header is not supported"),
                    None,
                )
            } else {
                error("NotImplemented", not_implemented, Some(name))
            };
            return Some((status, body));
        }
    }
    if quirks.no_delete_objects && request.is_delete_objects() {
        let body = error(
            "NotImplemented",
            "A header or query you provided implies functionality that is not implemented",
            None,
        );
        return Some((501, body));
    }
    None
}
