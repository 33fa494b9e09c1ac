//! Ethernet II frames (IEEE 802.3 with an EtherType, RFC 894) and MAC
//! addresses, including the IPv6 multicast mapping of RFC 2464 7.
//!
//! Layout: destination (6 bytes), source (6), EtherType (2), payload. The
//! frame check sequence is the device's business and never appears here.
//! VLAN tags (EtherType 0x8100) are not understood: such a frame is just
//! one with an unknown EtherType.

use super::WireError;
use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

/// Byte ranges of the header.
mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (the unknown target of an ARP request, RFC 826).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The group bit (the least significant bit of the first byte) is set:
    /// multicast, broadcast included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == MacAddr::BROADCAST
    }

    /// Neither multicast nor all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != MacAddr::ZERO
    }

    /// The MAC an IPv6 multicast address maps to: 33:33 followed by its
    /// low 32 bits (RFC 2464 7).
    pub fn ipv6_multicast(ip: Ipv6Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The modified EUI-64 interface identifier of this MAC (RFC 4291
    /// 2.5.1 and appendix A): ff:fe inserted in the middle and the
    /// universal/local bit inverted.
    pub fn eui64(&self) -> [u8; 8] {
        let m = self.0;
        [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
    }

    /// The IPv6 link-local address fe80::/64 with this MAC's modified
    /// EUI-64 interface identifier (RFC 4862 5.3).
    pub fn link_local(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o[0] = 0xfe;
        o[1] = 0x80;
        o[8..].copy_from_slice(&self.eui64());
        Ipv6Addr::from(o)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// A MAC address that does not parse (`FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Six hexadecimal bytes separated by `:` or `-`.
    fn from_str(s: &str) -> Result<MacAddr, ParseMacError> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.is_empty() || p.len() > 2 {
                return Err(ParseMacError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

/// EtherType values this stack knows (IEEE registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    /// 0x0800, IPv4 (RFC 894).
    Ipv4,
    /// 0x0806, ARP (RFC 826).
    Arp,
    /// 0x86DD, IPv6 (RFC 2464 3).
    Ipv6,
    /// Anything else (VLAN tags 0x8100 included).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> EtherType {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86DD => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86DD,
            EtherType::Unknown(v) => v,
        }
    }
}

/// A zero-copy view of an Ethernet II frame. After `new_checked`, no
/// accessor panics.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the header: two addresses and the EtherType.
    pub const HEADER_LEN: usize = 14;

    /// Wraps `buffer` without checking its length.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer`, which must hold at least the 14-byte header.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when it is shorter.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    fn mac(&self, r: core::ops::Range<usize>) -> MacAddr {
        let mut m = [0u8; 6];
        if let Some(b) = self.buffer.as_ref().get(r) {
            m.copy_from_slice(b);
        }
        MacAddr(m)
    }

    /// Destination address.
    pub fn dst(&self) -> MacAddr {
        self.mac(field::DST)
    }

    /// Source address.
    pub fn src(&self) -> MacAddr {
        self.mac(field::SRC)
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        match b.get(field::ETHERTYPE) {
            Some(&[hi, lo]) => EtherType::from(u16::from_be_bytes([hi, lo])),
            _ => EtherType::Unknown(0),
        }
    }

    /// Everything after the header (IP padding included: the IP layer
    /// trims by its own length field).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }
}

/// The header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// What the payload is.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Length of the header.
    pub const HEADER_LEN: usize = 14;

    /// The header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            dst: frame.dst(),
            src: frame.src(),
            ethertype: frame.ethertype(),
        }
    }

    /// Writes the 14-byte header into the front of `buf`.
    ///
    /// Panics if `buf` is shorter than 14 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DST].copy_from_slice(&self.dst.0);
        buf[field::SRC].copy_from_slice(&self.src.0);
        buf[field::ETHERTYPE].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mac_display_and_parse_round_trip() {
        let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(m, MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(m.to_string(), "52:54:00:12:34:56");
        assert_eq!("52-54-00-12-34-56".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "zz:54:00:12:34:56",
            "525:4:00:12:34:56",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x52, 0x54, 0, 0, 0, 1]).is_unicast());
        assert!(!MacAddr::ZERO.is_unicast());
    }

    #[test]
    fn ipv6_multicast_maps_to_33_33_and_low_32_bits() {
        // RFC 2464 7: ff02::1:ff12:3456 -> 33:33:ff:12:34:56.
        let ip: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(MacAddr::ipv6_multicast(ip).to_string(), "33:33:ff:12:34:56");
        let all: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(all).to_string(),
            "33:33:00:00:00:01"
        );
    }

    #[test]
    fn link_local_from_mac_is_modified_eui64() {
        // RFC 4291 appendix A: 34-56-78-9A-BC-DE becomes the interface
        // identifier 3656:78FF:FE9A:BCDE (u/l bit inverted, FFFE inserted).
        let m: MacAddr = "34:56:78:9a:bc:de".parse().unwrap();
        assert_eq!(m.eui64(), [0x36, 0x56, 0x78, 0xff, 0xfe, 0x9a, 0xbc, 0xde]);
        // RFC 4862 5.3: fe80::/64 plus the identifier.
        let expect: Ipv6Addr = "fe80::3656:78ff:fe9a:bcde".parse().unwrap();
        assert_eq!(m.link_local(), expect);
    }

    #[test]
    fn frame_parse_and_emit() {
        let bytes = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06, 0xaa,
        ];
        let f = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let r = EthernetRepr::parse(&f);
        assert_eq!(r.dst, MacAddr::BROADCAST);
        assert_eq!(r.src, MacAddr([0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(r.ethertype, EtherType::Arp);
        assert_eq!(f.payload(), &[0xaa]);
        let mut out = [0u8; 14];
        r.emit(&mut out);
        assert_eq!(out, bytes[..14]);
        assert_eq!(
            EthernetFrame::new_checked(&bytes[..13]).err(),
            Some(WireError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn frame_header_round_trips(d in any::<[u8; 6]>(), s in any::<[u8; 6]>(), t in any::<u16>()) {
            let r = EthernetRepr { dst: MacAddr(d), src: MacAddr(s), ethertype: EtherType::from(t) };
            let mut b = [0u8; 14];
            r.emit(&mut b);
            prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).unwrap()), r);
            prop_assert_eq!(u16::from(EtherType::from(t)), t);
        }

        #[test]
        fn mac_text_round_trips(m in any::<[u8; 6]>()) {
            let m = MacAddr(m);
            prop_assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
        }
    }
}
