//! The S3 backend's AWS credential chain, through the built binary.
//!
//! Every case clears the harness's static keys, points HOME at a temp dir of
//! its own and hands the s3s-fs server's keys to the binary through exactly
//! one source (a file, a script, or a fake endpoint from
//! `support::aws_fakes`), then pushes and/or pulls. s3s-fs checks every
//! SigV4 signature, so a transfer that succeeds proves the binary got those
//! keys from that source; `-v` must name the source, and the fakes' request
//! logs show what the binary asked for. Sources that must lose hand out
//! wrong keys, so using them would fail the transfer. All endpoints are on
//! loopback ports of the test's own.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Run, TestEnv};
use testkit::aws::{
    closed_port_url, iso8601, sha1_hex, verify_sigv4, FakeAws, Keys, IMDS_ROLES_PATH,
    IMDS_SESSION_TOKEN, IMDS_TOKEN_PATH,
};

const JOB: &str = "artifacts/jobs/job-1";

/// One test's binary, S3 server and home directory.
struct Case {
    env: TestEnv,
    home: tempfile::TempDir,
}

impl Case {
    /// s3s-fs, no credentials in the environment, an empty HOME, IMDS off
    /// (the harness's AWS_EC2_METADATA_DISABLED=true stays).
    fn new() -> Case {
        let mut env = TestEnv::s3();
        let home = tempfile::tempdir().expect("home dir");
        env.set_env("AWS_ACCESS_KEY_ID", "");
        env.set_env("AWS_SECRET_ACCESS_KEY", "");
        env.set_env("HOME", home.path().to_str().expect("utf-8 temp path"));
        Case { env, home }
    }

    fn access_key(&self) -> String {
        self.env.s3_server().access_key().to_string()
    }

    fn secret_key(&self) -> String {
        self.env.s3_server().secret_key().to_string()
    }

    /// The keys s3s-fs accepts, with a session token (s3s-fs ignores it).
    fn right_keys(&self, session_token: &str) -> Keys {
        Keys::new(&self.access_key(), &self.secret_key(), session_token)
    }

    /// `[section]` with the keys s3s-fs accepts.
    fn right_section(&self, header: &str) -> String {
        format!(
            "{header}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.access_key(),
            self.secret_key()
        )
    }

    /// Writes `$HOME/rel`.
    fn home_file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.set_env(name, value);
    }

    /// Turns IMDS on, at `url`.
    fn enable_imds(&mut self, url: &str) {
        self.set("AWS_EC2_METADATA_DISABLED", "");
        self.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
    }

    /// Pushes `creds.txt` with -v; checks success, the stored object and
    /// that -v names `source`.
    fn push(&self, source: &str) -> Run {
        let body = format!("pushed with credentials from {source}\n");
        self.env.write("creds.txt", body.as_bytes());
        let run = self.env.run(&["push", "job", "creds.txt", "-v"]);
        run.success();
        assert_source(&run, source);
        assert_eq!(
            self.env.object(&format!("{JOB}/creds.txt")),
            Some(body.into_bytes()),
            "the pushed object\n{run}"
        );
        run
    }

    /// Pulls what `push` stored, with -v; checks the bytes and the source.
    fn pull(&self, source: &str) -> Run {
        let _ = std::fs::remove_file(self.env.path("back.txt"));
        let run = self
            .env
            .run(&["pull", "job", "creds.txt", "-d", "back.txt", "-v"]);
        run.success();
        assert_source(&run, source);
        assert_eq!(
            self.env.read("back.txt"),
            format!("pushed with credentials from {source}\n").into_bytes()
        );
        run
    }

    fn push_and_pull(&self, source: &str) {
        self.push(source);
        self.pull(source);
    }
}

/// `-v` says exactly `S3 credentials from <source>`.
#[track_caller]
fn assert_source(run: &Run, source: &str) {
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.split_once("S3 credentials from ").map(|(_, s)| s))
        .collect();
    assert_eq!(said, vec![source], "the credential source -v shows\n{run}");
}

/// Wrong keys for sources that must not be used: S3 would refuse them.
fn wrong_keys(token: &str) -> Keys {
    Keys::new("AKIAWRONGKEYS0000000", "wrong-secret-access-key", token)
}

