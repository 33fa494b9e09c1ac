//! IPv6 input and output at the stack's edge (RFC 8200, RFC 4443, RFC
//! 6437): extension headers and the action bits of unknown options,
//! fragments, Parameter Problem, echo, Neighbour Discovery noise, and the
//! hop limit and flow label of what the stack sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcp_stack::wire::{
    Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};
use tcp_stack::{Config, Instant, SeqNum, Stack};

const OURS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const PEER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn stack() -> Stack {
    let mut cfg = Config::with_addrs([IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V6(OURS)]);
    cfg.hop_limit = 57;
    let mut s = Stack::new(cfg);
    s.listen(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80), 8)
        .unwrap();
    s
}

fn syn(port: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: port,
        dst_port: 80,
        seq: SeqNum(1000),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1440),
            ..TcpOptions::default()
        },
    };
    let mut seg = vec![0u8; tcp.header_len()];
    tcp.emit(&mut seg);
    tcp_stack::wire::tcp::fill_checksum(&mut seg, PEER, OURS);
    seg
}

/// An IPv6 datagram from PEER to `dst` whose payload is `ext` (extension
/// headers, whose first Next Header is `first`) then `upper`.
fn datagram(dst: Ipv6Addr, first: u8, ext: &[u8], upper: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 40 + ext.len() + upper.len()];
    Ipv6Repr {
        src: PEER,
        dst,
        next_header: IpProtocol::from(first),
        payload_len: ext.len() + upper.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut out);
    out[40..40 + ext.len()].copy_from_slice(ext);
    out[40 + ext.len()..].copy_from_slice(upper);
    out
}

fn drain(s: &mut Stack) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(n) = s.poll_transmit(Instant::ZERO, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// The TCP segment in an emitted IPv6 datagram.
fn tcp_of(d: &[u8]) -> (Ipv6Packet<&[u8]>, TcpPacket<&[u8]>) {
    let ip = Ipv6Packet::new_checked(d).expect("IPv6");
    assert_eq!(ip.next_header(), IpProtocol::Tcp);
    let tcp = TcpPacket::new_checked(&d[40..]).expect("TCP");
    (ip, tcp)
}

#[test]
fn test_listen_syn_over_ipv6_gets_syn_ack_with_hop_limit_and_flow_label() {
    let mut s = stack();
    s.handle_packet(Instant::ZERO, &datagram(OURS, 6, &[], &syn(4000)));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let (ip, tcp) = tcp_of(&out[0]);
    assert!(tcp.flags().syn() && tcp.flags().ack());
    assert_eq!(ip.src_addr(), OURS);
    assert_eq!(ip.dst_addr(), PEER);
    // RFC 8200 3: the configured hop limit.
    assert_eq!(ip.hop_limit(), 57);
    // RFC 6437 3: a non-zero label, the same for every packet of the flow.
    let label = ip.flow_label();
    assert_ne!(label, 0);
    assert!(
        tcp.verify_checksum(OURS, PEER),
        "RFC 8200 8.1 pseudo-header"
    );
    // RFC 8200 8.3: MSS = MTU - 60.
    let opts = TcpOptions::parse(tcp.options()).unwrap();
    assert_eq!(opts.mss, Some(1440));
    // The retransmitted SYN-ACK keeps the label; another flow gets another.
    s.handle_timeout(Instant::ZERO + tcp_stack::Duration::from_secs(2));
    let again = drain(&mut s);
    assert_eq!(tcp_of(&again[0]).0.flow_label(), label);
    s.handle_packet(Instant::ZERO, &datagram(OURS, 6, &[], &syn(4001)));
    let other = drain(&mut s);
    assert_ne!(tcp_of(other.last().unwrap()).0.flow_label(), label);
}

/// RFC 8200 4.3 / 4.6: Hop-by-Hop and Destination Options with padding
/// (Pad1, PadN) are skipped and the segment processed.
#[test]
fn test_extension_headers_with_padding_are_skipped() {
    let mut s = stack();
    // Hop-by-Hop (next: Destination Options), 8 bytes: PadN of 4 + Pad1 x2.
    let mut ext = vec![60, 0, 1, 2, 0, 0, 0, 0];
    // Destination Options (next: TCP), 8 bytes: PadN of 6.
    ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    s.handle_packet(Instant::ZERO, &datagram(OURS, 0, &ext, &syn(4000)));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1, "{:?}", s.stats());
    assert!(tcp_of(&out[0]).1.flags().syn());
}

