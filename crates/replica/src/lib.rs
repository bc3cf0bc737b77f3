//! The on-disk metadata of a replicated volume.
//!
//! A volume's metadata records who it belongs to, how big it is, which
//! generation of the data it holds, which blocks the peer may lack (the dirty
//! bitmap) and which regions may have had writes in flight at a crash (the
//! activity log). The byte-level format is documented in `docs/metadata.md`.
//!
//! Encoding, decoding and the activity-log logic are pure (bytes in, bytes
//! out); [`store::Metadata`] is the thin layer that reads, writes and syncs
//! them in a file.
//!
//! - [`block`]: the checksummed 4 KiB frame shared by all metadata blocks.
//! - [`layout`]: geometry and where each block lives.
//! - [`superblock`]: the twice-stored superblock and its flags.
//! - [`generation`]: generation ids (current, bitmap, history).
//! - [`bitmap`]: the dirty bitmap and its page codec.
//! - [`activity_log`]: hot extents, transactions and recovery.
//! - [`store`]: the file layer: create, open, update, recover.
//! - [`dump`]: the human-readable dump for `haadm dump-md`.
//! - [`size`]: exact human-readable sizes for messages.
//! - [`wire`]: the peer wire protocol codec (`docs/wire-protocol.md`).
//! - [`auth`]: the connection handshake and peer authentication.

pub mod activity_log;
pub mod auth;
pub mod bitmap;
pub mod block;
pub mod dump;
pub mod generation;
pub mod layout;
pub mod size;
pub mod store;
pub mod superblock;
pub mod sync;
pub mod wire;
