//! The daemon's event loop: it feeds packets, timer expiries, health
//! tracking results and signals to the `vrrp` core instances (and their
//! sync groups) and carries out the actions they return (send adverts, add
//! or remove addresses, announce them, run hooks, rewrite the state file).
//! All protocol decisions are the core's; [`health`] gathers what the
//! instances track.

mod health;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hapair_config::{MasterHookFailure, SyncGroup, VrrpConfig, VrrpInstance};
use log::{debug, error, info, warn};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use vrrp::track::{Effect, HookHold};
use vrrp::{Action, Authentication, DropReason, Instance, Received, State, Version};

use crate::netlink::{LinkChange, Netlink, choose_primary, watch_links};
use crate::network::{Datagram, VrrpSocket};
use crate::notify;
use crate::state_file::{self, StateFile};
use health::{Health, HealthEvent, Reading, tracked_interfaces};

/// Counters reach the state file at most this often; state changes at once.
const COUNTER_REFRESH: Duration = Duration::from_secs(1);
/// Extra time given to stop hooks at shutdown beyond their own timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A socket is shared by every instance on one interface and family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SocketKey {
    ifindex: u32,
    ipv6: bool,
}

struct SharedSocket {
    socket: Arc<VrrpSocket>,
    joined_group: bool,
}

/// One configured instance and where it lives.
struct Running {
    config: VrrpInstance,
    core: Instance,
    socket: SocketKey,
    /// Interface index of each virtual address, in config order.
    vip_interfaces: Vec<(u32, String)>,
    holds_addresses: bool,
    /// FAULT after a failed `notify_master` (`master_hook_failure: fault`).
    hook_hold: HookHold,
    /// Counts the times it became Master, so that a hook outcome is
    /// matched to the mastership it ran for.
    masterships: u64,
    /// Its tracked things as last evaluated.
    readings: Vec<Reading>,
}

/// A sync group and the state machine that keeps its members together.
struct RunningGroup {
    config: SyncGroup,
    core: vrrp::SyncGroup,
}

/// A `notify_master` that failed or timed out.
struct MasterHookFailed {
    instance: String,
    mastership: u64,
    outcome: hookrun::Outcome,
}

pub struct Daemon {
    config_path: PathBuf,
    node: String,
    state_path: PathBuf,
    netlink: Netlink,
    notifier: notify::Notifier,
    sockets: HashMap<SocketKey, SharedSocket>,
    instances: Vec<Running>,
    groups: Vec<RunningGroup>,
    health: Health,
    hook_failures: mpsc::UnboundedSender<MasterHookFailed>,
    packets: mpsc::UnboundedSender<(SocketKey, Datagram)>,
    unmatched: BTreeMap<DropReason, u64>,
    /// Counters changed since the state file was last written.
    counters_dirty: bool,
    state_written_at: Instant,
}

impl Daemon {
    /// Sets up every instance of `config` and runs until SIGTERM or SIGINT.
    pub async fn run(
        config_path: PathBuf,
        node: String,
        run_dir: PathBuf,
        config: VrrpConfig,
    ) -> Result<()> {
        let (packets, mut incoming) = mpsc::unbounded_channel();
        let (health_events, mut health_incoming) = mpsc::unbounded_channel();
        let (link_changes, mut link_incoming) = mpsc::unbounded_channel();
        let (hook_failures, mut hook_failures_incoming) = mpsc::unbounded_channel();
        let netlink = Netlink::connect()?;
        // Subscribed first, so that no change is missed while listing.
        watch_links(link_changes)?;
        let links = netlink.link_states().await?;
        let health = Health::new(&config, links, health_events, Instant::now())?;
        let state_path = state_file::path(&run_dir);
        let mut daemon = Daemon {
            config_path,
            node,
            notifier: notify::Notifier::start(&config.hooks, &run_dir, &state_path)?,
            state_path,
            netlink,
            sockets: HashMap::new(),
            instances: Vec::new(),
            groups: Vec::new(),
            health,
            hook_failures,
            packets,
            unmatched: BTreeMap::new(),
            counters_dirty: false,
            state_written_at: Instant::now(),
        };
        for instance in config.instances {
            daemon.add_instance(instance).await?;
        }
        daemon.set_groups(config.sync_groups);
        daemon.sync_groups().await;
        daemon.write_state();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut timer = netsys::PreciseTimer::new()?;
        loop {
            let wake = daemon.next_wake();
            tokio::select! {
                _ = timer.sleep_until(wake) => daemon.on_timers().await,
                Some((key, datagram)) = incoming.recv() => daemon.on_datagram(key, datagram).await,
                Some(event) = health_incoming.recv() => daemon.on_health(event).await,
                Some(change) = link_incoming.recv() => daemon.on_link(change).await,
                Some(failed) = hook_failures_incoming.recv() => daemon.on_master_hook_failed(failed).await,
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => daemon.reload().await,
            }
        }
        daemon.shutdown().await;
        Ok(())
    }

