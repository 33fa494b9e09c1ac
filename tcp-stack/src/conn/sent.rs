//! The sender's log of the segments in flight: for each, its sequence
//! range, when it was last (re)transmitted, and whether the peer SACKed it
//! (RFC 2018 / RFC 6675 scoreboard), whether it is deemed lost (RFC 8985
//! RACK marks, or an RTO) and whether it was ever retransmitted.
//!
//! Records are kept in sequence order and never overlap. Every
//! transmission of new data appends one record (a segment of at most one
//! MSS, or a super-segment); a retransmission updates the records it
//! covers, splitting one at its edges if need be. A cumulative ACK pops
//! records off the front. So in steady state the log is a ring of the
//! segments in flight and allocates nothing (its capacity stays).
//!
//! From it follow RFC 6675 SetPipe (`pipe`), NextSeg (`first_lost`), and
//! the per-segment send times RACK needs (see [`super::rack`]).

use crate::seq::SeqNum;
use crate::time::Instant;
use std::collections::VecDeque;

/// The peer SACKed the whole record.
pub(crate) const SACKED: u8 = 1 << 0;
/// Deemed lost: to be retransmitted, and not counted in the pipe.
pub(crate) const LOST: u8 = 1 << 1;
/// Retransmitted at least once (its ACK is ambiguous: RFC 8985 6.2 step 2).
pub(crate) const RETRANS: u8 = 1 << 2;
/// A D-SACK already reported this retransmission as spurious.
const DSACKED: u8 = 1 << 3;

/// How many retransmitted ranges below SND.UNA are remembered to match
/// D-SACKs against (`SentLog::claim_dsack`); older ones are forgotten,
/// which only makes an undo less likely.
const ACKED_RTX: usize = 16;

/// Splitting stops at this many records, so a peer SACKing every other
/// byte cannot grow the log beyond it; an unsplit record just stays
/// unSACKed (conservative: at worst it is sent again).
const MAX_RECORDS: usize = 1 << 16;

/// When the log empties, a capacity above this is given back.
const KEEP_CAPACITY: usize = 256;

/// One transmitted segment (or what is left of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub start: SeqNum,
    pub end: SeqNum,
    /// Time of the most recent transmission.
    pub xmit: Instant,
    pub flags: u8,
}

impl Sent {
    pub fn len(&self) -> usize {
        self.end.since(self.start)
    }
    pub fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// [`SentLog::mark_lost_where`]'s verdict on one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Lost,
    Keep,
    /// Neither this record nor any later one.
    Stop,
}

/// What the ACK being processed newly delivered, for RACK (RFC 8985 6.2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivered {
    pub xmit: Instant,
    pub end: SeqNum,
    pub flags: u8,
}

#[derive(Debug, Default)]
pub(crate) struct SentLog {
    segs: VecDeque<Sent>,
    /// Retransmitted ranges acknowledged cumulatively since
    /// `forget_retransmissions`, newest at `acked_rtx_next - 1` (a ring;
    /// empty slots are `None`). A D-SACK below SND.UNA is matched here.
    acked_rtx: [Option<(SeqNum, SeqNum)>; ACKED_RTX],
    acked_rtx_next: usize,
    /// Bytes in SACKED records, and how many such records.
    sacked: usize,
    sacked_segs: usize,
    /// Bytes in LOST (and not SACKED) records.
    lost: usize,
}

impl SentLog {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub fn sacked_bytes(&self) -> usize {
        self.sacked
    }

    pub fn sacked_segments(&self) -> usize {
        self.sacked_segs
    }

    pub fn lost_bytes(&self) -> usize {
        self.lost
    }

    #[cfg(test)]
    pub fn records(&self) -> Vec<Sent> {
        self.segs.iter().copied().collect()
    }

    /// Index of the first record ending after `seq`.
    fn first_ending_after(&self, seq: SeqNum) -> usize {
        self.segs.partition_point(|s| s.end.diff(seq) <= 0)
    }

