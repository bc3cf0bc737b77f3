//! The drbd.conf reader: each construct of tests/fixtures/drbd mapped onto
//! hapair's resource, the choice between YAML and drbd.conf, refusals and
//! warnings with their lines, and bad input (truncated, unbalanced, huge,
//! looping, random bytes) that must give an error naming the place, never a
//! panic or a hang.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapair_config::drbd::{self, Imported};
use hapair_config::resource::{AfterSb0Pri, AfterSb1Pri, Fencing, OnIoError, Protocol};
use hapair_config::{
    ConfigError, Format, HookCommand, LoadOptions, MetaDisk, ResourceConfig, SHELL, format_of,
    load_config,
};
use proptest::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/drbd")
}

fn import(relative: &str, allow_unsupported: bool) -> Result<Imported, String> {
    drbd::import(&fixtures().join(relative), allow_unsupported).map_err(|error| error.to_string())
}

fn only(imported: &Imported) -> &ResourceConfig {
    assert_eq!(imported.resources.len(), 1, "expected one resource");
    &imported.resources[0].config
}

/// Asserts that for each of `expected`, some warning contains it (and every
/// word of `also`).
fn assert_warned(imported: &Imported, expected: &[&str], also: &[&str]) {
    let warnings: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
    for expected in expected {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(expected) && also.iter().all(|word| w.contains(word))),
            "no warning {expected:?} (with {also:?}) in {warnings:#?}"
        );
    }
}

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn shell(line: &str) -> Option<HookCommand> {
    Some(HookCommand {
        argv: vec![SHELL.into(), "-c".into(), line.into()],
    })
}

#[test]
fn drbd_84_form_resource_level_disks_syncer_and_units() {
    let imported = import("valid/84-resource-level.res", false).unwrap();
    let r84 = only(&imported);
    assert_eq!(r84.name, "r84");
    assert_eq!(r84.protocol, Protocol::B);
    let alpha = &r84.nodes["alpha"];
    assert_eq!(alpha.address, address("192.0.2.10:7790"));
    assert_eq!(alpha.disk, Path::new("/dev/vg0/r84"));
    assert_eq!(alpha.meta_disk, MetaDisk::Internal);
    // beta's own disk wins over the resource's.
    assert_eq!(r84.nodes["beta"].disk, Path::new("/dev/vg1/r84"));
    let net = &r84.net;
    assert_eq!(
        net.auth.as_ref().unwrap().shared_secret,
        "quoted # not a comment"
    );
    assert_eq!(net.ping_int, Duration::from_secs(5));
    assert_eq!(
        net.ping_timeout,
        Duration::from_secs(1),
        "tenths of a second"
    );
    assert_eq!(net.timeout, Duration::from_secs(4));
    assert_eq!(net.connect_int, Duration::from_secs(8));
    assert_eq!(net.verify_alg.unwrap().to_string(), "sha256", "from syncer");
    assert_eq!(net.after_sb_0pri, AfterSb0Pri::DiscardZeroChanges);
    assert_eq!(net.after_sb_1pri, AfterSb1Pri::DiscardSecondary);
    let disk = &r84.disk;
    assert_eq!(disk.al_extents, 3389, "al-extents from syncer");
    assert_eq!(disk.on_io_error, OnIoError::CallLocalIoError);
    assert_eq!(disk.resync_rate, 33 << 20, "33M is 33 MiB/s");
    assert_eq!(disk.c_max_rate, Some(200 << 20));
    assert!(!disk.disk_flushes);
    assert!(disk.md_flushes, "a flag without a value means yes");
    assert_eq!(
        disk.disk_timeout,
        Some(Duration::from_secs(30)),
        "tenths of a second"
    );
    assert_eq!(
        r84.handlers.local_io_error,
        shell("/usr/lib/drbd/notify-io-error.sh; halt -f")
    );
    assert_warned(
        &imported,
        &[
            "84-resource-level.res:23: net max-buffers: ignored",
            "84-resource-level.res:29: disk c-min-rate: ignored",
            "84-resource-level.res:36: handlers pri-on-incon-degr: ignored",
            "84-resource-level.res:39: startup wfc-timeout: ignored",
            "84-resource-level.res:5: resource r84: device /dev/drbd1: ignored",
        ],
        &[],
    );
}

