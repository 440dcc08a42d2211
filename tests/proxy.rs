//! HTTPS_PROXY, HTTP_PROXY and NO_PROXY for the Hub, its storage and S3,
//! through loopback proxies that resolve every name to a test server
//! (`*.artifact.test` names exist nowhere else): the fault-injecting proxy,
//! and a Squid-like one that takes plain http only in absolute form,
//! CONNECT only to port 443, and may demand Basic credentials.

use serde_json::Value;

use crate::support::{Run, TestEnv};
use testkit::fault::FaultProxy;
use testkit::s3::VHOST_DOMAIN;
use testkit::squid::{Logged, Squid};
use testkit::tls::TlsProxy;

/// The Hub over HTTPS behind HTTPS_PROXY; its storage behind HTTP_PROXY.
#[test]
fn hub_and_storage_go_through_their_scheme_proxies() {
    let mut env = TestEnv::hub();
    let hub_addr = env
        .hub_server()
        .org_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let tls = TlsProxy::start(hub_addr);
    let hub_port = tls.url().rsplit(':').next().unwrap().to_string();
    let https_proxy = FaultProxy::start(tls_addr(&tls));
    let storage_base = env.hub_server().storage_url();
    let storage_addr = storage_base.trim_start_matches("http://").parse().unwrap();
    let http_proxy = FaultProxy::start(storage_addr);
    // The Hub hands out storage URLs by name, which only the proxy resolves.
    let named = format!(
        "http://storage.artifact.test:{}",
        storage_base.rsplit(':').next().unwrap()
    );
    env.hub_server().point_urls_at(&named);
    env.set_env(
        "SEMAPHORE_ORGANIZATION_URL",
        &format!("https://hub.artifact.test:{hub_port}"),
    );
    env.set_env("SSL_CERT_FILE", tls.ca_file().to_str().unwrap());
    env.set_env("HTTPS_PROXY", &https_proxy.url());
    env.set_env("HTTP_PROXY", &http_proxy.url());
    env.write("p.txt", b"through proxies");
    // A push: its HEAD and PUT URLs are used as given (a pull reads keys
    // back out of URLs, which knows only the real storages' host names).
    env.run(&["push", "job", "p.txt"]).success();
    assert_eq!(
        env.hub_server()
            .object("artifacts/jobs/job-1/p.txt")
            .unwrap(),
        b"through proxies"
    );
    assert!(https_proxy
        .connects()
        .iter()
        .all(|c| c.starts_with("hub.artifact.test:")));
    assert!(
        !https_proxy.connects().is_empty(),
        "the Hub was not reached through HTTPS_PROXY"
    );
    // Plain http is not tunnelled: requests name their absolute URL.
    assert!(
        http_proxy.connects().is_empty(),
        "{:?}",
        http_proxy.connects()
    );
    let storage = http_proxy.seen();
    assert!(storage
        .iter()
        .all(|s| s.target.starts_with("http://storage.artifact.test:")));
    assert!(
        !storage.is_empty(),
        "the storage was not reached through HTTP_PROXY"
    );
}

/// S3 over HTTPS through HTTPS_PROXY (the TLS session runs inside the tunnel).
#[test]
fn s3_goes_through_https_proxy() {
    let mut env = TestEnv::s3();
    let tls = TlsProxy::start(env.s3_server().addr());
    let proxy = FaultProxy::start(tls_addr(&tls));
    env.set_env("ARTIFACT_S3_ENDPOINT", &format!("https://{VHOST_DOMAIN}"));
    env.set_env("ARTIFACT_S3_FORCE_PATH_STYLE", "true");
    env.set_env("AWS_CA_BUNDLE", tls.ca_file().to_str().unwrap());
    env.set_env("HTTPS_PROXY", &proxy.url());
    env.write("s.txt", b"tunnelled");
    env.run(&["push", "job", "s.txt"]).success();
    env.run(&["pull", "job", "s.txt", "-d", "back.txt"])
        .success();
    assert_eq!(env.read("back.txt"), b"tunnelled");
    assert_eq!(
        proxy.connects().first().map(String::as_str),
        Some(format!("{VHOST_DOMAIN}:443").as_str())
    );
}

