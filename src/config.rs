//! Settings from the environment, read once, after the command line.
//!
//! `Env` is a snapshot of the process environment, taken once by `main`;
//! every setting is read from it, not from `std::env`, which lets unit tests
//! pass their own variables instead of mutating the process. The settings
//! every backend shares are parsed here into plain values with clear errors
//! (`error: ARTIFACT_PARALLELISM …`): the backend, parallelism, timeouts and
//! retries (`HttpSettings`), and the proxies and trusted certificates
//! (`Network`). Each store reads its own variables from the same snapshot:
//! the Hub (`SEMAPHORE_*`, in `backend::hub`), S3 (`ARTIFACT_S3_*`, in
//! `backend::s3::settings`), the local store (`ARTIFACT_LOCAL_DIR`, in
//! `backend::local`) and the credential chain (`AWS_*`, in
//! `aws::credentials`); the level's ID (`SEMAPHORE_JOB_ID` and the like) is
//! read by `main`. Outside the snapshot the program reads only its
//! arguments (`main`), the host name for temporary file names (`atomic`, with
//! `HOSTNAME` as a last resort) and the system's temporary directory, where
//! standard input is spooled (`transfer::push`).

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::http::{HttpSettings, Network};
use crate::proxy::Proxies;
use crate::tls::Trust;

/// The environment, as a lookup table of non-empty variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Env {
        Env::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Env { vars }
    }

    /// The variable's value; unset and empty are the same.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The variable or a configuration error naming it.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    /// A boolean variable: true/false, 1/0, yes/no; unset is `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(Error::Config(format!(
                "{name}='{other}' is not a boolean: use true or false"
            ))),
        }
    }

    /// A duration variable within `range`: `30`, `30s`, `1.5`, `500ms`;
    /// unset is `default`.
    pub fn duration(
        &self,
        name: &str,
        range: RangeInclusive<Duration>,
        default: Duration,
    ) -> Result<Duration> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => parse_duration(text)
                .filter(|d| range.contains(d))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{name}='{text}' is not valid: use a duration from {} to {}, in seconds (30, 1.5) or milliseconds (500ms)",
                        written(*range.start()),
                        written(*range.end())
                    ))
                }),
        }
    }

    /// A whole-number variable within `range`; unset is `default`.
    pub fn number(
        &self,
        name: &str,
        range: RangeInclusive<usize>,
        default: usize,
    ) -> Result<usize> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(Error::Config(format!(
                    "{name}='{text}' is not valid: use a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))),
            },
        }
    }
}

/// `30`, `30s`, `1.5`, `500ms`: seconds, or milliseconds with `ms`; `None`
/// for what is not a duration (negative, not finite, or too large).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    Duration::try_from_secs_f64(value * scale).ok()
}

