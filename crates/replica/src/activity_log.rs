//! The activity log: the set of "hot" 4 MiB extents that may have writes in
//! flight, and its on-disk ring of transactions.
//!
//! Before a write touches an extent that is not hot, the extent is added to
//! a fixed-size table (`al-extents` slots) and the change is committed as a
//! 4 KiB transaction; only then may the data write start. After a crash every
//! hot extent is treated as dirty, so only those need resync, not the whole
//! device. When the table is full the least recently used extent without
//! writes in flight is evicted; its dirty bits must be on disk before the
//! transaction that evicts it (the caller writes the bitmap page of every
//! extent in [`PendingTransaction::evicted`] first).
//!
//! Transactions go round a ring of 4 KiB slots; transaction `n` lives in slot
//! `n % ring_slots`. Each records up to [`UPDATES_PER_TRANSACTION`] slot
//! changes plus a rotating *context* window of [`CONTEXT_PER_TRANSACTION`]
//! table entries, so the newest `ring_slots - 1` transactions always carry
//! the whole table even if the newest slot was torn. Recovery replays the
//! longest run of consecutive valid transactions ending at the newest one.
//! Everything here is pure: bytes in, bytes out.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Range, RangeInclusive};

use thiserror::Error;

use crate::block::{
    BLOCK_SIZE, Block, BlockKind, DecodeError, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64,
};
use crate::layout::{
    EXTENT_SIZE, Geometry, MAX_AL_EXTENTS, MIN_AL_EXTENTS, RangeError, check_range,
};

const KIND: BlockKind = BlockKind {
    magic: b"HAPAIRAL",
    name: "activity-log transaction",
};

const SEQUENCE: usize = 16;
const DEVICE_UUID: usize = 24;
const AL_EXTENTS: usize = 32;
const UPDATE_COUNT: usize = 36;
const CONTEXT_START: usize = 40;
const CONTEXT_COUNT: usize = 44;
const UPDATES: usize = 64;
const CONTEXT: usize = UPDATES + 8 * UPDATES_PER_TRANSACTION;

/// Most slot changes one transaction records (so at most this many cold
/// extents per write call: 256 MiB).
pub const UPDATES_PER_TRANSACTION: usize = 64;

/// Table entries carried by each transaction's context window.
pub const CONTEXT_PER_TRANSACTION: usize = (BLOCK_SIZE - CONTEXT) / 4;

/// On-disk marker for a slot that holds no extent.
const NO_EXTENT: u32 = u32::MAX;

/// One slot of the table changed: it now holds `extent` (`None`: empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotUpdate {
    pub slot: u32,
    pub extent: Option<u32>,
}

/// One activity-log transaction, as stored in a ring slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Transaction number, from 1; selects the ring slot.
    pub sequence: u64,
    pub device_uuid: u64,
    /// Size of the table the slots index.
    pub al_extents: u32,
    pub updates: Vec<SlotUpdate>,
    /// First table index of the context window (it wraps around the table).
    pub context_start: u32,
    /// Table entries from `context_start` on, after this transaction's updates.
    pub context: Vec<Option<u32>>,
}

fn extent_to_disk(extent: Option<u32>) -> u32 {
    extent.unwrap_or(NO_EXTENT)
}

fn extent_from_disk(value: u32) -> Option<u32> {
    (value != NO_EXTENT).then_some(value)
}

impl Transaction {
    /// The 4 KiB on-disk form. Only the first [`UPDATES_PER_TRANSACTION`]
    /// updates and [`CONTEXT_PER_TRANSACTION`] context entries fit; the log
    /// never builds larger transactions.
    pub fn encode(&self) -> Block {
        let mut block = KIND.new_block();
        put_u64(&mut block, SEQUENCE, self.sequence);
        put_u64(&mut block, DEVICE_UUID, self.device_uuid);
        put_u32(&mut block, AL_EXTENTS, self.al_extents);
        let updates = &self.updates[..self.updates.len().min(UPDATES_PER_TRANSACTION)];
        put_u16(&mut block, UPDATE_COUNT, updates.len() as u16);
        for (index, update) in updates.iter().enumerate() {
            put_u32(&mut block, UPDATES + 8 * index, update.slot);
            put_u32(
                &mut block,
                UPDATES + 8 * index + 4,
                extent_to_disk(update.extent),
            );
        }
        let context = &self.context[..self.context.len().min(CONTEXT_PER_TRANSACTION)];
        put_u32(&mut block, CONTEXT_START, self.context_start);
        put_u32(&mut block, CONTEXT_COUNT, context.len() as u32);
        for (index, extent) in context.iter().enumerate() {
            put_u32(&mut block, CONTEXT + 4 * index, extent_to_disk(*extent));
        }
        KIND.seal(&mut block);
        block
    }

