//! ICMPv4 (RFC 792): echo, and errors that concern our TCP segments.
//!
//! RFC 792 layout: type (1 byte), code (1), checksum (2), four bytes whose
//! meaning depends on the type ("rest of header"), then data. The checksum
//! covers the whole ICMP message.

use super::checksum;
use super::WireError;

/// Message types (RFC 792).
mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination unreachable code 4, "fragmentation needed and DF set".
const CODE_FRAG_NEEDED: u8 = 4;

/// Length of the fixed ICMP header (type, code, checksum, rest of header).
const HEADER_LEN: usize = 8;

/// The ICMP messages the stack acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpRepr<'a> {
    /// Type 8, Echo (RFC 792 "Echo or Echo Reply Message").
    EchoRequest {
        /// Identifier, to match replies to requests.
        ident: u16,
        /// Sequence Number, to match replies to requests.
        seq: u16,
        /// The data, returned unchanged in the reply.
        data: &'a [u8],
    },
    /// Type 0, Echo Reply (RFC 792 "Echo or Echo Reply Message").
    EchoReply {
        /// Identifier, copied from the request.
        ident: u16,
        /// Sequence Number, copied from the request.
        seq: u16,
        /// The data, copied from the request.
        data: &'a [u8],
    },
    /// Type 3. `data` is the quoted original datagram (IPv4 header + at least 8 bytes).
    DstUnreachable {
        /// Code (RFC 792): 0 net, 1 host, 2 protocol, 3 port unreachable,
        /// 4 fragmentation needed and DF set, 5 source route failed.
        code: u8,
        /// Next-hop MTU for code 4 (fragmentation needed), else 0.
        next_hop_mtu: u16,
        /// The quoted original datagram.
        data: &'a [u8],
    },
    /// Type 11 (RFC 792 "Time Exceeded Message").
    TimeExceeded {
        /// Code (RFC 792): 0 TTL exceeded in transit, 1 fragment reassembly
        /// time exceeded.
        code: u8,
        /// The quoted original datagram (IPv4 header + at least 8 bytes).
        data: &'a [u8],
    },
    /// Anything else (parsed for counting only).
    Other {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
    },
}

