//! A forward proxy on loopback that behaves as Squid's default
//! configuration does, for the points clients get wrong:
//!
//! * an absolute-form request (`GET http://host:port/path HTTP/1.1`,
//!   RFC 9112 §3.2.2) is forwarded in origin form to 127.0.0.1 at the URL's
//!   port: every name resolves to loopback here, so `*.artifact.test` names
//!   need no DNS. The Host header goes on as sent; hop-by-hop headers
//!   (`Proxy-Authorization`, `Proxy-Connection`, `Connection`) do not;
//! * `CONNECT host:443` is tunnelled to the one TLS upstream given at start;
//!   `CONNECT` to any other port is refused with 403 (Squid's
//!   `http_access deny CONNECT !SSL_ports`);
//! * an origin-form request (`GET /path`) is refused with 400: it is not a
//!   request for a proxy;
//! * with credentials set, a request without the matching
//!   `Proxy-Authorization: Basic …` gets 407 and `Proxy-Authenticate`.
//!
//! Every request line is logged with its `Proxy-Authorization` and the
//! status answered. Client connections are kept alive (refusals close
//! them); each forwarded request opens its own upstream connection, asked
//! to close after the answer, and the answer is relayed by its framing
//! (Content-Length, chunked, or until close). Request bodies need a
//! Content-Length (411 otherwise). Dropping the proxy stops it and shuts
//! every open connection. Only std and base64, on purpose independent of
//! the other test proxies.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};

const MAX_LINE: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// As received: an absolute URL, `host:port` for a CONNECT, or a path.
    pub target: String,
    pub proxy_authorization: Option<String>,
    /// The status the proxy answered or relayed.
    pub status: u16,
}

pub struct Squid {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    tls_upstream: Option<SocketAddr>,
    /// The `Proxy-Authorization` value required, if any.
    required: Option<String>,
    log: Mutex<Vec<Logged>>,
    open: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    connections: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

impl Squid {
    /// A proxy without authentication; `CONNECT host:443` goes to
    /// `tls_upstream`.
    pub fn start(tls_upstream: Option<SocketAddr>) -> Squid {
        Squid::launch(tls_upstream, None)
    }

    /// A proxy that demands `user:password` (Basic) on every request.
    pub fn with_auth(tls_upstream: Option<SocketAddr>, user: &str, password: &str) -> Squid {
        let token = BASE64_STANDARD.encode(format!("{user}:{password}"));
        Squid::launch(tls_upstream, Some(format!("Basic {token}")))
    }

