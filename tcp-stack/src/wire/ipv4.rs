//! IPv4 header (RFC 791).
//!
//! RFC 791 3.1 layout (one row is 32 bits):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options                    |    Padding    |
//! ```
//!
//! The stack neither emits options nor reassembles fragments: options are
//! skipped on receive, fragments are rejected with [`WireError::Fragmented`].

use super::checksum;
use super::{IpProtocol, WireError};
use std::net::Ipv4Addr;

/// Byte ranges of the fixed header.
mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Minimum (option-less) header length (RFC 791 3.1: IHL >= 5).
const MIN_HEADER_LEN: usize = 20;
/// RFC 791 3.1 flags, in the 16-bit flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Zero-copy view of an IPv4 datagram.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps without checks; accessors may panic on short buffers.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Wraps after checking: version 4, IHL >= 5, header fits, total length
    /// within the buffer and >= header length. Trailing bytes beyond total
    /// length (link padding) are allowed and ignored by `payload`.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when the buffer is shorter than 20 bytes, the
    /// header length or the total length; [`WireError::Malformed`] when the
    /// version is not 4, IHL is below 5 or the total length is below the
    /// header length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Ipv4Packet { buffer };
        packet.check()?;
        Ok(packet)
    }

    /// The `new_checked` validation, also re-run by [`Ipv4Repr::parse`] so an
    /// unchecked view cannot make it panic.
    fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        // RFC 791 3.1: Version is 4.
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        // RFC 791 3.1: "the minimum value for a correct header is 5".
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if header_len > b.len() {
            return Err(WireError::Truncated);
        }
        // RFC 791 3.1: Total Length counts header and data.
        let total_len = self.total_len();
        if total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version (RFC 791 3.1); 4 after `new_checked`.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }
    /// The TOS byte: DSCP (high 6 bits) and ECN (low 2 bits).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    /// The ECN field: the two low bits of the TOS byte (RFC 3168 5).
    pub fn ecn(&self) -> u8 {
        self.tos() & 0b11
    }
    /// Total Length (RFC 791 3.1): header and data, in bytes.
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), field::LENGTH))
    }
    /// Identification (RFC 791 3.1), used to reassemble fragments.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    /// The Don't Fragment flag (RFC 791 3.1).
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    /// The More Fragments flag (RFC 791 3.1).
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        // RFC 791 3.1: measured in units of 8 octets.
        usize::from(be16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) * 8
    }
    /// Time to Live (RFC 791 3.1).
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol (RFC 791 3.1): the next-level protocol in the data.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }
    /// Header Checksum (RFC 791 3.1), as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source Address (RFC 791 3.1).
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination Address (RFC 791 3.1).
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// Header checksum verifies (options included).
    pub fn verify_checksum(&self) -> bool {
        // RFC 791 3.1: the checksum covers the header only.
        match self.buffer.as_ref().get(..self.header_len()) {
            Some(h) => checksum::checksum(h) == 0,
            None => false,
        }
    }
    /// Bytes from the end of the header to `total_len`.
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..self.total_len())
            .unwrap_or(&[])
    }
    /// The option bytes (between the fixed 20-byte header and the payload).
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length (must be a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0F);
    }
    /// Sets the Type of Service byte (RFC 791 3.1): DSCP and ECN. The header
    /// checksum is not updated.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }
    /// Sets the Total Length (RFC 791 3.1), header included.
    pub fn set_total_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
    /// Sets the Identification (RFC 791 3.1).
    pub fn set_ident(&mut self, ident: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }
    /// Sets DF/MF and the fragment offset (in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: usize) {
        let mut v = ((offset / 8) as u16) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the Time to Live (RFC 791 3.1).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }
    /// Sets the Protocol (RFC 791 3.1).
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(protocol);
    }
    /// Sets the Header Checksum field (RFC 791 3.1); see
    /// [`fill_checksum`](Ipv4Packet::fill_checksum) to compute it.
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }
    /// Sets the Source Address (RFC 791 3.1).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }
    /// Sets the Destination Address (RFC 791 3.1).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }
    /// Recomputes the header checksum over `header_len()` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    /// Sets the ECN field (the two low TOS bits, RFC 3168 5), keeps the DSCP,
    /// and recomputes the header checksum (RFC 791 3.1: it covers the TOS
    /// byte). Only the low two bits of `ecn` are used.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = self.tos();
        self.set_tos((tos & !0b11) | (ecn & 0b11));
        self.fill_checksum();
    }
    /// Mutable bytes from the end of the header to `total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len());
        self.buffer.as_mut().get_mut(start..end).unwrap_or(&mut [])
    }
}

