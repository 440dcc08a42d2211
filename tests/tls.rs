//! Certificates are verified, and a private CA can be added.

use crate::support::TestEnv;
use testkit::tls::TlsProxy;

fn hub_behind_tls(env: &mut TestEnv) -> TlsProxy {
    let org = env.hub_server().org_url();
    let addr = org
        .trim_start_matches("http://")
        .parse()
        .expect("hub address");
    let proxy = TlsProxy::start(addr);
    env.set_env("SEMAPHORE_ORGANIZATION_URL", &proxy.url());
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "1");
    proxy
}

fn s3_behind_tls(env: &mut TestEnv) -> TlsProxy {
    let proxy = TlsProxy::start(env.s3_server().addr());
    // By address: s3s-fs would read a `localhost` host name as a bucket.
    env.set_env("ARTIFACT_S3_ENDPOINT", &proxy.ip_url());
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "1");
    proxy
}

#[test]
fn an_unknown_ca_is_refused_with_a_certificate_error() {
    let mut env = TestEnv::hub();
    let _tls = hub_behind_tls(&mut env);
    env.write("x.txt", b"x");
    env.run(&["push", "job", "x.txt"])
        .failure(1)
        .stderr_has("the TLS handshake failed")
        .stderr_has("certificate");
    assert!(env.hub_server().keys().is_empty());
}

#[test]
fn ssl_cert_file_adds_a_private_ca() {
    let mut env = TestEnv::hub();
    let tls = hub_behind_tls(&mut env);
    env.set_env("SSL_CERT_FILE", tls.ca_file().to_str().unwrap());
    env.write("x.txt", b"x");
    env.run(&["push", "job", "x.txt"]).success();
    assert_eq!(
        env.hub_server()
            .object("artifacts/jobs/job-1/x.txt")
            .unwrap(),
        b"x"
    );
}

#[test]
fn ssl_cert_dir_adds_a_private_ca() {
    let mut env = TestEnv::hub();
    let tls = hub_behind_tls(&mut env);
    let dir = tls
        .ca_file()
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    env.set_env("SSL_CERT_DIR", &dir);
    env.write("x.txt", b"x");
    env.run(&["push", "job", "x.txt"]).success();
}

#[test]
fn aws_ca_bundle_is_for_s3_only() {
    let mut env = TestEnv::hub();
    let tls = hub_behind_tls(&mut env);
    env.set_env("AWS_CA_BUNDLE", tls.ca_file().to_str().unwrap());
    env.write("x.txt", b"x");
    env.run(&["push", "job", "x.txt"])
        .failure(1)
        .stderr_has("the TLS handshake failed");
}

#[test]
fn s3_over_https_needs_the_ca_and_takes_aws_ca_bundle() {
    let mut env = TestEnv::s3();
    let tls = s3_behind_tls(&mut env);
    env.write("x.txt", b"secure");
    env.run(&["push", "job", "x.txt"])
        .failure(1)
        .stderr_has("the TLS handshake failed");
    env.set_env("AWS_CA_BUNDLE", tls.ca_file().to_str().unwrap());
    env.run(&["push", "job", "x.txt"]).success();
    env.run(&["pull", "job", "x.txt", "-d", "back.txt"])
        .success();
    assert_eq!(env.read("back.txt"), b"secure");
}

#[test]
fn a_bad_ca_variable_is_a_configuration_error() {
    let mut env = TestEnv::hub();
    let _tls = hub_behind_tls(&mut env);
    env.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    env.write("x.txt", b"x");
    env.run(&["push", "job", "x.txt"])
        .failure(3)
        .stderr_has("SSL_CERT_FILE='/nonexistent/ca.pem' cannot be used");
}

/// Plain-HTTP endpoints never read the certificate store, so a CA variable
/// that would be wrong for HTTPS does not stop them.
#[test]
fn plain_http_reads_no_certificates() {
    let mut env = TestEnv::hub();
    env.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    env.write("x.txt", b"x");
    let run = env.run(&["push", "job", "x.txt", "-v"]);
    run.success();
    assert!(!run.stderr.contains("trusting"), "{run}");
}
