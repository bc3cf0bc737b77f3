//! Crash-safety tests of the metadata layer.
//!
//! An in-memory disk records every write and sync. After a workload runs, a
//! crash is simulated at every write boundary: for each sync epoch, the disk
//! may hold any subset of that epoch's 4 KiB block writes (disks reorder
//! between flushes), and a block write may be torn in half. For every such
//! state the metadata must open, show the superblock from before or after the
//! interrupted operation, and — after crash recovery — report as dirty every
//! block that was marked dirty or had a write in flight.

// A list of one byte range is what these tests expect, not a typo for a range of values.
#![allow(clippy::single_range_in_vec_init)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Range;
use std::rc::Rc;

use replica::block::{BLOCK_BYTES, BLOCK_SIZE};
use replica::generation::random_id;
use replica::layout::EXTENT_SIZE;
use replica::store::{AppliedLog, Error, MetaTarget, Metadata, Storage};
use replica::superblock::{Flags, VolumeState};

#[derive(Debug, Clone)]
enum Event {
    Write { offset: u64, data: Vec<u8> },
    Sync,
}

/// A sparse in-memory disk; unwritten blocks read as zeros. If `events` is
/// set, every write and sync is recorded there.
#[derive(Debug, Clone)]
struct MemDisk {
    size: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
    events: Option<Rc<RefCell<Vec<Event>>>>,
    /// Writes fail once this many more have succeeded.
    writes_before_failure: Option<usize>,
}

impl MemDisk {
    fn new(size: u64) -> Self {
        Self {
            size,
            blocks: BTreeMap::new(),
            events: None,
            writes_before_failure: None,
        }
    }

    fn apply(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let position = offset + done as u64;
            let within = (position % BLOCK_BYTES) as usize;
            let length = (BLOCK_SIZE - within).min(data.len() - done);
            let block = self
                .blocks
                .entry(position / BLOCK_BYTES)
                .or_insert_with(|| vec![0; BLOCK_SIZE]);
            block[within..within + length].copy_from_slice(&data[done..done + length]);
            done += length;
        }
    }

    /// A copy without recording.
    fn snapshot(&self) -> Self {
        Self {
            events: None,
            writes_before_failure: None,
            ..self.clone()
        }
    }
}

impl Storage for MemDisk {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let position = offset + done as u64;
            let within = (position % BLOCK_BYTES) as usize;
            let length = (BLOCK_SIZE - within).min(buf.len() - done);
            let target = &mut buf[done..done + length];
            match self.blocks.get(&(position / BLOCK_BYTES)) {
                Some(block) => target.copy_from_slice(&block[within..within + length]),
                None => target.fill(0),
            }
            done += length;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Some(remaining) = self.writes_before_failure.as_mut() {
            if *remaining == 0 {
                return Err(io::Error::other("injected write failure"));
            }
            *remaining -= 1;
        }
        assert!(
            offset + data.len() as u64 <= self.size,
            "write past the end"
        );
        self.apply(offset, data);
        if let Some(events) = &self.events {
            // Split into 4 KiB units: a disk may persist any subset of them.
            for (index, unit) in data.chunks(BLOCK_SIZE).enumerate() {
                events.borrow_mut().push(Event::Write {
                    offset: offset + (index * BLOCK_SIZE) as u64,
                    data: unit.to_vec(),
                });
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(events) = &self.events {
            events.borrow_mut().push(Event::Sync);
        }
        Ok(())
    }
}

fn target(disk: MemDisk) -> MetaTarget<MemDisk> {
    MetaTarget {
        storage: disk,
        name: "mem".to_owned(),
        resource: "r0".to_owned(),
        external: None,
    }
}

/// 300 MiB: three bitmap pages, 75 extents.
const DISK_SIZE: u64 = 300 << 20;

/// Creates metadata on a fresh disk and reopens it with recording on.
fn recorded_metadata(al_extents: u32) -> (Metadata<MemDisk>, MemDisk, Rc<RefCell<Vec<Event>>>) {
    let created = Metadata::create_on(target(MemDisk::new(DISK_SIZE)), "ha1", al_extents).unwrap();
    let mut disk = created.into_storage();
    let initial = disk.snapshot();
    let events = Rc::new(RefCell::new(Vec::new()));
    disk.events = Some(events.clone());
    let mut metadata = Metadata::open_on(target(disk)).unwrap();
    assert_eq!(
        metadata.apply_activity_log().unwrap().activity_log,
        AppliedLog::WasClean
    );
    (metadata, initial, events)
}

/// Blocks touched by a byte range (rounded outward).
fn blocks_touched(range: &Range<u64>) -> Range<u64> {
    if range.is_empty() {
        0..0
    } else {
        range.start / BLOCK_BYTES..range.end.div_ceil(BLOCK_BYTES)
    }
}

/// A set of blocks, one bit per block of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlockSet(Vec<u64>);

impl BlockSet {
    fn new(blocks: u64) -> Self {
        Self(vec![0; blocks.div_ceil(64) as usize])
    }

