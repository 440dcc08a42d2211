//! SIGINT and SIGTERM: a cancelled job cleans up, says what it left, and
//! exits 130 or 143 within five seconds.
//!
//! CI cancels a job with SIGTERM (then SIGKILL after a grace period), a
//! person with Ctrl-C. On the first signal the transfer starts nothing new,
//! bodies in flight stop at their next chunk, retries stop, open multipart
//! uploads are aborted (with short limits of their own) and temporary
//! files are removed as their owners unwind; the command then reports
//! what was and was not transferred and exits with the signal's code. A
//! worker blocked in a request cannot see the signal, so the listener itself also
//! aborts the backend's open uploads (`on_signal`). A watchdog makes sure
//! of the five seconds: if the run has not ended by
//! then, it removes the temporary files still registered and exits. A
//! second signal exits at once, after the same removal.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

pub use crate::error::Signal;

/// What remains of the five seconds once clean-up has had its chance.
#[cfg(any(unix, windows))]
const GRACE: std::time::Duration = std::time::Duration::from_millis(4500);

/// 0 while no signal has arrived, else the exit code it asks for.
static EXIT_CODE: AtomicU8 = AtomicU8::new(0);

/// What must be undone on a signal even while every worker is blocked in
/// a request: the backend's open multipart uploads.
type Cleanup = Box<dyn Fn() + Send + Sync>;
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

/// Runs `cleanup` on the first signal, on the listening thread.
pub fn on_signal(cleanup: Cleanup) {
    if let Ok(mut slot) = CLEANUP.lock() {
        *slot = Some(cleanup);
    }
}

/// `Err(Interrupted)` once a signal has arrived.
pub fn check() -> crate::error::Result<()> {
    match received() {
        Some(signal) => Err(crate::error::Error::Interrupted(signal)),
        None => Ok(()),
    }
}

/// The signal received, if any.
pub fn received() -> Option<Signal> {
    match EXIT_CODE.load(Ordering::Relaxed) {
        130 => Some(Signal::Interrupt),
        143 => Some(Signal::Terminate),
        _ => None,
    }
}

/// Starts listening for SIGINT and SIGTERM. Without a listener (it could
/// not be set up) the signals keep their default action: the process ends
/// at once, leaving what a killed run leaves.
#[cfg(unix)]
pub fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            for number in signals.forever() {
                deliver(if number == SIGINT {
                    Signal::Interrupt
                } else {
                    Signal::Terminate
                });
            }
        });
    drop(spawned);
}

/// Windows: Ctrl-C and Ctrl-Break in the console count as SIGINT (the
/// handler runs on a thread of the `ctrlc` crate). Closing the console
/// window or a job object's termination is not caught: that ends the
/// process at once, as SIGKILL does.
#[cfg(windows)]
pub fn install() {
    let _ = ctrlc::set_handler(|| deliver(Signal::Interrupt));
}

#[cfg(not(any(unix, windows)))]
pub fn install() {}

/// The first signal: the run starts stopping and the watchdog starts; a
/// second one exits at once.
#[cfg(any(unix, windows))]
fn deliver(signal: Signal) {
    let first = EXIT_CODE
        .compare_exchange(0, signal.exit_code(), Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if !first {
        exit_now(signal);
    }
    let _ = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            std::thread::sleep(GRACE);
            exit_now(signal);
        });
    if let Ok(cleanup) = CLEANUP.lock() {
        if let Some(cleanup) = cleanup.as_ref() {
            cleanup();
        }
    }
}

/// Removes the temporary files still open and ends the process.
#[cfg(any(unix, windows))]
fn exit_now(signal: Signal) -> ! {
    crate::atomic::remove_open_temp_files();
    crate::log::info(&format!(
        "Interrupted by {}: exiting without waiting for the transfers in flight.",
        signal.name()
    ));
    std::process::exit(i32::from(signal.exit_code()))
}
