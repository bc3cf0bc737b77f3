//! The resource's handlers (drbd.conf's `handlers` section), run as DRBD's
//! kernel module calls its user-mode helpers: `split-brain`,
//! `before-resync-target`, `fence-peer` and the others, each with DRBD's
//! environment (`DRBD_RESOURCE`, `DRBD_PEER`, `DRBD_PEER_ADDRESS`,
//! `DRBD_BACKING_DEV`) and the same values under `HAPAIR_*` names, plus
//! `HAPAIR_NODE` and `HAPAIR_HANDLER`.
//!
//! The handlers of one resource run one at a time, in the order they were
//! called, through `hookrun`'s queues, each with [`HANDLER_TIMEOUT`], script
//! security (a handler run as root must be root's alone) and an entry in
//! the hook journal (`haadm hooks`). Every
//! call, configured or not, is announced on the events stream as events2
//! does (`call helper ... helper:split-brain`, then `response helper ...
//! status:N` when a handler ran), so a split brain is visible there too.
//! How a `fence-peer` call ended decides whether a Primary frozen by
//! `fencing: resource-and-stonith` resumes its I/O ([`after_fence_peer`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hapair_config::{HookCommand, ResourceConfig};
use hookrun::{
    DEFAULT_JOURNAL_MAX_BYTES, HookRunner, JOURNAL_FILE_NAME, Job, Journal, Outcome, RunSettings,
};
use log::{info, warn};
use tokio::sync::mpsc;

use crate::serve::Notice;

/// How long a handler may run before its process group is killed.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// The handlers replicad calls, by their drbd.conf names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    InitialSplitBrain,
    SplitBrain,
    FencePeer,
    LocalIoError,
    BeforeResyncTarget,
    AfterResyncTarget,
    BeforeResyncSource,
    OutOfSync,
    Disconnected,
    PriLostAfterSb,
}

