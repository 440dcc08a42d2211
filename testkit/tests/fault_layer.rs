//! What the fault tests rely on the fault layer for, against an upstream
//! of the kit's own core that reports what reached it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use testkit::fault::{Fault, FaultProxy, Rule};
use testkit::http::{Reply, Server};

/// Answers `/bytes/N` (N bytes), `/echo` (the body back), `/empty` (204),
/// else 404, with `x-got-target` and `x-got-host`; counts requests.
fn upstream() -> (Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    let server = Server::with_fn(move |req| {
        n.fetch_add(1, Ordering::SeqCst);
        let reply = match req.path() {
            "/echo" => Reply::with(200, "application/octet-stream", req.body.clone()),
            "/empty" => Reply::status(204),
            p => match p.strip_prefix("/bytes/").and_then(|n| n.parse().ok()) {
                Some(len) => Reply::with(200, "application/octet-stream", bytes(len)),
                None => Reply::with(404, "text/plain", "no route"),
            },
        };
        reply
            .header("x-got-target", &req.target)
            .header("x-got-host", req.header("host").unwrap_or(""))
    });
    (server, count)
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn setup() -> (Server, Arc<AtomicUsize>, FaultProxy) {
    let (up, count) = upstream();
    let proxy = FaultProxy::start(up.addr());
    (up, count, proxy)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(4)))
        .build()
        .into()
}

/// Status, body and headers, or the transport error.
fn call(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
) -> Result<(u16, Vec<u8>), ureq::Error> {
    let mut res = req.call()?;
    Ok((res.status().as_u16(), res.body_mut().read_to_vec()?))
}

fn get(url: &str) -> Result<(u16, Vec<u8>), ureq::Error> {
    call(agent().get(url))
}

fn put(url: &str, body: &[u8]) -> Result<(u16, Vec<u8>), ureq::Error> {
    let mut res = agent().put(url).send(body)?;
    Ok((res.status().as_u16(), res.body_mut().read_to_vec()?))
}

/// Writes `request` on a fresh connection and reads until the proxy closes.
fn raw(url: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn requests_are_forwarded_and_recorded() {
    let (_up, _, proxy) = setup();
    let base = proxy.url();
    let host = base.trim_start_matches("http://");
    let mut res = agent()
        .get(format!("{base}/bytes/1000?x=1"))
        .header("X-Test", "yes")
        .call()
        .unwrap();
    assert_eq!(res.headers()["x-got-target"], "/bytes/1000?x=1");
    assert_eq!(res.headers()["x-got-host"], host, "Host unchanged");
    assert_eq!(res.body_mut().read_to_vec().unwrap(), bytes(1000));
    assert_eq!(
        put(&format!("{base}/echo"), &bytes(5000)).unwrap(),
        (200, bytes(5000))
    );
    let res = agent().head(format!("{base}/bytes/500")).call().unwrap();
    assert_eq!(res.headers()["content-length"], "500");
    assert_eq!(get(&format!("{base}/empty")).unwrap(), (204, vec![]));
    assert_eq!(
        get(&format!("{base}/nowhere")).unwrap(),
        (404, b"no route".to_vec())
    );

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
    assert_eq!(
        (seen[0].target.as_str(), seen[0].query()),
        ("/bytes/1000?x=1", "x=1")
    );
    assert_eq!(seen[0].header("X-Test"), Some("yes"));
    assert!(
        seen[0].headers.iter().any(|(n, _)| n == "x-test"),
        "lowercased"
    );
    assert_eq!(
        (seen[1].header("content-length"), seen[1].body_len),
        (Some("5000"), 5000)
    );
    assert!(seen.iter().all(|s| s.fault.is_none()));
    assert_eq!(proxy.faults_applied(), 0);
}

#[test]
fn status_faults_answer_without_the_upstream() {
    let (_up, count, proxy) = setup();
    let url = format!("{}/bytes/100", proxy.url());
    proxy.inject(Rule::any(), Fault::Status(503));
    proxy.inject(Rule::any(), Fault::SlowDown);
    proxy.inject(Rule::any(), Fault::Xml(404, "NoSuchKey"));
    assert_eq!(get(&url).unwrap(), (503, vec![]));
    let (status, xml) = get(&url).unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8(xml)
        .unwrap()
        .contains("<Error><Code>SlowDown</Code>"));
    let (status, xml) = get(&url).unwrap();
    assert_eq!(status, 404);
    assert!(String::from_utf8(xml)
        .unwrap()
        .contains("<Code>NoSuchKey</Code>"));
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "faulted requests never reach the upstream"
    );
    assert_eq!(get(&url).unwrap(), (200, bytes(100)));
    let faults: Vec<_> = proxy.seen().into_iter().map(|s| s.fault).collect();
    assert_eq!(
        faults,
        [
            Some(Fault::Status(503)),
            Some(Fault::SlowDown),
            Some(Fault::Xml(404, "NoSuchKey")),
            None
        ]
    );
    assert_eq!(proxy.faults_applied(), 3);
}

