//! Test helpers: the test kit's recording server (`FakeServer`) plays IMDS,
//! the container agent, STS or SSO on a loopback port of each test's own,
//! so tests stay parallel and never touch the real network; plus an
//! environment, files and answers the credential tests share.

use std::path::Path;

use crate::config::Env;

pub use testkit::aws::{closed_port_url, FakeAws as FakeServer};
pub use testkit::http::Reply;

/// An environment with HOME at `home` (so no real ~/.aws is read), IMDS
/// pointed at a closed port (so no real network is touched), and `pairs`.
/// Pairs win over those two defaults.
pub fn env_in(home: &Path, pairs: &[(&str, &str)]) -> Env {
    let mut all: Vec<(String, String)> = vec![
        ("HOME".into(), home.to_string_lossy().into_owned()),
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
            closed_port_url(),
        ),
    ];
    for (k, v) in pairs {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    Env::from_pairs(all)
}

/// Writes `text` to `home/rel`, creating directories.
pub fn write(home: &Path, rel: &str, text: &str) -> std::path::PathBuf {
    let path = home.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub const ASSUME_ROLE_OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAASSUMED</AccessKeyId>
      <SecretAccessKey>assumed/secret+key</SecretAccessKey>
      <SessionToken>assumed-token&amp;more</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

/// Credentials JSON as IMDS and the container agent write it.
pub fn metadata_json(key: &str, expires: &str) -> serde_json::Value {
    serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": key,
        "SecretAccessKey": format!("{key}-secret"),
        "Token": format!("{key}-token"),
        "Expiration": expires,
    })
}

/// IMDSv2 that insists on its token, serving `role` with credentials
/// `AKIDIMDS` expiring at `expires`.
pub fn fake_imds(role: &'static str, expires: &'static str) -> FakeServer {
    const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
    FakeServer::start(move |req| {
        if req.method == "PUT" && req.path() == "/latest/api/token" {
            return match req.header("x-aws-ec2-metadata-token-ttl-seconds") {
                Some("21600") => Reply::ok("imds-token"),
                _ => Reply::status(400, "missing ttl"),
            };
        }
        if req.header("x-aws-ec2-metadata-token") != Some("imds-token") {
            return Reply::status(401, "");
        }
        match req.path().strip_prefix(ROLES) {
            Some("") => Reply::ok(&format!("{role}\n")),
            Some(r) if r == role => Reply::json(metadata_json("AKIDIMDS", expires)),
            _ => Reply::status(404, ""),
        }
    })
}
