//! How resource state reads for people and scripts, in DRBD 9's words:
//! `haadm status` (drbdsetup's layout) and `haadm events` (events2 lines).

use crate::control::ResourceStatus;

/// `haadm status`: one block per resource, a blank line between them.
/// ```text
/// r0 role:Primary
///   disk:UpToDate
///   ha2 role:Secondary
///     replication:SyncSource peer-disk:Inconsistent done:42.10
/// ```
/// A link left StandAlone by a split brain says `split-brain:yes`.
pub fn status_text(resources: &[ResourceStatus]) -> String {
    resources
        .iter()
        .map(|r| {
            let peer = if r.peer.connection == "Connected" {
                let replication = match r.peer.replication.as_str() {
                    "Off" | "Established" => String::new(),
                    other => format!("replication:{other} "),
                };
                let done = r
                    .peer
                    .done
                    .map_or(String::new(), |d| format!(" done:{d:.2}"));
                format!(
                    "  {} role:{}\n    {replication}peer-disk:{}{done}\n",
                    r.peer.name, r.peer.role, r.peer.disk
                )
            } else if r.peer.split_brain {
                format!(
                    "  {} connection:{} split-brain:yes\n",
                    r.peer.name, r.peer.connection
                )
            } else {
                format!("  {} connection:{}\n", r.peer.name, r.peer.connection)
            };
            format!("{} role:{}\n  disk:{}\n{peer}", r.name, r.role, r.disk)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The events2 lines that describe `resource`, each prefixed by `action`
/// (`exists`, `create`, `change` or `destroy`).
pub fn event_lines(action: &str, resource: &ResourceStatus) -> Vec<String> {
    let name = &resource.name;
    let peer = &resource.peer;
    vec![
        format!(
            "{action} resource name:{name} role:{} suspended:no",
            resource.role
        ),
        format!(
            "{action} connection name:{name} conn-name:{} connection:{} role:{}",
            peer.name, peer.connection, peer.role
        ),
        format!(
            "{action} device name:{name} volume:0 disk:{} open:{}",
            resource.disk,
            if resource.open_count > 0 { "yes" } else { "no" }
        ),
        format!(
            "{action} peer-device name:{name} conn-name:{} volume:0 replication:{} peer-disk:{}",
            peer.name, peer.replication, peer.disk
        ),
    ]
}

/// The `change` lines between two snapshots of one resource: only the
/// objects whose line differs.
pub fn change_lines(before: &ResourceStatus, after: &ResourceStatus) -> Vec<String> {
    event_lines("exists", before)
        .into_iter()
        .zip(event_lines("change", after))
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
            size: 1 << 30,
            open_count: 0,
            peer: PeerStatus {
                name: "ha2".into(),
                connection: "StandAlone".into(),
                role: "Unknown".into(),
                disk: "DUnknown".into(),
                replication: "Off".into(),
                done: None,
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
        syncing.peer.replication = "Established".into();
        syncing.peer.disk = "UpToDate".into();
        syncing.peer.done = None;
        assert_eq!(
            status_text(&[syncing]),
            "r0 role:Primary\n  disk:UpToDate\n  ha2 role:Secondary\n    peer-disk:UpToDate\n"
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
        );
        assert_eq!(lines, ["change resource name:r0 role:Primary suspended:no"]);
        assert!(
            change_lines(
                &resource("Primary", "UpToDate"),
                &resource("Primary", "UpToDate")
            )
            .is_empty()
        );
    }
}
