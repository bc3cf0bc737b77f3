//! One resource's life on this node: down → up (attach: open and check the
//! metadata, recover after a crash) → Secondary ⇄ Primary → down, with the
//! rules DRBD users expect (no promotion without UpToDate data unless
//! forced, no promotion while the peer is Primary, no demotion while held
//! open, no `down` while Primary). While up, the peer link ([`crate::peer`])
//! connects, mirrors and resyncs.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hapair_config::ResourceConfig;
use hapair_config::resource::MetaDisk;
use log::{info, warn};
use replica::activity_log::AlError;
use replica::generation::{GenerationIds, random_id};
use replica::store::{self, AppliedLog, Metadata, VolumePaths};
use replica::superblock::Flags;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::control::{Failure, ResourceStatus};
use crate::deadline::MetadataFile;
use crate::helpers::{Handler, Helpers};
use crate::peer::{self, LinkContext, PeerLink};
use crate::serve::{self, DiskPolicy, Journal, Mirror, Notice, Volume};

/// A refused or failed command, with the exit code class and the message.
pub type Refusal = (Failure, String);

/// How long a write waits before retrying when the activity log is full
/// of extents with writes in flight.
const ACTIVITY_LOG_FULL_RETRY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// A volume's metadata as the daemon keeps it: its writes give up after
/// `disk-timeout`.
pub type VolumeMetadata = Metadata<MetadataFile>;

/// The metadata, shared by the daemon, the write path and the peer link.
pub struct MetadataJournal {
    metadata: Mutex<VolumeMetadata>,
    /// A new data generation was started since the peer was last
    /// connected (by a promotion or a write without the peer).
    pub generation_started_without_peer: AtomicBool,
}

impl MetadataJournal {
    pub fn lock(&self) -> MutexGuard<'_, VolumeMetadata> {
        self.metadata.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn io_error(error: store::Error) -> io::Error {
    io::Error::other(error.to_string())
}

impl Journal for MetadataJournal {
    fn before_write(&self, range: Range<u64>) -> io::Result<()> {
        loop {
            match self.lock().activity_log_begin(range.clone()) {
                Ok(()) => return Ok(()),
                Err(store::Error::ActivityLog {
                    error: AlError::Full { .. },
                    ..
                }) => std::thread::sleep(ACTIVITY_LOG_FULL_RETRY),
                Err(error) => return Err(io_error(error)),
            }
        }
    }

    fn before_write_if_hot(&self, range: Range<u64>) -> io::Result<bool> {
        self.lock().activity_log_begin_hot(range).map_err(io_error)
    }

    fn out_of_sync(&self, range: Range<u64>) {
        let mut metadata = self.lock();
        // The first write without the peer starts a new generation, so that
        // the next connect sees which node changed the data.
        if !self
            .generation_started_without_peer
            .swap(true, Ordering::SeqCst)
            && let Err(error) = metadata.update_superblock(|state| {
                state.generations.on_first_write_without_peer(random_id())
            })
        {
            warn!("{error}");
        }
        // No peer has these blocks: they are out of sync until one does.
        if let Err(error) = metadata.mark_dirty(range) {
            warn!("{error}");
        }
    }

