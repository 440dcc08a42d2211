//! A fault-injecting loopback HTTP/1.1 proxy for integration tests.
//!
//! [`FaultProxy`] listens on 127.0.0.1 (random port) and sends every request
//! to one upstream address, whatever host the request names:
//!
//! * **reverse proxy**: give the CLI [`FaultProxy::url`] as its endpoint;
//!   origin-form requests are forwarded with the Host header unchanged;
//! * **forward proxy** (`HTTP_PROXY` for clients that send absolute-form
//!   requests, like curl): `GET http://bucket.s3.artifact.test:1234/key`
//!   goes to the upstream as `GET /key`, Host kept as sent (taken from the
//!   URL when missing), so virtual-host bucket names need no DNS;
//! * **CONNECT** (`HTTPS_PROXY`, and `HTTP_PROXY` for ureq, which tunnels
//!   plain http through CONNECT too): answers 200 and connects to the
//!   upstream. When the client then speaks plain HTTP inside the tunnel the
//!   proxy keeps parsing it, so those requests are recorded and faulted like
//!   any other; anything else (a TLS ClientHello) is copied as raw bytes.
//!
//! Each request is checked against the [`Rule`]s in the order they were
//! injected; the first that matches and has uses left supplies its
//! [`Fault`]. A rule still skipping (`skip(n)`) counts the request and lets
//! later rules look at it. When no rule applies, the seeded soak of
//! [`FaultProxy::random_faults`] may pick one. A CONNECT is matched only by
//! rules naming that method (`path_contains` then looks at its `host:port`)
//! and never gets a random fault. Every request is recorded as a [`Seen`].
//!
//! Keep-alive works on both sides (one upstream connection per client
//! connection, reopened when the upstream closed it). Request bodies are
//! read whole (Content-Length or chunked, passed on as received) before
//! they are forwarded, and `Expect: 100-continue` is answered by the proxy.
//! Response bodies (Content-Length, chunked, or until close) are read whole
//! too; chunked ones are re-sent as one chunk, without trailers. An upstream
//! that cannot be reached or answers garbage gives the client a 502. Server
//! threads never panic on bad input: a malformed request gets a 400 and the
//! connection is closed. Dropping the proxy stops it and shuts every open
//! connection. Only std is used.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 200;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `ResetDuringUpload` reads at most this much of the body.
const UPLOAD_RESET_MAX: u64 = 64 * 1024;
/// How long a closing connection waits for the client to read and hang up.
const LINGER: Duration = Duration::from_millis(500);
/// Time for the client to take in a partial body before a reset drops it.
const BEFORE_RESET: Duration = Duration::from_millis(50);
/// How long to wait for the first bytes inside a CONNECT tunnel.
const SNIFF: Duration = Duration::from_millis(500);

/// One request as it reached the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The request target as received: `/path?query`, an absolute URL, or
    /// `host:port` for a CONNECT.
    pub target: String,
    /// The Host header, or the authority of an absolute-form target without one.
    pub host: Option<String>,
    /// Header names are lowercased.
    pub headers: Vec<(String, String)>,
    /// The status the client got; `None` when it got no response.
    pub status: Option<u16>,
    /// The fault applied, as `format!("{fault:?}")`, e.g. `Status(503)`.
    pub fault: Option<String>,
}

impl Seen {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path without the query, in origin-form (`/key` also for an
    /// absolute-form target); empty for a CONNECT.
    pub fn path(&self) -> &str {
        split_target(&self.target).0
    }

    /// The query without `?`, or empty.
    pub fn query(&self) -> &str {
        split_target(&self.target).1
    }
}

/// What the proxy does to a request a rule picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with an empty body; the upstream is not asked.
    Status(u16),
    /// 503 with S3's `SlowDown` error XML.
    SlowDown,
    /// This status with an S3 error XML body carrying this `<Code>`.
    Xml(u16, &'static str),
    /// Read the whole request, then reset the connection without answering.
    ResetBeforeResponse,
    /// Read half the request body (at most 64 KiB; for a chunked body, up
    /// to 64 KiB of it), then reset the connection.
    ResetDuringUpload,
    /// Forward, send the response head and half the body, then reset.
    ResetDuringDownload,
    /// Forward, send the head with the full Content-Length (added if the
    /// response had none; a chunked one announces one full-size chunk) but
    /// only half the body, then close cleanly (FIN).
    ShortBody,
    /// Read the whole request, send nothing for this long, then close.
    Stall(Duration),
    /// Forward, flipping every bit of the body's middle byte (same length).
    CorruptBody,
}

/// Which requests a fault applies to. Built with [`Rule::any`] and the
/// builder methods; conditions combine with "and".
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<String>,
    path: Option<String>,
    query: Option<String>,
    times: usize,
    skip: usize,
}