const WRONG_SECTION_KEYS: &str =
    "aws_access_key_id = AKIAWRONGPROFILE000\naws_secret_access_key = wrong-profile-secret\n";

// ---------------------------------------------------------------------------
// One source at a time.

/// Baseline: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ a session token).
#[test]
fn environment_keys() {
    let mut case = Case::new();
    let (ak, sk) = (case.access_key(), case.secret_key());
    case.set("AWS_ACCESS_KEY_ID", &ak);
    case.set("AWS_SECRET_ACCESS_KEY", &sk);
    case.set("AWS_SESSION_TOKEN", "env-session-token");
    case.push_and_pull("environment");
}

/// AWS_PROFILE=ci picks `[ci]` of ~/.aws/credentials, not `[default]`.
#[test]
fn profile_in_the_shared_credentials_file() {
    let mut case = Case::new();
    let text = format!(
        "[default]\n{WRONG_SECTION_KEYS}\n{}",
        case.right_section("[ci]")
    );
    case.home_file(".aws/credentials", &text);
    case.set("AWS_PROFILE", "ci");
    case.push_and_pull("profile 'ci' (static keys)");

    // The same file moved elsewhere, found through AWS_SHARED_CREDENTIALS_FILE.
    let moved = case.home_file("elsewhere/creds.ini", &text);
    std::fs::remove_file(case.home.path().join(".aws/credentials")).expect("rm");
    case.set(
        "AWS_SHARED_CREDENTIALS_FILE",
        moved.to_str().expect("utf-8"),
    );
    case.pull("profile 'ci' (static keys)");
}

/// `[profile ci]` of the config file (AWS_CONFIG_FILE); a bare `[ci]`
/// there is not a profile and its wrong keys are ignored.
#[test]
fn profile_in_the_config_file() {
    let mut case = Case::new();
    let text = format!(
        "[default]\nregion = us-east-1\n\n{}\n[ci]\n{WRONG_SECTION_KEYS}",
        case.right_section("[profile ci]")
    );
    let config = case.home_file("custom/aws-config", &text);
    case.set("AWS_CONFIG_FILE", config.to_str().expect("utf-8"));
    case.set("AWS_PROFILE", "ci");
    case.push_and_pull("profile 'ci' (static keys)");
}

/// AWS_PROFILE naming no profile is a configuration error (exit 3) naming
/// it, even though `[default]` has working keys.
#[test]
fn missing_profile_is_an_error() {
    let mut case = Case::new();
    case.home_file(".aws/credentials", &case.right_section("[default]"));
    case.home_file(".aws/config", "[profile other]\nregion = us-east-1\n");
    case.set("AWS_PROFILE", "nosuch");
    case.env.write("creds.txt", b"x");
    let run = case.env.run(&["push", "job", "creds.txt"]);
    run.failure(3)
        .stderr_has("AWS_PROFILE=nosuch")
        .stderr_has("names a profile");
    assert!(case.env.keys().is_empty(), "nothing may be pushed");
}

/// AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: an unsigned STS
/// AssumeRoleWithWebIdentity with the token and role. It also comes before a
/// profile (whose keys are wrong).
#[test]
fn web_identity_from_the_environment() {
    let mut case = Case::new();
    let sts = FakeAws::sts(case.right_keys("web-identity-session-token"));
    let token = case.home_file("var/run/secrets/token", "eyJhbGciOi.fake-oidc.jwt\n");
    case.home_file(
        ".aws/credentials",
        &format!("[default]\n{WRONG_SECTION_KEYS}"),
    );
    case.set(
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        token.to_str().expect("utf-8"),
    );
    case.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci-web");
    case.set("AWS_ROLE_SESSION_NAME", "ci-session");
    case.set("AWS_ENDPOINT_URL_STS", &sts.url());
    case.set("AWS_REGION", "us-east-1");
    case.push_and_pull("web identity token file (role arn:aws:iam::123456789012:role/ci-web)");

    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "one call per run: {requests:#?}");
    for req in &requests {
        assert_eq!(req.line(), "POST /");
        assert_eq!(
            req.form_field("Action").as_deref(),
            Some("AssumeRoleWithWebIdentity")
        );
        assert_eq!(
            req.form_field("RoleArn").as_deref(),
            Some("arn:aws:iam::123456789012:role/ci-web")
        );
        assert_eq!(
            req.form_field("WebIdentityToken").as_deref(),
            Some("eyJhbGciOi.fake-oidc.jwt")
        );
        assert_eq!(
            req.form_field("RoleSessionName").as_deref(),
            Some("ci-session")
        );
        assert_eq!(req.header("authorization"), None, "must be unsigned");
    }
}

