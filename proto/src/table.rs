//! The worker list on the wire: a compact [`WorkerTable`] (each host and node once, columns of
//! steps from one worker to the next), zlib-compressed, encoded once, shared by every stream it
//! goes to, and cut into pieces of at most [`PIECE_BYTES`] so that no gRPC message nears the
//! 4 MiB default limit, whatever the number of workers.
//!
//! Every worker receives the whole list, so what one list weighs is paid N times when N workers
//! join: 10 000 pods (an address each, 16 a node) make a 200 KB table, 2 GB leaving the job
//! master; compressed, 40 KB and 400 MB.

use std::collections::HashMap;
use std::io::{Read, Write};

use bytes::Bytes;
use flate2::{read::ZlibDecoder, write::ZlibEncoder, Compression};
use prost::Message;

use crate::{NodeInfo, WorkerInfo, WorkerTable};

/// Largest piece of an encoded worker table in one message.
pub const PIECE_BYTES: usize = 1 << 20;

/// Largest worker table a receiver accepts, compressed or unpacked (a bound on what it
/// buffers): far above a real job's (100 000 pods: about 2 MB unpacked).
pub const MAX_TABLE_BYTES: usize = 256 << 20;

/// A worker table that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The bytes are not a WorkerTable.
    #[error("the worker list from the job master cannot be decoded: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The bytes are not zlib data, or unpack to more than [`MAX_TABLE_BYTES`].
    #[error("the worker list from the job master cannot be unpacked: {0}")]
    Unpack(String),
    /// The table decodes but does not hold together.
    #[error("the worker list from the job master is inconsistent: {0}")]
    Inconsistent(String),
    /// Pieces came out of order or too many.
    #[error("the worker list from the job master arrived out of order: {0}")]
    Pieces(String),
}

/// Encodes `workers` (in the order given) as a compressed table.
pub fn encode(workers: &[WorkerInfo]) -> Bytes {
    let mut t = WorkerTable::default();
    let mut hosts: HashMap<&str, u32> = HashMap::new();
    let mut nodes: HashMap<NodeKey<'_>, u32> = HashMap::new();
    let (mut id, mut host, mut port, mut node) = (0u32, 0u32, 0u32, 0u32);
    for w in workers {
        let h = *hosts.entry(w.host.as_str()).or_insert_with(|| {
            t.hosts.push(w.host.clone());
            t.hosts.len() as u32 - 1
        });
        let n = w.node.as_ref();
        let key = NodeKey(
            n.map_or("", |n| &n.node_ip),
            n.map_or("", |n| &n.rack),
            n.map_or("", |n| &n.datacenter),
        );
        let d = *nodes.entry(key).or_insert_with(|| {
            t.nodes.push(n.cloned().unwrap_or_default());
            t.nodes.len() as u32 - 1
        });
        t.id_delta.push(w.worker_id.wrapping_sub(id));
        t.host_step.push(step(host, h));
        t.port_step.push(step(port, w.port));
        t.node_step.push(step(node, d));
        (id, host, port, node) = (w.worker_id, h, w.port, d);
        t.restart_count.push(w.restart_count);
        t.state.push(w.state);
        t.agent_port.push(w.agent_port);
    }
    if t.agent_port.iter().all(|&p| p == 0) {
        t.agent_port.clear();
    }
    let raw = t.encode_to_vec();
    // Fast compression: the table is made again whenever the registry changes, and its runs of
    // equal steps are what matters, not the last few per cent.
    let mut z = ZlibEncoder::new(Vec::with_capacity(raw.len() / 4 + 64), Compression::fast());
    match z.write_all(&raw).and_then(|()| z.finish()) {
        Ok(packed) => Bytes::from(packed),
        // Writing into a Vec cannot fail.
        Err(e) => unreachable!("compressing into memory failed: {e}"),
    }
}

fn step(from: u32, to: u32) -> i64 {
    i64::from(to) - i64::from(from)
}

/// `value` moved by `step`, if still a u32.
fn stepped(value: u32, step: i64, what: &str, i: usize) -> Result<u32, TableError> {
    u32::try_from(i64::from(value) + step)
        .map_err(|_| TableError::Inconsistent(format!("entry {i} steps its {what} out of range")))
}

#[derive(PartialEq, Eq, Hash)]
struct NodeKey<'a>(&'a str, &'a str, &'a str);

/// Unpacks the zlib data of a table, refusing more than [`MAX_TABLE_BYTES`].
fn unpack(bytes: &[u8]) -> Result<Vec<u8>, TableError> {
    let mut raw = Vec::with_capacity(bytes.len().saturating_mul(4).min(MAX_TABLE_BYTES));
    ZlibDecoder::new(bytes)
        .take(MAX_TABLE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| TableError::Unpack(e.to_string()))?;
    if raw.len() > MAX_TABLE_BYTES {
        return Err(TableError::Unpack(format!(
            "it unpacks to more than {MAX_TABLE_BYTES} bytes"
        )));
    }
    Ok(raw)
}

