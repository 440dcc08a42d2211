//! Progress of a long transfer: a live line on a terminal, a log line every
//! few seconds in CI logs.
//!
//! Quiet by default, like the Go CLI: nothing is shown for a transfer that
//! ends within a couple of seconds. Byte counts come from the places bytes
//! move (upload bodies and the download loop call `add`), file
//! counts from the engine; one reporter thread reads the counters.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::log;

static BYTES: AtomicU64 = AtomicU64::new(0);
static FILES: AtomicU64 = AtomicU64::new(0);
static PLANNED_FILES: AtomicU64 = AtomicU64::new(0);
static PLANNED_BYTES: AtomicU64 = AtomicU64::new(0);
static SIZE_UNKNOWN: AtomicBool = AtomicBool::new(false);

/// Counts one more file to move, of `size` bytes when the size is known.
/// A pull plans files as the listing arrives, so the totals may grow.
pub fn planned(size: Option<u64>) {
    PLANNED_FILES.fetch_add(1, Ordering::Relaxed);
    match size {
        Some(n) => {
            PLANNED_BYTES.fetch_add(n, Ordering::Relaxed);
        }
        None => SIZE_UNKNOWN.store(true, Ordering::Relaxed),
    }
}

/// Counts `n` bytes moved.
pub fn add(n: u64) {
    BYTES.fetch_add(n, Ordering::Relaxed);
}

/// Counts one file finished.
pub fn file_done() {
    FILES.fetch_add(1, Ordering::Relaxed);
}

/// Counts one file finished without moving its `size` bytes (found
/// unchanged): they leave the plan.
pub fn skipped(size: u64) {
    file_done();
    let _ = PLANNED_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(size))
    });
}

const FIRST_REPORT: Duration = Duration::from_secs(2);
const TERMINAL_EVERY: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shows progress until dropped.
pub struct Reporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
    drew_line: Arc<AtomicBool>,
}

impl Reporter {
    /// Starts reporting `verb` ("Pushed", "Pulled") of the files counted
    /// by `planned`, from zero.
    pub fn start(verb: &'static str) -> Reporter {
        for counter in [&BYTES, &FILES, &PLANNED_FILES, &PLANNED_BYTES] {
            counter.store(0, Ordering::Relaxed);
        }
        SIZE_UNKNOWN.store(false, Ordering::Relaxed);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let drew_line = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let thread = {
            let stop = stop.clone();
            let drew_line = drew_line.clone();
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || draw_until_stopped(&stop, &drew_line, terminal, verb))
                .ok()
        };
        Reporter {
            stop,
            thread,
            drew_line,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.drew_line.load(Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[2K");
        }
    }
}

fn draw_until_stopped(
    stop: &(Mutex<bool>, Condvar),
    drew_line: &AtomicBool,
    terminal: bool,
    verb: &str,
) {
    let started = Instant::now();
    let mut wait = FIRST_REPORT;
    let (lock, wake) = stop;
    let Ok(mut stopped) = lock.lock() else { return };
    loop {
        let (guard, _) = match wake.wait_timeout_while(stopped, wait, |s| !*s) {
            Ok(r) => r,
            Err(_) => return,
        };
        stopped = guard;
        if *stopped {
            return;
        }
        let files = PLANNED_FILES.load(Ordering::Relaxed);
        let bytes =
            (!SIZE_UNKNOWN.load(Ordering::Relaxed)).then(|| PLANNED_BYTES.load(Ordering::Relaxed));
        let line = describe(verb, files, bytes, started.elapsed());
        if terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            drew_line.store(true, Ordering::Relaxed);
            wait = TERMINAL_EVERY;
        } else {
            log::info(&line);
            wait = LOG_EVERY;
        }
    }
}

fn describe(verb: &str, files: u64, bytes: Option<u64>, elapsed: Duration) -> String {
    let moved = BYTES.load(Ordering::Relaxed);
    let done = FILES.load(Ordering::Relaxed);
    let rate = moved as f64 / elapsed.as_secs_f64().max(0.001);
    let of_bytes = match bytes {
        Some(total) if total > 0 => format!(
            " of {} ({:.0}%)",
            format_bytes(total),
            (moved as f64 * 100.0 / total as f64).min(100.0)
        ),
        _ => String::new(),
    };
    format!(
        "{verb} {done} of {files} files, {}{of_bytes}, {}/s",
        format_bytes(moved),
        format_bytes(rate as u64)
    )
}

/// The Go CLI's `formatBytes`: 1024-based, one decimal, `B` below 1 KiB.
pub fn format_bytes(bytes: u64) -> String {
    const UNIT: u64 = 1024;
    if bytes < UNIT {
        return format!("{bytes} B");
    }
    let (mut div, mut exp) = (UNIT, 0);
    let mut n = bytes / UNIT;
    while n >= UNIT {
        div *= UNIT;
        exp += 1;
        n /= UNIT;
    }
    let unit = ['K', 'M', 'G', 'T', 'P', 'E'][exp];
    format!("{:.1} {unit}B", bytes as f64 / div as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_files_bytes_and_rate() {
        let line = describe("Pushed", 10, Some(1 << 30), Duration::from_secs(1));
        assert!(line.starts_with("Pushed "), "{line}");
        assert!(line.contains(" of 10 files, "), "{line}");
        assert!(line.contains(" of 1.0 GB ("), "{line}");
        let unknown = describe("Pulled", 3, None, Duration::from_secs(1));
        assert!(!unknown.contains('%'), "{unknown}");
    }

    #[test]
    fn bytes_like_go() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KB"),
            (1229, "1.2 KB"),
            (1_258_291, "1.2 MB"),
            (1024 * 1024 * 1024, "1.0 GB"),
            (5 * 1024_u64.pow(4), "5.0 TB"),
            (u64::MAX, "16.0 EB"),
        ];
        for (n, want) in cases {
            assert_eq!(format_bytes(n), want, "{n}");
        }
    }
}
