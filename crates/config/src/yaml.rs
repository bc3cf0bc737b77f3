//! Turning untrusted YAML text into the raw serde structs of a schema, within
//! fixed resource budgets, and the raw scalar types those structs share.

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_saphyr::MessageFormatter as _;

use crate::error::{ConfigError, printable};

/// Config files are small; anything beyond this is a mistake or an attack.
pub(crate) const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Reads a config file as UTF-8 text. Reads at most one byte more than a
/// config file may hold, so an endless or huge file is refused by
/// [`parse_document`] without being loaded whole.
pub(crate) fn read_file(path: &Path, origin: &str) -> Result<String, ConfigError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|file| {
            file.take(MAX_FILE_BYTES as u64 + 1)
                .read_to_string(&mut text)
        })
        .map_err(|error| ConfigError::Read {
            origin: printable(origin),
            reason: error.to_string(),
        })?;
    Ok(text)
}

/// Parses one YAML document into `T`, refusing inputs that exceed generous
/// limits for a config file (size, nesting, node count, alias expansion).
/// `origin` names the file in error messages.
pub(crate) fn parse_document<T: DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::Yaml {
            origin: printable(origin),
            line_column: None,
            message: format!(
                "the file is larger than the {MAX_FILE_BYTES} bytes a config file may have"
            ),
        });
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_FILE_BYTES),
            max_documents: 1,
            max_depth: 32,
            max_nodes: 100_000,
            max_events: 300_000,
            max_anchors: 256,
            max_aliases: 256,
            max_total_scalar_bytes: MAX_FILE_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let error = error.without_snippet();
        ConfigError::Yaml {
            origin: printable(origin),
            line_column: error.location().map(|at| (at.line(), at.column())),
            message: printable(&serde_saphyr::DefaultMessageFormatter.format_message(error)),
        }
    })
}

/// A YAML number as written: `1` and `0.1` are both accepted wherever a
/// number is, and each field decides whether it needs a whole one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Integer(i64),
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Integer(value) => write!(f, "{value}"),
            Number::Float(value) => write!(f, "{value}"),
        }
    }
}

impl Number {
    /// The value as a whole number within `range`, in the range's integer
    /// type, or a message saying why not.
    pub(crate) fn whole_in<T>(self, range: RangeInclusive<T>) -> Result<T, String>
    where
        T: TryFrom<i64> + Into<i64> + Copy + fmt::Display,
    {
        let whole = match self {
            Number::Integer(value) => value,
            Number::Float(value) if value.fract() == 0.0 && value.abs() < 2f64.powi(53) => {
                value as i64
            }
            Number::Float(_) => return Err(format!("{self} is not a whole number")),
        };
        match T::try_from(whole) {
            Ok(value) if (*range.start()).into() <= whole && whole <= (*range.end()).into() => {
                Ok(value)
            }
            _ => Err(format!(
                "{self} is out of range {}..={}",
                range.start(),
                range.end()
            )),
        }
    }

    /// The value as seconds within `range` (fractions allowed), or a message
    /// saying why not.
    pub(crate) fn seconds_in(self, range: RangeInclusive<f64>) -> Result<Duration, String> {
        let seconds = self.as_f64();
        if range.contains(&seconds) {
            Ok(Duration::from_secs_f64(seconds))
        } else {
            Err(format!(
                "{self} is out of range {}..={} seconds",
                range.start(),
                range.end()
            ))
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::Integer(value) => value as f64,
            Number::Float(value) => value,
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
                Ok(Number::Integer(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
                Ok(i64::try_from(value).map_or(Number::Float(value as f64), Number::Integer))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
                Ok(Number::Float(value))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_accept_integers_and_integral_floats_only() {
        assert_eq!(Number::Integer(51).whole_in(1u8..=255), Ok(51u8));
        assert_eq!(Number::Float(51.0).whole_in(1u8..=255), Ok(51u8));
        assert_eq!(
            Number::Integer(-1).whole_in(0u8..=255),
            Err("-1 is out of range 0..=255".to_string())
        );
        assert_eq!(
            Number::Float(1.5).whole_in(1u8..=255),
            Err("1.5 is not a whole number".to_string())
        );
        assert_eq!(
            Number::Integer(300).whole_in(1u8..=255),
            Err("300 is out of range 1..=255".to_string())
        );
    }

    #[test]
    fn seconds_reject_out_of_range_and_non_finite_values() {
        assert_eq!(
            Number::Float(0.25).seconds_in(0.0..=10.0),
            Ok(Duration::from_millis(250))
        );
        assert!(Number::Integer(11).seconds_in(0.0..=10.0).is_err());
        assert!(Number::Float(f64::NAN).seconds_in(0.0..=10.0).is_err());
        assert!(Number::Float(-0.5).seconds_in(0.0..=10.0).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let text = "#".repeat(MAX_FILE_BYTES + 1);
        let error = parse_document::<Option<Number>>(&text, "big.yaml").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("big.yaml: the file is larger than"),
            "{error}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let error = parse_document::<serde_json::Value>(&text, "deep.yaml").unwrap_err();
        assert!(error.to_string().starts_with("deep.yaml"), "{error}");
    }
}
