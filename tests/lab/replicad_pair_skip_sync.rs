//! Skipping the initial sync on a replicad pair: on two freshly created,
//! connected nodes, `haadm new-current-uuid --clear-bitmap` makes both
//! UpToDate with the same current generation id and resyncs nothing; it is
//! refused without `--clear-bitmap` and once the metadata is no longer new.

use hapair_lab::{RESOURCE, ReplicadNode, lab_lock, require_root};

use crate::replicad_pair_kit::{Extras, fresh_pair, in_sync, resynced_bytes, wait_for_status};

const INVALID: i32 = 10;
const REFUSED: i32 = 11;

fn current_id(node: &ReplicadNode) -> String {
    let dump = node.dump_md();
    dump.text
        .lines()
        .find_map(|line| line.strip_prefix("current-id:"))
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| panic!("no current-id in dump-md:\n{}", dump.text))
}

#[test]
fn new_current_uuid_with_clear_bitmap_skips_the_initial_sync() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = fresh_pair(&Extras::default());
    for node in [&pair.ha1, &pair.ha2] {
        let status = wait_for_status(node, "the connect", |s| {
            s["peer"]["connection"] == "Connected" && s["peer"]["replication"] == "Established"
        });
        assert_eq!(status["disk"], "Inconsistent", "{status}");
    }
    pair.ha1
        .haadm(&["new-current-uuid", RESOURCE])
        .expect_code(INVALID);

    pair.ha1
        .haadm(&["new-current-uuid", "--clear-bitmap", RESOURCE])
        .expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "both nodes UpToDate", in_sync);
        assert_eq!(resynced_bytes(node), 0, "{}: nothing resynced", node.name());
    }
    let id = current_id(&pair.ha1);
    assert_ne!(id, current_id(&ReplicadNode::new(8 << 20)), "a new id");
    assert_eq!(current_id(&pair.ha2), id, "both hold the same generation");
    pair.ha1.haadm(&["primary", RESOURCE]).expect_code(0);

    let again = pair
        .ha1
        .haadm(&["new-current-uuid", "--clear-bitmap", RESOURCE]);
    again.expect_code(REFUSED);
    assert!(again.stderr.contains("just created"), "{}", again.stderr);
}
