//! The connect-time sync decision: which node resyncs from which.
//!
//! When two nodes connect, each sends the other its [`PeerView`] (generation
//! ids, flags, role, dirty-block count, name, and whether the operator asked
//! it to discard its data), and each calls [`decide`] with its own view
//! first. The function is pure and antisymmetric by construction: the two
//! nodes reach mirror-image answers ([`SyncDecision::mirror`]) without a
//! further round trip, as long as both use the same [`SplitBrainPolicy`]
//! (the handshake should refuse peers whose policy differs).
//!
//! The rules follow DRBD's `drbd_uuid_compare()` for two nodes; each is
//! described, with the reasons for where we differ, in the "Sync decision"
//! section of `docs/metadata.md`:
//!
//! 1. a node whose metadata was just created takes a full sync from the
//!    other (neither, if both are);
//! 2. equal current ids: no sync, unless one side crashed while Primary (it
//!    becomes bitmap source, whatever the protocol) or one side still has a
//!    bitmap id from a sync whose end it did not record (it becomes bitmap
//!    source);
//! 3. the peer's bitmap id is my current id: I am bitmap target (and the
//!    mirror rule);
//! 4. my current id is in the peer's history: I am full-sync target (and the
//!    mirror rule);
//! 5. equal non-zero bitmap ids: split brain whose changes both bitmaps
//!    cover; [`SplitBrainPolicy`] may resolve it with a bitmap sync;
//! 6. any other shared id: split brain that only a full sync repairs; only
//!    `discard-my-data` resolves it;
//! 7. nothing shared: unrelated data, refuse to connect.
//!
//! After the ids: an Inconsistent node (a resync target that did not finish)
//! facing a consistent one always becomes its target; a sync whose source
//! would be Inconsistent is refused; an explicit `discard-my-data` wins over
//! the automatic split-brain policies.
//!
//! The generation and flag updates around a sync are here too:
//! [`begin_sync_as_target`], [`finish_sync_as_source`],
//! [`finish_sync_as_target`].

mod policy;

use std::fmt;

pub use policy::{AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, SplitBrainPolicy};

use crate::generation::{GenerationIds, JUST_CREATED, PRIMARY_BIT, same_generation};
use crate::superblock::{Flags, VolumeState};
use policy::Survivor;

/// What one node tells the other about itself when they connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub generations: GenerationIds,
    /// The superblock flags; `consistent` and `crashed-primary` matter here.
    pub flags: Flags,
    /// The node is Primary now.
    pub primary: bool,
    /// Blocks set in its dirty bitmap (what it changed without the peer).
    pub dirty_blocks: u64,
    /// Its name in the configuration; breaks ties. The two names must differ.
    pub node_name: String,
    /// The operator connected it with `--discard-my-data`: if this connect
    /// finds a split brain, this node's changes are the ones dropped.
    pub discard_my_data: bool,
}

impl PeerView {
    fn is_consistent(&self) -> bool {
        self.flags.contains(Flags::CONSISTENT)
    }

    fn crashed_primary(&self) -> bool {
        self.flags.contains(Flags::CRASHED_PRIMARY)
    }

    /// Bit 0 of the bitmap id: this node was Primary when it left the
    /// generation the bitmap starts from.
    fn left_shared_generation_as_primary(&self) -> bool {
        self.generations.bitmap & PRIMARY_BIT != 0
    }

    /// Whether this node keeps its data when a tie has to be broken: the
    /// node whose name sorts first does. Both nodes compute the same answer.
    fn wins_tie_against(&self, peer: &PeerView) -> bool {
        self.node_name < peer.node_name
    }
}

/// How much a resync copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    /// Only the blocks set in either node's dirty bitmap (the two bitmaps
    /// are exchanged and ORed).
    Bitmap,
    /// Every block.
    Full,
}

/// Which end of a resync this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRole {
    /// Sends blocks (DRBD's SyncSource).
    Source,
    /// Receives blocks and is Inconsistent until the end (SyncTarget).
    Target,
}

/// The outcome of [`decide`], from the deciding node's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDecision {
    /// The data is the same generation on both nodes.
    NoSync,
    /// I send the blocks in the union of both bitmaps.
    BitmapSyncAsSource,
    /// I receive the blocks in the union of both bitmaps.
    BitmapSyncAsTarget,
    /// I send every block.
    FullSyncAsSource,
    /// I receive every block.
    FullSyncAsTarget,
    /// Both nodes changed the data since they last shared a generation.
    SplitBrain { resolution: SplitBrainResolution },
    /// The nodes share no generation: different volumes, or history lost.
    /// Refuse to connect.
    UnrelatedData,
    /// A resync is needed but its source would be an Inconsistent node, so
    /// neither node has a complete copy to give. Refuse to connect.
    NoConsistentSource,
    /// Both nodes carry the same name, so ties cannot be broken the same way
    /// on both sides. Refuse to connect.
    SameNodeName,
}

