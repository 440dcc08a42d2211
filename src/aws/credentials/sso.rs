//! IAM Identity Center (SSO) profiles.
//!
//! `aws sso login` leaves an access token in
//! `~/.aws/sso/cache/<sha1 hex of the session name>.json` (of the start URL
//! for legacy profiles without `sso_session`); we trade it for role
//! credentials with GetRoleCredentials
//! (`GET {portal}/federation/credentials`, header `x-amz-sso_bearer_token`).
//! For an `sso_session` profile an expired (or nearly expired) token is
//! renewed, as the SDK does, through SSO-OIDC CreateToken with the cached
//! refresh token and client registration, and the cache file is rewritten
//! atomically (a temporary file renamed over it, mode 0600). A legacy token
//! cannot be renewed: the message says to run `aws sso login`.
//!
//! Endpoints: AWS_ENDPOINT_URL_SSO, else `https://portal.sso.{sso_region}.amazonaws.com`.
//! The OIDC endpoint: AWS_ENDPOINT_URL_SSO_OIDC, else AWS_ENDPOINT_URL_SSO
//! as well (so one fake server can play both in tests and air-gapped
//! setups), else `https://oidc.{sso_region}.amazonaws.com`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::source_http;
use super::Credentials;
use crate::aws::sigv4::encode;
use crate::checksum::hex;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::log;
use crate::time::{format_rfc3339, from_unix_millis, parse_iso8601};

/// Renew a token this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

pub struct Sso {
    /// The profile, for messages and `aws sso login --profile`.
    pub profile: String,
    /// The `[sso-session]` name; `None` for a legacy profile.
    pub session: Option<String>,
    pub account_id: String,
    pub role_name: String,
    pub cache_file: PathBuf,
    pub portal: String,
    pub oidc: String,
}

/// `~/.aws/sso/cache/<sha1 hex of key>.json`.
pub fn cache_file(home: &Path, key: &str) -> PathBuf {
    home.join(".aws/sso/cache")
        .join(format!("{}.json", hex(&Sha1::digest(key.as_bytes()))))
}

/// (portal endpoint, OIDC endpoint) for `region`.
pub fn endpoints(env: &Env, region: &str) -> (String, String) {
    let portal = match env.get("AWS_ENDPOINT_URL_SSO") {
        Some(url) => source_http::base_url(url),
        None => format!("https://portal.sso.{region}.amazonaws.com"),
    };
    // The SDK has a separate AWS_ENDPOINT_URL_SSO_OIDC; AWS_ENDPOINT_URL_SSO
    // also moves OIDC here, so a test (or a private endpoint) needs one value.
    let oidc = match env
        .get("AWS_ENDPOINT_URL_SSO_OIDC")
        .or_else(|| env.get("AWS_ENDPOINT_URL_SSO"))
    {
        Some(url) => source_http::base_url(url),
        None => format!("https://oidc.{region}.amazonaws.com"),
    };
    (portal, oidc)
}

impl Sso {
    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        let token = self.access_token(http, SystemTime::now())?;
        let url = format!(
            "{}/federation/credentials?account_id={}&role_name={}",
            self.portal,
            encode(&self.account_id),
            encode(&self.role_name)
        );
        let what = format!(
            "SSO GetRoleCredentials for account {} role {} ({})",
            self.account_id,
            self.role_name,
            self.who()
        );
        let answer = source_http::send(
            http,
            "GET",
            &url,
            &[
                ("x-amz-sso_bearer_token", &token),
                ("accept", "application/json"),
            ],
            b"",
        )?;
        match answer.status {
            200 => {}
            401 => {
                return Err(Error::Config(format!(
                    "{what}: the SSO token was not accepted ({}); run `{}`",
                    answer.detail(),
                    self.login()
                )))
            }
            403 => {
                return Err(Error::PermissionDenied {
                    what,
                    hint: format!(
                        "{}; check sso_account_id and sso_role_name, and that your SSO user may use that role",
                        answer.detail()
                    ),
                })
            }
            _ => return Err(answer.unexpected(what)),
        }
        let value = answer.json(&what)?;
        let role = value
            .get("roleCredentials")
            .ok_or_else(|| Error::Protocol(format!("{what}: the answer has no roleCredentials")))?;
        let field = |name: &str| {
            role.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let missing = |name: &str| Error::Protocol(format!("{what}: the answer has no {name}"));
        Ok(Credentials {
            access_key_id: field("accessKeyId").ok_or_else(|| missing("accessKeyId"))?,
            secret_access_key: field("secretAccessKey")
                .ok_or_else(|| missing("secretAccessKey"))?,
            session_token: field("sessionToken"),
            expires_at: role
                .get("expiration")
                .and_then(Value::as_i64)
                .and_then(from_unix_millis),
        })
    }