    /// Decodes and validates one ring slot. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let block = KIND.check(bytes)?;
        let sequence = get_u64(block, SEQUENCE);
        if sequence == 0 || sequence == u64::MAX {
            return Err(KIND.invalid(format!("sequence number {sequence} is reserved")));
        }
        let al_extents = get_u32(block, AL_EXTENTS);
        if !(MIN_AL_EXTENTS..=MAX_AL_EXTENTS).contains(&al_extents) {
            return Err(KIND.invalid(format!("table size {al_extents} is out of range")));
        }
        let update_count = usize::from(get_u16(block, UPDATE_COUNT));
        if update_count > UPDATES_PER_TRANSACTION {
            return Err(KIND.invalid(format!(
                "{update_count} updates exceed {UPDATES_PER_TRANSACTION}"
            )));
        }
        let updates = (0..update_count)
            .map(|index| {
                let slot = get_u32(block, UPDATES + 8 * index);
                if slot >= al_extents {
                    return Err(KIND.invalid(format!(
                        "update of slot {slot} outside a table of {al_extents}"
                    )));
                }
                let extent = extent_from_disk(get_u32(block, UPDATES + 8 * index + 4));
                Ok(SlotUpdate { slot, extent })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let context_start = get_u32(block, CONTEXT_START);
        let context_count = get_u32(block, CONTEXT_COUNT);
        if context_start >= al_extents
            || context_count > al_extents.min(CONTEXT_PER_TRANSACTION as u32)
        {
            return Err(KIND.invalid(format!(
                "context window {context_start}+{context_count} does not fit a table of {al_extents}"
            )));
        }
        let context = (0..context_count as usize)
            .map(|index| extent_from_disk(get_u32(block, CONTEXT + 4 * index)))
            .collect();
        Ok(Self {
            sequence,
            device_uuid: get_u64(block, DEVICE_UUID),
            al_extents,
            updates,
            context_start,
            context,
        })
    }

    /// Table indices covered by the context window, in order.
    fn context_indices(&self) -> impl Iterator<Item = usize> + '_ {
        let table = self.al_extents as usize;
        (0..self.context.len()).map(move |offset| (self.context_start as usize + offset) % table)
    }
}

/// A transaction that must be durable before the write that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTransaction {
    pub transaction: Transaction,
    /// Extents that left the log: write their bitmap pages (if changed) and
    /// sync before writing the transaction.
    pub evicted: Vec<u32>,
}

/// Why a write could not enter the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AlError {
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error(
        "the write needs {needed} new extents, more than the {UPDATES_PER_TRANSACTION} one transaction records; split it"
    )]
    TooManyExtents { needed: usize },
    #[error(
        "the write needs {needed} new extents but only {available} slots are free or idle: every other extent has writes in flight"
    )]
    Full { needed: usize, available: usize },
    #[error("extent {extent} has no write in flight")]
    NotActive { extent: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HotExtent {
    extent: u32,
    writes_in_flight: u64,
    last_used: u64,
}

/// The in-memory activity log.
#[derive(Debug, Clone)]
pub struct ActivityLog {
    geometry: Geometry,
    device_uuid: u64,
    slots: Vec<Option<HotExtent>>,
    slot_of: HashMap<u32, usize>,
    next_sequence: u64,
    context_cursor: usize,
    clock: u64,
}

/// The result of reading the ring back.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub log: ActivityLog,
    /// True if every table slot was found in the replayed transactions. If
    /// not, the hot set is unknown and the whole device must count as dirty.
    pub complete: bool,
    /// Number of transactions replayed.
    pub replayed: usize,
}

