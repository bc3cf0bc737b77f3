//! One virtual router: the state machine of RFC 5798 §6.4 (and RFC 3768's
//! for version 2), with an explicit clock.
//!
//! The daemon calls [`Instance::start`], [`Instance::stop`] (no clock needed),
//! [`Instance::handle_packet`], [`Instance::handle_timeout`],
//! [`Instance::set_priority`] and [`Instance::set_fault`] with the current
//! time, then drains [`Instance::poll_action`] and sleeps until
//! [`Instance::poll_timeout`]. Nothing here reads a clock or touches a
//! socket, so the same code runs on a simulated LAN in the tests.
//!
//! Beyond the RFC there is keepalived's FAULT state: an instance whose
//! health tracking failed neither listens nor advertises and holds no
//! addresses; a Master entering it advertises priority 0 so that a Backup
//! takes over at once. Members of a sync group ([`crate::sync_group`]) are
//! also driven by their group: they may be forced to Master, Backup or FAULT.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::check::{self, DropReason, Received};
use crate::packet::{Advertisement, Authentication, Checksum, MULTICAST_V4, MULTICAST_V6, Version};

/// The priority of the address owner, which starts as Master at once.
pub const OWNER_PRIORITY: u8 = 255;
/// The priority a Master advertises when it stops, so that a Backup takes
/// over after its skew instead of its whole Master_Down_Interval.
pub const STOPPING_PRIORITY: u8 = 0;

/// What one virtual router is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    pub vrid: u8,
    /// 1..=255; 255 only for the owner of the addresses.
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (VRRPv2: a multiple of 100).
    pub advert_interval_centis: u16,
    /// Whether a higher-priority Backup takes over from a lower-priority Master.
    pub preempt: bool,
    /// How long a Backup waits, once it has heard a lower-priority Master,
    /// before it preempts it (keepalived's `preempt_delay`).
    pub preempt_delay: Duration,
    /// The virtual addresses, all of the family of `primary_address`.
    pub addresses: Vec<IpAddr>,
    /// This router's own address on the interface: the source of its
    /// adverts and the tie-breaker at equal priority (for IPv6, the
    /// link-local address when multicasting).
    pub primary_address: IpAddr,
    /// VRRPv2 only.
    pub auth: Authentication,
    /// Empty for multicast; otherwise the only addresses adverts go to and
    /// are accepted from.
    pub unicast_peers: Vec<IpAddr>,
    /// Accept unicast adverts whatever their TTL (they may cross routers).
    pub unicast_skip_hop_limit_check: bool,
    /// VRRPv3 over IPv4: include the pseudo-header in the checksum
    /// (keepalived's default) or not (RFC 9568, Cisco, Juniper).
    pub v3_ipv4_pseudo_header: bool,
    /// Announcements (gratuitous ARP / unsolicited NA) on becoming Master:
    /// one burst at once, a second after `announce_delay`, then one every
    /// `announce_refresh` while Master.
    pub announce_delay: Duration,
    pub announce_refresh: Option<Duration>,
}

impl Config {
    /// The checksum a message between these two addresses carries.
    pub fn checksum_for(&self, source: IpAddr, destination: IpAddr) -> Checksum {
        let pseudo = match (self.version, source) {
            (Version::V2, _) => false,
            (Version::V3, IpAddr::V4(_)) => self.v3_ipv4_pseudo_header,
            (Version::V3, IpAddr::V6(_)) => true,
        };
        if pseudo {
            Checksum::PseudoHeader {
                source,
                destination,
            }
        } else {
            Checksum::MessageOnly
        }
    }

    /// Where adverts go: the unicast peers, or the VRRP multicast group.
    pub fn destinations(&self) -> Vec<IpAddr> {
        if !self.unicast_peers.is_empty() {
            return self.unicast_peers.clone();
        }
        match self.primary_address {
            IpAddr::V4(_) => vec![IpAddr::V4(MULTICAST_V4)],
            IpAddr::V6(_) => vec![IpAddr::V6(MULTICAST_V6)],
        }
    }

    fn advert_interval(&self) -> Duration {
        centis(self.advert_interval_centis)
    }
}

/// The states of RFC 5798 §6.4, and keepalived's FAULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// Health tracking failed (or the sync group's did): no adverts are
    /// sent or heard and the addresses are released until it recovers.
    Fault,
}

