//! Real S3 servers for the tests: s3s-fs in process, and moto beside it.
//!
//! `S3Server` runs s3s-fs (a Rust S3 implementation that verifies SigV4
//! signatures) on a loopback port, on its own tokio runtime thread, with its
//! data in a temp dir: each test gets its own server; [`serve`] is that
//! server for `make bench` too. Accepted sockets get TCP_NODELAY, as real
//! S3 has. `Moto` is one `moto_server` per test process
//! (from PyPI, installed by `make test`), with a bucket per test; moto does
//! not check signatures but is an independent implementation with
//! ListMultipartUploads, so behaviour is not tuned to one server.

use std::fs;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::service::S3ServiceBuilder;

use crate::aws::S3Keys;

/// The domain virtual-host requests use: `<bucket>.s3.artifact.test`.
pub const VHOST_DOMAIN: &str = "s3.artifact.test";

pub struct S3Server {
    addr: SocketAddr,
    root: tempfile::TempDir,
    bucket: String,
    access_key: String,
    secret_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        let bucket = "artifacts-test".to_string();
        fs::create_dir_all(root.path().join(&bucket)).expect("bucket dir");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let access_key = format!("AKIATEST{n:08}");
        let secret_key = format!("S3SECRET{:016x}{n}", std::process::id());
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let fs_root = root.path().to_path_buf();
        let (ak, sk) = (access_key.clone(), secret_key.clone());
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let options = Options {
                root: fs_root,
                keys: (ak, sk),
                vhost_domain: Some(VHOST_DOMAIN.to_string()),
                nodelay: true,
                delay: Duration::ZERO,
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                serve(listener, options, async move {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        S3Server {
            addr,
            root,
            bucket,
            access_key,
            secret_key,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The directory that holds the bucket's objects as files.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(&self.bucket)
    }

    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        let path = self.bucket_dir().join(key);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, bytes).expect("write object");
    }

    /// Sets the user metadata `name` (stated as `x-amz-meta-NAME`) of the
    /// stored object at `key` to `value`, in the file where s3s-fs 0.14
    /// keeps it: what a store, or another tool, may state about an object.
    pub fn set_user_metadata(&self, key: &str, name: &str, value: &str) {
        use base64::Engine;
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let path = self.root.path().join(format!(
            ".bucket-{}.object-{}.metadata.json",
            encode(&self.bucket),
            encode(key)
        ));
        let text = fs::read_to_string(&path).expect("the object's metadata file");
        let mut attributes: serde_json::Value = serde_json::from_str(&text).expect("metadata JSON");
        let metadata = attributes
            .get_mut("user_metadata")
            .and_then(serde_json::Value::as_object_mut)
            .expect("user metadata");
        metadata.insert(name.to_string(), value.into());
        fs::write(&path, attributes.to_string()).expect("write metadata");
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.bucket_dir().join(key);
        if path.is_file() {
            fs::read(path).ok()
        } else {
            None
        }
    }

    /// Every object key, sorted (s3s-fs keeps its metadata elsewhere).
    pub fn keys(&self) -> Vec<String> {
        crate::list_files(&self.bucket_dir())
    }

    /// Files s3s-fs keeps beside the bucket: unfinished multipart parts.
    pub fn upload_leftovers(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.path()).expect("read root").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload") || name.contains("upload-") {
                out.push(entry.path());
            }
        }
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How [`serve`] runs s3s-fs.
pub struct Options {
    /// Its directory: each bucket is a subdirectory.
    pub root: PathBuf,
    /// The one key pair SigV4 signatures are checked against.
    pub keys: (String, String),
    /// Virtual-host requests (`<bucket>.<domain>`) are understood.
    pub vhost_domain: Option<String>,
    /// TCP_NODELAY on accepted sockets, as real S3 has.
    pub nodelay: bool,
    /// How long every request waits before s3s-fs sees it: a store farther
    /// away than loopback. A timer, so delayed requests overlap.
    pub delay: Duration,
}

