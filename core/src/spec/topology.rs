//! Reading the `topology` section: where racks and datacenters come from (`from`), the
//! datacenter list (`dc: [racks]`), the rack list (`rack: [node IPs]`) and `strict`. Both lists
//! are written as a map (`{blue-rack: [10.0.0.1]}`) or, as Twister2's guide writes them, as a
//! list of one-entry maps (`- blue-rack: ['10.0.0.1']`). Each list is checked on its own in
//! the layer that sets it; that every rack a datacenter names has a node list is checked once
//! the layers are merged ([`check_racks_listed`]).

use serde_yaml::Value;

use super::fields::{describe, scalar_text};
use crate::topology::{canonical_ip, Datacenter, Rack, TopologySource};

/// Keys under `topology`.
pub(super) const KEYS: &[&str] = &["from", "datacenters", "racks", "strict"];

/// `auto`, `labels` or `config`.
pub(super) fn from(v: &Value) -> Result<TopologySource, String> {
    match v {
        Value::Null => Ok(TopologySource::Auto),
        Value::String(s) if s == "auto" => Ok(TopologySource::Auto),
        Value::String(s) if s == "labels" => Ok(TopologySource::Labels),
        Value::String(s) if s == "config" => Ok(TopologySource::Config),
        other => Err(format!(
            "must be labels (node labels), config (the racks and datacenters lists) or auto (config when racks are listed), got {}",
            describe(other)
        )),
    }
}

/// The entries of a list written as a map or as a list of one-entry maps, in order.
fn entries<'a>(v: &'a Value, example: &str) -> Result<Vec<(String, &'a Value)>, String> {
    let malformed = |got: String| {
        format!("must be a map such as {example}, or a list of such one-entry maps as in Twister2, got {got}")
    };
    let mut out = Vec::new();
    let mut push = |k: &Value, v: &'a Value| -> Result<(), String> {
        let name = scalar_text(k)
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| format!("has a name that is not text: {}", describe(k)))?;
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "has a name with spaces, '{}'; use names such as rack-1",
                name.escape_default()
            ));
        }
        if out.iter().any(|(n, _)| n == &name) {
            return Err(format!("lists '{name}' twice; list it once"));
        }
        out.push((name, v));
        Ok(())
    };
    match v {
        Value::Null => {}
        Value::Mapping(m) => {
            for (k, v) in m {
                push(k, v)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Mapping(m) if !m.is_empty() => {
                        for (k, v) in m {
                            push(k, v)?;
                        }
                    }
                    other => {
                        return Err(malformed(format!("{} as item {}", describe(other), i + 1)))
                    }
                }
            }
        }
        other => return Err(malformed(describe(other))),
    }
    Ok(out)
}

/// The names listed under one entry: a list of text.
fn names(owner: &str, v: &Value, what: &str, example: &str) -> Result<Vec<String>, String> {
    let Value::Sequence(items) = v else {
        return Err(format!(
            "gives '{owner}' {}, not a list of {what} such as {example}",
            describe(v)
        ));
    };
    items
        .iter()
        .map(|item| {
            scalar_text(item).ok_or_else(|| {
                format!(
                    "lists {} in '{owner}'; list {what} such as {example}",
                    describe(item)
                )
            })
        })
        .collect()
}

/// The rack list: rack → node IP addresses. A node is in one rack only.
pub(super) fn racks(v: &Value) -> Result<Vec<Rack>, String> {
    let example = "[10.0.0.11, 10.0.0.12]";
    let mut racks: Vec<Rack> = Vec::new();
    for (name, nodes) in entries(v, "{blue-rack: [10.0.0.11, 10.0.0.12]}")? {
        let mut ips = Vec::new();
        for text in names(&name, nodes, "node IP addresses", example)? {
            let ip = canonical_ip(&text).ok_or_else(|| {
                format!(
                    "lists '{}' in rack '{name}', which is not an IP address; list the nodes' IP addresses (their InternalIP, as `kubectl get nodes -o wide` shows), e.g. {example}",
                    text.escape_default()
                )
            })?;
            if ips.contains(&ip) {
                return Err(format!("lists node {ip} twice in rack '{name}'"));
            }
            if let Some(other) = racks.iter().find(|r| r.nodes.contains(&ip)) {
                return Err(format!(
                    "lists node {ip} in rack '{}' and in rack '{name}'; a node is in one rack",
                    other.name
                ));
            }
            ips.push(ip);
        }
        racks.push(Rack { name, nodes: ips });
    }
    Ok(racks)
}