/// Decodes a whole (compressed) table back into the worker list.
pub fn decode(bytes: &[u8]) -> Result<Vec<WorkerInfo>, TableError> {
    let t = WorkerTable::decode(unpack(bytes)?.as_slice())?;
    let n = t.id_delta.len();
    for (name, len) in [
        ("host_step", t.host_step.len()),
        ("port_step", t.port_step.len()),
        ("node_step", t.node_step.len()),
        ("restart_count", t.restart_count.len()),
        ("state", t.state.len()),
        (
            "agent_port",
            if t.agent_port.is_empty() {
                n
            } else {
                t.agent_port.len()
            },
        ),
    ] {
        if len != n {
            return Err(TableError::Inconsistent(format!(
                "{n} workers but {len} {name} entries"
            )));
        }
    }
    let mut out = Vec::with_capacity(n);
    let (mut id, mut host, mut port, mut node) = (0u32, 0u32, 0u32, 0u32);
    for i in 0..n {
        id = id.wrapping_add(t.id_delta[i]);
        host = stepped(host, t.host_step[i], "host", i)?;
        port = stepped(port, t.port_step[i], "port", i)?;
        node = stepped(node, t.node_step[i], "node", i)?;
        let host_name = t
            .hosts
            .get(host as usize)
            .ok_or_else(|| TableError::Inconsistent(format!("worker {id} names host #{host}")))?;
        let node_info: &NodeInfo = t
            .nodes
            .get(node as usize)
            .ok_or_else(|| TableError::Inconsistent(format!("worker {id} names node #{node}")))?;
        out.push(WorkerInfo {
            worker_id: id,
            host: host_name.clone(),
            port,
            node: Some(node_info.clone()),
            restart_count: t.restart_count[i],
            state: t.state[i],
            agent_port: t.agent_port.get(i).copied().unwrap_or(0),
        });
    }
    Ok(out)
}

/// `table` cut into pieces of at most [`PIECE_BYTES`] (views of the same buffer, not copies);
/// an empty table is one empty piece.
pub fn pieces(table: &Bytes) -> Vec<Bytes> {
    if table.is_empty() {
        return vec![Bytes::new()];
    }
    (0..table.len())
        .step_by(PIECE_BYTES)
        .map(|start| table.slice(start..(start + PIECE_BYTES).min(table.len())))
        .collect()
}

/// Joins the pieces of one table as they arrive, in order.
#[derive(Debug, Default)]
pub struct Assembler {
    buf: Vec<u8>,
    next: u32,
}