/// The extents a non-empty byte range touches.
pub fn extents_of(range: &Range<u64>) -> RangeInclusive<u32> {
    let first = range.start / EXTENT_SIZE;
    let last = range.end.saturating_sub(1).max(range.start) / EXTENT_SIZE;
    // Usable sizes are bounded so that extent numbers fit a u32.
    (first as u32)..=(last as u32)
}

impl ActivityLog {
    /// An empty log; the next transaction is number 1.
    pub fn new(geometry: Geometry, device_uuid: u64) -> Self {
        Self {
            geometry,
            device_uuid,
            slots: vec![None; geometry.al_extents() as usize],
            slot_of: HashMap::new(),
            next_sequence: 1,
            context_cursor: 0,
            clock: 0,
        }
    }

    /// Transactions that fill the whole ring with the current table and no
    /// updates: written by create-md, and after a recovery that found the
    /// ring incomplete, so the next recovery is complete again.
    pub fn full_ring(&mut self) -> Vec<Transaction> {
        (0..self.geometry.al_ring_slots())
            .map(|_| self.next_transaction(Vec::new()))
            .collect()
    }

    /// Rebuilds the log from the ring area (`al_ring_slots` blocks, in slot
    /// order). Transactions of another device, table size or slot are
    /// ignored. Never panics.
    pub fn recover(geometry: Geometry, device_uuid: u64, ring_area: &[u8]) -> Recovered {
        let ring_slots = u64::from(geometry.al_ring_slots());
        let table_size = geometry.al_extents() as usize;
        let valid: BTreeMap<u64, Transaction> = ring_area
            .chunks(BLOCK_SIZE)
            .zip(0..ring_slots)
            .filter_map(|(bytes, slot)| {
                let transaction = Transaction::decode(bytes).ok()?;
                let belongs = transaction.device_uuid == device_uuid
                    && transaction.al_extents as usize == table_size
                    && transaction.sequence % ring_slots == slot;
                belongs.then_some((transaction.sequence, transaction))
            })
            .collect();
        let mut log = Self::new(geometry, device_uuid);
        let Some(&newest) = valid.keys().next_back() else {
            return Recovered {
                log,
                complete: false,
                replayed: 0,
            };
        };
        let oldest = (1..=newest)
            .rev()
            .take_while(|sequence| valid.contains_key(sequence))
            .last()
            .unwrap_or(newest);
        let mut table: Vec<Option<Option<u32>>> = vec![None; table_size];
        for transaction in valid
            .range(oldest..=newest)
            .map(|(_, transaction)| transaction)
        {
            for (index, extent) in transaction.context_indices().zip(&transaction.context) {
                table[index] = Some(*extent);
            }
            for update in &transaction.updates {
                table[update.slot as usize] = Some(update.extent);
            }
        }
        for (slot, entry) in table.iter().enumerate() {
            if let Some(Some(extent)) = entry
                && !log.slot_of.contains_key(extent)
            {
                log.slot_of.insert(*extent, slot);
                log.slots[slot] = Some(HotExtent {
                    extent: *extent,
                    writes_in_flight: 0,
                    last_used: 0,
                });
            }
        }
        let last = &valid[&newest];
        log.next_sequence = newest + 1;
        log.context_cursor = (last.context_start as usize + last.context.len()) % table_size;
        Recovered {
            log,
            complete: table.iter().all(Option::is_some),
            replayed: (newest - oldest + 1) as usize,
        }
    }

