//! A parallel, deterministic gzip writer. The stream is cut into fixed 1 MiB blocks that are
//! deflated on all cores, each primed with the previous block's last 32 KiB (as pigz does), so
//! the ratio stays that of one stream and the bytes depend only on the input — never on the
//! number of threads. Blocks whose samples do not compress (jars, images, archives already in
//! the job) are stored as they are instead of being deflated for nothing. The result is one
//! ordinary gzip member that any gunzip reads.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input bytes per block.
const BLOCK: usize = 1 << 20;
/// Deflate's window: how much of the previous block primes the next.
const WINDOW: usize = 32 << 10;
/// Bytes of each sample taken to decide whether a block compresses.
const SAMPLE: usize = 16 << 10;
/// A block whose samples shrink less than this (compressed / original) is stored.
const STORE_RATIO: f64 = 0.97;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A compressed block and the CRC of its input, or why it failed.
type BlockResult = io::Result<(Vec<u8>, Crc)>;

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    level: u32,
    done: Sender<BlockResult>,
}

/// A gzip encoder that compresses on `threads` threads.
pub(crate) struct ParGzEncoder<W: Write> {
    out: Option<W>,
    buf: Vec<u8>,
    tail: Vec<u8>,
    level: u32,
    crc: Crc,
    jobs: Option<Sender<Job>>,
    pending: VecDeque<Receiver<BlockResult>>,
    max_pending: usize,
    workers: Vec<JoinHandle<()>>,
    header_written: bool,
}

impl<W: Write> ParGzEncoder<W> {
    /// An encoder writing to `out` at `level` (0–9) on every available core.
    pub(crate) fn new(out: W, level: Compression) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = compress_block(&job.data, &job.dict, job.level, job.last);
                    let _ = job.done.send(result);
                })
            })
            .collect();
        Self {
            out: Some(out),
            buf: Vec::with_capacity(BLOCK),
            tail: Vec::new(),
            level: level.level(),
            crc: Crc::new(),
            jobs: Some(tx),
            pending: VecDeque::new(),
            max_pending: threads * 2,
            workers,
            header_written: false,
        }
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))
    }

    /// Hands the buffered block to a worker.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.out()?.write_all(&HEADER)?;
            self.header_written = true;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.tail);
        self.tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let (done, result) = channel();
        let job = Job {
            data,
            dict,
            last,
            level: self.level,
            done,
        };
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))?
            .send(job)
            .map_err(|_| io::Error::other("the compression threads stopped"))?;
        self.pending.push_back(result);
        while self.pending.len() > self.max_pending {
            self.drain_one()?;
        }
        Ok(())
    }

    /// Writes the oldest block's result.
    fn drain_one(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let (bytes, crc) = rx
            .recv()
            .map_err(|_| io::Error::other("a compression thread failed"))??;
        self.crc.combine(&crc);
        self.out()?.write_all(&bytes)
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let (sum, amount) = (self.crc.sum(), self.crc.amount());
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))?;
        out.write_all(&sum.to_le_bytes())?;
        out.write_all(&amount.to_le_bytes())?;
        Ok(out)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzEncoder<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// True when samples from the start, middle and end of `data` all fail to shrink.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4 * SAMPLE {
        return false;
    }
    let starts = [0, data.len() / 2, data.len() - SAMPLE];
    starts.iter().all(|&s| {
        let sample = &data[s..s + SAMPLE];
        let mut c = Compress::new(Compression::fast(), false);
        let mut out = Vec::with_capacity(SAMPLE + 1024);
        match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
            Ok(_) => out.len() as f64 >= sample.len() as f64 * STORE_RATIO,
            Err(_) => false,
        }
    })
}

/// Deflates one block (raw, primed with `dict`); ends it on a byte boundary (sync flush), or
/// ends the stream when `last`. Returns the bytes and the block's CRC.
fn compress_block(data: &[u8], dict: &[u8], level: u32, last: bool) -> BlockResult {
    let mut crc = Crc::new();
    crc.update(data);
    let level = if level > 0 && incompressible(data) {
        0
    } else {
        level
    };
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() && level > 0 {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 256);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let room_left = out.capacity() > out.len();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if all_in && room_left && !last => break,
            _ => {}
        }
    }
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = ParGzEncoder::new(Vec::new(), Compression::default());
        for chunk in data.chunks(77_777) {
            e.write_all(chunk).expect("write");
        }
        e.finish().expect("finish")
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let mut data = Vec::new();
        for i in 0..400_000u32 {
            data.extend_from_slice(format!("line {i} of some text\n").as_bytes());
        }
        let mut x = 0x1234_5678u64;
        for _ in 0..(3 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(x as u8);
        }
        let a = gzip(&data);
        assert_eq!(gunzip(&a), data);
        assert_eq!(a, gzip(&data));
        assert!(
            a.len() < data.len() * 6 / 10,
            "{} of {}",
            a.len(),
            data.len()
        );
        assert_eq!(gunzip(&gzip(b"")), b"");
        assert_eq!(gunzip(&gzip(b"hello")), b"hello");
    }
}
