//! The virtio-net header that precedes every packet on a TUN device opened
//! with offloads (`IFF_VNET_HDR`).
//!
//! Layout (the 10-byte `struct virtio_net_hdr` of `<linux/virtio_net.h>`,
//! without the `num_buffers` field of the 12-byte variant, which TUN does
//! not use):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | `flags`: [`NEEDS_CSUM`](VirtioNetHdr::NEEDS_CSUM), [`DATA_VALID`](VirtioNetHdr::DATA_VALID) |
//! | 1 | 1 | `gso_type`: [`GSO_NONE`](VirtioNetHdr::GSO_NONE), [`GSO_TCPV4`](VirtioNetHdr::GSO_TCPV4), ... plus [`GSO_ECN`](VirtioNetHdr::GSO_ECN) |
//! | 2 | 2 | `hdr_len`: IP + TCP header bytes (a hint) |
//! | 4 | 2 | `gso_size`: payload bytes per segment |
//! | 6 | 2 | `csum_start`: where checksumming starts (the TCP header) |
//! | 8 | 2 | `csum_offset`: where, from `csum_start`, the checksum goes |
//!
//! The 16-bit fields are little-endian: [`TunBuilder::offload`] asks the
//! kernel for that with `TUNSETVNETLE` (without it TUN uses the host's
//! byte order, the "legacy" virtio rule, which is the same on x86 and
//! arm64).
//!
//! [`TunBuilder::offload`]: crate::TunBuilder::offload