/// A duration as the variables take it: `1ms`, `600s`.
fn written(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The ranges of the timing variables: zero would fail every request (or
/// retry at once), and beyond these the wait is longer than any CI job
/// should sit on one request (retries wait at most 10 s anyway).
const CONNECT_TIMEOUTS: RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(600);
const IO_TIMEOUTS: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(3600);
const RETRY_DELAYS: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(10);

/// Which storage the command talks to (ARTIFACT_BACKEND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Hub,
    S3,
    Local,
}

// `HttpSettings` and `Network` live in `http`, which they configure; here
// they are read from the environment.
impl Network {
    /// SSL_CERT_FILE, SSL_CERT_DIR, AWS_CA_BUNDLE and the proxy variables.
    pub fn from_env(env: &Env) -> Network {
        Network {
            trust: Trust {
                cert_file: env.get("SSL_CERT_FILE").map(PathBuf::from),
                cert_dirs: env
                    .get("SSL_CERT_DIR")
                    .map(|dirs| {
                        dirs.split(':')
                            .filter(|d| !d.is_empty())
                            .map(PathBuf::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                aws_bundle: env.get("AWS_CA_BUNDLE").map(PathBuf::from),
                aws: false,
            },
            proxies: Proxies::from_lookup(|name| env.get(name)),
        }
    }
}

/// Whether unchanged files are skipped: --skip-unchanged (or
/// --skip-unchanged=false) when given, else ARTIFACT_SKIP_UNCHANGED.
pub fn skip_unchanged(env: &Env, flag: Option<bool>) -> Result<bool> {
    match flag {
        Some(given) => Ok(given),
        None => env.flag("ARTIFACT_SKIP_UNCHANGED", false),
    }
}

/// Everything the environment says, before any backend is built.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: BackendKind,
    /// Requests in flight, fixed: --parallel, else ARTIFACT_PARALLELISM.
    /// `None`: the transfer adapts it, up to `MAX_IN_FLIGHT`.
    pub parallelism: Option<usize>,
    pub http: HttpSettings,
    pub network: Network,
}

/// The most requests an adaptive transfer puts in flight: enough for a
/// store 20 ms away to stay busy, few enough that a worker thread and a
/// connection each keep memory under 32 MiB.
pub const MAX_IN_FLIGHT: usize = 128;

impl Settings {
    /// Connections worth keeping open: one per request in flight.
    pub fn connections(&self) -> usize {
        self.parallelism.unwrap_or(MAX_IN_FLIGHT)
    }

    pub fn from_env(env: &Env, parallel_flag: Option<usize>) -> Result<Settings> {
        let backend = match env
            .get("ARTIFACT_BACKEND")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("hub") => BackendKind::Hub,
            Some("s3") => BackendKind::S3,
            Some("local") => BackendKind::Local,
            Some(other) => {
                return Err(Error::Config(format!(
                    "ARTIFACT_BACKEND='{other}' is not a backend: use hub, s3 or local"
                )))
            }
        };
        let parallelism = match (parallel_flag, env.get("ARTIFACT_PARALLELISM")) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => Some(env.number("ARTIFACT_PARALLELISM", 1..=1024, 1)?),
            (None, None) => None,
        };
        let http = HttpSettings {
            connect_timeout: env.duration(
                "ARTIFACT_CONNECT_TIMEOUT",
                CONNECT_TIMEOUTS,
                Duration::from_secs(10),
            )?,
            io_timeout: env.duration(
                "ARTIFACT_IO_TIMEOUT",
                IO_TIMEOUTS,
                Duration::from_secs(30),
            )?,
            attempts: env.number("ARTIFACT_RETRY_ATTEMPTS", 1..=20, 5)?,
            retry_delay: env.duration(
                "ARTIFACT_RETRY_DELAY",
                RETRY_DELAYS,
                Duration::from_millis(500),
            )?,
        };
        Ok(Settings {
            backend,
            parallelism,
            http,
            network: Network::from_env(env),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults() {
        let s = Settings::from_env(&env(&[]), None).unwrap();
        assert_eq!(s.backend, BackendKind::Hub);
        assert_eq!(s.parallelism, None);
        assert_eq!(s.connections(), MAX_IN_FLIGHT);
        assert_eq!(s.http.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.http.io_timeout, Duration::from_secs(30));
        assert_eq!(s.http.attempts, 5);
        assert_eq!(s.http.retry_delay, Duration::from_millis(500));
    }

    #[test]
    fn backend_choice() {
        let kind =
            |v| Settings::from_env(&env(&[("ARTIFACT_BACKEND", v)]), None).map(|s| s.backend);
        assert_eq!(kind("hub").unwrap(), BackendKind::Hub);
        assert_eq!(kind("S3").unwrap(), BackendKind::S3);
        assert_eq!(kind("local").unwrap(), BackendKind::Local);
        assert_eq!(kind("").unwrap(), BackendKind::Hub);
        let err = kind("gcs").unwrap_err().to_string();
        assert!(err.contains("ARTIFACT_BACKEND='gcs'"), "{err}");
    }

    #[test]
    fn parallelism_flag_wins_over_variable() {
        let e = env(&[("ARTIFACT_PARALLELISM", "8")]);
        assert_eq!(Settings::from_env(&e, None).unwrap().parallelism, Some(8));
        assert_eq!(
            Settings::from_env(&e, Some(2)).unwrap().parallelism,
            Some(2)
        );
        let bad = env(&[("ARTIFACT_PARALLELISM", "0")]);
        assert!(Settings::from_env(&bad, None).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["-1", "soon", "", "NaN", "inf", "1e300", "5 minutes"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        let e = env(&[("ARTIFACT_IO_TIMEOUT", "soon")]);
        let err = Settings::from_env(&e, None).unwrap_err().to_string();
        assert!(err.contains("ARTIFACT_IO_TIMEOUT='soon'"), "{err}");
    }

    #[test]
    fn durations_are_positive_and_in_range() {
        for (name, too_long) in [
            ("ARTIFACT_CONNECT_TIMEOUT", "601"),
            ("ARTIFACT_IO_TIMEOUT", "3601"),
            ("ARTIFACT_RETRY_DELAY", "11s"),
        ] {
            for bad in ["0", "0s", "0ms", "0.0001", too_long] {
                let err = Settings::from_env(&env(&[(name, bad)]), None).unwrap_err();
                assert_eq!(err.exit_code(), 3);
                let text = err.to_string();
                assert!(text.starts_with(&format!("{name}='{bad}'")), "{text}");
                assert!(text.contains("from 1ms to "), "{text}");
            }
            assert!(Settings::from_env(&env(&[(name, "1ms")]), None).is_ok());
        }
        let s = Settings::from_env(&env(&[("ARTIFACT_IO_TIMEOUT", "3600")]), None).unwrap();
        assert_eq!(s.http.io_timeout, Duration::from_secs(3600));
        assert_eq!(written(Duration::from_millis(1)), "1ms");
        assert_eq!(written(Duration::from_secs(600)), "600s");
    }

    #[test]
    fn booleans() {
        let e = env(&[("A", "TRUE"), ("B", "0"), ("C", "maybe")]);
        assert!(e.flag("A", false).unwrap());
        assert!(!e.flag("B", true).unwrap());
        assert!(e.flag("C", true).is_err());
        assert!(e.flag("D", true).unwrap());
    }

    #[test]
    fn skip_unchanged_flag_wins_over_variable() {
        let on = env(&[("ARTIFACT_SKIP_UNCHANGED", "true")]);
        assert!(skip_unchanged(&on, None).unwrap());
        assert!(!skip_unchanged(&on, Some(false)).unwrap());
        assert!(skip_unchanged(&env(&[]), Some(true)).unwrap());
        assert!(!skip_unchanged(&env(&[]), None).unwrap());
        let bad = env(&[("ARTIFACT_SKIP_UNCHANGED", "sometimes")]);
        assert!(skip_unchanged(&bad, None).is_err());
        assert!(skip_unchanged(&bad, Some(true)).unwrap());
    }

    #[test]
    fn required_variables_are_named() {
        let e = env(&[("A", "x"), ("B", "")]);
        assert_eq!(e.require("A").unwrap(), "x");
        assert_eq!(e.require("B").unwrap_err().to_string(), "B is not set");
        assert_eq!(e.require("Z").unwrap_err().to_string(), "Z is not set");
    }
}
