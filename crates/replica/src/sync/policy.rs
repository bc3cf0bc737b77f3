//! Automatic split-brain policies, with DRBD's names (`after-sb-0pri`,
//! `after-sb-1pri`, `after-sb-2pri`), chosen by how many nodes are Primary
//! now. Every policy looks only at facts both nodes know, and every tie is
//! broken by node name, so both nodes pick the same survivor.
//!
//! replicad maps the configuration's policy words onto these types; this
//! crate does not depend on the configuration crate.

use super::{PeerView, UnresolvedReason};

/// What to do with a split brain, by number of Primaries now. The default
/// is `disconnect` for all three, as in DRBD.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SplitBrainPolicy {
    pub after_sb_0pri: AfterSb0Pri,
    pub after_sb_1pri: AfterSb1Pri,
    pub after_sb_2pri: AfterSb2Pri,
}

/// drbd.conf `after-sb-0pri`: neither node is Primary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum AfterSb0Pri {
    #[default]
    Disconnect,
    /// The node that was Primary when the nodes split keeps its changes (the
    /// one promoted afterwards loses). Undecided → `discard-least-changes`.
    DiscardYoungerPrimary,
    /// The node promoted after the split keeps its changes. Undecided →
    /// `discard-least-changes`.
    DiscardOlderPrimary,
    /// The node that changed no block loses; if both changed blocks,
    /// disconnect; if neither, the tie-break picks.
    DiscardZeroChanges,
    /// The node with fewer changed blocks loses; equal counts → tie-break.
    DiscardLeastChanges,
    /// `discard-node-NAME`: the named node loses.
    DiscardNode(String),
}

/// drbd.conf `after-sb-1pri`: exactly one node is Primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AfterSb1Pri {
    #[default]
    Disconnect,
    /// Follow `after-sb-0pri` if it drops the Secondary's changes;
    /// otherwise disconnect.
    Consensus,
    /// The Secondary loses.
    DiscardSecondary,
    /// Not supported (would change data under the Primary's users): stays
    /// unresolved.
    ViolentlyAs0p,
    /// Follow `after-sb-0pri`: if it drops the Secondary's changes, so be
    /// it; if it drops the Primary's, the split brain stays unresolved and
    /// the Primary calls its `pri-lost-after-sb` handler.
    CallPriLostAfterSb,
}

/// drbd.conf `after-sb-2pri`: both nodes are Primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AfterSb2Pri {
    #[default]
    Disconnect,
    /// Not supported: stays unresolved.
    ViolentlyAs0p,
    /// Stays unresolved; the Primary whose changes `after-sb-0pri` would
    /// drop calls its `pri-lost-after-sb` handler.
    CallPriLostAfterSb,
}

/// Whose changes survive a resolved split brain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Survivor {
    Mine,
    Peer,
}

impl Survivor {
    fn tie_break(me: &PeerView, peer: &PeerView) -> Survivor {
        if me.wins_tie_against(peer) {
            Survivor::Mine
        } else {
            Survivor::Peer
        }
    }
}

