//! The connect-time sync decision and the generation updates around a sync.
//!
//! Two kinds of tests:
//! - stories, told as DRBD users know them (the Primary writes while its
//!   peer is down, both nodes write apart, one node's metadata is
//!   recreated, …), each checking the exact decision on both nodes;
//! - properties over random histories: a simulated pair of nodes goes
//!   through random events (writes, link drops, crashes with writes in
//!   flight, promotions, resyncs, recreated metadata, `--discard-my-data`)
//!   and at every connect the two decisions must mirror each other, no
//!   acknowledged write may be lost unless a split-brain resolution chose to
//!   drop it, a divergence must never pass as "no sync", a bitmap resync
//!   must cover every block that differs, and a finished resync must leave
//!   identical disks.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use replica::generation::{GenerationIds, JUST_CREATED, PRIMARY_BIT};
use replica::superblock::{Flags, VolumeState};
use replica::sync::{
    AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, PeerView, SplitBrainPolicy, SplitBrainResolution,
    SyncDecision, SyncKind, SyncRole, UnresolvedReason, begin_sync_as_target, decide,
    finish_sync_as_source, finish_sync_as_target,
};

// ---------------------------------------------------------------------------
// A simulated pair of nodes.
// ---------------------------------------------------------------------------

/// Data blocks per simulated disk (one bitmap bit each).
const BLOCKS: usize = 6;
const ALL_BLOCKS: u8 = (1 << BLOCKS) - 1;

#[derive(Debug, Clone)]
struct Node {
    name: String,
    up: bool,
    primary: bool,
    state: VolumeState,
    /// Block contents: the id of the write that last landed there (0 = none).
    data: [u32; BLOCKS],
    /// The dirty bitmap, one bit per block.
    bitmap: u8,
    /// A new generation was started in the current period without a peer.
    new_generation_started: bool,
    /// Acknowledged writes this node's data descends from.
    acked: BTreeSet<u32>,
    discard_my_data: bool,
}

impl Node {
    fn fresh(name: &str) -> Self {
        Node {
            name: name.to_owned(),
            up: true,
            primary: false,
            state: VolumeState {
                flags: Flags::AL_CLEAN,
                generations: GenerationIds::just_created(),
            },
            data: [0; BLOCKS],
            bitmap: 0,
            new_generation_started: false,
            acked: BTreeSet::new(),
            discard_my_data: false,
        }
    }

    fn consistent(&self) -> bool {
        self.state.flags.contains(Flags::CONSISTENT)
    }

