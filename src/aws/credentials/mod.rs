//! AWS credentials, found the way AWS SDK for Go v2 finds them.
//!
//! Users move jobs from the Go CLI without touching their credentials, so
//! the chain is the Go SDK's default one. aws-creds (rust-s3's credential
//! crate) cannot do that: it reads the process environment and the home
//! directory itself, knows no AWS_PROFILE, config file, SSO,
//! credential_process or assume-role, hard-codes the IMDS and STS
//! addresses, and turns every failure into "no credentials". So this module
//! is ours, on our HTTP client, our `Env` snapshot and our error type.
//!
//! `Chain::resolve` walks the SDK's order (`config.resolveCredentialChain`):
//! environment keys, web identity from the environment, the shared files'
//! profile, container credentials, EC2 instance metadata. A source that is
//! not configured is skipped and remembered with the reason, so "no
//! credentials" says what was tried; a source that is configured but fails
//! stops the chain with its own error, as in the SDK. The chosen source is
//! kept as a `Provider` and called again when its credentials are within 5
//! minutes of expiry (one caller refreshes, the others wait and reuse).
//!
//! Files: `profile` (the INI files), `profile_source` (a profile to a
//! provider), `sts`, `sso`, `process`, `container`, `imds` (one source
//! each), `source_http` (the short-timeout HTTP they share). Tests use
//! `fake_endpoints` (a recording server that plays each source); `tests`
//! holds the tests of the whole chain.

mod container;
mod imds;
mod process;
mod profile;
mod profile_source;
mod source_http;
mod sso;
mod sts;

#[cfg(test)]
mod fake_endpoints;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::Credentials;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::http::Network;
use crate::log;

use container::Container;
use imds::{Availability, Imds};
use profile::SharedFiles;
use profile_source::Outcome;
use sts::WebIdentity;

/// Refresh credentials that expire within this.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Credentials valid at least this long may still be used when a refresh fails.
const STILL_USABLE: Duration = Duration::from_secs(10);
/// After a failed refresh (or one that gave short-lived credentials again),
/// wait this long before the next, while the current ones are usable.
const HOLD_OFF: Duration = Duration::from_secs(30);

/// Where credentials come from, callable again to refresh them.
pub enum Provider {
    Static(Credentials),
    WebIdentity(WebIdentity),
    AssumeRole(Box<sts::AssumeRole>),
    Sso(sso::Sso),
    Process(process::Process),
    Container(Container),
    Imds(Imds),
}

impl Provider {
    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        match self {
            Provider::Static(creds) => Ok(creds.clone()),
            Provider::WebIdentity(p) => p.fetch(http),
            Provider::AssumeRole(p) => p.fetch(http),
            Provider::Sso(p) => p.fetch(http),
            Provider::Process(p) => p.fetch(),
            Provider::Container(p) => p.fetch(http),
            Provider::Imds(p) => p.fetch(http),
        }
    }
}

/// The resolved credential source, refreshed before expiry.
pub struct Chain {
    provider: Provider,
    http: Http,
    source: String,
    current: Mutex<Arc<Credentials>>,
    /// Held while refreshing; holds when the next refresh may be tried
    /// (`None`: whenever needed).
    refresh: Mutex<Option<Instant>>,
}

