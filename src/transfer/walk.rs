//! What a push sends: the files under a local path, with their remote keys.
//!
//! The rules, the same for every backend:
//! - a file is one object; a directory is every file below it, hidden files
//!   included, sorted by path;
//! - a symlink to a file is read through (its content is pushed under the
//!   link's name); a symlink to a directory is followed, unless it points at
//!   a directory already being walked (a loop), which is skipped with a
//!   warning; a dangling symlink is skipped with a warning;
//! - FIFOs, sockets and devices inside a directory are skipped with a
//!   warning; given as PATH itself they are an error;
//! - empty directories have no object (stores have no directories); empty
//!   files are objects of 0 bytes;
//! - names must be UTF-8, since keys are, and a pull must be able to write
//!   them back: a name with a control character (a newline…) is refused,
//!   naming the file, before anything is sent (`check_key`);
//! - temporary files that an unfinished pull left (`atomic`'s naming) are
//!   skipped with a warning: they are never artifacts.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::{atomic, log, paths};

/// One file to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub local: PathBuf,
    pub key: String,
    pub size: u64,
    /// Permission bits, where the system has them.
    pub mode: Option<u32>,
}

/// The files under `source`, with keys under `remote`.
pub fn walk(source: &Path, remote: &str) -> Result<Vec<Item>> {
    let meta = fs::metadata(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::local_io(
                "push",
                source,
                std::io::Error::new(e.kind(), "the path does not exist locally"),
            )
        } else {
            Error::local_io("read", source, e)
        }
    })?;
    if meta.is_file() {
        check_key(remote, source)?;
        return Ok(vec![Item {
            local: source.to_path_buf(),
            key: remote.to_string(),
            size: meta.len(),
            mode: atomic::permission_bits(&meta),
        }]);
    }
    if !meta.is_dir() {
        return Err(Error::local_io(
            "push",
            source,
            std::io::Error::other("not a regular file or directory (a FIFO, socket or device cannot be pushed; pipe it into 'artifact push ... - -d NAME' instead)"),
        ));
    }
    let mut items = Vec::new();
    let mut ancestors = vec![dir_id(source, &meta)];
    walk_dir(source, remote, &mut ancestors, &mut items)?;
    Ok(items)
}

