//! Congestion control behind a trait, so controllers other than NewReno
//! (CUBIC, ...) can plug in later.
//!
//! # Division of labour
//! The connection owns loss detection and recovery (duplicate ACK counting,
//! SACK scoreboard, RFC 6582 NewReno partial-ACK handling, Karn's rule); it
//! tells the controller *what happened* and reads back [`window`] and
//! [`ssthresh`]. The recovery-time window adjustments (RFC 5681 3.2 steps 4
//! and 6 inflation, RFC 6582 3.2 step 5 deflation) are applied by the caller
//! through [`set_window`].
//!
//! All quantities are bytes. SMSS is the sender MSS given to the constructor
//! or [`set_mss`].
//!
//! [`window`]: CongestionController::window
//! [`ssthresh`]: CongestionController::ssthresh
//! [`set_window`]: CongestionController::set_window
//! [`set_mss`]: CongestionController::set_mss

mod cubic;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

use crate::config::CongestionControl;
use crate::time::{Duration, Instant};

/// A congestion control algorithm for one connection.
pub trait CongestionController: core::fmt::Debug + Send {
    /// Congestion window in bytes.
    fn window(&self) -> usize;
    /// Slow start threshold in bytes (`usize::MAX` until the first congestion
    /// event: RFC 5681 3.1, "The initial value of ssthresh SHOULD be set
    /// arbitrarily high").
    fn ssthresh(&self) -> usize;
    /// New data acknowledged outside loss recovery: grow cwnd (RFC 5681 3.1:
    /// slow start while cwnd < ssthresh, growth min(acked, SMSS) per ACK
    /// (RFC 3465 appropriate byte counting with L = 1 SMSS); congestion
    /// avoidance: byte counting accumulating to one SMSS per cwnd acked).
    /// `app_limited`: if the sender was not using the window (flight < cwnd),
    /// do not grow (RFC 7661 spirit: a window that was not used has not been
    /// validated by the network).
    fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: usize,
        rtt: Option<Duration>,
        app_limited: bool,
    );
    /// A loss detected by duplicate ACKs/SACK (entering fast recovery): RFC
    /// 5681 3.2 step 2: ssthresh = max(FlightSize/2, 2*SMSS); cwnd =
    /// ssthresh. (Recovery inflation is the caller's job.)
    fn on_congestion_event(&mut self, now: Instant, flight_size: usize);
    /// Retransmission timeout: RFC 5681 3.1 eq. 4 ssthresh = max(FlightSize/2,
    /// 2*SMSS) (only on the first timeout of a series: the caller passes
    /// `first_timeout`), cwnd = 1 SMSS (loss window).
    fn on_rto(&mut self, now: Instant, flight_size: usize, first_timeout: bool);
    /// Leaving fast recovery with a full ACK (RFC 6582 3.2 step 3: cwnd =
    /// min(ssthresh, max(FlightSize, SMSS) + SMSS)).
    fn on_recovery_exit(&mut self, now: Instant, flight_size: usize);
    /// RFC 5681 4.1: after an idle period longer than one RTO, cwnd =
    /// min(RW, cwnd) with RW = restart window = min(IW, cwnd).
    fn on_idle_restart(&mut self, now: Instant);
    /// Sets the sender MSS (after the handshake); recompute IW per RFC
    /// 6928/5681 3.1 if nothing sent yet.
    fn set_mss(&mut self, mss: usize);
    /// Overrides cwnd (used by the recovery logic, e.g. NewReno
    /// inflation/deflation).
    fn set_window(&mut self, cwnd: usize);
    /// The last congestion event proved spurious (D-SACKs reported every
    /// retransmission of its recovery as a duplicate: RFC 2883, RFC 9438
    /// 4.9): restore the state from before that event's reduction
    /// (cwnd, ssthresh, and the controller's own). Nothing happens if
    /// there was no such event, or a timeout came since.
    fn undo_congestion_event(&mut self);
    /// A new round trip begins (RFC 9406 4.2: the ACK for `windowEnd`, the
    /// SND.NXT recorded when the previous round began, has arrived; the
    /// caller then records the current SND.NXT as the next `windowEnd`).
    /// Call it before [`on_ack`](CongestionController::on_ack) for that
    /// ACK. Optional: controllers that need rounds approximate them from
    /// acknowledged bytes until the first call. The default does nothing.
    fn on_round_start(&mut self, now: Instant) {
        let _ = now;
    }
    /// Short lowercase name ("newreno"), for statistics and logs.
    fn name(&self) -> &'static str;
}

