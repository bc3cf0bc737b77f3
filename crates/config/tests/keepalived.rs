//! The keepalived.conf reader against the fixtures in
//! tests/fixtures/keepalived/: each good fixture's hapair YAML equals its
//! golden `.yaml` file and, header comments and all, reads back from a file
//! to the same `VrrpConfig` the reader built from the bare document; the values
//! mean what keepalived means by them; each `bad-*` fixture is refused with
//! the error in its golden `.error` file. Hostile input never panics.
//!
//! After an intended change of the output, regenerate the golden files with
//! `HAPAIR_BLESS=1 cargo test -p hapair-config --test keepalived` and review
//! the diff.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapair_config::keepalived::{self, ImportOptions, Imported, Severity};
use hapair_config::{ConfigError, VrrpConfig, VrrpInstance};
use proptest::prelude::*;

/// The fixtures as seen from this crate's directory (the test's working
/// directory), so that file names in the golden files are the same on every
/// checkout.
fn fixtures() -> PathBuf {
    PathBuf::from("../../tests/fixtures/keepalived")
}

fn options(node: &str) -> ImportOptions {
    ImportOptions {
        config_id: node.to_owned(),
        allow_unsupported: true,
    }
}

fn import(name: &str) -> Imported {
    import_as(name, "ha1")
}

fn import_as(name: &str, node: &str) -> Imported {
    let path = fixtures().join(name);
    keepalived::load(&path, &options(node))
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn refusal(path: &Path, options: &ImportOptions) -> String {
    match keepalived::load(path, options) {
        Ok(imported) => panic!("{} was accepted:\n{}", path.display(), imported.yaml),
        Err(error) => error.to_string(),
    }
}

/// The good fixtures: every `*.conf` not named `bad-*`, and each directory's
/// `keepalived.conf` (which includes the rest of it).
fn good_fixtures() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(fixtures()).expect("the fixtures directory exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("bad-") {
            continue;
        }
        if path.is_dir() {
            found.push(path.join("keepalived.conf"));
        } else if name.ends_with(".conf") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("bad-") {
            continue;
        }
        if path.is_dir() {
            found.push(path.join("a.conf"));
        } else if name.ends_with(".conf") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Where a fixture's golden output lives: next to the fixture, or next to
/// its directory for a multi-file fixture.
fn golden(fixture: &Path, extension: &str) -> PathBuf {
    let parent = fixture.parent().unwrap();
    if parent == fixtures() {
        fixture.with_extension(extension)
    } else {
        parent.with_extension(extension)
    }
}

/// Compares `actual` with the golden file, or rewrites it under HAPAIR_BLESS.
fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("HAPAIR_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (create it with HAPAIR_BLESS=1)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (HAPAIR_BLESS=1 regenerates it)",
        path.display()
    );
}

#[test]
fn good_fixtures_match_their_golden_yaml_and_read_back_the_same() {
    let fixtures = good_fixtures();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    for fixture in fixtures {
        let imported = keepalived::load(&fixture, &options("ha1"))
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.display()));
        check_golden(&golden(&fixture, "yaml"), &imported.yaml);
        let copy = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(copy.path(), &imported.yaml).unwrap();
        let reread = VrrpConfig::load(copy.path(), None).unwrap_or_else(|error| {
            panic!("{}: the YAML does not load: {error}", fixture.display())
        });
        assert_eq!(reread, imported.config, "{}", fixture.display());
    }
}

#[test]
fn bad_fixtures_are_refused_with_file_and_line() {
    let fixtures = bad_fixtures();
    assert!(fixtures.len() >= 6, "{fixtures:?}");
    for fixture in fixtures {
        let error = refusal(&fixture, &options("ha1"));
        let file = fixture.to_string_lossy().into_owned();
        assert!(
            error.starts_with(&format!("{file}:")) || error.contains(".conf:"),
            "{error}"
        );
        check_golden(&golden(&fixture, "error"), &format!("{error}\n"));
    }
}

fn only(imported: &Imported) -> &VrrpInstance {
    assert_eq!(imported.config.instances.len(), 1, "{}", imported.yaml);
    &imported.config.instances[0]
}

