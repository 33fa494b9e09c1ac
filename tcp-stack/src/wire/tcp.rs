//! TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018).

use super::WireError;
use crate::seq::SeqNum;
use std::net::Ipv4Addr;

/// TCP control bits.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x001);
    pub const SYN: TcpFlags = TcpFlags(0x002);
    pub const RST: TcpFlags = TcpFlags(0x004);
    pub const PSH: TcpFlags = TcpFlags(0x008);
    pub const ACK: TcpFlags = TcpFlags(0x010);
    pub const URG: TcpFlags = TcpFlags(0x020);
    pub const ECE: TcpFlags = TcpFlags(0x040);
    pub const CWR: TcpFlags = TcpFlags(0x080);
    pub const EMPTY: TcpFlags = TcpFlags(0);

    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [(TcpFlags, char); 8] = [
            (TcpFlags::SYN, 'S'),
            (TcpFlags::FIN, 'F'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        f.write_str("[")?;
        for (flag, c) in NAMES {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        f.write_str("]")
    }
}

/// Up to four SACK blocks `[left, right)` (RFC 2018), in the order they appear.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); 4],
    len: u8,
}

impl SackBlocks {
    pub const MAX: usize = 4;
    /// Appends a block; returns false (and does nothing) when full.
    pub fn push(&mut self, left: SeqNum, right: SeqNum) -> bool {
        if (self.len as usize) < Self::MAX {
            self.blocks[self.len as usize] = (left, right);
            self.len += 1;
            true
        } else {
            false
        }
    }
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.len as usize]
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Keeps only the first `n` blocks.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u8);
    }
}

/// The TCP options this stack understands. Unknown options are skipped on parse.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// Shift count (RFC 7323 2.2); values above 14 are clamped to 14 by the
    /// connection logic, not by the parser.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack: SackBlocks,
    /// (TSval, TSecr) (RFC 7323 3).
    pub timestamps: Option<(u32, u32)>,
}

impl TcpOptions {
    /// Parses the option bytes (between the fixed header and the data).
    /// NOP and EOL handled, unknown kinds skipped by their length; a length
    /// that is < 2 or runs past the end is `Malformed`. Options with the wrong
    /// length for their kind (e.g. MSS with length != 4) are ignored.
    pub fn parse(bytes: &[u8]) -> Result<TcpOptions, WireError> {
        let _ = bytes;
        todo!()
    }

    /// Encoded length in bytes, padded to a multiple of 4. At most 40: SACK
    /// blocks that do not fit are not counted (and not emitted).
    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes exactly `self.len()` bytes (NOP padding, 4-byte aligned
    /// layout like Linux: MSS, SACK-permitted, timestamps, window scale; then
    /// SACK blocks as many as fit in 40 bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        let _ = buf;
        todo!()
    }
}

/// Zero-copy view of a TCP segment (header + payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Checks: at least 20 bytes, data offset >= 5 and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let _ = &buffer;
        todo!()
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn src_port(&self) -> u16 {
        todo!()
    }
    pub fn dst_port(&self) -> u16 {
        todo!()
    }
    pub fn seq(&self) -> SeqNum {
        todo!()
    }
    pub fn ack(&self) -> SeqNum {
        todo!()
    }
    pub fn header_len(&self) -> usize {
        todo!()
    }
    pub fn flags(&self) -> TcpFlags {
        todo!()
    }
    pub fn window(&self) -> u16 {
        todo!()
    }
    pub fn checksum(&self) -> u16 {
        todo!()
    }
    pub fn urgent(&self) -> u16 {
        todo!()
    }
    pub fn options(&self) -> &[u8] {
        todo!()
    }
    pub fn payload(&self) -> &[u8] {
        todo!()
    }
    /// Checksum over pseudo-header + whole buffer verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let _ = (src, dst);
        todo!()
    }
}

/// A validated TCP header (payload carried separately).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    /// Raw (unscaled) window field.
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

impl TcpRepr {
    /// Parses a segment (the IPv4 payload). With `verify_checksum`, a bad
    /// checksum is `BadChecksum`. Returns the header and the payload.
    pub fn parse<'a>(
        segment: &'a [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<(TcpRepr, &'a [u8]), WireError> {
        let _ = (segment, src, dst, verify_checksum);
        todo!()
    }

    /// Header length including options (20 + options.len()).
    pub fn header_len(&self) -> usize {
        20 + self.options.len()
    }

    /// Writes the header into `buf[..header_len()]` with a zero checksum.
    /// Call [`fill_checksum`] once the payload is in place.
    pub fn emit(&self, buf: &mut [u8]) {
        let _ = buf;
        todo!()
    }
}

/// Computes and stores the checksum of a complete segment (header + payload).
pub fn fill_checksum(segment: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let _ = (segment, src, dst);
    todo!()
}
