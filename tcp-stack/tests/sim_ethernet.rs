//! The Ethernet link layer in the simulator: stacks with `Config::ethernet`
//! on one link carrying frames, resolving each other with ARP (RFC 826)
//! and NDP (RFC 4861) from empty neighbour caches.
#![cfg(feature = "sim")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcp_stack::sim::app::{Transfer, TransferSpec};
use tcp_stack::sim::{LinkConfig, Sim, TraceEvent};
use tcp_stack::wire::{ArpRepr, Ipv6Packet, NdpRepr};
use tcp_stack::{Config, Duration, Error, MacAddr, NeighbourState, State};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn spec(bytes: u64) -> TransferSpec {
    TransferSpec {
        client_bytes: bytes,
        server_bytes: bytes / 2,
        ..TransferSpec::default()
    }
}

/// Frames the node emitted, from the capture.
fn sent_by(sim: &Sim, node: tcp_stack::sim::NodeId) -> Vec<Vec<u8>> {
    sim.trace()
        .iter()
        .filter(|e| e.event == TraceEvent::Sent && e.packet.from == Some(node))
        .map(|e| e.packet.data.clone())
        .collect()
}

fn lossy() -> LinkConfig {
    // No corruption: an Ethernet FCS drops corrupted frames before a stack
    // sees them.
    LinkConfig::lan()
        .loss(0.02)
        .duplicate(0.01)
        .reorder(0.02, Duration::from_millis(2))
}

