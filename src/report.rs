//! The words users see when a command ends, in the Go CLI's wording.
//!
//! CI scripts grep for these lines (`Successfully pushed artifact for current
//! job.`, `Pushed 3 files. Total of 1.2 MB`), so the lines that end a command
//! are written here: the success summaries of push, pull and yank, the
//! failure line (`Error pushing artifact: …`, or `error: …` for usage and
//! configuration errors), the notices about `--config` and `--expire-in`
//! (the Go CLI's lines, then on the S3 and local backends one of our own
//! pointing to README's retention section), `format_bytes`, and the lines
//! `list` prints on stdout (`listing_line`). With --skip-unchanged, a line of our own follows the
//! summary: `Skipped 3 unchanged files.`, counted apart from what moved.
//! Warnings met on the way are printed where they arise, through `log`: a
//! skipped file or symlink (`transfer::walk`), an empty
//! directory or an upload that could not be aborted (`transfer::push`), a
//! store that refuses checksum headers (`backend::s3::upload`), an SSO token
//! cache that cannot be rewritten (`aws::credentials::sso`), the exit on a
//! second signal (`interrupt`), --skip-unchanged with the Hub and a listing
//! that failed it (`main`, `transfer::unchanged`).

use crate::backend::RemoteObject;
use crate::cli::Op;
use crate::error::Error;
use crate::log;
use crate::paths::Level;
use crate::progress::format_bytes;
use crate::time;
use crate::transfer::Totals;

fn count(totals: Totals) -> String {
    let noun = if totals.files == 1 { "file" } else { "files" };
    format!(
        "{} {noun}. Total of {}",
        totals.files,
        format_bytes(totals.bytes)
    )
}

pub fn pushed(level: Level, local: &str, remote: &str, totals: Totals) {
    log::info(&format!(
        "Successfully pushed artifact for current {}.",
        level.name()
    ));
    log::info(&format!("* Local source: {local}."));
    log::info(&format!("* Remote destination: {remote}."));
    log::info(&format!("Pushed {}", count(totals)));
    skipped(totals);
}

pub fn pulled(level: Level, remote: &str, local: &str, totals: Totals) {
    log::info(&format!(
        "Successfully pulled artifact for current {}.",
        level.name()
    ));
    log::info(&format!("* Remote source: '{remote}'."));
    log::info(&format!("* Local destination: '{local}'."));
    log::info(&format!("Pulled {}", count(totals)));
    skipped(totals);
}

/// `Skipped M unchanged files.`, when any were.
fn skipped(totals: Totals) {
    if totals.skipped > 0 {
        let noun = if totals.skipped == 1 { "file" } else { "files" };
        log::info(&format!("Skipped {} unchanged {noun}.", totals.skipped));
    }
}

pub fn yanked(level: Level, remote: &str) {
    log::info(&format!(
        "Successfully yanked '{remote}' from current {} artifacts.",
        level.name()
    ));
}

/// The Go CLI's warning for `--expire-in`, on stdout as it prints it.
pub fn expire_in_is_obsolete() {
    println!();
    println!("WARNING: The --expire-in flag is obsolete and will have no efffect.");
    println!("Use artifact retention policies to control the lifetime of artifacts.");
    println!(
        "Docs: https://docs.semaphoreci.com/essentials/artifacts/#artifact-retention-policies"
    );
    println!();
}

/// After the Go CLI's `--expire-in` lines, on a store of the user's own,
/// which no Semaphore retention policy reaches: where to set one up.
pub fn expire_in_on_own_store() {
    log::info("Warning: Semaphore's retention policies do not reach this store; README's \"Retention on your own store\" (under \"S3 backend\") shows how to expire artifacts there.");
}

pub fn config_file_ignored(path: &str) {
    log::info(&format!(
        "Warning: --config '{path}' is ignored; artifact is configured through environment variables only."
    ));
}

/// Prints a failed command's error the way the Go CLI does.
pub fn failure(op: Option<Op>, err: &Error) {
    match (op, err) {
        (_, Error::Usage(_) | Error::Config(_)) | (None, _) => eprintln!("error: {err}"),
        (Some(Op::Push), _) => log::info(&format!("Error pushing artifact: {err}")),
        (Some(Op::Pull), _) => {
            log::info(&format!("Error pulling artifact: {err}"));
            log::info("Please check if the artifact you are trying to pull exists.");
        }
        (Some(Op::Yank), _) => {
            log::info(&format!("Error yanking artifact: {err}"));
            log::info("Please check if the artifact you are trying to yank exists.");
        }
        (Some(Op::List), _) => {
            log::info(&format!("Error listing artifact: {err}"));
            log::info("Please check if the artifact you are trying to list exists.");
        }
    }
}

/// One line of `list` for `object`, shown as `name` (its path relative to
/// the level): `SIZE<TAB>TIME<TAB>NAME`, `-` for what the store does not
/// state, control characters (and `\`) escaped so that one object is one
/// line; with `json`, an object of `path`, and `size` and `modified` where
/// known.
pub fn listing_line(object: &RemoteObject, name: &str, json: bool) -> String {
    let modified = object.modified.map(time::format_rfc3339);
    if json {
        let mut line = serde_json::Map::new();
        line.insert("path".into(), name.into());
        if let Some(size) = object.size {
            line.insert("size".into(), size.into());
        }
        if let Some(modified) = modified {
            line.insert("modified".into(), modified.into());
        }
        return serde_json::Value::Object(line).to_string();
    }
    let size = object.size.map_or("-".to_string(), |s| s.to_string());
    let modified = modified.unwrap_or_else(|| "-".to_string());
    format!("{size}\t{modified}\t{}", escape_controls(name))
}

/// `name` with `\` and every control character written as an escape
/// (`\n`, `\t`, `\u{1b}`).
fn escape_controls(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_pluralised() {
        let totals = |files, bytes| Totals {
            files,
            bytes,
            skipped: 0,
        };
        assert_eq!(count(totals(1, 5)), "1 file. Total of 5 B");
        assert_eq!(count(totals(3, 1229)), "3 files. Total of 1.2 KB");
        assert_eq!(count(totals(0, 0)), "0 files. Total of 0 B");
    }

    #[test]
    fn listing_lines() {
        let object = |size, modified| RemoteObject {
            key: "k".into(),
            size,
            locator: "k".into(),
            etag: None,
            modified,
        };
        let at = time::parse_iso8601("2024-05-01T12:30:00.250Z");
        let stored = object(Some(5), at);
        assert_eq!(
            listing_line(&stored, "d/a.txt", false),
            "5\t2024-05-01T12:30:00Z\td/a.txt"
        );
        let json = |line: String| serde_json::from_str::<serde_json::Value>(&line).unwrap();
        assert_eq!(
            json(listing_line(&stored, "d/a.txt", true)),
            serde_json::json!({"path": "d/a.txt", "size": 5, "modified": "2024-05-01T12:30:00Z"})
        );
        let hub = object(None, None);
        assert_eq!(
            listing_line(&hub, "a\nb\t\\c", false),
            "-\t-\ta\\nb\\t\\\\c"
        );
        assert_eq!(
            json(listing_line(&hub, "a\nb", true)),
            serde_json::json!({"path": "a\nb"})
        );
    }
}