    fn view(&self) -> PeerView {
        PeerView {
            generations: self.state.generations,
            flags: self.state.flags,
            primary: self.primary,
            dirty_blocks: u64::from(self.bitmap.count_ones()),
            node_name: self.name.clone(),
            discard_my_data: self.discard_my_data,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Resync {
    source: usize,
    /// Blocks still to copy.
    pending: u8,
}

#[derive(Debug, Clone, Copy)]
enum Link {
    Down,
    Up { resync: Option<Resync> },
}

#[derive(Debug, Clone)]
enum Event {
    /// The node writes a block (only if it is up and Primary).
    Write {
        node: usize,
        block: usize,
    },
    /// The link drops while a Primary's write is in flight: it lands
    /// locally, perhaps on the peer too, and is answered without the peer.
    WriteAsLinkDrops {
        node: usize,
        block: usize,
        reaches_peer: bool,
    },
    /// A Primary crashes with a write in flight, never answered.
    CrashWhileWriting {
        node: usize,
        block: usize,
        reaches_local: bool,
        reaches_peer: bool,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Disconnect,
    Connect,
    /// The running resync copies one block; at its end the source may crash
    /// before recording that it finished.
    ResyncStep {
        source_crashes_at_end: bool,
    },
    Promote {
        node: usize,
    },
    /// `primary --force` while disconnected: this copy is the one to keep.
    ForcePromote {
        node: usize,
    },
    Demote {
        node: usize,
    },
    /// create-md again (the data stays, the metadata is new).
    RecreateMetadata {
        node: usize,
    },
    /// `connect --discard-my-data` for the next connect.
    DiscardMyData {
        node: usize,
    },
}

/// What a connect attempt decided, seen from node 0.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectRecord {
    decision: SyncDecision,
    /// The decision was a resync that the target refused because it is
    /// Primary (replicad's rr-conflict handling).
    refused_primary_target: bool,
}

struct Pair {
    nodes: [Node; 2],
    link: Link,
    policy: SplitBrainPolicy,
    next_write: u32,
    next_id: u64,
    /// Acknowledged writes an operator declared disposable (create-md on
    /// the node holding them).
    forfeited: BTreeSet<u32>,
    connects: Vec<ConnectRecord>,
    events: Vec<Event>,
}

impl Pair {
    fn new(names: [&str; 2], policy: SplitBrainPolicy) -> Self {
        Pair {
            nodes: [Node::fresh(names[0]), Node::fresh(names[1])],
            link: Link::Down,
            policy,
            next_write: 1,
            next_id: 0x1000,
            forfeited: BTreeSet::new(),
            connects: Vec::new(),
            events: Vec::new(),
        }
    }

    fn run(names: [&str; 2], policy: SplitBrainPolicy, events: &[Event]) -> Self {
        let mut pair = Pair::new(names, policy);
        for event in events {
            pair.apply(event.clone());
        }
        pair
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 0x10;
        self.next_id
    }

    fn decisions(&self) -> (SyncDecision, SyncDecision) {
        let (a, b) = (self.nodes[0].view(), self.nodes[1].view());
        (decide(&a, &b, &self.policy), decide(&b, &a, &self.policy))
    }

    fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }

    fn context(&self) -> String {
        let mut text = String::from("events:\n");
        for event in &self.events {
            text += &format!("  {event:?}\n");
        }
        for node in &self.nodes {
            let ids = node.state.generations;
            text += &format!(
                "{}: up {} primary {} flags [{}] current {:#x} bitmap-id {:#x} history {:x?} \
                 data {:?} bitmap {:#08b} acked {:?}\n",
                node.name,
                node.up,
                node.primary,
                node.state.flags,
                ids.current,
                ids.bitmap,
                ids.history,
                node.data,
                node.bitmap,
                node.acked,
            );
        }
        text
    }

    fn link_down(&mut self) {
        self.link = Link::Down;
        for node in &mut self.nodes {
            node.new_generation_started = false;
        }
    }

    /// Before a Primary's write without peer reaches the disk.
    fn start_generation_for_write(&mut self, node: usize) {
        if !self.nodes[node].new_generation_started {
            let fresh = self.fresh_id();
            let writer = &mut self.nodes[node];
            writer.state.generations.on_first_write_without_peer(fresh);
            writer.new_generation_started = true;
        }
    }

    fn crash(&mut self, node: usize) {
        let crashed = &mut self.nodes[node];
        crashed.up = false;
        if crashed.primary {
            crashed.primary = false;
            crashed.state.flags.remove(Flags::PRIMARY);
            crashed.state.flags.insert(Flags::CRASHED_PRIMARY);
        }
        self.link_down();
    }

    fn can_write(&self, node: usize) -> bool {
        self.nodes[node].up && self.nodes[node].primary
    }

    fn apply(&mut self, event: Event) {
        self.events.push(event.clone());
        match event {
            Event::Write { node, block } => {
                if !self.can_write(node) {
                    return;
                }
                let write = self.take_write_id();
                if self.is_connected() {
                    for copy in &mut self.nodes {
                        copy.data[block] = write;
                        copy.acked.insert(write);
                    }
                } else {
                    self.write_without_peer(node, block, write);
                }
            }
            Event::WriteAsLinkDrops {
                node,
                block,
                reaches_peer,
            } => {
                if !self.can_write(node) || !self.is_connected() {
                    return;
                }
                let write = self.take_write_id();
                if reaches_peer {
                    self.nodes[1 - node].data[block] = write;
                }
                self.link_down();
                self.write_without_peer(node, block, write);
            }
            Event::CrashWhileWriting {
                node,
                block,
                reaches_local,
                reaches_peer,
            } => {
                if !self.can_write(node) {
                    return;
                }
                let write = self.take_write_id();
                if self.is_connected() {
                    if reaches_peer {
                        self.nodes[1 - node].data[block] = write;
                    }
                } else {
                    self.start_generation_for_write(node);
                }
                // The activity log covered the block; crash recovery puts it
                // into the bitmap.
                let writer = &mut self.nodes[node];
                writer.bitmap |= 1 << block;
                if reaches_local {
                    writer.data[block] = write;
                }
                self.crash(node);
            }
            Event::Crash { node } => {
                if self.nodes[node].up {
                    self.crash(node);
                }
            }
            Event::Restart { node } => self.nodes[node].up = true,
            Event::Disconnect => {
                if self.is_connected() {
                    self.link_down();
                }
            }
            Event::Connect => {
                if !self.is_connected() && self.nodes.iter().all(|node| node.up) {
                    self.connect();
                }
            }
            Event::ResyncStep {
                source_crashes_at_end,
            } => self.resync_step(source_crashes_at_end),
            Event::Promote { node } => {
                let peer_is_primary = self.is_connected() && self.nodes[1 - node].primary;
                let candidate = &self.nodes[node];
                if candidate.up && !candidate.primary && candidate.consistent() && !peer_is_primary
                {
                    self.promote(node);
                }
            }
            Event::ForcePromote { node } => {
                let candidate = &self.nodes[node];
                if candidate.up && !candidate.primary && !self.is_connected() {
                    self.nodes[node]
                        .state
                        .flags
                        .insert(Flags::CONSISTENT | Flags::WAS_UP_TO_DATE);
                    self.promote(node);
                }
            }
            Event::Demote { node } => {
                let demoted = &mut self.nodes[node];
                demoted.primary = false;
                demoted.state.flags.remove(Flags::PRIMARY);
            }
            Event::RecreateMetadata { node } => {
                let target = &self.nodes[node];
                if target.up && !target.primary && !self.is_connected() {
                    let recreated = &mut self.nodes[node];
                    recreated.state = Node::fresh(&recreated.name).state;
                    recreated.bitmap = 0;
                    recreated.new_generation_started = false;
                    self.forfeited.extend(recreated.acked.iter().copied());
                }
            }
            Event::DiscardMyData { node } => self.nodes[node].discard_my_data = true,
        }
        self.check_connected_disks_agree();
    }

    fn take_write_id(&mut self) -> u32 {
        self.next_write += 1;
        self.next_write
    }

    fn write_without_peer(&mut self, node: usize, block: usize, write: u32) {
        self.start_generation_for_write(node);
        let writer = &mut self.nodes[node];
        writer.bitmap |= 1 << block;
        writer.data[block] = write;
        writer.acked.insert(write);
    }

    fn promote(&mut self, node: usize) {
        if !self.is_connected() && !self.nodes[node].new_generation_started {
            let fresh = self.fresh_id();
            let promoted = &mut self.nodes[node];
            promoted.state.generations.on_promotion_without_peer(fresh);
            promoted.new_generation_started = true;
        }
        let promoted = &mut self.nodes[node];
        promoted.primary = true;
        promoted.state.flags.insert(Flags::PRIMARY);
    }

    fn connect(&mut self) {
        let (decision, mirrored) = self.decisions();
        assert_eq!(
            mirrored,
            decision.mirror(),
            "the two nodes disagree\n{}",
            self.context()
        );
        self.check_decision_is_safe(&decision);
        for node in &mut self.nodes {
            node.discard_my_data = false;
        }
        let mut record = ConnectRecord {
            decision: decision.clone(),
            refused_primary_target: false,
        };
        match decision.resync() {
            None if decision == SyncDecision::NoSync => {
                self.link = Link::Up { resync: None };
                for node in &mut self.nodes {
                    node.new_generation_started = false;
                }
            }
            None => {}
            Some((role, kind)) => {
                let source = match role {
                    SyncRole::Source => 0,
                    SyncRole::Target => 1,
                };
                let target = 1 - source;
                if self.nodes[target].primary {
                    record.refused_primary_target = true;
                } else {
                    self.start_resync(source, kind);
                }
            }
        }
        self.connects.push(record);
    }

    fn start_resync(&mut self, source: usize, kind: SyncKind) {
        let target = 1 - source;
        let pending = match kind {
            SyncKind::Full => ALL_BLOCKS,
            SyncKind::Bitmap => self.nodes[0].bitmap | self.nodes[1].bitmap,
        };
        for node in &mut self.nodes {
            node.bitmap = pending;
            node.new_generation_started = false;
        }
        begin_sync_as_target(&mut self.nodes[target].state);
        self.nodes[target].acked = self.nodes[source].acked.clone();
        self.link = Link::Up {
            resync: Some(Resync { source, pending }),
        };
        if pending == 0 {
            self.resync_step(false);
        }
    }

    fn resync_step(&mut self, source_crashes_at_end: bool) {
        let Link::Up {
            resync: Some(Resync { source, pending }),
        } = self.link
        else {
            return;
        };
        let target = 1 - source;
        let mut pending = pending;
        if pending != 0 {
            let block = pending.trailing_zeros() as usize;
            self.nodes[target].data[block] = self.nodes[source].data[block];
            pending &= !(1 << block);
            for node in &mut self.nodes {
                node.bitmap &= !(1 << block);
            }
        }
        if pending != 0 {
            self.link = Link::Up {
                resync: Some(Resync { source, pending }),
            };
            return;
        }
        assert_eq!(
            self.nodes[target].data,
            self.nodes[source].data,
            "a finished resync left different disks\n{}",
            self.context()
        );
        let source_state = self.nodes[source].state;
        finish_sync_as_target(&mut self.nodes[target].state, &source_state);
        self.link = Link::Up { resync: None };
        if source_crashes_at_end {
            self.crash(source);
        } else {
            finish_sync_as_source(&mut self.nodes[source].state);
            assert_eq!(
                self.nodes[source].state.generations, self.nodes[target].state.generations,
                "after a resync both nodes hold the same ids"
            );
        }
    }

    /// Connected without a resync running and both consistent: the disks
    /// must be identical.
    fn check_connected_disks_agree(&self) {
        let both_consistent = self.nodes.iter().all(Node::consistent);
        if matches!(self.link, Link::Up { resync: None }) && both_consistent {
            assert_eq!(
                self.nodes[0].data,
                self.nodes[1].data,
                "connected in sync with different disks\n{}",
                self.context()
            );
            assert_eq!(self.nodes[0].acked, self.nodes[1].acked);
        }
    }

    /// The acknowledged writes of `node` that must survive.
    fn kept(&self, node: &Node) -> BTreeSet<u32> {
        node.acked.difference(&self.forfeited).copied().collect()
    }

    /// The safety properties of one decision, before it is carried out.
    fn check_decision_is_safe(&self, decision: &SyncDecision) {
        let [a, b] = &self.nodes;
        let both_consistent = a.consistent() && b.consistent();
        let (kept_a, kept_b) = (self.kept(a), self.kept(b));
        let diverged = !kept_a.is_subset(&kept_b) && !kept_b.is_subset(&kept_a);
        if both_consistent && diverged {
            assert!(
                matches!(decision, SyncDecision::SplitBrain { .. })
                    || decision.refuses_connection(),
                "both nodes have acknowledged writes the other lacks, yet {decision:?}\n{}",
                self.context()
            );
        }
        if *decision == SyncDecision::NoSync && both_consistent {
            assert_eq!(
                a.data,
                b.data,
                "no sync between different disks\n{}",
                self.context()
            );
        }
        let plain_sync = matches!(
            decision,
            SyncDecision::BitmapSyncAsSource
                | SyncDecision::BitmapSyncAsTarget
                | SyncDecision::FullSyncAsSource
                | SyncDecision::FullSyncAsTarget
        );
        if let (true, Some((role, kind))) = (plain_sync, decision.resync()) {
            let (source, target) = match role {
                SyncRole::Source => (a, b),
                SyncRole::Target => (b, a),
            };
            let (kept_source, kept_target) = (self.kept(source), self.kept(target));
            assert!(
                kept_target.is_subset(&kept_source),
                "{decision:?} would drop acknowledged writes {:?} of {}\n{}",
                kept_target.difference(&kept_source).collect::<Vec<_>>(),
                target.name,
                self.context()
            );
            assert!(
                source.consistent(),
                "an Inconsistent source\n{}",
                self.context()
            );
            if kind == SyncKind::Bitmap {
                self.check_bitmaps_cover_differences(decision);
            }
        }
        if let Some((_, SyncKind::Bitmap)) = decision.resync() {
            self.check_bitmaps_cover_differences(decision);
        }
    }

    fn check_bitmaps_cover_differences(&self, decision: &SyncDecision) {
        let [a, b] = &self.nodes;
        let covered = a.bitmap | b.bitmap;
        for block in 0..BLOCKS {
            assert!(
                a.data[block] == b.data[block] || covered & (1 << block) != 0,
                "{decision:?}: block {block} differs but is in neither bitmap\n{}",
                self.context()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for stories.
// ---------------------------------------------------------------------------

use Event::*;

const A: usize = 0;
const B: usize = 1;

fn default_policy() -> SplitBrainPolicy {
    SplitBrainPolicy::default()
}

fn policy_0pri(after_sb_0pri: AfterSb0Pri) -> SplitBrainPolicy {
    SplitBrainPolicy {
        after_sb_0pri,
        ..SplitBrainPolicy::default()
    }
}

/// The usual start: both nodes created, ha1 forced Primary, full initial
/// sync, then ha1 back to Secondary and everything in sync.
fn initialized() -> Vec<Event> {
    vec![
        ForcePromote { node: A },
        Connect,
        ResyncStep {
            source_crashes_at_end: false,
        },
        ResyncStep {
            source_crashes_at_end: false,
        },
        ResyncStep {
            source_crashes_at_end: false,
        },
        ResyncStep {
            source_crashes_at_end: false,
        },
        ResyncStep {
            source_crashes_at_end: false,
        },
        ResyncStep {
            source_crashes_at_end: false,
        },
        Write { node: A, block: 0 },
        Demote { node: A },
    ]
}

fn story(mut events: Vec<Event>, more: &[Event]) -> Vec<Event> {
    events.extend_from_slice(more);
    events
}

fn finish_resync() -> Vec<Event> {
    vec![
        ResyncStep {
            source_crashes_at_end: false
        };
        BLOCKS
    ]
}

/// Asserts node A's decision and that B's mirrors it.
fn assert_decisions(pair: &Pair, for_a: SyncDecision) {
    let (a, b) = pair.decisions();
    assert_eq!(a, for_a, "{}", pair.context());
    assert_eq!(b, for_a.mirror(), "{}", pair.context());
}

fn split_brain(resolution: SplitBrainResolution) -> SyncDecision {
    SyncDecision::SplitBrain { resolution }
}

fn unresolved(reason: UnresolvedReason) -> SyncDecision {
    split_brain(SplitBrainResolution::Unresolved(reason))
}

/// Both nodes wrote while apart: A kept writing as Primary after the link
/// dropped (`a_writes` blocks), B was promoted and wrote `b_writes` blocks;
/// then both are demoted.
fn written_apart(a_writes: usize, b_writes: usize) -> Vec<Event> {
    let mut events = story(initialized(), &[Promote { node: A }, Disconnect]);
    events.extend((0..a_writes).map(|block| Write { node: A, block }));
    events.push(Promote { node: B });
    events.extend((0..b_writes).map(|block| Write {
        node: B,
        block: BLOCKS - 1 - block,
    }));
    events.extend([Demote { node: A }, Demote { node: B }]);
    events
}

/// Both nodes promoted after the link dropped (each starts a generation on
/// promotion), A wrote `a_writes` blocks and B `b_writes`; then both are
/// demoted.
fn promoted_apart(a_writes: usize, b_writes: usize) -> Vec<Event> {
    let mut events = story(initialized(), &[Disconnect, Promote { node: A }]);
    events.extend((0..a_writes).map(|block| Write { node: A, block }));
    events.push(Promote { node: B });
    events.extend((0..b_writes).map(|block| Write {
        node: B,
        block: BLOCKS - 1 - block,
    }));
    events.extend([Demote { node: A }, Demote { node: B }]);
    events
}

// ---------------------------------------------------------------------------
// Stories.
// ---------------------------------------------------------------------------

#[test]
fn a_fresh_pair_needs_no_sync() {
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &[]);
    assert_decisions(&pair, SyncDecision::NoSync);
}

#[test]
fn initial_sync_after_forced_promotion_is_full_from_the_forced_node() {
    let pair = Pair::run(
        ["ha1", "ha2"],
        default_policy(),
        &[ForcePromote { node: A }],
    );
    assert_decisions(&pair, SyncDecision::FullSyncAsSource);
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &story(initialized(), &[]));
    assert!(pair.is_connected());
    assert_eq!(pair.nodes[A].data, pair.nodes[B].data);
    assert!(pair.nodes.iter().all(Node::consistent));
}

#[test]
fn primary_writing_while_peer_is_down_resyncs_only_its_dirty_blocks() {
    let events = story(
        initialized(),
        &[
            Promote { node: A },
            Crash { node: B },
            Write { node: A, block: 2 },
            Write { node: A, block: 4 },
            Write { node: A, block: 2 },
            Restart { node: B },
        ],
    );
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    assert_decisions(&pair, SyncDecision::BitmapSyncAsSource);
    assert_eq!(pair.nodes[A].bitmap, 0b10100, "only the written blocks");
    let bitmap_id = pair.nodes[A].state.generations.bitmap;
    assert!(
        replica::generation::same_generation(bitmap_id, pair.nodes[B].state.generations.current),
        "the Primary's bitmap starts at the peer's current generation"
    );
    assert_ne!(bitmap_id & PRIMARY_BIT, 0, "left by a Primary");

    let synced = Pair::run(
        ["ha1", "ha2"],
        default_policy(),
        &story(
            events,
            &[
                Connect,
                ResyncStep {
                    source_crashes_at_end: false,
                },
                ResyncStep {
                    source_crashes_at_end: false,
                },
            ],
        ),
    );
    assert!(matches!(synced.link, Link::Up { resync: None }));
    assert_eq!(synced.nodes[A].data, synced.nodes[B].data);
    assert_eq!(
        synced.nodes[A].state.generations,
        synced.nodes[B].state.generations
    );
    assert_eq!(synced.nodes[A].state.generations.bitmap, 0);
    assert_decisions(&synced, SyncDecision::NoSync);
}

#[test]
fn an_interrupted_resync_resumes_with_the_target_inconsistent() {
    let events = story(
        initialized(),
        &[
            Promote { node: A },
            Disconnect,
            Write { node: A, block: 1 },
            Write { node: A, block: 3 },
            Connect,
            ResyncStep {
                source_crashes_at_end: false,
            },
            Disconnect,
            Write { node: A, block: 5 },
        ],
    );
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    assert!(!pair.nodes[B].consistent(), "the target did not finish");
    assert_eq!(
        pair.nodes[A].bitmap, 0b101000,
        "block 3 still pending, 5 new"
    );
    assert_decisions(&pair, SyncDecision::BitmapSyncAsSource);
}

#[test]
fn both_written_apart_is_a_split_brain_left_to_the_operator_by_default() {
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &written_apart(2, 1));
    assert_decisions(
        &pair,
        unresolved(UnresolvedReason::PolicyIsDisconnect { primaries: 0 }),
    );
    let text = pair.decisions().0.to_string();
    assert!(text.contains("split brain"), "{text}");
    assert!(text.contains("--discard-my-data"), "{text}");
}

#[test]
fn discard_my_data_resolves_a_split_brain_with_a_bitmap_resync() {
    let mut events = written_apart(2, 1);
    events.push(DiscardMyData { node: B });
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardPeer(SyncKind::Bitmap)),
    );
    let resolved = Pair::run(
        ["ha1", "ha2"],
        default_policy(),
        &story(events, &story(vec![Connect], &finish_resync())),
    );
    assert_eq!(resolved.nodes[A].data, resolved.nodes[B].data);
    assert_eq!(
        resolved.nodes[B].acked, resolved.nodes[A].acked,
        "B's own writes are gone"
    );

    let mut both = written_apart(1, 1);
    both.extend([DiscardMyData { node: A }, DiscardMyData { node: B }]);
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &both);
    assert_decisions(&pair, unresolved(UnresolvedReason::BothDiscardTheirData));
}

