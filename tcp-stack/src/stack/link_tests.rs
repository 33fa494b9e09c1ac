//! The Ethernet link layer: framing, ARP, NDP, NUD, next hops.

use super::*;
use crate::config::{EthernetConfig, NeighbourConfig};
use crate::stack::neighbour::{Lookup, Neighbours, Update};

const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const GW: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn at(secs: f64) -> Instant {
    Instant::from_micros((secs * 1e6) as u64)
}

/// 10.0.0.1/24 and fd00::1/64 on MAC 02:00:00:00:00:01, the gratuitous
/// ARP already drained.
fn stack_with(tune: impl Fn(&mut EthernetConfig)) -> Stack {
    let mut cfg = Config::with_ethernet(
        US,
        [
            (IpAddr::V4(v4("10.0.0.1")), 24),
            (IpAddr::V6(v6("fd00::1")), 64),
        ],
    );
    if let Some(e) = cfg.ethernet.as_mut() {
        tune(e);
    }
    let mut s = Stack::new(cfg);
    let _ = drain(&mut s, at(0.0));
    s
}

fn stack() -> Stack {
    stack_with(|_| {})
}

fn drain(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500 + ETH_HLEN];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn frame(dst: MacAddr, src: MacAddr, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ETH_HLEN];
    EthernetRepr {
        dst,
        src,
        ethertype,
    }
    .emit(&mut f);
    f.extend_from_slice(payload);
    f
}

fn arp(op: ArpOp, dst: MacAddr, sha: MacAddr, spa: &str, tha: MacAddr, tpa: &str) -> Vec<u8> {
    let mut p = [0u8; ArpRepr::LEN];
    ArpRepr {
        op,
        sender_mac: sha,
        sender_ip: v4(spa),
        target_mac: tha,
        target_ip: v4(tpa),
    }
    .emit(&mut p);
    frame(dst, sha, EtherType::Arp, &p)
}

fn ndp(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, msg: &NdpRepr, eth_src: MacAddr) -> Vec<u8> {
    let len = msg.buffer_len();
    let mut ip = vec![0u8; Ipv6Repr::HEADER_LEN + len];
    msg.emit(src, dst, &mut ip[Ipv6Repr::HEADER_LEN..]);
    Ipv6Repr {
        src,
        dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: len,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut ip);
    let dst_mac = if dst.is_multicast() {
        MacAddr::ipv6_multicast(dst)
    } else {
        US
    };
    frame(dst_mac, eth_src, EtherType::Ipv6, &ip)
}

fn parse_eth(f: &[u8]) -> EthernetRepr {
    EthernetRepr::parse(&EthernetFrame::new_checked(f).unwrap())
}

fn parse_arp(f: &[u8]) -> ArpRepr {
    ArpRepr::parse(&f[ETH_HLEN..]).unwrap()
}

/// The NDP message of a frame, with its IPv6 source, destination and hop limit.
fn parse_ndp(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, NdpRepr) {
    let p = Ipv6Packet::new_checked(&f[ETH_HLEN..]).unwrap();
    let m = NdpRepr::parse(p.payload(), p.src_addr(), p.dst_addr()).unwrap();
    (p.src_addr(), p.dst_addr(), p.hop_limit(), m)
}

fn state_of(s: &Stack, ip: IpAddr) -> Option<(Option<MacAddr>, NeighbourState)> {
    s.neighbours()
        .into_iter()
        .find(|n| n.ip == ip)
        .map(|n| (n.mac, n.state))
}

#[test]
fn test_start_gratuitous_arp_per_ipv4_address() {
    // RFC 5227 3 / RFC 826: sender = target = our address, broadcast.
    let cfg = Config::with_ethernet(US, [(IpAddr::V4(v4("10.0.0.1")), 24)]);
    let mut s = Stack::new(cfg);
    let out = drain(&mut s, at(0.0));
    assert_eq!(out.len(), 1);
    let eth = parse_eth(&out[0]);
    assert_eq!(
        (eth.dst, eth.src, eth.ethertype),
        (MacAddr::BROADCAST, US, EtherType::Arp)
    );
    let a = parse_arp(&out[0]);
    assert_eq!(a.op, ArpOp::Request);
    assert_eq!((a.sender_ip, a.target_ip), (v4("10.0.0.1"), v4("10.0.0.1")));
    assert_eq!(s.mac(), Some(US));
}

