//! Getting one object into a file: one streamed GET, or parallel ranges.
//!
//! A whole-object GET asks for the stored checksum (`x-amz-checksum-mode`)
//! and verifies the SHA-256 while the bytes stream, against the store's
//! full-object value or the `x-amz-meta-sha256` our uploads record; a
//! mismatch is an integrity error and the file never reaches its
//! destination. Large objects come down as parallel `Range` GETs written at
//! their offsets, each checked for its exact span and length.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ureq::http::HeaderMap;

use super::client::{self, Request};
use super::S3;
use crate::backend::{check_length, copy_body, RemoteObject};
use crate::checksum::{Expected, StreamHasher};
use crate::error::{Error, Result};
use crate::http::Payload;
use crate::{log, pool, retry};

/// Objects larger than this many parts come down in parallel ranges.
const RANGED_MIN_PARTS: u64 = 4;
const RANGES_IN_FLIGHT: usize = 16;

pub struct Downloader<'a> {
    pub s3: &'a S3,
    pub object: &'a RemoteObject,
}

impl Downloader<'_> {
    pub fn to_file(&self, out: &mut File) -> Result<u64> {
        match self.object.size {
            Some(size)
                if size > RANGED_MIN_PARTS * self.s3.settings.part_size
                    && self.s3.parallelism > 1 =>
            {
                self.ranged(out, size)
            }
            _ => self.whole(out),
        }
    }

    fn whole(&self, out: &mut File) -> Result<u64> {
        let key = &self.object.key;
        let req = Request::new("GET", Some(&self.object.locator))
            .header("x-amz-checksum-mode", "ENABLED");
        retry::run(
            &self.s3.client.http.settings,
            &format!("GET '{key}'"),
            || {
                out.set_len(0)
                    .and_then(|()| out.seek(SeekFrom::Start(0)).map(drop))
                    .map_err(|e| Error::local_io("write", Path::new(key), e))?;
                let mut response = self.s3.client.send(&req, Payload::Empty)?;
                if response.status().as_u16() != 200 {
                    return Err(self
                        .s3
                        .error(client::failure(&mut response), "GetObject", key));
                }
                let expected = expected_sha256(response.headers());
                let announced = response.body().content_length();
                let mut hasher = expected.as_ref().map(StreamHasher::new);
                let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
                let n = copy_body(
                    &mut body,
                    |chunk| {
                        if let Some(h) = &mut hasher {
                            h.update(chunk);
                        }
                        out.write_all(chunk)
                    },
                    key,
                )?;
                check_length(key, announced.or(self.object.size), n)?;
                match (expected, hasher) {
                    (Some(want), Some(h)) => {
                        let actual = h.finish();
                        if want.matches(&actual) {
                            Ok(n)
                        } else {
                            Err(Error::Integrity {
                                what: format!("download of '{key}'"),
                                detail: format!(
                                    "SHA-256 {actual}, the store says {}",
                                    want.value()
                                ),
                            })
                        }
                    }
                    _ => {
                        log::debug(|| {
                            format!("'{key}': the store keeps no SHA-256 for it; checked its length only")
                        });
                        Ok(n)
                    }
                }
            },
        )
    }

    fn ranged(&self, out: &mut File, size: u64) -> Result<u64> {
        let key = &self.object.key;
        out.set_len(size)
            .map_err(|e| Error::local_io("write", Path::new(key), e))?;
        let chunk = self.s3.settings.part_size;
        let ranges: Vec<(u64, u64)> = (0..size.div_ceil(chunk))
            .map(|i| (i * chunk, chunk.min(size - i * chunk)))
            .collect();
        let file: &File = out;
        let workers = self.s3.parallelism.min(RANGES_IN_FLIGHT);
        pool::all(pool::run(&ranges, workers, |&(offset, len)| {
            self.range(file, offset, len, size)
        }))?;
        log::debug(|| {
            format!(
                "'{key}': downloaded in {} ranges; checked lengths only",
                ranges.len()
            )
        });
        Ok(size)
    }

    fn range(&self, file: &File, offset: u64, len: u64, size: u64) -> Result<()> {
        let key = &self.object.key;
        let last = offset + len - 1;
        let req = Request::new("GET", Some(&self.object.locator))
            .header("range", format!("bytes={offset}-{last}"));
        retry::run(
            &self.s3.client.http.settings,
            &format!("GET '{key}' bytes {offset}-{last}"),
            || {
                let mut response = self.s3.client.send(&req, Payload::Empty)?;
                let status = response.status().as_u16();
                if status != 206 {
                    if status == 200 {
                        return Err(Error::Protocol(format!(
                            "the store ignored the range request for '{key}'"
                        )));
                    }
                    return Err(self
                        .s3
                        .error(client::failure(&mut response), "GetObject", key));
                }
                let span = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok());
                if span != Some(format!("bytes {offset}-{last}/{size}").as_str()) {
                    return Err(Error::Protocol(format!(
                        "the store answered range {offset}-{last} of '{key}' with {}",
                        span.unwrap_or("no Content-Range")
                    )));
                }
                let mut at = offset;
                let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
                let n = copy_body(
                    &mut body,
                    |chunk| {
                        file.write_all_at(chunk, at)?;
                        at += chunk.len() as u64;
                        Ok(())
                    },
                    key,
                )?;
                check_length(key, Some(len), n)
            },
        )
    }
}

