//! ICMPv6 (RFC 4443): echo, and errors that concern our TCP segments.
//!
//! RFC 4443 2.1 layout: type (1 byte), code (1), checksum (2), then the
//! message body; every message the stack reads has four bytes whose meaning
//! depends on the type before its data. Unlike ICMPv4, the checksum also
//! covers an IPv6 pseudo-header (RFC 4443 2.3), so parsing and emitting need
//! the addresses.
//!
//! Neighbour Discovery (RFC 4861, types 133-137) and Multicast Listener
//! Discovery (RFC 2710 and RFC 3810, types 130-132 and 143) are ICMPv6
//! messages too; [`Icmpv6Repr`] parses them as [`Icmpv6Repr::Other`].
//! Neighbour Solicitation and Advertisement, which an Ethernet link needs,
//! have their own [`NdpRepr`] (RFC 4861 4.3, 4.4, 4.6.1).

use super::checksum;
use super::ethernet::MacAddr;
use super::WireError;
use std::net::Ipv6Addr;

/// Message types (RFC 4443 2.1 and 3-4).
mod kind {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

/// Byte ranges of the header.
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Identifier (echo), MTU (Packet Too Big), Pointer (Parameter Problem).
    pub const WORD: Range<usize> = 4..8;
}

/// Next Header value of ICMPv6, for the pseudo-header (RFC 4443 1).
const NEXT_HEADER: u8 = 58;

/// Length of the header the stack reads: type, code, checksum and the
/// type-specific 32-bit word.
const HEADER_LEN: usize = 8;