    /// Enters a write of `range` (bytes) into the log. Returns the
    /// transaction to make durable before the write starts, or `None` if
    /// every extent it touches is already hot. On error nothing changed.
    pub fn begin_write(
        &mut self,
        range: Range<u64>,
    ) -> Result<Option<PendingTransaction>, AlError> {
        check_range(&range, self.geometry.usable_size())?;
        if range.is_empty() {
            return Ok(None);
        }
        let extents = extents_of(&range);
        let cold: Vec<u32> = extents
            .clone()
            .filter(|extent| !self.slot_of.contains_key(extent))
            .collect();
        if cold.len() > UPDATES_PER_TRANSACTION {
            return Err(AlError::TooManyExtents { needed: cold.len() });
        }
        let targets = self.slots_to_fill(&extents, cold.len())?;
        self.clock += 1;
        let mut updates = Vec::with_capacity(cold.len());
        let mut evicted = Vec::new();
        for (&extent, slot) in cold.iter().zip(targets) {
            if let Some(old) = self.slots[slot].take() {
                self.slot_of.remove(&old.extent);
                evicted.push(old.extent);
            }
            self.slots[slot] = Some(HotExtent {
                extent,
                writes_in_flight: 0,
                last_used: 0,
            });
            self.slot_of.insert(extent, slot);
            updates.push(SlotUpdate {
                slot: slot as u32,
                extent: Some(extent),
            });
        }
        self.count_in_flight(extents);
        if updates.is_empty() {
            return Ok(None);
        }
        Ok(Some(PendingTransaction {
            transaction: self.next_transaction(updates),
            evicted,
        }))
    }

    /// Enters a write of `range` only if every extent it touches is hot
    /// already, so that no transaction is needed; returns whether it did.
    /// On `false` or an error nothing changed.
    pub fn begin_write_if_hot(&mut self, range: Range<u64>) -> Result<bool, AlError> {
        check_range(&range, self.geometry.usable_size())?;
        let extents = extents_of(&range);
        if range.is_empty() || !extents.clone().all(|extent| self.is_hot(extent)) {
            return Ok(false);
        }
        self.clock += 1;
        self.count_in_flight(extents);
        Ok(true)
    }

    /// One more write in flight on each of `extents`, all hot; used now.
    fn count_in_flight(&mut self, extents: RangeInclusive<u32>) {
        for extent in extents {
            let hot = self.slots[self.slot_of[&extent]]
                .as_mut()
                .expect("slot_of points at occupied slots");
            hot.writes_in_flight += 1;
            hot.last_used = self.clock;
        }
    }

