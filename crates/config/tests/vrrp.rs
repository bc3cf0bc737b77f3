//! Tests of vrrpd's config schema: that documented configs load with the
//! right values and defaults, and that each validation rule rejects a bad
//! config with a message naming the offending field.

use std::net::IpAddr;
use std::time::Duration;

use hapair_config::{
    ConfigError, HookCommand, MasterHookFailure, VirtualAddress, VrrpConfig, VrrpInstance,
};

const ORIGIN: &str = "vrrp.yaml";

/// The settings of a minimal valid instance, in file order.
const BASE: &[(&str, &str)] = &[
    ("name", "VI_1"),
    ("interface", "eth0"),
    ("virtual_router_id", "51"),
    ("virtual_ipaddress", "[10.99.0.100/24]"),
];

/// A one-instance file: [`BASE`] with `changes` applied. A change to a key
/// of `BASE` replaces its value (an empty value removes the key); any other
/// key is appended.
fn file_with(changes: &[(&str, &str)]) -> String {
    let mut settings: Vec<(&str, &str)> = BASE.to_vec();
    for &(key, value) in changes {
        match settings.iter().position(|(existing, _)| *existing == key) {
            Some(index) => settings[index].1 = value,
            None => settings.push((key, value)),
        }
    }
    let mut text = String::from("instances:\n");
    for (index, (key, value)) in settings
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .enumerate()
    {
        let lead = if index == 0 { "  - " } else { "    " };
        text.push_str(&format!("{lead}{key}: {value}\n"));
    }
    text
}

fn load(text: &str) -> Result<VrrpConfig, ConfigError> {
    VrrpConfig::parse(text, ORIGIN, None)
}

fn instance(changes: &[(&str, &str)]) -> VrrpInstance {
    let text = file_with(changes);
    let mut config = load(&text).unwrap_or_else(|error| panic!("{error}\n---\n{text}"));
    assert_eq!(config.instances.len(), 1);
    config.instances.remove(0)
}