#[test]
fn rules_count_times_and_skips_in_order() {
    let (_up, _, proxy) = setup();
    let base = proxy.url();
    let status = |path: &str| get(&format!("{base}{path}")).unwrap().0;
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
    assert_eq!(
        call(agent().head(format!("{base}/empty"))).unwrap().0,
        204,
        "method must match"
    );
    proxy.inject(Rule::any().times(usize::MAX), Fault::Status(503));
    for _ in 0..5 {
        assert_eq!(status("/bytes/1"), 503);
    }
    assert_eq!(proxy.faults_applied(), 2 + 1 + 5);
}

#[test]
fn resets_fail_the_request_where_they_are_injected() {
    let (_up, count, proxy) = setup();
    let url = format!("{}/echo", proxy.url());
    proxy.inject(Rule::any().method("PUT"), Fault::ResetBeforeResponse);
    assert!(
        put(&url, &bytes(10_000)).is_err(),
        "a reset must fail the request"
    );
    proxy.inject(Rule::any().method("PUT"), Fault::ResetDuringUpload);
    assert!(
        put(&url, &bytes(1 << 20)).is_err(),
        "a reset mid-upload must fail it"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "neither reached the upstream"
    );
    assert_eq!(
        put(&url, &bytes(10)).unwrap(),
        (200, bytes(10)),
        "next request works"
    );

    // A real reset (SO_LINGER 0), not a FIN.
    proxy.inject(Rule::any(), Fault::ResetBeforeResponse);
    let mut s = TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET /bytes/1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let err = s.read(&mut [0u8; 16]).expect_err("no answer");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    proxy.inject(Rule::any(), Fault::ResetDuringDownload);
    assert!(
        get(&format!("{}/bytes/200000", proxy.url())).is_err(),
        "a reset mid-body must fail"
    );
    assert_eq!(
        proxy.seen().last().unwrap().status,
        Some(200),
        "the head was sent"
    );
}

#[test]
fn a_short_body_announces_the_full_length_and_fails_the_read() {
    let (_up, _, proxy) = setup();
    proxy.inject(Rule::any(), Fault::ShortBody);
    assert!(get(&format!("{}/bytes/10000", proxy.url())).is_err());
    proxy.inject(Rule::any(), Fault::ShortBody);
    let out = raw(&proxy.url(), b"GET /bytes/100 HTTP/1.1\r\nHost: h\r\n\r\n");
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..split]);
    assert!(head.contains("content-length: 100"), "{head}");
    assert_eq!(out[split..], bytes(100)[..50]);
}

#[test]
fn corrupt_body_flips_the_middle_byte() {
    let (_up, _, proxy) = setup();
    proxy.inject(Rule::any(), Fault::CorruptBody);
    let (_, body) = get(&format!("{}/bytes/4097", proxy.url())).unwrap();
    let want = bytes(4097);
    let diff: Vec<usize> = (0..want.len())
        .filter(|&i| body.get(i) != want.get(i))
        .collect();
    assert_eq!((body.len(), diff), (4097, vec![2048]));
}

