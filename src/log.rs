//! Log lines on stderr, in the Go CLI's format, with secrets kept out.
//!
//! The Go CLI prints `[Nov  5 04:31:00.000] message` (UTC, Go's
//! `time.StampMilli`) on stderr through logrus; users grep CI logs for those
//! lines, so we print the same. `-v` turns on debug lines. Lines from worker
//! threads are written whole under stderr's lock, so they never interleave.
//! Anything that may carry a secret (signed URLs) goes through `redact_url`
//! before it reaches a line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// A timestamped line on stderr.
pub fn info(message: &str) {
    let line = format!("[{}] {message}\n", timestamp(SystemTime::now()));
    let mut err = std::io::stderr().lock();
    // Nothing sensible is left to do when stderr itself is gone.
    let _ = err.write_all(line.as_bytes());
}

/// A timestamped line on stderr, only with `-v`.
pub fn debug(message: impl FnOnce() -> String) {
    if verbose() {
        info(&message());
    }
}

/// Go's `time.StampMilli` in UTC: `Nov  5 04:31:00.000`.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (_, month, day) = crate::time::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}.{:03}",
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Query parameters that never carry a secret: S3's own, on requests we
/// sign in headers. A query with any other parameter (a presigned URL's
/// signature, credential or token) is hidden whole.
const PLAIN_PARAMS: &[&str] = &[
    "continuation-token",
    "delete",
    "list-type",
    "max-keys",
    "partNumber",
    "prefix",
    "uploadId",
    "uploads",
];

/// A URL fit to print: the query string (where signed URLs keep their
/// signature and credentials) and any user:password are replaced, unless
/// every parameter is a known plain one.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], Some(&url[i..])),
        None => (url, None),
    };
    let base = match base.find("://") {
        Some(scheme_end) => {
            let rest = &base[scheme_end + 3..];
            let auth_end = rest.find('/').unwrap_or(rest.len());
            match rest[..auth_end].rfind('@') {
                Some(at) => format!("{}://***@{}", &base[..scheme_end], &rest[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    match query {
        None => base,
        Some(q)
            if q.starts_with('?') && !q.contains('#') && q[1..].split('&').all(is_plain_param) =>
        {
            format!("{base}{q}")
        }
        Some(_) => format!("{base}?<redacted>"),
    }
}

/// A URL from the environment (an endpoint, a proxy, the organization
/// URL), fit to print, even when it is malformed: everything between the
/// scheme and the last `@` is hidden, wherever it is, since a password
/// that was not percent-encoded may hold a `/`, `?`, `#` or space; then
/// the query, as `redact_url` does.
pub fn redact_configured_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => redact_url(&format!("{}***@{}", &url[..start], &url[start + at + 1..])),
        None => redact_url(url),
    }
}

fn is_plain_param(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or("");
    PLAIN_PARAMS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamp_milli_format() {
        // 2025-11-05 04:31:00.007 UTC
        let at = UNIX_EPOCH + Duration::from_millis(1_762_317_060_007);
        assert_eq!(timestamp(at), "Nov  5 04:31:00.007");
        // 2024-02-29 23:59:59.999 UTC (leap day)
        let at = UNIX_EPOCH + Duration::from_millis(1_709_251_199_999);
        assert_eq!(timestamp(at), "Feb 29 23:59:59.999");
        assert_eq!(timestamp(UNIX_EPOCH), "Jan  1 00:00:00.000");
    }

    #[test]
    fn configured_urls_lose_their_userinfo_however_written() {
        for (url, shown) in [
            ("http://user:secretpass@h:1", "http://***@h:1"),
            ("http://user:secret/pass@h:1", "http://***@h:1"),
            ("http://user:secret?pass@h:1", "http://***@h:1"),
            ("http://user:secret#pass@h:1/", "http://***@h:1/"),
            ("http://us er:secret pass@h", "http://***@h"),
            ("user:secretpass@h:1", "***@h:1"),
            ("https://h:1", "https://h:1"),
            ("https://h/?X-Amz-Signature=s", "https://h/?<redacted>"),
        ] {
            assert_eq!(redact_configured_url(url), shown, "{url}");
        }
    }

    #[test]
    fn redaction_hides_queries_and_userinfo() {
        assert_eq!(
            redact_url("https://b.s3.amazonaws.com/p/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA"),
            "https://b.s3.amazonaws.com/p/k?<redacted>"
        );
        assert_eq!(redact_url("http://u:pw@host:1/x"), "http://***@host:1/x");
        assert_eq!(redact_url("http://host/x"), "http://host/x");
        assert_eq!(redact_url("http://host/x#frag"), "http://host/x?<redacted>");
        assert_eq!(
            redact_url("http://h/b/k?partNumber=2&uploadId=abc"),
            "http://h/b/k?partNumber=2&uploadId=abc"
        );
        assert_eq!(
            redact_url("http://h/b/k?partNumber=2&X-Amz-Signature=abc"),
            "http://h/b/k?<redacted>"
        );
        assert_eq!(
            redact_url("http://h/b/k?uploadId=a#x"),
            "http://h/b/k?<redacted>"
        );
    }
}
