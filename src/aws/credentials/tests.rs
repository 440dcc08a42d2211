//! Tests of the whole chain: its order, its messages and its refreshes,
//! against fake IMDS / container / STS / SSO servers on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::fake_endpoints::{
    closed_port_url, env_in, fake_imds, metadata_json, write, FakeServer, Reply, ASSUME_ROLE_OK,
};
use super::*;
use crate::time::format_rfc3339;

const KEYS: &str = "aws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n";

fn resolve(home: &std::path::Path, pairs: &[(&str, &str)]) -> Result<Chain> {
    Chain::resolve(&env_in(home, pairs), &Default::default())
}

fn key(chain: &Chain) -> String {
    chain.current().unwrap().access_key_id.clone()
}

#[test]
fn chain_is_send_and_sync_and_debug_hides_secrets() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Chain>();
    let creds = Credentials {
        access_key_id: "AKID".into(),
        secret_access_key: "very-secret".into(),
        session_token: Some("session-token".into()),
        expires_at: None,
    };
    let shown = format!("{creds:?}");
    assert!(shown.contains("AKID"));
    assert!(
        !shown.contains("very-secret") && !shown.contains("session-token"),
        "{shown}"
    );
}

#[test]
fn environment_keys() {
    let home = tempfile::tempdir().unwrap();
    let chain = resolve(
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ],
    )
    .unwrap();
    assert_eq!(chain.source(), "environment");
    let creds = chain.current().unwrap();
    assert_eq!(
        (
            creds.access_key_id.as_str(),
            creds.secret_access_key.as_str()
        ),
        ("AKIDENV", "env-secret")
    );
    assert_eq!(creds.session_token.as_deref(), Some("env-token"));
    assert_eq!(creds.expires_at, None);
    // The SDK's older names.
    let chain = resolve(
        home.path(),
        &[("AWS_ACCESS_KEY", "OLD"), ("AWS_SECRET_KEY", "s")],
    )
    .unwrap();
    assert_eq!(key(&chain), "OLD");
}

#[test]
fn half_a_key_pair_in_the_environment_is_named() {
    let home = tempfile::tempdir().unwrap();
    let err = resolve(home.path(), &[("AWS_ACCESS_KEY_ID", "AKID")])
        .err()
        .unwrap();
    assert!(matches!(err, Error::Config(_)));
    assert!(
        err.to_string()
            .starts_with("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
        "{err}"
    );
    let err = resolve(home.path(), &[("AWS_SECRET_ACCESS_KEY", "secret-value")])
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
        "{err}"
    );
    assert!(!err.to_string().contains("secret-value"));
}

#[test]
fn environment_keys_win_over_a_profile() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/credentials",
        &format!("[default]\n{KEYS}"),
    );
    let chain = resolve(
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ],
    )
    .unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("environment", "AKIDENV")
    );
}

#[test]
fn web_identity_from_the_environment_wins_over_a_profile() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/credentials",
        &format!("[default]\n{KEYS}"),
    );
    let token = write(home.path(), "token", "jwt");
    let sts = FakeServer::start(|_| Reply::ok(ASSUME_ROLE_OK));
    let chain = resolve(
        home.path(),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
            ("AWS_ENDPOINT_URL_STS", &sts.url()),
        ],
    )
    .unwrap();
    assert_eq!(
        chain.source(),
        "web identity token file (role arn:aws:iam::1:role/irsa)"
    );
    assert_eq!(key(&chain), "ASIAASSUMED");
    assert!(sts.requests()[0]
        .text()
        .contains("Action=AssumeRoleWithWebIdentity"));
}

#[test]
fn a_profile_wins_over_container_and_imds() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/credentials",
        &format!("[default]\n{KEYS}"),
    );
    let container =
        FakeServer::start(|_| Reply::json(metadata_json("AKIDCONTAINER", "2099-01-01T00:00:00Z")));
    let imds = fake_imds("r", "2099-01-01T00:00:00Z");
    let chain = resolve(
        home.path(),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container.url()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url()),
        ],
    )
    .unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("profile 'default' (static keys)", "AKIDPROFILE")
    );
    assert!(container.requests().is_empty() && imds.requests().is_empty());
}

