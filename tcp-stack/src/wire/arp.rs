//! ARP for IPv4 over Ethernet (RFC 826): hardware type 1, protocol type
//! 0x0800, hardware length 6, protocol length 4, operations request (1)
//! and reply (2). Anything else does not parse.
//!
//! RFC 826 "Packet format": ar$hrd (2), ar$pro (2), ar$hln (1), ar$pln
//! (1), ar$op (2), ar$sha (6), ar$spa (4), ar$tha (6), ar$tpa (4): 28 bytes.

use super::ethernet::MacAddr;
use super::WireError;
use std::net::Ipv4Addr;

/// Byte ranges of the packet.
mod field {
    use core::ops::Range;
    pub const HRD: Range<usize> = 0..2;
    pub const PRO: Range<usize> = 2..4;
    pub const HLN: usize = 4;
    pub const PLN: usize = 5;
    pub const OP: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// ar$hrd of Ethernet (RFC 826, "ares_hrd$Ethernet").
const HRD_ETHERNET: u16 = 1;
/// ar$pro of IPv4: its EtherType.
const PRO_IPV4: u16 = 0x0800;

/// ARP operation (RFC 826 ar$op).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// ares_op$REQUEST, 1.
    Request,
    /// ares_op$REPLY, 2.
    Reply,
}

/// A validated Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Parses an ARP packet (the payload of an Ethernet frame of type
    /// 0x0806; trailing padding is ignored).
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] below 28 bytes; [`WireError::Malformed`]
    /// for another hardware or protocol type or length, or another operation.
    pub fn parse(bytes: &[u8]) -> Result<ArpRepr, WireError> {
        let b = bytes.get(..Self::LEN).ok_or(WireError::Truncated)?;
        let be16 = |r: core::ops::Range<usize>| u16::from_be_bytes([b[r.start], b[r.start + 1]]);
        // RFC 826 "Packet Reception": "?Do I have the hardware type in
        // ar$hrd? ... ?Do I speak the protocol in ar$pro?"
        if be16(field::HRD) != HRD_ETHERNET
            || be16(field::PRO) != PRO_IPV4
            || b[field::HLN] != 6
            || b[field::PLN] != 4
        {
            return Err(WireError::Malformed);
        }
        let op = match be16(field::OP) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return Err(WireError::Malformed),
        };
        let mac = |r: core::ops::Range<usize>| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[r]);
            MacAddr(m)
        };
        let ip = |r: core::ops::Range<usize>| {
            Ipv4Addr::new(b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3])
        };
        Ok(ArpRepr {
            op,
            sender_mac: mac(field::SHA),
            sender_ip: ip(field::SPA),
            target_mac: mac(field::THA),
            target_ip: ip(field::TPA),
        })
    }

    /// Writes the 28-byte packet.
    ///
    /// Panics if `buf` is shorter than [`ArpRepr::LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..Self::LEN];
        b[field::HRD].copy_from_slice(&HRD_ETHERNET.to_be_bytes());
        b[field::PRO].copy_from_slice(&PRO_IPV4.to_be_bytes());
        b[field::HLN] = 6;
        b[field::PLN] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        b[field::OP].copy_from_slice(&op.to_be_bytes());
        b[field::SHA].copy_from_slice(&self.sender_mac.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_mac.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A request "who has 10.0.0.2? tell 10.0.0.1" from 52:54:00:00:00:01,
    /// written by hand from RFC 826's packet format.
    const REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];

    #[test]
    fn known_request_parses_and_reemits() {
        let r = ArpRepr::parse(&REQUEST).unwrap();
        assert_eq!(r.op, ArpOp::Request);
        assert_eq!(r.sender_mac, MacAddr([0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_mac, MacAddr::ZERO);
        assert_eq!(r.target_ip, Ipv4Addr::new(10, 0, 0, 2));
        let mut out = [0u8; 28];
        r.emit(&mut out);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn other_hardware_protocol_lengths_and_ops_rejected() {
        // RFC 826: only what we speak (Ethernet, IPv4) is processed.
        for (i, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16), (7, 3)] {
            let mut b = REQUEST;
            b[i] = v;
            assert_eq!(ArpRepr::parse(&b), Err(WireError::Malformed), "byte {i}");
        }
        assert_eq!(ArpRepr::parse(&REQUEST[..27]), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(reply in any::<bool>(), sm in any::<[u8; 6]>(), si in any::<u32>(), tm in any::<[u8; 6]>(), ti in any::<u32>()) {
            let r = ArpRepr {
                op: if reply { ArpOp::Reply } else { ArpOp::Request },
                sender_mac: MacAddr(sm),
                sender_ip: Ipv4Addr::from(si),
                target_mac: MacAddr(tm),
                target_ip: Ipv4Addr::from(ti),
            };
            let mut b = [0u8; 28];
            r.emit(&mut b);
            prop_assert_eq!(ArpRepr::parse(&b), Ok(r));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ArpRepr::parse(&bytes);
        }
    }
}
