//! The fault proxy against a tiny std upstream, driven by ureq and raw sockets.
//!
//! The upstream answers `/bytes/N` (Content-Length), `/chunked/N`,
//! `/close/N` (body until close), `/empty` (204) and `/echo` (the request
//! body), and reports what reached it in `x-got-*` headers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::data;
use crate::support::fault_proxy::{Fault, FaultProxy, Rule};
use crate::support::hub_server::HubServer;

const SEED: u8 = 7;

// ---------------------------------------------------------------- upstreams

struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Upstream {
    fn http() -> Upstream {
        Upstream::spawn(serve_http)
    }

    /// Echoes raw bytes back.
    fn echo() -> Upstream {
        Upstream::spawn(|stream, _| {
            let _ = std::io::copy(&mut &stream, &mut &stream);
        })
    }

    /// Answers every connection with bytes that are not HTTP.
    fn garbage() -> Upstream {
        Upstream::spawn(|mut stream, _| {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        })
    }

    fn spawn(handler: fn(TcpStream, &AtomicUsize)) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, c, r) = (stop.clone(), conns.clone(), requests.clone());
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                thread::spawn(move || handler(stream, &r));
            }
        });
        Upstream {
            addr,
            stop,
            conns,
            requests,
            accept: Some(accept),
        }
    }

    fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn line(r: &mut impl BufRead) -> Option<String> {
    let mut s = String::new();
    match r.read_line(&mut s) {
        Ok(n) if n > 0 => Some(s.trim_end().to_string()),
        _ => None,
    }
}

fn serve_http(stream: TcpStream, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(&stream);
    let mut w = &stream;
    loop {
        let Some(start) = line(&mut r) else { return };
        let mut parts = start.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut headers = Vec::new();
        loop {
            let Some(l) = line(&mut r) else { return };
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap_or((&l, ""));
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let te = get("transfer-encoding").unwrap_or_else(|| "-".into());
        let mut body = Vec::new();
        if te.contains("chunked") {
            loop {
                let Some(size) = line(&mut r) else { return };
                let size = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16);
                let Ok(size) = size else { return };
                if size == 0 {
                    while line(&mut r).is_some_and(|l| !l.is_empty()) {}
                    break;
                }
                let mut chunk = vec![0; size];
                if r.read_exact(&mut chunk).is_err() || line(&mut r).is_none() {
                    return;
                }
                body.extend(chunk);
            }
        } else {
            let n = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            body.resize(n, 0);
            if r.read_exact(&mut body).is_err() {
                return;
            }
        }
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        let info = format!(
            "x-got-target: {target}\r\nx-got-host: {}\r\nx-got-te: {te}\r\nx-got-headers: {}\r\n",
            get("host").unwrap_or_default(),
            names.join(",")
        );
        let path = target.split('?').next().unwrap_or("");
        let n = |prefix: &str| path.strip_prefix(prefix).and_then(|n| n.parse().ok());
        let head = method == "HEAD";
        let (status, payload, framing) = if let Some(len) = n("/bytes/") {
            (200, data(len, SEED), "length")
        } else if let Some(len) = n("/chunked/") {
            (200, data(len, SEED), "chunked")
        } else if let Some(len) = n("/close/") {
            (200, data(len, SEED), "close")
        } else if path == "/empty" {
            (204, Vec::new(), "none")
        } else if path == "/echo" {
            (200, body, "length")
        } else {
            (404, b"no route".to_vec(), "length")
        };
        let mut out = format!("HTTP/1.1 {status} X\r\n{info}").into_bytes();
        match framing {
            "length" => {
                out.extend(format!("content-length: {}\r\n\r\n", payload.len()).bytes());
                if !head {
                    out.extend(&payload);
                }
            }
            "chunked" => {
                out.extend(b"transfer-encoding: chunked\r\n\r\n");
                for chunk in payload.chunks(payload.len() / 3 + 1) {
                    out.extend(format!("{:x};ext=1\r\n", chunk.len()).bytes());
                    out.extend(chunk);
                    out.extend(b"\r\n");
                }
                out.extend(b"0\r\nx-trailer: t\r\n\r\n");
            }
            "close" => {
                out.extend(b"connection: close\r\n\r\n");
                out.extend(&payload);
            }
            _ => out.extend(b"\r\n"),
        }
        if w.write_all(&out).is_err() || framing == "close" {
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

// ---------------------------------------------------------------- clients

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(4)))
        .build()
        .into()
}