#[test]
fn container_wins_over_imds() {
    let home = tempfile::tempdir().unwrap();
    // A profile without credentials is passed over.
    write(
        home.path(),
        ".aws/config",
        "[default]\nregion = eu-west-1\n",
    );
    let container =
        FakeServer::start(|_| Reply::json(metadata_json("AKIDCONTAINER", "2099-01-01T00:00:00Z")));
    let imds = fake_imds("r", "2099-01-01T00:00:00Z");
    let chain = resolve(
        home.path(),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{}/v1/credentials", container.url()),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url()),
        ],
    )
    .unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("container credentials", "AKIDCONTAINER")
    );
    assert_eq!(
        container.requests()[0].header("authorization"),
        Some("pod-token")
    );
    assert!(imds.requests().is_empty());
}

#[test]
fn imds_comes_last() {
    let home = tempfile::tempdir().unwrap();
    let imds = fake_imds("ci-role", "2099-01-01T00:00:00Z");
    let chain = resolve(
        home.path(),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())],
    )
    .unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("EC2 instance metadata", "AKIDIMDS")
    );
    assert_eq!(imds.requests().len(), 3);
}

#[test]
fn nothing_anywhere_lists_every_source() {
    let home = tempfile::tempdir().unwrap();
    let closed = closed_port_url();
    let err = resolve(
        home.path(),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &closed)],
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    for part in [
        "no AWS credentials found. Tried: environment (AWS_ACCESS_KEY_ID not set); ",
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set); ",
        "profile 'default' (no ~/.aws/credentials or ~/.aws/config); ",
        "container (AWS_CONTAINER_CREDENTIALS_* not set); ",
        &format!("EC2 instance metadata (not reachable at {closed}: "),
        "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or see README 'S3 credentials'.",
    ] {
        assert!(text.contains(part), "missing {part:?} in {text}");
    }
}

/// What makes "nothing anywhere" quick, as limits: a credential endpoint
/// that is not there is given a short connect timeout and few attempts,
/// and one that fails is asked no more often than that.
#[test]
fn a_missing_or_failing_imds_costs_a_bounded_number_of_short_attempts() {
    let policy = source_http::settings();
    assert!(policy.connect_timeout <= Duration::from_secs(1));
    assert!(policy.attempts <= 2);
    assert!(policy.retry_delay <= Duration::from_millis(100));
    let home = tempfile::tempdir().unwrap();
    let imds = FakeServer::start(|_| Reply::status(503, "down"));
    let err = resolve(
        home.path(),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())],
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("503"), "{err}");
    let asked = imds.requests().len();
    assert!(asked <= policy.attempts, "{asked} requests");
}

#[test]
fn profile_without_credentials_and_disabled_imds_are_explained() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), ".aws/config", "[profile other]\nregion = x\n");
    // Disabled means not asked at all, even where an endpoint is set.
    let imds = FakeServer::start(|_| Reply::status(503, "down"));
    let disabled = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url()),
    ];
    let err = resolve(home.path(), &disabled).err().unwrap();
    assert!(imds.requests().is_empty());
    let text = err.to_string();
    assert!(
        text.contains("profile 'default' (not in ~/.aws/credentials or ~/.aws/config)"),
        "{text}"
    );
    assert!(
        text.contains("EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED=true)."),
        "{text}"
    );

    write(home.path(), ".aws/config", "[default]\nregion = x\n");
    let text = resolve(home.path(), &[("AWS_EC2_METADATA_DISABLED", "true")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        text.contains("profile 'default' (no credential settings in"),
        "{text}"
    );
}

#[test]
fn aws_profile_naming_a_missing_profile_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/credentials",
        &format!("[default]\n{KEYS}"),
    );
    let imds = fake_imds("r", "2099-01-01T00:00:00Z");
    let err = resolve(
        home.path(),
        &[
            ("AWS_PROFILE", "nope"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url()),
        ],
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Config(_)));
    assert!(
        err.to_string().starts_with("AWS_PROFILE=nope names a profile that is in none of ~/.aws/credentials or ~/.aws/config"),
        "{err}"
    );
    assert!(imds.requests().is_empty());
    // Without any file, too.
    let empty = tempfile::tempdir().unwrap();
    assert!(resolve(empty.path(), &[("AWS_PROFILE", "nope")]).is_err());
}

