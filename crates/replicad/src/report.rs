//! How resource state reads for people and scripts, in DRBD 9's words:
//! `haadm status` (drbdsetup's layout) and `haadm events` (events2 lines).

use crate::control::ResourceStatus;

/// `haadm status`: one block per resource, a blank line between them.
/// ```text
/// r0 role:Primary
///   disk:UpToDate
///   ha2 role:Secondary
///     replication:SyncSource peer-disk:Inconsistent done:42.10 rate:40960KiB/s eta:0:01:52
/// ```
/// (A resync's rate, its average so far, and the time it has left at that
/// rate show after its first second.)
/// A link left StandAlone by a split brain says `split-brain:yes`; a
/// resource whose I/O is frozen says `suspended:fencing` after its role, as
/// drbdsetup does (and nothing while it is not). What the peer lacks ends
/// the peer's last line as drbdsetup's `out-of-sync:KiB`, when there is
/// any.
pub fn status_text(resources: &[ResourceStatus]) -> String {
    resources
        .iter()
        .map(|r| {
            let out_of_sync = match r.out_of_sync {
                0 => String::new(),
                bytes => format!(" out-of-sync:{}", bytes / 1024),
            };
            let peer = if r.peer.connection == "Connected" {
                let replication = match r.peer.replication.as_str() {
                    "Off" | "Established" => String::new(),
                    other => format!("replication:{other} "),
                };
                let mut done = r
                    .peer
                    .done
                    .map_or(String::new(), |d| format!(" done:{d:.2}"));
                if let (Some(rate), Some(eta)) = (r.peer.resync_rate, r.peer.eta) {
                    done.push_str(&format!(
                        " rate:{}KiB/s eta:{}:{:02}:{:02}",
                        rate / 1024,
                        eta / 3600,
                        eta / 60 % 60,
                        eta % 60
                    ));
                }
                format!(
                    "  {} role:{}\n    {replication}peer-disk:{}{done}{out_of_sync}\n",
                    r.peer.name, r.peer.role, r.peer.disk
                )
            } else if r.peer.split_brain {
                format!(
                    "  {} connection:{} split-brain:yes{out_of_sync}\n",
                    r.peer.name, r.peer.connection
                )
            } else {
                format!(
                    "  {} connection:{}{out_of_sync}\n",
                    r.peer.name, r.peer.connection
                )
            };
            let suspended = if r.suspended {
                format!(" suspended:{}", suspended_word(r))
            } else {
                String::new()
            };
            format!(
                "{} role:{}{suspended}\n  disk:{}\n{peer}",
                r.name, r.role, r.disk
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// drbdsetup's word for the resource's suspension: `fencing` for the freeze
/// of `resource-and-stonith` (the only one hapair has), `no` without one.
fn suspended_word(resource: &ResourceStatus) -> &'static str {
    if resource.suspended { "fencing" } else { "no" }
}

/// The events2 lines that describe `resource`, each prefixed by `action`
/// (`exists`, `create`, `change` or `destroy`). `peer_node_id` names the
/// peer as DRBD 9 does (`peer-node-id:N`). While a resync or verify runs,
/// the peer-device line carries its progress (`done:NN.NN`), so each step
/// of it is a change.
pub fn event_lines(action: &str, resource: &ResourceStatus, peer_node_id: usize) -> Vec<String> {
    let name = &resource.name;
    let peer = &resource.peer;
    let done = peer
        .done
        .map_or(String::new(), |done| format!(" done:{done:.2}"));
    vec![
        format!(
            "{action} resource name:{name} role:{} suspended:{}",
            resource.role,
            suspended_word(resource)
        ),
        format!(
            "{action} connection name:{name} peer-node-id:{peer_node_id} conn-name:{} \
             connection:{} role:{}",
            peer.name, peer.connection, peer.role
        ),
        format!(
            "{action} device name:{name} volume:0 disk:{} open:{}",
            resource.disk,
            if resource.open_count > 0 { "yes" } else { "no" }
        ),
        format!(
            "{action} peer-device name:{name} peer-node-id:{peer_node_id} conn-name:{} volume:0 \
             replication:{} peer-disk:{}{done}",
            peer.name, peer.replication, peer.disk
        ),
    ]
}

/// The `change` lines between two snapshots of one resource: only the
/// objects whose line differs.
pub fn change_lines(
    before: &ResourceStatus,
    after: &ResourceStatus,
    peer_node_id: usize,
) -> Vec<String> {
    event_lines("exists", before, peer_node_id)
        .into_iter()
        .zip(event_lines("change", after, peer_node_id))
        .filter(|(old, new)| old.strip_prefix("exists") != new.strip_prefix("change"))
        .map(|(_, new)| new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PeerStatus;

    fn resource(role: &str, disk: &str) -> ResourceStatus {
        ResourceStatus {
            name: "r0".into(),
            role: role.into(),
            disk: disk.into(),
            disk_error: None,
            size: 1 << 30,
            open_count: 0,
            out_of_sync: 0,
            suspended: false,
            peer: PeerStatus {
                name: "ha2".into(),
                connection: "StandAlone".into(),
                role: "Unknown".into(),
                disk: "DUnknown".into(),
                replication: "Off".into(),
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

    #[test]
    fn a_connected_peer_shows_role_disk_and_resync_progress() {
        let mut syncing = resource("Primary", "UpToDate");
        syncing.peer.connection = "Connected".into();
        syncing.peer.role = "Secondary".into();
        syncing.peer.disk = "Inconsistent".into();
        syncing.peer.replication = "SyncSource".into();
        syncing.peer.done = Some(42.1);
        assert_eq!(
            status_text(&[syncing.clone()]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 role:Secondary\n    \
             replication:SyncSource peer-disk:Inconsistent done:42.10\n"
        );
        syncing.peer.resync_rate = Some(40 << 20);
        syncing.peer.eta = Some(3600 + 52);
        assert_eq!(
            status_text(&[syncing.clone()]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 role:Secondary\n    \
             replication:SyncSource peer-disk:Inconsistent done:42.10 rate:40960KiB/s eta:1:00:52\n"
        );
        syncing.peer.resync_rate = None;
        syncing.peer.eta = None;
        syncing.peer.replication = "Established".into();
        syncing.peer.disk = "UpToDate".into();
        syncing.peer.done = None;
        assert_eq!(
            status_text(&[syncing]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 role:Secondary\n    peer-disk:UpToDate\n"
        );
    }

    #[test]
    fn what_the_peer_lacks_is_counted_in_kib() {
        let mut alone = resource("Primary", "UpToDate");
        alone.out_of_sync = 3 << 20;
        assert_eq!(
            status_text(&[alone]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 connection:StandAlone out-of-sync:3072\n"
        );
    }

    #[test]
    fn a_split_brain_is_named() {
        let mut split = resource("Secondary", "UpToDate");
        split.peer.split_brain = true;
        assert_eq!(
            status_text(&[split]),
            "r0 role:Secondary\n  disk:UpToDate\n  ha2 connection:StandAlone split-brain:yes\n"
        );
    }

    #[test]
    fn suspended_io_is_on_the_resource_line_and_a_resource_change() {
        let serving = resource("Primary", "UpToDate");
        let mut frozen = serving.clone();
        frozen.suspended = true;
        assert_eq!(
            status_text(&[frozen.clone()]),
            "r0 role:Primary suspended:fencing\n  disk:UpToDate\n  ha2 connection:StandAlone\n"
        );
        assert_eq!(
            change_lines(&serving, &frozen, 1),
            ["change resource name:r0 role:Primary suspended:fencing"]
        );
        assert_eq!(
            change_lines(&frozen, &serving, 1),
            ["change resource name:r0 role:Primary suspended:no"]
        );
    }

    #[test]
    fn status_reads_like_drbdsetup() {
        let mut second = resource("Secondary", "Inconsistent");
        second.name = "r1".into();
        assert_eq!(
            status_text(&[resource("Primary", "UpToDate"), second]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 connection:StandAlone\n\n\
             r1 role:Secondary\n  disk:Inconsistent\n  ha2 connection:StandAlone\n"
        );
    }

    #[test]
    fn a_promotion_changes_only_the_resource_line() {
        let lines = change_lines(
            &resource("Secondary", "UpToDate"),
            &resource("Primary", "UpToDate"),
            1,
        );
        assert_eq!(lines, ["change resource name:r0 role:Primary suspended:no"]);
        assert!(
            change_lines(
                &resource("Primary", "UpToDate"),
                &resource("Primary", "UpToDate"),
                1
            )
            .is_empty()
        );
    }

    #[test]
    fn resync_states_and_progress_are_peer_device_changes() {
        let established = {
            let mut r = resource("Primary", "UpToDate");
            r.peer.connection = "Connected".into();
            r.peer.role = "Secondary".into();
            r.peer.disk = "UpToDate".into();
            r.peer.replication = "Established".into();
            r
        };
        let mut syncing = established.clone();
        syncing.peer.replication = "SyncSource".into();
        syncing.peer.disk = "Inconsistent".into();
        syncing.peer.done = Some(0.0);
        assert_eq!(
            change_lines(&established, &syncing, 1),
            [
                "change peer-device name:r0 peer-node-id:1 conn-name:ha2 volume:0 \
              replication:SyncSource peer-disk:Inconsistent done:0.00"
            ]
        );
        let mut further = syncing.clone();
        further.peer.done = Some(42.1);
        assert_eq!(
            change_lines(&syncing, &further, 1),
            [
                "change peer-device name:r0 peer-node-id:1 conn-name:ha2 volume:0 \
              replication:SyncSource peer-disk:Inconsistent done:42.10"
            ]
        );
        assert_eq!(
            change_lines(&further, &established, 1),
            [
                "change peer-device name:r0 peer-node-id:1 conn-name:ha2 volume:0 \
              replication:Established peer-disk:UpToDate"
            ]
        );
    }
}