/// An agent using the proxy as `HTTP_PROXY` (ureq tunnels through CONNECT).
fn proxied_agent(proxy: &FaultProxy) -> ureq::Agent {
    let p = ureq::Proxy::new(&proxy.url()).expect("proxy url");
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(4)))
        .proxy(Some(p))
        .build()
        .into()
}

struct Got {
    status: u16,
    body: Vec<u8>,
    header: Vec<(String, String)>,
}

impl Got {
    fn h(&self, name: &str) -> &str {
        self.header
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

fn got(res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Got, ureq::Error> {
    let mut res = res?;
    let header = res
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Ok(Got {
        status: res.status().as_u16(),
        body: res.body_mut().read_to_vec()?,
        header,
    })
}

fn get(agent: &ureq::Agent, url: &str) -> Result<Got, ureq::Error> {
    got(agent.get(url).call())
}

/// Writes `request` on a fresh connection and reads until the proxy closes.
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    String::from_utf8_lossy(&raw_bytes(addr, request)).into_owned()
}

fn raw_bytes(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn setup() -> (Upstream, FaultProxy) {
    let up = Upstream::http();
    let proxy = FaultProxy::start(up.addr);
    (up, proxy)
}

// ---------------------------------------------------------------- tests

#[test]
fn reverse_proxy_forwards_keeps_alive_and_records() {
    let (up, proxy) = setup();
    let a = agent();
    let base = proxy.url();

    let r = got(a
        .get(format!("{base}/bytes/1000?x=1"))
        .header("x-test", "yes")
        .call())
    .unwrap();
    assert_eq!((r.status, r.body.clone()), (200, data(1000, SEED)));
    assert_eq!(r.h("x-got-target"), "/bytes/1000?x=1");
    assert_eq!(
        r.h("x-got-host"),
        proxy.addr().to_string(),
        "Host unchanged"
    );

    let r = got(a.put(format!("{base}/echo")).send(&data(5000, 1)[..])).unwrap();
    assert_eq!((r.status, r.body), (200, data(5000, 1)));
    let r = got(a.head(format!("{base}/bytes/500")).call()).unwrap();
    assert_eq!(
        (r.status, r.h("content-length"), r.body.len()),
        (200, "500", 0)
    );
    let r = get(&a, &format!("{base}/empty")).unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = get(&a, &format!("{base}/nowhere")).unwrap();
    assert_eq!((r.status, r.body), (404, b"no route".to_vec()));

    assert_eq!(up.connections(), 1, "one kept-alive upstream connection");
    let seen = proxy.seen();
    let summary: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path(), s.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/bytes/1000", Some(200)),
            ("PUT", "/echo", Some(200)),
            ("HEAD", "/bytes/500", Some(200)),
            ("GET", "/empty", Some(204)),
            ("GET", "/nowhere", Some(404)),
        ]
    );
    assert_eq!(seen[0].target, "/bytes/1000?x=1");
    assert_eq!(seen[0].query(), "x=1");
    assert_eq!(seen[0].header("X-Test"), Some("yes"));
    assert!(
        seen[0].headers.iter().any(|(n, _)| n == "x-test"),
        "lowercased"
    );
    assert_eq!(seen[0].host.as_deref(), Some(&*proxy.addr().to_string()));
    assert_eq!(seen[1].header("content-length"), Some("5000"));
    assert!(seen.iter().all(|s| s.fault.is_none()));
    assert_eq!(proxy.faults_applied(), 0);
}

#[test]
fn chunked_and_close_delimited_bodies_pass_through() {
    let (_up, proxy) = setup();
    let a = agent();
    let base = proxy.url();

    let body = data(100_000, 3);
    let mut reader = &body[..];
    let r = got(a
        .put(format!("{base}/echo"))
        .send(ureq::SendBody::from_reader(&mut reader)));
    let r = r.unwrap();
    assert_eq!(r.h("x-got-te"), "chunked", "the request stayed chunked");
    assert!(!r.h("x-got-headers").contains("content-length"));
    assert!(r.body == body, "chunked request body intact");

    let r = get(&a, &format!("{base}/chunked/70000")).unwrap();
    assert!(r.status == 200 && r.body == data(70_000, SEED));
    let r = get(&a, &format!("{base}/chunked/0")).unwrap();
    assert!(r.status == 200 && r.body.is_empty());
    let r = get(&a, &format!("{base}/close/30000")).unwrap();
    assert!(r.status == 200 && r.body == data(30_000, SEED));
    let r = get(&a, &format!("{base}/bytes/10")).unwrap();
    assert!(
        r.status == 200 && r.body == data(10, SEED),
        "works after a close"
    );

    // Chunk extensions, trailers and Expect: 100-continue, by hand.
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 100"));
    s.write_all(b"3;a=b\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.ends_with("\r\n\r\nabcde"), "{rest}");
    assert!(!rest.contains("expect"), "Expect is not forwarded: {rest}");
}

#[test]
fn status_faults_answer_without_the_upstream() {
    let (up, proxy) = setup();
    let a = agent();
    let url = format!("{}/bytes/100", proxy.url());
    proxy.inject(Rule::any(), Fault::Status(503));
    proxy.inject(Rule::any(), Fault::SlowDown);
    proxy.inject(Rule::any(), Fault::Xml(404, "NoSuchKey"));
    proxy.inject(Rule::any().method("HEAD"), Fault::SlowDown);

    let r = get(&a, &url).unwrap();
    assert_eq!((r.status, r.body.len()), (503, 0));
    let r = get(&a, &url).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.h("content-type"), "application/xml");
    let xml = String::from_utf8(r.body).unwrap();
    assert!(xml.contains(
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    ));
    let r = get(&a, &url).unwrap();
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("<Code>NoSuchKey</Code>"));
    let r = got(a.head(&url).call()).unwrap();
    assert_eq!((r.status, r.body.len()), (503, 0));
    assert_eq!(
        up.requests(),
        0,
        "faulted requests never reach the upstream"
    );

