//! Reading an object's key back out of a signed storage URL.
//!
//! On pull the Hub answers with one signed GET URL per object and nothing
//! else, so the local file name must come from the URL itself. The Go CLI
//! knows four shapes, and so do we:
//! - GCS: `https://storage.googleapis.com/<bucket>/<key>?…`
//! - S3: `https://<bucket>.s3[.<region>].amazonaws.com/<project-id>/<key>?…`
//!   (and the path-style `https://s3[.<region>].amazonaws.com/<bucket>/<project-id>/<key>`)
//! - custom domain (MinIO behind the Hub): `https://<domain>/<bucket>/<project-id>/<key>?…`
//! - loopback, in tests: `http://127.0.0.1:<port>/<key>`
//!
//! Keys are percent-decoded in every shape (the Go CLI decodes only the
//! loopback one, so `a b.txt` comes back from GCS as `a%20b.txt`).

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use crate::log;

/// The object key a signed URL points at.
pub fn object_key(url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Protocol(format!(
            "cannot tell which object the URL '{}' is for: {why}",
            log::redact_url(url)
        ))
    };
    let (_, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("it has no scheme"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.strip_prefix('[').map_or_else(
        || host.split(':').next().unwrap_or(""),
        |h| h.split(']').next().unwrap_or(""),
    );
    let host = host.to_ascii_lowercase();
    let segments = path.strip_prefix('/').unwrap_or(path);

    let skip = if host == "storage.googleapis.com" {
        1 // bucket
    } else if host.ends_with("amazonaws.com") {
        if host.starts_with("s3.") || host.starts_with("s3-") {
            2 // path-style: bucket, project id
        } else {
            1 // virtual-host: project id
        }
    } else if host.starts_with("127.") || host == "localhost" || host == "::1" {
        0
    } else {
        2 // custom domain: bucket, project id
    };
    let mut key = segments;
    for _ in 0..skip {
        key = key
            .split_once('/')
            .map(|(_, tail)| tail)
            .ok_or_else(|| bad("its path is shorter than the storage's URL layout"))?;
    }
    if key.is_empty() {
        return Err(bad("it names no object"));
    }
    percent_decode_str(key)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| bad("the key is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_shape() {
        let cases = [
            (
                "https://storage.googleapis.com/my-bucket/artifacts/jobs/1/a%20b.txt?Expires=1&Signature=x",
                "artifacts/jobs/1/a b.txt",
            ),
            (
                "https://bucket.s3.amazonaws.com/proj-1/artifacts/jobs/1/x.txt?X-Amz-Signature=x",
                "artifacts/jobs/1/x.txt",
            ),
            (
                "https://bucket.s3.eu-west-1.amazonaws.com/proj-1/artifacts/jobs/1/dir/x.txt?X-Amz-Signature=x",
                "artifacts/jobs/1/dir/x.txt",
            ),
            (
                "https://s3.eu-west-1.amazonaws.com/bucket/proj-1/artifacts/jobs/1/x.txt?X-Amz-Signature=x",
                "artifacts/jobs/1/x.txt",
            ),
            (
                "https://minio.example.com/bucket/proj-1/artifacts/workflows/w/r%C3%A9sum%C3%A9.pdf?X-Amz-Signature=x",
                "artifacts/workflows/w/résumé.pdf",
            ),
            (
                "http://127.0.0.1:4567/artifacts/projects/p/a%2Bb%23c.txt?Signature=x",
                "artifacts/projects/p/a+b#c.txt",
            ),
            ("http://localhost:80/artifacts/jobs/1/x", "artifacts/jobs/1/x"),
            ("http://[::1]:80/artifacts/jobs/1/x", "artifacts/jobs/1/x"),
        ];
        for (url, key) in cases {
            assert_eq!(object_key(url).unwrap(), key, "{url}");
        }
    }

    #[test]
    fn unusable_urls_are_errors_without_secrets() {
        for url in [
            "not a url",
            "https://storage.googleapis.com/bucket-only?Signature=SECRET",
            "https://minio.example.com/bucket?Signature=SECRET",
            "http://127.0.0.1:1/?Signature=SECRET",
            "http://127.0.0.1:1/%FF?Signature=SECRET",
        ] {
            let err = object_key(url).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{err}");
        }
    }
}