/// `role_arn` + `source_profile`: STS AssumeRole, SigV4-signed with the
/// source profile's keys, gives the keys S3 gets.
#[test]
fn assume_role_from_a_source_profile() {
    let mut case = Case::new();
    let sts = FakeAws::sts(case.right_keys("assumed-session-token"));
    case.home_file(
        ".aws/config",
        "[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci-deploy\n\
         source_profile = base\nrole_session_name = ci-run\n",
    );
    case.home_file(
        ".aws/credentials",
        "[base]\naws_access_key_id = AKIASOURCEPROFILE01\n\
         aws_secret_access_key = source-profile-secret\n",
    );
    case.set("AWS_PROFILE", "ci");
    case.set("AWS_ENDPOINT_URL_STS", &sts.url());
    case.set("AWS_REGION", "us-east-1");
    case.push_and_pull(
        "profile 'ci' (assume role arn:aws:iam::123456789012:role/ci-deploy from profile 'base')",
    );

    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "one call per run: {requests:#?}");
    for req in &requests {
        assert_eq!(req.line(), "POST /");
        assert_eq!(req.form_field("Action").as_deref(), Some("AssumeRole"));
        assert_eq!(
            req.form_field("RoleArn").as_deref(),
            Some("arn:aws:iam::123456789012:role/ci-deploy")
        );
        assert_eq!(req.form_field("RoleSessionName").as_deref(), Some("ci-run"));
        let auth = req.header("authorization").expect("signed");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIASOURCEPROFILE01/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/sts/aws4_request,"), "{auth}");
        // The signature itself holds for the source profile's secret.
        assert_eq!(
            verify_sigv4(req, "source-profile-secret").as_deref(),
            Ok("AKIASOURCEPROFILE01")
        );
    }
}

/// `credential_process`: a script that prints the credentials JSON. (Run
/// through `sh`, not exec'd: exec of a file just written can fail with
/// ETXTBSY while other test threads fork.)
#[test]
fn credential_process() {
    let mut case = Case::new();
    let script = case.home_file(
        "bin/print-creds",
        &format!(
            "#!/bin/sh\n\
             echo \"$*\" >> \"$HOME/process-runs.log\"\n\
             cat <<'JSON'\n\
             {{\"Version\": 1, \"AccessKeyId\": \"{}\", \"SecretAccessKey\": \"{}\",\n \
             \"SessionToken\": \"process-session-token\", \"Expiration\": \"{}\"}}\n\
             JSON\n",
            case.access_key(),
            case.secret_key(),
            iso8601(SystemTime::now() + Duration::from_secs(6 * 3600))
        ),
    );
    case.home_file(
        ".aws/config",
        &format!(
            "[profile ci]\ncredential_process = sh {} --profile ci\n",
            script.display()
        ),
    );
    case.set("AWS_PROFILE", "ci");
    case.push_and_pull("profile 'ci' (credential_process)");
    let runs = std::fs::read_to_string(case.home.path().join("process-runs.log")).expect("log");
    assert_eq!(runs, "--profile ci\n--profile ci\n", "one run per command");
}

