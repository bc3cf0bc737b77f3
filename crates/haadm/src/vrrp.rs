//! vrrpd's state file (`<run-dir>/vrrp/state.json`, replaced atomically on
//! every change) as haadm reads it: [`parse_vrrp_state`] serves `haadm
//! check` and `haadm vrrp status`, which prints the state of every
//! instance (or sync group), or of one, for operators and for scripts
//! without a JSON parser. The promote and demote hooks ask it whether the
//! instance they were run for has moved on meanwhile.
//!
//! The state words are the file's: MASTER, BACKUP, FAULT, INIT (an
//! instance not started, or stopped; its hooks call that STOP).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

/// An instance or a sync group, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedState {
    pub name: String,
    /// `MASTER`, `BACKUP`, `FAULT`, `INIT`.
    pub state: String,
}

/// What haadm needs of vrrpd's state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpState {
    /// The vrrpd that wrote it.
    pub pid: u32,
    pub instances: Vec<NamedState>,
    /// Empty when the file has no `sync_groups` list.
    pub sync_groups: Vec<NamedState>,
}

/// Where vrrpd writes its state file, given its run directory.
pub fn default_state_file(run_dir: &Path) -> PathBuf {
    run_dir.join("vrrp").join("state.json")
}

/// Reads vrrpd's state file text.
pub fn parse_vrrp_state(text: &str) -> Result<VrrpState, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let pid = value["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or("no \"pid\" number")?;
    let instances =
        named_states(&value, "instances", "an instance")?.ok_or("no \"instances\" list")?;
    let sync_groups = named_states(&value, "sync_groups", "a sync group")?.unwrap_or_default();
    Ok(VrrpState {
        pid,
        instances,
        sync_groups,
    })
}

/// The `name` and `state` of each entry (each `kind`, with its article)
/// of the list `value[key]`, or `None` when there is no such list.
fn named_states(
    value: &serde_json::Value,
    key: &str,
    kind: &str,
) -> Result<Option<Vec<NamedState>>, String> {
    let list = &value[key];
    if list.is_null() {
        return Ok(None);
    }
    let entries = list.as_array().ok_or(format!("\"{key}\" is not a list"))?;
    entries
        .iter()
        .map(|entry| {
            let field = |name: &str| {
                entry[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(format!("{kind} without a \"{name}\" string"))
            };
            Ok(NamedState {
                name: field("name")?,
                state: field("state")?,
            })
        })
        .collect::<Result<_, String>>()
        .map(Some)
}

/// `haadm vrrp ...`
#[derive(Subcommand)]
pub enum VrrpCommand {
    /// Print `NAME STATE` for every instance, or the state word alone of
    /// INSTANCE, from vrrpd's state file (exit 4 when it cannot be read,
    /// 5 when it lists no such instance).
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    /// The instance (with --group, the sync group) whose state to print.
    instance: Option<String>,
    /// Sync groups instead of instances.
    #[arg(long)]
    group: bool,
    /// vrrpd's state file (default: <run-dir>/vrrp/state.json).
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
}

/// Why `haadm vrrp status` printed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    /// The state file is missing, unreadable or not vrrpd's.
    Unreadable { path: PathBuf, why: String },
    /// The file lists no instance (or sync group) of that name.
    Unknown {
        path: PathBuf,
        kind: &'static str,
        name: String,
    },
}

impl StatusError {
    /// Distinct from haadm's other codes, so that a script can tell "vrrpd
    /// is not there" from "no such instance".
    pub fn exit_code(&self) -> u8 {
        match self {
            StatusError::Unreadable { .. } => 4,
            StatusError::Unknown { .. } => 5,
        }
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Unreadable { path, why } => write!(
                f,
                "cannot read vrrpd's state file {}: {why} (is vrrpd running with this run \
                 directory? see --run-dir, --state-file)",
                path.display()
            ),
            StatusError::Unknown { path, kind, name } => write!(
                f,
                "{} lists no {kind} {name} (haadm vrrp status{} lists them)",
                path.display(),
                if *kind == "sync group" {
                    " --group"
                } else {
                    ""
                }
            ),
        }
    }
}

/// `haadm vrrp`: prints what the command asks for.
pub fn run(run_dir: &Path, command: &VrrpCommand) -> Result<(), StatusError> {
    let VrrpCommand::Status(args) = command;
    let path = args
        .state_file
        .clone()
        .unwrap_or_else(|| default_state_file(run_dir));
    let state = fs::read_to_string(&path)
        .map_err(|error| error.to_string())
        .and_then(|text| parse_vrrp_state(&text))
        .map_err(|why| StatusError::Unreadable {
            path: path.clone(),
            why,
        })?;
    print!("{}", status_text(&state, args, &path)?);
    Ok(())
}

