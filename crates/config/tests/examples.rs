//! Every example vrrpd config under configs/ (`vrrp-*.yaml`) must load, for
//! each node it names: they are what operators start from.

use std::path::{Path, PathBuf};

use hapair_config::VrrpConfig;

/// Examples with per-node settings, and the nodes to load them as. Every
/// other example is loaded without a node.
const NODES: &[(&str, &[&str])] = &[
    ("vrrp-unicast-pass.yaml", &["ha1", "ha2"]),
    ("vrrp-storage-pair.yaml", &["ha1", "ha2"]),
    ("vrrp-tracked-storage.yaml", &["ha1", "ha2"]),
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn vrrp_examples() -> Vec<PathBuf> {
    let dir = examples_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("vrrp-") && name.ends_with(".yaml")
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_vrrp_example_loads() {
    let examples = vrrp_examples();
    assert!(
        !examples.is_empty(),
        "no vrrp-*.yaml in {}",
        examples_dir().display()
    );
    for path in &examples {
        let name = path.file_name().unwrap().to_string_lossy();
        let nodes = NODES
            .iter()
            .find(|(file, _)| *file == name)
            .map_or(&[][..], |(_, nodes)| *nodes);
        let choices: Vec<Option<&str>> = if nodes.is_empty() {
            vec![None]
        } else {
            nodes.iter().copied().map(Some).collect()
        };
        for node in choices {
            let config = VrrpConfig::load(path, node).unwrap_or_else(|error| panic!("{error}"));
            assert!(!config.instances.is_empty(), "{name}");
        }
    }
}

#[test]
fn examples_with_nodes_exist_and_differ_per_node() {
    let dir = examples_dir();
    for (file, nodes) in NODES {
        let path = dir.join(file);
        let configs: Vec<VrrpConfig> = nodes
            .iter()
            .map(|node| {
                VrrpConfig::load(&path, Some(node)).unwrap_or_else(|error| panic!("{error}"))
            })
            .collect();
        assert_ne!(
            configs[0], configs[1],
            "{file}: the nodes see the same settings"
        );
    }
}

#[test]
fn storage_pair_promotes_and_demotes_r0() {
    let path = examples_dir().join("vrrp-storage-pair.yaml");
    let ha1 = VrrpConfig::load(&path, Some("ha1")).unwrap();
    let ha2 = VrrpConfig::load(&path, Some("ha2")).unwrap();
    let (ha1, ha2) = (&ha1.instances[0], &ha2.instances[0]);
    assert_eq!(
        ha1.notify_master.as_ref().map(|hook| hook.argv.clone()),
        Some(vec![
            "/etc/hapair/hooks/promote".to_string(),
            "r0".into(),
            "/srv/r0".into()
        ])
    );
    assert_eq!(
        ha1.notify_backup.as_ref().map(|hook| hook.argv.clone()),
        Some(vec![
            "/etc/hapair/hooks/demote".to_string(),
            "r0".into(),
            "/srv/r0".into()
        ])
    );
    assert!(ha1.priority > ha2.priority);
}

#[test]
fn fast_ipv4_example_advertises_every_100_ms() {
    let config = VrrpConfig::load(&examples_dir().join("vrrp-v3-fast-ipv4.yaml"), None).unwrap();
    assert_eq!(config.instances[0].version, 3);
    assert_eq!(config.instances[0].advert_int_centis, 10);
}
