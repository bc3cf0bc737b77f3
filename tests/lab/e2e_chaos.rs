//! A seeded random schedule of faults against the storage service while a
//! client keeps uploading: the MASTER's host killed (link cut, every
//! process SIGKILLed) and brought back, a graceful switchover, the
//! BACKUP's replicad or vrrpd SIGKILLed and restarted, the BACKUP's link
//! down for a moment. After each fault the pair is healed and every upload
//! the server acknowledged (after fsync) must be there; at the end both
//! replicas are identical, an online verify finds nothing, and nothing is
//! left stuck (both UpToDate, one Primary).
//!
//! The seed is printed; `HAPAIR_CHAOS_SEED=N` replays a schedule and
//! `HAPAIR_CHAOS_FAULTS=N` runs N faults instead of the short CI run's 4.
//! Not in the schedule yet: a partition (see e2e_partition) and a
//! backing-store error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hapair_lab::storage_pair::{
    SETTLE_TIMEOUT, StorageOptions, StoragePair, Writer, check_stored, project_hooks, set_link,
    wait_for,
};
use hapair_lab::{RESOURCE, lab_lock, require_root};

const SHORT_RUN_FAULTS: usize = 4;
const WRITE_PAUSE: Duration = Duration::from_millis(50);
const WRITES_TIMEOUT: Duration = Duration::from_secs(60);

/// The faults the schedule picks from.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillMasterHost,
    Switchover,
    KillBackupReplicad,
    KillBackupVrrpd,
    BackupLinkDown,
}

const FAULTS: [Fault; 5] = [
    Fault::KillMasterHost,
    Fault::Switchover,
    Fault::KillBackupReplicad,
    Fault::KillBackupVrrpd,
    Fault::BackupLinkDown,
];

/// xorshift64*: a small, seedable generator; the schedule must replay
/// exactly from its seed.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}")),
    )
}

#[test]
fn a_seeded_fault_schedule_loses_no_acknowledged_upload() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let seed = env_number("HAPAIR_CHAOS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64
            | 1
    });
    let faults = env_number("HAPAIR_CHAOS_FAULTS").map_or(SHORT_RUN_FAULTS, |n| n as usize);
    println!("chaos: seed {seed} (replay with HAPAIR_CHAOS_SEED={seed}), {faults} faults");
    let mut schedule = Schedule(seed.max(1));
    let mut pair = StoragePair::new(StorageOptions::new(project_hooks()));
    pair.start_service();
    let writer = Writer::start(&pair, WRITE_PAUSE);
    writer.wait_for_more(5, WRITES_TIMEOUT);
    for round in 1..=faults {
        let fault = FAULTS[schedule.below(FAULTS.len() as u64) as usize];
        let master = pair
            .master()
            .unwrap_or_else(|| panic!("round {round}: no single MASTER\n{}", pair.describe()));
        let backup = 3 - master;
        println!("chaos round {round}: {fault:?} (h{master} MASTER)");
        match fault {
            Fault::KillMasterHost => {
                pair.kill_host(master);
                pair.wait_until_serving(&format!("round {round}: the failover"));
                pair.revive_host(master);
            }
            Fault::Switchover => {
                pair.host_mut(master).vrrpd_mut().stop(SETTLE_TIMEOUT);
                pair.wait_until_serving(&format!("round {round}: the switchover"));
                pair.host_mut(master).start_vrrpd();
                wait_for_backup(&pair, master);
            }
            Fault::KillBackupReplicad => {
                let node = &mut pair.host_mut(backup).node;
                node.crash();
                node.start();
                node.haadm(&["up", RESOURCE]).expect_code(0);
                pair.wait_until_in_sync();
            }
            Fault::KillBackupVrrpd => {
                pair.host_mut(backup).vrrpd_mut().crash();
                pair.host_mut(backup).start_vrrpd();
                wait_for_backup(&pair, backup);
            }
            Fault::BackupLinkDown => {
                let down_for = Duration::from_millis(500 + schedule.below(2500));
                set_link(pair.host(backup).host(), "down");
                std::thread::sleep(down_for);
                set_link(pair.host(backup).host(), "up");
                pair.wait_until_in_sync();
            }
        }
        pair.wait_until_in_sync();
        pair.wait_until_serving(&format!("round {round}: after healing"));
        writer.wait_for_more(3, WRITES_TIMEOUT);
        let stored = writer.stored();
        let damaged = check_stored(&pair, &stored);
        assert!(
            damaged.is_empty(),
            "seed {seed}, round {round} ({fault:?}): {} of {} stored files damaged: {damaged:?}",
            damaged.len(),
            stored.len()
        );
    }
    let stored = writer.stop();
    let damaged = check_stored(&pair, &stored);
    assert!(damaged.is_empty(), "seed {seed}, at the end: {damaged:?}");
    let primaries = (1..=2)
        .filter(|&index| pair.host(index).role().as_deref() == Some("Primary"))
        .count();
    assert_eq!(
        primaries,
        1,
        "seed {seed}: one Primary at the end\n{}",
        pair.describe()
    );
    pair.stop_service();
    pair.assert_backing_stores_identical();
    assert_eq!(
        pair.verify(),
        0,
        "seed {seed}: the online verify finds nothing"
    );
    println!(
        "chaos: seed {seed}: {} files stored through {faults} faults",
        stored.len()
    );
}

fn wait_for_backup(pair: &StoragePair, index: usize) {
    wait_for(
        "the restarted vrrpd to settle as BACKUP",
        SETTLE_TIMEOUT,
        || pair.host(index).vrrp_state().as_deref() == Some("BACKUP"),
    );
}
