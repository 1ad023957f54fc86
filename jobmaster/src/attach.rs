//! The workers' stream on the wire: tonic decodes what workers send, the job master frames what
//! it sends them itself, so that a buffer fanned out to every stream (the worker list, a user
//! message) goes out as that one shared buffer.
//!
//! Through tonic's own encoder every stream copies each message into its own buffer: when all
//! of 10 000 workers have joined, 10 000 copies of a 90 KB worker list are alive at once (they
//! live until the worker has read them), 900 MB for one list. [`frame`] instead cuts a message
//! whose large `bytes` field is shared into a small head it encodes (the gRPC frame header, the
//! other fields, the field's key and length) and the shared field itself, which every stream's
//! body hands to HTTP/2 as the same reference-counted [`Bytes`]; HTTP/2 writes it from there
//! (it chains large DATA payloads rather than copying them).
//!
//! [`Route`] serves `JobMaster/Attach` that way and passes every other call to tonic's
//! generated server.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use t2_proto::job_master_server::JobMasterServer;
use t2_proto::{master_to_worker::Body, MasterToWorker, WorkerToMaster};
use tokio::sync::mpsc;
use tonic::codec::{BufferSettings, Streaming};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

use crate::registry::Outgoing;
use crate::service::JobMasterService;

/// The path of the workers' stream.
pub const ATTACH_PATH: &str = "/t2.jobmaster.v1.JobMaster/Attach";

/// A shared field shorter than this is copied into the head like any other field: not worth a
/// second DATA chunk.
pub const SHARE_MIN_BYTES: usize = 1024;

/// What each worker stream's decoder holds to begin with (tonic's default is 8 KiB, 80 MB at
/// 10 000 workers): workers send heartbeats of a few bytes; a larger message grows it.
const DECODE_BUFFER_BYTES: usize = 1024;

/// Small messages queued together go out in one chunk of up to this many bytes (as tonic's
/// encoder gathers them).
const GATHER_BYTES: usize = 16 << 10;

/// One message as a gRPC frame: the head, and the shared bytes that follow it on the wire (a
/// reference to the caller's buffer, not a copy) when the message carries a large one.
pub fn frame(msg: &MasterToWorker) -> (Bytes, Option<Bytes>) {
    // Field numbers from jobmaster.proto: MasterToWorker.workers = 3 (ListWorkersResult.table
    // = 3), .all_joined = 5 (AllJoined.table = 2), .message = 8 (UserMessage.payload = 2).
    match &msg.body {
        Some(Body::AllJoined(a)) if a.table.len() >= SHARE_MIN_BYTES => {
            let rest = t2_proto::AllJoined {
                table: Bytes::new(),
                ..a.clone()
            };
            split(5, &rest, 2, &a.table)
        }
        Some(Body::Workers(w)) if w.table.len() >= SHARE_MIN_BYTES => {
            let rest = t2_proto::ListWorkersResult {
                table: Bytes::new(),
                ..w.clone()
            };
            split(3, &rest, 3, &w.table)
        }
        Some(Body::Message(m)) if m.payload.len() >= SHARE_MIN_BYTES => {
            let rest = t2_proto::UserMessage {
                payload: Bytes::new(),
                ..m.clone()
            };
            split(8, &rest, 2, &m.payload)
        }
        _ => {
            let len = msg.encoded_len();
            let mut head = BytesMut::with_capacity(5 + len);
            head.put_u8(0);
            head.put_u32(len as u32);
            msg.encode_raw(&mut head);
            (head.freeze(), None)
        }
    }
}

/// `MasterToWorker { <oneof_tag>: rest + { <field_tag>: shared } }` as a head and `shared`:
/// the field goes last, which protobuf allows (fields may come in any order).
fn split(
    oneof_tag: u32,
    rest: &impl Message,
    field_tag: u32,
    shared: &Bytes,
) -> (Bytes, Option<Bytes>) {
    let field_head = key_len(field_tag) + encoded_len_varint(shared.len() as u64);
    let inner = rest.encoded_len() + field_head + shared.len();
    let outer = key_len(oneof_tag) + encoded_len_varint(inner as u64) + inner;
    let mut head = BytesMut::with_capacity(5 + outer - shared.len());
    head.put_u8(0);
    head.put_u32(outer as u32);
    encode_key(oneof_tag, WireType::LengthDelimited, &mut head);
    encode_varint(inner as u64, &mut head);
    rest.encode_raw(&mut head);
    encode_key(field_tag, WireType::LengthDelimited, &mut head);
    encode_varint(shared.len() as u64, &mut head);
    (head.freeze(), Some(shared.clone()))
}