#[test]
fn drbd_9_volumes_connection_hosts_and_options() {
    let imported = import("valid/9-volume-connection.res", false).unwrap();
    let r9 = only(&imported);
    assert_eq!(r9.nodes["gamma"].address, address("198.51.100.1:7800"));
    assert_eq!(r9.nodes["gamma"].disk, Path::new("/dev/data/r9"));
    assert_eq!(
        r9.nodes["gamma"].meta_disk,
        MetaDisk::External("/dev/meta/r9".into())
    );
    assert_eq!(r9.nodes["delta"].meta_disk, MetaDisk::Internal);
    assert_eq!(r9.net.fencing, Fencing::ResourceOnly);
    assert_eq!(
        r9.net.ping_int,
        Duration::from_secs(12),
        "from the connection's net"
    );
    assert_eq!(r9.net.after_sb_0pri, AfterSb0Pri::DiscardLeastChanges);
    assert_eq!(
        r9.handlers.fence_peer,
        shell("/usr/lib/drbd/crm-fence-peer.9.sh")
    );
    assert_warned(
        &imported,
        &[
            ":5: options auto-promote: ignored",
            ":18: resource r9: node-id: ignored",
            ":6: options quorum off: ignored: off is what hapair does",
        ],
        &[],
    );
}

#[test]
fn common_is_inherited_and_overridden_per_resource() {
    let imported = import("valid/common-inherit.conf", false).unwrap();
    let names: Vec<&str> = imported
        .resources
        .iter()
        .map(|r| r.config.name.as_str())
        .collect();
    assert_eq!(names, ["web", "db"], "in file order");
    let web = &imported.resources[0].config;
    let db = &imported.resources[1].config;
    assert_eq!(web.protocol, Protocol::A, "common's 8.4-style protocol");
    assert_eq!(db.protocol, Protocol::C);
    assert_eq!(web.net.ping_int, Duration::from_secs(20));
    assert_eq!(db.net.ping_int, Duration::from_secs(9));
    assert_eq!(web.net.data_integrity_alg.unwrap().to_string(), "crc32c");
    assert_eq!(db.net.data_integrity_alg, web.net.data_integrity_alg);
    assert_eq!(web.disk.resync_rate, 512 << 10, "512k");
    assert_eq!(web.disk.c_max_rate, Some(1 << 30), "1G");
    assert_eq!(db.disk.resync_rate, 2 << 20);
    assert_eq!(db.disk.c_max_rate, None, "0 means no ceiling");
    assert_eq!(db.disk.al_extents, 919);
    assert_eq!(web.nodes["ha1"].address, address("[2001:db8::1]:7810"));
    assert_eq!(web.handlers.split_brain, db.handlers.split_brain);
    assert!(web.handlers.split_brain.is_some());
}

#[test]
fn mesh_and_path_connections() {
    let mesh = import("valid/mesh.res", false).unwrap();
    let mesh = only(&mesh);
    assert_eq!(mesh.protocol, Protocol::A);
    assert_eq!(mesh.net.connect_int, Duration::from_secs(15));
    assert_eq!(mesh.nodes["m2"].address, address("10.30.0.2:7820"));
    let path = import("valid/path.res", false).unwrap();
    let path = only(&path);
    assert_eq!(path.nodes["p1"].address, address("10.40.0.1:7821"));
    assert_eq!(path.nodes["p2"].address, address("10.40.0.2:7821"));
    assert_eq!(path.net.timeout, Duration::from_secs(5));
}

#[test]
fn includes_follow_globs_relative_to_the_including_file() {
    let from_conf = import("includes/drbd.conf", false).unwrap();
    let from_dir = import("includes/drbd.d", false).unwrap();
    let configs = |imported: &Imported| -> Vec<ResourceConfig> {
        imported
            .resources
            .iter()
            .map(|r| r.config.clone())
            .collect()
    };
    assert_eq!(configs(&from_conf), configs(&from_dir));
    let inc0 = &from_conf.resources[0].config;
    let inc1 = &from_conf.resources[1].config;
    assert_eq!((inc0.name.as_str(), inc1.name.as_str()), ("inc0", "inc1"));
    assert!(inc0.origin.ends_with("drbd.d/r0.res"), "{:?}", inc0.origin);
    assert_eq!(inc0.net.auth.as_ref().unwrap().shared_secret, "inc-secret");
    assert_eq!(inc0.disk.resync_rate, 10 << 20, "from the included common");
    assert_eq!(inc1.disk.resync_rate, 20 << 20);
}

