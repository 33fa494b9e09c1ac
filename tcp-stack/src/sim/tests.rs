//! Tests of the network itself, with toy hosts instead of TCP stacks.

use super::*;
use crate::time::{Duration, Instant};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

/// A host that records what it receives, echoes it back if asked, and can
/// send a packet from a timer.
#[derive(Default)]
struct Toy {
    outbox: VecDeque<Vec<u8>>,
    received: Vec<(Instant, Vec<u8>)>,
    echo: bool,
    timer: Option<(Instant, Vec<u8>)>,
    /// A broken host whose timer never clears.
    stuck: bool,
}

impl Host for Toy {
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.received.push((now, packet.to_vec()));
        if self.echo {
            if let Some(seg) = TcpSegment::parse(packet) {
                let reply = SegmentBuilder::new(seg.dst, seg.src)
                    .seq(seg.seq.wrapping_add(1))
                    .flags(flags::ACK)
                    .build();
                self.outbox.push_back(reply);
            }
        }
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
        let p = self.outbox.pop_front()?;
        buf[..p.len()].copy_from_slice(&p);
        Some(p.len())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.stuck {
            return Some(Instant::ZERO);
        }
        self.timer.as_ref().map(|t| t.0)
    }
    fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, p)) = self.timer.take() {
            if at <= now {
                self.outbox.push_back(p);
            } else {
                self.timer = Some((at, p));
            }
        }
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn seg(from: u8, to: u8, seq: u32) -> Vec<u8> {
    SegmentBuilder::new(
        SocketAddrV4::new(ip(from), 1000),
        SocketAddrV4::new(ip(to), 2000),
    )
    .seq(seq)
    .flags(flags::ACK)
    .payload(&[seq as u8; 20])
    .build()
}

fn pair(seed: u64, link: LinkConfig) -> (Sim<Toy>, NodeId, NodeId) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("a", &[ip(1)], Toy::default());
    let b = sim.add_node("b", &[ip(2), ip(3)], Toy::default());
    sim.link(a, b, link);
    (sim, a, b)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn packets_route_by_destination_and_arrive_after_latency() {
    let (mut sim, a, b) = pair(1, LinkConfig::ideal(ms(10)));
    sim.stack_mut(a).outbox.push_back(seg(1, 2, 1));
    sim.stack_mut(a).outbox.push_back(seg(1, 3, 2)); // b's second address
    sim.stack_mut(a).outbox.push_back(seg(1, 9, 3)); // nobody's
    sim.stack_mut(b).echo = true;
    let deadline = Instant::from_millis(1000);
    assert!(sim.run_until(deadline, |s| s.stack(a).received.len() == 2));
    let got: Vec<_> = sim.stack(b).received.iter().map(|r| r.0).collect();
    assert_eq!(got, vec![Instant::from_millis(10); 2]);
    assert_eq!(sim.stack(a).received[0].0, Instant::from_millis(20));
    assert_eq!(sim.now(), Instant::from_millis(20));
    assert_eq!(sim.stats().unroutable, 1);
    assert_eq!(sim.stats().delivered, 4);
}

#[test]
fn run_until_stops_at_the_deadline_when_idle() {
    let (mut sim, _, _) = pair(1, LinkConfig::default());
    assert!(!sim.step());
    assert!(!sim.run_until(Instant::from_millis(500), |_| false));
    assert_eq!(sim.now(), Instant::from_millis(500));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.now(), Instant::from_millis(2500));
}

#[test]
fn timers_fire_at_their_instant() {
    let (mut sim, a, b) = pair(1, LinkConfig::ideal(ms(1)));
    sim.stack_mut(a).timer = Some((Instant::from_millis(300), seg(1, 2, 5)));
    assert!(sim.run_until(Instant::from_millis(10_000), |s| {
        !s.stack(b).received.is_empty()
    }));
    assert_eq!(sim.stack(b).received[0].0, Instant::from_millis(301));
}

#[test]
fn hook_can_observe_rewrite_and_drop() {
    let (mut sim, a, b) = pair(1, LinkConfig::ideal(ms(1)));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    sim.set_hook(move |p| {
        let s = p.tcp().unwrap();
        seen2.borrow_mut().push(s.seq);
        match s.seq {
            1 => Verdict::Drop,
            2 => {
                p.data[40] ^= 0xff;
                Verdict::Deliver
            }
            _ => Verdict::Deliver,
        }
    });
    for i in 1..=3 {
        sim.stack_mut(a).outbox.push_back(seg(1, 2, i));
    }
    sim.run_for(ms(10));
    assert_eq!(*seen.borrow(), vec![1, 2, 3]);
    let rx = &sim.stack(b).received;
    assert_eq!(rx.len(), 2);
    assert!(!checksums_ok(&rx[0].1));
    assert!(checksums_ok(&rx[1].1));
    assert_eq!(sim.stats().hook_drops, 1);
}