    let r = get(&a, &url).unwrap();
    assert_eq!((r.status, r.body), (200, data(100, SEED)));
    assert_eq!(up.requests(), 1);
    assert_eq!(proxy.faults_applied(), 4);
    let faults: Vec<_> = proxy
        .seen()
        .into_iter()
        .map(|s| (s.status, s.fault))
        .collect();
    assert_eq!(
        faults,
        [
            (Some(503), Some("Status(503)".into())),
            (Some(503), Some("SlowDown".into())),
            (Some(404), Some("Xml(404, \"NoSuchKey\")".into())),
            (Some(503), Some("SlowDown".into())),
            (Some(200), None),
        ]
    );
}

#[test]
fn rules_count_times_and_skips_in_order() {
    let (_up, proxy) = setup();
    let a = agent();
    let base = proxy.url();
    let status = |path: &str| get(&a, &format!("{base}{path}")).unwrap().status;

    proxy.inject(
        Rule::any()
            .method("GET")
            .path_contains("/bytes/")
            .skip(1)
            .times(2),
        Fault::Status(500),
    );
    proxy.inject(Rule::any().query_contains("uploadId="), Fault::Status(429));
    assert_eq!(status("/bytes/1"), 200, "skipped");
    assert_eq!(status("/bytes/1"), 500);
    assert_eq!(status("/empty?uploadId=7"), 429, "query rule");
    assert_eq!(status("/empty?uploadId=7"), 204, "used up");
    assert_eq!(status("/bytes/1"), 500);
    assert_eq!(status("/bytes/1"), 200, "used up");
    let r = got(a.head(format!("{base}/bytes/1")).call()).unwrap();
    assert_eq!(r.status, 200, "method must match");

    proxy.inject(Rule::any().times(usize::MAX), Fault::Status(503));
    for _ in 0..5 {
        assert_eq!(status("/bytes/1"), 503);
    }
    proxy.clear();
    assert_eq!(status("/bytes/1"), 200);
    assert_eq!(proxy.faults_applied(), 2 + 1 + 5);
}