#[test]
fn discard_my_data_wins_over_an_automatic_policy() {
    let mut events = written_apart(3, 1);
    events.push(DiscardMyData { node: A });
    let pair = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::DiscardLeastChanges),
        &events,
    );
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
}

#[test]
fn discard_zero_changes_picks_the_node_that_did_not_write() {
    let policy = policy_0pri(AfterSb0Pri::DiscardZeroChanges);
    let pair = Pair::run(["ha1", "ha2"], policy.clone(), &promoted_apart(2, 0));
    assert_eq!(pair.nodes[B].bitmap, 0, "B was promoted but wrote nothing");
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardPeer(SyncKind::Bitmap)),
    );
    let pair = Pair::run(["ha1", "ha2"], policy.clone(), &promoted_apart(0, 3));
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
    let pair = Pair::run(["ha1", "ha2"], policy.clone(), &promoted_apart(1, 1));
    assert_decisions(&pair, unresolved(UnresolvedReason::BothNodesChanged));
    // Neither wrote: the node whose name sorts first keeps its (equal) data.
    for (names, expected) in [
        (
            ["ha1", "ha2"],
            SplitBrainResolution::DiscardPeer(SyncKind::Bitmap),
        ),
        (
            ["ha2", "ha1"],
            SplitBrainResolution::DiscardMine(SyncKind::Bitmap),
        ),
    ] {
        let pair = Pair::run(names, policy.clone(), &promoted_apart(0, 0));
        assert_decisions(&pair, split_brain(expected));
    }
}