impl Chain {
    /// Resolves the first available source in aws-sdk-go-v2's order; fails with Error::Config listing what was tried (and why each was skipped) — within a second or two when nothing is there.
    pub fn resolve(env: &Env, network: &Network) -> Result<Chain> {
        let http = source_http::http(network)?;
        let mut tried: Vec<String> = Vec::new();

        // 1. Static keys in the environment.
        match env_keys(env)? {
            Some(creds) => {
                return Chain::start(Provider::Static(creds), http, "environment".into())
            }
            None => tried.push("environment (AWS_ACCESS_KEY_ID not set)".into()),
        }

        let files = SharedFiles::load(env)?;
        let profile_name = env.get("AWS_PROFILE").map(str::trim).unwrap_or("default");
        let region = files.profile(profile_name).and_then(|p| p.get("region"));
        let sts_endpoint = sts::StsEndpoint::resolve(env, region);

        // 2. Web identity from the environment (EKS IRSA).
        match WebIdentity::from_env(env, sts_endpoint.clone())? {
            Some(web) => {
                let label = format!("web identity token file (role {})", web.role_arn);
                return Chain::start(Provider::WebIdentity(web), http, label);
            }
            None => tried.push("web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set)".into()),
        }

        // 3. The shared files' profile.
        let ctx = profile_source::Context {
            env,
            files: &files,
            sts: &sts_endpoint,
        };
        match profile_source::resolve(&ctx, profile_name)? {
            Outcome::Found { provider, label } => return Chain::start(provider, http, label),
            Outcome::NoCredentials => tried.push(format!(
                "profile '{profile_name}' (no credential settings in {})",
                files.describe()
            )),
            Outcome::Missing if env.get("AWS_PROFILE").is_some() => {
                return Err(Error::Config(format!(
                    "AWS_PROFILE={profile_name} names a profile that is in none of {}; check the name, or unset AWS_PROFILE to use the default",
                    files.describe()
                )))
            }
            Outcome::Missing if files.config_path.is_none() && files.credentials_path.is_none() => {
                tried.push(format!("profile '{profile_name}' (HOME is not set)"))
            }
            Outcome::Missing if !files.config_found && !files.credentials_found => {
                tried.push(format!("profile '{profile_name}' (no {})", files.describe()))
            }
            Outcome::Missing => tried.push(format!(
                "profile '{profile_name}' (not in {})",
                files.describe()
            )),
        }

        // 4. ECS / EKS container credentials.
        match Container::from_env(env)? {
            Some(container) => {
                return Chain::start(
                    Provider::Container(container),
                    http,
                    "container credentials".into(),
                )
            }
            None => tried.push("container (AWS_CONTAINER_CREDENTIALS_* not set)".into()),
        }

        // 5. EC2 instance metadata: probed, so every failure is a reason.
        match Imds::from_env(env) {
            Availability::Disabled(why) => tried.push(format!("EC2 instance metadata ({why})")),
            Availability::Enabled(imds) => {
                let endpoint = imds.endpoint.clone();
                let provider = Provider::Imds(imds);
                match provider.fetch(&http) {
                    Ok(creds) => {
                        return Ok(Chain::with(
                            provider,
                            http,
                            "EC2 instance metadata".into(),
                            creds,
                        ))
                    }
                    Err(Error::Network { detail, .. }) => tried.push(format!(
                        "EC2 instance metadata (not reachable at {}: {detail})",
                        crate::log::redact_configured_url(&endpoint)
                    )),
                    Err(err) => tried.push(format!("EC2 instance metadata ({err})")),
                }
            }
        }

        Err(Error::Config(format!(
            "no AWS credentials found. Tried: {}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or see README 'S3 credentials'.",
            tried.join("; ")
        )))
    }