#[test]
fn test_link_local_derived_and_answered() {
    // RFC 4862 5.3 with RFC 4291 appendix A's modified EUI-64.
    let s = stack();
    let ll = s.link_local_addr().unwrap();
    assert_eq!(ll, v6("fe80::ff:fe00:1"));
    assert!(s.config().addrs.contains(&IpAddr::V6(ll)));
    let off = stack_with(|e| e.link_local = false);
    assert_eq!(off.link_local_addr(), None);
}

#[test]
fn test_arp_request_for_us_answered_and_sender_learnt() {
    // RFC 826 "Packet Reception": merge, add (we are the target), reply.
    let mut s = stack();
    let req = peer_asks_for_us();
    s.handle_packet(at(1.0), &req);
    let out = drain(&mut s, at(1.0));
    assert_eq!(out.len(), 1);
    assert_eq!(parse_eth(&out[0]).dst, PEER);
    let a = parse_arp(&out[0]);
    assert_eq!(a.op, ArpOp::Reply);
    assert_eq!((a.sender_mac, a.sender_ip), (US, v4("10.0.0.1")));
    assert_eq!((a.target_mac, a.target_ip), (PEER, v4("10.0.0.2")));
    assert_eq!(
        state_of(&s, IpAddr::V4(v4("10.0.0.2"))),
        Some((Some(PEER), NeighbourState::Stale))
    );
    assert_eq!(s.stats().arp_replies, 1);
}

#[test]
fn test_arp_request_for_others_not_answered_nor_learnt() {
    // RFC 826: not the target and not in the table: nothing is added.
    let mut s = stack();
    let req = arp(
        ArpOp::Request,
        MacAddr::BROADCAST,
        PEER,
        "10.0.0.2",
        MacAddr::ZERO,
        "10.0.0.9",
    );
    s.handle_packet(at(1.0), &req);
    assert!(drain(&mut s, at(1.0)).is_empty());
    assert!(s.neighbours().is_empty());
}

#[test]
fn test_arp_from_own_or_group_mac_ignored() {
    let mut s = stack();
    let own = arp(
        ArpOp::Request,
        MacAddr::BROADCAST,
        US,
        "10.0.0.2",
        MacAddr::ZERO,
        "10.0.0.1",
    );
    s.handle_packet(at(1.0), &own);
    let mut group = peer_asks_for_us();
    // A broadcast sender hardware address in the ARP body.
    group[ETH_HLEN + 8..ETH_HLEN + 14].copy_from_slice(&[0xff; 6]);
    s.handle_packet(at(1.0), &group);
    assert!(drain(&mut s, at(1.0)).is_empty());
    assert!(s.neighbours().is_empty());
    assert_eq!(s.stats().arp_dropped, 2);
}

#[test]
fn test_frames_for_others_runts_and_vlans_dropped() {
    let mut s = stack();
    let other = MacAddr([2, 0, 0, 0, 0, 9]);
    s.handle_packet(at(1.0), &frame(other, PEER, EtherType::Ipv4, &[0x45; 40]));
    s.handle_packet(
        at(1.0),
        &frame(US, PEER, EtherType::Unknown(0x8100), &[0; 40]),
    );
    s.handle_packet(at(1.0), &[0u8; 13]);
    let st = s.stats();
    assert_eq!(
        (
            st.link_drop_not_ours,
            st.link_drop_ethertype,
            st.link_drop_malformed
        ),
        (1, 1, 1)
    );
}

#[test]
fn test_ns_for_us_answered_with_solicited_na() {
    // RFC 4861 7.2.3: source LL creates a STALE entry; 7.2.4: NA with
    // S=1, O=1, R=0 and the target LL option, to the source.
    let mut s = stack();
    let peer = v6("fd00::2");
    let ns = NdpRepr::NeighborSolicit {
        target: v6("fd00::1"),
        source_ll: Some(PEER),
    };
    s.handle_packet(
        at(1.0),
        &ndp(peer, solicited_node(v6("fd00::1")), 255, &ns, PEER),
    );
    let out = drain(&mut s, at(1.0));
    assert_eq!(out.len(), 1);
    assert_eq!(parse_eth(&out[0]).dst, PEER);
    let (src, dst, hl, m) = parse_ndp(&out[0]);
    assert_eq!((src, dst, hl), (v6("fd00::1"), peer, 255));
    assert_eq!(
        m,
        NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            overrides: true,
            target: v6("fd00::1"),
            target_ll: Some(US),
        }
    );
    assert_eq!(
        state_of(&s, IpAddr::V6(peer)),
        Some((Some(PEER), NeighbourState::Stale))
    );
}