    /// Resolves an instance's interfaces and addresses, clears stale
    /// virtual addresses and starts it.
    async fn add_instance(&mut self, config: VrrpInstance) -> Result<()> {
        let context = || format!("instance {}", config.name);
        let ifindex = self
            .netlink
            .interface_index(&config.interface)
            .await
            .with_context(context)?;
        let ipv6 = config.virtual_ipaddress[0].address.is_ipv6();
        let mut vip_interfaces = Vec::new();
        for vip in &config.virtual_ipaddress {
            let name = vip.dev.clone().unwrap_or_else(|| config.interface.clone());
            let index = self
                .netlink
                .interface_index(&name)
                .await
                .with_context(context)?;
            // A node that was killed may have left its virtual addresses
            // behind: holding them as a Backup would duplicate them.
            let present = self.netlink.addresses(index).await?;
            if present.iter().any(|a| a.address == vip.address) {
                warn!(
                    "{}: removing {} left on {name} by an earlier run",
                    config.name, vip.address
                );
                self.netlink
                    .remove_address(index, vip.address, vip.prefix_len)
                    .await?;
            }
            vip_interfaces.push((index, name));
        }
        let addresses: Vec<IpAddr> = config.virtual_ipaddress.iter().map(|v| v.address).collect();
        let primary_address = match config.unicast_src_ip {
            Some(address) => address,
            None => {
                let present = self.netlink.addresses(ifindex).await?;
                choose_primary(&present, ipv6, &addresses).with_context(|| {
                    format!("instance {}: interface {}", config.name, config.interface)
                })?
            }
        };
        let key = SocketKey { ifindex, ipv6 };
        self.open_socket(key, &config.interface, config.unicast_peer.is_empty())
            .with_context(context)?;
        let core_config = vrrp::Config {
            version: if config.version == 3 {
                Version::V3
            } else {
                Version::V2
            },
            vrid: config.virtual_router_id,
            priority: config.priority,
            advert_interval_centis: config.advert_int_centis,
            preempt: config.preempt,
            preempt_delay: config.preempt_delay,
            addresses,
            primary_address,
            auth: config
                .auth_pass
                .as_deref()
                .and_then(Authentication::password)
                .unwrap_or(Authentication::None),
            unicast_peers: config.unicast_peer.clone(),
            unicast_skip_hop_limit_check: config.unicast_skip_ttl_check,
            v3_ipv4_pseudo_header: !config.v3_checksum_as_v2,
            announce_delay: config.garp_master_delay,
            announce_refresh: config.garp_master_refresh,
        };
        info!(
            "{}: VRID {} on {} from {primary_address}, priority {}, {}",
            config.name,
            config.virtual_router_id,
            config.interface,
            config.priority,
            if config.unicast_peer.is_empty() {
                "multicast".to_string()
            } else {
                format!("unicast to {:?}", config.unicast_peer)
            }
        );
        let now = Instant::now();
        let hook_hold = HookHold::new(config.master_hook_retry);
        let mut running = Running {
            core: Instance::new(core_config),
            config,
            socket: key,
            vip_interfaces,
            holds_addresses: false,
            hook_hold,
            masterships: 0,
            readings: Vec::new(),
        };
        // Tracking decides the priority and FAULT before it starts.
        evaluate(&self.health, &mut running, now);
        running.core.start(now);
        self.instances.push(running);
        self.carry_out(self.instances.len() - 1).await;
        Ok(())
    }

