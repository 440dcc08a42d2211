//! STS: AssumeRole (signed) and AssumeRoleWithWebIdentity (unsigned).
//!
//! Roles come into play three ways: a profile's `role_arn` with a
//! `source_profile` or `credential_source`, a web identity token (EKS IRSA,
//! from the environment or a profile), and chains of those. Both calls are
//! STS's query protocol: a form-encoded POST answered with XML, whose few
//! fields `aws::xml::tag` takes; AssumeRole is signed by `aws::sigv4`. The
//! endpoint follows the SDK: AWS_ENDPOINT_URL_STS, else the
//! regional `https://sts.{region}.amazonaws.com`, else the global one.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use url::Url;

use super::source_http::{self, Answer};
use super::{Credentials, Provider};
use crate::aws::sigv4::{self, encode};
use crate::aws::xml::tag;
use crate::aws::{is_region, region_error};
use crate::config::Env;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::time::parse_iso8601;

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Where STS is and which region its requests are signed for.
#[derive(Debug, Clone)]
pub struct StsEndpoint {
    pub url: String,
    pub signing_region: String,
    /// Why the region cannot be used (`aws::is_region`), for the first
    /// request to STS: a bad region fails only the sources that need STS.
    pub refusal: Option<String>,
}

impl StsEndpoint {
    /// AWS_ENDPOINT_URL_STS, else the region's endpoint (region from
    /// AWS_REGION, AWS_DEFAULT_REGION, then the profile), else the global
    /// `https://sts.amazonaws.com` signed for us-east-1.
    pub fn resolve(env: &Env, profile_region: Option<&str>) -> StsEndpoint {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .into_iter()
            .find_map(|name| Some((name, env.get(name)?)))
            .or(profile_region.map(|r| ("the profile's region", r)))
            .map(|(source, r)| (source, r.trim()))
            .filter(|(_, r)| !r.is_empty());
        let custom = env.get("AWS_ENDPOINT_URL_STS");
        let refusal = region
            .filter(|(_, r)| !is_region(r, custom.is_none()))
            .map(|(source, r)| region_error(source, r, custom.is_none()).to_string());
        let region = region.map(|(_, r)| r);
        let (url, signing_region) = match (custom, region) {
            (Some(url), _) => (source_http::base_url(url), region.unwrap_or("us-east-1")),
            (None, Some(region)) => {
                let suffix = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                (format!("https://sts.{region}.{suffix}"), region)
            }
            (None, None) => ("https://sts.amazonaws.com".to_string(), "us-east-1"),
        };
        StsEndpoint {
            url,
            signing_region: signing_region.to_string(),
            refusal,
        }
    }
}

/// `sts:AssumeRole` with the credentials of `source`.
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    /// From `duration_seconds`; like the SDK, only values above 15 minutes
    /// change the default of 15 minutes.
    pub duration_seconds: Option<u64>,
    pub endpoint: StsEndpoint,
    pub source: Provider,
    /// Who asked, for messages: "profile 'dev'".
    pub context: String,
}

impl AssumeRole {
    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        let base = self.source.fetch(http)?;
        self.assume_with(http, &base, SystemTime::now())
    }

    fn assume_with(&self, http: &Http, base: &Credentials, now: SystemTime) -> Result<Credentials> {
        let session = self
            .session_name
            .clone()
            .unwrap_or_else(|| format!("aws-go-sdk-{}", unix_nanos(now)));
        let duration = self.duration_seconds.filter(|d| *d > 900).unwrap_or(900);
        let mut form = vec![
            ("Action", "AssumeRole".to_string()),
            ("Version", "2011-06-15".to_string()),
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", session),
            ("DurationSeconds", duration.to_string()),
        ];
        if let Some(id) = &self.external_id {
            form.push(("ExternalId", id.clone()));
        }
        let body = form_body(&form);
        let url = self.url()?;
        let signed = sigv4::sign(
            &sigv4::SignedParts {
                method: "POST",
                url: &url,
                headers: &[("content-type", FORM)],
                payload_sha256: &sigv4::hex_sha256(body.as_bytes()),
            },
            base,
            &sigv4::Scope {
                region: &self.endpoint.signing_region,
                service: "sts",
                at: now,
            },
        );
        let mut headers: Vec<(&str, &str)> = vec![("content-type", FORM)];
        headers.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let what = format!(
            "STS AssumeRole of {} ({}) at {}",
            self.role_arn,
            self.context,
            crate::log::redact_configured_url(&self.endpoint.url)
        );
        let answer = source_http::send(http, "POST", url.as_str(), &headers, body.as_bytes())?;
        credentials_from(
            &answer,
            &what,
            "check the source credentials and that the role's trust policy lets them assume it",
        )
    }

    fn url(&self) -> Result<Url> {
        endpoint_url(&self.endpoint)
    }
}