/// The ICMPv6 messages the stack acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Icmpv6Repr<'a> {
    /// Type 128 (RFC 4443 4.1).
    EchoRequest {
        /// Identifier, to match replies to requests.
        ident: u16,
        /// Sequence Number, to match replies to requests.
        seq: u16,
        /// The data, returned unchanged in the reply.
        data: &'a [u8],
    },
    /// Type 129 (RFC 4443 4.2).
    EchoReply {
        /// Identifier, copied from the request.
        ident: u16,
        /// Sequence Number, copied from the request.
        seq: u16,
        /// The data, copied from the request.
        data: &'a [u8],
    },
    /// Type 1 (RFC 4443 3.1). `data` is the quoted invoking packet (IPv6
    /// header and as much after it as fits the minimum MTU).
    DstUnreachable {
        /// Code (RFC 4443 3.1): 0 no route, 1 administratively prohibited,
        /// 2 beyond scope of source, 3 address unreachable, 4 port
        /// unreachable, 5 source address failed policy, 6 reject route.
        code: u8,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Type 2 (RFC 4443 3.2): the MTU of the next-hop link, for Path MTU
    /// Discovery (RFC 8201).
    PacketTooBig {
        /// The MTU of the next-hop link.
        mtu: u32,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Type 3 (RFC 4443 3.3).
    TimeExceeded {
        /// Code (RFC 4443 3.3): 0 hop limit exceeded in transit, 1 fragment
        /// reassembly time exceeded.
        code: u8,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Type 4 (RFC 4443 3.4): `pointer` is the byte offset in the quoted
    /// packet where the problem lies.
    ParamProblem {
        /// Code (RFC 4443 3.4): 0 erroneous header field, 1 unrecognised
        /// Next Header type, 2 unrecognised IPv6 option.
        code: u8,
        /// Pointer: the byte offset in the invoking packet of the error.
        pointer: u32,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Anything else: Neighbour Discovery, MLD, unknown types (RFC 4443 2.4
    /// (b): unknown errors go to the upper layer, unknown informational
    /// messages are discarded). Parsed for counting only.
    Other {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses an ICMPv6 message (the upper-layer payload of an IPv6 packet
    /// from `src` to `dst`), verifying its checksum.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] below 8 bytes, [`WireError::BadChecksum`] if
    /// the checksum over the pseudo-header and message does not verify.
    pub fn parse(
        bytes: &'a [u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Icmpv6Repr<'a>, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 4443 2.3: the checksum is the 16-bit one's complement of the
        // one's complement sum of the entire ICMPv6 message, prepended with
        // the RFC 8200 8.1 pseudo-header (Next Header 58). A message with its
        // own correct checksum sums to zero. (Its length fits a u32: it came
        // in a packet.)
        let length = u32::try_from(bytes.len()).map_err(|_| WireError::Malformed)?;
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, length);
        if checksum::finish(checksum::combine(pseudo, checksum::sum(bytes))) != 0 {
            return Err(WireError::BadChecksum);
        }
        let (t, code) = (bytes[field::TYPE], bytes[field::CODE]);
        let w = field::WORD;
        let word = u32::from_be_bytes([
            bytes[w.start],
            bytes[w.start + 1],
            bytes[w.start + 2],
            bytes[w.start + 3],
        ]);
        let (ident, seq) = ((word >> 16) as u16, word as u16);
        let data = &bytes[HEADER_LEN..];
        Ok(match t {
            // RFC 4443 4.1 and 4.2: identifier, sequence number, data.
            kind::ECHO_REQUEST => Icmpv6Repr::EchoRequest { ident, seq, data },
            kind::ECHO_REPLY => Icmpv6Repr::EchoReply { ident, seq, data },
            // RFC 4443 3.1 and 3.3: the word is unused, "ignored by the
            // receiver".
            kind::DST_UNREACHABLE => Icmpv6Repr::DstUnreachable { code, data },
            kind::TIME_EXCEEDED => Icmpv6Repr::TimeExceeded { code, data },
            // RFC 4443 3.2: "MTU: The Maximum Transmission Unit of the
            // next-hop link"; the code is 0 and ignored by the receiver.
            kind::PACKET_TOO_BIG => Icmpv6Repr::PacketTooBig { mtu: word, data },
            // RFC 4443 3.4: "Pointer: Identifies the octet offset within the
            // invoking packet where the error was detected."
            kind::PARAM_PROBLEM => Icmpv6Repr::ParamProblem {
                code,
                pointer: word,
                data,
            },
            other => Icmpv6Repr::Other { kind: other, code },
        })
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv6Repr::EchoRequest { data, .. }
                | Icmpv6Repr::EchoReply { data, .. }
                | Icmpv6Repr::DstUnreachable { data, .. }
                | Icmpv6Repr::PacketTooBig { data, .. }
                | Icmpv6Repr::TimeExceeded { data, .. }
                | Icmpv6Repr::ParamProblem { data, .. } => data.len(),
                Icmpv6Repr::Other { .. } => 0,
            }
    }

    /// Writes `buffer_len()` bytes including the checksum over the
    /// pseudo-header for `src` -> `dst` (RFC 4443 2.3). `Other` emits its
    /// 8-byte header with a zero type-specific word. Packet Too Big is
    /// emitted with code 0 (RFC 4443 3.2).
    ///
    /// Panics if `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        let echo = |ident: u16, seq: u16| u32::from(ident) << 16 | u32::from(seq);
        let (t, code, word, data): (u8, u8, u32, &[u8]) = match *self {
            Icmpv6Repr::EchoRequest { ident, seq, data } => {
                (kind::ECHO_REQUEST, 0, echo(ident, seq), data)
            }
            Icmpv6Repr::EchoReply { ident, seq, data } => {
                (kind::ECHO_REPLY, 0, echo(ident, seq), data)
            }
            Icmpv6Repr::DstUnreachable { code, data } => (kind::DST_UNREACHABLE, code, 0, data),
            Icmpv6Repr::PacketTooBig { mtu, data } => (kind::PACKET_TOO_BIG, 0, mtu, data),
            Icmpv6Repr::TimeExceeded { code, data } => (kind::TIME_EXCEEDED, code, 0, data),
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                data,
            } => (kind::PARAM_PROBLEM, code, pointer, data),
            Icmpv6Repr::Other { kind, code } => (kind, code, 0, &[]),
        };
        buf[field::TYPE] = t;
        buf[field::CODE] = code;
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::WORD].copy_from_slice(&word.to_be_bytes());
        buf[HEADER_LEN..].copy_from_slice(data);
        // RFC 4443 2.3: computed with the checksum field set to zero.
        // A message longer than u32::MAX cannot be emitted into an IPv6
        // packet anyway; saturate rather than panic.
        let length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, length);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(buf)));
        buf[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// ICMPv6 types of Neighbour Discovery this stack speaks (RFC 4861 4.3, 4.4).
mod nd {
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Option types (RFC 4861 4.6).
    pub const OPT_SOURCE_LL: u8 = 1;
    pub const OPT_TARGET_LL: u8 = 2;
    /// NA flag bits in the byte after the checksum (RFC 4861 4.4).
    pub const FLAG_ROUTER: u8 = 0x80;
    pub const FLAG_SOLICITED: u8 = 0x40;
    pub const FLAG_OVERRIDE: u8 = 0x20;
    /// Type, code, checksum, reserved/flags, target address.
    pub const FIXED_LEN: usize = 24;
    pub const TARGET: core::ops::Range<usize> = 8..24;
}

/// A Neighbour Solicitation or Advertisement (RFC 4861 4.3, 4.4) with the
/// Ethernet link-layer address option (RFC 4861 4.6.1, RFC 2464 6).
///
/// Parsing verifies the checksum, the code (0) and the length (at least
/// 24 bytes, RFC 4861 7.1.1/7.1.2), and walks the options: one of length 0
/// or running past the message rejects it (RFC 4861 4.6), unknown ones are
/// skipped, and the first link-layer option of the kind the message uses
/// is kept (source for NS, target for NA). The other checks of 7.1 (hop
/// limit, multicast target, S with a multicast destination, the rules of
/// an unspecified source) need the IP header and are the stack's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// Type 135 (RFC 4861 4.3).
    NeighborSolicit {
        /// The address whose link-layer address is sought.
        target: Ipv6Addr,
        /// Source link-layer address option.
        source_ll: Option<MacAddr>,
    },
    /// Type 136 (RFC 4861 4.4).
    NeighborAdvert {
        /// R: the sender is a router.
        router: bool,
        /// S: an answer to a solicitation.
        solicited: bool,
        /// O: override an existing cached link-layer address.
        overrides: bool,
        /// The address advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        target_ll: Option<MacAddr>,
    },
}