#[test]
fn test_ethernet_ipv4_bulk_with_loss_from_empty_caches() {
    for seed in 1..=3 {
        let (mut sim, c, s) = Sim::ethernet_pair(seed, lossy(), |_| {});
        let mut t = Transfer::start(&mut sim, c, s, spec(300_000));
        let deadline = sim.now() + secs(300);
        assert!(sim.run_until(deadline, |sim| t.poll(sim)), "seed {seed}");
        t.assert_success();
        // Both sides resolved each other (RFC 826: the request to us
        // creates the requester's entry).
        let server_mac = sim.mac(s).unwrap();
        let n = sim.stack(c).neighbours();
        let e = n
            .iter()
            .find(|n| n.ip == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
            .expect("client knows the server");
        assert_eq!(e.mac, Some(server_mac));
        assert!(sim
            .stack(s)
            .neighbours()
            .iter()
            .any(|n| n.ip == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(sim.stack(c).stats().arp_in > 0 && sim.stack(s).stats().arp_replies > 0);
    }
}

#[test]
fn test_ethernet_ipv6_bulk_with_loss_from_empty_caches() {
    for seed in 1..=3 {
        let (mut sim, c, s) = Sim::ethernet_pair(seed, lossy(), |_| {});
        let server = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
        let mut t = Transfer::start_at(&mut sim, c, s, server, spec(300_000));
        let deadline = sim.now() + secs(300);
        assert!(sim.run_until(deadline, |sim| t.poll(sim)), "seed {seed}");
        t.assert_success();
        // RFC 4861 7.2: NS answered by NA; both ends hold each other.
        let n = sim.stack(c).neighbours();
        assert!(n.iter().any(|n| n.ip == server && n.mac == sim.mac(s)));
        let client = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        assert!(sim.stack(s).neighbours().iter().any(|n| n.ip == client));
    }
}

#[test]
fn test_ethernet_link_local_handshake() {
    // RFC 4862 5.3: the derived fe80:: addresses work between the nodes.
    let (mut sim, c, s) = Sim::ethernet_pair(5, LinkConfig::lan(), |_| {});
    let ll = IpAddr::V6(sim.stack(s).link_local_addr().unwrap());
    let mut t = Transfer::start_at(&mut sim, c, s, ll, spec(20_000));
    let deadline = sim.now() + secs(300);
    let mut local = None;
    assert!(sim.run_until(deadline, |sim| {
        if local.is_none() {
            local = t.client_conn().and_then(|cc| sim.stack(c).local_addr(cc));
        }
        t.poll(sim)
    }));
    t.assert_success();
    let ll_c = IpAddr::V6(sim.stack(c).link_local_addr().unwrap());
    assert_eq!(local.map(|l| l.ip()), Some(ll_c));
}

#[test]
fn test_ethernet_unanswered_arp_fails_connect_after_max_probes() {
    // RFC 4861 7.2.2 (and ARP, as Linux): max_probes requests one
    // retrans_time apart, then EHOSTUNREACH for the waiting SYN.
    let (mut sim, c, _s) = Sim::ethernet_pair(9, LinkConfig::lan(), |_| {});
    sim.set_capture(true);
    sim.run_for(Duration::from_millis(10));
    let start = sim.now();
    let dst: SocketAddr = "10.0.0.9:80".parse().unwrap();
    let conn = sim.stack_mut(c).connect(start, None, dst).unwrap();
    let done = sim.run_until(start + secs(30), |sim| {
        sim.stack(c).state(conn) == State::Closed
    });
    assert!(done);
    let failed_after = sim.now() - start;
    assert!(
        failed_after >= secs(3) && failed_after < secs(4),
        "{failed_after:?}"
    );
    assert_eq!(sim.stack(c).error(conn), Some(Error::HostUnreachable));
    let requests = sent_by(&sim, c)
        .iter()
        .filter(|f| u16::from_be_bytes([f[12], f[13]]) == 0x0806)
        .filter_map(|f| ArpRepr::parse(&f[14..]).ok())
        .filter(|a| a.target_ip == Ipv4Addr::new(10, 0, 0, 9))
        .count();
    assert_eq!(requests, 3);
    assert_eq!(sim.stack(c).stats().neigh_res_failed, 1);
}

#[test]
fn test_ethernet_unanswered_ns_fails_connect_after_max_probes() {
    let (mut sim, c, _s) = Sim::ethernet_pair(10, LinkConfig::lan(), |_| {});
    sim.set_capture(true);
    let start = sim.now();
    let target = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
    let conn = sim
        .stack_mut(c)
        .connect(start, None, SocketAddr::new(IpAddr::V6(target), 80))
        .unwrap();
    assert!(
        sim.run_until(start + secs(30), |sim| sim.stack(c).state(conn)
            == State::Closed)
    );
    assert_eq!(sim.stack(c).error(conn), Some(Error::HostUnreachable));
    let ns = sent_by(&sim, c)
        .iter()
        .filter(|f| u16::from_be_bytes([f[12], f[13]]) == 0x86dd)
        .filter_map(|f| {
            let p = Ipv6Packet::new_checked(&f[14..]).ok()?;
            NdpRepr::parse(p.payload(), p.src_addr(), p.dst_addr()).ok()
        })
        .filter(|m| matches!(m, NdpRepr::NeighborSolicit { target: t, .. } if *t == target))
        .count();
    assert_eq!(ns, 3);
}

#[test]
fn test_ethernet_off_link_frames_go_to_the_gateway() {
    // A third node plays the gateway: the client resolves it, not the
    // off-link destination, and the SYN's frame is addressed to its MAC.
    let (mut sim, c, s) = Sim::ethernet_pair(11, LinkConfig::lan(), |_| {});
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 0xfe]);
    let gw_ip = Ipv4Addr::new(10, 0, 0, 254);
    let mut cfg = Config::with_ethernet(gw_mac, [(IpAddr::V4(gw_ip), 24)]);
    cfg.seed = 99;
    let g = sim.add_stack("gateway", cfg);
    sim.link(c, g, LinkConfig::lan());
    sim.link(s, g, LinkConfig::lan());
    // Reconfigure the client with a gateway (a reboot with the new config).
    let mut ccfg = sim.stack(c).config().clone();
    if let Some(e) = ccfg.ethernet.as_mut() {
        e.gateway_v4 = Some(gw_ip);
    }
    sim.replace_host(c, tcp_stack::Stack::new(ccfg));
    sim.set_capture(true);
    let now = sim.now();
    let dst: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let _conn = sim.stack_mut(c).connect(now, None, dst).unwrap();
    sim.run_for(secs(2));
    let frames = sent_by(&sim, c);
    let syns: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| u16::from_be_bytes([f[12], f[13]]) == 0x0800)
        .collect();
    assert!(!syns.is_empty());
    for f in syns {
        assert_eq!(
            &f[..6],
            &gw_mac.0,
            "off-link datagrams go to the gateway's MAC"
        );
    }
    // Broadcast frames (the gratuitous ARP at start) reached both others.
    let n = sim
        .stack(c)
        .neighbours()
        .into_iter()
        .find(|n| n.ip == IpAddr::V4(gw_ip))
        .unwrap();
    assert_eq!(n.mac, Some(gw_mac));
    assert!(
        sim.stack(g).stats().drop_not_ours > 0,
        "the gateway got the SYN"
    );
}

