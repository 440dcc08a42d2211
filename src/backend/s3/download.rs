//! Getting objects: one GET of a whole object or of a byte range, and the
//! HEAD that states an object's ETag and checksum before a ranged download.
//!
//! A whole-object GET asks for the stored checksum (`x-amz-checksum-mode`)
//! and hands the engine what the bytes must hash to: the store's
//! full-object value, S3's composite of parts when our upload recorded the
//! part size, or the `x-amz-meta-sha256` our single PUTs record. A recorded
//! part size is read here and only here, and only one S3 could have given
//! the object counts: every user of it (ranges, --skip-unchanged) plans at
//! most 10,000 parts of 5 MiB to 5 GiB. A ranged
//! GET carries `If-Match` when the engine gives one, so an object replaced
//! mid-download answers 412 instead of mixing two versions.

use ureq::http::HeaderMap;

use super::client::{self, Request};
use super::settings::is_possible_part_size;
use super::upload::{META_MODE, META_PART_SIZE, META_PENDING};
use super::S3;
use crate::backend::object::{etag_as_md5, version_of};
use crate::backend::{ByteRange, Download, RemoteObject, Stated};
use crate::checksum::Expected;
use crate::error::{Error, Result};
use crate::http::Payload;
use crate::log;

impl S3 {
    /// A HEAD with the stored checksum asked for.
    pub(super) fn head_object(&self, object: &RemoteObject) -> Result<Stated> {
        let req =
            Request::new("HEAD", Some(&object.locator)).header("x-amz-checksum-mode", "ENABLED");
        let mut response = self.client.send(&req, Payload::Empty)?;
        if !response.status().is_success() {
            return Err(self.error(client::failure(&mut response), "HeadObject", &object.key));
        }
        let headers = response.headers();
        let part_size = recorded_part_size(headers, object);
        Ok(Stated {
            etag: headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            version: version_of(headers),
            sha256: expected_sha256(headers, part_size),
            mode: recorded_mode(headers),
            part_size,
            etag_md5: etag_as_md5(headers),
            pending: headers.contains_key(META_PENDING),
        })
    }

    pub(super) fn get_object(
        &self,
        object: &RemoteObject,
        range: ByteRange<'_>,
    ) -> Result<Download<'static>> {
        let mut req = Request::new("GET", Some(&object.locator));
        if range.is_whole() {
            req = req.header("x-amz-checksum-mode", "ENABLED");
        }
        if let Some(value) = range.header() {
            req = req.header("range", value);
        }
        if let Some(etag) = range.if_match {
            req = req.header("if-match", etag);
        }
        let mut response = self.client.send(&req, Payload::Empty)?;
        match response.status().as_u16() {
            200 | 206 => {}
            412 => {
                return Err(Error::remote(
                    format!("S3 GetObject of '{}'", object.key),
                    412,
                    "the object changed since the download started",
                ))
            }
            _ => return Err(self.error(client::failure(&mut response), "GetObject", &object.key)),
        }
        // A range states no checksum of the whole, but our recorded SHA-256
        // of the whole object comes with every answer.
        let headers = response.headers();
        let part_size = recorded_part_size(headers, object);
        let expected = match range.is_whole() {
            true => expected_sha256(headers, part_size),
            false => recorded_sha256(headers),
        };
        let mode = recorded_mode(headers);
        let pending = headers.contains_key(META_PENDING);
        let mut download = Download::from_http(response)?;
        download.pending = pending;
        download.sha256 = expected;
        download.mode = mode;
        download.part_size = part_size;
        Ok(download)
    }
}

/// The permission bits our push recorded (`x-amz-meta-mode`, octal).
fn recorded_mode(headers: &HeaderMap) -> Option<u32> {
    let value = headers.get(META_MODE)?.to_str().ok()?;
    u32::from_str_radix(value.trim(), 8).ok().map(|m| m & 0o777)
}

/// The part size our multipart upload recorded, when S3 could have given
/// it to this object (its size from the listing, else the answer's
/// Content-Length). Any other value is ignored, as if none were recorded: a
/// composite checksum then cannot be checked, and the download is checked
/// by its length.
fn recorded_part_size(headers: &HeaderMap, object: &RemoteObject) -> Option<u64> {
    let value = headers.get(META_PART_SIZE)?.to_str().ok()?.trim();
    let size = object.size.or_else(|| {
        headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
    });
    let part_size = value
        .parse()
        .ok()
        .filter(|&p| is_possible_part_size(p, size));
    if part_size.is_none() {
        log::debug(|| {
            format!(
                "'{}': ignoring its recorded part size '{}', which S3 could not have given it (5 MiB to 5 GiB, at most 10,000 parts); its composite checksum cannot be checked",
                object.key,
                value.escape_debug()
            )
        });
    }
    part_size
}

