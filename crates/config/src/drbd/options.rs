//! Every option drbd.conf knows, by section, and what hapair does with it:
//! carries it over with its meaning, ignores it with a warning, or refuses
//! the start because running without it would change what is safe.

/// The sections that hold options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SectionKind {
    Global,
    Net,
    Disk,
    Handlers,
    Startup,
    Options,
}

impl SectionKind {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Net => "net",
            SectionKind::Disk => "disk",
            SectionKind::Handlers => "handlers",
            SectionKind::Startup => "startup",
            SectionKind::Options => "options",
        }
    }

    /// The section a keyword opens inside `common`, `resource` or
    /// `connection`.
    pub(crate) fn of_section(keyword: &str) -> Option<SectionKind> {
        Some(match keyword {
            "net" => SectionKind::Net,
            "disk" => SectionKind::Disk,
            "handlers" => SectionKind::Handlers,
            "startup" => SectionKind::Startup,
            "options" => SectionKind::Options,
            _ => return None,
        })
    }
}

/// What hapair does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Carried over into hapair's resource with the same meaning.
    Implemented,
    /// Read and ignored, with a warning naming it.
    Ignored(&'static str),
    /// Ignoring it would change what is safe: refused unless
    /// `--allow-unsupported`, unless its value is the harmless one given.
    Unsafe {
        harmless: &'static str,
        why: &'static str,
    },
}

const TUNING: &str = "a tuning knob of DRBD's kernel module; hapair does without it";

/// Every option drbd.conf knows: its section, its names, hapair's support.
const TABLE: &[(SectionKind, &[&str], Support)] = &[
    (
        SectionKind::Global,
        &[
            "usage-count",
            "udev-always-use-vnr",
            "minor-count",
            "dialog-refresh",
            "disable-ip-verification",
            "cmd-timeout-short",
            "cmd-timeout-medium",
            "cmd-timeout-long",
        ],
        Support::Ignored("a setting of drbdadm itself"),
    ),
    (
        SectionKind::Net,
        &[
            "protocol",
            "cram-hmac-alg",
            "shared-secret",
            "ping-int",
            "ping-timeout",
            "timeout",
            "connect-int",
            "ko-count",
            "verify-alg",
            "data-integrity-alg",
            "fencing",
            "after-sb-0pri",
            "after-sb-1pri",
            "after-sb-2pri",
        ],
        Support::Implemented,
    ),
    (
        SectionKind::Net,
        &["allow-two-primaries"],
        Support::Unsafe {
            harmless: "no",
            why: "dual-Primary setups need a cluster file system and DRBD's two-Primary \
                  protocol; hapair lets one node be Primary",
        },
    ),
    (
        SectionKind::Net,
        &["always-asbp"],
        Support::Unsafe {
            harmless: "no",
            why: "it applies the automatic split-brain policies where DRBD cannot tell which \
                  data is newer; hapair disconnects there",
        },
    ),
    (
        SectionKind::Net,
        &["rr-conflict"],
        Support::Unsafe {
            harmless: "disconnect",
            why: "hapair always disconnects when a Primary would become sync target",
        },
    ),
    (
        SectionKind::Net,
        &["on-congestion"],
        Support::Unsafe {
            harmless: "block",
            why: "hapair always blocks on a congested link; it never goes Ahead of its peer",
        },
    ),
    (
        SectionKind::Net,
        &["tls"],
        Support::Unsafe {
            harmless: "no",
            why: "hapair's replication link is not encrypted",
        },
    ),
    (
        SectionKind::Net,
        &[
            "csums-alg",
            "csums-after-crash-only",
            "max-buffers",
            "max-epoch-size",
            "sndbuf-size",
            "rcvbuf-size",
            "tcp-cork",
            "use-rle",
            "congestion-fill",
            "congestion-extents",
            "socket-check-timeout",
            "transport",
            "unplug-watermark",
            "allow-remote-read",
            "load-balance-paths",
            "rdma-ctrl-rcvbuf-size",
            "rdma-ctrl-sndbuf-size",
            "max-epoch-size-kb",
            "connect-timeout",
        ],
        Support::Ignored(TUNING),
    ),
    (
        SectionKind::Disk,
        &[
            "on-io-error",
            "al-extents",
            "resync-rate",
            "c-max-rate",
            "disk-flushes",
            "md-flushes",
            "disk-timeout",
        ],
        Support::Implemented,
    ),
    (
        SectionKind::Disk,
        &["size"],
        Support::Unsafe {
            harmless: "0",
            why: "hapair exports the whole backing disk; a smaller `size` would be ignored",
        },
    ),
    (
        SectionKind::Disk,
        &[
            "disk-barrier",
            "disk-drain",
            "al-updates",
            "read-balancing",
            "resync-after",
            "rs-discard-granularity",
            "discard-zeroes-if-aligned",
            "disable-write-same",
            "c-plan-ahead",
            "c-delay-target",
            "c-fill-target",
            "c-min-rate",
            "max-bio-bvecs",
            "bitmap",
        ],
        Support::Ignored(TUNING),
    ),
    (
        SectionKind::Handlers,
        &[
            "initial-split-brain",
            "split-brain",
            "pri-lost-after-sb",
            "fence-peer",
            "unfence-peer",
            "local-io-error",
            "before-resync-target",
            "after-resync-target",
            "before-resync-source",
            "out-of-sync",
            "disconnected",
        ],
        Support::Implemented,
    ),
    (
        SectionKind::Handlers,
        &["pri-on-incon-degr", "pri-lost", "quorum-lost"],
        Support::Ignored("hapair never runs this handler"),
    ),
    (
        SectionKind::Startup,
        &[
            "wfc-timeout",
            "degr-wfc-timeout",
            "outdated-wfc-timeout",
            "wait-after-sb",
            "stacked-timeouts",
            "become-primary-on",
        ],
        Support::Ignored("used by DRBD's init scripts; replicad starts resources as Secondary"),
    ),
    (
        SectionKind::Options,
        &["quorum"],
        Support::Unsafe {
            harmless: "off",
            why: "hapair pairs two nodes without quorum; fencing is its guard against split brain",
        },
    ),
    (
        SectionKind::Options,
        &["quorum-minimum-redundancy"],
        Support::Unsafe {
            harmless: "off",
            why: "hapair pairs two nodes without quorum",
        },
    ),
    (
        SectionKind::Options,
        &["on-no-quorum"],
        Support::Unsafe {
            harmless: "suspend-io",
            why: "hapair pairs two nodes without quorum",
        },
    ),
    (
        SectionKind::Options,
        &["auto-promote"],
        Support::Ignored(
            "hapair promotes only on `haadm primary` (or vrrpd's hook), never on open",
        ),
    ),
    (
        SectionKind::Options,
        &[
            "cpu-mask",
            "on-no-data-accessible",
            "peer-ack-window",
            "peer-ack-delay",
            "twopc-timeout",
            "twopc-retry-timeout",
            "auto-promote-timeout",
            "max-io-depth",
            "on-suspended-primary-outdated",
        ],
        Support::Ignored(TUNING),
    ),
];