#[test]
fn a_primary_that_did_not_write_apart_is_simply_behind() {
    // A stayed Primary when the link dropped but wrote nothing, so it kept
    // its generation: B's bitmap covers everything, no split brain.
    let pair = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::Disconnect),
        &written_apart(0, 3),
    );
    assert_decisions(&pair, SyncDecision::BitmapSyncAsTarget);
}

#[test]
fn discard_least_changes_keeps_the_node_that_changed_more() {
    let policy = policy_0pri(AfterSb0Pri::DiscardLeastChanges);
    let pair = Pair::run(["ha1", "ha2"], policy.clone(), &written_apart(1, 3));
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
    let pair = Pair::run(["zeta", "alpha"], policy, &written_apart(2, 2));
    assert_decisions(
        &pair,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
}

#[test]
fn younger_and_older_primary_look_at_who_was_primary_at_the_split() {
    // A was Primary when the link dropped; B was promoted afterwards.
    let events = written_apart(1, 3);
    let younger = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::DiscardYoungerPrimary),
        &events,
    );
    assert_decisions(
        &younger,
        split_brain(SplitBrainResolution::DiscardPeer(SyncKind::Bitmap)),
    );
    let older = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::DiscardOlderPrimary),
        &events,
    );
    assert_decisions(
        &older,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
    // Both promoted after the split: undecided, so least changes decides.
    let fallback = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::DiscardYoungerPrimary),
        &promoted_apart(1, 2),
    );
    assert_decisions(
        &fallback,
        split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
    );
}

