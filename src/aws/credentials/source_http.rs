//! The HTTP side every credential source shares.
//!
//! Credential endpoints (IMDS, the container agent, STS, SSO) go through the
//! program's one client, `crate::http::Http`, but with short limits of their
//! own: a source that is not there must cost about a second, not the 10 s
//! connect timeout meant for storage, so "no credentials anywhere" fails
//! fast. One request here is one call plus its body, retried as a whole by
//! `retry::call`; callers get the status and the text and decide what it means.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::http::{summarize_error_body, Http, Payload};
use crate::http::{HttpSettings, Network};
use crate::retry;

/// Connect 1 s, wait for a byte 5 s, two attempts 100 ms apart.
pub fn settings() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(5),
        attempts: 2,
        retry_delay: Duration::from_millis(100),
    }
}

pub fn http(network: &Network) -> Result<Http> {
    Http::new(settings(), 2, network)
}

/// An answer: its status and its body as text (at most 1 MiB).
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// A short summary of an error body, free of secrets (see
    /// `http::summarize_error_body`).
    pub fn detail(&self) -> String {
        summarize_error_body(&self.body)
    }

    /// The error for a status the caller has no better words for.
    pub fn unexpected(&self, what: String) -> Error {
        Error::Remote {
            what,
            status: self.status,
            detail: self.detail(),
            retry_after: None,
        }
    }

    /// The body as JSON, or a protocol error naming `what`.
    pub fn json(&self, what: &str) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .map_err(|_| Error::Protocol(format!("{what}: the answer is not the expected JSON")))
    }
}

const BODY_LIMIT: u64 = 1024 * 1024;

/// Sends one request (retried as `Error::is_retryable` says, within this
/// module's short policy) and reads the answer. `body` empty means no body.
pub fn send(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer> {
    let what = format!("{method} {}", crate::log::redact_url(url));
    retry::call(&http.settings.retry_policy(), &what, |_| {
        let payload = if body.is_empty() {
            Payload::Empty
        } else {
            Payload::Bytes(body)
        };
        let mut response = http.call(method, url, headers, payload)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| Error::Network {
                what: what.clone(),
                detail: format!("reading the answer failed: {e}"),
            })?;
        Ok(Answer { status, body })
    })
}

/// An endpoint from a variable or a default, without its trailing slash.
pub fn base_url(text: &str) -> String {
    text.trim().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base_urls_lose_blanks_and_the_trailing_slash() {
        assert_eq!(super::base_url(" http://h:1/ "), "http://h:1");
    }
}
