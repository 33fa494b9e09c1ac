//! Socket options and `SO_*` behaviour: `TCP_QUICKACK`, `IP_TOS`,
//! `SO_LINGER` with a timeout, `SO_ERROR` soft errors from ICMP, and
//! `SO_REUSEPORT` listeners.

use super::*;
use crate::ListenOptions;

/// An ICMP destination unreachable with `code` quoting our segment at `seq`.
fn unreachable(h: &mut Harness, code: u8, seq: SeqNum) {
    let tcp = TcpRepr {
        src_port: h.local.port(),
        dst_port: REMOTE.port(),
        seq,
        flags: TcpFlags::ACK,
        ..TcpRepr::default()
    };
    let quoted = packet(h.local, REMOTE, &tcp, &[]);
    let msg = crate::wire::IcmpRepr::DstUnreachable {
        code,
        next_hop_mtu: 0,
        data: &quoted[..28],
    };
    h.stack.handle_packet(h.now, &icmp_packet(&msg));
}

/// Linux `TCP_QUICKACK`: while set, data is acknowledged at once instead
/// of after the delayed-ACK timer (RFC 9293 3.8.6.3 allows the delay, it
/// does not require it).
#[test]
fn test_established_quickack_acks_at_once() {
    let mut h = socket_established();
    h.stack.set_option(h.id(), SockOpt::QuickAck(true)).unwrap();
    h.send(TcpFlags::PSH, b"abc");
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
    // Cleared: back to delayed ACKs.
    h.stack
        .set_option(h.id(), SockOpt::QuickAck(false))
        .unwrap();
    h.send(TcpFlags::PSH, b"def");
    h.expect_none();
}

/// Setting `TCP_QUICKACK` sends the ACK the delayed-ACK timer holds.
#[test]
fn test_established_quickack_flushes_a_delayed_ack() {
    let mut h = socket_established();
    h.send(TcpFlags::PSH, b"abc");
    h.expect_none();
    h.stack.set_option(h.id(), SockOpt::QuickAck(true)).unwrap();
    let ack = h.expect_one();
    assert_eq!(ack.tcp.ack, h.peer_seq);
}

/// `IP_TOS`: the DSCP bits go into the IPv4 header; the ECN field stays
/// the stack's (RFC 3168 6.1.2; Linux masks `INET_ECN_MASK` out of the
/// value the application sets).
#[test]
fn test_established_tos_sets_dscp_not_ecn() {
    let mut h = socket_established();
    // EF (DSCP 46) with both ECN bits set by the application.
    h.stack
        .set_option(h.id(), SockOpt::Tos(0xb8 | 0b11))
        .unwrap();
    h.stack.send(h.id(), b"x").unwrap();
    let mut buf = [0u8; 1500];
    let n = h.stack.poll_transmit(h.now, &mut buf).unwrap();
    let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    let repr = Ipv4Repr::parse(&ip).unwrap();
    // ECN is off in this config: Not-ECT, whatever the option said.
    assert_eq!(repr.tos, 0xb8);
}

/// `SO_LINGER` with a timeout: data still unacknowledged when it runs out
/// is given up with RST.
#[test]
fn test_established_linger_expiry_resets_unacknowledged_data() {
    let mut h = socket_established();
    let id = h.id();
    h.stack.send(id, b"hello").unwrap();
    h.stack
        .close_with_linger(h.now, id, Duration::from_millis(500))
        .unwrap();
    let first = h.output();
    assert!(first.iter().all(|o| !o.flags().rst()), "{first:#?}");
    // The peer never answers.
    let until = h.now + Duration::from_millis(600);
    let out = h.run_timers_until(until);
    assert!(out.last().is_some_and(|o| o.flags().rst()), "{out:#?}");
    assert_eq!(h.stack.state(id), State::Closed);
}

