//! The engine against a store in memory: failures, retries, multipart,
//! ranges, resumed downloads and the budget, in milliseconds and with no
//! server. What the store does on each request is scripted per test.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::backend::{
    Attempt, Body, ByteRange, Claim, Download, Multipart, Page, Part, RemoteObject, Stated, Upload,
};
use crate::checksum::{self, Expected};
use crate::retry;

/// One request as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Put(String),
    Create(String),
    PutPart(String, u32),
    Complete(String),
    Abort(String),
    Get(String, u64, Option<u64>),
    Delete(String),
    List(String),
}

type Script = Box<dyn Fn(&Call, usize) -> Option<Error> + Send + Sync>;

/// A store in memory. `script` may fail a request (given the call and how
/// many times that call was made before); `cut_after` cuts a GET's body
/// after that many bytes, once per key.
struct Memory {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    parts: Mutex<BTreeMap<(String, u32), Vec<u8>>>,
    calls: Mutex<Vec<Call>>,
    script: Script,
    cut_after: Option<u64>,
    cut: Mutex<Vec<String>>,
    /// Flips a byte in the middle of every range GET's body.
    corrupt_ranges: bool,
    part_size: Option<u64>,
    latency: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl Memory {
    fn new() -> Memory {
        Memory {
            objects: Mutex::default(),
            parts: Mutex::default(),
            calls: Mutex::default(),
            script: Box::new(|_, _| None),
            cut_after: None,
            cut: Mutex::default(),
            corrupt_ranges: false,
            part_size: None,
            latency: Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn with(objects: &[(&str, Vec<u8>)]) -> Memory {
        let m = Memory::new();
        for (k, v) in objects {
            m.objects.lock().unwrap().insert(k.to_string(), v.clone());
        }
        m
    }

    /// Records the call, holds it for the latency, and asks the script.
    fn enter(&self, call: Call) -> Result<()> {
        let before = self.record(&call);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.latency);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.answer(&call, before)
    }

    /// Records the call; how many times it was made before.
    fn record(&self, call: &Call) -> usize {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.iter().filter(|c| *c == call).count();
        calls.push(call.clone());
        n
    }

    /// What the script makes of the call.
    fn answer(&self, call: &Call, before: usize) -> Result<()> {
        match (self.script)(call, before) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| pred(c))
            .count()
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().unwrap().get(key).cloned()
    }
}

fn read_all(body: &Body<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    body.reader()
        .read_to_end(&mut out)
        .map_err(|e| Error::local_io("read", Path::new("body"), e))?;
    Ok(out)
}

impl Backend for Memory {
    fn put(&self, upload: &Upload, body: &Body<'_>, _attempt: &mut Attempt) -> Result<()> {
        self.enter(Call::Put(upload.key.clone()))?;
        let bytes = read_all(body)?;
        let mut objects = self.objects.lock().unwrap();
        if !upload.overwrite && objects.contains_key(&upload.key) {
            return Err(Error::AlreadyExists {
                side: crate::error::Side::Remote,
                path: upload.key.clone(),
            });
        }
        objects.insert(upload.key.clone(), bytes);
        Ok(())
    }

    fn multipart(&self) -> Option<&dyn Multipart> {
        self.part_size.map(|_| self as &dyn Multipart)
    }

    fn range_size(&self) -> Option<u64> {
        self.part_size
    }

    fn list_page(&self, key: &str, _intent: Intent, _token: Option<&str>) -> Result<Page> {
        // Scripted, but neither held nor counted in flight: the listing
        // runs beside the transfers, outside the budget.
        let call = Call::List(key.to_string());
        self.answer(&call, self.record(&call))?;
        let objects = self.objects.lock().unwrap();
        let under = format!("{key}/");
        Ok(Page {
            objects: objects
                .iter()
                .filter(|(k, _)| *k == key || k.starts_with(&under))
                .map(|(k, v)| RemoteObject {
                    key: k.clone(),
                    size: Some(v.len() as u64),
                    locator: k.clone(),
                    etag: None,
                    modified: None,
                })
                .collect(),
            next: None,
        })
    }

