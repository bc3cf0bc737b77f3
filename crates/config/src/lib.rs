//! hapair's configuration files: their YAML schemas, defaults and validation.
//!
//! Each reader parses untrusted text within resource budgets into raw serde
//! structs, then validates those into plain std types; every error names the
//! file and the field (or line and column) and says what to change.

mod error;
mod hook;
mod node;
pub mod resource;
pub mod vrrp;
mod yaml;

pub use error::ConfigError;
pub use hook::{HookCommand, SHELL};
pub use node::this_node;
pub use resource::{MetaDisk, NodeConfig, ResourceConfig, load_resource, load_resources};
pub use vrrp::{VirtualAddress, VrrpConfig, VrrpInstance};
