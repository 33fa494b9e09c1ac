//! The TCP segment quoted inside an ICMP or ICMPv6 error.
//!
//! An ICMP error carries the start of the datagram that caused it: the IPv4
//! header and at least 8 bytes after it (RFC 792, RFC 1812 4.3.2.3 asks for
//! more), or for ICMPv6 "as much of invoking packet as possible without the
//! ICMPv6 packet exceeding the minimum IPv6 MTU" (RFC 4443 3.1). Eight bytes
//! of TCP header are the ports and the sequence number: enough to find the
//! connection and, as RFC 5927 4.1 asks, to check that the quoted sequence
//! number is in flight before acting on the error. That check is the
//! caller's; this module only reads the quote.

use super::ipv4::Ipv4Packet;
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::IpProtocol;
use crate::seq::SeqNum;
use std::net::IpAddr;

/// The first 8 bytes of the TCP header (RFC 9293 3.1).
mod tcp_field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    /// Bytes of TCP header an ICMP error is sure to quote.
    pub const QUOTED_LEN: usize = 8;
}

/// IPv4 minimum header length (RFC 791 3.1: IHL >= 5).
const IPV4_MIN_HEADER_LEN: usize = 20;

/// Authentication Header (RFC 4302), an extension header in the quote of
/// an IPsec packet; its length is in 4-octet units minus 2 (RFC 4302 2.2).
const AUTH_HEADER: u8 = 51;

/// The identity of a TCP segment quoted in an ICMP error, as it was sent:
/// `src` and `src_port` are the sender's (ours, for an error about a segment
/// we sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source Address of the quoted IP header.
    pub src: IpAddr,
    /// Destination Address of the quoted IP header.
    pub dst: IpAddr,
    /// Source Port of the quoted TCP header (RFC 9293 3.1).
    pub src_port: u16,
    /// Destination Port of the quoted TCP header (RFC 9293 3.1).
    pub dst_port: u16,
    /// Sequence Number of the quoted TCP header (RFC 9293 3.1).
    pub seq: SeqNum,
}

impl QuotedTcp {
    /// Reads the quote of an ICMPv4 error: an IPv4 header (version 4,
    /// IHL >= 5, protocol TCP) with at least 8 bytes of TCP after it. The
    /// quoted Total Length and checksum are not checked: the quote is
    /// truncated by design and may have been altered on the way.
    pub fn parse_v4(quoted: &[u8]) -> Option<QuotedTcp> {
        if quoted.len() < IPV4_MIN_HEADER_LEN {
            return None;
        }
        let ip = Ipv4Packet::new_unchecked(quoted);
        if ip.version() != 4 || ip.protocol() != IpProtocol::Tcp {
            return None;
        }
        let header_len = ip.header_len();
        if header_len < IPV4_MIN_HEADER_LEN {
            return None;
        }
        let tcp = quoted.get(header_len..)?;
        let (src_port, dst_port, seq) = tcp_start(tcp)?;
        Some(QuotedTcp {
            src: ip.src_addr().into(),
            dst: ip.dst_addr().into(),
            src_port,
            dst_port,
            seq,
        })
    }

