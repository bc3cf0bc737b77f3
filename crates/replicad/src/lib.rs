//! replicad: hapair's replication agent, in place of the DRBD kernel
//! module. The library holds what `haadm` shares with the daemon: the
//! control protocol and the way state is reported.

pub mod control;
pub mod report;