/// The datacenter list: datacenter → rack names. A rack is in one datacenter only.
pub(super) fn datacenters(v: &Value) -> Result<Vec<Datacenter>, String> {
    let example = "[blue-rack, green-rack]";
    let mut out: Vec<Datacenter> = Vec::new();
    for (name, racks) in entries(v, "{dc1: [blue-rack, green-rack]}")? {
        let mut listed: Vec<String> = Vec::new();
        for rack in names(&name, racks, "rack names", example)? {
            if listed.contains(&rack) {
                return Err(format!("lists rack '{rack}' twice in datacenter '{name}'"));
            }
            if let Some(other) = out.iter().find(|d| d.racks.contains(&rack)) {
                return Err(format!(
                    "lists rack '{rack}' in datacenter '{}' and in datacenter '{name}'; a rack is in one datacenter",
                    other.name
                ));
            }
            listed.push(rack);
        }
        out.push(Datacenter {
            name,
            racks: listed,
        });
    }
    Ok(out)
}

/// Every rack a datacenter names must have a node list; the message names the first that
/// has none, with `racks_key` (as the user wrote it) to add it to.
pub(super) fn check_racks_listed(
    datacenters: &[Datacenter],
    racks: &[Rack],
    racks_key: &str,
) -> Result<(), String> {
    for dc in datacenters {
        for rack in &dc.racks {
            if !racks.iter().any(|r| &r.name == rack) {
                return Err(format!(
                    "names rack '{rack}' in datacenter '{}', but {racks_key} has no node list for it; add `{rack}: [node IPs]` to {racks_key} or remove it from the datacenter",
                    dc.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn both_list_forms_read_the_same() {
        let map = racks(&y("{a: [10.0.0.1, 10.0.0.2], b: ['10.0.1.1']}")).expect("map");
        let twister2 =
            racks(&y("- a: ['10.0.0.1', '10.0.0.2']\n- b: ['10.0.1.1']\n")).expect("list");
        assert_eq!(map, twister2);
        assert_eq!(map[1].nodes, vec!["10.0.1.1"]);
        let dcs = datacenters(&y("- dc1: ['a']\n- dc2: [b]\n")).expect("dcs");
        assert_eq!(dcs[1].racks, vec!["b"]);
        assert_eq!(racks(&Value::Null), Ok(vec![]));
        assert_eq!(from(&y("config")), Ok(TopologySource::Config));
        assert_eq!(from(&Value::Null), Ok(TopologySource::Auto));
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        let cases = [
            (
                "a: [node01.ip]",
                "lists 'node01.ip' in rack 'a', which is not an IP address",
            ),
            (
                "{a: [10.0.0.1], b: [10.0.0.1]}",
                "lists node 10.0.0.1 in rack 'a' and in rack 'b'; a node is in one rack",
            ),
            ("a: [10.0.0.1, 10.0.0.1]", "twice in rack 'a'"),
            (
                "a: 10.0.0.1",
                "gives 'a' '10.0.0.1', not a list of node IP addresses",
            ),
            (
                "blue-rack",
                "must be a map such as {blue-rack: [10.0.0.11, 10.0.0.12]}",
            ),
            ("[[10.0.0.1]]", "got a list as item 1"),
            ("a: [[10.0.0.1]]", "lists a list in 'a'"),
            ("{'my rack': [10.0.0.1]}", "has a name with spaces"),
        ];
        for (text, want) in cases {
            let e = racks(&y(text)).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = datacenters(&y("{dc1: [a], dc2: [b, a]}")).unwrap_err();
        assert!(
            e.contains("lists rack 'a' in datacenter 'dc1' and in datacenter 'dc2'"),
            "{e}"
        );
        let e = from(&y("nodes")).unwrap_err();
        assert!(e.contains("got 'nodes'"), "{e}");
        let dcs = datacenters(&y("{dc1: [a, b]}")).expect("dcs");
        let listed = racks(&y("{a: [10.0.0.1]}")).expect("racks");
        let e = check_racks_listed(&dcs, &listed, "topology.racks").unwrap_err();
        assert!(
            e.starts_with(
                "names rack 'b' in datacenter 'dc1', but topology.racks has no node list for it"
            ),
            "{e}"
        );
    }
}
