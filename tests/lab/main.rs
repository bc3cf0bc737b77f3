//! The lab tests: hapair's programs on network-namespace hosts, against
//! each other and against real peers. They need root (CI runs them as
//! root); see the `hapair_lab` harness.

mod common;
mod e2e_chaos;
mod e2e_demo;
mod e2e_failover;
mod e2e_partition;
mod e2e_switchover;
mod harness;
mod hooks_promote;
mod replicad_admin;
mod replicad_clients;
mod replicad_crash;
mod replicad_disk_errors;
mod replicad_filesystem;
mod replicad_hostile;
mod replicad_pair;
mod replicad_pair_connect;
mod replicad_pair_disk_errors;
mod replicad_pair_epochs;
mod replicad_pair_events;
mod replicad_pair_fencing;
mod replicad_pair_handlers;
mod replicad_pair_handshake;
mod replicad_pair_kit;
mod replicad_pair_policies;
mod replicad_pair_proofs;
mod replicad_pair_protocols;
mod replicad_pair_rate;
mod replicad_pair_resync_source;
mod replicad_pair_skip_sync;
mod replicad_pair_transfer_log;
mod replicad_pair_verify;
mod replicad_roles;
mod vrrp_announce;
mod vrrp_failover;
mod vrrp_hook_journal;
mod vrrp_hooks;
mod vrrp_interop;
mod vrrp_keepalived_conf;
mod vrrp_reload;
mod vrrp_track;
mod vrrp_tshark;
