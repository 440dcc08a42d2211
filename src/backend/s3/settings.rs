//! The S3 backend's configuration: bucket, prefix, endpoint, addressing.
//!
//! Everything here comes from the `ARTIFACT_S3_*` variables (and the
//! profile's region, when no region variable is set) and is
//! checked before any request: a missing bucket, an endpoint that is not a
//! URL, acceleration combined with a custom endpoint, an unknown encryption
//! or storage class fail at once with a
//! message naming the variable. Addressing follows the AWS SDKs:
//! virtual-host style unless path style is asked for, the endpoint is an IP
//! address or `localhost`, or a dotted bucket name would break TLS.

use crate::aws::{is_region, region_error};
use crate::config::Env;
use crate::error::{Error, Result};

/// Smallest and default multipart part: S3's minimum is 5 MiB.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    /// Host, with `:port` when one was given.
    pub authority: String,
}

impl Endpoint {
    fn host(&self) -> &str {
        match self.authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self
                .authority
                .rsplit_once(':')
                .map_or(self.authority.as_str(), |(h, _)| h),
        }
    }

    /// An IP address or `localhost`: no DNS names for buckets there.
    fn is_ip_or_localhost(&self) -> bool {
        let host = self.host();
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// `""`, or the prefix with exactly one trailing `/`.
    pub prefix: String,
    /// ARTIFACT_S3_ENDPOINT, when the store is not AWS.
    pub endpoint: Option<Endpoint>,
    pub force_path_style: bool,
    pub accelerate: bool,
    /// A region given by the user (variables or profile); else detected.
    pub region: Option<String>,
    /// ARTIFACT_S3_PART_SIZE: the multipart part size to start from.
    pub part_size: u64,
    /// ARTIFACT_S3_SSE and ARTIFACT_S3_SSE_KMS_KEY_ID.
    pub encryption: Option<Encryption>,
    /// ARTIFACT_S3_STORAGE_CLASS.
    pub storage_class: Option<&'static str>,
}

/// Server-side encryption every write asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: &'static str,
    /// The KMS key, for the `aws:kms` kinds; else the bucket's default key.
    pub kms_key_id: Option<String>,
}

const ENCRYPTIONS: [&str; 3] = ["AES256", "aws:kms", "aws:kms:dsse"];

/// The storage classes PutObject takes (S3 API reference, `x-amz-storage-class`).
const STORAGE_CLASSES: [&str; 12] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];

