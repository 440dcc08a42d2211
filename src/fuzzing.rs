//! The promises of the parsers that read what others wrote — a store's
//! answers, files found on disk, keys — as checks that panic when one is
//! broken. Each check takes any bytes. The fuzz targets in `fuzz/` run
//! them on generated inputs (`make fuzz`), and `the_corpus_keeps_every_promise`
//! runs them on the committed corpus (`fuzz/corpus/<target>/`) in every
//! `cargo test`, with no instrumented build.

use std::path::{Component, Path};

use serde_json::Value;

use crate::atomic::{self, TempName};
use crate::aws::xml;
use crate::backend::hub::{self, Kind};
use crate::paths;
use crate::transfer::journal::{self, Spans};

/// A check: panics when the input makes a parser break a promise.
pub type Check = fn(&[u8]);

/// Each fuzz target's name (its file in `fuzz/fuzz_targets/` and its
/// directory in `fuzz/corpus/`) and its check.
pub const TARGETS: [(&str, Check); 6] = [
    ("list_objects", list_objects),
    ("error_xml", error_xml),
    ("hub_answer", hub_answer),
    ("journal", journal),
    ("temp_name", temp_name),
    ("local_path", local_path),
];

/// A ListObjectsV2 page: a page that is read has a token exactly when it
/// is truncated, and no empty ETag; and keys written into a page, as S3
/// escapes them, are read back exactly, white space and all.
pub fn list_objects(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(page) = xml::list_page(&text) {
        assert!(page.next.as_deref().is_none_or(|t| !t.is_empty()));
        assert!(page
            .objects
            .iter()
            .all(|o| o.etag.as_deref().is_none_or(|e| !e.is_empty())));
    }
    // The same bytes as keys, one per NUL-separated field, where XML can
    // carry them (S3 lists other keys only URL-encoded).
    let keys: Vec<String> = text
        .split('\0')
        .filter(|k| !k.is_empty() && xml::carries(k))
        .map(str::to_string)
        .collect();
    let token = keys.first().map_or("t", String::as_str);
    let page = xml::list_page(&xml::page_text(&keys, true, token));
    let page = page.unwrap_or_else(|e| panic!("a page we wrote is refused: {e}"));
    let listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(listed, keys);
    assert_eq!(page.next.as_deref(), Some(token));
}

/// S3's and STS's error documents, read by `xml::tag`: what is found has
/// no white space at either end and is what was escaped into the element;
/// an error document starts with `<Error>`; DeleteObjects' errors name
/// the key each holds.
pub fn error_xml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["Code", "Message", "Key"] {
        if let Some(value) = xml::tag(&text, name) {
            assert_eq!(value, value.trim());
        }
    }
    if xml::is_error_document(&text) {
        assert!(text.contains("<Error>"));
    }
    assert!(xml::delete_errors(&text).len() <= text.matches("<Error>").count());
    // The bytes as the element's text: read back as written.
    let escaped = xml::escape(&text);
    let document = format!("<?xml version=\"1.0\"?>\n<Error><Code>{escaped}</Code></Error>");
    assert!(xml::is_error_document(&document));
    assert_eq!(xml::tag(&document, "Code").as_deref(), Some(text.trim()));
    let answer = format!("<DeleteResult><Error><Key>{escaped}</Key></Error></DeleteResult>");
    let errors = xml::delete_errors(&answer);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, text.trim());
}

/// The Hub's answer, `{"urls":[…],"error":""}`, for the request kind the
/// first byte picks: URLs are taken only from an answer without an error,
/// each the `url` of the listed entry at its place, none left out; a
/// missing path (exit 4) only for pull and yank.
pub fn hub_answer(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let kind = [Kind::Push, Kind::PushForce, Kind::Pull, Kind::Yank][usize::from(first % 4)];
    let text = String::from_utf8_lossy(rest);
    hub_answer_promises(&text, kind);
}

/// `hub_answer`'s promises for the answer `text` to a request of `kind`.
pub(crate) fn hub_answer_promises(text: &str, kind: Kind) {
    let answer = hub::parse_answer(text, kind, &["p".to_string()]);
    let value = serde_json::from_str::<Value>(text);
    let urls = match answer {
        Ok(urls) => urls,
        Err(e) => {
            assert!(e.exit_code() != 4 || matches!(kind, Kind::Pull | Kind::Yank));
            return;
        }
    };
    let value = value.unwrap_or_else(|e| panic!("an answer that is not JSON is taken: {e}"));
    let error = value.get("error").and_then(Value::as_str);
    assert!(error.is_none_or(str::is_empty), "{error:?}");
    let listed = match value.get("urls") {
        Some(Value::Array(listed)) => listed.as_slice(),
        None | Some(Value::Null) => &[],
        Some(other) => panic!("'urls' taken from {other}"),
    };
    assert_eq!(urls.len(), listed.len());
    for (url, entry) in urls.iter().zip(listed) {
        assert_eq!(
            Some(url.url.as_str()),
            entry.get("url").and_then(Value::as_str)
        );
    }
}