/// The error for a one-instance file, asserted to be about `field` of VI_1.
fn rejection(changes: &[(&str, &str)], field: &str) -> String {
    let text = file_with(changes);
    let error = load(&text).expect_err(&text);
    let message = error.to_string();
    let prefix = format!("{ORIGIN}: instances[0] (VI_1).{field}: ");
    assert!(
        message.starts_with(&prefix),
        "expected {prefix:?}…, got {message:?}"
    );
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

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn argv(words: &[&str]) -> Option<HookCommand> {
    Some(HookCommand {
        argv: words.iter().map(|word| word.to_string()).collect(),
    })
}

#[test]
fn documented_example_loads_with_its_values() {
    let text = r#"
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    advert_int: 1          # seconds; v3 takes hundredths (0.1)
    version: 2             # 2 or 3
    virtual_ipaddress: [10.99.0.100/24]
    unicast_peer: []       # empty: multicast
    notify_master: [/etc/hapair/hooks/promote, r0]
    notify: /usr/local/bin/log-transition
"#;
    let config = load(text).unwrap();
    assert_eq!(
        config.instances,
        vec![VrrpInstance {
            name: "VI_1".into(),
            interface: "eth0".into(),
            virtual_router_id: 51,
            priority: 150,
            version: 2,
            advert_int_centis: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            virtual_ipaddress: vec![VirtualAddress {
                address: ip("10.99.0.100"),
                prefix_len: 24,
                dev: None,
                label: None,
            }],
            unicast_src_ip: None,
            unicast_peer: vec![],
            auth_pass: None,
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: None,
            v3_checksum_as_v2: false,
            unicast_skip_ttl_check: false,
            notify_timeout: Duration::from_secs(30),
            notify_master: argv(&["/etc/hapair/hooks/promote", "r0"]),
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: argv(&["/usr/local/bin/log-transition"]),
            track_script: vec![],
            track_interface: vec![],
            track_file: vec![],
            master_hook_failure: MasterHookFailure::Ignore,
            master_hook_retry: Duration::from_secs(10),
        }]
    );
}

#[test]
fn omitted_settings_take_keepalived_defaults() {
    let vi = instance(&[]);
    assert_eq!(vi.priority, 100);
    assert_eq!(vi.version, 2);
    assert_eq!(vi.advert_int_centis, 100);
    assert!(vi.preempt);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!(vi.garp_master_delay, Duration::from_secs(5));
    assert_eq!(vi.garp_master_repeat, 5);
    assert_eq!(vi.garp_master_refresh, None);
    assert_eq!(vi.notify_timeout, Duration::from_secs(30));
    assert_eq!(vi.auth_pass, None);
    assert!(vi.unicast_peer.is_empty());
}

#[test]
fn every_setting_is_read() {
    let vi = instance(&[
        ("priority", "255"),
        ("version", "3"),
        ("advert_int", "0.25"),
        ("nopreempt", "true"),
        ("unicast_src_ip", "10.99.0.1"),
        ("unicast_peer", "[10.99.0.2, 10.99.0.3]"),
        ("garp_master_delay", "0.5"),
        ("garp_master_repeat", "3"),
        ("garp_master_refresh", "60"),
        ("v3_checksum_as_v2", "true"),
        ("unicast_skip_ttl_check", "true"),
        ("notify_timeout", "2.5"),
        ("notify_backup", "[/bin/demote]"),
        ("notify_fault", "[/bin/fault]"),
        ("notify_stop", "[/bin/stop]"),
    ]);
    assert_eq!(vi.priority, 255);
    assert_eq!(vi.version, 3);
    assert_eq!(vi.advert_int_centis, 25);
    assert!(!vi.preempt);
    assert_eq!(vi.unicast_src_ip, Some(ip("10.99.0.1")));
    assert_eq!(vi.unicast_peer, vec![ip("10.99.0.2"), ip("10.99.0.3")]);
    assert_eq!(vi.garp_master_delay, Duration::from_millis(500));
    assert_eq!(vi.garp_master_repeat, 3);
    assert_eq!(vi.garp_master_refresh, Some(Duration::from_secs(60)));
    assert!(vi.v3_checksum_as_v2);
    assert!(vi.unicast_skip_ttl_check);
    assert_eq!(vi.notify_timeout, Duration::from_millis(2500));
    assert_eq!(vi.notify_backup, argv(&["/bin/demote"]));
    assert_eq!(vi.notify_fault, argv(&["/bin/fault"]));
    assert_eq!(vi.notify_stop, argv(&["/bin/stop"]));
}

#[test]
fn virtual_router_id_must_be_in_range() {
    assert_eq!(
        rejection(&[("virtual_router_id", "300")], "virtual_router_id"),
        "vrrp.yaml: instances[0] (VI_1).virtual_router_id: 300 is out of range 1..=255"
    );
    rejection(&[("virtual_router_id", "0")], "virtual_router_id");
    let message = rejection(&[("virtual_router_id", "51.5")], "virtual_router_id");
    assert_mentions(&message, &["not a whole number"]);
    let message = rejection(&[("virtual_router_id", "")], "virtual_router_id");
    assert_mentions(&message, &["missing"]);
    assert_eq!(
        instance(&[("virtual_router_id", "051")]).virtual_router_id,
        51
    );
}

#[test]
fn priority_must_be_in_range() {
    let message = rejection(&[("priority", "0")], "priority");
    assert_mentions(&message, &["1..=255"]);
    rejection(&[("priority", "256")], "priority");
}

#[test]
fn version_must_be_2_or_3() {
    let message = rejection(&[("version", "4")], "version");
    assert_mentions(&message, &["use 2 or 3"]);
}

#[test]
fn ipv6_addresses_need_version_3() {
    for changes in [
        &[("virtual_ipaddress", "[fd99::100/64]")][..],
        &[("virtual_ipaddress", "[fd99::100/64]"), ("version", "2")],
    ] {
        let message = rejection(changes, "version");
        assert_mentions(&message, &["IPv6", "version: 3"]);
    }
    let vi = instance(&[("virtual_ipaddress", "[fd99::100/64]"), ("version", "3")]);
    assert_eq!(vi.virtual_ipaddress[0].address, ip("fd99::100"));
}

#[test]
fn advert_int_follows_the_version_unit() {
    assert_eq!(instance(&[("advert_int", "3")]).advert_int_centis, 300);
    assert_eq!(instance(&[("advert_int", "255")]).advert_int_centis, 25500);
    let message = rejection(&[("advert_int", "0.1")], "advert_int");
    assert_mentions(&message, &["whole number of seconds", "version: 3"]);
    rejection(&[("advert_int", "256")], "advert_int");
    rejection(&[("advert_int", "0")], "advert_int");

    let v3 = |value| instance(&[("version", "3"), ("advert_int", value)]).advert_int_centis;
    assert_eq!(v3("0.1"), 10);
    assert_eq!(v3("1"), 100);
    assert_eq!(v3("0.01"), 1);
    assert_eq!(v3("40.95"), 4095);
    assert_eq!(
        v3("0.123"),
        12,
        "hundredths are rounded like keepalived does"
    );
    for bad in ["41", "0.001", "-1"] {
        let message = rejection(&[("version", "3"), ("advert_int", bad)], "advert_int");
        assert_mentions(&message, &["0.01..=40.95"]);
    }
}

#[test]
fn preemption_settings() {
    assert!(!instance(&[("nopreempt", "true")]).preempt);
    assert!(instance(&[("nopreempt", "false")]).preempt);
    assert_eq!(
        instance(&[("preempt_delay", "2.5")]).preempt_delay,
        Duration::from_millis(2500)
    );
    rejection(&[("preempt_delay", "1001")], "preempt_delay");
    rejection(&[("preempt_delay", "-1")], "preempt_delay");
    let message = rejection(
        &[("nopreempt", "true"), ("preempt_delay", "10")],
        "preempt_delay",
    );
    assert_mentions(&message, &["nopreempt"]);
}

#[test]
fn virtual_address_forms() {
    let vip = |entry: &str| instance(&[("virtual_ipaddress", entry)]).virtual_ipaddress;
    assert_eq!(
        vip("[10.0.0.1]"),
        vec![VirtualAddress {
            address: ip("10.0.0.1"),
            prefix_len: 32,
            dev: None,
            label: None
        }]
    );
    assert_eq!(
        instance(&[("virtual_ipaddress", "[fd99::1]"), ("version", "3")]).virtual_ipaddress[0]
            .prefix_len,
        128
    );
    assert_eq!(
        vip(r#"["10.0.0.1/24 dev eth1 label eth1:vip"]"#),
        vec![VirtualAddress {
            address: ip("10.0.0.1"),
            prefix_len: 24,
            dev: Some("eth1".into()),
            label: Some("eth1:vip".into())
        }]
    );
    assert_eq!(
        vip(r#"[{address: 10.0.0.1/24, dev: eth1, label: "eth1:vip"}, {address: 10.0.0.2}]"#),
        vec![
            VirtualAddress {
                address: ip("10.0.0.1"),
                prefix_len: 24,
                dev: Some("eth1".into()),
                label: Some("eth1:vip".into())
            },
            VirtualAddress {
                address: ip("10.0.0.2"),
                prefix_len: 32,
                dev: None,
                label: None
            }
        ]
    );
    // A label defaults to being checked against the instance's interface.
    assert_eq!(
        vip(r#"["10.0.0.1/24 label eth0:a"]"#)[0].label.as_deref(),
        Some("eth0:a")
    );
}

#[test]
fn virtual_address_mistakes_name_the_entry() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[10.0.0.1/24, 10.0.0.300/24]",
            "virtual_ipaddress[1]",
            &["10.0.0.300", "not an IP address"],
        ),
        ("[10.0.0.1/33]", "virtual_ipaddress[0]", &["/33", "1..=32"]),
        ("[10.0.0.1/0]", "virtual_ipaddress[0]", &["/0"]),
        (
            "[\"10.0.0.1/24 brd 10.0.0.255\"]",
            "virtual_ipaddress[0]",
            &["`brd`", "dev NAME"],
        ),
        (
            "[\"10.0.0.1/24 dev\"]",
            "virtual_ipaddress[0]",
            &["`dev` needs a value"],
        ),
        (
            "[\"10.0.0.1/24 dev a dev b\"]",
            "virtual_ipaddress[0]",
            &["`dev` is given twice"],
        ),
        (
            "[\"10.0.0.1/24 label eth9:x\"]",
            "virtual_ipaddress[0]",
            &["eth9:x", "eth0:"],
        ),
        (
            "[\"10.0.0.1/24 dev eth1 label eth0:x\"]",
            "virtual_ipaddress[0]",
            &["eth1:"],
        ),
        (
            "[\"10.0.0.1/24 dev bad/name\"]",
            "virtual_ipaddress[0]",
            &["bad/name", "interface name"],
        ),
        (
            "[10.0.0.1/24, 10.0.0.1/16]",
            "virtual_ipaddress[1]",
            &["already listed as virtual_ipaddress[0]"],
        ),
        (
            "[10.0.0.1/24, fd99::1/64]",
            "virtual_ipaddress[1]",
            &["IPv6", "IPv4", "one address family"],
        ),
        ("[224.0.0.18]", "virtual_ipaddress[0]", &["multicast"]),
        ("[0.0.0.0]", "virtual_ipaddress[0]", &["unspecified"]),
        ("[]", "virtual_ipaddress", &["at least one"]),
        ("", "virtual_ipaddress", &["at least one"]),
    ];
    for (entries, field, words) in cases {
        let message = rejection(&[("virtual_ipaddress", entries)], field);
        assert_mentions(&message, words);
    }
    let message = rejection(
        &[
            ("version", "3"),
            ("virtual_ipaddress", "[{address: fd99::1, label: eth0:x}]"),
        ],
        "virtual_ipaddress[0]",
    );
    assert_mentions(&message, &["IPv4 only"]);
}

#[test]
fn unknown_key_in_a_virtual_address_map_is_a_yaml_error() {
    let error = load(&file_with(&[(
        "virtual_ipaddress",
        "[{address: 10.0.0.1, scope: host}]",
    )]))
    .unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("vrrp.yaml:5:"), "{message}");
    assert_mentions(&message, &["`scope`", "address", "dev", "label"]);
}