impl Rule {
    /// Matches every request (except a CONNECT), once.
    pub fn any() -> Rule {
        Rule {
            method: None,
            path: None,
            query: None,
            times: 1,
            skip: 0,
        }
    }

    /// The method is `m` (case-insensitive). Only `method("CONNECT")`
    /// matches a CONNECT.
    pub fn method(mut self, m: &str) -> Rule {
        self.method = Some(m.to_string());
        self
    }

    /// The origin-form path (no query) contains `s`; for a CONNECT, its
    /// `host:port` does.
    pub fn path_contains(mut self, s: &str) -> Rule {
        self.path = Some(s.to_string());
        self
    }

    /// The query string (without `?`) contains `s`.
    pub fn query_contains(mut self, s: &str) -> Rule {
        self.query = Some(s.to_string());
        self
    }

    /// Applies to the next `n` matching requests (default 1);
    /// `usize::MAX` means forever.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    /// First lets `n` matching requests past this rule untouched.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        let method_ok = match &self.method {
            Some(m) => m.eq_ignore_ascii_case(method),
            None => !method.eq_ignore_ascii_case("CONNECT"),
        };
        method_ok
            && self.path.as_deref().is_none_or(|p| path.contains(p))
            && self.query.as_deref().is_none_or(|q| query.contains(q))
    }
}

/// The seeded soak of [`FaultProxy::random_faults`].
struct Random {
    x: u64,
    per_mille: u32,
    kinds: Vec<Fault>,
}

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.x;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.x = x;
        x
    }

    fn draw(&mut self) -> Option<Fault> {
        let roll = self.next() % 1000;
        if self.kinds.is_empty() || roll >= u64::from(self.per_mille) {
            return None;
        }
        let i = self.next() % self.kinds.len() as u64;
        self.kinds.get(usize::try_from(i).ok()?).cloned()
    }
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, Fault)>,
    random: Option<Random>,
    seen: Vec<Seen>,
    faults_applied: usize,
    connects: Vec<String>,
    /// Open sockets (clients and upstreams), so that Drop can shut them.
    conns: HashMap<u64, TcpStream>,
    next_conn: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn set_status(&self, idx: usize, status: u16) {
        if let Some(seen) = self.state().seen.get_mut(idx) {
            seen.status = Some(status);
        }
    }

    /// Records a request and picks its fault; gives its index in `seen`.
    fn arrive(&self, req: &Request) -> (usize, Option<Fault>) {
        let connect = req.is_connect();
        let (path, query) = if connect {
            (req.target.as_str(), "")
        } else {
            split_target(&req.target)
        };
        let mut guard = self.state();
        let st = &mut *guard;
        let mut fault = None;
        for (rule, f) in &mut st.rules {
            if rule.times == 0 || !rule.matches(&req.method, path, query) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if rule.times != usize::MAX {
                rule.times -= 1;
            }
            fault = Some(f.clone());
            break;
        }
        if fault.is_none() && !connect {
            fault = st.random.as_mut().and_then(Random::draw);
        }
        if fault.is_some() {
            st.faults_applied += 1;
        }
        if connect {
            st.connects.push(req.target.clone());
        }
        st.seen.push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            host: header(&req.headers, "host")
                .map(str::to_string)
                .or_else(|| absolute_authority(&req.target).map(str::to_string)),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect(),
            status: None,
            fault: fault.as_ref().map(|f| format!("{f:?}")),
        });
        (st.seen.len() - 1, fault)
    }
}

/// Keeps a socket in the shared table while it lives.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Registration {
    fn new(shared: &Arc<Shared>, stream: &TcpStream) -> Registration {
        let mut st = shared.state();
        st.next_conn += 1;
        let id = st.next_conn;
        if let Ok(clone) = stream.try_clone() {
            st.conns.insert(id, clone);
        }
        Registration {
            shared: shared.clone(),
            id,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.state().conns.remove(&self.id);
    }
}