#[test]
fn test_ns_for_link_local_answered() {
    let mut s = stack();
    let ll = s.link_local_addr().unwrap();
    let ns = NdpRepr::NeighborSolicit {
        target: ll,
        source_ll: Some(PEER),
    };
    s.handle_packet(
        at(1.0),
        &ndp(v6("fe80::2"), solicited_node(ll), 255, &ns, PEER),
    );
    let out = drain(&mut s, at(1.0));
    assert_eq!(out.len(), 1);
    assert_eq!(parse_ndp(&out[0]).0, ll);
}

#[test]
fn test_ns_dad_answered_to_all_nodes_unsolicited() {
    // RFC 4861 7.2.4: source :: -> NA to ff02::1 with S=0.
    let mut s = stack();
    let ns = NdpRepr::NeighborSolicit {
        target: v6("fd00::1"),
        source_ll: None,
    };
    let f = ndp(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(v6("fd00::1")),
        255,
        &ns,
        PEER,
    );
    s.handle_packet(at(1.0), &f);
    let out = drain(&mut s, at(1.0));
    assert_eq!(out.len(), 1);
    assert_eq!(parse_eth(&out[0]).dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    let (_, dst, _, m) = parse_ndp(&out[0]);
    assert_eq!(dst, ALL_NODES);
    assert!(matches!(
        m,
        NdpRepr::NeighborAdvert {
            solicited: false,
            overrides: true,
            ..
        }
    ));
    assert!(s.neighbours().is_empty());
}

#[test]
fn test_ns_invalid_dropped_and_counted() {
    // RFC 4861 7.1.1.
    let mut s = stack();
    let target = v6("fd00::1");
    let group = solicited_node(target);
    let good = NdpRepr::NeighborSolicit {
        target,
        source_ll: Some(PEER),
    };
    // Hop limit not 255.
    s.handle_packet(at(1.0), &ndp(v6("fd00::2"), group, 64, &good, PEER));
    // Multicast target.
    let mc = NdpRepr::NeighborSolicit {
        target: v6("ff02::1"),
        source_ll: Some(PEER),
    };
    s.handle_packet(at(1.0), &ndp(v6("fd00::2"), group, 255, &mc, PEER));
    // From :: with a source LL option.
    s.handle_packet(
        at(1.0),
        &ndp(Ipv6Addr::UNSPECIFIED, group, 255, &good, PEER),
    );
    // From :: not to the solicited-node group.
    let dad = NdpRepr::NeighborSolicit {
        target,
        source_ll: None,
    };
    s.handle_packet(
        at(1.0),
        &ndp(Ipv6Addr::UNSPECIFIED, ALL_NODES, 255, &dad, PEER),
    );
    assert!(drain(&mut s, at(1.0)).is_empty());
    assert_eq!(s.stats().ndp_invalid, 4);
    assert!(s.neighbours().is_empty());
}

#[test]
fn test_na_to_multicast_with_solicited_flag_invalid() {
    // RFC 4861 7.1.2.
    let mut s = stack();
    let na = NdpRepr::NeighborAdvert {
        router: false,
        solicited: true,
        overrides: true,
        target: v6("fd00::2"),
        target_ll: Some(PEER),
    };
    s.handle_packet(at(1.0), &ndp(v6("fd00::2"), ALL_NODES, 255, &na, PEER));
    assert_eq!(s.stats().ndp_invalid, 1);
}

/// The peer (10.0.0.2 at `PEER`) broadcasting an ARP request for our
/// 10.0.0.1.
fn peer_asks_for_us() -> Vec<u8> {
    arp(
        ArpOp::Request,
        MacAddr::BROADCAST,
        PEER,
        "10.0.0.2",
        MacAddr::ZERO,
        "10.0.0.1",
    )
}

/// Connects to `remote` and returns the connection and the frames sent.
fn connect(s: &mut Stack, now: Instant, remote: &str) -> (ConnId, Vec<Vec<u8>>) {
    let c = s
        .connect(now, None, remote.parse::<SocketAddr>().unwrap())
        .unwrap();
    (c, drain(s, now))
}

#[test]
fn test_incomplete_arp_reply_becomes_reachable_and_flushes_in_order() {
    // RFC 4861 7.2.5 (as Linux for ARP): INCOMPLETE + reply -> REACHABLE;
    // the queued SYN goes out at once.
    let mut s = stack();
    let (_, out) = connect(&mut s, at(1.0), "10.0.0.2:80");
    assert_eq!(out.len(), 1, "only the ARP request, the SYN waits");
    assert_eq!(parse_eth(&out[0]).dst, MacAddr::BROADCAST);
    assert_eq!(parse_arp(&out[0]).target_ip, v4("10.0.0.2"));
    let peer = IpAddr::V4(v4("10.0.0.2"));
    assert_eq!(state_of(&s, peer), Some((None, NeighbourState::Incomplete)));
    let rep = arp(ArpOp::Reply, US, PEER, "10.0.0.2", US, "10.0.0.1");
    s.handle_packet(at(1.1), &rep);
    assert_eq!(
        state_of(&s, peer),
        Some((Some(PEER), NeighbourState::Reachable))
    );
    let out = drain(&mut s, at(1.1));
    assert_eq!(out.len(), 1);
    let eth = parse_eth(&out[0]);
    assert_eq!(
        (eth.dst, eth.src, eth.ethertype),
        (PEER, US, EtherType::Ipv4)
    );
    let ip = Ipv4Packet::new_checked(&out[0][ETH_HLEN..]).unwrap();
    assert_eq!(ip.dst_addr(), v4("10.0.0.2"));
}

#[test]
fn test_incomplete_solicited_na_becomes_reachable() {
    // RFC 4861 7.2.2: NS to the solicited-node group; 7.2.5: S=1 -> REACHABLE.
    let mut s = stack();
    let (_, out) = connect(&mut s, at(1.0), "[fd00::2]:80");
    assert_eq!(out.len(), 1);
    let (src, dst, hl, m) = parse_ndp(&out[0]);
    assert_eq!(
        (src, dst, hl),
        (v6("fd00::1"), solicited_node(v6("fd00::2")), 255)
    );
    assert_eq!(parse_eth(&out[0]).dst, MacAddr::ipv6_multicast(dst));
    assert_eq!(
        m,
        NdpRepr::NeighborSolicit {
            target: v6("fd00::2"),
            source_ll: Some(US)
        }
    );
    let na = NdpRepr::NeighborAdvert {
        router: false,
        solicited: true,
        overrides: true,
        target: v6("fd00::2"),
        target_ll: Some(PEER),
    };
    s.handle_packet(at(1.1), &ndp(v6("fd00::2"), v6("fd00::1"), 255, &na, PEER));
    let peer = IpAddr::V6(v6("fd00::2"));
    assert_eq!(
        state_of(&s, peer),
        Some((Some(PEER), NeighbourState::Reachable))
    );
    let out = drain(&mut s, at(1.1));
    assert_eq!(out.len(), 1);
    assert_eq!(parse_eth(&out[0]).dst, PEER);
}

#[test]
fn test_incomplete_unanswered_fails_connect_with_host_unreachable() {
    // RFC 4861 7.2.2: MAX_MULTICAST_SOLICIT requests RetransTimer apart,
    // then the queued SYN is answered as by ICMP host unreachable, a hard
    // error in SYN-SENT (RFC 1122 4.2.3.9).
    let mut s = stack();
    let (c, out) = connect(&mut s, at(0.0), "10.0.0.2:80");
    let mut requests = out.len();
    let mut now = at(0.0);
    while let Some(t) = s.poll_timeout() {
        if t > at(10.0) {
            break;
        }
        now = t;
        s.handle_timeout(now);
        requests += drain(&mut s, now)
            .iter()
            .filter(|f| parse_eth(f).ethertype == EtherType::Arp)
            .count();
        if s.error(c).is_some() {
            break;
        }
    }
    assert_eq!(requests, 3);
    assert_eq!(s.error(c), Some(Error::HostUnreachable));
    assert_eq!(now, at(3.0));
    assert_eq!(s.stats().neigh_res_failed, 1);
    assert_eq!(
        state_of(&s, IpAddr::V4(v4("10.0.0.2"))),
        Some((None, NeighbourState::Failed))
    );
    // While FAILED, a new connect fails fast on its first SYN.
    let (c2, _) = connect(&mut s, now, "10.0.0.2:81");
    assert_eq!(s.error(c2), Some(Error::HostUnreachable));
}

#[test]
fn test_next_hop_off_link_goes_to_gateway_or_is_unreachable() {
    let mut s = stack_with(|e| e.gateway_v4 = Some(Ipv4Addr::new(10, 0, 0, 254)));
    let (_, out) = connect(&mut s, at(1.0), "192.0.2.7:80");
    // The gateway is resolved, not the destination.
    assert_eq!(parse_arp(&out[0]).target_ip, v4("10.0.0.254"));
    let rep = arp(ArpOp::Reply, US, GW, "10.0.0.254", US, "10.0.0.1");
    s.handle_packet(at(1.1), &rep);
    let out = drain(&mut s, at(1.1));
    assert_eq!(parse_eth(&out[0]).dst, GW);
    let ip = Ipv4Packet::new_checked(&out[0][ETH_HLEN..]).unwrap();
    assert_eq!(ip.dst_addr(), v4("192.0.2.7"));
    // No IPv6 gateway: ENETUNREACH at once.
    let err = s.connect(
        at(1.1),
        None,
        "[2001:db8::1]:80".parse::<SocketAddr>().unwrap(),
    );
    assert_eq!(err, Err(Error::NetworkUnreachable));
    let mut bare = stack();
    let err = bare.connect(at(1.1), None, "192.0.2.7:80".parse::<SocketAddr>().unwrap());
    assert_eq!(err, Err(Error::NetworkUnreachable));
}

#[test]
fn test_loopback_still_works_with_ethernet() {
    let mut s = stack();
    let l = s
        .listen("10.0.0.1:80".parse::<SocketAddr>().unwrap(), 8)
        .unwrap();
    let (c, out) = connect(&mut s, at(1.0), "10.0.0.1:80");
    assert!(out.is_empty(), "nothing leaves for our own address");
    let mut now = at(1.0);
    for _ in 0..10 {
        s.handle_timeout(now);
        assert!(drain(&mut s, now).is_empty());
        now += Duration::from_millis(1);
    }
    assert_eq!(s.state(c), State::Established);
    assert!(s.accept(l).is_some());
}

fn nd_cfg() -> NeighbourConfig {
    NeighbourConfig::default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn test_reachable_stale_delay_probe_failed() {
    // RFC 4861 7.3.3: REACHABLE -> STALE after ReachableTime; sending moves
    // STALE -> DELAY; DELAY -> PROBE after DELAY_FIRST_PROBE_TIME with a
    // unicast probe; MAX_UNICAST_SOLICIT probes unanswered -> gone (FAILED).
    let mut n = Neighbours::new(nd_cfg(), Duration::from_secs(30));
    let p = ip("10.0.0.2");
    assert!(n.create_incomplete(at(0.0), p, None));
    let u = |confirmed| Update {
        mac: PEER,
        confirmed,
        overrides: false,
        create: false,
    };
    assert!(n.update(at(0.5), p, u(true)).is_some());
    let st = |n: &Neighbours| n.entries.get(&p).map(|e| e.state);
    assert_eq!(st(&n), Some(NeighbourState::Reachable));
    let mut acts = Vec::new();
    n.on_timeout(at(30.4), &mut acts);
    assert_eq!(st(&n), Some(NeighbourState::Reachable));
    n.on_timeout(at(30.5), &mut acts);
    assert_eq!(st(&n), Some(NeighbourState::Stale));
    assert!(matches!(n.lookup(at(31.0), p), Lookup::Send(m) if m == PEER));
    assert_eq!(st(&n), Some(NeighbourState::Delay));
    n.on_timeout(at(36.0), &mut acts);
    assert_eq!(st(&n), Some(NeighbourState::Probe));
    assert!(matches!(acts.as_slice(), [Action::Solicit { unicast: Some(m), .. }] if *m == PEER));
    n.on_timeout(at(37.0), &mut acts);
    n.on_timeout(at(38.0), &mut acts);
    assert_eq!(acts.len(), 3, "max_probes unicast probes");
    assert_eq!(st(&n), Some(NeighbourState::Probe));
    n.on_timeout(at(39.0), &mut acts);
    assert_eq!(st(&n), Some(NeighbourState::Failed));
    n.on_timeout(at(40.0), &mut acts);
    assert_eq!(st(&n), None);
}

#[test]
fn test_probe_confirmed_by_upper_layer() {
    // RFC 4861 7.3.1: a confirmation from the cached MAC makes it REACHABLE;
    // one from another MAC does nothing.
    let mut n = Neighbours::new(nd_cfg(), Duration::from_secs(30));
    let p = ip("10.0.0.2");
    let u = Update {
        mac: PEER,
        confirmed: false,
        overrides: true,
        create: true,
    };
    n.update(at(0.0), p, u);
    assert_eq!(n.entries[&p].state, NeighbourState::Stale);
    n.confirm(at(1.0), p, GW);
    assert_eq!(n.entries[&p].state, NeighbourState::Stale);
    n.confirm(at(1.0), p, PEER);
    assert_eq!(n.entries[&p].state, NeighbourState::Reachable);
}

#[test]
fn test_na_without_override_keeps_address_and_stales_reachable() {
    // RFC 4861 7.2.5: O=0 with a different address: REACHABLE -> STALE,
    // the cached address stays; O=1 replaces it.
    let mut n = Neighbours::new(nd_cfg(), Duration::from_secs(30));
    let p = ip("fd00::2");
    n.create_incomplete(at(0.0), p, None);
    n.update(
        at(0.0),
        p,
        Update {
            mac: PEER,
            confirmed: true,
            overrides: false,
            create: false,
        },
    );
    n.update(
        at(1.0),
        p,
        Update {
            mac: GW,
            confirmed: true,
            overrides: false,
            create: false,
        },
    );
    assert_eq!(
        (n.entries[&p].mac, n.entries[&p].state),
        (Some(PEER), NeighbourState::Stale)
    );
    n.update(
        at(1.0),
        p,
        Update {
            mac: GW,
            confirmed: false,
            overrides: true,
            create: false,
        },
    );
    assert_eq!(
        (n.entries[&p].mac, n.entries[&p].state),
        (Some(GW), NeighbourState::Stale)
    );
}

#[test]
fn test_incomplete_queue_bounded_oldest_dropped_order_kept() {
    let cfg = NeighbourConfig {
        queue_packets: 2,
        ..nd_cfg()
    };
    let mut n = Neighbours::new(cfg, Duration::from_secs(30));
    let p = ip("10.0.0.2");
    n.create_incomplete(at(0.0), p, None);
    assert_eq!(n.enqueue(p, &[1], None, TxHeaders::default()), 0);
    assert_eq!(n.enqueue(p, &[2], None, TxHeaders::default()), 0);
    assert_eq!(n.enqueue(p, &[3], None, TxHeaders::default()), 1);
    assert_eq!(n.pending_bytes, 2);
    let u = Update {
        mac: PEER,
        confirmed: true,
        overrides: false,
        create: false,
    };
    let flushed: Vec<u8> = n
        .update(at(0.1), p, u)
        .unwrap()
        .into_iter()
        .map(|d| d.0[0])
        .collect();
    assert_eq!(flushed, vec![2, 3]);
    assert_eq!(n.pending_bytes, 0);
}

#[test]
fn test_full_cache_evicts_failed_then_stale() {
    let cfg = NeighbourConfig {
        max_entries: 2,
        ..nd_cfg()
    };
    let mut n = Neighbours::new(cfg, Duration::from_secs(30));
    let create = Update {
        mac: PEER,
        confirmed: false,
        overrides: true,
        create: true,
    };
    n.create_incomplete(at(0.0), ip("10.0.0.2"), None);
    n.update(at(0.0), ip("10.0.0.3"), create);
    // Full: the STALE one goes, not the INCOMPLETE one.
    assert!(n.create_incomplete(at(0.1), ip("10.0.0.4"), None));
    assert!(n.entries.contains_key(&ip("10.0.0.2")));
    assert!(!n.entries.contains_key(&ip("10.0.0.3")));
    // Full of entries in use: refused.
    assert!(!n.create_incomplete(at(0.2), ip("10.0.0.5"), None));
}

#[test]
fn test_prefix_matching_and_multicast_hop() {
    assert!(in_prefix(ip("10.0.0.77"), ip("10.0.0.1"), 24));
    assert!(!in_prefix(ip("10.0.1.1"), ip("10.0.0.1"), 24));
    assert!(in_prefix(ip("1.2.3.4"), ip("10.0.0.1"), 0));
    assert!(in_prefix(ip("fd00::99"), ip("fd00::1"), 64));
    assert!(!in_prefix(ip("fd01::1"), ip("fd00::1"), 64));
    assert!(!in_prefix(ip("10.0.0.1"), ip("fd00::1"), 0));
    assert_eq!(solicited_node(v6("fd00::12:3456")), v6("ff02::1:ff12:3456"));
    let s = stack();
    assert!(matches!(
        s.next_hop(ip("ff02::1")),
        Some(Hop::Multicast(m)) if m == MacAddr([0x33, 0x33, 0, 0, 0, 1])
    ));
    assert!(matches!(s.next_hop(ip("fe80::5")), Some(Hop::Neighbour(_))));
    assert!(s.next_hop(ip("2001:db8::1")).is_none());
}

#[test]
fn test_nstat_names_link_counters() {
    let names: Vec<&str> = Stats::default()
        .nstat()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"IpOutNoRoutes"));
    assert!(names.contains(&"UtcpNeighResFailed"));
}