impl SplitBrainPolicy {
    /// The survivor of a split brain whose changes both bitmaps cover, or why
    /// there is none.
    pub(super) fn survivor(
        &self,
        me: &PeerView,
        peer: &PeerView,
    ) -> Result<Survivor, UnresolvedReason> {
        match (me.primary, peer.primary) {
            (false, false) => self.after_sb_0pri.survivor(me, peer),
            (true, true) => Err(match self.after_sb_2pri {
                AfterSb2Pri::Disconnect => UnresolvedReason::PolicyIsDisconnect { primaries: 2 },
                AfterSb2Pri::ViolentlyAs0p => not_supported("after-sb-2pri", "violently-as0p"),
                AfterSb2Pri::CallPriLostAfterSb => match self.after_sb_0pri.survivor(me, peer)? {
                    Survivor::Mine => primary_loses(peer),
                    Survivor::Peer => primary_loses(me),
                },
            }),
            (mine_primary, _) => {
                let primary = if mine_primary {
                    Survivor::Mine
                } else {
                    Survivor::Peer
                };
                match self.after_sb_1pri {
                    AfterSb1Pri::Disconnect => {
                        Err(UnresolvedReason::PolicyIsDisconnect { primaries: 1 })
                    }
                    AfterSb1Pri::Consensus => match self.after_sb_0pri.survivor(me, peer) {
                        Ok(survivor) if survivor == primary => Ok(survivor),
                        Ok(_) => Err(UnresolvedReason::ConsensusWouldDiscardPrimary),
                        Err(reason) => Err(reason),
                    },
                    AfterSb1Pri::DiscardSecondary => Ok(primary),
                    AfterSb1Pri::ViolentlyAs0p => {
                        Err(not_supported("after-sb-1pri", "violently-as0p"))
                    }
                    AfterSb1Pri::CallPriLostAfterSb => {
                        match self.after_sb_0pri.survivor(me, peer)? {
                            survivor if survivor == primary => Ok(survivor),
                            _ if mine_primary => Err(primary_loses(me)),
                            _ => Err(primary_loses(peer)),
                        }
                    }
                }
            }
        }
    }
}

/// `call-pri-lost-after-sb` found that Primary `loser`'s changes are the
/// ones to drop.
fn primary_loses(loser: &PeerView) -> UnresolvedReason {
    UnresolvedReason::PrimaryLoses {
        node: loser.node_name.clone(),
    }
}

fn not_supported(option: &'static str, value: &'static str) -> UnresolvedReason {
    UnresolvedReason::PolicyNotSupported { option, value }
}

impl AfterSb0Pri {
    fn survivor(&self, me: &PeerView, peer: &PeerView) -> Result<Survivor, UnresolvedReason> {
        let (mine_left_as_primary, peer_left_as_primary) = (
            me.left_shared_generation_as_primary(),
            peer.left_shared_generation_as_primary(),
        );
        match self {
            AfterSb0Pri::Disconnect => Err(UnresolvedReason::PolicyIsDisconnect { primaries: 0 }),
            AfterSb0Pri::DiscardYoungerPrimary if mine_left_as_primary != peer_left_as_primary => {
                Ok(if mine_left_as_primary {
                    Survivor::Mine
                } else {
                    Survivor::Peer
                })
            }
            AfterSb0Pri::DiscardOlderPrimary if mine_left_as_primary != peer_left_as_primary => {
                Ok(if mine_left_as_primary {
                    Survivor::Peer
                } else {
                    Survivor::Mine
                })
            }
            AfterSb0Pri::DiscardZeroChanges => match (me.dirty_blocks, peer.dirty_blocks) {
                (0, 0) => Ok(Survivor::tie_break(me, peer)),
                (0, _) => Ok(Survivor::Peer),
                (_, 0) => Ok(Survivor::Mine),
                _ => Err(UnresolvedReason::BothNodesChanged),
            },
            AfterSb0Pri::DiscardYoungerPrimary
            | AfterSb0Pri::DiscardOlderPrimary
            | AfterSb0Pri::DiscardLeastChanges => {
                Ok(match me.dirty_blocks.cmp(&peer.dirty_blocks) {
                    std::cmp::Ordering::Less => Survivor::Peer,
                    std::cmp::Ordering::Greater => Survivor::Mine,
                    std::cmp::Ordering::Equal => Survivor::tie_break(me, peer),
                })
            }
            AfterSb0Pri::DiscardNode(name) if *name == me.node_name => Ok(Survivor::Peer),
            AfterSb0Pri::DiscardNode(name) if *name == peer.node_name => Ok(Survivor::Mine),
            AfterSb0Pri::DiscardNode(name) => {
                Err(UnresolvedReason::DiscardNodeUnknown { name: name.clone() })
            }
        }
    }
}
