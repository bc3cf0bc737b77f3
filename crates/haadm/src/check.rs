//! `haadm check`: the health of the pair in one Nagios-style line, for
//! cron jobs and monitoring systems, with Nagios's exit codes (0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN); optionally also a number for
//! vrrpd's (keepalived's) `track_file`.
//!
//! What is looked at: every resource replicad runs (`haadm status`) and,
//! when present, vrrpd's state file. The rules are a pure function,
//! [`assess`], from what was observed to a [`Report`]; [`run`] only
//! gathers the observations, prints and writes.
//!
//! The rules, per resource:
//! - CRITICAL: a split brain; two Primaries; Primary while StandAlone
//!   (writes are not mirrored and nobody will reconnect); StandAlone
//!   not by the operator's choice (a refused connect, a peer cut off by
//!   `ko-count`); no local disk (Diskless);
//!   Inconsistent without a resync running; I/O suspended (frozen by
//!   `fencing: resource-and-stonith` until the peer is fenced).
//! - WARNING: a resync running (with its progress); the peer not connected
//!   (Connecting) or disconnected by the operator; the peer's disk, or
//!   this node's, not UpToDate while no resync runs; blocks found out of
//!   sync by the last online verify.
//!
//! and for vrrpd: CRITICAL when its state file names a process that is
//! gone (vrrpd is not running: no failover); WARNING for an instance in
//! FAULT or INIT, or, with a single instance, when MASTER and BACKUP
//! disagree with the resources' roles (a hook not done, or failed).
//! UNKNOWN when replicad does not answer, runs no resource, or a named
//! state file cannot be read. The line's status is the worst found:
//! CRITICAL, then UNKNOWN, then WARNING.
//!
//! The track-file value says whether this node could serve the data if it
//! became MASTER: 0 when replicad answers and every resource's local disk
//! is UpToDate, 1 otherwise. vrrpd adds value × weight to the priority, so
//! with `weight: -50` an unfit node loses 50, and with weight 0 a non-zero
//! value puts the instance in FAULT. It deliberately ignores the
//! connection and the vrrpd state: a Primary that lost its peer must keep
//! the virtual IP, or the peer would promote stale data.

use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use replicad::control::{Client, Reply, Request, ResourceStatus};

use crate::vrrp::{NamedState, default_state_file, parse_vrrp_state};

/// Nagios's plugin status, in exit-code order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn exit_code(self) -> i32 {
        self as i32
    }

    /// How bad it is: an unanswered question is worse than a warning, a
    /// known failure worse than both.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }
}

/// What vrrpd's state file said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vrrp {
    /// No state file at the default place, and none named: vrrpd is not
    /// used on this host, and the check leaves it out.
    NotUsed,
    /// The file could not be read or parsed.
    Unreadable { path: PathBuf, why: String },
    /// The file names a process that no longer runs.
    NotRunning { path: PathBuf, pid: u32 },
    /// vrrpd runs and its instances are in these states.
    Running(Vec<NamedState>),
}

/// Everything the verdict is made from.
#[derive(Debug, Clone)]
pub struct Observed {
    /// replicad's resources, or why replicad could not be asked.
    pub resources: Result<Vec<ResourceStatus>, String>,
    pub vrrp: Vrrp,
}

/// The verdict: status, the line to print, the track-file value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub status: Status,
    pub line: String,
    pub track_value: u8,
}

/// Findings, each with its status, collected in order.
#[derive(Default)]
struct Findings(Vec<(Status, String)>);

impl Findings {
    fn add(&mut self, status: Status, text: String) {
        self.0.push((status, text));
    }

    fn worst(&self) -> Status {
        self.0
            .iter()
            .map(|(status, _)| *status)
            .max_by_key(|status| status.severity())
            .unwrap_or(Status::Ok)
    }
}

