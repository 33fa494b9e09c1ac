//! Out-of-order reassembly bookkeeping for the receive side.
//!
//! RFC 9293 3.10.7.4: segments that are not the next expected one but fall in
//! the receive window "should be held for later processing"; RFC 9293 3.4
//! ("the receiver ... may keep segments that are ahead") and RFC 2018 (SACK)
//! need to know which byte ranges beyond RCV.NXT are already held. This type
//! only tracks *which* bytes are present; the receive buffer stores them.
//!
//! Offsets are relative to RCV.NXT: offset 0 is the next expected byte. The
//! ranges live in a sorted `Vec` of non-overlapping, non-adjacent half-open
//! intervals, so every range is separated from the next by a hole of at
//! least one byte. There is no fixed limit on the number of holes; the
//! caller bounds it by only accepting bytes within its receive window.

/// Which bytes beyond RCV.NXT have been received, as sorted disjoint ranges.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    /// `(start, end)` half-open, ascending, `start < end`, and
    /// `ranges[i].1 < ranges[i + 1].0` (never touching).
    ranges: Vec<(usize, usize)>,
    /// The bytes of the most recent non-empty [`add`](Assembler::add), shifted
    /// along with the ranges and clipped at 0; `None` once all of them have
    /// been popped or advanced past.
    last: Option<(usize, usize)>,
}

impl Assembler {
    /// An assembler holding no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that bytes `[offset, offset+len)` were received (may
    /// overlap/merge with existing ranges). `len` 0 is a no-op.
    ///
    /// A range that would extend past `usize::MAX` is truncated there.
    pub fn add(&mut self, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        let start = offset;
        let end = offset.saturating_add(len);
        if start == end {
            return;
        }
        // First range that overlaps or touches [start, end) from the left...
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        // ...and the first range entirely (and non-adjacently) to its right.
        let j = self.ranges.partition_point(|&(s, _)| s <= end);
        if i < j {
            let merged = (start.min(self.ranges[i].0), end.max(self.ranges[j - 1].1));
            self.ranges.splice(i..j, core::iter::once(merged));
        } else {
            self.ranges.insert(i, (start, end));
        }
        self.last = Some((start, end));
    }

