//! A seeded random schedule of faults against the storage service while a
//! client keeps uploading. After each fault the pair is healed and every
//! upload the server acknowledged (after fsync) must be there; at the end
//! both replicas are identical, an online verify finds nothing, and
//! nothing is left stuck (both UpToDate, one Primary). The faults:
//!
//! - `KillMasterHost`: the MASTER's link cut and every process of it
//!   SIGKILLed at once; the BACKUP takes over; the host comes back as a
//!   rebooted one would and resyncs.
//! - `Switchover`: the MASTER's vrrpd stopped (its demote hook runs), the
//!   BACKUP takes over, vrrpd started again.
//! - `KillBackupReplicad`, `KillBackupVrrpd`: SIGKILLed and restarted.
//! - `BackupLinkDown`: the BACKUP's link down for 0.5–3 s.
//! - `ReplicationCut`: a partition of the replication traffic alone: TCP
//!   to and from replicad's port is dropped in both hosts' namespaces
//!   ([`StoragePair::cut_replication`]) while VRRP adverts and the
//!   client's requests still flow. This is the partition an honest setup
//!   survives: the MASTER stays MASTER (it must, throughout); its writes
//!   stall until the path returns or until replicad counts the peer as
//!   dead (a request unanswered for `timeout` 2.5 s, then a ping for
//!   `ping-timeout` 1 s); then it keeps serving and marks what the peer
//!   misses, and the resync when the path returns brings that over. The
//!   schedule picks a blip of 0.5–3 s (usually survived by TCP's
//!   retransmissions) or a cut held until the Primary has noticed the
//!   peer gone and stored 3 more uploads without it. A partition of
//!   VRRP *and* replication makes both hosts MASTER and Primary — a split
//!   brain that no acknowledged-write checker can pass without the
//!   operator choosing whose writes to throw away; `e2e_partition` covers
//!   that, and docs/operations.md §5 says how to avoid it (VRRP over the
//!   replication link, fencing).
//! - `MasterDiskFails`: the MASTER's backing store starts failing with EIO
//!   under load. The pair then runs on [`FailingDisk`]s (nbdkit's error
//!   and pause filters, metadata external) instead of plain files, with
//!   `disk-timeout` [`DISK_TIMEOUT`]. With `on-io-error detach` the Primary
//!   must become Diskless and keep serving through the peer, uploads still
//!   being stored, without a failover. The operator's
//!   repair: a switchover away from the Diskless node (its vrrpd stopped,
//!   so that its demote hook unmounts and demotes it), `haadm down`, the
//!   disk repaired, `haadm up` (it attaches and resyncs as SyncTarget),
//!   vrrpd started again; the next rounds run on the repaired disk.
//! - `MasterDiskHangs`: the same with a backing store that stops answering
//!   (requests wait, no error): `disk-timeout` must give it up, and the
//!   rest goes as for a failing one.
//! - `BackupDiskFails`: the BACKUP's backing store fails under load; with
//!   `on-io-error detach` the Secondary goes Diskless and the Primary sees
//!   it so (no failover would take that copy for UpToDate), then `haadm
//!   down`, the disk mended, `haadm up` resync it.
//! - `BackupDiskHangs`: the BACKUP's backing store stops answering under
//!   load (nbdkit's pause filter: requests wait, no error). The BACKUP
//!   must give it up after `disk-timeout` (Diskless) and the Primary go on
//!   without it; the Primary may also drop the link first, when a mirrored
//!   write overlapping one that hangs holds up the BACKUP's receive loop
//!   and with it the pings. Once the disk answers again, `haadm down` and
//!   `up` on the BACKUP resync it (after `haadm connect` on the Primary if
//!   it left the link StandAlone). Without `disk-timeout` (the default)
//!   the Primary cuts such a peer off after `ko-count` × `timeout`; the
//!   lab test `a_secondary_whose_disk_hangs_is_cut_off_after_ko_count`
//!   covers that.
//!
//! The schedule is a sequence of seeded shuffles of the fault kinds, cut to
//! the number of faults: the short CI run (the default) is one shuffle, so
//! it meets every kind once in an order the seed picks. The seed and the
//! schedule are printed; `HAPAIR_CHAOS_SEED=N` replays a schedule,
//! `HAPAIR_CHAOS_FAULTS=N` runs N faults, and `HAPAIR_CHAOS_KINDS=A,B`
//! draws from the named kinds only (e.g.
//! `HAPAIR_CHAOS_KINDS=ReplicationCut,MasterDiskFails`).
//!
//! Seeds that found defects, worth replaying after changes to vrrpd, the
//! hooks or replicad's link (`HAPAIR_CHAOS_FAULTS=8` with
//! `HAPAIR_CHAOS_SEED=1796619348952599407` or `=12345`, and the eight kinds
//! there were then, in their order:
//! `HAPAIR_CHAOS_KINDS=KillMasterHost,Switchover,KillBackupReplicad,KillBackupVrrpd,BackupLinkDown,ReplicationCut,MasterDiskFails,BackupDiskFails`): a `BackupLinkDown`
//! long enough for the BACKUP's down timer made it MASTER while its own
//! link was down; its promote, refused while the peer was Primary, later
//! succeeded (split brain), or went on retrying after the host was BACKUP
//! again and replayed out of date after a later fault. Now vrrpd tracks the
//! instance's own interface (FAULT, not MASTER, while its link is down)
//! and a hook vrrpd ran gives up once the instance left the state it ran
//! for (docs/operations.md §3).

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hapair_lab::storage_pair::{
    FailingDisk, SETTLE_TIMEOUT, StorageHost, StorageOptions, StoragePair, Writer, check_stored,
    project_hooks, set_link, wait_for,
};
use hapair_lab::{RESOURCE, lab_lock, require_root};
use serde_json::Value;

