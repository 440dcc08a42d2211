//! --skip-unchanged: whether a local file and a stored object are proven
//! identical, so that a forced push or pull can leave both alone.
//!
//! Proof is mode and content. A store states an object's content as a
//! SHA-256 where our upload recorded one (`checksum::Expected`: the whole
//! object's, or S3's composite of parts), and always as an ETag — S3's is
//! the MD5 of a single PUT, or the MD5 of the part MD5s with `-N` for a
//! multipart upload (not under SSE-KMS, where it is no MD5 at all), and
//! the local backend's is the MD5. The SHA-256 is preferred: it is what an
//! upload sends anyway, so the file is read and hashed once, and a push
//! that must send after all hands those digests to its bodies; an ETag
//! costs an MD5 in the same read. Anything unsure counts as changed: no
//! ETag, an ETag of another form than our upload would give (another
//! tool's part size), a HEAD that fails.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use super::budget::Budget;
use super::push::parts_for;
use super::scheduler::{self, Ctx};
use super::walk::Item;
use crate::atomic::{self, Mode};
use crate::backend::{Backend, Intent, RemoteObject, Stated};
use crate::checksum::hex;
use crate::checksum::{self, Expected, PartDigests};
use crate::error::Result;
use crate::{log, retry};

/// A file's digests, part by part as a push would send it.
pub struct Digests {
    parts: Vec<PartDigests>,
    /// Whether the parts are a multipart upload's, else one PUT's.
    multipart: bool,
}

impl Digests {
    /// Reads the `size` bytes at `path` once: in `part_size` parts, else
    /// as one; their SHA-256s, and their MD5s when an ETag is to be
    /// compared.
    fn read(path: &Path, size: u64, part_size: Option<u64>, with_md5: bool) -> Result<Digests> {
        Ok(Digests {
            parts: checksum::file_parts(path, size, part_size.unwrap_or(size), with_md5)?,
            multipart: part_size.is_some(),
        })
    }

    /// The ETag S3 gives these bytes sent this way, unquoted: the MD5 in
    /// hex for one PUT, the MD5 of the part MD5s and `-N` for parts. `None`
    /// when the MD5s were not computed.
    fn etag(&self) -> Option<String> {
        let md5s: Vec<[u8; 16]> = self.parts.iter().map(|p| p.md5).collect::<Option<_>>()?;
        Some(match (self.multipart, md5s.as_slice()) {
            (false, [one]) => hex(one),
            _ => format!("{}-{}", hex(&md5::compute(md5s.concat()).0), md5s.len()),
        })
    }

    /// Whether these are the bytes whose SHA-256 the store states: the
    /// whole file's, or S3's composite of its parts.
    fn matches(&self, expected: &Expected) -> bool {
        let sums: Vec<[u8; 32]> = self.parts.iter().map(|p| p.sha256).collect();
        let actual = match (self.multipart, sums.as_slice()) {
            (false, [whole]) => checksum::base64(whole),
            _ => checksum::composite(&sums),
        };
        expected.matches(&actual)
    }

    /// The SHA-256 of the whole file, when it goes up in one PUT.
    pub fn whole_sha256(&self) -> Option<[u8; 32]> {
        (!self.multipart).then(|| self.parts.first().map(|p| p.sha256))?
    }

    /// The SHA-256 of part `index` (from 0), when it goes up in parts.
    pub fn part_sha256(&self, index: usize) -> Option<[u8; 32]> {
        self.multipart
            .then(|| self.parts.get(index).map(|p| p.sha256))?
    }
}