impl Handler {
    pub fn name(self) -> &'static str {
        match self {
            Handler::InitialSplitBrain => "initial-split-brain",
            Handler::SplitBrain => "split-brain",
            Handler::FencePeer => "fence-peer",
            Handler::LocalIoError => "local-io-error",
            Handler::BeforeResyncTarget => "before-resync-target",
            Handler::AfterResyncTarget => "after-resync-target",
            Handler::BeforeResyncSource => "before-resync-source",
            Handler::OutOfSync => "out-of-sync",
            Handler::Disconnected => "disconnected",
            Handler::PriLostAfterSb => "pri-lost-after-sb",
        }
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs one resource's handlers; shared by the peer link and the write path.
pub struct Helpers {
    config: ResourceConfig,
    node: String,
    peer_name: String,
    runner: HookRunner,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Helpers {
    /// Handler runs are journalled in `<run_dir>/hooks.journal`, as vrrpd's
    /// hooks are by default, so `haadm hooks` shows both.
    pub fn new(
        config: ResourceConfig,
        node: String,
        notices: mpsc::UnboundedSender<Notice>,
        run_dir: &Path,
    ) -> Helpers {
        let peer_name = config
            .peer(&node)
            .map(|(name, _)| name.to_string())
            .unwrap_or_default();
        Helpers {
            config,
            node,
            peer_name,
            runner: HookRunner::with_settings(RunSettings {
                journal: Some(Arc::new(Journal::new(
                    run_dir.join(JOURNAL_FILE_NAME),
                    DEFAULT_JOURNAL_MAX_BYTES,
                ))),
                ..RunSettings::default()
            }),
            notices,
        }
    }

    /// Where the resource's notices go (to the daemon's events).
    pub fn notices(&self) -> &mpsc::UnboundedSender<Notice> {
        &self.notices
    }

    fn command(&self, handler: Handler) -> Option<&HookCommand> {
        let handlers = &self.config.handlers;
        match handler {
            Handler::InitialSplitBrain => handlers.initial_split_brain.as_ref(),
            Handler::SplitBrain => handlers.split_brain.as_ref(),
            Handler::FencePeer => handlers.fence_peer.as_ref(),
            Handler::LocalIoError => handlers.local_io_error.as_ref(),
            Handler::BeforeResyncTarget => handlers.before_resync_target.as_ref(),
            Handler::AfterResyncTarget => handlers.after_resync_target.as_ref(),
            Handler::BeforeResyncSource => handlers.before_resync_source.as_ref(),
            Handler::OutOfSync => handlers.out_of_sync.as_ref(),
            Handler::Disconnected => handlers.disconnected.as_ref(),
            Handler::PriLostAfterSb => handlers.pri_lost_after_sb.as_ref(),
        }
    }

    /// DRBD's helper environment, and the same under `HAPAIR_*` names.
    fn environment(&self, handler: Handler) -> Vec<(String, String)> {
        let peer_address = self
            .config
            .peer(&self.node)
            .map(|(_, peer)| peer.address.ip().to_string())
            .unwrap_or_default();
        let backing = self
            .config
            .local(&self.node)
            .map(|local| local.disk.display().to_string())
            .unwrap_or_default();
        let mut env = Vec::new();
        for (key, value) in [
            ("RESOURCE", self.config.name.clone()),
            ("PEER", self.peer_name.clone()),
            ("PEER_ADDRESS", peer_address),
            ("BACKING_DEV", backing),
        ] {
            env.push((format!("DRBD_{key}"), value.clone()));
            env.push((format!("HAPAIR_{key}"), value));
        }
        env.push(("HAPAIR_NODE".into(), self.node.clone()));
        env.push(("HAPAIR_HANDLER".into(), handler.name().into()));
        env
    }

    fn announce(&self, handler: Handler) {
        let line = format!(
            "call helper name:{} conn-name:{} volume:0 helper:{handler}",
            self.config.name, self.peer_name
        );
        let _ = self.notices.send(Notice::Event(line));
    }

    /// Calls `handler` and returns at once; a configured command runs in
    /// the background.
    pub fn call(&self, handler: Handler) {
        drop(self.submit(handler));
    }

    /// Calls `handler` and waits until its command (if configured) ended.
    pub async fn call_and_wait(&self, handler: Handler) -> Called {
        match self.submit(handler) {
            Some(ended) => ended.await.unwrap_or(Called::Failed),
            None => Called::NotConfigured,
        }
    }

    fn submit(&self, handler: Handler) -> Option<tokio::sync::oneshot::Receiver<Called>> {
        self.announce(handler);
        let command = self.command(handler)?;
        let mut job = Job::new(
            format!("{} {handler}", self.config.name),
            command.argv.clone(),
            HANDLER_TIMEOUT,
        );
        for (key, value) in self.environment(handler) {
            job = job.with_env(key, value);
        }
        info!("{}: calling the {handler} handler", self.config.name);
        let outcome = self.runner.submit(&self.config.name, job);
        let (done, result) = tokio::sync::oneshot::channel();
        let (name, notices, peer_name) = (
            self.config.name.clone(),
            self.notices.clone(),
            self.peer_name.clone(),
        );
        tokio::spawn(async move {
            let outcome = outcome.await;
            let called = match &outcome {
                Ok(Outcome::Exited { code, .. }) => Called::Exited(*code),
                _ => Called::Failed,
            };
            // events2 says -1 for a helper that did not exit by itself.
            let code = match called {
                Called::Exited(code) => code,
                _ => -1,
            };
            match &outcome {
                Ok(outcome) if outcome.success() => {}
                Ok(_) if handler == Handler::FencePeer && fence_peer_meaning(code).is_some() => {
                    let meaning = fence_peer_meaning(code).expect("checked");
                    info!("{name}: the fence-peer handler exited with {code}: {meaning}");
                }
                Ok(outcome) => warn!("{name}: the {handler} handler {outcome}"),
                Err(_) => warn!("{name}: the {handler} handler was lost"),
            }
            let _ = notices.send(Notice::Event(format!(
                "response helper name:{name} conn-name:{peer_name} volume:0 helper:{handler} status:{code}"
            )));
            let _ = done.send(called);
        });
        Some(result)
    }
}

/// How a handler call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Called {
    /// No command is configured for the handler.
    NotConfigured,
    /// The command exited by itself with this code.
    Exited(i32),
    /// The command did not exit by itself: it was refused, could not
    /// start, timed out or was killed (the hook journal says which).
    Failed,
}

/// What a Primary frozen by `fencing: resource-and-stonith` does once its
/// `fence-peer` handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFencing {
    /// The peer cannot write any more: I/O resumes. Says why.
    Resume(&'static str),
    /// The peer may still be Primary: I/O stays suspended. Says why.
    StayFrozen(String),
}

/// Reads the end of a `fence-peer` call as DRBD does: exit codes 3, 4, 5
/// and 7 say the peer is out of the way; 6 says it is Primary, and any
/// other end says nothing for sure.
pub fn after_fence_peer(called: Called) -> AfterFencing {
    match called {
        Called::Exited(6) => AfterFencing::StayFrozen(format!(
            "the fence-peer handler exited with 6: {}",
            fence_peer_meaning(6).unwrap_or_default()
        )),
        Called::Exited(code) => match fence_peer_meaning(code) {
            Some(meaning) => AfterFencing::Resume(meaning),
            None => AfterFencing::StayFrozen(format!(
                "the fence-peer handler exited with {code}, which does not say the peer is \
                 fenced (3, 4, 5 or 7 would)"
            )),
        },
        Called::Failed => AfterFencing::StayFrozen(
            "the fence-peer handler did not exit by itself (refused, not started, timed out \
             or killed: see haadm hooks)"
                .into(),
        ),
        Called::NotConfigured => {
            AfterFencing::StayFrozen("no fence-peer handler is configured".into())
        }
    }
}

/// What the exit code of a `fence-peer` handler says, as DRBD reads it;
/// `None` for a code that means the fencing failed.
pub fn fence_peer_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        3 => "the peer's disk was already Inconsistent",
        4 => "the peer's disk is now Outdated",
        5 => "the peer could not be reached (it is taken as down)",
        6 => "the peer refused to be outdated: it is Primary",
        7 => "the peer was fenced off the cluster (STONITH)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_peer_codes_read_as_drbd_reads_them() {
        assert_eq!(
            fence_peer_meaning(4),
            Some("the peer's disk is now Outdated")
        );
        assert!(fence_peer_meaning(7).is_some_and(|meaning| meaning.contains("STONITH")));
        for failed in [0, 1, 2, 8, -1] {
            assert_eq!(fence_peer_meaning(failed), None, "code {failed}");
        }
    }

    #[test]
    fn a_frozen_primary_resumes_only_when_the_peer_is_out_of_the_way() {
        for fenced in [3, 4, 5, 7] {
            assert_eq!(
                after_fence_peer(Called::Exited(fenced)),
                AfterFencing::Resume(fence_peer_meaning(fenced).expect("a fencing code")),
                "code {fenced}"
            );
        }
        let stays = |called| match after_fence_peer(called) {
            AfterFencing::StayFrozen(why) => why,
            AfterFencing::Resume(meaning) => panic!("{called:?} resumed: {meaning}"),
        };
        assert!(stays(Called::Exited(6)).contains("it is Primary"));
        for failed in [0, 1, 2, 8, -1] {
            assert!(
                stays(Called::Exited(failed)).contains(&format!("exited with {failed}")),
                "code {failed}"
            );
        }
        assert!(stays(Called::Failed).contains("did not exit by itself"));
        assert!(stays(Called::NotConfigured).contains("no fence-peer handler"));
    }
}
