//! IPv6 header and extension headers (RFC 8200).
//!
//! RFC 8200 3 layout (one row is 32 bits):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! |                                                               |
//! +                         Source Address (128 bits)             +
//! |                                                               |
//! |                                                               |
//! +                      Destination Address (128 bits)           +
//! |                                                               |
//! ```
//!
//! The stack emits the fixed header only. On receive, [`Ipv6Repr::parse`]
//! walks the extension headers (RFC 8200 4) to the upper-layer protocol:
//! Hop-by-Hop and Destination Options are walked option by option, a Routing
//! header with nothing left to do is skipped, fragments are not reassembled
//! and are rejected, as IPv4 fragments are.

use super::{IpProtocol, WireError};
use core::fmt;
use std::net::Ipv6Addr;

/// Byte ranges of the fixed header.
mod field {
    use core::ops::Range;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Byte offsets inside an extension header, from its start.
pub(super) mod ext {
    /// Next Header, in every extension header (RFC 8200 4.3-4.6).
    pub const NEXT_HEADER: usize = 0;
    /// Hdr Ext Len, in 8-octet units not counting the first 8 (RFC 8200 4.3).
    pub const LEN: usize = 1;
    /// Routing Type (RFC 8200 4.4).
    pub const ROUTING_TYPE: usize = 2;
    /// Segments Left (RFC 8200 4.4).
    pub const SEGMENTS_LEFT: usize = 3;
    /// Fragment Offset (13 bits), Res (2), M flag (1) (RFC 8200 4.5).
    pub const FRAG_OFF_M: core::ops::Range<usize> = 2..4;
    /// Length of a Fragment header (RFC 8200 4.5).
    pub const FRAG_LEN: usize = 8;
}

/// Next Header values of the extension headers this module walks
/// (RFC 8200 4.1 and the IANA registry).
pub(super) mod next {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DST_OPTIONS: u8 = 60;
}

/// Option types with a fixed meaning (RFC 8200 4.2).
mod opt {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
}

/// Length of the fixed header (RFC 8200 3).
const HEADER_LEN: usize = 40;

/// At most this many extension headers are walked; a longer chain is
/// malformed. RFC 8200 4.1 recommends at most one of each kind (two
/// Destination Options), about six in a legitimate packet, so hostile chains
/// cost bounded work.
pub(super) const MAX_EXT_HEADERS: usize = 8;

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps without checks; accessors may panic on short buffers.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Wraps after checking: version 6, the fixed header fits and the payload
    /// length is within the buffer. Trailing bytes beyond `40 + payload_len`
    /// (link padding) are allowed and ignored by `payload`.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when the buffer is shorter than the 40-byte
    /// fixed header or than `40 + payload_len`; [`WireError::Malformed`] when
    /// the version is not 6.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Ipv6Packet { buffer };
        packet.check()?;
        Ok(packet)
    }

    /// The `new_checked` validation, also re-run by [`Ipv6Repr::parse`] so an
    /// unchecked view cannot make it panic.
    fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 8200 3: Version is 6.
        if self.version() != 6 {
            return Err(WireError::Malformed);
        }
        // RFC 8200 3: Payload Length counts everything after the fixed
        // header, extension headers included. (Zero with a Jumbo Payload
        // option, RFC 2675, which we do not support: such a packet then fails
        // the extension-header walk.)
        if HEADER_LEN + self.payload_len() > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    fn first_word(&self) -> u32 {
        let b = self.buffer.as_ref();
        let r = field::VER_TC_FLOW;
        u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
    }
    /// Version (RFC 8200 3); 6 after `new_checked`.
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }
    /// The Traffic Class byte: DSCP (high 6 bits) and ECN (low 2 bits), as
    /// the IPv4 TOS byte (RFC 8200 7, RFC 2474, RFC 3168 5).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }
    /// The ECN field: the two low bits of the Traffic Class (RFC 3168 5).
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0b11
    }
    /// The 20-bit Flow Label (RFC 8200 6, RFC 6437).
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000F_FFFF
    }
    /// Bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), field::LENGTH))
    }
    /// The Next Header field of the fixed header: the first extension header
    /// or the upper-layer protocol.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }
    /// Hop Limit (RFC 8200 3): decremented by each forwarding node.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source Address (RFC 8200 3).
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }
    /// Destination Address (RFC 8200 3).
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }
    /// Bytes from the end of the fixed header to `40 + payload_len`
    /// (extension headers included).
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..HEADER_LEN + self.payload_len())
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_first_word(&mut self, w: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }
    /// Sets the version field to 6.
    pub fn set_version(&mut self) {
        let w = self.first_word();
        self.set_first_word((w & 0x0FFF_FFFF) | (6 << 28));
    }
    /// Sets the Traffic Class byte (RFC 8200 3): DSCP and ECN.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = self.first_word();
        self.set_first_word((w & 0xF00F_FFFF) | (u32::from(tc) << 20));
    }
    /// Sets the ECN field (the two low Traffic Class bits, RFC 3168 5) and
    /// keeps the DSCP. Only the low two bits of `ecn` are used. (IPv6 has no
    /// header checksum to fix.)
    pub fn set_ecn(&mut self, ecn: u8) {
        let tc = self.traffic_class();
        self.set_traffic_class((tc & !0b11) | (ecn & 0b11));
    }
    /// Sets the Flow Label; bits above the low 20 are ignored.
    pub fn set_flow_label(&mut self, label: u32) {
        let w = self.first_word();
        self.set_first_word((w & 0xFFF0_0000) | (label & 0x000F_FFFF));
    }
    /// Sets the Payload Length (RFC 8200 3): the bytes after the fixed header.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
    /// Sets the Next Header of the fixed header (RFC 8200 3).
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = u8::from(next_header);
    }
    /// Sets the Hop Limit (RFC 8200 3).
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }
    /// Sets the Source Address (RFC 8200 3).
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }
    /// Sets the Destination Address (RFC 8200 3).
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }
    /// Mutable bytes from the end of the fixed header to `40 + payload_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// Why [`Ipv6Repr::parse_detailed`] refused a packet, in enough detail for