impl SyncDecision {
    /// The decision the peer reaches for the same pair of views.
    pub fn mirror(&self) -> SyncDecision {
        match self {
            SyncDecision::BitmapSyncAsSource => SyncDecision::BitmapSyncAsTarget,
            SyncDecision::BitmapSyncAsTarget => SyncDecision::BitmapSyncAsSource,
            SyncDecision::FullSyncAsSource => SyncDecision::FullSyncAsTarget,
            SyncDecision::FullSyncAsTarget => SyncDecision::FullSyncAsSource,
            SyncDecision::SplitBrain { resolution } => SyncDecision::SplitBrain {
                resolution: resolution.mirror(),
            },
            other => other.clone(),
        }
    }

    /// The resync to run, if any — including the one that resolves a split
    /// brain. `None` means: connect without resync (`NoSync`) or refuse.
    pub fn resync(&self) -> Option<(SyncRole, SyncKind)> {
        match self {
            SyncDecision::BitmapSyncAsSource => Some((SyncRole::Source, SyncKind::Bitmap)),
            SyncDecision::BitmapSyncAsTarget => Some((SyncRole::Target, SyncKind::Bitmap)),
            SyncDecision::FullSyncAsSource => Some((SyncRole::Source, SyncKind::Full)),
            SyncDecision::FullSyncAsTarget => Some((SyncRole::Target, SyncKind::Full)),
            SyncDecision::SplitBrain {
                resolution: SplitBrainResolution::DiscardPeer(kind),
            } => Some((SyncRole::Source, *kind)),
            SyncDecision::SplitBrain {
                resolution: SplitBrainResolution::DiscardMine(kind),
            } => Some((SyncRole::Target, *kind)),
            _ => None,
        }
    }

    /// True if the nodes must not stay connected.
    pub fn refuses_connection(&self) -> bool {
        !matches!(self, SyncDecision::NoSync) && self.resync().is_none()
    }

    fn sync(role: SyncRole, kind: SyncKind) -> SyncDecision {
        match (role, kind) {
            (SyncRole::Source, SyncKind::Bitmap) => SyncDecision::BitmapSyncAsSource,
            (SyncRole::Target, SyncKind::Bitmap) => SyncDecision::BitmapSyncAsTarget,
            (SyncRole::Source, SyncKind::Full) => SyncDecision::FullSyncAsSource,
            (SyncRole::Target, SyncKind::Full) => SyncDecision::FullSyncAsTarget,
        }
    }
}

impl fmt::Display for SyncDecision {
    /// One line for the log, from the deciding node's point of view.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncDecision::NoSync => f.write_str("data in sync, no resync needed"),
            SyncDecision::BitmapSyncAsSource => {
                f.write_str("SyncSource: resyncing the blocks in the dirty bitmaps to the peer")
            }
            SyncDecision::BitmapSyncAsTarget => {
                f.write_str("SyncTarget: resyncing the blocks in the dirty bitmaps from the peer")
            }
            SyncDecision::FullSyncAsSource => f.write_str("SyncSource: full resync to the peer"),
            SyncDecision::FullSyncAsTarget => f.write_str("SyncTarget: full resync from the peer"),
            SyncDecision::SplitBrain {
                resolution: SplitBrainResolution::Unresolved(reason),
            } => write!(
                f,
                "split brain detected and not resolved ({reason}); disconnecting. \
                 Choose the node whose changes to drop and run \
                 `haadm connect --discard-my-data` on it"
            ),
            SyncDecision::SplitBrain {
                resolution: SplitBrainResolution::DiscardMine(kind),
            } => write!(
                f,
                "split brain detected, resolved by discarding this node's changes \
                 ({} resync from the peer)",
                kind_word(*kind)
            ),
            SyncDecision::SplitBrain {
                resolution: SplitBrainResolution::DiscardPeer(kind),
            } => write!(
                f,
                "split brain detected, resolved by discarding the peer's changes \
                 ({} resync to the peer)",
                kind_word(*kind)
            ),
            SyncDecision::UnrelatedData => f.write_str(
                "unrelated data: the nodes share no generation id; disconnecting. \
                 Check that both nodes use the same volume, or recreate the \
                 metadata of the node to overwrite (create-md) for a full resync",
            ),
            SyncDecision::NoConsistentSource => f.write_str(
                "a resync is needed but the node that would send it is Inconsistent \
                 (its own resync did not finish); disconnecting. Connect it to a \
                 node with good data, or promote one with --force if it is the copy to keep",
            ),
            SyncDecision::SameNodeName => f.write_str(
                "both nodes have the same name; disconnecting. Give each node its \
                 own name in the configuration",
            ),
        }
    }
}

