//! The resource options whose value is one of a fixed set of words, each
//! written exactly as drbd.conf writes it (`call-local-io-error`,
//! `discard-zero-changes`, ...). [`fmt::Display`] gives the word back, so a
//! config can be printed in the form it was read.

use std::fmt;

/// Defines a fieldless enum whose values a config spells as the given words,
/// with `ALL`, `keyword()`, `Display` and a parser whose error lists the words.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $keyword:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order drbd.conf(5) lists them.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The word a config file uses for this value.
            pub fn keyword(self) -> &'static str {
                match self {
                    $($name::$variant => $keyword,)+
                }
            }

            /// The value a config spells as `text`, or a message listing the
            /// words it may be.
            pub(crate) fn parse(text: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.keyword() == text)
                    .ok_or_else(|| not_one_of(text, $name::ALL.iter().map(|value| value.keyword())))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.keyword())
            }
        }
    };
}

/// The message for a word that is none of `allowed`.
fn not_one_of<'a>(text: &str, allowed: impl Iterator<Item = &'a str>) -> String {
    let allowed: Vec<&str> = allowed.collect();
    match allowed.as_slice() {
        [only] => format!("`{text}` is not supported; the only supported value is {only}"),
        _ => format!("`{text}` is not one of {}", allowed.join(", ")),
    }
}

keyword_enum! {
    /// When a write counts as complete (drbd.conf `protocol`).
    pub enum Protocol {
        /// Asynchronous: once it is on the local disk and in the send buffer.
        A = "A",
        /// Memory-synchronous: once the peer has received it.
        B = "B",
        /// Synchronous: once it is on both disks. The default.
        C = "C",
    }
}

keyword_enum! {
    /// The HMAC used to authenticate the peer (drbd.conf `cram-hmac-alg`).
    pub enum HmacAlg {
        /// HMAC-SHA-256.
        Sha256 = "sha256",
    }
}

keyword_enum! {
    /// A digest over block data, for online verify (`verify-alg`) or for
    /// checking every block sent (`data-integrity-alg`).
    pub enum DigestAlg {
        /// CRC-32C (Castagnoli): cheap; detects corruption, not tampering.
        Crc32c = "crc32c",
        /// SHA-256.
        Sha256 = "sha256",
        /// BLAKE3: cryptographic and faster than SHA-256 in software.
        Blake3 = "blake3",
    }
}

keyword_enum! {
    /// What to do when the backing disk reports an I/O error (drbd.conf
    /// `on-io-error`).
    pub enum OnIoError {
        /// Mark the block out of sync and retry the request on the peer.
        PassOn = "pass_on",
        /// Run the `local-io-error` handler.
        CallLocalIoError = "call-local-io-error",
        /// Detach the backing disk and go on Diskless, served by the peer.
        /// The default.
        Detach = "detach",
    }
}

keyword_enum! {
    /// What a Primary does when it loses its peer (drbd.conf `fencing`).
    pub enum Fencing {
        /// Nothing. The default.
        DontCare = "dont-care",
        /// Run the `fence-peer` handler, which should outdate the peer by
        /// another path.
        ResourceOnly = "resource-only",
        /// Freeze I/O and run the `fence-peer` handler, which should outdate
        /// the peer or power it off; I/O resumes once it succeeds.
        ResourceAndStonith = "resource-and-stonith",
    }
}

keyword_enum! {
    /// How to resolve a split brain found while one node is Primary
    /// (drbd.conf `after-sb-1pri`).
    pub enum AfterSb1Pri {
        /// Do not resolve it; drop the connection. The default.
        Disconnect = "disconnect",
        /// Discard the Secondary's changes if `after-sb-0pri` would also
        /// discard them; otherwise disconnect.
        Consensus = "consensus",
        /// Always follow `after-sb-0pri`, even if the Primary's data changes
        /// under its users.
        ViolentlyAs0p = "violently-as0p",
        /// Discard the Secondary's changes.
        DiscardSecondary = "discard-secondary",
        /// Follow `after-sb-0pri`; if the Primary loses, run its
        /// `pri-lost-after-sb` handler.
        CallPriLostAfterSb = "call-pri-lost-after-sb",
    }
}

keyword_enum! {
    /// How to resolve a split brain found while both nodes are Primary
    /// (drbd.conf `after-sb-2pri`).
    pub enum AfterSb2Pri {
        /// Do not resolve it; drop the connection. The default.
        Disconnect = "disconnect",
        /// Always follow `after-sb-0pri`, even if a Primary's data changes
        /// under its users.
        ViolentlyAs0p = "violently-as0p",
        /// Follow `after-sb-0pri` and run the `pri-lost-after-sb` handler on
        /// the node that loses, unless it can demote itself.
        CallPriLostAfterSb = "call-pri-lost-after-sb",
    }
}