#[test]
fn reset_before_response_is_a_client_error() {
    let (up, proxy) = setup();
    proxy.inject(Rule::any().method("PUT"), Fault::ResetBeforeResponse);
    let a = agent();
    let url = format!("{}/echo", proxy.url());
    let err = got(a.put(&url).send(&data(10_000, 2)[..]));
    assert!(err.is_err(), "a reset must fail the request");
    assert_eq!(up.requests(), 0);
    let seen = proxy.seen();
    assert_eq!(seen[0].status, None);
    assert_eq!(seen[0].fault.as_deref(), Some("ResetBeforeResponse"));

    let r = got(a.put(&url).send(&data(10, 2)[..])).unwrap();
    assert_eq!((r.status, r.body), (200, data(10, 2)), "next request works");

    // On Linux the close is a real reset (SO_LINGER 0), not a FIN.
    if cfg!(target_os = "linux") {
        proxy.inject(Rule::any(), Fault::ResetBeforeResponse);
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /bytes/1 HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        let err = s.read(&mut [0u8; 16]).expect_err("no answer");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
}

#[test]
fn reset_during_upload_fails_the_upload() {
    let (up, proxy) = setup();
    proxy.inject(Rule::any().method("PUT"), Fault::ResetDuringUpload);
    let a = agent();
    let url = format!("{}/echo", proxy.url());
    assert!(got(a.put(&url).send(&data(1 << 20, 4)[..])).is_err());
    assert_eq!(up.requests(), 0);
    assert_eq!(proxy.seen()[0].status, None);

    // Half of a small body, then a reset, also when chunked.
    proxy.inject(Rule::any().method("PUT"), Fault::ResetDuringUpload);
    let body = data(1000, 4);
    let mut reader = &body[..];
    assert!(got(a.put(&url).send(ureq::SendBody::from_reader(&mut reader))).is_err());
    let r = got(a.put(&url).send(&body[..])).unwrap();
    assert_eq!((r.status, r.body), (200, body));
}

#[test]
fn reset_during_download_fails_the_download() {
    let (_up, proxy) = setup();
    let a = agent();
    for path in ["/bytes/200000", "/chunked/5000", "/bytes/10"] {
        proxy.inject(Rule::any(), Fault::ResetDuringDownload);
        let r = get(&a, &format!("{}{path}", proxy.url()));
        assert!(r.is_err(), "{path}: a reset mid-body must fail");
    }
    let seen = proxy.seen();
    assert!(
        seen.iter().all(|s| s.status == Some(200)),
        "headers were sent"
    );
    assert!(get(&a, &format!("{}/bytes/10", proxy.url())).is_ok());
}

#[test]
fn short_body_fails_the_read() {
    let (_up, proxy) = setup();
    let a = agent();
    for path in ["/bytes/10000", "/chunked/10000", "/close/10000"] {
        proxy.inject(Rule::any(), Fault::ShortBody);
        let res = a.get(format!("{}{path}", proxy.url())).call();
        let mut res = res.unwrap_or_else(|e| panic!("{path}: the head arrives: {e}"));
        assert_eq!(res.status(), 200);
        let body = res.body_mut().read_to_vec();
        assert!(body.is_err(), "{path}: a short body must be an error");
    }
    // Raw: the full Content-Length is announced, half the bytes follow, then FIN.
    proxy.inject(Rule::any(), Fault::ShortBody);
    let out = raw_bytes(proxy.addr(), b"GET /close/100 HTTP/1.1\r\nHost: h\r\n\r\n");
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..split]);
    assert!(head.contains("Content-Length: 100"), "{head}");
    assert_eq!(out[split..], data(100, SEED)[..50]);
}

#[test]
fn corrupt_body_flips_one_byte() {
    let (_up, proxy) = setup();
    let a = agent();
    for path in ["/bytes/4096", "/chunked/4097", "/close/4096"] {
        proxy.inject(Rule::any(), Fault::CorruptBody);
        let r = get(&a, &format!("{}{path}", proxy.url())).unwrap();
        let n: usize = path.rsplit('/').next().unwrap().parse().unwrap();
        let want = data(n, SEED);
        assert_eq!(r.body.len(), want.len(), "{path}: same length");
        let diff: Vec<usize> = (0..n).filter(|&i| r.body[i] != want[i]).collect();
        assert_eq!(diff, [n / 2], "{path}: exactly the middle byte differs");
    }
    assert_eq!(proxy.faults_applied(), 3);
}