#[test]
fn test_link_control_frames_go_before_tcp_output() {
    // The ARP reply queued by input leaves before the SYN produced after
    // it; sending to the STALE entry the request created makes it DELAY
    // (RFC 4861 7.3.3).
    let mut s = stack();
    let req = peer_asks_for_us();
    s.handle_packet(at(1.0), &req);
    let (_, out) = connect(&mut s, at(1.0), "10.0.0.2:80");
    assert_eq!(out.len(), 2);
    assert_eq!(parse_eth(&out[0]).ethertype, EtherType::Arp);
    let syn = parse_eth(&out[1]);
    assert_eq!((syn.dst, syn.ethertype), (PEER, EtherType::Ipv4));
    assert_eq!(
        state_of(&s, IpAddr::V4(v4("10.0.0.2"))),
        Some((Some(PEER), NeighbourState::Delay))
    );
}

#[test]
fn test_delay_probe_over_the_stack_sends_unicast_arp() {
    // RFC 4861 7.3.3 with ARP as Linux: DELAY -> PROBE after
    // delay_first_probe, with a unicast request to the cached MAC.
    let mut s = stack();
    let req = peer_asks_for_us();
    s.handle_packet(at(1.0), &req);
    let _ = connect(&mut s, at(1.0), "10.0.0.2:80");
    s.handle_timeout(at(6.0));
    let probes: Vec<Vec<u8>> = drain(&mut s, at(6.0))
        .into_iter()
        .filter(|f| parse_eth(f).ethertype == EtherType::Arp)
        .collect();
    assert_eq!(probes.len(), 1);
    assert_eq!(parse_eth(&probes[0]).dst, PEER);
    assert_eq!(parse_arp(&probes[0]).target_ip, v4("10.0.0.2"));
    assert_eq!(
        state_of(&s, IpAddr::V4(v4("10.0.0.2"))),
        Some((Some(PEER), NeighbourState::Probe))
    );
}

