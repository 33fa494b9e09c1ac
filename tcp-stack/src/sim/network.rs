//! The simulated network: nodes, links, the event loop in virtual time.

use super::link::{DropReason, Link, LinkConfig, LinkStats};
use super::packet::{ip_dst, Packet, Verdict};
use crate::config::Config;
use crate::stack::Stack;
use crate::state::Event;
use crate::time::Instant;
use crate::wire::MacAddr;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Index of a node in a [`Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// What the simulator needs from a node: the sans-IO driving interface of
/// [`Stack`]. Implemented by `Stack`; the simulator's own tests use a toy host.
pub trait Host {
    /// Takes one datagram arriving at `now` ([`Stack::handle_packet`]).
    fn handle_packet(&mut self, now: Instant, packet: &[u8]);
    /// Writes the next datagram due into `buf` and returns its length, or
    /// `None` when nothing is due ([`Stack::poll_transmit`]).
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// The earliest instant at which `handle_timeout` must be called, if any
    /// ([`Stack::poll_timeout`]).
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Runs the timers due at `now` ([`Stack::handle_timeout`]).
    fn handle_timeout(&mut self, now: Instant);
    /// Application events, collected by the simulator into [`Sim::events`].
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
}

impl Host for Stack {
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        Stack::handle_packet(self, now, packet)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        Stack::poll_transmit(self, now, buf)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Stack::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Stack::handle_timeout(self, now)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Stack::poll_event(self)
    }
}

/// What happened to a packet, as recorded in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// Emitted by a node's `poll_transmit` (after the hook let it through).
    Sent,
    /// Put in flight by [`Sim::inject`].
    Injected,
    /// Handed to the destination's `handle_packet`.
    Delivered,
    /// Lost, with the reason.
    Dropped(DropReason),
}

/// One line of the packet trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// When it happened (virtual time).
    pub at: Instant,
    /// What happened.
    pub event: TraceEvent,
    /// The packet, as it was at that moment.
    pub packet: Packet,
}

/// Counters of the whole network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Calls to [`Sim::step_now`].
    pub steps: u64,
    /// Datagrams emitted by the nodes.
    pub emitted: u64,
    /// Packets put in flight by [`Sim::inject`].
    pub injected: u64,
    /// Packets handed to their destination.
    pub delivered: u64,
    /// Datagrams with no owner of their destination or no link to it.
    pub unroutable: u64,
    /// Packets dropped by the hook.
    pub hook_drops: u64,
    /// Packets dropped by a link (see [`LinkStats`]).
    pub link_drops: u64,
    /// Hosts replaced by [`Sim::replace_host`] (reboots).
    pub crashes: u64,
}

/// The simulator found itself stepping forever at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    /// The instant at which time stopped advancing.
    pub at: Instant,
    /// Steps taken at that instant.
    pub steps: u64,
}

/// Packet hook: sees (and may rewrite) every packet a node emits, before the link.
pub type Hook = Box<dyn FnMut(&mut Packet) -> Verdict>;

struct Node<H> {
    name: String,
    addrs: Vec<IpAddr>,
    host: H,
    events: Vec<(Instant, Event)>,
    reboots: u64,
    /// On an Ethernet link: the node's MAC; it emits and takes frames.
    mac: Option<MacAddr>,
}

/// A packet scheduled to arrive. Ordered by arrival time, then by the order
/// it was scheduled in, so equal-time arrivals are processed deterministically.
struct Flight {
    arrival: Instant,
    order: u64,
    packet: Packet,
}

impl PartialEq for Flight {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival, self.order) == (other.arrival, other.order)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Flight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.arrival, self.order).cmp(&(other.arrival, other.order))
    }
}

/// 64-bit mixing (splitmix64 finalizer).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic network of [`Host`]s (by default [`Stack`]s) in virtual time.
///
/// Each node owns one or more IPv4 addresses; a datagram a node emits goes to
/// the owner of its destination address over the link between the two (one
/// [`LinkConfig`] per direction). Everything random comes from the seed, so
/// the same seed and the same application calls give the same packet trace.
///
/// # Driving
/// [`step`](Sim::step) handles everything due at [`now`](Sim::now): it
/// delivers arrived packets, runs due timers, drains every node's output into
/// the links, then jumps to the next event. [`run_until`](Sim::run_until)
/// steps until a condition holds (the condition may act as the application,
/// e.g. call `send`/`recv` on [`stack_mut`](Sim::stack_mut); the simulator
/// drains what that produces at the same instant).
pub struct Sim<H: Host = Stack> {
    now: Instant,
    seed: u64,
    nodes: Vec<Node<H>>,
    owners: BTreeMap<IpAddr, NodeId>,
    links: BTreeMap<(NodeId, NodeId), Link>,
    flights: BinaryHeap<Reverse<Flight>>,
    next_id: u64,
    next_order: u64,
    hook: Option<Hook>,
    capture: Option<Vec<TraceEntry>>,
    trace_hash: u64,
    stats: SimStats,
    max_steps_per_instant: u64,
    steps_at_now: u64,
    scratch: Vec<u8>,
}

impl<H: Host> Sim<H> {
    /// An empty network at time zero.
    pub fn new(seed: u64) -> Self {
        Sim {
            now: Instant::ZERO,
            seed,
            nodes: Vec::new(),
            owners: BTreeMap::new(),
            links: BTreeMap::new(),
            flights: BinaryHeap::new(),
            next_id: 0,
            next_order: 0,
            hook: None,
            capture: None,
            trace_hash: 0xcbf2_9ce4_8422_2325,
            stats: SimStats::default(),
            max_steps_per_instant: 100_000,
            steps_at_now: 0,
            scratch: vec![0; 65536],
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The simulation seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A seed for a component, derived from the simulation seed.
    pub fn derive_seed(&self, salt: u64) -> u64 {
        mix(self.seed ^ mix(salt))
    }

    /// Adds a node answering for `addrs` (either family).
    ///
    /// # Panics
    /// If an address already belongs to another node.
    pub fn add_node<A: Into<IpAddr> + Copy>(&mut self, name: &str, addrs: &[A], host: H) -> NodeId {
        let id = NodeId(self.nodes.len());
        let addrs: Vec<IpAddr> = addrs.iter().map(|&a| a.into()).collect();
        for a in &addrs {
            let prev = self.owners.insert(*a, id);
            assert!(prev.is_none(), "address {a} is already taken");
        }
        self.nodes.push(Node {
            name: name.to_string(),
            addrs,
            host,
            events: Vec::new(),
            reboots: 0,
            mac: None,
        });
        id
    }

    /// Puts `node` on the Ethernet link with `mac`: what it emits is routed
    /// by destination MAC (a group address reaches every node it is linked
    /// to, each over its own link), and what it takes are frames.
    ///
    /// # Panics
    /// If another node already has that MAC.
    pub fn set_mac(&mut self, node: NodeId, mac: MacAddr) {
        assert!(
            self.nodes.iter().all(|n| n.mac != Some(mac)),
            "MAC {mac} is already taken"
        );
        self.nodes[node.0].mac = Some(mac);
    }

    /// The node's MAC, if it is on the Ethernet link.
    pub fn mac(&self, node: NodeId) -> Option<MacAddr> {
        self.nodes[node.0].mac
    }

    /// Links `a` and `b` with the same behaviour in both directions.
    pub fn link(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.link_asymmetric(a, b, config.clone(), config);
    }

    /// Links `a` and `b`: `ab` for packets from `a` to `b`, `ba` for the reverse.
    pub fn link_asymmetric(&mut self, a: NodeId, b: NodeId, ab: LinkConfig, ba: LinkConfig) {
        assert_ne!(a, b, "a node cannot link to itself");
        let sa = self.derive_seed(((a.0 as u64) << 32) | b.0 as u64);
        let sb = self.derive_seed(((b.0 as u64) << 32) | a.0 as u64);
        self.links.insert((a, b), Link::new(ab, sa));
        self.links.insert((b, a), Link::new(ba, sb));
    }

    /// The configuration of the direction `from` -> `to`, to change it mid-run.
    ///
    /// # Panics
    /// If the nodes are not linked.
    pub fn link_config_mut(&mut self, from: NodeId, to: NodeId) -> &mut LinkConfig {
        &mut self.link_mut(from, to).config
    }

    /// Counters of the direction `from` -> `to`.
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> &LinkStats {
        &self
            .links
            .get(&(from, to))
            .expect("nodes are not linked")
            .stats
    }

    /// Takes both directions between `a` and `b` down (a blackhole: packets
    /// vanish silently) or up again.
    pub fn set_link_up(&mut self, a: NodeId, b: NodeId, up: bool) {
        self.link_mut(a, b).up = up;
        self.link_mut(b, a).up = up;
    }

    fn link_mut(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        self.links
            .get_mut(&(from, to))
            .expect("nodes are not linked")
    }

    /// The node's host.
    pub fn stack(&self, node: NodeId) -> &H {
        &self.nodes[node.0].host
    }

    /// The node's host, to act as its application. Output it produces is
    /// drained by the next [`step`](Sim::step) at the current instant.
    pub fn stack_mut(&mut self, node: NodeId) -> &mut H {
        &mut self.nodes[node.0].host
    }

    /// Replaces a node's host (e.g. a reboot with a different configuration).
    pub fn replace_host(&mut self, node: NodeId, host: H) {
        let n = &mut self.nodes[node.0];
        n.host = host;
        n.reboots += 1;
        self.stats.crashes += 1;
    }

    /// The node's name, as given when it was added.
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    /// The node's first IPv4 address (`0.0.0.0` if it has none).
    pub fn addr(&self, node: NodeId) -> Ipv4Addr {
        self.nodes[node.0]
            .addrs
            .iter()
            .find_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The node's first IPv6 address, if it has one.
    pub fn addr6(&self, node: NodeId) -> Option<Ipv6Addr> {
        self.nodes[node.0].addrs.iter().find_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
    }

    /// All of the node's addresses.
    pub fn addrs(&self, node: NodeId) -> &[IpAddr] {
        &self.nodes[node.0].addrs
    }

    /// How many times the node was rebooted.
    pub fn reboots(&self, node: NodeId) -> u64 {
        self.nodes[node.0].reboots
    }

    /// Every application event the node produced so far, with its time.
    pub fn events(&self, node: NodeId) -> &[(Instant, Event)] {
        &self.nodes[node.0].events
    }

    /// Network counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Installs a hook that sees every emitted packet before its link and
    /// may rewrite or drop it. Rewriting does not re-route.
    pub fn set_hook(&mut self, hook: impl FnMut(&mut Packet) -> Verdict + 'static) {
        self.hook = Some(Box::new(hook));
    }

    /// Removes the packet hook.
    pub fn clear_hook(&mut self) {
        self.hook = None;
    }

    /// Starts (or stops) recording a full packet trace.
    pub fn set_capture(&mut self, on: bool) {
        match (on, self.capture.is_some()) {
            (true, false) => self.capture = Some(Vec::new()),
            (false, true) => self.capture = None,
            _ => {}
        }
    }

    /// The recorded trace (empty unless capture is on).
    pub fn trace(&self) -> &[TraceEntry] {
        self.capture.as_deref().unwrap_or(&[])
    }

    /// Drains the recorded trace.
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// A hash of everything that happened to every packet (recorded even
    /// without capture): equal hashes mean equal traces, for determinism tests.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// Sets the number of steps allowed at one instant before the simulator
    /// reports a livelock (default 100 000).
    pub fn set_max_steps_per_instant(&mut self, n: u64) {
        self.max_steps_per_instant = n;
    }

    /// Puts an arbitrary datagram in flight to `to`, arriving at `now`
    /// (bypassing links and the hook).
    pub fn inject(&mut self, to: NodeId, data: Vec<u8>) {
        let at = self.now;
        self.inject_at(to, at, data);
    }

    /// Like [`inject`](Sim::inject), arriving at `at`.
    pub fn inject_at(&mut self, to: NodeId, at: Instant, data: Vec<u8>) {
        let packet = self.new_packet(None, to, data);
        self.stats.injected += 1;
        self.record(TraceEvent::Injected, &packet);
        self.schedule(at.max(self.now), packet);
    }

    fn new_packet(&mut self, from: Option<NodeId>, to: NodeId, data: Vec<u8>) -> Packet {
        self.next_id += 1;
        let ethernet = self.nodes[from.unwrap_or(to).0].mac.is_some();
        Packet {
            id: self.next_id,
            sent: self.now,
            from,
            to,
            data,
            link_len: if ethernet { 14 } else { 0 },
        }
    }

    fn schedule(&mut self, arrival: Instant, packet: Packet) {
        self.next_order += 1;
        self.flights.push(Reverse(Flight {
            arrival,
            order: self.next_order,
            packet,
        }));
    }

    fn record(&mut self, event: TraceEvent, packet: &Packet) {
        let code = match event {
            TraceEvent::Sent => 1,
            TraceEvent::Injected => 2,
            TraceEvent::Delivered => 3,
            TraceEvent::Dropped(r) => 16 + r as u64,
        };
        let mut h = self.trace_hash;
        let from = packet.from.map_or(u64::MAX, |n| n.0 as u64);
        for w in [
            self.now.total_micros(),
            code,
            packet.id,
            from,
            packet.to.0 as u64,
            packet.data.len() as u64,
        ] {
            h = mix(h ^ w);
        }
        let mut chunks = packet.data.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .rotate_left(23)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.trace_hash = mix(h);
        if let Some(cap) = &mut self.capture {
            cap.push(TraceEntry {
                at: self.now,
                event,
                packet: packet.clone(),
            });
        }
    }

    /// Routes and transmits one datagram emitted by `from`.
    fn emit(&mut self, from: NodeId, data: Vec<u8>) {
        self.stats.emitted += 1;
        if self.nodes[from.0].mac.is_some() {
            return self.emit_frame(from, data);
        }
        let to = ip_dst(&data).and_then(|d| self.owners.get(&d).copied());
        let to = match to {
            Some(to) if self.links.contains_key(&(from, to)) => to,
            _ => {
                self.stats.unroutable += 1;
                // Record against the sender itself: there is no destination.
                let p = self.new_packet(Some(from), from, data);
                self.record(TraceEvent::Dropped(DropReason::Unroutable), &p);
                return;
            }
        };
        self.send_over(from, to, data);
    }

    /// Routes a frame by its destination MAC: a group address goes to
    /// every linked node on the Ethernet link, a unicast one to its owner.
    fn emit_frame(&mut self, from: NodeId, data: Vec<u8>) {
        let dst = data.get(..6).map(|d| {
            let mut m = [0u8; 6];
            m.copy_from_slice(d);
            MacAddr(m)
        });
        let targets: Vec<NodeId> = match dst {
            Some(d) if d.is_multicast() => (0..self.nodes.len())
                .map(NodeId)
                .filter(|&n| {
                    n != from
                        && self.nodes[n.0].mac.is_some()
                        && self.links.contains_key(&(from, n))
                })
                .collect(),
            Some(d) => (0..self.nodes.len())
                .map(NodeId)
                .filter(|&n| self.nodes[n.0].mac == Some(d) && self.links.contains_key(&(from, n)))
                .collect(),
            None => Vec::new(),
        };
        if targets.is_empty() {
            self.stats.unroutable += 1;
            let p = self.new_packet(Some(from), from, data);
            self.record(TraceEvent::Dropped(DropReason::Unroutable), &p);
            return;
        }
        let last = targets.len() - 1;
        let mut data = Some(data);
        for (i, to) in targets.into_iter().enumerate() {
            let copy = if i == last {
                data.take().unwrap_or_default()
            } else {
                data.clone().unwrap_or_default()
            };
            self.send_over(from, to, copy);
        }
    }

    /// Puts a packet on the link `from` -> `to`, through the hook.
    fn send_over(&mut self, from: NodeId, to: NodeId, data: Vec<u8>) {
        let mut packet = self.new_packet(Some(from), to, data);
        if let Some(hook) = &mut self.hook {
            if hook(&mut packet) == Verdict::Drop {
                self.stats.hook_drops += 1;
                self.record(TraceEvent::Dropped(DropReason::Hook), &packet);
                return;
            }
        }
        self.record(TraceEvent::Sent, &packet);
        let now = self.now;
        let link = self.link_mut(from, to);
        let config = &link.config;
        let link_len = packet.link_len;
        let answer = (link_len == 0 && config.too_big_icmp && packet.data.len() > config.mtu)
            .then(|| too_big(&packet.data, config.mtu))
            .flatten()
            .map(|icmp| (now + config.latency, icmp));
        let tx = link.transmit_frame(now, std::mem::take(&mut packet.data), link_len);
        if let Some((arrival, icmp)) = answer {
            let p = self.new_packet(None, from, icmp);
            self.record(TraceEvent::Sent, &p);
            self.schedule(arrival, p);
        }
        if let Some(reason) = tx.dropped {
            self.stats.link_drops += 1;
            self.record(TraceEvent::Dropped(reason), &packet);
        }
        for (arrival, data) in tx.arrivals {
            let copy = Packet {
                data,
                ..packet.clone()
            };
            self.schedule(arrival, copy);
        }
    }

    /// Drains every node's output (and events) at the current instant.
    pub fn drain(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            loop {
                let n = self.nodes[i].host.poll_transmit(now, &mut self.scratch);
                let Some(len) = n else { break };
                let data = self.scratch[..len].to_vec();
                self.emit(NodeId(i), data);
            }
            while let Some(ev) = self.nodes[i].host.poll_event() {
                self.nodes[i].events.push((now, ev));
            }
        }
    }

    /// Handles everything due at the current instant without advancing time:
    /// deliveries, then timers, then output.
    pub fn step_now(&mut self) {
        self.stats.steps += 1;
        let now = self.now;
        while self.flights.peek().is_some_and(|f| f.0.arrival <= now) {
            let Some(Reverse(f)) = self.flights.pop() else {
                break;
            };
            self.stats.delivered += 1;
            self.record(TraceEvent::Delivered, &f.packet);
            self.nodes[f.packet.to.0]
                .host
                .handle_packet(now, &f.packet.data);
        }
        for node in &mut self.nodes {
            if node.host.poll_timeout().is_some_and(|t| t <= now) {
                node.host.handle_timeout(now);
            }
        }
        self.drain();
    }

    /// The instant of the next scheduled arrival or timer, if any.
    pub fn next_event(&mut self) -> Option<Instant> {
        let mut next = self.flights.peek().map(|f| f.0.arrival);
        for node in &mut self.nodes {
            if let Some(t) = node.host.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Moves time to the next event, but not past `limit`. Returns `false`
    /// (and moves to `limit`) when nothing is scheduled before it.
    fn advance(&mut self, limit: Instant) -> Result<bool, Stalled> {
        let next = self.next_event();
        let target = next.map_or(limit, |t| t.min(limit)).max(self.now);
        if target == self.now {
            self.steps_at_now += 1;
            if self.steps_at_now > self.max_steps_per_instant {
                return Err(Stalled {
                    at: self.now,
                    steps: self.steps_at_now,
                });
            }
        } else {
            self.now = target;
            self.steps_at_now = 0;
        }
        Ok(next.is_some_and(|t| t <= limit))
    }

    /// Handles everything due now, then jumps to the next event. Returns
    /// `false` when nothing at all is scheduled (the network is idle).
    ///
    /// # Panics
    /// If more than the allowed number of steps happen at one instant.
    pub fn step(&mut self) -> bool {
        self.step_now();
        let Some(next) = self.next_event() else {
            return false;
        };
        match self.advance(next) {
            Ok(more) => more,
            Err(s) => panic!("simulation stalled: {} steps at {}", s.steps, s.at),
        }
    }

    /// Steps until `cond` holds or time passes `deadline`; returns whether
    /// `cond` held. `cond` runs after every step at the current instant and
    /// may act as the application.
    ///
    /// # Panics
    /// If the simulation livelocks at one instant (see [`Sim::try_run_until`]).
    pub fn run_until(&mut self, deadline: Instant, cond: impl FnMut(&mut Self) -> bool) -> bool {
        match self.try_run_until(deadline, cond) {
            Ok(held) => held,
            Err(s) => panic!(
                "simulation stalled: {} steps at {} (seed {:#x})",
                s.steps, s.at, self.seed
            ),
        }
    }

    /// [`run_until`](Sim::run_until) reporting a livelock as an error.
    ///
    /// # Errors
    ///
    /// [`Stalled`] when more than the allowed number of steps happen at one
    /// instant.
    pub fn try_run_until(
        &mut self,
        deadline: Instant,
        mut cond: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool, Stalled> {
        loop {
            self.step_now();
            let held = cond(self);
            // Output of application calls made by `cond`, at the same instant.
            self.drain();
            if held {
                return Ok(true);
            }
            if self.now >= deadline {
                return Ok(false);
            }
            self.advance(deadline)?;
        }
    }

    /// Runs for `duration` of virtual time, with `app` called after every step.
    pub fn run_for_with(
        &mut self,
        duration: crate::time::Duration,
        mut app: impl FnMut(&mut Self),
    ) {
        let deadline = self.now + duration;
        self.run_until(deadline, |s| {
            app(s);
            false
        });
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: crate::time::Duration) {
        self.run_for_with(duration, |_| {});
    }
}

/// Host `n`'s IPv4 address in the pairs: 10.0.0.n.
fn pair_v4(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// Host `n`'s IPv6 address in the pairs: fd00::n.
fn pair_v6(n: u8) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)))
}

impl Sim<Stack> {
    /// The usual test bench: a "client" at 10.0.0.1 and a "server" at
    /// 10.0.0.2 with default configurations (seeds derived from `seed`)
    /// adjusted by `tune`, linked by `link` in both directions.
    pub fn pair(seed: u64, link: LinkConfig, tune: impl Fn(&mut Config)) -> (Sim, NodeId, NodeId) {
        Sim::pair_of(seed, link, tune, |n| {
            Config::with_addr(Ipv4Addr::new(10, 0, 0, n))
        })
    }

    /// [`pair`](Sim::pair) with both families: the client also answers
    /// for `fd00::1`, the server for `fd00::2`.
    pub fn dual_pair(
        seed: u64,
        link: LinkConfig,
        tune: impl Fn(&mut Config),
    ) -> (Sim, NodeId, NodeId) {
        Sim::pair_of(seed, link, tune, |n| {
            Config::with_addrs([pair_v4(n), pair_v6(n)])
        })
    }

    /// Adds a [`Stack`] built from `config`, answering for `config.addrs`.
    /// With `config.ethernet`, the node is on the Ethernet link with its MAC
    /// ([`set_mac`](Sim::set_mac)).
    pub fn add_stack(&mut self, name: &str, config: Config) -> NodeId {
        let addrs = config.addrs.clone();
        let mac = config.ethernet.as_ref().map(|e| e.mac);
        let id = self.add_node(name, &addrs, Stack::new(config));
        if let Some(mac) = mac {
            self.set_mac(id, mac);
        }
        id
    }

    /// [`pair`](Sim::pair) on an Ethernet link, both families, empty
    /// neighbour caches: the client is 10.0.0.1/24 and fd00::1/64 with MAC
    /// 02:00:00:00:00:01, the server .2 and 02:00:00:00:00:02.
    pub fn ethernet_pair(
        seed: u64,
        link: LinkConfig,
        tune: impl Fn(&mut Config),
    ) -> (Sim, NodeId, NodeId) {
        Sim::pair_of(seed, link, tune, |n| {
            let mac = MacAddr([2, 0, 0, 0, 0, n]);
            Config::with_ethernet(mac, [(pair_v4(n), 24), (pair_v6(n), 64)])
        })
    }

    /// A "client" (host 1) and a "server" (host 2) made by `base`, seeds
    /// derived from `seed`, adjusted by `tune`, linked by `link`.
    fn pair_of(
        seed: u64,
        link: LinkConfig,
        tune: impl Fn(&mut Config),
        base: impl Fn(u8) -> Config,
    ) -> (Sim, NodeId, NodeId) {
        let mut sim = Sim::new(seed);
        let mut ids = [NodeId(0); 2];
        for (i, name) in ["client", "server"].into_iter().enumerate() {
            let mut config = base(i as u8 + 1);
            config.seed = sim.derive_seed(i as u64 + 1);
            tune(&mut config);
            ids[i] = sim.add_stack(name, config);
        }
        sim.link(ids[0], ids[1], link);
        (sim, ids[0], ids[1])
    }

    /// Adds a stack with the default configuration for `addr` and a seed
    /// derived from the simulation seed.
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr) -> NodeId {
        let mut config = Config::with_addr(addr);
        config.seed = self.derive_seed(u64::from(u32::from(addr)));
        self.add_stack(name, config)
    }

    /// Crashes and reboots a node: its stack is replaced by a fresh one with
    /// the same configuration but a new seed, so it forgets every connection.
    pub fn crash(&mut self, node: NodeId) {
        let mut config = self.stack(node).config().clone();
        config.seed = mix(config.seed ^ (self.reboots(node) + 1));
        self.replace_host(node, Stack::new(config));
    }
}

/// The ICMP error a router sends back for `datagram`, too big for a link of
/// `mtu` bytes: "fragmentation needed" (IPv4 with DF, RFC 1191 4; quoting
/// the IP header and 8 bytes, RFC 792) or "packet too big" (IPv6, RFC 4443
/// 3.2; quoting as much as fits 1280 bytes), from the datagram's
/// destination to its source. `None` for an IPv4 datagram without DF
/// (a router would fragment it) or one that does not parse.
fn too_big(datagram: &[u8], mtu: usize) -> Option<Vec<u8>> {
    use crate::wire::{
        IcmpRepr, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    };
    match datagram.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(datagram).ok()?;
            if !ip.dont_frag() {
                return None;
            }
            let quote = &datagram[..datagram.len().min(ip.header_len() + 8)];
            let msg = IcmpRepr::DstUnreachable {
                code: 4,
                next_hop_mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
                data: quote,
            };
            let len = msg.buffer_len();
            let mut out = vec![0u8; Ipv4Repr::HEADER_LEN + len];
            msg.emit(&mut out[Ipv4Repr::HEADER_LEN..]);
            Ipv4Repr {
                src: ip.dst_addr(),
                dst: ip.src_addr(),
                protocol: IpProtocol::Icmp,
                payload_len: len,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: false,
            }
            .emit(&mut out);
            Some(out)
        }
        6 => {
            let ip = Ipv6Packet::new_checked(datagram).ok()?;
            let (src, dst) = (ip.dst_addr(), ip.src_addr());
            let quote = &datagram[..datagram.len().min(1280 - 48)];
            let msg = Icmpv6Repr::PacketTooBig {
                mtu: u32::try_from(mtu).unwrap_or(u32::MAX),
                data: quote,
            };
            let len = msg.buffer_len();
            let mut out = vec![0u8; Ipv6Repr::HEADER_LEN + len];
            msg.emit(src, dst, &mut out[Ipv6Repr::HEADER_LEN..]);
            Ipv6Repr {
                src,
                dst,
                next_header: IpProtocol::Icmpv6,
                payload_len: len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut out);
            Some(out)
        }
        _ => None,
    }
}