    /// Makes `seq` a record boundary if it falls strictly inside a record.
    fn split_at(&mut self, seq: SeqNum) -> bool {
        let i = self.first_ending_after(seq);
        let Some(&rec) = self.segs.get(i) else {
            return true;
        };
        if rec.start.diff(seq) >= 0 {
            return true;
        }
        if self.segs.len() >= MAX_RECORDS {
            return false;
        }
        self.segs[i].end = seq;
        self.segs.insert(i + 1, Sent { start: seq, ..rec });
        if rec.is(SACKED) {
            self.sacked_segs += 1;
        }
        true
    }

    /// Records a transmission of `[start, end)` at `now`: new data is
    /// appended; a retransmission refreshes the records it covers (no
    /// longer lost, now retransmitted).
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant, retransmission: bool) {
        if end.diff(start) <= 0 {
            return;
        }
        let flags = if retransmission { RETRANS } else { 0 };
        let last_end = match self.segs.back() {
            Some(last) if start.diff(last.end) < 0 => last.end,
            _ => {
                self.segs.push_back(Sent {
                    start,
                    end,
                    xmit: now,
                    flags,
                });
                return;
            }
        };
        if !(self.split_at(start) && self.split_at(end)) {
            return;
        }
        let first = self.first_ending_after(start);
        for rec in self.segs.range_mut(first..) {
            if rec.start.diff(end) >= 0 {
                break;
            }
            if rec.is(LOST) {
                self.lost -= rec.len();
                rec.flags &= !LOST;
            }
            rec.xmit = now;
            // A fresh retransmission: a D-SACK may report this copy.
            rec.flags = (rec.flags | RETRANS) & !DSACKED;
        }
        if end.diff(last_end) > 0 {
            self.segs.push_back(Sent {
                start: last_end,
                end,
                xmit: now,
                flags,
            });
        }
    }

    /// A cumulative ACK up to `ack`: drops what it covers, reporting each
    /// record (or part) delivered by it that was not SACKed before.
    pub fn on_cumulative_ack(&mut self, ack: SeqNum, mut delivered: impl FnMut(Delivered)) {
        while let Some(front) = self.segs.front_mut() {
            if front.start.diff(ack) >= 0 {
                break;
            }
            let partial = front.end.diff(ack) > 0;
            let end = if partial { ack } else { front.end };
            let len = end.since(front.start);
            if front.is(RETRANS) && !front.is(DSACKED) {
                self.acked_rtx[self.acked_rtx_next] = Some((front.start, end));
                self.acked_rtx_next = (self.acked_rtx_next + 1) % ACKED_RTX;
            }
            if front.is(SACKED) {
                self.sacked -= len;
            } else {
                delivered(Delivered {
                    xmit: front.xmit,
                    end,
                    flags: front.flags,
                });
                if front.is(LOST) {
                    self.lost -= len;
                }
            }
            if partial {
                front.start = ack;
                break;
            }
            if front.is(SACKED) {
                self.sacked_segs -= 1;
            }
            self.segs.pop_front();
        }
        if self.segs.is_empty() && self.segs.capacity() > KEEP_CAPACITY {
            self.segs = VecDeque::new();
        }
    }

    /// A SACK block `[left, right)` (RFC 2018): marks the records inside it,
    /// reporting the newly SACKed ones. Blocks outside the log (D-SACKs
    /// below SND.UNA, bogus ones) change nothing. Returns whether anything
    /// new was SACKed.
    pub fn on_sack(
        &mut self,
        left: SeqNum,
        right: SeqNum,
        mut delivered: impl FnMut(Delivered),
    ) -> bool {
        let (Some(first), Some(last)) = (self.segs.front(), self.segs.back()) else {
            return false;
        };
        if right.diff(left) <= 0 || left.diff(first.start) < 0 || right.diff(last.end) > 0 {
            return false;
        }
        if !(self.split_at(left) && self.split_at(right)) {
            return false;
        }
        let mut news = false;
        let from = self.first_ending_after(left);
        for rec in self.segs.range_mut(from..) {
            if rec.start.diff(right) >= 0 {
                break;
            }
            if rec.is(SACKED) {
                continue;
            }
            let len = rec.len();
            if rec.is(LOST) {
                self.lost -= len;
            }
            rec.flags = (rec.flags & !LOST) | SACKED;
            self.sacked += len;
            self.sacked_segs += 1;
            news = true;
            delivered(Delivered {
                xmit: rec.xmit,
                end: rec.end,
                flags: rec.flags & !SACKED,
            });
        }
        news
    }

    /// RFC 2883 / RFC 3708: whether the D-SACK block `[left, right)`
    /// reports a retransmission (as opposed to a copy the network made),
    /// each retransmission counted once. Only such a D-SACK shows that a
    /// retransmission was spurious (Linux counts its undo budget down only
    /// for retransmitted segments).
    pub fn claim_dsack(&mut self, left: SeqNum, right: SeqNum) -> bool {
        let overlaps = |(l, r): (SeqNum, SeqNum)| left.diff(r) < 0 && l.diff(right) < 0;
        for slot in &mut self.acked_rtx {
            if slot.is_some_and(overlaps) {
                *slot = None;
                return true;
            }
        }
        let from = self.first_ending_after(left);
        for rec in self.segs.range_mut(from..) {
            if rec.start.diff(right) >= 0 {
                break;
            }
            if rec.is(RETRANS) && !rec.is(DSACKED) {
                rec.flags |= DSACKED;
                return true;
            }
        }
        false
    }

    /// A new recovery episode: D-SACKs for retransmissions before it no
    /// longer count toward undoing it.
    pub fn forget_retransmissions(&mut self) {
        self.acked_rtx = [None; ACKED_RTX];
        for rec in &mut self.segs {
            rec.flags |= DSACKED;
        }
    }

    /// Forgets every SACK (RFC 2018 8: the receiver may have reneged).
    pub fn clear_sacks(&mut self) {
        for rec in &mut self.segs {
            rec.flags &= !SACKED;
        }
        self.sacked = 0;
        self.sacked_segs = 0;
    }

    /// Walks the records neither SACKed nor already lost, in sequence
    /// order, marking those `f` deems lost (RACK, an RTO) until it says
    /// stop. Returns whether any was newly marked.
    pub fn mark_lost_where(&mut self, mut f: impl FnMut(&Sent) -> Mark) -> bool {
        let mut marked = false;
        for rec in self.segs.iter_mut() {
            if rec.flags & (SACKED | LOST) != 0 {
                continue;
            }
            match f(rec) {
                Mark::Lost => {
                    rec.flags |= LOST;
                    self.lost += rec.len();
                    marked = true;
                }
                Mark::Keep => {}
                Mark::Stop => break,
            }
        }
        marked
    }

    /// RFC 6675 NextSeg rule 1 (with RACK's marks for IsLost): the first
    /// lost range, as `[start, end)`.
    pub fn first_lost(&self) -> Option<(SeqNum, SeqNum)> {
        if self.lost == 0 {
            return None;
        }
        self.segs
            .iter()
            .find(|s| s.is(LOST))
            .map(|s| (s.start, s.end))
    }

    /// Whether `seq` lies in a SACKed record.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.segs
            .get(self.first_ending_after(seq))
            .is_some_and(|s| s.is(SACKED) && s.start.diff(seq) <= 0)
    }

    /// End of the run of SACKed records holding `seq`, if it is SACKed.
    pub fn sacked_run_end(&self, seq: SeqNum) -> Option<SeqNum> {
        let i = self.first_ending_after(seq);
        let first = self.segs.get(i)?;
        if !first.is(SACKED) || first.start.diff(seq) > 0 {
            return None;
        }
        let mut end = first.end;
        for rec in self.segs.range(i + 1..) {
            if !rec.is(SACKED) || rec.start != end {
                break;
            }
            end = rec.end;
        }
        Some(end)
    }

    /// Start of the first SACKed record beginning after `seq`.
    pub fn next_sacked_after(&self, seq: SeqNum) -> Option<SeqNum> {
        if self.sacked == 0 {
            return None;
        }
        self.segs
            .range(self.first_ending_after(seq)..)
            .find(|s| s.is(SACKED) && s.start.diff(seq) > 0)
            .map(|s| s.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNum {
        SeqNum(n)
    }
    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }
    fn log_of(n: u32) -> SentLog {
        let mut log = SentLog::default();
        for i in 0..n {
            log.on_send(s(100 * i), s(100 * (i + 1)), t(u64::from(i)), false);
        }
        log
    }

    #[test]
    fn sends_append_and_acks_pop() {
        let mut log = log_of(4);
        assert_eq!(log.records().len(), 4);
        let mut got = Vec::new();
        log.on_cumulative_ack(s(150), |d| got.push(d.end));
        assert_eq!(got, vec![s(100), s(150)], "a partial ACK delivers the part");
        assert_eq!(log.records()[0].start, s(150));
        log.on_cumulative_ack(s(400), |d| got.push(d.end));
        assert!(log.is_empty());
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn sack_marks_splits_and_ignores_bogus_blocks() {
        let mut log = log_of(5);
        let mut got = Vec::new();
        assert!(log.on_sack(s(150), s(300), |d| got.push(d.end)));
        // 100..200 split at 150: 150..200 and 200..300 are SACKed.
        assert_eq!(got, vec![s(200), s(300)]);
        assert_eq!(log.sacked_bytes(), 150);
        assert_eq!(log.sacked_segments(), 2);
        assert!(!log.on_sack(s(200), s(300), |_| panic!("nothing new")));
        assert!(!log.on_sack(s(400), s(600), |_| {}), "beyond SND.MAX");
        assert!(!log.on_sack(s(300), s(300), |_| {}), "empty");
        assert!(log.is_sacked(s(150)) && log.is_sacked(s(299)) && !log.is_sacked(s(300)));
        assert_eq!(log.sacked_run_end(s(170)), Some(s(300)));
        assert_eq!(log.sacked_run_end(s(120)), None);
        assert_eq!(log.next_sacked_after(s(0)), Some(s(150)));
        // The cumulative ACK over SACKed data delivers nothing new.
        let mut again = Vec::new();
        log.on_cumulative_ack(s(300), |d| again.push(d.end));
        assert_eq!(again, vec![s(100), s(150)]);
        assert_eq!(log.sacked_bytes(), 0);
        assert_eq!(log.sacked_segments(), 0);
    }

    #[test]
    fn retransmission_clears_lost_and_refreshes_time() {
        let mut log = log_of(3);
        assert!(log.mark_lost_where(|_| Mark::Lost));
        assert_eq!(log.lost_bytes(), 300);
        assert_eq!(log.first_lost(), Some((s(0), s(100))));
        log.on_send(s(0), s(50), t(10), true);
        let r = log.records();
        assert_eq!((r[0].start, r[0].end, r[0].xmit), (s(0), s(50), t(10)));
        assert!(r[0].is(RETRANS) && !r[0].is(LOST));
        assert!(r[1].is(LOST) && !r[1].is(RETRANS));
        assert_eq!(log.lost_bytes(), 250);
        assert_eq!(log.first_lost(), Some((s(50), s(100))));
        // A retransmission running past the log's end appends the rest.
        log.on_send(s(250), s(350), t(11), true);
        assert_eq!(log.records().last().unwrap().end, s(350));
        // Still lost: 50..100, 100..200 and 200..250.
        assert_eq!(log.lost_bytes(), 200);
        // SACK of a lost record takes it out of the lost count.
        log.on_sack(s(50), s(100), |_| {});
        assert_eq!(log.lost_bytes(), 150);
        log.clear_sacks();
        assert_eq!(log.sacked_bytes(), 0);
    }

    #[test]
    fn splitting_is_bounded() {
        let mut log = SentLog::default();
        log.on_send(s(0), s(1 << 20), t(0), false);
        let mut i = 0u32;
        while i < (1 << 20) {
            log.on_sack(s(i + 1), s(i + 2), |_| {});
            i += 4;
        }
        assert!(log.records().len() <= MAX_RECORDS);
    }
}
