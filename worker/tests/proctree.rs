//! The process-tree helpers against real processes: an orphan adopted by a subreaper is still
//! found below it and ended. (Its own test binary: it kills everything below its process.)

use std::time::Duration;

use t2_worker::agent::proctree::{alive, become_subreaper, descendants, kill_all_below_me};

#[test]
fn finds_and_ends_a_tree_whose_middle_died() {
    assert!(become_subreaper());
    // sh starts a grandchild in the background and exits: the grandchild is orphaned and
    // adopted by this (subreaper) test process instead of init.
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut out).expect("read");
    child.wait().expect("wait");
    let orphan: u32 = out.trim().parse().expect("pid");
    assert!(alive(orphan));
    assert!(
        descendants(std::process::id()).contains(&orphan),
        "the orphan was not adopted"
    );
    assert!(kill_all_below_me(&[], Duration::from_secs(5)) >= 1);
    assert!(!alive(orphan), "the orphan survived");
}