#[test]
fn a_stall_trips_the_read_timeout_and_drop_ends_it() {
    let (_up, _, proxy) = setup();
    proxy.inject(Rule::any(), Fault::Stall(Duration::from_secs(30)));
    let a: ureq::Agent = ureq::Agent::config_builder()
        .timeout_per_read(Some(Duration::from_millis(200)))
        .build()
        .into();
    assert!(
        call(a.get(format!("{}/bytes/10", proxy.url()))).is_err(),
        "a stall must time out"
    );
    assert_eq!(proxy.seen()[0].status, None);
    let started = Instant::now();
    drop(proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop interrupts a stall"
    );
}

#[test]
fn absolute_form_and_connect_reach_the_upstream() {
    let (_up, _, proxy) = setup();
    let host = "bucket.s3.artifact.test:1234";
    let out = raw(
        &proxy.url(),
        format!(
            "GET http://{host}/bytes/5?x-id=GetObject HTTP/1.1\r\nHost: {host}\r\n\
             Proxy-Authorization: Basic dTpw\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("x-got-target: /bytes/5?x-id=GetObject\r\n"),
        "{text}"
    );
    assert!(text.contains(&format!("x-got-host: {host}\r\n")), "{text}");
    let seen = proxy.seen();
    assert_eq!(
        (seen[0].path(), seen[0].query()),
        ("/bytes/5", "x-id=GetObject")
    );
    assert_eq!(seen[0].header("proxy-authorization"), Some("Basic dTpw"));

    // CONNECT relays bytes as they are: here an HTTP request, unparsed.
    let out = raw(
        &proxy.url(),
        b"CONNECT anything.invalid:443 HTTP/1.1\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200"));
    assert!(out.ends_with(&bytes(10)));
    assert_eq!(proxy.connects(), ["anything.invalid:443"]);
    assert_eq!(proxy.seen().len(), 2, "tunnelled bytes are not parsed");
}

#[test]
fn random_faults_are_deterministic() {
    let statuses = |seed: u64, per_mille: u32| {
        let (_up, _, proxy) = setup();
        proxy.random_faults(
            seed,
            per_mille,
            vec![Fault::Status(500), Fault::Status(503)],
        );
        let url = format!("{}/bytes/3", proxy.url());
        let out: Vec<u16> = (0..40).map(|_| get(&url).unwrap().0).collect();
        assert_eq!(
            proxy.faults_applied(),
            out.iter().filter(|&&s| s != 200).count()
        );
        out
    };
    let first = statuses(42, 500);
    assert_eq!(first, statuses(42, 500), "same seed, same faults");
    for s in [200, 500, 503] {
        assert!(first.contains(&s), "{s} missing from {first:?}");
    }
    assert!(statuses(42, 0).iter().all(|&s| s == 200));
    assert!(statuses(7, 1000).iter().all(|&s| s != 200));
}

#[test]
fn conditional_puts_are_held_until_all_arrive_then_sent_one_at_a_time() {
    const RACERS: usize = 4;
    let proxy: Arc<OnceLock<FaultProxy>> = Arc::new(OnceLock::new());
    let (p, at_first, in_flight) = (
        proxy.clone(),
        Arc::new(Mutex::new(None)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (first, flying) = (at_first.clone(), in_flight.clone());
    let up = Server::with_fn(move |_| {
        let seen = p.get().map_or(0, |p| p.seen().len());
        first.lock().unwrap().get_or_insert(seen);
        assert_eq!(flying.fetch_add(1, Ordering::SeqCst), 0, "two PUTs at once");
        std::thread::sleep(Duration::from_millis(20));
        flying.fetch_sub(1, Ordering::SeqCst);
        Reply::status(200)
    });
    let proxy = proxy.get_or_init(|| FaultProxy::start(up.addr()));
    proxy.serialise_conditional_puts(RACERS);
    let url = format!("{}/contested", proxy.url());
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                agent()
                    .put(&url)
                    .header("if-none-match", "*")
                    .send(&b"x"[..])
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for r in racers {
        assert_eq!(r.join().unwrap(), 200);
    }
    assert_eq!(
        *at_first.lock().unwrap(),
        Some(RACERS),
        "the first went on once all had arrived"
    );
}
