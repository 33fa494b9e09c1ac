//! The virtio-net header of an outgoing super-packet, from the header
//! layout the core reports ([`TxHeaders`]), and software completion of a
//! partial checksum at the offsets a received header gives. Shared by the
//! TUN, TAP and AF_PACKET devices; nothing here parses a packet.

use super::{RxChecksum, RxPacket, TxHeaders};
use std::sync::atomic::{AtomicU64, Ordering};
use tcp_stack::wire::checksum;
use tcp_tun::VirtioNetHdr;

/// Smallest TCP header (no options).
const MIN_TCP_LEN: u8 = 20;

/// The virtio-net header for a TCP super-packet of `packet_len` bytes laid
/// out as `headers` says, cut into parts of `segment_size` payload bytes:
/// `GSO_TCPV4`/`GSO_TCPV6`, `NEEDS_CSUM` at the TCP checksum, `csum_start`
/// and `hdr_len` counted from the start of the frame (link header
/// included), `GSO_ECN` when CWR is set. `None` if `headers` describes no
/// TCP header, or more header bytes than the packet holds.
pub(crate) fn gso_header(
    headers: TxHeaders,
    segment_size: u16,
    packet_len: usize,
) -> Option<VirtioNetHdr> {
    if headers.tcp_len < MIN_TCP_LEN || headers.ip_len == 0 || segment_size == 0 {
        return None;
    }
    let start = u16::from(headers.link_len).checked_add(headers.ip_len)?;
    let tcp_len = u16::from(headers.tcp_len);
    if usize::from(start) + usize::from(tcp_len) > packet_len {
        return None;
    }
    let mut hdr = if headers.ipv6 {
        VirtioNetHdr::tcpv6_gso(start, tcp_len, segment_size)
    } else {
        VirtioNetHdr::tcpv4_gso(start, tcp_len, segment_size)
    };
    if headers.cwr {
        hdr.gso_type |= VirtioNetHdr::GSO_ECN;
    }
    Some(hdr)
}

/// The parts a super-packet sent with `hdr` becomes.
pub(crate) fn segments(hdr: &VirtioNetHdr, packet_len: usize) -> u64 {
    let payload = packet_len.saturating_sub(usize::from(hdr.hdr_len));
    payload.div_ceil(usize::from(hdr.gso_size.max(1))) as u64
}

/// What a received packet's virtio-net header says of its checksum.
pub(crate) fn rx_checksum(hdr: &VirtioNetHdr) -> RxChecksum {
    if hdr.needs_csum() {
        RxChecksum::Partial
    } else if hdr.data_valid() {
        RxChecksum::Verified
    } else {
        RxChecksum::Unverified
    }
}

/// The metadata of a `len`-byte packet received after `hdr`, for
/// `poll_recv_meta`; a partial checksum is counted in `partial`.
pub(crate) fn rx_packet(hdr: &VirtioNetHdr, len: usize, partial: &AtomicU64) -> RxPacket {
    let checksum = rx_checksum(hdr);
    if checksum == RxChecksum::Partial {
        partial.fetch_add(1, Ordering::Relaxed);
    }
    RxPacket { len, checksum }
}

/// For a plain `poll_recv`, which delivers complete checksums: completes
/// the checksum of a received packet whose header says it is partial.
pub(crate) fn complete_rx(hdr: &VirtioNetHdr, packet: &mut [u8]) {
    if hdr.needs_csum() {
        complete_partial_checksum(packet, hdr.csum_start, hdr.csum_offset);
    }
}

/// Completes a partial checksum (`NEEDS_CSUM`) in software: the sum from
/// `start` to the end, with the pseudo-header sum already in the field at
/// `start + offset`, complemented (what a NIC does on transmit). The
/// offsets come from the sender's virtio-net header (or the core's
/// [`TxHeaders`]); out-of-range offsets leave the packet alone (the stack
/// then drops it as corrupt).
pub(crate) fn complete_partial_checksum(packet: &mut [u8], start: u16, offset: u16) {
    let start = usize::from(start);
    let field = start + usize::from(offset);
    if field + 2 > packet.len() {
        return;
    }
    let sum = checksum::checksum(&packet[start..]);
    packet[field..field + 2].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(tcp_len: u8, cwr: bool) -> TxHeaders {
        TxHeaders {
            link_len: 0,
            ip_len: 20,
            ipv6: false,
            tcp_len,
            cwr,
        }
    }

    #[test]
    fn gso_header_from_header_lengths() {
        let h = gso_header(v4(32, false), 1448, 5052).unwrap();
        assert_eq!(h, VirtioNetHdr::tcpv4_gso(20, 32, 1448));
        assert_eq!(
            (h.hdr_len, h.csum_start, h.csum_offset, h.gso_size),
            (52, 20, 16, 1448)
        );
        assert_eq!(h.flags, VirtioNetHdr::NEEDS_CSUM);
        assert_eq!(segments(&h, 5052), 4);
        let cwr = gso_header(v4(32, true), 1448, 5052).unwrap();
        assert_eq!(
            cwr.gso_type,
            VirtioNetHdr::GSO_TCPV4 | VirtioNetHdr::GSO_ECN
        );
    }

    #[test]
    fn gso_header_for_ipv6_uses_the_fixed_header() {
        let headers = TxHeaders {
            ip_len: 40,
            ipv6: true,
            ..v4(32, false)
        };
        let h = gso_header(headers, 1428, 5072).unwrap();
        assert_eq!(h, VirtioNetHdr::tcpv6_gso(40, 32, 1428));
        assert_eq!(
            (h.gso_type, h.hdr_len, h.csum_start, h.csum_offset),
            (VirtioNetHdr::GSO_TCPV6, 72, 40, 16)
        );
        let cwr = gso_header(
            TxHeaders {
                cwr: true,
                ..headers
            },
            1428,
            5072,
        )
        .unwrap();
        assert_eq!(
            cwr.gso_type,
            VirtioNetHdr::GSO_TCPV6 | VirtioNetHdr::GSO_ECN
        );
    }

    #[test]
    fn gso_header_counts_the_link_header() {
        let eth = TxHeaders {
            link_len: 14,
            ..v4(20, false)
        };
        let h = gso_header(eth, 1460, 3000).unwrap();
        assert_eq!((h.csum_start, h.hdr_len), (34, 54));
    }

    #[test]
    fn gso_header_refuses_what_is_not_a_tcp_super_packet() {
        // Not TCP, no IP header, a header longer than the packet, size 0.
        assert_eq!(gso_header(v4(0, false), 1448, 5000), None);
        assert_eq!(gso_header(v4(16, false), 1448, 5000), None);
        assert_eq!(
            gso_header(
                TxHeaders {
                    ip_len: 0,
                    ..v4(20, false)
                },
                1448,
                5000
            ),
            None
        );
        assert_eq!(gso_header(v4(32, false), 1448, 51), None);
        assert_eq!(gso_header(v4(32, false), 0, 5000), None);
        assert_eq!(gso_header(TxHeaders::default(), 1448, 0), None);
        let huge = TxHeaders {
            link_len: 255,
            ip_len: u16::MAX,
            ..v4(60, false)
        };
        assert_eq!(gso_header(huge, 1448, 100), None);
    }
}
