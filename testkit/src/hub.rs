//! A Semaphore artifact Hub and the object storage its signed URLs point
//! at, on two loopback listeners of the test kit's HTTP core.
//!
//! The **Hub** (`POST /api/v1/artifacts`, see [`HubServer::org_url`])
//! checks the raw `authorization` token and answers with signed URLs; the
//! **storage** checks each signature against the request's method and key
//! and keeps objects as files under [`HubServer::storage_dir`]. Tests can
//! read what reached either side and inject failures, storage latency, a
//! rewritten Hub answer, an `error` for missing paths, or GCS's
//! `x-goog-hash`. Every signature starts with `SIGSECRET`, so tests can
//! grep the binary's output for leaked URLs. Dropping the server stops it
//! and removes its files.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

use crate::http::{lock, Body, Cut, Handler, Reply, Request, Server};

const HUB_PATH: &str = "/api/v1/artifacts";

/// One well-formed call to the Hub (recorded before auth and faults).
#[derive(Clone, Debug)]
pub struct HubCall {
    pub paths: Vec<String>,
    /// The request's `type`, 0 when absent.
    pub kind: u64,
    pub type_present: bool,
    pub authorization: Option<String>,
}

type Hook = Arc<dyn Fn(&HubCall, &mut Value) + Send + Sync>;

struct Shared {
    token: String,
    secret: u64,
    objects: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    storage_log: Vec<Request>,
    hub_log: Vec<HubCall>,
    storage_fail: (usize, u16),
    hub_fail: (usize, u16),
    delay: Duration,
    hook: Option<Hook>,
    missing_error: Option<String>,
    /// When set, a pull or yank of a path without objects gets this status
    /// and no body, as the Go CLI's own test Hub answers.
    missing_status: Option<u16>,
    /// Where signed URLs point: the storage, or a proxy in front of it.
    storage_base: String,
    goog_md5: Option<bool>,
}

/// The running Hub and storage.
pub struct HubServer {
    shared: Arc<Shared>,
    hub: Server,
    storage: Server,
    _root: tempfile::TempDir,
}

struct Hub(Arc<Shared>);
struct Storage(Arc<Shared>);

impl HubServer {
    /// Starts both listeners with a random token and an empty storage.
    pub fn start() -> HubServer {
        HubServer::with_token(&format!("tok{:016x}", random_u64()))
    }

    pub fn with_token(token: &str) -> HubServer {
        let root = tempfile::tempdir().expect("storage dir");
        let shared = Arc::new(Shared {
            token: token.to_string(),
            secret: random_u64(),
            objects: root.path().join("objects"),
            state: Mutex::default(),
        });
        std::fs::create_dir_all(&shared.objects).expect("objects dir");
        let storage = Server::start(Arc::new(Storage(shared.clone())));
        lock(&shared.state).storage_base = storage.url();
        let hub = Server::start(Arc::new(Hub(shared.clone())));
        HubServer {
            shared,
            hub,
            storage,
            _root: root,
        }
    }

    /// The organization URL to give the binary: `http://127.0.0.1:PORT`.
    pub fn org_url(&self) -> String {
        self.hub.url()
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
        write_object(&self.shared.objects, key, bytes).expect("put_object: write");
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        safe_key(key).then(|| std::fs::read(self.shared.objects.join(key)).ok())?
    }