    fn open_socket(&mut self, key: SocketKey, ifname: &str, multicast: bool) -> Result<()> {
        if let Some(shared) = self.sockets.get_mut(&key) {
            if multicast && !shared.joined_group {
                // Re-open with the group joined: simpler than joining late.
                shared.socket = Arc::new(VrrpSocket::open(ifname, key.ifindex, key.ipv6, true)?);
                shared.joined_group = true;
                self.spawn_reader(key);
            }
            return Ok(());
        }
        let socket = VrrpSocket::open(ifname, key.ifindex, key.ipv6, multicast)
            .with_context(|| format!("cannot open a VRRP socket on {ifname}"))?;
        self.sockets.insert(
            key,
            SharedSocket {
                socket: Arc::new(socket),
                joined_group: multicast,
            },
        );
        self.spawn_reader(key);
        Ok(())
    }

    /// Moves every packet of a socket to the event loop.
    fn spawn_reader(&self, key: SocketKey) {
        let socket = Arc::clone(&self.sockets[&key].socket);
        let packets = self.packets.clone();
        tokio::spawn(async move {
            loop {
                match socket.receive().await {
                    Ok(datagram) => {
                        if packets.send((key, datagram)).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        warn!("receive error on interface {}: {error}", key.ifindex);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                if Arc::strong_count(&socket) == 1 {
                    // The socket was replaced: this reader is done.
                    return;
                }
            }
        });
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let counters = self
            .counters_dirty
            .then_some(self.state_written_at + COUNTER_REFRESH);
        self.instances
            .iter()
            .filter_map(|r| r.core.poll_timeout())
            .chain(
                self.instances
                    .iter()
                    .filter_map(|r| r.hook_hold.poll_timeout()),
            )
            .chain(self.health.poll_timeout())
            .chain(counters)
            .min()
            .unwrap_or(far)
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        for index in 0..self.instances.len() {
            if self.instances[index]
                .core
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.instances[index].core.handle_timeout(now);
                self.settle(index).await;
            }
        }
        let mut health_changed = self.health.handle_timeout(now);
        for running in &mut self.instances {
            if running.hook_hold.handle_timeout(now) {
                info!(
                    "{}: master_hook_retry passed; leaving FAULT to try again",
                    running.config.name
                );
                health_changed = true;
            }
        }
        if health_changed {
            self.reevaluate().await;
        }
        if self.counters_dirty && now >= self.state_written_at + COUNTER_REFRESH {
            self.write_state();
        }
    }

    async fn on_datagram(&mut self, key: SocketKey, datagram: Datagram) {
        let now = Instant::now();
        let received = match &datagram.ipv6_meta {
            Some(meta) => Received {
                source: meta.source,
                destination: meta.destination,
                hop_limit: meta.hop_limit,
                message: &datagram.bytes,
            },
            None => match Received::from_ipv4_packet(&datagram.bytes) {
                Some(received) => received,
                None => return self.count_unmatched(DropReason::IpHeader),
            },
        };
        let Some(&vrid) = received.message.get(1) else {
            return self.count_unmatched(DropReason::Length);
        };
        let mut matched = false;
        for index in 0..self.instances.len() {
            let running = &mut self.instances[index];
            if running.socket != key || running.config.virtual_router_id != vrid {
                continue;
            }
            matched = true;
            if received.source == running.core.config().primary_address {
                continue;
            }
            let master_before = running.core.master_address();
            if let Err(reason) = running.core.handle_packet(now, &received) {
                debug!(
                    "{}: dropped a packet from {}: {}",
                    running.config.name,
                    received.source,
                    reason.name()
                );
            }
            let master_changed = running.core.master_address() != master_before;
            self.counters_dirty = true;
            self.settle(index).await;
            if master_changed {
                self.write_state();
            }
        }
        if !matched {
            self.count_unmatched(DropReason::Vrid);
        }
    }

    fn count_unmatched(&mut self, reason: DropReason) {
        *self.unmatched.entry(reason).or_default() += 1;
        self.counters_dirty = true;
    }

    async fn on_health(&mut self, event: HealthEvent) {
        match event {
            HealthEvent::ScriptDone {
                name,
                generation,
                outcome,
            } => {
                if self.health.handle_script_done(&name, generation, &outcome) {
                    self.reevaluate().await;
                }
            }
        }
    }

    async fn on_link(&mut self, change: LinkChange) {
        if self.health.handle_link(&change.name, change.up) {
            let tracked = self
                .instances
                .iter()
                .any(|running| tracked_interfaces(&running.config).any(|t| t.name == change.name));
            if tracked {
                let word = if change.up { "up" } else { "down" };
                info!("tracked interface {}: link {word}", change.name);
                self.reevaluate().await;
            }
        }
    }

    /// `master_hook_failure: fault`: the instance goes to FAULT for
    /// `master_hook_retry`, if it still holds the mastership the hook ran for.
    async fn on_master_hook_failed(&mut self, failed: MasterHookFailed) {
        let now = Instant::now();
        let Some(running) = self
            .instances
            .iter_mut()
            .find(|r| r.config.name == failed.instance)
        else {
            return;
        };
        if running.masterships != failed.mastership || running.core.state() != State::Master {
            info!(
                "{}: notify_master {}, but the instance is no longer the Master it ran for",
                failed.instance, failed.outcome
            );
            return;
        }
        error!(
            "{}: notify_master {}; master_hook_failure is fault: entering FAULT (addresses              released, priority 0 advertised) for {:?}, then trying again",
            failed.instance, failed.outcome, running.config.master_hook_retry
        );
        running.hook_hold.fail(now);
        self.reevaluate().await;
    }

    /// Applies what health tracking says to every instance (priority,
    /// FAULT), keeps sync groups together and carries out the results.
    async fn reevaluate(&mut self) {
        let now = Instant::now();
        for index in 0..self.instances.len() {
            evaluate(&self.health, &mut self.instances[index], now);
            self.carry_out(index).await;
        }
        self.sync_groups().await;
        self.write_state();
    }

    /// Carries out an instance's actions, then lets its sync group react.
    async fn settle(&mut self, index: usize) {
        self.carry_out(index).await;
        let name = &self.instances[index].config.name;
        if self
            .groups
            .iter()
            .any(|group| group.config.group.contains(name))
        {
            self.sync_groups().await;
        }
    }

    fn set_groups(&mut self, groups: Vec<SyncGroup>) {
        self.groups = groups
            .into_iter()
            .map(|config| RunningGroup {
                core: vrrp::SyncGroup::new(config.name.clone(), config.group.len()),
                config,
            })
            .collect();
    }

    /// Brings every sync group's members into line, carries out the
    /// members' actions, then runs the group hooks of groups whose state
    /// changed (after the addresses moved, as instance hooks).
    async fn sync_groups(&mut self) {
        let now = Instant::now();
        for group in 0..self.groups.len() {
            let RunningGroup { config, core } = &mut self.groups[group];
            let mut members: Vec<&mut Instance> = self
                .instances
                .iter_mut()
                .filter(|running| config.group.contains(&running.config.name))
                .map(|running| &mut running.core)
                .collect();
            if members.len() != config.group.len() {
                // A member failed to start: the group cannot act as one.
                continue;
            }
            let changed = core.sync(now, &mut members);
            for index in 0..self.instances.len() {
                if self.groups[group]
                    .config
                    .group
                    .contains(&self.instances[index].config.name)
                {
                    self.carry_out(index).await;
                }
            }
            if let Some(state) = changed {
                // The group's hooks may read its new state from the file.
                self.write_state();
                let config = &self.groups[group].config;
                info!("sync group {}: {}", config.name, notify::state_word(state));
                let hooks = notify::NotifyHooks::of_group(config);
                let transition =
                    notify::Transition::group(&config.name, notify::state_word(state), hooks);
                drop(self.notifier.notify(&transition));
            }
        }
    }

    /// Carries out every action the instance's core has queued.
    async fn carry_out(&mut self, index: usize) {
        while let Some(action) = self.instances[index].core.poll_action() {
            let running = &self.instances[index];
            let name = running.config.name.clone();
            match action {
                Action::Send(advert) => {
                    let socket = &self.sockets[&running.socket].socket;
                    let source = running.core.config().primary_address;
                    for destination in running.core.config().destinations() {
                        let bytes = running.core.encode(&advert, destination);
                        if let Err(error) = socket.send(source, destination, &bytes) {
                            warn!("{name}: cannot send an advert to {destination}: {error}");
                        }
                    }
                    self.counters_dirty = true;
                }
                Action::AddAddresses => {
                    for (vip, (ifindex, _)) in running
                        .config
                        .virtual_ipaddress
                        .iter()
                        .zip(&running.vip_interfaces)
                    {
                        if let Err(error) = self.netlink.add_address(*ifindex, vip).await {
                            error!("{name}: {error:#}");
                        }
                    }
                    self.instances[index].holds_addresses = true;
                }
                Action::RemoveAddresses => {
                    for (vip, (ifindex, _)) in running
                        .config
                        .virtual_ipaddress
                        .iter()
                        .zip(&running.vip_interfaces)
                    {
                        if let Err(error) = self
                            .netlink
                            .remove_address(*ifindex, vip.address, vip.prefix_len)
                            .await
                        {
                            error!("{name}: {error:#}");
                        }
                    }
                    self.instances[index].holds_addresses = false;
                }
                Action::Announce => announce(running),
                Action::StateChanged { from, to } => {
                    let priority = running.core.priority();
                    info!(
                        "{name}: {} -> {} (priority {priority})",
                        from.name(),
                        notify::state_word(to)
                    );
                    // The hooks may read the new state from the file.
                    self.write_state();
                    let running = &self.instances[index];
                    let transition = notify::Transition::instance(&running.config, to, priority);
                    let own_hook = self.notifier.notify(&transition);
                    if to == State::Master {
                        self.instances[index].masterships += 1;
                        let running = &self.instances[index];
                        if running.config.master_hook_failure == MasterHookFailure::Fault
                            && let Some(outcome) = own_hook
                        {
                            self.watch_master_hook(name, running.masterships, outcome);
                        }
                    }
                }
            }
        }
    }

    /// Reports a failed `notify_master` to the event loop.
    fn watch_master_hook(
        &self,
        instance: String,
        mastership: u64,
        outcome: tokio::sync::oneshot::Receiver<hookrun::Outcome>,
    ) {
        let failures = self.hook_failures.clone();
        tokio::spawn(async move {
            // No outcome: the daemon is stopping.
            if let Ok(outcome) = outcome.await
                && !outcome.success()
            {
                let _ = failures.send(MasterHookFailed {
                    instance,
                    mastership,
                    outcome,
                });
            }
        });
    }

    /// SIGHUP: re-reads the config; instances whose config did not change
    /// keep their state, the others are stopped and started anew. Tracked
    /// scripts and files whose definition did not change keep their state.
    async fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.config_path.display());
        let config = match crate::load_config(&self.config_path, &self.node) {
            Ok(config) => config,
            Err(error) => {
                error!("reload refused, keeping the running configuration: {error}");
                return;
            }
        };
        self.health.reconfigure(&config, Instant::now());
        let mut index = 0;
        while index < self.instances.len() {
            if config.instances.contains(&self.instances[index].config) {
                index += 1;
            } else {
                info!(
                    "{}: removed or changed, stopping it",
                    self.instances[index].config.name
                );
                self.instances[index].core.stop();
                self.carry_out(index).await;
                self.instances.remove(index);
            }
        }
        for instance in config.instances {
            if !self.instances.iter().any(|r| r.config == instance) {
                let name = instance.name.clone();
                if let Err(error) = self.add_instance(instance).await {
                    error!("{name}: cannot start: {error:#}");
                }
            }
        }
        self.set_groups(config.sync_groups);
        self.reevaluate().await;
    }

    /// SIGTERM: every Master advertises priority 0 and gives up its
    /// addresses, stop hooks run (with their timeout), then the daemon exits.
    async fn shutdown(&mut self) {
        info!("stopping: releasing virtual addresses");
        for index in 0..self.instances.len() {
            self.instances[index].core.stop();
            self.carry_out(index).await;
        }
        for group in &self.groups {
            let hooks = notify::NotifyHooks::of_group(&group.config);
            drop(self.notifier.notify(&notify::Transition::group(
                &group.config.name,
                "STOP",
                hooks,
            )));
        }
        let longest = self
            .instances
            .iter()
            .map(|r| r.config.notify_timeout)
            .chain(self.groups.iter().map(|g| g.config.notify_timeout))
            .max()
            .unwrap_or_default();
        self.notifier
            .shutdown(longest + hookrun::KILL_GRACE + SHUTDOWN_GRACE)
            .await;
        self.write_state();
    }

    fn write_state(&mut self) {
        let instances = self
            .instances
            .iter()
            .map(|r| {
                let counters = r.core.counters();
                state_file::InstanceState {
                    name: r.config.name.clone(),
                    state: r.core.state().name(),
                    priority: r.config.priority,
                    effective_priority: r.core.priority(),
                    master: r.core.master_address(),
                    vips: if r.holds_addresses {
                        r.config
                            .virtual_ipaddress
                            .iter()
                            .map(|v| format!("{}/{}", v.address, v.prefix_len))
                            .collect()
                    } else {
                        Vec::new()
                    },
                    trackers: tracker_states(r),
                    counters: state_file::Counters {
                        adverts_sent: counters.adverts_sent,
                        adverts_received: counters.adverts_received,
                        transitions: counters.transitions,
                        drops: state_file::named_drops(&counters.drops),
                    },
                }
            })
            .collect();
        let file = StateFile {
            node: self.node.clone(),
            pid: std::process::id(),
            instances,
            sync_groups: self
                .groups
                .iter()
                .map(|group| state_file::GroupState {
                    name: group.config.name.clone(),
                    state: group.core.state().name(),
                    members: group.config.group.clone(),
                })
                .collect(),
            unmatched_drops: state_file::named_drops(&self.unmatched),
        };
        if let Err(error) = file.write(&self.state_path) {
            error!("{error:#}");
        }
        self.counters_dirty = false;
        self.state_written_at = Instant::now();
    }
}