#[test]
fn unicast_addresses_must_match_the_virtual_address_family() {
    let message = rejection(&[("unicast_src_ip", "fd99::1")], "unicast_src_ip");
    assert_mentions(&message, &["IPv6", "IPv4"]);
    let message = rejection(
        &[("unicast_peer", "[10.99.0.2, fd99::2]")],
        "unicast_peer[1]",
    );
    assert_mentions(&message, &["IPv6", "IPv4"]);
    let message = rejection(
        &[
            ("version", "3"),
            ("virtual_ipaddress", "[fd99::100/64]"),
            ("unicast_peer", "[10.99.0.2]"),
        ],
        "unicast_peer[0]",
    );
    assert_mentions(&message, &["IPv4", "IPv6"]);
}

#[test]
fn unicast_peer_list_is_checked() {
    let message = rejection(
        &[("unicast_peer", "[10.99.0.2, 10.99.0.2]")],
        "unicast_peer[1]",
    );
    assert_mentions(&message, &["already listed"]);
    let message = rejection(
        &[
            ("unicast_src_ip", "10.99.0.1"),
            ("unicast_peer", "[10.99.0.1]"),
        ],
        "unicast_peer[0]",
    );
    assert_mentions(&message, &["unicast_src_ip"]);
    let message = rejection(&[("unicast_peer", "[ha2]")], "unicast_peer[0]");
    assert_mentions(&message, &["`ha2` is not an IP address"]);
    let message = rejection(&[("unicast_src_ip", "255.255.255.255")], "unicast_src_ip");
    assert_mentions(&message, &["not a unicast address"]);
}

