//! Where each pulled object lands, checked as the listing arrives.
//!
//! A pull maps every remote key to a local path and refuses, before the
//! object is downloaded: a key that would land outside the destination, a
//! symlink inside the destination on the way to a file (it could point
//! anywhere), two objects where one would need the other's name as a
//! directory (`a` and `a/b`), two keys that differ only in case where the
//! file system folds case (Windows, and macOS by default: `A.txt` and
//! `a.txt` are one file there), and — without --force — a file that is
//! already there. Folder markers — keys ending in `/`, which the AWS
//! console's "Create folder", s3fs, rclone and Cyberduck store — are not
//! files: they are skipped here, so they create nothing, and a remote path
//! that holds only markers is not found (yank, which never comes here,
//! deletes them with the rest). The engine admits the whole listing before
//! it writes anything, so a refused key leaves nothing behind.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::resume::Resume;
use crate::error::{Error, Result, Side};
use crate::paths;

pub struct Destination<'a> {
    remote: &'a str,
    root: &'a Path,
    force: bool,
    /// Whether names that differ only in case are one file here.
    fold_case: bool,
    /// Every file planned so far (case-folded when `fold_case`).
    files: HashSet<PathBuf>,
    /// Every directory those files need, already checked (the same).
    dirs: HashSet<PathBuf>,
    /// Where dead runs' leftovers are kept, as each directory is swept.
    resume: &'a Resume,
}

/// Whether this OS's usual file system folds case: NTFS, and APFS as macOS
/// formats it.
const FOLDS_CASE: bool = cfg!(any(windows, target_os = "macos"));

impl<'a> Destination<'a> {
    /// Pulling the remote path `remote` to `root`; each directory a file
    /// lands in is swept of dead runs' leftovers into `resume`.
    pub fn new(
        remote: &'a str,
        root: &'a Path,
        force: bool,
        resume: &'a Resume,
    ) -> Destination<'a> {
        Destination::with_case(remote, root, force, resume, FOLDS_CASE)
    }

    fn with_case(
        remote: &'a str,
        root: &'a Path,
        force: bool,
        resume: &'a Resume,
        fold_case: bool,
    ) -> Destination<'a> {
        Destination {
            remote,
            root,
            force,
            fold_case,
            files: HashSet::new(),
            dirs: HashSet::new(),
            resume,
        }
    }

    /// The local path for the object at `key`, or `None` when the key is
    /// not under the remote path (a sibling such as `dirx/` of `dir`) or is
    /// a folder marker.
    pub fn admit(&mut self, key: &str) -> Result<Option<PathBuf>> {
        if key.ends_with('/') {
            crate::log::debug(|| format!("skipping '{key}': a folder marker, not a file"));
            return Ok(None);
        }
        let Some(path) = paths::local_path_for(self.remote, key, self.root)? else {
            crate::log::debug(|| format!("skipping '{key}': not under '{}'", self.remote));
            return Ok(None);
        };
        let id = self.identity(&path).into_owned();
        if self.dirs.contains(&id) || !self.files.insert(id.clone()) {
            return Err(self.collision(&path));
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent.unwrap_or(Path::new("."));
        if let Some(file) = parent
            .ancestors()
            .find(|a| self.files.contains(self.identity(a).as_ref()))
        {
            return Err(self.collision(file));
        }
        // Directories count as checked only once the whole way up is: a
        // refused key leaves nothing that would let a later one through.
        let mut unchecked = Vec::new();
        for dir in parent.ancestors() {
            if self.dirs.contains(self.identity(dir).as_ref()) {
                break; // Checked with an earlier file, and so are its parents.
            }
            if dir != self.root && dir.starts_with(self.root) && is_symlink(dir) {
                return Err(Error::local_io(
                    "pull into",
                    dir,
                    std::io::Error::other("it is a symlink, and pulling never writes through a symlink inside the destination; remove it or pull elsewhere"),
                ));
            }
            unchecked.push(dir.to_path_buf());
        }
        if unchecked.first().is_some_and(|dir| dir == parent) {
            self.resume.sweep(parent);
        }
        let ids: Vec<PathBuf> = unchecked
            .iter()
            .map(|dir| self.identity(dir).into_owned())
            .collect();
        self.dirs.extend(ids);
        if !self.force && fs::symlink_metadata(&path).is_ok() {
            return Err(Error::AlreadyExists {
                side: Side::Local,
                path: path.display().to_string(),
            });
        }
        Ok(Some(path))
    }

    /// The path as the file system tells paths apart.
    fn identity<'p>(&self, path: &'p Path) -> Cow<'p, Path> {
        if self.fold_case {
            Cow::Owned(PathBuf::from(path.to_string_lossy().to_lowercase()))
        } else {
            Cow::Borrowed(path)
        }
    }

    fn collision(&self, path: &Path) -> Error {
        let case = if self.fold_case {
            " (names that differ only in case are one file on this system)"
        } else {
            ""
        };
        Error::Protocol(format!(
            "more than one remote object would be pulled to '{}': as a file and as a directory, or twice{case}; pull the objects one at a time",
            path.display()
        ))
    }
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// A pull's leftovers, for as long as a test runs.
#[cfg(test)]
fn resume() -> &'static Resume {
    Box::leak(Box::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "artifact-destination-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        root
    }

    #[test]
    fn maps_keys_and_skips_siblings() {
        let root = temp_root("maps");
        let mut d = Destination::new("dir", &root, false, resume());
        assert_eq!(d.admit("dir/a/b.txt").unwrap(), Some(root.join("a/b.txt")));
        assert_eq!(d.admit("dirx/c.txt").unwrap(), None);
    }

    #[test]
    fn folder_markers_are_skipped() {
        let root = temp_root("markers");
        let mut d = Destination::new("dir", &root, false, resume());
        assert_eq!(d.admit("dir/").unwrap(), None);
        assert_eq!(d.admit("dir/sub/").unwrap(), None);
        assert_eq!(d.admit("dir/sub/f").unwrap(), Some(root.join("sub/f")));
        assert!(!root.exists());
    }

    #[test]
    fn a_file_and_a_directory_of_one_name_collide_in_either_order() {
        let root = temp_root("collide");
        let mut d = Destination::new("dir", &root, true, resume());
        d.admit("dir/a").unwrap();
        assert!(matches!(d.admit("dir/a/b"), Err(Error::Protocol(_))));
        let mut d = Destination::new("dir", &root, true, resume());
        d.admit("dir/a/b").unwrap();
        assert!(matches!(d.admit("dir/a"), Err(Error::Protocol(_))));
        let mut d = Destination::new("dir", &root, true, resume());
        d.admit("dir/x/y/z").unwrap();
        assert!(matches!(d.admit("dir/x"), Err(Error::Protocol(_))));
    }

    #[test]
    fn names_that_differ_in_case_collide_where_case_folds() {
        let root = temp_root("case");
        let mut folding = Destination::with_case("dir", &root, false, resume(), true);
        assert!(folding.admit("dir/Sub/A.txt").unwrap().is_some());
        let err = folding.admit("dir/sub/a.txt").unwrap_err();
        assert!(err.to_string().contains("differ only in case"), "{err}");
        assert!(folding.admit("dir/SUB/a.txt/x").is_err());
        assert!(folding.admit("dir/sub/b.txt").unwrap().is_some());
        let mut exact = Destination::with_case("dir", &root, false, resume(), false);
        assert!(exact.admit("dir/Sub/A.txt").unwrap().is_some());
        assert!(exact.admit("dir/sub/a.txt").unwrap().is_some());
    }

    #[test]
    fn the_same_path_twice_collides() {
        let root = temp_root("twice");
        let mut d = Destination::new("", &root, true, resume());
        d.admit("a/b").unwrap();
        assert!(matches!(d.admit("a/b"), Err(Error::Protocol(_))));
    }

    #[test]
    fn an_existing_file_is_in_the_way_without_force() {
        let root = temp_root("exists");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("f"), b"x").unwrap();
        let mut d = Destination::new("dir", &root, false, resume());
        assert!(matches!(
            d.admit("dir/f"),
            Err(Error::AlreadyExists {
                side: Side::Local,
                ..
            })
        ));
        let mut forced = Destination::new("dir", &root, true, resume());
        assert!(forced.admit("dir/f").unwrap().is_some());
        fs::remove_dir_all(&root).unwrap();
    }

    /// A key through the symlink is refused however often it comes, and
    /// nothing behind the symlink is touched, not even stale temporary files.
    #[cfg(unix)]
    #[test]
    fn a_symlink_is_refused_every_time_and_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("x")).unwrap();
        // A temporary file of ours, two days old: stale wherever it is.
        let name = ".artifact-tmp~elsewhere~1~1~0~f";
        assert!(crate::atomic::TempName::parse(name).is_some());
        let stale = outside.join("x").join(name);
        fs::write(&stale, b"not ours to delete").unwrap();
        let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let mut d = Destination::new("dir", &root, true, resume());
        assert!(d.admit("dir/link/x/f").is_err());
        assert!(d.admit("dir/link/x/g").is_err());
        assert!(stale.exists(), "a file behind the symlink was removed");
    }
}

