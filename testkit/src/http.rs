//! The one HTTP/1.1 core every test server runs on: a loopback listener,
//! a thread per connection, keep-alive, bodies by Content-Length or
//! chunked, and replies that can be cut short on purpose (resets, short
//! bodies, stalls, tunnels) for the fault layer. Plus [`forward`], the
//! one-shot client the fault layer uses to reach its upstream.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const MAX_LINE: u64 = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// A reset during an upload reads at most this much of the body first.
const UPLOAD_RESET_MAX: u64 = 64 * 1024;

/// Locks, ignoring poison: a panicking test must not wedge a server.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request. Header names are lowercased; `body` is empty until read
/// (and in logs, which keep only `body_len`).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// As received: `/path?query`, an absolute URL, or `host:port`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_len: usize,
}

impl Request {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path without the query, also for an absolute-form target.
    pub fn path(&self) -> &str {
        split_target(&self.target).0
    }

    /// The query without `?`, or empty.
    pub fn query(&self) -> &str {
        split_target(&self.target).1
    }

    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form(self.query().as_bytes())
    }

    /// One field of an `application/x-www-form-urlencoded` body.
    pub fn form_field(&self, name: &str) -> Option<String> {
        form(&self.body)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The percent-decoded path without its leading `/`.
    pub fn key(&self) -> String {
        let path = self.path().strip_prefix('/').unwrap_or(self.path());
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// "METHOD /path", for comparing request sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path())
    }

    /// A copy for a log: everything but the body bytes.
    pub fn summary(&self) -> Request {
        Request {
            body: Vec::new(),
            ..self.clone()
        }
    }

    /// A PutObject (or CopyObject): a PUT that is no UploadPart.
    pub fn is_put_object(&self) -> bool {
        self.method == "PUT" && !self.query().contains("partNumber=")
    }

    pub fn is_create_multipart(&self) -> bool {
        self.method == "POST" && self.query() == "uploads"
    }

    pub fn is_delete_objects(&self) -> bool {
        self.method == "POST" && self.query() == "delete"
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

fn form(text: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text).into_owned().collect()
}

/// First value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `(path, query)` of a target; `("", "")` for authority-form.
pub fn split_target(target: &str) -> (&str, &str) {
    let rest = match target.find("://") {
        _ if target.starts_with('/') => target,
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None => return ("", ""),
    };
    rest.split_once('?').unwrap_or((rest, ""))
}

/// How a reply leaves the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cut {
    /// Sent whole; the connection stays open unless either side asked to close.
    #[default]
    Whole,
    /// Sent whole, then the connection is closed.
    Close,
    /// Nothing is sent: the connection is reset.
    Reset,
    /// Before reading it, half the request body (at most 64 KiB) is read,
    /// then the connection is reset.
    ResetUpload,
    /// The head and this many bytes of the body, then a reset.
    ResetMidBody(usize),
    /// The head (full length) and half the body, then a clean close.
    Short,
    /// Nothing for this long, then a clean close.
    Stall(Duration),
    /// The head and half the body, nothing more for this long, then a
    /// clean close.
    StallMidBody(Duration),
    /// `200 Connection established`, then bytes are relayed to this address.
    Tunnel(SocketAddr),
    /// The head without its Content-Length, the body and this many bytes
    /// more, then a clean close: a body that runs past what was stated.
    Overlong(usize),
}

/// An answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub cut: Cut,
}

/// 200, no headers, no body.
impl Default for Reply {
    fn default() -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            cut: Cut::Whole,
        }
    }
}

impl Reply {
    pub fn with(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let reply = Reply {
            status,
            ..Reply::default()
        };
        reply.header("content-type", content_type).body(body)
    }

    /// This status with a plain text body.
    pub fn status(status: u16, body: &str) -> Reply {
        Reply::with(status, "text/plain", body)
    }

    /// 200 with a plain text body.
    pub fn ok(body: &str) -> Reply {
        Reply::status(200, body)
    }

    pub fn json(value: serde_json::Value) -> Reply {
        Reply::with(200, "application/json", value.to_string())
    }

    pub fn xml(status: u16, body: String) -> Reply {
        Reply::with(status, "application/xml", body)
    }

    /// A status with an S3 error XML body carrying this `<Code>` and,
    /// unless empty, this `<Header>`.
    pub fn s3_error(status: u16, code: &str, header: &str) -> Reply {
        let header = if header.is_empty() {
            String::new()
        } else {
            format!("<Header>{header}</Header>")
        };
        Reply::xml(
            status,
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code} (test kit)</Message>{header}</Error>"),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn cut(mut self, cut: Cut) -> Reply {
        self.cut = cut;
        self
    }

    fn bodiless(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// The bytes on the wire, the body cut after `body_len` bytes.
    fn bytes(&self, is_head: bool, close: bool, body_len: usize) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} Test\r\n", self.status);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.bodiless() && header(&self.headers, "content-length").is_none() {
            out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !self.bodiless() && !is_head {
            out.extend_from_slice(&self.body[..body_len.min(self.body.len())]);
        }
        out
    }
}

