//! A simulated LAN: instances of one or more virtual routers on a shared
//! segment, a simulated clock and a fixed delivery delay. Adverts are
//! encoded and decoded for real, so the codec and the receive checks run
//! on every delivery; each reaches the nodes of its own VRID. Nodes may be
//! joined into sync groups, which are brought into line after anything
//! happened to one of their members.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vrrp::{Action, Authentication, Config, Instance, Received, State, SyncGroup, Version};

/// Time a frame takes from sender to receivers.
pub const LATENCY: Duration = Duration::from_millis(1);

/// One host on the segment.
pub struct Node {
    pub config: Config,
    /// `None` while the host is down.
    pub instance: Option<Instance>,
    /// Whether the virtual addresses are on this host's interface.
    pub holds_addresses: bool,
    /// Every state this host entered, with the time.
    pub history: Vec<(Instant, State)>,
}

struct Frame {
    deliver_at: Instant,
    to: usize,
    source: IpAddr,
    destination: IpAddr,
    bytes: Vec<u8>,
}

pub struct Lan {
    pub now: Instant,
    pub nodes: Vec<Node>,
    in_flight: Vec<Frame>,
    /// Each sync group with its member nodes, in ascending order.
    groups: Vec<(SyncGroup, Vec<usize>)>,
    /// Every state a group entered: (time, group index, state).
    pub group_history: Vec<(Instant, usize, State)>,
}

/// A node's configuration: VRID 51, one virtual address, host address
/// 10.0.0.(index + 1).
pub fn node_config(index: usize, version: Version, interval_centis: u16, priority: u8) -> Config {
    let host = u8::try_from(index + 1).expect("small LAN");
    Config {
        version,
        vrid: 51,
        priority,
        advert_interval_centis: interval_centis,
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))],
        primary_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
        auth: Authentication::None,
        unicast_peers: Vec::new(),
        unicast_skip_hop_limit_check: false,
        v3_ipv4_pseudo_header: true,
        announce_delay: Duration::from_secs(5),
        announce_refresh: None,
    }
}

impl Lan {
    pub fn new(configs: Vec<Config>) -> Lan {
        Lan {
            now: Instant::now(),
            nodes: configs
                .into_iter()
                .map(|config| Node {
                    config,
                    instance: None,
                    holds_addresses: false,
                    history: Vec::new(),
                })
                .collect(),
            in_flight: Vec::new(),
            groups: Vec::new(),
            group_history: Vec::new(),
        }
    }

    /// Joins `members` (ascending node indices) into a sync group; returns
    /// the group's index.
    pub fn add_group(&mut self, name: &str, members: Vec<usize>) -> usize {
        assert!(members.windows(2).all(|pair| pair[0] < pair[1]));
        self.groups
            .push((SyncGroup::new(name, members.len()), members));
        self.groups.len() - 1
    }

    /// Health tracking's verdict for node `index`.
    pub fn set_fault(&mut self, index: usize, faulty: bool) {
        let now = self.now;
        if let Some(instance) = self.nodes[index].instance.as_mut() {
            instance.set_fault(now, faulty);
            self.drain(index);
        }
    }

    /// The states group `group` entered, in order.
    pub fn group_states(&self, group: usize) -> Vec<State> {
        self.group_history
            .iter()
            .filter(|(_, g, _)| *g == group)
            .map(|(_, _, state)| *state)
            .collect()
    }

    pub fn start(&mut self, index: usize) {
        if self.nodes[index].instance.is_some() {
            return;
        }
        let mut instance = Instance::new(self.nodes[index].config.clone());
        instance.start(self.now);
        self.nodes[index].instance = Some(instance);
        self.drain(index);
    }

    /// A clean shutdown: priority 0 advert, addresses released.
    pub fn stop(&mut self, index: usize) {
        if let Some(instance) = self.nodes[index].instance.as_mut() {
            instance.stop();
            self.drain(index);
            self.nodes[index].instance = None;
        }
    }

    /// The host dies: nothing more is sent, nothing is cleaned up.
    pub fn crash(&mut self, index: usize) {
        self.nodes[index].instance = None;
        self.nodes[index].holds_addresses = false;
    }

    pub fn set_priority(&mut self, index: usize, priority: u8) {
        let now = self.now;
        if let Some(instance) = self.nodes[index].instance.as_mut() {
            instance.set_priority(now, priority);
            self.drain(index);
        }
    }