/// NO_PROXY sends matching hosts direct: here the name then cannot be
/// resolved, which proves the proxy was not asked.
#[test]
fn no_proxy_hosts_go_direct() {
    let mut env = TestEnv::s3();
    let proxy = FaultProxy::start(env.s3_server().addr());
    env.set_env("ARTIFACT_S3_ENDPOINT", &format!("http://{VHOST_DOMAIN}"));
    env.set_env("HTTP_PROXY", &proxy.url());
    env.set_env("NO_PROXY", "localhost,.artifact.test");
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "1");
    env.write("n.txt", b"n");
    env.run(&["push", "job", "n.txt"]).failure(1);
    assert!(
        proxy.connects().is_empty(),
        "NO_PROXY was ignored: {:?}",
        proxy.connects()
    );
    assert!(proxy.seen().is_empty());

    env.set_env("NO_PROXY", "example.invalid");
    env.run(&["push", "job", "n.txt"]).success();
    assert!(!proxy.seen().is_empty());
    assert!(proxy.connects().is_empty(), "plain http was tunnelled");
}

const PROXY_USER: &str = "ci-user";
const PROXY_PASSWORD: &str = "pr0xy-s3cret";
/// `Basic` + base64 of `ci-user:pr0xy-s3cret`.
const PROXY_AUTHORIZATION: &str = "Basic Y2ktdXNlcjpwcjB4eS1zM2NyZXQ=";

/// Neither the proxy password nor the header made of it is ever printed.
#[track_caller]
fn assert_no_proxy_credentials(run: &Run) {
    for secret in [PROXY_PASSWORD, &PROXY_AUTHORIZATION["Basic ".len()..]] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the proxy credentials leaked\n{run}"
        );
    }
}

/// Every request reached the proxy in absolute form (no CONNECT), for one
/// of `origins`, with the credentials, and was answered by the store.
#[track_caller]
fn assert_absolute_form(log: &[Logged], origins: &[String]) {
    assert!(!log.is_empty(), "nothing went through the proxy");
    for entry in log {
        assert!(
            origins
                .iter()
                .any(|o| entry.target.starts_with(&format!("{o}/"))),
            "{entry:?}"
        );
        assert_ne!(entry.method, "CONNECT", "{entry:?}");
        assert_eq!(
            entry.proxy_authorization.as_deref(),
            Some(PROXY_AUTHORIZATION),
            "{entry:?}"
        );
        // Answered by the store (a HEAD may rightly find nothing), not
        // refused by the proxy.
        assert!(
            !matches!(entry.status, 400 | 403 | 407 | 411 | 502 | 503),
            "{entry:?}"
        );
    }
}

