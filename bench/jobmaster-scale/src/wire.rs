//! A lean client for the workers' gRPC stream: one HTTP/2 connection per simulated worker
//! (hyper's, without tonic's `Channel` and its buffer task), messages framed by hand, and the
//! worker list compared with the expected one as its bytes arrive, never held whole.
//!
//! Ten thousand simulated workers live in this one process, beside the job master on the same
//! cores. Through tonic's decoder each stream grows its own buffer to the list's size and keeps
//! it (1.3 GB of fresh pages at 10 000 workers, most of this process's CPU in the list phase):
//! that measured the load generator, not the job master. On the wire nothing changes: the job
//! master sees the same HTTP/2 requests, gRPC frames and protobuf messages as from an agent.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use t2_proto::{MasterToWorker, WorkerToMaster};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The workers' stream.
const ATTACH_PATH: &str = "/t2.jobmaster.v1.JobMaster/Attach";

/// Messages up to this size are decoded whole; a larger one must be a piece of the worker
/// list (`AllJoined`), which is compared as it streams in.
const DECODE_MAX: usize = 4096;

/// The largest message this client accepts (a bound, as tonic's 4 MiB default is).
const MESSAGE_MAX: usize = 4 << 20;

/// What the job master sent.
pub enum Received {
    /// A message, decoded.
    Message(MasterToWorker),
    /// Piece `piece` of `pieces` of the worker list; `matched` says whether its bytes are the
    /// expected ones at this point of the list.
    ListPiece {
        piece: u32,
        pieces: u32,
        matched: bool,
    },
}

/// An open workers' stream: what the job master sends, read as it comes.
pub struct Stream {
    body: Incoming,
    /// The rest of the last DATA frame.
    chunk: Bytes,
    /// Bytes consumed so far (to find a message's end).
    consumed: usize,
    /// The worker list's bytes compared so far (pieces come in order).
    list_offset: usize,
    /// Kept so that the connection stays open while the stream does.
    _send: hyper::client::conn::http2::SendRequest<OutBody>,
}

type OutBody = StreamBody<
    futures::stream::Map<
        ReceiverStream<WorkerToMaster>,
        fn(WorkerToMaster) -> Result<Frame<Bytes>, Infallible>,
    >,
>;

/// One message as a gRPC frame (uncompressed).
fn frame(msg: WorkerToMaster) -> Result<Frame<Bytes>, Infallible> {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode_raw(&mut buf);
    Ok(Frame::data(buf.freeze()))
}

