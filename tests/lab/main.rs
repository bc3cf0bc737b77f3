//! The lab tests: hapair's programs on network-namespace hosts, against
//! each other and against real peers. They need root (CI runs them as
//! root); see the `hapair_lab` harness.

mod common;
mod harness;
mod vrrp_failover;
mod vrrp_hooks;
mod vrrp_interop;
mod vrrp_tshark;