#[test]
fn keepalived_defaults_apply() {
    let imported = import("01-minimal.conf");
    let instance = only(&imported);
    assert_eq!(instance.name, "VI_1");
    assert_eq!(instance.interface, "eth0");
    assert_eq!(instance.virtual_router_id, 51);
    assert_eq!(instance.priority, 100);
    assert_eq!(instance.version, 2);
    assert_eq!(instance.advert_int_centis, 100);
    assert!(instance.preempt);
    assert_eq!(instance.preempt_delay, Duration::ZERO);
    assert_eq!(instance.garp_master_delay, Duration::from_secs(5));
    assert_eq!(instance.garp_master_repeat, 5);
    assert_eq!(instance.garp_master_refresh, None);
    assert_eq!(instance.auth_pass, None);
    assert!(instance.unicast_peer.is_empty());
    assert!(!instance.unicast_skip_ttl_check);
    assert!(
        imported.diagnostics.is_empty(),
        "{:?}",
        imported.diagnostics
    );
}

#[test]
fn instance_keywords_mean_what_they_mean_in_keepalived() {
    let imported = import("02-instance-keywords.conf");
    let storage = &imported.config.instances[0];
    assert_eq!(storage.name, "VI_STORAGE");
    assert_eq!(storage.priority, 150);
    assert_eq!(storage.advert_int_centis, 200);
    assert!(!storage.preempt);
    assert_eq!(storage.auth_pass.as_deref(), Some("s3cret"));
    assert_eq!(storage.garp_master_delay, Duration::from_secs(3));
    assert_eq!(storage.garp_master_repeat, 2);
    assert_eq!(storage.garp_master_refresh, Some(Duration::from_secs(60)));
    let argv = |hook: &Option<hapair_config::HookCommand>| hook.as_ref().unwrap().argv.clone();
    // A quoted command line is split into words; unquoted words are the argv.
    assert_eq!(argv(&storage.notify_master), ["/bin/true", "promote", "r0"]);
    assert_eq!(argv(&storage.notify_backup), ["/bin/true", "demote", "r0"]);
    assert_eq!(argv(&storage.notify_fault), ["/bin/true", "fault"]);
    assert_eq!(argv(&storage.notify_stop), ["/bin/true"]);
    assert_eq!(argv(&storage.notify), ["/bin/true"]);
    let delay = &imported.config.instances[1];
    assert!(delay.preempt);
    assert_eq!(delay.preempt_delay, Duration::from_secs(30));
    assert_eq!(delay.interface, "eth1");
}

#[test]
fn syntax_forms_and_config_id_lines() {
    let ha1 = import_as("03-syntax-forms.conf", "ha1");
    let instance = only(&ha1);
    assert_eq!(instance.name, "VI_SYNTAX");
    assert_eq!(instance.interface, "eth0");
    assert_eq!(instance.virtual_router_id, 54);
    // `@ha1 priority 160` comes after `priority 77#...`: the last one counts.
    assert_eq!(instance.priority, 160);
    assert_eq!(instance.advert_int_centis, 300);
    assert_eq!(
        instance.unicast_peer,
        ["10.99.0.2".parse::<IpAddr>().unwrap()]
    );
    let ha2 = import_as("03-syntax-forms.conf", "ha2");
    assert_eq!(only(&ha2).priority, 60);
    // `@^ha1 advert_int 9` is read by every node but ha1; the quoted "3"
    // after it wins.
    assert_eq!(only(&ha2).advert_int_centis, 300);
    let other = import_as("03-syntax-forms.conf", "other");
    assert_eq!(only(&other).priority, 77);
}

#[test]
fn includes_resolve_against_the_including_file() {
    let imported = import("04-include/keepalived.conf");
    let names: Vec<&str> = imported
        .config
        .instances
        .iter()
        .map(|instance| instance.name.as_str())
        .collect();
    assert_eq!(names, ["VI_INC1", "VI_INC2"]);
}