/// the caller to count it and, where RFC 8200 asks for one, to send an
/// ICMPv6 Parameter Problem (RFC 4443 3.4). Pointers are byte offsets from
/// the start of the IPv6 header, as the Parameter Problem Pointer field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Drop {
    /// A Fragment header (RFC 8200 4.5) of a real fragment: not reassembled.
    Fragment,
    /// A type 0 Routing header with segments left (RFC 5095 3: processed as
    /// an unrecognised Routing Type, so Parameter Problem code 0 pointing at
    /// the Routing Type field).
    RoutingType0 {
        /// Offset of the Routing Type field.
        pointer: usize,
    },
    /// A Routing header of an unrecognised type with segments left
    /// (RFC 8200 4.4: Parameter Problem code 0 pointing at the Routing Type).
    UnknownRouting {
        /// Offset of the Routing Type field.
        pointer: usize,
    },
    /// An unrecognised option whose action bits say discard (RFC 8200 4.2).
    /// `pointer` is the option type's offset (for Parameter Problem code 2);
    /// `icmp` says whether that message should be sent (actions 10, and 11
    /// to a unicast destination).
    UnknownOption {
        /// Offset of the option's Option Type byte.
        pointer: usize,
        /// Whether a Parameter Problem should be sent.
        icmp: bool,
    },
    /// Next Header 59 (RFC 8200 4.7): nothing follows.
    NoNextHeader,
    /// An impossible header: wrong version, a Hop-by-Hop header that is not
    /// first, an option running past its header, too many extension headers.
    Malformed,
    /// Shorter than its headers or length fields claim.
    Truncated,
}

impl fmt::Display for Ipv6Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ipv6Drop::Fragment => f.write_str("IPv6 fragment"),
            Ipv6Drop::RoutingType0 { pointer } => {
                write!(f, "type 0 routing header at byte {pointer}")
            }
            Ipv6Drop::UnknownRouting { pointer } => {
                write!(f, "unknown routing header type at byte {pointer}")
            }
            Ipv6Drop::UnknownOption { pointer, .. } => {
                write!(f, "unknown IPv6 option at byte {pointer}")
            }
            Ipv6Drop::NoNextHeader => f.write_str("no next header"),
            Ipv6Drop::Malformed => f.write_str("malformed header"),
            Ipv6Drop::Truncated => f.write_str("packet truncated"),
        }
    }
}