/// SSO through an `sso_session`: the cached token at
/// ~/.aws/sso/cache/<sha1 of the session name>.json goes to the portal's
/// GetRoleCredentials.
#[test]
fn sso_session_profile() {
    let mut case = Case::new();
    let portal = FakeAws::sso_portal("cached-sso-access-token", case.right_keys("sso-session"));
    case.home_file(
        ".aws/config",
        "[profile ci]\nsso_session = corp\nsso_account_id = 123456789012\n\
         sso_role_name = CIDeploy\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_region = us-east-1\n\
         sso_start_url = https://d-1234567890.awsapps.com/start\n\
         sso_registration_scopes = sso:account:access\n",
    );
    let cache = serde_json::json!({
        "startUrl": "https://d-1234567890.awsapps.com/start",
        "region": "us-east-1",
        "accessToken": "cached-sso-access-token",
        "expiresAt": iso8601(SystemTime::now() + Duration::from_secs(6 * 3600)),
    })
    .to_string();
    let cache_file = case.home_file(
        &format!(".aws/sso/cache/{}.json", sha1_hex(b"corp")),
        &cache,
    );
    case.set("AWS_PROFILE", "ci");
    case.set("AWS_ENDPOINT_URL_SSO", &portal.url());
    case.push_and_pull("profile 'ci' (SSO account 123456789012 role CIDeploy)");

    let requests = portal.requests();
    assert_eq!(requests.len(), 2, "one call per run: {requests:#?}");
    for req in &requests {
        assert_eq!(req.line(), "GET /federation/credentials");
        let mut query = req.query_pairs();
        query.sort();
        assert_eq!(
            query,
            vec![
                ("account_id".to_string(), "123456789012".to_string()),
                ("role_name".to_string(), "CIDeploy".to_string()),
            ]
        );
    }
    // A valid token is used as it is: the cache is not rewritten.
    assert_eq!(std::fs::read_to_string(cache_file).expect("cache"), cache);
}

/// The SSO cache file name helper agrees with `sha1sum`.
#[test]
fn sha1_helper_matches_known_digests() {
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    // `printf %s my-sso-session | sha1sum`
    assert_eq!(
        sha1_hex(b"my-sso-session"),
        "b755b5ec73400c04400e978208d8559ad1f39053"
    );
    assert_eq!(sha1_hex(&[b'a'; 1000]).len(), 40);
}

/// AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback, with the Authorization
/// token from AWS_CONTAINER_AUTHORIZATION_TOKEN, then from its _FILE.
#[test]
fn container_credentials() {
    let mut case = Case::new();
    let agent = FakeAws::container("container-auth-token", case.right_keys("container-session"));
    case.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v1/credentials", agent.url()),
    );
    case.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-token");
    case.push("container credentials");

    let token_file = case.home_file("run/container-token", "container-auth-token\n");
    case.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "");
    case.set(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        token_file.to_str().expect("utf-8"),
    );
    case.pull("container credentials");

    let requests = agent.requests();
    assert_eq!(requests.len(), 2, "one call per run: {requests:#?}");
    for req in &requests {
        assert_eq!(req.line(), "GET /v1/credentials");
        assert_eq!(req.header("authorization"), Some("container-auth-token"));
    }
}

/// IMDSv2: a session token first, then the role name, then its credentials,
/// each read carrying the token.
#[test]
fn instance_metadata_v2() {
    let mut case = Case::new();
    let imds = FakeAws::imds("ci-instance-role", vec![case.right_keys("imds-session")]);
    case.enable_imds(&imds.url());
    case.push("EC2 instance metadata");

    let role_path = format!("{IMDS_ROLES_PATH}ci-instance-role");
    let one_fetch = vec![
        format!("PUT {IMDS_TOKEN_PATH}"),
        format!("GET {IMDS_ROLES_PATH}"),
        format!("GET {role_path}"),
    ];
    // Credentials valid for hours: fetched once, not refreshed.
    assert_eq!(imds.lines(), one_fetch);
    let requests = imds.requests();
    assert!(requests[0]
        .header("x-aws-ec2-metadata-token-ttl-seconds")
        .is_some());
    for req in &requests[1..] {
        assert_eq!(
            req.header("x-aws-ec2-metadata-token"),
            Some(IMDS_SESSION_TOKEN)
        );
    }

    case.pull("EC2 instance metadata");
    assert_eq!(imds.lines(), [one_fetch.clone(), one_fetch].concat());
}

// ---------------------------------------------------------------------------
// Which source wins.

/// Environment keys come before the profile (whose keys are wrong), even
/// with AWS_PROFILE set.
#[test]
fn environment_wins_over_a_profile() {
    let mut case = Case::new();
    case.home_file(
        ".aws/credentials",
        &format!("[default]\n{WRONG_SECTION_KEYS}\n[ci]\n{WRONG_SECTION_KEYS}"),
    );
    case.set("AWS_PROFILE", "ci");
    let (ak, sk) = (case.access_key(), case.secret_key());
    case.set("AWS_ACCESS_KEY_ID", &ak);
    case.set("AWS_SECRET_ACCESS_KEY", &sk);
    case.push_and_pull("environment");
}