/// The support of option `name` in `section`; `None` for a name drbd.conf
/// does not know there.
pub(crate) fn support(section: SectionKind, name: &str) -> Option<Support> {
    TABLE
        .iter()
        .find(|(kind, names, _)| *kind == section && names.contains(&name))
        .map(|(_, _, support)| *support)
}

/// The names drbd.conf knows in `section`, for messages.
pub(crate) fn known_in(section: SectionKind) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|(kind, _, _)| *kind == section)
        .flat_map(|(_, names, _)| names.iter().copied())
        .collect()
}

/// The disk options DRBD 9 keeps per peer device: drbdadm 9 refuses them in
/// the old `syncer` section.
pub(crate) fn is_peer_device_option(name: &str) -> bool {
    matches!(
        name,
        "resync-rate"
            | "c-plan-ahead"
            | "c-delay-target"
            | "c-fill-target"
            | "c-max-rate"
            | "c-min-rate"
            | "bitmap"
    )
}

/// Where an option of DRBD 8's `syncer` section lives now, if drbdadm 9
/// still takes it there.
pub(crate) fn syncer_target(name: &str) -> Option<SectionKind> {
    [SectionKind::Net, SectionKind::Disk, SectionKind::Options]
        .into_iter()
        .find(|&section| support(section, name).is_some())
        .filter(|&section| !(section == SectionKind::Disk && is_peer_device_option(name)))
}

/// Whether an option takes no value (`allow-two-primaries;` means yes).
pub(crate) fn is_flag(name: &str) -> bool {
    matches!(
        name,
        "allow-two-primaries"
            | "always-asbp"
            | "tcp-cork"
            | "use-rle"
            | "disk-flushes"
            | "md-flushes"
            | "disk-barrier"
            | "disk-drain"
            | "al-updates"
            | "discard-zeroes-if-aligned"
            | "disable-write-same"
            | "csums-after-crash-only"
            | "udev-always-use-vnr"
            | "disable-ip-verification"
            | "stacked-timeouts"
            | "auto-promote"
            | "tls"
            | "allow-remote-read"
            | "load-balance-paths"
    )
}