    /// Reads the quote of an ICMPv6 error: an IPv6 header, any extension
    /// headers (RFC 8200 4) as far as the quote shows them, then at least 8
    /// bytes of TCP. Leniently: the quoted Payload Length is not checked (the
    /// quote is truncated by design), options are not interpreted, and a
    /// Hop-by-Hop header is accepted anywhere. A fragment other than the
    /// first has no TCP header and gives `None`, as does any other protocol.
    pub fn parse_v6(quoted: &[u8]) -> Option<QuotedTcp> {
        use ipv6::{ext, next};
        if quoted.len() < Ipv6Repr::HEADER_LEN {
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(quoted);
        if ip.version() != 6 {
            return None;
        }
        let mut next_header = u8::from(ip.next_header());
        let mut offset = Ipv6Repr::HEADER_LEN;
        // Bounded as on receive, so a hostile quote costs bounded work.
        for _ in 0..=ipv6::MAX_EXT_HEADERS {
            let here = quoted.get(offset..)?;
            let len = match next_header {
                6 => {
                    let (src_port, dst_port, seq) = tcp_start(here)?;
                    return Some(QuotedTcp {
                        src: ip.src_addr().into(),
                        dst: ip.dst_addr().into(),
                        src_port,
                        dst_port,
                        seq,
                    });
                }
                // RFC 8200 4.3-4.4, 4.6: Hdr Ext Len in 8-octet units, not
                // counting the first 8.
                next::HOP_BY_HOP | next::ROUTING | next::DST_OPTIONS => {
                    (usize::from(*here.get(ext::LEN)?) + 1) * 8
                }
                // RFC 8200 4.5: only the first fragment (offset 0) holds
                // the TCP header.
                next::FRAGMENT => {
                    let r = ext::FRAG_OFF_M;
                    let off_m = u16::from_be_bytes([*here.get(r.start)?, *here.get(r.start + 1)?]);
                    if off_m >> 3 != 0 {
                        return None;
                    }
                    ext::FRAG_LEN
                }
                AUTH_HEADER => (usize::from(*here.get(ext::LEN)?) + 2) * 4,
                _ => return None,
            };
            next_header = *here.get(ext::NEXT_HEADER)?;
            offset += len;
        }
        None
    }
}

/// Ports and sequence number from the first 8 bytes of a TCP header.
fn tcp_start(tcp: &[u8]) -> Option<(u16, u16, SeqNum)> {
    let t = tcp.get(..tcp_field::QUOTED_LEN)?;
    let be16 = |r: core::ops::Range<usize>| u16::from_be_bytes([t[r.start], t[r.start + 1]]);
    let s = tcp_field::SEQ_NUM;
    let seq = u32::from_be_bytes([t[s.start], t[s.start + 1], t[s.start + 2], t[s.start + 3]]);
    Some((
        be16(tcp_field::SRC_PORT),
        be16(tcp_field::DST_PORT),
        SeqNum(seq),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Repr;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Ports 51000 -> 80, sequence 0xdeadbeef, then the rest of a header.
    const TCP: [u8; 12] = [0xc7, 0x38, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0];

    fn v4_quote(protocol: IpProtocol, tcp: &[u8]) -> Vec<u8> {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol,
            payload_len: 1400,
            ttl: 1,
            tos: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut v = vec![0u8; 20];
        r.emit(&mut v);
        v.extend_from_slice(tcp);
        v
    }

    fn expected_v4() -> QuotedTcp {
        QuotedTcp {
            src: Ipv4Addr::new(192, 168, 0, 1).into(),
            dst: Ipv4Addr::new(192, 168, 0, 199).into(),
            src_port: 51000,
            dst_port: 80,
            seq: SeqNum(0xdead_beef),
        }
    }

    #[test]
    fn v4_quote_with_eight_bytes_of_tcp_parses() {
        // RFC 792: the IP header plus the first 64 bits of the datagram.
        let q = v4_quote(IpProtocol::Tcp, &TCP[..8]);
        assert_eq!(QuotedTcp::parse_v4(&q), Some(expected_v4()));
        let q = v4_quote(IpProtocol::Tcp, &TCP);
        assert_eq!(QuotedTcp::parse_v4(&q), Some(expected_v4()));
        // Seven bytes are not enough.
        assert_eq!(QuotedTcp::parse_v4(&q[..27]), None);
    }

    #[test]
    fn v4_quote_with_options_skips_them() {
        let mut q = v4_quote(IpProtocol::Tcp, &[]);
        q[0] = 0x46; // IHL 6
        q.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        q.extend_from_slice(&TCP[..8]);
        assert_eq!(QuotedTcp::parse_v4(&q), Some(expected_v4()));
        assert_eq!(QuotedTcp::parse_v4(&q[..31]), None);
    }

    #[test]
    fn v4_quote_of_other_things_is_refused() {
        assert_eq!(QuotedTcp::parse_v4(&v4_quote(IpProtocol::Udp, &TCP)), None);
        let mut q = v4_quote(IpProtocol::Tcp, &TCP);
        q[0] = 0x65; // version 6
        assert_eq!(QuotedTcp::parse_v4(&q), None);
        q[0] = 0x44; // IHL 4
        assert_eq!(QuotedTcp::parse_v4(&q), None);
        assert_eq!(QuotedTcp::parse_v4(&q[..19]), None);
        assert_eq!(QuotedTcp::parse_v4(&[]), None);
    }

    fn v6_addrs() -> (Ipv6Addr, Ipv6Addr) {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    }

    /// An IPv6 header announcing `first`, then `ext`, then `tcp`.
    fn v6_quote(first: u8, ext: &[u8], tcp: &[u8]) -> Vec<u8> {
        let (src, dst) = v6_addrs();
        let r = Ipv6Repr {
            src,
            dst,
            next_header: IpProtocol::from(first),
            payload_len: 1400,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut v = vec![0u8; 40];
        r.emit(&mut v);
        v.extend_from_slice(ext);
        v.extend_from_slice(tcp);
        v
    }

    fn expected_v6() -> QuotedTcp {
        let (src, dst) = v6_addrs();
        QuotedTcp {
            src: src.into(),
            dst: dst.into(),
            ..expected_v4()
        }
    }

    #[test]
    fn v6_quote_with_eight_bytes_of_tcp_parses() {
        let q = v6_quote(6, &[], &TCP[..8]);
        assert_eq!(QuotedTcp::parse_v6(&q), Some(expected_v6()));
        assert_eq!(QuotedTcp::parse_v6(&q[..47]), None);
        assert_eq!(QuotedTcp::parse_v6(&q[..39]), None);
        let mut bad = q.clone();
        bad[0] = 0x45;
        assert_eq!(QuotedTcp::parse_v6(&bad), None);
        assert_eq!(QuotedTcp::parse_v4(&q), None);
    }

    #[test]
    fn v6_quote_walks_extension_headers() {
        // Hop-by-Hop -> Routing (type 4, segments left 1: ours to leave
        // unexamined) -> first Fragment -> AH (len 1: 12 bytes) -> Dst
        // Options (16 bytes) -> TCP.
        let hbh = [43, 0, 1, 4, 0, 0, 0, 0];
        let rh = [44, 0, 4, 1, 0, 0, 0, 0];
        let fh = [51, 0, 0, 1, 0, 0, 0, 9]; // offset 0, M set
        let ah = [60, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        let dopt = [6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let ext = [&hbh[..], &rh, &fh, &ah, &dopt].concat();
        let q = v6_quote(0, &ext, &TCP[..8]);
        assert_eq!(QuotedTcp::parse_v6(&q), Some(expected_v6()));
        // Cut anywhere before the end of the 8 TCP bytes: nothing.
        for cut in 0..q.len() {
            assert_eq!(QuotedTcp::parse_v6(&q[..cut]), None, "cut {cut}");
        }
    }

    #[test]
    fn v6_quote_of_a_later_fragment_or_other_protocol_is_refused() {
        // Fragment offset 1 (8 bytes): no TCP header in it.
        let fh = [6, 0, 0, 8, 0, 0, 0, 9];
        assert_eq!(QuotedTcp::parse_v6(&v6_quote(44, &fh, &TCP)), None);
        assert_eq!(QuotedTcp::parse_v6(&v6_quote(17, &[], &TCP)), None);
        assert_eq!(QuotedTcp::parse_v6(&v6_quote(59, &[], &TCP)), None);
    }

    #[test]
    fn v6_quote_chain_is_bounded() {
        let one = |next: u8| [next, 0, 1, 4, 0, 0, 0, 0];
        let n = ipv6::MAX_EXT_HEADERS;
        let chain = |count: usize| -> Vec<u8> {
            (0..count)
                .flat_map(|i| one(if i + 1 == count { 6 } else { 60 }))
                .collect()
        };
        assert_eq!(
            QuotedTcp::parse_v6(&v6_quote(60, &chain(n), &TCP)),
            Some(expected_v6())
        );
        assert_eq!(
            QuotedTcp::parse_v6(&v6_quote(60, &chain(n + 1), &TCP)),
            None
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = QuotedTcp::parse_v4(&bytes);
            let _ = QuotedTcp::parse_v6(&bytes);
            // Also with the version and protocol that reach deeper.
            let mut b = bytes;
            if b.len() >= 20 {
                b[0] = 0x40 | (b[0] & 0x0F);
                b[9] = 6;
                let _ = QuotedTcp::parse_v4(&b);
            }
            if b.len() >= 40 {
                b[0] = 0x60 | (b[0] & 0x0F);
                b[6] = [0u8, 6, 43, 44, 51, 60][usize::from(b[6]) % 6];
                let _ = QuotedTcp::parse_v6(&b);
            }
        }

        #[test]
        fn quotes_round_trip(sport in any::<u16>(), dport in any::<u16>(), seq in any::<u32>(), s in any::<u128>(), d in any::<u128>(), s4 in any::<u32>(), d4 in any::<u32>()) {
            let mut tcp = [0u8; 8];
            tcp[0..2].copy_from_slice(&sport.to_be_bytes());
            tcp[2..4].copy_from_slice(&dport.to_be_bytes());
            tcp[4..8].copy_from_slice(&seq.to_be_bytes());
            let mut q = v6_quote(6, &[], &tcp);
            q[8..24].copy_from_slice(&s.to_be_bytes());
            q[24..40].copy_from_slice(&d.to_be_bytes());
            let want = QuotedTcp { src: Ipv6Addr::from(s).into(), dst: Ipv6Addr::from(d).into(), src_port: sport, dst_port: dport, seq: SeqNum(seq) };
            prop_assert_eq!(QuotedTcp::parse_v6(&q), Some(want));
            let mut q = v4_quote(IpProtocol::Tcp, &tcp);
            q[12..16].copy_from_slice(&s4.to_be_bytes());
            q[16..20].copy_from_slice(&d4.to_be_bytes());
            let want = QuotedTcp { src: Ipv4Addr::from(s4).into(), dst: Ipv4Addr::from(d4).into(), ..want };
            prop_assert_eq!(QuotedTcp::parse_v4(&q), Some(want));
        }
    }
}