impl State {
    /// keepalived's word for the state, as hooks and state files show it.
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What the daemon must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert to every destination (see [`Config::destinations`]),
    /// encoded with [`Instance::encode`].
    Send(Advertisement),
    /// Put the virtual addresses on the interface.
    AddAddresses,
    /// Take the virtual addresses off the interface.
    RemoveAddresses,
    /// Tell the LAN that the virtual addresses are here (gratuitous ARP,
    /// unsolicited neighbour advertisement).
    Announce,
    /// The state changed; hooks and state files follow. Comes after the
    /// addresses were added (entering Master) or removed (leaving it).
    StateChanged { from: State, to: State },
}

/// What happened to the packets of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub drops: BTreeMap<DropReason, u64>,
}

/// One virtual router's state machine.
#[derive(Debug)]
pub struct Instance {
    config: Config,
    priority: u8,
    state: State,
    /// Master_Adver_Interval: learned from the Master in VRRPv3.
    master_interval: Duration,
    master_address: Option<IpAddr>,
    advert_timer: Option<Instant>,
    master_down_timer: Option<Instant>,
    announce_timer: Option<Instant>,
    /// When a lower-priority Master was first heard while waiting out the
    /// preempt delay: preemption is allowed from `preempt_after`.
    preempt_after: Option<Instant>,
    /// What the running Master_Down timer counts from, so that a priority
    /// change can recompute it.
    down_timer_basis: Option<DownTimerBasis>,
    /// The latest advert heard from the Master (its time and priority),
    /// also one a preempting Backup ignored.
    last_advert: Option<(Instant, u8)>,
    /// Health tracking says this instance is faulty.
    own_fault: bool,
    /// Another member of this instance's sync group is faulty.
    group_fault: bool,
    /// In a sync group: an expired Master_Down timer only makes the
    /// instance *want* Master; the group decides.
    sync_gated: bool,
    wants_master: bool,
    actions: VecDeque<Action>,
    counters: Counters,
}

impl Instance {
    pub fn new(config: Config) -> Instance {
        Instance {
            priority: config.priority,
            master_interval: config.advert_interval(),
            config,
            state: State::Initialize,
            master_address: None,
            advert_timer: None,
            master_down_timer: None,
            announce_timer: None,
            preempt_after: None,
            down_timer_basis: None,
            last_advert: None,
            own_fault: false,
            group_fault: false,
            sync_gated: false,
            wants_master: false,
            actions: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The priority in force (the configured one unless changed since).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The current Master's address, if known.
    pub fn master_address(&self) -> Option<IpAddr> {
        self.master_address
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether health tracking made this instance faulty (see
    /// [`Instance::set_fault`]); a sync group's fault does not count here.
    pub fn own_fault(&self) -> bool {
        self.own_fault
    }

    /// In a sync group: the Master_Down timer expired and the instance
    /// would become Master, if its group lets it.
    pub fn wants_master(&self) -> bool {
        self.wants_master
    }

    /// Skew_Time: how much sooner a higher-priority Backup takes over.
    /// VRRPv2: (256 − Priority) / 256 s. VRRPv3: scaled by the Master's
    /// advertisement interval.
    pub fn skew_time(&self) -> Duration {
        let behind = u32::from(256 - u16::from(self.priority));
        match self.config.version {
            Version::V2 => Duration::from_secs(1) * behind / 256,
            Version::V3 => self.master_interval * behind / 256,
        }
    }

    /// Master_Down_Interval: 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew_time()
    }

    /// The advertisement at the priority in force.
    fn advertisement(&self, priority: u8) -> Advertisement {
        Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_centis: self.config.advert_interval_centis,
            addresses: self.config.addresses.clone(),
            auth: self.config.auth,
        }
    }

    /// Encodes an advert of this instance for one destination.
    pub fn encode(&self, advert: &Advertisement, destination: IpAddr) -> Vec<u8> {
        advert.encode(
            self.config
                .checksum_for(self.config.primary_address, destination),
        )
    }

    /// The Startup event: the owner becomes Master, any other a Backup.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if self.faulted() {
            self.transition(State::Fault);
        } else {
            self.enter_service(now);
        }
    }

    /// Startup, or recovery from FAULT: the owner becomes Master at once,
    /// any other a Backup.
    fn enter_service(&mut self, now: Instant) {
        if self.priority == OWNER_PRIORITY {
            self.become_master(now);
        } else {
            self.master_interval = self.config.advert_interval();
            self.master_address = None;
            self.become_backup(now);
        }
    }

