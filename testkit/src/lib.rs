//! The test kit: every server the tests, the benchmarks and the release
//! checks run against, on one small HTTP core.
//!
//! - [`http`]: the core (server, replies cut short on purpose, a one-shot
//!   forwarding client);
//! - [`hub`]: the Semaphore Hub and its signed-URL storage;
//! - [`s3`]: s3s-fs in process, and one moto_server per test process;
//! - [`rgw`]: Ceph's RADOS Gateway, one single-node cluster per test process;
//! - [`aws`]: IMDS, the container agent, STS and SSO, faked;
//! - [`fault`]: faults and store quirks in front of any of them;
//! - [`squid`]: a Squid-like forward proxy;
//! - [`tls`]: HTTPS in front of a plain server, with a private CA.

pub mod aws;
pub mod fault;
pub mod http;
pub mod hub;
// Ceph runs on Linux only; the kit is also built for the Windows and
// macOS checks of the binary's unit tests, which never start it.
#[cfg(unix)]
pub mod rgw;
pub mod s3;
pub mod squid;
pub mod tls;

use std::path::Path;

/// Every byte but A-Z a-z 0-9 - . _ ~ is percent-encoded.
pub const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every file under `root`, as `/`-separated relative paths, sorted.
pub fn list_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let key = format!("{prefix}{}", entry.file_name().to_string_lossy());
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), &format!("{key}/"), out),
                Ok(t) if t.is_file() => out.push(key),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}
