//! The Internet checksum (RFC 1071), computed fast.
//!
//! RFC 1071 1: the checksum is the 16-bit one's complement of the one's
//! complement sum of the data taken as big-endian 16-bit words. One's
//! complement addition is associative and commutative, and "end-around carry"
//! makes it independent of the word size used for summing (RFC 1071 2(B),
//! "parallel summation"): we add 64-bit big-endian chunks into a 64-bit
//! accumulator, feed every carry out of bit 63 back into bit 0, and fold the
//! result to 16 bits at the end. Because 2^16 - 1 divides 2^64 - 1 the folded
//! value equals the 16-bit one's complement sum.
//!
//! Partial sums returned by [`sum`], [`combine`], [`pseudo_header`],
//! [`pseudo_header_v6`] and [`pseudo_header_ip`] are always folded to at most `0xFFFF`, so callers may add a few of them with
//! plain `+` without overflowing `u32` (and [`finish`] folds again anyway).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One's-complement addition on 64 bits: the carry out is added back in
/// (RFC 1071 2(A), "end-around carry").
#[inline(always)]
fn add_carry(acc: u64, x: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(x);
    s + u64::from(carry)
}

/// Folds a 64-bit one's complement sum to 16 bits (RFC 1071 2(C) "deferred
/// carries": add the carries back until none is left).
#[inline]
fn fold64(mut s: u64) -> u32 {
    // 64 -> 33 bits, then repeatedly 32 -> 17 -> 16.
    s = (s & 0xFFFF_FFFF) + (s >> 32);
    s = (s & 0xFFFF_FFFF) + (s >> 32);
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    s as u32
}

/// One's-complement sum of `data` as big-endian 16-bit words, not folded or
/// complemented. An odd final byte is padded with zero. Sums of pieces can be
/// combined with [`combine`] only if every piece but the last has even length.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;

    // Main loop: 32 bytes per iteration with four independent accumulators so
    // the carry chains do not serialize; each 8-byte chunk is read as one
    // big-endian u64 (four 16-bit words at once).
    let mut big = data.chunks_exact(32);
    let (mut a0, mut a1, mut a2, mut a3) = (0u64, 0u64, 0u64, 0u64);
    for c in &mut big {
        a0 = add_carry(a0, be64(&c[0..8]));
        a1 = add_carry(a1, be64(&c[8..16]));
        a2 = add_carry(a2, be64(&c[16..24]));
        a3 = add_carry(a3, be64(&c[24..32]));
    }
    acc = add_carry(acc, a0);
    acc = add_carry(acc, a1);
    acc = add_carry(acc, a2);
    acc = add_carry(acc, a3);

    let mut chunks = big.remainder().chunks_exact(8);
    for c in &mut chunks {
        acc = add_carry(acc, be64(c));
    }

    // Tail of 0..=7 bytes. Word alignment is preserved because everything
    // consumed so far had a length that is a multiple of 8.
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc = add_carry(acc, u64::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = words.remainder() {
        // RFC 1071 1: an odd byte is padded on the right with zero.
        acc = add_carry(acc, u64::from(*last) << 8);
    }

    fold64(acc)
}

#[inline(always)]
fn be64(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(c);
    u64::from_be_bytes(b)
}

/// Adds two partial sums.
pub fn combine(a: u32, b: u32) -> u32 {
    fold64(u64::from(a) + u64::from(b))
}

/// Folds a partial sum to 16 bits and complements it: the value to put in a
/// checksum field.
pub fn finish(sum: u32) -> u16 {
    !(fold64(u64::from(sum)) as u16)
}

/// The checksum of `data` (`finish(sum(data))`). A buffer that contains its own
/// correct checksum yields 0.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 9293 3.1) for TCP/UDP.
///
/// RFC 9293 3.1: the 96-bit pseudo-header is source address, destination
/// address, a zero byte, the protocol number and the TCP length (header plus
/// data, not counting the pseudo-header).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u32::from_be_bytes(s))
        + u64::from(u32::from_be_bytes(d))
        + u64::from(protocol)
        + u64::from(length);
    fold64(acc)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 8.1) for TCP, UDP and