    fn after_write(&self, range: Range<u64>) {
        let mut metadata = self.lock();
        if let Err(error) = metadata.activity_log_end(range) {
            warn!("{error}");
        }
    }
}

/// A resource that is up.
struct Attached {
    journal: Arc<MetadataJournal>,
    volume: Arc<Volume>,
    role: Arc<Mutex<Role>>,
    open: Arc<AtomicU32>,
    listener: JoinHandle<()>,
    socket_path: PathBuf,
    /// The connection task while the link is not StandAlone.
    link_task: Option<JoinHandle<()>>,
    helpers: Arc<Helpers>,
}

pub struct Resource {
    pub config: ResourceConfig,
    node: String,
    run_dir: PathBuf,
    attached: Option<Attached>,
    link: Arc<PeerLink>,
}

/// The NBD socket of a resource.
pub fn nbd_socket_path(run_dir: &Path, resource: &str) -> PathBuf {
    run_dir.join(format!("{resource}.nbd"))
}

fn refused(message: String) -> Refusal {
    (Failure::Refused, message)
}

fn io_failure(error: impl std::fmt::Display) -> Refusal {
    (Failure::Io, error.to_string())
}

impl Resource {
    pub fn new(
        config: ResourceConfig,
        node: String,
        run_dir: PathBuf,
    ) -> Result<Resource, Refusal> {
        config
            .local(&node)
            .map_err(|e| (Failure::Invalid, e.to_string()))?;
        let (peer_name, _) = config
            .peer(&node)
            .map_err(|e| (Failure::Invalid, e.to_string()))?;
        let link = PeerLink::new(&config, peer_name);
        Ok(Resource {
            config,
            node,
            run_dir,
            attached: None,
            link,
        })
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    /// The peer's node id as events show it (`peer-node-id:N`): its place
    /// among the resource's nodes sorted by name, counting from 0, since
    /// hapair's configuration has no node ids of its own.
    pub fn peer_node_id(&self) -> usize {
        let (peer, _) = self.config.peer(&self.node).expect("checked in new");
        self.config
            .nodes
            .keys()
            .position(|name| name == peer)
            .expect("the peer is one of the nodes")
    }

    fn paths(&self) -> VolumePaths {
        let local = self
            .config
            .local(&self.node)
            .expect("checked in Resource::new");
        VolumePaths {
            resource: self.config.name.clone(),
            backing: local.disk.clone(),
            meta_disk: match &local.meta_disk {
                MetaDisk::Internal => store::MetaDisk::Internal,
                MetaDisk::External(path) => store::MetaDisk::External(path.clone()),
            },
        }
    }

    fn attached(&self) -> Result<&Attached, Refusal> {
        self.attached.as_ref().ok_or_else(|| {
            refused(format!(
                "{} is down: bring it up first (haadm up {})",
                self.name(),
                self.name()
            ))
        })
    }

    /// Attaches the disk: opens and checks the metadata, recovers from a
    /// crash, and opens the NBD socket (which refuses clients until Primary).
    pub fn up(&mut self, notices: mpsc::UnboundedSender<Notice>) -> Result<(), Refusal> {
        if self.attached.is_some() {
            return Ok(());
        }
        let paths = self.paths();
        let mut metadata = Metadata::open(&paths).map_err(io_failure)?;
        if metadata.needs_crash_recovery() {
            let recovery = metadata.apply_activity_log().map_err(io_failure)?;
            let what = match recovery.activity_log {
                AppliedLog::WasClean => "nothing was in flight".to_string(),
                AppliedLog::HotExtents(n) => {
                    format!("{n} hot extent(s) of the activity log marked out of sync")
                }
                AppliedLog::WholeDevice => {
                    "the activity log was unreadable: the whole device is marked out of sync".into()
                }
            };
            let who = if recovery.crashed_primary {
                "crashed while Primary"
            } else {
                "was not shut down cleanly"
            };
            warn!("{}: {who}; {what}", self.name());
        }
        let file = serve::open_backing(&paths.backing).map_err(|e| {
            io_failure(format!(
                "{}: cannot open {}: {e}",
                self.name(),
                paths.backing.display()
            ))
        })?;
        let size = metadata.usable_size();
        let disk_timeout = self.config.disk.disk_timeout;
        let metadata = metadata.map_storage(|file| MetadataFile::new(file, disk_timeout));
        let journal = Arc::new(MetadataJournal {
            metadata: Mutex::new(metadata),
            generation_started_without_peer: AtomicBool::new(false),
        });
        let helpers = Arc::new(Helpers::new(
            self.config.clone(),
            self.node.clone(),
            notices.clone(),
            &self.run_dir,
        ));
        let volume = Arc::new(Volume::new(
            self.name().to_string(),
            file,
            size,
            Arc::clone(&journal) as Arc<dyn Journal>,
            Arc::clone(&self.link) as Arc<dyn Mirror>,
            DiskPolicy {
                on_io_error: self.config.disk.on_io_error,
                disk_timeout,
            },
            Arc::clone(&helpers),
        ));
        let socket_path = nbd_socket_path(&self.run_dir, self.name());
        let _ = fs::remove_file(&socket_path);
        let listener = UnixListener::bind(&socket_path).map_err(|e| {
            io_failure(format!(
                "{}: cannot listen on {}: {e}",
                self.name(),
                socket_path.display()
            ))
        })?;
        let role = Arc::new(Mutex::new(Role::Secondary));
        let open = Arc::new(AtomicU32::new(0));
        let listener = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&volume),
            Arc::clone(&role),
            Arc::clone(&open),
            self.node.clone(),
        ));
        info!("{}: up, {} bytes, Secondary", self.name(), size);
        self.attached = Some(Attached {
            journal,
            volume,
            role,
            open,
            listener,
            socket_path,
            link_task: None,
            helpers,
        });
        self.connect(false, notices)
    }

    /// Starts the peer link (again), e.g. after a split brain was
    /// resolved by hand; `discard_my_data` makes this node the one whose
    /// changes a split brain drops.
    pub fn connect(
        &mut self,
        discard_my_data: bool,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Result<(), Refusal> {
        let name = self.name().to_string();
        let attached = self.attached.as_mut().ok_or_else(|| {
            refused(format!(
                "{name} is down: bring it up first (haadm up {name})"
            ))
        })?;
        if let Some(task) = attached.link_task.take() {
            if !task.is_finished() && !discard_my_data {
                attached.link_task = Some(task);
                return Ok(());
            }
            task.abort();
        }
        let context = LinkContext {
            config: self.config.clone(),
            node: self.node.clone(),
            link: Arc::clone(&self.link),
            volume: Arc::clone(&attached.volume),
            journal: Arc::clone(&attached.journal),
            role: Arc::clone(&attached.role),
            helpers: Arc::clone(&attached.helpers),
            notices,
        };
        attached.link_task = Some(peer::start(context, discard_my_data));
        Ok(())
    }

    /// Stops the peer link: StandAlone until `connect`.
    pub fn disconnect(&mut self) -> Result<(), Refusal> {
        let was_connected = self.link.is_connected();
        if let Some(attached) = &mut self.attached
            && let Some(task) = attached.link_task.take()
        {
            task.abort();
            info!("{}: disconnected from the peer", self.config.name);
        }
        if let Some(attached) = &self.attached {
            let primary = *lock(&attached.role) == Role::Primary;
            peer::stopped(&self.link, Some((&attached.journal, primary)));
        } else {
            peer::stopped(&self.link, None);
        }
        if was_connected && let Some(attached) = &self.attached {
            attached.helpers.call(Handler::Disconnected);
        }
        Ok(())
    }

    /// Ends an I/O freeze of `fencing: resource-and-stonith` by hand: the
    /// operator made sure the peer is not Primary. Without a freeze, nothing
    /// happens.
    pub fn resume_io(&mut self) -> Result<(), Refusal> {
        self.attached()?;
        if self.link.suspension().resume() {
            warn!(
                "{}: I/O resumed by the operator (haadm resume-io)",
                self.name()
            );
        } else {
            info!("{}: resume-io: I/O was not suspended", self.name());
        }
        Ok(())
    }

    /// Detaches the disk; refused while Primary.
    pub fn down(&mut self) -> Result<(), Refusal> {
        let Some(attached) = &self.attached else {
            return Ok(());
        };
        if *lock(&attached.role) == Role::Primary {
            return Err(refused(format!(
                "{} is Primary: demote it first (haadm secondary {})",
                self.name(),
                self.name()
            )));
        }
        let attached = self.attached.take().expect("checked above");
        self.stop(attached)?;
        // A Secondary has no requests waiting; the next `up` starts unfrozen.
        self.link.suspension().resume();
        info!("{}: down", self.name());
        Ok(())
    }

    /// Stops serving and closes the metadata cleanly.
    fn stop(&self, attached: Attached) -> Result<(), Refusal> {
        attached.listener.abort();
        if let Some(task) = &attached.link_task {
            task.abort();
        }
        let primary = *lock(&attached.role) == Role::Primary;
        peer::stopped(&self.link, Some((&attached.journal, primary)));
        let _ = fs::remove_file(&attached.socket_path);
        if attached.volume.is_detached() {
            // The failed disk may refuse even the metadata: the next `up`
            // then treats the stop as a crash, which only adds to the resync.
            if let Err(error) = attached.journal.lock().mark_clean_shutdown() {
                warn!(
                    "{}: the detached disk's metadata could not be closed: {error}",
                    self.name()
                );
            }
            return Ok(());
        }
        attached.volume.sync().map_err(io_failure)?;
        attached
            .journal
            .lock()
            .mark_clean_shutdown()
            .map_err(io_failure)
    }

    pub fn primary(&mut self, force: bool) -> Result<(), Refusal> {
        let name = self.name().to_string();
        let attached = self.attached()?;
        if attached.volume.is_detached() {
            return Err(refused(format!(
                "{name}: cannot become Primary: the disk is Diskless (detached after an I/O error)"
            )));
        }
        if *lock(&attached.role) == Role::Primary {
            return Ok(());
        }
        if self.link.peer_is_primary() {
            // If the peer is gone (a failover's promote hook retries this),
            // its connection ends within ping-timeout and a retry passes.
            self.link.probe();
            let (peer_name, _) = self.config.peer(&self.node).expect("checked in new");
            return Err(refused(format!(
                "{name}: cannot become Primary: peer {peer_name} is Primary \
                 (demote it first: haadm secondary {name} on {peer_name})"
            )));
        }
        let disk = disk_state(&attached.journal.lock());
        if disk != "UpToDate" && !force {
            return Err((
                Failure::NeedUpToDate,
                format!(
                    "{name}: cannot become Primary: the disk is {disk}, not UpToDate \
                     (use --force only if this copy is the one to keep)"
                ),
            ));
        }
        attached
            .journal
            .lock()
            .update_superblock(|state| {
                state.flags.insert(Flags::PRIMARY);
                if force {
                    state.flags.insert(Flags::CONSISTENT);
                    state.flags.insert(Flags::WAS_UP_TO_DATE);
                }
            })
            .map_err(io_failure)?;
        // With the peer connected and in step, both keep the generation
        // they share. Without it, or when forced over data that was not
        // UpToDate, this node's data starts a generation of its own; a
        // connected peer then learns of it by a new connect decision.
        let forced_over = force && disk != "UpToDate";
        if !self.link.is_mirroring() || forced_over {
            peer::promoted_without_peer(&attached.journal).map_err(io_failure)?;
        }
        *lock(&attached.role) = Role::Primary;
        if forced_over && self.link.is_mirroring() {
            self.link.renegotiate();
        } else {
            self.link.state_changed();
        }
        info!("{name}: Primary{}", if force { " (forced)" } else { "" });
        Ok(())
    }

    pub fn secondary(&mut self) -> Result<(), Refusal> {
        let name = self.name().to_string();
        let attached = self.attached()?;
        let mut role = lock(&attached.role);
        if *role == Role::Secondary {
            return Ok(());
        }
        let open = attached.open.load(Ordering::SeqCst);
        if open > 0 {
            return Err(refused(format!(
                "{name}: cannot become Secondary: held open by {open} NBD client(s); disconnect them first"
            )));
        }
        *role = Role::Secondary;
        drop(role);
        attached.volume.sync().map_err(io_failure)?;
        // Close the epoch: its BarrierAck empties the transfer log, so a
        // later link loss does not take the last writes for unconfirmed.
        drop(self.link.barrier(false));
        let mut metadata = attached.journal.lock();
        let written = metadata
            .flush_bitmap()
            .and_then(|()| metadata.update_superblock(|state| state.flags.remove(Flags::PRIMARY)));
        drop(metadata);
        match written {
            // The failed disk may refuse even the metadata: the next `up`
            // then recovers as after a crash of the Primary.
            Err(error) if attached.volume.is_detached() => {
                warn!("{name}: the detached disk's metadata was not updated: {error}")
            }
            written => written.map_err(io_failure)?,
        }
        self.link.state_changed();
        info!("{name}: Secondary");
        Ok(())
    }

    /// The peer's name and a check that the link is Connected and idle
    /// (no resync or verify running), for verify and the invalidates.
    fn established_peer(&self, what: &str) -> Result<String, Refusal> {
        let name = self.name();
        self.attached()?;
        let (peer_name, _) = self.config.peer(&self.node).expect("checked in new");
        if self.attached()?.volume.is_detached() || self.link.peer_is_diskless() {
            let who = if self.link.peer_is_diskless() {
                peer_name
            } else {
                self.node.as_str()
            };
            return Err(refused(format!(
                "{name}: cannot {what}: {who} is Diskless (its disk was detached after an I/O error; \
                 attach it again with haadm down and up on {who})"
            )));
        }
        if !self.link.is_established() {
            return Err(refused(format!(
                "{name}: cannot {what}: the link to {peer_name} is not Connected and idle \
                 (connect it, and wait for a running resync or verify to end)"
            )));
        }
        Ok(peer_name.to_string())
    }

    /// Starts an online verify with this node as VerifyS.
    pub fn verify(&mut self) -> Result<(), Refusal> {
        let name = self.name().to_string();
        if self.config.net.verify_alg.is_none() {
            return Err((
                Failure::Invalid,
                format!(
                    "{name}: cannot verify: net.verify-alg is not set; set it to crc32c, \
                     sha256 or blake3 in the resource's configuration on both nodes"
                ),
            ));
        }
        self.established_peer("verify")?;
        self.link.start_verify();
        info!("{name}: online verify requested");
        Ok(())
    }

    /// This node's data is discarded: the whole volume becomes out of sync
    /// and Inconsistent, and the next connect makes it SyncTarget of a
    /// full resync.
    pub fn invalidate(&mut self) -> Result<(), Refusal> {
        let name = self.name().to_string();
        self.established_peer("invalidate")?;
        let attached = self.attached()?;
        if *lock(&attached.role) == Role::Primary {
            return Err(refused(format!(
                "{name}: cannot invalidate a Primary: demote it first (haadm secondary {name})"
            )));
        }
        whole_volume_out_of_sync(&attached.journal, |state| {
            state.flags.remove(Flags::CONSISTENT);
            state.flags.remove(Flags::WAS_UP_TO_DATE);
        })?;
        self.link.renegotiate();
        info!("{name}: invalidated: a full resync from the peer follows");
        Ok(())
    }

    /// The peer's data is discarded: this node starts a new generation
    /// with the whole volume out of sync, so the next connect makes the
    /// peer SyncTarget of a full resync.
    pub fn invalidate_remote(&mut self) -> Result<(), Refusal> {
        let name = self.name().to_string();
        let peer_name = self.established_peer("invalidate the peer")?;
        if self.link.peer_is_primary() {
            return Err(refused(format!(
                "{name}: cannot invalidate {peer_name}: it is Primary (demote it first: haadm secondary {name} on {peer_name})"
            )));
        }
        let attached = self.attached()?;
        if disk_state(&attached.journal.lock()) != "UpToDate" {
            return Err(refused(format!(
                "{name}: cannot invalidate {peer_name}: this node is not UpToDate, so it has no good copy to send"
            )));
        }
        whole_volume_out_of_sync(&attached.journal, |state| {
            state.generations.start_new_generation(random_id(), false);
        })?;
        self.link.renegotiate();
        info!("{name}: {peer_name} invalidated: a full resync to it follows");
        Ok(())
    }

    /// `new-current-uuid --clear-bitmap` on a fresh pair: this node starts
    /// a generation with nothing out of sync and is UpToDate; the peer
    /// adopts it from this node's State, and the initial full sync is
    /// skipped. Only for a connected pair whose metadata was just created
    /// on both nodes (whatever is on the disks is taken as identical).
    pub fn new_current_uuid(&mut self, clear_bitmap: bool) -> Result<(), Refusal> {
        let name = self.name().to_string();
        if !clear_bitmap {
            return Err((
                Failure::Invalid,
                format!(
                    "{name}: new-current-uuid is only supported with --clear-bitmap \
                     (to skip the initial sync of a fresh pair)"
                ),
            ));
        }
        let peer_name = self.established_peer("skip the initial sync")?;
        let attached = self.attached()?;
        let fresh_here = attached
            .journal
            .lock()
            .superblock()
            .state
            .generations
            .is_just_created();
        if !fresh_here || !self.link.peer_is_just_created() {
            return Err(refused(format!(
                "{name}: cannot skip the initial sync: the metadata of this node and of \
                 {peer_name} must both be just created (haadm create-md) and never synced"
            )));
        }
        let mut metadata = attached.journal.lock();
        let end = metadata.usable_size();
        metadata.clear_dirty(0..end).map_err(io_failure)?;
        metadata.flush_bitmap().map_err(io_failure)?;
        metadata
            .update_superblock(|state| {
                let mut ids = GenerationIds::just_created();
                ids.current = random_id();
                state.generations = ids;
                state.flags.insert(Flags::CONSISTENT);
                state.flags.insert(Flags::WAS_UP_TO_DATE);
            })
            .map_err(io_failure)?;
        drop(metadata);
        self.link.state_changed();
        info!("{name}: new current generation, bitmap cleared: the initial sync is skipped");
        Ok(())
    }

    /// At daemon shutdown: stop serving and close the metadata cleanly.
    pub fn shut_down(&mut self) {
        if let Some(attached) = self.attached.take()
            && let Err((_, message)) = self.stop(attached)
        {
            warn!("{}: {message}", self.name());
        }
    }

    pub fn status(&self) -> ResourceStatus {
        let (role, disk, disk_error, size, open_count, out_of_sync) = match &self.attached {
            None => (
                "Secondary".to_string(),
                "Diskless".to_string(),
                None,
                0,
                0,
                0,
            ),
            Some(attached) => {
                let role = match *lock(&attached.role) {
                    Role::Primary => "Primary",
                    Role::Secondary => "Secondary",
                };
                let metadata = attached.journal.lock();
                let disk = if attached.volume.is_detached() {
                    "Diskless".to_string()
                } else {
                    disk_state(&metadata).to_string()
                };
                (
                    role.to_string(),
                    disk,
                    attached.volume.detach_reason().map(str::to_owned),
                    attached.volume.size(),
                    attached.open.load(Ordering::SeqCst),
                    metadata.bitmap().dirty_bytes(),
                )
            }
        };
        ResourceStatus {
            name: self.name().to_string(),
            role,
            disk,
            disk_error,
            size,
            open_count,
            out_of_sync,
            suspended: self.link.suspension().is_suspended(),
            peer: self.link.status(),
        }
    }
}

