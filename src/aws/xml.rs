//! AWS's XML, both ways. Read: S3's list pages and upload ids with
//! rust-s3's types, and single elements (S3's and STS's error `<Code>` and
//! `<Message>`, STS's credentials, DeleteObjects' `<Error>`s) with `tag`.
//! Written: the two bodies we send, CompleteMultipartUpload, which needs each
//! part's checksum, a field rust-s3's `Part` does not have, and
//! DeleteObjects.

use s3::serde_types::{InitiateMultipartUploadResponse, ListBucketResult};

use crate::error::{Error, Result};

/// One uploaded part: its number, ETag, and the SHA-256 it was sent with
/// (none when the store refused checksum headers).
#[derive(Debug, Clone)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub sha256: Option<String>,
}

/// One ListObjectsV2 page: the objects and the token for the next page.
pub struct ListPage {
    pub objects: Vec<Listed>,
    pub next: Option<String>,
}

/// One object of a list page: its bucket key, size and ETag (when the
/// store lists one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// LastModified, when the store sends one we can read.
    pub modified: Option<std::time::SystemTime>,
}

pub fn list_page(text: &str) -> Result<ListPage> {
    let parsed: ListBucketResult =
        quick_xml::de::from_str(text).map_err(|e| unusable("ListObjectsV2", &e.to_string()))?;
    let next = parsed
        .next_continuation_token
        .filter(|t| parsed.is_truncated && !t.is_empty());
    if parsed.is_truncated && next.is_none() {
        return Err(unusable(
            "ListObjectsV2",
            "a truncated page without a continuation token",
        ));
    }
    Ok(ListPage {
        objects: parsed
            .contents
            .into_iter()
            .map(|o| Listed {
                key: o.key,
                size: o.size,
                etag: o.e_tag.filter(|e| !e.is_empty()),
                modified: crate::time::parse_iso8601(&o.last_modified),
            })
            .collect(),
        next,
    })
}

pub fn upload_id(text: &str) -> Result<String> {
    let parsed: InitiateMultipartUploadResponse = quick_xml::de::from_str(text)
        .map_err(|e| unusable("CreateMultipartUpload", &e.to_string()))?;
    Ok(parsed.upload_id)
}