#[test]
fn discard_node_names_the_loser() {
    let events = written_apart(1, 1);
    for (name, expected) in [
        (
            "ha2",
            split_brain(SplitBrainResolution::DiscardPeer(SyncKind::Bitmap)),
        ),
        (
            "ha1",
            split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
        ),
        (
            "ha3",
            unresolved(UnresolvedReason::DiscardNodeUnknown {
                name: "ha3".to_owned(),
            }),
        ),
    ] {
        let policy = policy_0pri(AfterSb0Pri::DiscardNode(name.to_owned()));
        let pair = Pair::run(["ha1", "ha2"], policy, &events);
        assert_decisions(&pair, expected);
    }
}

/// Written apart, then B is Primary again when they reconnect.
fn written_apart_b_primary(a_writes: usize, b_writes: usize) -> Vec<Event> {
    story(written_apart(a_writes, b_writes), &[Promote { node: B }])
}

#[test]
fn one_primary_policies() {
    let with = |after_sb_0pri, after_sb_1pri| SplitBrainPolicy {
        after_sb_0pri,
        after_sb_1pri,
        after_sb_2pri: AfterSb2Pri::Disconnect,
    };
    let events = written_apart_b_primary(3, 1);
    let cases = [
        (
            with(AfterSb0Pri::DiscardLeastChanges, AfterSb1Pri::Disconnect),
            unresolved(UnresolvedReason::PolicyIsDisconnect { primaries: 1 }),
        ),
        (
            with(AfterSb0Pri::Disconnect, AfterSb1Pri::DiscardSecondary),
            split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
        ),
        // Least changes would drop the Primary B (1 block against 3).
        (
            with(AfterSb0Pri::DiscardLeastChanges, AfterSb1Pri::Consensus),
            unresolved(UnresolvedReason::ConsensusWouldDiscardPrimary),
        ),
        // Discarding A (the Secondary) both policies agree on.
        (
            with(
                AfterSb0Pri::DiscardNode("ha1".into()),
                AfterSb1Pri::Consensus,
            ),
            split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
        ),
        (
            with(AfterSb0Pri::Disconnect, AfterSb1Pri::Consensus),
            unresolved(UnresolvedReason::PolicyIsDisconnect { primaries: 0 }),
        ),
        (
            with(AfterSb0Pri::DiscardLeastChanges, AfterSb1Pri::ViolentlyAs0p),
            unresolved(UnresolvedReason::PolicyNotSupported {
                option: "after-sb-1pri",
                value: "violently-as0p",
            }),
        ),
        // Least changes would drop the Primary B: B calls pri-lost-after-sb.
        (
            with(
                AfterSb0Pri::DiscardLeastChanges,
                AfterSb1Pri::CallPriLostAfterSb,
            ),
            unresolved(UnresolvedReason::PrimaryLoses { node: "ha2".into() }),
        ),
        // Dropping the Secondary A is done.
        (
            with(
                AfterSb0Pri::DiscardNode("ha1".into()),
                AfterSb1Pri::CallPriLostAfterSb,
            ),
            split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)),
        ),
        (
            with(AfterSb0Pri::Disconnect, AfterSb1Pri::CallPriLostAfterSb),
            unresolved(UnresolvedReason::PolicyIsDisconnect { primaries: 0 }),
        ),
    ];
    for (policy, expected) in cases {
        let pair = Pair::run(["ha1", "ha2"], policy.clone(), &events);
        assert_decisions(&pair, expected.clone());
        assert!(
            !matches!(expected.resync(), Some((SyncRole::Source, _))),
            "{policy:?}: a 1-primary policy never discards the Primary B"
        );
    }
}