    /// If a range starts at offset 0, removes it and returns its length,
    /// shifting every other range down by that much; else 0.
    ///
    /// The caller then advances RCV.NXT by the returned amount (RFC 9293
    /// 3.10.7.4: queued segments that are now in order are processed).
    pub fn pop_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.ranges.remove(0);
                self.shift_down(end);
                end
            }
            _ => 0,
        }
    }

    /// Shifts every range down by `n` (RCV.NXT advanced by `n` bytes that
    /// arrived in order); ranges (or parts) below 0 are dropped.
    pub fn advance(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let keep_from = self.ranges.partition_point(|&(_, e)| e <= n);
        self.ranges.drain(..keep_from);
        self.shift_down(n);
    }

    /// Subtracts `n` from every range (clipping at 0) and from `last`. The
    /// caller has already removed every range lying entirely below `n`.
    fn shift_down(&mut self, n: usize) {
        for r in &mut self.ranges {
            r.0 = r.0.saturating_sub(n);
            r.1 -= n;
        }
        self.last = match self.last {
            Some((s, e)) if e > n => Some((s.saturating_sub(n), e - n)),
            _ => None,
        };
    }

    /// No out-of-order bytes are held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of ranges (holes + 1 when the first range does not start at 0).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Ranges as `(start, end)` offsets, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().copied()
    }

    /// Total number of bytes held in all ranges.
    pub fn total_bytes(&self) -> usize {
        self.ranges.iter().map(|&(s, e)| e - s).sum()
    }

    /// Whether byte `offset` has been received.
    pub fn contains(&self, offset: usize) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e <= offset);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= offset)
    }

    /// The range holding byte `offset`, if it was received.
    pub fn range_containing(&self, offset: usize) -> Option<(usize, usize)> {
        let i = self.ranges.partition_point(|&(_, e)| e <= offset);
        self.ranges.get(i).copied().filter(|&(s, _)| s <= offset)
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.last = None;
    }

    /// The range containing the most recently added bytes (for RFC 2018 4:
    /// first SACK block must contain the most recent segment), if still
    /// present.
    ///
    /// RFC 2018 4: "The first SACK block (i.e., the one immediately following
    /// the kind and length fields in the option) MUST specify the contiguous
    /// block of data containing the segment which triggered this ACK".
    pub fn last_added(&self) -> Option<(usize, usize)> {
        let (s, _) = self.last?;
        self.range_containing(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.iter().collect()
    }

    #[test]
    fn empty() {
        let mut a = Assembler::new();
        assert!(a.is_empty());
        assert_eq!(a.len(), 0);
        assert_eq!(a.pop_front(), 0);
        assert_eq!(a.last_added(), None);
        a.add(5, 0);
        assert!(a.is_empty());
        assert_eq!(a.last_added(), None);
        a.advance(10);
        assert!(a.is_empty());
    }

    #[test]
    fn disjoint_ranges_stay_sorted() {
        let mut a = Assembler::new();
        a.add(20, 5);
        a.add(5, 5);
        a.add(40, 1);
        assert_eq!(ranges(&a), [(5, 10), (20, 25), (40, 41)]);
        assert_eq!(a.len(), 3);
        assert_eq!(a.total_bytes(), 11);
        assert_eq!(a.pop_front(), 0);
    }

    #[test]
    fn adjacent_ranges_merge() {
        let mut a = Assembler::new();
        a.add(10, 5);
        a.add(15, 5); // touches on the right
        a.add(5, 5); // touches on the left
        assert_eq!(ranges(&a), [(5, 20)]);
    }

    #[test]
    fn overlapping_ranges_merge() {
        let mut a = Assembler::new();
        a.add(10, 10);
        a.add(30, 10);
        a.add(50, 10);
        a.add(15, 40); // spans three ranges and the holes between them
        assert_eq!(ranges(&a), [(10, 60)]);
        a.add(0, 3);
        a.add(12, 2); // fully inside
        assert_eq!(ranges(&a), [(0, 3), (10, 60)]);
        a.add(3, 7); // fills the hole exactly
        assert_eq!(ranges(&a), [(0, 60)]);
    }

    #[test]
    fn pop_front_shifts_the_rest() {
        let mut a = Assembler::new();
        a.add(0, 4);
        a.add(10, 2);
        a.add(20, 3);
        assert_eq!(a.pop_front(), 4);
        assert_eq!(ranges(&a), [(6, 8), (16, 19)]);
        assert_eq!(a.pop_front(), 0);
        assert_eq!(ranges(&a), [(6, 8), (16, 19)]);
    }

    #[test]
    fn advance_drops_and_clips() {
        let mut a = Assembler::new();
        a.add(2, 3); // [2,5)
        a.add(8, 4); // [8,12)
        a.add(20, 1);
        a.advance(10);
        assert_eq!(ranges(&a), [(0, 2), (10, 11)]);
        a.advance(2); // exactly the end of the first range
        assert_eq!(ranges(&a), [(8, 9)]);
        a.advance(100);
        assert!(a.is_empty());
    }

    #[test]
    fn in_order_arrival_then_pop() {
        // The usual receive path: a hole is filled by the in-order segment;
        // the caller advances past it, then pops what became contiguous.
        let mut a = Assembler::new();
        a.add(100, 50);
        a.advance(100);
        assert_eq!(a.pop_front(), 50);
        assert!(a.is_empty());
    }

    #[test]
    fn add_near_usize_max_saturates() {
        let mut a = Assembler::new();
        a.add(usize::MAX - 2, 10);
        assert_eq!(ranges(&a), [(usize::MAX - 2, usize::MAX)]);
        a.add(usize::MAX, 1); // empty after truncation
        assert_eq!(a.len(), 1);
        a.advance(usize::MAX);
        assert!(a.is_empty());
    }

    #[test]
    fn contains_and_clear() {
        let mut a = Assembler::new();
        a.add(3, 2);
        assert!(!a.contains(2));
        assert!(a.contains(3) && a.contains(4));
        assert!(!a.contains(5));
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.last_added(), None);
    }

    #[test]
    fn last_added_tracks_most_recent_segment() {
        // RFC 2018 4: the first SACK block contains the triggering segment.
        let mut a = Assembler::new();
        a.add(10, 5);
        a.add(30, 5);
        assert_eq!(a.last_added(), Some((30, 35)));
        a.add(10, 2); // duplicate data still counts as most recent
        assert_eq!(a.last_added(), Some((10, 15)));
        a.add(15, 15); // bridges both ranges
        assert_eq!(a.last_added(), Some((10, 35)));
        a.add(50, 5);
        a.advance(5);
        assert_eq!(a.last_added(), Some((45, 50)));
        a.advance(47); // part of the last segment remains
        assert_eq!(a.last_added(), Some((0, 3)));
        assert_eq!(a.pop_front(), 3);
        assert_eq!(a.last_added(), None);
    }

    #[test]
    fn last_added_survives_popping_other_ranges() {
        let mut a = Assembler::new();
        a.add(0, 5);
        a.add(10, 5);
        assert_eq!(a.pop_front(), 5);
        assert_eq!(a.last_added(), Some((5, 10)));
        a.add(3, 1);
        a.advance(4);
        assert_eq!(a.last_added(), None);
        assert_eq!(ranges(&a), [(1, 6)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        Pop,
        Advance(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..200, 0usize..40).prop_map(|(o, l)| Op::Add(o, l)),
            1 => Just(Op::Pop),
            1 => (0usize..60).prop_map(Op::Advance),
        ]
    }

    /// Bitmap model: the set of received offsets, plus the offsets of the
    /// last added segment.
    #[derive(Default)]
    struct Model {
        bytes: BTreeSet<usize>,
        last: BTreeSet<usize>,
    }

    impl Model {
        fn shift(&mut self, n: usize) {
            self.bytes = self
                .bytes
                .iter()
                .filter(|&&b| b >= n)
                .map(|b| b - n)
                .collect();
            self.last = self
                .last
                .iter()
                .filter(|&&b| b >= n)
                .map(|b| b - n)
                .collect();
        }

        fn ranges(&self) -> Vec<(usize, usize)> {
            let mut out: Vec<(usize, usize)> = Vec::new();
            for &b in &self.bytes {
                match out.last_mut() {
                    Some(r) if r.1 == b => r.1 += 1,
                    _ => out.push((b, b + 1)),
                }
            }
            out
        }
    }

    proptest! {
        #[test]
        fn matches_bitmap_model(ops in prop::collection::vec(op(), 0..60)) {
            let mut a = Assembler::new();
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Add(o, l) => {
                        a.add(o, l);
                        if l > 0 {
                            m.bytes.extend(o..o + l);
                            m.last = (o..o + l).collect();
                        }
                    }
                    Op::Pop => {
                        let mut n = 0;
                        while m.bytes.contains(&n) {
                            n += 1;
                        }
                        prop_assert_eq!(a.pop_front(), n);
                        m.shift(n);
                    }
                    Op::Advance(n) => {
                        a.advance(n);
                        m.shift(n);
                    }
                }
                let got = ranges(&a);
                let want = m.ranges();
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(a.len(), want.len());
                prop_assert_eq!(a.is_empty(), want.is_empty());
                prop_assert_eq!(a.total_bytes(), m.bytes.len());
                // Invariants: non-empty, ascending, never touching.
                for r in &got {
                    prop_assert!(r.0 < r.1);
                }
                for w in got.windows(2) {
                    prop_assert!(w[0].1 < w[1].0);
                }
                let want_last = m.last.first().and_then(|&b| {
                    want.iter().copied().find(|&(s, e)| s <= b && b < e)
                });
                prop_assert_eq!(a.last_added(), want_last);
                for probe in 0..250 {
                    prop_assert_eq!(a.contains(probe), m.bytes.contains(&probe));
                }
            }
        }
    }
}