    fn insert(&mut self, blocks: Range<u64>) {
        for block in blocks {
            self.0[(block / 64) as usize] |= 1 << (block % 64);
        }
    }

    fn remove(&mut self, blocks: Range<u64>) {
        for block in blocks {
            self.0[(block / 64) as usize] &= !(1 << (block % 64));
        }
    }

    fn of_ranges(blocks: u64, ranges: impl Iterator<Item = Range<u64>>) -> Self {
        let mut set = Self::new(blocks);
        for range in ranges {
            set.insert(range.start / BLOCK_BYTES..range.end / BLOCK_BYTES);
        }
        set
    }

    /// Blocks in `self` and not in `other`.
    fn missing_from(&self, other: &BlockSet) -> Vec<u64> {
        let mut missing = Vec::new();
        for (index, (mine, theirs)) in self.0.iter().zip(&other.0).enumerate() {
            let mut bits = mine & !theirs;
            while bits != 0 {
                missing.push(index as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        missing
    }
}

/// A short description of a list of blocks for failure messages.
fn summary(blocks: &[u64]) -> String {
    format!(
        "{} blocks, first {:?}",
        blocks.len(),
        &blocks[..blocks.len().min(8)]
    )
}

/// What a crash must never lose, and what the superblock may show.
#[derive(Debug, Clone)]
struct Expectation {
    must_be_dirty: BlockSet,
    superblocks: Vec<(u64, VolumeState)>,
}

/// Every disk state a crash during `events` could leave behind, starting
/// from `base`; `base` ends up with all events applied.
fn crash_states(base: &mut MemDisk, events: &[Event]) -> Vec<MemDisk> {
    let mut states = Vec::new();
    let epochs = events.split(|event| matches!(event, Event::Sync));
    for epoch in epochs.filter(|epoch| !epoch.is_empty()) {
        let writes: Vec<(u64, &[u8])> = epoch
            .iter()
            .filter_map(|event| match event {
                Event::Write { offset, data } => Some((*offset, data.as_slice())),
                Event::Sync => None,
            })
            .collect();
        for subset in subsets(writes.len()) {
            let mut state = base.clone();
            for (index, (offset, data)) in writes.iter().enumerate() {
                if subset & (1u128 << index.min(127)) != 0 {
                    state.apply(*offset, data);
                }
            }
            states.push(state);
        }
        for torn in 0..writes.len() {
            for half in [0..BLOCK_SIZE / 2, BLOCK_SIZE / 2..BLOCK_SIZE] {
                let mut state = base.clone();
                for (offset, data) in &writes[..torn] {
                    state.apply(*offset, data);
                }
                let (offset, data) = writes[torn];
                state.apply(offset + half.start as u64, &data[half.clone()]);
                states.push(state);
            }
        }
        for (offset, data) in &writes {
            base.apply(*offset, data);
        }
    }
    states
}

/// Subsets of `count` writes as bit masks: all of them for small epochs,
/// otherwise prefixes, single omissions, single writes and a spread sample.
fn subsets(count: usize) -> Vec<u128> {
    if count <= 8 {
        return (0..1u128 << count).collect();
    }
    let count = count.min(127);
    let all = (1u128 << count) - 1;
    let mut masks: Vec<u128> = (0..=count).map(|prefix| (1u128 << prefix) - 1).collect();
    masks.extend((0..count).map(|index| all & !(1 << index)));
    masks.extend((0..count).map(|index| 1 << index));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        masks.push((u128::from(seed) | u128::from(seed) << 64) & all);
    }
    masks
}

/// Opens a crash state, checks it against `expectation`, recovers, and
/// returns the dirty blocks, or `None` if a bitmap page was found torn (and
/// so read as all dirty).
fn check_crash_state(state: MemDisk, expectation: &Expectation) -> Option<BlockSet> {
    let mut metadata = Metadata::open_on(target(state))
        .unwrap_or_else(|error| panic!("crash state does not open: {error}"));
    let found = (metadata.superblock().sequence, metadata.superblock().state);
    assert!(
        expectation.superblocks.contains(&found),
        "superblock {found:?} is neither the old nor the new one: {:?}",
        expectation.superblocks
    );
    let was_primary = found.1.flags.contains(Flags::PRIMARY);
    let recovery = metadata.apply_activity_log().unwrap();
    assert_ne!(
        recovery.activity_log,
        AppliedLog::WholeDevice,
        "the ring must stay readable"
    );
    assert_eq!(recovery.crashed_primary, was_primary);
    assert!(metadata.superblock().state.flags.contains(Flags::AL_CLEAN));
    let dirty = BlockSet::of_ranges(metadata.bitmap().blocks(), metadata.dirty_ranges());
    let missing = expectation.must_be_dirty.missing_from(&dirty);
    assert!(
        missing.is_empty(),
        "blocks lost by a crash: {}",
        summary(&missing)
    );
    (metadata.damaged_bitmap_pages() == 0).then_some(dirty)
}

/// A deterministic pseudo-random source for workloads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The daemon's view, which the metadata must never contradict after a crash.
struct Model {
    marked: BlockSet,
    in_flight: Vec<Range<u64>>,
    ever_hot_or_marked: BlockSet,
}

impl Model {
    fn must_be_dirty(&self) -> BlockSet {
        let mut blocks = self.marked.clone();
        for range in &self.in_flight {
            blocks.insert(blocks_touched(range));
        }
        blocks
    }
}

fn run_workload(seed: u64, operations: usize, al_extents: u32) {
    let (mut metadata, initial, events) = recorded_metadata(al_extents);
    let usable = metadata.usable_size();
    let mut rng = Rng(seed);
    let mut model = Model {
        marked: BlockSet::new(metadata.bitmap().blocks()),
        in_flight: Vec::new(),
        ever_hot_or_marked: BlockSet::new(metadata.bitmap().blocks()),
    };
    let mut disk = initial;
    let mut replayed = events.borrow().len();
    // Events recorded by the initial apply_activity_log (none for a clean log).
    disk = {
        let mut base = disk;
        let recorded = events.borrow()[..replayed].to_vec();
        crash_states(&mut base, &recorded);
        base
    };
    let mut crash_checks = 0;
    for _ in 0..operations {
        let mut before = Expectation {
            must_be_dirty: model.must_be_dirty(),
            superblocks: vec![(metadata.superblock().sequence, metadata.superblock().state)],
        };
        match rng.below(100) {
            0..=29 => {
                let start = rng.below(usable);
                let end = (start + 1 + rng.below(3 * EXTENT_SIZE)).min(usable);
                loop {
                    match metadata.activity_log_begin(start..end) {
                        Ok(()) => break,
                        Err(Error::ActivityLog { .. }) if !model.in_flight.is_empty() => {
                            // The log is full: wait for the oldest write, as
                            // the daemon would. That write no longer needs
                            // covering, so the expectation shrinks.
                            let oldest = model.in_flight.remove(0);
                            metadata.activity_log_end(oldest).unwrap();
                            before.must_be_dirty = model.must_be_dirty();
                        }
                        Err(error) => panic!("begin failed: {error}"),
                    }
                }
                for extent in start / EXTENT_SIZE..=(end - 1) / EXTENT_SIZE {
                    let extent_range =
                        extent * EXTENT_SIZE..((extent + 1) * EXTENT_SIZE).min(usable);
                    model
                        .ever_hot_or_marked
                        .insert(blocks_touched(&extent_range));
                }
                model.in_flight.push(start..end);
            }
            30..=44 => {
                // A write done while disconnected: mark part of an in-flight range.
                if let Some(range) = model.in_flight.last().cloned() {
                    let start = range.start + rng.below(range.end - range.start);
                    let end = start + 1 + rng.below(range.end - start);
                    metadata.mark_dirty(start..end).unwrap();
                    model.marked.insert(blocks_touched(&(start..end)));
                    model
                        .ever_hot_or_marked
                        .insert(blocks_touched(&(start..end)));
                }
            }
            45..=64 => {
                if !model.in_flight.is_empty() {
                    let index = rng.below(model.in_flight.len() as u64) as usize;
                    metadata
                        .activity_log_end(model.in_flight.remove(index))
                        .unwrap();
                }
            }
            65..=74 => {
                let start = rng.below(usable);
                let end = (start + rng.below(2 * EXTENT_SIZE)).min(usable);
                metadata.clear_dirty(start..end).unwrap();
                model
                    .marked
                    .remove(start.div_ceil(BLOCK_BYTES)..end / BLOCK_BYTES);
            }
            75..=82 => metadata.flush_bitmap().unwrap(),
            83..=90 => {
                let promote = rng.below(2) == 0;
                metadata
                    .update_superblock(|state| {
                        state.flags.set(Flags::PRIMARY, promote);
                        state.flags.set(Flags::CONSISTENT, true);
                        state.generations.start_new_generation(random_id(), promote);
                    })
                    .unwrap();
            }
            _ => {
                if model.in_flight.is_empty() {
                    metadata.mark_clean_shutdown().unwrap();
                }
            }
        }
        let after = Expectation {
            must_be_dirty: model.must_be_dirty(),
            superblocks: vec![(metadata.superblock().sequence, metadata.superblock().state)],
        };
        let during = Expectation {
            must_be_dirty: before.must_be_dirty.clone(),
            superblocks: [before.superblocks.clone(), after.superblocks.clone()].concat(),
        };
        let recorded = events.borrow()[replayed..].to_vec();
        replayed += recorded.len();
        for state in crash_states(&mut disk, &recorded) {
            if let Some(dirty) = check_crash_state(state, &during) {
                let spurious = dirty.missing_from(&model.ever_hot_or_marked);
                assert!(
                    spurious.is_empty(),
                    "blocks never written reported dirty: {}",
                    summary(&spurious)
                );
            }
            crash_checks += 1;
        }
        check_crash_state(disk.clone(), &after);
        crash_checks += 1;
    }
    assert!(
        crash_checks > operations,
        "crash states were enumerated ({crash_checks})"
    );

    // Without a crash, a clean shutdown keeps exactly what was marked.
    for range in std::mem::take(&mut model.in_flight) {
        metadata.activity_log_end(range).unwrap();
    }
    metadata.mark_clean_shutdown().unwrap();
    let mut reopened = Metadata::open_on(target(metadata.into_storage().snapshot())).unwrap();
    assert_eq!(
        reopened.apply_activity_log().unwrap().activity_log,
        AppliedLog::WasClean
    );
    let dirty = BlockSet::of_ranges(reopened.bitmap().blocks(), reopened.dirty_ranges());
    assert!(
        dirty == model.marked,
        "a clean shutdown keeps exactly the marked blocks"
    );
}

#[test]
fn workload_with_evictions_survives_a_crash_at_every_write_boundary() {
    for seed in [1, 2, 3, 4, 5] {
        run_workload(seed * 0x1234_5678_9ABC_DEF1, 300, 7);
    }
}

#[test]
fn workload_with_a_roomy_log_survives_a_crash_at_every_write_boundary() {
    run_workload(0xDEAD_BEEF_CAFE_F00D, 200, 61);
}

#[test]
fn superblock_update_leaves_old_or_new_copy_at_every_write_boundary() {
    let (mut metadata, initial, events) = recorded_metadata(7);
    let mut disk = initial;
    let mut replayed = events.borrow().len();
    for step in 0..6u64 {
        let old = (metadata.superblock().sequence, metadata.superblock().state);
        metadata
            .update_superblock(|state| {
                state
                    .generations
                    .start_new_generation(step * 16 + 16, step % 2 == 0);
                state.flags.set(Flags::WAS_UP_TO_DATE, step % 3 == 0);
            })
            .unwrap();
        let new = (metadata.superblock().sequence, metadata.superblock().state);
        assert_ne!(old, new);
        let recorded = events.borrow()[replayed..].to_vec();
        replayed += recorded.len();
        let states = crash_states(&mut disk, &recorded);
        // Not written, written, and two torn halves.
        assert_eq!(states.len(), 4);
        let mut seen = BTreeSet::new();
        for state in states {
            let reopened = Metadata::open_on(target(state)).unwrap();
            let found = (reopened.superblock().sequence, reopened.superblock().state);
            assert!(found == old || found == new, "garbage superblock {found:?}");
            seen.insert(found.0);
        }
        assert_eq!(seen, BTreeSet::from([old.0, new.0]), "both outcomes occur");
    }
}

#[test]
fn crash_during_create_leaves_no_metadata_or_complete_metadata() {
    let events = Rc::new(RefCell::new(Vec::new()));
    let mut disk = MemDisk::new(DISK_SIZE);
    disk.events = Some(events.clone());
    Metadata::create_on(target(disk), "ha1", 7).unwrap();
    let recorded = events.borrow().clone();
    let mut base = MemDisk::new(DISK_SIZE);
    let (mut absent, mut present) = (0, 0);
    for state in crash_states(&mut base, &recorded) {
        match Metadata::open_on(target(state)) {
            Err(Error::NoMetadata { .. }) => absent += 1,
            Ok(mut metadata) => {
                assert_eq!(
                    metadata.apply_activity_log().unwrap().activity_log,
                    AppliedLog::WasClean
                );
                assert_eq!(metadata.dirty_ranges().count(), 0);
                present += 1;
            }
            Err(other) => panic!("crash during create-md left broken metadata: {other}"),
        }
    }
    assert!(absent > 0 && present > 0);
}

#[test]
fn crash_with_writes_in_flight_resyncs_exactly_the_hot_extents() {
    let (mut metadata, _, _) = recorded_metadata(7);
    metadata
        .activity_log_begin(EXTENT_SIZE + 100..EXTENT_SIZE + 200)
        .unwrap();
    metadata
        .activity_log_begin(10 * EXTENT_SIZE..10 * EXTENT_SIZE + 1)
        .unwrap();
    metadata
        .activity_log_end(10 * EXTENT_SIZE..10 * EXTENT_SIZE + 1)
        .unwrap();
    metadata
        .update_superblock(|state| state.flags.insert(Flags::PRIMARY))
        .unwrap();
    // Crash: reopen whatever is on disk.
    let mut crashed = Metadata::open_on(target(metadata.into_storage().snapshot())).unwrap();
    assert!(crashed.needs_crash_recovery());
    assert!(matches!(
        crashed.activity_log_begin(0..1),
        Err(Error::RecoveryRequired { .. })
    ));
    assert!(matches!(
        crashed.mark_clean_shutdown(),
        Err(Error::RecoveryRequired { .. })
    ));
    let recovery = crashed.apply_activity_log().unwrap();
    assert!(recovery.crashed_primary);
    assert_eq!(recovery.activity_log, AppliedLog::HotExtents(2));
    let flags = crashed.superblock().state.flags;
    assert!(flags.contains(Flags::CRASHED_PRIMARY) && !flags.contains(Flags::PRIMARY));
    assert_eq!(
        crashed.dirty_ranges().collect::<Vec<_>>(),
        [
            EXTENT_SIZE..2 * EXTENT_SIZE,
            10 * EXTENT_SIZE..11 * EXTENT_SIZE
        ]
    );
    // Idempotent: a second run finds a clean log and changes nothing.
    let again = crashed.apply_activity_log().unwrap();
    assert_eq!(again.activity_log, AppliedLog::WasClean);
    assert!(!again.crashed_primary);
    // Durable: a second crash right now keeps the applied bits.
    let mut twice = Metadata::open_on(target(crashed.into_storage().snapshot())).unwrap();
    assert!(!twice.needs_crash_recovery());
    assert_eq!(
        twice.apply_activity_log().unwrap().activity_log,
        AppliedLog::WasClean
    );
    assert_eq!(twice.bitmap().dirty_blocks(), 2 * EXTENT_SIZE / BLOCK_BYTES);
}

#[test]
fn unreadable_activity_log_marks_the_whole_device_and_is_rewritten() {
    let (mut metadata, _, _) = recorded_metadata(7);
    metadata.activity_log_begin(0..1).unwrap();
    let layout = metadata.layout();
    let ring_slots = layout.geometry().al_ring_slots();
    let mut disk = metadata.into_storage().snapshot();
    for slot in 0..ring_slots {
        disk.apply(layout.al_slot_offset(slot) + 100, &[0xFF; 8]);
    }
    let mut crashed = Metadata::open_on(target(disk)).unwrap();
    assert_eq!(
        crashed.apply_activity_log().unwrap().activity_log,
        AppliedLog::WholeDevice
    );
    assert_eq!(crashed.bitmap().dirty_bytes(), crashed.usable_size());
    // The ring was rewritten: the next crash recovers precisely again.
    crashed.clear_dirty(0..crashed.usable_size()).unwrap();
    crashed.flush_bitmap().unwrap();
    crashed
        .activity_log_begin(5 * EXTENT_SIZE..5 * EXTENT_SIZE + 1)
        .unwrap();
    let mut again = Metadata::open_on(target(crashed.into_storage().snapshot())).unwrap();
    assert!(matches!(
        again.apply_activity_log().unwrap().activity_log,
        AppliedLog::HotExtents(_)
    ));
    assert!(again.bitmap().dirty_bytes() < again.usable_size());
}

#[test]
fn torn_bitmap_page_reads_as_all_dirty() {
    let (mut metadata, _, _) = recorded_metadata(7);
    metadata.mark_dirty(0..4096).unwrap();
    metadata.flush_bitmap().unwrap();
    let layout = metadata.layout();
    let mut disk = metadata.into_storage().snapshot();
    disk.apply(layout.bitmap_page_offset(1) + 2048, &[0xAA; 2048]);
    let reopened = Metadata::open_on(target(disk)).unwrap();
    assert_eq!(reopened.damaged_bitmap_pages(), 1);
    let page = 31_744 * BLOCK_BYTES;
    assert_eq!(
        reopened.dirty_ranges().collect::<Vec<_>>(),
        [0..4096, page..2 * page],
        "page 0 intact, page 1 all dirty, page 2 clean"
    );
}

#[test]
fn failed_metadata_write_stops_the_write_path() {
    let (metadata, _, _) = recorded_metadata(7);
    let mut disk = metadata.into_storage().snapshot();
    disk.writes_before_failure = Some(0);
    let mut metadata = Metadata::open_on(target(disk)).unwrap();
    metadata.apply_activity_log().unwrap();
    let error = metadata.activity_log_begin(0..1).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error}");
    let error = metadata.flush_bitmap().unwrap_err();
    assert!(matches!(error, Error::Failed { .. }));
    assert!(error.to_string().contains("detach the disk"), "{error}");
}

#[test]
fn large_writes_are_split_across_transactions() {
    let (mut metadata, _, events) = recorded_metadata(100);
    let before = events.borrow().len();
    let range = 0..70 * EXTENT_SIZE;
    metadata.activity_log_begin(range.clone()).unwrap();
    assert_eq!(metadata.activity_log().hot_extents().len(), 70);
    let transactions = events.borrow()[before..]
        .iter()
        .filter(|event| matches!(event, Event::Write { .. }))
        .count();
    assert_eq!(
        transactions, 3,
        "superblock (al-clean cleared) and two transactions"
    );
    metadata.activity_log_end(range).unwrap();
    assert_eq!(metadata.activity_log().writes_in_flight(), 0);
}

#[test]
fn full_log_rolls_back_a_partly_entered_large_write() {
    let (mut metadata, _, _) = recorded_metadata(70);
    metadata
        .activity_log_begin(74 * EXTENT_SIZE..74 * EXTENT_SIZE + 1)
        .unwrap();
    let error = metadata
        .activity_log_begin(0..70 * EXTENT_SIZE)
        .unwrap_err();
    assert!(matches!(error, Error::ActivityLog { .. }), "{error}");
    assert_eq!(
        metadata.activity_log().writes_in_flight(),
        1,
        "the first chunk was rolled back"
    );
}

#[test]
fn a_write_to_hot_extents_enters_the_log_without_metadata_io() {
    let (mut metadata, _, events) = recorded_metadata(7);
    let extent_1 = EXTENT_SIZE..2 * EXTENT_SIZE;
    let extent_10 = 10 * EXTENT_SIZE..11 * EXTENT_SIZE;
    metadata.activity_log_begin(extent_10.clone()).unwrap();
    metadata.activity_log_end(extent_10.clone()).unwrap();

    let before = events.borrow().len();
    assert!(
        !metadata.activity_log_begin_hot(extent_1.clone()).unwrap(),
        "a cold extent is not entered"
    );
    assert!(
        !metadata
            .activity_log_begin_hot(10 * EXTENT_SIZE - 1..10 * EXTENT_SIZE + 1)
            .unwrap(),
        "a range reaching into a cold extent is not entered"
    );
    assert_eq!(metadata.activity_log().writes_in_flight(), 0);
    assert!(metadata.activity_log_begin_hot(extent_10.clone()).unwrap());
    assert_eq!(metadata.activity_log().writes_in_flight(), 1);
    assert_eq!(
        events.borrow().len(),
        before,
        "entering hot extents writes and syncs nothing"
    );

    // The entered write protects its extent like any other: a crash now
    // resyncs it.
    metadata
        .update_superblock(|state| state.flags.insert(Flags::PRIMARY))
        .unwrap();
    let mut crashed = Metadata::open_on(target(metadata.into_storage().snapshot())).unwrap();
    let recovery = crashed.apply_activity_log().unwrap();
    assert_eq!(recovery.activity_log, AppliedLog::HotExtents(1));
    assert_eq!(
        crashed.dirty_ranges().collect::<Vec<_>>(),
        std::slice::from_ref(&extent_10)
    );

    // After a clean shutdown the log is marked clean: the next write must
    // clear that mark first, so it is not entered without I/O.
    crashed.mark_clean_shutdown().unwrap();
    assert!(
        crashed.activity_log().is_hot(10),
        "still hot after the recovery"
    );
    assert!(!crashed.activity_log_begin_hot(extent_10).unwrap());
    assert_eq!(crashed.activity_log().writes_in_flight(), 0);
}
