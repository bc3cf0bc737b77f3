//! The one error type every hapair config reader returns. Its text says which
//! file, where in it (a field path such as `instances[0] (VI_1).priority`, or a
//! line and column for YAML syntax), and what is wrong.

use std::fmt::Write as _;

/// Why a configuration file was rejected.
///
/// Every variant displays as a single line that starts with the file name, so
/// daemons can print it as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{origin}: cannot read the file: {reason}")]
    Read { origin: String, reason: String },
    /// The text is not YAML, is too large, or does not have the schema's shape
    /// (unknown key, wrong type). The position is 1-based when known.
    #[error("{origin}{}: {message}", position_suffix(*.line_column))]
    Yaml {
        origin: String,
        line_column: Option<(u64, u64)>,
        message: String,
    },
    /// A problem at a line of a file in another program's syntax (drbd.conf):
    /// a syntax error, a refused option, or a rule broken by the value there.
    #[error("{origin}:{line}: {message}")]
    AtLine {
        origin: String,
        line: u32,
        message: String,
    },
    /// Well-formed YAML with a value that breaks a rule of the schema.
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// A rule violation at `field` (a path such as `instances[0] (VI_1).priority`).
    /// Control characters coming from the file are escaped, so the message
    /// stays one printable line.
    pub(crate) fn invalid(origin: &str, field: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            origin: printable(origin),
            field: printable(field),
            message: printable(message),
        }
    }

    /// A problem at `line` of `origin`, printable like [`ConfigError::invalid`].
    pub(crate) fn at_line(origin: &str, line: u32, message: &str) -> ConfigError {
        ConfigError::AtLine {
            origin: printable(origin),
            line,
            message: printable(message),
        }
    }

    /// The field path of a rule violation; `None` for read and YAML errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } | ConfigError::Yaml { .. } | ConfigError::AtLine { .. } => {
                None
            }
        }
    }
}

fn position_suffix(line_column: Option<(u64, u64)>) -> String {
    line_column.map_or_else(String::new, |(line, column)| format!(":{line}:{column}"))
}

/// `text` with every control character (newline, escape, ...) written as its
/// Rust escape, so a hostile file cannot forge log lines or terminal output.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            // Writing into a String cannot fail.
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_error_shows_line_and_column_when_known() {
        let error = ConfigError::Yaml {
            origin: "a.yaml".into(),
            line_column: Some((3, 7)),
            message: "unclosed bracket".into(),
        };
        assert_eq!(error.to_string(), "a.yaml:3:7: unclosed bracket");
        let error = ConfigError::Yaml {
            origin: "a.yaml".into(),
            line_column: None,
            message: "too deep".into(),
        };
        assert_eq!(error.to_string(), "a.yaml: too deep");
    }

    #[test]
    fn invalid_escapes_control_characters() {
        let error = ConfigError::invalid("a.yaml", "name", "`x\n\u{1b}[31m` is bad");
        assert_eq!(error.to_string(), "a.yaml: name: `x\\n\\u{1b}[31m` is bad");
        assert_eq!(error.field(), Some("name"));
    }
}
