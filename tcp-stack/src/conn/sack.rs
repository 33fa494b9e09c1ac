//! The sender's SACK scoreboard (RFC 2018, RFC 6675 section 4).
//!
//! Holds what the peer reported as received above SND.UNA, as sorted,
//! disjoint `[start, end)` ranges. From it follow the loss estimate
//! (IsLost), the bytes in the network (SetPipe) and the next hole to
//! retransmit (NextSeg).

use crate::seq::SeqNum;

/// RFC 6675 2: DupThresh.
pub(crate) const DUP_THRESH: usize = 3;

#[derive(Debug, Default, Clone)]
pub(crate) struct Scoreboard {
    ranges: Vec<(SeqNum, SeqNum)>,
}

impl Scoreboard {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Records a SACK block if it lies within `(snd_una, snd_max]`; others
    /// (D-SACK below SND.UNA, or bogus) are ignored (RFC 2018 / RFC 2883).
    /// Returns whether the block added new information.
    pub fn add(&mut self, left: SeqNum, right: SeqNum, snd_una: SeqNum, snd_max: SeqNum) -> bool {
        if right.diff(left) <= 0 || left.diff(snd_una) < 0 || right.diff(snd_max) > 0 {
            return false;
        }
        // Bound memory: a sender never has more ranges than segments in
        // flight; a malicious peer cannot grow this beyond half the
        // sequence span it was sent, and we cap it outright.
        let before: usize = self.sacked_bytes();
        let mut l = left;
        let mut r = right;
        let mut i = 0;
        while i < self.ranges.len() {
            let (a, b) = self.ranges[i];
            if b.diff(l) < 0 {
                i += 1;
                continue;
            }
            if a.diff(r) > 0 {
                break;
            }
            // Overlapping or adjacent: merge.
            l = l.min(a);
            r = r.max(b);
            self.ranges.remove(i);
        }
        if self.ranges.len() >= 1024 {
            return false;
        }
        self.ranges.insert(i, (l, r));
        self.sacked_bytes() != before
    }

    /// Forgets everything at or below SND.UNA.
    pub fn advance(&mut self, snd_una: SeqNum) {
        self.ranges.retain(|&(_, b)| b.diff(snd_una) > 0);
        if let Some(first) = self.ranges.first_mut() {
            if first.0.diff(snd_una) < 0 {
                first.0 = snd_una;
            }
        }
    }

    /// End of the SACKed range holding `seq`, if any.
    pub fn range_end_containing(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges
            .iter()
            .find(|&&(a, b)| seq.diff(a) >= 0 && seq.diff(b) < 0)
            .map(|&(_, b)| b)
    }

    /// Start of the first SACKed range beginning after `seq`.
    pub fn next_start_after(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges
            .iter()
            .map(|&(a, _)| a)
            .find(|a| a.diff(seq) > 0)
    }

    /// Whether `seq` has been SACKed.
    pub fn contains(&self, seq: SeqNum) -> bool {
        self.ranges
            .iter()
            .any(|&(a, b)| seq.diff(a) >= 0 && seq.diff(b) < 0)
    }

    pub fn sacked_bytes(&self) -> usize {
        self.ranges.iter().map(|&(a, b)| b.since(a)).sum()
    }

    /// The highest sequence number below which every unSACKed byte counts as
    /// lost: RFC 6675 IsLost(S) holds when DupThresh discontiguous SACKed
    /// ranges lie above S, or more than (DupThresh - 1) * SMSS SACKed bytes.
    pub fn lost_limit(&self, snd_una: SeqNum, mss: usize) -> SeqNum {
        let mut bytes = 0;
        for (count, &(a, b)) in self.ranges.iter().rev().enumerate() {
            bytes += b.since(a);
            if count + 1 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss {
                return a;
            }
        }
        snd_una
    }

    /// RFC 6675 SetPipe: unSACKed bytes not deemed lost, plus retransmitted
    /// bytes (below HighRxt) still unSACKed.
    pub fn pipe(&self, snd_una: SeqNum, snd_max: SeqNum, high_rxt: SeqNum, lost: SeqNum) -> usize {
        let unsacked_in = |lo: SeqNum, hi: SeqNum| -> usize {
            if hi.diff(lo) <= 0 {
                return 0;
            }
            let total = hi.since(lo);
            let sacked: usize = self
                .ranges
                .iter()
                .map(|&(a, b)| b.min(hi).since(a.max(lo)))
                .sum();
            total.saturating_sub(sacked)
        };
        unsacked_in(lost.max(snd_una), snd_max) + unsacked_in(snd_una, high_rxt.min(lost))
    }