/// The running proxy. Dropping it stops the listener and shuts every open
/// connection.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a random loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            state: Mutex::default(),
        });
        let for_thread = shared.clone();
        let accept = thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(listener, for_thread))
            .expect("spawn the fault proxy");
        FaultProxy {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a rule after the existing ones.
    pub fn inject(&self, rule: Rule, fault: Fault) {
        self.shared.state().rules.push((rule, fault));
    }

    /// Removes every rule and the random soak; the record stays.
    pub fn clear(&self) {
        let mut st = self.shared.state();
        st.rules.clear();
        st.random = None;
    }

    /// Every request in arrival order (CONNECTs and tunnelled ones included).
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state().seen.clone()
    }

    /// How many requests got a fault.
    pub fn faults_applied(&self) -> usize {
        self.shared.state().faults_applied
    }

    /// The `host:port` of every CONNECT, in arrival order.
    pub fn connects(&self) -> Vec<String> {
        self.shared.state().connects.clone()
    }

    /// From now on each request no rule applies to gets, with probability
    /// `per_mille`/1000, one of `kinds`, both drawn from a xorshift seeded
    /// with `seed`: the same requests in the same order get the same faults.
    /// Replaces an earlier soak.
    pub fn random_faults(&self, seed: u64, per_mille: u32, kinds: Vec<Fault>) {
        self.shared.state().random = Some(Random {
            x: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
            per_mille: per_mille.min(1000),
            kinds,
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let conns: Vec<TcpStream> = self.shared.state().conns.drain().map(|(_, s)| s).collect();
        for conn in conns {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopped() {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let reg = Registration::new(&shared, &stream);
        let shared = shared.clone();
        let _ = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || Conn::new(stream, reg, shared).serve());
    }
}

// ---------------------------------------------------------------- HTTP

struct Head {
    start: String,
    /// Names as received.
    headers: Vec<(String, String)>,
}

struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn parse(head: Head) -> Result<Request, String> {
        let mut parts = head.start.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("bad request line {:?}", head.start));
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(method)
            || target.is_empty()
            || !target.bytes().all(|b| b.is_ascii_graphic())
            || !version.starts_with("HTTP/1.")
        {
            return Err(format!("bad request line {:?}", head.start));
        }
        Ok(Request {
            method: method.to_string(),
            target: target.to_string(),
            version: version.to_string(),
            headers: head.headers,
        })
    }

    fn is_connect(&self) -> bool {
        self.method.eq_ignore_ascii_case("CONNECT")
    }

    fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }

    fn wants_close(&self) -> bool {
        has_token(&self.headers, "connection", "close")
            || (self.version == "HTTP/1.0" && !has_token(&self.headers, "connection", "keep-alive"))
    }

    /// The request as the upstream gets it: origin-form, proxy headers and
    /// `Expect: 100-continue` (answered by us) removed, Host added if missing.
    fn upstream_bytes(&self, framing: Framing, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "{} {} {}\r\n",
            self.method,
            origin_form(&self.target),
            self.version
        );
        for (name, value) in &self.headers {
            let drop = match name.to_ascii_lowercase().as_str() {
                "proxy-connection" | "proxy-authorization" => true,
                "expect" => value.eq_ignore_ascii_case("100-continue"),
                "content-length" => framing == Framing::Chunked,
                _ => false,
            };
            if !drop {
                let _ = write!(out, "{name}: {value}\r\n");
            }
        }
        if header(&self.headers, "host").is_none() {
            if let Some(authority) = absolute_authority(&self.target) {
                let _ = write!(out, "Host: {authority}\r\n");
            }
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

struct Response {
    /// The status line as received.
    start: String,
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    /// The content (chunked framing removed).
    body: Vec<u8>,
    /// The upstream connection cannot be used again.
    close: bool,
}

impl Response {
    /// The response for the client; with `cut`, only that much of the body.
    fn client_bytes(&self, cut: Option<usize>) -> Vec<u8> {
        let mut head = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if cut.is_some() && self.framing == Framing::UntilClose {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        let body = match cut {
            Some(n) => self.body.get(..n).unwrap_or(&self.body),
            None => &self.body,
        };
        match self.framing {
            Framing::Empty => {}
            Framing::Length(_) | Framing::UntilClose => out.extend_from_slice(body),
            Framing::Chunked => {
                if !self.body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                    out.extend_from_slice(body);
                    if cut.is_none() {
                        out.extend_from_slice(b"\r\n");
                    }
                }
                if cut.is_none() {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
        }
        out
    }
}

/// What a connection does after an exchange.
enum Next {
    /// Read the next request.
    Keep,
    /// Shut down our side and let the client hang up.
    Close,
    /// Reset the connection.
    Abort,
    /// Just drop the connection.
    Done,
}

struct Upstream {
    _reg: Registration,
    reader: BufReader<TcpStream>,
    /// Not used for a request yet.
    fresh: bool,
}

impl Upstream {
    fn new(stream: TcpStream, shared: &Arc<Shared>) -> Upstream {
        Upstream {
            _reg: Registration::new(shared, &stream),
            reader: BufReader::new(stream),
            fresh: true,
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    upstream: Option<Upstream>,
    // Dropped before `client`, so that an abort closes the last descriptor.
    _reg: Registration,
    client: BufReader<TcpStream>,
    abort: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.abort {
            set_linger_zero(self.client.get_ref());
        }
    }
}

impl Conn {
    fn new(stream: TcpStream, reg: Registration, shared: Arc<Shared>) -> Conn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        Conn {
            shared,
            upstream: None,
            _reg: reg,
            client: BufReader::new(stream),
            abort: false,
        }
    }

    fn serve(mut self) {
        let next = loop {
            if self.shared.stopped() {
                break Next::Done;
            }
            let next = match read_head(&mut self.client) {
                Ok(None) => Next::Done,
                Ok(Some(head)) => self.handle(head),
                Err(e) => self.reply_error(None, 400, &format!("bad request: {e}")),
            };
            if !matches!(next, Next::Keep) {
                break next;
            }
        };
        match next {
            Next::Close => self.close_gracefully(),
            Next::Abort => self.abort = true,
            Next::Keep | Next::Done => {}
        }
    }

    fn send(&self, bytes: &[u8]) -> bool {
        let mut w = self.client.get_ref();
        w.write_all(bytes).and_then(|()| w.flush()).is_ok()
    }

    fn handle(&mut self, head: Head) -> Next {
        let req = match Request::parse(head) {
            Ok(r) => r,
            Err(msg) => return self.reply_error(None, 400, &msg),
        };
        if req.is_connect() {
            return self.connect(&req);
        }
        let (idx, fault) = self.shared.arrive(&req);
        let framing = match request_framing(&req.headers) {
            Ok(f) => f,
            Err((status, msg)) => return self.reply_error(Some(idx), status, msg),
        };
        if framing != Framing::Empty
            && header(&req.headers, "expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && !self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        {
            return Next::Done;
        }
        if fault == Some(Fault::ResetDuringUpload) {
            read_partial_body(&mut self.client, framing);
            return Next::Abort;
        }
        let mut body = Vec::new();
        let read = match framing {
            Framing::Length(n) => read_exact_len(&mut self.client, n, &mut body),
            Framing::Chunked => read_chunked(&mut self.client, Some(&mut body), None, u64::MAX),
            Framing::Empty | Framing::UntilClose => Ok(()),
        };
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return self.reply_error(Some(idx), 400, &format!("bad request body: {e}"))
            }
            Err(_) => return Next::Done,
        }
        let close = req.wants_close();
        match fault {
            Some(Fault::Status(status)) => self.reply(idx, &req, status, None, close),
            Some(Fault::SlowDown) => self.reply(idx, &req, 503, Some("SlowDown"), close),
            Some(Fault::Xml(status, code)) => self.reply(idx, &req, status, Some(code), close),
            Some(Fault::ResetBeforeResponse) => Next::Abort,
            Some(Fault::Stall(d)) => self.stall(d),
            other => self.forward(idx, &req, framing, &body, other),
        }
    }

    fn forward(
        &mut self,
        idx: usize,
        req: &Request,
        framing: Framing,
        body: &[u8],
        fault: Option<Fault>,
    ) -> Next {
        let bytes = req.upstream_bytes(framing, body);
        let mut resp = match self.roundtrip(&bytes, req.is_head()) {
            Ok(r) => r,
            Err(msg) => return self.reply_error(Some(idx), 502, &format!("fault proxy: {msg}")),
        };
        self.shared.set_status(idx, resp.status);
        let keep = !resp.close && !req.wants_close();
        let half = resp.body.len() / 2;
        match fault {
            Some(Fault::ShortBody) => {
                self.send(&resp.client_bytes(Some(half)));
                Next::Close
            }
            Some(Fault::ResetDuringDownload) => {
                if self.send(&resp.client_bytes(Some(half))) {
                    thread::sleep(BEFORE_RESET);
                }
                Next::Abort
            }
            _ => {
                if fault == Some(Fault::CorruptBody) {
                    if let Some(b) = resp.body.get_mut(half) {
                        *b ^= 0xFF;
                    }
                }
                match (self.send(&resp.client_bytes(None)), keep) {
                    (false, _) => Next::Done,
                    (true, true) => Next::Keep,
                    (true, false) => Next::Close,
                }
            }
        }
    }

    /// Sends a request upstream and reads the whole answer, reconnecting
    /// once when a kept-alive connection turns out to be closed.
    fn roundtrip(&mut self, bytes: &[u8], is_head: bool) -> Result<Response, String> {
        for attempt in 0..2 {
            let reused = self.upstream_conn()?;
            let Some(up) = self.upstream.as_mut() else {
                return Err("no upstream connection".into());
            };
            let mut w = up.reader.get_ref();
            let outcome = match w.write_all(bytes).and_then(|()| w.flush()) {
                Err(e) => Err((true, format!("sending the request upstream: {e}"))),
                Ok(()) => match read_response(&mut up.reader, is_head) {
                    Ok(Some(resp)) => Ok(resp),
                    Ok(None) => Err((true, "the upstream closed without answering".into())),
                    Err(msg) => Err((false, msg)),
                },
            };
            match outcome {
                Ok(resp) => {
                    match self.upstream.as_mut() {
                        Some(up) if !resp.close => up.fresh = false,
                        _ => self.upstream = None,
                    }
                    return Ok(resp);
                }
                Err((retryable, msg)) => {
                    self.upstream = None;
                    if !(retryable && reused && attempt == 0) {
                        return Err(msg);
                    }
                }
            }
        }
        Err("no answer from the upstream".into())
    }

    /// Makes sure there is an upstream connection; true when it is one
    /// kept alive from an earlier request.
    fn upstream_conn(&mut self) -> Result<bool, String> {
        if let Some(up) = &self.upstream {
            if up.fresh {
                return Ok(false);
            }
            if up.reader.buffer().is_empty() && is_open(up.reader.get_ref()) {
                return Ok(true);
            }
            self.upstream = None;
        }
        let stream = connect_upstream(&self.shared)?;
        self.upstream = Some(Upstream::new(stream, &self.shared));
        Ok(false)
    }

    fn connect(&mut self, req: &Request) -> Next {
        let (idx, fault) = self.shared.arrive(req);
        match fault {
            Some(Fault::Status(status)) => return self.reply(idx, req, status, None, true),
            Some(Fault::SlowDown) => return self.reply(idx, req, 503, Some("SlowDown"), true),
            Some(Fault::Xml(status, code)) => {
                return self.reply(idx, req, status, Some(code), true)
            }
            Some(Fault::Stall(d)) => return self.stall(d),
            Some(_) => return Next::Abort,
            None => {}
        }
        let stream = match connect_upstream(&self.shared) {
            Ok(s) => s,
            Err(msg) => return self.reply_error(Some(idx), 502, &format!("fault proxy: {msg}")),
        };
        self.upstream = None;
        self.shared.set_status(idx, 200);
        if !self.send(b"HTTP/1.1 200 Connection established\r\n\r\n") {
            return Next::Done;
        }
        let _ = self.client.get_ref().set_read_timeout(Some(SNIFF));
        let first = match self.client.fill_buf() {
            Ok(buf) => match buf.first() {
                Some(&b) => Some(b),
                None => return Next::Done,
            },
            Err(_) => None,
        };
        let _ = self.client.get_ref().set_read_timeout(Some(IO_TIMEOUT));
        if first.is_some_and(|b| b.is_ascii_uppercase()) {
            // Plain HTTP in the tunnel: serve it like any other request.
            self.upstream = Some(Upstream::new(stream, &self.shared));
            return Next::Keep;
        }
        self.tunnel(stream);
        Next::Done
    }

    /// Copies bytes both ways until both sides are done.
    fn tunnel(&mut self, upstream: TcpStream) {
        let _reg = Registration::new(&self.shared, &upstream);
        let (Ok(mut up_read), Ok(mut client_write)) =
            (upstream.try_clone(), self.client.get_ref().try_clone())
        else {
            return;
        };
        let back = thread::Builder::new()
            .name("fault-proxy-tunnel".into())
            .spawn(move || {
                let _ = io::copy(&mut up_read, &mut client_write);
                let _ = client_write.shutdown(Shutdown::Write);
            });
        let _ = io::copy(&mut self.client, &mut &upstream);
        let _ = upstream.shutdown(Shutdown::Write);
        if let Ok(back) = back {
            let _ = back.join();
        }
    }

    /// Answers an injected status; `code` makes the body an S3 error XML.
    fn reply(
        &mut self,
        idx: usize,
        req: &Request,
        status: u16,
        code: Option<&str>,
        close: bool,
    ) -> Next {
        let body = code.map(s3_error_xml).unwrap_or_default();
        let ctype = code.map(|_| "application/xml");
        self.shared.set_status(idx, status);
        let bytes = reply_bytes(status, ctype, body.as_bytes(), req.is_head(), close);
        match (self.send(&bytes), close) {
            (false, _) => Next::Done,
            (true, false) => Next::Keep,
            (true, true) => Next::Close,
        }
    }

    /// Answers the proxy's own error (text body) and closes.
    fn reply_error(&mut self, idx: Option<usize>, status: u16, msg: &str) -> Next {
        if let Some(idx) = idx {
            self.shared.set_status(idx, status);
        }
        let bytes = reply_bytes(status, Some("text/plain"), msg.as_bytes(), false, true);
        self.send(&bytes);
        Next::Close
    }

    /// Sends nothing for `d` (less if the proxy stops), then closes.
    fn stall(&self, d: Duration) -> Next {
        let end = Instant::now() + d;
        while !self.shared.stopped() {
            let now = Instant::now();
            if now >= end {
                return Next::Close;
            }
            thread::sleep((end - now).min(Duration::from_millis(10)));
        }
        Next::Done
    }

    /// Shuts our side, then reads until the client hangs up (or LINGER), so
    /// that unread bytes do not turn the close into a reset.
    fn close_gracefully(&mut self) {
        let stream = self.client.get_ref();
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(LINGER));
        let end = Instant::now() + LINGER;
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            match self.client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

fn connect_upstream(shared: &Shared) -> Result<TcpStream, String> {
    if shared.stopped() {
        return Err("the proxy is stopping".into());
    }
    let stream = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT)
        .map_err(|e| format!("connecting to the upstream {}: {e}", shared.upstream))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    Ok(stream)
}

/// False when the peer has closed (or sent something unasked).
fn is_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let idle = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && idle
}

