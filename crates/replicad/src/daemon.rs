//! The daemon: every resource of the configuration, the control socket
//! that `haadm` talks to, and the events stream. Resources start down, as
//! DRBD's do until `drbdadm up`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use hapair_config::ResourceConfig;
use log::{error, info, warn};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};

use crate::control::{self, Failure, Reply, Request, ResourceStatus};
use crate::report;
use crate::resource::{Refusal, Resource};
use crate::serve::Notice;

/// Event lines kept for a slow `haadm events` reader before it misses some.
const EVENT_BACKLOG: usize = 4096;
/// How often the state is looked at for changes nobody announces (the
/// progress of a resync or verify).
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

struct Registry {
    resources: BTreeMap<String, Resource>,
    /// The last status each resource reported, to turn changes into events.
    reported: BTreeMap<String, ResourceStatus>,
    events: broadcast::Sender<String>,
    notices: mpsc::UnboundedSender<Notice>,
}

type Shared = Arc<Mutex<Registry>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Registry> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Publishes `change` lines for every resource whose status moved.
    fn publish_changes(&mut self) {
        for (name, resource) in &self.resources {
            let now = resource.status();
            if let Some(before) = self.reported.get(name) {
                for line in report::change_lines(before, &now, resource.peer_node_id()) {
                    // Nobody listening is fine.
                    let _ = self.events.send(line);
                }
            }
            self.reported.insert(name.clone(), now);
        }
    }

    fn statuses(&self, only: Option<&str>) -> Vec<ResourceStatus> {
        self.resources
            .values()
            .filter(|r| only.is_none_or(|name| r.config.name == name))
            .map(Resource::status)
            .collect()
    }

    fn execute(&mut self, request: Request) -> Reply {
        let result = match &request {
            Request::Status { resource } => match resource {
                Some(name) if !self.resources.contains_key(name) => Err(unknown(name)),
                _ => Ok(()),
            },
            Request::Events => Ok(()),
            Request::Up { resource } => {
                let notices = self.notices.clone();
                self.with(resource, |r| r.up(notices))
            }
            Request::Down { resource } => self.with(resource, Resource::down),
            Request::Primary { resource, force } => self.with(resource, |r| r.primary(*force)),
            Request::Secondary { resource } => self.with(resource, Resource::secondary),
            Request::Connect {
                resource,
                discard_my_data,
            } => {
                let notices = self.notices.clone();
                self.with(resource, |r| r.connect(*discard_my_data, notices))
            }
            Request::Disconnect { resource } => self.with(resource, Resource::disconnect),
            Request::ResumeIo { resource } => self.with(resource, Resource::resume_io),
            Request::Verify { resource } => self.with(resource, Resource::verify),
            Request::Invalidate { resource } => self.with(resource, Resource::invalidate),
            Request::InvalidateRemote { resource } => {
                self.with(resource, Resource::invalidate_remote)
            }
            Request::NewCurrentUuid {
                resource,
                clear_bitmap,
            } => self.with(resource, |r| r.new_current_uuid(*clear_bitmap)),
        };
        self.publish_changes();
        match result {
            Ok(()) => {
                let only = match &request {
                    Request::Up { resource }
                    | Request::Down { resource }
                    | Request::Primary { resource, .. }
                    | Request::Secondary { resource }
                    | Request::Connect { resource, .. }
                    | Request::Disconnect { resource }
                    | Request::ResumeIo { resource }
                    | Request::Verify { resource }
                    | Request::Invalidate { resource }
                    | Request::InvalidateRemote { resource }
                    | Request::NewCurrentUuid { resource, .. } => Some(resource.as_str()),
                    Request::Status { resource } => resource.as_deref(),
                    Request::Events => None,
                };
                Reply::Done {
                    resources: self.statuses(only),
                }
            }
            Err((failure, message)) => Reply::Failed { failure, message },
        }
    }

    fn with(
        &mut self,
        name: &str,
        action: impl FnOnce(&mut Resource) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let resource = self.resources.get_mut(name).ok_or_else(|| unknown(name))?;
        action(resource)
    }
}

fn unknown(name: &str) -> Refusal {
    (
        Failure::Invalid,
        format!("{name} is not a resource of this replicad's configuration"),
    )
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(resources: Vec<ResourceConfig>, node: String, run_dir: PathBuf) -> Result<()> {
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let (notices, mut notice_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(EVENT_BACKLOG);
    let mut registry = Registry {
        resources: BTreeMap::new(),
        reported: BTreeMap::new(),
        events,
        notices,
    };
    for config in resources {
        let name = config.name.clone();
        let resource = Resource::new(config, node.clone(), run_dir.clone())
            .map_err(|(_, message)| anyhow::anyhow!(message))?;
        registry.resources.insert(name, resource);
    }
    registry.publish_changes();
    let shared: Shared = Arc::new(Mutex::new(registry));
    let socket_path = control::socket_path(&run_dir);
    let _ = fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot listen on {}", socket_path.display()))?;
    info!(
        "replicad for node {node}: control socket {}",
        socket_path.display()
    );
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            _ = progress.tick() => lock(&shared).publish_changes(),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(serve_control(stream, Arc::clone(&shared))); }
                Err(error) => warn!("control socket: {error}"),
            },
            Some(notice) = notice_rx.recv() => {
                let mut registry = lock(&shared);
                match notice {
                    Notice::Detached { error } => error!("disk detached: {error}"),
                    // Nobody listening is fine.
                    Notice::Event(line) => drop(registry.events.send(line)),
                    Notice::LinkChanged | Notice::Suspension => {}
                }
                registry.publish_changes();
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping: closing every resource cleanly");
    let mut registry = lock(&shared);
    for resource in registry.resources.values_mut() {
        resource.shut_down();
    }
    let _ = fs::remove_file(&socket_path);
    Ok(())
}

/// One `haadm` connection: one request, one reply; or the events stream.
async fn serve_control(stream: UnixStream, shared: Shared) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let Ok(Some(line)) = lines.next_line().await else {
        return;
    };
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(error) => {
            let reply = Reply::Failed {
                failure: Failure::Invalid,
                message: format!("not a control request: {error}"),
            };
            let _ = write_line(
                &mut writer,
                &serde_json::to_string(&reply).expect("serializes"),
            )
            .await;
            return;
        }
    };
    if request == Request::Events {
        stream_events(&mut writer, &shared).await;
        return;
    }
    let reply = tokio::task::block_in_place(|| lock(&shared).execute(request));
    let _ = write_line(
        &mut writer,
        &serde_json::to_string(&reply).expect("serializes"),
    )
    .await;
}

async fn write_line(writer: &mut (impl AsyncWriteExt + Unpin), line: &str) -> std::io::Result<()> {
    writer.write_all(line.as_bytes()).await?;
    writer.write_all(b"\n").await
}

/// `exists` lines for the present state, `exists -`, then every change.
async fn stream_events(writer: &mut (impl AsyncWriteExt + Unpin), shared: &Shared) {
    let (initial, mut changes) = {
        let registry = lock(shared);
        let lines: Vec<String> = registry
            .resources
            .values()
            .flat_map(|resource| {
                report::event_lines("exists", &resource.status(), resource.peer_node_id())
            })
            .collect();
        (lines, registry.events.subscribe())
    };
    for line in initial.iter().map(String::as_str).chain(["exists -"]) {
        if write_line(writer, line).await.is_err() {
            return;
        }
    }
    loop {
        match changes.recv().await {
            Ok(line) => {
                if write_line(writer, &line).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!("an events reader fell {missed} lines behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
