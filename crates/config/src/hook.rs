//! Hook commands: the programs a daemon runs on an event. A config writes one
//! as an argv list, as a string split into words the way a POSIX shell splits
//! them (no shell runs it), or as `{shell: "..."}` to run through `/bin/sh -c`.
//!
//! Also the settings that apply to every hook of a daemon ([`HookSettings`],
//! the `hooks:` section): the journal, script security, the user hooks run
//! as, and keepalived's `notify_fifo`.
//!
//! ```yaml
//! hooks:
//!   journal: /run/hapair/hooks.journal
//!   journal_max_bytes: 1048576
//!   script_security: true
//!   script_user: hapair:hapair
//!   notify_fifo: /run/hapair/vrrp.fifo
//!   notify_fifo_script: /usr/local/sbin/follow-vrrp
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;
use crate::yaml::Number;

/// The shell that runs `{shell: ...}` hooks.
pub const SHELL: &str = "/bin/sh";

/// A command to execute: `argv[0]` is the program, the rest its arguments.
/// Never empty once it came out of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    pub argv: Vec<String>,
}

/// A hook exactly as written in the file, before it is checked.
#[derive(Debug)]
pub(crate) enum RawHook {
    /// `notify: /usr/bin/log "two words"`
    Words(String),
    /// `notify: [/usr/bin/log, two words]`
    Argv(Vec<String>),
    /// `notify: {shell: "log | logger"}`
    Shell(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellForm {
    shell: String,
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawHook, D::Error> {
        struct HookVisitor;
        impl<'de> Visitor<'de> for HookVisitor {
            type Value = RawHook;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a command: a list [program, arg, ...], a string \"program arg ...\", \
                     or a map {shell: \"command line\"}",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawHook, E> {
                Ok(RawHook::Words(text.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawHook, A::Error> {
                let mut argv = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    argv.push(word);
                }
                Ok(RawHook::Argv(argv))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
                let form = ShellForm::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawHook::Shell(form.shell))
            }
        }
        deserializer.deserialize_any(HookVisitor)
    }
}

impl RawHook {
    /// Checks the hook and turns it into the argv to execute, or says what is
    /// wrong with it.
    pub(crate) fn to_command(&self) -> Result<HookCommand, String> {
        let argv = match self {
            RawHook::Words(text) => shell_words::split(text).map_err(|error| {
                format!("cannot split `{text}` into words: {error}; close the quote or use the list form")
            })?,
            RawHook::Argv(argv) => argv.clone(),
            RawHook::Shell(line) => {
                if line.trim().is_empty() {
                    return Err("the shell command line is empty".into());
                }
                vec![SHELL.to_owned(), "-c".to_owned(), line.clone()]
            }
        };
        match argv.first() {
            None => return Err("the command is empty; give at least the program to run".into()),
            Some(program) if program.is_empty() => {
                return Err("the program name (first word) is empty".into());
            }
            Some(_) => {}
        }
        if argv.iter().any(|word| word.contains('\0')) {
            return Err("the command contains a NUL byte, which no program can receive".into());
        }
        Ok(HookCommand { argv })
    }
}

/// The journal's size bound when the config sets none (1 MiB).
const DEFAULT_JOURNAL_MAX_BYTES: u64 = 1024 * 1024;

/// Settings for every hook of a daemon: the `hooks:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSettings {
    /// Where finished hook runs are recorded; `None`: `<run-dir>/hooks.journal`.
    pub journal: Option<PathBuf>,
    /// The journal is rotated (to `<journal>.1`) past this size.
    pub journal_max_bytes: u64,
    /// Refuse to run, as root, a hook that others than root can change
    /// (keepalived's `enable_script_security`). On unless set to false.
    pub script_security: bool,
    /// Run hooks as this user instead of root.
    pub script_user: Option<ScriptUser>,
    /// keepalived's `notify_fifo`: a named pipe that gets one line per
    /// state change.
    pub notify_fifo: Option<PathBuf>,
    /// A program started to read `notify_fifo` (it gets the FIFO's path as
    /// its last argument), kept running and stopped at shutdown.
    pub notify_fifo_script: Option<HookCommand>,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            journal: None,
            journal_max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
            script_security: true,
            script_user: None,
            notify_fifo: None,
            notify_fifo_script: None,
        }
    }
}

/// `script_user: USER[:GROUP]`, as names or numbers; looked up when the
/// daemon starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptUser {
    pub user: String,
    /// `None`: the user's primary group.
    pub group: Option<String>,
}

/// The `hooks:` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHookSettings {
    journal: Option<String>,
    journal_max_bytes: Option<Number>,
    script_security: Option<bool>,
    script_user: Option<String>,
    notify_fifo: Option<String>,
    notify_fifo_script: Option<RawHook>,
}

