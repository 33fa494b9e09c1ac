//! IPv6 and dual stack in the deterministic simulator (RFC 8200, RFC 4443,
//! RFC 8201, RFC 5927): handshakes, data under impairments, path MTU
//! discovery, forged ICMPv6, and dual-stack demultiplexing as Linux with
//! `net.ipv6.bindv6only=0`.
#![cfg(feature = "sim")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcp_stack::sim::{LinkConfig, NodeId, Sim};
use tcp_stack::{ConnId, Duration, Error, ListenOptions, State};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const CLIENT6: &str = "[fd00::1]";
const SERVER6: &str = "[fd00::2]";

/// Listens on `listen`, connects from `client` to `to`, waits for both
/// ends; returns (client conn, server conn).
#[track_caller]
fn establish(
    sim: &mut Sim,
    (client, server): (NodeId, NodeId),
    listen: SocketAddr,
    to: SocketAddr,
) -> (ConnId, ConnId) {
    let listener = sim.stack_mut(server).listen(listen, 8).expect("listen");
    let now = sim.now();
    let cc = sim
        .stack_mut(client)
        .connect(now, None, to)
        .expect("connect");
    let mut sc = None;
    let ok = sim.run_until(now + secs(30), |sim| {
        if sc.is_none() {
            sc = sim.stack_mut(server).accept(listener);
        }
        sc.is_some() && sim.stack(client).state(cc) == State::Established
    });
    assert!(ok, "handshake did not complete (seed {:#x})", sim.seed());
    (cc, sc.unwrap())
}