#[test]
fn aws_profile_picks_the_profile_and_the_credentials_file_wins() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/config",
        "[profile dev]\naws_access_key_id = FROMCONFIG\naws_secret_access_key = c\nregion = eu-central-1\n[default]\nregion = us-west-2\n",
    );
    write(
        home.path(),
        ".aws/credentials",
        "[dev]\naws_access_key_id = FROMCREDS\naws_secret_access_key = s\n",
    );
    let chain = resolve(home.path(), &[("AWS_PROFILE", "dev")]).unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("profile 'dev' (static keys)", "FROMCREDS")
    );
    assert_eq!(
        profile_region(&env_in(home.path(), &[("AWS_PROFILE", "dev")])),
        Some((
            "region in profile 'dev'".to_string(),
            "eu-central-1".to_string()
        ))
    );
    assert_eq!(
        profile_region(&env_in(home.path(), &[])).map(|(_, r)| r),
        Some("us-west-2".to_string())
    );
    assert_eq!(
        profile_region(&env_in(home.path(), &[("AWS_PROFILE", "nope")])),
        None
    );
    let elsewhere = write(home.path(), "cfg", "[default]\nregion = ap-south-1\n");
    let env = env_in(
        home.path(),
        &[("AWS_CONFIG_FILE", elsewhere.to_str().unwrap())],
    );
    assert_eq!(
        profile_region(&env).map(|(_, r)| r),
        Some("ap-south-1".to_string())
    );
}

#[test]
fn assume_role_profile_signs_with_the_source_profile() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/config",
        "[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci\nsource_profile = base\nrole_session_name = build\nregion = eu-west-1\n",
    );
    write(
        home.path(),
        ".aws/credentials",
        "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n",
    );
    let sts = FakeServer::start(|req| {
        let auth = req.header("authorization").unwrap_or_default();
        if auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBASE/")
            && auth.contains("/eu-west-1/sts/aws4_request")
        {
            Reply::ok(ASSUME_ROLE_OK)
        } else {
            Reply::status(403, "<Error><Code>InvalidClientTokenId</Code></Error>")
        }
    });
    let chain = resolve(
        home.path(),
        &[("AWS_PROFILE", "ci"), ("AWS_ENDPOINT_URL_STS", &sts.url())],
    )
    .unwrap();
    assert_eq!(
        chain.source(),
        "profile 'ci' (assume role arn:aws:iam::123456789012:role/ci from profile 'base')"
    );
    let creds = chain.current().unwrap();
    assert_eq!(creds.access_key_id, "ASIAASSUMED");
    assert_eq!(creds.session_token.as_deref(), Some("assumed-token&more"));
    assert!(sts.requests()[0].text().contains("&RoleSessionName=build&"));
}

#[test]
fn a_configured_source_that_fails_stops_the_chain() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/config",
        "[default]\ncredential_process = echo 'vault is sealed' >&2; exit 2\n",
    );
    let imds = fake_imds("r", "2099-01-01T00:00:00Z");
    let err = resolve(
        home.path(),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())],
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "credential_process of profile 'default' failed (exit status 2): vault is sealed"
    );
    assert!(imds.requests().is_empty());

    // The same for a container endpoint that refuses.
    let container = FakeServer::start(|_| Reply::status(403, "{\"message\":\"no\"}"));
    let empty = tempfile::tempdir().unwrap();
    let err = resolve(
        empty.path(),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container.url()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url()),
        ],
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(imds.requests().is_empty());
}

#[test]
fn credential_process_profile() {
    let home = tempfile::tempdir().unwrap();
    let script = write(
        home.path(),
        "bin/creds",
        "echo '{\"Version\":1,\"AccessKeyId\":\"AKIDPROC\",\"SecretAccessKey\":\"s\",\"Expiration\":\"2099-01-01T00:00:00Z\"}'\n",
    );
    write(
        home.path(),
        ".aws/config",
        &format!(
            "[profile p]\ncredential_process = sh {}\n",
            script.display()
        ),
    );
    let chain = resolve(home.path(), &[("AWS_PROFILE", "p")]).unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        ("profile 'p' (credential_process)", "AKIDPROC")
    );
}