    fn launch(tls_upstream: Option<SocketAddr>, required: Option<String>) -> Squid {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            tls_upstream,
            required,
            log: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                let conn = accepting.clone();
                let handle = thread::spawn(move || {
                    let _tracked = conn.track(&client);
                    // A client that hangs up or sends garbage ends its
                    // connection, nothing else.
                    let _ = serve(&conn, client);
                });
                lock(&accepting.threads).push(handle);
            }
        });
        Squid {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port>`, for `HTTP_PROXY`/`HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:<port>`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// How many client connections were accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a stream in `Shared::open` (to be shut down on drop) while alive.
struct Tracked<'a>(&'a Shared, u64);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        lock(&self.0.open).remove(&self.1);
    }
}

impl Shared {
    fn track(&self, stream: &TcpStream) -> Tracked<'_> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&self.open).insert(id, clone);
        }
        Tracked(self, id)
    }

    fn record(&self, method: &str, target: &str, auth: Option<&str>, status: u16) {
        lock(&self.log).push(Logged {
            method: method.to_string(),
            target: target.to_string(),
            proxy_authorization: auth.map(str::to_string),
            status,
        });
    }
}

/// A request or response head: its first line and its headers.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One CRLF- (or LF-) terminated line, without it; `None` at a clean EOF.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(invalid("line too long or cut short"));
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let Some(line) = read_line(r)? else {
        return Ok(None);
    };
    let mut headers = Vec::new();
    loop {
        let field = read_line(r)?.ok_or_else(|| invalid("head cut short"))?;
        if field.is_empty() {
            return Ok(Some(Head { line, headers }));
        }
        let (name, value) = field.split_once(':').ok_or_else(|| invalid("bad header"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Answers with an empty body and closes the connection.
fn refuse(client: &mut TcpStream, status: u16, reason: &str, extra: &str) -> io::Result<()> {
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    client.flush()?;
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}

fn serve(shared: &Shared, client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    while let Some(head) = read_head(&mut reader)? {
        let mut parts = head.line.split(' ');
        let (method, target) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(_)) => (m.to_string(), t.to_string()),
            _ => return refuse(&mut client, 400, "Bad Request", ""),
        };
        let auth = head.get("proxy-authorization");
        let log = |status| shared.record(&method, &target, auth, status);
        if method.eq_ignore_ascii_case("CONNECT") {
            if !target.ends_with(":443") {
                log(403);
                return refuse(&mut client, 403, "Forbidden", "");
            }
        } else if !target.starts_with("http://") {
            log(400);
            return refuse(&mut client, 400, "Bad Request", "");
        }
        if let Some(required) = &shared.required {
            if auth != Some(required.as_str()) {
                log(407);
                let challenge = "Proxy-Authenticate: Basic realm=\"squid\"\r\n";
                return refuse(&mut client, 407, "Proxy Authentication Required", challenge);
            }
        }
        if method.eq_ignore_ascii_case("CONNECT") {
            let Some(upstream) = shared.tls_upstream else {
                log(503);
                return refuse(&mut client, 503, "Service Unavailable", "");
            };
            log(200);
            return tunnel(shared, reader, client, upstream);
        }
        let Some(status) = forward(shared, &method, &target, &head, &mut reader, &mut client)?
        else {
            return Ok(());
        };
        log(status);
    }
    Ok(())
}

/// Forwards one absolute-form request and relays its answer. Returns the
/// status, or `None` when the connection is over.
fn forward(
    shared: &Shared,
    method: &str,
    target: &str,
    head: &Head,
    reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
) -> io::Result<Option<u16>> {
    let rest = &target["http://".len()..];
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let port = match authority.rsplit_once(':') {
        Some((_, port)) if !authority.ends_with(']') => port.parse().ok(),
        _ => Some(80),
    };
    let body_len: u64 = match (head.get("content-length"), head.get("transfer-encoding")) {
        (_, Some(_)) => {
            shared.record(method, target, head.get("proxy-authorization"), 411);
            refuse(client, 411, "Length Required", "")?;
            return Ok(None);
        }
        (Some(len), None) => len.parse().map_err(|_| invalid("bad Content-Length"))?,
        (None, None) => 0,
    };
    let upstream = port
        .and_then(|port: u16| TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok());
    let Some(upstream) = upstream else {
        refuse(client, 502, "Bad Gateway", "")?;
        return Ok(Some(502));
    };
    let _tracked = shared.track(&upstream);
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut to_upstream = upstream.try_clone()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        let hop = [
            "proxy-authorization",
            "proxy-connection",
            "connection",
            "keep-alive",
        ];
        if !hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if head.get("host").is_none() {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    request.push_str("Via: 1.1 squid\r\nConnection: close\r\n\r\n");
    to_upstream.write_all(request.as_bytes())?;
    io::copy(&mut reader.take(body_len), &mut to_upstream)?;
    to_upstream.flush()?;

    let mut from_upstream = BufReader::new(upstream);
    let answer = read_head(&mut from_upstream)?.ok_or_else(|| invalid("no answer"))?;
    let status: u16 = answer
        .line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let no_body = method.eq_ignore_ascii_case("HEAD")
        || status == 204
        || status == 304
        || (100..200).contains(&status);
    let chunked = answer
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length: Option<u64> = answer.get("content-length").and_then(|l| l.parse().ok());
    let until_close = !no_body && !chunked && length.is_none();
    let mut out = format!("{}\r\n", answer.line);
    for (name, value) in &answer.headers {
        if !["connection", "keep-alive"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if until_close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    client.write_all(out.as_bytes())?;
    if until_close {
        io::copy(&mut from_upstream, client)?;
        client.flush()?;
        let _ = client.shutdown(Shutdown::Write);
        return Ok(None);
    }
    match (no_body, chunked, length) {
        (true, _, _) => {}
        (false, true, _) => relay_chunked(&mut from_upstream, client)?,
        (false, false, length) => {
            let length = length.unwrap_or(0);
            let copied = io::copy(&mut (&mut from_upstream).take(length), client)?;
            if copied < length {
                return Err(invalid("upstream body cut short"));
            }
        }
    }
    client.flush()?;
    Ok(Some(status))
}

fn relay_chunked(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    loop {
        let line = read_line(from)?.ok_or_else(|| invalid("chunked body cut short"))?;
        write!(to, "{line}\r\n")?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let trailer = read_line(from)?.ok_or_else(|| invalid("trailers cut short"))?;
                write!(to, "{trailer}\r\n")?;
                if trailer.is_empty() {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        io::copy(&mut from.take(size + 2), to)?;
    }
}

/// After `200 Connection established`, copies bytes both ways until either
/// side closes.
fn tunnel(
    shared: &Shared,
    reader: BufReader<TcpStream>,
    mut client: TcpStream,
    upstream: SocketAddr,
) -> io::Result<()> {
    let Ok(upstream) = TcpStream::connect(upstream) else {
        return refuse(&mut client, 502, "Bad Gateway", "");
    };
    let _tracked = shared.track(&upstream);
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    client.flush()?;
    let mut up_writer = upstream.try_clone()?;
    // What the client sent after its CONNECT, already buffered, goes first.
    up_writer.write_all(reader.buffer())?;
    let mut up_reader = upstream.try_clone()?;
    let mut down_writer = client.try_clone()?;
    let down = thread::spawn(move || {
        let _ = io::copy(&mut up_reader, &mut down_writer);
        let _ = down_writer.shutdown(Shutdown::Write);
    });
    let mut client_reader = reader.into_inner();
    let _ = io::copy(&mut client_reader, &mut up_writer);
    let _ = up_writer.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}