/// RFC 8200 4.2: an unrecognised option's two high bits choose: 00 skip,
/// 01 discard, 10 discard and send Parameter Problem code 2 pointing at it.
#[test]
fn test_unknown_option_action_bits() {
    let opt = |kind: u8| -> Vec<u8> {
        // Destination Options (next: TCP): option `kind` with 4 bytes of
        // data, then Pad1.
        vec![6, 0, kind, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
            .into_iter()
            .take(8)
            .collect()
    };
    // 00: skipped.
    let mut s = stack();
    s.handle_packet(Instant::ZERO, &datagram(OURS, 60, &opt(0x1e), &syn(4000)));
    assert_eq!(drain(&mut s).len(), 1);
    // 01: discarded silently.
    let mut s = stack();
    s.handle_packet(Instant::ZERO, &datagram(OURS, 60, &opt(0x5e), &syn(4000)));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().drop_malformed, 1);
    // 10: discarded, Parameter Problem code 2, pointer at the option type
    // (40 + 2), quoting the datagram (RFC 4443 3.4).
    let mut s = stack();
    let bad = datagram(OURS, 60, &opt(0x9e), &syn(4000));
    s.handle_packet(Instant::ZERO, &bad);
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let ip = Ipv6Packet::new_checked(&out[0][..]).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (OURS, PEER));
    match Icmpv6Repr::parse(ip.payload(), OURS, PEER).unwrap() {
        Icmpv6Repr::ParamProblem {
            code,
            pointer,
            data,
        } => {
            assert_eq!((code, pointer), (2, 42));
            assert_eq!(data, &bad[..]);
        }
        other => panic!("not a Parameter Problem: {other:?}"),
    }
}

/// RFC 8200 4.5: no reassembly, so a fragment is dropped and counted;
/// RFC 5095: a type 0 routing header with segments left is dropped and
/// answered with Parameter Problem code 0 at the routing type.
#[test]
fn test_fragments_and_routing_type_0_are_dropped() {
    let mut s = stack();
    // Fragment header: next TCP, offset 0, M set (a first fragment).
    let frag = [6, 0, 0, 1, 0, 0, 0, 7];
    s.handle_packet(Instant::ZERO, &datagram(OURS, 44, &frag, &syn(4000)));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().drop_fragment, 1);

    let mut s = stack();
    // Routing header type 0, one segment left, one address.
    let mut rh = vec![6, 2, 0, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&PEER.octets());
    s.handle_packet(Instant::ZERO, &datagram(OURS, 43, &rh, &syn(4000)));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let ip = Ipv6Packet::new_checked(&out[0][..]).unwrap();
    match Icmpv6Repr::parse(ip.payload(), OURS, PEER).unwrap() {
        Icmpv6Repr::ParamProblem { code, pointer, .. } => assert_eq!((code, pointer), (0, 42)),
        other => panic!("not a Parameter Problem: {other:?}"),
    }
}

/// RFC 4443 4.2: an echo request is answered from the address it was sent
/// to, with the same identifier, sequence number and data.
#[test]
fn test_icmpv6_echo_reply() {
    let mut s = stack();
    let req = Icmpv6Repr::EchoRequest {
        ident: 0x1234,
        seq: 7,
        data: b"ping over six",
    };
    let mut msg = vec![0u8; req.buffer_len()];
    req.emit(PEER, OURS, &mut msg);
    s.handle_packet(Instant::ZERO, &datagram(OURS, 58, &[], &msg));
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let ip = Ipv6Packet::new_checked(&out[0][..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (OURS, PEER));
    assert_eq!(
        Icmpv6Repr::parse(ip.payload(), OURS, PEER).unwrap(),
        Icmpv6Repr::EchoReply {
            ident: 0x1234,
            seq: 7,
            data: b"ping over six"
        }
    );
    assert_eq!(s.stats().icmp_echo_replies, 1);
}

/// A Linux TUN's kernel side sends router solicitations and MLD reports
/// to multicast groups: not ours, dropped and counted, never answered.
#[test]
fn test_neighbour_discovery_to_multicast_is_ignored() {
    let mut s = stack();
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let rs = [133u8, 0, 0, 0, 0, 0, 0, 0];
    s.handle_packet(Instant::ZERO, &datagram(all_routers, 58, &[], &rs));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().drop_not_ours, 1);
    // A SYN from a multicast source is malformed (RFC 4291 2.7).
    let mut d = datagram(OURS, 6, &[], &syn(4000));
    d[8..24].copy_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
    s.handle_packet(Instant::ZERO, &d);
    assert!(drain(&mut s).is_empty());
}

/// `::1` from the device is a spoof (RFC 4291 2.5.3): dropped.
#[test]
fn test_loopback_source_from_the_device_is_dropped() {
    let mut s = stack();
    let mut d = datagram(OURS, 6, &[], &syn(4000));
    d[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
    s.handle_packet(Instant::ZERO, &d);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().drop_malformed, 1);
}