#[test]
fn unsafe_options_stop_the_start_unless_allowed() {
    let error = import("valid/unsafe-dual-primary.res", false).unwrap_err();
    assert!(
        error.contains(
            "unsafe-dual-primary.res:5: resource dual: net allow-two-primaries yes: not supported"
        ) && error.contains("--allow-unsupported"),
        "{error}"
    );
    let imported = import("valid/unsafe-dual-primary.res", true).unwrap();
    assert_eq!(only(&imported).name, "dual");
    assert_warned(
        &imported,
        &[
            ":5: net allow-two-primaries yes: not supported",
            ":11: options quorum majority: not supported",
            ":12: options on-no-quorum io-error: not supported",
        ],
        &[],
    );
}

#[test]
fn resources_beyond_hapair_stop_the_start_or_are_skipped() {
    let error = import("valid/beyond-hapair.res", false).unwrap_err();
    assert!(
        error.starts_with(&format!(
            "{}:3: resource three: 3 `on` sections",
            fixtures().join("valid/beyond-hapair.res").display()
        )),
        "{error}"
    );
    let imported = import("valid/beyond-hapair.res", true).unwrap();
    assert_eq!(only(&imported).name, "two");
    assert_warned(
        &imported,
        &[
            ":3: resource three: 3 `on` sections (t1, t2, t3)",
            ":17: resource floater: `floating` nodes",
            ":21: resource volumes: 2 volumes (0, 1)",
        ],
        &["skipped"],
    );
}

#[test]
fn imported_yaml_reads_back_to_the_same_resource() {
    for fixture in [
        "valid/84-resource-level.res",
        "valid/9-volume-connection.res",
        "valid/common-inherit.conf",
        "valid/mesh.res",
        "valid/path.res",
        "includes/drbd.conf",
    ] {
        for resource in import(fixture, false).unwrap().resources {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(format!("{}.yaml", resource.config.name));
            fs::write(&file, &resource.yaml).unwrap();
            let mut read_back = load_config(&file, LoadOptions::default())
                .unwrap_or_else(|error| panic!("{fixture}: {error}\n{}", resource.yaml))
                .resources;
            assert_eq!(read_back.len(), 1);
            let mut read_back = read_back.remove(0);
            read_back.origin = resource.config.origin.clone();
            assert_eq!(read_back, resource.config, "{fixture}:\n{}", resource.yaml);
        }
    }
}

#[test]
fn the_loader_tells_yaml_from_drbd_conf() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "resource: r0\nnodes:\n  \
                a: {address: \"10.0.0.1:7789\", disk: /d/r0, meta-disk: internal}\n  \
                b: {address: \"10.0.0.2:7789\", disk: /d/r0, meta-disk: internal}\n";
    let drbd = "# comment first\nresource r0 {\n  \
                on a { address 10.0.0.1:7789; disk /d/r0; meta-disk internal; }\n  \
                on b { address 10.0.0.2:7789; disk /d/r0; meta-disk internal; }\n}\n";
    let cases = [
        ("r0.yaml", yaml, Format::Yaml),
        ("r0.yml", yaml, Format::Yaml),
        ("r0.res", drbd, Format::Drbd),
        ("drbd.conf", drbd, Format::Drbd),
        ("hapair.conf", yaml, Format::Yaml),
    ];
    let mut loaded = Vec::new();
    for (name, text, format) in cases {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        assert_eq!(format_of(&path).unwrap(), format, "{name}");
        let mut resource = load_config(&path, LoadOptions::default())
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .resources
            .remove(0);
        resource.origin = PathBuf::new();
        loaded.push(resource);
    }
    assert!(
        loaded.windows(2).all(|pair| pair[0] == pair[1]),
        "{loaded:#?}"
    );
    assert_eq!(
        format_of(&fixtures().join("includes/drbd.d")).unwrap(),
        Format::Drbd
    );
    assert_eq!(
        format_of(dir.path()).unwrap(),
        Format::Drbd,
        "it holds r0.res"
    );
    let yaml_dir = tempfile::tempdir().unwrap();
    fs::write(yaml_dir.path().join("r0.yaml"), yaml).unwrap();
    assert_eq!(format_of(yaml_dir.path()).unwrap(), Format::Yaml);
}

#[test]
fn resources_of_a_drbd_conf_are_checked_against_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drbd.conf");
    fs::write(
        &path,
        "resource r0 {\n  on a { address 10.0.0.1:7789; disk /d/r0; meta-disk internal; }\n  \
         on b { address 10.0.0.2:7789; disk /d/r0; meta-disk internal; }\n}\n\
         resource r1 {\n  on a { address 10.0.0.1:7789; disk /d/r1; meta-disk internal; }\n  \
         on b { address 10.0.0.2:7790; disk /d/r1; meta-disk internal; }\n}\n",
    )
    .unwrap();
    let error = load_config(&path, LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("10.0.0.1:7789 is also nodes.a.address of resource r0"),
        "{error}"
    );
}