#[test]
fn two_primaries_always_disconnect() {
    let events = story(
        written_apart(2, 1),
        &[Promote { node: A }, Promote { node: B }],
    );
    for after_sb_2pri in [
        AfterSb2Pri::Disconnect,
        AfterSb2Pri::ViolentlyAs0p,
        AfterSb2Pri::CallPriLostAfterSb,
    ] {
        let policy = SplitBrainPolicy {
            after_sb_0pri: AfterSb0Pri::DiscardLeastChanges,
            after_sb_1pri: AfterSb1Pri::DiscardSecondary,
            after_sb_2pri,
        };
        let pair = Pair::run(["ha1", "ha2"], policy, &events);
        let (decision, _) = pair.decisions();
        assert!(
            matches!(
                decision,
                SyncDecision::SplitBrain {
                    resolution: SplitBrainResolution::Unresolved(_)
                }
            ),
            "{after_sb_2pri:?}: {decision:?}"
        );
        assert_decisions(&pair, decision);
    }
}

#[test]
fn two_primaries_call_pri_lost_on_the_one_after_sb_0pri_drops() {
    let events = story(
        written_apart(2, 1),
        &[Promote { node: A }, Promote { node: B }],
    );
    for (after_sb_0pri, expected) in [
        // B changed fewer blocks: its changes would go.
        (
            AfterSb0Pri::DiscardLeastChanges,
            unresolved(UnresolvedReason::PrimaryLoses { node: "ha2".into() }),
        ),
        (
            AfterSb0Pri::DiscardNode("ha1".into()),
            unresolved(UnresolvedReason::PrimaryLoses { node: "ha1".into() }),
        ),
        (
            AfterSb0Pri::DiscardZeroChanges,
            unresolved(UnresolvedReason::BothNodesChanged),
        ),
    ] {
        let policy = SplitBrainPolicy {
            after_sb_0pri,
            after_sb_1pri: AfterSb1Pri::Disconnect,
            after_sb_2pri: AfterSb2Pri::CallPriLostAfterSb,
        };
        let pair = Pair::run(["ha1", "ha2"], policy, &events);
        assert_decisions(&pair, expected);
    }
}

#[test]
fn recreated_metadata_on_one_node_means_a_full_sync_to_it() {
    let events = story(initialized(), &[Disconnect, RecreateMetadata { node: B }]);
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    assert!(pair.nodes[B].state.generations.is_just_created());
    assert_decisions(&pair, SyncDecision::FullSyncAsSource);
}

#[test]
fn a_node_far_behind_gets_a_full_sync() {
    // A moved on by more than one generation since B's current and no
    // longer has a bitmap id starting there, only a history entry: the
    // bitmap cannot tell what B lacks.
    let pair = Pair::run(
        ["ha1", "ha2"],
        default_policy(),
        &story(initialized(), &[Write { node: A, block: 1 }]),
    );
    let b = pair.nodes[B].view();
    let mut a = pair.nodes[A].view();
    a.generations.bitmap = 0;
    a.generations.push_history(b.generations.current);
    a.generations.current = 0x7770;
    assert_eq!(
        decide(&a, &b, &default_policy()),
        SyncDecision::FullSyncAsSource
    );
    assert_eq!(
        decide(&b, &a, &default_policy()),
        SyncDecision::FullSyncAsTarget
    );
}

#[test]
fn different_resources_are_unrelated() {
    let r0 = Pair::run(["ha1", "ha2"], default_policy(), &initialized());
    let mut r1 = Pair::new(["ha1", "ha2"], default_policy());
    r1.next_id = 0x9_0000;
    for event in initialized() {
        r1.apply(event);
    }
    let (mine, other) = (r0.nodes[A].view(), r1.nodes[B].view());
    assert_eq!(
        decide(&mine, &other, &default_policy()),
        SyncDecision::UnrelatedData
    );
    assert_eq!(
        decide(&other, &mine, &default_policy()),
        SyncDecision::UnrelatedData
    );
    assert!(SyncDecision::UnrelatedData.refuses_connection());
}

#[test]
fn a_crashed_primary_resyncs_its_in_flight_blocks_to_the_peer_whatever_the_protocol() {
    // The write reached only the Secondary's disk before the Primary died:
    // the ids are equal, but the disks differ in that block.
    let events = story(
        initialized(),
        &[
            Promote { node: A },
            CrashWhileWriting {
                node: A,
                block: 3,
                reaches_local: false,
                reaches_peer: true,
            },
            Restart { node: A },
        ],
    );
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    assert_eq!(
        pair.nodes[A].state.generations.current,
        pair.nodes[B].state.generations.current
    );
    assert_ne!(pair.nodes[A].data, pair.nodes[B].data);
    assert!(pair.nodes[A].state.flags.contains(Flags::CRASHED_PRIMARY));
    assert_decisions(&pair, SyncDecision::BitmapSyncAsSource);
    let synced = Pair::run(
        ["ha1", "ha2"],
        default_policy(),
        &story(events, &story(vec![Connect], &finish_resync())),
    );
    assert_eq!(synced.nodes[A].data, synced.nodes[B].data);
    assert!(!synced.nodes[A].state.flags.contains(Flags::CRASHED_PRIMARY));
    assert_decisions(&synced, SyncDecision::NoSync);
}

#[test]
fn both_crashed_primary_flags_are_broken_by_name() {
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &initialized());
    let mut a = pair.nodes[A].view();
    let mut b = pair.nodes[B].view();
    a.flags.insert(Flags::CRASHED_PRIMARY);
    b.flags.insert(Flags::CRASHED_PRIMARY);
    assert_eq!(
        decide(&a, &b, &default_policy()),
        SyncDecision::BitmapSyncAsSource
    );
    assert_eq!(
        decide(&b, &a, &default_policy()),
        SyncDecision::BitmapSyncAsTarget
    );
}

#[test]
fn a_source_that_missed_the_end_of_its_resync_resyncs_its_dirty_blocks() {
    let events = story(
        initialized(),
        &[
            Promote { node: A },
            Disconnect,
            Write { node: A, block: 2 },
            Connect,
            ResyncStep {
                source_crashes_at_end: true,
            },
            Restart { node: A },
        ],
    );
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &events);
    let (a, b) = (
        &pair.nodes[A].state.generations,
        &pair.nodes[B].state.generations,
    );
    assert_eq!(a.current, b.current, "B adopted A's generation");
    assert_ne!(a.bitmap, 0, "A never cleared its bitmap id");
    assert_eq!(b.bitmap, 0);
    assert_decisions(&pair, SyncDecision::BitmapSyncAsSource);
}