impl S3Settings {
    /// `profile_region` gives the profile's region, and where it comes from
    /// (for a message), when no variable names one.
    pub fn from_env(
        env: &Env,
        profile_region: impl FnOnce() -> Option<(String, String)>,
    ) -> Result<S3Settings> {
        let bucket = env
            .get("ARTIFACT_S3_BUCKET")
            .ok_or_else(|| {
                Error::Config(
                    "ARTIFACT_S3_BUCKET is not set: ARTIFACT_BACKEND=s3 needs the name of the bucket to store artifacts in"
                        .into(),
                )
            })?
            .to_string();
        if bucket.contains('/') || bucket.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "ARTIFACT_S3_BUCKET='{bucket}' is not a bucket name: give the name alone; put a path in ARTIFACT_S3_PREFIX"
            )));
        }
        let endpoint = env
            .get("ARTIFACT_S3_ENDPOINT")
            .map(parse_endpoint)
            .transpose()?;
        let force_path_style = env.flag("ARTIFACT_S3_FORCE_PATH_STYLE", false)?;
        let accelerate = env.flag("ARTIFACT_S3_ACCELERATE", false)?;
        if accelerate && (endpoint.is_some() || force_path_style) {
            return Err(Error::Config(
                "ARTIFACT_S3_ACCELERATE=true works only with AWS S3 and virtual-host addressing: unset ARTIFACT_S3_ENDPOINT and ARTIFACT_S3_FORCE_PATH_STYLE, or turn acceleration off".into(),
            ));
        }
        if accelerate && bucket.contains('.') {
            return Err(Error::Config(format!(
                "ARTIFACT_S3_ACCELERATE=true cannot be used with bucket '{bucket}': AWS does not accelerate bucket names with dots"
            )));
        }
        let region = ["ARTIFACT_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| Some((name.to_string(), env.get(name)?.to_string())))
            .or_else(profile_region);
        let region = match region {
            Some((source, region)) if !is_region(&region, endpoint.is_none()) => {
                return Err(region_error(&source, &region, endpoint.is_none()))
            }
            found => found.map(|(_, region)| region),
        };
        let part_size = match env.get("ARTIFACT_S3_PART_SIZE") {
            None => DEFAULT_PART_SIZE,
            Some(text) => parse_size(text)
                .filter(|n| (MIN_PART_SIZE..=MAX_PART_SIZE).contains(n))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "ARTIFACT_S3_PART_SIZE='{text}' is not valid: use a size from 5MiB to 5GiB, such as 16MiB"
                    ))
                })?,
        };
        Ok(S3Settings {
            bucket,
            prefix: normalize_prefix(env.get("ARTIFACT_S3_PREFIX").unwrap_or("")),
            endpoint,
            force_path_style,
            accelerate,
            region,
            part_size,
            encryption: encryption(env)?,
            storage_class: storage_class(env)?,
        })
    }

    /// The headers every PutObject and CreateMultipartUpload carries:
    /// encryption and storage class, as configured.
    pub fn write_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(e) = &self.encryption {
            headers.push(("x-amz-server-side-encryption", e.algorithm.to_string()));
            if let Some(key) = &e.kms_key_id {
                headers.push(("x-amz-server-side-encryption-aws-kms-key-id", key.clone()));
            }
        }
        if let Some(class) = self.storage_class {
            headers.push(("x-amz-storage-class", class.to_string()));
        }
        headers
    }

    /// The bucket's host and port (`mybucket.minio:9000`) and the
    /// endpoint's (`minio:9000`) when the bucket is addressed by virtual
    /// host on a custom endpoint: a name that must resolve, and often does
    /// not.
    pub fn virtual_host_on_endpoint(&self) -> Option<(String, String)> {
        match &self.endpoint {
            Some(e) if !self.path_style() => Some((
                format!("{}.{}", self.bucket, e.authority),
                e.authority.clone(),
            )),
            _ => None,
        }
    }

    /// Whether requests put the bucket in the path rather than the host.
    pub fn path_style(&self) -> bool {
        match &self.endpoint {
            _ if self.force_path_style => true,
            Some(e) => e.is_ip_or_localhost() || (e.scheme == "https" && self.bucket.contains('.')),
            None => self.bucket.contains('.'),
        }
    }

    /// The URL of the bucket, in `region`: every object URL starts with it.
    pub fn bucket_url(&self, region: &str) -> String {
        let (scheme, authority) = match &self.endpoint {
            Some(e) => (e.scheme.clone(), e.authority.clone()),
            None if self.accelerate => ("https".into(), "s3-accelerate.amazonaws.com".into()),
            None => ("https".into(), format!("s3.{region}.amazonaws.com")),
        };
        if self.path_style() {
            format!("{scheme}://{authority}/{}", self.bucket)
        } else {
            format!("{scheme}://{}.{authority}", self.bucket)
        }
    }

    /// Where to ask which region the bucket is in (an unsigned HEAD).
    pub fn region_probe_url(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{}://{}/{}", e.scheme, e.authority, self.bucket),
            None => format!("https://s3.amazonaws.com/{}", self.bucket),
        }
    }
}

/// ARTIFACT_S3_SSE and ARTIFACT_S3_SSE_KMS_KEY_ID, checked together.
fn encryption(env: &Env) -> Result<Option<Encryption>> {
    let key = env.get("ARTIFACT_S3_SSE_KMS_KEY_ID").map(str::to_string);
    let Some(text) = env.get("ARTIFACT_S3_SSE") else {
        return match key {
            Some(_) => Err(Error::Config(
                "ARTIFACT_S3_SSE_KMS_KEY_ID is set without ARTIFACT_S3_SSE: set ARTIFACT_S3_SSE=aws:kms (or aws:kms:dsse) to encrypt with that key".into(),
            )),
            None => Ok(None),
        };
    };
    let algorithm = ENCRYPTIONS
        .into_iter()
        .find(|a| a.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            Error::Config(format!(
                "ARTIFACT_S3_SSE='{text}' is not a server-side encryption: use AES256, aws:kms or aws:kms:dsse"
            ))
        })?;
    if algorithm == "AES256" && key.is_some() {
        return Err(Error::Config(
            "ARTIFACT_S3_SSE_KMS_KEY_ID needs ARTIFACT_S3_SSE=aws:kms or aws:kms:dsse, not AES256"
                .into(),
        ));
    }
    Ok(Some(Encryption {
        algorithm,
        kms_key_id: key,
    }))
}

