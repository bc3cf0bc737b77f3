//! replicad: hapair's replication agent, in place of the DRBD kernel
//! module. `haadm` uses the control protocol and the reports from here;
//! the binary is a thin command line around [`daemon::run`].
//!
//! - [`control`]: the JSON-lines protocol on the control socket.
//! - [`report`]: status and events text in DRBD 9's words.
//! - [`daemon`]: the resources, the control socket, the events stream.
//! - `resource`: one resource's life (up, roles, down) and its rules.
//! - `serve`: NBD connections and the write path.
//! - `deadline`: giving up on a disk that hangs (`disk-timeout`).
//! - `range_lock`: ordering of overlapping requests.
//! - `peer`: the peer link: handshake, mirroring, resync, verify.
//! - `helpers`: the resource's handlers (split-brain, resync, fencing...).
//! - `suspension`: the I/O freeze of `fencing: resource-and-stonith`.
//! - `pacer`: resync rate control (`resync-rate`, `c-max-rate`).

pub mod control;
pub mod daemon;
pub mod report;

mod deadline;
mod helpers;
mod pacer;
mod peer;
mod range_lock;
mod resource;
mod serve;
mod suspension;