#[test]
fn an_inconsistent_node_is_the_target_even_when_its_ids_show_a_split_brain() {
    let events = story(
        written_apart(3, 2),
        &[
            DiscardMyData { node: B },
            Connect,
            ResyncStep {
                source_crashes_at_end: false,
            },
            Disconnect,
        ],
    );
    let pair = Pair::run(
        ["ha1", "ha2"],
        policy_0pri(AfterSb0Pri::DiscardNode("ha1".into())),
        &events,
    );
    assert!(!pair.nodes[B].consistent());
    assert_decisions(&pair, SyncDecision::BitmapSyncAsSource);
}

#[test]
fn no_resync_from_an_inconsistent_node() {
    let pair = Pair::run(["ha1", "ha2"], default_policy(), &initialized());
    let mut a = pair.nodes[A].view();
    let mut b = pair.nodes[B].view();
    a.flags.remove(Flags::CONSISTENT);
    b.flags.remove(Flags::CONSISTENT);
    b.generations.start_new_generation(0x5550, true);
    assert_eq!(
        decide(&a, &b, &default_policy()),
        SyncDecision::NoConsistentSource
    );
    assert_eq!(
        decide(&b, &a, &default_policy()),
        SyncDecision::NoConsistentSource
    );
}

#[test]
fn split_brain_seen_only_in_histories_needs_a_full_resync_and_an_operator() {
    let shared = 0x4440;
    let ids = |current, history0| GenerationIds {
        current,
        bitmap: 0,
        history: [history0, shared, 0, 0],
    };
    let view = |name: &str, generations, discard_my_data| PeerView {
        generations,
        flags: Flags::CONSISTENT | Flags::WAS_UP_TO_DATE,
        primary: false,
        dirty_blocks: 0,
        node_name: name.to_owned(),
        discard_my_data,
    };
    let policy = policy_0pri(AfterSb0Pri::DiscardZeroChanges);
    let a = view("ha1", ids(0x1110, 0x2220), false);
    let b = view("ha2", ids(0x3330, 0x5550), false);
    assert_eq!(
        decide(&a, &b, &policy),
        unresolved(UnresolvedReason::NoCommonBitmapId)
    );
    let b = view("ha2", ids(0x3330, 0x5550), true);
    assert_eq!(
        decide(&a, &b, &policy),
        split_brain(SplitBrainResolution::DiscardPeer(SyncKind::Full))
    );
    assert_eq!(
        decide(&b, &a, &policy).resync(),
        Some((SyncRole::Target, SyncKind::Full))
    );
}

#[test]
fn nodes_with_the_same_name_are_refused() {
    let pair = Pair::run(["ha1", "ha1"], default_policy(), &written_apart(1, 1));
    assert_decisions(&pair, SyncDecision::SameNodeName);
}

#[test]
fn generation_updates_around_a_sync() {
    let mut ids = GenerationIds {
        current: 0x20,
        bitmap: 0,
        history: [0x10, 0, 0, 0],
    };
    let mut promoted = ids;
    promoted.on_promotion_without_peer(0x30);
    assert_eq!(
        promoted,
        GenerationIds {
            current: 0x31,
            bitmap: 0x20,
            history: [0x10, 0, 0, 0]
        },
        "left as Secondary: bit 0 of the bitmap id clear"
    );
    ids.current |= PRIMARY_BIT;
    promoted = ids;
    promoted.on_promotion_without_peer(0x30);
    assert_eq!(promoted.bitmap, 0x20, "the old Primary mark is dropped");

    ids.current = 0x20;
    ids.on_first_write_without_peer(0x30);
    assert_eq!(ids.current, 0x31);
    assert_eq!(ids.bitmap, 0x21, "left as Primary: bit 0 set");
    ids.on_first_write_without_peer(0x40);
    assert_eq!(ids.bitmap, 0x21, "the bitmap keeps its starting point");
    assert_eq!(ids.history, [0x31, 0x10, 0, 0]);

    let target = GenerationIds::after_sync_as_target(&ids);
    assert_eq!(
        target,
        GenerationIds {
            current: 0x41,
            bitmap: 0,
            history: [0x21, 0x31, 0x10, 0]
        }
    );
    let mut source = VolumeState {
        flags: Flags::CONSISTENT | Flags::WAS_UP_TO_DATE | Flags::CRASHED_PRIMARY,
        generations: ids,
    };
    let mut target = VolumeState {
        flags: Flags::CONSISTENT | Flags::CRASHED_PRIMARY,
        generations: GenerationIds::just_created(),
    };
    begin_sync_as_target(&mut target);
    assert!(!target.flags.contains(Flags::CONSISTENT));
    finish_sync_as_target(&mut target, &source);
    finish_sync_as_source(&mut source);
    assert_eq!(target.generations, source.generations);
    assert_eq!(
        target.flags,
        Flags::CONSISTENT | Flags::WAS_UP_TO_DATE,
        "UpToDate like its source, crash flag gone"
    );
    assert_eq!(source.flags, Flags::CONSISTENT | Flags::WAS_UP_TO_DATE);
    assert_eq!(source.generations.history[0], 0x21);
}

