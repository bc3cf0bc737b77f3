//! keepalived's `vrrp_sync_group`: virtual routers that change state
//! together, such as the client-side and replication-side addresses of one
//! storage pair, which must always live on the same host.
//!
//! The rules, kept from keepalived:
//! - a member that is faulty (its own health tracking failed) puts every
//!   member into FAULT, until no member is faulty any more;
//! - a member that leaves Master for Backup (it heard a better Master)
//!   takes the other Masters with it;
//! - a member becomes Master only when every member would: their
//!   Master_Down timers expired (keepalived's "prefer Backup, to avoid
//!   thrashing"). Members are therefore gated ([`Instance::set_sync_gated`]).
//!
//! [`SyncGroup::sync`] applies these rules to the members after anything
//! happened to any of them, and reports the group's own state when it
//! changed, for the group's notify hooks. It holds no instances itself, so
//! the daemon keeps owning them.

use std::time::Instant;

use crate::instance::{Instance, State};

/// One sync group's view of its members.
#[derive(Debug)]
pub struct SyncGroup {
    name: String,
    /// Each member's state as of the previous [`SyncGroup::sync`].
    seen: Vec<State>,
    state: State,
}

impl SyncGroup {
    /// A group of `members` instances, all still in Initialize.
    pub fn new(name: impl Into<String>, members: usize) -> SyncGroup {
        SyncGroup {
            name: name.into(),
            seen: vec![State::Initialize; members],
            state: State::Initialize,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's state: FAULT when any member is, MASTER when all are,
    /// INIT when all are, BACKUP otherwise.
    pub fn state(&self) -> State {
        self.state
    }

    /// Brings the members (always passed in the same order, as many as
    /// given to [`SyncGroup::new`]) into line after any of them changed.
    /// Returns the group's new state when it changed. The members' queued
    /// actions are left for the daemon to drain.
    pub fn sync(&mut self, now: Instant, members: &mut [&mut Instance]) -> Option<State> {
        for member in members.iter_mut() {
            member.set_sync_gated(true);
        }
        let faulty = members.iter().any(|member| member.own_fault());
        for member in members.iter_mut() {
            member.set_group_fault(now, faulty);
        }
        if !faulty {
            let left_master = members
                .iter()
                .zip(&self.seen)
                .any(|(member, seen)| *seen == State::Master && member.state() == State::Backup);
            let all_want_master = members
                .iter()
                .all(|member| member.state() == State::Master || member.wants_master());
            if left_master {
                for member in members.iter_mut() {
                    member.force_backup(now);
                }
            } else if all_want_master {
                for member in members.iter_mut() {
                    member.force_master(now);
                }
            }
        }
        self.seen = members.iter().map(|member| member.state()).collect();
        let all = |state| self.seen.iter().all(|seen| *seen == state);
        let state = if self.seen.contains(&State::Fault) {
            State::Fault
        } else if all(State::Master) {
            State::Master
        } else if all(State::Initialize) {
            State::Initialize
        } else {
            State::Backup
        };
        (state != self.state).then(|| {
            self.state = state;
            state
        })
    }
}