/// Marks every block out of sync, durably, then changes the superblock:
/// the first step of `invalidate` and `invalidate-remote`.
fn whole_volume_out_of_sync(
    journal: &MetadataJournal,
    change: impl FnOnce(&mut replica::superblock::VolumeState),
) -> Result<(), Refusal> {
    let mut metadata = journal.lock();
    let end = metadata.usable_size();
    metadata.mark_dirty(0..end).map_err(io_failure)?;
    metadata.flush_bitmap().map_err(io_failure)?;
    metadata.update_superblock(change).map_err(io_failure)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The disk state the metadata flags describe, in DRBD's words.
pub fn disk_state(metadata: &VolumeMetadata) -> &'static str {
    let flags = metadata.superblock().state.flags;
    if flags.contains(Flags::CONSISTENT) && flags.contains(Flags::WAS_UP_TO_DATE) {
        "UpToDate"
    } else if flags.contains(Flags::CONSISTENT) {
        "Consistent"
    } else {
        "Inconsistent"
    }
}

/// Accepts NBD clients: served while Primary, refused with the reason
/// while Secondary.
async fn accept_loop(
    listener: UnixListener,
    volume: Arc<Volume>,
    role: Arc<Mutex<Role>>,
    open: Arc<AtomicU32>,
    node: String,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!("{}: NBD accept failed: {error}", volume.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut export = nbd::Export::new(volume.name.clone(), volume.size());
        // fdatasync on the one backing file covers every connection's writes.
        export.multi_conn = true;
        export.description = Some(format!("hapair resource {} on {node}", volume.name));
        if *lock(&role) != Role::Primary {
            export.unavailable = Some(format!(
                "{} is Secondary on {node}: promote it first (haadm primary {})",
                volume.name, volume.name
            ));
        }
        if let Some(reason) = &export.unavailable {
            info!("{}: refusing an NBD client: {reason}", volume.name);
        }
        let serving = export.unavailable.is_none();
        if serving {
            open.fetch_add(1, Ordering::SeqCst);
        }
        let (volume, role, open) = (Arc::clone(&volume), Arc::clone(&role), Arc::clone(&open));
        tokio::spawn(async move {
            let still_primary = || *lock(&role) == Role::Primary;
            serve::serve_connection(stream, export, volume, still_primary).await;
            if serving {
                open.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}
