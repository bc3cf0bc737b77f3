//! `scripts/demo.sh`, the README's main command, run as a test with the
//! workspace's own build: it must tell its whole story (failover timeline,
//! every acknowledged file intact, the old master resynced), exit 0, and
//! leave no namespace behind.

use std::process::Command;
use std::time::Duration;

use hapair_lab::storage_pair::repository_file;
use hapair_lab::{binary, existing_namespaces, lab_lock, require_root, run_bounded};

/// The demo's own bound is two minutes; the margin is for a loaded machine.
const DEMO_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn the_demo_tells_its_story_and_cleans_up() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let before = existing_namespaces();
    let bin_dir = binary("haadm")
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    // This test holds the machine-wide lab lock; the demo takes a lock of
    // its own instead of waiting for this one.
    let lock_dir = tempfile::tempdir().expect("a temporary directory");
    let mut demo = Command::new("bash");
    demo.arg(repository_file("scripts/demo.sh"))
        .env("HAPAIR_BIN_DIR", &bin_dir)
        .env("HAPAIR_LAB_LOCK", lock_dir.path().join("lab.lock"));
    let finished = run_bounded(demo, DEMO_TIMEOUT);
    let output = finished.all_output();
    assert_eq!(
        finished.code(),
        Some(0),
        "the demo failed ({}):\n{output}",
        finished.status
    );
    for told in [
        "Failover timeline, from the kill:",
        "ha2 holds the virtual IP",
        "r0 is Primary on ha2",
        "the ext4 is mounted on ha2",
        "HTTP answers on 10.99.0.100 again",
        "All 20 files the server acknowledged are there, with the same SHA-256.",
        "All 25 files the server acknowledged are there, with the same SHA-256.",
        "SyncTarget",
        "ha1's vrrpd is BACKUP",
    ] {
        assert!(
            output.contains(told),
            "the demo should say {told:?}:\n{output}"
        );
    }
    let left: Vec<String> = existing_namespaces()
        .into_iter()
        .filter(|namespace| {
            !before.contains(namespace)
                && namespace.starts_with("hp")
                && !namespace.starts_with("hpl")
        })
        .collect();
    assert!(left.is_empty(), "the demo left namespaces behind: {left:?}");
}
