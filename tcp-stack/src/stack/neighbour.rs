//! The neighbour cache: Neighbour Unreachability Detection (RFC 4861 7.3)
//! for IPv6 and, with the same state machine (as Linux's `neigh` layer),
//! ARP (RFC 826) for IPv4.
//!
//! Pure bookkeeping: the cache decides, the stack (`stack/link.rs`) frames
//! and sends. Timers are kept in a lazily-cancelled heap of `(deadline,
//! ip)`, checked against the entry's own deadline when popped (as the
//! connection timers are): O(log n) per change, no scan of the cache per
//! packet, and the heap is rebuilt when stale entries outnumber the live
//! ones (O(n) at most once per n pushes).

use crate::config::NeighbourConfig;
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::IpAddr;

/// The state of a neighbour cache entry, as `ip neigh` shows it (RFC 4861
/// 7.3.2, plus Linux's FAILED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighbourState {
    /// Resolution in progress: solicitations sent, no answer yet.
    Incomplete,
    /// Reachability confirmed within `reachable_time`.
    Reachable,
    /// The address is known but reachability is not confirmed.
    Stale,
    /// Sent to while STALE: waiting `delay_first_probe` for an upper-layer
    /// confirmation before probing.
    Delay,
    /// Unicast probes are being sent.
    Probe,
    /// Resolution failed; kept for `retrans_time` so that lookups fail fast.
    Failed,
}

/// One neighbour cache entry ([`Stack::neighbours`](crate::Stack::neighbours)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourInfo {
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// Its link-layer address, once known.
    pub mac: Option<MacAddr>,
    /// Its state.
    pub state: NeighbourState,
}

/// A datagram waiting for its next hop to resolve: the bytes and the GSO
/// segment size it was produced with.
/// A parked datagram, with its GSO segment size and header layout
/// ([`TxHeaders`](crate::TxHeaders), still without the link header).
pub(super) type Pending = (Vec<u8>, Option<u16>, crate::TxHeaders);

pub(super) struct Entry {
    pub mac: Option<MacAddr>,
    pub state: NeighbourState,
    deadline: Option<Instant>,
    /// Solicitations sent in INCOMPLETE or PROBE.
    probes: u32,
    /// When a datagram last went through it (STALE garbage collection).
    used: Instant,
    /// Our address to solicit from (the source of the datagram that
    /// started the resolution, RFC 4861 7.2.2).
    pub probe_src: Option<IpAddr>,
    pub pending: VecDeque<Pending>,
}

/// What a timer asks the stack to do.
pub(super) enum Action {
    /// Send a solicitation for `ip`: broadcast/multicast (`None`) or
    /// unicast to the cached MAC.
    Solicit {
        ip: IpAddr,
        unicast: Option<MacAddr>,
        src: Option<IpAddr>,
    },
    /// Resolution of `ip` failed; these datagrams were waiting for it.
    Failed { pending: VecDeque<Pending> },
}

/// The result of looking up a next hop to send to.
pub(super) enum Lookup {
    /// Resolved: send to this MAC.
    Send(MacAddr),
    /// Resolution in progress: queue the datagram.
    Queue,
    /// Resolution failed recently: fail the datagram at once.
    Fail,
    /// No entry.
    Missing,
}

/// An update from ARP or NDP about `ip`'s link-layer address.
pub(super) struct Update {
    pub mac: MacAddr,
    /// Reachability confirmed (a solicited NA, an ARP reply to us).
    pub confirmed: bool,
    /// A different cached MAC may be replaced (NA O flag, NS, ARP).
    pub overrides: bool,
    /// Create the entry when there is none (NS source LL, RFC 4861 7.2.3;
    /// ARP addressed to us, RFC 826).
    pub create: bool,
}

