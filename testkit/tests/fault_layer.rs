//! What the fault tests rely on the fault layer for, against an upstream
//! of the kit's own core that reports what reached it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use testkit::fault::{imf_fixdate, Fault, FaultProxy, Gate, RetryAfter, Rule};
use testkit::http::{Reply, Server};

type Got = Result<(u16, String, Vec<u8>), ureq::Error>;

/// `/bytes/N` (N bytes), `/echo` (the body back), else 404, with
/// `x-got-target` and `x-got-host`; the proxy and a request count.
fn setup() -> (Server, Arc<AtomicUsize>, FaultProxy) {
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    let up = Server::with_fn(move |req| {
        n.fetch_add(1, SeqCst);
        let len = req.path().strip_prefix("/bytes/").map(str::parse);
        let reply = match (req.path(), len) {
            ("/echo", _) => Reply::with(200, "x/y", req.body.clone()),
            (_, Some(Ok(len))) => Reply::with(200, "x/y", bytes(len)),
            _ => Reply::status(404, "no route"),
        };
        let host = req.header("host").unwrap_or("");
        reply
            .header("x-got-target", &req.target)
            .header("x-got-host", host)
    });
    let proxy = FaultProxy::start(up.addr());
    (up, count, proxy)
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Without proxies from the environment; `read` limits each read.
fn agent(read: Option<Duration>) -> ureq::Agent {
    let config = ureq::Agent::config_builder().proxy(None);
    let config = config.http_status_as_error(false).timeout_per_read(read);
    config.build().into()
}

/// Status, `x-got-target` and body, or the transport error.
fn send(method: &str, url: String, body: &[u8]) -> Got {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("X-Test", "yes");
    let mut res = agent(None).run(req.body(body.to_vec()).unwrap())?;
    let target = res.headers().get("x-got-target").map(|v| v.to_str());
    let target = target.unwrap_or(Ok("")).unwrap().to_string();
    let body = res.body_mut().read_to_vec()?;
    Ok((res.status().as_u16(), target, body))
}

fn get(proxy: &FaultProxy, path: &str) -> Got {
    send("GET", format!("{}{path}", proxy.url()), b"")
}

fn put(proxy: &FaultProxy, path: &str, body: &[u8]) -> Got {
    send("PUT", format!("{}{path}", proxy.url()), body)
}

fn code(proxy: &FaultProxy, path: &str) -> u16 {
    get(proxy, path).unwrap().0
}

fn says(got: Got, code: &str) -> bool {
    String::from_utf8(got.unwrap().2).unwrap().contains(code)
}

/// Writes `request` on a fresh connection and reads until the proxy closes.
fn raw(proxy: &FaultProxy, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(proxy.url().trim_start_matches("http://"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map(|_| out)
}

#[test]
fn requests_are_forwarded_and_recorded() {
    let (_up, _, proxy) = setup();
    let got = get(&proxy, "/bytes/1000?x=1").unwrap();
    assert_eq!(got, (200, "/bytes/1000?x=1".into(), bytes(1000)));
    let got = put(&proxy, "/echo", &bytes(5000)).unwrap();
    assert_eq!(got, (200, "/echo".into(), bytes(5000)));
    assert_eq!(code(&proxy, "/nowhere"), 404);
    let seen = proxy.seen();
    let summary: Vec<_> = seen.iter().map(|s| (s.line(), s.status)).collect();
    let want = [
        ("GET /bytes/1000".to_string(), Some(200)),
        ("PUT /echo".to_string(), Some(200)),
        ("GET /nowhere".to_string(), Some(404)),
    ];
    assert_eq!(summary, want);
    assert_eq!(seen[0].target, "/bytes/1000?x=1");
    assert_eq!(seen[0].query(), "x=1");
    assert!(seen[0].headers.contains(&("x-test".into(), "yes".into())));
    assert_eq!(seen[1].header("Content-Length"), Some("5000"));
    assert_eq!(seen[1].body_len, 5000);
    assert!(seen.iter().all(|s| s.fault.is_none()));
    assert_eq!(proxy.faults_applied(), 0);
}

#[test]
fn status_faults_answer_without_the_upstream_and_rules_count() {
    let (_up, count, proxy) = setup();
    proxy.inject(Rule::any(), Fault::Status(503));
    proxy.inject(Rule::any(), Fault::SlowDown);
    proxy.inject(Rule::any(), Fault::Xml(404, "NoSuchKey"));
    assert_eq!(get(&proxy, "/bytes/9").unwrap(), (503, "".into(), vec![]));
    assert!(says(get(&proxy, "/bytes/9"), "<Code>SlowDown</Code>"));
    assert!(says(get(&proxy, "/bytes/9"), "<Code>NoSuchKey</Code>"));
    assert_eq!(count.load(SeqCst), 0, "faults never reach the upstream");
    let faults: Vec<_> = proxy.seen().into_iter().map(|s| s.fault).collect();
    let want = [
        Fault::Status(503),
        Fault::SlowDown,
        Fault::Xml(404, "NoSuchKey"),
    ];
    assert_eq!(faults, want.map(Some));

    let rule = Rule::any().method("GET").path_contains("/bytes/");
    proxy.inject(rule.skip(1).times(2), Fault::Status(500));
    proxy.inject(Rule::any().query_contains("id="), Fault::Status(429));
    let paths = [
        "/bytes/1", "/bytes/1", "/x?id=7", "/x?id=7", "/bytes/1", "/bytes/1",
    ];
    let codes = paths.map(|p| code(&proxy, p));
    assert_eq!(codes, [200, 500, 429, 404, 500, 200], "skip, times, order");
    assert_eq!(put(&proxy, "/bytes/1", b"").unwrap().0, 200, "method");
    proxy.inject(Rule::any().times(usize::MAX), Fault::Status(503));
    assert!((0..5).all(|_| code(&proxy, "/bytes/1") == 503), "forever");
    assert_eq!(proxy.faults_applied(), 3 + 3 + 5);
}

#[test]
fn retry_after_comes_in_both_forms() {
    let (_up, _count, proxy) = setup();
    proxy.inject(
        Rule::any(),
        Fault::StatusRetryAfter(503, RetryAfter::Seconds(7)),
    );
    proxy.inject(
        Rule::any(),
        Fault::StatusRetryAfter(429, RetryAfter::DateIn(0)),
    );
    let url = format!("{}/bytes/1", proxy.url());
    let header = |want: u16| {
        let res = agent(None).get(&url).call().unwrap();
        assert_eq!(res.status().as_u16(), want);
        let value = res.headers().get("retry-after").unwrap();
        value.to_str().unwrap().to_string()
    };
    assert_eq!(header(503), "7");
    let date = header(429);
    // IMF-fixdate: `Wed, 21 Oct 2015 07:28:00 GMT`.
    assert_eq!(date.len(), 29, "{date}");
    assert!(date.ends_with(" GMT") && &date[3..5] == ", ", "{date}");
    let known = time::OffsetDateTime::from_unix_timestamp(1_445_412_480).unwrap();
    assert_eq!(imf_fixdate(known), "Wed, 21 Oct 2015 07:28:00 GMT");
}

#[test]
fn a_held_request_waits_for_its_gate_then_reaches_the_upstream() {
    let (_up, count, proxy) = setup();
    let gate = Gate::new();
    proxy.inject(Rule::any(), Fault::Hold(gate.clone()));
    let url = format!("{}/bytes/5", proxy.url());
    let held = std::thread::spawn(move || get_status(&url));
    assert!(gate.wait_held(Duration::from_secs(20)), "nothing was held");
    assert_eq!(count.load(SeqCst), 0, "held before the upstream");
    gate.open();
    assert_eq!(held.join().unwrap(), 200);
    assert_eq!(count.load(SeqCst), 1);
}

fn get_status(url: &str) -> u16 {
    agent(None).get(url).call().unwrap().status().as_u16()
}

#[test]
fn resets_short_and_corrupt_bodies_fail_where_injected() {
    let (_up, count, proxy) = setup();
    proxy.inject(Rule::any().method("PUT"), Fault::ResetBeforeResponse);
    assert!(
        put(&proxy, "/echo", &bytes(10_000)).is_err(),
        "before answer"
    );
    proxy.inject(Rule::any().method("PUT"), Fault::ResetDuringUpload);
    assert!(put(&proxy, "/echo", &bytes(1 << 20)).is_err(), "mid-upload");
    assert_eq!(count.load(SeqCst), 0, "neither reached the upstream");
    assert_eq!(put(&proxy, "/echo", b"ok").unwrap().2, b"ok", "then works");
    proxy.inject(Rule::any(), Fault::ResetBeforeResponse);
    let err = raw(&proxy, b"GET /bytes/1 HTTP/1.1\r\nHost: h\r\n\r\n");
    let kind = err.unwrap_err().kind();
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset, "a real reset");

    proxy.inject(Rule::any(), Fault::ResetDuringDownload(50));
    assert!(get(&proxy, "/bytes/200000").is_err(), "reset mid-body");
    let last = proxy.seen().pop().unwrap();
    assert_eq!(last.status, Some(200), "the head was sent");
    proxy.inject(Rule::any(), Fault::ShortBody);
    assert!(get(&proxy, "/bytes/10000").is_err(), "short body");
    proxy.inject(Rule::any(), Fault::ShortBody);
    let out = raw(&proxy, b"GET /bytes/100 HTTP/1.1\r\nHost: h\r\n\r\n");
    let out = out.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..split]);
    assert!(head.contains("content-length: 100\r\n"), "{head}");
    assert_eq!(out[split..], bytes(100)[..50], "half the body, then FIN");

    proxy.inject(Rule::any(), Fault::CorruptBody);
    let (body, want) = (get(&proxy, "/bytes/4097").unwrap().2, bytes(4097));
    let diff: Vec<_> = (0..4097).filter(|&i| body.get(i) != want.get(i)).collect();
    assert_eq!(
        (body.len(), diff),
        (4097, vec![2048]),
        "middle byte flipped"
    );
}

