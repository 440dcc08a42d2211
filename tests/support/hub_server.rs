//! A fake Semaphore artifact backend for integration tests.
//!
//! [`HubServer`] runs two loopback HTTP/1.1 listeners on 127.0.0.1 with
//! random ports, one thread per connection, keep-alive supported:
//!
//! * the **Hub** (`POST /api/v1/artifacts`, see [`HubServer::org_url`]),
//!   which checks the raw `authorization` token and answers with signed URLs;
//! * the **object storage** those URLs point at, which checks the signature
//!   against the request's method and key and keeps objects as files under
//!   [`HubServer::storage_dir`].
//!
//! Tests can inspect what reached either side ([`HubServer::hub_calls`],
//! [`HubServer::storage_requests`]) and inject faults: failing statuses,
//! storage latency, rewriting the Hub's JSON answer, or an `error` message
//! for pulls and yanks of missing paths. Every signature starts with the
//! literal `SIGSECRET` so tests can grep the CLI's output for leaked URLs.
//! Only std and `serde_json` are used. Dropping the server stops it and
//! removes its files.
#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HUB_PATH: &str = "/api/v1/artifacts";
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;

/// One request that reached the storage listener. Header names are lowercased.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Recorded {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One well-formed call to the Hub endpoint (recorded before auth and fault injection).
#[derive(Clone, Debug)]
pub struct HubCall {
    pub paths: Vec<String>,
    /// The request's `type`, 0 when absent.
    pub kind: u64,
    pub type_present: bool,
    pub authorization: Option<String>,
}

type Hook = Arc<dyn Fn(&HubCall, &mut Value) + Send + Sync>;

/// What the listeners and the test share; `state` holds everything mutable.
struct Shared {
    token: String,
    secret: u64,
    objects: PathBuf,
    tmp: PathBuf,
    storage_base: String,
    stop: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    storage_log: Vec<Recorded>,
    hub_log: Vec<HubCall>,
    storage_fail: (usize, u16),
    hub_fail: (usize, u16),
    delay: Duration,
    hook: Option<Hook>,
    missing_error: Option<String>,
    /// Send GCS's `x-goog-hash` on GETs: `Some(true)` the right MD5,
    /// `Some(false)` a wrong one.
    goog_md5: Option<bool>,
    /// Open connections, so that Drop can shut them down.
    conns: HashMap<usize, TcpStream>,
    next_conn: usize,
    storage_conns: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test hook must not wedge the server.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake backend. Dropping it stops the listeners, closes open
/// connections and removes the storage directory.
pub struct HubServer {
    shared: Arc<Shared>,
    root: PathBuf,
    hub_addr: SocketAddr,
    storage_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Side {
    Hub,
    Storage,
}

impl HubServer {
    /// Starts both listeners with a random token and an empty storage.
    pub fn start() -> HubServer {
        let root = std::env::temp_dir().join(format!(
            "artifact-hub-{}-{:016x}",
            std::process::id(),
            random_u64()
        ));
        let (objects, tmp) = (root.join("objects"), root.join("tmp"));
        std::fs::create_dir_all(&objects).expect("create storage dir");
        std::fs::create_dir_all(&tmp).expect("create storage tmp dir");
        let hub = TcpListener::bind("127.0.0.1:0").expect("bind hub listener");
        let storage = TcpListener::bind("127.0.0.1:0").expect("bind storage listener");
        let hub_addr = hub.local_addr().expect("hub addr");
        let storage_addr = storage.local_addr().expect("storage addr");
        let shared = Arc::new(Shared {
            token: format!("tok{:016x}", random_u64()),
            secret: random_u64(),
            objects,
            tmp,
            storage_base: format!("http://{storage_addr}"),
            stop: AtomicBool::new(false),
            state: Mutex::default(),
        });
        let threads = [(hub, Side::Hub), (storage, Side::Storage)]
            .into_iter()
            .map(|(listener, side)| {
                let shared = shared.clone();
                thread::spawn(move || accept_loop(listener, shared, side))
            })
            .collect();
        HubServer {
            shared,
            root,
            hub_addr,
            storage_addr,
            threads,
        }
    }