/// Makes the coming close send a TCP reset (SO_LINGER with a zero timeout).
/// std's `set_linger` is unstable, hence the direct call.
#[cfg(any(
    all(
        any(target_os = "linux", target_os = "android"),
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "loongarch64",
            target_arch = "powerpc64",
            target_arch = "s390x"
        )
    ),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
))]
fn set_linger_zero(stream: &TcpStream) {
    use std::ffi::{c_int, c_void};
    use std::os::fd::AsRawFd;

    #[repr(C)]
    struct Linger {
        l_onoff: c_int,
        l_linger: c_int,
    }
    extern "C" {
        fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const SOL_SOCKET_SO_LINGER: (c_int, c_int) = (1, 13);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const SOL_SOCKET_SO_LINGER: (c_int, c_int) = (0xffff, 0x0080);

    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let (level, name) = SOL_SOCKET_SO_LINGER;
    // SAFETY: the descriptor is an open socket owned by `stream`, and the
    // pointer and length describe a live `struct linger`.
    unsafe {
        setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            (&linger as *const Linger).cast(),
            std::mem::size_of::<Linger>() as u32,
        );
    }
}

/// Elsewhere the close is a plain FIN.
#[cfg(not(any(
    all(
        any(target_os = "linux", target_os = "android"),
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "loongarch64",
            target_arch = "powerpc64",
            target_arch = "s390x"
        )
    ),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