impl From<Ipv6Drop> for WireError {
    /// A fragment is [`WireError::Fragmented`] (as an IPv4 fragment), a
    /// truncation [`WireError::Truncated`], every other drop
    /// [`WireError::Malformed`].
    fn from(d: Ipv6Drop) -> WireError {
        match d {
            Ipv6Drop::Fragment => WireError::Fragmented,
            Ipv6Drop::Truncated => WireError::Truncated,
            Ipv6Drop::RoutingType0 { .. }
            | Ipv6Drop::UnknownRouting { .. }
            | Ipv6Drop::UnknownOption { .. }
            | Ipv6Drop::NoNextHeader
            | Ipv6Drop::Malformed => WireError::Malformed,
        }
    }
}

impl From<WireError> for Ipv6Drop {
    fn from(e: WireError) -> Ipv6Drop {
        match e {
            WireError::Truncated => Ipv6Drop::Truncated,
            WireError::Fragmented => Ipv6Drop::Fragment,
            WireError::Malformed | WireError::BadChecksum => Ipv6Drop::Malformed,
        }
    }
}

/// A validated IPv6 header. Extension headers are walked on parse and never
/// emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source Address (RFC 8200 3).
    pub src: Ipv6Addr,
    /// Destination Address (RFC 8200 3).
    pub dst: Ipv6Addr,
    /// The upper-layer protocol, after any extension headers.
    pub next_header: IpProtocol,
    /// The upper-layer length (extension headers not counted).
    pub payload_len: usize,
    /// Hop Limit (RFC 8200 3).
    pub hop_limit: u8,
    /// DSCP << 2 | ECN.
    pub traffic_class: u8,
    /// The low 20 bits are the Flow Label; the rest are ignored on emit.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Length of the fixed header, the only one emitted.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Parses the fixed header and walks the extension headers; returns the
    /// header and the offset of the upper-layer payload from the start of the
    /// packet (the payload is `packet[offset..offset + payload_len]`).
    ///
    /// # Errors
    ///
    /// [`WireError::Fragmented`] for a fragment, [`WireError::Truncated`] for a
    /// packet shorter than its headers say, [`WireError::Malformed`] for
    /// every other reason of [`Ipv6Repr::parse_detailed`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<(Ipv6Repr, usize), WireError> {
        Self::parse_detailed(packet).map_err(WireError::from)
    }

    /// [`Ipv6Repr::parse`], saying exactly why a packet is dropped.
    ///
    /// # Errors
    ///
    /// See [`Ipv6Drop`].
    pub fn parse_detailed<T: AsRef<[u8]>>(
        packet: &Ipv6Packet<T>,
    ) -> Result<(Ipv6Repr, usize), Ipv6Drop> {
        // Re-check lengths: `packet` may come from `new_unchecked`.
        packet.check()?;
        let dst = packet.dst_addr();
        // The packet ends at 40 + Payload Length; link padding is ignored.
        let b = &packet.buffer.as_ref()[..HEADER_LEN + packet.payload_len()];
        let mut next_header = b[field::NEXT_HEADER];
        let mut offset = HEADER_LEN;
        let mut walked = 0;
        loop {
            match next_header {
                next::HOP_BY_HOP | next::DST_OPTIONS => {
                    // RFC 8200 4.1: the Hop-by-Hop Options header "is
                    // restricted to appear immediately after an IPv6 header
                    // only".
                    if next_header == next::HOP_BY_HOP && walked != 0 {
                        return Err(Ipv6Drop::Malformed);
                    }
                    let len = ext_len(b, offset)?;
                    walk_options(b, offset + 2, offset + len, dst)?;
                    next_header = b[offset + ext::NEXT_HEADER];
                    offset += len;
                }
                next::ROUTING => {
                    // RFC 8200 4.4: Next Header, Hdr Ext Len, Routing Type,
                    // Segments Left, then type-specific data.
                    let len = ext_len(b, offset)?;
                    let routing_type = b[offset + ext::ROUTING_TYPE];
                    let segments_left = b[offset + ext::SEGMENTS_LEFT];
                    // RFC 8200 4.4: we route nothing, so every type is
                    // unrecognised: "If Segments Left is zero, the node must
                    // ignore the Routing header and proceed to process the
                    // next header"; otherwise discard and send Parameter
                    // Problem code 0 pointing at the Routing Type. RFC 5095 3
                    // treats type 0 exactly so; it gets its own reason only
                    // so that it can be counted.
                    if segments_left != 0 {
                        let pointer = offset + ext::ROUTING_TYPE;
                        return Err(if routing_type == 0 {
                            Ipv6Drop::RoutingType0 { pointer }
                        } else {
                            Ipv6Drop::UnknownRouting { pointer }
                        });
                    }
                    next_header = b[offset + ext::NEXT_HEADER];
                    offset += len;
                }
                next::FRAGMENT => {
                    // RFC 8200 4.5: a fixed 8-byte header.
                    let Some(h) = b.get(offset..offset + ext::FRAG_LEN) else {
                        return Err(Ipv6Drop::Truncated);
                    };
                    // RFC 6946 4: an atomic fragment (offset 0, M clear) is a
                    // whole packet "processed in isolation": skip its header.
                    // Any other fragment would need reassembly, which we do
                    // not do (TCP relies on PMTUD, RFC 8201).
                    if be16(h, ext::FRAG_OFF_M) & 0xFFF9 != 0 {
                        return Err(Ipv6Drop::Fragment);
                    }
                    next_header = h[ext::NEXT_HEADER];
                    offset += ext::FRAG_LEN;
                }
                // RFC 8200 4.7: "there is nothing following that header".
                next::NO_NEXT_HEADER => return Err(Ipv6Drop::NoNextHeader),
                // Any other value is the upper-layer protocol (ESP and AH
                // included: the caller drops them as unknown protocols).
                upper => {
                    let repr = Ipv6Repr {
                        src: packet.src_addr(),
                        dst,
                        next_header: IpProtocol::from(upper),
                        payload_len: b.len() - offset,
                        hop_limit: packet.hop_limit(),
                        traffic_class: packet.traffic_class(),
                        flow_label: packet.flow_label(),
                    };
                    return Ok((repr, offset));
                }
            }
            walked += 1;
            if walked > MAX_EXT_HEADERS {
                return Err(Ipv6Drop::Malformed);
            }
        }
    }

    /// Writes the 40-byte fixed header into `buf[..40]`; Payload Length is
    /// `payload_len` (no extension headers are emitted). Panics if `buf` is
    /// shorter than 40.
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version();
        p.set_traffic_class(self.traffic_class);
        p.set_flow_label(self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }

    /// Bytes written by [`emit`](Ipv6Repr::emit): the fixed header.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Total packet length as emitted (`HEADER_LEN + payload_len`).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }
}

