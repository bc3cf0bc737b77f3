//! Field types whose values are checked when they are made, so that every
//! message that can be built can also be encoded and decoded unchanged:
//! resource names, reason texts, block data and protocol version ranges.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

use super::{MAX_DATA_LEN, MAX_NAME_LEN, MAX_TEXT_LEN};

/// The name of a resource as sent in a Hello: 1 to [`MAX_NAME_LEN`] bytes of
/// UTF-8 without NUL. The config reader applies its stricter rules before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceName(String);

/// A resource name that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceNameError {
    #[error("resource name is empty")]
    Empty,
    #[error("resource name {0:?} is longer than {MAX_NAME_LEN} bytes")]
    TooLong(String),
    #[error("resource name {0:?} contains a NUL character")]
    Nul(String),
}

impl ResourceName {
    pub fn new(name: &str) -> Result<Self, ResourceNameError> {
        if name.is_empty() {
            Err(ResourceNameError::Empty)
        } else if name.len() > MAX_NAME_LEN {
            Err(ResourceNameError::TooLong(name.to_owned()))
        } else if name.contains('\0') {
            Err(ResourceNameError::Nul(name.to_owned()))
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human-readable reason (for a refusal or a disconnect), at most
/// [`MAX_TEXT_LEN`] bytes of UTF-8. Longer text is cut at a character
/// boundary: the reason is for a log, and the start says the most.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(String);

impl Text {
    /// `text`, shortened to at most [`MAX_TEXT_LEN`] bytes if needed.
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(MAX_TEXT_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self(text[..end].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The block data of one write or resync reply: 1 to [`MAX_DATA_LEN`] bytes.
/// It shares its memory (a [`Bytes`]): a decoded message's data is a view
/// of the received frame, and data sent is not copied into a frame.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Data(Bytes);

/// Block data that cannot go into one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "{0} bytes of block data: one message carries 1 to {MAX_DATA_LEN} bytes (split larger \
     requests)"
)]
pub struct DataLengthError(pub usize);

impl Data {
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, DataLengthError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_DATA_LEN {
            Err(DataLengthError(bytes.len()))
        } else {
            Ok(Self(bytes))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Number of bytes, never zero.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false; present because clippy expects it next to `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Data {
    /// The length only: block data is too long to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data({} bytes)", self.0.len())
    }
}

/// An inclusive range of protocol versions, `1 <= min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    min: u8,
    max: u8,
}

impl VersionRange {
    /// The range `min..=max`, or `None` if it is empty or includes 0.
    pub const fn new(min: u8, max: u8) -> Option<Self> {
        if min >= 1 && min <= max {
            Some(Self { min, max })
        } else {
            None
        }
    }

    /// The range holding `version` alone, for constants (`version` must
    /// not be 0: checked at compile time there).
    pub(crate) const fn single(version: u8) -> Self {
        assert!(version >= 1, "protocol versions start at 1");
        Self {
            min: version,
            max: version,
        }
    }

    pub const fn min(self) -> u8 {
        self.min
    }

    pub const fn max(self) -> u8 {
        self.max
    }

    pub const fn contains(self, version: u8) -> bool {
        self.min <= version && version <= self.max
    }

    /// The highest version both ranges contain, or `None` if they do not
    /// overlap.
    pub fn negotiate(self, other: VersionRange) -> Option<u8> {
        let highest = self.max.min(other.max);
        (highest >= self.min.max(other.min)).then_some(highest)
    }
}

impl fmt::Display for VersionRange {
    /// `1` for a single version, `1 to 3` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{} to {}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_LEN);
        let text = Text::new(&long);
        assert_eq!(text.as_str().len(), MAX_TEXT_LEN);
        let odd = format!("a{long}");
        let text = Text::new(&odd);
        assert_eq!(
            text.as_str().len(),
            MAX_TEXT_LEN - 1,
            "the two-byte character at the limit is dropped whole"
        );
        assert_eq!(Text::new("short").as_str(), "short");
    }

    #[test]
    fn data_length_is_checked() {
        assert_eq!(Data::new(Vec::new()), Err(DataLengthError(0)));
        assert_eq!(
            Data::new(vec![0; MAX_DATA_LEN + 1]),
            Err(DataLengthError(MAX_DATA_LEN + 1))
        );
        assert_eq!(
            Data::new(vec![7; MAX_DATA_LEN]).unwrap().len(),
            MAX_DATA_LEN
        );
    }

    #[test]
    fn resource_names_are_checked() {
        assert_eq!(ResourceName::new(""), Err(ResourceNameError::Empty));
        assert!(matches!(
            ResourceName::new(&"r".repeat(MAX_NAME_LEN + 1)),
            Err(ResourceNameError::TooLong(_))
        ));
        assert!(matches!(
            ResourceName::new("r\0x"),
            Err(ResourceNameError::Nul(_))
        ));
        assert_eq!(ResourceName::new("r0").unwrap().as_str(), "r0");
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let range = |min, max| VersionRange::new(min, max).unwrap();
        assert_eq!(range(1, 3).negotiate(range(2, 5)), Some(3));
        assert_eq!(range(2, 5).negotiate(range(1, 3)), Some(3));
        assert_eq!(range(1, 1).negotiate(range(1, 4)), Some(1));
        assert_eq!(range(1, 2).negotiate(range(3, 4)), None);
        assert_eq!(VersionRange::new(0, 1), None);
        assert_eq!(VersionRange::new(3, 2), None);
        assert_eq!(range(1, 3).to_string(), "1 to 3");
        assert_eq!(VersionRange::single(2).to_string(), "2");
    }
}