fn set_linger_zero(_stream: &TcpStream) {}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn eof() -> io::Error {
    io::Error::from(io::ErrorKind::UnexpectedEof)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Appends one line, terminator included; 0 at end of input.
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', out)?;
    if n > 0 && !out.ends_with(b"\n") {
        return Err(if n as u64 == MAX_LINE {
            invalid("line too long")
        } else {
            eof()
        });
    }
    Ok(n)
}

/// Reads a start line and headers; `Ok(None)` when the peer is gone before
/// sending anything.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = Vec::new();
    let mut blank = 0;
    loop {
        line.clear();
        match read_line(r, &mut line) {
            Ok(0) => return Ok(None),
            Err(_) if line.is_empty() => return Ok(None),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if !trim_crlf(&line).is_empty() {
            break;
        }
        blank += 1;
        if blank > 8 {
            return Err(invalid("too many blank lines"));
        }
    }
    let start = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_line(r, &mut line)? == 0 {
            return Err(eof());
        }
        let text = trim_crlf(&line);
        if text.is_empty() {
            return Ok(Some(Head { start, headers }));
        }
        if headers.len() == MAX_HEADERS {
            return Err(invalid("too many headers"));
        }
        let text = String::from_utf8_lossy(text);
        let Some((name, value)) = text.split_once(':') else {
            return Err(invalid("header line without a colon"));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
}

/// First value of a header, by case-insensitive name.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// All values of a header, as one comma-separated list.
fn header_list(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header_list(headers, name)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn is_chunked(te: &str) -> bool {
    te.rsplit(',')
        .next()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// `None` without a Content-Length; `Some(Err)` when the values are bad or differ.
fn content_length(headers: &[(String, String)]) -> Option<Result<u64, ()>> {
    let list = header_list(headers, "content-length")?;
    let mut len = None;
    for v in list.split(',').map(str::trim) {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Err(()));
        }
        let Ok(n) = v.parse::<u64>() else {
            return Some(Err(()));
        };
        if len.is_some_and(|l| l != n) {
            return Some(Err(()));
        }
        len = Some(n);
    }
    len.map(Ok)
}

fn request_framing(headers: &[(String, String)]) -> Result<Framing, (u16, &'static str)> {
    if let Some(te) = header_list(headers, "transfer-encoding") {
        return if is_chunked(&te) {
            Ok(Framing::Chunked)
        } else {
            Err((501, "fault proxy: unsupported Transfer-Encoding"))
        };
    }
    match content_length(headers) {
        None | Some(Ok(0)) => Ok(Framing::Empty),
        Some(Ok(n)) => Ok(Framing::Length(n)),
        Some(Err(())) => Err((400, "fault proxy: bad Content-Length")),
    }
}

fn response_framing(
    status: u16,
    is_head: bool,
    headers: &[(String, String)],
) -> Result<Framing, String> {
    if is_head || status == 204 || status == 304 || status < 200 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = header_list(headers, "transfer-encoding") {
        return Ok(if is_chunked(&te) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    match content_length(headers) {
        None => Ok(Framing::UntilClose),
        Some(Ok(n)) => Ok(Framing::Length(n)),
        Some(Err(())) => Err("the upstream sent a bad Content-Length".into()),
    }
}

fn read_exact_len(r: &mut impl Read, n: u64, out: &mut Vec<u8>) -> io::Result<()> {
    let got = r.take(n).read_to_end(out)?;
    if got as u64 == n {
        Ok(())
    } else {
        Err(eof())
    }
}

fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let line = trim_crlf(line);
    let size = line.split(|&b| b == b';').next().unwrap_or(line);
    let size = size.trim_ascii();
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("bad chunk size"));
    }
    let text = std::str::from_utf8(size).map_err(|_| invalid("bad chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| invalid("bad chunk size"))
}

/// Reads a chunked body, appending the bytes as sent to `raw` and the
/// content to `content` (either may be `None`). Stops early once `limit`
/// content bytes are read.
fn read_chunked(
    r: &mut impl BufRead,
    mut raw: Option<&mut Vec<u8>>,
    mut content: Option<&mut Vec<u8>>,
    limit: u64,
) -> io::Result<()> {
    let mut total = 0u64;
    let mut line = Vec::new();
    let mut data = Vec::new();
    loop {
        line.clear();
        if read_line(r, &mut line)? == 0 {
            return Err(eof());
        }
        if let Some(raw) = raw.as_deref_mut() {
            raw.extend_from_slice(&line);
        }
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            for _ in 0..=MAX_HEADERS {
                line.clear();
                if read_line(r, &mut line)? == 0 {
                    return Err(eof());
                }
                if let Some(raw) = raw.as_deref_mut() {
                    raw.extend_from_slice(&line);
                }
                if trim_crlf(&line).is_empty() {
                    return Ok(());
                }
            }
            return Err(invalid("too many trailers"));
        }
        let want = size.min(limit.saturating_sub(total));
        data.clear();
        read_exact_len(r, want, &mut data)?;
        total += want;
        if let Some(raw) = raw.as_deref_mut() {
            raw.extend_from_slice(&data);
        }
        if let Some(content) = content.as_deref_mut() {
            content.extend_from_slice(&data);
        }
        if total >= limit {
            return Ok(());
        }
        line.clear();
        if read_line(r, &mut line)? == 0 {
            return Err(eof());
        }
        if !trim_crlf(&line).is_empty() {
            return Err(invalid("chunk data not followed by CRLF"));
        }
        if let Some(raw) = raw.as_deref_mut() {
            raw.extend_from_slice(&line);
        }
    }
}

fn read_partial_body(r: &mut impl BufRead, framing: Framing) {
    let mut sink = Vec::new();
    let _ = match framing {
        Framing::Length(n) => read_exact_len(r, (n / 2).min(UPLOAD_RESET_MAX), &mut sink),
        Framing::Chunked => read_chunked(r, None, Some(&mut sink), UPLOAD_RESET_MAX),
        Framing::Empty | Framing::UntilClose => Ok(()),
    };
}

fn parse_status(start: &str) -> Result<u16, String> {
    let bad = || format!("the upstream sent a bad status line {start:?}");
    let (version, rest) = start.split_once(' ').ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    if !version.starts_with("HTTP/1.") || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    code.parse().map_err(|_| bad())
}

/// Reads a whole response; `Ok(None)` when the upstream sent nothing.
fn read_response(r: &mut impl BufRead, is_head: bool) -> Result<Option<Response>, String> {
    let mut interim = false;
    let (head, status) = loop {
        let head = match read_head(r) {
            Ok(Some(head)) => head,
            Ok(None) if !interim => return Ok(None),
            Ok(None) => return Err("the upstream closed after an interim response".into()),
            Err(e) => return Err(format!("reading the response head: {e}")),
        };
        let status = parse_status(&head.start)?;
        if status == 101 {
            return Err("the upstream switched protocols, which the proxy cannot follow".into());
        }
        if status >= 200 {
            break (head, status);
        }
        interim = true;
    };
    let framing = response_framing(status, is_head, &head.headers)?;
    let mut body = Vec::new();
    let read = match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => read_exact_len(r, n, &mut body),
        Framing::Chunked => read_chunked(r, None, Some(&mut body), u64::MAX),
        Framing::UntilClose => r.read_to_end(&mut body).map(drop),
    };
    read.map_err(|e| format!("reading the response body: {e}"))?;
    let http10 = head.start.starts_with("HTTP/1.0");
    let close = framing == Framing::UntilClose
        || has_token(&head.headers, "connection", "close")
        || (http10 && !has_token(&head.headers, "connection", "keep-alive"));
    Ok(Some(Response {
        start: head.start,
        status,
        headers: head.headers,
        framing,
        body,
        close,
    }))
}

