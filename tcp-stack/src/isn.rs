//! Initial sequence numbers (RFC 6528, as required by RFC 9293 3.4.1).
//!
//! RFC 6528 3: "ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//! where M is the 4 microsecond timer, and F() is a pseudorandom function
//! (PRF) of the connection-id." F must not be computable from the outside,
//! so it is a keyed hash (SipHash-2-4, Aumasson and Bernstein 2012, as in
//! Linux) over the connection 4-tuple with a secret key drawn once per stack.
//!
//! The clock component keeps successive incarnations of the same 4-tuple
//! moving forward through the sequence space (RFC 9293 3.4.1: the ISN
//! generator "is bound to a (possibly fictitious) 32-bit clock whose low-order
//! bit is incremented roughly every 4 microseconds"), while the per-tuple
//! offset makes ISNs of unrelated connections unpredictable to an off-path
//! attacker (RFC 6528 1, 3).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::rng::Rng;
use crate::seq::SeqNum;
use crate::time::Instant;

/// One SipRound: the ARX permutation of the four state words.
#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// SipHash-2-4 of `data` under the 128-bit `key` (the 64-bit output, read as
/// a little-endian word, as in the reference implementation).
pub fn siphash24(key: [u8; 16], data: &[u8]) -> u64 {
    let k0 = le_u64(&key[..8]);
    let k1 = le_u64(&key[8..]);
    // Initialisation: the key XORed with "somepseudorandomlygeneratedbytes".
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];

    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let m = le_u64(block);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }

    // Last block: the remaining 0..=7 bytes, with the message length mod 256
    // in the top byte.
    let tail = blocks.remainder();
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let m = le_u64(&last) | ((data.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= m;

    // Finalisation: four rounds.
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Generates RFC 6528 initial sequence numbers from a secret key.
///
/// The key is drawn from the stack's seeded [`Rng`] once; `Debug` does not
/// print it.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsnGenerator")
            .field("key", &"<secret>")
            .finish()
    }
}

impl IsnGenerator {
    /// A generator with a 128-bit secret key drawn from `rng` (RFC 6528 3:
    /// F() takes a secret key that must not be guessable from outside; RFC
    /// 9293 3.4.1 MUST-9: "F() MUST NOT be computable from the outside").
    /// Draw it once per stack, at start-up.
    pub fn new(rng: &mut Rng) -> IsnGenerator {
        let mut key = [0u8; 16];
        rng.fill(&mut key);
        IsnGenerator { key }
    }

    /// A generator with an explicit key (tests, or a key from a real entropy source).
    pub fn with_key(key: [u8; 16]) -> IsnGenerator {
        IsnGenerator { key }
    }

    /// The ISN for a connection from `local` to `remote` at time `now`.
    ///
    /// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport,
    /// secretkey), M = `now` in units of 4 microseconds (wrapping mod 2^32),
    /// F = the low 32 bits of SipHash-2-4 over the tuple (addresses and
    /// ports in network byte order: 12 bytes for IPv4, 36 for IPv6).
    pub fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> SeqNum {
        let m = (now.total_micros() / 4) as u32;
        SeqNum(m.wrapping_add(self.offset(local, remote)))
    }

    /// F(): the per-connection-id offset, independent of time.
    fn offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        siphash24(self.key, tuple_bytes(local, remote).as_slice()) as u32
    }
}

/// A 4-tuple as bytes: see [`tuple_bytes`].
pub(crate) struct TupleBytes {
    buf: [u8; 36],
    len: usize,
}