/// A journal found on disk: its spans are sorted, disjoint, within the
/// object's size and at most `MAX_SPANS`; with the spans missing they
/// cover the object once; written back, it reads the same.
pub fn journal(data: &[u8]) {
    let Some((header, spans)) = journal::read(data) else {
        return;
    };
    let size = header.size;
    assert!(spans.len() <= journal::MAX_SPANS);
    assert_sorted_within(&spans, size);
    let missing = journal::missing(&spans, size);
    assert_sorted_within(&missing, size);
    let mut all: Spans = spans.iter().chain(&missing).copied().collect();
    all.sort_unstable();
    assert!(all.windows(2).all(|w| w[0].1 == w[1].0), "{all:?}");
    assert_eq!(all.iter().map(|s| s.1 - s.0).sum::<u64>(), size);
    let prefix = spans.first().filter(|s| s.0 == 0).map_or(0, |s| s.1);
    assert_eq!(journal::prefix(&spans, size), prefix);
    if let Some(mut text) = header.text() {
        for (from, to) in &spans {
            text.push_str(&format!("{from} {to}\n"));
        }
        assert_eq!(journal::read(text.as_bytes()), Some((header, spans)));
    }
}

/// Sorted, each non-empty and within `0..size`, with a gap between two.
fn assert_sorted_within(spans: &[(u64, u64)], size: u64) {
    assert!(spans.iter().all(|&(from, to)| from < to && to <= size));
    assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
}

/// A temporary file's name: one that parses is written back exactly as
/// read, keeps a destination name that is one path segment, and parses
/// as well with or without its journal mark; and every name this process
/// makes for a destination, the sweep recognises.
pub fn temp_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(name) = TempName::parse(text) {
        assert_eq!(name.to_string(), text);
        assert!(atomic::is_temp_name(text));
        let dest = name.dest_name();
        assert!(!dest.is_empty() && !dest.contains('/'), "{dest:?}");
        for journal in [false, true] {
            let other = name.with_journal(journal);
            assert_eq!(TempName::parse(&other.to_string()), Some(other));
        }
    }
    if !text.contains('/') {
        let fresh = TempName::fresh(text);
        assert_eq!(TempName::parse(&fresh.to_string()).as_ref(), Some(&fresh));
        assert!(text.starts_with(fresh.dest_name()) || text.is_empty());
    }
}

/// Key to local path: the bytes are the remote path and the key (split at
/// the first NUL; without one, the key under `r/d`). A key never lands
/// outside the destination, nor on a name with `..`, a control character
/// or (for Windows) a backslash or a name Windows cannot hold; and every
/// key a push accepts, a pull on the same system writes.
pub fn local_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (root, key) = text.split_once('\0').unwrap_or(("r/d", &text));
    for windows in [false, true] {
        local_path_promises(root, key, windows);
    }
}

/// `local_path`'s promises for `key` listed under `root`, by the rules of
/// Windows or of Unix.
pub(crate) fn local_path_promises(root: &str, key: &str, windows: bool) {
    let local_root = Path::new("/dest/root");
    let result = paths::local_path_on(root, key, local_root, windows);
    let rest = match key.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
        _ if key == root => Some(""),
        Some(rest) => Some(rest),
        None if root.is_empty() => Some(key),
        None => None,
    };
    let writable = |segment: &str| {
        paths::unwritable_segment(segment).is_none()
            && !(windows
                && (segment.contains('\\') || paths::windows_name_problem(segment).is_some()))
    };
    match (&result, rest) {
        (Ok(None), None) => return,
        (Ok(None), Some(_)) | (_, None) => panic!("{key:?} under {root:?}: {result:?}"),
        (_, Some(rest)) if rest.is_empty() || rest.split('/').all(writable) => {
            assert!(matches!(result, Ok(Some(_))), "{key:?} refused: {result:?}")
        }
        (_, Some(_)) => assert!(result.is_err(), "{key:?} taken: {result:?}"),
    }
    let Ok(Some(path)) = result else {
        return;
    };
    let tail = path.strip_prefix(local_root);
    let tail = tail.unwrap_or_else(|_| panic!("{key:?} -> {path:?}"));
    // Only the remote path itself (or its folder marker `root/`) lands on
    // the destination itself.
    assert!(
        !tail.as_os_str().is_empty() || key == root || key.strip_suffix('/') == Some(root),
        "{key:?} -> {path:?}"
    );
    for part in tail.components() {
        let Component::Normal(name) = part else {
            panic!("{key:?} -> {path:?}: {part:?}");
        };
        let name = name.to_string_lossy();
        assert!(writable(&name), "{key:?} -> {path:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed input of every target, through the target's check.
    /// A target without a corpus fails: nothing is skipped.
    #[test]
    fn the_corpus_keeps_every_promise() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (target, check) in TARGETS {
            let dir = corpus.join(target);
            let inputs: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.unwrap().path())
                .collect();
            assert!(!inputs.is_empty(), "{} is empty", dir.display());
            for input in inputs {
                let data = std::fs::read(&input).unwrap();
                let run = std::panic::catch_unwind(|| check(&data));
                assert!(run.is_ok(), "{} breaks a promise", input.display());
            }
        }
    }

    /// The fuzz targets are the ones `fuzz/Cargo.toml` builds.
    #[test]
    fn every_target_is_a_fuzz_target() {
        let manifest = include_str!("../fuzz/Cargo.toml");
        for (target, _) in TARGETS {
            assert!(
                manifest.contains(&format!("path = \"fuzz_targets/{target}.rs\"")),
                "{target}"
            );
        }
    }
}
