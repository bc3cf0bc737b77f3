//! Tests of the replicated-resource config: that resource files load with
//! drbd.conf's values, units and defaults, that every validation rule rejects
//! a bad file with a message naming the file and the field, that a config
//! directory yields its resources (and only them), and that the example
//! resources under configs/ load.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapair_config::resource::{
    AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, DigestAlg, DiskOptions, Fencing, Handlers, HmacAlg,
    NetOptions, OnIoError, PeerAuth, Protocol,
};
use hapair_config::{
    ConfigError, HookCommand, MetaDisk, NodeConfig, ResourceConfig, load_resource, load_resources,
};

const ORIGIN: &str = "/etc/hapair/r0.yaml";

/// The shape every resource file must at least accept.
const SHAPE: &str = r#"resource: r0
protocol: C
net: {shared-secret: "change-me"}
disk: {on-io-error: detach}
nodes:
  ha1: {address: "10.99.0.1:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}
  ha2: {address: "10.99.0.2:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}
"#;

const HA1: &str =
    r#"{address: "10.99.0.1:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}"#;
const HA2: &str =
    r#"{address: "10.99.0.2:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}"#;

/// Resource r0 with `sections` (whole top-level lines) and the two usual
/// nodes.
fn with_sections(sections: &str) -> String {
    with_nodes(sections, HA1, HA2)
}

/// Resource r0 with `sections` and the given flow maps for ha1 and ha2.
fn with_nodes(sections: &str, ha1: &str, ha2: &str) -> String {
    format!("resource: r0\n{sections}nodes:\n  ha1: {ha1}\n  ha2: {ha2}\n")
}

fn net(options: &str) -> String {
    with_sections(&format!("net: {{{options}}}\n"))
}

fn disk(options: &str) -> String {
    with_sections(&format!("disk: {{{options}}}\n"))
}

fn parse(text: &str) -> Result<ResourceConfig, ConfigError> {
    ResourceConfig::parse(text, Path::new(ORIGIN))
}

fn resource(text: &str) -> ResourceConfig {
    parse(text).unwrap_or_else(|error| panic!("{error}\n---\n{text}"))
}

/// The error for `text`, asserted to be about `field` of the file.
fn rejection(text: &str, field: &str) -> String {
    let error = parse(text).expect_err(text);
    let message = error.to_string();
    let prefix = format!("{ORIGIN}: {field}: ");
    assert!(
        message.starts_with(&prefix),
        "expected {prefix:?}…, got {message:?}"
    );
    assert_eq!(error.field(), Some(field));
    message
}

fn assert_mentions(message: &str, words: &[&str]) {
    for word in words {
        assert!(
            message.contains(word),
            "{message:?} does not mention {word:?}"
        );
    }
}

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn argv(words: &[&str]) -> Option<HookCommand> {
    Some(HookCommand {
        argv: words.iter().map(|word| word.to_string()).collect(),
    })
}

#[test]
fn the_documented_shape_loads_with_drbd_defaults() {
    let config = resource(SHAPE);
    assert_eq!(config.name, "r0");
    assert_eq!(config.origin, PathBuf::from(ORIGIN));
    assert_eq!(config.protocol, Protocol::C);
    assert_eq!(
        config.net,
        NetOptions {
            auth: Some(PeerAuth {
                cram_hmac_alg: HmacAlg::Sha256,
                shared_secret: "change-me".into(),
            }),
            ping_int: Duration::from_secs(10),
            ping_timeout: Duration::from_millis(500),
            timeout: Duration::from_secs(6),
            connect_int: Duration::from_secs(10),
            ko_count: 7,
            verify_alg: None,
            data_integrity_alg: None,
            fencing: Fencing::DontCare,
            after_sb_0pri: AfterSb0Pri::Disconnect,
            after_sb_1pri: AfterSb1Pri::Disconnect,
            after_sb_2pri: AfterSb2Pri::Disconnect,
        }
    );
    assert_eq!(
        config.disk,
        DiskOptions {
            on_io_error: OnIoError::Detach,
            al_extents: 1237,
            resync_rate: 250 * 1024,
            c_max_rate: Some(102_400 * 1024),
            disk_flushes: true,
            md_flushes: true,
            disk_timeout: None,
        }
    );
    assert_eq!(config.handlers, Handlers::default());
    assert_eq!(config.nodes.len(), 2);
    assert_eq!(
        config.nodes["ha1"],
        NodeConfig {
            address: address("10.99.0.1:7789"),
            disk: "/var/lib/hapair/r0.img".into(),
            meta_disk: MetaDisk::Internal,
        }
    );
    assert_eq!(config.nodes["ha2"].address, address("10.99.0.2:7789"));
}

#[test]
fn sections_and_protocol_may_be_left_out() {
    let config = resource(&with_sections(""));
    assert_eq!(config.protocol, Protocol::C);
    assert_eq!(config.net, NetOptions::default());
    assert_eq!(config.disk, DiskOptions::default());
    assert_eq!(config.net.auth, None);
    assert_eq!(config.handlers, Handlers::default());
}

#[test]
fn every_option_is_read_in_drbd_conf_units() {
    let text = with_nodes(
        r#"protocol: A
net:
  shared-secret: s3cret
  cram-hmac-alg: sha256
  ping-int: 20
  ping-timeout: 15
  timeout: 90
  connect-int: 30
  ko-count: 0
  verify-alg: blake3
  data-integrity-alg: crc32c
  fencing: resource-and-stonith
  after-sb-0pri: discard-node-ha2
  after-sb-1pri: call-pri-lost-after-sb
  after-sb-2pri: violently-as0p
disk:
  on-io-error: call-local-io-error
  al-extents: 6007
  resync-rate: 40M
  c-max-rate: 1G
  disk-flushes: no
  md-flushes: false
  disk-timeout: 300
handlers:
  initial-split-brain: [/bin/log, initial]
  split-brain: /bin/log "split brain"
  pri-lost-after-sb: {shell: "echo lost | logger"}
  fence-peer: [/bin/fence]
  unfence-peer: [/bin/unfence]
  local-io-error: [/bin/log, io]
  before-resync-target: [/bin/snap, create]
  after-resync-target: [/bin/snap, remove]
  before-resync-source: [/bin/log, source]
  out-of-sync: [/bin/log, oos]
  disconnected: [/bin/log, gone]
"#,
        r#"{address: "[fd99::1]:7789", disk: /dev/vg0/r0, meta-disk: /dev/vg0/r0-meta}"#,
        r#"{address: "[fd99::2]:7790", disk: /dev/vg1/r0, meta-disk: internal}"#,
    );
    let config = resource(&text);
    assert_eq!(config.protocol, Protocol::A);
    let net = &config.net;
    assert_eq!(net.auth.as_ref().unwrap().shared_secret, "s3cret");
    assert_eq!(net.ping_int, Duration::from_secs(20));
    assert_eq!(net.ping_timeout, Duration::from_millis(1500));
    assert_eq!(net.timeout, Duration::from_secs(9));
    assert_eq!(net.connect_int, Duration::from_secs(30));
    assert_eq!(net.ko_count, 0, "0 turns it off");
    assert_eq!(net.verify_alg, Some(DigestAlg::Blake3));
    assert_eq!(net.data_integrity_alg, Some(DigestAlg::Crc32c));
    assert_eq!(net.fencing, Fencing::ResourceAndStonith);
    assert_eq!(net.after_sb_0pri, AfterSb0Pri::DiscardNode("ha2".into()));
    assert_eq!(net.after_sb_1pri, AfterSb1Pri::CallPriLostAfterSb);
    assert_eq!(net.after_sb_2pri, AfterSb2Pri::ViolentlyAs0p);
    assert_eq!(
        config.disk,
        DiskOptions {
            on_io_error: OnIoError::CallLocalIoError,
            al_extents: 6007,
            resync_rate: 40 << 20,
            c_max_rate: Some(1 << 30),
            disk_flushes: false,
            md_flushes: false,
            disk_timeout: Some(Duration::from_secs(30)),
        }
    );
    let handlers = &config.handlers;
    assert_eq!(handlers.initial_split_brain, argv(&["/bin/log", "initial"]));
    assert_eq!(handlers.split_brain, argv(&["/bin/log", "split brain"]));
    assert_eq!(
        handlers.pri_lost_after_sb,
        argv(&["/bin/sh", "-c", "echo lost | logger"])
    );
    assert_eq!(handlers.fence_peer, argv(&["/bin/fence"]));
    assert_eq!(handlers.unfence_peer, argv(&["/bin/unfence"]));
    assert_eq!(handlers.local_io_error, argv(&["/bin/log", "io"]));
    assert_eq!(
        handlers.before_resync_target,
        argv(&["/bin/snap", "create"])
    );
    assert_eq!(handlers.after_resync_target, argv(&["/bin/snap", "remove"]));
    assert_eq!(handlers.before_resync_source, argv(&["/bin/log", "source"]));
    assert_eq!(handlers.out_of_sync, argv(&["/bin/log", "oos"]));
    assert_eq!(handlers.disconnected, argv(&["/bin/log", "gone"]));
    assert_eq!(
        config.nodes["ha1"],
        NodeConfig {
            address: address("[fd99::1]:7789"),
            disk: "/dev/vg0/r0".into(),
            meta_disk: MetaDisk::External("/dev/vg0/r0-meta".into()),
        }
    );
    assert_eq!(config.nodes["ha2"].address, address("[fd99::2]:7790"));
}

#[test]
fn rates_are_kib_per_second_with_binary_suffixes() {
    let rate = |text: &str| {
        resource(&disk(&format!("resync-rate: {text}")))
            .disk
            .resync_rate
    };
    assert_eq!(rate("250"), 250 * 1024);
    assert_eq!(rate("1"), 1024);
    assert_eq!(rate("250K"), 250 * 1024);
    assert_eq!(rate("250k"), 250 * 1024);
    assert_eq!(rate("40M"), 40 * 1024 * 1024);
    assert_eq!(rate("33m"), 33 * 1024 * 1024);
    assert_eq!(rate("2G"), 2 * 1024 * 1024 * 1024);
    assert_eq!(rate("4g"), 4 << 30);
    assert_eq!(rate("\"4194304\""), 4 << 30);

    for bad in ["5G", "4194305", "0", "99999999999999999999G"] {
        let message = rejection(&disk(&format!("resync-rate: {bad}")), "disk.resync-rate");
        assert_mentions(&message, &["out of range 1..=4194304 KiB/s"]);
    }
    for bad in ["fast", "40MB", "1.5M", "-5", "M", "40 M", "0x10"] {
        let message = rejection(
            &disk(&format!("resync-rate: \"{bad}\"")),
            "disk.resync-rate",
        );
        assert_mentions(&message, &["not a rate", "K, M or G"]);
    }
}

#[test]
fn c_max_rate_zero_means_no_ceiling() {
    let config = resource(&disk("c-max-rate: 0"));
    assert_eq!(config.disk.c_max_rate, None);
    let config = resource(&disk("c-max-rate: 500M"));
    assert_eq!(config.disk.c_max_rate, Some(500 << 20));
    let message = rejection(&disk("c-max-rate: 8G"), "disk.c-max-rate");
    assert_mentions(&message, &["out of range 0..=4194304 KiB/s"]);
}

#[test]
fn times_count_seconds_or_tenths_as_in_drbd_conf() {
    let config = resource(&net("ping-timeout: 1, timeout: 1"));
    assert_eq!(config.net.ping_timeout, Duration::from_millis(100));
    assert_eq!(config.net.timeout, Duration::from_millis(100));
    let config = resource(&net("ping-int: 120, connect-int: 1, timeout: 9"));
    assert_eq!(config.net.ping_int, Duration::from_secs(120));
    assert_eq!(config.net.connect_int, Duration::from_secs(1));

    let message = rejection(&net("ping-int: 0"), "net.ping-int");
    assert_mentions(&message, &["out of range 1..=120", "seconds"]);
    let message = rejection(&net("connect-int: 121"), "net.connect-int");
    assert_mentions(&message, &["out of range 1..=120", "seconds"]);
    let message = rejection(&net("ping-timeout: 0.5"), "net.ping-timeout");
    assert_mentions(&message, &["not a whole number", "tenths of a second"]);
    let message = rejection(&net("ping-timeout: 301"), "net.ping-timeout");
    assert_mentions(&message, &["out of range 1..=300", "tenths"]);
    let message = rejection(
        &net("timeout: 601, ping-int: 100, connect-int: 100"),
        "net.timeout",
    );
    assert_mentions(&message, &["out of range 1..=600", "tenths"]);

    let config = resource(&disk("disk-timeout: 25"));
    assert_eq!(config.disk.disk_timeout, Some(Duration::from_millis(2500)));
    let config = resource(&disk("disk-timeout: 0"));
    assert_eq!(config.disk.disk_timeout, None, "0 waits for ever");
    let message = rejection(&disk("disk-timeout: 6001"), "disk.disk-timeout");
    assert_mentions(&message, &["out of range 0..=6000", "tenths"]);
}

#[test]
fn timeout_must_be_lower_than_ping_int_and_connect_int() {
    let message = rejection(&net("ping-int: 5"), "net.timeout");
    assert_mentions(
        &message,
        &["6s", "lower than ping-int (5s)", "connect-int (10s)"],
    );
    rejection(&net("connect-int: 6"), "net.timeout");
    rejection(&net("timeout: 100"), "net.timeout");
    resource(&net("ping-int: 7"));
}

#[test]
fn a_shared_secret_alone_means_sha256_and_both_must_be_sound() {
    let config = resource(&net("shared-secret: abc"));
    assert_eq!(
        config.net.auth,
        Some(PeerAuth {
            cram_hmac_alg: HmacAlg::Sha256,
            shared_secret: "abc".into(),
        })
    );
    let longest = "x".repeat(64);
    let config = resource(&net(&format!("shared-secret: {longest}")));
    assert_eq!(config.net.auth.unwrap().shared_secret, longest);

    let too_long = "y".repeat(65);
    let message = rejection(
        &net(&format!("shared-secret: {too_long}")),
        "net.shared-secret",
    );
    assert_mentions(&message, &["65 bytes", "1 to 64"]);
    assert!(!message.contains(&too_long), "the secret leaks: {message}");
    rejection(&net("shared-secret: \"\""), "net.shared-secret");

    let message = rejection(
        &net("shared-secret: abc, cram-hmac-alg: sha1"),
        "net.cram-hmac-alg",
    );
    assert_mentions(&message, &["`sha1`", "only supported value is sha256"]);
    let message = rejection(&net("cram-hmac-alg: sha256"), "net.cram-hmac-alg");
    assert_mentions(&message, &["shared-secret is not"]);
}

#[test]
fn debug_output_hides_the_shared_secret() {
    let config = resource(&net("shared-secret: hunter2-secret"));
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("<hidden>"), "{shown}");
}

#[test]
fn words_outside_drbds_values_are_refused_with_the_valid_ones() {
    let message = rejection(&with_sections("protocol: D\n"), "protocol");
    assert_mentions(&message, &["`D`", "A, B, C"]);
    let message = rejection(&net("verify-alg: md5"), "net.verify-alg");
    assert_mentions(&message, &["crc32c, sha256, blake3"]);
    let message = rejection(&net("data-integrity-alg: sha1"), "net.data-integrity-alg");
    assert_mentions(&message, &["crc32c, sha256, blake3"]);
    let message = rejection(&net("fencing: stonith"), "net.fencing");
    assert_mentions(
        &message,
        &["dont-care, resource-only, resource-and-stonith"],
    );
    let message = rejection(&net("after-sb-0pri: discard-local"), "net.after-sb-0pri");
    assert_mentions(&message, &["discard-zero-changes", "discard-node-NAME"]);
    let message = rejection(&net("after-sb-0pri: discard-node-ha3"), "net.after-sb-0pri");
    assert_mentions(&message, &["names no node", "ha1, ha2"]);
    let message = rejection(
        &net("after-sb-1pri: discard-younger-primary"),
        "net.after-sb-1pri",
    );
    assert_mentions(&message, &["consensus", "discard-secondary"]);
    let message = rejection(
        &net("after-sb-2pri: discard-secondary"),
        "net.after-sb-2pri",
    );
    assert_mentions(
        &message,
        &["disconnect, violently-as0p, call-pri-lost-after-sb"],
    );
    let message = rejection(&disk("on-io-error: panic"), "disk.on-io-error");
    assert_mentions(&message, &["pass_on, call-local-io-error, detach"]);
}

#[test]
fn al_extents_are_bounded() {
    assert_eq!(resource(&disk("al-extents: 7")).disk.al_extents, 7);
    assert_eq!(resource(&disk("al-extents: 65534")).disk.al_extents, 65534);
    for bad in ["6", "65535", "100.5"] {
        rejection(&disk(&format!("al-extents: {bad}")), "disk.al-extents");
    }
}

#[test]
fn resource_names_are_checked() {
    for good in ["r0", "web_data.v2", "A-1"] {
        let text = SHAPE.replace("resource: r0", &format!("resource: {good}"));
        assert_eq!(resource(&text).name, good);
    }
    for bad in ["r 0", "r/0", "ré", "-r0", ".r0", "\"\""] {
        let text = SHAPE.replace("resource: r0", &format!("resource: {bad}"));
        rejection(&text, "resource");
    }
    let long = "r".repeat(65);
    let message = rejection(
        &SHAPE.replace("resource: r0", &format!("resource: {long}")),
        "resource",
    );
    assert_mentions(&message, &["longer than 64 bytes"]);
    let message = rejection(&SHAPE.replace("resource: r0\n", ""), "resource");
    assert_mentions(&message, &["missing"]);
    let message = rejection("", "resource");
    assert_mentions(&message, &["empty"]);
}

#[test]
fn a_pair_has_exactly_two_nodes() {
    let one = format!("resource: r0\nnodes:\n  ha1: {HA1}\n");
    let message = rejection(&one, "nodes");
    assert_mentions(
        &message,
        &[
            "only one node is defined (ha1)",
            "hapair pairs exactly two nodes",
        ],
    );
    let three = format!(
        "resource: r0\nnodes:\n  ha1: {HA1}\n  ha2: {HA2}\n  ha3: {}\n",
        HA2.replace("10.99.0.2", "10.99.0.3")
    );
    let message = rejection(&three, "nodes");
    assert_mentions(
        &message,
        &["3 nodes are defined (ha1, ha2, ha3)", "exactly two"],
    );
    let message = rejection("resource: r0\nnodes: {}\n", "nodes");
    assert_mentions(&message, &["no node is defined"]);
    let message = rejection("resource: r0\n", "nodes");
    assert_mentions(&message, &["missing", "meta-disk: internal"]);
}

#[test]
fn node_names_are_host_names() {
    let config = resource(&format!(
        "resource: r0\nnodes:\n  ha1.example.org: {HA1}\n  HA-2: {HA2}\n"
    ));
    assert!(config.nodes.contains_key("ha1.example.org"));
    for bad in ["ha_1", "-ha1", "ha1-", "ha..1", "\"ha 1\""] {
        let text = format!("resource: r0\nnodes:\n  {bad}: {HA1}\n  ha2: {HA2}\n");
        let field = format!("nodes.{}", bad.trim_matches('"'));
        let message = rejection(&text, &field);
        assert_mentions(&message, &["not a host name", "uname -n"]);
    }
}

#[test]
fn node_sections_need_address_disk_and_meta_disk() {
    let message = rejection(&with_nodes("", "", HA2), "nodes.ha1");
    assert_mentions(&message, &["is empty"]);
    let message = rejection(
        &with_nodes("", "{disk: /d, meta-disk: internal}", HA2),
        "nodes.ha1.address",
    );
    assert_mentions(&message, &["missing", "IP:PORT"]);
    rejection(
        &with_nodes(
            "",
            r#"{address: "10.99.0.1:7789", meta-disk: internal}"#,
            HA2,
        ),
        "nodes.ha1.disk",
    );
    let message = rejection(
        &with_nodes("", r#"{address: "10.99.0.1:7789", disk: /d}"#, HA2),
        "nodes.ha1.meta-disk",
    );
    assert_mentions(&message, &["missing", "internal"]);
}

fn ha1_with(field: &str, value: &str) -> String {
    let mut parts = vec![
        ("address", "\"10.99.0.1:7789\""),
        ("disk", "/var/lib/hapair/r0.img"),
        ("meta-disk", "internal"),
    ];
    for part in &mut parts {
        if part.0 == field {
            part.1 = value;
        }
    }
    let map = parts
        .iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    with_nodes("", &format!("{{{map}}}"), HA2)
}

#[test]
fn node_addresses_are_unicast_ip_and_port() {
    let message = rejection(&ha1_with("address", "\"10.99.0.1\""), "nodes.ha1.address");
    assert_mentions(&message, &["no port", "10.99.0.1:7789"]);
    let message = rejection(&ha1_with("address", "\"fd99::1\""), "nodes.ha1.address");
    assert_mentions(&message, &["no port", "[fd99::1]:7789"]);
    let message = rejection(&ha1_with("address", "\"ha1:7789\""), "nodes.ha1.address");
    assert_mentions(&message, &["not IP:PORT", "not looked up"]);
    for bad in [
        "0.0.0.0:7789",
        "224.0.0.1:7789",
        "255.255.255.255:7789",
        "[::]:7789",
    ] {
        let message = rejection(
            &ha1_with("address", &format!("\"{bad}\"")),
            "nodes.ha1.address",
        );
        assert_mentions(&message, &["not a unicast address"]);
    }
    let message = rejection(&ha1_with("address", "\"10.99.0.1:0\""), "nodes.ha1.address");
    assert_mentions(&message, &["port 0", "10.99.0.1:7789"]);
}

#[test]
fn the_two_nodes_have_distinct_addresses_of_one_family() {
    let message = rejection(
        &ha1_with("address", "\"10.99.0.2:7789\""),
        "nodes.ha2.address",
    );
    assert_mentions(
        &message,
        &["10.99.0.2:7789 is also the address of node ha1"],
    );
    let config = resource(&ha1_with("address", "\"10.99.0.2:7790\""));
    assert_eq!(config.nodes["ha1"].address, address("10.99.0.2:7790"));
    let message = rejection(
        &ha1_with("address", "\"[fd99::1]:7789\""),
        "nodes.ha2.address",
    );
    assert_mentions(&message, &["different address families"]);
}

#[test]
fn disks_are_absolute_paths_and_metadata_is_internal_or_elsewhere() {
    let message = rejection(&ha1_with("disk", "var/lib/r0.img"), "nodes.ha1.disk");
    assert_mentions(&message, &["`var/lib/r0.img` is not an absolute path"]);
    let message = rejection(&ha1_with("disk", "none"), "nodes.ha1.disk");
    assert_mentions(&message, &["diskless"]);
    rejection(&ha1_with("disk", "\"/a\\0b\""), "nodes.ha1.disk");

    let message = rejection(&ha1_with("meta-disk", "r0.meta"), "nodes.ha1.meta-disk");
    assert_mentions(&message, &["not an absolute path", "`internal`"]);
    let message = rejection(
        &ha1_with("meta-disk", "/var/lib/hapair/r0.img"),
        "nodes.ha1.meta-disk",
    );
    assert_mentions(&message, &["same path as disk"]);
    let message = rejection(
        &ha1_with("meta-disk", "\"/dev/sdb1[0]\""),
        "nodes.ha1.meta-disk",
    );
    assert_mentions(&message, &["indexed metadata"]);
    let config = resource(&ha1_with("meta-disk", "/var/lib/hapair/r0.meta"));
    assert_eq!(
        config.nodes["ha1"].meta_disk,
        MetaDisk::External("/var/lib/hapair/r0.meta".into())
    );
}

#[test]
fn handlers_are_hook_commands() {
    let message = rejection(
        &with_sections("handlers: {split-brain: \"/bin/log 'open\"}\n"),
        "handlers.split-brain",
    );
    assert_mentions(&message, &["missing closing quote"]);
    rejection(
        &with_sections("handlers: {out-of-sync: []}\n"),
        "handlers.out-of-sync",
    );
}

#[test]
fn options_that_run_a_handler_need_it_and_handlers_need_an_option_that_runs_them() {
    let message = rejection(
        &disk("on-io-error: call-local-io-error"),
        "handlers.local-io-error",
    );
    assert_mentions(
        &message,
        &["missing", "disk.on-io-error is call-local-io-error"],
    );
    let message = rejection(
        &with_sections("disk: {on-io-error: pass_on}\nhandlers: {local-io-error: [/bin/x]}\n"),
        "handlers.local-io-error",
    );
    assert_mentions(&message, &["never run", "call-local-io-error or detach"]);

    let message = rejection(&net("fencing: resource-only"), "handlers.fence-peer");
    assert_mentions(&message, &["missing", "net.fencing is resource-only"]);
    let message = rejection(
        &with_sections("handlers: {fence-peer: [/bin/x]}\n"),
        "handlers.fence-peer",
    );
    assert_mentions(&message, &["never run", "net.fencing"]);
    rejection(
        &with_sections("handlers: {unfence-peer: [/bin/x]}\n"),
        "handlers.unfence-peer",
    );
    // unfence-peer is optional with fencing on.
    resource(&with_sections(
        "net: {fencing: resource-only}\nhandlers: {fence-peer: [/bin/x]}\n",
    ));

    let message = rejection(
        &net("after-sb-2pri: call-pri-lost-after-sb"),
        "handlers.pri-lost-after-sb",
    );
    assert_mentions(&message, &["net.after-sb-2pri is call-pri-lost-after-sb"]);
    rejection(
        &net("after-sb-1pri: call-pri-lost-after-sb"),
        "handlers.pri-lost-after-sb",
    );
    rejection(
        &with_sections("handlers: {pri-lost-after-sb: [/bin/x]}\n"),
        "handlers.pri-lost-after-sb",
    );
}

#[test]
fn unknown_keys_are_yaml_errors_with_a_position_and_the_valid_keys() {
    let message = parse(&with_sections("protocl: C\n"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:2:1: ")), "{message}");
    assert_mentions(&message, &["`protocl`", "protocol", "handlers"]);

    // drbd.conf spells options with '-', not '_'.
    let message = parse(&net("shared_secret: x")).unwrap_err().to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:2:")), "{message}");
    assert_mentions(&message, &["`shared_secret`", "shared-secret"]);

    let message = parse(&ha1_with("disk", "/d, meta_disk: internal"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:3:")), "{message}");
    assert_mentions(&message, &["`meta_disk`", "meta-disk"]);

    let message = parse(&with_sections("handlers: {pri-lost: [/bin/x]}\n"))
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["`pri-lost`", "pri-lost-after-sb"]);
}

#[test]
fn wrong_value_types_and_duplicate_keys_are_yaml_errors() {
    let message = parse(&net("ping-int: often")).unwrap_err().to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:2:")), "{message}");
    let message = parse(&disk("disk-flushes: sometimes"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:2:")), "{message}");
    let message = parse(&format!("{SHAPE}protocol: A\n"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with(&format!("{ORIGIN}:")), "{message}");
    assert!(matches!(
        parse(&format!("{SHAPE}protocol: A\n")),
        Err(ConfigError::Yaml { .. })
    ));
}

#[test]
fn local_and_peer_pick_the_pair_by_node_name() {
    let config = resource(SHAPE);
    assert_eq!(
        config.local("ha1").unwrap().address,
        address("10.99.0.1:7789")
    );
    let (peer, section) = config.peer("ha1").unwrap();
    assert_eq!(peer, "ha2");
    assert_eq!(section.address, address("10.99.0.2:7789"));
    assert_eq!(config.peer("ha2").unwrap().0, "ha1");

    let message = config.local("ha3").unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{ORIGIN}: nodes: r0 is not defined for node ha3 (nodes: ha1, ha2); run on one of \
             them, or pass --node NAME when the host name differs"
        )
    );
    assert_eq!(config.peer("ha3").unwrap_err().to_string(), message);
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r0.yaml");
    fs::write(&path, SHAPE).unwrap();
    let config = ResourceConfig::load(&path).unwrap();
    assert_eq!(config.origin, path);
    assert_eq!(config.name, "r0");

    let missing = dir.path().join("absent.yaml");
    let message = ResourceConfig::load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{message}"
    );
}

const VRRP: &str = "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    \
                    virtual_ipaddress: [10.99.0.100/24]\n";

/// A valid resource `name` using port `port` and its own disk files.
fn resource_file(name: &str, port: u16) -> String {
    format!(
        "resource: {name}\nnodes:\n  \
         ha1: {{address: \"10.99.0.1:{port}\", disk: /var/lib/hapair/{name}.img, meta-disk: internal}}\n  \
         ha2: {{address: \"10.99.0.2:{port}\", disk: /var/lib/hapair/{name}.img, meta-disk: internal}}\n"
    )
}

fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn names(resources: &[ResourceConfig]) -> Vec<&str> {
    resources
        .iter()
        .map(|resource| resource.name.as_str())
        .collect()
}

#[test]
fn a_config_directory_yields_its_resources_sorted_by_name() {
    let dir = config_dir(&[
        ("vrrp.yaml", VRRP),
        ("b-first-file.yaml", &resource_file("web", 7790)),
        ("z-last-file.yaml", &resource_file("db", 7789)),
        ("notes.txt", "not yaml at all: ["),
        (".#web.yaml", "editor lock file"),
        ("old.yaml.bak", "resource: r9\n"),
    ]);
    fs::create_dir(dir.path().join("archive")).unwrap();
    fs::write(dir.path().join("archive/r9.yaml"), "resource: r9\n").unwrap();

    let resources = load_resources(dir.path()).unwrap();
    assert_eq!(names(&resources), ["db", "web"]);
    assert_eq!(resources[0].origin, dir.path().join("z-last-file.yaml"));
    assert_eq!(resources[1].nodes["ha1"].address, address("10.99.0.1:7790"));

    let web = load_resource(dir.path(), "web").unwrap();
    assert_eq!(web, resources[1]);
    let message = load_resource(dir.path(), "r9").unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}: resource: r9 is not defined (resources: db, web)",
            dir.path().display()
        )
    );
}

#[test]
fn an_empty_directory_has_no_resources() {
    let dir = config_dir(&[("vrrp.yaml", VRRP)]);
    assert_eq!(load_resources(dir.path()).unwrap(), []);
    let message = load_resource(dir.path(), "r0").unwrap_err().to_string();
    assert_mentions(&message, &["r0 is not defined", "no resource file"]);
}

#[test]
fn a_stray_yaml_file_in_the_directory_is_an_error_naming_it() {
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("vrrp.yaml", VRRP),
        ("settings.yaml", "log_level: debug\n"),
    ]);
    let stray = dir.path().join("settings.yaml");
    let message = load_resources(dir.path()).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: resource: missing; ", stray.display())),
        "{message}"
    );
    assert_mentions(&message, &["`instances:`", "move it elsewhere"]);

    let empty = config_dir(&[("empty.yaml", "")]);
    let message = load_resources(empty.path()).unwrap_err().to_string();
    assert_mentions(&message, &["empty.yaml: resource: missing"]);
}