    /// All stored keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        crate::list_files(&self.shared.objects)
    }

    /// Every storage request in arrival order, fault-injected ones included.
    pub fn storage_requests(&self) -> Vec<Request> {
        lock(&self.shared.state).storage_log.clone()
    }

    pub fn hub_calls(&self) -> Vec<HubCall> {
        lock(&self.shared.state).hub_log.clone()
    }

    /// How many TCP connections the storage has accepted so far.
    pub fn storage_connections(&self) -> usize {
        self.storage.connections()
    }

    /// The next `n` storage requests answer `status`, with the body
    /// `temporarily unavailable`, as the Go CLI's storage mock does.
    pub fn fail_storage(&self, n: usize, status: u16) {
        lock(&self.shared.state).storage_fail = (n, status);
    }

    /// The next `n` Hub calls answer `status`.
    pub fn fail_hub(&self, n: usize, status: u16) {
        lock(&self.shared.state).hub_fail = (n, status);
    }

    /// Sleep this long before answering every storage request.
    pub fn set_storage_delay(&self, d: Duration) {
        lock(&self.shared.state).delay = d;
    }

    /// Called with every successful Hub answer (`{"urls":[..],"error":".."}`)
    /// before it is sent; it may rewrite it freely.
    pub fn set_hub_hook(&self, hook: impl Fn(&HubCall, &mut Value) + Send + Sync + 'static) {
        lock(&self.shared.state).hook = Some(Arc::new(hook));
    }

    /// The storage's own `http://127.0.0.1:PORT`.
    pub fn storage_url(&self) -> String {
        self.storage.url()
    }

    /// Signed URLs point at `base` from now on (a proxy in front of the
    /// storage, say) instead of the storage itself.
    pub fn point_urls_at(&self, base: &str) {
        lock(&self.shared.state).storage_base = base.to_string();
    }

    /// Makes storage GETs state an MD5 in `x-goog-hash`, as GCS does: the
    /// right one, or (`honest` false) a wrong one.
    pub fn set_goog_md5(&self, honest: Option<bool>) {
        lock(&self.shared.state).goog_md5 = honest;
    }

    /// When `Some`, a pull or yank of a path without objects answers
    /// `{"urls":[],"error":msg}` instead of an empty, error-free list.
    pub fn set_missing_error(&self, msg: Option<String>) {
        lock(&self.shared.state).missing_error = msg;
    }

    /// When `Some`, a pull or yank of a path without objects answers this
    /// status with no body (the Go CLI's test Hub answers 500).
    pub fn set_missing_status(&self, status: Option<u16>) {
        lock(&self.shared.state).missing_status = status;
    }

    /// A valid signed URL for `method` on `key`.
    pub fn signed_url(&self, method: &str, key: &str) -> String {
        self.shared.signed_url(method, key)
    }

    /// A `'static` signer for hooks: `signer("GET", key)` gives a signed URL.
    pub fn url_signer(&self) -> impl Fn(&str, &str) -> String + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |method, key| shared.signed_url(method, key)
    }
}

fn random_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, COUNTER.fetch_add(1, Ordering::SeqCst)))
}

impl Shared {
    fn sign(&self, method: &str, key: &str) -> String {
        let part = |salt: u8| {
            let mut h = DefaultHasher::new();
            (self.secret, salt, method, key).hash(&mut h);
            h.finish()
        };
        format!("SIGSECRET{:016x}{:016x}", part(1), part(2))
    }

    fn signed_url(&self, method: &str, key: &str) -> String {
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        let path = percent_encoding::utf8_percent_encode(key, KEY).to_string();
        let base = lock(&self.state).storage_base.clone();
        format!(
            "{base}/{path}?Expires={expires}&Signature={}",
            self.sign(method, key)
        )
    }

    /// Takes one injected failure, if any are left.
    fn take_fault(&self, pick: impl Fn(&mut State) -> &mut (usize, u16)) -> Option<u16> {
        let mut st = lock(&self.state);
        let fault = pick(&mut st);
        (fault.0 > 0).then(|| {
            fault.0 -= 1;
            fault.1
        })
    }
}

/// Every byte but the unreserved ones and the `/` separators.
const KEY: &percent_encoding::AsciiSet = &crate::UNRESERVED.remove(b'/');

/// A key that maps to a file strictly inside the storage directory (on
/// Unix a backslash is part of a name, as in any store's keys).
fn safe_key(key: &str) -> bool {
    let unsafe_char = |c: char| c == '\0' || (cfg!(windows) && c == '\\');
    !key.contains(unsafe_char)
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

fn write_object(objects: &Path, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dest = objects.join(key);
    let tmp = objects.with_file_name(format!("tmp{:016x}", random_u64()));
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

impl Handler for Hub {
    fn call(&self, mut req: Request, body: Body<'_>) -> Reply {
        let shared = &self.0;
        if body.read(&mut req).is_err() {
            return Reply::status(400, "short request body").cut(Cut::Close);
        }
        if req.path() != HUB_PATH {
            return Reply::status(404, "not found");
        }
        if req.method != "POST" {
            return Reply::status(405, "method not allowed");
        }
        let call = parse_hub_call(&req.body, req.header("authorization"));
        if let Ok(call) = &call {
            lock(&shared.state).hub_log.push(call.clone());
        }
        if let Some(status) = shared.take_fault(|st| &mut st.hub_fail) {
            return Reply::status(status, "injected");
        }
        let call = match call {
            Ok(c) => c,
            Err(msg) => {
                return Reply::with(400, "application/json", json!({ "error": msg }).to_string())
            }
        };
        if call.authorization.as_deref() != Some(shared.token.as_str()) {
            return Reply::with(
                401,
                "application/json",
                json!({ "error": "unauthorized" }).to_string(),
            );
        }
        let (mut answer, missing) = hub_answer(shared, &call);
        if let Some(status) = lock(&shared.state).missing_status.filter(|_| missing) {
            return Reply::status(status, "");
        }
        let hook = lock(&shared.state).hook.clone();
        if let Some(hook) = hook {
            hook(&call, &mut answer);
        }
        Reply::json(answer)
    }
}

/// The Hub's answer to `call`, and whether a path to pull or yank had
/// nothing stored.
fn hub_answer(shared: &Shared, call: &HubCall) -> (Value, bool) {
    let entry = |method: &str, key: &str| json!({ "url": shared.signed_url(method, key), "method": method });
    let mut urls = Vec::new();
    let mut missing = false;
    match call.kind {
        0 => {
            for p in &call.paths {
                urls.extend([entry("HEAD", p), entry("PUT", p)]);
            }
        }
        1 => urls.extend(call.paths.iter().map(|p| entry("PUT", p))),
        _ => {
            let keys = crate::list_files(&shared.objects);
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
                        _ => json!({ "url": shared.signed_url("DELETE", k) }),
                    });
                }
            }
        }
    }
    let answer = match lock(&shared.state).missing_error.clone() {
        Some(msg) if missing => json!({ "urls": [], "error": msg }),
        _ => json!({ "urls": urls, "error": "" }),
    };
    (answer, missing)
}