/// An ETag's value without its quotes (or a weak `W/`).
fn bare(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Whether `etag` has the form an upload in `parts` parts gives (`None`:
/// one PUT): no `-N` for one PUT, `-N` with our N for parts.
fn same_form(etag: &str, parts: Option<u64>) -> bool {
    match (bare(etag).split_once('-'), parts) {
        (None, None) => true,
        (Some((_, n)), Some(parts)) => n.parse::<u64>().is_ok_and(|n| n == parts),
        _ => false,
    }
}

/// What the store states about `object`, as one request in the budget;
/// `None` when it cannot say (then nothing is proven).
fn stat(ctx: &Ctx<'_, '_, '_>, backend: &dyn Backend, object: &RemoteObject) -> Option<Stated> {
    let what = format!("HEAD '{}'", object.key);
    // An object's HEAD, one per file compared: it steers the budget as the
    // transfers it replaces would.
    match ctx.request(&what, Some(0), |_| backend.stat(object)) {
        // A push's placeholder is no content to compare.
        Ok(stated) if stated.pending => None,
        Ok(stated) => Some(stated),
        Err(e) => {
            log::debug(|| format!("cannot compare '{}' ({e}); sending it", object.key));
            None
        }
    }
}

/// Every object at `remote`, by key, for a push to compare with: one
/// listing. A listing that fails leaves nothing to compare, with a
/// warning: every file is then sent.
pub fn listing(
    backend: &dyn Backend,
    remote: &str,
    budget: Budget,
    policy: retry::Policy,
) -> (HashMap<String, RemoteObject>, Budget) {
    let mut stored = HashMap::new();
    let (listed, budget) = scheduler::run(budget, policy, |ctx| {
        super::list(ctx, backend, remote, Intent::Pull, |page| {
            stored.extend(page.into_iter().map(|o| (o.key.clone(), o)));
            Ok(!ctx.stopping())
        })
    });
    if let Err(e) = listed {
        log::info(&format!(
            "Warning: cannot list '{remote}' to find unchanged files ({e}); sending every file."
        ));
        stored.clear();
    }
    (stored, budget)
}

/// What a push learns by comparing a file with the object at its key.
pub enum Push {
    Unchanged,
    /// Send it; with its digests when the file was read to compare.
    Changed(Option<Digests>),
}

/// Compares `item` with `stored`, the object listed at its key: size;
/// then one `stat` (a HEAD on S3) for the recorded mode, where the system
/// has modes; then the content: against the SHA-256 the store states when
/// it has the form this upload would give (the file is hashed once, and
/// the digests serve the upload if it must go), else against the ETag
/// (the listing's, else the HEAD's), which costs an MD5 in the same read.
pub fn check_push(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    item: &Item,
    stored: &RemoteObject,
) -> Result<Push> {
    if stored.size != Some(item.size) {
        return Ok(Push::Changed(None));
    }
    let Some(stated) = stat(ctx, backend, stored) else {
        return Ok(Push::Changed(None));
    };
    if item.mode.is_some() && stated.mode != item.mode {
        return Ok(Push::Changed(None));
    }
    let part_size = parts_for(backend, item.size);
    let stated_sha256 = match (&stated.sha256, part_size) {
        (Some(whole @ Expected::Whole(_)), None) => Some(whole),
        (Some(parts @ Expected::Composite { part_size, .. }), Some(ours)) if *part_size == ours => {
            Some(parts)
        }
        _ => None,
    };
    if let Some(expected) = stated_sha256 {
        let digests = Digests::read(&item.local, item.size, part_size, false)?;
        return Ok(match digests.matches(expected) {
            true => Push::Unchanged,
            false => Push::Changed(Some(digests)),
        });
    }
    // The HEAD's ETag is the newer, should the object have changed since
    // the listing.
    let Some(etag) = stated.etag.or_else(|| stored.etag.clone()) else {
        return Ok(Push::Changed(None));
    };
    if !same_form(&etag, part_size.map(|p| item.size.div_ceil(p))) {
        return Ok(Push::Changed(None));
    }
    let digests = Digests::read(&item.local, item.size, part_size, true)?;
    Ok(match digests.etag().as_deref() == Some(bare(&etag)) {
        true => Push::Unchanged,
        false => Push::Changed(Some(digests)),
    })
}

/// Whether the file at `path` already holds `object`: the listed size,
/// then the SHA-256 the store states (whole, or S3's composite of parts),
/// else the ETag: a single PUT's MD5, or the MD5 of the part MD5s at the
/// part size our upload recorded. When it does, a recorded mode that
/// differs is set in place. Anything unsure, a local file that cannot be
/// read included, is fetched.
pub fn check_pull(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    object: &RemoteObject,
    path: &Path,
) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if ctx.stopping() || !meta.is_file() || object.size != Some(meta.len()) {
        return false;
    }
    let Some(stated) = stat(ctx, backend, object) else {
        return false;
    };
    let size = meta.len();
    let same = match (&stated.sha256, stated.etag.as_deref()) {
        (Some(expected), _) => {
            let part_size = match expected {
                Expected::Whole(_) => None,
                Expected::Composite { part_size, .. } => Some(*part_size),
            };
            Digests::read(path, size, part_size, false).map(|d| d.matches(expected))
        }
        (None, Some(etag)) => {
            // Parts are computed at the part size our upload recorded.
            let part_size = stated.part_size.filter(|_| bare(etag).contains('-'));
            match same_form(etag, part_size.map(|p| size.div_ceil(p.max(1)))) {
                true => Digests::read(path, size, part_size, true)
                    .map(|d| d.etag().as_deref() == Some(bare(etag))),
                false => Ok(false),
            }
        }
        (None, None) => Ok(false),
    };
    let settled = match same {
        Ok(true) => settle_mode(path, &meta, stated.mode),
        Ok(false) => return false,
        Err(e) => Err(e),
    };
    match settled {
        Ok(()) => true,
        Err(e) => {
            log::debug(|| format!("cannot compare '{}' ({e}); fetching it", path.display()));
            false
        }
    }
}

/// Gives the file at `path` the `recorded` permission bits as a pull
/// creates a file with them — less the umask, never setuid, setgid or
/// sticky — where its own differ. No recorded mode keeps the file's, as a
/// forced pull does.
fn settle_mode(path: &Path, meta: &fs::Metadata, recorded: Option<u32>) -> Result<()> {
    let (Some(recorded), Some(local)) = (recorded, atomic::permission_bits(meta)) else {
        return Ok(());
    };
    let recorded = recorded & 0o777;
    if local == recorded {
        return Ok(());
    }
    let wanted = Mode::New(recorded).bits();
    if local != wanted {
        log::debug(|| format!("'{}': mode {local:o} -> {wanted:o}", path.display()));
        set_mode(path, wanted).map_err(|e| crate::error::Error::local_io("chmod", path, e))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, bits: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(bits))
}

/// Never called: without permission bits there is no mode to differ.
#[cfg(not(unix))]
fn set_mode(_path: &Path, _bits: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn a_single_put_etag_is_the_md5() {
        let (_dir, path) = file(b"hello");
        let d = Digests::read(&path, 5, None, true).unwrap();
        assert_eq!(d.etag().unwrap(), "5d41402abc4b2a76b9719d911017c592");
        assert!(
            d.matches(&Expected::Whole(checksum::base64(&checksum::sha256(
                b"hello"
            ))))
        );
        assert_eq!(Digests::read(&path, 5, None, false).unwrap().etag(), None);
        assert_eq!(d.whole_sha256(), Some(checksum::sha256(b"hello")));
        assert_eq!(d.part_sha256(0), None);
        let (_dir, empty) = file(b"");
        let d = Digests::read(&empty, 0, None, true).unwrap();
        assert_eq!(d.etag().unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s() {
        let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
        let (_dir, path) = file(&data);
        let d = Digests::read(&path, 25, Some(10), true).unwrap();
        let joined: Vec<u8> = data.chunks(10).flat_map(|c| md5::compute(c).0).collect();
        assert_eq!(
            d.etag().unwrap(),
            format!("{}-3", hex(&md5::compute(joined).0))
        );
        assert_eq!(d.part_sha256(2), Some(checksum::sha256(&data[20..])));
        assert_eq!(d.whole_sha256(), None);
        // Parts of a multipart upload, even when there is only one.
        let d = Digests::read(&path, 25, Some(25), true).unwrap();
        assert!(d.etag().unwrap().ends_with("-1"));
    }

    #[test]
    fn etag_forms() {
        assert_eq!(bare("\"abc\""), "abc");
        assert_eq!(bare("W/\"abc-2\""), "abc-2");
        assert!(same_form("\"abc\"", None));
        assert!(!same_form("\"abc-2\"", None));
        assert!(same_form("\"abc-2\"", Some(2)));
        // Another part size, or a single PUT where we would send parts.
        assert!(!same_form("\"abc-3\"", Some(2)));
        assert!(!same_form("\"abc\"", Some(2)));
        assert!(!same_form("\"abc-x\"", Some(2)));
    }
}