    fn who(&self) -> String {
        match &self.session {
            Some(s) => format!("profile '{}', sso-session '{s}'", self.profile),
            None => format!("profile '{}'", self.profile),
        }
    }

    fn login(&self) -> String {
        match &self.session {
            Some(s) => format!("aws sso login --sso-session {s}"),
            None => format!("aws sso login --profile {}", self.profile),
        }
    }

    /// The cached access token, renewed first when it is (nearly) expired
    /// and renewal is possible.
    fn access_token(&self, http: &Http, now: SystemTime) -> Result<String> {
        let shown = self.cache_file.display();
        let text = match std::fs::read_to_string(&self.cache_file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Config(format!(
                    "no cached SSO token for {} (looked for {shown}); run `{}`",
                    self.who(),
                    self.login()
                )))
            }
            Err(e) => {
                return Err(Error::local_io(
                    "read the SSO token cache",
                    &self.cache_file,
                    e,
                ))
            }
        };
        let invalid = || {
            Error::Config(format!(
                "the SSO token cache {shown} is not what `aws sso login` writes; run `{}`",
                self.login()
            ))
        };
        let mut cache: Map<String, Value> = serde_json::from_str(&text).map_err(|_| invalid())?;
        let access = string(&cache, "accessToken").ok_or_else(invalid)?;
        let expires = string(&cache, "expiresAt")
            .and_then(|t| parse_iso8601(&t))
            .ok_or_else(invalid)?;
        if expires > now + RENEW_BEFORE {
            return Ok(access);
        }
        let still_valid = expires > now;
        if self.session.is_none() {
            if still_valid {
                return Ok(access);
            }
            return Err(Error::Config(format!(
                "the SSO token for {} expired at {}; run `{}`",
                self.who(),
                format_rfc3339(expires),
                self.login()
            )));
        }
        match self.renew(http, &mut cache, now) {
            Ok(token) => Ok(token),
            Err(err) if still_valid => {
                log::debug(|| {
                    format!("renewing the SSO token failed, using the current one: {err}")
                });
                Ok(access)
            }
            Err(err) => Err(err),
        }
    }

    /// SSO-OIDC CreateToken with the refresh token; updates `cache` and its file.
    fn renew(
        &self,
        http: &Http,
        cache: &mut Map<String, Value>,
        now: SystemTime,
    ) -> Result<String> {
        let expired = || {
            Error::Config(format!(
                "the SSO token for {} has expired and cannot be renewed from the cache; run `{}`",
                self.who(),
                self.login()
            ))
        };
        let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
            string(cache, "clientId"),
            string(cache, "clientSecret"),
            string(cache, "refreshToken"),
        ) else {
            return Err(expired());
        };
        if let Some(reg) = string(cache, "registrationExpiresAt").and_then(|t| parse_iso8601(&t)) {
            if reg <= now {
                return Err(expired());
            }
        }
        let body = serde_json::json!({
            "grantType": "refresh_token",
            "clientId": client_id,
            "clientSecret": client_secret,
            "refreshToken": refresh_token,
        })
        .to_string();
        let what = format!("SSO-OIDC CreateToken for {}", self.who());
        let answer = source_http::send(
            http,
            "POST",
            &format!("{}/token", self.oidc),
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body.as_bytes(),
        )?;
        match answer.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(Error::Config(format!(
                    "{what}: the SSO session could not be renewed ({}); run `{}`",
                    answer.detail(),
                    self.login()
                )))
            }
            _ => return Err(answer.unexpected(what)),
        }
        let value = answer.json(&what)?;
        let access = value
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Protocol(format!("{what}: the answer has no accessToken")))?
            .to_string();
        let expires_in = value
            .get("expiresIn")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Protocol(format!("{what}: the answer has no expiresIn")))?;
        cache.insert("accessToken".into(), Value::String(access.clone()));
        cache.insert(
            "expiresAt".into(),
            Value::String(format_rfc3339(now + Duration::from_secs(expires_in))),
        );
        if let Some(new_refresh) = value.get("refreshToken").and_then(Value::as_str) {
            cache.insert(
                "refreshToken".into(),
                Value::String(new_refresh.to_string()),
            );
        }
        if let Err(err) =
            write_atomically(&self.cache_file, &Value::Object(cache.clone()).to_string())
        {
            // The new token works for this run; the next run renews again.
            log::info(&format!(
                "warning: could not update the SSO token cache {}: {err}",
                self.cache_file.display()
            ));
        }
        Ok(access)
    }
}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Writes `text` to a temporary file beside `path` (mode 0600) and renames
/// it over `path`, so readers see the old file or the new one, never half.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options.open(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{FakeServer, Reply};
    use serde_json::json;

    #[test]
    fn cache_file_is_named_by_sha1() {
        // Values from `printf %s KEY | sha1sum`.
        let home = Path::new("/home/u");
        assert_eq!(
            cache_file(home, "my-sso-session"),
            Path::new("/home/u/.aws/sso/cache/b755b5ec73400c04400e978208d8559ad1f39053.json")
        );
        assert_eq!(
            cache_file(home, "https://d-abc123.awsapps.com/start"),
            Path::new("/home/u/.aws/sso/cache/40a89917e3175433e361b710a9d43528d7f1890a.json")
        );
    }

    #[test]
    fn endpoint_overrides() {
        let env = Env::from_pairs([("X", "y")]);
        assert_eq!(
            endpoints(&env, "eu-west-1"),
            (
                "https://portal.sso.eu-west-1.amazonaws.com".to_string(),
                "https://oidc.eu-west-1.amazonaws.com".to_string()
            )
        );
        let env = Env::from_pairs([("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:1/")]);
        assert_eq!(
            endpoints(&env, "eu-west-1"),
            (
                "http://127.0.0.1:1".to_string(),
                "http://127.0.0.1:1".to_string()
            )
        );
    }

    fn sso(server: &FakeServer, cache_file: PathBuf, session: Option<&str>) -> Sso {
        Sso {
            profile: "dev".into(),
            session: session.map(str::to_string),
            account_id: "123456789012".into(),
            role_name: "Read Only".into(),
            cache_file,
            portal: server.url(),
            oidc: server.url(),
        }
    }

    /// Portal and OIDC in one: GetRoleCredentials accepts `valid_token`,
    /// CreateToken trades `old-refresh` for `renewed-token`.
    fn fake_sso(valid_token: &'static str) -> FakeServer {
        FakeServer::start(move |req| match (req.method.as_str(), req.path()) {
            ("GET", "/federation/credentials") => {
                if req.header("x-amz-sso_bearer_token") != Some(valid_token) {
                    return Reply::status(
                        401,
                        r#"{"message":"Session token not found or invalid"}"#,
                    );
                }
                Reply::json(json!({"roleCredentials": {
                    "accessKeyId": "ASIASSO", "secretAccessKey": "sso-secret",
                    "sessionToken": "sso-session-token", "expiration": 4_070_908_800_000_i64}}))
            }
            ("POST", "/token") => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                if body["grantType"] == "refresh_token"
                    && body["refreshToken"] == "old-refresh"
                    && body["clientId"] == "cid"
                    && body["clientSecret"] == "csecret"
                {
                    Reply::json(json!({"accessToken": "renewed-token", "expiresIn": 3600,
                        "refreshToken": "new-refresh", "tokenType": "Bearer"}))
                } else {
                    Reply::status(400, r#"{"error":"invalid_grant"}"#)
                }
            }
            _ => Reply::status(404, ""),
        })
    }

    fn write_cache(path: &Path, value: Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value.to_string()).unwrap();
    }

    #[test]
    fn get_role_credentials_with_a_valid_token() {
        let home = tempfile::tempdir().unwrap();
        let file = cache_file(home.path(), "corp");
        write_cache(
            &file,
            json!({"accessToken": "cached-token", "expiresAt": "2099-01-01T00:00:00Z"}),
        );
        let server = fake_sso("cached-token");
        let creds = sso(&server, file, Some("corp"))
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap();
        assert_eq!(creds.access_key_id, "ASIASSO");
        assert_eq!(creds.session_token.as_deref(), Some("sso-session-token"));
        assert_eq!(creds.expires_at, parse_iso8601("2099-01-01T00:00:00Z"));
        let reqs = server.requests();
        assert_eq!(
            reqs[0].target,
            "/federation/credentials?account_id=123456789012&role_name=Read%20Only"
        );
    }

    #[test]
    fn expired_session_token_is_renewed_and_the_cache_rewritten() {
        let home = tempfile::tempdir().unwrap();
        let file = cache_file(home.path(), "corp");
        write_cache(
            &file,
            json!({"accessToken": "old-token", "expiresAt": "2020-01-01T00:00:00Z",
                   "refreshToken": "old-refresh", "clientId": "cid", "clientSecret": "csecret",
                   "registrationExpiresAt": "2099-01-01T00:00:00Z", "region": "eu-west-1",
                   "startUrl": "https://d-abc123.awsapps.com/start"}),
        );
        let server = fake_sso("renewed-token");
        let creds = sso(&server, file.clone(), Some("corp"))
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap();
        assert_eq!(creds.access_key_id, "ASIASSO");
        let reqs = server.requests();
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path()),
            ("POST", "/token")
        );
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
        let cache: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(cache["accessToken"], "renewed-token");
        assert_eq!(cache["refreshToken"], "new-refresh");
        assert_eq!(cache["startUrl"], "https://d-abc123.awsapps.com/start");
        let expires = parse_iso8601(cache["expiresAt"].as_str().unwrap()).unwrap();
        assert!(expires > SystemTime::now() + Duration::from_secs(3000));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(file.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn refused_renewal_says_to_log_in() {
        let home = tempfile::tempdir().unwrap();
        let file = cache_file(home.path(), "corp");
        write_cache(
            &file,
            json!({"accessToken": "old-token", "expiresAt": "2020-01-01T00:00:00Z",
                   "refreshToken": "revoked", "clientId": "cid", "clientSecret": "csecret"}),
        );
        let server = fake_sso("renewed-token");
        let err = sso(&server, file, Some("corp"))
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(
            text.contains("invalid_grant") && text.contains("aws sso login --sso-session corp"),
            "{text}"
        );
        assert!(
            !text.contains("revoked") && !text.contains("csecret"),
            "{text}"
        );
    }

    #[test]
    fn expired_legacy_token_says_to_log_in() {
        let home = tempfile::tempdir().unwrap();
        let file = cache_file(home.path(), "https://d-abc123.awsapps.com/start");
        write_cache(
            &file,
            json!({"accessToken": "old", "expiresAt": "2020-01-01T00:00:00Z"}),
        );
        let server = fake_sso("old");
        let err = sso(&server, file, None)
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(
            err.to_string()
                .contains("expired at 2020-01-01T00:00:00Z; run `aws sso login --profile dev`"),
            "{err}"
        );
        assert!(server.requests().is_empty());
    }

    #[test]
    fn missing_cache_says_to_log_in() {
        let home = tempfile::tempdir().unwrap();
        let server = fake_sso("x");
        let err = sso(&server, cache_file(home.path(), "corp"), Some("corp"))
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("no cached SSO token"), "{err}");
        assert!(
            err.to_string().contains("aws sso login --sso-session corp"),
            "{err}"
        );
    }
}