/// `sts:AssumeRoleWithWebIdentity` with the token in `token_file`, read
/// again on every refresh (Kubernetes rotates it).
pub struct WebIdentity {
    pub token_file: PathBuf,
    pub role_arn: String,
    pub session_name: Option<String>,
    pub endpoint: StsEndpoint,
}

impl WebIdentity {
    /// From AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME);
    /// `None` when the token file is not set.
    pub fn from_env(env: &Env, endpoint: StsEndpoint) -> Result<Option<WebIdentity>> {
        let Some(file) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            return Ok(None);
        };
        let role_arn = env.get("AWS_ROLE_ARN").ok_or_else(|| {
            Error::Config(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: set the role to assume with the token, or unset AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            )
        })?;
        Ok(Some(WebIdentity {
            token_file: PathBuf::from(file),
            role_arn: role_arn.to_string(),
            session_name: env.get("AWS_ROLE_SESSION_NAME").map(str::to_string),
            endpoint,
        }))
    }

    pub fn fetch(&self, http: &Http) -> Result<Credentials> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            Error::local_io("read the web identity token file", &self.token_file, e)
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Config(format!(
                "the web identity token file '{}' is empty",
                self.token_file.display()
            )));
        }
        let session = self
            .session_name
            .clone()
            .unwrap_or_else(|| unix_nanos(SystemTime::now()).to_string());
        let body = form_body(&[
            ("Action", "AssumeRoleWithWebIdentity".to_string()),
            ("Version", "2011-06-15".to_string()),
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", session),
            ("WebIdentityToken", token.to_string()),
        ]);
        let url = endpoint_url(&self.endpoint)?;
        let what = format!(
            "STS AssumeRoleWithWebIdentity of {} at {}",
            self.role_arn,
            crate::log::redact_configured_url(&self.endpoint.url)
        );
        let answer = source_http::send(
            http,
            "POST",
            url.as_str(),
            &[("content-type", FORM)],
            body.as_bytes(),
        )?;
        credentials_from(
            &answer,
            &what,
            "check the token file and that the role's trust policy accepts its issuer and subject",
        )
    }
}

fn endpoint_url(endpoint: &StsEndpoint) -> Result<Url> {
    if let Some(why) = &endpoint.refusal {
        return Err(Error::Config(why.clone()));
    }
    let url = Url::parse(&endpoint.url).map_err(|e| {
        Error::Config(format!(
            "the STS endpoint '{}' is not a URL ({e}); check AWS_ENDPOINT_URL_STS and the region",
            crate::log::redact_configured_url(&endpoint.url)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "the STS endpoint '{}' must be http:// or https://",
            crate::log::redact_configured_url(&endpoint.url)
        )));
    }
    Ok(url)
}

