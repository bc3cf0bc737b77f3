//! `haadm -c DRBD-CONFIG dump` and `haadm import drbd` on the fixtures of
//! tests/fixtures/drbd, against golden outputs in tests/fixtures/drbd/golden
//! (exit code, stdout and stderr of each run).
//!
//! To regenerate the goldens after an intended change, run
//!
//!     HAPAIR_BLESS=1 cargo test -p haadm --test drbd_cli
//!
//! and review the diff. Paths in the outputs are relative: haadm runs in the
//! fixture directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/drbd")
}

fn haadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haadm"))
        .args(args)
        .current_dir(fixtures())
        .output()
        .expect("haadm runs")
}

fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output
            .status
            .code()
            .map_or("signal".into(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Compares `actual` with the golden file `name`, or rewrites it when
/// HAPAIR_BLESS is set. Returns a description of the mismatch.
fn check_golden(name: &str, actual: &str) -> Option<String> {
    let path = fixtures().join("golden").join(name);
    if std::env::var_os("HAPAIR_BLESS").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return None;
    }
    let expected = fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs (HAPAIR_BLESS=1 regenerates it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

/// (fixture, golden name, extra arguments, whether haadm accepts it)
const DUMPS: &[(&str, &str, &[&str], bool)] = &[
    (
        "valid/84-resource-level.res",
        "84-resource-level",
        &[],
        true,
    ),
    (
        "valid/9-volume-connection.res",
        "9-volume-connection",
        &[],
        true,
    ),
    ("valid/common-inherit.conf", "common-inherit", &[], true),
    ("valid/mesh.res", "mesh", &[], true),
    ("valid/path.res", "path", &[], true),
    (
        "valid/unsafe-dual-primary.res",
        "unsafe-dual-primary",
        &[],
        false,
    ),
    (
        "valid/unsafe-dual-primary.res",
        "unsafe-dual-primary-allowed",
        &["--allow-unsupported"],
        true,
    ),
    ("valid/beyond-hapair.res", "beyond-hapair", &[], false),
    (
        "valid/beyond-hapair.res",
        "beyond-hapair-allowed",
        &["--allow-unsupported"],
        true,
    ),
    ("includes/drbd.conf", "includes", &[], true),
    ("includes/drbd.d", "drbd.d-directory", &[], true),
    ("invalid/bad-address.res", "invalid-bad-address", &[], false),
    (
        "invalid/bad-protocol.res",
        "invalid-bad-protocol",
        &[],
        false,
    ),
    (
        "invalid/discard-node.res",
        "invalid-discard-node",
        &[],
        false,
    ),
    (
        "invalid/fencing-in-disk.res",
        "invalid-fencing-in-disk",
        &[],
        false,
    ),
    (
        "invalid/missing-include.conf",
        "invalid-missing-include",
        &[],
        false,
    ),
    (
        "invalid/missing-semicolon.res",
        "invalid-missing-semicolon",
        &[],
        false,
    ),
    ("invalid/stray-close.res", "invalid-stray-close", &[], false),
    ("invalid/stray-line.res", "invalid-stray-line", &[], false),
    ("invalid/syncer-rate.res", "invalid-syncer-rate", &[], false),
    (
        "invalid/unknown-block.res",
        "invalid-unknown-block",
        &[],
        false,
    ),
    (
        "invalid/unknown-option.res",
        "invalid-unknown-option",
        &[],
        false,
    ),
    (
        "invalid/unterminated-string.res",
        "invalid-unterminated-string",
        &[],
        false,
    ),
    ("invalid/loop/a.res", "invalid-include-loop", &[], false),
];

#[test]
fn dump_and_import_match_the_goldens() {
    let mut mismatches = Vec::new();
    for (fixture, name, extra, accepted) in DUMPS {
        let mut dump_args = vec!["-c", fixture];
        dump_args.extend_from_slice(extra);
        dump_args.push("dump");
        let dump = haadm(&dump_args);
        assert_eq!(
            dump.status.success(),
            *accepted,
            "{fixture} {extra:?}: {}",
            transcript(&dump)
        );
        mismatches.extend(check_golden(&format!("{name}.dump"), &transcript(&dump)));
        let mut import_args = extra.to_vec();
        import_args.extend_from_slice(&["import", "drbd", fixture]);
        let import = haadm(&import_args);
        assert_eq!(
            dump.status.code(),
            import.status.code(),
            "{fixture} {extra:?}"
        );
        mismatches.extend(check_golden(
            &format!("{name}.import"),
            &transcript(&import),
        ));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn refusals_exit_10_naming_the_line() {
    let output = haadm(&["-c", "valid/unsafe-dual-primary.res", "dump"]);
    assert_eq!(output.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "haadm: valid/unsafe-dual-primary.res:5: resource dual: net allow-two-primaries yes"
        ),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// The dump without its `# FILE` comment lines, which name where each
/// resource was read.
fn without_origins(dump: &[u8]) -> String {
    String::from_utf8_lossy(dump)
        .lines()
        .filter(|line| !line.starts_with("# "))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn imported_yaml_and_the_dump_itself_load_back_to_the_same_resources() {
    for fixture in [
        "valid/84-resource-level.res",
        "valid/9-volume-connection.res",
        "valid/common-inherit.conf",
        "valid/mesh.res",
        "valid/path.res",
        "includes/drbd.conf",
    ] {
        let original = haadm(&["-c", fixture, "dump"]);
        assert!(original.status.success(), "{}", transcript(&original));
        let expected = without_origins(&original.stdout);

        let yaml_dir = tempfile::tempdir().unwrap();
        let out_dir = yaml_dir.path().to_str().unwrap();
        let import = haadm(&["import", "drbd", fixture, "--out-dir", out_dir]);
        assert!(import.status.success(), "{}", transcript(&import));
        let from_yaml = haadm(&["-c", out_dir, "dump"]);
        assert!(from_yaml.status.success(), "{}", transcript(&from_yaml));
        assert_eq!(
            without_origins(&from_yaml.stdout),
            expected,
            "{fixture} via YAML"
        );
        assert!(
            from_yaml.stderr.is_empty(),
            "YAML has nothing to warn about"
        );

        let dump_dir = tempfile::tempdir().unwrap();
        let dump_file = dump_dir.path().join("dump.res");
        fs::write(&dump_file, &original.stdout).unwrap();
        let from_dump = haadm(&["-c", dump_file.to_str().unwrap(), "dump"]);
        assert!(from_dump.status.success(), "{}", transcript(&from_dump));
        assert_eq!(
            without_origins(&from_dump.stdout),
            expected,
            "{fixture} via its dump"
        );
    }
}

#[test]
fn import_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("mesh.yaml"), "keep me").unwrap();
    let output = haadm(&[
        "import",
        "drbd",
        "valid/mesh.res",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("import never overwrites a file"),
        "{}",
        transcript(&output)
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("mesh.yaml")).unwrap(),
        "keep me"
    );
}