/// The lines `haadm vrrp status` prints for `state`, read from `path`.
fn status_text(state: &VrrpState, args: &StatusArgs, path: &Path) -> Result<String, StatusError> {
    let (kind, entries) = if args.group {
        ("sync group", &state.sync_groups)
    } else {
        ("instance", &state.instances)
    };
    match &args.instance {
        None => Ok(entries
            .iter()
            .map(|entry| format!("{} {}\n", entry.name, entry.state))
            .collect()),
        Some(name) => entries
            .iter()
            .find(|entry| entry.name == *name)
            .map(|entry| format!("{}\n", entry.state))
            .ok_or_else(|| StatusError::Unknown {
                path: path.to_path_buf(),
                kind,
                name: name.clone(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file as vrrpd writes it (trimmed of the fields haadm skips).
    const STATE: &str = r#"{
  "node": "ha1",
  "pid": 1234,
  "instances": [
    {
      "name": "VI_1",
      "state": "MASTER",
      "priority": 150,
      "effective_priority": 150,
      "master": "10.99.0.1",
      "vips": ["10.99.0.100/24"],
      "counters": {"adverts_sent": 3, "adverts_received": 0, "transitions": 2, "drops": {}}
    },
    {"name": "VI_2", "state": "BACKUP"}
  ],
  "sync_groups": [{"name": "G1", "state": "FAULT", "members": ["VI_1", "VI_2"]}],
  "unmatched_drops": {}
}"#;

    fn named(name: &str, state: &str) -> NamedState {
        NamedState {
            name: name.into(),
            state: state.into(),
        }
    }

    fn status(instance: Option<&str>, group: bool) -> Result<String, StatusError> {
        let args = StatusArgs {
            instance: instance.map(str::to_owned),
            group,
            state_file: None,
        };
        status_text(
            &parse_vrrp_state(STATE).unwrap(),
            &args,
            Path::new("/run/state.json"),
        )
    }

    #[test]
    fn reads_the_state_file_vrrpd_writes() {
        assert_eq!(
            parse_vrrp_state(STATE),
            Ok(VrrpState {
                pid: 1234,
                instances: vec![named("VI_1", "MASTER"), named("VI_2", "BACKUP")],
                sync_groups: vec![named("G1", "FAULT")],
            })
        );
        let without_groups = parse_vrrp_state(r#"{"pid": 7, "instances": []}"#).unwrap();
        assert!(without_groups.sync_groups.is_empty());
        assert!(parse_vrrp_state("{").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            parse_vrrp_state(r#"{"pid": 1, "instances": [{"name": "VI_1"}]}"#),
            Err("an instance without a \"state\" string".into())
        );
        assert_eq!(
            parse_vrrp_state(r#"{"pid": 1, "instances": [], "sync_groups": {}}"#),
            Err("\"sync_groups\" is not a list".into())
        );
        assert_eq!(
            parse_vrrp_state(r#"{"instances": []}"#),
            Err("no \"pid\" number".into())
        );
        assert_eq!(
            parse_vrrp_state(r#"{"pid": 1}"#),
            Err("no \"instances\" list".into())
        );
    }

    #[test]
    fn status_lists_all_or_prints_one_state_word() {
        assert_eq!(status(None, false).unwrap(), "VI_1 MASTER\nVI_2 BACKUP\n");
        assert_eq!(status(Some("VI_2"), false).unwrap(), "BACKUP\n");
        assert_eq!(status(None, true).unwrap(), "G1 FAULT\n");
        assert_eq!(status(Some("G1"), true).unwrap(), "FAULT\n");
    }

    #[test]
    fn status_names_what_it_cannot_find() {
        let unknown = status(Some("G1"), false).unwrap_err();
        assert_eq!(unknown.exit_code(), 5);
        assert_eq!(
            unknown.to_string(),
            "/run/state.json lists no instance G1 (haadm vrrp status lists them)"
        );
        let group = status(Some("VI_1"), true).unwrap_err();
        assert_eq!(
            group.to_string(),
            "/run/state.json lists no sync group VI_1 (haadm vrrp status --group lists them)"
        );
        let unreadable = StatusError::Unreadable {
            path: "/x".into(),
            why: "gone".into(),
        };
        assert_eq!(unreadable.exit_code(), 4);
    }
}