/// ICMPv6 (RFC 4443 2.3).
///
/// RFC 8200 8.1: the pseudo-header is the 128-bit source address, the 128-bit
/// destination address, the 32-bit upper-layer packet length, three zero
/// bytes and the Next Header value of the upper-layer protocol (not of an
/// extension header). `length` is that upper-layer length (header plus data);
/// `dst` is the final destination, not an intermediate routing-header hop.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let mut acc = 0u64;
    for half in [&s[..8], &s[8..], &d[..8], &d[8..]] {
        acc = add_carry(acc, be64(half));
    }
    // The length and next-header words: a 32-bit value sums as its two 16-bit
    // halves because 2^16 = 1 modulo 2^16 - 1.
    acc = add_carry(acc, u64::from(length));
    acc = add_carry(acc, u64::from(next_header));
    fold64(acc)
}

/// The pseudo-header partial sum for either family: [`pseudo_header`] for two
/// IPv4 addresses, [`pseudo_header_v6`] for two IPv6 addresses.
///
/// Mixed families are the caller's bug (no datagram carries one of each); the
/// result is then still defined and nothing panics: the IPv4 address is
/// taken as its IPv4-mapped IPv6 address (RFC 4291 2.5.5.2) and the IPv6
/// pseudo-header is summed.
pub fn pseudo_header_ip(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header(s, d, protocol, length),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, protocol, length),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), protocol, length),
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook RFC 1071 implementation: 16 bits at a time, fold at the end.
    fn reference_sum(data: &[u8]) -> u32 {
        let mut acc: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u64::from(data[i]) << 8 | u64::from(data[i + 1]);
            i += 2;
        }
        if i < data.len() {
            acc += u64::from(data[i]) << 8;
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        acc as u32
    }

    fn reference_checksum(data: &[u8]) -> u16 {
        !(reference_sum(data) as u16)
    }

    #[test]
    fn rfc1071_section3_example_sum_is_ddf2() {
        // RFC 1071 3 ("Numerical Examples"): bytes 00 01 f2 03 f4 f5 f6 f7
        // sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2u16);
    }

    #[test]
    fn empty_and_zero_inputs() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xFFFF);
        assert_eq!(checksum(&[0; 7]), 0xFFFF);
    }

    #[test]
    fn odd_length_pads_last_byte_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        // 9 bytes: one 8-byte chunk plus an odd byte.
        let data = [0xff; 9];
        assert_eq!(sum(&data), reference_sum(&data));
    }

    #[test]
    fn carries_wrap_around_on_all_ones() {
        // Many 0xFFFF words must sum to 0xFFFF (negative zero), never to 0.
        for n in [2usize, 8, 31, 32, 33, 64, 1000, 1001] {
            let data = vec![0xFF; n];
            assert_eq!(sum(&data), reference_sum(&data), "len {n}");
        }
    }

    #[test]
    fn pseudo_header_matches_byte_layout() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(10, 1, 255, 254);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6]);
        bytes.extend_from_slice(&1460u16.to_be_bytes());
        assert_eq!(pseudo_header(src, dst, 6, 1460), reference_sum(&bytes));
    }

    /// The RFC 8200 8.1 layout written out: src, dst, 32-bit length, three
    /// zero bytes, next header.
    fn v6_pseudo_bytes(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, len: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, nh]);
        bytes
    }

    #[test]
    fn pseudo_header_v6_known_answer() {
        // RFC 8200 8.1 by hand: fe80::1 -> ff02::1, ICMPv6 (58), length 8.
        // Words: fe80 + 0001 + ff02 + 0001 + 0000 + 0008 + 0000 + 003a
        // = 0x1fdc6, folded 0xfdc6 + 1 = 0xfdc7.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(pseudo_header_v6(src, dst, 58, 8), 0xfdc7);
        // An ICMPv6 echo request (RFC 4443 4.1), ident 0x1234, seq 1, no
        // data: 8000 + 0000 + 1234 + 0001 = 0x9235; with the pseudo-header
        // 0xfdc7 + 0x9235 = 0x18ffc -> 0x8ffd; the checksum is !0x8ffd = 0x7002.
        let msg = [0x80, 0, 0, 0, 0x12, 0x34, 0, 1];
        let got = finish(combine(pseudo_header_v6(src, dst, 58, 8), sum(&msg)));
        assert_eq!(got, 0x7002);
        assert_eq!(
            got,
            reference_checksum(&[v6_pseudo_bytes(src, dst, 58, 8), msg.to_vec()].concat())
        );
    }

    #[test]
    fn pseudo_header_v6_large_length_uses_all_32_bits() {
        // RFC 8200 8.1: the length is 32 bits (jumbograms, RFC 2675).
        let a = Ipv6Addr::UNSPECIFIED;
        assert_eq!(pseudo_header_v6(a, a, 6, 0x0001_0000), 1 + 6);
        assert_eq!(pseudo_header_v6(a, a, 0, 0x0002_fffd), 0xffff);
    }

    #[test]
    fn pseudo_header_ip_dispatches_by_family() {
        let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let (s6, d6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(
            pseudo_header_ip(s4.into(), d4.into(), 6, 40),
            pseudo_header(s4, d4, 6, 40)
        );
        assert_eq!(
            pseudo_header_ip(s6.into(), d6.into(), 6, 40),
            pseudo_header_v6(s6, d6, 6, 40)
        );
        // Mixed families: defined (IPv4-mapped), never a panic.
        assert_eq!(
            pseudo_header_ip(s4.into(), d6.into(), 6, 40),
            pseudo_header_v6(s4.to_ipv6_mapped(), d6, 6, 40)
        );
        assert_eq!(
            pseudo_header_ip(s6.into(), d4.into(), 6, 40),
            pseudo_header_v6(s6, d4.to_ipv6_mapped(), 6, 40)
        );
    }

    #[test]
    fn buffer_with_its_own_checksum_sums_to_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0, 0, 0xab];
        let c = checksum(&data);
        data[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }

    proptest! {
        #[test]
        fn sum_matches_reference_for_random_lengths(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
            prop_assert_eq!(checksum(&data), reference_checksum(&data));
        }

        #[test]
        fn sum_is_independent_of_slice_alignment(data in proptest::collection::vec(any::<u8>(), 1..600), skip in 0usize..8) {
            let skip = skip.min(data.len());
            let s = &data[skip..];
            prop_assert_eq!(sum(s), reference_sum(s));
        }

        #[test]
        fn combine_of_even_split_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..1500), split in 0usize..1500) {
            let split = (split.min(data.len())) & !1;
            let (a, b) = data.split_at(split);
            prop_assert_eq!(finish(combine(sum(a), sum(b))), checksum(&data));
        }

        #[test]
        fn pseudo_header_v6_matches_reference(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(), len in any::<u32>()) {
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let bytes = v6_pseudo_bytes(s, d, nh, len);
            let got = pseudo_header_v6(s, d, nh, len);
            prop_assert!(got <= 0xFFFF);
            prop_assert_eq!(finish(got), finish(reference_sum(&bytes)));
        }

        #[test]
        fn pseudo_header_matches_reference(src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(), len in any::<u16>()) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src.to_be_bytes());
            bytes.extend_from_slice(&dst.to_be_bytes());
            bytes.extend_from_slice(&[0, proto]);
            bytes.extend_from_slice(&len.to_be_bytes());
            let got = pseudo_header(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, u32::from(len));
            prop_assert_eq!(finish(got), finish(reference_sum(&bytes)));
        }
    }
}