/// The Hub over plain http behind a Squid-like proxy that demands Basic
/// auth and refuses CONNECT but to 443: push, pull and yank go through it
/// in absolute form, with `Proxy-Authorization` on every request, and the
/// credentials never reach the output, not even with -v.
#[test]
fn hub_through_a_squid_proxy_in_absolute_form() {
    let mut env = TestEnv::hub();
    let squid = Squid::with_auth(None, PROXY_USER, PROXY_PASSWORD);
    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let hub = format!(
        "http://hub.artifact.test:{}",
        port(&env.hub_server().org_url())
    );
    let sample = env.hub_server().signed_url("GET", "x");
    let storage_base =
        sample[..sample["http://".len()..].find('/').unwrap() + "http://".len()].to_string();
    let storage = format!("http://storage.artifact.test:{}", port(&storage_base));
    // Push and yank use the storage URLs as given; a pull reads keys back
    // out of them, which knows only real storage hosts, so its GETs keep
    // the loopback address (and go direct).
    let named = storage.clone();
    env.hub_server()
        .set_hub_hook(move |call, answer: &mut Value| {
            if call.kind == 2 {
                return;
            }
            if let Some(Value::Array(urls)) = answer.get_mut("urls") {
                for u in urls {
                    if let Some(Value::String(url)) = u.get_mut("url") {
                        *url = url.replace(&storage_base, &named);
                    }
                }
            }
        });
    env.set_env("SEMAPHORE_ORGANIZATION_URL", &hub);
    env.set_env("HTTP_PROXY", &squid.url_with(PROXY_USER, PROXY_PASSWORD));
    env.write("dir/a.txt", b"alpha");
    env.write("dir/b.txt", b"beta");

    let push = env.run(&["push", "job", "dir", "-v"]);
    assert_no_proxy_credentials(push.success());
    assert_eq!(
        env.hub_server()
            .object("artifacts/jobs/job-1/dir/b.txt")
            .unwrap(),
        b"beta"
    );
    let pull = env.run(&["pull", "job", "dir", "-d", "back", "-v"]);
    assert_no_proxy_credentials(pull.success());
    assert_eq!(env.read("back/a.txt"), b"alpha");
    let yank = env.run(&["yank", "job", "dir", "-v"]);
    assert_no_proxy_credentials(yank.success());
    assert!(env.hub_server().keys().is_empty());

    let log = squid.log();
    assert_absolute_form(&log, &[hub.clone(), storage.clone()]);
    for origin in [&hub, &storage] {
        assert!(
            log.iter().any(|e| e.target.starts_with(origin.as_str())),
            "{origin} was not reached through the proxy: {log:?}"
        );
    }
    assert!(log.iter().any(|e| e.method == "PUT"));
    assert!(log.iter().any(|e| e.method == "DELETE"));

    // Without the credentials the proxy says 407, and that is what the
    // user reads.
    env.set_env("HTTP_PROXY", &squid.url());
    env.write("c.txt", b"c");
    let refused = env.run(&["push", "job", "c.txt", "-v"]);
    assert_ne!(refused.code, 0, "{refused}");
    refused.stderr_has("407");
}

/// S3 (s3s-fs) on a plain-http endpoint behind the same proxy: every
/// request, signed, goes in absolute form with the credentials, and one
/// proxy connection carries many requests (the rewrite holds on reused
/// connections).
#[test]
fn s3_over_http_through_a_squid_proxy_in_absolute_form() {
    let mut env = TestEnv::s3();
    let squid = Squid::with_auth(None, PROXY_USER, PROXY_PASSWORD);
    // An internal store by address (TEST-NET-1: routed nowhere, so only
    // the proxy, which sends every host to loopback, reaches it).
    let endpoint = format!("http://192.0.2.10:{}", env.s3_server().addr().port());
    env.set_env("ARTIFACT_S3_ENDPOINT", &endpoint);
    env.set_env("ARTIFACT_S3_FORCE_PATH_STYLE", "true");
    env.set_env("HTTP_PROXY", &squid.url_with(PROXY_USER, PROXY_PASSWORD));
    env.set_env("ARTIFACT_PARALLELISM", "1");
    for i in 0..5 {
        env.write(&format!("d/f{i}.txt"), format!("file {i}").as_bytes());
    }
    let push = env.run(&["push", "job", "d", "-v"]);
    assert_no_proxy_credentials(push.success());
    let pull = env.run(&["pull", "job", "d", "-d", "back", "-v"]);
    assert_no_proxy_credentials(pull.success());
    for i in 0..5 {
        assert_eq!(
            env.read(&format!("back/f{i}.txt")),
            format!("file {i}").as_bytes()
        );
    }
    let yank = env.run(&["yank", "job", "d", "-v"]);
    assert_no_proxy_credentials(yank.success());
    assert!(
        env.s3_server().keys().is_empty(),
        "{:?}",
        env.s3_server().keys()
    );

    let log = squid.log();
    assert_absolute_form(&log, &[endpoint]);
    assert!(
        squid.connections() < log.len(),
        "{} connections for {} requests: none was reused",
        squid.connections(),
        log.len()
    );
}