#[test]
fn unicast_password_and_ttl_as_keepalived() {
    let imported = import("05-unicast.conf");
    let instance = only(&imported);
    assert_eq!(instance.unicast_src_ip, Some("10.99.0.1".parse().unwrap()));
    assert_eq!(instance.unicast_peer.len(), 2);
    // keepalived uses the first 8 bytes of a longer password.
    assert_eq!(instance.auth_pass.as_deref(), Some("longpass"));
    // keepalived does not check the TTL of unicast adverts.
    assert!(instance.unicast_skip_ttl_check);
    let warned: Vec<&str> = imported
        .diagnostics
        .iter()
        .map(|d| d.keyword.as_str())
        .collect();
    assert!(warned.contains(&"auth_pass"), "{warned:?}");
    assert!(warned.contains(&"10.99.0.2"), "{warned:?}");
    let own = imported
        .diagnostics
        .iter()
        .find(|d| d.keyword == "10.99.0.1")
        .expect("the own address is reported");
    assert!(own.message.contains("left out"), "{}", own.message);
    assert_eq!(
        instance.unicast_peer,
        [
            "10.99.0.2".parse::<IpAddr>().unwrap(),
            "10.99.0.3".parse().unwrap()
        ]
    );
}

#[test]
fn address_forms() {
    let imported = import("06-address-forms.conf");
    let addresses = &only(&imported).virtual_ipaddress;
    let summary: Vec<(String, u8, Option<&str>, Option<&str>)> = addresses
        .iter()
        .map(|a| {
            (
                a.address.to_string(),
                a.prefix_len,
                a.dev.as_deref(),
                a.label.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("10.99.0.56".to_string(), 32, None, None),
            ("10.99.0.57".to_string(), 24, Some("eth1"), None),
            ("10.99.0.58".to_string(), 24, Some("eth0"), Some("eth0:vip")),
            ("10.99.0.59".to_string(), 24, None, Some("eth0:web")),
            ("10.99.1.60".to_string(), 24, None, None),
            ("10.99.1.61".to_string(), 24, Some("eth1"), None),
        ]
    );
    let brd = imported
        .diagnostics
        .iter()
        .find(|d| d.keyword == "10.99.0.58/24")
        .expect("brd is reported");
    assert!(brd.message.contains("brd 10.99.0.255"), "{}", brd.message);
    assert!(
        !brd.message.contains("scope"),
        "scope global is the default: {}",
        brd.message
    );
}

#[test]
fn global_defaults_and_versions() {
    let imported = import("07-globals-v3-ipv6.conf");
    let v3 = &imported.config.instances[0];
    assert_eq!(v3.version, 3);
    assert_eq!(v3.advert_int_centis, 10);
    assert_eq!(v3.garp_master_delay, Duration::from_secs(1));
    assert_eq!(v3.garp_master_repeat, 3);
    assert_eq!(v3.garp_master_refresh, Some(Duration::from_secs(30)));
    let v6 = &imported.config.instances[1];
    assert_eq!(v6.version, 3);
    assert_eq!(v6.garp_master_delay, Duration::from_secs(2));
    assert_eq!(
        v6.virtual_ipaddress[0].address,
        "fd99::57".parse::<IpAddr>().unwrap()
    );
    let ignored: Vec<&str> = imported
        .diagnostics
        .iter()
        .map(|d| d.keyword.as_str())
        .collect();
    for keyword in ["notification_email", "router_id", "smtp_alert"] {
        assert!(
            ignored.contains(&keyword),
            "{keyword} not reported: {ignored:?}"
        );
    }
}

#[test]
fn load_balancer_side_is_mentioned_once() {
    let imported = import("08-lvs-and-static.conf");
    assert_eq!(only(&imported).name, "VI_LB");
    let lvs: Vec<_> = imported
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("LVS"))
        .collect();
    assert_eq!(lvs.len(), 1, "{:?}", imported.diagnostics);
    assert!(
        lvs[0].message.contains("2 virtual server block(s)"),
        "{}",
        lvs[0].message
    );
    assert!(
        imported
            .diagnostics
            .iter()
            .any(|d| d.keyword == "static_ipaddress" && d.line == 3)
    );
}

