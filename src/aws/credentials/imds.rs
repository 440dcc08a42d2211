//! The EC2 instance role, from the instance metadata service (IMDSv2).
//!
//! Last in the chain, and the one source that is probed rather than
//! configured: on a machine that is not an EC2 instance nothing answers at
//! 169.254.169.254, which is why `source_http`'s short timeouts matter.
//! IMDSv2 first takes a session token with a PUT, then reads the role name
//! and the role's credentials with it. Like the SDK, an IMDS that
//! refuses the token request with 403/404/405 (IMDSv1 only) is read without
//! one, unless AWS_EC2_METADATA_V1_DISABLED=true. AWS_EC2_METADATA_DISABLED=true
//! skips IMDS; AWS_EC2_METADATA_SERVICE_ENDPOINT (or
//! AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6) moves it.

use super::container::parse;
use super::source_http;
use super::Credentials;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::http::Http;

const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";

pub struct Imds {
    pub endpoint: String,
    v1_fallback: bool,
}

/// How to read IMDS, or why not to.
pub enum Availability {
    Enabled(Imds),
    Disabled(&'static str),
}

impl Imds {
    pub fn from_env(env: &Env) -> Availability {
        let is_true = |name: &str| {
            env.get(name)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        };
        if is_true("AWS_EC2_METADATA_DISABLED") {
            return Availability::Disabled("disabled by AWS_EC2_METADATA_DISABLED=true");
        }
        let endpoint = match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(url) => source_http::base_url(url),
            None if env
                .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("ipv6")) =>
            {
                "http://[fd00:ec2::254]".to_string()
            }
            None => "http://169.254.169.254".to_string(),
        };
        Availability::Enabled(Imds {
            endpoint,
            v1_fallback: !is_true("AWS_EC2_METADATA_V1_DISABLED"),
        })
    }

    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        let token = self.token(http)?;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(token) = &token {
            headers.push(("x-aws-ec2-metadata-token", token));
        }
        let list_url = format!("{}{ROLE_PATH}", self.endpoint);
        let answer = source_http::send(http, "GET", &list_url, &headers, b"")?;
        let role = match answer.status {
            200 => answer
                .body
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string),
            404 => None,
            status => {
                return Err(self.failure("reading the instance's role name", status, &answer))
            }
        };
        let role = role.ok_or_else(|| {
            Error::Config(format!(
                "no IAM role is attached to this instance: IMDS at {} lists none; attach an instance profile",
                self.endpoint
            ))
        })?;
        let creds_url = format!("{}{ROLE_PATH}{role}", self.endpoint);
        let answer = source_http::send(http, "GET", &creds_url, &headers, b"")?;
        if answer.status != 200 {
            return Err(self.failure(
                &format!("reading the credentials of role '{role}'"),
                answer.status,
                &answer,
            ));
        }
        let what = format!("EC2 instance metadata for role '{role}'");
        let value: serde_json::Value = serde_json::from_str(&answer.body).map_err(|_| {
            Error::Protocol(format!(
                "{what}: the answer is not the expected credentials JSON"
            ))
        })?;
        if let Some(code) = value.get("Code").and_then(serde_json::Value::as_str) {
            if code != "Success" {
                return Err(Error::Remote {
                    what,
                    status: 200,
                    detail: format!("Code {code}"),
                    retry_after: None,
                });
            }
        }
        parse(&answer.body, &what)
    }

    /// The IMDSv2 session token; `None` to go on without one (IMDSv1).
    fn token(&self, http: &Http) -> Result<Option<String>> {
        let url = format!("{}{TOKEN_PATH}", self.endpoint);
        let answer = source_http::send(
            http,
            "PUT",
            &url,
            &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
            b"",
        )?;
        match answer.status {
            200 if !answer.body.trim().is_empty() => Ok(Some(answer.body.trim().to_string())),
            403..=405 if self.v1_fallback => Ok(None),
            status => Err(self.failure("getting an IMDSv2 session token", status, &answer)),
        }
    }

    fn failure(&self, doing: &str, status: u16, answer: &source_http::Answer) -> Error {
        Error::Remote {
            what: format!(
                "IMDS at {}: {doing}",
                crate::log::redact_configured_url(&self.endpoint)
            ),
            status,
            detail: answer.detail(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{
        closed_port_url, fake_imds, metadata_json, FakeServer, Reply,
    };
    use std::time::{Duration, Instant};

    fn imds(env_pairs: &[(&str, &str)]) -> Imds {
        match Imds::from_env(&Env::from_pairs(env_pairs.iter().copied())) {
            Availability::Enabled(i) => i,
            Availability::Disabled(why) => panic!("{why}"),
        }
    }

    #[test]
    fn imdsv2_token_then_role_then_credentials() {
        let server = fake_imds("ci-role", "2099-01-01T00:00:00Z");
        let i = imds(&[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("{}/", server.url()),
        )]);
        let creds = i
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap();
        assert_eq!(creds.access_key_id, "AKIDIMDS");
        assert_eq!(creds.session_token.as_deref(), Some("AKIDIMDS-token"));
        let reqs = server.requests();
        let seen: Vec<(String, String)> = reqs
            .iter()
            .map(|r| (r.method.clone(), r.target.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("PUT".to_string(), TOKEN_PATH.to_string()),
                ("GET".to_string(), ROLE_PATH.to_string()),
                ("GET".to_string(), format!("{ROLE_PATH}ci-role")),
            ]
        );
    }

    #[test]
    fn no_role_is_a_clear_error() {
        let server = FakeServer::start(|req| match req.method.as_str() {
            "PUT" => Reply::ok("t"),
            _ => Reply::status(404, ""),
        });
        let i = imds(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &server.url())]);
        let err = i
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("no IAM role is attached"), "{err}");
    }

    #[test]
    fn imdsv1_fallback_unless_disabled() {
        let server = FakeServer::start(|req| match (req.method.as_str(), req.path()) {
            ("PUT", _) => Reply::status(405, ""),
            (_, ROLE_PATH) => Reply::ok("r"),
            _ => Reply::json(metadata_json("AKIDV1", "2099-01-01T00:00:00Z")),
        });
        let i = imds(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &server.url())]);
        assert_eq!(
            i.fetch(&source_http::http(&Default::default()).unwrap())
                .unwrap()
                .access_key_id,
            "AKIDV1"
        );
        assert!(server.requests()[1]
            .header("x-aws-ec2-metadata-token")
            .is_none());
        let i = imds(&[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &server.url()),
            ("AWS_EC2_METADATA_V1_DISABLED", "true"),
        ]);
        assert!(i
            .fetch(&source_http::http(&Default::default()).unwrap())
            .is_err());
    }

    #[test]
    fn disabled_and_endpoints() {
        let env = Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "TRUE")]);
        assert!(matches!(Imds::from_env(&env), Availability::Disabled(_)));
        assert_eq!(imds(&[]).endpoint, "http://169.254.169.254");
        assert_eq!(
            imds(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]).endpoint,
            "http://[fd00:ec2::254]"
        );
    }

    #[test]
    fn unreachable_fails_fast() {
        let i = imds(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &closed_port_url())]);
        let started = Instant::now();
        let err = i
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::Network { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