/// How to resolve a split brain found while neither node is Primary
/// (drbd.conf `after-sb-0pri`). The resolution resyncs the losing node from
/// the other, discarding what was written on it alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AfterSb0Pri {
    /// Do not resolve it; drop the connection. The default.
    Disconnect,
    /// The node that became Primary last loses. If both became Primary
    /// independently, as `discard-least-changes`.
    DiscardYoungerPrimary,
    /// The node that became Primary first loses. If both became Primary
    /// independently, as `discard-least-changes`.
    DiscardOlderPrimary,
    /// If only one node wrote since the split, the other loses; if both did,
    /// disconnect.
    DiscardZeroChanges,
    /// The node with fewer changed blocks loses.
    DiscardLeastChanges,
    /// `discard-node-NAME`: the named node always loses. drbd.conf's
    /// `discard-local` and `discard-remote` are not offered: the same file is
    /// on both nodes, where they would name different nodes.
    DiscardNode(String),
}

/// The spelling of [`AfterSb0Pri::DiscardNode`] before the node name.
const DISCARD_NODE_PREFIX: &str = "discard-node-";

impl AfterSb0Pri {
    /// The policies without a node name.
    const FIXED: &[AfterSb0Pri] = &[
        AfterSb0Pri::Disconnect,
        AfterSb0Pri::DiscardYoungerPrimary,
        AfterSb0Pri::DiscardOlderPrimary,
        AfterSb0Pri::DiscardZeroChanges,
        AfterSb0Pri::DiscardLeastChanges,
    ];

    /// The policy a config spells as `text`, or a message listing the words
    /// it may be. The node of `discard-node-NAME` is checked by the caller,
    /// which knows the nodes.
    pub(crate) fn parse(text: &str) -> Result<AfterSb0Pri, String> {
        if let Some(node) = text.strip_prefix(DISCARD_NODE_PREFIX) {
            return Ok(AfterSb0Pri::DiscardNode(node.to_owned()));
        }
        AfterSb0Pri::FIXED
            .iter()
            .find(|policy| policy.to_string() == text)
            .cloned()
            .ok_or_else(|| {
                let words: Vec<String> = AfterSb0Pri::FIXED
                    .iter()
                    .map(ToString::to_string)
                    .chain([format!("{DISCARD_NODE_PREFIX}NAME")])
                    .collect();
                not_one_of(text, words.iter().map(String::as_str))
            })
    }
}

impl fmt::Display for AfterSb0Pri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfterSb0Pri::Disconnect => f.write_str("disconnect"),
            AfterSb0Pri::DiscardYoungerPrimary => f.write_str("discard-younger-primary"),
            AfterSb0Pri::DiscardOlderPrimary => f.write_str("discard-older-primary"),
            AfterSb0Pri::DiscardZeroChanges => f.write_str("discard-zero-changes"),
            AfterSb0Pri::DiscardLeastChanges => f.write_str("discard-least-changes"),
            AfterSb0Pri::DiscardNode(node) => write!(f, "{DISCARD_NODE_PREFIX}{node}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_through_display() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::parse(&protocol.to_string()), Ok(*protocol));
        }
        for policy in OnIoError::ALL {
            assert_eq!(OnIoError::parse(&policy.to_string()), Ok(*policy));
        }
        for policy in AfterSb0Pri::FIXED {
            assert_eq!(AfterSb0Pri::parse(&policy.to_string()).as_ref(), Ok(policy));
        }
        let node = AfterSb0Pri::DiscardNode("ha2".into());
        assert_eq!(node.to_string(), "discard-node-ha2");
        assert_eq!(AfterSb0Pri::parse("discard-node-ha2"), Ok(node));
    }

    #[test]
    fn unknown_words_list_the_valid_ones() {
        assert_eq!(
            Protocol::parse("D"),
            Err("`D` is not one of A, B, C".to_string())
        );
        assert_eq!(
            HmacAlg::parse("sha1"),
            Err("`sha1` is not supported; the only supported value is sha256".to_string())
        );
        let error = AfterSb0Pri::parse("discard-local").unwrap_err();
        assert!(
            error.ends_with("discard-least-changes, discard-node-NAME"),
            "{error}"
        );
    }
}
