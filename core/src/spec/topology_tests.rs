//! Unit tests of the `topology` section: t2's keys and Twister2's (as its guide writes them)
//! in conf files, job.yaml and `-D`, layering, and one clear error per bad list.

use super::*;
use crate::topology::{TopologySource, UNKNOWN};

const JOB: &str = "name: pi\ncommand: [./run.sh]\n";

/// The guide's example ("Providing Rack and Datacenter Information"), key names and layout
/// copied as they are, with the placeholder `nodeNN.ip` replaced by addresses.
const GUIDE: &str = "
    kubernetes.datacenters.list:
    - dc1: ['blue-rack', 'green-rack']
    - dc2: ['rack01', 'rack02']

    kubernetes.racks.list:
    - blue-rack: ['10.0.0.1', '10.0.0.2', '10.0.0.3']
    - green-rack: ['10.0.1.1', '10.0.1.2', '10.0.1.3']
    - rack01: ['10.0.5.1', '10.0.5.2', '10.0.5.3']
    - rack02: ['10.0.6.1', '10.0.6.2', '10.0.6.3']
";

fn job(text: &str) -> Layer {
    Layer {
        origin: "job.yaml".into(),
        text: text.into(),
    }
}

fn conf(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    for (name, text) in files {
        std::fs::write(local.join(name), text).expect("write");
    }
    dir
}

fn load(files: &[(&str, &str)], job_text: &str, flags: &[&str]) -> Result<JobSpec, SpecError> {
    let dir = conf(files);
    let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    load_job_spec("local", Some(dir.path()), Some(&job(job_text)), &flags)
}

fn ok(files: &[(&str, &str)], job_text: &str, flags: &[&str]) -> JobSpec {
    load(files, job_text, flags).unwrap_or_else(|e| panic!("{e}"))
}

/// The error as shown, checked to be one line.
fn err(files: &[(&str, &str)], job_text: &str, flags: &[&str]) -> String {
    let shown = load(files, job_text, flags)
        .expect_err("should fail")
        .to_string();
    assert_eq!(shown.lines().count(), 1, "not one line: {shown:?}");
    shown
}

/// (rack, datacenter) of `ip`.
fn place(s: &JobSpec, ip: &str) -> (String, String) {
    let p = s.topology.locate(ip).expect("listed");
    (p.rack, p.datacenter)
}

fn pair(rack: &str, dc: &str) -> (String, String) {
    (rack.into(), dc.into())
}

#[test]
fn no_lists_by_default() {
    let s = ok(&[], JOB, &[]);
    assert_eq!(s.topology, crate::topology::TopologySpec::default());
    assert!(!s.topology.from_config());
}

#[test]
fn twister2_guide_keys_in_a_conf_file() {
    let resource = format!("{GUIDE}\n    kubernetes.node.locations.from.config: true\n");
    let s = ok(&[("resource.yaml", &resource)], JOB, &[]);
    assert_eq!(s.topology.from, TopologySource::Config);
    assert_eq!(place(&s, "10.0.1.2"), pair("green-rack", "dc1"));
    assert_eq!(place(&s, "10.0.6.3"), pair("rack02", "dc2"));
    assert_eq!(s.topology.locate("10.9.9.9"), None);
    // `false` means node labels, as in Twister2 (the lists are still checked).
    let resource = format!("{GUIDE}\n    kubernetes.node.locations.from.config: false\n");
    let s = ok(&[("resource.yaml", &resource)], JOB, &[]);
    assert_eq!(s.topology.from, TopologySource::Labels);
    assert!(!s.topology.from_config());
    // The label keys, misspelt as the guide writes them, name the node labels.
    let labels = "rack.labey.key: example.com/rack\ndatacenter.labey.key: example.com/dc\n";
    let s = ok(&[("resource.yaml", labels)], JOB, &[]);
    assert_eq!(s.kubernetes["rack_label"], "example.com/rack");
    assert_eq!(s.kubernetes["datacenter_label"], "example.com/dc");
    // And with the prefix Twister2's code reads them with.
    let code = "twister2.resource.racks.list:\n- r: ['10.0.0.1']\ntwister2.resource.kubernetes.node.locations.from.config: true\ntwister2.resource.rack.labey.key: x/rack\n";
    let s = ok(&[], &format!("{JOB}{code}"), &[]);
    assert_eq!(place(&s, "10.0.0.1"), pair("r", UNKNOWN));
    assert_eq!(s.kubernetes["rack_label"], "x/rack");
}

#[test]
fn the_guide_verbatim_names_the_placeholder() {
    let verbatim = "kubernetes.racks.list:\n- blue-rack: ['node01.ip', 'node02.ip', 'node03.ip']\n";
    let e = err(&[("resource.yaml", verbatim)], JOB, &[]);
    assert!(e.contains("resource.yaml: 'kubernetes.racks.list' lists 'node01.ip' in rack 'blue-rack', which is not an IP address; list the nodes' IP addresses"), "{e}");
}