/// A validated IPv4 header. Options are tolerated on parse and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source Address (RFC 791 3.1).
    pub src: Ipv4Addr,
    /// Destination Address (RFC 791 3.1).
    pub dst: Ipv4Addr,
    /// Protocol (RFC 791 3.1) of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes: Total Length minus the header (options included).
    pub payload_len: usize,
    /// Time to Live (RFC 791 3.1).
    pub ttl: u8,
    /// DSCP << 2 | ECN.
    pub tos: u8,
    /// Identification (RFC 791 3.1).
    pub ident: u16,
    /// The Don't Fragment flag (RFC 791 3.1).
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Length of an emitted header (no options).
    pub const HEADER_LEN: usize = 20;

    /// Validates checksum and rejects fragments (`WireError::Fragmented`).
    ///
    /// # Errors
    ///
    /// Those of [`Ipv4Packet::new_checked`] (the lengths are checked again);
    /// [`WireError::BadChecksum`] when the header checksum does not verify;
    /// [`WireError::Fragmented`] when MF is set or the fragment offset is
    /// not zero.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        // Re-check lengths: `packet` may come from `new_unchecked`.
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        // RFC 791 3.2 (fragmentation): a datagram with MF set or a non-zero
        // offset is a fragment. We do not reassemble (RFC 9293 relies on PMTUD
        // and DF for TCP), so fragments are dropped.
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(WireError::Fragmented);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            // Options (RFC 791 3.1) are skipped: header_len already covers them.
            payload_len: packet.total_len() - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Writes the 20-byte header (with checksum) into `buf[..20]`;
    /// total length is `20 + payload_len`. Panics if `buf` is shorter than 20.
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - Self::HEADER_LEN);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..Self::HEADER_LEN]);
        p.set_header_len(Self::HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len((Self::HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }

    /// Total datagram length (`HEADER_LEN + payload_len`).
    pub fn total_len(&self) -> usize {
        Self::HEADER_LEN + self.payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A UDP datagram header written by hand from the RFC 791 layout:
    /// version 4, IHL 5, TOS 0, total length 0x73 (115), ident 0, DF,
    /// offset 0, TTL 64, protocol 17, checksum 0xb861,
    /// 192.168.0.1 -> 192.168.0.199.
    const KNOWN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn known_datagram() -> Vec<u8> {
        let mut v = KNOWN.to_vec();
        v.resize(0x73, 0xAB);
        v
    }

    #[test]
    fn known_header_parses_field_by_field() {
        let bytes = known_datagram();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 115);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.checksum(), 0xb861);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 95);
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src: Ipv4Addr::new(192, 168, 0, 1),
                dst: Ipv4Addr::new(192, 168, 0, 199),
                protocol: IpProtocol::Udp,
                payload_len: 95,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
            }
        );
    }

    #[test]
    fn known_header_emits_identical_bytes() {
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&known_datagram()[..]).unwrap()).unwrap();
        let mut out = [0u8; 20];
        r.emit(&mut out);
        assert_eq!(out, KNOWN);
    }

    #[test]
    fn bad_checksum_rejected() {
        let mut bytes = known_datagram();
        bytes[11] ^= 1;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::BadChecksum));
    }

    fn with_frag(mf: bool, offset: usize) -> Vec<u8> {
        let mut bytes = known_datagram();
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_frag(true, mf, offset);
        p.fill_checksum();
        bytes
    }

    #[test]
    fn fragments_rejected_mf_or_offset() {
        for (mf, off) in [(true, 0), (false, 8), (true, 1480)] {
            let bytes = with_frag(mf, off);
            let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(p.frag_offset(), off);
            assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Fragmented));
        }
        let bytes = with_frag(false, 0);
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&bytes[..]).unwrap()).is_ok());
    }

    #[test]
    fn options_are_skipped_and_covered_by_checksum() {
        // IHL 6: one 4-byte option word (NOP NOP NOP EOL), payload "hi".
        let mut bytes = [0u8; 26];
        {
            let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
            p.set_header_len(24);
            p.set_total_len(26);
            p.set_ttl(1);
            p.set_protocol(IpProtocol::Tcp);
            p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
            p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        }
        bytes[20..24].copy_from_slice(&[1, 1, 1, 0]);
        bytes[24..26].copy_from_slice(b"hi");
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), b"hi");
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 2);
        // Corrupting an option byte breaks the checksum.
        bytes[21] = 7;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::BadChecksum));
    }

    #[test]
    fn new_checked_rejects_bad_lengths_and_version() {
        let good = known_datagram();
        assert_eq!(
            Ipv4Packet::new_checked(&good[..19]).err(),
            Some(WireError::Truncated)
        );
        // Total length beyond the buffer.
        assert_eq!(
            Ipv4Packet::new_checked(&good[..100]).err(),
            Some(WireError::Truncated)
        );
        let mut b = good.clone();
        b[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
        let mut b = good.clone();
        b[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
        let mut b = good.clone();
        b[0] = 0x4F; // IHL 15 = 60 bytes, total length 115 ok
        assert!(Ipv4Packet::new_checked(&b[..]).is_ok());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..40]).err(),
            Some(WireError::Truncated)
        );
        let mut b = good.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total < header
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
    }

    #[test]
    fn set_ecn_keeps_dscp_and_fixes_the_checksum() {
        // RFC 3168 5: ECN is the two low TOS bits, e.g. CE = 0b11.
        let mut bytes = known_datagram();
        bytes[1] = 0xb8; // DSCP EF, Not-ECT
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.ecn(), 0);
        for ecn in [0b10, 0b11, 0b01, 0b00] {
            p.set_ecn(ecn);
            assert_eq!(p.ecn(), ecn);
            assert_eq!(p.tos() >> 2, 0xb8 >> 2);
            assert!(p.verify_checksum());
        }
        p.set_ecn(0b111); // only the low two bits count
        assert_eq!(p.tos(), 0xbb);
        assert!(Ipv4Repr::parse(&p).is_ok());
    }

    #[test]
    fn trailing_link_padding_is_ignored() {
        let mut bytes = known_datagram();
        bytes.extend_from_slice(&[0; 10]);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 95);
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 95);
    }

    #[test]
    fn parse_of_unchecked_short_view_errors_instead_of_panicking() {
        let bytes = [0x45u8, 0, 0];
        let p = Ipv4Packet::new_unchecked(&bytes[..]);
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Truncated));
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..1600,
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(
                |(src, dst, proto, payload_len, ttl, tos, ident, dont_frag)| Ipv4Repr {
                    src: Ipv4Addr::from(src),
                    dst: Ipv4Addr::from(dst),
                    protocol: IpProtocol::from(proto),
                    payload_len,
                    ttl,
                    tos,
                    ident,
                    dont_frag,
                },
            )
    }

    fn emit_datagram(r: &Ipv4Repr) -> Vec<u8> {
        let mut v = vec![0x5Au8; r.total_len()];
        r.emit(&mut v);
        v
    }

    fn exercise_accessors(bytes: &[u8]) {
        if let Ok(p) = Ipv4Packet::new_checked(bytes) {
            let _ = (
                p.version(),
                p.header_len(),
                p.tos(),
                p.ecn(),
                p.total_len(),
                p.ident(),
                p.dont_frag(),
                p.more_frags(),
                p.frag_offset(),
                p.ttl(),
                p.protocol(),
                p.checksum(),
                p.src_addr(),
                p.dst_addr(),
                p.verify_checksum(),
                p.payload(),
                p.options(),
            );
            if let Ok(r) = Ipv4Repr::parse(&p) {
                assert_eq!(r.payload_len, p.payload().len());
            }
        }
        let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes));
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(r in arb_repr()) {
            let bytes = emit_datagram(&r);
            let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            exercise_accessors(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_datagrams(
            r in arb_repr(),
            muts in proptest::collection::vec((0usize..24, any::<u8>()), 1..6),
            cut in 0usize..2000,
        ) {
            let mut bytes = emit_datagram(&r);
            for (i, v) in muts {
                if i < bytes.len() {
                    bytes[i] = v;
                }
            }
            bytes.truncate(cut);
            exercise_accessors(&bytes);
            // Fix the checksum too so deeper checks are reached.
            if bytes.len() >= 20 {
                let hl = usize::from(bytes[0] & 0xF) * 4;
                if hl >= 20 && hl <= bytes.len() {
                    Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
                    exercise_accessors(&bytes);
                }
            }
        }

        #[test]
        fn our_emit_parses_with_etherparse(r in arb_repr()) {
            use etherparse::Ipv4HeaderSlice;
            let bytes = emit_datagram(&r);
            let h = Ipv4HeaderSlice::from_slice(&bytes).unwrap();
            prop_assert_eq!(h.version(), 4);
            prop_assert_eq!(h.ihl(), 5);
            prop_assert_eq!(h.source_addr(), r.src);
            prop_assert_eq!(h.destination_addr(), r.dst);
            prop_assert_eq!(h.protocol().0, u8::from(r.protocol));
            prop_assert_eq!(usize::from(h.total_len()), r.total_len());
            prop_assert_eq!(h.ttl(), r.ttl);
            prop_assert_eq!(h.dcp().value(), r.tos >> 2);
            prop_assert_eq!(h.ecn().value(), r.tos & 3);
            prop_assert_eq!(h.identification(), r.ident);
            prop_assert_eq!(h.dont_fragment(), r.dont_frag);
            prop_assert!(!h.more_fragments());
            prop_assert_eq!(h.fragments_offset().value(), 0);
            prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        }

        #[test]
        fn etherparse_header_parses_with_ours(r in arb_repr(), options_words in 0usize..=10) {
            use etherparse::{IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header};
            let mut h = Ipv4Header::new(r.payload_len as u16, r.ttl, IpNumber(u8::from(r.protocol)), r.src.octets(), r.dst.octets()).unwrap();
            h.dscp = Ipv4Dscp::try_new(r.tos >> 2).unwrap();
            h.ecn = Ipv4Ecn::try_new(r.tos & 3).unwrap();
            h.identification = r.ident;
            h.dont_fragment = r.dont_frag;
            // NOP options (type 1), which we must skip.
            h.options = vec![1u8; options_words * 4][..].try_into().unwrap();
            h.set_payload_len(r.payload_len).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut bytes = h.to_bytes().to_vec();
            bytes.resize(bytes.len() + r.payload_len, 0xEE);
            let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(p.header_len(), 20 + options_words * 4);
            prop_assert_eq!(p.checksum(), h.header_checksum);
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
        }
    }
}