/// The SHA-256 the object's bytes must have, when the store states one we
/// can check: a full-object value (not beside a multipart ETag, which
/// s3s-fs 0.14 leaves stale after an overwrite), a composite `…-N` when our
/// upload recorded its part size (`part_size`, already bounded), else the
/// value our single PUTs record.
/// moto's HEAD states a composite without its `-N` or a type, but with the
/// upload's `x-amz-checksum-algorithm`: read as a composite too.
/// The ETag is looked at only for the `-N` of a multipart object, never
/// read as an MD5 (under SSE-KMS it is not one).
fn expected_sha256(headers: &HeaderMap, part_size: Option<u64>) -> Option<Expected> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let etag_multipart = get("etag").is_some_and(|e| e.contains('-'));
    let kind = get("x-amz-checksum-type");
    let full_object = kind.is_none_or(|t| t.eq_ignore_ascii_case("FULL_OBJECT"));
    let composite = kind.is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE"))
        || (kind.is_none() && etag_multipart && get("x-amz-checksum-algorithm").is_some());
    match (get("x-amz-checksum-sha256"), part_size) {
        (Some(v), _) if !v.contains('-') && !etag_multipart && full_object => {
            Some(Expected::Whole(v.to_string()))
        }
        (Some(v), Some(part_size)) if v.contains('-') || composite => Some(Expected::Composite {
            value: v.to_string(),
            part_size,
        }),
        _ => recorded_sha256(headers),
    }
}

/// The SHA-256 of the whole object that our single PUTs record.
fn recorded_sha256(headers: &HeaderMap) -> Option<Expected> {
    let value = headers.get("x-amz-meta-sha256")?.to_str().ok()?;
    Some(Expected::Whole(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn object(size: Option<u64>) -> RemoteObject {
        RemoteObject {
            key: "k".into(),
            size,
            locator: "k".into(),
            etag: None,
            modified: None,
        }
    }

    /// What a whole GET or a HEAD with these headers must hash to.
    fn expected(headers: &HeaderMap) -> Option<Expected> {
        expected_sha256(headers, recorded_part_size(headers, &object(None)))
    }

    #[test]
    fn which_checksums_are_trusted() {
        let whole = |v: &str| Some(Expected::Whole(v.to_string()));
        let full = headers(&[("etag", "\"abc\""), ("x-amz-checksum-sha256", "SUM=")]);
        assert_eq!(expected(&full), whole("SUM="));
        let typed = headers(&[
            ("x-amz-checksum-sha256", "SUM="),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ]);
        assert_eq!(expected(&typed), whole("SUM="));
        // A composite, or a value beside a multipart ETag, is not the object's.
        let composite = headers(&[("x-amz-checksum-sha256", "SUM=-3")]);
        assert_eq!(expected(&composite), None);
        let stale = headers(&[("etag", "\"abc-3\""), ("x-amz-checksum-sha256", "OLD=")]);
        assert_eq!(expected(&stale), None);
        let typed_composite = headers(&[
            ("x-amz-checksum-sha256", "SUM="),
            ("x-amz-checksum-type", "COMPOSITE"),
        ]);
        assert_eq!(expected(&typed_composite), None);
        let meta = headers(&[("etag", "\"abc\""), ("x-amz-meta-sha256", "META=")]);
        assert_eq!(expected(&meta), whole("META="));
        // A composite is checked when our upload recorded the part size.
        let ours = headers(&[
            ("etag", "\"abc-3\""),
            ("x-amz-checksum-sha256", "SUM=-3"),
            ("x-amz-checksum-type", "COMPOSITE"),
            ("x-amz-meta-artifact-part-size", "5242880"),
        ]);
        assert_eq!(
            expected(&ours),
            Some(Expected::Composite {
                value: "SUM=-3".into(),
                part_size: 5242880
            })
        );
        // moto's HEAD: no `-N`, no type, the upload's algorithm.
        let moto_head = headers(&[
            ("etag", "\"abc-2\""),
            ("x-amz-checksum-sha256", "SUM="),
            ("x-amz-checksum-algorithm", "SHA256"),
            ("x-amz-meta-artifact-part-size", "5242880"),
        ]);
        assert_eq!(
            expected(&moto_head),
            Some(Expected::Composite {
                value: "SUM=".into(),
                part_size: 5242880
            })
        );
    }

    #[test]
    fn a_part_size_s3_could_not_have_given_is_ignored() {
        let mib: u64 = 1024 * 1024;
        let with = |part_size: &str, length: Option<u64>| {
            let mut pairs = vec![
                ("etag", "\"abc-7\"".to_string()),
                ("x-amz-checksum-sha256", "SUM=-7".to_string()),
                ("x-amz-checksum-type", "COMPOSITE".to_string()),
                ("x-amz-meta-artifact-part-size", part_size.to_string()),
            ];
            if let Some(length) = length {
                pairs.push(("content-length", length.to_string()));
            }
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(k, v.parse().unwrap());
            }
            map
        };
        let object_35mib = object(Some(35 * mib));
        let part = |headers: &HeaderMap, object: &RemoteObject| recorded_part_size(headers, object);
        assert_eq!(part(&with("5242880", None), &object_35mib), Some(5 * mib));
        for bad in ["1", "0", "5242879", "6442450944", "-5", "x", ""] {
            let headers = with(bad, None);
            assert_eq!(part(&headers, &object_35mib), None, "{bad:?}");
            // Not verifiable: the download is checked by its length.
            assert_eq!(expected(&headers), None, "{bad:?}");
        }
        // More than 10,000 parts of the object's size, from the answer's
        // Content-Length or else the listing's size.
        let huge = 10_001 * 5 * mib;
        assert_eq!(part(&with("5242880", Some(huge)), &object(None)), None);
        assert_eq!(part(&with("5242880", None), &object(Some(huge))), None);
        assert_eq!(
            part(&with("5242880", Some(huge - 5 * mib)), &object(None)),
            Some(5 * mib)
        );
    }
}