/// Connects to `addr` (`http://HOST:PORT`), retrying a refused connection a few times.
async fn connect_tcp(authority: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let mut last = None;
    for attempt in 0..5u32 {
        match tokio::time::timeout(
            Duration::from_secs(20),
            tokio::net::TcpStream::connect(authority),
        )
        .await
        {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = Some(anyhow::Error::from(e)),
            Err(_) => last = Some(anyhow::anyhow!("no connection within 20s")),
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

/// Opens the workers' stream at `addr`; what `outgoing` yields is sent on it.
pub async fn attach(
    addr: &str,
    outgoing: mpsc::Receiver<WorkerToMaster>,
) -> anyhow::Result<Stream> {
    let authority = addr.strip_prefix("http://").unwrap_or(addr).to_string();
    let tcp = connect_tcp(&authority).await.context("cannot connect")?;
    tcp.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .context("HTTP/2 handshake")?;
    tokio::spawn(conn);
    let body: OutBody = StreamBody::new(ReceiverStream::new(outgoing).map(frame as fn(_) -> _));
    let request = http::Request::post(format!("http://{authority}{ATTACH_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)?;
    let response = send.send_request(request).await.context("attach")?;
    if response.status() != http::StatusCode::OK {
        bail!("attach answered HTTP {}", response.status());
    }
    // A refusal comes as a response with only headers, the status among them.
    if let Some(status) = response.headers().get("grpc-status") {
        if status != "0" {
            let message = response
                .headers()
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .unwrap_or("");
            bail!("attach refused: grpc-status {status:?} {message}");
        }
    }
    Ok(Stream {
        body: response.into_body(),
        chunk: Bytes::new(),
        consumed: 0,
        list_offset: 0,
        _send: send,
    })
}

impl Stream {
    /// The next DATA bytes; `None` at the end of the stream (after its trailers, checked).
    async fn fill(&mut self) -> anyhow::Result<bool> {
        while self.chunk.is_empty() {
            match self.body.frame().await {
                Some(Ok(f)) => match f.into_data() {
                    Ok(data) => self.chunk = data,
                    Err(f) => {
                        if let Some(t) = f.trailers_ref() {
                            let status = t.get("grpc-status").and_then(|s| s.to_str().ok());
                            if status != Some("0") {
                                let message = t
                                    .get("grpc-message")
                                    .and_then(|m| m.to_str().ok())
                                    .unwrap_or("");
                                bail!("stream ended with grpc-status {status:?}: {message}");
                            }
                        }
                    }
                },
                Some(Err(e)) => bail!("stream broke: {e}"),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn byte(&mut self) -> anyhow::Result<u8> {
        if !self.fill().await? {
            bail!("the stream ended inside a message");
        }
        self.consumed += 1;
        Ok(self.chunk.get_u8())
    }

    async fn varint(&mut self) -> anyhow::Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte().await?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("a varint of more than 10 bytes")
    }

    /// `n` bytes, copied out (for small messages only).
    async fn bytes(&mut self, n: usize) -> anyhow::Result<Bytes> {
        if self.chunk.len() >= n
            || (self.chunk.is_empty() && self.fill().await? && self.chunk.len() >= n)
        {
            self.consumed += n;
            return Ok(self.chunk.split_to(n));
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            if !self.fill().await? {
                bail!("the stream ended inside a message");
            }
            let take = (n - out.len()).min(self.chunk.len());
            out.extend_from_slice(&self.chunk.split_to(take));
            self.consumed += take;
        }
        Ok(out.freeze())
    }

    /// Consumes `n` bytes; says whether they equal `expected` (which may be shorter).
    async fn compare(&mut self, n: usize, expected: &[u8]) -> anyhow::Result<bool> {
        let mut same = expected.len() == n;
        let mut at = 0;
        while at < n {
            if !self.fill().await? {
                bail!("the stream ended inside the worker list");
            }
            let take = (n - at).min(self.chunk.len());
            let got = self.chunk.split_to(take);
            same = same && expected.get(at..at + take) == Some(&got[..]);
            at += take;
            self.consumed += take;
        }
        Ok(same)
    }

    /// The next message; `None` when the stream ends cleanly. `list` is the expected worker
    /// list, which `AllJoined` pieces are compared with.
    pub async fn next(&mut self, list: &[u8]) -> anyhow::Result<Option<Received>> {
        if !self.fill().await? {
            return Ok(None);
        }
        let head = self.bytes(5).await?;
        if head[0] != 0 {
            bail!("a compressed message, which this client did not ask for");
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MESSAGE_MAX {
            bail!("a message of {len} bytes, over {MESSAGE_MAX}");
        }
        if len <= DECODE_MAX {
            let body = self.bytes(len).await?;
            let msg = MasterToWorker::decode(body).context("cannot decode a message")?;
            if let Some(t2_proto::master_to_worker::Body::AllJoined(a)) = &msg.body {
                let end = self.list_offset + a.table.len();
                let matched = list.get(self.list_offset..end) == Some(&a.table[..]);
                self.list_offset = end;
                return Ok(Some(Received::ListPiece {
                    piece: a.piece,
                    pieces: a.pieces,
                    matched,
                }));
            }
            return Ok(Some(Received::Message(msg)));
        }
        // A large message: MasterToWorker { all_joined (5): AllJoined { table (2), piece (3),
        // pieces (4) } }, its fields in any order.
        let end = self.consumed + len;
        let key = self.varint().await?;
        if key != (5 << 3 | 2) {
            bail!("a message of {len} bytes that is not the worker list (key {key})");
        }
        let inner = self.varint().await? as usize;
        if self.consumed + inner != end {
            bail!("the worker list message's length does not add up");
        }
        let (mut piece, mut pieces, mut matched) = (0u32, 0u32, true);
        while self.consumed < end {
            let key = self.varint().await?;
            match (key >> 3, key & 7) {
                (2, 2) => {
                    let n = self.varint().await? as usize;
                    if self.consumed + n > end {
                        bail!("the worker list's table runs past its message");
                    }
                    let from = self.list_offset.min(list.len());
                    let to = (self.list_offset + n).min(list.len());
                    matched &= self.compare(n, &list[from..to]).await?;
                    self.list_offset += n;
                }
                (3, 0) => piece = self.varint().await? as u32,
                (4, 0) => pieces = self.varint().await? as u32,
                (field, wire) => bail!("unexpected field {field} (wire type {wire}) in AllJoined"),
            }
        }
        Ok(Some(Received::ListPiece {
            piece,
            pieces,
            matched,
        }))
    }
}
