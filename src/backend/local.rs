//! A store that is a directory: a shared volume, or a temp dir to try things.
//!
//! Each object is a plain file at `$ARTIFACT_LOCAL_DIR/<key>`, written through
//! a temporary file and a rename (or, without --force, a hard link, which
//! cannot replace a file: two racing pushes cannot both win). It needs no
//! server and no account, which makes it what `make demo` runs and the
//! fastest real backend for testing the transfer engine. A stored file keeps
//! the pushed file's permission bits, and gives them back on pull.
//! `stat` states a stored file's permission bits as its mode, and its MD5 as
//! a quoted hex ETag, as S3 states a single PUT's: computed when asked, by
//! reading the file (what `--skip-unchanged` compares with).
//! A directory is listed as S3 lists a prefix: in the byte order of the
//! keys, `LIST_PAGE` files a page, the token being the last key given, so a
//! listing of any size holds one page in memory.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::{
    Attempt, Backend, Body, ByteRange, Download, Intent, Page, RemoteObject, Stated, Upload,
};
use crate::atomic::{self, Mode, TempFile};
use crate::config::Env;
use crate::error::{Error, Result, Side};
use crate::{checksum, log};

/// Files per page of a listing, as S3's default.
const LIST_PAGE: usize = 1000;

pub struct Local {
    root: PathBuf,
}

impl Local {
    pub fn from_env(env: &Env) -> Result<Local> {
        let dir = env.get("ARTIFACT_LOCAL_DIR").ok_or_else(|| {
            Error::Config(
                "ARTIFACT_LOCAL_DIR is not set: ARTIFACT_BACKEND=local stores artifacts in that directory".into(),
            )
        })?;
        let root = PathBuf::from(dir);
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Local { root }),
            Ok(_) => Err(Error::Config(format!(
                "ARTIFACT_LOCAL_DIR='{dir}' is not a directory"
            ))),
            Err(e) => Err(Error::Config(format!(
                "ARTIFACT_LOCAL_DIR='{dir}' cannot be used: {e}; create the directory first"
            ))),
        }
    }

    /// The file of `key`: `$ARTIFACT_LOCAL_DIR/<key>`, built one plain name
    /// at a time, so no `..`, absolute part, empty segment or (on Windows)
    /// drive or `\` can take it outside the store; and no directory below
    /// the store's own may be a symlink, which could lead outside it.
    fn path_of(&self, key: &str) -> Result<PathBuf> {
        let mut path = self.root.clone();
        for segment in key.split('/') {
            let mut parts = Path::new(segment).components();
            match (parts.next(), parts.next()) {
                (Some(Component::Normal(name)), None) if name == segment => path.push(name),
                _ => {
                    return Err(Error::Protocol(format!(
                        "refusing key '{}': its path would leave ARTIFACT_LOCAL_DIR",
                        key.escape_debug()
                    )))
                }
            }
        }
        self.refuse_symlinks(&path)?;
        Ok(path)
    }

    /// Refuses `path` when it, or a directory between it and the store's
    /// root, is a symlink: the store writes, reads and deletes only real
    /// files and directories of its own. What does not exist yet cannot be
    /// one; what appears between this check and the use is the window left
    /// (see README, "Local backend").
    fn refuse_symlinks(&self, path: &Path) -> Result<()> {
        let Ok(below) = path.strip_prefix(&self.root) else {
            return Ok(());
        };
        let mut walked = self.root.clone();
        for part in below.components() {
            walked.push(part);
            match fs::symlink_metadata(&walked) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::Protocol(format!(
                        "refusing '{}' in the local store: it is a symbolic link, which could lead outside ARTIFACT_LOCAL_DIR; remove it",
                        walked.display()
                    )))
                }
                Ok(_) => {}
                // Nothing there (yet): nothing below it can be a link.
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// The files under `dir` whose keys sort after `after`, in key order,
    /// until `out` holds `LIST_PAGE`. A directory whose every key sorts
    /// before `after` is not read.
    fn walk(
        &self,
        dir: &Path,
        key: &str,
        after: Option<&str>,
        out: &mut Vec<RemoteObject>,
    ) -> Result<()> {
        let entries =
            fs::read_dir(dir).map_err(|e| Error::local_io("read the store directory", dir, e))?;
        let mut children: Vec<(String, fs::Metadata)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::local_io("read the store directory", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if atomic::is_temp_name(name) {
                continue;
            }
            let meta = fs::symlink_metadata(entry.path())
                .map_err(|e| Error::local_io("read", &entry.path(), e))?;
            if meta.file_type().is_symlink() {
                log::info(&format!(
                    "Warning: skipping '{key}/{name}' in the local store: it is a symbolic link, which could lead outside ARTIFACT_LOCAL_DIR"
                ));
                continue;
            }
            children.push((name.to_string(), meta));
        }
        // A directory's keys go on with '/': sorted so, siblings come in
        // the byte order of the keys ("a-b" before "a/c").
        let sort_name = |(name, meta): &(String, fs::Metadata)| match meta.is_dir() {
            true => format!("{name}/"),
            false => name.clone(),
        };
        children.sort_by_cached_key(sort_name);
        for (name, meta) in children {
            if out.len() >= LIST_PAGE {
                break;
            }
            let child_key = format!("{key}/{name}");
            let child = dir.join(&name);
            if meta.is_dir() {
                let under = format!("{child_key}/");
                if after.is_some_and(|a| under.as_str() < a && !a.starts_with(&under)) {
                    continue;
                }
                self.walk(&child, &child_key, after, out)?;
            } else if meta.is_file() && after.is_none_or(|a| child_key.as_str() > a) {
                out.push(RemoteObject {
                    locator: child_key.clone(),
                    key: child_key,
                    size: Some(meta.len()),
                    etag: None,
                    modified: meta.modified().ok(),
                });
            }
        }
        Ok(())
    }
}