#[test]
#[should_panic(expected = "not on-link")]
fn test_config_off_link_gateway_refused() {
    let _ = stack_with(|e| e.gateway_v4 = Some(Ipv4Addr::new(192, 0, 2, 1)));
}

#[test]
fn test_ethernet_padding_beyond_ip_length_ignored() {
    // A minimum-size frame pads a short datagram: the IP length field
    // decides (RFC 894).
    let mut s = stack();
    let l = s.listen("10.0.0.1:80".parse::<SocketAddr>().unwrap(), 8);
    assert!(l.is_ok());
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum(1),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut seg = vec![0u8; syn.header_len()];
    syn.emit(&mut seg);
    fill_checksum(
        &mut seg,
        IpAddr::V4(v4("10.0.0.2")),
        IpAddr::V4(v4("10.0.0.1")),
    );
    let mut ip = vec![0u8; Ipv4Repr::HEADER_LEN + seg.len()];
    Ipv4Repr {
        src: v4("10.0.0.2"),
        dst: v4("10.0.0.1"),
        protocol: IpProtocol::Tcp,
        payload_len: seg.len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut ip);
    ip[Ipv4Repr::HEADER_LEN..].copy_from_slice(&seg);
    let mut f = frame(US, PEER, EtherType::Ipv4, &ip);
    f.extend_from_slice(&[0xee; 6]);
    s.handle_packet(at(1.0), &f);
    assert_eq!(s.stats().drop_malformed + s.stats().drop_checksum, 0);
    // The SYN-ACK waits for the peer's address: an ARP request goes out.
    let out = drain(&mut s, at(1.0));
    assert_eq!(parse_arp(&out[0]).target_ip, v4("10.0.0.2"));
}

