//! hapair's drbd.conf reader against the real one: for each file, what
//! `drbdadm -c FILE dump all` (drbd-utils, installed by scripts/test.sh)
//! reports is compared with what `haadm -c FILE --allow-unsupported dump`
//! reports, both dumps parsed and normalized (inheritance applied, sizes in
//! KiB, flags as yes/no), not compared as text:
//!
//! - every resource drbdadm reports is in haadm's dump, or haadm warned that
//!   it skipped it;
//! - hosts, addresses, disks and meta-disks are equal;
//! - every option drbdadm reports has the same value in haadm's dump, or
//!   haadm warned about it by name; every option haadm adds is DRBD's default;
//! - a file drbdadm refuses, haadm refuses too, naming a line.
//!
//! drbdadm's `dump all` dumps every resource whatever the host name, so no
//! host name needs to match an `on` section (checked below with a host name
//! that none of the fixtures uses).
//!
//! The fixtures of tests/fixtures/drbd must agree; the real-world files of
//! /work/shared/corpus/drbd, when that directory exists, are run the same
//! way, and a file drbdadm accepts that hapair refuses is printed as a
//! divergence there (hapair is stricter on purpose in places, see
//! docs/drbd-config.md) rather than failing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hapair_config::drbd::{self, Config};

const CORPUS: &str = "/work/shared/corpus/drbd";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/drbd")
}

/// Exit code, stdout and stderr of a command, killed after a minute.
fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code(),
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

fn drbdadm_dump(file: &Path) -> (Option<i32>, String, String) {
    let found = Command::new("drbdadm").arg("--version").output();
    assert!(
        found.is_ok(),
        "drbdadm is missing: install drbd-utils (scripts/test.sh does)"
    );
    run(Command::new("drbdadm")
        .args(["-c", file.to_str().unwrap(), "dump", "all"])
        .current_dir(file.parent().unwrap()))
}

fn haadm_dump(file: &Path) -> (Option<i32>, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_haadm")).args([
        "-c",
        file.to_str().unwrap(),
        "--allow-unsupported",
        "dump",
    ]))
}

/// A resource as a dump reports it, normalized.
#[derive(Debug, PartialEq)]
struct ResourceView {
    hosts: BTreeMap<String, HostView>,
    /// `SECTION.NAME` to the normalized value.
    options: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq)]
struct HostView {
    address: Option<SocketAddr>,
    disk: Option<String>,
    meta_disk: Option<String>,
}

/// A rate in KiB/s from its drbd.conf text (`250`, `40M`, `1G`, `250k`).
fn kib(text: &str) -> String {
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1),
        Some((at, 'm' | 'M')) => (&text[..at], 1024),
        Some((at, 'g' | 'G')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .map_or_else(|_| text.to_owned(), |count| (count * unit).to_string())
}

fn view(config: &Config) -> BTreeMap<String, ResourceView> {
    let mut resources = BTreeMap::new();
    for resource in &config.resources {
        let hosts = resource
            .hosts
            .iter()
            .map(|host| {
                let address = host.address.as_ref().map(|setting| {
                    let text = setting.args.last().unwrap();
                    text.parse()
                        .unwrap_or_else(|_| panic!("address {text} at {}", setting.location))
                });
                let view = HostView {
                    address,
                    disk: host.disks.disk.as_ref().map(|setting| setting.value()),
                    meta_disk: host.disks.meta_disk.as_ref().map(|s| s.args.concat()),
                };
                (host.name.clone(), view)
            })
            .collect();
        let options = resource
            .sections
            .by_path()
            .into_iter()
            .map(|(path, setting)| {
                let value = setting.value();
                let value = match path.as_str() {
                    "disk.resync-rate" | "disk.c-max-rate" | "disk.c-min-rate" => kib(&value),
                    _ => value,
                };
                (path, value)
            })
            .collect();
        resources.insert(resource.name.clone(), ResourceView { hosts, options });
    }
    resources
}

/// DRBD's defaults (drbd.conf(5), linux/drbd_limits.h) for the options haadm
/// always prints, normalized like [`view`].
fn drbd_default(path: &str) -> Option<&'static str> {
    Some(match path {
        "net.protocol" => "C",
        "net.ping-int" => "10",
        "net.ping-timeout" => "5",
        "net.timeout" => "60",
        "net.connect-int" => "10",
        "net.ko-count" => "7",
        "net.fencing" => "dont-care",
        "net.after-sb-0pri" | "net.after-sb-1pri" | "net.after-sb-2pri" => "disconnect",
        "disk.on-io-error" => "detach",
        "disk.al-extents" => "1237",
        "disk.disk-timeout" => "0",
        "disk.resync-rate" => "250",
        "disk.c-max-rate" => "102400",
        "disk.disk-flushes" | "disk.md-flushes" => "yes",
        _ => return None,
    })
}