#[test]
fn t2_keys_in_job_yaml_and_flags() {
    let text = format!(
        "{JOB}topology:\n  datacenters: {{east: [r1, r2], west: [r3]}}\n  racks:\n    r1: [127.0.0.2, 127.0.0.3]\n    r2: [127.0.0.4, 127.0.0.5]\n    r3: [127.0.0.6, 127.0.0.7]\n"
    );
    let s = ok(&[], &text, &[]);
    assert!(s.topology.from_config(), "auto: racks are listed");
    assert_eq!(place(&s, "127.0.0.6"), pair("r3", "west"));
    assert!(!s.topology.strict);
    let s = ok(
        &[],
        &text,
        &["topology.strict=true", "topology.from=labels"],
    );
    assert!(s.topology.strict);
    assert!(!s.topology.from_config());
    // A whole list from -D, in either form.
    let s = ok(
        &[],
        JOB,
        &["topology.racks={a: [127.0.0.2], b: [127.0.0.3]}"],
    );
    assert_eq!(place(&s, "127.0.0.3"), pair("b", UNKNOWN));
    let s = ok(
        &[],
        JOB,
        &[
            "kubernetes.racks.list=[{a: [127.0.0.2]}]",
            "kubernetes.datacenters.list=[{dc: [a]}]",
            "kubernetes.node.locations.from.config=true",
        ],
    );
    assert_eq!(place(&s, "127.0.0.2"), pair("a", "dc"));
    let back: JobSpec =
        serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("round trip");
    assert_eq!(back, s);
}

#[test]
fn lists_replace_and_the_section_merges() {
    let site = "topology:\n  racks: {a: [10.0.0.1], b: [10.0.0.2]}\n  strict: true\n";
    let s = ok(
        &[("topology.yaml", site)],
        &format!("{JOB}topology:\n  racks: {{c: [10.0.0.3]}}\n"),
        &[],
    );
    assert_eq!(
        s.topology.racks.len(),
        1,
        "the job's list replaces the site's"
    );
    assert_eq!(s.topology.racks[0].name, "c");
    assert!(s.topology.strict, "strict from the site's file stays");
    let s = ok(&[("topology.yaml", site)], JOB, &["topology.racks={}"]);
    assert!(s.topology.racks.is_empty());
    assert!(!s.topology.from_config());
}

#[test]
fn bad_topology_is_one_clear_error_each() {
    // A rack listed in two datacenters.
    let e = err(
        &[],
        &format!(
            "{JOB}topology:\n  datacenters: {{dc1: [a], dc2: [a]}}\n  racks: {{a: [10.0.0.1]}}\n"
        ),
        &[],
    );
    assert!(e.contains("job.yaml: 'topology.datacenters' lists rack 'a' in datacenter 'dc1' and in datacenter 'dc2'; a rack is in one datacenter"), "{e}");
    // A node IP in two racks, written the Twister2 way.
    let e = err(
        &[(
            "resource.yaml",
            "kubernetes.racks.list:\n- a: ['10.0.0.1']\n- b: ['10.0.0.2', '10.0.0.1']\n",
        )],
        JOB,
        &[],
    );
    assert!(e.contains("resource.yaml: 'kubernetes.racks.list' lists node 10.0.0.1 in rack 'a' and in rack 'b'; a node is in one rack"), "{e}");
    // A datacenter naming a rack without a list (the lists come from different layers).
    let e = err(
        &[(
            "dc.yaml",
            "kubernetes.datacenters.list:\n- dc1: ['blue-rack', 'green-rack']\n",
        )],
        &format!("{JOB}topology:\n  racks: {{blue-rack: [10.0.0.1]}}\n"),
        &[],
    );
    assert!(e.contains("dc.yaml: 'kubernetes.datacenters.list' names rack 'green-rack' in datacenter 'dc1', but topology.racks has no node list for it"), "{e}");
    // A malformed list.
    let e = err(&[], &format!("{JOB}topology:\n  racks: [a, b]\n"), &[]);
    assert!(e.contains("job.yaml: 'topology.racks' must be a map such as {blue-rack: [10.0.0.11, 10.0.0.12]}, or a list of such one-entry maps as in Twister2, got 'a' as item 1"), "{e}");
    let e = err(&[], JOB, &["kubernetes.racks.list=[{a: 10.0.0.1}]"]);
    assert!(e.contains("-D kubernetes.racks.list=[{a: 10.0.0.1}]: 'kubernetes.racks.list' gives 'a' '10.0.0.1', not a list of node IP addresses"), "{e}");
    // A non-IP entry.
    let e = err(&[], JOB, &["topology.racks={a: [10.0.0.1, node-7]}"]);
    assert!(
        e.contains("'topology.racks' lists 'node-7' in rack 'a', which is not an IP address"),
        "{e}"
    );
    // Lists asked for but none given; a bad switch; unknown keys.
    let e = err(&[], JOB, &["topology.from=config"]);
    assert!(
        e.contains(
            "'topology.from' asks for racks from the configuration, but no racks are listed"
        ),
        "{e}"
    );
    let e = err(&[], JOB, &["kubernetes.node.locations.from.config=yes"]);
    assert!(
        e.contains("'kubernetes.node.locations.from.config' must be true"),
        "{e}"
    );
    let e = err(&[], JOB, &["topology.strict=1"]);
    assert!(
        e.contains("'topology.strict' must be true or false, got 1"),
        "{e}"
    );
    let e = err(&[], &format!("{JOB}topology:\n  rack: {{}}\n"), &[]);
    assert!(
        e.contains("unknown key 'topology.rack'; did you mean 'topology.racks'?"),
        "{e}"
    );
    let e = err(&[], &format!("{JOB}kubernetes.rack.list: []\n"), &[]);
    assert!(e.contains("did you mean 'kubernetes.racks.list'?"), "{e}");
}