#[test]
fn skipping_the_ttl_check_needs_unicast_peers() {
    let message = rejection(
        &[("unicast_skip_ttl_check", "true")],
        "unicast_skip_ttl_check",
    );
    assert_mentions(&message, &["unicast_peer"]);
    assert!(
        instance(&[
            ("unicast_skip_ttl_check", "true"),
            ("unicast_peer", "[10.99.0.2]")
        ])
        .unicast_skip_ttl_check
    );
}

#[test]
fn pass_authentication() {
    let pass = |auth: &str| instance(&[("authentication", auth)]).auth_pass;
    assert_eq!(
        pass("{auth_type: PASS, auth_pass: secret}"),
        Some("secret".into())
    );
    assert_eq!(
        pass("{auth_type: PASS, auth_pass: 1111}"),
        Some("1111".into())
    );
    assert_eq!(
        pass("{auth_type: pass, auth_pass: \"12345678\"}"),
        Some("12345678".into())
    );

    let message = rejection(
        &[("authentication", "{auth_type: AH, auth_pass: secret}")],
        "authentication.auth_type",
    );
    assert_mentions(&message, &["not supported"]);
    let message = rejection(
        &[("authentication", "{auth_type: MD5, auth_pass: x}")],
        "authentication.auth_type",
    );
    assert_mentions(&message, &["MD5", "PASS"]);
    rejection(
        &[("authentication", "{auth_pass: x}")],
        "authentication.auth_type",
    );
    let message = rejection(
        &[("authentication", "{auth_type: PASS, auth_pass: 123456789}")],
        "authentication.auth_pass",
    );
    assert_mentions(&message, &["9 bytes", "1 to 8"]);
    rejection(
        &[("authentication", "{auth_type: PASS, auth_pass: \"\"}")],
        "authentication.auth_pass",
    );
    rejection(
        &[("authentication", "{auth_type: PASS}")],
        "authentication.auth_pass",
    );
}