/// The rules (see the module documentation): observations in, verdict out.
pub fn assess(observed: &Observed) -> Report {
    let mut findings = Findings::default();
    let mut summary = Vec::new();
    let mut track_value = 1;
    match &observed.resources {
        Err(why) => findings.add(Status::Unknown, why.clone()),
        Ok(resources) if resources.is_empty() => findings.add(
            Status::Unknown,
            "replicad runs no resource (is the configuration directory empty?)".into(),
        ),
        Ok(resources) => {
            for resource in resources {
                assess_resource(resource, &mut findings);
                summary.push(resource_summary(resource));
            }
            if resources.iter().all(|r| r.disk == "UpToDate") {
                track_value = 0;
            }
        }
    }
    let resources = observed.resources.as_deref().unwrap_or_default();
    match &observed.vrrp {
        Vrrp::NotUsed => {}
        Vrrp::Unreadable { path, why } => findings.add(
            Status::Unknown,
            format!("vrrpd state file {}: {why}", path.display()),
        ),
        Vrrp::NotRunning { path, pid } => findings.add(
            Status::Critical,
            format!(
                "vrrpd is not running (pid {pid} of {} is gone): no failover",
                path.display()
            ),
        ),
        Vrrp::Running(instances) => {
            assess_vrrp(instances, resources, &mut findings);
            summary.extend(instances.iter().map(|i| format!("{} {}", i.name, i.state)));
        }
    }
    let status = findings.worst();
    let mut line = format!("HAPAIR {} - ", status.word());
    let problems: Vec<&str> = findings.0.iter().map(|(_, text)| text.as_str()).collect();
    if !problems.is_empty() {
        line.push_str(&problems.join("; "));
        if !summary.is_empty() {
            line.push_str(" -- ");
        }
    }
    line.push_str(&summary.join("; "));
    Report {
        status,
        line,
        track_value,
    }
}

fn is_resyncing(resource: &ResourceStatus) -> bool {
    matches!(
        resource.peer.replication.as_str(),
        "SyncSource" | "SyncTarget"
    )
}

fn assess_resource(r: &ResourceStatus, findings: &mut Findings) {
    let name = &r.name;
    let peer = &r.peer;
    let standalone = peer.connection == "StandAlone";
    let resyncing = is_resyncing(r);
    if peer.split_brain {
        findings.add(
            Status::Critical,
            format!(
                "{name}: split brain, StandAlone until resolved \
                 (haadm connect --discard-my-data {name} on the node whose changes go)"
            ),
        );
    } else if standalone && let Some(reason) = &peer.reason {
        findings.add(Status::Critical, format!("{name}: StandAlone: {reason}"));
    } else if standalone && r.role == "Primary" {
        findings.add(
            Status::Critical,
            format!(
                "{name}: Primary and StandAlone, writes are not mirrored (haadm connect {name})"
            ),
        );
    } else if standalone {
        findings.add(
            Status::Warning,
            format!("{name}: StandAlone, not replicating (haadm connect {name})"),
        );
    } else if peer.connection != "Connected" {
        findings.add(
            Status::Warning,
            format!(
                "{name}: peer {} not connected ({})",
                peer.name, peer.connection
            ),
        );
    }
    if r.suspended {
        findings.add(
            Status::Critical,
            format!(
                "{name}: I/O suspended (fencing), requests wait: if the fence-peer handler \
                 failed, make sure {} is not Primary, then haadm resume-io {name}",
                peer.name
            ),
        );
    }
    if r.role == "Primary" && peer.role == "Primary" {
        findings.add(
            Status::Critical,
            format!("{name}: two Primaries (this node and {})", peer.name),
        );
    }
    match r.disk.as_str() {
        "UpToDate" => {}
        "Diskless" => findings.add(
            Status::Critical,
            match &r.disk_error {
                Some(error) => format!("{name}: Diskless: {error}"),
                None => format!(
                    "{name}: Diskless, no local data (haadm up {name}, or see the disk's errors)"
                ),
            },
        ),
        "Inconsistent" if !resyncing => findings.add(
            Status::Critical,
            format!("{name}: Inconsistent and no resync running"),
        ),
        // The resync finding below says it.
        "Inconsistent" => {}
        other if !resyncing => findings.add(
            Status::Warning,
            format!("{name}: local disk {other}, not UpToDate"),
        ),
        _ => {}
    }
    if resyncing {
        let done = peer
            .done
            .map_or_else(String::new, |done| format!(" {done:.1}% done"));
        findings.add(
            Status::Warning,
            format!("{name}: resync running ({}{done})", peer.replication),
        );
    } else if peer.connection == "Connected" && peer.disk != "UpToDate" {
        findings.add(
            Status::Warning,
            format!("{name}: peer {} disk {}", peer.name, peer.disk),
        );
    }
    if peer.verify_out_of_sync > 0 {
        findings.add(
            Status::Warning,
            format!(
                "{name}: online verify found {} bytes out of sync (disconnect and connect to resync)",
                peer.verify_out_of_sync
            ),
        );
    }
}