impl Handler for Storage {
    fn call(&self, mut req: Request, body: Body<'_>) -> Reply {
        let shared = &self.0;
        let chunked = req.header("transfer-encoding").is_some();
        let has_length = req.header("content-length").is_some();
        let read = if chunked { Ok(()) } else { body.read(&mut req) };
        let key = req.key();
        lock(&shared.state).storage_log.push(req.summary());
        let delay = lock(&shared.state).delay;
        std::thread::sleep(delay);
        if let Some(status) = shared.take_fault(|st| &mut st.storage_fail) {
            // The body the Go CLI's storage mock sends with its 503s.
            return Reply::status(status, "temporarily unavailable");
        }
        if chunked {
            return Reply::status(501, "Transfer-Encoding is not supported").cut(Cut::Close);
        }
        if read.is_err() {
            return Reply::status(400, "short request body").cut(Cut::Close);
        }
        if req.method == "PUT" && !has_length {
            return Reply::status(501, "Content-Length required").cut(Cut::Close);
        }
        let signature =
            (req.query_pairs().into_iter()).find_map(|(k, v)| (k == "Signature").then_some(v));
        if signature.as_deref() != Some(shared.sign(&req.method, &key).as_str()) {
            return Reply::status(403, "signature does not match");
        }
        if !safe_key(&key) {
            return Reply::status(400, "unsafe key");
        }
        let file = shared.objects.join(&key);
        match req.method.as_str() {
            "HEAD" => match std::fs::metadata(&file) {
                Ok(m) if m.is_file() => {
                    Reply::status(200, "").header("content-length", &m.len().to_string())
                }
                _ => Reply::status(404, "no such object"),
            },
            // As GCS: an ETag, `If-Match`, `Range: bytes=N-`, and the whole
            // object's MD5 on every answer when asked to state one.
            "GET" => match std::fs::read(&file) {
                Ok(bytes) => {
                    let digest = md5::compute(&bytes);
                    let etag = format!("\"{digest:x}\"");
                    if req.header("if-match").is_some_and(|m| m != etag) {
                        return Reply::status(412, "precondition failed");
                    }
                    let len = bytes.len();
                    let range = req
                        .header("range")
                        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok());
                    let mut reply = match range.filter(|&n: &usize| n < len) {
                        Some(n) => Reply::with(206, "application/octet-stream", &bytes[n..])
                            .header("content-range", &format!("bytes {n}-{}/{len}", len - 1)),
                        None => Reply::with(200, "application/octet-stream", bytes),
                    };
                    if let Some(honest) = lock(&shared.state).goog_md5 {
                        let md5 = if honest { digest.0 } else { [0; 16] };
                        let md5 = base64::engine::general_purpose::STANDARD.encode(md5);
                        reply = reply.header("x-goog-hash", &format!("crc32c=AAAAAA==,md5={md5}"));
                    }
                    reply.header("etag", &etag)
                }
                Err(_) => Reply::status(404, "no such object"),
            },
            "PUT" => match write_object(&shared.objects, &key, &req.body) {
                Ok(()) => Reply::status(200, ""),
                Err(e) => Reply::status(500, &e.to_string()),
            },
            "DELETE" => {
                let _ = std::fs::remove_file(&file);
                // Prune now-empty parents so the key space stays clean.
                let mut dir = file.parent();
                while let Some(d) = dir.filter(|d| *d != shared.objects.as_path()) {
                    if std::fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
                Reply::status(204, "")
            }
            _ => Reply::status(405, "method not allowed"),
        }
    }
}