/// Serves s3s-fs on `listener` until `stop` completes. Stock s3s-fs never
/// sets TCP_NODELAY, so every small answer on a kept-alive connection
/// would wait for the client's delayed ACK; `nodelay` fixes that.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) {
    let fs = s3s_fs::FileSystem::new(&options.root).expect("s3s-fs over the root");
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        let (access_key, secret_key) = options.keys;
        b.set_auth(SimpleAuth::from_single(access_key, secret_key));
        if let Some(domain) = &options.vhost_domain {
            b.set_host(MultiDomain::new([domain]).expect("domain"));
        }
        b.build()
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    tokio::pin!(stop);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        if options.nodelay {
            let _ = socket.set_nodelay(true);
        }
        let (service, delay, root) = (service.clone(), options.delay, options.root.clone());
        let delayed = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let service = service.clone();
            let deletes = req.method() == hyper::Method::DELETE
                || (req.method() == hyper::Method::POST
                    && req.uri().query().is_some_and(|q| q.contains("delete")));
            let root = root.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let answer = hyper::service::Service::call(&service, req).await;
                if deletes {
                    prune_empty_dirs(&root);
                }
                answer
            }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), delayed)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// Removes the directories that deletes left empty inside each bucket
/// (never a bucket itself): s3s-fs 0.14 keeps them, so a key could not
/// take the name of a deleted tree, where S3, which has no directories,
/// lets it.
fn prune_empty_dirs(root: &std::path::Path) {
    fn prune(dir: &std::path::Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                prune(&entry.path());
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
    for bucket in fs::read_dir(root).into_iter().flatten().flatten() {
        if bucket.file_type().is_ok_and(|t| t.is_dir()) {
            prune(&bucket.path());
        }
    }
}

/// A bucket on a store that runs as a process of its own (moto, Ceph's
/// RADOS Gateway), and the requests a test makes to set it up or look
/// inside, signed with the store's keys.
pub struct Bucket {
    pub endpoint: String,
    pub bucket: String,
    keys: S3Keys,
}

impl Bucket {
    /// Creates `bucket` at `endpoint`.
    pub fn create(endpoint: &str, bucket: String, keys: S3Keys) -> Bucket {
        let created = Bucket {
            endpoint: endpoint.to_string(),
            bucket,
            keys,
        };
        let (status, body) = created.send("PUT", "", &[], b"");
        assert_eq!(
            status,
            200,
            "create bucket {}: {}",
            created.bucket,
            String::from_utf8_lossy(&body)
        );
        created
    }

    pub fn access_key(&self) -> &str {
        &self.keys.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.keys.secret_key
    }

    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        self.put_object_with_headers(key, bytes, &[]);
    }

    pub fn put_object_with_headers(&self, key: &str, bytes: &[u8], headers: &[(&str, &str)]) {
        let (status, _) = self.send("PUT", &encode_key(key), headers, bytes);
        assert_eq!(status, 200, "put {key} into {}", self.bucket);
    }

    /// Stores `bytes` at `key` as one multipart upload of `part_size`
    /// parts, each with its SHA-256, so that moto states S3's composite
    /// checksum; `headers` go with CreateMultipartUpload (metadata such as
    /// `x-amz-meta-artifact-part-size`, which need not tell the truth).
    pub fn put_multipart(
        &self,
        key: &str,
        bytes: &[u8],
        part_size: usize,
        headers: &[(&str, &str)],
    ) {
        use base64::Engine;
        use sha2::Digest;
        let path = encode_key(key);
        let mut create = vec![("x-amz-checksum-algorithm", "SHA256")];
        create.extend_from_slice(headers);
        let (status, _, body) = self.exchange("POST", &format!("{path}?uploads"), &create, b"");
        assert_eq!(status, 200, "moto CreateMultipartUpload {key}");
        let text = String::from_utf8(body).expect("utf-8");
        let id = tags(&text, "UploadId").pop().expect("UploadId");
        let mut done = String::new();
        for (i, part) in bytes.chunks(part_size).enumerate() {
            let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(part));
            let rest = format!("{path}?partNumber={}&uploadId={}", i + 1, encode(&id));
            let (status, etag, _) =
                self.exchange("PUT", &rest, &[("x-amz-checksum-sha256", &sha)], part);
            assert_eq!(status, 200, "moto UploadPart {key}");
            let etag = etag.expect("part ETag");
            done.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag><ChecksumSHA256>{sha}</ChecksumSHA256></Part>",
                i + 1
            ));
        }
        let complete = format!("<CompleteMultipartUpload>{done}</CompleteMultipartUpload>");
        let rest = format!("{path}?uploadId={}", encode(&id));
        let (status, _, _) = self.exchange("POST", &rest, &[], complete.as_bytes());
        assert_eq!(status, 200, "moto CompleteMultipartUpload {key}");
    }

    /// Stores an object at a URL path given already percent-encoded, so a
    /// key can hold what a URL would otherwise normalize (`%2E%2E`).
    pub fn put_object_raw_path(&self, encoded_key: &str, bytes: &[u8]) {
        let (status, _) = self.send("PUT", &format!("/{encoded_key}"), &[], bytes);
        assert_eq!(status, 200, "put {encoded_key} into {}", self.bucket);
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.send("GET", &encode_key(key), &[], b"");
        (status == 200).then_some(body)
    }

    pub fn keys(&self) -> Vec<String> {
        let (mut keys, mut token) = (Vec::new(), None::<String>);
        loop {
            let mut query = "?list-type=2".to_string();
            if let Some(t) = &token {
                query.push_str(&format!("&continuation-token={}", encode(t)));
            }
            let text = String::from_utf8(self.send("GET", &query, &[], b"").1).expect("utf-8");
            keys.extend(tags(&text, "Key"));
            token = tags(&text, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                keys.sort();
                return keys;
            }
        }
    }

    /// Multipart uploads still open in the bucket (ListMultipartUploads).
    pub fn open_uploads(&self) -> Vec<String> {
        let text = String::from_utf8(self.send("GET", "?uploads", &[], b"").1).expect("utf-8");
        tags(&text, "UploadId")
    }

    /// Sends a signed request for the bucket URL plus `rest` (a path from
    /// `/`, or a query from `?`); gives status and body.
    fn send(
        &self,
        method: &str,
        rest: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let (status, _, body) = self.exchange(method, rest, headers, body);
        (status, body)
    }

    /// `send`, with the answer's ETag.
    fn exchange(
        &self,
        method: &str,
        rest: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Option<String>, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = format!("/{}{path}", self.bucket);
        let host = self.endpoint.trim_start_matches("http://");
        let signature = self.keys.sign(method, host, &path, query, headers, body);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/{}{rest}", self.endpoint, self.bucket));
        for (k, v) in headers
            .iter()
            .copied()
            .chain(signature.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            req = req.header(k, v);
        }
        let mut res = agent
            .run(req.body(body.to_vec()).expect("request"))
            .unwrap_or_else(|e| panic!("{method} {}{rest}: {e}", self.endpoint));
        let etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.body_mut().with_config().limit(u64::MAX).read_to_vec();
        (res.status().as_u16(), etag, body.expect("response body"))
    }
}