impl Backend for Local {
    /// A file at `key`; a directory is no object.
    fn exists(&self, key: &str) -> Result<bool> {
        Ok(fs::symlink_metadata(self.path_of(key)?).is_ok_and(|m| !m.is_dir()))
    }

    fn put(&self, upload: &Upload, body: &Body<'_>, _attempt: &mut Attempt) -> Result<()> {
        let dest = self.path_of(&upload.locator)?;
        let mode = upload.mode.map_or(Mode::Default, Mode::Exact);
        let mut temp = TempFile::create(&dest)?;
        io::copy(&mut body.reader(), temp.file())
            .map_err(|e| Error::local_io("write", &dest, e))?;
        temp.commit(&dest, mode, upload.overwrite, &upload.key, Side::Remote)
    }

    fn list_page(&self, key: &str, _intent: Intent, token: Option<&str>) -> Result<Page> {
        let path = self.path_of(key)?;
        let mut out = Vec::new();
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => out.push(RemoteObject {
                key: key.to_string(),
                size: Some(m.len()),
                locator: key.to_string(),
                etag: None,
                modified: m.modified().ok(),
            }),
            Ok(m) if m.is_dir() => self.walk(&path, key, token, &mut out)?,
            _ => {}
        }
        let next = match out.len() >= LIST_PAGE {
            true => out.last().map(|o| o.key.clone()),
            false => None,
        };
        Ok(Page { objects: out, next })
    }

    fn stat(&self, object: &RemoteObject) -> Result<Stated> {
        let path = self.path_of(&object.locator)?;
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(object.key.clone()))
            }
            Err(e) => return Err(Error::local_io("read", &path, e)),
        };
        let parts = checksum::file_parts(&path, meta.len(), meta.len(), true)?;
        let md5 = parts
            .first()
            .and_then(|p| p.md5)
            .map(|md5| crate::checksum::hex(&md5));
        Ok(Stated {
            etag: md5.map(|hex| format!("\"{hex}\"")),
            mode: atomic::permission_bits(&meta),
            ..Stated::default()
        })
    }

    fn get(&self, object: &RemoteObject, range: ByteRange<'_>) -> Result<Download<'_>> {
        let path = self.path_of(&object.locator)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(object.key.clone()))
            }
            Err(e) => return Err(Error::local_io("open", &path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::local_io("read", &path, e))?;
        let size = meta.len();
        let from = range.from.min(size);
        file.seek(SeekFrom::Start(from))
            .map_err(|e| Error::local_io("read", &path, e))?;
        let length = range.len.map_or(size - from, |len| len.min(size - from));
        let mut download =
            Download::new(Box::new(io::Read::take(file, length)), from, Some(length));
        download.mode = atomic::permission_bits(&meta);
        Ok(download)
    }

    /// Removes the file, and the directories it leaves empty (up to the
    /// store's root): a store has no directories, so a file may take the
    /// name of a tree that was deleted.
    fn delete(&self, object: &RemoteObject) -> Result<()> {
        let path = self.path_of(&object.locator)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::local_io("delete", &path, e)),
        }
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
            // Not empty (or not ours to remove): the tree goes on.
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Local) {
        let dir = tempfile::tempdir().unwrap();
        let local = Local {
            root: dir.path().join("store"),
        };
        fs::create_dir(&local.root).unwrap();
        (dir, local)
    }

    #[test]
    fn keys_map_to_plain_names_under_the_root() {
        let (_dir, local) = store();
        assert_eq!(
            local.path_of("artifacts/jobs/1/a.txt").unwrap(),
            local
                .root
                .join("artifacts")
                .join("jobs")
                .join("1")
                .join("a.txt")
        );
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            ".",
            "a/./b",
            "..",
            "artifacts/jobs/../../x",
        ] {
            assert!(local.path_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listings_come_in_pages_in_key_byte_order() {
        let (_dir, local) = store();
        let mut keys = vec![
            "d/a-b".to_string(),
            "d/a/c".to_string(),
            "d/a.x".to_string(),
        ];
        keys.extend((0..LIST_PAGE + 5).map(|i| format!("d/m/{:02}/f{i}", i % 7)));
        for key in &keys {
            let path = local.root.join(key);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        keys.sort();
        let (mut listed, mut token, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = local
                .list_page("d", Intent::Pull, token.as_deref())
                .unwrap();
            assert!(page.objects.len() <= LIST_PAGE);
            listed.extend(page.objects.into_iter().map(|o| o.key));
            pages += 1;
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(listed, keys);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_below_the_root_are_refused() {
        let (dir, local) = store();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), b"x").unwrap();
        fs::create_dir(local.root.join("artifacts")).unwrap();
        std::os::unix::fs::symlink(&outside, local.root.join("artifacts/jobs")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), local.root.join("artifacts/file")).unwrap();
        for key in [
            "artifacts/jobs",
            "artifacts/jobs/f",
            "artifacts/jobs/new/g",
            "artifacts/file",
        ] {
            let err = local.path_of(key).unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{key}: {err}");
        }
        assert!(local.path_of("artifacts/other/new").is_ok());
        // A listing of the directory holding them skips both links.
        let page = local.list_page("artifacts", Intent::Pull, None).unwrap();
        assert!(page.objects.is_empty(), "{:?}", page.objects.len());
    }
}
