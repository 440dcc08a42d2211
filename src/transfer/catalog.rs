//! `list`: what is stored at a name, page by page, in the byte order of
//! the key.
//!
//! Each page is filtered and handed on before the next one is asked for,
//! so memory holds one page however many objects there are. S3 and the
//! local store list in key order already; the Hub's one page (its answer
//! to a pull's request) is sorted here.

use super::scheduler;
use super::{is_file_under, selected, selection_end, Options};
use crate::atomic;
use crate::backend::{Backend, Intent, RemoteObject};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::pattern::Selection;

/// Hands every stored file at `remote` that `selection` takes to `show`,
/// in key order, until `show` answers false. Nothing stored is
/// `NotFound`; something stored but nothing selected, `NothingSelected`.
pub fn catalog(
    backend: &dyn Backend,
    remote: &str,
    selection: &mut Selection,
    opts: &Options,
    mut show: impl FnMut(&RemoteObject) -> Result<bool>,
) -> Result<()> {
    let (mut stored, mut shown) = (false, false);
    let (listed, _budget) = scheduler::run(opts.budget.clone(), opts.retry, |ctx| {
        super::list(ctx, backend, remote, Intent::Pull, |mut page| {
            page.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            for object in page.iter().filter(|o| is_listed(remote, &o.key)) {
                if is_placeholder(ctx, backend, object) {
                    continue;
                }
                stored = true;
                if selected(selection, remote, &object.key)? {
                    shown = true;
                    if !show(object)? {
                        return Ok(false);
                    }
                }
            }
            Ok(!ctx.stopping())
        })
    });
    listed?;
    interrupt::check()?;
    if !stored {
        return Err(Error::NotFound(remote.to_string()));
    }
    selection_end(selection, remote, stored, shown)
}

/// Whether the object at `key` is a stored file of `remote` to show:
/// never a folder marker (`…/`), nor a temporary file of ours. This is the
/// one place, with `is_placeholder`, where anything else a store holds but
/// is not an artifact is left out.
fn is_listed(remote: &str, key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    (key == remote || is_file_under(remote, key)) && !atomic::is_temp_name(name)
}

/// Whether `object` is the placeholder of a push that has not finished
/// (one HEAD, only for an object of the placeholder's size): it is not an
/// artifact yet, and is not listed.
fn is_placeholder(
    ctx: &scheduler::Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    object: &RemoteObject,
) -> bool {
    if !object.may_be_placeholder() {
        return false;
    }
    let what = format!("HEAD '{}'", object.key);
    let pending = ctx
        .request(&what, None, |_| backend.stat(object))
        .is_ok_and(|stated| stated.pending);
    if pending {
        crate::log::debug(|| {
            format!(
                "not listing '{}': a push of it has not finished",
                object.key
            )
        });
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_temporary_files_and_siblings_are_not_listed() {
        let temp = "r/d/.artifact-tmp~host~1~2~3~x";
        for (key, listed) in [
            ("r", true),
            ("r/a.txt", true),
            ("r/d/b", true),
            ("r/d/", false),
            ("r/", false),
            ("rx/a", false),
            (temp, false),
        ] {
            assert_eq!(is_listed("r", key), listed, "{key}");
        }
    }
}
