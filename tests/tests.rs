//! The integration suite: the built binary against real servers and files.
//!
//! One test crate (see Cargo.toml), themed modules:

/// The harness: temp dirs, stores, running the binary, the Hub server.
mod support;

/// Help, version, usage errors and configuration errors; no transfers.
mod cli;

/// Push, pull and yank behaviour, run once per backend (`scenario!`).
mod scenarios;

/// list, --include and --exclude, once per backend.
mod list;

/// What only the Hub backend has: its wire protocol, retries, signed URLs.
mod hub;

/// The Go CLI's own integration cases for stdin and 5xx, against our Hub.
mod go_suite;

/// What only the S3 backend has: listing at scale, multipart, conditional
/// writes, checksums, S3's error answers. Its `s3_case!` serves `stores`.
#[macro_use]
mod s3;

/// README's S3 lifecycle configuration, applied to moto with boto3.
mod retention;

/// What real stores do that local servers don't: folder markers, required
/// encryption, no conditional writes, checksums or DeleteObjects.
mod stores;

/// The S3 backend's AWS credential chain, each source through the binary
/// against fake AWS endpoints on loopback.
mod credentials;

/// Faults injected between the binary and the store: retries, clean
/// failures, nothing half-written, no open multipart uploads.
mod faults;

/// Killed runs, hostile remote names, bad local input.
mod reliability;

/// What others plant in a destination: leftovers, journals, look-alikes.
mod leftovers;

/// The soak: thousands of files through random faults (`make soak`).
mod soak;

/// HTTPS_PROXY, HTTP_PROXY and NO_PROXY for the Hub, storage and S3.
mod proxy;

/// TLS: verification on by default, private CAs through the documented variables.
mod tls;

/// What only the local backend has: racing writers on one directory.
mod local;

/// SIGINT and SIGTERM: clean exits with 130 and 143.
mod signals;

/// --skip-unchanged: what a forced push or pull leaves alone, per backend.
mod unchanged;

/// Broken downloads continue: within a run from the bytes written, across
/// runs from the journal a killed run left.
mod resume;