const WRITE_PAUSE: Duration = Duration::from_millis(50);
const WRITES_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node whose disk fails under load may take to detach it:
/// the next write meets the error.
const DETACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The pair's `disk-timeout` when it runs on failing disks: shorter than
/// `ko-count` × `timeout` (7 × 2.5 s), so that a BACKUP whose disk hangs
/// gives it up itself.
const DISK_TIMEOUT: Duration = Duration::from_secs(5);

/// The faults the schedule picks from; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillMasterHost,
    Switchover,
    KillBackupReplicad,
    KillBackupVrrpd,
    BackupLinkDown,
    ReplicationCut,
    MasterDiskFails,
    BackupDiskFails,
    BackupDiskHangs,
    MasterDiskHangs,
}

const FAULTS: [Fault; 10] = [
    Fault::KillMasterHost,
    Fault::Switchover,
    Fault::KillBackupReplicad,
    Fault::KillBackupVrrpd,
    Fault::BackupLinkDown,
    Fault::ReplicationCut,
    Fault::MasterDiskFails,
    Fault::BackupDiskFails,
    Fault::BackupDiskHangs,
    Fault::MasterDiskHangs,
];

/// xorshift64*: a small, seedable generator; the schedule must replay
/// exactly from its seed.
struct Schedule(u64);

