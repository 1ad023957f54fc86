//! A reader that caps how much the tar parser may read on its own (headers, long names,
//! extended headers, the end of the stream), so a hostile archive cannot make it buffer
//! gigabytes; entry data is read by the writer, which counts it against the size limit.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Most bytes the parser may read to reach the next entry.
pub(super) const HEADER_BUDGET: u64 = 1 << 20;

/// The shared switch: `Some(n)` lets `n` more bytes through, `None` lets everything through.
#[derive(Debug, Default)]
pub(super) struct Budget {
    left: Cell<Option<u64>>,
    tripped: Cell<bool>,
}

impl Budget {
    /// Allows `n` more bytes (or any number, with `None`).
    pub(super) fn set(&self, n: Option<u64>) {
        self.left.set(n);
    }

    /// True once a read was refused.
    pub(super) fn tripped(&self) -> bool {
        self.tripped.get()
    }
}

/// Reads `inner` within the budget.
pub(super) struct Guarded<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R> Guarded<R> {
    /// Wraps `inner`.
    pub(super) fn new(inner: R, budget: Rc<Budget>) -> Self {
        Self { inner, budget }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.budget.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 && !buf.is_empty() {
            self.budget.tripped.set(true);
            return Err(io::Error::other("read budget exhausted"));
        }
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.budget.left.set(Some(left - n as u64));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_budget() {
        let budget = Rc::new(Budget::default());
        let mut r = Guarded::new(&[7u8; 10][..], budget.clone());
        budget.set(Some(4));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).expect("read"), 4);
        assert!(r.read(&mut buf).is_err());
        assert!(budget.tripped());
        budget.set(None);
        assert_eq!(r.read(&mut buf).expect("read"), 6);
    }
}
