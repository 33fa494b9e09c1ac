//! The wire-format harness: parse, emit, parse again, compare.

use crate::wire::checksum;
use crate::wire::tcp::fill_checksum;
use crate::wire::{IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpOptions, TcpPacket, TcpRepr};
use std::net::Ipv4Addr;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Runs every parser on `data` and checks that whatever parses emits back
/// to an equal representation. `data[0]` is a mode byte: bit 0 fixes the
/// checksums first (so the fuzzer gets past them), the rest is the packet.
///
/// # Panics
/// On a parser panic, or when a parsed representation does not survive
/// emit and parse (the message names the format).
pub fn run_wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut packet = rest.to_vec();
    if mode & 1 != 0 {
        fix_checksums(&mut packet);
    }
    ipv4(&packet);

    // The TCP parser on its own, without the IPv4 layer and the checksum.
    tcp_view(rest);
    if let Ok((repr, payload)) = TcpRepr::parse(rest, SRC, DST, false) {
        tcp_roundtrip(&repr, payload, SRC, DST);
    }
    // Options as they appear between the fixed header and the data.
    let opts = &rest[..rest.len().min(TcpOptions::MAX_LEN)];
    if let Ok(o) = TcpOptions::parse(opts) {
        options_roundtrip(&o);
    }
    // ICMP on its own (checksum fixed when asked).
    let mut icmp = rest.to_vec();
    if mode & 1 != 0 && icmp.len() >= 8 {
        fill_icmp_checksum(&mut icmp);
    }
    if let Ok(m) = IcmpRepr::parse(&icmp) {
        icmp_roundtrip(&m);
    }
    ipv6(rest);
    link(rest);
}

/// The link layer: Ethernet header, ARP, and NS/NA (their checksum fixed
/// so the option walk is reached); whatever parses re-emits equal.
fn link(bytes: &[u8]) {
    use crate::wire::checksum;
    use crate::wire::{ArpRepr, EthernetFrame, EthernetRepr, NdpRepr};
    use std::net::Ipv6Addr;
    if let Ok(f) = EthernetFrame::new_checked(bytes) {
        let r = EthernetRepr::parse(&f);
        let mut b = [0u8; 14];
        r.emit(&mut b);
        let again = EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).expect("14 bytes"));
        assert_eq!(again, r, "ethernet round trip");
        let _ = f.payload();
    }
    if let Ok(a) = ArpRepr::parse(bytes) {
        let mut b = [0u8; ArpRepr::LEN];
        a.emit(&mut b);
        assert_eq!(ArpRepr::parse(&b), Ok(a), "arp round trip");
    }
    let (src, dst) = (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    );
    let mut nd = bytes.to_vec();
    if nd.len() >= 4 {
        nd[2..4].copy_from_slice(&[0, 0]);
        let len = u32::try_from(nd.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, 58, len);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(&nd)));
        nd[2..4].copy_from_slice(&c.to_be_bytes());
    }
    if let Ok(m) = NdpRepr::parse(&nd, src, dst) {
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(src, dst, &mut b);
        assert_eq!(NdpRepr::parse(&b, src, dst), Ok(m), "ndp round trip");
    }
}

/// The IPv6 layer: the extension-header walk, ICMPv6, and the quotes of
/// ICMP errors of both families; none may panic, and what parses must
/// stay inside the packet.
fn ipv6(bytes: &[u8]) {
    use crate::wire::{Icmpv6Repr, Ipv6Packet, Ipv6Repr, QuotedTcp};
    let _ = QuotedTcp::parse_v4(bytes);
    let _ = QuotedTcp::parse_v6(bytes);
    let Ok(p) = Ipv6Packet::new_checked(bytes) else {
        return;
    };
    if let Ok((repr, offset)) = Ipv6Repr::parse_detailed(&p) {
        assert!(offset >= Ipv6Repr::HEADER_LEN);
        assert!(
            offset + repr.payload_len <= bytes.len(),
            "payload past the packet"
        );
        let upper = &bytes[offset..offset + repr.payload_len];
        let _ = Icmpv6Repr::parse(upper, repr.src, repr.dst);
        let _ = TcpRepr::parse(upper, repr.src, repr.dst, true);
    }
}