#[test]
fn test_incomplete_queue_bound_over_the_stack() {
    // Three SYNs wait for one neighbour with room for two: the oldest is
    // dropped and counted, the others go out in order once it resolves.
    let mut s = stack_with(|e| e.neighbour.queue_packets = 2);
    let mut ports = Vec::new();
    for port in [81u16, 82, 83] {
        let addr = SocketAddr::new(IpAddr::V4(v4("10.0.0.2")), port);
        s.connect(at(1.0), None, addr).unwrap();
        ports.push(port);
    }
    let out = drain(&mut s, at(1.0));
    assert_eq!(out.len(), 1, "one ARP request for the three");
    assert_eq!(s.stats().neigh_queue_drops, 1);
    let rep = arp(ArpOp::Reply, US, PEER, "10.0.0.2", US, "10.0.0.1");
    s.handle_packet(at(1.1), &rep);
    let out = drain(&mut s, at(1.1));
    let dst_ports: Vec<u16> = out
        .iter()
        .map(|f| {
            let ip = Ipv4Packet::new_checked(&f[ETH_HLEN..]).unwrap();
            TcpPacket::new_checked(ip.payload()).unwrap().dst_port()
        })
        .collect();
    assert_eq!(dst_ports, vec![82, 83]);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Random operations on the cache keep its books straight: the pending
    /// byte count is the sum of the queues, the cache and each queue stay
    /// within bounds, only INCOMPLETE entries hold datagrams, resolved
    /// states have an address, and time always has a next deadline for a
    /// live entry.
    fn check(n: &mut Neighbours) {
        let sum: usize = n
            .entries
            .values()
            .flat_map(|e| e.pending.iter())
            .map(|p| p.0.len())
            .sum();
        assert_eq!(n.pending_bytes, sum);
        assert!(n.entries.len() <= n.cfg.max_entries);
        for e in n.entries.values() {
            assert!(e.pending.len() <= n.cfg.queue_packets);
            if e.state != NeighbourState::Incomplete {
                assert!(e.pending.is_empty());
            }
            let resolved = matches!(
                e.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
            );
            assert_eq!(resolved, e.mac.is_some(), "{:?}", e.state);
        }
        if !n.entries.is_empty() {
            assert!(n.next_deadline().is_some());
        }
    }

    proptest! {
        #[test]
        fn neighbour_cache_books_stay_straight(
            ops in proptest::collection::vec((0u8..6, 0u8..6, 0u8..3, 0u16..3000), 1..200)
        ) {
            let cfg = NeighbourConfig { max_entries: 4, queue_packets: 3, ..NeighbourConfig::default() };
            let mut n = Neighbours::new(cfg, Duration::from_secs(30));
            let mut now = at(0.0);
            let mut acts = Vec::new();
            for (op, who, mac, x) in ops {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, who));
                let mac = MacAddr([2, 0, 0, 0, 0, mac]);
                match op {
                    0 => {
                        if matches!(n.lookup(now, ip), Lookup::Missing) {
                            n.create_incomplete(now, ip, None);
                        }
                        if n.entries.get(&ip).is_some_and(|e| e.state == NeighbourState::Incomplete) {
                            n.enqueue(ip, &vec![0u8; usize::from(x % 200) + 1], None, TxHeaders::default());
                        }
                    }
                    1 => {
                        let u = Update { mac, confirmed: x % 2 == 0, overrides: x % 3 == 0, create: x % 5 == 0 };
                        n.update(now, ip, u);
                    }
                    2 => n.confirm(now, ip, mac),
                    3 => {
                        let _ = n.lookup(now, ip);
                    }
                    _ => {
                        now += Duration::from_millis(u64::from(x) * 20);
                        acts.clear();
                        n.on_timeout(now, &mut acts);
                    }
                }
                check(&mut n);
            }
        }
    }
}