    pub fn instance(&self, index: usize) -> Option<&Instance> {
        self.nodes[index].instance.as_ref()
    }

    /// Indices of the running hosts that are Master.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.instance(i).is_some_and(|x| x.state() == State::Master))
            .collect()
    }

    /// Indices of the running hosts that hold the virtual addresses.
    pub fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].instance.is_some() && self.nodes[i].holds_addresses)
            .collect()
    }

    /// The first time, at or after `since`, that host `index` entered `state`.
    pub fn entered(&self, index: usize, state: State, since: Instant) -> Option<Instant> {
        self.nodes[index]
            .history
            .iter()
            .find(|(at, s)| *s == state && *at >= since)
            .map(|(at, _)| *at)
    }

    /// Runs the LAN until `duration` has passed.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            let next_frame = self.in_flight.iter().map(|f| f.deliver_at).min();
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.instance.as_ref().and_then(Instance::poll_timeout))
                .min();
            let Some(next) = next_frame.into_iter().chain(next_timer).min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.step();
        }
        self.now = end;
    }

    fn step(&mut self) {
        let now = self.now;
        let (due, later): (Vec<Frame>, Vec<Frame>) =
            self.in_flight.drain(..).partition(|f| f.deliver_at <= now);
        self.in_flight = later;
        for frame in due {
            if let Some(instance) = self.nodes[frame.to].instance.as_mut() {
                let packet = Received {
                    source: frame.source,
                    destination: frame.destination,
                    hop_limit: 255,
                    message: &frame.bytes,
                };
                instance
                    .handle_packet(now, &packet)
                    .expect("adverts between correctly configured peers pass every check");
                self.drain(frame.to);
            }
        }
        for index in 0..self.nodes.len() {
            if let Some(instance) = self.nodes[index].instance.as_mut()
                && instance.poll_timeout().is_some_and(|t| t <= now)
            {
                instance.handle_timeout(now);
                self.drain(index);
            }
        }
    }

    /// Carries out every action host `index` asked for, then lets its sync
    /// groups react (and carries out what their members then ask for).
    fn drain(&mut self, index: usize) {
        self.drain_node(index);
        for group in 0..self.groups.len() {
            if self.groups[group].1.contains(&index) {
                self.sync_group(group);
            }
        }
    }

    fn sync_group(&mut self, group: usize) {
        let now = self.now;
        // Each round can only move members one step; two suffice.
        for _ in 0..4 {
            let (sync_group, members) = &mut self.groups[group];
            let mut instances: Vec<&mut Instance> = self
                .nodes
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| members.contains(i))
                .filter_map(|(_, node)| node.instance.as_mut())
                .collect();
            if instances.len() != members.len() {
                return;
            }
            if let Some(state) = sync_group.sync(now, &mut instances) {
                self.group_history.push((now, group, state));
            }
            let before: usize = self.nodes.iter().map(|n| n.history.len()).sum();
            for member in self.groups[group].1.clone() {
                self.drain_node(member);
            }
            let after: usize = self.nodes.iter().map(|n| n.history.len()).sum();
            if before == after {
                return;
            }
        }
    }

    fn drain_node(&mut self, index: usize) {
        let now = self.now;
        while let Some(action) = self.nodes[index]
            .instance
            .as_mut()
            .and_then(Instance::poll_action)
        {
            match action {
                Action::Send(advert) => {
                    let instance = self.nodes[index].instance.as_ref().expect("running");
                    let source = instance.config().primary_address;
                    for destination in instance.config().destinations() {
                        let bytes = instance.encode(&advert, destination);
                        let vrid = advert.vrid;
                        for to in (0..self.nodes.len())
                            .filter(|&to| to != index && self.nodes[to].config.vrid == vrid)
                        {
                            let addressed = destination.is_multicast()
                                || destination == self.nodes[to].config.primary_address;
                            if addressed {
                                self.in_flight.push(Frame {
                                    deliver_at: now + LATENCY,
                                    to,
                                    source,
                                    destination,
                                    bytes: bytes.clone(),
                                });
                            }
                        }
                    }
                }
                Action::AddAddresses => self.nodes[index].holds_addresses = true,
                Action::RemoveAddresses => self.nodes[index].holds_addresses = false,
                Action::Announce => {}
                Action::StateChanged { to, .. } => self.nodes[index].history.push((now, to)),
            }
        }
    }
}