fn ipv4(packet: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return;
    };
    // After new_checked no accessor panics.
    let _ = (
        ip.version(),
        ip.tos(),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
    );
    let _ = (ip.frag_offset(), ip.ttl(), ip.protocol(), ip.checksum());
    let _ = (ip.src_addr(), ip.dst_addr(), ip.verify_checksum());
    let _ = (ip.options(), ip.payload());
    let Ok(repr) = Ipv4Repr::parse(&ip) else {
        return;
    };
    let mut buf = vec![0u8; repr.total_len()];
    repr.emit(&mut buf);
    buf[Ipv4Repr::HEADER_LEN..].copy_from_slice(ip.payload());
    let again = Ipv4Packet::new_checked(&buf[..]).expect("IPv4: emitted header must check");
    let r2 = Ipv4Repr::parse(&again).expect("IPv4: emitted header must parse");
    assert_eq!(r2, repr, "IPv4: parse -> emit -> parse changed the header");
    assert_eq!(again.payload(), ip.payload(), "IPv4: payload changed");

    match repr.protocol {
        IpProtocol::Tcp => {
            if let Ok((t, payload)) = TcpRepr::parse(ip.payload(), repr.src, repr.dst, true) {
                tcp_roundtrip(&t, payload, repr.src, repr.dst);
            }
        }
        IpProtocol::Icmp => {
            if let Ok(m) = IcmpRepr::parse(ip.payload()) {
                icmp_roundtrip(&m);
            }
        }
        _ => {}
    }
}

fn tcp_view(segment: &[u8]) {
    let Ok(p) = TcpPacket::new_checked(segment) else {
        return;
    };
    let _ = (p.src_port(), p.dst_port(), p.seq(), p.ack(), p.header_len());
    let _ = (p.flags(), p.window(), p.checksum(), p.urgent());
    let _ = (p.options(), p.payload(), p.verify_checksum(SRC, DST));
}

fn tcp_roundtrip(repr: &TcpRepr, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let hl = repr.header_len();
    assert!(
        hl <= 60 && hl.is_multiple_of(4),
        "TCP: header length {hl} is not a data offset"
    );
    let mut buf = vec![0u8; hl + payload.len()];
    repr.emit(&mut buf);
    buf[hl..].copy_from_slice(payload);
    fill_checksum(&mut buf, src, dst);
    let (again, p2) =
        TcpRepr::parse(&buf, src, dst, true).expect("TCP: emitted segment must parse");
    assert_eq!(
        &again, repr,
        "TCP: parse -> emit -> parse changed the header"
    );
    assert_eq!(p2, payload, "TCP: payload changed");
}

fn options_roundtrip(o: &TcpOptions) {
    let len = o.len();
    assert!(
        len <= TcpOptions::MAX_LEN && len.is_multiple_of(4),
        "TCP options: length {len}"
    );
    let mut buf = vec![0u8; len];
    o.emit(&mut buf);
    let again = TcpOptions::parse(&buf).expect("TCP options: emitted options must parse");
    assert_eq!(
        &again, o,
        "TCP options: parse -> emit -> parse changed them"
    );
}

fn icmp_roundtrip(m: &IcmpRepr<'_>) {
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    let again = IcmpRepr::parse(&buf).expect("ICMP: emitted message must parse");
    assert_eq!(
        &again, m,
        "ICMP: parse -> emit -> parse changed the message"
    );
}

fn fill_icmp_checksum(msg: &mut [u8]) {
    msg[2..4].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Makes the IPv4 header checksum, and the TCP or ICMP checksum of the
/// payload, correct where the lengths allow.
fn fix_checksums(packet: &mut [u8]) {
    let (hl, total) = {
        let Ok(ip) = Ipv4Packet::new_checked(&packet[..]) else {
            return;
        };
        (ip.header_len(), ip.total_len())
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.fill_checksum();
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let payload = &mut packet[hl..total];
    match proto {
        IpProtocol::Tcp => fill_checksum(payload, src, dst),
        IpProtocol::Icmp if payload.len() >= 8 => fill_icmp_checksum(payload),
        _ => {}
    }
}