fn kind_word(kind: SyncKind) -> &'static str {
    match kind {
        SyncKind::Bitmap => "bitmap",
        SyncKind::Full => "full",
    }
}

/// How a split brain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBrainResolution {
    /// Nothing decided it: disconnect and let the operator choose.
    Unresolved(UnresolvedReason),
    /// My changes are dropped: I become SyncTarget with this kind of resync.
    DiscardMine(SyncKind),
    /// The peer's changes are dropped: I become SyncSource.
    DiscardPeer(SyncKind),
}

impl SplitBrainResolution {
    fn mirror(&self) -> SplitBrainResolution {
        match self {
            SplitBrainResolution::DiscardMine(kind) => SplitBrainResolution::DiscardPeer(*kind),
            SplitBrainResolution::DiscardPeer(kind) => SplitBrainResolution::DiscardMine(*kind),
            unresolved => unresolved.clone(),
        }
    }
}

/// Why a split brain stayed unresolved. The same on both nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnresolvedReason {
    /// The policy for this many Primaries is `disconnect`.
    PolicyIsDisconnect { primaries: u8 },
    /// `discard-zero-changes`, and both nodes changed blocks.
    BothNodesChanged,
    /// `after-sb-1pri consensus`, and `after-sb-0pri` would drop the
    /// Primary's changes (or could not decide).
    ConsensusWouldDiscardPrimary,
    /// A policy value hapair does not implement (`violently-as0p`: it
    /// would change data under a Primary's users).
    PolicyNotSupported {
        option: &'static str,
        value: &'static str,
    },
    /// `discard-node-NAME` names neither node.
    DiscardNodeUnknown { name: String },
    /// The nodes share no bitmap id, only older ids: neither bitmap is known
    /// to cover what changed, so automatic policies do not apply.
    NoCommonBitmapId,
    /// Both nodes were connected with `--discard-my-data`.
    BothDiscardTheirData,
    /// `call-pri-lost-after-sb`: `after-sb-0pri` would drop the changes of
    /// Primary `node`, which calls its `pri-lost-after-sb` handler (DRBD's
    /// users make it demote or reboot that node).
    PrimaryLoses { node: String },
}

impl fmt::Display for UnresolvedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnresolvedReason::PolicyIsDisconnect { primaries } => {
                write!(f, "after-sb-{primaries}pri is disconnect")
            }
            UnresolvedReason::BothNodesChanged => {
                f.write_str("discard-zero-changes, but both nodes changed blocks")
            }
            UnresolvedReason::ConsensusWouldDiscardPrimary => f.write_str(
                "after-sb-1pri consensus, but after-sb-0pri would not discard the Secondary",
            ),
            UnresolvedReason::PolicyNotSupported { option, value } => {
                write!(f, "{option} {value} is not supported by hapair")
            }
            UnresolvedReason::DiscardNodeUnknown { name } => {
                write!(f, "discard-node-{name} names neither node")
            }
            UnresolvedReason::NoCommonBitmapId => f.write_str(
                "the nodes share only older generation ids, so a full resync is \
                 needed and no automatic policy applies",
            ),
            UnresolvedReason::BothDiscardTheirData => {
                f.write_str("both nodes were connected with --discard-my-data")
            }
            UnresolvedReason::PrimaryLoses { node } => write!(
                f,
                "call-pri-lost-after-sb: after-sb-0pri would discard the changes of \
                 Primary {node}, which calls its pri-lost-after-sb handler"
            ),
        }
    }
}

/// What the generation ids alone say, from my side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lineage {
    Same,
    MineNewer(SyncKind),
    PeerNewer(SyncKind),
    /// Split brain; the kind of resync that would repair it.
    SplitBrain(SyncKind),
    Unrelated,
}

