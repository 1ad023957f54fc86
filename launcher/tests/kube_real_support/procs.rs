//! The test runtime's processes as `/proc` shows them: name, parent, command line,
//! environment, working directory; the processes of a namespace's pods; listening sockets.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A live process: its name, parent, command line, environment and working directory.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub name: String,
    pub cmdline: String,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

/// The process `pid`, if it is alive (not a zombie) and readable.
pub fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let mut fields = rest.split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?)
        .replace('\0', " ");
    let env = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()?
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Some(Proc {
        pid,
        ppid,
        name,
        cmdline,
        env,
        cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
    })
}

/// Every live process of the machine.
pub fn all_procs() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect()
}

/// The processes of the pods of namespace `ns` (everything their containers start inherits
/// the container's `T2_NAMESPACE`).
pub fn ns_procs(ns: &str) -> Vec<Proc> {
    all_procs()
        .into_iter()
        .filter(|p| p.env.get("T2_NAMESPACE").map(String::as_str) == Some(ns))
        .collect()
}

/// [`ns_procs`] and all their descendants, with an environment of their own or not (an sshd
/// session gives its commands a fresh one).
pub fn ns_tree(ns: &str) -> Vec<Proc> {
    let every = all_procs();
    let mut mine: BTreeSet<u32> = every
        .iter()
        .filter(|p| p.env.get("T2_NAMESPACE").map(String::as_str) == Some(ns))
        .map(|p| p.pid)
        .collect();
    loop {
        let before = mine.len();
        for p in &every {
            if mine.contains(&p.ppid) {
                mine.insert(p.pid);
            }
        }
        if mine.len() == before {
            break;
        }
    }
    every
        .into_iter()
        .filter(|p| mine.contains(&p.pid))
        .collect()
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| {
            let link = std::fs::read_link(fd.path()).ok()?;
            let l = link.to_str()?;
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// An address of /proc/net/tcp or tcp6 (`0100007F:08AE`) as `IP:PORT`.
fn net_addr(hex: &str) -> Option<String> {
    let (ip, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let bytes: Vec<u8> = (0..ip.len() / 2)
        .map(|i| u8::from_str_radix(&ip[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    // The kernel prints each 32-bit word in host (little-endian) order.
    let ordered: Vec<u8> = bytes
        .chunks(4)
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    let ip: std::net::IpAddr = match ordered.len() {
        4 => std::net::Ipv4Addr::new(ordered[0], ordered[1], ordered[2], ordered[3]).into(),
        16 => {
            let a: [u8; 16] = ordered.try_into().ok()?;
            std::net::Ipv6Addr::from(a).into()
        }
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port).to_string())
}

/// Every listening TCP socket of the machine: `IP:PORT` and its inode.
pub fn tcp_listeners() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                if let (Some(addr), Ok(inode)) = (net_addr(f[1]), f[9].parse()) {
                    out.push((addr, inode));
                }
            }
        }
    }
    out
}

/// The TCP addresses process `pid` listens on.
pub fn listening_on(pid: u32) -> BTreeSet<String> {
    let inodes = socket_inodes(pid);
    tcp_listeners()
        .into_iter()
        .filter(|(_, i)| inodes.contains(i))
        .map(|(a, _)| a)
        .collect()
}