impl Schedule {
    /// Starts from `seed` stirred by one splitmix64 step, so that nearby
    /// seeds (1, 2, 3…) give unrelated schedules.
    fn new(seed: u64) -> Schedule {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Schedule((z ^ (z >> 31)).max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// `count` faults: shuffles of `kinds` (Fisher–Yates) one after the
    /// other, the last one cut short.
    fn faults(&mut self, kinds: &[Fault], count: usize) -> Vec<Fault> {
        let mut faults = Vec::with_capacity(count);
        while faults.len() < count {
            let mut shuffle = kinds.to_vec();
            for last in (1..shuffle.len()).rev() {
                let pick = self.below(last as u64 + 1) as usize;
                shuffle.swap(last, pick);
            }
            faults.extend(shuffle);
        }
        faults.truncate(count);
        faults
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}")),
    )
}

/// The kinds `HAPAIR_CHAOS_KINDS` names (comma-separated), or all.
fn env_kinds() -> Vec<Fault> {
    let Ok(text) = std::env::var("HAPAIR_CHAOS_KINDS") else {
        return FAULTS.to_vec();
    };
    let kinds: Vec<Fault> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            FAULTS
                .into_iter()
                .find(|fault| format!("{fault:?}") == name)
                .unwrap_or_else(|| {
                    panic!("HAPAIR_CHAOS_KINDS: no fault {name:?}; the faults are {FAULTS:?}")
                })
        })
        .collect();
    assert!(
        !kinds.is_empty(),
        "HAPAIR_CHAOS_KINDS names no fault; the faults are {FAULTS:?}"
    );
    kinds
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
    let kinds = env_kinds();
    let count = env_number("HAPAIR_CHAOS_FAULTS").map_or(kinds.len(), |n| n as usize);
    let mut schedule = Schedule::new(seed);
    let faults = schedule.faults(&kinds, count);
    println!(
        "chaos: seed {seed} (replay with HAPAIR_CHAOS_SEED={seed}), {count} faults: {faults:?}"
    );
    let started = Instant::now();
    let failing_disks = faults.iter().any(|fault| {
        matches!(
            fault,
            Fault::MasterDiskFails
                | Fault::BackupDiskFails
                | Fault::BackupDiskHangs
                | Fault::MasterDiskHangs
        )
    });
    let mut pair = StoragePair::new(StorageOptions {
        failing_disks,
        disk_timeout: failing_disks.then_some(DISK_TIMEOUT),
        ..StorageOptions::new(project_hooks())
    });
    pair.start_service();
    let writer = Writer::start(&pair, WRITE_PAUSE);
    writer.wait_for_more(5, WRITES_TIMEOUT);
    for (round, &fault) in (1..).zip(&faults) {
        let round_started = Instant::now();
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
                thread::sleep(down_for);
                set_link(pair.host(backup).host(), "up");
                pair.wait_until_in_sync();
            }
            Fault::ReplicationCut => {
                let cut = if schedule.below(2) == 0 {
                    Cut::Blip(Duration::from_millis(500 + schedule.below(2500)))
                } else {
                    Cut::UntilNoticed
                };
                cut_replication(&pair, &writer, master, cut, round);
            }
            Fault::MasterDiskFails => {
                master_disk_trouble(&mut pair, &writer, master, round, Trouble::Fails)
            }
            Fault::MasterDiskHangs => {
                master_disk_trouble(&mut pair, &writer, master, round, Trouble::Hangs)
            }
            Fault::BackupDiskFails => {
                backup_disk_trouble(&pair, &writer, backup, round, Trouble::Fails)
            }
            Fault::BackupDiskHangs => {
                backup_disk_trouble(&pair, &writer, backup, round, Trouble::Hangs)
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
        println!(
            "chaos round {round}: healed, {} files checked, in {:.1?}",
            stored.len(),
            round_started.elapsed()
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
        "chaos: seed {seed}: {} files stored through {count} faults in {:.1?}",
        stored.len(),
        started.elapsed()
    );
}

/// How long a `ReplicationCut` lasts.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// A fixed 0.5–3 s: usually shorter than replicad takes to count the
    /// peer as dead (a request unanswered for `timeout` 2.5 s, then a ping
    /// unanswered for `ping-timeout` 1 s), so TCP's retransmissions carry
    /// the stalled writes over once it heals.
    Blip(Duration),
    /// Until the Primary has noticed the peer gone and stored 3 more
    /// uploads without it: the disconnected Primary keeps serving, marks
    /// what the peer misses, and resyncs it when the path returns.
    UntilNoticed,
}

