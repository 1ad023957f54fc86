//! Racks and datacenters on the local cluster: topology lists naming loopback addresses are
//! simulated nodes (real processes bound to 127.x.y.z), workers fill them in order and register
//! with their node's rack and datacenter; `examples/rack-allreduce` sums hierarchically with
//! only rack leaders talking across racks; Twister2's key names from its guide work; a node
//! the lists do not name gives rack `unknown` and one warning.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(300);

/// (node, rack, datacenter) of worker `id` in examples/rack-allreduce's job.yaml: 3 racks ×
/// 2 nodes × 2 workers, racks 1 and 2 in `east`, rack 3 in `west`.
fn expected_place(id: u32) -> (String, String, String) {
    let nodes = [11, 12, 21, 22, 31, 32];
    let node = format!("127.0.0.{}", nodes[(id / 2) as usize]);
    let rack = format!("rack-{}", id / 4 + 1);
    let dc = if id < 8 { "east" } else { "west" };
    (node, rack, dc.to_string())
}

/// The text after `[worker-ID] PREFIX` on each line of `out` that has it.
fn worker_lines<'a>(out: &'a str, id: u32, prefix: &str) -> Vec<&'a str> {
    let tag = format!("[worker-{id}] {prefix}");
    out.lines().filter_map(|l| l.strip_prefix(&tag)).collect()
}

/// The value after `key` in `line` (words separated by spaces).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().unwrap_or_default();
        }
    }
    panic!("no '{key}' in '{line}'")
}

#[test]
fn rack_allreduce_on_three_racks_in_two_datacenters() {
    let home = tempfile::tempdir().unwrap();
    let job = repo().join("examples/rack-allreduce");
    let out = run(submit(home.path(), &job, NO_ARGS), LONG);
    let all = text(&out);
    assert!(out.status.success(), "rack-allreduce failed:\n{all}");
    assert!(
        all.contains("t2: simulating 6 nodes in 3 racks and 2 datacenters on loopback addresses"),
        "{all}"
    );
    let (mut hier_across, mut leaders) = (0u64, Vec::new());
    let mut sums = Vec::new();
    for id in 0..12 {
        let (node, rack, dc) = expected_place(id);
        let me = worker_lines(&all, id, &format!("worker {id} node "));
        assert_eq!(me.len(), 1, "worker {id}:\n{all}");
        let line = format!("node {}", me[0]);
        assert_eq!(field(&line, "node"), node, "worker {id}: {line}");
        assert_eq!(field(&line, "rack"), rack, "worker {id}: {line}");
        assert_eq!(field(&line, "datacenter"), dc, "worker {id}: {line}");
        // The listener the program bound: its node's address, the port t2 reserved there.
        let bound = field(&line, "on");
        assert!(
            bound.starts_with(&format!("{node}:")),
            "worker {id}: {line}"
        );

        let hier = worker_lines(&all, id, &format!("worker {id} hierarchical: "));
        let ring = worker_lines(&all, id, &format!("worker {id} flat-ring: "));
        assert_eq!((hier.len(), ring.len()), (1, 1), "worker {id}:\n{all}");
        let across: u64 = field(hier[0], "across-racks").parse().unwrap();
        let leader = field(hier[0], "leader") == "true";
        // The first worker of each rack leads it: 0, 4 and 8.
        assert_eq!(leader, id % 4 == 0, "worker {id}: {}", hier[0]);
        if leader {
            leaders.push(id);
        } else {
            assert_eq!(across, 0, "worker {id} is no rack leader: {}", hier[0]);
        }
        hier_across += across;
        let (h, r) = (field(hier[0], "sum"), field(ring[0], "sum"));
        assert_eq!(h, r, "worker {id}: hierarchical and flat sums differ");
        sums.push(h.to_string());
    }
    assert_eq!(leaders, vec![0, 4, 8]);
    assert!(sums.iter().all(|s| s == &sums[0]), "{sums:?}");
    // To the first rack's leader and back, from and to the two other leaders.
    assert_eq!(hier_across, 4, "{all}");
    let summary = all
        .lines()
        .find(|l| l.contains("rack-allreduce: 12 workers in 3 racks"))
        .unwrap_or_else(|| panic!("no summary:\n{all}"));
    println!("{summary}");
    let words: Vec<&str> = summary.split_whitespace().collect();
    let number = |after: &str, nth: usize| -> u64 {
        let at = words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.trim_end_matches([',', ';']) == after)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{summary}"));
        words[at + 1].parse().unwrap()
    };
    let (hier_sent, ring_sent) = (number("hierarchical", 0), number("ring", 0));
    let ring_across: u64 = words
        .iter()
        .rev()
        .nth(2)
        .and_then(|w| w.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    println!(
        "messages across racks: hierarchical {hier_across} of {hier_sent}, flat ring {ring_across} of {ring_sent}"
    );
    // 9 members up and down inside their racks, 2 leaders up and 2 answers down across.
    assert_eq!(hier_sent, 22, "{summary}");
    // 2·(12−1) steps, 12 messages each; 3 of the ring's 12 edges cross a rack.
    assert_eq!((ring_sent, ring_across), (264, 66), "{summary}");
    assert!(
        summary.contains("hierarchical 22 messages, 4 across racks"),
        "{summary}"
    );
}

/// A job whose workers print their worker list (`t2 worker list`, `T2_WORKERS_FILE`) and host.
fn list_job(dir: &Path, workers: u32) -> std::path::PathBuf {
    shell_job(
        dir,
        &format!("name: where\nworkers: {workers}\ncommand: [./run.sh]\n"),
        "#!/bin/sh\nset -e\necho \"LIST $(t2 worker list)\"\necho \"FILE $(tr -d '\\n ' < \"$T2_WORKERS_FILE\")\"\necho \"HOST $T2_WORKER_HOST\"\n",
    )
}