/// One moto_server for the whole test process, and a bucket per test.
/// moto does not check signatures.
pub struct Moto(Bucket);

impl std::ops::Deref for Moto {
    type Target = Bucket;

    fn deref(&self) -> &Bucket {
        &self.0
    }
}

struct MotoProcess {
    endpoint: String,
    /// The wrapper shell stops moto when this pipe closes, which happens
    /// when the test process exits: no server outlives the tests.
    _lifeline: std::sync::Mutex<std::process::ChildStdin>,
    _child: Child,
}

static MOTO: OnceLock<MotoProcess> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl Moto {
    pub fn bucket() -> Moto {
        let process = MOTO.get_or_init(start_moto);
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        let keys = S3Keys {
            access_key: "AKIAMOTO".to_string(),
            secret_key: "MOTOSECRETKEY".to_string(),
        };
        Moto(Bucket::create(
            &process.endpoint,
            format!("moto-{}-{n}", std::process::id()),
            keys,
        ))
    }
}

pub(crate) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::UNRESERVED).to_string()
}

fn encode_key(key: &str) -> String {
    key.split('/').map(|s| format!("/{}", encode(s))).collect()
}

fn tags(text: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

fn start_moto() -> MotoProcess {
    let port = {
        let l = StdListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let found = Command::new("sh")
        .args(["-c", "command -v moto_server"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "moto_server is not installed: run `make install` (it installs moto[server] with pip)"
    );
    let script =
        format!("moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; read _; kill $m");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
    let lifeline = child.stdin.take().expect("moto stdin");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    MotoProcess {
        endpoint: format!("http://127.0.0.1:{port}"),
        _lifeline: std::sync::Mutex::new(lifeline),
        _child: child,
    }
}
