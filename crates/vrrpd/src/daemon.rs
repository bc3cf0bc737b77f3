//! The daemon's event loop: it feeds packets, timer expiries and signals
//! to the `vrrp` core instances and carries out the actions they return
//! (send adverts, add or remove addresses, announce them, run hooks,
//! rewrite the state file). All protocol decisions are the core's.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hapair_config::{VrrpConfig, VrrpInstance};
use hookrun::HookRunner;
use log::{debug, error, info, warn};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use vrrp::{Action, Authentication, DropReason, Instance, Received, Version};

use crate::netlink::{Netlink, choose_primary};
use crate::network::{Datagram, VrrpSocket};
use crate::notify;
use crate::state_file::{self, StateFile};

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
}

pub struct Daemon {
    config_path: PathBuf,
    node: String,
    state_path: PathBuf,
    netlink: Netlink,
    hooks: HookRunner,
    sockets: HashMap<SocketKey, SharedSocket>,
    instances: Vec<Running>,
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
        let mut daemon = Daemon {
            config_path,
            node,
            state_path: state_file::path(&run_dir),
            netlink: Netlink::connect()?,
            hooks: HookRunner::new(),
            sockets: HashMap::new(),
            instances: Vec::new(),
            packets,
            unmatched: BTreeMap::new(),
            counters_dirty: false,
            state_written_at: Instant::now(),
        };
        for instance in config.instances {
            daemon.add_instance(instance).await?;
        }
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
        let mut core = Instance::new(core_config);
        core.start(Instant::now());
        self.instances.push(Running {
            config,
            core,
            socket: key,
            vip_interfaces,
            holds_addresses: false,
        });
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
                self.carry_out(index).await;
            }
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
            self.carry_out(index).await;
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
                    for job in notify::transition_jobs(&running.config, to, priority) {
                        // The outcome is logged by the runner; nothing waits for it here,
                        // so adverts keep flowing while a hook runs.
                        drop(self.hooks.submit(&name, job));
                    }
                    self.write_state();
                }
            }
        }
    }

    /// SIGHUP: re-reads the config; instances whose config did not change
    /// keep their state, the others are stopped and started anew.
    async fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.config_path.display());
        let config = match VrrpConfig::load(&self.config_path, Some(&self.node)) {
            Ok(config) => config,
            Err(error) => {
                error!("reload refused, keeping the running configuration: {error}");
                return;
            }
        };
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
        self.write_state();
    }

    /// SIGTERM: every Master advertises priority 0 and gives up its
    /// addresses, stop hooks run (with their timeout), then the daemon exits.
    async fn shutdown(&mut self) {
        info!("stopping: releasing virtual addresses");
        for index in 0..self.instances.len() {
            self.instances[index].core.stop();
            self.carry_out(index).await;
        }
        let longest = self
            .instances
            .iter()
            .map(|r| r.config.notify_timeout)
            .max()
            .unwrap_or_default();
        if tokio::time::timeout(
            longest + hookrun::KILL_GRACE + SHUTDOWN_GRACE,
            self.hooks.idle(),
        )
        .await
        .is_err()
        {
            warn!("stop hooks still running at exit");
        }
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
            unmatched_drops: state_file::named_drops(&self.unmatched),
        };
        if let Err(error) = file.write(&self.state_path) {
            error!("{error:#}");
        }
        self.counters_dirty = false;
        self.state_written_at = Instant::now();
    }
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
