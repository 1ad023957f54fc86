//! sha256 while writing, with a size limit; sha256 of a reader.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// A writer that hashes and counts what goes through it and refuses to go over `limit`.
/// The count is shared, so a caller whose writer was moved into an encoder can still tell a
/// limit error from any other.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: Rc<Cell<u64>>,
    limit: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`; `written` receives the number of bytes offered so far.
    pub(crate) fn new(inner: W, limit: u64, written: Rc<Cell<u64>>) -> Self {
        written.set(0);
        Self {
            inner,
            hasher: Sha256::new(),
            written,
            limit,
        }
    }

    /// The lowercase hex sha256, the size, and the inner writer.
    pub(crate) fn finish(self) -> (String, u64, W) {
        (
            hex::encode(self.hasher.finalize()),
            self.written.get(),
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.written.get().saturating_add(buf.len() as u64);
        if total > self.limit {
            self.written.set(total);
            return Err(io::Error::other(format!(
                "over the limit of {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written.set(self.written.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex sha256 and length of everything `r` yields.
pub(crate) fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_and_limits() {
        let count = Rc::new(Cell::new(0));
        let mut w = HashingWriter::new(Vec::new(), 3, count.clone());
        w.write_all(b"abc").expect("fits");
        let (sha, size, inner) = w.finish();
        assert_eq!(
            (sha.as_str(), size, inner.as_slice()),
            (ABC, 3, &b"abc"[..])
        );
        let mut w = HashingWriter::new(Vec::new(), 3, count.clone());
        assert!(w.write_all(b"abcd").is_err());
        assert_eq!(count.get(), 4);
        assert_eq!(
            sha256_reader(&b"abc"[..]).expect("hash"),
            (ABC.to_string(), 3)
        );
    }
}