    /// The organization URL to give the CLI: `http://127.0.0.1:PORT`.
    pub fn org_url(&self) -> String {
        format!("http://{}", self.hub_addr)
    }

    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    /// Objects live at `<storage_dir>/<key>`.
    pub fn storage_dir(&self) -> PathBuf {
        self.shared.objects.clone()
    }

    /// Stores an object directly, bypassing HTTP. Panics on an unsafe key.
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        assert!(safe_key(key), "put_object: unsafe key {key:?}");
        write_object(&self.shared, key, bytes).expect("put_object: write");
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        if !safe_key(key) {
            return None;
        }
        std::fs::read(self.shared.objects.join(key)).ok()
    }

    /// All stored keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        list_keys(&self.shared.objects)
    }

    /// Every storage request in arrival order, including fault-injected ones.
    pub fn storage_requests(&self) -> Vec<Recorded> {
        self.shared.state().storage_log.clone()
    }

    pub fn hub_calls(&self) -> Vec<HubCall> {
        self.shared.state().hub_log.clone()
    }

    /// How many TCP connections the storage listener has accepted so far.
    pub fn storage_connections(&self) -> usize {
        self.shared.state().storage_conns
    }

    /// The next `n` storage requests answer `status` with body `injected`.
    pub fn fail_storage(&self, n: usize, status: u16) {
        self.shared.state().storage_fail = (n, status);
    }

    /// The next `n` calls to the Hub endpoint answer `status` with body `injected`.
    pub fn fail_hub(&self, n: usize, status: u16) {
        self.shared.state().hub_fail = (n, status);
    }

    /// Sleep this long before answering every storage request.
    pub fn set_storage_delay(&self, d: Duration) {
        self.shared.state().delay = d;
    }

    /// Called with every successful Hub answer (`{"urls":[..],"error":".."}`)
    /// before it is sent; it may rewrite it freely.
    pub fn set_hub_hook(&self, hook: impl Fn(&HubCall, &mut Value) + Send + Sync + 'static) {
        self.shared.state().hook = Some(Arc::new(hook));
    }

    /// When `Some`, a pull or yank of a path without objects answers
    /// `{"urls":[],"error":msg}` instead of an empty, error-free list.
    /// Makes storage GETs state an MD5 in `x-goog-hash`, as GCS does:
    /// the right one, or (`honest` false) a wrong one.
    pub fn set_goog_md5(&self, honest: Option<bool>) {
        self.shared.state().goog_md5 = honest;
    }

    pub fn set_missing_error(&self, msg: Option<String>) {
        self.shared.state().missing_error = msg;
    }

    /// A valid signed URL for `method` (HEAD, PUT, GET, DELETE) on `key`.
    pub fn signed_url(&self, method: &str, key: &str) -> String {
        signed_url(&self.shared, method, key)
    }

    /// A `'static` signer for hooks: `signer("GET", key)` gives a signed URL.
    pub fn url_signer(&self) -> impl Fn(&str, &str) -> String + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |method, key| signed_url(&shared, method, key)
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for addr in [self.hub_addr, self.storage_addr] {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for (_, conn) in self.shared.state().conns.drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn random_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, COUNTER.fetch_add(1, Ordering::SeqCst)))
}

fn sign(shared: &Shared, method: &str, key: &str) -> String {
    let part = |salt: u8| {
        let mut h = DefaultHasher::new();
        (shared.secret, salt, method, key).hash(&mut h);
        h.finish()
    };
    format!("SIGSECRET{:016x}{:016x}", part(1), part(2))
}

fn signed_url(shared: &Shared, method: &str, key: &str) -> String {
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let sig = sign(shared, method, key);
    format!(
        "{}/{}?Expires={expires}&Signature={sig}",
        shared.storage_base,
        encode_key(key)
    )
}