/// Decides what happens when `me` connects to `peer`. `decide(peer, me, …)`
/// is always `decide(me, peer, …).mirror()`.
pub fn decide(me: &PeerView, peer: &PeerView, policy: &SplitBrainPolicy) -> SyncDecision {
    if me.node_name == peer.node_name {
        return SyncDecision::SameNodeName;
    }
    let lineage = compare_generations(me, peer);
    if let Some(decision) = inconsistency_override(me, peer, lineage) {
        return decision;
    }
    let decision = match lineage {
        Lineage::Same => SyncDecision::NoSync,
        Lineage::MineNewer(kind) => SyncDecision::sync(SyncRole::Source, kind),
        Lineage::PeerNewer(kind) => SyncDecision::sync(SyncRole::Target, kind),
        Lineage::SplitBrain(kind) => SyncDecision::SplitBrain {
            resolution: resolve_split_brain(me, peer, policy, kind),
        },
        Lineage::Unrelated => SyncDecision::UnrelatedData,
    };
    // Here both nodes are consistent or both are not; a sync from an
    // Inconsistent node would spread half-copied data.
    let source_is_inconsistent = match decision.resync() {
        Some((SyncRole::Source, _)) => !me.is_consistent(),
        Some((SyncRole::Target, _)) => !peer.is_consistent(),
        None => false,
    };
    if source_is_inconsistent {
        SyncDecision::NoConsistentSource
    } else {
        decision
    }
}

/// Exactly one node Inconsistent (a resync target that did not finish, or
/// invalidated): its data is not a generation at all, so the consistent node
/// becomes source whatever the ids say — also over a split brain, which the
/// Inconsistent node's ids may still show from before it became target. The
/// bitmaps cover the unfinished blocks unless the ids call for a full sync.
/// Unrelated data stays refused.
fn inconsistency_override(
    me: &PeerView,
    peer: &PeerView,
    lineage: Lineage,
) -> Option<SyncDecision> {
    if lineage == Lineage::Unrelated {
        return None;
    }
    let role = match (me.is_consistent(), peer.is_consistent()) {
        (true, false) => SyncRole::Source,
        (false, true) => SyncRole::Target,
        _ => return None,
    };
    let ids_need_full = matches!(
        lineage,
        Lineage::MineNewer(SyncKind::Full)
            | Lineage::PeerNewer(SyncKind::Full)
            | Lineage::SplitBrain(SyncKind::Full)
    );
    let never_synced = me.generations.is_just_created() || peer.generations.is_just_created();
    let kind = if ids_need_full || never_synced {
        SyncKind::Full
    } else {
        SyncKind::Bitmap
    };
    Some(SyncDecision::sync(role, kind))
}

/// Turns a pair of mirrored tests into a lineage: only mine holds → mine is
/// newer, only the peer's → the peer's is, both → contradictory ids, which
/// only a full resync after an explicit choice repairs.
fn one_sided(mine_newer: bool, peer_newer: bool, kind: SyncKind) -> Option<Lineage> {
    match (mine_newer, peer_newer) {
        (true, false) => Some(Lineage::MineNewer(kind)),
        (false, true) => Some(Lineage::PeerNewer(kind)),
        (true, true) => Some(Lineage::SplitBrain(SyncKind::Full)),
        (false, false) => None,
    }
}

/// An id that names a real generation: not "none", and not "just created",
/// which every volume starts from without its data ever being compared, so
/// sharing it proves nothing.
fn names_synced_generation(id: u64) -> bool {
    id != 0 && !same_generation(id, JUST_CREATED)
}

/// The id rules, in DRBD's order. Every rule tests both directions at once,
/// which makes the result antisymmetric by construction.
fn compare_generations(me: &PeerView, peer: &PeerView) -> Lineage {
    let (mine, theirs) = (&me.generations, &peer.generations);

    match (mine.is_just_created(), theirs.is_just_created()) {
        (true, true) => return Lineage::Same,
        (true, false) => return Lineage::PeerNewer(SyncKind::Full),
        (false, true) => return Lineage::MineNewer(SyncKind::Full),
        (false, false) => {}
    }

    if same_generation(mine.current, theirs.current) {
        return same_current_generation(me, peer);
    }

    let bitmap_rule = one_sided(
        names_synced_generation(mine.bitmap) && same_generation(mine.bitmap, theirs.current),
        names_synced_generation(theirs.bitmap) && same_generation(theirs.bitmap, mine.current),
        SyncKind::Bitmap,
    );
    if let Some(lineage) = bitmap_rule {
        return lineage;
    }

    let history_rule = one_sided(
        history_names_synced(mine, theirs.current),
        history_names_synced(theirs, mine.current),
        SyncKind::Full,
    );
    if let Some(lineage) = history_rule {
        return lineage;
    }

    if names_synced_generation(mine.bitmap) && same_generation(mine.bitmap, theirs.bitmap) {
        // Both left the same generation: each bitmap holds what its node
        // changed since.
        return Lineage::SplitBrain(SyncKind::Bitmap);
    }

    let older_ids = |ids: &GenerationIds| {
        let mut older = ids.history.to_vec();
        older.push(ids.bitmap);
        older.retain(|&id| names_synced_generation(id));
        older
    };
    let (my_older, their_older) = (older_ids(mine), older_ids(theirs));
    let shared = my_older
        .iter()
        .any(|&a| their_older.iter().any(|&b| same_generation(a, b)));
    if shared {
        Lineage::SplitBrain(SyncKind::Full)
    } else {
        Lineage::Unrelated
    }
}