/// The CompleteMultipartUpload body: each part's number, ETag and checksum.
pub fn complete_body(parts: &[Part]) -> String {
    let mut body =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for part in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>",
            part.number,
            escape(&part.etag)
        ));
        if let Some(sum) = &part.sha256 {
            body.push_str(&format!("<ChecksumSHA256>{}</ChecksumSHA256>", escape(sum)));
        }
        body.push_str("</Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// The DeleteObjects body for the bucket keys `keys`, quiet: the answer
/// lists only the keys that could not be deleted.
pub fn delete_body(keys: &[&str]) -> String {
    let mut body = String::from(
        "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>",
    );
    for key in keys {
        body.push_str(&format!("<Object><Key>{}</Key></Object>", escape(key)));
    }
    body.push_str("</Delete>");
    body
}

/// Whether `text` survives an XML 1.0 body unchanged: no control
/// characters, which XML cannot carry (or, for CR, keeps only as LF).
pub fn carries(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n'))
}

/// One key a DeleteObjects answer reports as not deleted.
#[derive(Debug, PartialEq, Eq)]
pub struct DeleteError {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// Every `<Error>` of a DeleteObjects answer (`<DeleteResult>`).
pub fn delete_errors(text: &str) -> Vec<DeleteError> {
    text.split("<Error>")
        .skip(1)
        .filter_map(|rest| {
            let element = rest.split("</Error>").next()?;
            Some(DeleteError {
                key: tag(element, "Key")?,
                code: tag(element, "Code").unwrap_or_default(),
                message: tag(element, "Message").unwrap_or_default(),
            })
        })
        .collect()
}

/// `<Code>` and `<Message>` of an S3 error document, if it is one.
pub fn error_code_and_message(text: &str) -> (Option<String>, Option<String>) {
    (tag(text, "Code"), tag(text, "Message"))
}

/// Whether a 200 answer is really an `<Error>` (CompleteMultipartUpload
/// reports late failures that way).
pub fn is_error_document(text: &str) -> bool {
    let start = text.trim_start();
    let body = start
        .strip_prefix("<?xml")
        .map_or(start, |rest| rest.split_once("?>").map_or(rest, |(_, b)| b));
    body.trim_start().starts_with("<Error>")
}

/// The text of the first `<name>…</name>` element, entities decoded.
pub fn tag(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(text[start..end].trim()))
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A ListObjectsV2 page listing `keys`, escaped as S3 escapes them.
#[cfg(any(test, fuzzing))]
pub(crate) fn page_text(keys: &[String], truncated: bool, token: &str) -> String {
    let contents: String = keys
        .iter()
        .map(|k| format!("<Contents><Key>{}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>7</Size></Contents>", escape(k)))
        .collect();
    format!(
        "<ListBucketResult><Name>b</Name><IsTruncated>{truncated}</IsTruncated><NextContinuationToken>{}</NextContinuationToken>{contents}</ListBucketResult>",
        escape(token)
    )
}

fn unusable(what: &str, why: &str) -> Error {
    Error::Protocol(format!("the S3 answer to {what} cannot be read: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>
<Contents><Key>p/a &amp; b.txt</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>"x"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/c</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>"y"</ETag><Size>0</Size></Contents></ListBucketResult>"#;
        let page = list_page(text).unwrap();
        let keys: Vec<(&str, u64)> = page
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.size))
            .collect();
        assert_eq!(keys, vec![("p/a & b.txt", 5), ("p/c", 0)]);
        assert_eq!(page.next.as_deref(), Some("tok+/="));
        let last = r#"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let page = list_page(last).unwrap();
        assert!(page.objects.is_empty() && page.next.is_none());
    }

    #[test]
    fn list_pages_carry_etags() {
        let text = r#"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>
<Contents><Key>a</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;9e10-2&quot;</ETag><Size>5</Size></Contents>
<Contents><Key>b</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>"c4ca"</ETag><Size>1</Size></Contents>
<Contents><Key>c</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><Size>0</Size></Contents></ListBucketResult>"#;
        let etags: Vec<Option<String>> = list_page(text)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.etag)
            .collect();
        assert_eq!(
            etags,
            vec![Some("\"9e10-2\"".into()), Some("\"c4ca\"".into()), None]
        );
    }

    #[test]
    fn upload_ids_and_errors() {
        let init = r#"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>id-1</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(upload_id(init).unwrap(), "id-1");
        let err = r#"<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"#;
        assert_eq!(
            error_code_and_message(err),
            (
                Some("NoSuchBucket".into()),
                Some("The specified bucket does not exist".into())
            )
        );
        assert!(is_error_document(err));
        assert!(!is_error_document("<CompleteMultipartUploadResult/>"));
    }

    #[test]
    fn delete_bodies_and_answers() {
        let body = delete_body(&["a/b.txt", "x&y<z>\"q\""]);
        assert_eq!(
            body,
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>\
             <Object><Key>a/b.txt</Key></Object>\
             <Object><Key>x&amp;y&lt;z&gt;&quot;q&quot;</Key></Object></Delete>"
        );
        let answer = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>ok</Key></Deleted>
<Error><Key>p/a &amp; b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
<Error><Key>p/c</Key><Code>InternalError</Code><Message>try again</Message></Error></DeleteResult>"#;
        assert_eq!(
            delete_errors(answer),
            vec![
                DeleteError {
                    key: "p/a & b".into(),
                    code: "AccessDenied".into(),
                    message: "Access Denied".into()
                },
                DeleteError {
                    key: "p/c".into(),
                    code: "InternalError".into(),
                    message: "try again".into()
                },
            ]
        );
        assert!(delete_errors("<DeleteResult/>").is_empty());
        assert!(carries("a/b c\tü.txt"));
        assert!(!carries("a\u{1}b") && !carries("a\rb") && !carries("a\u{7f}"));
    }

    #[test]
    fn complete_body_lists_parts_with_checksums() {
        let part = |number, etag: &str, sum: Option<&str>| Part {
            number,
            etag: etag.into(),
            sha256: sum.map(str::to_string),
        };
        let body = complete_body(&[part(1, "\"e1\"", Some("c1=")), part(2, "\"e2\"", None)]);
        assert!(body.contains("<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><ChecksumSHA256>c1=</ChecksumSHA256></Part>"));
        assert!(body.contains("<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>"));
        assert!(body.ends_with("</CompleteMultipartUpload>"));
    }
}

/// Generated listings: random bytes, cut and spliced answers, odd keys.
#[cfg(test)]
mod hostile {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(13),
            ..ProptestConfig::with_cases(256)
        })]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = list_page(&String::from_utf8_lossy(&bytes));
        }

        /// A real page cut anywhere, with random bytes spliced in: an
        /// answer or an error, never a panic, never a truncated page
        /// without a token.
        #[test]
        fn damaged_pages_never_panic(
            keys in prop::collection::vec("[a-z/.]{1,10}", 0..4),
            cut in any::<prop::sample::Index>(),
            junk in "\\PC{0,8}|[<>&/]{0,4}",
        ) {
            let text = page_text(&keys, true, "tok");
            let at = cut.index(text.len() + 1);
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let damaged = format!("{}{junk}{}", &text[..at], &text[at..]);
            if let Ok(page) = list_page(&damaged) {
                prop_assert!(page.next.as_deref().is_none_or(|t| !t.is_empty()));
            }
            let _ = list_page(&text[..at]);
        }

        /// Keys come back exactly as listed, whatever their characters
        /// (white space at either end included).
        #[test]
        fn odd_keys_come_back_as_listed(
            keys in prop::collection::vec(prop_oneof!["[^\\p{C}]{1,30}", " [a-z ]{0,5} "], 0..5),
            token in "[!-~]{1,20}",
        ) {
            let parsed = list_page(&page_text(&keys, true, &token));
            prop_assert!(parsed.is_ok(), "{parsed:?}", parsed = parsed.as_ref().err());
            let parsed = parsed.unwrap_or(ListPage { objects: Vec::new(), next: None });
            let listed: Vec<String> = parsed.objects.into_iter().map(|o| o.key).collect();
            prop_assert_eq!(listed, keys);
            prop_assert_eq!(parsed.next, Some(token));
        }
    }
}