    /// Slots for `count` new extents: free slots first, then idle extents in
    /// least-recently-used order, never one of `extents`.
    fn slots_to_fill(
        &self,
        extents: &RangeInclusive<u32>,
        count: usize,
    ) -> Result<Vec<usize>, AlError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, entry)| match entry {
                None => Some((0, slot)),
                Some(hot) if hot.writes_in_flight == 0 && !extents.contains(&hot.extent) => {
                    Some((hot.last_used + 1, slot))
                }
                Some(_) => None,
            })
            .collect();
        if candidates.len() < count {
            return Err(AlError::Full {
                needed: count,
                available: candidates.len(),
            });
        }
        candidates.sort_unstable();
        Ok(candidates
            .into_iter()
            .take(count)
            .map(|(_, slot)| slot)
            .collect())
    }

    fn next_transaction(&mut self, updates: Vec<SlotUpdate>) -> Transaction {
        let table_size = self.slots.len();
        let count = table_size.min(CONTEXT_PER_TRANSACTION);
        let start = self.context_cursor;
        let context = (0..count)
            .map(|offset| self.slots[(start + offset) % table_size].map(|hot| hot.extent))
            .collect();
        self.context_cursor = (start + count) % table_size;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Transaction {
            sequence,
            device_uuid: self.device_uuid,
            al_extents: table_size as u32,
            updates,
            context_start: start as u32,
            context,
        }
    }

    /// The write of `range` finished. Its extents stay hot until evicted.
    pub fn end_write(&mut self, range: Range<u64>) -> Result<(), AlError> {
        check_range(&range, self.geometry.usable_size())?;
        if range.is_empty() {
            return Ok(());
        }
        let extents = extents_of(&range);
        let slots = extents
            .map(|extent| match self.slot_of.get(&extent) {
                Some(&slot) if self.slots[slot].is_some_and(|hot| hot.writes_in_flight > 0) => {
                    Ok(slot)
                }
                _ => Err(AlError::NotActive { extent }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for slot in slots {
            if let Some(hot) = self.slots[slot].as_mut() {
                hot.writes_in_flight -= 1;
            }
        }
        Ok(())
    }

    /// Hot extents, in ascending order.
    pub fn hot_extents(&self) -> Vec<u32> {
        let mut extents: Vec<u32> = self.slot_of.keys().copied().collect();
        extents.sort_unstable();
        extents
    }

    pub fn is_hot(&self, extent: u32) -> bool {
        self.slot_of.contains_key(&extent)
    }

    /// Number of writes begun and not yet ended, counted per extent.
    pub fn writes_in_flight(&self) -> u64 {
        self.slots
            .iter()
            .flatten()
            .map(|hot| hot.writes_in_flight)
            .sum()
    }

    /// The byte range of `extent` (the last extent may be short).
    pub fn extent_range(&self, extent: u32) -> Range<u64> {
        let usable = self.geometry.usable_size();
        let start = (u64::from(extent) * EXTENT_SIZE).min(usable);
        start..(start + EXTENT_SIZE).min(usable)
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Number of the last transaction issued (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.next_sequence - 1
    }

    /// The ring slot transaction `sequence` is written to.
    pub fn ring_slot(&self, sequence: u64) -> u32 {
        (sequence % u64::from(self.geometry.al_ring_slots())) as u32
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const MIB4: u64 = EXTENT_SIZE;

    fn log(extents_on_device: u64, al_extents: u32) -> ActivityLog {
        ActivityLog::new(
            Geometry::new(extents_on_device * MIB4, al_extents).unwrap(),
            42,
        )
    }

    fn updates_of(pending: &Option<PendingTransaction>) -> Vec<(u32, Option<u32>)> {
        pending
            .as_ref()
            .map(|p| {
                p.transaction
                    .updates
                    .iter()
                    .map(|u| (u.slot, u.extent))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn layout_constants() {
        assert_eq!(CONTEXT, 576);
        assert_eq!(CONTEXT_PER_TRANSACTION, 880);
    }

    #[test]
    fn cold_extents_need_a_transaction_hot_ones_do_not() {
        let mut log = log(100, 7);
        let first = log.begin_write(MIB4 - 512..MIB4 + 512).unwrap();
        assert_eq!(updates_of(&first), [(0, Some(0)), (1, Some(1))]);
        let first = first.unwrap();
        assert_eq!(first.transaction.sequence, 1);
        assert!(first.evicted.is_empty());
        assert_eq!(first.transaction.context[..3], [Some(0), Some(1), None]);
        assert_eq!(log.begin_write(0..4096).unwrap(), None);
        assert_eq!(log.hot_extents(), [0, 1]);
        assert_eq!(log.writes_in_flight(), 3);
        log.end_write(MIB4 - 512..MIB4 + 512).unwrap();
        log.end_write(0..4096).unwrap();
        assert_eq!(log.writes_in_flight(), 0);
        assert_eq!(log.end_write(0..1), Err(AlError::NotActive { extent: 0 }));
        assert_eq!(
            log.hot_extents(),
            [0, 1],
            "extents stay hot after their writes end"
        );
    }

    #[test]
    fn least_recently_used_idle_extent_is_evicted() {
        let mut log = log(100, 7);
        for extent in 0..7 {
            let range = extent * MIB4..extent * MIB4 + 1;
            log.begin_write(range.clone()).unwrap();
            log.end_write(range).unwrap();
        }
        // Touch extent 0 again so extent 1 is the least recently used.
        log.begin_write(0..1).unwrap();
        let pending = log.begin_write(50 * MIB4..50 * MIB4 + 1).unwrap().unwrap();
        assert_eq!(pending.evicted, [1]);
        assert_eq!(
            pending.transaction.updates,
            [SlotUpdate {
                slot: 1,
                extent: Some(50)
            }]
        );
        assert!(!log.is_hot(1));
        assert!(log.is_hot(0), "extent 0 has a write in flight");
    }

    #[test]
    fn full_log_refuses_without_changing_anything() {
        let mut log = log(100, 7);
        log.begin_write(0..7 * MIB4).unwrap();
        let before = log.hot_extents();
        assert_eq!(
            log.begin_write(8 * MIB4..8 * MIB4 + 1),
            Err(AlError::Full {
                needed: 1,
                available: 0
            })
        );
        assert_eq!(log.hot_extents(), before);
        assert_eq!(log.writes_in_flight(), 7);
        log.end_write(3 * MIB4..3 * MIB4 + 1).unwrap();
        let pending = log.begin_write(8 * MIB4..8 * MIB4 + 1).unwrap().unwrap();
        assert_eq!(pending.evicted, [3]);
    }

    #[test]
    fn too_many_new_extents_are_refused() {
        let mut log = log(200, 100);
        assert_eq!(
            log.begin_write(0..65 * MIB4),
            Err(AlError::TooManyExtents { needed: 65 })
        );
        assert!(log.begin_write(0..64 * MIB4).unwrap().is_some());
        assert!(matches!(
            log.begin_write(0..201 * MIB4),
            Err(AlError::Range(_))
        ));
    }

    #[test]
    fn extent_ranges_clip_to_the_device() {
        let log = ActivityLog::new(Geometry::new(MIB4 + 8192, 7).unwrap(), 1);
        assert_eq!(log.extent_range(0), 0..MIB4);
        assert_eq!(log.extent_range(1), MIB4..MIB4 + 8192);
        assert_eq!(extents_of(&(0..1)), 0..=0);
        assert_eq!(extents_of(&(MIB4..2 * MIB4)), 1..=1);
    }

    #[test]
    fn recovery_of_nothing_is_incomplete() {
        let geometry = Geometry::new(100 * MIB4, 7).unwrap();
        let recovered = ActivityLog::recover(geometry, 42, &[0; 8 * BLOCK_SIZE]);
        assert!(!recovered.complete);
        assert!(recovered.log.hot_extents().is_empty());
    }

    /// A simulated ring the transactions are written into.
    struct Ring {
        blocks: Vec<Block>,
        geometry: Geometry,
    }

    impl Ring {
        fn formatted(log: &mut ActivityLog) -> Self {
            let geometry = log.geometry();
            let mut ring = Self {
                blocks: vec![[0; BLOCK_SIZE]; geometry.al_ring_slots() as usize],
                geometry,
            };
            for transaction in log.full_ring() {
                ring.write(log, &transaction);
            }
            ring
        }

        fn write(&mut self, log: &ActivityLog, transaction: &Transaction) {
            self.blocks[log.ring_slot(transaction.sequence) as usize] = transaction.encode();
        }

        fn recover(&self) -> Recovered {
            ActivityLog::recover(self.geometry, 42, self.blocks.as_flattened())
        }
    }

    #[test]
    fn formatted_ring_recovers_empty_and_complete() {
        let mut log = log(100, 2000);
        let ring = Ring::formatted(&mut log);
        let recovered = ring.recover();
        assert!(recovered.complete);
        assert_eq!(recovered.replayed, 8);
        assert!(recovered.log.hot_extents().is_empty());
        assert_eq!(recovered.log.last_sequence(), 8);
    }

    #[test]
    fn foreign_transactions_are_ignored() {
        let mut log = log(100, 7);
        let mut ring = Ring::formatted(&mut log);
        let mut stranger = ActivityLog::new(log.geometry(), 43);
        stranger.next_sequence = 9;
        let pending = stranger.begin_write(0..1).unwrap().unwrap();
        ring.write(&stranger, &pending.transaction);
        assert!(ring.recover().log.hot_extents().is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin(u64, u64),
        EndOldest,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (0u64..60, 1u64..3).prop_map(|(extent, count)| Op::Begin(extent, count)),
                2 => Just(Op::EndOldest),
            ],
            1..120,
        )
    }

    fn check_recovery_matches(
        al_extents: u32,
        ops: Vec<Op>,
        tear_next: bool,
    ) -> Result<(), TestCaseError> {
        let mut log = log(64, al_extents);
        let mut ring = Ring::formatted(&mut log);
        let mut in_flight: Vec<Range<u64>> = Vec::new();
        for op in ops {
            match op {
                Op::Begin(extent, count) => {
                    let range = extent * MIB4 + 100..(extent + count) * MIB4 - 100;
                    match log.begin_write(range.clone()) {
                        Ok(pending) => {
                            if let Some(pending) = pending {
                                for evicted in &pending.evicted {
                                    prop_assert!(!log.is_hot(*evicted));
                                }
                                ring.write(&log, &pending.transaction);
                            }
                            in_flight.push(range);
                        }
                        Err(AlError::Full { .. }) => {}
                        Err(other) => return Err(TestCaseError::fail(other.to_string())),
                    }
                }
                Op::EndOldest => {
                    if !in_flight.is_empty() {
                        log.end_write(in_flight.remove(0)).unwrap();
                    }
                }
            }
            let hot: BTreeSet<u32> = log.hot_extents().into_iter().collect();
            prop_assert!(hot.len() <= al_extents as usize);
            for range in &in_flight {
                for extent in extents_of(range) {
                    prop_assert!(hot.contains(&extent), "in-flight extent {} is hot", extent);
                }
            }
            let mut crashed = Ring {
                blocks: ring.blocks.clone(),
                geometry: ring.geometry,
            };
            if tear_next {
                let slot = log.ring_slot(log.last_sequence() + 1) as usize;
                crashed.blocks[slot][2000..].fill(0xA5);
            }
            let recovered = crashed.recover();
            prop_assert!(recovered.complete);
            prop_assert_eq!(recovered.log.hot_extents(), log.hot_extents());
            prop_assert_eq!(recovered.log.last_sequence(), log.last_sequence());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = Transaction::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_sealed_garbage(body in proptest::collection::vec(any::<u8>(), BLOCK_SIZE - 16)) {
            let mut block = KIND.new_block();
            block[16..].copy_from_slice(&body);
            KIND.seal(&mut block);
            if let Ok(transaction) = Transaction::decode(&block) {
                let _ = transaction.context_indices().count();
            }
        }

        #[test]
        fn encode_decode_round_trips(
            sequence in 1u64..u64::MAX,
            uuid in any::<u64>(),
            al_extents in MIN_AL_EXTENTS..=MAX_AL_EXTENTS,
            raw_updates in proptest::collection::vec((any::<u32>(), proptest::option::of(0u32..u32::MAX)), 0..=UPDATES_PER_TRANSACTION),
            start in any::<u32>(),
            context in proptest::collection::vec(proptest::option::of(0u32..u32::MAX), 0..=CONTEXT_PER_TRANSACTION),
        ) {
            let count = context.len().min(al_extents as usize);
            let transaction = Transaction {
                sequence,
                device_uuid: uuid,
                al_extents,
                updates: raw_updates.into_iter().map(|(slot, extent)| SlotUpdate { slot: slot % al_extents, extent }).collect(),
                context_start: start % al_extents,
                context: context[..count].to_vec(),
            };
            prop_assert_eq!(Transaction::decode(&transaction.encode()), Ok(transaction));
        }

        #[test]
        fn any_corruption_is_detected(ops in ops(), position in 0..BLOCK_SIZE, xor in 1u8..) {
            let mut log = log(64, 7);
            let mut last = log.full_ring().pop().unwrap();
            for op in ops {
                if let Op::Begin(extent, _) = op
                    && let Ok(Some(pending)) = log.begin_write(extent * MIB4..extent * MIB4 + 1)
                {
                    last = pending.transaction;
                }
            }
            let mut block = last.encode();
            block[position] ^= xor;
            prop_assert!(Transaction::decode(&block).is_err());
        }

        #[test]
        fn recovery_matches_memory_small_table(ops in ops()) {
            check_recovery_matches(7, ops, false)?;
        }

        #[test]
        fn recovery_survives_a_torn_next_transaction(ops in ops()) {
            check_recovery_matches(11, ops, true)?;
        }
    }

    proptest! {
        // Each step replays a 2000-slot table: fewer cases keep this quick.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn recovery_matches_memory_table_larger_than_context(ops in ops()) {
            check_recovery_matches(2000, ops, true)?;
        }
    }
}