impl Reply {
    /// The bytes on the wire for `Cut::Overlong`: no Content-Length, the
    /// body, `extra` bytes more, delimited by the close.
    fn overlong(&self, extra: usize) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} Test\r\n", self.status);
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("content-length") {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str("connection: close\r\n\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out.resize(out.len() + extra, b'x');
        out
    }
}

/// What a server does with each request.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`, whose body is read only by `body.read(&mut req)`:
    /// a handler may answer without it (the connection then closes).
    fn call(&self, req: Request, body: Body<'_>) -> Reply;
}

/// A request body not yet read.
pub struct Body<'a> {
    reader: &'a mut BufReader<TcpStream>,
    framing: Framing,
    read: &'a mut bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

impl Body<'_> {
    /// Reads the body into `req.body` (and `req.body_len`).
    pub fn read(self, req: &mut Request) -> io::Result<()> {
        *self.read = true;
        req.body = read_body(self.reader, self.framing, u64::MAX)?;
        req.body_len = req.body.len();
        Ok(())
    }
}

fn read_body(r: &mut impl BufRead, framing: Framing, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match framing {
        Framing::Length(n) => {
            let want = n.min(limit);
            if r.take(want).read_to_end(&mut out)? as u64 != want {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Framing::Chunked => loop {
            let line = read_line(r)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                while !read_line(r)?.is_empty() {}
                break;
            }
            let want = size.min(limit - out.len() as u64);
            if r.take(want).read_to_end(&mut out)? as u64 != want {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if out.len() as u64 >= limit {
                break;
            }
            read_line(r)?;
        },
    }
    Ok(out)
}

/// Wraps a closure as a handler that reads every body first.
struct Func<F>(F);

impl<F: Fn(&Request) -> Reply + Send + Sync + 'static> Handler for Func<F> {
    fn call(&self, mut req: Request, body: Body<'_>) -> Reply {
        match body.read(&mut req) {
            Ok(()) => (self.0)(&req),
            Err(e) => Reply::status(400, &e.to_string()).cut(Cut::Close),
        }
    }
}

struct Shared {
    handler: Arc<dyn Handler>,
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Open connections, so that Drop can shut them.
    conns: Mutex<HashMap<usize, TcpStream>>,
}

/// A running server on a random 127.0.0.1 port; dropping it stops the
/// listener and shuts every open connection.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: Arc<dyn Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler,
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            conns: Mutex::default(),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = s.accepted.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    lock(&s.conns).insert(id, clone);
                }
                let s = s.clone();
                thread::spawn(move || {
                    serve(stream, &s);
                    lock(&s.conns).remove(&id);
                });
            }
        });
        Server {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A server answering every request with `f` (bodies read first).
    pub fn with_fn(f: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start(Arc::new(Func(f)))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, conn) in lock(&self.shared.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut buf = Vec::new();
    if r.take(MAX_LINE).read_until(b'\n', &mut buf)? == 0 || !buf.ends_with(b"\n") {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

type Headers = Vec<(String, String)>;

/// A start line and headers (names lowercased); `Ok(None)` at a clean end.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<(String, Headers)>> {
    let start = loop {
        match read_line(r) {
            Ok(line) if line.is_empty() => continue,
            Ok(line) => break line,
            Err(_) => return Ok(None),
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok(Some((start, headers)));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

fn framing(headers: &[(String, String)]) -> io::Result<Option<Framing>> {
    if header(headers, "transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(Some(Framing::Chunked));
    }
    match header(headers, "content-length") {
        None => Ok(None),
        Some(n) => n
            .parse()
            .map(|n| Some(Framing::Length(n)))
            .map_err(|_| invalid("bad Content-Length")),
    }
}

/// Resets the connection (RST, not FIN) when `stream` is dropped.
pub fn reset_on_drop(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut w = &stream;
    loop {
        let (start, headers) = match read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => {
                let _ =
                    w.write_all(&Reply::status(400, &e.to_string()).bytes(false, true, usize::MAX));
                return linger(&stream, &mut reader);
            }
        };
        let mut parts = start.split(' ');
        let req = Request {
            method: parts.next().unwrap_or_default().to_string(),
            target: parts.next().unwrap_or_default().to_string(),
            headers,
            ..Request::default()
        };
        let http10 = parts.next() == Some("HTTP/1.0");
        let (is_head, mut close) = (
            req.method == "HEAD",
            req.has_token("connection", "close")
                || (http10 && !req.has_token("connection", "keep-alive")),
        );
        let framing = match framing(&req.headers) {
            Ok(f) => f.unwrap_or(Framing::Length(0)),
            Err(e) => {
                let _ = w.write_all(&Reply::status(400, &e.to_string()).bytes(
                    is_head,
                    true,
                    usize::MAX,
                ));
                return linger(&stream, &mut reader);
            }
        };
        if framing != Framing::Length(0) && req.has_token("expect", "100-continue") {
            let _ = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut read = framing == Framing::Length(0);
        let reply = shared.handler.call(
            req,
            Body {
                reader: &mut reader,
                framing,
                read: &mut read,
            },
        );
        close |= !read || reply.cut != Cut::Whole;
        let half = reply.body.len() / 2;
        let sent = match reply.cut {
            Cut::Reset => return reset_on_drop(&stream),
            Cut::ResetUpload => {
                let _ = read_body(
                    &mut reader,
                    framing,
                    match framing {
                        Framing::Length(n) => (n / 2).min(UPLOAD_RESET_MAX),
                        Framing::Chunked => UPLOAD_RESET_MAX,
                    },
                );
                return reset_on_drop(&stream);
            }
            Cut::Stall(d) | Cut::StallMidBody(d) => {
                let mid_body = reply.cut == Cut::StallMidBody(d);
                if !mid_body || w.write_all(&reply.bytes(is_head, false, half)).is_ok() {
                    let (_, end) = (w.flush(), Instant::now() + d);
                    while Instant::now() < end && !shared.stop.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                return linger(&stream, &mut reader);
            }
            Cut::Tunnel(to) => return tunnel(&stream, reader, to),
            Cut::ResetMidBody(at) => {
                if w.write_all(&reply.bytes(is_head, false, at)).is_ok() {
                    thread::sleep(Duration::from_millis(50));
                }
                return reset_on_drop(&stream);
            }
            Cut::Short => w.write_all(&reply.bytes(is_head, false, half)),
            Cut::Overlong(extra) => {
                let _ = w.write_all(&reply.overlong(extra));
                return linger(&stream, &mut reader);
            }
            Cut::Whole | Cut::Close => w.write_all(&reply.bytes(is_head, close, usize::MAX)),
        };
        if sent.is_err() {
            return;
        }
        if close {
            return linger(&stream, &mut reader);
        }
    }
}

/// Closes our side, then reads until the client hangs up (at most half a
/// second), so that unread bytes do not turn the close into a reset.
fn linger(stream: &TcpStream, reader: &mut impl Read) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = io::copy(&mut reader.take(64 << 20), &mut io::sink());
}

/// Answers a CONNECT and relays bytes both ways until either side closes.
fn tunnel(client: &TcpStream, mut reader: BufReader<TcpStream>, to: SocketAddr) {
    let Ok(mut up) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        let _ = (&*client).write_all(&Reply::status(502, "").bytes(false, true, 0));
        return;
    };
    let (Ok(mut back), buffered) = (client.try_clone(), reader.buffer().to_vec()) else {
        return;
    };
    let mut w = client;
    if w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
        || up.write_all(&buffered).is_err()
    {
        return;
    }
    reader.consume(buffered.len());
    let _ = client.set_read_timeout(None);
    let Ok(mut down) = up.try_clone() else { return };
    let back = thread::spawn(move || {
        let _ = io::copy(&mut down, &mut back);
        let _ = back.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut reader, &mut up);
    let _ = up.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Sends `req` (its body read) to `upstream` on a fresh connection, in
/// origin-form with the Host kept, and reads the whole answer.
pub fn forward(upstream: SocketAddr, req: &Request) -> io::Result<Reply> {
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    let _ = up.set_nodelay(true);
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    let (path, query) = split_target(&req.target);
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut out = format!("{} {target} HTTP/1.1\r\n", req.method);
    let hop = [
        "connection",
        "content-length",
        "transfer-encoding",
        "expect",
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
    ];
    for (name, value) in req
        .headers
        .iter()
        .filter(|(n, _)| !hop.contains(&n.as_str()))
    {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if req.header("host").is_none() {
        let authority = req
            .target
            .split("://")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or("");
        out.push_str(&format!("host: {authority}\r\n"));
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "PUT" | "POST") {
        out.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    out.push_str("connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&req.body)?;
    let mut reader = BufReader::new(up);
    let (start, mut headers) = loop {
        let head = read_head(&mut reader)?
            .ok_or_else(|| invalid("the upstream closed without answering"))?;
        if !head.0.contains(" 100 ") {
            break head;
        }
    };
    let status = start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut reply = Reply {
        status,
        ..Reply::default()
    };
    if req.method != "HEAD" && !reply.bodiless() {
        reply.body = match framing(&headers)? {
            Some(f) => read_body(&mut reader, f, u64::MAX)?,
            None => {
                let mut all = Vec::new();
                reader.read_to_end(&mut all)?;
                all
            }
        };
        headers.retain(|(n, _)| n != "transfer-encoding" && n != "content-length");
    }
    headers.retain(|(n, _)| n != "connection" && n != "keep-alive");
    reply.headers = headers;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_of_several_chunks_is_read_whole() {
        let wire = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\ntrailer: x\r\n\r\n";
        let body = read_body(&mut &wire[..], Framing::Chunked, u64::MAX).unwrap();
        assert_eq!(body, b"abcde");
        let cut = read_body(&mut &wire[..], Framing::Chunked, 4).unwrap();
        assert_eq!(cut, b"abcd");
    }
}