#[test]
fn a_stall_trips_the_read_timeout_and_drop_ends_it() {
    let (_up, _, proxy) = setup();
    proxy.inject(Rule::any(), Fault::Stall(Duration::from_secs(30)));
    let quick = agent(Some(Duration::from_millis(200)));
    let got = quick.get(format!("{}/bytes/10", proxy.url())).call();
    assert!(got.is_err(), "a stall must time out");
    assert_eq!(proxy.seen()[0].status, None);
    let started = Instant::now();
    drop(proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop ends a stall"
    );
}

#[test]
fn absolute_form_and_connect_reach_the_upstream() {
    let (_up, _, proxy) = setup();
    let host = "bucket.s3.artifact.test:1234";
    let head = format!(
        "GET http://{host}/bytes/5?x-id=GetObject HTTP/1.1\r\nHost: {host}\r\n\
         Proxy-Authorization: Basic dTpw\r\nConnection: close\r\n\r\n"
    );
    let text = String::from_utf8(raw(&proxy, head.as_bytes()).unwrap()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let target = "x-got-target: /bytes/5?x-id=GetObject\r\n";
    assert!(text.contains(target), "{text}");
    assert!(text.contains(&format!("x-got-host: {host}\r\n")), "{text}");
    let seen = proxy.seen();
    assert_eq!(
        (seen[0].path(), seen[0].query()),
        ("/bytes/5", "x-id=GetObject")
    );
    assert_eq!(seen[0].header("proxy-authorization"), Some("Basic dTpw"));

    // CONNECT relays bytes as they are: here an HTTP request, unparsed.
    let tunnel = b"CONNECT anything.invalid:443 HTTP/1.1\r\n\r\n\
                   GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = raw(&proxy, tunnel).unwrap();
    let both = b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200";
    assert!(out.starts_with(both) && out.ends_with(&bytes(10)));
    assert_eq!(proxy.connects(), ["anything.invalid:443"]);
    assert_eq!(proxy.seen().len(), 2, "tunnelled bytes are not parsed");
}

#[test]
fn random_faults_are_deterministic() {
    let codes = |seed: u64, per_mille: u32| {
        let (_up, _, proxy) = setup();
        let kinds = vec![Fault::Status(500), Fault::Status(503)];
        proxy.random_faults(seed, per_mille, kinds);
        let out: Vec<u16> = (0..40).map(|_| code(&proxy, "/bytes/3")).collect();
        let faulted = out.iter().filter(|&&s| s != 200).count();
        assert_eq!(proxy.faults_applied(), faulted);
        out
    };
    let first = codes(42, 500);
    assert_eq!(first, codes(42, 500), "same seed, same faults");
    assert!(
        [200, 500, 503].iter().all(|s| first.contains(s)),
        "{first:?}"
    );
    assert!(codes(42, 0).iter().all(|&s| s == 200));
    assert!(codes(7, 1000).iter().all(|&s| s != 200));
}

#[test]
fn conditional_puts_are_held_until_all_arrive_then_sent_one_at_a_time() {
    const RACERS: usize = 4;
    let cell: Arc<OnceLock<FaultProxy>> = Arc::default();
    let first = Arc::new(Mutex::new(None));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (p, f, n) = (cell.clone(), first.clone(), in_flight.clone());
    let up = Server::with_fn(move |_| {
        let seen = p.get().map_or(0, |p| p.seen().len());
        f.lock().unwrap().get_or_insert(seen);
        assert_eq!(n.fetch_add(1, SeqCst), 0, "two PUTs at once");
        std::thread::sleep(Duration::from_millis(20));
        n.fetch_sub(1, SeqCst);
        Reply::status(200, "")
    });
    let proxy = cell.get_or_init(|| FaultProxy::start(up.addr()));
    proxy.serialise_conditional_puts(RACERS);
    let url = format!("{}/contested", proxy.url());
    let put = move || {
        let req = agent(None).put(&url).header("if-none-match", "*");
        req.send(&b"x"[..]).map(|r| r.status())
    };
    let racers: Vec<_> = (0..RACERS)
        .map(|_| std::thread::spawn(put.clone()))
        .collect();
    assert!(racers
        .into_iter()
        .all(|r| r.join().unwrap().unwrap() == 200));
    let at_first = *first.lock().unwrap();
    assert_eq!(at_first, Some(RACERS), "the first went on once all arrived");
}