/// The state file's view of an instance's trackers.
fn tracker_states(running: &Running) -> Vec<state_file::TrackerState> {
    let tracked = running
        .readings
        .iter()
        .map(|reading| state_file::TrackerState {
            kind: reading.kind,
            name: reading.name.clone(),
            weight: reading.weight,
            reverse: reading.reverse,
            health: reading.health.name(),
            value: reading.value,
            priority_change: match reading.effect {
                Effect::Priority(change) => change,
                Effect::Fault => 0,
            },
            fault: reading.effect == Effect::Fault,
        });
    let hook = running
        .hook_hold
        .active()
        .then(|| state_file::TrackerState {
            kind: "notify_master",
            name: "notify_master".to_owned(),
            weight: 0,
            reverse: false,
            health: vrrp::track::Health::Failed.name(),
            value: None,
            priority_change: 0,
            fault: true,
        });
    tracked.chain(hook).collect()
}

/// Reads an instance's tracked things and applies the verdict to its core:
/// the effective priority, and FAULT while a tracker or a failed
/// `notify_master` demands it.
fn evaluate(health: &Health, running: &mut Running, now: Instant) {
    running.readings = health.readings(&running.config);
    let hook_fault = running.hook_hold.active().then_some(Effect::Fault);
    let verdict = vrrp::track::verdict(
        running.config.priority,
        running
            .readings
            .iter()
            .map(|reading| reading.effect)
            .chain(hook_fault),
    );
    if verdict.priority != running.core.priority() {
        info!(
            "{}: effective priority {} (configured {})",
            running.config.name, verdict.priority, running.config.priority
        );
    }
    running.core.set_priority(now, verdict.priority);
    if verdict.fault != running.core.own_fault() {
        let faults: Vec<String> = running
            .readings
            .iter()
            .filter(|reading| reading.effect == Effect::Fault)
            .map(|reading| format!("{} {}", reading.kind, reading.name))
            .chain(hook_fault.map(|_| "a failed notify_master".to_owned()))
            .collect();
        if verdict.fault {
            warn!("{}: FAULT: {}", running.config.name, faults.join(", "));
        } else {
            info!("{}: no fault left", running.config.name);
        }
    }
    running.core.set_fault(now, verdict.fault);
}

/// Sends `garp_master_repeat` gratuitous ARPs / unsolicited neighbour
/// advertisements for each virtual address, from its interface.
fn announce(running: &Running) {
    for (vip, (ifindex, ifname)) in running
        .config
        .virtual_ipaddress
        .iter()
        .zip(&running.vip_interfaces)
    {
        let result = netsys::hardware_address(ifname).and_then(|mac| {
            let frame = match vip.address {
                IpAddr::V4(address) => vrrp::announce::gratuitous_arp(mac, address),
                IpAddr::V6(address) => vrrp::announce::unsolicited_neighbour_advert(mac, address),
            };
            let socket = netsys::PacketSocket::open(*ifindex)?;
            (0..running.config.garp_master_repeat).try_for_each(|_| socket.send(&frame))
        });
        if let Err(error) = result {
            warn!(
                "{}: cannot announce {} on {ifname}: {error}",
                running.config.name, vip.address
            );
        }
    }
}