    fn stat(&self, object: &RemoteObject) -> Result<Stated> {
        let data = self
            .object(&object.key)
            .ok_or_else(|| Error::NotFound(object.key.clone()))?;
        Ok(Stated {
            etag: Some("\"v1\"".into()),
            version: Some("\"v1\"".into()),
            sha256: Some(Expected::Whole(checksum::base64(&checksum::sha256(&data)))),
            mode: None,
            part_size: None,
            etag_md5: None,
            pending: false,
        })
    }

    fn get(&self, object: &RemoteObject, range: ByteRange<'_>) -> Result<Download<'_>> {
        self.enter(Call::Get(object.key.clone(), range.from, range.len))?;
        let data = self
            .object(&object.key)
            .ok_or_else(|| Error::NotFound(object.key.clone()))?;
        let from = range.from as usize;
        let to = range.len.map_or(data.len(), |l| from + l as usize);
        let mut bytes = data[from..to].to_vec();
        let length = bytes.len() as u64;
        if self.corrupt_ranges && range.len.is_some() {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xFF;
        }
        let cut = match self.cut_after {
            Some(n) if !self.cut.lock().unwrap().contains(&object.key) => {
                self.cut.lock().unwrap().push(object.key.clone());
                bytes.truncate(n as usize);
                true
            }
            _ => false,
        };
        let body: Box<dyn Read> = if cut {
            Box::new(Cursor::new(bytes).chain(Broken))
        } else {
            Box::new(Cursor::new(bytes))
        };
        let mut download = Download::new(body, range.from, Some(length));
        download.etag = Some("\"v1\"".into());
        Ok(download)
    }

    fn delete(&self, object: &RemoteObject) -> Result<()> {
        self.enter(Call::Delete(object.key.clone()))?;
        self.objects.lock().unwrap().remove(&object.key);
        Ok(())
    }
}

impl Multipart for Memory {
    fn part_size(&self, _size: u64) -> u64 {
        self.part_size.unwrap_or(u64::MAX)
    }

    fn create(&self, upload: &Upload, _part_size: u64) -> Result<String> {
        self.enter(Call::Create(upload.key.clone()))?;
        Ok(format!("id-{}", upload.key))
    }

    fn put_part(&self, upload: &Upload, _id: &str, number: u32, body: &Body<'_>) -> Result<Part> {
        self.enter(Call::PutPart(upload.key.clone(), number))?;
        let bytes = read_all(body)?;
        self.parts
            .lock()
            .unwrap()
            .insert((upload.key.clone(), number), bytes);
        Ok(Part {
            number,
            etag: format!("\"{number}\""),
            sha256: None,
        })
    }

    fn complete(
        &self,
        upload: &Upload,
        _id: &str,
        parts: &[Part],
        _: Option<&Claim>,
        _: &Attempt,
    ) -> Result<()> {
        self.enter(Call::Complete(upload.key.clone()))?;
        let stored = self.parts.lock().unwrap();
        let mut whole = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.number as usize, i + 1, "parts out of order");
            whole.extend_from_slice(&stored[&(upload.key.clone(), part.number)]);
        }
        self.objects
            .lock()
            .unwrap()
            .insert(upload.key.clone(), whole);
        Ok(())
    }

    fn abort(&self, upload: &Upload, _id: &str) -> Result<()> {
        self.enter(Call::Abort(upload.key.clone()))
    }
}

/// A body that breaks: the connection dropped.
struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
    }
}

fn options(budget: Budget) -> Options {
    Options {
        force: false,
        skip_unchanged: false,
        budget,
        retry: retry::Policy {
            attempts: 4,
            first_delay: Duration::from_millis(1),
        },
    }
}