#[test]
fn authentication_is_refused_with_version_3() {
    let message = rejection(
        &[
            ("version", "3"),
            ("authentication", "{auth_type: PASS, auth_pass: secret}"),
        ],
        "authentication",
    );
    assert_mentions(&message, &["VRRPv3", "version: 2"]);
}

#[test]
fn garp_settings() {
    assert_eq!(
        instance(&[("garp_master_refresh", "0")]).garp_master_refresh,
        None
    );
    assert_eq!(
        instance(&[("garp_master_delay", "0")]).garp_master_delay,
        Duration::ZERO
    );
    rejection(&[("garp_master_repeat", "0")], "garp_master_repeat");
    rejection(&[("garp_master_repeat", "1.5")], "garp_master_repeat");
    rejection(&[("garp_master_delay", "-1")], "garp_master_delay");
    rejection(&[("garp_master_refresh", "100000")], "garp_master_refresh");
}

#[test]
fn v3_checksum_as_v2_needs_v3_over_ipv4() {
    let message = rejection(&[("v3_checksum_as_v2", "true")], "v3_checksum_as_v2");
    assert_mentions(&message, &["version 3 over IPv4"]);
    rejection(
        &[
            ("version", "3"),
            ("virtual_ipaddress", "[fd99::1]"),
            ("v3_checksum_as_v2", "true"),
        ],
        "v3_checksum_as_v2",
    );
    assert!(!instance(&[("v3_checksum_as_v2", "false")]).v3_checksum_as_v2);
}

#[test]
fn notify_timeout_must_be_positive() {
    rejection(&[("notify_timeout", "0")], "notify_timeout");
    rejection(&[("notify_timeout", "3601")], "notify_timeout");
}