/// A decoded virtio-net header.
///
/// Meaning (virtio spec 5.1.6, kernel `Documentation/networking/checksum-offloads.rst`):
///
/// - `NEEDS_CSUM` ("checksum partial"): the L4 checksum is not filled in.
///   The checksum field at `csum_start + csum_offset` holds the sum of the
///   pseudo-header only (not complemented); the one's complement sum from
///   `csum_start` to the end of the packet, stored there, completes it.
///   The kernel sets it on packets its own stack sent (they never crossed a
///   wire); we set it on every super-packet.
/// - `DATA_VALID`: the checksum was already verified (kernel to us only).
/// - `gso_type != GSO_NONE`: a super-packet to cut into segments of
///   `gso_size` payload bytes, each with a copy of the first `hdr_len`
///   bytes of headers (TCP sequence numbers, IP ids, lengths and checksums
///   fixed up per segment; FIN and PSH only on the last one, CWR only on the
///   first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`, possibly with [`GSO_ECN`](Self::GSO_ECN).
    pub gso_type: u8,
    /// Length of the headers to copy into every segment.
    pub hdr_len: u16,
    /// Payload bytes per segment (0 when not a super-packet).
    pub gso_size: u16,
    /// Offset of the first byte covered by the checksum.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP).
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Size of the encoded header, as set with `TUNSETVNETHDRSZ`.
    pub const LEN: usize = 10;

    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum partial, see the type docs.
    pub const NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: checksum already verified.
    pub const DATA_VALID: u8 = 2;

    /// `VIRTIO_NET_HDR_GSO_NONE`: a plain packet.
    pub const GSO_NONE: u8 = 0;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-packet.
    pub const GSO_TCPV4: u8 = 1;
    /// `VIRTIO_NET_HDR_GSO_UDP`: UDP fragmentation offload.
    pub const GSO_UDP: u8 = 3;
    /// `VIRTIO_NET_HDR_GSO_TCPV6`: a TCP/IPv6 super-packet.
    pub const GSO_TCPV6: u8 = 4;
    /// `VIRTIO_NET_HDR_GSO_ECN`: the TCP header has CWR set (it goes on
    /// the first segment only).
    pub const GSO_ECN: u8 = 0x80;

    /// Offset of the checksum field in a TCP header.
    pub const TCP_CSUM_OFFSET: u16 = 16;

    /// The all-zero header of a plain packet with a complete checksum.
    pub const fn plain() -> VirtioNetHdr {
        VirtioNetHdr {
            flags: 0,
            gso_type: Self::GSO_NONE,
            hdr_len: 0,
            gso_size: 0,
            csum_start: 0,
            csum_offset: 0,
        }
    }

    /// The header of a TCP/IPv4 super-packet: `ip_header_len` + `tcp_header_len`
    /// bytes of headers, `segment_size` payload bytes per segment, the TCP
    /// checksum field holding the pseudo-header sum.
    pub const fn tcpv4_gso(ip_header_len: u16, tcp_header_len: u16, segment_size: u16) -> Self {
        VirtioNetHdr {
            flags: Self::NEEDS_CSUM,
            gso_type: Self::GSO_TCPV4,
            hdr_len: ip_header_len + tcp_header_len,
            gso_size: segment_size,
            csum_start: ip_header_len,
            csum_offset: Self::TCP_CSUM_OFFSET,
        }
    }

    /// The header of a TCP/IPv6 super-packet: `ip_header_len` (40 for a
    /// fixed header with TCP as its next header) + `tcp_header_len` bytes of
    /// headers, `segment_size` payload bytes per segment, the TCP checksum
    /// field holding the IPv6 pseudo-header sum (RFC 8200 8.1).
    pub const fn tcpv6_gso(ip_header_len: u16, tcp_header_len: u16, segment_size: u16) -> Self {
        VirtioNetHdr {
            gso_type: Self::GSO_TCPV6,
            ..Self::tcpv4_gso(ip_header_len, tcp_header_len, segment_size)
        }
    }

    /// Whether the checksum is partial (`NEEDS_CSUM`).
    pub const fn needs_csum(&self) -> bool {
        self.flags & Self::NEEDS_CSUM != 0
    }

    /// Whether the checksum was verified (`DATA_VALID`).
    pub const fn data_valid(&self) -> bool {
        self.flags & Self::DATA_VALID != 0
    }

    /// The GSO type without the ECN bit.
    pub const fn gso_kind(&self) -> u8 {
        self.gso_type & !Self::GSO_ECN
    }

    /// Whether this is a super-packet (any GSO type).
    pub const fn is_gso(&self) -> bool {
        self.gso_kind() != Self::GSO_NONE
    }

    /// The wire form (little-endian fields).
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Parses the first [`LEN`](Self::LEN) bytes; `None` if `bytes` is shorter.
    pub fn decode(bytes: &[u8]) -> Option<VirtioNetHdr> {
        let b: &[u8; Self::LEN] = bytes.get(..Self::LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header_is_all_zero() {
        assert_eq!(VirtioNetHdr::plain().encode(), [0; 10]);
        assert_eq!(VirtioNetHdr::decode(&[0; 10]), Some(VirtioNetHdr::plain()));
        assert!(!VirtioNetHdr::plain().is_gso());
    }

    #[test]
    fn tcpv4_gso_encodes_little_endian() {
        let h = VirtioNetHdr::tcpv4_gso(20, 32, 1448);
        assert_eq!(
            h.encode(),
            [1, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0],
            "flags NEEDS_CSUM, TCPV4, hdr_len 52, gso_size 1448, csum 20+16"
        );
        assert!(h.needs_csum() && !h.data_valid() && h.is_gso());
    }

    #[test]
    fn tcpv6_gso_differs_from_v4_only_in_type() {
        let h = VirtioNetHdr::tcpv6_gso(40, 32, 1428);
        assert_eq!(
            h.encode(),
            [1, 4, 72, 0, 0x94, 0x05, 40, 0, 16, 0],
            "flags NEEDS_CSUM, TCPV6, hdr_len 72, gso_size 1428, csum 40+16"
        );
        assert_eq!(h.gso_kind(), VirtioNetHdr::GSO_TCPV6);
        assert_eq!(
            VirtioNetHdr {
                gso_type: VirtioNetHdr::GSO_TCPV4,
                ..h
            },
            VirtioNetHdr::tcpv4_gso(40, 32, 1428)
        );
    }

    #[test]
    fn decode_round_trips_and_rejects_short_input() {
        let h = VirtioNetHdr {
            flags: VirtioNetHdr::DATA_VALID,
            gso_type: VirtioNetHdr::GSO_TCPV4 | VirtioNetHdr::GSO_ECN,
            hdr_len: 0x1234,
            gso_size: 0xfedc,
            csum_start: 7,
            csum_offset: 0x0100,
        };
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(b"packet");
        assert_eq!(VirtioNetHdr::decode(&bytes), Some(h));
        assert_eq!(h.gso_kind(), VirtioNetHdr::GSO_TCPV4);
        assert!(h.data_valid() && !h.needs_csum());
        assert_eq!(VirtioNetHdr::decode(&bytes[..9]), None);
    }
}
