//! Wire formats: Ethernet II and ARP (an optional link layer), IPv4, IPv6
//! (with its extension headers), TCP, ICMPv4 and ICMPv6 (with Neighbour
//! Discovery's NS and NA), and the TCP segment quoted inside ICMP errors.
//!
//! Two layers per protocol, as in smoltcp: a zero-copy view over a byte
//! buffer (`*Packet<T: AsRef<[u8]>>`) whose accessors never panic once
//! `new_checked` succeeded, and a validated representation (`*Repr`) with
//! `parse`, `emit` and a length.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod quote;
pub mod tcp;

pub use arp::{ArpOp, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use icmp::IcmpRepr;
pub use icmpv6::{Icmpv6Repr, NdpRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Drop, Ipv6Packet, Ipv6Repr};
pub use quote::QuotedTcp;
pub use tcp::{SackBlocks, TcpFlags, TcpOptions, TcpPacket, TcpRepr};

use core::fmt;

/// Why a packet could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its headers or length fields claim.
    Truncated,
    /// A field holds an impossible value (bad version, header length, option length...).
    Malformed,
    /// The checksum does not verify.
    BadChecksum,
    /// An IPv4 fragment (MF set or non-zero offset): not reassembled, dropped.
    Fragmented,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "packet truncated",
            WireError::Malformed => "malformed header",
            WireError::BadChecksum => "bad checksum",
            WireError::Fragmented => "IPv4 fragment",
        })
    }
}

impl std::error::Error for WireError {}

/// IP protocol numbers (IPv4 Protocol, IPv6 Next Header) this stack knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProtocol {
    /// ICMP, protocol 1 (RFC 792).
    Icmp,
    /// TCP, protocol 6 (RFC 9293).
    Tcp,
    /// UDP, protocol 17 (RFC 768).
    Udp,
    /// ICMP for IPv6, Next Header 58 (RFC 4443 1).
    Icmpv6,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_protocol_round_trips_every_byte() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
    }
}
