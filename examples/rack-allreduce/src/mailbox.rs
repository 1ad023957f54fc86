//! Point-to-point messages between workers over their own TCP listeners: every message is one
//! connection carrying one line `TAG FROM N V1 … VN`; a thread accepts them into a mailbox that
//! `recv` waits on. Each send is counted as in-rack or across racks.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a send keeps trying to reach a peer, and a receive waits.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Messages received, by (tag, sender).
#[derive(Default)]
struct Inbox {
    messages: Mutex<HashMap<(String, u32), Vec<u64>>>,
    arrived: Condvar,
}

/// Messages sent: all, and those that crossed a rack boundary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent.
    pub sent: u64,
    /// Of those, to a worker in another rack.
    pub across: u64,
}

/// A worker's end of the message exchange.
pub struct Mailbox {
    inbox: Arc<Inbox>,
    me: u32,
}

impl Mailbox {
    /// Starts accepting messages on `listener`.
    pub fn start(listener: TcpListener, me: u32) -> Self {
        let inbox = Arc::new(Inbox::default());
        let shared = inbox.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some((key, values)) = read_message(stream) {
                    if let Ok(mut m) = shared.messages.lock() {
                        m.insert(key, values);
                        shared.arrived.notify_all();
                    }
                }
            }
        });
        Self { inbox, me }
    }

    /// Sends `values` tagged `tag` to `addr` (retrying while the peer is not listening yet)
    /// and counts it in `counts` (across racks when `across`).
    pub fn send(
        &self,
        addr: (&str, u16),
        tag: &str,
        values: &[u64],
        across: bool,
        counts: &mut Counts,
    ) -> Result<()> {
        let mut line = format!("{tag} {} {}", self.me, values.len());
        for v in values {
            line.push(' ');
            line.push_str(&v.to_string());
        }
        line.push('\n');
        let started = Instant::now();
        loop {
            match TcpStream::connect(addr).and_then(|mut s| s.write_all(line.as_bytes())) {
                Ok(()) => break,
                Err(e) if started.elapsed() < DEADLINE => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot send '{tag}' to {}:{} within {DEADLINE:?}",
                            addr.0, addr.1
                        )
                    })
                }
            }
        }
        counts.sent += 1;
        if across {
            counts.across += 1;
        }
        Ok(())
    }

    /// Waits for the message tagged `tag` from worker `from`.
    pub fn recv(&self, tag: &str, from: u32) -> Result<Vec<u64>> {
        let key = (tag.to_string(), from);
        let deadline = Instant::now() + DEADLINE;
        let mut m = self
            .inbox
            .messages
            .lock()
            .map_err(|_| anyhow::anyhow!("mailbox poisoned"))?;
        loop {
            if let Some(v) = m.remove(&key) {
                return Ok(v);
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("no '{tag}' from worker {from} within {DEADLINE:?}");
            }
            m = self
                .inbox
                .arrived
                .wait_timeout(m, deadline - now)
                .map_err(|_| anyhow::anyhow!("mailbox poisoned"))?
                .0;
        }
    }
}

/// One message from a connection: `TAG FROM N V1 … VN`.
fn read_message(stream: TcpStream) -> Option<((String, u32), Vec<u64>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let tag = parts.next()?.to_string();
    let from: u32 = parts.next()?.parse().ok()?;
    let n: usize = parts.next()?.parse().ok()?;
    let values: Vec<u64> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    (values.len() == n).then_some(((tag, from), values))
}
