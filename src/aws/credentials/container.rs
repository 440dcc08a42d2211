//! ECS task roles and EKS Pod Identity: the container credentials endpoint.
//!
//! ECS sets AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (a path on
//! 169.254.170.2); EKS Pod Identity and others set
//! AWS_CONTAINER_CREDENTIALS_FULL_URI, with an Authorization token in
//! AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every refresh, the
//! agent rotates it) or AWS_CONTAINER_AUTHORIZATION_TOKEN. As in the SDK, a
//! full URI over plain http must point at this machine (loopback) or at the
//! ECS/EKS agent addresses, so a token is never sent in clear elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::PathBuf;

use url::{Host, Url};

use super::source_http;
use super::Credentials;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::log::redact_configured_url;

const ECS_HOST: &str = "http://169.254.170.2";

enum Token {
    File(PathBuf),
    Value(String),
}

pub struct Container {
    url: String,
    token: Option<Token>,
}

impl Container {
    /// From the environment; `None` when neither URI variable is set.
    pub fn from_env(env: &Env) -> Result<Option<Container>> {
        let url = if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            let sep = if relative.starts_with('/') { "" } else { "/" };
            format!("{ECS_HOST}{sep}{relative}")
        } else if let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            check_full_uri(full)?;
            full.to_string()
        } else {
            return Ok(None);
        };
        let token = match (
            env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        ) {
            (Some(file), _) => Some(Token::File(PathBuf::from(file))),
            (None, Some(value)) => Some(Token::Value(value.to_string())),
            (None, None) => None,
        };
        Ok(Some(Container { url, token }))
    }

    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        let what = format!(
            "container credentials from {}",
            redact_configured_url(&self.url)
        );
        let token = match &self.token {
            None => None,
            Some(Token::Value(v)) => Some(v.trim().to_string()),
            Some(Token::File(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        Error::local_io("read the container authorization token file", path, e)
                    })?
                    .trim()
                    .to_string(),
            ),
        };
        if token.as_deref().is_some_and(|t| t.contains(['\r', '\n'])) {
            return Err(Error::Config(
                "the container authorization token contains a line break; check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)".into(),
            ));
        }
        let mut headers = vec![("accept", "application/json")];
        if let Some(token) = token.as_deref().filter(|t| !t.is_empty()) {
            headers.push(("authorization", token));
        }
        let answer = source_http::send(http, "GET", &self.url, &headers, b"")?;
        match answer.status {
            200 => parse(&answer.body, &what),
            401 | 403 => Err(Error::PermissionDenied {
                what,
                hint: format!(
                    "{}; check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) and the task or pod role",
                    answer.detail()
                ),
            }),
            _ => Err(answer.unexpected(what)),
        }
    }
}

/// The JSON that IMDS and the container agent both answer with
/// (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`).
pub fn parse(body: &str, what: &str) -> Result<Credentials> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        Error::Protocol(format!(
            "{what}: the answer is not the expected credentials JSON"
        ))
    })?;
    super::from_json(&value, "Token", |why| {
        Error::Protocol(format!("{what}: the answer {why}"))
    })
}

/// A full URI is fine over https; over http only to loopback, the ECS
/// agent (169.254.170.2) or the EKS agent (169.254.170.23, fd00:ec2::23).
fn check_full_uri(text: &str) -> Result<()> {
    let shown = redact_configured_url(text);
    let url = Url::parse(text).map_err(|e| {
        Error::Config(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI='{shown}' is not a URL: {e}"
        ))
    })?;
    let allowed = match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(Host::Ipv4(ip))) => allowed_ip(IpAddr::V4(ip)),
        ("http", Some(Host::Ipv6(ip))) => allowed_ip(IpAddr::V6(ip)),
        // A name must resolve to loopback addresses only (the SDK's rule).
        ("http", Some(Host::Domain(name))) => (name, url.port().unwrap_or(80))
            .to_socket_addrs()
            .map(|addrs| {
                let addrs: Vec<_> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
            })
            .unwrap_or(false),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI='{shown}' is not allowed: use https, or http to a loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]"
        )))
    }
}

fn allowed_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip == IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2))
        || ip == IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23))
        || ip == IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{metadata_json, FakeServer, Reply};

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn which_uris_are_allowed() {
        for ok in [
            "http://127.0.0.1:1234/creds",
            "http://localhost/creds",
            "http://[::1]/x",
            "http://169.254.170.2/v2/credentials",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://creds.example.com/x",
        ] {
            assert!(check_full_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/creds",
            "http://10.0.0.1/creds",
            "http://169.254.169.254/x",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            let err = check_full_uri(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}");
            assert!(
                err.to_string()
                    .contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                "{err}"
            );
        }
    }

    #[test]
    fn relative_uri_wins_and_goes_to_the_ecs_agent() {
        let c = Container::from_env(&env(&[
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc",
            ),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.url, "http://169.254.170.2/v2/credentials/abc");
        assert!(Container::from_env(&env(&[])).unwrap().is_none());
    }

    #[test]
    fn token_file_is_sent_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "token-one\n").unwrap();
        let server = FakeServer::start(|req| match req.header("authorization") {
            Some("token-one") => Reply::json(metadata_json("AKIDONE", "2099-01-01T00:00:00Z")),
            Some("token-two") => Reply::json(metadata_json("AKIDTWO", "2099-01-01T00:00:00Z")),
            _ => Reply::status(401, "{\"message\":\"bad token\"}"),
        });
        let url = format!("{}/v1/credentials", server.url());
        let c = Container::from_env(&env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"),
        ]))
        .unwrap()
        .unwrap();
        let http = source_http::http(&Default::default()).unwrap();
        let creds = c.fetch(&http).unwrap();
        assert_eq!(creds.access_key_id, "AKIDONE");
        assert_eq!(creds.secret_access_key, "AKIDONE-secret");
        assert_eq!(creds.session_token.as_deref(), Some("AKIDONE-token"));
        assert_eq!(
            creds.expires_at,
            crate::time::parse_iso8601("2099-01-01T00:00:00Z")
        );
        std::fs::write(&token_file, "token-two").unwrap();
        assert_eq!(c.fetch(&http).unwrap().access_key_id, "AKIDTWO");
        assert_eq!(server.requests()[0].path(), "/v1/credentials");
    }

    #[test]
    fn wrong_token_is_permission_denied() {
        let server = FakeServer::start(|_| Reply::status(403, "{\"message\":\"denied\"}"));
        let c = Container::from_env(&env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &server.url()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "the-token"),
        ]))
        .unwrap()
        .unwrap();
        let err = c
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        assert!(!err.to_string().contains("the-token"), "{err}");
        assert_eq!(
            server.requests()[0].header("authorization"),
            Some("the-token")
        );
    }

    #[test]
    fn answers_are_checked() {
        assert!(parse("{}", "x").is_err());
        assert!(parse("not json", "x")
            .unwrap_err()
            .to_string()
            .contains("not the expected"));
        let c = parse(r#"{"AccessKeyId":"A","SecretAccessKey":"S"}"#, "x").unwrap();
        assert_eq!((c.session_token, c.expires_at), (None, None));
        assert!(parse(
            r#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"}"#,
            "x"
        )
        .is_err());
    }
}