fn assess_vrrp(instances: &[NamedState], resources: &[ResourceStatus], findings: &mut Findings) {
    for instance in instances {
        if matches!(instance.state.as_str(), "FAULT" | "INIT") {
            findings.add(
                Status::Warning,
                format!(
                    "{} {}: this node cannot become MASTER",
                    instance.name, instance.state
                ),
            );
        }
    }
    // With one instance, its MASTER owns every resource: the roles must
    // follow it. With several, which instance guards which resource is the
    // hooks' business, not known here.
    let [instance] = instances else { return };
    for resource in resources {
        let disagree = match instance.state.as_str() {
            "MASTER" => resource.role != "Primary",
            "BACKUP" => resource.role == "Primary",
            _ => false,
        };
        if disagree {
            findings.add(
                Status::Warning,
                format!(
                    "{} {} but {} {} (the promote/demote hook not done or failed?)",
                    instance.name, instance.state, resource.name, resource.role
                ),
            );
        }
    }
}

/// `r0 Primary/Secondary UpToDate/UpToDate Connected`, plus the resync.
fn resource_summary(r: &ResourceStatus) -> String {
    let mut text = format!(
        "{} {}/{} {}/{} {}",
        r.name, r.role, r.peer.role, r.disk, r.peer.disk, r.peer.connection
    );
    if is_resyncing(r) {
        let _ = write!(text, " {}", r.peer.replication);
        if let Some(done) = r.peer.done {
            let _ = write!(text, " {done:.1}%");
        }
    }
    if r.peer.split_brain {
        text.push_str(" split-brain");
    }
    if r.suspended {
        text.push_str(" suspended");
    }
    text
}

/// Reads the state file at `path`; `named` says the operator asked for
/// this file, so that its absence is a problem rather than "not used".
fn read_vrrp(path: &Path, named: bool) -> Vrrp {
    let unreadable = |why: String| Vrrp::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == ErrorKind::NotFound && !named => return Vrrp::NotUsed,
        Err(error) => return unreadable(error.to_string()),
    };
    match parse_vrrp_state(&text) {
        Err(why) => unreadable(why),
        Ok(state) if !Path::new("/proc").join(state.pid.to_string()).exists() => Vrrp::NotRunning {
            path: path.to_path_buf(),
            pid: state.pid,
        },
        Ok(state) => Vrrp::Running(state.instances),
    }
}

fn ask_replicad(run_dir: &Path) -> Result<Vec<ResourceStatus>, String> {
    let mut client = Client::connect(run_dir)
        .and_then(|client| client.with_reply_timeout(crate::STATUS_TIMEOUT))
        .map_err(|error| error.to_string())?;
    match client
        .call(&Request::Status { resource: None })
        .map_err(|error| error.to_string())?
    {
        Reply::Done { resources } => Ok(resources),
        Reply::Failed { message, .. } => Err(format!("replicad refused the status: {message}")),
    }
}

/// Replaces `path` with `value` and a newline, atomically (a reader such
/// as vrrpd never sees an empty file).
fn write_track_file(path: &Path, value: u8) -> Result<(), String> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    fs::write(&temporary, format!("{value}\n"))
        .and_then(|()| fs::rename(&temporary, path))
        .map_err(|error| format!("cannot write the track file {}: {error}", path.display()))
}

