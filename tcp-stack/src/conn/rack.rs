//! RACK: time-based loss detection (RFC 8985 6).
//!
//! A segment is deemed lost once a segment sent *after* it has been
//! delivered and a reordering window has passed since: "lost" follows from
//! send times, not from counting duplicate ACKs. So a lost retransmission is
//! found like any other loss (no RTO needed), and reordering shorter than
//! the window causes no retransmission at all. The window adapts: zero until
//! reordering is seen (so it acts like DupThresh), then a quarter of the
//! minimum RTT, widened per round trip that brings D-SACKs (6.2 step 4).

use super::sent::{Delivered, Mark, SentLog, RETRANS};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 6675 2: DupThresh (RFC 8985 6.2 step 4 uses it before reordering is seen).
pub(crate) const DUP_THRESH: usize = 3;

/// How many recoveries a widened reordering window outlives (RFC 8985 6.2).
const REO_WND_PERSIST: u32 = 16;

/// The RACK state of one connection (RFC 8985 6.1).
#[derive(Debug)]
pub(crate) struct Rack {
    /// Send time and end of the most recently sent segment delivered so far.
    xmit_ts: Option<Instant>,
    end_seq: SeqNum,
    /// RTT of that segment.
    rtt: Duration,
    /// Smallest unambiguous RACK.rtt, at microsecond precision (the
    /// timestamp-based estimator only has milliseconds).
    min_rtt: Option<Duration>,
    /// Highest end of a delivered segment (RACK.fack), and its candidate
    /// from the ACK being processed.
    fack: Option<SeqNum>,
    fack_this_ack: Option<SeqNum>,
    reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// D-SACKs widen the window at most once per round trip: until SND.UNA passes this.
    dsack_round: Option<SeqNum>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            xmit_ts: None,
            end_seq: SeqNum(0),
            rtt: Duration::ZERO,
            min_rtt: None,
            fack: None,
            fack_this_ack: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
        }
    }
}

/// RFC 8985 6.2: `RACK_sent_after(t1, seq1, t2, seq2)`.
fn sent_after(t1: Instant, seq1: SeqNum, t2: Instant, seq2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && seq1.diff(seq2) > 0)
}

impl Rack {
    #[cfg(test)]
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    #[cfg(test)]
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// RFC 8985 6.2 steps 2 and 3 for one newly delivered segment.
    /// `echo` is the ACK's TSecr on our clock in milliseconds, if any.
    pub fn on_delivered(&mut self, now: Instant, echo: Option<u32>, seg: Delivered) {
        let rtt = now.saturating_duration_since(seg.xmit);
        // Step 2: a retransmitted segment's ACK may be for the original;
        // take it only if the timestamp echoes the retransmission or the
        // RTT is plausible.
        let ambiguous = seg.flags & RETRANS != 0
            && (echo
                .is_some_and(|ms| (ms.wrapping_sub(seg.xmit.total_millis() as u32) as i32) < 0)
                || self.min_rtt.is_some_and(|m| rtt < m));
        if !ambiguous {
            self.rtt = rtt;
            if self.min_rtt.is_none_or(|m| rtt < m) {
                self.min_rtt = Some(rtt);
            }
            let newer = match self.xmit_ts {
                None => true,
                Some(t) => sent_after(seg.xmit, seg.end, t, self.end_seq),
            };
            if newer {
                self.xmit_ts = Some(seg.xmit);
                self.end_seq = seg.end;
            }
        }
        // Step 3: a segment delivered below the highest one delivered
        // before this ACK, never retransmitted, arrived out of order.
        match self.fack {
            Some(f) if seg.end.diff(f) < 0 && seg.flags & RETRANS == 0 => {
                self.reordering_seen = true;
            }
            _ => {}
        }
        if self.fack_this_ack.is_none_or(|f| seg.end.diff(f) > 0) {
            self.fack_this_ack = Some(seg.end);
        }
    }

    /// Ends the processing of one ACK: RACK.fack moves up, and step 4's
    /// bookkeeping of D-SACK rounds runs.
    pub fn end_ack(&mut self, dsack: bool, snd_una: SeqNum, snd_nxt: SeqNum, left_recovery: bool) {
        if let Some(f) = self.fack_this_ack.take() {
            if self.fack.is_none_or(|old| f.diff(old) > 0) {
                self.fack = Some(f);
            }
        }
        if self.dsack_round.is_some_and(|r| snd_una.diff(r) >= 0) {
            self.dsack_round = None;
        }
        if dsack && self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult += 1;
            self.reo_wnd_persist = REO_WND_PERSIST;
            // A D-SACK for a retransmission shows it was spurious: the
            // original was late, i.e. the path reorders (Linux counts
            // undone recoveries as reordering too).
            self.reordering_seen = true;
        } else if left_recovery {
            self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 6.2 step 4: the reordering window.
    pub fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segments: usize,
        srtt: Option<Duration>,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let Some(min_rtt) = self.min_rtt else {
            return Duration::ZERO;
        };
        let wnd = min_rtt * self.reo_wnd_mult / 4;
        // Capped at SRTT; but SRTT from 1 ms timestamp ticks can read 0 on
        // a fast path, so never below RACK's own (microsecond) min RTT,
        // which it cannot undercut when exact.
        srtt.map_or(wnd, |s| wnd.min(s.max(min_rtt)))
    }

