//! IPv4 header (RFC 791).

use super::{IpProtocol, WireError};
use std::net::Ipv4Addr;

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
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let _ = &buffer;
        todo!()
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        todo!()
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        todo!()
    }
    /// The TOS byte: DSCP (high 6 bits) and ECN (low 2 bits).
    pub fn tos(&self) -> u8 {
        todo!()
    }
    pub fn total_len(&self) -> usize {
        todo!()
    }
    pub fn ident(&self) -> u16 {
        todo!()
    }
    pub fn dont_frag(&self) -> bool {
        todo!()
    }
    pub fn more_frags(&self) -> bool {
        todo!()
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        todo!()
    }
    pub fn ttl(&self) -> u8 {
        todo!()
    }
    pub fn protocol(&self) -> IpProtocol {
        todo!()
    }
    pub fn checksum(&self) -> u16 {
        todo!()
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        todo!()
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        todo!()
    }
    /// Header checksum verifies (options included).
    pub fn verify_checksum(&self) -> bool {
        todo!()
    }
    /// Bytes from the end of the header to `total_len`.
    pub fn payload(&self) -> &[u8] {
        todo!()
    }
}

/// A validated IPv4 header. Options are tolerated on parse and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub ttl: u8,
    /// DSCP << 2 | ECN.
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Length of an emitted header (no options).
    pub const HEADER_LEN: usize = 20;

    /// Validates checksum and rejects fragments (`WireError::Fragmented`).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        let _ = packet;
        todo!()
    }

    /// Writes the 20-byte header (with checksum) into `buf[..20]`;
    /// total length is `20 + payload_len`. Panics if `buf` is shorter than 20.
    pub fn emit(&self, buf: &mut [u8]) {
        let _ = buf;
        todo!()
    }
}
