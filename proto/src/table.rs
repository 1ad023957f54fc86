//! The worker list on the wire: a compact [`WorkerTable`] encoded once, shared by every stream
//! it goes to, and cut into pieces of at most [`PIECE_BYTES`] so that no gRPC message nears
//! the 4 MiB default limit, whatever the number of workers.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use crate::{NodeInfo, WorkerInfo, WorkerTable};

/// Largest piece of an encoded worker table in one message.
pub const PIECE_BYTES: usize = 1 << 20;

/// Largest worker table a receiver accepts (a bound on what it buffers): far above the
/// ~9 bytes a worker of a real job (100 000 workers: under 1 MiB).
pub const MAX_TABLE_BYTES: usize = 256 << 20;

/// A worker table that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The bytes are not a WorkerTable.
    #[error("the worker list from the job master cannot be decoded: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The table decodes but does not hold together.
    #[error("the worker list from the job master is inconsistent: {0}")]
    Inconsistent(String),
    /// Pieces came out of order or too many.
    #[error("the worker list from the job master arrived out of order: {0}")]
    Pieces(String),
}

/// Encodes `workers` (in worker ID order) as a table.
pub fn encode(workers: &[WorkerInfo]) -> Bytes {
    let mut t = WorkerTable::default();
    let mut hosts: HashMap<&str, u32> = HashMap::new();
    let mut nodes: HashMap<NodeKey<'_>, u32> = HashMap::new();
    let mut previous = 0u32;
    for w in workers {
        let host = *hosts.entry(w.host.as_str()).or_insert_with(|| {
            t.hosts.push(w.host.clone());
            t.hosts.len() as u32 - 1
        });
        let n = w.node.as_ref();
        let key = NodeKey(
            n.map_or("", |n| &n.node_ip),
            n.map_or("", |n| &n.rack),
            n.map_or("", |n| &n.datacenter),
        );
        let node = *nodes.entry(key).or_insert_with(|| {
            t.nodes.push(n.cloned().unwrap_or_default());
            t.nodes.len() as u32 - 1
        });
        t.id_delta.push(w.worker_id.wrapping_sub(previous));
        previous = w.worker_id;
        t.host.push(host);
        t.port.push(w.port);
        t.node.push(node);
        t.restart_count.push(w.restart_count);
        t.state.push(w.state);
        t.agent_port.push(w.agent_port);
    }
    if t.agent_port.iter().all(|&p| p == 0) {
        t.agent_port.clear();
    }
    Bytes::from(t.encode_to_vec())
}

#[derive(PartialEq, Eq, Hash)]
struct NodeKey<'a>(&'a str, &'a str, &'a str);

/// Decodes a whole table back into the worker list.
pub fn decode(bytes: &[u8]) -> Result<Vec<WorkerInfo>, TableError> {
    let t = WorkerTable::decode(bytes)?;
    let n = t.id_delta.len();
    for (name, len) in [
        ("host", t.host.len()),
        ("port", t.port.len()),
        ("node", t.node.len()),
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
    let mut id = 0u32;
    for i in 0..n {
        id = id.wrapping_add(t.id_delta[i]);
        let host = t.hosts.get(t.host[i] as usize).ok_or_else(|| {
            TableError::Inconsistent(format!("worker {id} names host #{}", t.host[i]))
        })?;
        let node: &NodeInfo = t.nodes.get(t.node[i] as usize).ok_or_else(|| {
            TableError::Inconsistent(format!("worker {id} names node #{}", t.node[i]))
        })?;
        out.push(WorkerInfo {
            worker_id: id,
            host: host.clone(),
            port: t.port[i],
            node: Some(node.clone()),
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
        let t = WorkerTable::decode(bytes.as_ref()).unwrap();
        assert_eq!(t.hosts.len(), 2);
        assert_eq!(t.nodes.len(), 2);
    }

    #[test]
    fn ten_thousand_workers_on_one_host_take_about_nine_bytes_each() {
        let workers: Vec<WorkerInfo> = (0..10_000).map(|i| worker(i, "127.0.0.1", "")).collect();
        let bytes = encode(&workers);
        assert!(bytes.len() < 10_000 * 10, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), workers);
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
            host: vec![3],
            port: vec![1],
            node: vec![0],
            restart_count: vec![0],
            state: vec![1],
            agent_port: vec![],
        };
        let err = decode(&t.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("names host #3"), "{err}");
    }
}