/// Percent-encodes every byte but A-Z a-z 0-9 - . _ ~ and the `/` separators.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A key that maps to a file strictly inside the storage directory.
fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

fn write_object(shared: &Shared, key: &str, bytes: &[u8]) -> io::Result<()> {
    let dest = shared.objects.join(key);
    let tmp = shared.tmp.join(format!("{:016x}", random_u64()));
    std::fs::write(&tmp, bytes)?;
    let result = dest
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::rename(&tmp, &dest));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn list_keys(objects: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), &key, out),
                Ok(t) if t.is_file() => out.push(key),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(objects, "", &mut out);
    out.sort();
    out
}

/// Takes one injected failure, if any are left.
fn take_fault(fault: &mut (usize, u16)) -> Option<u16> {
    (fault.0 > 0).then(|| {
        fault.0 -= 1;
        fault.1
    })
}

// ---------------------------------------------------------------- HTTP layer

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn path_and_query(&self) -> (&str, &str) {
        self.target.split_once('?').unwrap_or((&self.target, ""))
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// For HEAD: the Content-Length to announce without sending a body.
    head_len: Option<u64>,
    /// Close the connection afterwards (e.g. the request body was not consumed).
    close: bool,
    /// An `x-goog-hash` header to send, as GCS does.
    goog_hash: Option<String>,
}

fn resp(status: u16, body: impl Into<Vec<u8>>) -> Response {
    let body = body.into();
    Response {
        status,
        content_type: "text/plain",
        body,
        head_len: None,
        close: false,
        goog_hash: None,
    }
}

fn json_resp(status: u16, v: &Value) -> Response {
    Response {
        content_type: "application/json",
        ..resp(status, v.to_string())
    }
}

fn closing(mut r: Response) -> Response {
    r.close = true;
    r
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, side: Side) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let id = {
            let mut state = shared.state();
            state.next_conn += 1;
            let id = state.next_conn;
            if let Side::Storage = side {
                state.storage_conns += 1;
            }
            if let Ok(clone) = stream.try_clone() {
                state.conns.insert(id, clone);
            }
            id
        };
        let shared = shared.clone();
        let _ = thread::Builder::new().spawn(move || {
            serve_connection(stream, &shared, side);
            shared.state().conns.remove(&id);
        });
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared, side: Side) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let (method, response) = match read_request(&mut reader) {
            Ok(None) => break,
            Ok(Some(req)) => {
                let mut r = match side {
                    Side::Hub => handle_hub(shared, &req, &mut reader),
                    Side::Storage => handle_storage(shared, &req, &mut reader),
                };
                r.close |= req.close;
                (req.method, r)
            }
            Err(msg) => (String::new(), closing(resp(400, msg))),
        };
        if write_response(&mut writer, &method, &response).is_err() || response.close {
            break;
        }
    }
    // Let the client read our answer even if it is still sending a body.
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = io::copy(&mut reader.take(64 << 20), &mut io::sink());
}

fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    match reader.take(MAX_LINE).read_until(b'\n', &mut buf) {
        // EOF, timeout or reset: the client has gone.
        Ok(0) | Err(_) => return Ok(None),
        Ok(_) if !buf.ends_with(b"\n") => return Err("line too long or truncated".into()),
        Ok(_) => {}
    }
    let line = String::from_utf8(buf).map_err(|_| "non-UTF-8 header line".to_string())?;
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// Reads a request line and headers; `Ok(None)` when the client has gone.
fn read_request(reader: &mut impl BufRead) -> Result<Option<Request>, String> {
    let line = loop {
        match read_line(reader) {
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => break l,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(format!("bad request line: {line:?}"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(format!("bad request line: {line:?}"));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or("connection closed inside headers")?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err("too many headers".into());
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(format!("bad header: {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.into(),
        target: target.into(),
        headers,
        close: false,
    };
    let conn = req.header("connection").unwrap_or("").to_ascii_lowercase();
    let has = |t: &str| conn.split(',').any(|c| c.trim() == t);
    req.close = has("close") || (version == "HTTP/1.0" && !has("keep-alive"));
    Ok(Some(req))
}

/// Reads the Content-Length body. `Err` carries the answer to send instead
/// (the connection must then be closed, as the body framing is unknown).
fn read_body(req: &Request, reader: &mut impl Read) -> Result<Option<Vec<u8>>, Response> {
    if req.header("transfer-encoding").is_some() {
        return Err(closing(resp(501, "Transfer-Encoding is not supported")));
    }
    let Some(len) = req.header("content-length") else {
        return Ok(None);
    };
    let len: u64 = len
        .parse()
        .map_err(|_| closing(resp(400, "bad Content-Length")))?;
    let mut body = Vec::new();
    match reader.take(len).read_to_end(&mut body) {
        Ok(n) if n as u64 == len => Ok(Some(body)),
        _ => Err(closing(resp(400, "short request body"))),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(w: &mut impl Write, method: &str, r: &Response) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    let bodiless = r.status == 204 || r.status == 304 || r.status < 200;
    if !bodiless {
        let len = r.head_len.unwrap_or(r.body.len() as u64);
        out.push_str(&format!(
            "content-length: {len}\r\ncontent-type: {}\r\n",
            r.content_type
        ));
    }
    if r.close {
        out.push_str("connection: close\r\n");
    }
    if let Some(hash) = &r.goog_hash {
        out.push_str(&format!("x-goog-hash: crc32c=AAAAAA==,{hash}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !bodiless && method != "HEAD" {
        bytes.extend_from_slice(&r.body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

// ---------------------------------------------------------------- the Hub

fn parse_hub_call(body: &[u8], auth: Option<&str>) -> Result<HubCall, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let paths = v
        .get("paths")
        .and_then(Value::as_array)
        .ok_or("missing \"paths\" array")?;
    let paths = paths
        .iter()
        .map(|p| p.as_str().map(str::to_string).ok_or("non-string path"))
        .collect::<Result<Vec<_>, _>>()?;
    let (kind, type_present) = match v.get("type") {
        None => (0, false),
        Some(t) => (
            t.as_u64()
                .filter(|k| *k <= 3)
                .ok_or("\"type\" must be 0..=3")?,
            true,
        ),
    };
    Ok(HubCall {
        paths,
        kind,
        type_present,
        authorization: auth.map(str::to_string),
    })
}

fn handle_hub(shared: &Shared, req: &Request, reader: &mut impl Read) -> Response {
    let body = match read_body(req, reader) {
        Ok(b) => b.unwrap_or_default(),
        Err(r) => return r,
    };
    if req.path_and_query().0 != HUB_PATH {
        return resp(404, "not found");
    }
    if req.method != "POST" {
        return resp(405, "method not allowed");
    }
    let call = parse_hub_call(&body, req.header("authorization"));
    if let Ok(call) = &call {
        shared.state().hub_log.push(call.clone());
    }
    if let Some(status) = take_fault(&mut shared.state().hub_fail) {
        return resp(status, "injected");
    }
    let call = match call {
        Ok(c) => c,
        Err(msg) => return json_resp(400, &json!({ "error": msg })),
    };
    if call.authorization.as_deref() != Some(shared.token.as_str()) {
        return json_resp(401, &json!({ "error": "unauthorized" }));
    }
    let mut answer = hub_answer(shared, &call);
    let hook = shared.state().hook.clone();
    if let Some(hook) = hook {
        hook(&call, &mut answer);
    }
    json_resp(200, &answer)
}

fn url_entry(shared: &Shared, method: &str, key: &str) -> Value {
    json!({ "url": signed_url(shared, method, key), "method": method })
}

fn hub_answer(shared: &Shared, call: &HubCall) -> Value {
    let entry = |method: &str, key: &str| url_entry(shared, method, key);
    let mut urls = Vec::new();
    let mut missing = false;
    match call.kind {
        0 => {
            for p in &call.paths {
                urls.push(entry("HEAD", p));
                urls.push(entry("PUT", p));
            }
        }
        1 => urls.extend(call.paths.iter().map(|p| entry("PUT", p))),
        _ => {
            let keys = list_keys(&shared.objects);
            for p in &call.paths {
                let p = p.trim_end_matches('/');
                let prefix = format!("{p}/");
                let found: Vec<&String> = keys
                    .iter()
                    .filter(|k| !p.is_empty() && (*k == p || k.starts_with(&prefix)))
                    .collect();
                missing |= found.is_empty();
                for k in found {
                    urls.push(match call.kind {
                        2 => entry("GET", k),
                        _ => json!({ "url": signed_url(shared, "DELETE", k) }),
                    });
                }
            }
        }
    }
    let missing_error = shared.state().missing_error.clone();
    match missing_error {
        Some(msg) if missing => json!({ "urls": [], "error": msg }),
        _ => json!({ "urls": urls, "error": "" }),
    }
}

// ---------------------------------------------------------------- storage

fn handle_storage(shared: &Shared, req: &Request, reader: &mut impl Read) -> Response {
    let (path, query) = req.path_and_query();
    let key = decode(&path[1..]);
    let body = read_body(req, reader);
    shared.state().storage_log.push(Recorded {
        method: req.method.clone(),
        key: key.clone().unwrap_or_else(|| path[1..].to_string()),
        headers: req.headers.clone(),
        body_len: body.as_ref().map_or(0, |b| b.as_ref().map_or(0, Vec::len)),
    });
    let delay = shared.state().delay;
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    if let Some(status) = take_fault(&mut shared.state().storage_fail) {
        return Response {
            close: body.is_err(),
            ..resp(status, "injected")
        };
    }
    let body = match body {
        Ok(None) if req.method == "PUT" => return closing(resp(501, "Content-Length required")),
        Ok(b) => b.unwrap_or_default(),
        Err(r) => return r,
    };
    let Some(key) = key else {
        return resp(400, "bad percent-encoding in path");
    };
    let signature = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "Signature")
        .and_then(|(_, v)| decode(v));
    if signature.as_deref() != Some(sign(shared, &req.method, &key).as_str()) {
        return resp(403, "signature does not match");
    }
    if !safe_key(&key) {
        return resp(400, "unsafe key");
    }
    let file = shared.objects.join(&key);
    match req.method.as_str() {
        "HEAD" | "GET" => match std::fs::metadata(&file) {
            Ok(m) if m.is_file() && req.method == "HEAD" => Response {
                head_len: Some(m.len()),
                ..resp(200, "")
            },
            Ok(m) if m.is_file() => match std::fs::read(&file) {
                Ok(bytes) => {
                    let goog_hash = shared.state().goog_md5.map(|honest| {
                        let digest = if honest {
                            md5::compute(&bytes).0
                        } else {
                            [0u8; 16]
                        };
                        format!(
                            "md5={}",
                            base64::engine::general_purpose::STANDARD.encode(digest)
                        )
                    });
                    Response {
                        content_type: "application/octet-stream",
                        goog_hash,
                        ..resp(200, bytes)
                    }
                }
                Err(e) => resp(500, e.to_string()),
            },
            _ => resp(404, "no such object"),
        },
        "PUT" => {
            if shared.stop.load(Ordering::SeqCst) {
                return closing(resp(503, "shutting down"));
            }
            match write_object(shared, &key, &body) {
                Ok(()) => resp(200, ""),
                Err(e) => resp(500, e.to_string()),
            }
        }
        "DELETE" => {
            let _ = std::fs::remove_file(&file);
            // Prune now-empty parent directories so the key space stays clean.
            let mut dir = file.parent();
            while let Some(d) = dir.filter(|d| *d != shared.objects.as_path()) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            resp(204, "")
        }
        _ => resp(405, "method not allowed"),
    }
}