impl NdpRepr {
    /// Parses an NS or NA from the upper-layer payload of an IPv6 packet
    /// from `src` to `dst`.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] below 24 bytes, [`WireError::BadChecksum`],
    /// [`WireError::Malformed`] for another type, a code other than 0 or a
    /// bad option length.
    pub fn parse(bytes: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<NdpRepr, WireError> {
        // RFC 4861 7.1.1/7.1.2: "ICMP length (derived from the IP length)
        // is 24 or more octets".
        if bytes.len() < nd::FIXED_LEN {
            return Err(WireError::Truncated);
        }
        let length = u32::try_from(bytes.len()).map_err(|_| WireError::Malformed)?;
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, length);
        if checksum::finish(checksum::combine(pseudo, checksum::sum(bytes))) != 0 {
            return Err(WireError::BadChecksum);
        }
        // RFC 4861 7.1.1/7.1.2: "ICMP Code is 0".
        if bytes[field::CODE] != 0 {
            return Err(WireError::Malformed);
        }
        let mut t = [0u8; 16];
        t.copy_from_slice(&bytes[nd::TARGET]);
        let target = Ipv6Addr::from(t);
        let kind = bytes[field::TYPE];
        let wanted = match kind {
            nd::NEIGHBOR_SOLICIT => nd::OPT_SOURCE_LL,
            nd::NEIGHBOR_ADVERT => nd::OPT_TARGET_LL,
            _ => return Err(WireError::Malformed),
        };
        // RFC 4861 4.6: options are (type, length in units of 8 bytes);
        // "Nodes MUST silently discard an ND packet that contains an option
        // with length zero"; unknown options are skipped (4.3, 4.4).
        let mut ll = None;
        let mut opts = &bytes[nd::FIXED_LEN..];
        while !opts.is_empty() {
            let (&ty, rest) = opts.split_first().ok_or(WireError::Malformed)?;
            let units = usize::from(*rest.first().ok_or(WireError::Malformed)?);
            let len = units * 8;
            if len == 0 || len > opts.len() {
                return Err(WireError::Malformed);
            }
            if ty == wanted && ll.is_none() {
                // RFC 2464 6: for Ethernet the option is 8 bytes, the
                // address in bytes 2..8.
                let mut m = [0u8; 6];
                m.copy_from_slice(&opts[2..8]);
                ll = Some(MacAddr(m));
            }
            opts = &opts[len..];
        }
        Ok(match kind {
            nd::NEIGHBOR_SOLICIT => NdpRepr::NeighborSolicit {
                target,
                source_ll: ll,
            },
            _ => {
                let f = bytes[field::WORD.start];
                NdpRepr::NeighborAdvert {
                    router: f & nd::FLAG_ROUTER != 0,
                    solicited: f & nd::FLAG_SOLICITED != 0,
                    overrides: f & nd::FLAG_OVERRIDE != 0,
                    target,
                    target_ll: ll,
                }
            }
        })
    }