/// The SHA-256 the object's bytes must have, when the store states one we
/// can check: a full-object value (not beside a multipart ETag, which
/// s3s-fs 0.14 leaves stale after an overwrite), a composite `…-N` when our
/// upload recorded its part size, else the value our single PUTs record.
fn expected_sha256(headers: &HeaderMap) -> Option<Expected> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let etag_multipart = get("etag").is_some_and(|e| e.contains('-'));
    let kind = get("x-amz-checksum-type");
    let full_object = kind.is_none_or(|t| t.eq_ignore_ascii_case("FULL_OBJECT"));
    let composite = kind.is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE"));
    let part_size = get("x-amz-meta-artifact-part-size").and_then(|v| v.parse::<u64>().ok());
    match (get("x-amz-checksum-sha256"), part_size) {
        (Some(v), _) if !v.contains('-') && !etag_multipart && full_object => {
            Some(Expected::Whole(v.to_string()))
        }
        (Some(v), Some(part_size)) if v.contains('-') || composite => Some(Expected::Composite {
            value: v.to_string(),
            part_size,
        }),
        _ => get("x-amz-meta-sha256").map(|v| Expected::Whole(v.to_string())),
    }
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

    #[test]
    fn which_checksums_are_trusted() {
        let whole = |v: &str| Some(Expected::Whole(v.to_string()));
        let full = headers(&[("etag", "\"abc\""), ("x-amz-checksum-sha256", "SUM=")]);
        assert_eq!(expected_sha256(&full), whole("SUM="));
        let typed = headers(&[
            ("x-amz-checksum-sha256", "SUM="),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ]);
        assert_eq!(expected_sha256(&typed), whole("SUM="));
        // A composite, or a value beside a multipart ETag, is not the object's.
        let composite = headers(&[("x-amz-checksum-sha256", "SUM=-3")]);
        assert_eq!(expected_sha256(&composite), None);
        let stale = headers(&[("etag", "\"abc-3\""), ("x-amz-checksum-sha256", "OLD=")]);
        assert_eq!(expected_sha256(&stale), None);
        let typed_composite = headers(&[
            ("x-amz-checksum-sha256", "SUM="),
            ("x-amz-checksum-type", "COMPOSITE"),
        ]);
        assert_eq!(expected_sha256(&typed_composite), None);
        let meta = headers(&[("etag", "\"abc\""), ("x-amz-meta-sha256", "META=")]);
        assert_eq!(expected_sha256(&meta), whole("META="));
        // A composite is checked when our upload recorded the part size.
        let ours = headers(&[
            ("etag", "\"abc-3\""),
            ("x-amz-checksum-sha256", "SUM=-3"),
            ("x-amz-checksum-type", "COMPOSITE"),
            ("x-amz-meta-artifact-part-size", "5242880"),
        ]);
        assert_eq!(
            expected_sha256(&ours),
            Some(Expected::Composite {
                value: "SUM=-3".into(),
                part_size: 5242880
            })
        );
    }
}