/// `SO_LINGER` with a timeout: once everything is acknowledged the close
/// goes on as usual (FIN-WAIT-2, no RST at the deadline).
#[test]
fn test_fin_wait_2_linger_expiry_keeps_the_connection() {
    let mut h = socket_established();
    let id = h.id();
    h.stack.send(id, b"hello").unwrap();
    h.stack
        .close_with_linger(h.now, id, Duration::from_millis(500))
        .unwrap();
    let out = h.output();
    let sent: usize = out.iter().map(|o| o.payload.len()).sum();
    assert_eq!(sent, 5);
    // Data and FIN acknowledged.
    h.peer_ack += 6;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.stack.state(id), State::FinWait2);
    let until = h.now + Duration::from_millis(600);
    let out = h.run_timers_until(until);
    assert!(out.iter().all(|o| !o.flags().rst()), "{out:#?}");
    assert_eq!(h.stack.state(id), State::FinWait2);
}

/// RFC 1122 3.2.2.1 / 4.2.3.9: a destination unreachable on a synchronized
/// connection is a soft error; code 0 (net unreachable) is ENETUNREACH
/// (Linux `icmp_err_convert`). It is announced with `Event::SoftError` and
/// `SO_ERROR` reports it once.
#[test]
fn test_established_icmp_net_unreachable_is_a_soft_error() {
    let mut h = socket_established();
    let id = h.id();
    h.events();
    h.stack.send(id, b"data").unwrap();
    let seg = h.expect_one();
    unreachable(&mut h, 0, seg.tcp.seq);
    assert_eq!(h.state(), State::Established);
    assert!(h.events().contains(&Event::SoftError(id)));
    assert_eq!(h.stack.soft_error(id), Some(Error::NetworkUnreachable));
    assert_eq!(h.stack.take_error(id), Some(Error::NetworkUnreachable));
    assert_eq!(h.stack.take_error(id), None);
}

/// While connecting, ICMP net unreachable is a hard error: ENETUNREACH.
#[test]
fn test_syn_sent_icmp_net_unreachable_fails_the_connect() {
    let (mut h, iss) = socket_syn_sent();
    unreachable(&mut h, 0, iss);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::NetworkUnreachable));
}

/// A SYN from `port` to `LOCAL`.
fn syn_from_port(h: &mut Harness, port: u16) {
    let remote = SocketAddrV4::new(REMOTE_IP, port);
    let tcp = TcpRepr {
        src_port: port,
        dst_port: LOCAL.port(),
        seq: SeqNum(REMOTE_ISS),
        flags: TcpFlags::SYN,
        window: 65535,
        ..TcpRepr::default()
    };
    h.stack
        .handle_packet(h.now, &packet(remote, LOCAL, &tcp, &[]));
}

/// Linux `SO_REUSEPORT`: listeners that all set it share an address, and
/// new connections are spread among them by the four-tuple's hash; one
/// without it still conflicts. Closing one leaves the others serving.
#[test]
fn test_listen_reuseport_group_shares_the_address() {
    let mut h = Harness::new(Config {
        syn_cookies: crate::SynCookies::Off,
        ..config()
    });
    let opts = ListenOptions::default().reuseport(true);
    let l1 = h.stack.listen_with(LOCAL, 64, opts).unwrap();
    let l2 = h.stack.listen_with(LOCAL, 64, opts).unwrap();
    assert_eq!(h.stack.listen(LOCAL, 64), Err(Error::AddrInUse));
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LOCAL.port());
    assert_eq!(h.stack.listen(any, 64), Err(Error::AddrInUse));
    for port in 5000..5032 {
        syn_from_port(&mut h, port);
    }
    let (n1, n2) = (
        h.stack.listener_embryo_entries(l1),
        h.stack.listener_embryo_entries(l2),
    );
    assert_eq!(n1 + n2, 32);
    assert!(n1 > 0 && n2 > 0, "spread: {n1} and {n2}");
    // The member in the lookup map goes; the other takes every SYN.
    h.stack.close_listener(l1);
    h.output();
    for port in 6000..6008 {
        syn_from_port(&mut h, port);
    }
    assert_eq!(h.stack.listener_embryo_entries(l2), n2 + 8);
    let out = h.output();
    assert_eq!(out.iter().filter(|o| o.flags().syn()).count(), 8);
}
