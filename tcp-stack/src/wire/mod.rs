//! Wire formats: IPv4, TCP and ICMPv4.
//!
//! Two layers per protocol, as in smoltcp: a zero-copy view over a byte
//! buffer (`*Packet<T: AsRef<[u8]>>`) whose accessors never panic once
//! `new_checked` succeeded, and a validated representation (`*Repr`) with
//! `parse`, `emit` and a length.

pub mod checksum;
pub mod icmp;
pub mod ipv4;
pub mod tcp;

pub use icmp::IcmpRepr;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
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

/// IP protocol numbers this stack knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
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
            IpProtocol::Unknown(v) => v,
        }
    }
}