    /// The Shutdown event: a Master advertises priority 0 and gives the
    /// addresses up; either way the instance returns to Initialize.
    pub fn stop(&mut self) {
        if self.state == State::Master {
            self.send(self.advertisement(STOPPING_PRIORITY));
            self.actions.push_back(Action::RemoveAddresses);
        }
        self.clear_timers();
        self.master_address = None;
        self.transition(State::Initialize);
    }

    fn clear_timers(&mut self) {
        self.advert_timer = None;
        self.master_down_timer = None;
        self.announce_timer = None;
        self.preempt_after = None;
        self.down_timer_basis = None;
        self.last_advert = None;
        self.wants_master = false;
    }

    /// Health tracking's verdict: `true` puts the instance into FAULT (a
    /// Master first advertises priority 0 and releases its addresses);
    /// `false`, once no fault is left, returns it to Backup (the owner to
    /// Master).
    pub fn set_fault(&mut self, now: Instant, faulty: bool) {
        self.own_fault = faulty;
        self.apply_fault(now);
    }

    /// Sets whether another member of this instance's sync group is
    /// faulty, which makes this one faulty too.
    pub fn set_group_fault(&mut self, now: Instant, faulty: bool) {
        self.group_fault = faulty;
        self.apply_fault(now);
    }

    fn faulted(&self) -> bool {
        self.own_fault || self.group_fault
    }

    fn apply_fault(&mut self, now: Instant) {
        match (self.state, self.faulted()) {
            (State::Initialize, _) | (State::Fault, true) => {}
            (State::Fault, false) => self.enter_service(now),
            (State::Master, true) => {
                self.send(self.advertisement(STOPPING_PRIORITY));
                self.actions.push_back(Action::RemoveAddresses);
                self.enter_fault();
            }
            (State::Backup, true) => self.enter_fault(),
            (State::Backup | State::Master, false) => {}
        }
    }

    fn enter_fault(&mut self) {
        self.clear_timers();
        self.master_address = None;
        self.transition(State::Fault);
    }

    /// Makes the instance take part in a sync group: an expired
    /// Master_Down timer then only sets [`Instance::wants_master`], and the
    /// group calls [`Instance::force_master`] once every member wants it.
    pub fn set_sync_gated(&mut self, gated: bool) {
        self.sync_gated = gated;
    }