impl Assembler {
    /// Takes piece `piece` of `pieces`; returns the whole table's bytes after the last one.
    pub fn push(
        &mut self,
        piece: u32,
        pieces: u32,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, TableError> {
        if piece != self.next || piece >= pieces.max(1) {
            let want = self.next;
            self.next = 0;
            self.buf.clear();
            return Err(TableError::Pieces(format!(
                "got piece {piece} of {pieces}, expected piece {want}"
            )));
        }
        if self.buf.len() + bytes.len() > MAX_TABLE_BYTES {
            self.next = 0;
            self.buf.clear();
            return Err(TableError::Pieces(format!(
                "more than {MAX_TABLE_BYTES} bytes"
            )));
        }
        self.buf.extend_from_slice(bytes);
        if piece + 1 == pieces.max(1) {
            self.next = 0;
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        self.next += 1;
        Ok(None)
    }
}

/// Decodes a list that came in one piece (tests, small jobs).
pub fn decode_single(piece: u32, pieces: u32, bytes: &[u8]) -> Result<Vec<WorkerInfo>, TableError> {
    match Assembler::default().push(piece, pieces, bytes)? {
        Some(all) => decode(&all),
        None => Err(TableError::Pieces(format!(
            "piece {piece} of {pieces} is not the whole list"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: u32, host: &str, rack: &str) -> WorkerInfo {
        WorkerInfo {
            worker_id: id,
            host: host.into(),
            port: 40000 + id,
            node: Some(NodeInfo {
                node_ip: host.into(),
                rack: rack.into(),
                datacenter: String::new(),
            }),
            restart_count: id % 3,
            state: 1 + (id % 2) as i32,
            agent_port: if id == 5 { 7000 } else { 0 },
        }
    }

    #[test]
    fn a_table_round_trips_with_gaps_in_ids_and_several_hosts() {
        let workers: Vec<WorkerInfo> = [0, 1, 2, 5, 9]
            .iter()
            .map(|&i| worker(i, if i < 3 { "10.0.0.1" } else { "10.0.0.2" }, "r1"))
            .collect();
        let bytes = encode(&workers);
        assert_eq!(decode(&bytes).unwrap(), workers);
        let t = WorkerTable::decode(unpack(&bytes).unwrap().as_slice()).unwrap();
        assert_eq!(t.hosts.len(), 2);
        assert_eq!(t.nodes.len(), 2);
    }

    /// Worker `id` of a job of pods with an address each, 16 pods a node, one worker port
    /// for all (Kubernetes gives each node a /24 of pod addresses).
    fn pod(id: u32) -> WorkerInfo {
        let n = id / 16;
        WorkerInfo {
            worker_id: id,
            host: format!("10.{}.{}.{}", 64 + n / 256, n % 256, 2 + id % 16),
            port: 7000,
            node: Some(NodeInfo {
                node_ip: format!("192.168.{}.{}", n / 256, n % 256),
                ..Default::default()
            }),
            restart_count: 0,
            state: 1,
            agent_port: 0,
        }
    }

    fn pack(t: &WorkerTable) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
        z.write_all(&t.encode_to_vec()).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn ten_thousand_workers_on_one_host_take_well_under_a_byte_each() {
        let workers: Vec<WorkerInfo> = (0..10_000).map(|i| worker(i, "127.0.0.1", "")).collect();
        let bytes = encode(&workers);
        assert!(bytes.len() < 10_000, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), workers);
    }

    #[test]
    fn ten_thousand_pods_take_under_a_quarter_of_the_plain_table() {
        let workers: Vec<WorkerInfo> = (0..10_000).map(pod).collect();
        let bytes = encode(&workers);
        let plain = WorkerTable::decode(unpack(&bytes).unwrap().as_slice())
            .unwrap()
            .encoded_len();
        assert!(plain > 200_000, "plain table {plain} bytes");
        assert!(bytes.len() * 4 < plain, "{} of {plain} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), workers);
    }

    #[test]
    fn workers_in_any_order_and_with_every_field_set_round_trip() {
        let workers: Vec<WorkerInfo> = [9, 2, 5, 0, 1]
            .iter()
            .map(|&i| {
                let mut w = worker(i, &format!("h{}", i % 3), &format!("r{}", i % 2));
                w.port = if i == 5 { u32::MAX } else { i };
                w
            })
            .collect();
        assert_eq!(decode(&encode(&workers)).unwrap(), workers);
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn bytes_that_are_not_a_compressed_table_are_refused() {
        let plain = WorkerTable::default().encode_to_vec();
        for bad in [&b"not zlib at all"[..], &plain, &[0x78, 0x01, 0xff]] {
            let err = decode(bad).unwrap_err();
            assert!(err.to_string().contains("cannot be"), "{err}");
        }
    }

    #[test]
    fn a_table_that_unpacks_past_the_bound_is_refused_without_unpacking_it_all() {
        // 300 MB of zeros pack into about 300 KB.
        let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            z.write_all(&zeros).unwrap();
        }
        let bomb = z.finish().unwrap();
        let err = decode(&bomb).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn a_step_out_of_range_is_refused() {
        let t = WorkerTable {
            hosts: vec!["h".into()],
            nodes: vec![NodeInfo::default()],
            id_delta: vec![0],
            host_step: vec![0],
            port_step: vec![-1],
            node_step: vec![0],
            restart_count: vec![0],
            state: vec![1],
            ..Default::default()
        };
        let err = decode(&pack(&t)).unwrap_err();
        assert!(
            err.to_string()
                .contains("entry 0 steps its port out of range"),
            "{err}"
        );
    }

    #[test]
    fn pieces_join_back_and_out_of_order_pieces_are_refused() {
        let table = Bytes::from(vec![7u8; PIECE_BYTES * 2 + 10]);
        let parts = pieces(&table);
        assert_eq!(parts.len(), 3);
        let mut a = Assembler::default();
        let n = parts.len() as u32;
        assert!(a.push(0, n, &parts[0]).unwrap().is_none());
        assert!(a.push(1, n, &parts[1]).unwrap().is_none());
        assert_eq!(a.push(2, n, &parts[2]).unwrap().unwrap(), table.to_vec());
        let err = a.push(1, n, &parts[1]).unwrap_err();
        assert!(err.to_string().contains("expected piece 0"), "{err}");
    }

    #[test]
    fn a_table_naming_a_missing_host_is_refused() {
        let t = WorkerTable {
            hosts: vec![],
            nodes: vec![NodeInfo::default()],
            id_delta: vec![0],
            host_step: vec![3],
            port_step: vec![1],
            node_step: vec![0],
            restart_count: vec![0],
            state: vec![1],
            agent_port: vec![],
        };
        let err = decode(&pack(&t)).unwrap_err();
        assert!(err.to_string().contains("names host #3"), "{err}");
    }
}
