//! Where artifacts are stored: one trait, one implementation per store.
//!
//! A backend speaks object operations only — put an object, get a byte
//! range of one, list a page, delete one, and, where the store has them,
//! the multipart primitives (`object::Multipart`) — each one request,
//! attempted once. Everything that is the same for every store lives in the
//! transfer engine (`crate::transfer`): walking, conflict checks, the budget
//! of requests in flight, retries, building upload bodies, hashing and
//! verifying downloads, temporary files. Three batch steps let a store
//! answer for many objects in one round trip: `prepare_push` (the Hub hands
//! out every signed URL in one POST; S3 checks a whole tree with one
//! listing), `list_page`, and `delete_many` (S3's DeleteObjects).

pub mod hub;
pub mod local;
pub mod object;
pub mod s3;
mod signed_url;

pub use object::{
    Attempt, Body, ByteRange, Claim, Download, Intent, Multipart, Page, Part, RemoteObject, Stated,
    Upload,
};

use crate::error::{Error, Result, Side};

pub trait Backend: Send + Sync {
    /// Gets ready to write `keys`: one `Upload` per key, in order. Without
    /// `force`, fails with `AlreadyExists` naming a key that is already
    /// stored — unless the backend checks one object at a time, in which
    /// case it sets each `Upload::probe` and the engine asks `is_taken`.
    /// The default asks `exists` for each key.
    fn prepare_push(&self, keys: &[String], force: bool) -> Result<Vec<Upload>> {
        if !force {
            for key in keys {
                if self.exists(key)? {
                    return Err(Error::AlreadyExists {
                        side: Side::Remote,
                        path: key.clone(),
                    });
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| Upload {
                key: k.clone(),
                locator: k.clone(),
                probe: None,
                overwrite: force,
                mode: None,
            })
            .collect())
    }

    /// Whether the object an `Upload` with a `probe` would write exists.
    fn is_taken(&self, _upload: &Upload) -> Result<bool> {
        Ok(false)
    }

    /// Writes one object in one request. Unless `upload.overwrite`, a store
    /// that can refuse to replace an object which appeared since
    /// `prepare_push` does so, with `AlreadyExists`.
    fn put(&self, upload: &Upload, body: &Body<'_>, attempt: &mut Attempt) -> Result<()>;

    /// The multipart primitives, when the store has them.
    fn multipart(&self) -> Option<&dyn Multipart> {
        None
    }

    /// The range size in which objects larger than four of them are
    /// fetched as parallel ranges, when the store serves ranges.
    fn range_size(&self) -> Option<u64> {
        None
    }

    /// One page of what is at `key`: the object at `key` and every object
    /// under `key/`. `token` is the previous page's `next`.
    fn list_page(&self, key: &str, intent: Intent, token: Option<&str>) -> Result<Page>;

    /// Whether an object is stored at exactly `key`.
    fn exists(&self, key: &str) -> Result<bool> {
        let mut token = None;
        loop {
            let page = match self.list_page(key, Intent::Probe, token.as_deref()) {
                Err(Error::NotFound(_)) => return Ok(false),
                other => other?,
            };
            if page.objects.iter().any(|o| o.key == key) {
                return Ok(true);
            }
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// What the store states about `object` (its ETag and checksum), for a
    /// download in ranges, whose answers state neither for the whole.
    fn stat(&self, _object: &RemoteObject) -> Result<Stated> {
        Ok(Stated::default())
    }

    /// Starts fetching the bytes `range` of `object`.
    fn get(&self, object: &RemoteObject, range: ByteRange<'_>) -> Result<Download<'_>>;

    fn delete(&self, object: &RemoteObject) -> Result<()>;

    /// On a signal, from another thread while requests may be blocked:
    /// undoes what must not be left behind (open multipart uploads), with
    /// short limits.
    fn cancel(&self) {}

    /// How many objects one `delete_many` request may delete: 1 (the
    /// default) where the store has no batch delete, or refused one.
    fn delete_batch(&self) -> usize {
        1
    }

    /// Deletes `objects` (more than one, at most `delete_batch()`) in one
    /// request: each key the store reports it could not delete, and why.
    /// `None` when the store refused the batch request itself, or the batch
    /// cannot name these keys: nothing was deleted, and the engine deletes
    /// them one at a time.
    fn delete_many(&self, _objects: &[RemoteObject]) -> Result<Option<Vec<(String, Error)>>> {
        Ok(None)
    }
}