/// Sends `data` from `(from, fc)`, then FIN; reads to EOF at `(to, tc)`.
fn transfer(
    sim: &mut Sim,
    (from, fc): (NodeId, ConnId),
    (to, tc): (NodeId, ConnId),
    data: &[u8],
) -> Vec<u8> {
    let mut sent = 0;
    let mut shut = false;
    let mut got = Vec::new();
    let mut eof = false;
    let deadline = sim.now() + secs(600);
    sim.run_until(deadline, |sim| {
        if sent < data.len() {
            if let Ok(n) = sim.stack_mut(from).send(fc, &data[sent..]) {
                sent += n;
            }
        } else if !shut {
            shut = sim.stack_mut(from).shutdown(fc).is_ok();
        }
        let mut buf = [0u8; 8192];
        loop {
            match sim.stack_mut(to).recv(tc, &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        eof
    });
    assert!(eof, "no EOF after {} of {} bytes", got.len(), data.len());
    got
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn test_ipv6_handshake_reports_ipv6_addresses() {
    let (mut sim, c, s) = Sim::dual_pair(1, LinkConfig::lan(), |_| {});
    let (cc, sc) = establish(
        &mut sim,
        (c, s),
        sa(&format!("{SERVER6}:80")),
        sa(&format!("{SERVER6}:80")),
    );
    let local = sim.stack(c).local_addr(cc).unwrap();
    assert_eq!(local.ip(), sa(&format!("{CLIENT6}:1")).ip());
    assert_eq!(
        sim.stack(s).peer_addr(sc).unwrap(),
        local,
        "the server sees the client's address and port"
    );
    // RFC 8200 8.3 / RFC 9293 3.7.1: MSS = MTU - 60 over IPv6.
    let info = sim.stack(c).info(cc).unwrap();
    assert_eq!(
        info.mss,
        1500 - 60 - 12,
        "MTU - 60, less the timestamp option"
    );
}

/// Data over IPv6 through loss, duplication, reordering and corruption
/// arrives byte-exact (the IPv6 pseudo-header checksum, RFC 8200 8.1,
/// catches the corruption).
#[test]
fn test_ipv6_data_under_impairments_is_byte_exact() {
    for seed in 1..=4 {
        let link = LinkConfig::lan()
            .loss(0.02)
            .duplicate(0.01)
            .reorder(0.02, Duration::from_millis(2))
            .corrupt(0.01);
        let (mut sim, c, s) = Sim::dual_pair(seed, link, |_| {});
        let addr = sa(&format!("{SERVER6}:80"));
        let (cc, sc) = establish(&mut sim, (c, s), addr, addr);
        let data = pattern(300_000);
        let got = transfer(&mut sim, (c, cc), (s, sc), &data);
        assert!(got == data, "seed {seed}: bytes differ");
        assert!(sim.stack(s).stats().drop_checksum > 0 || sim.stack(c).stats().drop_checksum > 0);
    }
}

/// RFC 8201 4: a Packet Too Big in mid-transfer lowers the path MTU; what
/// was lost is resent at the new size and the transfer completes.
#[test]
fn test_ipv6_packet_too_big_mid_transfer() {
    let (mut sim, c, s) = Sim::dual_pair(7, LinkConfig::lan(), |_| {});
    let addr = sa(&format!("{SERVER6}:80"));
    let (cc, sc) = establish(&mut sim, (c, s), addr, addr);
    let data = pattern(400_000);
    // Send some at full size first, then shrink the path: the router
    // answers with Packet Too Big (mtu 1280).
    let first = transfer_partial(&mut sim, (c, cc), (s, sc), &data[..100_000]);
    assert!(first == data[..100_000]);
    *sim.link_config_mut(c, s) = LinkConfig::lan().mtu(1280).too_big_icmp(true);
    let rest = transfer_partial(&mut sim, (c, cc), (s, sc), &data[100_000..]);
    assert!(
        rest == data[100_000..],
        "bytes differ after the PMTU change"
    );
    let stats = sim.stack(c).stats();
    assert!(stats.pmtu_reductions >= 1, "{stats:?}");
    let info = sim.stack(c).info(cc).unwrap();
    assert!(info.mss <= 1280 - 60, "mss {} not lowered", info.mss);
    // A new connection to the same destination starts from the learnt MTU.
    let now = sim.now();
    let c2 = sim.stack_mut(c).connect(now, None, addr).unwrap();
    sim.run_for(secs(1));
    assert!(sim.stack(c).info(c2).unwrap().mss <= 1280 - 60);
    // RFC 8201 5.3 (RFC 1191 6.3): ten minutes on, the estimate is
    // forgotten and a new connection starts from the link MTU again.
    *sim.link_config_mut(c, s) = LinkConfig::lan();
    sim.run_for(secs(601));
    let now = sim.now();
    let c3 = sim.stack_mut(c).connect(now, None, addr).unwrap();
    sim.run_for(secs(1));
    assert_eq!(sim.stack(c).info(c3).unwrap().mss, 1500 - 60 - 12);
    // The live connection goes back to the link's MSS too when it next
    // sends, and its data still arrives whole.
    let more = pattern(50_000);
    let got = transfer(&mut sim, (c, cc), (s, sc), &more);
    assert!(got == more);
    assert_eq!(sim.stack(c).info(cc).unwrap().mss, 1500 - 60 - 12);
}

/// Sends `data` and reads as many bytes (no FIN); returns what arrived.
fn transfer_partial(
    sim: &mut Sim,
    (from, fc): (NodeId, ConnId),
    (to, tc): (NodeId, ConnId),
    data: &[u8],
) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let deadline = sim.now() + secs(60);
    sim.run_until(deadline, |sim| {
        if sent < data.len() {
            if let Ok(n) = sim.stack_mut(from).send(fc, &data[sent..]) {
                sent += n;
            }
        }
        let mut buf = [0u8; 8192];
        while let Ok(n) = sim.stack_mut(to).recv(tc, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    });
    got
}

/// The IPv4 twin (RFC 1191): a router's "fragmentation needed" with the
/// next-hop MTU.
#[test]
fn test_ipv4_fragmentation_needed_mid_transfer() {
    let (mut sim, c, s) = Sim::dual_pair(8, LinkConfig::lan(), |_| {});
    let addr = sa("10.0.0.2:80");
    let (cc, sc) = establish(&mut sim, (c, s), addr, addr);
    let data = pattern(300_000);
    *sim.link_config_mut(c, s) = LinkConfig::lan().mtu(1000).too_big_icmp(true);
    let got = transfer(&mut sim, (c, cc), (s, sc), &data);
    assert!(got == data);
    assert!(sim.stack(c).info(cc).unwrap().mss <= 1000 - 40);
    assert!(sim.stack(c).stats().pmtu_reductions >= 1);
}

/// RFC 5927 4.1: an ICMPv6 Packet Too Big quoting a sequence number that is
/// not in flight is ignored (a blind attacker cannot shrink the MSS).
#[test]
fn test_ipv6_forged_packet_too_big_out_of_window_is_ignored() {
    let (mut sim, c, s) = Sim::dual_pair(9, LinkConfig::lan(), |_| {});
    sim.set_capture(true);
    let addr = sa(&format!("{SERVER6}:80"));
    let (cc, _sc) = establish(&mut sim, (c, s), addr, addr);
    let before = sim.stack(c).info(cc).unwrap();
    let local = sim.stack(c).local_addr(cc).unwrap();
    for seq_off in [-100_000i64, 1_000_000] {
        let seq = (i64::from(snd_una(&sim, c, cc)) + seq_off) as u32;
        let icmp = forged_ptb(local, addr, seq, 1280);
        sim.inject(c, icmp);
        sim.run_for(Duration::from_millis(10));
    }
    let after = sim.stack(c).info(cc).unwrap();
    assert_eq!(after.mss, before.mss);
    assert_eq!(sim.stack(c).stats().icmp_ignored, 2);
    assert_eq!(sim.stack(c).stats().pmtu_reductions, 0);
    // The same message quoting SND.UNA is taken.
    let seq = snd_una(&sim, c, cc);
    sim.inject(c, forged_ptb(local, addr, seq, 1280));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.stack(c).info(cc).unwrap().mss, 1280 - 60 - 12);
    // RFC 8201 4: a Packet Too Big below 1280 is taken as 1280.
    sim.inject(c, forged_ptb(local, addr, seq, 600));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.stack(c).info(cc).unwrap().mss, 1280 - 60 - 12);
}

/// SND.UNA of an idle connection: the sequence number of the last segment
/// it sent (read from the captured trace; the stack does not expose it).
fn snd_una(sim: &Sim, node: NodeId, conn: ConnId) -> u32 {
    use tcp_stack::wire::{Ipv6Packet, TcpPacket};
    let info = sim.stack(node).info(conn).unwrap();
    assert_eq!(info.in_flight, 0);
    let local = sim.stack(node).local_addr(conn).unwrap();
    sim.trace()
        .iter()
        .rev()
        .find_map(|e| {
            let ip = Ipv6Packet::new_checked(&e.packet.data[..]).ok()?;
            let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
            let src = SocketAddr::new(IpAddr::V6(ip.src_addr()), tcp.src_port());
            (src == local).then_some(tcp.seq().0)
        })
        .expect("a segment of the connection in the trace")
}

/// An ICMPv6 Packet Too Big from the server's address quoting a TCP
/// segment `local -> remote` with sequence number `seq`.
fn forged_ptb(local: SocketAddr, remote: SocketAddr, seq: u32, mtu: u32) -> Vec<u8> {
    use tcp_stack::wire::{Icmpv6Repr, IpProtocol, Ipv6Repr, TcpFlags, TcpOptions, TcpRepr};
    let (IpAddr::V6(l), IpAddr::V6(r)) = (local.ip(), remote.ip()) else {
        panic!("IPv6 addresses");
    };
    let tcp = TcpRepr {
        src_port: local.port(),
        dst_port: remote.port(),
        seq: tcp_stack::SeqNum(seq),
        ack: tcp_stack::SeqNum(0),
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut quoted = vec![0u8; 40 + 20 + 1400];
    Ipv6Repr {
        src: l,
        dst: r,
        next_header: IpProtocol::Tcp,
        payload_len: 20 + 1400,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut quoted);
    tcp.emit(&mut quoted[40..]);
    let quote = &quoted[..1232];
    let msg = Icmpv6Repr::PacketTooBig { mtu, data: quote };
    let len = msg.buffer_len();
    let mut out = vec![0u8; 40 + len];
    msg.emit(r, l, &mut out[40..]);
    Ipv6Repr {
        src: r,
        dst: l,
        next_header: IpProtocol::Icmpv6,
        payload_len: len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut out);
    out
}

/// Dual stack as Linux with `bindv6only=0`: `[::]:p` takes IPv4 too and
/// reports IPv4 peers IPv4-mapped (RFC 4291 2.5.5.2); IPv6 peers as they are.
#[test]
fn test_dual_stack_listener_takes_both_families() {
    let (mut sim, c, s) = Sim::dual_pair(11, LinkConfig::lan(), |_| {});
    let listener = sim.stack_mut(s).listen(sa("[::]:80"), 8).unwrap();
    let now = sim.now();
    let c4 = sim
        .stack_mut(c)
        .connect(now, None, sa("10.0.0.2:80"))
        .unwrap();
    let c6 = sim
        .stack_mut(c)
        .connect(now, None, sa("[fd00::2]:80"))
        .unwrap();
    let mut accepted = Vec::new();
    sim.run_until(now + secs(10), |sim| {
        while let Some(id) = sim.stack_mut(s).accept(listener) {
            accepted.push(id);
        }
        accepted.len() == 2
    });
    assert_eq!(accepted.len(), 2);
    let mut peers: Vec<SocketAddr> = accepted
        .iter()
        .map(|&id| sim.stack(s).peer_addr(id).unwrap())
        .collect();
    let mut locals: Vec<SocketAddr> = accepted
        .iter()
        .map(|&id| sim.stack(s).local_addr(id).unwrap())
        .collect();
    peers.sort();
    locals.sort();
    let p4 = sim.stack(c).local_addr(c4).unwrap();
    let p6 = sim.stack(c).local_addr(c6).unwrap();
    assert!(p4.is_ipv4(), "the IPv4 client's own view stays IPv4");
    let mut want = vec![
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            p4.port(),
        ),
        p6,
    ];
    want.sort();
    assert_eq!(peers, want);
    assert!(locals.iter().all(|a| a.is_ipv6()), "{locals:?}");
    assert!(locals.contains(&sa("[::ffff:10.0.0.2]:80")), "{locals:?}");
    assert!(locals.contains(&sa("[fd00::2]:80")), "{locals:?}");
}

/// A `0.0.0.0:p` listener takes IPv4 only; `[::]:p` with `v6_only` takes
/// IPv6 only; segments for the other family are refused with RST.
#[test]
fn test_family_specific_listeners_refuse_the_other_family() {
    let (mut sim, c, s) = Sim::dual_pair(12, LinkConfig::lan(), |_| {});
    sim.stack_mut(s).listen(sa("0.0.0.0:80"), 8).unwrap();
    sim.stack_mut(s)
        .listen_with(sa("[::]:81"), 8, ListenOptions::default().v6_only(true))
        .unwrap();
    let now = sim.now();
    let refused6 = sim
        .stack_mut(c)
        .connect(now, None, sa("[fd00::2]:80"))
        .unwrap();
    let refused4 = sim
        .stack_mut(c)
        .connect(now, None, sa("10.0.0.2:81"))
        .unwrap();
    let ok4 = sim
        .stack_mut(c)
        .connect(now, None, sa("10.0.0.2:80"))
        .unwrap();
    let ok6 = sim
        .stack_mut(c)
        .connect(now, None, sa("[fd00::2]:81"))
        .unwrap();
    sim.run_for(secs(2));
    let st = sim.stack(c);
    assert_eq!(st.error(refused6), Some(Error::ConnectionRefused));
    assert_eq!(st.error(refused4), Some(Error::ConnectionRefused));
    assert_eq!(st.state(ok4), State::Established);
    assert_eq!(st.state(ok6), State::Established);
}

/// Linux `inet_csk_bind_conflict` with every socket SO_REUSEADDR: `[::]:p`
/// (dual) and `0.0.0.0:p` overlap; with `v6_only` they do not; a specific
/// address overlaps its family's wildcard.
#[test]
fn test_dual_stack_bind_conflicts() {
    let (mut sim, _c, s) = Sim::dual_pair(13, LinkConfig::lan(), |_| {});
    let st = sim.stack_mut(s);
    st.listen(sa("[::]:80"), 8).unwrap();
    assert_eq!(st.listen(sa("0.0.0.0:80"), 8), Err(Error::AddrInUse));
    assert_eq!(st.listen(sa("10.0.0.2:80"), 8), Err(Error::AddrInUse));
    assert_eq!(st.listen(sa("[fd00::2]:80"), 8), Err(Error::AddrInUse));
    st.listen_with(sa("[::]:81"), 8, ListenOptions::default().v6_only(true))
        .unwrap();
    st.listen(sa("0.0.0.0:81"), 8).unwrap();
    st.listen(sa("10.0.0.2:82"), 8).unwrap();
    st.listen(sa("[fd00::2]:82"), 8).unwrap();
    assert_eq!(st.listen(sa("[::]:82"), 8), Err(Error::AddrInUse));
    // An address the stack does not have.
    assert_eq!(
        st.listen(sa("[fd00::9]:83"), 8),
        Err(Error::AddrNotAvailable)
    );
    // A v6-only socket cannot bind an IPv4-mapped address (Linux EINVAL).
    assert_eq!(
        st.listen_with(
            sa("[::ffff:10.0.0.2]:84"),
            8,
            ListenOptions::default().v6_only(true)
        ),
        Err(Error::InvalidInput)
    );
    // Bound to an IPv4-mapped address: takes that IPv4 address, and says
    // so as it was bound.
    let l = st.listen(sa("[::ffff:10.0.0.2]:85"), 8).unwrap();
    assert_eq!(st.listener_addr(l), Some(sa("[::ffff:10.0.0.2]:85")));
    assert_eq!(st.listen(sa("0.0.0.0:85"), 8), Err(Error::AddrInUse));
}

/// An IPv6 socket connecting to an IPv4-mapped address talks IPv4 on the
/// wire and reports IPv4-mapped addresses (as Linux).
#[test]
fn test_ipv6_socket_to_ipv4_mapped_destination_goes_out_as_ipv4() {
    let (mut sim, c, s) = Sim::dual_pair(14, LinkConfig::lan(), |_| {});
    let listener = sim.stack_mut(s).listen(sa("0.0.0.0:80"), 8).unwrap();
    let now = sim.now();
    let cc = sim
        .stack_mut(c)
        .connect(now, Some(sa("[::]:0")), sa("[::ffff:10.0.0.2]:80"))
        .unwrap();
    sim.run_for(secs(1));
    let sc = sim
        .stack_mut(s)
        .accept(listener)
        .expect("accepted over IPv4");
    assert_eq!(sim.stack(c).state(cc), State::Established);
    assert_eq!(sim.stack(c).peer_addr(cc), Some(sa("[::ffff:10.0.0.2]:80")));
    let local = sim.stack(c).local_addr(cc).unwrap();
    assert_eq!(local.ip(), sa("[::ffff:10.0.0.1]:0").ip());
    // The server, an IPv4 socket, sees plain IPv4.
    assert_eq!(
        sim.stack(s).peer_addr(sc),
        Some(SocketAddr::new(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            local.port()
        ))
    );
}

/// No address of the destination's family: ENETUNREACH, as Linux.
#[test]
fn test_connect_without_an_address_of_the_family_is_unreachable() {
    let (mut sim, c, _s) = Sim::pair(15, LinkConfig::lan(), |_| {});
    let now = sim.now();
    assert_eq!(
        sim.stack_mut(c).connect(now, None, sa("[fd00::2]:80")),
        Err(Error::NetworkUnreachable)
    );
    // An IPv6 local address cannot reach an IPv4 peer.
    let (mut sim, c, _s) = Sim::dual_pair(15, LinkConfig::lan(), |_| {});
    assert_eq!(
        sim.stack_mut(c)
            .connect(now, Some(sa("[fd00::1]:0")), sa("10.0.0.2:80")),
        Err(Error::NetworkUnreachable)
    );
}

/// `::1` is the stack's own loopback (RFC 4291 2.5.3), like 127.0.0.1.
#[test]
fn test_ipv6_loopback_inside_the_stack() {
    let (mut sim, c, _s) = Sim::dual_pair(16, LinkConfig::lan(), |_| {});
    let listener = sim.stack_mut(c).listen(sa("[::1]:7"), 8).unwrap();
    let now = sim.now();
    let cc = sim.stack_mut(c).connect(now, None, sa("[::1]:7")).unwrap();
    sim.run_for(Duration::from_millis(10));
    let sc = sim.stack_mut(c).accept(listener).expect("accepted");
    assert_eq!(sim.stack(c).state(cc), State::Established);
    assert_eq!(
        sim.stack(c).local_addr(cc).unwrap().ip(),
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    assert!(sim.stack(c).peer_addr(sc).unwrap().ip().is_loopback());
    assert!(sim.stack(c).stats().loopback > 0);
}