#[test]
fn resync_helpers_name_role_and_kind() {
    assert_eq!(
        SyncDecision::FullSyncAsTarget.resync(),
        Some((SyncRole::Target, SyncKind::Full))
    );
    assert_eq!(SyncDecision::NoSync.resync(), None);
    assert!(!SyncDecision::NoSync.refuses_connection());
    assert!(SyncDecision::NoConsistentSource.refuses_connection());
    assert!(unresolved(UnresolvedReason::BothNodesChanged).refuses_connection());
    assert!(!split_brain(SplitBrainResolution::DiscardMine(SyncKind::Bitmap)).refuses_connection());
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

fn node_index() -> impl Strategy<Value = usize> {
    0..2usize
}

fn event() -> impl Strategy<Value = Event> {
    let block = 0..BLOCKS;
    prop_oneof![
        8 => (node_index(), block.clone()).prop_map(|(node, block)| Write { node, block }),
        1 => (node_index(), block.clone(), any::<bool>()).prop_map(|(node, block, reaches_peer)| {
            WriteAsLinkDrops { node, block, reaches_peer }
        }),
        1 => (node_index(), block, any::<bool>(), any::<bool>()).prop_map(
            |(node, block, reaches_local, reaches_peer)| CrashWhileWriting {
                node,
                block,
                reaches_local,
                reaches_peer,
            }
        ),
        1 => node_index().prop_map(|node| Crash { node }),
        3 => node_index().prop_map(|node| Restart { node }),
        2 => Just(Disconnect),
        4 => Just(Connect),
        10 => prop::bool::weighted(0.05).prop_map(|source_crashes_at_end| ResyncStep {
            source_crashes_at_end
        }),
        4 => node_index().prop_map(|node| Promote { node }),
        1 => node_index().prop_map(|node| ForcePromote { node }),
        3 => node_index().prop_map(|node| Demote { node }),
        1 => node_index().prop_map(|node| RecreateMetadata { node }),
        1 => node_index().prop_map(|node| DiscardMyData { node }),
    ]
}

fn after_sb_0pri() -> impl Strategy<Value = AfterSb0Pri> {
    prop_oneof![
        Just(AfterSb0Pri::Disconnect),
        Just(AfterSb0Pri::DiscardYoungerPrimary),
        Just(AfterSb0Pri::DiscardOlderPrimary),
        Just(AfterSb0Pri::DiscardZeroChanges),
        Just(AfterSb0Pri::DiscardLeastChanges),
        prop::sample::select(vec!["ha1", "ha2", "ha3"])
            .prop_map(|name| AfterSb0Pri::DiscardNode(name.to_owned())),
    ]
}

fn policy() -> impl Strategy<Value = SplitBrainPolicy> {
    (
        after_sb_0pri(),
        prop::sample::select(vec![
            AfterSb1Pri::Disconnect,
            AfterSb1Pri::Consensus,
            AfterSb1Pri::DiscardSecondary,
            AfterSb1Pri::ViolentlyAs0p,
            AfterSb1Pri::CallPriLostAfterSb,
        ]),
        prop::sample::select(vec![
            AfterSb2Pri::Disconnect,
            AfterSb2Pri::ViolentlyAs0p,
            AfterSb2Pri::CallPriLostAfterSb,
        ]),
    )
        .prop_map(
            |(after_sb_0pri, after_sb_1pri, after_sb_2pri)| SplitBrainPolicy {
                after_sb_0pri,
                after_sb_1pri,
                after_sb_2pri,
            },
        )
}

fn names() -> impl Strategy<Value = [&'static str; 2]> {
    prop::sample::select(vec![["ha1", "ha2"], ["ha2", "ha1"]])
}

/// Random events, usually after the initial sync (random events alone
/// seldom get a fresh pair through a full sync).
fn history() -> impl Strategy<Value = ([&'static str; 2], SplitBrainPolicy, Vec<Event>)> {
    (
        names(),
        policy(),
        prop::bool::weighted(0.85),
        prop::collection::vec(event(), 0..80),
    )
        .prop_map(|(names, policy, from_initialized, random)| {
            let start = if from_initialized {
                initialized()
            } else {
                Vec::new()
            };
            (names, policy, story(start, &random))
        })
}

/// A small pool of ids, so that random views share ids often.
fn some_id() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![
        0,
        JUST_CREATED,
        0x10,
        0x11,
        0x20,
        0x21,
        0x30,
        0x40,
        0x50,
    ])
}

fn arbitrary_view(name: &'static str) -> impl Strategy<Value = PeerView> {
    (
        (
            some_id(),
            some_id(),
            [some_id(), some_id(), some_id(), some_id()],
        ),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u64..4,
        any::<bool>(),
    )
        .prop_map(
            move |(
                (current, bitmap, history),
                consistent,
                crashed,
                primary,
                dirty_blocks,
                discard_my_data,
            )| {
                let mut flags = Flags::empty();
                flags.set(Flags::CONSISTENT, consistent);
                flags.set(Flags::CRASHED_PRIMARY, crashed);
                PeerView {
                    generations: GenerationIds {
                        current: if current == 0 { JUST_CREATED } else { current },
                        bitmap,
                        history,
                    },
                    flags,
                    primary,
                    dirty_blocks,
                    node_name: name.to_owned(),
                    discard_my_data,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Every connect in a random history: mirror-image decisions, no lost
    /// acknowledged write, no silent divergence, bitmaps that cover every
    /// difference, identical disks after every resync (checked inside the
    /// simulation).
    #[test]
    fn simulated_histories_decide_safely_and_symmetrically(
        (names, policy, events) in history(),
    ) {
        let mut pair = Pair::new(names, policy);
        for event in events {
            pair.apply(event);
            if pair.nodes.iter().all(|node| node.up) {
                let (mine, theirs) = pair.decisions();
                prop_assert_eq!(theirs, mine.mirror(), "{}", pair.context());
            }
        }
    }

    /// Even for ids no real history produces, both sides agree.
    #[test]
    fn any_pair_of_views_gets_mirror_image_decisions(
        a in arbitrary_view("ha1"),
        b in arbitrary_view("ha2"),
        policy in policy(),
    ) {
        prop_assert_eq!(decide(&b, &a, &policy), decide(&a, &b, &policy).mirror());
    }
}

/// The random histories reach every kind of decision, so the properties
/// above are not checked on trivial cases only.
#[test]
fn simulated_histories_reach_every_kind_of_decision() {
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..600 {
        let (names, policy, events) = history().new_tree(&mut runner).unwrap().current();
        let pair = Pair::run(names, policy, &events);
        for record in &pair.connects {
            let kind = match &record.decision {
                SyncDecision::NoSync => "no sync",
                SyncDecision::BitmapSyncAsSource | SyncDecision::BitmapSyncAsTarget => "bitmap",
                SyncDecision::FullSyncAsSource | SyncDecision::FullSyncAsTarget => "full",
                SyncDecision::SplitBrain {
                    resolution: SplitBrainResolution::Unresolved(_),
                } => "split brain unresolved",
                SyncDecision::SplitBrain { .. } => "split brain resolved",
                SyncDecision::UnrelatedData => "unrelated",
                SyncDecision::NoConsistentSource => "no consistent source",
                SyncDecision::SameNodeName => "same name",
            };
            *seen.entry(kind).or_default() += 1;
            if record.refused_primary_target {
                *seen.entry("primary target refused").or_default() += 1;
            }
        }
    }
    for kind in [
        "no sync",
        "bitmap",
        "full",
        "split brain unresolved",
        "split brain resolved",
        "unrelated",
        "primary target refused",
    ] {
        assert!(seen.contains_key(kind), "never reached {kind}: {seen:?}");
    }
}