impl HookSettings {
    /// Checks the `hooks:` section of the file `origin` (absent: defaults).
    pub(crate) fn from_raw(
        raw: Option<&RawHookSettings>,
        origin: &str,
    ) -> Result<HookSettings, ConfigError> {
        let Some(raw) = raw else {
            return Ok(HookSettings::default());
        };
        let invalid = |field: &str, message: String| {
            ConfigError::invalid(origin, &format!("hooks.{field}"), &message)
        };
        let path = |field: &str, value: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
            match value {
                None => Ok(None),
                Some(text) if text.starts_with('/') && !text.contains('\0') => {
                    Ok(Some(PathBuf::from(text)))
                }
                Some(text) => Err(invalid(
                    field,
                    format!(
                        "`{text}` is not an absolute path; give the full path, starting with /"
                    ),
                )),
            }
        };
        let journal_max_bytes = match raw.journal_max_bytes {
            None => DEFAULT_JOURNAL_MAX_BYTES,
            Some(value) => value
                .whole_in(4096u32..=1_073_741_824)
                .map(u64::from)
                .map_err(|message| {
                    invalid(
                        "journal_max_bytes",
                        format!("{message} (bytes; the journal is rotated past this size)"),
                    )
                })?,
        };
        let script_user = raw
            .script_user
            .as_deref()
            .map(ScriptUser::parse)
            .transpose()
            .map_err(|message| invalid("script_user", message))?;
        let notify_fifo = path("notify_fifo", &raw.notify_fifo)?;
        let notify_fifo_script = raw
            .notify_fifo_script
            .as_ref()
            .map(RawHook::to_command)
            .transpose()
            .map_err(|message| invalid("notify_fifo_script", message))?;
        if notify_fifo_script.is_some() && notify_fifo.is_none() {
            return Err(invalid(
                "notify_fifo_script",
                "reads notify_fifo, which is not set; set notify_fifo to the FIFO's path".into(),
            ));
        }
        Ok(HookSettings {
            journal: path("journal", &raw.journal)?,
            journal_max_bytes,
            script_security: raw.script_security.unwrap_or(true),
            script_user,
            notify_fifo,
            notify_fifo_script,
        })
    }
}

impl ScriptUser {
    fn parse(text: &str) -> Result<ScriptUser, String> {
        let word_ok = |word: &str| {
            !word.is_empty()
                && !word
                    .chars()
                    .any(|c| c == ':' || c.is_whitespace() || c.is_control())
        };
        let (user, group) = match text.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (text, None),
        };
        if !word_ok(user) || group.is_some_and(|group| !word_ok(group)) {
            return Err(format!(
                "`{text}` is not USER or USER:GROUP (names or numbers, e.g. hapair or hapair:hapair)"
            ));
        }
        Ok(ScriptUser {
            user: user.to_owned(),
            group: group.map(str::to_owned),
        })
    }
}

impl fmt::Display for ScriptUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Result<HookSettings, ConfigError> {
        let raw: RawHookSettings = crate::yaml::parse_document(yaml, "test.yaml")?;
        HookSettings::from_raw(Some(&raw), "test.yaml")
    }

    #[test]
    fn hook_settings_default_to_script_security_on() {
        assert_eq!(
            HookSettings::from_raw(None, "test.yaml").unwrap(),
            HookSettings::default()
        );
        assert!(HookSettings::default().script_security);
        let full = settings(
            "journal: /var/log/hooks.journal\njournal_max_bytes: 65536\nscript_security: false\n\
             script_user: nobody:nogroup\nnotify_fifo: /run/vrrp.fifo\nnotify_fifo_script: [/bin/reader, -v]\n",
        )
        .unwrap();
        assert_eq!(
            full,
            HookSettings {
                journal: Some("/var/log/hooks.journal".into()),
                journal_max_bytes: 65536,
                script_security: false,
                script_user: Some(ScriptUser {
                    user: "nobody".into(),
                    group: Some("nogroup".into())
                }),
                notify_fifo: Some("/run/vrrp.fifo".into()),
                notify_fifo_script: Some(HookCommand {
                    argv: vec!["/bin/reader".into(), "-v".into()]
                }),
            }
        );
    }

    #[test]
    fn bad_hook_settings_name_their_field() {
        for (yaml, field, words) in [
            ("journal: hooks.journal\n", "hooks.journal", "absolute path"),
            (
                "journal_max_bytes: 10\n",
                "hooks.journal_max_bytes",
                "out of range",
            ),
            ("script_user: 'a b'\n", "hooks.script_user", "USER:GROUP"),
            ("script_user: 'a:'\n", "hooks.script_user", "USER:GROUP"),
            (
                "notify_fifo_script: /bin/reader\n",
                "hooks.notify_fifo_script",
                "notify_fifo",
            ),
        ] {
            let error = settings(yaml).unwrap_err();
            assert_eq!(error.field(), Some(field), "{yaml}: {error}");
            assert!(error.to_string().contains(words), "{yaml}: {error}");
        }
        assert!(settings("notify_fifo_x: /a\n").is_err());
    }

    fn command(raw: RawHook) -> Result<Vec<String>, String> {
        raw.to_command().map(|command| command.argv)
    }

    #[test]
    fn words_are_split_like_a_shell_without_running_one() {
        assert_eq!(
            command(RawHook::Words(r#"/bin/log "two words" it\'s $HOME"#.into())),
            Ok(vec![
                "/bin/log".to_string(),
                "two words".into(),
                "it's".into(),
                "$HOME".into()
            ])
        );
    }

    #[test]
    fn unbalanced_quote_is_reported() {
        let error = command(RawHook::Words("/bin/log 'open".into())).unwrap_err();
        assert!(error.contains("missing closing quote"), "{error}");
    }

    #[test]
    fn shell_form_runs_through_bin_sh() {
        assert_eq!(
            command(RawHook::Shell("a | b".into())),
            Ok(vec!["/bin/sh".to_string(), "-c".into(), "a | b".into()])
        );
    }

    #[test]
    fn empty_commands_are_rejected() {
        assert!(
            command(RawHook::Words("  ".into()))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            command(RawHook::Argv(vec![]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            command(RawHook::Argv(vec![String::new()]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            command(RawHook::Shell(" ".into()))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            command(RawHook::Argv(vec!["a\0b".into()]))
                .unwrap_err()
                .contains("NUL")
        );
    }
}
