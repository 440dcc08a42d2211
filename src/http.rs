//! The one HTTP client: a pooled ureq agent with our timeouts and logging.
//!
//! Every request the program sends (Hub API, signed storage URLs, S3, the
//! credential endpoints) goes through `Http::call` (or `call_with`, for the
//! longer or shorter limits of `Patience`), so timeouts, proxies, connection
//! reuse, `-v` lines and redaction exist once. A call is one attempt: statuses
//! worth retrying (`Error::retryable_status`, the one rule) come back as
//! errors that `retry::call` understands, any other status comes
//! back as a response for the backend to interpret (a HEAD's 404 is an answer,
//! not a failure).

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use ureq::http::{Request, Response};
use ureq::tls::TlsConfig;
use ureq::{Agent, AsSendBody, Body, Proxy, SendBody};

use crate::aws::xml::error_code_and_message;
use crate::error::{Error, Result};
use crate::proxy::Proxies;
use crate::tls::Trust;
use crate::{log, proxy, time, tls};

/// How HTTP requests behave: timeouts and retries, for every backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpSettings {
    /// ARTIFACT_CONNECT_TIMEOUT: to open a connection (default 10 s).
    pub connect_timeout: Duration,
    /// ARTIFACT_IO_TIMEOUT: longest wait for a byte, either way (default 30 s).
    pub io_timeout: Duration,
    /// ARTIFACT_RETRY_ATTEMPTS: attempts per request, first included (default 5).
    pub attempts: usize,
    /// ARTIFACT_RETRY_DELAY: the first backoff; it doubles (default 0.5 s).
    pub retry_delay: Duration,
}

impl HttpSettings {
    /// How the requests are retried.
    pub fn retry_policy(&self) -> crate::retry::Policy {
        crate::retry::Policy {
            attempts: self.attempts,
            first_delay: self.retry_delay,
        }
    }
}

/// Where connections go and whom they trust.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// SSL_CERT_FILE, SSL_CERT_DIR, AWS_CA_BUNDLE.
    pub trust: Trust,
    /// HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY.
    pub proxies: Proxies,
}

impl Network {
    /// The same network, for S3 and AWS endpoints (trusts AWS_CA_BUNDLE too).
    pub fn for_aws(&self) -> Network {
        Network {
            trust: self.trust.for_aws(),
            proxies: self.proxies.clone(),
        }
    }
}

/// How long a request may take, beyond the usual timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// The configured connect and I/O timeouts.
    Usual,
    /// Up to this long for the answer, for requests a server may take
    /// minutes to answer (CompleteMultipartUpload).
    Long(Duration),
    /// Clean-up after a failure or a signal: a short connect and a short
    /// total, so a cancelled run still ends within seconds.
    Cleanup,
}

const CLEANUP_CONNECT: Duration = Duration::from_secs(1);
const CLEANUP_TOTAL: Duration = Duration::from_secs(3);

/// What a request carries.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly `len` bytes.
    Reader(&'a mut dyn Read, u64),
}

#[derive(Clone)]
pub struct Http {
    /// For plain-HTTP URLs: no certificate store is read for them.
    plain: Agents,
    /// For HTTPS URLs, built (and the trusted roots read) on first use.
    secure: Arc<OnceLock<std::result::Result<Agents, String>>>,
    network: Network,
    connections: usize,
    pub settings: HttpSettings,
}

/// The agents for one kind of connection: direct, and through each proxy.
#[derive(Clone)]
struct Agents {
    direct: Agent,
    via_http_proxy: Option<Agent>,
    via_https_proxy: Option<Agent>,
}