#[test]
fn a_bad_resource_in_the_directory_fails_the_whole_load() {
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        (
            "r1.yaml",
            &resource_file("r1", 7790).replace("internal", "internl"),
        ),
    ]);
    let message = load_resources(dir.path()).unwrap_err().to_string();
    let r1 = dir.path().join("r1.yaml");
    assert!(
        message.starts_with(&format!("{}: nodes.ha1.meta-disk: ", r1.display())),
        "{message}"
    );
}

#[test]
fn duplicate_resource_names_name_both_files() {
    let dir = config_dir(&[
        ("a.yaml", &resource_file("r0", 7789)),
        ("b.yaml", &resource_file("r0", 7790)),
    ]);
    let message = load_resources(dir.path()).unwrap_err().to_string();
    let (first, second) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    assert_eq!(
        message,
        format!(
            "{}: resource: r0 is also defined in {}; give each resource its own name",
            second.display(),
            first.display()
        )
    );
}

#[test]
fn resources_may_not_share_an_address_or_a_nodes_disk() {
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("r1.yaml", &resource_file("r1", 7789)),
    ]);
    let message = load_resources(dir.path()).unwrap_err().to_string();
    let r0 = dir.path().join("r0.yaml");
    let r1 = dir.path().join("r1.yaml");
    assert_eq!(
        message,
        format!(
            "{}: nodes.ha1.address: 10.99.0.1:7789 is also nodes.ha1.address of resource r0 in \
             {}; give each resource its own port",
            r1.display(),
            r0.display()
        )
    );

    let shared_disk = resource_file("r1", 7790).replace("r1.img", "r0.img");
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("r1.yaml", &shared_disk),
    ]);
    let message = load_resources(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &message,
        &["r1.yaml: nodes.ha1.disk: /var/lib/hapair/r0.img is also nodes.ha1.disk of resource r0"],
    );

    let meta_on_other_disk =
        resource_file("r1", 7790).replacen("internal", "/var/lib/hapair/r0.img", 1);
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("r1.yaml", &meta_on_other_disk),
    ]);
    let message = load_resources(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &message,
        &[
            "r1.yaml: nodes.ha1.meta-disk: ",
            "nodes.ha1.disk of resource r0",
        ],
    );

    // One path on two different hosts is no conflict.
    let other_host = resource_file("r1", 7790).replacen("r1.img", "r0.img", 1);
    let swapped = other_host.replace("ha1", "ha3");
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("r1.yaml", &swapped),
    ]);
    assert_eq!(names(&load_resources(dir.path()).unwrap()), ["r0", "r1"]);
}