#[test]
fn blackhole_and_inject() {
    let (mut sim, a, b) = pair(1, LinkConfig::ideal(ms(1)));
    sim.set_capture(true);
    sim.set_link_up(a, b, false);
    sim.stack_mut(a).outbox.push_back(seg(1, 2, 1));
    sim.run_for(ms(10));
    assert!(sim.stack(b).received.is_empty());
    assert_eq!(sim.link_stats(a, b).down_drops, 1);
    sim.inject(b, seg(7, 2, 9));
    sim.run_for(ms(1));
    assert_eq!(sim.stack(b).received.len(), 1);
    assert_eq!(sim.stack(b).received[0].0, Instant::from_millis(10));
    let events: Vec<_> = sim.trace().iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        vec![
            TraceEvent::Sent,
            TraceEvent::Dropped(DropReason::LinkDown),
            TraceEvent::Injected,
            TraceEvent::Delivered
        ]
    );
    sim.set_link_up(a, b, true);
    sim.stack_mut(a).outbox.push_back(seg(1, 2, 2));
    sim.run_for(ms(10));
    assert_eq!(sim.stack(b).received.len(), 2);
}

#[test]
fn mtu_and_bandwidth_apply_per_direction() {
    let mut sim: Sim<Toy> = Sim::new(3);
    let a = sim.add_node("a", &[ip(1)], Toy::default());
    let b = sim.add_node("b", &[ip(2)], Toy::default());
    // 60-byte segments at 48 kbit/s: 10 ms each.
    let slow = LinkConfig::ideal(ms(5)).bandwidth(48_000, 1 << 20).mtu(100);
    sim.link_asymmetric(a, b, slow, LinkConfig::ideal(ms(5)));
    for i in 0..3 {
        sim.stack_mut(a).outbox.push_back(seg(1, 2, i));
    }
    let big = SegmentBuilder::new(SocketAddrV4::new(ip(1), 1), SocketAddrV4::new(ip(2), 2))
        .payload(&[0; 200])
        .build();
    sim.stack_mut(a).outbox.push_back(big);
    sim.run_for(ms(100));
    let times: Vec<_> = sim.stack(b).received.iter().map(|r| r.0).collect();
    assert_eq!(
        times,
        vec![
            Instant::from_millis(15),
            Instant::from_millis(25),
            Instant::from_millis(35)
        ]
    );
    assert_eq!(sim.link_stats(a, b).too_big, 1);
}

fn lossy_run(seed: u64) -> (u64, usize) {
    let (mut sim, a, b) = pair(seed, LinkConfig::lossy(0.1).bandwidth(1_000_000, 1 << 20));
    sim.stack_mut(b).echo = true;
    for i in 0..300 {
        sim.stack_mut(a).outbox.push_back(seg(1, 2, i));
    }
    sim.run_for(Duration::from_secs(5));
    (sim.trace_hash(), sim.stack(a).received.len())
}

#[test]
fn same_seed_same_trace() {
    let (h1, n1) = lossy_run(11);
    let (h2, n2) = lossy_run(11);
    assert_eq!((h1, n1), (h2, n2));
    let (h3, _) = lossy_run(12);
    assert_ne!(h1, h3);
    assert!(n1 > 200 && n1 < 300, "{n1}");
}

#[test]
fn a_livelock_is_reported() {
    let (mut sim, a, _) = pair(1, LinkConfig::default());
    sim.stack_mut(a).stuck = true;
    sim.set_max_steps_per_instant(50);
    let r = sim.try_run_until(Instant::from_millis(10), |_| false);
    assert_eq!(
        r,
        Err(Stalled {
            at: Instant::ZERO,
            steps: 51
        })
    );
}

#[test]
fn pattern_is_addressable() {
    let p = app::Pattern::new(9);
    let mut whole = vec![0; 100];
    p.fill(0, &mut whole);
    let mut part = vec![0; 37];
    p.fill(13, &mut part);
    assert_eq!(&whole[13..50], &part[..]);
    assert_eq!(p.byte(77), whole[77]);
    assert_eq!(p.first_mismatch(13, &part), None);
    part[5] ^= 1;
    assert_eq!(p.first_mismatch(13, &part), Some(18));
    assert_ne!(whole, {
        let mut other = vec![0; 100];
        app::Pattern::new(10).fill(0, &mut other);
        other
    });
}
