//! Online verify as its source: asking for block digests, comparing them
//! with the local data, marking differences out of sync on both nodes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use log::{info, warn};
use replica::wire::{DigestAlgorithm, Message};
use tokio::sync::mpsc;

use crate::helpers::Handler;
use crate::serve::Notice;

use super::connection::{Frame, Wire, frame};
use super::link::Replication;
use super::session::local_state;
use super::{BLOCK, LinkContext, wire_digest};

/// Verify requests (one 4 KiB block each) a verify source keeps outstanding.
const VERIFY_WINDOW: usize = 128;

/// The online verify a session runs as its source.
pub(super) struct VerifySource {
    pub(super) algorithm: DigestAlgorithm,
    /// The next block to ask for.
    pub(super) cursor: u64,
    /// Requests sent: offset → length.
    pub(super) requests: BTreeMap<u64, u64>,
    /// Digests received and being compared with the local data, beside
    /// the receive loop (the local read waits for local writes, which wait
    /// for the peer's acks that only the loop takes in).
    pub(super) comparing: tokio::task::JoinSet<Result<(), String>>,
}

/// Starts an online verify as source: VerifyS, counters reset.
pub(super) fn begin_verify(context: &LinkContext) -> Option<VerifySource> {
    let algorithm = wire_digest(context.config.net.verify_alg?);
    let mut link = context.link.lock();
    if link.replication != Replication::Established {
        return None;
    }
    link.replication = Replication::VerifyS;
    link.start_progress(context.volume.size());
    link.verify_out_of_sync = 0;
    info!(
        "{}: online verify started ({algorithm})",
        context.config.name
    );
    Some(VerifySource {
        algorithm,
        cursor: 0,
        requests: BTreeMap::new(),
        comparing: tokio::task::JoinSet::new(),
    })
}

/// Asks for block digests until the window is full.
pub(super) fn request_digests(context: &LinkContext, wire: &Wire, verify: &mut VerifySource) {
    let size = context.volume.size();
    while verify.requests.len() < VERIFY_WINDOW && verify.cursor < size {
        let length = (size - verify.cursor).min(BLOCK);
        verify.requests.insert(verify.cursor, length);
        wire.send(Message::VerifyRequest {
            offset: verify.cursor,
            length: length as u32,
            algorithm: verify.algorithm,
        });
        verify.cursor += length;
    }
}

/// Takes the peer's digest of a range it was asked for and compares it
/// with the local data beside the receive loop.
pub(super) fn take_digest(
    context: &Arc<LinkContext>,
    wire: &Wire,
    verify: &mut VerifySource,
    offset: u64,
    digest: replica::wire::Digest,
) -> Result<(), String> {
    let Some(length) = verify.requests.remove(&offset) else {
        return Err(format!(
            "protocol error: VerifyDigest at {offset} that was not requested"
        ));
    };
    verify.comparing.spawn(compare_digest(
        Arc::clone(context),
        wire.out.clone(),
        offset..offset + length,
        digest,
    ));
    Ok(())
}

/// Compares the peer's digest of a range with the local data; a mismatch
/// is marked out of sync on both nodes (not repaired, as in DRBD).
async fn compare_digest(
    context: Arc<LinkContext>,
    out: mpsc::UnboundedSender<Frame>,
    range: Range<u64>,
    digest: replica::wire::Digest,
) -> Result<(), String> {
    let local = context
        .volume
        .read_range(range.clone())
        .await
        .map_err(|e| format!("cannot read {range:?} to verify it: {e}"))?;
    let length = range.end - range.start;
    let mut link = context.link.lock();
    link.resync_done += length;
    if !digest.matches(&local) {
        link.verify_out_of_sync += length;
        drop(link);
        warn!(
            "{}: online verify: {range:?} differs from the peer; marked out of sync",
            context.config.name
        );
        let offset = range.start;
        if let Err(mark_error) = context.journal.lock().mark_dirty(range) {
            warn!("{}: {mark_error}", context.config.name);
        }
        let _ = out.send(frame(Message::OutOfSync { offset, length }));
    }
    Ok(())
}

/// Every digest compared: back to Established, tell the peer (a State
/// ends its VerifyT), and call `out-of-sync` if blocks differed.
pub(super) fn finish_verify(context: &LinkContext, wire: &Wire) {
    let found = {
        let mut link = context.link.lock();
        link.replication = Replication::Established;
        link.verify_out_of_sync
    };
    if let Err(flush_error) = context.journal.lock().flush_bitmap() {
        warn!("{}: {flush_error}", context.config.name);
    }
    info!(
        "{}: online verify finished: {found} bytes ({} blocks) out of sync",
        context.config.name,
        found / BLOCK
    );
    wire.send(Message::State(local_state(context)));
    if found > 0 {
        context.helpers.call(Handler::OutOfSync);
    }
    let _ = context.notices.send(Notice::LinkChanged);
}