    /// The sync group makes a Backup Master.
    pub fn force_master(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.become_master(now);
        }
    }

    /// The sync group makes a Master a Backup: it releases its addresses
    /// and stops advertising (without a priority-0 advert, as keepalived).
    pub fn force_backup(&mut self, now: Instant) {
        if self.state == State::Master {
            self.actions.push_back(Action::RemoveAddresses);
            self.become_backup(now);
        }
    }

    /// Changes the priority in force (health tracking). It takes effect at
    /// once: a Master advertises the new value right away (and keeps
    /// advertising, even when now lower than a Backup's, until a Backup
    /// preempts it); a Backup's Master_Down timer is recomputed with the new
    /// Skew_Time, and one that now outranks the Master it heard and may
    /// preempt lets that timer run out from the last advert it accepted.
    pub fn set_priority(&mut self, now: Instant, priority: u8) {
        if priority == self.priority || priority == STOPPING_PRIORITY {
            return;
        }
        self.priority = priority;
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.recompute_down_timer(now),
            State::Master => self.advertise(now),
        }
    }

    fn recompute_down_timer(&mut self, now: Instant) {
        let outranks_master = self
            .last_advert
            .is_some_and(|(_, master)| self.config.preempt && self.priority > master);
        let basis = match (self.down_timer_basis, self.last_advert) {
            // The Master's adverts count again, as if the latest was accepted.
            (Some(DownTimerBasis::Interval(since)), Some((heard, _))) if !outranks_master => {
                DownTimerBasis::Interval(since.max(heard))
            }
            (Some(basis), _) => basis,
            (None, _) => DownTimerBasis::Interval(now),
        };
        self.arm_down_timer(basis);
    }

    /// Starts the Master_Down timer from `basis`.
    fn arm_down_timer(&mut self, basis: DownTimerBasis) {
        self.down_timer_basis = Some(basis);
        self.master_down_timer = Some(match basis {
            DownTimerBasis::Interval(since) => since + self.master_down_interval(),
            DownTimerBasis::Skew(since) => since + self.skew_time(),
        });
    }

    /// A packet for this instance's VRID arrived. A packet that fails a
    /// receive check is counted under its reason and otherwise ignored.
    pub fn handle_packet(&mut self, now: Instant, packet: &Received) -> Result<(), DropReason> {
        let advert = match check::validate(&self.config, packet) {
            Ok(advert) => advert,
            Err(reason) => {
                *self.counters.drops.entry(reason).or_default() += 1;
                return Err(reason);
            }
        };
        self.counters.adverts_received += 1;
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_heard(now, packet.source, &advert),
            State::Master => self.master_heard(now, packet.source, &advert),
        }
        Ok(())
    }

    fn backup_heard(&mut self, now: Instant, source: IpAddr, advert: &Advertisement) {
        if advert.priority == STOPPING_PRIORITY {
            self.last_advert = None;
            self.arm_down_timer(DownTimerBasis::Skew(now));
            return;
        }
        self.last_advert = Some((now, advert.priority));
        let lower = advert.priority < self.priority;
        if lower && self.config.preempt {
            let preempt_at = *self
                .preempt_after
                .get_or_insert(now + self.config.preempt_delay);
            if now >= preempt_at {
                // Ignored: the down timer runs out and this Backup preempts.
                return;
            }
        } else if !lower {
            self.preempt_after = None;
        }
        self.master_interval = self.advert_interval_of(advert);
        self.wants_master = false;
        self.arm_down_timer(DownTimerBasis::Interval(now));
        self.master_address = Some(source);
    }

    fn master_heard(&mut self, now: Instant, source: IpAddr, advert: &Advertisement) {
        let yields = advert.priority > self.priority
            || (advert.priority == self.priority
                && address_rank(source) > address_rank(self.config.primary_address));
        if advert.priority == STOPPING_PRIORITY || !yields {
            // A leaving peer, or one that should not be Master: tell it at once.
            self.advertise(now);
            return;
        }
        self.master_interval = self.advert_interval_of(advert);
        self.master_address = Some(source);
        self.actions.push_back(Action::RemoveAddresses);
        self.become_backup(now);
        self.last_advert = Some((now, advert.priority));
    }

    /// VRRPv3 learns the Master's interval; VRRPv2 checked it equals ours.
    fn advert_interval_of(&self, advert: &Advertisement) -> Duration {
        match self.config.version {
            Version::V2 => self.config.advert_interval(),
            Version::V3 => centis(advert.interval_centis.max(1)),
        }
    }

    /// Fires whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.master_down_timer.is_some_and(|t| t <= now) {
            if self.sync_gated {
                // The group decides; ask again after another interval.
                self.wants_master = true;
                self.arm_down_timer(DownTimerBasis::Interval(now));
            } else {
                self.become_master(now);
            }
        }
        if self.advert_timer.is_some_and(|t| t <= now) {
            self.advertise(now);
        }
        if let Some(due) = self.announce_timer.filter(|t| *t <= now) {
            self.actions.push_back(Action::Announce);
            self.announce_timer = self
                .config
                .announce_refresh
                .map(|every| due.max(now) + every);
        }
    }

    /// The earliest time [`Instance::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.advert_timer,
            self.master_down_timer,
            self.announce_timer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing the daemon must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn become_master(&mut self, now: Instant) {
        self.master_down_timer = None;
        self.down_timer_basis = None;
        self.last_advert = None;
        self.wants_master = false;
        self.preempt_after = None;
        self.master_address = Some(self.config.primary_address);
        self.advertise(now);
        self.actions.push_back(Action::AddAddresses);
        self.actions.push_back(Action::Announce);
        self.announce_timer = Some(now + self.config.announce_delay);
        self.transition(State::Master);
    }

    fn become_backup(&mut self, now: Instant) {
        self.advert_timer = None;
        self.announce_timer = None;
        self.wants_master = false;
        self.arm_down_timer(DownTimerBasis::Interval(now));
        self.transition(State::Backup);
    }

    fn advertise(&mut self, now: Instant) {
        self.send(self.advertisement(self.priority));
        self.advert_timer = Some(now + self.config.advert_interval());
    }

    fn send(&mut self, advert: Advertisement) {
        self.counters.adverts_sent += 1;
        self.actions.push_back(Action::Send(advert));
    }

    fn transition(&mut self, to: State) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.counters.transitions += 1;
        self.actions.push_back(Action::StateChanged { from, to });
    }
}

/// What a Backup's Master_Down timer counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownTimerBasis {
    /// A full Master_Down_Interval from this time (an accepted advert, or
    /// entering Backup).
    Interval(Instant),
    /// Skew_Time from this time: the Master said it is leaving (priority 0).
    Skew(Instant),
}

/// An address as the unsigned number RFC 5798 compares for the tie-break.
fn address_rank(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn centis(value: u16) -> Duration {
    Duration::from_millis(u64::from(value) * 10)
}