#[test]
fn unsafe_keywords_refuse_the_file_unless_allowed() {
    let path = fixtures().join("09-unsupported-vmac.conf");
    let strict = ImportOptions {
        config_id: "ha1".into(),
        allow_unsupported: false,
    };
    let error = refusal(&path, &strict);
    assert!(
        error.starts_with(&format!(
            "{}:6: `use_vmac` is not supported",
            path.display()
        )),
        "{error}"
    );
    assert!(error.contains("--allow-unsupported"), "{error}");
    let imported = import("09-unsupported-vmac.conf");
    let severities: Vec<(&str, Severity)> = imported
        .diagnostics
        .iter()
        .map(|d| (d.keyword.as_str(), d.severity))
        .collect();
    assert_eq!(
        severities,
        [
            ("use_vmac", Severity::Unsafe),
            ("lower_prio_no_advert", Severity::Warning)
        ]
    );
}

#[test]
fn state_master_clears_nopreempt_unknown_states_are_backup_first_notify_counts() {
    let imported = import("10-master-clears-nopreempt.conf");
    assert!(imported.config.instances[0].preempt);
    assert!(
        imported
            .diagnostics
            .iter()
            .any(|d| d.keyword == "state" && d.message.contains("SLAVE"))
    );
    // A second notify_master is ignored, as keepalived ignores it.
    let slave = &imported.config.instances[1];
    assert_eq!(
        slave.notify_master.as_ref().unwrap().argv,
        ["/bin/true", "first"]
    );
    assert!(
        imported
            .diagnostics
            .iter()
            .any(|d| d.keyword == "notify_master" && d.message.contains("second time"))
    );
}

/// Writes `text` as a file in a fresh directory and imports it.
fn import_text(text: &[u8]) -> Result<Imported, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, text).unwrap();
    keepalived::load(&path, &options("ha1"))
}

#[test]
fn huge_and_binary_files_are_refused() {
    let mut huge = b"vrrp_instance VI_1 {\n".to_vec();
    huge.extend(std::iter::repeat_n(b"  priority 100\n".as_slice(), 100_000).flatten());
    let error = import_text(&huge).unwrap_err().to_string();
    assert!(error.contains("larger than"), "{error}");
    let error = import_text(b"global_defs {\n  router_id \xff\xfe\n}\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(":2: the file is not UTF-8 text; save it as UTF-8"),
        "{error}"
    );
}

#[test]
fn an_include_of_itself_is_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self.conf");
    std::fs::write(&path, "# loops\ninclude *.conf\n").unwrap();
    let error = keepalived::load(&path, &options("ha1"))
        .unwrap_err()
        .to_string();
    assert!(error.contains(":2: include loop:"), "{error}");
}

#[test]
fn errors_of_the_yaml_rules_point_at_the_keepalived_line() {
    let error = import_text(
        b"vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.1/24\n    fd00::1/64\n  }\n}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("keepalived.conf:6: instances[0] (VI_1).virtual_ipaddress[1]"),
        "{error}"
    );
    let error = import_text(
        b"vrrp_instance VI_1 {\n  interface eth0\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("keepalived.conf:1: instances[0] (VI_1).virtual_router_id: missing"),
        "{error}"
    );
}