/// The first line of the error, for the invalid fixtures.
fn error_of(relative: &str) -> String {
    import(relative, false).unwrap_err()
}

#[test]
fn invalid_fixtures_are_refused_at_their_line() {
    let cases = [
        (
            "invalid/bad-address.res",
            6,
            "`10.0.0.x:7789` is not an address",
        ),
        (
            "invalid/bad-protocol.res",
            3,
            "protocol: `D` is not one of A, B, C",
        ),
        (
            "invalid/discard-node.res",
            3,
            "discard-node-NAME is hapair's YAML spelling",
        ),
        (
            "invalid/fencing-in-disk.res",
            3,
            "`fencing` belongs in the `net` section",
        ),
        ("invalid/missing-semicolon.res", 2, "is not ended by `;`"),
        ("invalid/stray-close.res", 5, "`}` closes no section"),
        ("invalid/stray-line.res", 1, "found `cat`"),
        ("invalid/syncer-rate.res", 3, "`rate` in `syncer`"),
        (
            "invalid/unknown-block.res",
            4,
            "`replication` is not known in `resource`",
        ),
        (
            "invalid/unknown-option.res",
            4,
            "`on-disconnect` is not an option of the `net`",
        ),
        (
            "invalid/unterminated-string.res",
            3,
            "the string is not closed",
        ),
        (
            "invalid/missing-include.conf",
            2,
            "cannot open the include file",
        ),
    ];
    for (fixture, line, message) in cases {
        let error = error_of(fixture);
        let prefix = format!("{}:{line}: ", fixtures().join(fixture).display());
        assert!(
            error.starts_with(&prefix) && error.contains(message),
            "{fixture}: expected {prefix}...{message}, got {error}"
        );
    }
}

#[test]
fn include_loops_are_refused() {
    let error = error_of("invalid/loop/a.res");
    assert!(
        error.contains("loop/b.conf:2: include loop: ") && error.contains("loop/a.res"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let itself = dir.path().join("self.res");
    fs::write(&itself, "include \"self.res\";\n").unwrap();
    let error = drbd::import(&itself, false).unwrap_err().to_string();
    assert!(error.contains("self.res:1: include loop"), "{error}");
}

#[test]
fn include_budget_and_missing_glob_matches() {
    let dir = tempfile::tempdir().unwrap();
    // Each file includes the next: a chain longer than the file budget.
    for index in 0..300 {
        fs::write(
            dir.path().join(format!("f{index}.conf")),
            format!("include \"f{}.conf\";\n", index + 1),
        )
        .unwrap();
    }
    fs::write(dir.path().join("f300.conf"), "").unwrap();
    let error = drbd::import(&dir.path().join("f0.conf"), false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("more than 256 files are included"),
        "{error}"
    );
    // A wildcard that matches nothing is no error, as in drbdadm.
    let empty = dir.path().join("empty.conf");
    fs::write(&empty, "include \"nothing/*.res\";\n").unwrap();
    assert!(drbd::import(&empty, false).unwrap().resources.is_empty());
}

#[test]
fn huge_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.res");
    let mut text = String::from("global { usage-count no; }\n");
    while text.len() <= 2 << 20 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    fs::write(&huge, &text).unwrap();
    let error = drbd::import(&huge, false).unwrap_err().to_string();
    assert!(
        error.contains("huge.res:1: the file is larger than the 1048576 bytes"),
        "{error}"
    );
}

#[test]
fn every_truncation_of_a_fixture_is_parsed_or_refused_with_a_line() {
    let text = fs::read_to_string(fixtures().join("valid/84-resource-level.res")).unwrap();
    let origin = Path::new("/nonexistent/cut.res");
    let mut refused = 0;
    for (cut, _) in text.char_indices() {
        match drbd::parse_config(&text[..cut], origin) {
            Ok(_) => {}
            Err(error) => {
                refused += 1;
                let message = error.to_string();
                assert!(
                    matches!(error, ConfigError::AtLine { .. })
                        && message.starts_with("/nonexistent/cut.res:"),
                    "cut at {cut}: {message}"
                );
            }
        }
    }
    assert!(refused > text.len() / 2, "most cuts leave a section open");
}

#[test]
fn unbalanced_open_brace_is_refused_although_drbdadm_accepts_it() {
    let error = drbd::parse_config(
        "global { usage-count no; }\ncommon {\n  net { protocol C; }\n",
        Path::new("open.res"),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "open.res:2: `common` opens a section that is never closed; add the `}` that ends it"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = drbd::parse_config(&text, Path::new("/nonexistent/fuzz.res"));
    }

}

proptest! {
    // Each case may run the whole mapping twice: fewer cases keep it quick.
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("{"), Just("}"), Just(";"), Just("resource"), Just("r0"), Just("on"),
            Just("a"), Just("b"), Just("net"), Just("disk"), Just("volume"), Just("0"),
            Just("address"), Just("10.0.0.1:7789"), Just("ipv6"), Just("connection"),
            Just("host"), Just("path"), Just("common"), Just("protocol"), Just("C"),
            Just("meta-disk"), Just("internal"), Just("/dev/x"), Just("skip"),
            Just("\"s\""), Just("#"), Just("\n"), Just("floating"), Just("syncer"),
            Just("connection-mesh"), Just("hosts"), Just("port"), Just("7790"),
        ],
        0..200,
    )) {
        let text = words.join(" ");
        if let Ok(config) = drbd::parse_config(&text, Path::new("/nonexistent/soup.res")) {
            let _ = drbd::convert(&config, false);
            let _ = drbd::convert(&config, true);
        }
    }
}

