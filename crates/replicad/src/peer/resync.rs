//! The bitmap resync: exchanging and merging bitmaps, the sync target
//! asking for dirty ranges and writing what comes back, the sync source
//! answering, and the end of a resync on either side.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hapair_config::ResourceConfig;
use log::{info, warn};
use replica::sync;
use replica::wire::{BitmapChunk, Data, MAX_BITMAP_WORDS, MAX_DATA_LEN, Message, NodeState};
use tokio::sync::mpsc;

use crate::helpers::Handler;
use crate::pacer::ResyncPacer;
use crate::serve::HeldRange;

use super::connection::{Frame, Wire, frame};
use super::link::Replication;
use super::session::volume_state_of;
use super::{BLOCK, LinkContext};

/// Resync requests a sync target keeps outstanding.
const RESYNC_WINDOW: usize = 8;

/// The resync a session runs as target.
pub(super) struct TargetResync {
    /// The source's whole bitmap arrived; requests may start.
    pub(super) ready: bool,
    /// Requests sent: offset → (length, made stale by a mirrored write).
    pub(super) requests: BTreeMap<u64, (u64, bool)>,
    /// Data received and being written beside the receive loop, its range
    /// held: offset → length. Counted in the window with `requests`.
    pub(super) writing: BTreeMap<u64, u64>,
    /// The writes of `writing`; each ends with its offset.
    pub(super) writes: tokio::task::JoinSet<Result<u64, String>>,
    /// Where the walk over the dirty bitmap continues.
    pub(super) cursor: u64,
    pub(super) pacer: ResyncPacer,
}

impl TargetResync {
    pub(super) fn new(config: &ResourceConfig) -> TargetResync {
        TargetResync {
            ready: false,
            requests: BTreeMap::new(),
            writing: BTreeMap::new(),
            writes: tokio::task::JoinSet::new(),
            cursor: 0,
            pacer: ResyncPacer::new(&config.disk, MAX_DATA_LEN as u64, Instant::now()),
        }
    }

    /// Requests and writes outstanding.
    pub(super) fn in_flight(&self) -> usize {
        self.requests.len() + self.writing.len()
    }

    /// Whether `range` is asked for or being written.
    pub(super) fn covers(&self, range: &Range<u64>) -> bool {
        self.requests
            .iter()
            .map(|(offset, (length, _))| (offset, length))
            .chain(self.writing.iter())
            .any(|(offset, length)| overlaps(range, &(*offset..offset + length)))
    }
}

/// Writes resync data whose range `held` is held, beside the receive loop,
/// then clears its bits and counts it; ends with the offset.
pub(super) async fn write_resync_data(
    context: Arc<LinkContext>,
    held: HeldRange,
    offset: u64,
    data: Bytes,
) -> Result<u64, String> {
    let length = data.len() as u64;
    context
        .volume
        .write_held(held, data, false)
        .await
        .map_err(|write_error| format!("cannot write resync data: {write_error}"))?;
    if let Err(clear_error) = context.journal.lock().clear_dirty(offset..offset + length) {
        warn!("{}: {clear_error}", context.config.name);
    }
    let mut link = context.link.lock();
    link.resynced_bytes += length;
    link.resync_done += length;
    Ok(offset)
}

/// Answers one of the sync target's ResyncRequests. This runs beside the
/// session loop, never in it: the read waits for local writes to the range,
/// and a local write waits for the peer's WriteAck, which only the loop
/// takes in. The source's bits are cleared once the data is queued.
pub(super) async fn answer_resync_request(
    context: Arc<LinkContext>,
    out: mpsc::UnboundedSender<Frame>,
    offset: u64,
    length: u32,
) -> Result<(), String> {
    let name = &context.config.name;
    let range = offset..offset.saturating_add(u64::from(length));
    match context.volume.read_range(range.clone()).await {
        Ok(data) => {
            let sent = data.len() as u64;
            let queued = out.send(frame(Message::ResyncData {
                offset,
                data: Data::new(data).expect("1 byte to 1 MiB, as requested"),
            }));
            if queued.is_err() {
                return Ok(());
            }
            if let Err(clear_error) = context.journal.lock().clear_dirty(range) {
                warn!("{name}: {clear_error}");
            }
            let mut link = context.link.lock();
            link.resynced_bytes += sent;
            link.resync_done += sent;
        }
        Err(read_error) => {
            warn!("{name}: cannot read {range:?} for the peer's resync: {read_error}");
            let _ = out.send(frame(Message::ResyncFailed { offset, length }));
        }
    }
    Ok(())
}

pub(super) fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The dirty bitmap as 64-bit words, block 0 first.
pub(super) fn bitmap_words(metadata: &crate::resource::VolumeMetadata) -> Vec<u64> {
    let bitmap = metadata.bitmap();
    let word_count = bitmap.blocks().div_ceil(64) as usize;
    let mut words: Vec<u64> = (0..bitmap.page_count())
        .flat_map(|page| bitmap.page_words(page).iter().copied())
        .collect();
    words.truncate(word_count);
    words
}

pub(super) fn send_bitmap(wire: &Wire, words: Vec<u64>) {
    let chunks: Vec<&[u64]> = words.chunks(MAX_BITMAP_WORDS).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let offset = (index * MAX_BITMAP_WORDS) as u64;
        let last = index + 1 == chunks.len();
        let chunk = BitmapChunk::new(offset, chunk.to_vec(), last).expect("within the limits");
        wire.send(Message::BitmapChunk(chunk));
    }
}