    /// RFC 6675 NextSeg rule 1: the first unSACKed byte at or after `from`
    /// and below `limit` (the lost limit); returns the hole `[start, end)`.
    pub fn next_hole(&self, from: SeqNum, limit: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let mut start = from;
        for &(a, b) in &self.ranges {
            if start.diff(limit) >= 0 {
                return None;
            }
            if start.diff(a) < 0 {
                return Some((start, a.min(limit)));
            }
            if start.diff(b) < 0 {
                start = b;
            }
        }
        (start.diff(limit) < 0).then_some((start, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 100;

    fn s(n: u32) -> SeqNum {
        SeqNum(n)
    }

    #[test]
    fn add_merges_and_ignores_bogus_blocks() {
        let mut sb = Scoreboard::default();
        assert!(sb.add(s(200), s(300), s(100), s(1000)));
        assert!(sb.add(s(300), s(400), s(100), s(1000)));
        assert!(!sb.add(s(250), s(350), s(100), s(1000)), "no new info");
        assert!(
            !sb.add(s(50), s(90), s(100), s(1000)),
            "D-SACK below SND.UNA"
        );
        assert!(!sb.add(s(900), s(1100), s(100), s(1000)), "beyond SND.MAX");
        assert!(!sb.add(s(500), s(500), s(100), s(1000)), "empty");
        assert_eq!(sb.ranges, vec![(s(200), s(400))]);
        assert!(sb.add(s(600), s(700), s(100), s(1000)));
        assert_eq!(sb.ranges.len(), 2);
        sb.advance(s(250));
        assert_eq!(sb.ranges[0], (s(250), s(400)));
        sb.advance(s(700));
        assert!(sb.is_empty());
    }

    #[test]
    fn lost_limit_needs_three_ranges_or_enough_bytes() {
        let mut sb = Scoreboard::default();
        sb.add(s(200), s(300), s(100), s(2000));
        assert_eq!(sb.lost_limit(s(100), MSS), s(100));
        sb.add(s(400), s(500), s(100), s(2000));
        assert_eq!(sb.lost_limit(s(100), MSS), s(100));
        sb.add(s(600), s(700), s(100), s(2000));
        // Three discontiguous ranges above 100..200: that hole is lost.
        assert_eq!(sb.lost_limit(s(100), MSS), s(200));
        let mut big = Scoreboard::default();
        big.add(s(200), s(500), s(100), s(2000));
        // 300 bytes > 2 * MSS SACKed above: everything below 200 is lost.
        assert_eq!(big.lost_limit(s(100), MSS), s(200));
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_plus_retransmitted() {
        let mut sb = Scoreboard::default();
        for (a, b) in [(200, 300), (400, 500), (600, 700)] {
            sb.add(s(a), s(b), s(100), s(1000));
        }
        // Lost: 100..200; not lost: 300..400, 500..600, 700..1000.
        let lost = sb.lost_limit(s(100), MSS);
        assert_eq!(sb.pipe(s(100), s(1000), s(100), lost), 100 + 100 + 300);
        // After retransmitting 100..200 it is in flight again.
        assert_eq!(sb.pipe(s(100), s(1000), s(200), lost), 600);
    }

    #[test]
    fn next_hole_walks_unsacked_ranges_below_limit() {
        let mut sb = Scoreboard::default();
        for (a, b) in [(200, 300), (400, 500), (600, 700)] {
            sb.add(s(a), s(b), s(100), s(1000));
        }
        let limit = s(600);
        assert_eq!(sb.next_hole(s(100), limit), Some((s(100), s(200))));
        assert_eq!(sb.next_hole(s(200), limit), Some((s(300), s(400))));
        assert_eq!(sb.next_hole(s(450), limit), Some((s(500), s(600))));
        assert_eq!(sb.next_hole(s(600), limit), None);
    }
}