#[test]
fn stall_trips_the_read_timeout() {
    let (_up, proxy) = setup();
    proxy.inject(Rule::any(), Fault::Stall(Duration::from_secs(3)));
    let a: ureq::Agent = ureq::Agent::config_builder()
        .timeout_per_read(Some(Duration::from_millis(200)))
        .build()
        .into();
    let started = Instant::now();
    let err = get(&a, &format!("{}/bytes/10", proxy.url())).err();
    assert!(err.is_some(), "a stalled request must time out");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(proxy.seen()[0].status, None);
    let started = Instant::now();
    drop(proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop interrupts a stall"
    );
}

#[test]
fn forward_proxy_absolute_form_reaches_the_upstream() {
    let (_up, proxy) = setup();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let host = "bucket.s3.artifact.test:1234";
    s.write_all(
        format!(
            "GET http://{host}/bytes/5?x-id=GetObject HTTP/1.1\r\nHost: {host}\r\n\
             Proxy-Authorization: Basic dTpw\r\nProxy-Connection: Keep-Alive\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("x-got-target: /bytes/5?x-id=GetObject\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("x-got-host: {host}\r\n")), "{head}");
    assert!(
        !head.contains("proxy-"),
        "proxy headers are not forwarded: {head}"
    );
    let mut body = [0u8; 5];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body.to_vec(), data(5, SEED));

    // Same connection, no Host header and no path: both come from the URL.
    s.write_all(b"GET http://other.example HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.contains("x-got-target: /\r\n"), "{rest}");
    assert!(rest.contains("x-got-host: other.example\r\n"), "{rest}");

    let seen = proxy.seen();
    assert_eq!(
        seen[0].target,
        format!("http://{host}/bytes/5?x-id=GetObject")
    );
    assert_eq!(
        (seen[0].path(), seen[0].query()),
        ("/bytes/5", "x-id=GetObject")
    );
    assert_eq!(seen[0].host.as_deref(), Some(host));
    assert_eq!(seen[0].header("proxy-authorization"), Some("Basic dTpw"));
    assert_eq!(
        (seen[1].path(), seen[1].host.as_deref()),
        ("/", Some("other.example"))
    );
    assert_eq!(seen[1].status, Some(404));
}

#[test]
fn ureq_http_proxy_tunnels_and_the_tunnel_is_inspected() {
    let (up, proxy) = setup();
    let a = proxied_agent(&proxy);
    let url = "http://bucket.s3.artifact.test:1234/bytes/100";
    proxy.inject(
        Rule::any().method("GET").path_contains("/bytes/"),
        Fault::SlowDown,
    );
    assert_eq!(
        get(&a, url).unwrap().status,
        503,
        "faults apply inside the tunnel"
    );
    let r = get(&a, url).unwrap();
    assert_eq!((r.status, &r.body), (200, &data(100, SEED)));
    assert_eq!(r.h("x-got-host"), "bucket.s3.artifact.test:1234");
    assert_eq!(r.h("x-got-target"), "/bytes/100");
    assert_eq!(proxy.connects(), ["bucket.s3.artifact.test:1234"]);
    assert_eq!(up.connections(), 1);
    let seen = proxy.seen();
    let summary: Vec<_> = seen.iter().map(|s| (s.method.as_str(), s.status)).collect();
    assert_eq!(
        summary,
        [
            ("CONNECT", Some(200)),
            ("GET", Some(503)),
            ("GET", Some(200))
        ]
    );
    assert_eq!(
        seen[1].host.as_deref(),
        Some("bucket.s3.artifact.test:1234")
    );

    // A CONNECT fault needs a rule naming CONNECT.
    proxy.inject(
        Rule::any().method("CONNECT").path_contains("denied"),
        Fault::Status(403),
    );
    let b = proxied_agent(&proxy);
    assert!(get(&b, "http://denied.example/bytes/1").is_err());
    assert_eq!(proxy.seen().last().unwrap().status, Some(403));
}