/// ORs the peer's bitmap chunk into ours.
pub(super) fn merge_bitmap_chunk(context: &LinkContext, chunk: &BitmapChunk) {
    let mut metadata = context.journal.lock();
    let blocks = metadata.bitmap().blocks();
    for range in set_bit_runs(chunk.word_offset(), chunk.words()) {
        let range = range.start.min(blocks)..range.end.min(blocks);
        if range.is_empty() {
            continue;
        }
        if let Err(mark_error) = metadata.mark_dirty(range.start * BLOCK..range.end * BLOCK) {
            warn!("{}: {mark_error}", context.config.name);
        }
    }
}

/// The runs of set bits in `words` (starting at word `word_offset`), as
/// block ranges.
fn set_bit_runs(word_offset: u64, words: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for (index, &word) in words.iter().enumerate() {
        if word == 0 {
            continue;
        }
        let base = (word_offset + index as u64) * 64;
        for bit in 0..64 {
            if word & (1 << bit) == 0 {
                continue;
            }
            let block = base + bit;
            match runs.last_mut() {
                Some(run) if run.end == block => run.end += 1,
                _ => runs.push(block..block + 1),
            }
        }
    }
    runs
}

/// The sync target becomes Inconsistent, with the combined bitmap durable
/// first: a crash from here on resumes the resync, it never skips a block.
pub(super) fn begin_as_target(context: &LinkContext) -> Result<(), String> {
    let mut metadata = context.journal.lock();
    metadata.flush_bitmap().map_err(|e| e.to_string())?;
    metadata
        .update_superblock(sync::begin_sync_as_target)
        .map_err(|e| e.to_string())?;
    let total = metadata.bitmap().dirty_bytes();
    drop(metadata);
    context.link.lock().start_progress(total);
    info!(
        "{}: resync from the peer started: {total} bytes out of sync",
        context.config.name
    );
    Ok(())
}

/// The sync source has both bitmaps: what is dirty now is what the resync
/// copies, the total its progress counts against.
pub(super) fn begin_as_source(context: &LinkContext) {
    let total = context.journal.lock().bitmap().dirty_bytes();
    let mut link = context.link.lock();
    if link.replication == Replication::SyncSource {
        link.start_progress(total);
    }
}

/// Asks for dirty ranges until the window is full.
pub(super) fn request_more(context: &LinkContext, wire: &Wire, resync: &mut TargetResync) {
    if resync.in_flight() >= RESYNC_WINDOW {
        return;
    }
    let metadata = context.journal.lock();
    let size = metadata.usable_size();
    let mut wanted = Vec::new();
    let now = Instant::now();
    let longest = resync.pacer.request_length(now);
    let mut paced_out = false;
    for range in metadata.dirty_ranges() {
        if range.end <= resync.cursor {
            continue;
        }
        let mut at = range.start.max(resync.cursor);
        let end = range.end.min(size);
        while at < end && resync.in_flight() + wanted.len() < RESYNC_WINDOW {
            let length = (end - at).min(longest);
            if !resync.covers(&(at..at + length)) {
                if !resync.pacer.try_take(length, now) {
                    paced_out = true;
                    break;
                }
                wanted.push((at, length));
            }
            at += length;
        }
        resync.cursor = at;
        if paced_out || resync.in_flight() + wanted.len() >= RESYNC_WINDOW {
            break;
        }
    }
    let walked_to_end = !paced_out && resync.in_flight() + wanted.len() < RESYNC_WINDOW;
    drop(metadata);
    if walked_to_end && wanted.is_empty() {
        // Everything asked for; start over for ranges asked again later.
        resync.cursor = 0;
    }
    for (offset, length) in wanted {
        resync.requests.insert(offset, (length, false));
        wire.send(Message::ResyncRequest {
            offset,
            length: length as u32,
        });
    }
}

/// The resync is complete: adopt the source's generation ids, UpToDate.
pub(super) fn finish_as_target(context: &LinkContext, source: &NodeState) -> Result<(), String> {
    let source_state = volume_state_of(source);
    // The resynced data is durable before the bitmap saying so and the
    // UpToDate state are: with external metadata, syncing the metadata
    // does not sync the data file.
    context
        .volume
        .sync()
        .map_err(|e| format!("cannot make the resynced data durable: {e}"))?;
    let mut metadata = context.journal.lock();
    metadata.flush_bitmap().map_err(|e| e.to_string())?;
    metadata
        .update_superblock(|state| sync::finish_sync_as_target(state, &source_state))
        .map_err(|e| e.to_string())?;
    drop(metadata);
    let mut link = context.link.lock();
    link.replication = Replication::Established;
    info!(
        "{}: resync finished: {} bytes copied from the peer",
        context.config.name, link.resync_done
    );
    drop(link);
    context.helpers.call(Handler::AfterResyncTarget);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_bits_become_block_runs() {
        assert_eq!(set_bit_runs(0, &[0]), Vec::<Range<u64>>::new());
        assert_eq!(set_bit_runs(0, &[0b1110]), vec![1..4]);
        assert_eq!(
            set_bit_runs(2, &[1 << 63, 0b1, 0, 1 << 5]),
            vec![191..193, 325..326],
            "runs continue across words and start at the word offset"
        );
    }
}