/// `(path, query)` of a target; `("", "")` for authority-form and `*`.
fn split_target(target: &str) -> (&str, &str) {
    let rest = if target.starts_with('/') {
        target
    } else if let Some(i) = target.find("://") {
        let after = target.get(i + 3..).unwrap_or("");
        match after.find(['/', '?', '#']) {
            Some(j) => after.get(j..).unwrap_or(""),
            None => "",
        }
    } else {
        return ("", "");
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// The authority (`host:port`, no userinfo) of an absolute-form target.
fn absolute_authority(target: &str) -> Option<&str> {
    let i = target.find("://")?;
    let after = target.get(i + 3..)?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = after.get(..end)?;
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    (!authority.is_empty()).then_some(authority)
}

fn origin_form(target: &str) -> String {
    if target.starts_with('/') || target == "*" {
        return target.to_string();
    }
    let (path, query) = split_target(target);
    if query.is_empty() && !target.contains('?') {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

fn s3_error_xml(code: &str) -> String {
    let message = match code {
        "SlowDown" => "Please reduce your request rate.",
        "InternalError" => "We encountered an internal error. Please try again.",
        "ServiceUnavailable" => "Service is unable to handle request.",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "AccessDenied" => "Access Denied",
        "RequestTimeout" => {
            "Your socket connection to the server was not read from or written to within the timeout period."
        }
        _ => "Injected by the fault proxy.",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

fn reply_bytes(
    status: u16,
    ctype: Option<&str>,
    body: &[u8],
    is_head: bool,
    close: bool,
) -> Vec<u8> {
    let bodiless = status == 204 || status == 304 || status < 200;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if !bodiless {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
        if let Some(ctype) = ctype.filter(|_| !body.is_empty()) {
            let _ = write!(head, "Content-Type: {ctype}\r\n");
        }
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !bodiless && !is_head {
        out.extend_from_slice(body);
    }
    out
}
