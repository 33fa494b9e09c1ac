//! A small seeded pseudo-random number generator.
//!
//! The core must be deterministic (see the crate docs), so all randomness
//! (ISN secret key, ephemeral ports, simulator impairments) is drawn from an
//! [`Rng`] seeded from [`Config::seed`](crate::Config::seed). The generator is
//! xoshiro256** (Blackman and Vigna, "Scrambled Linear Pseudorandom Number
//! Generators", 2018) with its 256-bit state expanded from the 64-bit seed by
//! splitmix64, as its authors recommend. It is fast and statistically good,
//! but **not** cryptographically secure: an observer of enough outputs can
//! recover the state. RFC 6528 only needs the ISN key to be unguessable by an
//! off-path attacker, so seed it from a real entropy source in production.

/// xoshiro256** seeded by splitmix64. Same seed, same sequence, on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64 (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 is a bijection on its counter, so four consecutive
        // outputs are never all zero (the one state xoshiro must avoid).
        debug_assert!(s != [0; 4]);
        Rng { s }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// The next 32 uniformly distributed bits (the high half of [`next_u64`](Self::next_u64),
    /// which are the better-mixed bits).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[lo, hi)`; returns `lo` if `hi <= lo`.
    ///
    /// Unbiased: uses Lemire's widening-multiply method with rejection
    /// ("Fast Random Integer Generation in an Interval", 2019).
    pub fn gen_range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        // Reject the low products that would make some outputs more likely.
        let threshold = span.wrapping_neg() % span;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(span);
            if (m as u64) >= threshold {
                return lo + (m >> 64) as u64;
            }
        }
    }

    /// `true` with probability `p` (`p <= 0` (or NaN) never, `p >= 1` always).
    pub fn gen_bool(&mut self, p: f64) -> bool {
        // NaN counts as "never".
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // 53 random bits give a uniform float in [0, 1) on the f64 grid.
        let x = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        x < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let bytes = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&bytes[..rest.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference() {
        // Reference outputs of splitmix64 for seed 0 (from the published C code).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn xoshiro256starstar_matches_reference() {
        // With state {1, 2, 3, 4} the reference implementation yields these.
        let mut r = Rng { s: [1, 2, 3, 4] };
        let expected = [11520u64, 0, 1509978240, 1215971899390074240];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(43);
        let mut a = Rng::new(42);
        let same = (0..100).filter(|_| a.next_u64() == c.next_u64()).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn seed_zero_is_usable() {
        let mut r = Rng::new(0);
        let v: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert!(v.iter().all(|&x| x != 0));
        assert!(v.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn next_u32_is_high_half() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u32(), (b.next_u64() >> 32) as u32);
        }
    }

    #[test]
    fn gen_range_bounds_and_empty() {
        let mut r = Rng::new(1);
        assert_eq!(r.gen_range(5, 5), 5);
        assert_eq!(r.gen_range(9, 3), 9);
        assert_eq!(r.gen_range(7, 8), 7);
        for _ in 0..10_000 {
            let x = r.gen_range(10, 20);
            assert!((10..20).contains(&x));
        }
        for _ in 0..1000 {
            let x = r.gen_range(u64::MAX - 3, u64::MAX);
            assert!((u64::MAX - 3..u64::MAX).contains(&x));
        }
        // The full range minus one does not loop forever.
        let _ = r.gen_range(0, u64::MAX);
    }

    #[test]
    fn gen_range_is_roughly_uniform() {
        let mut r = Rng::new(2);
        let mut counts = [0u32; 6];
        let n = 60_000;
        for _ in 0..n {
            counts[r.gen_range(0, 6) as usize] += 1;
        }
        for c in counts {
            // Expected 10_000 each; 5 sigma is about 456.
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn gen_bool_edges_and_rate() {
        let mut r = Rng::new(3);
        for _ in 0..1000 {
            assert!(!r.gen_bool(0.0));
            assert!(!r.gen_bool(-1.0));
            assert!(!r.gen_bool(f64::NAN));
            assert!(r.gen_bool(1.0));
            assert!(r.gen_bool(2.0));
        }
        let hits = (0..100_000).filter(|_| r.gen_bool(0.25)).count();
        // Expected 25_000; sigma is about 137.
        assert!((24_300..25_700).contains(&hits), "{hits}");
    }

    #[test]
    fn fill_covers_every_length() {
        for len in 0..40 {
            let mut a = Rng::new(9);
            let mut buf = vec![0u8; len];
            a.fill(&mut buf);
            // The bytes are the little-endian words of the same stream.
            let mut b = Rng::new(9);
            let mut expect = Vec::new();
            while expect.len() < len {
                expect.extend_from_slice(&b.next_u64().to_le_bytes());
            }
            assert_eq!(buf, expect[..len]);
        }
        let mut r = Rng::new(10);
        let mut big = [0u8; 256];
        r.fill(&mut big);
        assert!(big.iter().filter(|&&b| b == 0).count() < 16);
    }
}