/// The JSON worker lists worker `id` printed: from `t2 worker list` and from its file.
fn lists(all: &str, id: u32) -> (serde_json::Value, serde_json::Value) {
    let one = |p: &str| {
        let l = worker_lines(all, id, p);
        assert_eq!(l.len(), 1, "worker {id} '{p}':\n{all}");
        serde_json::from_str::<serde_json::Value>(l[0]).unwrap_or_else(|e| panic!("{e}: {}", l[0]))
    };
    (one("LIST "), one("FILE "))
}

/// (id, node, rack, datacenter) of each entry, in list order.
fn places(list: &serde_json::Value) -> Vec<(u64, String, String, String)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|w| {
            let s = |k: &str| w[k].as_str().unwrap_or_default().to_string();
            (
                w["id"].as_u64().unwrap(),
                s("node"),
                s("rack"),
                s("datacenter"),
            )
        })
        .collect()
}

#[test]
fn twister2_guide_keys_from_a_conf_file() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf/local");
    std::fs::create_dir_all(&conf).unwrap();
    // The guide's example as it is written, with loopback addresses for `nodeNN.ip`.
    let resource = "
    kubernetes.datacenters.list:
    - dc1: ['blue-rack', 'green-rack']
    - dc2: ['rack01', 'rack02']

    kubernetes.racks.list:
    - blue-rack: ['127.0.1.1', '127.0.1.2', '127.0.1.3']
    - green-rack: ['127.0.1.11', '127.0.1.12', '127.0.1.13']
    - rack01: ['127.0.1.51', '127.0.1.52', '127.0.1.53']
    - rack02: ['127.0.1.61', '127.0.1.62', '127.0.1.63']

    kubernetes.node.locations.from.config: true
";
    std::fs::write(conf.join("resource.yaml"), resource).unwrap();
    let job = list_job(&tmp.path().join("job"), 8);
    let conf_dir = tmp.path().join("conf");
    let out = run(
        submit(
            tmp.path(),
            &job,
            &["--conf-dir", conf_dir.to_str().unwrap()],
        ),
        LONG,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // 8 workers over 12 nodes: slots spread evenly, in order; two racks of each datacenter.
    let want: Vec<(u64, String, String, String)> = [
        (0, "127.0.1.1", "blue-rack", "dc1"),
        (1, "127.0.1.2", "blue-rack", "dc1"),
        (2, "127.0.1.11", "green-rack", "dc1"),
        (3, "127.0.1.12", "green-rack", "dc1"),
        (4, "127.0.1.51", "rack01", "dc2"),
        (5, "127.0.1.52", "rack01", "dc2"),
        (6, "127.0.1.61", "rack02", "dc2"),
        (7, "127.0.1.62", "rack02", "dc2"),
    ]
    .iter()
    .map(|(i, n, r, d)| (*i, n.to_string(), r.to_string(), d.to_string()))
    .collect();
    for id in 0..8 {
        let (listed, file) = lists(&all, id);
        assert_eq!(places(&listed), want, "worker {id}'s t2 worker list");
        assert_eq!(places(&file), want, "worker {id}'s T2_WORKERS_FILE");
        let host = worker_lines(&all, id, "HOST ");
        assert_eq!(host, vec![want[id as usize].1.as_str()], "worker {id}");
    }
}

#[test]
fn workers_of_a_rack_are_listed_together() {
    let tmp = tempfile::tempdir().unwrap();
    let job = list_job(&tmp.path().join("job"), 4);
    // Racks listed so that worker IDs do not follow rack order by name: the list follows
    // the topology (datacenter by datacenter), not names.
    let out = run(
        submit(
            tmp.path(),
            &job,
            &[
                "-D",
                "topology.racks={z: [127.0.2.1, 127.0.2.2], a: [127.0.2.3, 127.0.2.4]}",
                "-D",
                "topology.datacenters={north: [z], south: [a]}",
            ],
        ),
        LONG,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let (listed, _) = lists(&all, 3);
    let racks: Vec<String> = places(&listed).into_iter().map(|p| p.2).collect();
    assert_eq!(racks, ["z", "z", "a", "a"], "{all}");
}

#[test]
fn a_node_missing_from_the_lists_gets_rack_unknown_and_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let job = list_job(&tmp.path().join("job"), 2);
    let out = run(
        submit(
            tmp.path(),
            &job,
            &["-D", "topology.racks={r1: [10.0.0.1, 10.0.0.2]}"],
        ),
        LONG,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let warnings: Vec<&str> = all.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{all}");
    assert!(
        warnings[0].contains("the workers run on 127.0.0.1, which no rack lists: they get rack and datacenter 'unknown'"),
        "{}",
        warnings[0]
    );
    let (listed, _) = lists(&all, 0);
    for (id, node, rack, dc) in places(&listed) {
        assert_eq!(
            (node.as_str(), rack.as_str(), dc.as_str()),
            ("127.0.0.1", "unknown", "unknown"),
            "worker {id}"
        );
    }
    // Without lists, as before: one node, rack-0 of datacenter local.
    let out = run(submit(tmp.path(), &job, NO_ARGS), LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("warning"), "{all}");
    let (listed, _) = lists(&all, 1);
    for (id, node, rack, dc) in places(&listed) {
        assert_eq!(
            (node.as_str(), rack.as_str(), dc.as_str()),
            ("127.0.0.1", "rack-0", "local"),
            "worker {id}"
        );
    }
}