pub(super) struct Neighbours {
    pub cfg: NeighbourConfig,
    /// The randomised ReachableTime (RFC 4861 6.3.2).
    pub reachable_time: Duration,
    /// Ordered by address: `neighbours()` lists in a stable order, and the
    /// iteration order never depends on a hash.
    pub entries: BTreeMap<IpAddr, Entry>,
    timers: BinaryHeap<Reverse<(Instant, IpAddr)>>,
    /// Bytes held in pending queues (bounded by `MAX_PENDING_BYTES`).
    pub pending_bytes: usize,
}

/// Most bytes of datagrams waiting for resolution, all neighbours together.
pub(super) const MAX_PENDING_BYTES: usize = 1 << 20;

/// Timer events handled per `handle_timeout` call; more due ones keep
/// `poll_timeout` in the past, so the driver calls again.
const MAX_TIMER_WORK: usize = 64;

impl Neighbours {
    pub fn new(cfg: NeighbourConfig, reachable_time: Duration) -> Self {
        Neighbours {
            cfg,
            reachable_time,
            entries: BTreeMap::new(),
            timers: BinaryHeap::new(),
            pending_bytes: 0,
        }
    }

    fn set_deadline(&mut self, ip: IpAddr, at: Option<Instant>) {
        if let Some(e) = self.entries.get_mut(&ip) {
            e.deadline = at;
            if let Some(t) = at {
                self.timers.push(Reverse((t, ip)));
            }
        }
        if self.timers.len() > 2 * self.entries.len() + 64 {
            self.timers = self
                .entries
                .iter()
                .filter_map(|(ip, e)| e.deadline.map(|t| Reverse((t, *ip))))
                .collect();
        }
    }

    /// The earliest neighbour timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, ip))) = self.timers.peek() {
            if self.entries.get(&ip).is_some_and(|e| e.deadline == Some(t)) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    pub fn info(&self) -> Vec<NeighbourInfo> {
        self.entries
            .iter()
            .map(|(ip, e)| NeighbourInfo {
                ip: *ip,
                mac: e.mac,
                state: e.state,
            })
            .collect()
    }

    fn remove(&mut self, ip: IpAddr) -> Option<Entry> {
        let e = self.entries.remove(&ip)?;
        self.pending_bytes -= e.pending.iter().map(|p| p.0.len()).sum::<usize>();
        Some(e)
    }

    /// Looks up `ip` for sending a datagram; a STALE entry becomes DELAY
    /// (RFC 4861 7.3.3: "the first time a node sends a packet to a
    /// neighbor whose entry is STALE, the sender changes the state to
    /// DELAY and sets a timer to expire in DELAY_FIRST_PROBE_TIME").
    pub fn lookup(&mut self, now: Instant, ip: IpAddr) -> Lookup {
        let delay = self.cfg.delay_first_probe;
        let Some(e) = self.entries.get_mut(&ip) else {
            return Lookup::Missing;
        };
        e.used = now;
        match (e.state, e.mac) {
            (NeighbourState::Incomplete, _) => Lookup::Queue,
            (NeighbourState::Failed, _) | (_, None) => Lookup::Fail,
            (NeighbourState::Stale, Some(mac)) => {
                e.state = NeighbourState::Delay;
                self.set_deadline(ip, Some(now + delay));
                Lookup::Send(mac)
            }
            (_, Some(mac)) => Lookup::Send(mac),
        }
    }

