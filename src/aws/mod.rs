//! AWS's protocols, under the S3 backend: request signing (`sigv4`), S3's
//! and STS's XML (`xml`), and finding credentials (`credentials`).
//!
//! Nothing here knows about artifacts or backends. Outside `aws`, `sigv4`
//! and `xml` use only `time` and `error`, so `http` may read error bodies
//! with `xml`; `credentials` calls its endpoints through `http`.

pub mod credentials;
pub mod sigv4;
pub mod xml;

use std::time::SystemTime;

use crate::error::Error;

/// Whether `region` may be used. Where it becomes part of an AWS host name
/// (`s3.{region}.amazonaws.com`, `sts.{region}.amazonaws.com`), only
/// `[a-z0-9-]+`, so it cannot change the host that signed requests and
/// session tokens go to; where a custom endpoint is the host and the
/// region only names the signing scope, `[A-Za-z0-9_-]+` (MinIO and Ceph
/// zonegroups may have capitals and `_`).
pub fn is_region(region: &str, in_host_name: bool) -> bool {
    !region.is_empty()
        && region.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || (!in_host_name && (b.is_ascii_uppercase() || b == b'_'))
        })
}

/// The configuration error for a region from `source` that fails
/// `is_region`.
pub fn region_error(source: &str, region: &str, in_host_name: bool) -> Error {
    let allowed = if in_host_name {
        "lowercase letters, digits and '-', such as eu-west-1"
    } else {
        "letters, digits, '-' and '_' (with a custom endpoint)"
    };
    Error::Config(format!(
        "{source}='{}' is not a region: use {allowed}",
        region.escape_debug()
    ))
}

/// A set of AWS credentials. `Debug` never shows the secret parts.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_in_host_names_are_lowercase_names() {
        for good in [
            "us-east-1",
            "eu-west-1",
            "cn-north-1",
            "auto",
            "us-gov-west-1",
        ] {
            assert!(is_region(good, true), "{good}");
            assert!(is_region(good, false), "{good}");
        }
        for custom in ["Zone_A", "DEFAULT", "my_zonegroup"] {
            assert!(!is_region(custom, true), "{custom}");
            assert!(is_region(custom, false), "{custom}");
        }
        for bad in [
            "",
            "x.invalid/y",
            "eu-west-1.",
            "a b",
            "a/b",
            "a:b",
            "a@b",
            "é",
            "a\nb",
            "x.y",
        ] {
            assert!(!is_region(bad, true), "{bad:?}");
            assert!(!is_region(bad, false), "{bad:?}");
        }
        let err = region_error("AWS_REGION", "x.invalid/y", true);
        assert_eq!(err.exit_code(), 3);
        assert!(
            err.to_string()
                .starts_with("AWS_REGION='x.invalid/y' is not a region"),
            "{err}"
        );
    }
}