impl TupleBytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The 4-tuple as bytes (each address then its port, network byte
/// order: 12 bytes for IPv4, 36 for IPv6), the message keyed hashes of a
/// connection start from. Mixed families cannot form a connection; they
/// hash as written.
pub(crate) fn tuple_bytes(local: SocketAddr, remote: SocketAddr) -> TupleBytes {
    let mut t = TupleBytes {
        buf: [0u8; 36],
        len: 0,
    };
    for a in [local, remote] {
        match a.ip() {
            IpAddr::V4(ip) => {
                t.buf[t.len..t.len + 4].copy_from_slice(&ip.octets());
                t.len += 4;
            }
            IpAddr::V6(ip) => {
                t.buf[t.len..t.len + 16].copy_from_slice(&ip.octets());
                t.len += 16;
            }
        }
        t.buf[t.len..t.len + 2].copy_from_slice(&a.port().to_be_bytes());
        t.len += 2;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    const KEY: [u8; 16] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ];

    fn msg(len: usize) -> Vec<u8> {
        (0..len as u8).collect()
    }

    /// Published SipHash-2-4 reference vectors (the `vectors.h` of the
    /// reference implementation; key 00..0f, message 00 01 .. len-1), given
    /// as the 8 output bytes, which are the little-endian encoding of the u64.
    #[test]
    fn siphash24_reference_vectors() {
        let vectors: [(usize, [u8; 8]); 8] = [
            (0, [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]),
            (1, [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74]),
            (2, [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d]),
            (3, [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85]),
            (7, [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab]),
            (8, [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93]),
            (9, [0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e]),
            (15, [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]),
        ];
        for (len, out) in vectors {
            assert_eq!(
                siphash24(KEY, &msg(len)),
                u64::from_le_bytes(out),
                "len {len}"
            );
        }
        // The same vector as the paper's appendix prints it.
        assert_eq!(siphash24(KEY, &msg(15)), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn siphash24_key_and_data_sensitive() {
        let mut other = KEY;
        other[15] ^= 1;
        assert_ne!(siphash24(KEY, b"abc"), siphash24(other, b"abc"));
        assert_ne!(siphash24(KEY, b"abc"), siphash24(KEY, b"abd"));
        // The length byte distinguishes trailing zeros.
        assert_ne!(siphash24(KEY, &[0]), siphash24(KEY, &[0, 0]));
    }

    fn a(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::from(ip).into(), port)
    }

    #[test]
    fn isn_advances_with_the_4us_clock() {
        let g = IsnGenerator::with_key(KEY);
        let (l, r) = (a([10, 0, 0, 1], 40000), a([10, 0, 0, 2], 80));
        let t0 = Instant::from_micros(1_000_000);
        let base = g.isn(t0, l, r);
        // Same tuple, same time: same ISN.
        assert_eq!(g.isn(t0, l, r), base);
        // Less than one tick later: unchanged.
        assert_eq!(g.isn(Instant::from_micros(1_000_003), l, r), base);
        for elapsed in [4u64, 8, 1000, 4_000_000, 123_456_789] {
            let later = g.isn(Instant::from_micros(1_000_000 + elapsed), l, r);
            assert_eq!(later.diff(base), (elapsed / 4) as i32, "{elapsed}");
            assert!(later > base);
        }
    }

    #[test]
    fn isn_clock_wraps_mod_2_32() {
        let g = IsnGenerator::with_key(KEY);
        let (l, r) = (a([10, 0, 0, 1], 1), a([10, 0, 0, 2], 2));
        let period = 4u64 << 32; // 2^32 ticks of 4 us: about 4.77 hours
        let t = Instant::from_micros(12_345);
        assert_eq!(
            g.isn(t, l, r),
            g.isn(Instant::from_micros(12_345 + period), l, r)
        );
        // Huge instants do not panic.
        let _ = g.isn(Instant::MAX, l, r);
    }

    #[test]
    fn isn_differs_between_tuples() {
        let g = IsnGenerator::with_key(KEY);
        let now = Instant::from_micros(777);
        let l = a([192, 168, 1, 1], 5000);
        let r = a([192, 168, 1, 2], 443);
        let variants = [
            (l, r),
            (r, l), // direction matters
            (a([192, 168, 1, 1], 5001), r),
            (l, a([192, 168, 1, 2], 444)),
            (a([192, 168, 1, 3], 5000), r),
            (l, a([192, 168, 1, 4], 443)),
            // Same bytes shuffled between address and port fields.
            (a([192, 168, 1, 1], 5000), a([192, 168, 2, 1], 443)),
        ];
        let isns: BTreeSet<u32> = variants
            .iter()
            .map(|&(l, r)| g.isn(now, l, r).get())
            .collect();
        assert_eq!(isns.len(), variants.len());

        // Many consecutive local ports: no collisions among 1000 32-bit values
        // (birthday chance about 1e-4).
        let many: BTreeSet<u32> = (0..1000u16)
            .map(|p| g.isn(now, a([10, 0, 0, 1], 30000 + p), r).get())
            .collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn isn_differs_between_keys() {
        let mut rng = Rng::new(1);
        let g1 = IsnGenerator::new(&mut rng);
        let g2 = IsnGenerator::new(&mut rng);
        let g3 = IsnGenerator::new(&mut Rng::new(2));
        let (l, r) = (a([10, 0, 0, 1], 40000), a([10, 0, 0, 2], 80));
        let now = Instant::ZERO;
        let x = [g1.isn(now, l, r), g2.isn(now, l, r), g3.isn(now, l, r)];
        assert_ne!(x[0], x[1]);
        assert_ne!(x[0], x[2]);
        assert_ne!(x[1], x[2]);
        // Deterministic: the same seed yields the same key and ISN.
        let g1_again = IsnGenerator::new(&mut Rng::new(1));
        assert_eq!(g1_again.isn(now, l, r), x[0]);
    }

    #[test]
    fn debug_hides_the_key() {
        let g = IsnGenerator::with_key([0xab; 16]);
        let s = format!("{g:?}");
        assert!(!s.contains("171") && !s.contains("ab"), "{s}");
    }
}
