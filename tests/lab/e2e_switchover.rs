//! Graceful switchover of the storage service: the MASTER's vrrpd is
//! stopped as `systemctl stop` would (SIGTERM) while a client keeps
//! uploading. Its demote hook stops the HTTP server, unmounts and demotes;
//! the BACKUP takes the virtual IP and promotes. The client may see errors
//! only inside the switchover window (from the SIGTERM to its first
//! upload stored after it), and every upload the server acknowledged is
//! there afterwards. Twice: h1 to h2, then back.

use std::time::{Duration, Instant};

use hapair_lab::storage_pair::{
    SETTLE_TIMEOUT, StorageOptions, StoragePair, Writer, check_stored, project_hooks,
};
use hapair_lab::{lab_lock, require_root};

const WRITE_PAUSE: Duration = Duration::from_millis(20);
const WRITES_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a switchover may interrupt the uploads.
const WINDOW_BOUND: Duration = Duration::from_secs(30);

#[test]
fn a_graceful_switchover_shows_no_error_outside_its_window_and_loses_nothing() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = StoragePair::new(StorageOptions::new(project_hooks()));
    pair.start_service();
    let writer = Writer::start(&pair, WRITE_PAUSE);
    writer.wait_for_more(10, WRITES_TIMEOUT);
    let mut windows = Vec::new();
    for (from, to) in [(1, 2), (2, 1)] {
        assert_eq!(
            pair.master(),
            Some(from),
            "h{from} is MASTER before the switchover"
        );
        let stopped_at = Instant::now();
        pair.host_mut(from).vrrpd_mut().stop(SETTLE_TIMEOUT);
        let serving = pair.wait_until_serving(&format!("the switchover from h{from}"));
        assert_eq!(serving, to, "h{to} serves after the switchover");
        writer.wait_for_more(10, WRITES_TIMEOUT);
        let first_after = writer
            .stored()
            .into_iter()
            .find(|file| file.at > stopped_at)
            .expect("an upload stored after the SIGTERM");
        let window = first_after.at - stopped_at;
        let failed = writer.failed();
        let late: Vec<_> = failed
            .iter()
            .filter(|failure| failure.at > first_after.at)
            .collect();
        assert!(
            late.is_empty(),
            "h{from} to h{to}: upload errors after the switchover window ({window:?}): {late:?}"
        );
        let inside = failed
            .iter()
            .filter(|failure| failure.at > stopped_at)
            .count();
        println!(
            "switchover h{from} to h{to}: uploads paused for {window:?}, {inside} failed attempts inside that window"
        );
        assert!(window < WINDOW_BOUND, "the switchover took {window:?}");
        windows.push(window);
        // The stopped host comes back as BACKUP (nopreempt).
        pair.host_mut(from).start_vrrpd();
        wait_for_backup(&pair, from);
    }
    let stored = writer.stop();
    let damaged = check_stored(&pair, &stored);
    assert!(
        damaged.is_empty(),
        "{} of {} stored files are damaged: {damaged:?}",
        damaged.len(),
        stored.len()
    );
    println!(
        "{} files stored across switchovers of {windows:?}",
        stored.len()
    );
    pair.stop_service();
    pair.assert_backing_stores_identical();
    assert_eq!(
        pair.verify(),
        0,
        "the online verify finds nothing out of sync"
    );
}

fn wait_for_backup(pair: &StoragePair, index: usize) {
    hapair_lab::storage_pair::wait_for(
        "the restarted vrrpd to settle as BACKUP",
        SETTLE_TIMEOUT,
        || pair.host(index).vrrp_state().as_deref() == Some("BACKUP"),
    );
}