fn unavailable() -> Error {
    Error::remote("op", 503, "")
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn tree(files: usize, size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..files {
        std::fs::write(dir.path().join(format!("f{i:03}")), bytes(size, i as u8)).unwrap();
    }
    dir
}

#[test]
fn a_tree_goes_up_whole_within_the_fixed_budget() {
    let mut store = Memory::new();
    store.latency = Duration::from_millis(2);
    let dir = tree(40, 100);
    let totals = push(
        &store,
        PushSource::Path(dir.path()),
        "r",
        &options(Budget::fixed(3)),
        &mut Selection::default(),
    )
    .unwrap();
    assert_eq!(
        totals,
        Totals {
            files: 40,
            bytes: 4000,
            skipped: 0
        }
    );
    for i in 0..40 {
        assert_eq!(
            store.object(&format!("r/f{i:03}")).unwrap(),
            bytes(100, i as u8)
        );
    }
    assert!(store.peak.load(Ordering::SeqCst) <= 3);
}

#[test]
fn retryable_failures_are_retried_and_final_ones_stop_the_run() {
    let mut store = Memory::new();
    store.script = Box::new(|call, before| match call {
        Call::Put(k) if k == "r/f001" && before < 2 => Some(unavailable()),
        Call::Put(k) if k == "r/f005" => Some(Error::PermissionDenied {
            what: "PUT".into(),
            hint: "no".into(),
        }),
        _ => None,
    });
    let dir = tree(30, 10);
    let err = push(
        &store,
        PushSource::Path(dir.path()),
        "r",
        &options(Budget::fixed(1)),
        &mut Selection::default(),
    )
    .unwrap_err();
    // f001 took three attempts; f005 one, and nothing after it started.
    assert_eq!(store.count(|c| *c == Call::Put("r/f001".into())), 3);
    assert_eq!(store.count(|c| *c == Call::Put("r/f005".into())), 1);
    assert_eq!(store.count(|c| matches!(c, Call::Put(_))), 8);
    assert_eq!(err.exit_code(), 6);
    let text = err.to_string();
    assert!(text.contains("5 of 30 files transferred"), "{text}");
}

#[test]
fn throttled_conflict_checks_are_retried_and_slow_the_push_down() {
    let mut store = Memory::new();
    store.script = Box::new(|call, before| match call {
        Call::List(_) if before < 2 => Some(unavailable()),
        _ => None,
    });
    let start = Budget::adaptive(64);
    let initial = start.limit();
    let keys = ["r/f".to_string()];
    let (uploads, budget) = push::prepare(&store, "r/f", &keys, &options(start)).unwrap();
    assert_eq!(uploads.len(), 1);
    // The clash check three times (two throttled), then the key itself.
    assert_eq!(store.count(|c| matches!(c, Call::List(_))), 4);
    assert!(budget.limit() < initial, "{} of {initial}", budget.limit());
}

#[test]
fn large_files_go_up_in_parts_scheduled_with_other_files() {
    let mut store = Memory::new();
    store.part_size = Some(1000);
    let dir = tree(5, 300);
    std::fs::write(dir.path().join("big"), bytes(10_500, 9)).unwrap();
    let totals = push(
        &store,
        PushSource::Path(dir.path()),
        "r",
        &options(Budget::fixed(4)),
        &mut Selection::default(),
    )
    .unwrap();
    assert_eq!(totals.files, 6);
    assert_eq!(store.object("r/big").unwrap(), bytes(10_500, 9));
    assert_eq!(store.count(|c| matches!(c, Call::PutPart(..))), 11);
    assert_eq!(store.count(|c| matches!(c, Call::Complete(_))), 1);
    assert_eq!(store.count(|c| matches!(c, Call::Abort(_))), 0);
}

#[test]
fn a_part_that_keeps_failing_aborts_its_upload() {
    let mut store = Memory::new();
    store.part_size = Some(1000);
    store.script = Box::new(|call, _| match call {
        Call::PutPart(_, 3) => Some(unavailable()),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), bytes(5000, 1)).unwrap();
    let err = push(
        &store,
        PushSource::Path(dir.path()),
        "r",
        &options(Budget::fixed(2)),
        &mut Selection::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(store.count(|c| *c == Call::PutPart("r/big".into(), 3)), 4);
    assert_eq!(store.count(|c| matches!(c, Call::Abort(_))), 1);
    assert_eq!(store.count(|c| matches!(c, Call::Complete(_))), 0);
    assert!(store.object("r/big").is_none());
}

#[test]
fn a_large_object_comes_down_in_ranges_and_a_failed_range_is_retried() {
    let mut store = Memory::with(&[("r/big", bytes(9_999, 4))]);
    store.part_size = Some(1000);
    store.script = Box::new(|call, before| match call {
        Call::Get(_, 3000, Some(1000)) if before == 0 => Some(unavailable()),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big");
    let totals = pull(
        &store,
        "r/big",
        &dest,
        &options(Budget::fixed(4)),
        &mut Selection::default(),
    )
    .unwrap();
    assert_eq!(totals.bytes, 9_999);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes(9_999, 4));
    assert_eq!(store.count(|c| matches!(c, Call::Get(..))), 11);
}

#[test]
fn a_range_damaged_on_the_way_fails_the_whole_check_and_leaves_nothing() {
    let mut store = Memory::with(&[("r/big", bytes(9_999, 6))]);
    store.part_size = Some(1000);
    store.corrupt_ranges = true;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big");
    let err = pull(
        &store,
        "r/big",
        &dest,
        &options(Budget::fixed(3)),
        &mut Selection::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 7, "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_download_cut_short_goes_on_from_the_bytes_written() {
    let mut store = Memory::with(&[("r/a", bytes(50_000, 5))]);
    store.cut_after = Some(40_000);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a");
    pull(
        &store,
        "r/a",
        &dest,
        &options(Budget::fixed(2)),
        &mut Selection::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes(50_000, 5));
    let gets: Vec<Call> = (store.calls.lock().unwrap().iter())
        .filter(|c| matches!(c, Call::Get(..)))
        .cloned()
        .collect();
    assert_eq!(
        gets,
        vec![
            Call::Get("r/a".into(), 0, None),
            Call::Get("r/a".into(), 40_000, None)
        ]
    );
}

#[test]
fn a_failed_pull_leaves_nothing_behind() {
    let mut store = Memory::with(&[("r/d/a", bytes(10, 1)), ("r/d/b", bytes(10, 2))]);
    store.script = Box::new(|call, _| match call {
        Call::Get(k, ..) if k == "r/d/b" => Some(unavailable()),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("d");
    let err = pull(
        &store,
        "r/d",
        &dest,
        &options(Budget::fixed(1)),
        &mut Selection::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    let left: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("a")]);
}

#[test]
fn yank_deletes_everything_and_nothing_is_not_found() {
    let store = Memory::with(&[("r/d/a", vec![1]), ("r/d/b", vec![2]), ("r/dx", vec![3])]);
    let totals = yank(&store, "r/d", &options(Budget::adaptive(8))).unwrap();
    assert_eq!(totals.files, 2);
    assert!(store.object("r/dx").is_some());
    let err = yank(&store, "r/d", &options(Budget::adaptive(8))).unwrap_err();
    assert_eq!(err.exit_code(), 4);
}

#[test]
fn the_adaptive_budget_opens_up_for_a_slow_store_and_stays_under_its_ceiling() {
    let mut store = Memory::new();
    store.latency = Duration::from_millis(5);
    let dir = tree(300, 10);
    push(
        &store,
        PushSource::Path(dir.path()),
        "r",
        &options(Budget::adaptive(32)),
        &mut Selection::default(),
    )
    .unwrap();
    let peak = store.peak.load(Ordering::SeqCst);
    assert!(peak > 8, "the budget never grew: {peak}");
    assert!(peak <= 32, "{peak}");
}
