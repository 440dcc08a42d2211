//! HTTPS_PROXY, HTTP_PROXY and NO_PROXY for the Hub, its storage and S3,
//! through a loopback CONNECT proxy that resolves every name to the test
//! server (`*.artifact.test` names exist nowhere else).

use crate::support::TestEnv;
use testkit::fault::FaultProxy;
use testkit::s3::VHOST_DOMAIN;
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
    assert!(http_proxy
        .connects()
        .iter()
        .all(|c| c.starts_with("storage.artifact.test:")));
    assert!(
        !http_proxy.connects().is_empty(),
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
    assert!(!proxy.connects().is_empty());
}

fn tls_addr(tls: &TlsProxy) -> std::net::SocketAddr {
    tls.ip_url().trim_start_matches("https://").parse().unwrap()
}