/// The initial congestion window for `segments` segments of `mss` bytes.
///
/// RFC 6928 2: "IW = min (10*MSS, max (2*MSS, 14600))" for the usual 10
/// segments; the same byte cap applies to any `segments >= 3` (RFC 3390 had
/// 4 segments / 4380 bytes). Fewer than 3 segments give exactly
/// `segments * mss` (RFC 5681 3.1 allows 2 to 4 segments). `segments == 0`
/// and `mss == 0` are treated as 1 so the window can never be zero.
pub fn initial_window(mss: usize, segments: u32) -> usize {
    let mss = mss.max(1);
    let n = (segments.max(1) as usize).saturating_mul(mss);
    if segments >= 3 {
        n.min(mss.saturating_mul(2).max(14_600))
    } else {
        n
    }
}

/// The controller selected by `kind`.
pub fn new_controller(
    kind: CongestionControl,
    mss: usize,
    initial_window_segments: u32,
) -> Box<dyn CongestionController> {
    match kind {
        CongestionControl::NewReno => Box::new(NewReno::new(mss, initial_window_segments)),
        CongestionControl::Cubic => Box::new(Cubic::new(mss, initial_window_segments)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_rfc6928() {
        // RFC 6928 2 with the default 10 segments.
        assert_eq!(initial_window(1460, 10), 14_600);
        assert_eq!(initial_window(1448, 10), 14_480);
        assert_eq!(initial_window(536, 10), 5_360);
        // Large MSS: capped by max(2*MSS, 14600).
        assert_eq!(initial_window(1500, 10), 14_600);
        assert_eq!(initial_window(9000, 10), 18_000);
        assert_eq!(initial_window(65_495, 10), 130_990);
    }

    #[test]
    fn initial_window_other_segment_counts() {
        assert_eq!(initial_window(1460, 3), 4_380);
        assert_eq!(initial_window(1460, 4), 5_840);
        assert_eq!(initial_window(1460, 20), 14_600);
        assert_eq!(initial_window(9000, 4), 18_000);
        // Below 3 segments: exactly n * MSS.
        assert_eq!(initial_window(9000, 2), 18_000);
        assert_eq!(initial_window(1460, 1), 1_460);
        // Degenerate inputs never give a zero window.
        assert_eq!(initial_window(1460, 0), 1_460);
        assert_eq!(initial_window(0, 10), 10);
        assert_eq!(initial_window(usize::MAX, 10), usize::MAX);
    }

    #[test]
    fn new_controller_selects_newreno() {
        let cc = new_controller(CongestionControl::NewReno, 1460, 10);
        assert_eq!(cc.name(), "newreno");
        assert_eq!(cc.window(), 14_600);
        assert_eq!(cc.ssthresh(), usize::MAX);
    }

    #[test]
    fn new_controller_selects_cubic() {
        let mut cc = new_controller(CongestionControl::Cubic, 1460, 10);
        assert_eq!(cc.name(), "cubic");
        assert_eq!(cc.window(), 14_600);
        assert_eq!(cc.ssthresh(), usize::MAX);
        // The default round hook is harmless on every controller.
        cc.on_round_start(Instant::ZERO);
        new_controller(CongestionControl::NewReno, 1460, 10).on_round_start(Instant::ZERO);
    }

    #[test]
    fn controllers_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let cc = new_controller(CongestionControl::default(), 1460, 10);
        assert_send(&cc);
    }
}
