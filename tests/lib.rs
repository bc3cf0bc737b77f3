//! The hapair test lab: hosts built out of Linux network namespaces, joined
//! by a bridge, on which the lab tests (`tests/lab/`) run hapair's daemons
//! against each other and against real peers such as keepalived.
//!
//! A [`Lab`] owns a switch namespace holding a bridge and one namespace per
//! [`Host`], each host joined to the bridge by a veth pair whose host end is
//! `eth0`, addressed 10.99.0.N/24 and fd99::N/64. Nothing is configured in the
//! root namespace. Dropping the lab, also while a test panics, kills every
//! process started in it and removes its namespaces; a panicking test also
//! prints every log the lab wrote.
//!
//! Lab tests need root. Each one starts like this, so that tests whose
//! outcome depends on time run one at a time, and a non-root run skips them
//! (except under CI, where it fails):
//!
//! ```no_run
//! let _lock = hapair_lab::lab_lock();
//! if !hapair_lab::require_root() {
//!     return;
//! }
//! let lab = hapair_lab::Lab::new(2);
//! ```

mod capture;
mod keepalived;
mod netns;
mod process;
mod replicad;
pub mod storage_pair;
mod support;
mod vrrp_config;
mod vrrpd;

pub use capture::Capture;
pub use keepalived::Keepalived;
pub use netns::{Host, Lab, existing_namespaces};
pub use process::{Proc, process_is_alive};
pub use replicad::{
    Finished, FuseExport, LoopDevice, MetadataDump, Mount, NODE, NbdkitDisk, RESOURCE,
    ReplicadNode, free_loopback_port, path_arg, program, random_bytes, read_file_range,
    run_bounded, run_ok,
};
pub use support::{binary, installed_program, lab_lock, require_root, wait_until};
pub use vrrp_config::{Hooks, VrrpInstance, keepalived_config, vrrpd_config};
pub use vrrpd::{Vrrpd, read_vrrpd_state};