fn form_body(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// The credentials in a 200 answer, or the error an STS error answer means.
fn credentials_from(answer: &Answer, what: &str, hint: &str) -> Result<Credentials> {
    if answer.status != 200 {
        let detail = answer.detail();
        let code = tag(&answer.body, "Code").unwrap_or_default();
        let denied = matches!(answer.status, 401 | 403)
            || matches!(
                code.as_str(),
                "AccessDenied"
                    | "InvalidIdentityToken"
                    | "ExpiredTokenException"
                    | "ExpiredToken"
                    | "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "IDPRejectedClaim"
            );
        return Err(if denied {
            Error::PermissionDenied {
                what: what.to_string(),
                hint: if detail.is_empty() {
                    hint.to_string()
                } else {
                    format!("{detail}; {hint}")
                },
            }
        } else {
            Error::Remote {
                what: what.to_string(),
                status: answer.status,
                detail,
                retry_after: None,
            }
        });
    }
    let malformed = |missing: &str| Error::Protocol(format!("{what}: the answer has no {missing}"));
    let block = tag(&answer.body, "Credentials").ok_or_else(|| malformed("Credentials"))?;
    let field = |name: &str| tag(&block, name).filter(|v| !v.is_empty());
    let expiration = field("Expiration").ok_or_else(|| malformed("Expiration"))?;
    Ok(Credentials {
        access_key_id: field("AccessKeyId").ok_or_else(|| malformed("AccessKeyId"))?,
        secret_access_key: field("SecretAccessKey").ok_or_else(|| malformed("SecretAccessKey"))?,
        session_token: Some(field("SessionToken").ok_or_else(|| malformed("SessionToken"))?),
        expires_at: Some(parse_iso8601(&expiration).ok_or_else(|| {
            Error::Protocol(format!("{what}: Expiration '{expiration}' is not a date"))
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{FakeServer, Reply, ASSUME_ROLE_OK};
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    fn base() -> Credentials {
        Credentials {
            access_key_id: "AKIDBASE".into(),
            secret_access_key: "base-secret".into(),
            session_token: Some("base-token".into()),
            expires_at: None,
        }
    }

    #[test]
    fn regions_that_would_change_the_sts_host_are_refused_at_first_use() {
        let e = StsEndpoint::resolve(&env(&[("AWS_REGION", "x.invalid/y")]), None);
        let err = endpoint_url(&e).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(
            err.to_string().starts_with("AWS_REGION='x.invalid/y'"),
            "{err}"
        );
        let e = StsEndpoint::resolve(&env(&[]), Some("evil.example#"));
        assert!(endpoint_url(&e).is_err());
        // With AWS_ENDPOINT_URL_STS the region only names the signing scope.
        let custom = [
            ("AWS_DEFAULT_REGION", "Zone_A"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"),
        ];
        let e = StsEndpoint::resolve(&env(&custom), None);
        assert!(endpoint_url(&e).is_ok());
        assert_eq!(e.signing_region, "Zone_A");
        assert!(endpoint_url(&StsEndpoint::resolve(
            &env(&[("AWS_REGION", "Zone_A")]),
            None
        ))
        .is_err());
    }

    #[test]
    fn endpoint_choice() {
        let e = StsEndpoint::resolve(&env(&[]), None);
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("https://sts.amazonaws.com", "us-east-1")
        );
        let e = StsEndpoint::resolve(
            &env(&[("AWS_DEFAULT_REGION", "eu-west-1")]),
            Some("us-west-2"),
        );
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("https://sts.eu-west-1.amazonaws.com", "eu-west-1")
        );
        let e = StsEndpoint::resolve(
            &env(&[("AWS_REGION", "cn-north-1"), ("AWS_DEFAULT_REGION", "x")]),
            None,
        );
        assert_eq!(e.url, "https://sts.cn-north-1.amazonaws.com.cn");
        let e = StsEndpoint::resolve(&env(&[]), Some("us-west-2"));
        assert_eq!(e.url, "https://sts.us-west-2.amazonaws.com");
        let e = StsEndpoint::resolve(
            &env(&[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/")]),
            None,
        );
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("http://127.0.0.1:9", "us-east-1")
        );
    }

    #[test]
    fn tags_are_extracted_and_decoded() {
        assert_eq!(
            tag(ASSUME_ROLE_OK, "SessionToken").as_deref(),
            Some("assumed-token&more")
        );
        assert_eq!(tag("<a>1</a>", "b"), None);
        assert_eq!(tag("<a>1", "a"), None);
    }

    #[test]
    fn assume_role_is_signed_and_parsed() {
        let server = FakeServer::start(|_| Reply::ok(ASSUME_ROLE_OK));
        let role = AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/demo".into(),
            session_name: Some("my session".into()),
            external_id: Some("ext-1".into()),
            duration_seconds: Some(3600),
            endpoint: StsEndpoint {
                url: server.url(),
                signing_region: "eu-west-1".into(),
                refusal: None,
            },
            source: Provider::Static(base()),
            context: "profile 'dev'".into(),
        };
        let creds = role
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap();
        assert_eq!(creds.access_key_id, "ASIAASSUMED");
        assert_eq!(creds.secret_access_key, "assumed/secret+key");
        assert_eq!(creds.session_token.as_deref(), Some("assumed-token&more"));
        assert_eq!(creds.expires_at, parse_iso8601("2099-01-01T00:00:00Z"));

        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let req = &reqs[0];
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.text(),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo\
             &RoleSessionName=my%20session&DurationSeconds=3600&ExternalId=ext-1"
        );
        assert_eq!(req.header("x-amz-security-token"), Some("base-token"));
        let auth = req.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBASE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="), "{auth}");
        let signature = auth.rsplit("Signature=").next().unwrap();
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(req.header("x-amz-date").is_some());
    }

    #[test]
    fn default_session_name_and_duration_follow_the_sdk() {
        let server = FakeServer::start(|_| Reply::ok(ASSUME_ROLE_OK));
        let role = AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            session_name: None,
            external_id: None,
            duration_seconds: Some(600),
            endpoint: StsEndpoint {
                url: server.url(),
                signing_region: "us-east-1".into(),
                refusal: None,
            },
            source: Provider::Static(base()),
            context: "profile 'p'".into(),
        };
        role.fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap();
        let body = &server.requests()[0].text();
        assert!(body.contains("&RoleSessionName=aws-go-sdk-"), "{body}");
        assert!(body.contains("&DurationSeconds=900"), "{body}");
    }

    #[test]
    fn sts_refusal_is_permission_denied_without_secrets() {
        let server = FakeServer::start(|_| {
            Reply {
            status: 403,
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/u is not authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>".into(),
            ..Reply::default()
        }
        });
        let role = AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            session_name: None,
            external_id: None,
            duration_seconds: None,
            endpoint: StsEndpoint {
                url: server.url(),
                signing_region: "us-east-1".into(),
                refusal: None,
            },
            source: Provider::Static(base()),
            context: "profile 'p'".into(),
        };
        let err = role
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("STS AssumeRole of arn:aws:iam::1:role/r (profile 'p')"),
            "{text}"
        );
        assert!(
            text.contains("AccessDenied: User: arn:aws:iam::1:user/u is not authorized"),
            "{text}"
        );
        assert!(
            !text.contains("base-secret")
                && !text.contains("base-token")
                && !text.contains("Signature"),
            "{text}"
        );
    }

    #[test]
    fn web_identity_posts_the_current_token() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "jwt-one\n").unwrap();
        let body =
            ASSUME_ROLE_OK.replace("AssumeRoleResponse", "AssumeRoleWithWebIdentityResponse");
        let server = FakeServer::start(move |_| Reply::ok(&body));
        let provider = WebIdentity::from_env(
            &env(&[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
                ("AWS_ROLE_SESSION_NAME", "ci"),
            ]),
            StsEndpoint {
                url: server.url(),
                signing_region: "us-east-1".into(),
                refusal: None,
            },
        )
        .unwrap()
        .unwrap();
        let http = source_http::http(&Default::default()).unwrap();
        let creds = provider.fetch(&http).unwrap();
        assert_eq!(creds.access_key_id, "ASIAASSUMED");
        // Kubernetes rotates the token: a refresh reads the file again.
        std::fs::write(&token_file, "jwt-two").unwrap();
        provider.fetch(&http).unwrap();
        let reqs = server.requests();
        assert_eq!(
            reqs[0].text(),
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Firsa&RoleSessionName=ci&WebIdentityToken=jwt-one"
        );
        assert!(reqs[1].text().ends_with("&WebIdentityToken=jwt-two"));
        assert_eq!(reqs[0].header("authorization"), None);
        assert_eq!(reqs[0].header("content-type"), Some(FORM));
    }

    #[test]
    fn web_identity_configuration_errors() {
        assert!(WebIdentity::from_env(
            &env(&[("AWS_ROLE_ARN", "arn")]),
            StsEndpoint::resolve(&env(&[]), None)
        )
        .unwrap()
        .is_none());
        let err = WebIdentity::from_env(
            &env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]),
            StsEndpoint::resolve(&env(&[]), None),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("AWS_ROLE_ARN is not"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let missing = WebIdentity {
            token_file: dir.path().join("absent"),
            role_arn: "arn".into(),
            session_name: None,
            endpoint: StsEndpoint {
                url: "http://127.0.0.1:9".into(),
                signing_region: "us-east-1".into(),
                refusal: None,
            },
        };
        let err = missing
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::LocalIo { .. }), "{err:?}");
        assert!(err.to_string().contains("web identity token file"), "{err}");
    }

    #[test]
    fn invalid_web_identity_token_is_denied() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "secret-jwt").unwrap();
        let server = FakeServer::start(|_| {
            Reply {
            status: 400,
            body: "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found</Message></Error></ErrorResponse>".into(),
            ..Reply::default()
        }
        });
        let provider = WebIdentity {
            token_file,
            role_arn: "arn:aws:iam::1:role/irsa".into(),
            session_name: None,
            endpoint: StsEndpoint {
                url: server.url(),
                signing_region: "us-east-1".into(),
                refusal: None,
            },
        };
        let started = std::time::Instant::now();
        let err = provider
            .fetch(&source_http::http(&Default::default()).unwrap())
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret-jwt"), "{err}");
        assert!(err.to_string().contains("InvalidIdentityToken"), "{err}");
    }
}
