//! The words users see when a command ends, in the Go CLI's wording.
//!
//! CI scripts grep for these lines (`Successfully pushed artifact for current
//! job.`, `Pushed 3 files. Total of 1.2 MB`), so the lines that end a command
//! are written here: the success summaries of push, pull and yank, the
//! failure line (`Error pushing artifact: …`, or `error: …` for usage and
//! configuration errors), the notices about `--config` and `--expire-in`
//! (the Go CLI's lines, then on the S3 and local backends one of our own
//! pointing to README's retention section), and `format_bytes`. With --skip-unchanged, a line of our own follows the
//! summary: `Skipped 3 unchanged files.`, counted apart from what moved.
//! Warnings met on the way are printed where they arise, through `log`: a
//! skipped file or symlink (`transfer::walk`), an empty
//! directory or an upload that could not be aborted (`transfer::push`), a
//! store that refuses checksum headers (`backend::s3::upload`), an SSO token
//! cache that cannot be rewritten (`aws::credentials::sso`), the exit on a
//! second signal (`interrupt`), --skip-unchanged with the Hub and a listing
//! that failed it (`main`, `transfer::unchanged`).

use crate::cli::Op;
use crate::error::Error;
use crate::log;
use crate::paths::Level;
use crate::progress::format_bytes;
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
    }
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
}