    /// Makes room for one more entry: a FAILED one goes first, else the
    /// least recently used STALE one. O(entries), only when the cache is
    /// full. Returns whether there is room.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.cfg.max_entries.max(1) {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, NeighbourState::Failed | NeighbourState::Stale))
            .min_by_key(|(_, e)| (e.state != NeighbourState::Failed, e.used))
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.remove(ip);
                true
            }
            None => false,
        }
    }

    /// Creates an INCOMPLETE entry whose first solicitation the caller
    /// sends now. `false` when the cache is full of entries in use.
    pub fn create_incomplete(&mut self, now: Instant, ip: IpAddr, src: Option<IpAddr>) -> bool {
        if !self.make_room() {
            return false;
        }
        self.entries.insert(
            ip,
            Entry {
                mac: None,
                state: NeighbourState::Incomplete,
                deadline: None,
                probes: 1,
                used: now,
                probe_src: src,
                pending: VecDeque::new(),
            },
        );
        self.set_deadline(ip, Some(now + self.cfg.retrans_time));
        true
    }

    /// Queues a datagram on an INCOMPLETE entry; returns how many were
    /// dropped to stay within the bounds (the oldest first).
    pub fn enqueue(
        &mut self,
        ip: IpAddr,
        datagram: &[u8],
        segment_size: Option<u16>,
        headers: crate::TxHeaders,
    ) -> u64 {
        let limit = self.cfg.queue_packets.max(1);
        let Some(e) = self.entries.get_mut(&ip) else {
            return 1;
        };
        let mut dropped = 0;
        while e.pending.len() >= limit
            || (!e.pending.is_empty() && self.pending_bytes + datagram.len() > MAX_PENDING_BYTES)
        {
            if let Some(old) = e.pending.pop_front() {
                self.pending_bytes -= old.0.len();
                dropped += 1;
            }
        }
        if self.pending_bytes + datagram.len() > MAX_PENDING_BYTES {
            return dropped + 1;
        }
        self.pending_bytes += datagram.len();
        e.pending
            .push_back((datagram.to_vec(), segment_size, headers));
        dropped
    }

    fn enter(&mut self, now: Instant, ip: IpAddr, state: NeighbourState) {
        let at = match state {
            NeighbourState::Reachable => now + self.reachable_time,
            NeighbourState::Stale => now + self.cfg.stale_timeout,
            NeighbourState::Delay => now + self.cfg.delay_first_probe,
            NeighbourState::Incomplete | NeighbourState::Probe | NeighbourState::Failed => {
                now + self.cfg.retrans_time
            }
        };
        if let Some(e) = self.entries.get_mut(&ip) {
            e.state = state;
        }
        self.set_deadline(ip, Some(at));
    }

    /// Applies what ARP or NDP learnt about `ip` (RFC 4861 7.2.3 and
    /// 7.2.5, RFC 826 "Packet Reception"). Returns the datagrams that
    /// were waiting for it, to send now, with the MAC.
    pub fn update(&mut self, now: Instant, ip: IpAddr, u: Update) -> Option<VecDeque<Pending>> {
        let Some(e) = self.entries.get_mut(&ip) else {
            if u.create && self.make_room() {
                self.entries.insert(
                    ip,
                    Entry {
                        mac: Some(u.mac),
                        state: NeighbourState::Stale,
                        deadline: None,
                        probes: 0,
                        used: now,
                        probe_src: None,
                        pending: VecDeque::new(),
                    },
                );
                // RFC 4861 7.2.3: a new entry from an NS is STALE.
                let state = if u.confirmed {
                    NeighbourState::Reachable
                } else {
                    NeighbourState::Stale
                };
                self.enter(now, ip, state);
            }
            return None;
        };
        match (e.state, e.mac) {
            (NeighbourState::Incomplete | NeighbourState::Failed, _) | (_, None) => {
                // RFC 4861 7.2.5: INCOMPLETE takes the address; REACHABLE
                // if solicited, else STALE. The queued datagrams go.
                e.mac = Some(u.mac);
                let pending = std::mem::take(&mut e.pending);
                self.pending_bytes -= pending.iter().map(|p| p.0.len()).sum::<usize>();
                let state = if u.confirmed {
                    NeighbourState::Reachable
                } else {
                    NeighbourState::Stale
                };
                self.enter(now, ip, state);
                Some(pending)
            }
            (state, Some(old)) if old != u.mac => {
                if u.overrides {
                    // RFC 4861 7.2.5 (O set) and 7.2.3: the new address
                    // replaces the old; STALE unless confirmed.
                    e.mac = Some(u.mac);
                    let state = if u.confirmed {
                        NeighbourState::Reachable
                    } else {
                        NeighbourState::Stale
                    };
                    self.enter(now, ip, state);
                } else if state == NeighbourState::Reachable {
                    // RFC 4861 7.2.5: O clear, a different address: a
                    // REACHABLE entry becomes STALE, nothing else changes.
                    self.enter(now, ip, NeighbourState::Stale);
                }
                None
            }
            _ => {
                // The same address: a confirmation makes it REACHABLE.
                if u.confirmed {
                    self.enter(now, ip, NeighbourState::Reachable);
                }
                None
            }
        }
    }

    /// Upper-layer reachability confirmation (RFC 4861 7.3.1): a resolved
    /// entry whose MAC the confirming frame came from becomes REACHABLE.
    pub fn confirm(&mut self, now: Instant, ip: IpAddr, from: MacAddr) {
        let ok = self.entries.get(&ip).is_some_and(|e| {
            e.mac == Some(from)
                && matches!(
                    e.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                )
        });
        if ok {
            self.enter(now, ip, NeighbourState::Reachable);
        }
    }

    /// Runs the due timers (at most `MAX_TIMER_WORK`), returning what to do.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        for _ in 0..MAX_TIMER_WORK {
            let Some(t) = self.next_deadline() else {
                return;
            };
            if t > now {
                return;
            }
            let Some(Reverse((_, ip))) = self.timers.pop() else {
                return;
            };
            let max = self.cfg.max_probes.max(1);
            let Some(e) = self.entries.get_mut(&ip) else {
                continue;
            };
            e.deadline = None;
            match e.state {
                // RFC 4861 7.2.2: retransmit every RetransTimer up to
                // MAX_MULTICAST_SOLICIT, then the entry fails and the
                // queued packets are answered with an ICMP unreachable.
                NeighbourState::Incomplete if e.probes < max => {
                    e.probes += 1;
                    out.push(Action::Solicit {
                        ip,
                        unicast: None,
                        src: e.probe_src,
                    });
                    self.set_deadline(ip, Some(now + self.cfg.retrans_time));
                }
                NeighbourState::Incomplete => {
                    let pending = std::mem::take(&mut e.pending);
                    self.pending_bytes -= pending.iter().map(|p| p.0.len()).sum::<usize>();
                    e.mac = None;
                    self.enter(now, ip, NeighbourState::Failed);
                    out.push(Action::Failed { pending });
                }
                // RFC 4861 7.3.3: REACHABLE -> STALE after ReachableTime.
                NeighbourState::Reachable => self.enter(now, ip, NeighbourState::Stale),
                // Linux `gc_stale_time`: unused STALE entries go.
                NeighbourState::Stale => {
                    let idle_until = e.used + self.cfg.stale_timeout;
                    if idle_until <= now {
                        self.remove(ip);
                    } else {
                        self.set_deadline(ip, Some(idle_until));
                    }
                }
                // RFC 4861 7.3.3: DELAY -> PROBE, first unicast probe.
                NeighbourState::Delay => {
                    e.probes = 1;
                    out.push(Action::Solicit {
                        ip,
                        unicast: e.mac,
                        src: e.probe_src,
                    });
                    self.enter(now, ip, NeighbourState::Probe);
                }
                NeighbourState::Probe if e.probes < max => {
                    e.probes += 1;
                    out.push(Action::Solicit {
                        ip,
                        unicast: e.mac,
                        src: e.probe_src,
                    });
                    self.set_deadline(ip, Some(now + self.cfg.retrans_time));
                }
                // RFC 4861 7.3.3: after MAX_UNICAST_SOLICIT probes "the
                // entry SHOULD be deleted"; FAILED for a moment first.
                NeighbourState::Probe => {
                    e.mac = None;
                    self.enter(now, ip, NeighbourState::Failed);
                }
                NeighbourState::Failed => {
                    self.remove(ip);
                }
            }
        }
    }
}