    /// RFC 8985 6.2 step 5: marks as lost every unSACKed segment sent
    /// before the most recently delivered one by more than RACK.rtt +
    /// `reo_wnd`. Returns whether any was newly marked, and when the
    /// others sent before it will be overdue (for the reordering timer).
    pub fn detect_loss(
        &self,
        log: &mut SentLog,
        now: Instant,
        reo_wnd: Duration,
    ) -> (bool, Option<Instant>) {
        let Some(rack_ts) = self.xmit_ts else {
            return (false, None);
        };
        let mut timeout: Option<Instant> = None;
        let wait = self.rtt + reo_wnd;
        let newly_lost = log.mark_lost_where(|rec| {
            if !sent_after(rack_ts, self.end_seq, rec.xmit, rec.end) {
                // Sent after the newest delivered segment: not lost yet. Past
                // the first such original transmission every later record was
                // sent later still (new data goes out in sequence order, and a
                // retransmission is later than its original), so stop there.
                return if rec.flags & RETRANS != 0 {
                    Mark::Keep
                } else {
                    Mark::Stop
                };
            }
            let due = rec.xmit + wait;
            if due <= now {
                Mark::Lost
            } else {
                // RFC 8985: the timer waits for the last of them, so
                // they are marked together.
                timeout = Some(timeout.map_or(due, |t| t.max(due)));
                Mark::Keep
            }
        });
        (newly_lost, timeout)
    }