#[test]
fn connect_tunnels_http_and_raw_bytes() {
    // Plain HTTP after CONNECT, by hand.
    let (_up, proxy) = setup();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"CONNECT anything.invalid:443 HTTP/1.1\r\nHost: anything.invalid:443\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /bytes/10 HTTP/1.1\r\nHost: anything.invalid\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 200") && out.ends_with(&data(10, SEED)));
    assert_eq!(proxy.connects(), ["anything.invalid:443"]);

    // Anything else (here a fake TLS record) is copied as raw bytes.
    let echo = Upstream::echo();
    let proxy = FaultProxy::start(echo.addr);
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"CONNECT s3.example:443 HTTP/1.1\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', 0];
    s.write_all(&hello).unwrap();
    let mut back = [0u8; 10];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, hello);
    s.write_all(b"more").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"more");
    assert_eq!(proxy.seen().len(), 1, "raw bytes are not parsed");
}

#[test]
fn random_faults_are_deterministic() {
    let statuses = |seed: u64, per_mille: u32| {
        let (_up, proxy) = setup();
        proxy.random_faults(
            seed,
            per_mille,
            vec![Fault::Status(500), Fault::Status(503)],
        );
        let a = agent();
        let url = format!("{}/bytes/3", proxy.url());
        let out: Vec<u16> = (0..40).map(|_| get(&a, &url).unwrap().status).collect();
        let faulted = out.iter().filter(|&&s| s != 200).count();
        assert_eq!(proxy.faults_applied(), faulted);
        out
    };
    let first = statuses(42, 500);
    assert_eq!(first, statuses(42, 500), "same seed, same faults");
    for s in [200, 500, 503] {
        assert!(first.contains(&s), "{s} missing from {first:?}");
    }
    assert!(statuses(42, 0).iter().all(|&s| s == 200));
    assert!(statuses(7, 1000).iter().all(|&s| s != 200));

    // Rules come first; clear() ends the soak.
    let (_up, proxy) = setup();
    proxy.random_faults(1, 1000, vec![Fault::Status(500)]);
    proxy.inject(Rule::any(), Fault::Status(418));
    let a = agent();
    let url = format!("{}/bytes/3", proxy.url());
    assert_eq!(get(&a, &url).unwrap().status, 418);
    assert_eq!(get(&a, &url).unwrap().status, 500);
    proxy.clear();
    assert_eq!(get(&a, &url).unwrap().status, 200);
}

#[test]
fn hub_storage_through_the_proxy() {
    let hub = HubServer::start();
    hub.put_object("artifacts/jobs/j/a.txt", b"hello");
    let signed = hub.signed_url("GET", "artifacts/jobs/j/a.txt");
    let authority = signed
        .strip_prefix("http://")
        .and_then(|s| s.split('/').next())
        .unwrap();
    let proxy = FaultProxy::start(authority.parse().unwrap());

    // Reverse: the signed URL's host swapped for the proxy.
    let via = signed.replace(authority, &proxy.addr().to_string());
    let r = get(&agent(), &via).unwrap();
    assert_eq!((r.status, r.body), (200, b"hello".to_vec()));
    // Forward: the signed URL as it is, through HTTP_PROXY.
    proxy.inject(Rule::any().query_contains("Signature="), Fault::Status(500));
    let a = proxied_agent(&proxy);
    assert_eq!(get(&a, &signed).unwrap().status, 500);
    let r = get(&a, &signed).unwrap();
    assert_eq!((r.status, r.body), (200, b"hello".to_vec()));
    assert_eq!(hub.storage_requests().len(), 2);
}

#[test]
fn bad_input_gets_errors_and_the_proxy_survives() {
    let (_up, proxy) = setup();
    for request in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        let out = raw(proxy.addr(), request);
        assert!(
            out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 501"),
            "{}: {out}",
            String::from_utf8_lossy(request)
        );
    }
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert!(raw(proxy.addr(), long.as_bytes()).starts_with("HTTP/1.1 400"));
    // A client that hangs up mid-request.
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.write_all(b"PUT /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    drop(s);

    // Upstreams that answer garbage or are gone give a 502.
    let junk = Upstream::garbage();
    let bad = FaultProxy::start(junk.addr);
    let r = get(&agent(), &format!("{}/x", bad.url())).unwrap();
    assert_eq!(r.status, 502);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = FaultProxy::start(closed);
    let r = get(&agent(), &format!("{}/x", gone.url())).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(gone.seen()[0].status, Some(502));

    let r = get(&agent(), &format!("{}/bytes/10", proxy.url())).unwrap();
    assert_eq!((r.status, r.body), (200, data(10, SEED)), "still serving");
}