/// `ReplicationCut`: drops the replication traffic for as long as `cut`
/// says while the writer keeps writing. VRRP still flows, so `master` must
/// stay the one MASTER throughout; the cut must really have dropped
/// packets; the pair must resync once it heals.
fn cut_replication(pair: &StoragePair, writer: &Writer, master: usize, cut: Cut, round: usize) {
    let losses_before = connection_losses(pair.host(master));
    let started = Instant::now();
    let replication = pair.cut_replication();
    let mut stored_when_noticed = None;
    loop {
        if pair.master() != Some(master) {
            panic!(
                "round {round}: with only the replication cut, h{master} should stay the one \
                 MASTER\n{}",
                pair.describe()
            );
        }
        // The cut lasts at least until it dropped a packet: replication may
        // be quiet for a moment (no upload in flight, or the link between
        // two connections), and a cut that drops nothing tests nothing.
        let cutting = replication.dropped() > 0;
        let done = cutting
            && match cut {
                Cut::Blip(length) => started.elapsed() >= length,
                Cut::UntilNoticed => {
                    let stored = writer.stored().len();
                    match stored_when_noticed {
                        Some(then) => stored >= then + 3,
                        None => {
                            let noticed = pair
                                .host(master)
                                .status()
                                .is_some_and(|status| status["peer"]["connection"] != "Connected");
                            if noticed {
                                stored_when_noticed = Some(stored);
                            }
                            false
                        }
                    }
                }
            };
        if done {
            break;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "round {round}: {cut:?}: within {SETTLE_TIMEOUT:?} the cut dropped no packet, or \
             the Primary did not notice the lost peer and go on storing uploads\n{}",
            pair.describe()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let lasted = started.elapsed();
    let dropped = replication.heal();
    assert!(
        dropped > 0,
        "round {round}: the cut of {lasted:?} dropped no replication packet while the client \
         wrote: it cut nothing"
    );
    pair.wait_until_in_sync();
    let lost = connection_losses(pair.host(master)) > losses_before;
    println!(
        "  {cut:?}: replication cut for {lasted:.1?}, {dropped} packets dropped; the connection {}",
        if lost {
            "was lost, and resynced"
        } else {
            "survived"
        }
    );
}

/// How often `host`'s replicad has logged a lost connection.
fn connection_losses(host: &StorageHost) -> usize {
    host.node
        .daemon()
        .log()
        .lines()
        .filter(|line| line.contains("connection to") && line.contains(" lost"))
        .count()
}

/// How a disk goes wrong, and right again.
#[derive(Clone, Copy, Debug)]
enum Trouble {
    /// Every request fails with EIO.
    Fails,
    /// Requests wait, with no answer.
    Hangs,
}

impl Trouble {
    fn start(self, disk: &FailingDisk) {
        disk.evict_cache();
        match self {
            Trouble::Fails => disk.fail(),
            Trouble::Hangs => disk.pause(),
        }
    }

    fn end(self, disk: &FailingDisk) {
        match self {
            Trouble::Fails => disk.heal(),
            Trouble::Hangs => disk.resume(),
        }
    }

    /// Whether the Primary's view of its peer's disk (`peer.disk`) shows
    /// that it stopped counting on a peer whose disk went wrong this way:
    /// Diskless for a failing disk; for one that hangs, also DUnknown (the
    /// Primary may have dropped the link first, see the module docs).
    fn primary_sees(self, peer_disk: &Value) -> bool {
        match self {
            Trouble::Fails => peer_disk == "Diskless",
            Trouble::Hangs => peer_disk != "UpToDate",
        }
    }

    /// Whether `host`, Diskless now, saw its disk go wrong this way.
    fn was_seen(self, host: &StorageHost) -> bool {
        match self {
            Trouble::Fails => host
                .failing_disk()
                .is_some_and(FailingDisk::has_failed_requests),
            Trouble::Hangs => host.node.daemon().log().contains("within disk-timeout"),
        }
    }
}

/// `MasterDiskFails` and `MasterDiskHangs`: see the module docs.
fn master_disk_trouble(
    pair: &mut StoragePair,
    writer: &Writer,
    master: usize,
    round: usize,
    trouble: Trouble,
) {
    let backup = 3 - master;
    let failed_uploads = writer.failed().len();
    trouble.start(failing_disk(pair, master));
    wait_for(
        &format!(
            "round {round}: h{master} to detach its disk that {trouble:?} (on-io-error detach)"
        ),
        DETACH_TIMEOUT,
        || disk_state(pair.host(master)).as_deref() == Some("Diskless"),
    );
    assert!(
        trouble.was_seen(pair.host(master)),
        "round {round}: h{master} went Diskless, but not because its disk {trouble:?}:\n{}\n{}",
        failing_disk(pair, master).disk.server_log(),
        pair.host(master).node.daemon().log()
    );
    // Diskless, the Primary keeps serving through the peer.
    writer.wait_for_more(5, WRITES_TIMEOUT);
    let status = pair
        .host(master)
        .status()
        .expect("the Diskless node's replicad answers");
    assert!(
        status["role"] == "Primary"
            && status["disk"] == "Diskless"
            && status["peer"]["disk"] == "UpToDate"
            && pair.master() == Some(master),
        "round {round}: h{master} should serve Diskless through h{backup}, still MASTER and \
         Primary\n{}",
        pair.describe()
    );
    println!(
        "  h{master} Diskless, serving through h{backup}; {} uploads failed meanwhile (retried)",
        writer.failed().len() - failed_uploads
    );

    // The repair: the service moves away, the node goes down, the disk is
    // mended, and the node comes up on it again.
    pair.host_mut(master).vrrpd_mut().stop(SETTLE_TIMEOUT);
    let serving = pair.wait_until_serving(&format!(
        "round {round}: the switchover away from the Diskless h{master}"
    ));
    assert_eq!(serving, backup, "round {round}: h{backup} took over");
    let node = &pair.host(master).node;
    node.haadm(&["down", RESOURCE]).expect_code(0);
    trouble.end(failing_disk(pair, master));
    pair.host(master)
        .node
        .haadm(&["up", RESOURCE])
        .expect_code(0);
    pair.wait_until_in_sync();
    pair.host_mut(master).start_vrrpd();
    wait_for_backup(pair, master);
}

/// `BackupDiskFails` and `BackupDiskHangs`: the BACKUP's backing store
/// fails or hangs under load. With `on-io-error detach` (and, for a disk
/// that hangs, `disk-timeout`) the Secondary must become Diskless (it
/// cannot take the peer's writes any more), the Primary must stop counting
/// on it and keep serving, and `haadm down`, the disk mended, `haadm up`
/// must resync it.
fn backup_disk_trouble(
    pair: &StoragePair,
    writer: &Writer,
    backup: usize,
    round: usize,
    trouble: Trouble,
) {
    let master = 3 - backup;
    let disk = failing_disk(pair, backup);
    trouble.start(disk);
    wait_for(
        &format!(
            "round {round}: h{backup}, whose disk {trouble:?}, to detach it (on-io-error \
             detach) and h{master} to go on without it"
        ),
        DETACH_TIMEOUT,
        || {
            disk_state(pair.host(backup)).as_deref() == Some("Diskless")
                && pair
                    .host(master)
                    .status()
                    .is_some_and(|status| trouble.primary_sees(&status["peer"]["disk"]))
        },
    );
    assert!(
        trouble.was_seen(pair.host(backup)),
        "round {round}: h{backup} went Diskless, but not because its disk {trouble:?}"
    );
    writer.wait_for_more(3, WRITES_TIMEOUT);
    trouble.end(disk);
    let node = &pair.host(backup).node;
    node.haadm(&["down", RESOURCE]).expect_code(0);
    node.haadm(&["up", RESOURCE]).expect_code(0);
    let node = &pair.host(master).node;
    if node.status()["peer"]["connection"] == "StandAlone" {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
    pair.wait_until_in_sync();
}

fn failing_disk(pair: &StoragePair, index: usize) -> &FailingDisk {
    pair.host(index)
        .failing_disk()
        .expect("a schedule with a disk fault builds the pair on failing disks")
}

/// `disk` of `r0` on `host` (`None` while replicad does not answer).
fn disk_state(host: &StorageHost) -> Option<String> {
    host.status()?["disk"].as_str().map(str::to_owned)
}

fn wait_for_backup(pair: &StoragePair, index: usize) {
    wait_for(
        "the restarted vrrpd to settle as BACKUP",
        SETTLE_TIMEOUT,
        || pair.host(index).vrrp_state().as_deref() == Some("BACKUP"),
    );
}