impl Agents {
    fn build(
        settings: &HttpSettings,
        connections: usize,
        network: &Network,
        tls: Option<TlsConfig>,
    ) -> Result<Agents> {
        let config = |proxy: Option<Proxy>| {
            let mut config = Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(settings.connect_timeout))
                .timeout_per_read(Some(settings.io_timeout))
                .timeout_per_write(Some(settings.io_timeout))
                .max_idle_connections(connections.max(1) * 2)
                .max_idle_connections_per_host(connections.max(1))
                .max_redirects(0)
                // 32 KiB each way per connection (ureq's default is 128):
                // one connection per worker, so this bounds memory; measured
                // with no loss of throughput on large objects.
                .input_buffer_size(32 * 1024)
                .output_buffer_size(32 * 1024)
                .accept_encoding("identity")
                .user_agent(concat!("artifact/", env!("CARGO_PKG_VERSION")))
                .proxy(proxy);
            if let Some(tls) = &tls {
                config = config.tls_config(tls.clone());
            }
            config.build()
        };
        let bad_proxy = |variable: &str, url: &str, why: String| {
            Error::Config(format!(
                "{variable}='{}' is not a proxy URL: {why}",
                log::redact_configured_url(url)
            ))
        };
        let parse = |url: &str, variable: &str| {
            proxy::check_url(url).map_err(|why| bad_proxy(variable, url, why))?;
            Proxy::new(url).map_err(|e| bad_proxy(variable, url, e.to_string()))
        };
        let proxies = &network.proxies;
        // Plain http goes to HTTP_PROXY in absolute form; https is tunnelled
        // through HTTPS_PROXY with CONNECT, as ureq does it.
        let via_http_proxy = match proxies.http.as_deref() {
            Some(url) => Some(
                proxy::absolute_form_agent(config(None), &parse(url, "HTTP_PROXY")?)
                    .map_err(|why| bad_proxy("HTTP_PROXY", url, why))?,
            ),
            None => None,
        };
        let via_https_proxy = match proxies.https.as_deref() {
            Some(url) => {
                let proxy = parse(url, "HTTPS_PROXY")?;
                proxy::http_scheme(&proxy).map_err(|why| bad_proxy("HTTPS_PROXY", url, why))?;
                Some(config(Some(proxy)).new_agent())
            }
            None => None,
        };
        Ok(Agents {
            direct: config(None).new_agent(),
            via_http_proxy,
            via_https_proxy,
        })
    }
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

impl Http {
    /// Agents whose pools keep `connections` idle connections per host,
    /// one per worker, trusting and proxying as `network` says.
    pub fn new(settings: HttpSettings, connections: usize, network: &Network) -> Result<Http> {
        Ok(Http {
            plain: Agents::build(&settings, connections, network, None)?,
            secure: Arc::new(OnceLock::new()),
            network: network.clone(),
            connections,
            settings,
        })
    }

    /// The agent for `url`: TLS-capable when the URL or its proxy is
    /// HTTPS, through its scheme's proxy or direct.
    fn agent_for(&self, url: &str) -> Result<&Agent> {
        let proxy = self.network.proxies.for_url(url);
        let agents = if is_https(url) || proxy.is_some_and(is_https) {
            self.secure()?
        } else {
            &self.plain
        };
        if proxy.is_none() {
            return Ok(&agents.direct);
        }
        let proxied = if is_https(url) {
            &agents.via_https_proxy
        } else {
            &agents.via_http_proxy
        };
        Ok(proxied.as_ref().unwrap_or(&agents.direct))
    }

    fn secure(&self) -> Result<&Agents> {
        let built = self.secure.get_or_init(|| {
            tls::install_crypto_provider();
            let tls = self.network.trust.tls_config().map_err(|e| e.to_string())?;
            Agents::build(&self.settings, self.connections, &self.network, Some(tls))
                .map_err(|e| e.to_string())
        });
        built
            .as_ref()
            .map_err(|message| Error::Config(message.clone()))
    }

    /// Sends one request. Transport failures and the statuses worth
    /// retrying (`Error::retryable_status`) are errors, with the wait a
    /// `Retry-After` asked for; every other status is returned as is.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Result<Response<Body>> {
        self.call_with(method, url, headers, payload, Patience::Usual)
    }

    /// `call`, with the timeouts `patience` asks for.
    pub fn call_with(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        patience: Patience,
    ) -> Result<Response<Body>> {
        let what = format!("{method} {}", log::redact_url(url));
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let started = Instant::now();
        let sent = match payload {
            Payload::Empty => {
                let req = builder
                    .header("content-length", "0")
                    .body(())
                    .map_err(|e| bad_request(&what, e))?;
                send_with(self.agent_for(url)?, req, patience)
            }
            Payload::Bytes(bytes) => {
                let req = builder.body(bytes).map_err(|e| bad_request(&what, e))?;
                send_with(self.agent_for(url)?, req, patience)
            }
            Payload::Reader(reader, len) => {
                let req = builder
                    .header("content-length", len.to_string())
                    .body(SendBody::from_reader(reader))
                    .map_err(|e| bad_request(&what, e))?;
                send_with(self.agent_for(url)?, req, patience)
            }
        };
        let elapsed = started.elapsed().as_millis();
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                log::debug(|| format!("{what} -> failed after {elapsed} ms"));
                return Err(transport_error(&what, url, e, &self.settings));
            }
        };
        let status = response.status().as_u16();
        log::debug(|| format!("{what} -> {status} ({elapsed} ms)"));
        if Error::retryable_status(status) {
            let retry_after = (response.headers().get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .and_then(|text| retry_after(text, SystemTime::now()));
            return Err(Error::Remote {
                what,
                status,
                detail: error_detail(&mut response),
                retry_after,
            });
        }
        Ok(response)
    }
}

