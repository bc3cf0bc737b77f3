//! The storage service end to end, through hard failovers: a client keeps
//! uploading files over HTTP on the virtual IP while the MASTER host is
//! killed (its link cut, every process SIGKILLed), five times, alternating
//! between the hosts. After each failover every file the server
//! acknowledged (after fsync) is there with the same bytes; the killed
//! host comes back as SyncTarget; at the end both backing stores are
//! identical and an online verify finds nothing.

use std::time::{Duration, Instant};

use hapair_lab::storage_pair::{StorageOptions, StoragePair, Writer, check_stored, project_hooks};
use hapair_lab::{lab_lock, require_root};

const FAILOVERS: usize = 5;
/// Pause between two uploads of the writer.
const WRITE_PAUSE: Duration = Duration::from_millis(50);
const WRITES_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn hard_failovers_alternate_and_lose_no_acknowledged_upload() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = StoragePair::new(StorageOptions::new(project_hooks()));
    pair.start_service();
    let writer = Writer::start(&pair, WRITE_PAUSE);
    writer.wait_for_more(10, WRITES_TIMEOUT);
    let mut expected_master = 1;
    let mut outages = Vec::new();
    for round in 1..=FAILOVERS {
        let master = pair
            .master()
            .unwrap_or_else(|| panic!("round {round}: no single MASTER\n{}", pair.describe()));
        assert_eq!(
            master, expected_master,
            "round {round}: the MASTER alternates"
        );
        let killed_at = Instant::now();
        pair.kill_host(master);
        let survivor = 3 - master;
        let serving = pair.wait_until_serving(&format!("round {round}: the failover"));
        assert_eq!(serving, survivor, "round {round}: the survivor serves");
        writer.wait_for_more(5, WRITES_TIMEOUT);
        let stored = writer.stored();
        let first_after = stored
            .iter()
            .find(|file| file.at > killed_at)
            .expect("an upload stored after the kill");
        let outage = first_after.at - killed_at;
        println!(
            "failover {round}: h{master} killed, h{survivor} took over; uploads stopped for {outage:?}"
        );
        outages.push(outage);
        let damaged = check_stored(&pair, &stored);
        assert!(
            damaged.is_empty(),
            "round {round}: {} of {} stored files are damaged: {damaged:?}",
            damaged.len(),
            stored.len()
        );
        pair.revive_host(master);
        expected_master = survivor;
    }
    let stored = writer.stop();
    let damaged = check_stored(&pair, &stored);
    assert!(damaged.is_empty(), "at the end: {damaged:?}");
    println!(
        "{} files stored over {FAILOVERS} failovers; outages {outages:?}",
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