#[test]
fn test_ethernet_broadcast_reaches_every_node() {
    let (mut sim, c, s) = Sim::ethernet_pair(12, LinkConfig::lan(), |_| {});
    let mut cfg = Config::with_ethernet(
        MacAddr([2, 0, 0, 0, 0, 3]),
        [(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 24)],
    );
    cfg.seed = 7;
    let t = sim.add_stack("third", cfg);
    sim.link(c, t, LinkConfig::lan());
    sim.link(s, t, LinkConfig::lan());
    sim.run_for(secs(1));
    // Each node's gratuitous ARP reached the two others.
    for n in [c, s, t] {
        assert_eq!(sim.stack(n).stats().arp_in, 2, "node {n:?}");
    }
}

#[test]
fn test_ethernet_established_tcp_acks_keep_the_neighbour_reachable() {
    // RFC 4861 7.3.1: ACKs of new data confirm reachability; a connection
    // sending every second for 100 s never needs a NUD probe.
    let (mut sim, c, s) = Sim::ethernet_pair(13, LinkConfig::lan(), |_| {});
    let addr: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let l = sim.stack_mut(s).listen(addr, 8).unwrap();
    let now = sim.now();
    let cc = sim.stack_mut(c).connect(now, None, addr).unwrap();
    let mut sc = None;
    assert!(sim.run_until(now + secs(5), |sim| {
        if sc.is_none() {
            sc = sim.stack_mut(s).accept(l);
        }
        sc.is_some() && sim.stack(c).state(cc) == State::Established
    }));
    let sc = sc.unwrap();
    let solicits = sim.stack(c).stats().neigh_solicits;
    let mut buf = [0u8; 1024];
    for _ in 0..100 {
        let _ = sim.stack_mut(c).send(cc, b"tick");
        sim.run_for(secs(1));
        while sim.stack_mut(s).recv(sc, &mut buf).is_ok_and(|n| n > 0) {}
    }
    let server = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let e = sim
        .stack(c)
        .neighbours()
        .into_iter()
        .find(|n| n.ip == server)
        .unwrap();
    assert_eq!(e.state, NeighbourState::Reachable);
    assert_eq!(sim.stack(c).stats().neigh_solicits, solicits, "no probes");
}

#[test]
fn test_ethernet_runs_are_deterministic() {
    let run = || {
        let (mut sim, c, s) = Sim::ethernet_pair(21, lossy(), |_| {});
        let mut t = Transfer::start(&mut sim, c, s, spec(100_000));
        let deadline = sim.now() + secs(120);
        assert!(sim.run_until(deadline, |sim| t.poll(sim)));
        sim.trace_hash()
    };
    assert_eq!(run(), run());
}

#[test]
fn test_ethernet_established_peer_gone_gives_soft_error() {
    // The peer vanishes: no more confirmations, REACHABLE -> STALE ->
    // DELAY -> PROBE -> FAILED (RFC 4861 7.3.3); the datagrams that could
    // not go are reported as by ICMP host unreachable, a soft error for an
    // established connection (RFC 1122 4.2.3.9).
    let (mut sim, c, s) = Sim::ethernet_pair(14, LinkConfig::lan(), |_| {});
    let addr: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let l = sim.stack_mut(s).listen(addr, 8).unwrap();
    let now = sim.now();
    let cc = sim.stack_mut(c).connect(now, None, addr).unwrap();
    assert!(sim.run_until(now + secs(5), |sim| {
        let _ = sim.stack_mut(s).accept(l);
        sim.stack(c).state(cc) == State::Established
    }));
    sim.set_link_up(c, s, false);
    let _ = sim.stack_mut(c).send(cc, &[7u8; 1000]);
    sim.run_for(secs(120));
    let soft = sim
        .events(c)
        .iter()
        .any(|(_, e)| *e == tcp_stack::Event::SoftError(cc));
    assert!(soft, "a soft error was reported");
    assert!(sim.stack(c).stats().neigh_failed_drops > 0);
    assert_ne!(
        sim.stack(c).state(cc),
        State::Closed,
        "soft errors do not close"
    );
}

#[test]
fn test_ethernet_tcp_impairments_apply_behind_the_header() {
    // The link's TCP-level impairments (zeroed timestamp echoes, forged
    // SACK blocks) rewrite the datagram inside the frame; the transfer
    // still completes.
    let link = LinkConfig::lan().zero_tsecr(0.05).renege(0.02);
    let (mut sim, c, s) = Sim::ethernet_pair(15, link, |_| {});
    let mut t = Transfer::start(&mut sim, c, s, spec(200_000));
    let deadline = sim.now() + secs(300);
    assert!(sim.run_until(deadline, |sim| t.poll(sim)));
    t.assert_success();
    let (a, b) = (sim.link_stats(c, s), sim.link_stats(s, c));
    assert!(a.tsecr_zeroed + b.tsecr_zeroed > 0 && a.reneged + b.reneged > 0);
}