/// Equal current ids. Normally no resync, with two exceptions that make a
/// bitmap resync (the union of both bitmaps) from one side:
///
/// - a node that crashed while Primary may have had writes in flight that
///   reached only one disk; its crash recovery put them in its bitmap. It
///   becomes source, whatever the protocol: with A or B it may hold
///   acknowledged writes the peer never got, and with C the disks may still
///   differ in unacknowledged blocks, which must not stay different.
/// - a node with a bitmap id facing one without was sync source and did not
///   record the end of the sync (the target adopted the ids). Resyncing its
///   dirty blocks is harmless and clears the stale bitmap id.
fn same_current_generation(me: &PeerView, peer: &PeerView) -> Lineage {
    let mine_crashed_newer = match (me.crashed_primary(), peer.crashed_primary()) {
        (true, true) => Some(me.wins_tie_against(peer)),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    match mine_crashed_newer {
        Some(true) => return Lineage::MineNewer(SyncKind::Bitmap),
        Some(false) => return Lineage::PeerNewer(SyncKind::Bitmap),
        None => {}
    }
    one_sided(
        me.generations.bitmap != 0 && peer.generations.bitmap == 0,
        peer.generations.bitmap != 0 && me.generations.bitmap == 0,
        SyncKind::Bitmap,
    )
    .unwrap_or(Lineage::Same)
}

/// `id` names a synced generation and is in the history of `ids`.
fn history_names_synced(ids: &GenerationIds, id: u64) -> bool {
    names_synced_generation(id) && ids.history_contains(id)
}

/// Resolves a split brain: `--discard-my-data` first (an explicit choice
/// wins), then, only if both bitmaps cover the changes, the policy for the
/// number of Primaries now.
fn resolve_split_brain(
    me: &PeerView,
    peer: &PeerView,
    policy: &SplitBrainPolicy,
    kind: SyncKind,
) -> SplitBrainResolution {
    match (me.discard_my_data, peer.discard_my_data) {
        (true, true) => {
            return SplitBrainResolution::Unresolved(UnresolvedReason::BothDiscardTheirData);
        }
        (true, false) => return SplitBrainResolution::DiscardMine(kind),
        (false, true) => return SplitBrainResolution::DiscardPeer(kind),
        (false, false) => {}
    }
    if kind == SyncKind::Full {
        return SplitBrainResolution::Unresolved(UnresolvedReason::NoCommonBitmapId);
    }
    match policy.survivor(me, peer) {
        Ok(Survivor::Mine) => SplitBrainResolution::DiscardPeer(kind),
        Ok(Survivor::Peer) => SplitBrainResolution::DiscardMine(kind),
        Err(reason) => SplitBrainResolution::Unresolved(reason),
    }
}

/// A node becomes sync target: it is Inconsistent until the resync ends.
pub fn begin_sync_as_target(state: &mut VolumeState) {
    state.flags.remove(Flags::CONSISTENT);
}

/// The target reported the end of the resync: the bitmap id goes into the
/// history ([`GenerationIds::clear_bitmap_id`]) and a `crashed-primary` flag
/// is cleared — its in-flight blocks have been resynced.
pub fn finish_sync_as_source(state: &mut VolumeState) {
    state.generations.clear_bitmap_id();
    state.flags.remove(Flags::CRASHED_PRIMARY);
}

/// The resync from `source` ended: the target adopts the source's ids
/// ([`GenerationIds::after_sync_as_target`]), is consistent again (UpToDate
/// if the source was), and forgets a `crashed-primary` flag.
pub fn finish_sync_as_target(state: &mut VolumeState, source: &VolumeState) {
    state.generations = GenerationIds::after_sync_as_target(&source.generations);
    state.flags.insert(Flags::CONSISTENT);
    state.flags.set(
        Flags::WAS_UP_TO_DATE,
        source.flags.contains(Flags::WAS_UP_TO_DATE),
    );
    state.flags.remove(Flags::CRASHED_PRIMARY);
}