/// What a worker's stream sends: the messages of its outbox, framed by [`frame`], then the
/// stream's status as trailers (OK when the job master drops its side).
pub struct OutBody {
    rx: mpsc::Receiver<Outgoing>,
    /// The shared part of the last message, sent next.
    tail: Option<Bytes>,
    /// A message taken from the queue but not gathered into the previous chunk.
    held: Option<Outgoing>,
    done: bool,
}

impl OutBody {
    /// The body of a stream whose messages come from `rx`.
    pub fn new(rx: mpsc::Receiver<Outgoing>) -> Self {
        Self {
            rx,
            tail: None,
            held: None,
            done: false,
        }
    }

    fn trailers(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        let mut map = http::HeaderMap::new();
        match status.add_header(&mut map) {
            Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(map)))),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Some(tail) = this.tail.take() {
            return Poll::Ready(Some(Ok(Frame::data(tail))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let first = match this.held.take() {
            Some(m) => m,
            None => match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return this.trailers(&Status::ok("")),
                Poll::Ready(Some(m)) => m,
            },
        };
        let msg = match first {
            Ok(m) => m,
            Err(status) => return this.trailers(&status),
        };
        let (head, tail) = frame(&msg);
        if tail.is_some() {
            this.tail = tail;
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        // Gather the small messages already queued behind it into the same chunk.
        let mut chunk = BytesMut::from(head);
        while chunk.len() < GATHER_BYTES {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(m))) => {
                    let (head, tail) = frame(&m);
                    if tail.is_some() {
                        this.held = Some(Ok(m));
                        break;
                    }
                    chunk.extend_from_slice(&head);
                }
                Poll::Ready(other) => {
                    // An error or the end: after this chunk.
                    this.held = other;
                    if this.held.is_none() {
                        this.held = Some(Err(Status::ok("")));
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
    }
}

/// The job master's gRPC service as served: `Attach` through [`OutBody`], the rest through
/// tonic's generated server.
#[derive(Clone)]
pub struct Route {
    service: JobMasterService,
    inner: JobMasterServer<JobMasterService>,
    max_decoding: usize,
}

impl Route {
    /// Serves `service`, accepting worker messages of at most `max_decoding` bytes.
    pub fn new(service: JobMasterService, max_decoding: usize) -> Self {
        let inner = JobMasterServer::new(service.clone())
            .max_decoding_message_size(max_decoding)
            .max_encoding_message_size(usize::MAX);
        Self {
            service,
            inner,
            max_decoding,
        }
    }
}

impl NamedService for Route {
    const NAME: &'static str = "t2.jobmaster.v1.JobMaster";
}

impl Service<http::Request<tonic::body::Body>> for Route {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != ATTACH_PATH {
            return self.inner.call(req);
        }
        let service = self.service.clone();
        let max = self.max_decoding;
        Box::pin(async move {
            let decoder = tonic_prost::ProstCodec::<MasterToWorker, WorkerToMaster>::raw_decoder(
                BufferSettings::new(DECODE_BUFFER_BYTES, DECODE_BUFFER_BYTES),
            );
            let inbound = Streaming::new_request(decoder, req.into_body(), None, Some(max));
            Ok(match service.open(inbound).await {
                Ok(rx) => {
                    let mut response =
                        http::Response::new(tonic::body::Body::new(OutBody::new(rx)));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    response
                }
                Err(status) => status.into_http(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use t2_proto::{AllJoined, BarrierOutcome, ListWorkersResult, UserMessage};

    /// Joins a frame's parts, checks the gRPC header and decodes the message.
    fn decode(head: &Bytes, tail: &Option<Bytes>) -> MasterToWorker {
        let mut all = head.to_vec();
        if let Some(t) = tail {
            all.extend_from_slice(t);
        }
        assert_eq!(all[0], 0, "not compressed");
        let len = u32::from_be_bytes([all[1], all[2], all[3], all[4]]) as usize;
        assert_eq!(len, all.len() - 5, "the header gives the message's length");
        MasterToWorker::decode(&all[5..]).unwrap()
    }

    fn big(n: usize) -> Bytes {
        Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn a_large_shared_field_is_sent_as_the_same_buffer_and_decodes_to_the_same_message() {
        let table = big(200_000);
        for body in [
            Body::AllJoined(AllJoined {
                table: table.clone(),
                piece: 1,
                pieces: 3,
            }),
            Body::Workers(ListWorkersResult {
                request_id: 77,
                table: table.clone(),
                piece: 0,
                pieces: 1,
            }),
            Body::Message(UserMessage {
                request_id: 5,
                payload: table.clone(),
            }),
        ] {
            let msg = MasterToWorker { body: Some(body) };
            let (head, tail) = frame(&msg);
            let tail_ref = tail.as_ref().expect("the field is shared");
            assert_eq!(tail_ref.as_ptr(), table.as_ptr(), "a reference, not a copy");
            assert!(head.len() < 32, "{} bytes of head", head.len());
            assert_eq!(decode(&head, &tail), msg);
        }
    }

    #[test]
    fn small_messages_are_framed_whole() {
        for body in [
            Body::Barrier(BarrierOutcome {
                request_id: 3,
                barrier_type: 0,
                result: 1,
                reason: "ok".into(),
            }),
            Body::AllJoined(AllJoined {
                table: big(10),
                piece: 0,
                pieces: 1,
            }),
            Body::Message(UserMessage {
                request_id: 1,
                payload: Bytes::new(),
            }),
        ] {
            let msg = MasterToWorker { body: Some(body) };
            let (head, tail) = frame(&msg);
            assert!(tail.is_none());
            assert_eq!(decode(&head, &tail), msg);
        }
        let empty = MasterToWorker { body: None };
        assert_eq!(decode(&frame(&empty).0, &None), empty);
    }

    /// Reads a body to its end: its data chunks and its trailers.
    async fn drain(mut body: OutBody) -> (Vec<Bytes>, http::HeaderMap) {
        use http_body_util::BodyExt;
        let mut chunks = Vec::new();
        loop {
            let frame = body.frame().await.expect("trailers end the body").unwrap();
            match frame.into_data() {
                Ok(data) => chunks.push(data),
                Err(frame) => return (chunks, frame.into_trailers().unwrap()),
            }
        }
    }

    /// Cuts the joined chunks back into messages.
    fn messages(chunks: &[Bytes]) -> Vec<MasterToWorker> {
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut out = Vec::new();
        let mut at = 0;
        while at < all.len() {
            let len =
                u32::from_be_bytes([all[at + 1], all[at + 2], all[at + 3], all[at + 4]]) as usize;
            out.push(MasterToWorker::decode(&all[at + 5..at + 5 + len]).unwrap());
            at += 5 + len;
        }
        out
    }

    fn barrier(k: u64) -> MasterToWorker {
        MasterToWorker {
            body: Some(Body::Barrier(BarrierOutcome {
                request_id: k,
                barrier_type: 0,
                result: 1,
                reason: String::new(),
            })),
        }
    }

    #[tokio::test]
    async fn a_body_gathers_small_messages_sends_the_shared_list_as_is_and_ends_ok() {
        let table = big(50_000);
        let list = MasterToWorker {
            body: Some(Body::AllJoined(AllJoined {
                table: table.clone(),
                piece: 0,
                pieces: 1,
            })),
        };
        let (tx, rx) = mpsc::channel(16);
        for m in [barrier(1), barrier(2), list.clone(), barrier(3)] {
            tx.send(Ok(Box::new(m))).await.unwrap();
        }
        drop(tx);
        let (chunks, trailers) = drain(OutBody::new(rx)).await;
        assert_eq!(
            messages(&chunks),
            vec![barrier(1), barrier(2), list, barrier(3)]
        );
        assert!(
            chunks.iter().any(|c| c.as_ptr() == table.as_ptr()),
            "the list went out as the shared buffer"
        );
        assert_eq!(
            chunks.len(),
            4,
            "two barriers gathered, list head, list, barrier"
        );
        assert_eq!(trailers["grpc-status"], "0");
    }

    #[tokio::test]
    async fn a_body_ended_by_a_status_sends_it_as_trailers() {
        let (tx, rx) = mpsc::channel(16);
        tx.send(Ok(Box::new(barrier(1)))).await.unwrap();
        tx.send(Err(Status::deadline_exceeded("worker 3 is silent")))
            .await
            .unwrap();
        let (chunks, trailers) = drain(OutBody::new(rx)).await;
        assert_eq!(messages(&chunks), vec![barrier(1)]);
        assert_eq!(trailers["grpc-status"], "4");
        assert_eq!(trailers["grpc-message"], "worker%203%20is%20silent");
    }
}