/// Generated hostile listings against a destination holding a symlink.
#[cfg(all(test, unix))]
mod hostile {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    use super::*;
    use crate::paths::hostile::key;

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(12),
            ..ProptestConfig::with_cases(256)
        })]

        /// Whatever keys come, in whatever order: every admitted path is
        /// inside the destination, none goes through the symlink, none is
        /// admitted twice, and no file is another's directory (`a`, `a/b`).
        /// A refused key does not stop the checks of later ones.
        #[test]
        fn admitted_paths_stay_inside_and_off_symlinks(
            keys in prop::collection::vec(
                (prop::sample::select(vec!["", "dir/", "dir/link/", "dir/real/", "dir/a/"]), key())
                    .prop_map(|(under, k)| format!("{under}{k}")),
                1..16,
            ),
            force in any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let root = tmp.path().join("dest");
            let outside = tmp.path().join("outside");
            fs::create_dir_all(root.join("real")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            fs::create_dir_all(outside.join("a")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            std::os::unix::fs::symlink(&outside, root.join("link"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut destination = Destination::new("dir", &root, force, resume());
            let mut admitted: Vec<PathBuf> = Vec::new();
            for key in &keys {
                let Ok(Some(path)) = destination.admit(key) else { continue };
                prop_assert!(path.starts_with(&root), "{key:?} -> {path:?}");
                for dir in path.ancestors().skip(1).take_while(|d| *d != root) {
                    prop_assert!(!is_symlink(dir), "{key:?} -> {path:?} goes through {dir:?}");
                }
                for earlier in &admitted {
                    prop_assert!(
                        !earlier.starts_with(&path) && !path.starts_with(earlier),
                        "{key:?} -> {path:?} collides with {earlier:?}"
                    );
                }
                admitted.push(path);
            }
        }
    }
}