    /// The current credentials; when they expire within 5 minutes, refreshed first from the same source (one refresh at a time across threads; others wait and reuse it).
    pub fn current(&self) -> Result<Arc<Credentials>> {
        let creds = self.load();
        if !needs_refresh(&creds, SystemTime::now()) {
            return Ok(creds);
        }
        let mut next_try = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have refreshed while this one waited.
        let creds = self.load();
        let now = SystemTime::now();
        if !needs_refresh(&creds, now) {
            return Ok(creds);
        }
        let usable = creds.expires_at.is_some_and(|t| t > now + STILL_USABLE);
        if usable && next_try.is_some_and(|at| Instant::now() < at) {
            return Ok(creds);
        }
        match self.provider.fetch(&self.http) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                log::debug(|| format!("refreshed AWS credentials from {}", self.source));
                *next_try =
                    needs_refresh(&fresh, SystemTime::now()).then(|| Instant::now() + HOLD_OFF);
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                Ok(fresh)
            }
            Err(err) if usable => {
                log::debug(|| {
                    format!(
                        "refreshing AWS credentials from {} failed, using the current ones: {err}",
                        self.source
                    )
                });
                *next_try = Some(Instant::now() + HOLD_OFF);
                Ok(creds)
            }
            Err(err) => Err(err),
        }
    }

    /// Which source was used, for -v: e.g. "environment", "web identity token file", "profile 'dev' (assume role arn:...)", "container credentials", "EC2 instance metadata".
    pub fn source(&self) -> &str {
        &self.source
    }

    fn start(provider: Provider, http: Http, source: String) -> Result<Chain> {
        let creds = provider.fetch(&http)?;
        Ok(Chain::with(provider, http, source, creds))
    }

    fn with(provider: Provider, http: Http, source: String, creds: Credentials) -> Chain {
        log::debug(|| format!("AWS credentials from {source}"));
        Chain {
            provider,
            http,
            source,
            current: Mutex::new(Arc::new(creds)),
            refresh: Mutex::new(None),
        }
    }

    fn load(&self) -> Arc<Credentials> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Credentials from the JSON object the container agent, IMDS and
/// `credential_process` all answer with: `AccessKeyId`, `SecretAccessKey`,
/// the session token under `token_field`, and `Expiration`. `fail` turns
/// what is wrong ("has no AccessKeyId") into the source's error.
fn from_json(
    value: &serde_json::Value,
    token_field: &str,
    fail: impl Fn(String) -> Error,
) -> Result<Credentials> {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let required = |name: &str| field(name).ok_or_else(|| fail(format!("has no {name}")));
    let expires_at = match field("Expiration") {
        None => None,
        Some(text) => Some(crate::time::parse_iso8601(&text).ok_or_else(|| {
            fail(format!(
                "has an Expiration '{text}' that is not an ISO-8601 date"
            ))
        })?),
    };
    Ok(Credentials {
        access_key_id: required("AccessKeyId")?,
        secret_access_key: required("SecretAccessKey")?,
        session_token: field(token_field),
        expires_at,
    })
}

fn needs_refresh(creds: &Credentials, now: SystemTime) -> bool {
    creds.expires_at.is_some_and(|t| t <= now + REFRESH_BEFORE)
}

/// AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (or the SDK's older names
/// AWS_ACCESS_KEY / AWS_SECRET_KEY), with AWS_SESSION_TOKEN; half a pair is
/// an error naming the missing half.
fn env_keys(env: &Env) -> Result<Option<Credentials>> {
    let id = env
        .get("AWS_ACCESS_KEY_ID")
        .or_else(|| env.get("AWS_ACCESS_KEY"))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let secret = env
        .get("AWS_SECRET_ACCESS_KEY")
        .or_else(|| env.get("AWS_SECRET_KEY"))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
            session_token: env
                .get("AWS_SESSION_TOKEN")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            expires_at: None,
        })),
        (Some(_), None) => Err(Error::Config(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to use another credential source".into(),
        )),
        (None, Some(_)) => Err(Error::Config(
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither to use another credential source".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// The `region` of the active profile (AWS_PROFILE, else `default`) in the shared config file (AWS_CONFIG_FILE, else $HOME/.aws/config), if any.
/// As in the SDK, a `region` in the same profile of the credentials file counts too (and wins).
/// With it, where it comes from, for messages: "region in profile 'dev'".
pub fn profile_region(env: &Env) -> Option<(String, String)> {
    let files = SharedFiles::load(env).ok()?;
    let name = env.get("AWS_PROFILE").map(str::trim).unwrap_or("default");
    let region = files
        .profile(name)?
        .get("region")
        .map(str::trim)
        .filter(|r| !r.is_empty())?;
    Some((format!("region in profile '{name}'"), region.to_string()))
}

#[cfg(test)]
mod tests;