/// Sends `req` on `agent` with the timeouts `patience` asks for.
fn send_with(
    agent: &Agent,
    req: Request<impl AsSendBody>,
    patience: Patience,
) -> std::result::Result<Response<Body>, ureq::Error> {
    let configured = agent.configure_request(req);
    let req = match patience {
        Patience::Usual => return agent.run(configured.build()),
        Patience::Long(wait) => configured.timeout_per_read(Some(wait)).build(),
        Patience::Cleanup => configured
            .timeout_connect(Some(CLEANUP_CONNECT))
            .timeout_global(Some(CLEANUP_TOTAL))
            .build(),
    };
    agent.run(req)
}

/// The wait a `Retry-After` header asks for, in either of RFC 9110's forms:
/// delta-seconds (`120`), or an HTTP-date, counted from `now` (a date
/// already past asks for no wait). `retry` bounds what it honours.
fn retry_after(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = time::parse_http_date(text)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A short, secret-free summary of an error body: S3's `<Code>` and
/// `<Message>`, a JSON `error` field, or the first line of text.
pub fn error_detail(response: &mut Response<Body>) -> String {
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024)
        .read_to_string()
        .unwrap_or_default();
    summarize_error_body(&text)
}

pub fn summarize_error_body(text: &str) -> String {
    if let (Some(code), message) = error_code_and_message(text) {
        return match message {
            Some(msg) if !msg.is_empty() => format!("{code}: {msg}"),
            _ => code,
        };
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(serde_json::Value::String(msg)) =
            map.get("error").or_else(|| map.get("message"))
        {
            return msg.clone();
        }
    }
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

fn bad_request(what: &str, err: ureq::http::Error) -> Error {
    Error::Protocol(format!("{what}: cannot build the request: {err}"))
}

fn transport_error(what: &str, url: &str, err: ureq::Error, settings: &HttpSettings) -> Error {
    // ureq's messages may quote the URL; keep its query out of the output.
    let detail = match &err {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => format!(
            "could not connect within {:.1} s (ARTIFACT_CONNECT_TIMEOUT)",
            settings.connect_timeout.as_secs_f64()
        ),
        ureq::Error::Timeout(_) => format!(
            "the server sent or took no byte for {:.1} s (ARTIFACT_IO_TIMEOUT)",
            settings.io_timeout.as_secs_f64()
        ),
        _ => err.to_string().replace(url, &log::redact_url(url)),
    };
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let tls = match &err {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        ureq::Error::Io(e) => https && e.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    match err {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            Error::Protocol(format!("{what}: invalid URL: {detail}"))
        }
        _ if tls => Error::Network {
            what: what.to_string(),
            detail: format!(
                "the TLS handshake failed ({detail}): check that the server speaks HTTPS on that port and that its certificate is trusted (SSL_CERT_FILE, or AWS_CA_BUNDLE for S3, adds a private CA)"
            ),
        },
        _ => Error::Network {
            what: what.to_string(),
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_is_read_in_both_forms() {
        // 2015-10-21T07:28:00Z
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(retry_after("120", now), secs(120));
        assert_eq!(retry_after(" 0 ", now), secs(0));
        assert_eq!(retry_after("99999999999999999999999", now), secs(u64::MAX));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), secs(30));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 08:28:00 GMT", now),
            secs(3600)
        );
        // A date already past: no wait.
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), secs(0));
        for bad in ["", "-5", "1.5", "soon", "Wednesday, 21-Oct-15 07:28:00 GMT"] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn error_bodies_are_summarised_without_secrets() {
        let s3 = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><SignatureProvided>deadbeef</SignatureProvided></Error>";
        let got = summarize_error_body(s3);
        assert_eq!(
            got,
            "SignatureDoesNotMatch: The request signature we calculated does not match"
        );
        assert!(!got.contains("deadbeef"));
        assert_eq!(
            summarize_error_body("{\"error\":\"unauthorized\"}"),
            "unauthorized"
        );
        assert_eq!(
            summarize_error_body("temporarily unavailable\nmore"),
            "temporarily unavailable"
        );
        assert_eq!(summarize_error_body(""), "");
    }
}