/// A proxy reached over TLS (`HTTP_PROXY=https://…`): plain http requests
/// still go in absolute form, inside the TLS session to the proxy, which
/// the configured CA verifies.
#[test]
fn an_https_proxy_url_carries_plain_http_over_tls() {
    let mut env = TestEnv::s3();
    let squid = Squid::with_auth(None, PROXY_USER, PROXY_PASSWORD);
    let tls = TlsProxy::start(squid.url().trim_start_matches("http://").parse().unwrap());
    let proxy = tls.url().replacen(
        "https://",
        &format!("https://{PROXY_USER}:{PROXY_PASSWORD}@"),
        1,
    );
    let endpoint = format!("http://192.0.2.10:{}", env.s3_server().addr().port());
    env.set_env("ARTIFACT_S3_ENDPOINT", &endpoint);
    env.set_env("ARTIFACT_S3_FORCE_PATH_STYLE", "true");
    env.set_env("HTTP_PROXY", &proxy);
    env.set_env("SSL_CERT_FILE", tls.ca_file().to_str().unwrap());
    env.write("t.txt", b"over tls");
    assert_no_proxy_credentials(env.run(&["push", "job", "t.txt", "-v"]).success());
    assert_no_proxy_credentials(
        env.run(&["pull", "job", "t.txt", "-d", "back.txt", "-v"])
            .success(),
    );
    assert_eq!(env.read("back.txt"), b"over tls");
    assert_absolute_form(&squid.log(), &[endpoint]);
}

/// S3 over https behind the proxy: tunnelled with `CONNECT host:443`, which
/// carries the proxy credentials too.
#[test]
fn https_is_tunnelled_with_connect_and_credentials() {
    let mut env = TestEnv::s3();
    let tls = TlsProxy::start(env.s3_server().addr());
    let squid = Squid::with_auth(Some(tls_addr(&tls)), PROXY_USER, PROXY_PASSWORD);
    env.set_env("ARTIFACT_S3_ENDPOINT", &format!("https://{VHOST_DOMAIN}"));
    env.set_env("ARTIFACT_S3_FORCE_PATH_STYLE", "true");
    env.set_env("AWS_CA_BUNDLE", tls.ca_file().to_str().unwrap());
    env.set_env("HTTPS_PROXY", &squid.url_with(PROXY_USER, PROXY_PASSWORD));
    env.write("s.txt", b"tunnelled");
    assert_no_proxy_credentials(env.run(&["push", "job", "s.txt", "-v"]).success());
    assert_no_proxy_credentials(
        env.run(&["pull", "job", "s.txt", "-d", "back.txt", "-v"])
            .success(),
    );
    assert_eq!(env.read("back.txt"), b"tunnelled");
    let log = squid.log();
    assert!(!log.is_empty());
    for entry in &log {
        assert_eq!(entry.method, "CONNECT", "{entry:?}");
        assert_eq!(entry.target, format!("{VHOST_DOMAIN}:443"));
        assert_eq!(
            entry.proxy_authorization.as_deref(),
            Some(PROXY_AUTHORIZATION)
        );
    }
}

/// The proxy itself refuses what Squid's default configuration refuses.
#[test]
fn the_squid_proxy_refuses_connect_off_443_and_origin_form() {
    let open = Squid::start(None);
    let connect =
        "CONNECT minio.artifact.test:9000 HTTP/1.1\r\nHost: minio.artifact.test:9000\r\n\r\n";
    assert!(ask(&open, connect).starts_with("HTTP/1.1 403 "));
    let origin_form = "GET /bucket/key HTTP/1.1\r\nHost: minio.artifact.test:9000\r\n\r\n";
    assert!(ask(&open, origin_form).starts_with("HTTP/1.1 400 "));
    let locked = Squid::with_auth(None, PROXY_USER, PROXY_PASSWORD);
    let answer = ask(
        &locked,
        "GET http://minio.artifact.test:1/x HTTP/1.1\r\nHost: minio.artifact.test:1\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 407 "), "{answer}");
    assert!(answer.contains("Proxy-Authenticate: Basic"), "{answer}");
}

/// Sends `request` to `proxy` and reads the answer up to its close.
fn ask(proxy: &Squid, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

fn tls_addr(tls: &TlsProxy) -> std::net::SocketAddr {
    tls.ip_url().trim_start_matches("https://").parse().unwrap()
}