/// A profile with keys comes before container credentials; the container
/// agent (which would hand out wrong keys) is not even asked.
#[test]
fn profile_wins_over_container() {
    let mut case = Case::new();
    let agent = FakeAws::container("container-auth-token", wrong_keys("container"));
    case.home_file(".aws/credentials", &case.right_section("[default]"));
    case.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v1/credentials", agent.url()),
    );
    case.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-token");
    case.push_and_pull("profile 'default' (static keys)");
    assert!(agent.requests().is_empty(), "{:#?}", agent.requests());
}

/// Container credentials come before IMDS; IMDS (wrong keys) is not asked.
#[test]
fn container_wins_over_instance_metadata() {
    let mut case = Case::new();
    let agent = FakeAws::container("container-auth-token", case.right_keys("container"));
    let imds = FakeAws::imds("ci-instance-role", vec![wrong_keys("imds")]);
    case.enable_imds(&imds.url());
    case.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v1/credentials", agent.url()),
    );
    case.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-token");
    case.push_and_pull("container credentials");
    assert_eq!(agent.requests().len(), 2);
    assert!(imds.requests().is_empty(), "{:#?}", imds.requests());
}

// ---------------------------------------------------------------------------
// Nothing found; refresh.

/// No keys, an empty HOME, IMDS at a closed port: exit 3 with every source
/// tried and why, and no long wait (15 s is a hang guard, not a benchmark).
#[test]
fn no_credentials_anywhere() {
    let mut case = Case::new();
    let closed = closed_port_url();
    case.enable_imds(&closed);
    case.env.write("creds.txt", b"x");
    let started = Instant::now();
    let run = case.env.run(&["push", "job", "creds.txt"]);
    let elapsed = started.elapsed();
    eprintln!("no_credentials_anywhere: the binary gave up after {elapsed:?}");
    run.failure(3);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: no AWS credentials found"),
        "the first line of stderr\n{run}"
    );
    for tried in [
        "environment (AWS_ACCESS_KEY_ID not set)",
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)",
        "profile 'default' (no ~/.aws/credentials or ~/.aws/config)",
        "container (AWS_CONTAINER_CREDENTIALS_* not set)",
        &format!("EC2 instance metadata (not reachable at {closed}"),
    ] {
        assert!(first.contains(tried), "lacks {tried:?}\n{run}");
    }
    assert!(
        elapsed < Duration::from_secs(15),
        "took {elapsed:?} to give up\n{run}"
    );
    assert!(case.env.keys().is_empty());
}

/// IMDS credentials expiring in 1 minute (inside the 5-minute window) are
/// fetched again before first use: the first answer's keys are wrong, so the
/// push only works if the binary refreshed. The refreshed keys last hours,
/// so a push of many files fetches exactly twice.
#[test]
fn short_lived_credentials_are_refreshed_before_use() {
    let mut case = Case::new();
    let imds = FakeAws::imds(
        "ci-instance-role",
        vec![
            wrong_keys("about-to-expire").expiring_in(Duration::from_secs(60)),
            case.right_keys("fresh"),
        ],
    );
    case.enable_imds(&imds.url());
    for i in 0..20 {
        case.env
            .write(&format!("many/f{i:02}.txt"), format!("file {i}").as_bytes());
    }
    let run = case.env.run(&["push", "job", "many", "-v"]);
    run.success()
        .stderr_has("Pushed 20 files.")
        .stderr_has("refreshed AWS credentials from EC2 instance metadata");
    assert_source(&run, "EC2 instance metadata");
    assert_eq!(case.env.keys().len(), 20);
    let role_path = format!("{IMDS_ROLES_PATH}ci-instance-role");
    let one_fetch = vec![
        format!("PUT {IMDS_TOKEN_PATH}"),
        format!("GET {IMDS_ROLES_PATH}"),
        format!("GET {role_path}"),
    ];
    assert_eq!(imds.lines(), [one_fetch.clone(), one_fetch].concat());
}