/// Lines made of keepalived words, braces, quotes and comment characters,
/// to reach the parser and mapper rather than stop at the first byte.
fn keepalived_like() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "vrrp_instance",
        "VI_1",
        "global_defs",
        "{",
        "}",
        "interface",
        "eth0",
        "virtual_router_id",
        "51",
        "priority",
        "0.5",
        "-1",
        "virtual_ipaddress",
        "10.0.0.1/24",
        "fd00::1",
        "dev",
        "label",
        "eth0:x",
        "notify",
        "\"",
        "'",
        "#",
        "!",
        "@ha1",
        "@^ha1",
        "$X=1",
        "$X",
        "${X}",
        "include",
        "*",
        "authentication",
        "auth_type",
        "PASS",
        "auth_pass",
        "unicast_peer",
        "state",
        "MASTER",
        "nopreempt",
        "use_vmac",
        "virtual_server",
        "\\",
        "vrrp_version",
        "3",
        "advert_int",
        "virtual_ipaddress_excluded",
        "brd",
    ]);
    prop::collection::vec(prop::collection::vec(word, 0..8), 0..40).prop_map(|lines| {
        lines
            .into_iter()
            .map(|words| words.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = import_text(&bytes);
    }

    #[test]
    fn keepalived_like_text_never_panics(text in keepalived_like()) {
        if let Err(error) = import_text(text.as_bytes()) {
            // Every refusal names the file.
            prop_assert!(error.to_string().contains("keepalived.conf"), "{}", error);
        }
    }
}

#[test]
fn tracking_sync_groups_and_hook_settings() {
    let imported = import("11-tracking.conf");
    let config = &imported.config;
    assert!(config.hooks.script_security);
    let user = config.hooks.script_user.as_ref().expect("script_user");
    assert_eq!(
        (user.user.as_str(), user.group.as_deref()),
        ("root", Some("root"))
    );
    assert_eq!(
        config.hooks.notify_fifo.as_deref(),
        Some(Path::new("/run/keepalived.fifo"))
    );
    assert_eq!(
        config.hooks.notify_fifo_script.as_ref().unwrap().argv,
        ["/bin/cat"]
    );

    let nfs = config
        .vrrp_scripts
        .iter()
        .find(|s| s.name == "chk_nfs")
        .unwrap();
    assert_eq!(nfs.script.argv, ["/bin/true", "nfs"]);
    assert_eq!(nfs.interval, Duration::from_secs(2));
    assert_eq!(nfs.timeout, Duration::from_secs(5));
    assert_eq!(
        (nfs.rise, nfs.fall, nfs.weight, nfs.reverse),
        (2, 3, -20, true)
    );
    let disk = config
        .vrrp_scripts
        .iter()
        .find(|s| s.name == "chk_disk")
        .unwrap();
    // keepalived's defaults: every second, timeout = interval, weight 0.
    assert_eq!(
        (disk.interval, disk.timeout),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
    assert_eq!(
        (disk.rise, disk.fall, disk.weight, disk.init_fail),
        (1, 1, 0, true)
    );
    assert_eq!(config.track_files[0].weight, 10);

    assert_eq!(config.sync_groups.len(), 1);
    assert_eq!(
        config.sync_groups[0].group,
        ["VI_CLIENTS", "VI_REPLICATION"]
    );
    assert_eq!(
        config.sync_groups[0].notify_fault.as_ref().unwrap().argv,
        ["/bin/true", "group-fault"]
    );

    let weights = |instance: &VrrpInstance| -> Vec<(String, i32)> {
        instance
            .track_script
            .iter()
            .chain(&instance.track_interface)
            .chain(&instance.track_file)
            .map(|t| (t.name.clone(), t.weight))
            .collect()
    };
    // Unweighted entries take the script's / file's weight; interfaces 0.
    assert_eq!(
        weights(&config.instances[0]),
        [("chk_disk".to_string(), 0), ("eth1".to_string(), 0)]
    );
    assert_eq!(weights(&config.instances[1]), [("health".to_string(), 0)]);
    assert_eq!(
        weights(&config.instances[2]),
        [("chk_nfs".to_string(), -30), ("health".to_string(), 10)]
    );
}

#[test]
fn scripts_without_script_security_run_as_in_keepalived_with_a_warning() {
    let imported = import_text(
        b"vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  notify_master /bin/true\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
    )
    .unwrap();
    assert!(!imported.config.hooks.script_security);
    let warning = imported
        .diagnostics
        .iter()
        .find(|d| d.keyword == "enable_script_security")
        .expect("a warning");
    assert_eq!(warning.line, 4);
}

#[test]
fn every_refused_keyword_is_documented() {
    let doc = std::fs::read_to_string("../../docs/keepalived-config.md").unwrap();
    for (keyword, _) in keepalived::UNSAFE_KEYWORDS {
        assert!(
            doc.contains(&format!("`{keyword}`")),
            "{keyword} is not in the doc"
        );
    }
}

#[test]
fn a_file_without_instances_is_refused() {
    let error = import_text(b"global_defs {\n  router_id x\n}\n")
        .unwrap_err()
        .to_string();
    assert!(error.ends_with("keepalived.conf: vrrp_instance: the configuration defines no vrrp_instance, so vrrpd has nothing to run (keepalived would run only its other parts); add one"), "{error}");
}