fn walk_dir(
    dir: &Path,
    key: &str,
    ancestors: &mut Vec<DirId>,
    items: &mut Vec<Item>,
) -> Result<()> {
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::local_io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::local_io("read directory", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| {
            Error::local_io(
                "push",
                &path,
                std::io::Error::other(
                    "the name is not valid UTF-8, which object keys must be; rename it",
                ),
            )
        })?;
        names.push((name, path));
    }
    names.sort();
    for (name, path) in names {
        if atomic::is_temp_name(&name) {
            log::info(&format!(
                "Warning: skipping '{}': a temporary file of an unfinished artifact pull, not an artifact.",
                path.display()
            ));
            continue;
        }
        let child_key = format!("{key}/{name}");
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if is_link(&path) => {
                log::info(&format!(
                    "Warning: skipping '{}': the symlink points nowhere ({e}).",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(Error::local_io("read", &path, e)),
        };
        if meta.is_file() {
            check_key(&child_key, &path)?;
            items.push(Item {
                local: path,
                key: child_key,
                size: meta.len(),
                mode: atomic::permission_bits(&meta),
            });
        } else if meta.is_dir() {
            let id = dir_id(&path, &meta);
            if ancestors.contains(&id) {
                log::info(&format!(
                    "Warning: skipping '{}': the symlink loops back to a directory being pushed.",
                    path.display()
                ));
                continue;
            }
            ancestors.push(id);
            walk_dir(&path, &child_key, ancestors, items)?;
            ancestors.pop();
        } else {
            log::info(&format!(
                "Warning: skipping '{}': not a regular file or directory.",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Refuses, naming the file at `local`, a key that no pull could write
/// (`paths::unwritable_segment`): what a push accepts, a pull gives back.
pub fn check_key(key: &str, local: &Path) -> Result<()> {
    let Some(why) = key.split('/').find_map(paths::unwritable_segment) else {
        return Ok(());
    };
    // The name as one line, its control characters escaped.
    let shown: String = local
        .to_string_lossy()
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_debug().to_string(),
            false => c.to_string(),
        })
        .collect();
    Err(Error::local_io(
        "push",
        Path::new(&shown),
        std::io::Error::other(format!(
            "its name holds {why}, which no pull could write; rename it"
        )),
    ))
}

/// What tells a directory from every other, to see a symlink that loops
/// back to a directory being walked: device and inode on Unix; elsewhere
/// (Windows: std has no stable file index) the canonical path, which
/// resolves every symlink and junction on the way.
#[cfg(unix)]
type DirId = (u64, u64);
#[cfg(not(unix))]
type DirId = PathBuf;

#[cfg(unix)]
fn dir_id(_path: &Path, meta: &fs::Metadata) -> DirId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_id(path: &Path, _meta: &fs::Metadata) -> DirId {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn a_file_is_one_item() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, b"abc").unwrap();
        let mode = atomic::permission_bits(&fs::metadata(&f).unwrap());
        let items = walk(&f, "r/a.txt").unwrap();
        assert_eq!(
            items,
            vec![Item {
                local: f,
                key: "r/a.txt".into(),
                size: 3,
                mode,
            }]
        );
    }

    #[test]
    fn directories_hidden_files_empty_files_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("sub/deeper")).unwrap();
        fs::create_dir_all(d.join("empty")).unwrap();
        fs::write(d.join(".hidden"), b"h").unwrap();
        fs::write(d.join("sub/deeper/x"), b"xx").unwrap();
        fs::write(d.join("zero"), b"").unwrap();
        fs::write(d.join("sub/.artifact-tmp~host~1~0~x"), b"partial").unwrap();
        let items = walk(d, "r").unwrap();
        assert_eq!(keys(&items), vec!["r/.hidden", "r/sub/deeper/x", "r/zero"]);
        assert_eq!(items[2].size, 0);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_files_dirs_loops_and_dangling() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("root");
        fs::create_dir_all(d.join("real")).unwrap();
        fs::write(d.join("real/f"), b"f").unwrap();
        symlink(d.join("real/f"), d.join("file-link")).unwrap();
        symlink(d.join("real"), d.join("dir-link")).unwrap();
        symlink(&d, d.join("real/loop")).unwrap();
        symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        let items = walk(&d, "r").unwrap();
        assert_eq!(
            keys(&items),
            vec!["r/dir-link/f", "r/file-link", "r/real/f"]
        );
    }

    #[test]
    fn names_no_pull_could_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/ok.txt"), b"ok").unwrap();
        fs::write(d.join("sub/line\nbreak.txt"), b"x").unwrap();
        let err = walk(d, "r").unwrap_err();
        assert_eq!(err.exit_code(), 8);
        let text = err.to_string();
        assert!(text.contains("sub/line\\nbreak.txt'"), "{text}");
        assert!(text.contains("a control character"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        // The key counts, not the local name: given as the source itself
        // the file keeps its name, and a destination key renames it.
        let odd = d.join("sub/line\nbreak.txt");
        let err = walk(&odd, "r/line\nbreak.txt").unwrap_err();
        assert!(err.to_string().contains("line\\nbreak.txt"), "{err}");
        assert_eq!(keys(&walk(&odd, "r/x").unwrap()), vec!["r/x"]);
        assert!(walk(&d.join("sub/ok.txt"), "r/a\tb").is_err());
        // A backslash is an ordinary character of a Unix name.
        fs::remove_file(d.join("sub/line\nbreak.txt")).unwrap();
        fs::write(d.join("sub/back\\slash.txt"), b"b").unwrap();
        let items = walk(d, "r").unwrap();
        assert_eq!(keys(&items), vec!["r/sub/back\\slash.txt", "r/sub/ok.txt"]);
    }

    #[test]
    fn missing_and_special_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = walk(&dir.path().join("missing"), "r").unwrap_err();
        assert_eq!(err.exit_code(), 8);
        assert!(err.to_string().contains("does not exist locally"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_an_error() {
        let err = walk(Path::new("/dev/null"), "r").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
