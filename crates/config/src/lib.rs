//! hapair's configuration files: their YAML schemas, defaults and validation.
//!
//! Each reader parses untrusted text within resource budgets into raw serde
//! structs, then validates those into plain std types; every error names the
//! file and the field (or line and column) and says what to change.

pub mod drbd;
mod error;
mod glob;
mod hook;
pub mod keepalived;
mod node;
pub mod resource;
mod source;
pub mod vrrp;
mod yaml;

pub use error::ConfigError;
pub use hook::{HookCommand, HookSettings, SHELL, ScriptUser};
pub use node::this_node;
pub use resource::{MetaDisk, NodeConfig, ResourceConfig, load_resource, load_resources};
pub use source::{Format, LoadOptions, Loaded, format_of, load_config};
pub use vrrp::{
    MasterHookFailure, SyncGroup, TrackFile, Tracked, VirtualAddress, VrrpConfig, VrrpInstance,
    VrrpScript,
};