impl<'a> IcmpRepr<'a> {
    /// Parses an ICMP message (the IPv4 payload), verifying its checksum.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when shorter than the 8-byte header;
    /// [`WireError::BadChecksum`] when the checksum does not verify.
    pub fn parse(bytes: &'a [u8]) -> Result<IcmpRepr<'a>, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 792: the checksum is the one's complement of the one's
        // complement sum of the ICMP message starting with the type field.
        if checksum::checksum(bytes) != 0 {
            return Err(WireError::BadChecksum);
        }
        let (t, code) = (bytes[0], bytes[1]);
        let w1 = u16::from_be_bytes([bytes[4], bytes[5]]);
        let w2 = u16::from_be_bytes([bytes[6], bytes[7]]);
        let data = &bytes[HEADER_LEN..];
        Ok(match t {
            // RFC 792 "Echo or Echo Reply Message": identifier, sequence number.
            kind::ECHO_REQUEST => IcmpRepr::EchoRequest {
                ident: w1,
                seq: w2,
                data,
            },
            kind::ECHO_REPLY => IcmpRepr::EchoReply {
                ident: w1,
                seq: w2,
                data,
            },
            // RFC 792 "Destination Unreachable Message"; RFC 1191 4: with
            // code 4 the low 16 bits of the unused word carry the next-hop MTU.
            kind::DST_UNREACHABLE => IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu: if code == CODE_FRAG_NEEDED { w2 } else { 0 },
                data,
            },
            // RFC 792 "Time Exceeded Message".
            kind::TIME_EXCEEDED => IcmpRepr::TimeExceeded { code, data },
            other => IcmpRepr::Other { kind: other, code },
        })
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                IcmpRepr::EchoRequest { data, .. }
                | IcmpRepr::EchoReply { data, .. }
                | IcmpRepr::DstUnreachable { data, .. }
                | IcmpRepr::TimeExceeded { data, .. } => data.len(),
                IcmpRepr::Other { .. } => 0,
            }
    }

    /// Writes `buffer_len()` bytes including the checksum. `Other` emits its
    /// 8-byte header with zero rest-of-header.
    ///
    /// Panics if `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        let (t, code, w1, w2, data): (u8, u8, u16, u16, &[u8]) = match *self {
            IcmpRepr::EchoRequest { ident, seq, data } => (kind::ECHO_REQUEST, 0, ident, seq, data),
            IcmpRepr::EchoReply { ident, seq, data } => (kind::ECHO_REPLY, 0, ident, seq, data),
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => (kind::DST_UNREACHABLE, code, 0, next_hop_mtu, data),
            IcmpRepr::TimeExceeded { code, data } => (kind::TIME_EXCEEDED, code, 0, 0, data),
            IcmpRepr::Other { kind, code } => (kind, code, 0, 0, &[]),
        };
        buf[0] = t;
        buf[1] = code;
        buf[2..4].copy_from_slice(&[0, 0]);
        buf[4..6].copy_from_slice(&w1.to_be_bytes());
        buf[6..8].copy_from_slice(&w2.to_be_bytes());
        buf[HEADER_LEN..].copy_from_slice(data);
        let c = checksum::checksum(buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Echo request written by hand from RFC 792: type 8, code 0,
    /// checksum 0x2104, identifier 0x1234, sequence 1, data "abcd".
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    /// Fragmentation needed (type 3 code 4, RFC 1191 4) with next-hop MTU
    /// 1400, quoting a 20-byte IPv4 header and the first 8 bytes of TCP.
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x92, 0x5d, 0x00, 0x00, 0x05, 0x78, // ICMP header
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, // IPv4
        0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, //
        0xc7, 0x38, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, // TCP ports + seq
    ];

    #[test]
    fn known_echo_request_parses_and_reemits_identically() {
        let r = IcmpRepr::parse(&ECHO).unwrap();
        assert_eq!(
            r,
            IcmpRepr::EchoRequest {
                ident: 0x1234,
                seq: 1,
                data: b"abcd"
            }
        );
        let mut out = [0u8; 12];
        assert_eq!(r.buffer_len(), 12);
        r.emit(&mut out);
        assert_eq!(out, ECHO);
    }

    #[test]
    fn known_frag_needed_carries_next_hop_mtu() {
        let r = IcmpRepr::parse(&FRAG_NEEDED).unwrap();
        assert_eq!(
            r,
            IcmpRepr::DstUnreachable {
                code: 4,
                next_hop_mtu: 1400,
                data: &FRAG_NEEDED[8..]
            }
        );
        let mut out = [0u8; 36];
        r.emit(&mut out);
        assert_eq!(out, FRAG_NEEDED);
    }

    #[test]
    fn dst_unreachable_other_codes_report_zero_mtu() {
        let r = IcmpRepr::DstUnreachable {
            code: 3,
            next_hop_mtu: 0,
            data: &[1, 2, 3],
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf);
        // Garbage in the unused word is ignored for codes other than 4.
        buf[6..8].copy_from_slice(&[0x12, 0x34]);
        buf[2..4].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(IcmpRepr::parse(&buf), Ok(r));
    }

    #[test]
    fn bad_checksum_and_truncation_rejected() {
        let mut b = ECHO;
        b[9] ^= 0x40;
        assert_eq!(IcmpRepr::parse(&b), Err(WireError::BadChecksum));
        assert_eq!(IcmpRepr::parse(&ECHO[..7]), Err(WireError::Truncated));
        assert_eq!(IcmpRepr::parse(&[]), Err(WireError::Truncated));
    }

    #[test]
    fn time_exceeded_and_other_types_round_trip() {
        let r = IcmpRepr::TimeExceeded {
            code: 0,
            data: &[9; 28],
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf);
        assert_eq!(buf[0], 11);
        assert_eq!(IcmpRepr::parse(&buf), Ok(r));

        let r = IcmpRepr::Other { kind: 13, code: 0 };
        assert_eq!(r.buffer_len(), 8);
        let mut buf = [0xFFu8; 8];
        r.emit(&mut buf);
        assert_eq!(&buf[4..], &[0, 0, 0, 0]);
        assert_eq!(IcmpRepr::parse(&buf), Ok(r));
    }

    /// Owned description of a message, so proptest can generate it.
    #[derive(Debug, Clone)]
    enum Msg {
        Req(u16, u16, Vec<u8>),
        Rep(u16, u16, Vec<u8>),
        Unreach(u8, u16, Vec<u8>),
        Exceeded(u8, Vec<u8>),
        Other(u8, u8),
    }

    impl Msg {
        fn repr(&self) -> IcmpRepr<'_> {
            match self {
                Msg::Req(i, s, d) => IcmpRepr::EchoRequest {
                    ident: *i,
                    seq: *s,
                    data: d,
                },
                Msg::Rep(i, s, d) => IcmpRepr::EchoReply {
                    ident: *i,
                    seq: *s,
                    data: d,
                },
                Msg::Unreach(c, m, d) => IcmpRepr::DstUnreachable {
                    code: *c,
                    next_hop_mtu: if *c == 4 { *m } else { 0 },
                    data: d,
                },
                Msg::Exceeded(c, d) => IcmpRepr::TimeExceeded { code: *c, data: d },
                Msg::Other(k, c) => IcmpRepr::Other { kind: *k, code: *c },
            }
        }
    }

    fn arb_msg() -> impl Strategy<Value = Msg> {
        let data = || proptest::collection::vec(any::<u8>(), 0..200);
        prop_oneof![
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Msg::Req(i, s, d)),
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Msg::Rep(i, s, d)),
            (0u8..16, any::<u16>(), data()).prop_map(|(c, m, d)| Msg::Unreach(c, m, d)),
            (0u8..2, data()).prop_map(|(c, d)| Msg::Exceeded(c, d)),
            (any::<u8>(), any::<u8>())
                .prop_filter("known kinds", |(k, _)| ![0, 3, 8, 11].contains(k))
                .prop_map(|(k, c)| Msg::Other(k, c)),
        ]
    }

    fn emit_vec(r: &IcmpRepr<'_>) -> Vec<u8> {
        let mut v = vec![0xA5; r.buffer_len()];
        r.emit(&mut v);
        v
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(m in arb_msg()) {
            let r = m.repr();
            let bytes = emit_vec(&r);
            prop_assert_eq!(bytes.len(), r.buffer_len());
            prop_assert_eq!(checksum::checksum(&bytes), 0);
            prop_assert_eq!(IcmpRepr::parse(&bytes), Ok(r));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = IcmpRepr::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_messages(
            m in arb_msg(),
            muts in proptest::collection::vec((0usize..40, any::<u8>()), 1..5),
            cut in 0usize..300,
        ) {
            let mut bytes = emit_vec(&m.repr());
            for (i, v) in muts {
                if i < bytes.len() {
                    bytes[i] = v;
                }
            }
            bytes.truncate(cut);
            let _ = IcmpRepr::parse(&bytes);
            // With a repaired checksum the type dispatch is reached too.
            if bytes.len() >= 4 {
                bytes[2..4].copy_from_slice(&[0, 0]);
                let c = checksum::checksum(&bytes);
                bytes[2..4].copy_from_slice(&c.to_be_bytes());
                if bytes.len() >= 8 {
                    prop_assert!(IcmpRepr::parse(&bytes).is_ok());
                }
            }
        }

        #[test]
        fn etherparse_built_icmp_parses_with_ours(m in arb_msg()) {
            use etherparse::{PacketBuilder, NetSlice, SlicedPacket};
            let r = m.repr();
            let ours = emit_vec(&r);
            let payload = &ours[8..];
            let b5to8 = [ours[4], ours[5], ours[6], ours[7]];
            let builder = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .icmpv4_raw(ours[0], ours[1], b5to8);
            let mut pkt = Vec::new();
            builder.write(&mut pkt, payload).unwrap();
            let sliced = SlicedPacket::from_ip(&pkt).unwrap();
            let Some(NetSlice::Ipv4(ip)) = sliced.net else { panic!("no ipv4") };
            let icmp_bytes = ip.payload().payload;
            prop_assert_eq!(IcmpRepr::parse(icmp_bytes), Ok(r));
            // Same bytes, same checksum.
            prop_assert_eq!(icmp_bytes, &ours[..]);
        }

        #[test]
        fn our_icmp_parses_with_etherparse(m in arb_msg()) {
            use etherparse::{Icmpv4Slice, Icmpv4Type};
            let r = m.repr();
            let ours = emit_vec(&r);
            let s = Icmpv4Slice::from_slice(&ours).unwrap();
            prop_assert_eq!(s.type_u8(), ours[0]);
            prop_assert_eq!(s.code_u8(), ours[1]);
            let expected = Icmpv4Type::Unknown {
                type_u8: ours[0],
                code_u8: ours[1],
                bytes5to8: s.bytes5to8(),
            }
            .calc_checksum(&ours[8..]);
            prop_assert_eq!(s.checksum(), expected);
            match r {
                IcmpRepr::EchoRequest { ident, seq, data } => {
                    prop_assert_eq!(s.icmp_type(), Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: ident, seq }));
                    prop_assert_eq!(s.payload(), data);
                }
                IcmpRepr::EchoReply { ident, seq, data } => {
                    prop_assert_eq!(s.icmp_type(), Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: ident, seq }));
                    prop_assert_eq!(s.payload(), data);
                }
                IcmpRepr::DstUnreachable { code: 4, next_hop_mtu, .. } => {
                    prop_assert_eq!(
                        s.icmp_type(),
                        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu })
                    );
                }
                _ => {}
            }
        }
    }
}
