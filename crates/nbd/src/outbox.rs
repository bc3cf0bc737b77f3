//! The bytes waiting to be written to the client.
//!
//! Small pieces (headers, option replies) are coalesced into one buffer so
//! the daemon makes few writes; large data buffers handed over by the daemon
//! are queued as they are, without a copy.

use std::collections::VecDeque;

/// Small pieces are appended to the last buffer while it is shorter than this.
const COALESCE_LIMIT: usize = 64 << 10;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buffers: VecDeque<Vec<u8>>,
    /// Whether the last buffer is one of ours and may be appended to (not
    /// a data buffer that came from the daemon).
    tail_is_ours: bool,
    queued_bytes: usize,
}

impl Outbox {
    /// Queues a copy of a small piece.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.queued_bytes += bytes.len();
        if self.tail_is_ours
            && let Some(tail) = self.buffers.back_mut()
            && tail.len() < COALESCE_LIMIT
        {
            tail.extend_from_slice(bytes);
            return;
        }
        self.buffers.push_back(bytes.to_vec());
        self.tail_is_ours = true;
    }

    /// Queues a buffer as it is.
    pub(crate) fn push_owned(&mut self, buffer: Vec<u8>) {
        if buffer.is_empty() {
            return;
        }
        self.queued_bytes += buffer.len();
        self.buffers.push_back(buffer);
        self.tail_is_ours = false;
    }

    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let buffer = self.buffers.pop_front()?;
        self.queued_bytes -= buffer.len();
        if self.buffers.is_empty() {
            self.tail_is_ours = false;
        }
        Some(buffer)
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }
}
