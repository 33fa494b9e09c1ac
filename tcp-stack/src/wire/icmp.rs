//! ICMPv4 (RFC 792): echo, and errors that concern our TCP segments.

use super::WireError;

/// The ICMP messages the stack acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpRepr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    /// Type 3. `data` is the quoted original datagram (IPv4 header + at least 8 bytes).
    DstUnreachable {
        code: u8,
        /// Next-hop MTU for code 4 (fragmentation needed), else 0.
        next_hop_mtu: u16,
        data: &'a [u8],
    },
    /// Type 11.
    TimeExceeded { code: u8, data: &'a [u8] },
    /// Anything else (parsed for counting only).
    Other { kind: u8, code: u8 },
}

impl<'a> IcmpRepr<'a> {
    /// Parses an ICMP message (the IPv4 payload), verifying its checksum.
    pub fn parse(bytes: &'a [u8]) -> Result<IcmpRepr<'a>, WireError> {
        let _ = bytes;
        todo!()
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        todo!()
    }

    /// Writes `buffer_len()` bytes including the checksum. `Other` emits its
    /// 8-byte header with zero rest-of-header.
    pub fn emit(&self, buf: &mut [u8]) {
        let _ = buf;
        todo!()
    }
}
