//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 3.4).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number with wrapping arithmetic.
///
/// Comparison follows RFC 9293 3.4 ("all arithmetic dealing with sequence
/// numbers must be performed modulo 2**32"): `a < b` iff `(b - a) mod 2^32`
/// lies in `1..2^31`. This is not a total order over all of `u32`, so the type
/// implements `PartialOrd` only; numbers exactly 2^31 apart are unordered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The raw value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Signed distance `self - other` as an `i32` (positive if `self` is after `other`).
    pub const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self - other` as a byte count, or 0 if `other` is after `self`.
    pub fn since(self, other: SeqNum) -> usize {
        let d = self.diff(other);
        if d > 0 {
            d as usize
        } else {
            0
        }
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }

    /// `lo <= self < hi` modulo 2^32 (the RFC 9293 window test).
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        self.0.wrapping_sub(lo.0) < hi.0.wrapping_sub(lo.0)
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        let d = self.diff(*other);
        if d == 0 {
            Some(Ordering::Equal)
        } else if d == i32::MIN {
            None
        } else if d > 0 {
            Some(Ordering::Greater)
        } else {
            Some(Ordering::Less)
        }
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: usize) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNum {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<usize> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: usize) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs as u32))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        let a = SeqNum(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNum(2));
        assert!(a < b);
        assert_eq!(b.diff(a), 4);
        assert_eq!(b.since(a), 4);
        assert_eq!(a.since(b), 0);
        assert!(SeqNum(1).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert!(!SeqNum(5).in_range(SeqNum(5), SeqNum(5)));
    }

    proptest! {
        #[test]
        fn add_then_diff_roundtrips(a in any::<u32>(), n in 0u32..(1 << 31)) {
            let s = SeqNum(a);
            prop_assert_eq!((s + n as usize).diff(s), n as i32);
            if n > 0 { prop_assert!(s < s + n as usize); }
        }

        #[test]
        fn order_is_antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            let (x, y) = (SeqNum(a), SeqNum(b));
            prop_assert_eq!(x.partial_cmp(&y).map(|o| o.reverse()), y.partial_cmp(&x));
        }
    }
}