fn storage_class(env: &Env) -> Result<Option<&'static str>> {
    let Some(text) = env.get("ARTIFACT_S3_STORAGE_CLASS") else {
        return Ok(None);
    };
    STORAGE_CLASSES
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(text.trim()))
        .map(Some)
        .ok_or_else(|| {
            Error::Config(format!(
                "ARTIFACT_S3_STORAGE_CLASS='{text}' is not an S3 storage class: use one of {}",
                STORAGE_CLASSES.join(", ")
            ))
        })
}

/// `a`, `/a/`, `a/` all become `a/`; empty stays empty.
fn normalize_prefix(prefix: &str) -> String {
    let parts: Vec<&str> = prefix
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint> {
    let invalid = |why: &str| {
        Error::Config(format!(
            "ARTIFACT_S3_ENDPOINT='{}' is not usable: {why}; use a URL such as https://minio.internal:9000",
            crate::log::redact_configured_url(text)
        ))
    };
    if text.contains('@') {
        return Err(invalid(
            "it carries a user or password, which S3 does not take; give the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| invalid("it has no http:// or https://"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("only http and https are supported"));
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(invalid("it must be scheme://host[:port] with no path"));
    }
    Ok(Endpoint {
        scheme,
        authority: authority.to_string(),
    })
}

/// `8388608`, `8MiB`, `8M`, `16 MiB`, `1GiB`.
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The part size for an object of `size` bytes: at least `preferred`, and
/// large enough that the object fits in 10,000 parts (a 5 TiB object gets
/// parts of about 525 MiB).
pub fn part_size_for(size: u64, preferred: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    preferred.max(needed)
}

/// Whether `part_size` is a part size S3 could have given an object of
/// `size` bytes (when known): 5 MiB to 5 GiB, and at most 10,000 parts (the
/// last may be smaller). A recorded value outside these rules is not ours:
/// taken at its word, it would plan millions of ranges or parts.
pub fn is_possible_part_size(part_size: u64, size: Option<u64>) -> bool {
    (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size)
        && size.is_none_or(|size| size.div_ceil(part_size) <= MAX_PARTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<S3Settings> {
        S3Settings::from_env(&Env::from_pairs(pairs.iter().copied()), || None)
    }

    #[test]
    fn bucket_is_required() {
        let err = settings(&[]).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("ARTIFACT_S3_BUCKET is not set"));
        assert!(settings(&[("ARTIFACT_S3_BUCKET", "a/b")]).is_err());
    }

    #[test]
    fn prefixes_are_normalized() {
        for p in ["ci", "/ci", "ci/", "/ci/", "//ci//"] {
            assert_eq!(normalize_prefix(p), "ci/", "{p}");
        }
        assert_eq!(normalize_prefix("a/b"), "a/b/");
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
    }

    #[test]
    fn addressing() {
        let s = settings(&[("ARTIFACT_S3_BUCKET", "b")]).unwrap();
        assert!(!s.path_style());
        assert_eq!(
            s.bucket_url("eu-west-1"),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ENDPOINT", "http://127.0.0.1:9000/"),
        ])
        .unwrap();
        assert!(s.path_style());
        assert_eq!(s.bucket_url("us-east-1"), "http://127.0.0.1:9000/b");
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ENDPOINT", "http://localhost:9000"),
        ])
        .unwrap();
        assert!(s.path_style());
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ENDPOINT", "https://minio.corp:9000"),
        ])
        .unwrap();
        assert_eq!(s.bucket_url("x"), "https://b.minio.corp:9000");
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ENDPOINT", "https://minio.corp"),
            ("ARTIFACT_S3_FORCE_PATH_STYLE", "true"),
        ])
        .unwrap();
        assert_eq!(s.bucket_url("x"), "https://minio.corp/b");
        let s = settings(&[("ARTIFACT_S3_BUCKET", "my.dotted.bucket")]).unwrap();
        assert_eq!(
            s.bucket_url("us-east-2"),
            "https://s3.us-east-2.amazonaws.com/my.dotted.bucket"
        );
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ENDPOINT", "http://[::1]:9000"),
        ])
        .unwrap();
        assert!(s.path_style());
    }

    #[test]
    fn acceleration() {
        let s = settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_ACCELERATE", "true"),
        ])
        .unwrap();
        assert_eq!(
            s.bucket_url("eu-west-1"),
            "https://b.s3-accelerate.amazonaws.com"
        );
        for extra in [
            ("ARTIFACT_S3_ENDPOINT", "http://127.0.0.1:1"),
            ("ARTIFACT_S3_FORCE_PATH_STYLE", "1"),
        ] {
            let err = settings(&[
                ("ARTIFACT_S3_BUCKET", "b"),
                ("ARTIFACT_S3_ACCELERATE", "true"),
                extra,
            ])
            .unwrap_err();
            assert!(err.to_string().contains("ARTIFACT_S3_ACCELERATE"), "{err}");
        }
    }

    #[test]
    fn region_order() {
        let r = |pairs: &[(&str, &str)], profile: Option<&str>| {
            let mut all = vec![("ARTIFACT_S3_BUCKET", "b")];
            all.extend_from_slice(pairs);
            S3Settings::from_env(&Env::from_pairs(all), || {
                profile.map(|r| ("the profile's region".to_string(), r.to_string()))
            })
            .unwrap()
            .region
        };
        assert_eq!(r(&[], None), None);
        assert_eq!(r(&[], Some("p")), Some("p".into()));
        assert_eq!(
            r(&[("AWS_DEFAULT_REGION", "d")], Some("p")),
            Some("d".into())
        );
        assert_eq!(
            r(&[("AWS_REGION", "a"), ("AWS_DEFAULT_REGION", "d")], None),
            Some("a".into())
        );
        assert_eq!(
            r(&[("ARTIFACT_S3_REGION", "x"), ("AWS_REGION", "a")], None),
            Some("x".into())
        );
    }

    #[test]
    fn every_source_of_the_region_is_checked() {
        let check = |pairs: &[(&str, &str)], profile: Option<&str>| {
            let mut all = vec![("ARTIFACT_S3_BUCKET", "b")];
            all.extend_from_slice(pairs);
            S3Settings::from_env(&Env::from_pairs(all), || {
                profile.map(|r| ("region in profile 'p'".to_string(), r.to_string()))
            })
        };
        for name in ["ARTIFACT_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"] {
            let err = check(&[(name, "x.invalid/y")], None).unwrap_err();
            assert_eq!(err.exit_code(), 3);
            assert!(
                err.to_string()
                    .starts_with(&format!("{name}='x.invalid/y'")),
                "{err}"
            );
        }
        let err = check(&[], Some("evil.example#")).unwrap_err();
        assert!(
            err.to_string().starts_with("region in profile 'p'="),
            "{err}"
        );
        // Capitals and '_' only where the region is no part of a host name.
        assert!(check(&[("AWS_REGION", "Zone_A")], None).is_err());
        let endpoint = ("ARTIFACT_S3_ENDPOINT", "http://127.0.0.1:9000");
        let s = check(&[("AWS_REGION", "Zone_A"), endpoint], None).unwrap();
        assert_eq!(s.region.as_deref(), Some("Zone_A"));
        assert!(check(&[("AWS_REGION", "a/b"), endpoint], None).is_err());
    }

    #[test]
    fn endpoints_and_sizes() {
        assert!(parse_endpoint("minio:9000").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("http://x/path").is_err());
        for with_password in ["http://u:secret@h:1", "u:secret@h:1", "http://u:sec/ret@h"] {
            let err = parse_endpoint(with_password).unwrap_err().to_string();
            assert!(!err.contains("secret") && !err.contains("sec/"), "{err}");
            assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        }
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("8388608"), Some(8 << 20));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("lots"), None);
        assert!(settings(&[
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_PART_SIZE", "1MiB")
        ])
        .is_err());
    }

    /// The settings for bucket `b` and `pairs`.
    fn with(pairs: &[(&str, &str)]) -> Result<S3Settings> {
        let mut all = vec![("ARTIFACT_S3_BUCKET", "b")];
        all.extend_from_slice(pairs);
        settings(&all)
    }

    #[test]
    fn encryption_and_storage_class() {
        let plain = with(&[]).unwrap();
        assert_eq!(plain.encryption, None);
        assert!(plain.write_headers().is_empty());
        let kms = with(&[
            ("ARTIFACT_S3_SSE", "aws:kms"),
            ("ARTIFACT_S3_SSE_KMS_KEY_ID", "alias/ci"),
            ("ARTIFACT_S3_STORAGE_CLASS", "standard_ia"),
        ])
        .unwrap();
        assert_eq!(
            kms.write_headers(),
            vec![
                ("x-amz-server-side-encryption", "aws:kms".to_string()),
                (
                    "x-amz-server-side-encryption-aws-kms-key-id",
                    "alias/ci".to_string()
                ),
                ("x-amz-storage-class", "STANDARD_IA".to_string()),
            ]
        );
        for (value, algorithm) in [
            ("AES256", "AES256"),
            ("aes256", "AES256"),
            ("aws:kms:dsse", "aws:kms:dsse"),
        ] {
            let s = with(&[("ARTIFACT_S3_SSE", value)]).unwrap();
            assert_eq!(s.encryption.unwrap().algorithm, algorithm);
        }
        for (pairs, variable) in [
            (&[("ARTIFACT_S3_SSE", "kms")][..], "ARTIFACT_S3_SSE="),
            (
                &[("ARTIFACT_S3_SSE_KMS_KEY_ID", "k")][..],
                "ARTIFACT_S3_SSE_KMS_KEY_ID",
            ),
            (
                &[
                    ("ARTIFACT_S3_SSE", "AES256"),
                    ("ARTIFACT_S3_SSE_KMS_KEY_ID", "k"),
                ][..],
                "ARTIFACT_S3_SSE_KMS_KEY_ID",
            ),
            (
                &[("ARTIFACT_S3_STORAGE_CLASS", "COLD")][..],
                "ARTIFACT_S3_STORAGE_CLASS",
            ),
        ] {
            let err = with(pairs).unwrap_err();
            assert_eq!(err.exit_code(), 3, "{err}");
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn virtual_hosts_on_endpoints() {
        let host = |pairs: &[(&str, &str)]| {
            with(pairs)
                .unwrap()
                .virtual_host_on_endpoint()
                .map(|(bucket_host, _)| bucket_host)
        };
        assert_eq!(host(&[]), None);
        assert_eq!(
            host(&[("ARTIFACT_S3_ENDPOINT", "http://minio:9000")]),
            Some("b.minio:9000".into())
        );
        assert_eq!(
            host(&[
                ("ARTIFACT_S3_ENDPOINT", "http://minio:9000"),
                ("ARTIFACT_S3_FORCE_PATH_STYLE", "true")
            ]),
            None
        );
        assert_eq!(
            host(&[("ARTIFACT_S3_ENDPOINT", "http://127.0.0.1:9000")]),
            None
        );
    }

    #[test]
    fn part_sizes_fit_ten_thousand_parts() {
        let mib = 1024 * 1024;
        assert_eq!(
            part_size_for(100 * mib, DEFAULT_PART_SIZE),
            DEFAULT_PART_SIZE
        );
        let five_tib = 5 * 1024 * 1024 * mib;
        let part = part_size_for(five_tib, DEFAULT_PART_SIZE);
        assert!(five_tib.div_ceil(part) <= MAX_PARTS);
        assert!(part <= MAX_PART_SIZE);
        assert_eq!(part % mib, 0);
        // Every part size this tool chooses is one S3 could have given.
        assert!(is_possible_part_size(part, Some(five_tib)));
    }

    #[test]
    fn recorded_part_sizes_outside_s3s_rules_are_impossible() {
        let mib = 1024 * 1024;
        let object = Some(35 * mib);
        assert!(is_possible_part_size(MIN_PART_SIZE, object));
        assert!(is_possible_part_size(MAX_PART_SIZE, object));
        assert!(is_possible_part_size(8 * mib, None));
        for tiny in [0, 1, MIN_PART_SIZE - 1] {
            assert!(!is_possible_part_size(tiny, object), "{tiny}");
        }
        assert!(!is_possible_part_size(MAX_PART_SIZE + 1, object));
        assert!(!is_possible_part_size(6 * 1024 * mib, None));
        // 10,000 parts at most, the last one smaller.
        let parts = |n: u64| Some(n * MIN_PART_SIZE - 1);
        assert!(is_possible_part_size(MIN_PART_SIZE, parts(MAX_PARTS)));
        assert!(!is_possible_part_size(MIN_PART_SIZE, parts(MAX_PARTS + 1)));
        assert!(!is_possible_part_size(MIN_PART_SIZE, Some(u64::MAX)));
    }
}