#[test]
fn a_single_file_may_stand_for_the_directory() {
    let dir = config_dir(&[
        ("r0.yaml", &resource_file("r0", 7789)),
        ("vrrp.yaml", VRRP),
        ("other.yaml", "key: value\n"),
    ]);
    let resources = load_resources(&dir.path().join("r0.yaml")).unwrap();
    assert_eq!(names(&resources), ["r0"]);
    assert_eq!(
        load_resource(&dir.path().join("r0.yaml"), "r0").unwrap(),
        resources[0]
    );

    let message = load_resources(&dir.path().join("vrrp.yaml"))
        .unwrap_err()
        .to_string();
    assert_mentions(
        &message,
        &["vrrp.yaml: resource: missing", "vrrpd's config"],
    );
    let message = load_resources(&dir.path().join("other.yaml"))
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["other.yaml: resource: missing"]);
    let message = load_resources(&dir.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["absent: cannot read the file"]);
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

/// Every example under configs/ except vrrpd's (`vrrp-*.yaml`): each is a
/// resource file.
fn resource_examples() -> Vec<PathBuf> {
    let dir = examples_dir();
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.ends_with(".yaml") && !name.starts_with("vrrp-")
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_resource_example_loads_for_both_nodes() {
    let examples = resource_examples();
    let names: Vec<String> = examples
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["r0.yaml", "r0-external-meta.yaml"] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} is missing"
        );
    }
    for path in &examples {
        let resources = load_resources(path).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(resources.len(), 1);
        let config = &resources[0];
        assert_eq!(config.origin, *path);
        for node in ["ha1", "ha2"] {
            let local = config.local(node).unwrap_or_else(|error| panic!("{error}"));
            let (_, peer) = config.peer(node).unwrap();
            assert_ne!(local.address, peer.address);
        }
    }
}

#[test]
fn the_external_meta_example_keeps_metadata_off_the_data_volume() {
    let config = ResourceConfig::load(&examples_dir().join("r0-external-meta.yaml")).unwrap();
    let ha1 = config.local("ha1").unwrap();
    assert_eq!(ha1.meta_disk, MetaDisk::External("/dev/vg0/r0-meta".into()));
    assert!(ha1.address.is_ipv6());
    assert_eq!(config.net.ping_timeout, Duration::from_secs(2));
    assert_eq!(config.net.ko_count, 4);
    assert_eq!(config.net.fencing, Fencing::ResourceOnly);
    assert!(config.handlers.fence_peer.is_some());
    assert_eq!(config.disk.resync_rate, 40 << 20);
    assert_eq!(config.disk.disk_timeout, Some(Duration::from_secs(60)));
}
