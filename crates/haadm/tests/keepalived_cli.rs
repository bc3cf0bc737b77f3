//! `haadm import keepalived FILE` on the fixtures of tests/fixtures/keepalived:
//! it prints what the keepalived reader makes of the file for the node given
//! by --node, that YAML loads back to the same configuration, and what the
//! reader refuses is refused with exit code 10 and the file's line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hapair_config::VrrpConfig;
use hapair_config::keepalived::{self, ImportOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/keepalived")
        .join(name)
}

fn haadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haadm"))
        .args(args)
        .output()
        .expect("haadm runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn import_prints_the_nodes_configuration_which_loads_back_the_same() {
    let path = fixture("03-syntax-forms.conf");
    for node in ["ha1", "ha2"] {
        let output = haadm(&[
            "--node",
            node,
            "import",
            "keepalived",
            path.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let options = ImportOptions {
            config_id: node.to_owned(),
            allow_unsupported: false,
        };
        let expected = keepalived::load(&path, &options).unwrap();
        assert_eq!(stdout(&output), expected.yaml, "node {node}");
        let copy = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(copy.path(), stdout(&output)).unwrap();
        assert_eq!(
            VrrpConfig::load(copy.path(), None).unwrap(),
            expected.config,
            "node {node}"
        );
    }
}

#[test]
fn unsupported_keywords_are_refused_at_their_line_unless_allowed() {
    let path = fixture("09-unsupported-vmac.conf");
    let refused = haadm(&["import", "keepalived", path.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(10), "{}", stderr(&refused));
    assert!(refused.stdout.is_empty(), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("09-unsupported-vmac.conf:") && message.contains("--allow-unsupported"),
        "{message}"
    );

    let allowed = haadm(&[
        "--allow-unsupported",
        "import",
        "keepalived",
        path.to_str().unwrap(),
    ]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert!(
        stderr(&allowed).contains("unsupported: `use_vmac`"),
        "{}",
        stderr(&allowed)
    );
    assert!(
        stdout(&allowed).contains("instances:"),
        "{}",
        stdout(&allowed)
    );
}