#[test]
fn hapair_rules_are_reported_at_the_drbd_line_they_concern() {
    let text = "resource r0 {\n  net {\n    fencing resource-only;\n  }\n  \
                on a { address 10.0.0.1:7789; disk /d/r0; meta-disk internal; }\n  \
                on b { address 10.0.0.2:7789; disk /d/r0; meta-disk internal; }\n}\n";
    let config = drbd::parse_config(text, Path::new("gate.res")).unwrap();
    let error = drbd::convert(&config, true).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "gate.res:3: resource r0: fence-peer: missing; net.fencing is resource-only"
        ),
        "{error}"
    );
    let discard_local = text.replace("fencing resource-only;", "after-sb-0pri discard-local;");
    let config = drbd::parse_config(&discard_local, Path::new("sb.res")).unwrap();
    let error = drbd::convert(&config, true).unwrap_err().to_string();
    assert_eq!(
        error,
        "sb.res:3: resource r0: after-sb-0pri: `discard-local` is not one of disconnect, \
         discard-younger-primary, discard-older-primary, discard-zero-changes, \
         discard-least-changes",
        "drbd.conf's values only"
    );
    let timeout = text.replace("fencing resource-only;", "ping-int 5;\n    timeout 60;");
    let config = drbd::parse_config(&timeout, Path::new("t.res")).unwrap();
    let error = drbd::convert(&config, true).unwrap_err().to_string();
    assert!(
        error.starts_with("t.res:4: resource r0: timeout: ")
            && error.contains("lower than ping-int"),
        "{error}"
    );
}

#[test]
fn sniffing_skips_comments_and_tells_yaml_keys_from_keywords() {
    assert!(drbd::looks_like_drbd("# c\n\n  global { usage-count no; }"));
    assert!(drbd::looks_like_drbd("include \"drbd.d/*.res\";"));
    assert!(drbd::looks_like_drbd("resource{"));
    assert!(!drbd::looks_like_drbd("resource: r0\n"));
    assert!(!drbd::looks_like_drbd("# resource r0 {\ninstances: []\n"));
    assert!(!drbd::looks_like_drbd(""));
}

#[test]
fn an_address_family_beyond_tcp_stops_the_start_or_skips_the_resource() {
    let text = "resource sdp {\n  \
                on a { address sdp 10.0.0.1:7789; disk /d/r0; meta-disk internal; }\n  \
                on b { address sdp 10.0.0.2:7789; disk /d/r0; meta-disk internal; }\n}\n\
                resource tcp {\n  \
                on a { address ipv4 10.0.0.1:7790; disk /d/r1; meta-disk internal; }\n  \
                on b { address ipv4 10.0.0.2:7790; disk /d/r1; meta-disk internal; }\n}\n";
    let config = drbd::parse_config(text, Path::new("family.res")).unwrap();
    let error = drbd::convert(&config, false).unwrap_err().to_string();
    assert!(
        error.starts_with("family.res:2: resource sdp: address family sdp is not offered")
            && error.contains("--allow-unsupported skips it"),
        "{error}"
    );
    let imported = drbd::convert(&config, true).unwrap();
    assert_eq!(only(&imported).name, "tcp");
    assert_warned(
        &imported,
        &["family.res:2: resource sdp: address family sdp is not offered"],
        &["skipped"],
    );
}