    /// The target address.
    pub fn target(&self) -> Ipv6Addr {
        match *self {
            NdpRepr::NeighborSolicit { target, .. } | NdpRepr::NeighborAdvert { target, .. } => {
                target
            }
        }
    }

    /// Encoded length: 24 bytes, plus 8 for a link-layer option.
    pub fn buffer_len(&self) -> usize {
        let ll = match self {
            NdpRepr::NeighborSolicit { source_ll, .. } => source_ll.is_some(),
            NdpRepr::NeighborAdvert { target_ll, .. } => target_ll.is_some(),
        };
        nd::FIXED_LEN + if ll { 8 } else { 0 }
    }

    /// Writes `buffer_len()` bytes with the checksum for `src` -> `dst`
    /// (RFC 4443 2.3); reserved bits are zero.
    ///
    /// Panics if `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        buf.fill(0);
        let (kind, flags, target, opt) = match *self {
            NdpRepr::NeighborSolicit { target, source_ll } => (
                nd::NEIGHBOR_SOLICIT,
                0,
                target,
                source_ll.map(|m| (nd::OPT_SOURCE_LL, m)),
            ),
            NdpRepr::NeighborAdvert {
                router,
                solicited,
                overrides,
                target,
                target_ll,
            } => {
                let mut f = 0;
                if router {
                    f |= nd::FLAG_ROUTER;
                }
                if solicited {
                    f |= nd::FLAG_SOLICITED;
                }
                if overrides {
                    f |= nd::FLAG_OVERRIDE;
                }
                (
                    nd::NEIGHBOR_ADVERT,
                    f,
                    target,
                    target_ll.map(|m| (nd::OPT_TARGET_LL, m)),
                )
            }
        };
        buf[field::TYPE] = kind;
        buf[field::WORD.start] = flags;
        buf[nd::TARGET].copy_from_slice(&target.octets());
        if let Some((ty, mac)) = opt {
            buf[24] = ty;
            buf[25] = 1;
            buf[26..32].copy_from_slice(&mac.0);
        }
        let length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, length);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(buf)));
        buf[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }
    fn dst() -> Ipv6Addr {
        "ff02::1".parse().unwrap()
    }

    /// Echo request written by hand from RFC 4443 4.1, fe80::1 -> ff02::1:
    /// type 128, code 0, identifier 0x1234, sequence 1, no data. Checksum by
    /// hand (RFC 8200 8.1 pseudo-header, length 8, next header 58):
    /// fe80 + 0001 + ff02 + 0001 + 0008 + 003a = 0x1fdc6 -> 0xfdc7; plus the
    /// message 8000 + 1234 + 0001 = 0x9235 gives 0x18ffc -> 0x8ffd;
    /// complemented, 0x7002.
    const ECHO: [u8; 8] = [0x80, 0x00, 0x70, 0x02, 0x12, 0x34, 0x00, 0x01];

    #[test]
    fn known_echo_request_parses_and_reemits_identically() {
        let r = Icmpv6Repr::parse(&ECHO, src(), dst()).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoRequest {
                ident: 0x1234,
                seq: 1,
                data: &[]
            }
        );
        assert_eq!(r.buffer_len(), 8);
        let mut out = [0u8; 8];
        r.emit(src(), dst(), &mut out);
        assert_eq!(out, ECHO);
    }

    #[test]
    fn checksum_covers_the_pseudo_header() {
        // RFC 4443 2.3: the same bytes from another source do not verify.
        // (Swapped addresses sum the same: addition commutes.)
        let other: Ipv6Addr = "fe80::2".parse().unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&ECHO, other, dst()),
            Err(WireError::BadChecksum)
        );
        assert!(Icmpv6Repr::parse(&ECHO, dst(), src()).is_ok());
    }

    #[test]
    fn bad_checksum_and_truncation_rejected() {
        let mut b = ECHO;
        b[7] ^= 0x40;
        assert_eq!(
            Icmpv6Repr::parse(&b, src(), dst()),
            Err(WireError::BadChecksum)
        );
        assert_eq!(
            Icmpv6Repr::parse(&ECHO[..7], src(), dst()),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Icmpv6Repr::parse(&[], src(), dst()),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn packet_too_big_carries_the_mtu() {
        // RFC 4443 3.2: the word is the next-hop MTU, 32 bits.
        let quote = [0x60u8; 48];
        let r = Icmpv6Repr::PacketTooBig {
            mtu: 1280,
            data: &quote,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(src(), dst(), &mut buf);
        assert_eq!(&buf[..2], &[2, 0]);
        assert_eq!(&buf[4..8], &[0, 0, 0x05, 0x00]);
        assert_eq!(Icmpv6Repr::parse(&buf, src(), dst()), Ok(r));
    }

    #[test]
    fn param_problem_carries_the_pointer() {
        // RFC 4443 3.4: code 2, unrecognised option at byte 44.
        let quote = [0x60u8; 48];
        let r = Icmpv6Repr::ParamProblem {
            code: 2,
            pointer: 44,
            data: &quote,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(src(), dst(), &mut buf);
        assert_eq!(&buf[..2], &[4, 2]);
        assert_eq!(&buf[4..8], &[0, 0, 0, 44]);
        assert_eq!(Icmpv6Repr::parse(&buf, src(), dst()), Ok(r));
    }

    #[test]
    fn unused_word_of_errors_is_ignored() {
        // RFC 4443 3.1: Unused is "ignored by the receiver".
        let r = Icmpv6Repr::DstUnreachable {
            code: 4,
            data: &[1, 2, 3],
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(src(), dst(), &mut buf);
        buf[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        buf[2..4].copy_from_slice(&[0, 0]);
        let pseudo = checksum::pseudo_header_v6(src(), dst(), 58, buf.len() as u32);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(&buf)));
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(Icmpv6Repr::parse(&buf, src(), dst()), Ok(r));
    }

    #[test]
    fn neighbour_discovery_is_other() {
        // RFC 4861 4.3: a Neighbour Solicitation (135) is 24 bytes and more.
        let r = Icmpv6Repr::Other { kind: 135, code: 0 };
        let mut buf = vec![0u8; 24];
        r.emit(src(), dst(), &mut buf);
        // Emitted as 8 bytes; the rest of a real NS would follow.
        assert_eq!(r.buffer_len(), 8);
        assert_eq!(Icmpv6Repr::parse(&buf[..8], src(), dst()), Ok(r));
    }

    /// Owned description of a message, so proptest can generate it.
    #[derive(Debug, Clone)]
    enum Msg {
        Req(u16, u16, Vec<u8>),
        Rep(u16, u16, Vec<u8>),
        Unreach(u8, Vec<u8>),
        TooBig(u32, Vec<u8>),
        Exceeded(u8, Vec<u8>),
        Param(u8, u32, Vec<u8>),
        Other(u8, u8),
    }

    impl Msg {
        fn repr(&self) -> Icmpv6Repr<'_> {
            match self {
                Msg::Req(i, s, d) => Icmpv6Repr::EchoRequest {
                    ident: *i,
                    seq: *s,
                    data: d,
                },
                Msg::Rep(i, s, d) => Icmpv6Repr::EchoReply {
                    ident: *i,
                    seq: *s,
                    data: d,
                },
                Msg::Unreach(c, d) => Icmpv6Repr::DstUnreachable { code: *c, data: d },
                Msg::TooBig(m, d) => Icmpv6Repr::PacketTooBig { mtu: *m, data: d },
                Msg::Exceeded(c, d) => Icmpv6Repr::TimeExceeded { code: *c, data: d },
                Msg::Param(c, p, d) => Icmpv6Repr::ParamProblem {
                    code: *c,
                    pointer: *p,
                    data: d,
                },
                Msg::Other(k, c) => Icmpv6Repr::Other { kind: *k, code: *c },
            }
        }
    }

    fn arb_msg() -> impl Strategy<Value = Msg> {
        let data = || proptest::collection::vec(any::<u8>(), 0..200);
        prop_oneof![
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Msg::Req(i, s, d)),
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Msg::Rep(i, s, d)),
            (0u8..8, data()).prop_map(|(c, d)| Msg::Unreach(c, d)),
            (any::<u32>(), data()).prop_map(|(m, d)| Msg::TooBig(m, d)),
            (0u8..2, data()).prop_map(|(c, d)| Msg::Exceeded(c, d)),
            (0u8..4, any::<u32>(), data()).prop_map(|(c, p, d)| Msg::Param(c, p, d)),
            (any::<u8>(), any::<u8>())
                .prop_filter("known kinds", |(k, _)| ![1, 2, 3, 4, 128, 129].contains(k))
                .prop_map(|(k, c)| Msg::Other(k, c)),
        ]
    }

    fn emit_vec(r: &Icmpv6Repr<'_>, s: Ipv6Addr, d: Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0xA5; r.buffer_len()];
        r.emit(s, d, &mut v);
        v
    }

    fn ndp_bytes(r: &NdpRepr, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; r.buffer_len()];
        r.emit(src(), dst(), &mut v);
        v.extend_from_slice(extra);
        fix(&mut v);
        v
    }

    fn fix(v: &mut [u8]) {
        v[2..4].copy_from_slice(&[0, 0]);
        let pseudo = checksum::pseudo_header_v6(src(), dst(), 58, v.len() as u32);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(v)));
        v[2..4].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn neighbor_solicit_with_source_ll_round_trips() {
        // RFC 4861 4.3 and 4.6.1: type 135, target, option 1 length 1.
        let r = NdpRepr::NeighborSolicit {
            target: "fe80::2".parse().unwrap(),
            source_ll: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        };
        let b = ndp_bytes(&r, &[]);
        assert_eq!(b.len(), 32);
        assert_eq!((b[0], b[24], b[25]), (135, 1, 1));
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Ok(r));
        // Icmpv6Repr still sees it as Other.
        assert_eq!(
            Icmpv6Repr::parse(&b, src(), dst()),
            Ok(Icmpv6Repr::Other { kind: 135, code: 0 })
        );
    }

    #[test]
    fn neighbor_advert_flags_round_trip() {
        // RFC 4861 4.4: R, S, O are the top three bits after the checksum.
        let r = NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            overrides: true,
            target: "fd00::2".parse().unwrap(),
            target_ll: Some(MacAddr([2, 0, 0, 0, 0, 2])),
        };
        let b = ndp_bytes(&r, &[]);
        assert_eq!(b[4], 0x60);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Ok(r));
    }

    #[test]
    fn ndp_unknown_options_skipped_zero_length_rejected() {
        // RFC 4861 4.6: unknown options skipped; length 0 discards.
        let r = NdpRepr::NeighborSolicit {
            target: "fe80::2".parse().unwrap(),
            source_ll: None,
        };
        let b = ndp_bytes(&r, &[14, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Ok(r));
        let b = ndp_bytes(&r, &[14, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Err(WireError::Malformed));
        // An option running past the end.
        let b = ndp_bytes(&r, &[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Err(WireError::Malformed));
    }

    #[test]
    fn ndp_code_nonzero_and_short_rejected() {
        // RFC 4861 7.1.1: code 0, ICMP length 24 or more.
        let r = NdpRepr::NeighborSolicit {
            target: "fe80::2".parse().unwrap(),
            source_ll: None,
        };
        let mut b = ndp_bytes(&r, &[]);
        b[1] = 1;
        fix(&mut b);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Err(WireError::Malformed));
        let mut b = ndp_bytes(&r, &[]);
        b.truncate(23);
        fix(&mut b);
        assert_eq!(NdpRepr::parse(&b, src(), dst()), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn ndp_round_trips(na in any::<bool>(), f in 0u8..8, t in any::<u128>(), ll in proptest::option::of(any::<[u8; 6]>())) {
            let target = Ipv6Addr::from(t);
            let ll = ll.map(MacAddr);
            let r = if na {
                NdpRepr::NeighborAdvert { router: f & 4 != 0, solicited: f & 2 != 0, overrides: f & 1 != 0, target, target_ll: ll }
            } else {
                NdpRepr::NeighborSolicit { target, source_ll: ll }
            };
            let b = ndp_bytes(&r, &[]);
            prop_assert_eq!(NdpRepr::parse(&b, src(), dst()), Ok(r));
        }

        #[test]
        fn ndp_parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..80), ns in any::<bool>()) {
            if bytes.len() >= 4 {
                bytes[0] = if ns { 135 } else { 136 };
                bytes[1] = 0;
                fix(&mut bytes);
            }
            if let Ok(r) = NdpRepr::parse(&bytes, src(), dst()) {
                let b = ndp_bytes(&r, &[]);
                prop_assert_eq!(NdpRepr::parse(&b, src(), dst()), Ok(r));
            }
        }
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(m in arb_msg(), s in any::<u128>(), d in any::<u128>()) {
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            let r = m.repr();
            let bytes = emit_vec(&r, s, d);
            prop_assert_eq!(bytes.len(), r.buffer_len());
            prop_assert_eq!(Icmpv6Repr::parse(&bytes, s, d), Ok(r));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64), s in any::<u128>()) {
            let _ = Icmpv6Repr::parse(&bytes, Ipv6Addr::from(s), dst());
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_messages(
            m in arb_msg(),
            muts in proptest::collection::vec((0usize..40, any::<u8>()), 1..5),
            cut in 0usize..300,
        ) {
            let mut bytes = emit_vec(&m.repr(), src(), dst());
            for (i, v) in muts {
                if i < bytes.len() {
                    bytes[i] = v;
                }
            }
            bytes.truncate(cut);
            let _ = Icmpv6Repr::parse(&bytes, src(), dst());
            // With a repaired checksum the type dispatch is reached too.
            if bytes.len() >= 4 {
                bytes[2..4].copy_from_slice(&[0, 0]);
                let pseudo = checksum::pseudo_header_v6(src(), dst(), 58, bytes.len() as u32);
                let c = checksum::finish(checksum::combine(pseudo, checksum::sum(&bytes)));
                bytes[2..4].copy_from_slice(&c.to_be_bytes());
                if bytes.len() >= 8 {
                    prop_assert!(Icmpv6Repr::parse(&bytes, src(), dst()).is_ok());
                }
            }
        }

        #[test]
        fn our_checksum_matches_etherparse(m in arb_msg(), s in any::<u128>(), d in any::<u128>()) {
            use etherparse::Icmpv6Slice;
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            let ours = emit_vec(&m.repr(), s, d);
            let slice = Icmpv6Slice::from_slice(&ours).unwrap();
            prop_assert_eq!(slice.type_u8(), ours[0]);
            prop_assert_eq!(slice.code_u8(), ours[1]);
            prop_assert!(slice.is_checksum_valid(s.octets(), d.octets()));
        }
    }
}