/// Length in bytes of the extension header at `offset` from its Hdr Ext Len
/// (RFC 8200 4.3: 8-octet units, not counting the first 8 octets), checked
/// to lie within `b`.
fn ext_len(b: &[u8], offset: usize) -> Result<usize, Ipv6Drop> {
    let Some(&units) = b.get(offset + ext::LEN) else {
        return Err(Ipv6Drop::Truncated);
    };
    let len = (usize::from(units) + 1) * 8;
    if offset + len > b.len() {
        return Err(Ipv6Drop::Truncated);
    }
    Ok(len)
}

/// Walks the TLV options in `b[start..end]` (RFC 8200 4.2). We recognise no
/// option but the two paddings, so every other one is handled by its action
/// bits.
fn walk_options(b: &[u8], start: usize, end: usize, dst: Ipv6Addr) -> Result<(), Ipv6Drop> {
    let mut p = start;
    while p < end {
        let kind = b[p];
        // RFC 8200 4.2: Pad1 "does not have length and value fields".
        if kind == opt::PAD1 {
            p += 1;
            continue;
        }
        // Option Type, Opt Data Len, then that many bytes, all inside the
        // header.
        if p + 2 > end {
            return Err(Ipv6Drop::Malformed);
        }
        let data_end = p + 2 + usize::from(b[p + 1]);
        if data_end > end {
            return Err(Ipv6Drop::Malformed);
        }
        if kind != opt::PADN {
            // RFC 8200 4.2: the two high-order bits of an unrecognised
            // option's type say what to do:
            // 00 skip; 01 discard; 10 discard and send Parameter Problem
            // code 2; 11 the same "only if the packet's Destination Address
            // was not a multicast address".
            let pointer = p;
            match kind >> 6 {
                0b00 => {}
                0b01 => {
                    return Err(Ipv6Drop::UnknownOption {
                        pointer,
                        icmp: false,
                    })
                }
                0b10 => {
                    return Err(Ipv6Drop::UnknownOption {
                        pointer,
                        icmp: true,
                    })
                }
                _ => {
                    return Err(Ipv6Drop::UnknownOption {
                        pointer,
                        icmp: !dst.is_multicast(),
                    })
                }
            }
        }
        p = data_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A TCP SYN's IPv6 header written by hand from the RFC 8200 3 layout:
    /// version 6, traffic class 0xb8 (DSCP EF), flow label 0x12345, payload
    /// length 20, next header 6, hop limit 64, 2001:db8::1 -> 2001:db8::2.
    const KNOWN: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x14, 0x06, 0x40, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ];

    fn known_repr() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::Tcp,
            payload_len: 20,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    fn known_packet() -> Vec<u8> {
        let mut v = KNOWN.to_vec();
        v.resize(60, 0xAB);
        v
    }

    /// A packet to 2001:db8::2 (or `dst`) whose payload is `ext` (extension
    /// headers) then `upper` bytes of the upper layer.
    fn with_ext(first: u8, ext: &[u8], upper: usize, dst: Ipv6Addr) -> Vec<u8> {
        let mut r = known_repr();
        r.dst = dst;
        r.payload_len = ext.len() + upper;
        r.next_header = IpProtocol::from(first);
        let mut v = vec![0u8; r.total_len()];
        r.emit(&mut v);
        v[40..40 + ext.len()].copy_from_slice(ext);
        v
    }

    fn parse(bytes: &[u8]) -> Result<(Ipv6Repr, usize), Ipv6Drop> {
        Ipv6Repr::parse_detailed(&Ipv6Packet::new_unchecked(bytes))
    }

    fn unicast() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    #[test]
    fn known_header_parses_field_by_field() {
        let bytes = known_packet();
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.payload().len(), 20);
        assert_eq!(Ipv6Repr::parse(&p), Ok((known_repr(), 40)));
    }

    #[test]
    fn known_header_emits_identical_bytes() {
        let mut out = [0u8; 40];
        known_repr().emit(&mut out);
        assert_eq!(out, KNOWN);
        assert_eq!(known_repr().buffer_len(), 40);
        assert_eq!(known_repr().total_len(), 60);
    }

    #[test]
    fn ecn_is_the_low_two_traffic_class_bits() {
        // RFC 3168 5: ECN is the two low bits; DSCP and flow label stay.
        let mut bytes = known_packet();
        let mut p = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_ecn(0b11);
        assert_eq!(p.ecn(), 0b11);
        assert_eq!(p.traffic_class(), 0xbb);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.version(), 6);
        p.set_ecn(0b110); // only the low two bits count
        assert_eq!(p.traffic_class(), 0xba);
    }

    #[test]
    fn new_checked_rejects_bad_lengths_and_version() {
        let good = known_packet();
        assert_eq!(
            Ipv6Packet::new_checked(&good[..39]).err(),
            Some(WireError::Truncated)
        );
        // Payload length beyond the buffer.
        assert_eq!(
            Ipv6Packet::new_checked(&good[..59]).err(),
            Some(WireError::Truncated)
        );
        let mut b = good.clone();
        b[0] = 0x4b; // version 4
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
    }

    #[test]
    fn trailing_link_padding_is_ignored() {
        let mut bytes = known_packet();
        bytes.extend_from_slice(&[0; 10]);
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
        assert_eq!(Ipv6Repr::parse(&p).unwrap().0.payload_len, 20);
    }

    #[test]
    fn parse_of_unchecked_short_view_errors_instead_of_panicking() {
        let bytes = [0x60u8, 0, 0];
        let p = Ipv6Packet::new_unchecked(&bytes[..]);
        assert_eq!(Ipv6Repr::parse(&p), Err(WireError::Truncated));
    }

    #[test]
    fn hop_by_hop_and_dst_options_with_padding_are_walked() {
        // RFC 8200 4.3: Hop-by-Hop of 8 bytes (next 60, len 0, Pad1, PadN
        // with 2 data bytes, Pad1), then Destination Options of 16 bytes,
        // then TCP.
        let hbh = [60, 0, opt::PAD1, opt::PADN, 2, 0, 0, opt::PAD1];
        // Router Alert, type 5 (action bits 00: skipped, as we do not
        // recognise it), 2 data bytes, then PadN with 8 data bytes.
        let dopt = [6, 1, 5, 2, 0, 0, opt::PADN, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        let ext = [&hbh[..], &dopt[..]].concat();
        let bytes = with_ext(0, &ext, 20, unicast());
        let (r, off) = parse(&bytes).unwrap();
        assert_eq!(off, 40 + 24);
        assert_eq!(r.next_header, IpProtocol::Tcp);
        assert_eq!(r.payload_len, 20);
    }

    #[test]
    fn hop_by_hop_must_come_first() {
        // RFC 8200 4.1: Hop-by-Hop only immediately after the IPv6 header.
        let dopt = [0, 0, opt::PADN, 4, 0, 0, 0, 0];
        let hbh = [6, 0, opt::PADN, 4, 0, 0, 0, 0];
        let ext = [&dopt[..], &hbh[..]].concat();
        let bytes = with_ext(60, &ext, 0, unicast());
        assert_eq!(parse(&bytes), Err(Ipv6Drop::Malformed));
    }

    #[test]
    fn unknown_option_actions_follow_the_type_bits() {
        // RFC 8200 4.2: 00 skip, 01 discard, 10 discard + ICMP, 11 discard +
        // ICMP unless the destination is multicast.
        let multicast: Ipv6Addr = "ff02::1".parse().unwrap();
        for (kind, to, want) in [
            (0x3e, unicast(), None),
            (0x7e, unicast(), Some(false)),
            (0xbe, unicast(), Some(true)),
            (0xbe, multicast, Some(true)),
            (0xfe, unicast(), Some(true)),
            (0xfe, multicast, Some(false)),
        ] {
            // Dst options: next 6, len 0, PadN(0) (2 bytes), the option with
            // 2 data bytes at byte 4 of the header (44 of the packet).
            let dopt = [6, 0, opt::PADN, 0, kind, 2, 0, 0];
            let bytes = with_ext(60, &dopt, 0, to);
            let got = parse(&bytes);
            match want {
                None => assert_eq!(got.map(|(_, off)| off), Ok(48), "type {kind:#x}"),
                Some(icmp) => {
                    assert_eq!(
                        got,
                        Err(Ipv6Drop::UnknownOption { pointer: 44, icmp }),
                        "type {kind:#x} to {to}"
                    );
                    assert_eq!(
                        Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])),
                        Err(WireError::Malformed)
                    );
                }
            }
        }
    }

    #[test]
    fn option_running_past_its_header_is_malformed() {
        // PadN claiming 7 data bytes in a 6-byte option area.
        let dopt = [6, 0, opt::PADN, 7, 0, 0, 0, 0];
        assert_eq!(
            parse(&with_ext(60, &dopt, 0, unicast())),
            Err(Ipv6Drop::Malformed)
        );
        // A lone type byte at the very end of the area.
        let dopt = [
            6,
            0,
            opt::PAD1,
            opt::PAD1,
            opt::PAD1,
            opt::PAD1,
            opt::PAD1,
            0x3e,
        ];
        assert_eq!(
            parse(&with_ext(60, &dopt, 0, unicast())),
            Err(Ipv6Drop::Malformed)
        );
    }

    #[test]
    fn extension_header_past_the_payload_is_truncated() {
        // Hdr Ext Len 1 says 16 bytes; only 8 are in the payload.
        let dopt = [6, 1, opt::PADN, 4, 0, 0, 0, 0];
        assert_eq!(
            parse(&with_ext(60, &dopt, 0, unicast())),
            Err(Ipv6Drop::Truncated)
        );
        // Next header says Destination Options but the payload is empty.
        assert_eq!(
            parse(&with_ext(60, &[], 0, unicast())),
            Err(Ipv6Drop::Truncated)
        );
        assert_eq!(
            Ipv6Repr::parse(
                &Ipv6Packet::new_checked(&with_ext(60, &[], 0, unicast())[..]).unwrap()
            ),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn routing_header_with_no_segments_left_is_skipped() {
        // RFC 8200 4.4: an unrecognised type with Segments Left 0 is ignored.
        for routing_type in [0u8, 2, 4, 200] {
            let rh = [6, 0, routing_type, 0, 0, 0, 0, 0];
            let (r, off) = parse(&with_ext(43, &rh, 4, unicast())).unwrap();
            assert_eq!(
                (r.next_header, off, r.payload_len),
                (IpProtocol::Tcp, 48, 4)
            );
        }
    }

    #[test]
    fn routing_header_with_segments_left_is_dropped_pointing_at_the_type() {
        // RFC 8200 4.4 (and RFC 5095 3 for type 0): Parameter Problem code 0
        // pointing at the Routing Type, byte 2 of the header.
        let rh = [
            6, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let bytes = with_ext(43, &rh, 0, unicast());
        assert_eq!(parse(&bytes), Err(Ipv6Drop::RoutingType0 { pointer: 42 }));
        let mut bytes = bytes;
        bytes[42] = 4;
        assert_eq!(parse(&bytes), Err(Ipv6Drop::UnknownRouting { pointer: 42 }));
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn fragments_are_rejected_atomic_fragments_are_not() {
        // RFC 8200 4.5: offset 13 bits, 2 reserved, M.
        for (off_m, want) in [
            (0x0001u16, Err(Ipv6Drop::Fragment)), // first fragment, M set
            (0x00a8, Err(Ipv6Drop::Fragment)),    // offset 21 (168 bytes), last
            (0x0000, Ok(48)),                     // atomic (RFC 6946)
            (0x0006, Ok(48)),                     // reserved bits are ignored
        ] {
            let [a, b] = off_m.to_be_bytes();
            let fh = [6, 0, a, b, 0xde, 0xad, 0xbe, 0xef];
            let bytes = with_ext(44, &fh, 20, unicast());
            assert_eq!(parse(&bytes).map(|(_, off)| off), want, "{off_m:#x}");
        }
        let fh = [6, 0, 0, 1, 0, 0, 0, 1];
        let bytes = with_ext(44, &fh, 20, unicast());
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])),
            Err(WireError::Fragmented)
        );
        // A fragment header cut short.
        assert_eq!(
            parse(&with_ext(44, &[6, 0, 0, 0], 0, unicast())),
            Err(Ipv6Drop::Truncated)
        );
    }

    #[test]
    fn no_next_header_is_reported() {
        // RFC 8200 4.7, directly and after a Destination Options header.
        assert_eq!(
            parse(&with_ext(59, &[], 4, unicast())),
            Err(Ipv6Drop::NoNextHeader)
        );
        let dopt = [59, 0, opt::PADN, 4, 0, 0, 0, 0];
        assert_eq!(
            parse(&with_ext(60, &dopt, 0, unicast())),
            Err(Ipv6Drop::NoNextHeader)
        );
    }

    #[test]
    fn chain_longer_than_the_bound_is_malformed() {
        let one = |next: u8| [next, 0, opt::PADN, 4, 0, 0, 0, 0];
        let ok: Vec<u8> = (0..MAX_EXT_HEADERS)
            .flat_map(|i| one(if i + 1 == MAX_EXT_HEADERS { 6 } else { 60 }))
            .collect();
        assert_eq!(
            parse(&with_ext(60, &ok, 0, unicast())).map(|(_, o)| o),
            Ok(40 + 8 * MAX_EXT_HEADERS)
        );
        let too_long: Vec<u8> = (0..=MAX_EXT_HEADERS)
            .flat_map(|i| one(if i == MAX_EXT_HEADERS { 6 } else { 60 }))
            .collect();
        assert_eq!(
            parse(&with_ext(60, &too_long, 0, unicast())),
            Err(Ipv6Drop::Malformed)
        );
    }

    #[test]
    fn upper_layer_values_end_the_walk() {
        for (v, want) in [
            (58u8, IpProtocol::Icmpv6),
            (17, IpProtocol::Udp),
            (50, IpProtocol::Unknown(50)),
        ] {
            let (r, off) = parse(&with_ext(v, &[], 8, unicast())).unwrap();
            assert_eq!((r.next_header, off, r.payload_len), (want, 40, 8));
        }
    }

    #[test]
    fn drop_reasons_display_and_map_to_wire_errors() {
        assert_eq!(WireError::from(Ipv6Drop::Fragment), WireError::Fragmented);
        assert_eq!(WireError::from(Ipv6Drop::Truncated), WireError::Truncated);
        assert_eq!(
            WireError::from(Ipv6Drop::NoNextHeader),
            WireError::Malformed
        );
        assert_eq!(Ipv6Drop::from(WireError::Truncated), Ipv6Drop::Truncated);
        assert_eq!(
            Ipv6Drop::UnknownOption {
                pointer: 44,
                icmp: true
            }
            .to_string(),
            "unknown IPv6 option at byte 44"
        );
    }

    fn arb_repr() -> impl Strategy<Value = Ipv6Repr> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u8>().prop_filter("walked headers", |v| ![0, 43, 44, 59, 60].contains(v)),
            0usize..1600,
            any::<u8>(),
            any::<u8>(),
            0u32..(1 << 20),
        )
            .prop_map(
                |(src, dst, nh, payload_len, hop_limit, traffic_class, flow_label)| Ipv6Repr {
                    src: Ipv6Addr::from(src),
                    dst: Ipv6Addr::from(dst),
                    next_header: IpProtocol::from(nh),
                    payload_len,
                    hop_limit,
                    traffic_class,
                    flow_label,
                },
            )
    }

    fn emit_packet(r: &Ipv6Repr) -> Vec<u8> {
        let mut v = vec![0x5Au8; r.total_len()];
        r.emit(&mut v);
        v
    }

    fn exercise_accessors(bytes: &[u8]) {
        if let Ok(p) = Ipv6Packet::new_checked(bytes) {
            let _ = (
                p.version(),
                p.traffic_class(),
                p.ecn(),
                p.flow_label(),
                p.payload_len(),
                p.next_header(),
                p.hop_limit(),
                p.src_addr(),
                p.dst_addr(),
                p.payload(),
            );
            if let Ok((r, off)) = Ipv6Repr::parse_detailed(&p) {
                assert!(off >= HEADER_LEN);
                assert_eq!(off + r.payload_len, HEADER_LEN + p.payload_len());
            }
        }
        let _ = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(bytes));
    }

    /// One arbitrary extension header of a walked kind: (next header value
    /// announcing it, its bytes).
    fn arb_ext() -> impl Strategy<Value = (u8, Vec<u8>)> {
        (
            prop_oneof![Just(0u8), Just(43), Just(44), Just(60)],
            0usize..3,
            proptest::collection::vec(any::<u8>(), 24),
        )
            .prop_map(|(kind, units, mut body)| {
                let len = if kind == 44 { 8 } else { (units + 1) * 8 };
                body.truncate(len);
                if kind != 44 {
                    body[1] = units as u8;
                }
                (kind, body)
            })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(r in arb_repr()) {
            let bytes = emit_packet(&r);
            let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&p), Ok((r, 40)));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            exercise_accessors(&bytes);
            // Also with a plausible version and payload length.
            let mut bytes = bytes;
            if bytes.len() >= 40 {
                bytes[0] = 0x60 | (bytes[0] & 0x0F);
                let pl = (bytes.len() - 40) as u16;
                bytes[4..6].copy_from_slice(&pl.to_be_bytes());
                exercise_accessors(&bytes);
            }
        }

        #[test]
        fn parse_never_panics_on_chains_of_extension_headers(
            r in arb_repr(),
            exts in proptest::collection::vec(arb_ext(), 0..12),
            cut in 0usize..400,
        ) {
            // Link the headers: each one's Next Header announces the next.
            let mut ext = Vec::new();
            let first = exts.first().map_or(u8::from(r.next_header), |e| e.0);
            for (i, (_, body)) in exts.iter().enumerate() {
                let mut body = body.clone();
                body[0] = exts.get(i + 1).map_or(u8::from(r.next_header), |e| e.0);
                ext.extend_from_slice(&body);
            }
            let mut bytes = with_ext(first, &ext, 16, r.dst);
            exercise_accessors(&bytes);
            bytes.truncate(cut);
            exercise_accessors(&bytes);
        }

        #[test]
        fn our_emit_parses_with_etherparse(r in arb_repr()) {
            use etherparse::Ipv6HeaderSlice;
            let bytes = emit_packet(&r);
            let h = Ipv6HeaderSlice::from_slice(&bytes).unwrap();
            prop_assert_eq!(h.version(), 6);
            prop_assert_eq!(h.traffic_class(), r.traffic_class);
            prop_assert_eq!(h.flow_label().value(), r.flow_label);
            prop_assert_eq!(usize::from(h.payload_length()), r.payload_len);
            prop_assert_eq!(h.next_header().0, u8::from(r.next_header));
            prop_assert_eq!(h.hop_limit(), r.hop_limit);
            prop_assert_eq!(h.source_addr(), r.src);
            prop_assert_eq!(h.destination_addr(), r.dst);
        }
    }
}
