//! SHA-256 as S3 wants it: of a file's byte range, base64-encoded.
//!
//! Uploads sign `x-amz-checksum-sha256` into the request, so the digest must
//! be known before the first byte goes out: the part is hashed from disk
//! first (one pass), then sent (a second read, from the page cache).
//! Downloads hash while they stream, through `HashingWriter`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use base64::Engine;
use sha2::{Digest, Sha256};

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The SHA-256 of `len` bytes of `file` from `offset`, and how many there were.
pub fn sha256_of_range(file: &mut File, offset: u64, len: u64) -> io::Result<([u8; 32], u64)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    let mut seen = 0u64;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        left -= n as u64;
        seen += n as u64;
    }
    Ok((hasher.finalize().into(), seen))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Passes writes through and hashes them on the way.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // SHA-256("") and SHA-256("abc"), base64.
        assert_eq!(
            base64(&sha256(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn ranges_and_streams_agree() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let (digest, n) = sha256_of_range(&mut f, 100, 500_000).unwrap();
        assert_eq!(n, 500_000);
        assert_eq!(digest, sha256(&data[100..500_100]));
        let (_, short) = sha256_of_range(&mut f, 600_000, 500_000).unwrap();
        assert_eq!(short, 100_000);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        assert_eq!(w.finish(), sha256(&data));
    }
}