#[test]
fn hook_forms() {
    let hook = |value: &str| instance(&[("notify", value)]).notify;
    assert_eq!(
        hook("[/bin/log, two words, 1]"),
        argv(&["/bin/log", "two words", "1"])
    );
    assert_eq!(
        hook(r#"'/bin/log "two words" x\ y'"#),
        argv(&["/bin/log", "two words", "x y"])
    );
    assert_eq!(
        hook(r#"{shell: "echo $1 | logger"}"#),
        argv(&["/bin/sh", "-c", "echo $1 | logger"])
    );
}

#[test]
fn hook_mistakes_name_the_hook() {
    let message = rejection(&[("notify_master", "[]")], "notify_master");
    assert_mentions(&message, &["empty"]);
    let message = rejection(&[("notify_backup", "\"/bin/x 'open\"")], "notify_backup");
    assert_mentions(&message, &["missing closing quote"]);
    let message = rejection(&[("notify_stop", "{shell: \"\"}")], "notify_stop");
    assert_mentions(&message, &["empty"]);

    let error = load(&file_with(&[("notify", "{sh: x}")]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("vrrp.yaml:6:"), "{error}");
    assert_mentions(&error, &["`sh`", "shell"]);
    let error = load(&file_with(&[("notify", "42")]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("vrrp.yaml:6:"), "{error}");
    assert_mentions(&error, &["a command"]);
}

#[test]
fn instance_names_and_interfaces_are_checked() {
    let message = rejection(&[("interface", "an-interface-name-too-long")], "interface");
    assert_mentions(&message, &["15 bytes"]);
    let message = rejection(&[("interface", "")], "interface");
    assert_mentions(&message, &["missing"]);

    let error = load(&file_with(&[("name", "")])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "vrrp.yaml: instances[0].name: missing; give the instance a name such as VI_1"
    );
    let error = load(&file_with(&[("name", "\"two words\"")])).unwrap_err();
    assert_eq!(error.field(), Some("instances[0].name"));
}

const TWO_NODES: &str = r#"
instances:
  - name: VI_1
    virtual_router_id: 51
    virtual_ipaddress: [10.99.0.100/24]
    priority: 100
    nodes:
      ha1: {interface: eth0, priority: 150, unicast_src_ip: 10.99.0.1, unicast_peer: [10.99.0.2]}
      ha2: {interface: eth1, unicast_src_ip: 10.99.0.2, unicast_peer: [10.99.0.1]}
"#;

#[test]
fn node_overrides_apply_to_the_chosen_node() {
    let ha1 = &VrrpConfig::parse(TWO_NODES, ORIGIN, Some("ha1"))
        .unwrap()
        .instances[0];
    assert_eq!(ha1.interface, "eth0");
    assert_eq!(ha1.priority, 150);
    assert_eq!(ha1.unicast_src_ip, Some(ip("10.99.0.1")));
    assert_eq!(ha1.unicast_peer, vec![ip("10.99.0.2")]);

    let ha2 = &VrrpConfig::parse(TWO_NODES, ORIGIN, Some("ha2"))
        .unwrap()
        .instances[0];
    assert_eq!(ha2.interface, "eth1");
    assert_eq!(ha2.priority, 100, "no override: the instance's own value");
    assert_eq!(ha2.unicast_src_ip, Some(ip("10.99.0.2")));
    assert_eq!(ha2.unicast_peer, vec![ip("10.99.0.1")]);
}

#[test]
fn node_without_an_entry_is_named_with_the_nodes_present() {
    let error = VrrpConfig::parse(TWO_NODES, ORIGIN, Some("ha3")).unwrap_err();
    assert_eq!(error.field(), Some("instances[0] (VI_1).nodes"));
    assert_mentions(&error.to_string(), &["`ha3`", "ha1, ha2", "--node"]);
}

#[test]
fn per_node_settings_without_a_node_ask_for_one() {
    let error = VrrpConfig::parse(TWO_NODES, ORIGIN, None).unwrap_err();
    assert_eq!(error.field(), Some("instances[0] (VI_1).nodes"));
    assert_mentions(&error.to_string(), &["--node", "ha1, ha2"]);
}

#[test]
fn mistakes_in_the_peer_entry_are_caught_on_either_node() {
    let text = TWO_NODES.replace(
        "ha2: {interface: eth1,",
        "ha2: {interface: eth1, priority: 300,",
    );
    for node in ["ha1", "ha2"] {
        let error = VrrpConfig::parse(&text, ORIGIN, Some(node)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "vrrp.yaml: instances[0] (VI_1).nodes.ha2.priority: 300 is out of range 1..=255"
        );
    }
    let text = TWO_NODES.replace("unicast_peer: [10.99.0.1]", "unicast_peer: [fd99::1]");
    let error = VrrpConfig::parse(&text, ORIGIN, Some("ha2")).unwrap_err();
    assert_eq!(
        error.field(),
        Some("instances[0] (VI_1).nodes.ha2.unicast_peer[0]")
    );
}

#[test]
fn node_entries_accept_only_overridable_settings() {
    let text = TWO_NODES.replace(
        "ha2: {interface: eth1,",
        "ha2: {interface: eth1, version: 3,",
    );
    let message = VrrpConfig::parse(&text, ORIGIN, Some("ha2"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("vrrp.yaml:9:"), "{message}");
    assert_mentions(&message, &["`version`", "priority", "unicast_peer"]);

    let empty = "instances:\n  - {name: VI_1, interface: eth0, virtual_router_id: 1, virtual_ipaddress: [10.0.0.1], nodes: {}}\n";
    let error = VrrpConfig::parse(empty, ORIGIN, Some("ha1")).unwrap_err();
    assert_eq!(error.field(), Some("instances[0] (VI_1).nodes"));
}

#[test]
fn a_node_name_without_per_node_settings_is_fine() {
    let text = file_with(&[]);
    let with_node = VrrpConfig::parse(&text, ORIGIN, Some("anyhost")).unwrap();
    assert_eq!(with_node, load(&text).unwrap());
}

#[test]
fn a_file_needs_at_least_one_instance() {
    for text in ["", "# nothing\n", "instances: []\n"] {
        let error = load(text).unwrap_err();
        assert_eq!(error.field(), Some("instances"), "{text:?}");
        assert_mentions(&error.to_string(), &["at least one"]);
    }
}

fn two_instances(first: &str, second: &str) -> String {
    format!("instances:\n  - {first}\n  - {second}\n")
}

#[test]
fn instance_names_are_unique() {
    let text = two_instances(
        "{name: VI_1, interface: eth0, virtual_router_id: 1, virtual_ipaddress: [10.0.0.1]}",
        "{name: VI_1, interface: eth0, virtual_router_id: 2, virtual_ipaddress: [10.0.0.2]}",
    );
    let error = load(&text).unwrap_err();
    assert_eq!(error.field(), Some("instances[1] (VI_1).name"));
    assert_mentions(&error.to_string(), &["instances[0]", "unique"]);
}

#[test]
fn a_virtual_router_id_is_unique_per_interface_and_family() {
    let text = two_instances(
        "{name: VI_1, interface: eth0, virtual_router_id: 7, virtual_ipaddress: [10.0.0.1]}",
        "{name: VI_2, interface: eth0, virtual_router_id: 7, virtual_ipaddress: [10.0.0.2]}",
    );
    let error = load(&text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "vrrp.yaml: instances[1] (VI_2).virtual_router_id: 7 on eth0 for IPv4 is already used by \
         instances[0] (VI_1); give each virtual router on an interface its own id"
    );
    let other_interface = two_instances(
        "{name: VI_1, interface: eth0, virtual_router_id: 7, virtual_ipaddress: [10.0.0.1]}",
        "{name: VI_2, interface: eth1, virtual_router_id: 7, virtual_ipaddress: [10.0.0.2]}",
    );
    assert_eq!(load(&other_interface).unwrap().instances.len(), 2);
    let other_family = two_instances(
        "{name: VI_1, interface: eth0, virtual_router_id: 7, virtual_ipaddress: [10.0.0.1]}",
        "{name: VI_6, interface: eth0, virtual_router_id: 7, version: 3, virtual_ipaddress: [fd99::1]}",
    );
    assert_eq!(load(&other_family).unwrap().instances.len(), 2);
}

#[test]
fn unknown_keys_are_named_with_the_valid_ones() {
    let message = load(&file_with(&[("prioirty", "150")]))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("vrrp.yaml:6:5: "), "{message}");
    assert_mentions(
        &message,
        &[
            "`prioirty`",
            "priority",
            "virtual_router_id",
            "notify_master",
        ],
    );

    let message = load("instance:\n  - name: VI_1\n").unwrap_err().to_string();
    assert!(message.starts_with("vrrp.yaml:1:1: "), "{message}");
    assert_mentions(&message, &["`instance`", "instances"]);
}

#[test]
fn yaml_syntax_errors_report_line_and_column() {
    let text = "instances:\n  - name: VI_1\n    virtual_ipaddress: [10.0.0.1\n";
    match load(text).unwrap_err() {
        ConfigError::Yaml {
            origin,
            line_column: Some((line, _)),
            ..
        } => {
            assert_eq!(origin, ORIGIN);
            assert!((3..=4).contains(&line), "line {line}");
        }
        other => panic!("not a YAML error: {other}"),
    }
    let message = load("instances:\n  - name: VI_1\n    priority: [1\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("vrrp.yaml:3:") || message.starts_with("vrrp.yaml:4:"),
        "{message}"
    );
}

#[test]
fn wrong_scalar_types_are_yaml_errors_with_a_position() {
    let message = load(&file_with(&[("priority", "high")]))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("vrrp.yaml:6:"), "{message}");
    assert_mentions(&message, &["a number"]);
}

#[test]
fn alias_storms_are_refused() {
    let aliases = vec!["*n"; 300].join(", ");
    let text = format!("instances:\n  - name: &n VI_1\n    notify: [{aliases}]\n");
    let message = load(&text).unwrap_err().to_string();
    assert!(message.starts_with("vrrp.yaml:3:"), "{message}");
    assert_mentions(&message, &["budget", "Aliases"]);
}

#[test]
fn anchors_and_merge_keys_share_settings() {
    let text = r#"
defaults: &defaults
  interface: eth0
  virtual_ipaddress: [10.0.0.1]
instances: []
"#;
    // Top-level keys other than `instances` are refused, so shared settings
    // live in the first instance and are merged into the next.
    assert!(load(text).is_err());
    let text = r#"
instances:
  - &first {name: VI_1, interface: eth0, virtual_router_id: 1, virtual_ipaddress: [10.0.0.1], notify: &log [/bin/log]}
  - {<<: *first, name: VI_2, virtual_router_id: 2, virtual_ipaddress: [10.0.0.2], notify_master: *log}
"#;
    let config = load(text).unwrap();
    assert_eq!(config.instances[1].interface, "eth0");
    assert_eq!(config.instances[1].notify, argv(&["/bin/log"]));
    assert_eq!(config.instances[1].notify_master, argv(&["/bin/log"]));
}

#[test]
fn configs_differing_in_one_setting_compare_unequal() {
    let before = instance(&[]);
    assert_eq!(before, instance(&[]));
    assert_ne!(before, instance(&[("priority", "101")]));
    assert_ne!(before, instance(&[("notify", "[/bin/x]")]));
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrp.yaml");
    std::fs::write(&path, file_with(&[])).unwrap();
    let config = VrrpConfig::load(&path, None).unwrap();
    assert_eq!(config.instances[0].name, "VI_1");

    std::fs::write(&path, file_with(&[("priority", "0")])).unwrap();
    let message = VrrpConfig::load(&path, None).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "{}: instances[0] (VI_1).priority: ",
            path.display()
        )),
        "{message}"
    );

    let missing = dir.path().join("absent.yaml");
    let error = VrrpConfig::load(&missing, None).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read the file: ", missing.display()))
    );
}