    /// RFC 8985 6.3 `RACK_mark_losses_on_RTO`: the segment at SND.UNA, and
    /// every one already overdue, is lost.
    pub fn mark_losses_on_rto(
        &self,
        log: &mut SentLog,
        snd_una: SeqNum,
        now: Instant,
        reo_wnd: Duration,
    ) {
        let wait = self.rtt + reo_wnd;
        log.mark_lost_where(|rec| {
            if rec.start.diff(snd_una) <= 0 || rec.xmit + wait <= now {
                Mark::Lost
            } else {
                Mark::Keep
            }
        });
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

    /// Five 100-byte segments sent 1 ms apart from t = 0.
    fn setup() -> (Rack, SentLog) {
        let mut log = SentLog::default();
        for i in 0..5u32 {
            log.on_send(s(100 * i), s(100 * (i + 1)), t(u64::from(i)), false);
        }
        (Rack::default(), log)
    }

    fn sack(rack: &mut Rack, log: &mut SentLog, now: Instant, l: u32, r: u32) {
        log.on_sack(s(l), s(r), |d| rack.on_delivered(now, None, d));
        rack.end_ack(false, s(0), s(500), false);
    }

    #[test]
    fn later_delivery_marks_earlier_segments_lost_after_the_window() {
        let (mut rack, mut log) = setup();
        // Segment 2 (sent at 2 ms) SACKed at 12 ms: RACK.rtt = 10 ms.
        sack(&mut rack, &mut log, t(12), 200, 300);
        let wnd = Duration::from_millis(2);
        // Segments 0 and 1 were sent 2 and 1 ms earlier: overdue at
        // 0 + 10 + 2 = 12 ms and 1 + 10 + 2 = 13 ms. The timer waits for the last.
        assert_eq!(rack.detect_loss(&mut log, t(12), wnd), (true, Some(t(13))));
        assert_eq!(log.first_lost(), Some((s(0), s(100))));
        assert_eq!(log.lost_bytes(), 100);
        assert_eq!(rack.detect_loss(&mut log, t(13), wnd), (true, None));
        assert_eq!(log.lost_bytes(), 200);
        // Segments 3 and 4 were sent after segment 2: never lost by it.
        assert_eq!(rack.detect_loss(&mut log, t(100), wnd), (false, None));
    }

    #[test]
    fn a_lost_retransmission_is_detected_without_a_timeout() {
        let (mut rack, mut log) = setup();
        sack(&mut rack, &mut log, t(12), 100, 200);
        assert!(rack.detect_loss(&mut log, t(12), Duration::ZERO).0);
        // Segment 0 retransmitted at 12 ms; segment 5 goes out at 13 ms.
        log.on_send(s(0), s(100), t(12), true);
        log.on_send(s(500), s(600), t(13), false);
        assert_eq!(log.lost_bytes(), 0);
        // Segment 5 is SACKed at 23 ms but the retransmission is not: lost again.
        sack(&mut rack, &mut log, t(23), 500, 600);
        assert!(rack.detect_loss(&mut log, t(23), Duration::ZERO).0);
        assert_eq!(log.first_lost(), Some((s(0), s(100))));
    }

    #[test]
    fn reordering_is_learnt_and_widens_the_window() {
        let (mut rack, mut log) = setup();
        sack(&mut rack, &mut log, t(12), 300, 400);
        assert!(!rack.reordering_seen());
        // Segment 1, never retransmitted, arrives after segment 3: reordering.
        sack(&mut rack, &mut log, t(13), 100, 200);
        assert!(rack.reordering_seen());
        let min = rack.min_rtt().unwrap();
        assert_eq!(min, Duration::from_millis(9));
        // With reordering seen the window is min_rtt / 4 even in recovery...
        assert_eq!(rack.reo_wnd(true, 5, None), min / 4);
        // ... and each round trip with D-SACKs widens it, up to SRTT.
        rack.end_ack(true, s(0), s(500), false);
        assert_eq!(rack.reo_wnd(true, 5, None), min * 2 / 4);
        rack.end_ack(true, s(0), s(500), false);
        assert_eq!(rack.reo_wnd(true, 5, None), min * 2 / 4, "same round");
        rack.end_ack(true, s(500), s(600), false);
        assert_eq!(rack.reo_wnd(true, 5, None), min * 3 / 4);
        // An SRTT read as 0 (1 ms timestamp ticks) does not close it.
        assert_eq!(rack.reo_wnd(true, 5, Some(Duration::ZERO)), min * 3 / 4);
        // Two more rounds: 5/4 min_rtt = 11.25 ms, capped at SRTT.
        rack.end_ack(true, s(600), s(700), false);
        rack.end_ack(true, s(700), s(800), false);
        assert_eq!(
            rack.reo_wnd(true, 5, Some(Duration::from_millis(10))),
            Duration::from_millis(10)
        );
        // It shrinks back after REO_WND_PERSIST recoveries without D-SACKs.
        for _ in 0..REO_WND_PERSIST {
            rack.end_ack(false, s(800), s(800), true);
        }
        assert_eq!(rack.reo_wnd(true, 5, None), min / 4);
    }

    #[test]
    fn without_reordering_the_window_closes_like_dupthresh() {
        let rack = Rack {
            min_rtt: Some(Duration::from_millis(8)),
            ..Rack::default()
        };
        assert_eq!(rack.reo_wnd(false, 2, None), Duration::from_millis(2));
        assert_eq!(rack.reo_wnd(false, DUP_THRESH, None), Duration::ZERO);
        assert_eq!(rack.reo_wnd(true, 0, None), Duration::ZERO);
    }

    #[test]
    fn an_ambiguous_retransmission_ack_is_not_a_sample() {
        let (mut rack, mut log) = setup();
        sack(&mut rack, &mut log, t(12), 100, 200);
        log.on_send(s(0), s(100), t(20), true);
        // The ACK at 21 ms echoes TSval 0 ms: it acknowledges the original.
        log.on_cumulative_ack(s(100), |d| rack.on_delivered(t(21), Some(0), d));
        assert_eq!(rack.rtt, Duration::from_millis(11));
        // One echoing the retransmission is taken...
        log.on_send(s(200), s(300), t(30), true);
        log.on_cumulative_ack(s(300), |d| rack.on_delivered(t(42), Some(30), d));
        assert_eq!(rack.rtt, Duration::from_millis(12));
        assert_eq!(rack.xmit_ts, Some(t(30)));
        // ... unless its RTT is below the minimum (the original's ACK).
        log.on_send(s(300), s(400), t(50), true);
        log.on_cumulative_ack(s(400), |d| rack.on_delivered(t(55), Some(50), d));
        assert_eq!(rack.rtt, Duration::from_millis(12));
        assert_eq!(rack.xmit_ts, Some(t(30)));
    }

    #[test]
    fn rto_marks_the_head_and_overdue_segments() {
        let (mut rack, mut log) = setup();
        sack(&mut rack, &mut log, t(12), 400, 500);
        rack.mark_losses_on_rto(&mut log, s(0), t(13), Duration::ZERO);
        // RACK.rtt = 8 ms: the four unSACKed segments, sent at 0..=3 ms, are
        // all overdue at 13 ms.
        assert_eq!(log.lost_bytes(), 400);
        let (rack, mut log) = setup();
        rack.mark_losses_on_rto(&mut log, s(0), t(1), Duration::ZERO);
        // No RACK sample: RACK.rtt is zero, so segments 0 and 1 (sent at or before 1 ms).
        assert_eq!(log.lost_bytes(), 200);
    }
}
