//! The VRRP protocol core of hapair, free of I/O.
//!
//! Nothing here opens a socket or reads a clock: the daemon (`vrrpd`) feeds
//! received bytes and the current time in, and takes actions (packets to send,
//! addresses to add or remove, state changes to report) out.
//!
//! - [`packet`]: the VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798 / RFC 9568) codec.
//! - [`check`]: every receive check of RFC 5798 §7.1 / RFC 3768 §7.1, with a
//!   reason for each rejected packet.
//! - [`instance`]: the Initialize / Backup / Master / Fault state machine of one
//!   virtual router, driven by `handle_*(now, …)` and `poll_*()`.
//! - [`track`]: health tracking (track scripts, interfaces and files):
//!   effective priority and FAULT, with keepalived's semantics.
//! - [`sync_group`]: instances that change state together.
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisement
//!   frames that tell the LAN where a virtual address now lives.

pub mod announce;
pub mod check;
pub mod instance;
pub mod packet;
pub mod sync_group;
pub mod track;

pub use check::{DropReason, Received};
pub use instance::{Action, Config, Counters, Instance, State};
pub use packet::{Advertisement, Authentication, Checksum, Version};
pub use sync_group::SyncGroup;