/// How `file` fared: `Err` for a disagreement, `Ok(Some(note))` for a file
/// drbdadm accepts and hapair refuses.
fn compare(file: &Path) -> Result<Option<String>, String> {
    let name = file.display();
    let (drbdadm_code, drbdadm_out, drbdadm_err) = drbdadm_dump(file);
    let (haadm_code, haadm_out, haadm_err) = haadm_dump(file);
    if drbdadm_code != Some(0) {
        let names_a_line = haadm_err
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("haadm: "))
            .and_then(|line| line.split(": ").next())
            .and_then(|place| place.rsplit_once(':'))
            .is_some_and(|(_, line)| line.parse::<u32>().is_ok());
        return if haadm_code != Some(0) && names_a_line {
            Ok(None)
        } else {
            Err(format!(
                "{name}: drbdadm refuses it ({drbdadm_err}) but haadm says (exit {haadm_code:?}):\n\
                 {haadm_err}{haadm_out}"
            ))
        };
    }
    if haadm_code != Some(0) {
        return Ok(Some(format!(
            "{name}: drbdadm accepts it, hapair refuses: {haadm_err}"
        )));
    }
    let parse = |text: &str, what: &str| {
        drbd::parse_config(text, &file.with_extension("dump"))
            .map_err(|error| format!("{name}: cannot read {what}'s dump: {error}\n{text}"))
    };
    let expected = view(&parse(&drbdadm_out, "drbdadm")?);
    let actual = view(&parse(&haadm_out, "haadm")?);
    let mut problems = Vec::new();
    for (resource, theirs) in &expected {
        let Some(ours) = actual.get(resource) else {
            let skipped = format!("resource {resource}: ");
            if !haadm_err
                .lines()
                .any(|line| line.contains(&skipped) && line.contains("skipped"))
            {
                problems.push(format!(
                    "resource {resource} is missing and no warning says why"
                ));
            }
            continue;
        };
        if theirs.hosts != ours.hosts {
            problems.push(format!(
                "resource {resource}: hosts differ:\n  drbdadm {:?}\n  haadm   {:?}",
                theirs.hosts, ours.hosts
            ));
        }
        for (path, value) in &theirs.options {
            match ours.options.get(path) {
                Some(our_value) if our_value == value => {}
                // A value hapair replaced, saying so (e.g. verify-alg sha1).
                Some(_)
                    if warned(
                        &haadm_err,
                        &format!("{} {value}", path.replacen('.', " ", 1)),
                    ) => {}
                Some(our_value) => problems.push(format!(
                    "resource {resource}: {path} is {value} for drbdadm, {our_value} for haadm"
                )),
                None => {
                    if !warned(&haadm_err, &path.replacen('.', " ", 1)) {
                        problems.push(format!(
                            "resource {resource}: {path} {value} is neither in haadm's dump nor \
                             in a warning"
                        ));
                    }
                }
            }
        }
        for (path, value) in &ours.options {
            if theirs.options.contains_key(path) {
                continue;
            }
            let expected = if path == "net.cram-hmac-alg" {
                theirs
                    .options
                    .contains_key("net.shared-secret")
                    .then_some("sha256")
            } else {
                drbd_default(path)
            };
            if expected != Some(value.as_str()) {
                problems.push(format!(
                    "resource {resource}: haadm adds {path} {value}, which is not DRBD's default"
                ));
            }
        }
    }
    for resource in actual.keys() {
        if !expected.contains_key(resource) {
            problems.push(format!("resource {resource} is only in haadm's dump"));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(format!("{name}:\n  {}", problems.join("\n  ")))
    }
}

/// Whether haadm's stderr has a warning about `option` (`net ko-count`).
fn warned(stderr: &str, option: &str) -> bool {
    stderr
        .lines()
        .any(|line| line.starts_with("haadm: warning: ") && line.contains(&format!(": {option}")))
}

fn files_in(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.is_file()
                && suffixes
                    .iter()
                    .any(|suffix| path.to_string_lossy().ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn fixtures_agree_with_drbdadm() {
    let root = fixtures();
    let mut files = files_in(&root.join("valid"), &[".res", ".conf"]);
    files.extend(files_in(&root.join("invalid"), &[".res", ".conf"]));
    files.push(root.join("includes/drbd.conf"));
    let mut failures = Vec::new();
    let mut divergences = Vec::new();
    for file in &files {
        match compare(file) {
            Ok(None) => {}
            Ok(Some(note)) => divergences.push(note),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        divergences.is_empty(),
        "fixtures drbdadm accepts and hapair refuses:\n{}",
        divergences.join("\n")
    );
}

#[test]
fn include_loops_are_refused_by_hapair_though_drbdadm_reads_on() {
    let file = fixtures().join("invalid/loop/a.res");
    let (drbdadm_code, _, _) = drbdadm_dump(&file);
    assert_eq!(drbdadm_code, Some(0), "drbdadm stops the loop silently");
    let (haadm_code, _, haadm_err) = haadm_dump(&file);
    assert_eq!(haadm_code, Some(10));
    assert!(haadm_err.contains("b.conf:2: include loop"), "{haadm_err}");
}

#[test]
fn drbdadm_dumps_every_resource_whatever_the_host_name() {
    // In a UTS namespace of its own (the root namespace's host name stays),
    // with a host name no `on` section names: the dump is the same.
    let file = fixtures().join("valid/mesh.res");
    let (_, plain, _) = drbdadm_dump(&file);
    let (code, renamed, stderr) = run(Command::new("unshare").args([
        "--uts",
        "sh",
        "-c",
        "hostname nobody-here && exec drbdadm -c \"$0\" dump all",
        file.to_str().unwrap(),
    ]));
    if code != Some(0) && stderr.contains("unshare failed") {
        eprintln!("note: no UTS namespace here (not root?); skipped: {stderr}");
        return;
    }
    assert_eq!(code, Some(0), "{stderr}");
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&plain), strip(&renamed));
    assert!(strip(&renamed).contains("resource mesh {"));
}

#[test]
fn corpus_agrees_with_drbdadm_where_it_exists() {
    let corpus = Path::new(CORPUS);
    if !corpus.is_dir() {
        eprintln!("note: {CORPUS} does not exist here; the corpus differential is skipped");
        return;
    }
    let mut failures = Vec::new();
    for file in files_in(corpus, &[".res"]) {
        match compare(&file) {
            Ok(None) => {}
            Ok(Some(note)) => eprintln!("divergence: {note}"),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