#[test]
fn sso_profile_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        ".aws/config",
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Dev\n\
         [sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://d-abc123.awsapps.com/start\n",
    );
    let cache = sso::cache_file(home.path(), "corp");
    write(
        home.path(),
        cache.strip_prefix(home.path()).unwrap().to_str().unwrap(),
        r#"{"accessToken":"sso-access","expiresAt":"2099-01-01T00:00:00Z"}"#,
    );
    let portal = FakeServer::start(|req| {
        if req.header("x-amz-sso_bearer_token") == Some("sso-access") {
            Reply::json(
                serde_json::json!({"roleCredentials": {"accessKeyId": "ASIASSO",
                "secretAccessKey": "s", "sessionToken": "t", "expiration": 4_070_908_800_000_i64}}),
            )
        } else {
            Reply::status(401, "{}")
        }
    });
    let chain = resolve(
        home.path(),
        &[
            ("AWS_PROFILE", "dev"),
            ("AWS_ENDPOINT_URL_SSO", &portal.url()),
        ],
    )
    .unwrap();
    assert_eq!(
        (chain.source(), key(&chain).as_str()),
        (
            "profile 'dev' (SSO account 123456789012 role Dev)",
            "ASIASSO"
        )
    );
}

/// A container endpoint whose first answer expires in `first`, and later
/// ones in an hour; counts its requests.
fn counting_container(first: Duration) -> (FakeServer, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let server = FakeServer::start(move |_| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let (key, expires) = if n == 0 {
            ("AKIDFIRST", SystemTime::now() + first)
        } else {
            ("AKIDSECOND", SystemTime::now() + Duration::from_secs(3600))
        };
        Reply::json(metadata_json(key, &format_rfc3339(expires)))
    });
    (server, count)
}

#[test]
fn credentials_near_expiry_are_refreshed_once() {
    let home = tempfile::tempdir().unwrap();
    let (server, count) = counting_container(Duration::from_secs(120));
    let chain = resolve(
        home.path(),
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url())],
    )
    .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(key(&chain), "AKIDSECOND");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(key(&chain), "AKIDSECOND");
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // Far from expiry: no refresh at all.
    let (server, count) = counting_container(Duration::from_secs(3600));
    let chain = resolve(
        home.path(),
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url())],
    )
    .unwrap();
    assert_eq!(key(&chain), "AKIDFIRST");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn one_refresh_serves_every_thread() {
    let home = tempfile::tempdir().unwrap();
    let (server, count) = counting_container(Duration::from_secs(60));
    let chain = Arc::new(
        resolve(
            home.path(),
            &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url())],
        )
        .unwrap(),
    );
    let keys: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| key(&chain))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| k == "AKIDSECOND"), "{keys:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn failed_refresh_keeps_usable_credentials_and_reports_expired_ones() {
    let home = tempfile::tempdir().unwrap();
    let make = |expires: String| {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let server = FakeServer::start(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(metadata_json("AKIDOLD", &expires))
            } else {
                Reply::status(400, "{\"message\":\"agent confused\"}")
            }
        });
        (server, count)
    };
    // Still valid for two minutes: the refresh fails, the old ones serve,
    // and the next call does not hammer the endpoint.
    let (server, count) = make(format_rfc3339(SystemTime::now() + Duration::from_secs(120)));
    let chain = resolve(
        home.path(),
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url())],
    )
    .unwrap();
    assert_eq!(key(&chain), "AKIDOLD");
    assert_eq!(key(&chain), "AKIDOLD");
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // Already expired: the failure is the answer.
    let (server, _) = make("2020-01-01T00:00:00Z".to_string());
    let chain = resolve(
        home.path(),
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url())],
    )
    .unwrap();
    let err = chain.current().unwrap_err();
    assert!(err.to_string().contains("agent confused"), "{err}");
}