/// `haadm check`: gathers, assesses, prints the line, writes the track
/// file when asked; returns the exit code.
pub fn run(run_dir: &Path, vrrp_state: Option<&Path>, track_file: Option<&Path>) -> i32 {
    let vrrp = match vrrp_state {
        Some(path) => read_vrrp(path, true),
        None => read_vrrp(&default_state_file(run_dir), false),
    };
    let observed = Observed {
        resources: ask_replicad(run_dir),
        vrrp,
    };
    let report = assess(&observed);
    println!("{}", report.line);
    if let Some(path) = track_file
        && let Err(why) = write_track_file(path, report.track_value)
    {
        eprintln!("haadm: {why}");
        let worst = [report.status, Status::Unknown]
            .into_iter()
            .max_by_key(|status| status.severity())
            .unwrap_or(Status::Unknown);
        return worst.exit_code();
    }
    report.status.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicad::control::PeerStatus;

    /// r0, Primary/Secondary UpToDate/UpToDate Connected: a healthy pair.
    fn healthy() -> ResourceStatus {
        ResourceStatus {
            name: "r0".into(),
            role: "Primary".into(),
            disk: "UpToDate".into(),
            disk_error: None,
            size: 1 << 30,
            open_count: 1,
            out_of_sync: 0,
            suspended: false,
            peer: PeerStatus {
                name: "ha2".into(),
                connection: "Connected".into(),
                role: "Secondary".into(),
                disk: "UpToDate".into(),
                replication: "Established".into(),
                done: None,
                resync_rate: None,
                eta: None,
                resynced_bytes: 0,
                split_brain: false,
                reason: None,
                verify_out_of_sync: 0,
            },
        }
    }

    /// The resource disconnected: what a StandAlone or Connecting link reports.
    fn unlinked(mut r: ResourceStatus, connection: &str) -> ResourceStatus {
        r.peer.connection = connection.into();
        r.peer.role = "Unknown".into();
        r.peer.disk = "DUnknown".into();
        r.peer.replication = "Off".into();
        r
    }

    fn instance(state: &str) -> NamedState {
        NamedState {
            name: "VI_1".into(),
            state: state.into(),
        }
    }

    fn assess_with(resources: Vec<ResourceStatus>, vrrp: Vrrp) -> Report {
        assess(&Observed {
            resources: Ok(resources),
            vrrp,
        })
    }

    fn assess_one(resource: ResourceStatus) -> Report {
        assess_with(vec![resource], Vrrp::NotUsed)
    }

    #[track_caller]
    fn expect(report: &Report, status: Status, words: &str) {
        assert_eq!(report.status, status, "{}", report.line);
        assert!(
            report
                .line
                .starts_with(&format!("HAPAIR {} - ", status.word())),
            "{}",
            report.line
        );
        assert!(
            report.line.contains(words),
            "{:?} should contain {words:?}",
            report.line
        );
    }

    #[test]
    fn a_healthy_pair_with_its_master_is_ok_in_one_line() {
        let report = assess_with(vec![healthy()], Vrrp::Running(vec![instance("MASTER")]));
        assert_eq!(
            report,
            Report {
                status: Status::Ok,
                line: "HAPAIR OK - r0 Primary/Secondary UpToDate/UpToDate Connected; VI_1 MASTER"
                    .into(),
                track_value: 0,
            }
        );
        let mut backup = healthy();
        backup.role = "Secondary".into();
        backup.peer.role = "Primary".into();
        let report = assess_with(vec![backup], Vrrp::Running(vec![instance("BACKUP")]));
        expect(
            &report,
            Status::Ok,
            "r0 Secondary/Primary UpToDate/UpToDate Connected; VI_1 BACKUP",
        );
    }

    #[test]
    fn a_split_brain_is_critical_and_says_how_to_recover() {
        let mut split = unlinked(healthy(), "StandAlone");
        split.role = "Secondary".into();
        split.peer.split_brain = true;
        let report = assess_one(split);
        expect(&report, Status::Critical, "r0: split brain");
        assert!(report.line.contains("haadm connect --discard-my-data r0"));
        assert!(
            report.line.ends_with("StandAlone split-brain"),
            "{}",
            report.line
        );
        assert_eq!(report.track_value, 0, "the local data is still UpToDate");
    }

    #[test]
    fn suspended_io_is_critical_and_says_how_to_resume() {
        let mut frozen = unlinked(healthy(), "Connecting");
        frozen.suspended = true;
        let report = assess_one(frozen);
        expect(&report, Status::Critical, "r0: I/O suspended (fencing)");
        assert!(
            report
                .line
                .contains("make sure ha2 is not Primary, then haadm resume-io r0"),
            "{}",
            report.line
        );
        assert!(
            report.line.ends_with("Connecting suspended"),
            "{}",
            report.line
        );
        assert_eq!(report.track_value, 0, "the local data is still UpToDate");
    }

    #[test]
    fn two_primaries_are_critical() {
        let mut both = healthy();
        both.peer.role = "Primary".into();
        expect(
            &assess_one(both),
            Status::Critical,
            "r0: two Primaries (this node and ha2)",
        );
    }

    #[test]
    fn a_standalone_primary_is_critical_a_standalone_secondary_a_warning() {
        let alone = unlinked(healthy(), "StandAlone");
        expect(
            &assess_one(alone.clone()),
            Status::Critical,
            "r0: Primary and StandAlone",
        );
        let mut secondary = alone;
        secondary.role = "Secondary".into();
        expect(
            &assess_one(secondary),
            Status::Warning,
            "r0: StandAlone, not replicating",
        );
    }

    #[test]
    fn a_refused_connect_or_a_cut_off_peer_is_critical_with_its_reason() {
        let mut refused = unlinked(healthy(), "StandAlone");
        refused.role = "Secondary".into();
        refused.peer.reason = Some("unrelated data".into());
        expect(
            &assess_one(refused),
            Status::Critical,
            "r0: StandAlone: unrelated data",
        );
        let mut cut_off = unlinked(healthy(), "StandAlone");
        cut_off.peer.reason = Some("the peer did not complete write 7 within ko-count 7".into());
        expect(
            &assess_one(cut_off),
            Status::Critical,
            "r0: StandAlone: the peer did not complete write 7",
        );
    }

    #[test]
    fn diskless_and_inconsistent_without_resync_are_critical_and_unfit() {
        let mut diskless = unlinked(healthy(), "StandAlone");
        diskless.role = "Secondary".into();
        diskless.disk = "Diskless".into();
        let report = assess_one(diskless.clone());
        expect(&report, Status::Critical, "r0: Diskless, no local data");
        assert_eq!(report.track_value, 1);
        diskless.disk_error = Some("the backing disk did not complete a request".into());
        expect(
            &assess_one(diskless),
            Status::Critical,
            "r0: Diskless: the backing disk did not complete a request",
        );

        let mut inconsistent = healthy();
        inconsistent.role = "Secondary".into();
        inconsistent.disk = "Inconsistent".into();
        let report = assess_one(inconsistent);
        expect(
            &report,
            Status::Critical,
            "r0: Inconsistent and no resync running",
        );
        assert_eq!(report.track_value, 1);
    }

    #[test]
    fn a_resync_is_a_warning_with_its_progress() {
        let mut source = healthy();
        source.peer.disk = "Inconsistent".into();
        source.peer.replication = "SyncSource".into();
        source.peer.done = Some(42.14);
        let report = assess_one(source);
        expect(
            &report,
            Status::Warning,
            "r0: resync running (SyncSource 42.1% done)",
        );
        assert!(
            report.line.ends_with("Connected SyncSource 42.1%"),
            "{}",
            report.line
        );
        assert_eq!(report.track_value, 0, "the SyncSource has the good data");

        let mut target = healthy();
        target.role = "Secondary".into();
        target.disk = "Inconsistent".into();
        target.peer.role = "Primary".into();
        target.peer.replication = "SyncTarget".into();
        let report = assess_one(target);
        expect(&report, Status::Warning, "r0: resync running (SyncTarget)");
        assert_eq!(report.track_value, 1, "a SyncTarget cannot serve yet");
    }

    #[test]
    fn a_peer_away_is_a_warning() {
        let report = assess_one(unlinked(healthy(), "Connecting"));
        expect(
            &report,
            Status::Warning,
            "r0: peer ha2 not connected (Connecting)",
        );
        assert_eq!(
            report.track_value, 0,
            "a Primary that lost its peer keeps serving"
        );
    }

    #[test]
    fn an_outdated_disk_either_side_is_a_warning() {
        let mut peer_outdated = healthy();
        peer_outdated.peer.disk = "Outdated".into();
        expect(
            &assess_one(peer_outdated),
            Status::Warning,
            "r0: peer ha2 disk Outdated",
        );
        let mut outdated = unlinked(healthy(), "Connecting");
        outdated.role = "Secondary".into();
        outdated.disk = "Outdated".into();
        let report = assess_one(outdated);
        expect(&report, Status::Warning, "r0: local disk Outdated");
        assert_eq!(report.track_value, 1);
    }

    #[test]
    fn verify_differences_are_a_warning() {
        let mut differs = healthy();
        differs.peer.verify_out_of_sync = 8192;
        expect(
            &assess_one(differs),
            Status::Warning,
            "8192 bytes out of sync",
        );
    }

    #[test]
    fn replicad_away_or_without_resources_is_unknown_and_unfit() {
        let report = assess(&Observed {
            resources: Err("replicad is not running".into()),
            vrrp: Vrrp::Running(vec![instance("MASTER")]),
        });
        expect(&report, Status::Unknown, "replicad is not running");
        assert_eq!(report.track_value, 1);
        let report = assess_with(Vec::new(), Vrrp::NotUsed);
        expect(&report, Status::Unknown, "replicad runs no resource");
        assert_eq!(report.track_value, 1);
    }

    #[test]
    fn vrrpd_gone_is_critical_and_an_unreadable_state_file_unknown() {
        let gone = Vrrp::NotRunning {
            path: "/run/hapair/vrrp/state.json".into(),
            pid: 4242,
        };
        expect(
            &assess_with(vec![healthy()], gone),
            Status::Critical,
            "vrrpd is not running (pid 4242",
        );
        let unreadable = Vrrp::Unreadable {
            path: "/x/state.json".into(),
            why: "not JSON".into(),
        };
        let report = assess_with(vec![healthy()], unreadable);
        expect(
            &report,
            Status::Unknown,
            "vrrpd state file /x/state.json: not JSON",
        );
        assert_eq!(
            report.track_value, 0,
            "the track value follows the data alone"
        );
    }

    #[test]
    fn a_role_that_disagrees_with_the_single_instance_is_a_warning() {
        let mut secondary = healthy();
        secondary.role = "Secondary".into();
        let report = assess_with(vec![secondary], Vrrp::Running(vec![instance("MASTER")]));
        expect(&report, Status::Warning, "VI_1 MASTER but r0 Secondary");
        let report = assess_with(vec![healthy()], Vrrp::Running(vec![instance("BACKUP")]));
        expect(&report, Status::Warning, "VI_1 BACKUP but r0 Primary");
        let two = vec![
            instance("BACKUP"),
            NamedState {
                name: "VI_2".into(),
                state: "MASTER".into(),
            },
        ];
        expect(
            &assess_with(vec![healthy()], Vrrp::Running(two)),
            Status::Ok,
            "VI_2 MASTER",
        );
    }

    #[test]
    fn an_instance_in_fault_is_a_warning() {
        let mut secondary = healthy();
        secondary.role = "Secondary".into();
        secondary.peer.role = "Primary".into();
        let report = assess_with(vec![secondary], Vrrp::Running(vec![instance("FAULT")]));
        expect(
            &report,
            Status::Warning,
            "VI_1 FAULT: this node cannot become MASTER",
        );
    }

    #[test]
    fn critical_outranks_unknown_outranks_warning() {
        let report = assess(&Observed {
            resources: Ok(vec![unlinked(healthy(), "Connecting")]),
            vrrp: Vrrp::Unreadable {
                path: "/x".into(),
                why: "gone".into(),
            },
        });
        assert_eq!(report.status, Status::Unknown, "{}", report.line);
        let mut both = healthy();
        both.peer.role = "Primary".into();
        let report = assess_with(
            vec![both],
            Vrrp::Unreadable {
                path: "/x".into(),
                why: "gone".into(),
            },
        );
        assert_eq!(report.status, Status::Critical, "{}", report.line);
        assert!(
            report
                .line
                .starts_with("HAPAIR CRITICAL - r0: two Primaries"),
            "{}",
            report.line
        );
    }
}
