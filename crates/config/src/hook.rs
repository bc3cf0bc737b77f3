//! Hook commands: the programs a daemon runs on an event. A config writes one
//! as an argv list, as a string split into words the way a POSIX shell splits
//! them (no shell runs it), or as `{shell: "..."}` to run through `/bin/sh -c`.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

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

#[cfg(test)]
mod tests {
    use super::*;

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
