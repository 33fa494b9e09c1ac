//! NewReno congestion control: RFC 5681 slow start and congestion avoidance,
//! with the RFC 6582 exit from fast recovery. The fast recovery loop itself
//! (partial ACKs, window inflation/deflation) lives in the connection, which
//! calls [`CongestionController::set_window`].

use super::{initial_window, CongestionController};
use crate::time::{Duration, Instant};

/// RFC 5681 / RFC 6582 congestion window arithmetic.
#[derive(Debug, Clone)]
pub struct NewReno {
    /// SMSS in bytes (at least 1).
    mss: usize,
    /// Configured initial window in segments (RFC 6928).
    iw_segments: u32,
    cwnd: usize,
    ssthresh: usize,
    /// RFC 3465 2.1 congestion-avoidance byte counter ("bytes_acked").
    bytes_acked: usize,
    /// cwnd and ssthresh before the last congestion event (for an undo).
    prior: Option<(usize, usize)>,
    /// Set by the first event that changes the window; until then
    /// [`set_mss`](CongestionController::set_mss) may recompute IW.
    touched: bool,
}

impl NewReno {
    /// A controller starting at the RFC 6928 initial window for `mss` and
    /// `initial_window_segments` (see [`initial_window`]), with ssthresh
    /// arbitrarily high (RFC 5681 3.1).
    pub fn new(mss: usize, initial_window_segments: u32) -> Self {
        let mss = mss.max(1);
        NewReno {
            mss,
            iw_segments: initial_window_segments,
            cwnd: initial_window(mss, initial_window_segments),
            ssthresh: usize::MAX,
            bytes_acked: 0,
            prior: None,
            touched: false,
        }
    }

    /// The current SMSS.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// The initial window for the current MSS.
    fn iw(&self) -> usize {
        initial_window(self.mss, self.iw_segments)
    }

    /// RFC 5681 eq. (4): ssthresh = max (FlightSize / 2, 2*SMSS).
    fn halve(&self, flight_size: usize) -> usize {
        (flight_size / 2).max(self.mss.saturating_mul(2))
    }
}

impl CongestionController for NewReno {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(
        &mut self,
        _now: Instant,
        bytes_acked: usize,
        _rtt: Option<Duration>,
        app_limited: bool,
    ) {
        if bytes_acked == 0 {
            return;
        }
        self.touched = true;
        // RFC 7661 4 (spirit): a window the sender did not fill says nothing
        // about the path, so it is not grown. (RFC 5681 has no such rule; it
        // prevents cwnd from growing without bound on an idle-ish connection.)
        if app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 3.1 eq. (2): "cwnd += min (N, SMSS)" in slow start,
            // N being the bytes newly acknowledged (RFC 3465 2.2, L = 1 SMSS).
            self.cwnd = self.cwnd.saturating_add(bytes_acked.min(self.mss));
        } else {
            // RFC 5681 3.1 (congestion avoidance): "cwnd += SMSS*SMSS/cwnd"
            // per ACK, or, as RFC 5681 3.1 also allows and RFC 3465 2.1
            // details, byte counting: "When bytes_acked becomes greater than
            // or equal to the value of the congestion window, bytes_acked is
            // reduced by the value of cwnd. Next, cwnd is incremented by a
            // full-sized segment (SMSS)." Byte counting is immune to ACK
            // division and delayed ACKs.
            self.bytes_acked = self.bytes_acked.saturating_add(bytes_acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight_size: usize) {
        // RFC 5681 3.2 step 2: "ssthresh = max (FlightSize / 2, 2*SMSS)";
        // step 3 would set cwnd = ssthresh + 3*SMSS, but the inflation is
        // the caller's (RFC 6582 3.2 step 2 allows either).
        self.touched = true;
        self.prior = Some((self.cwnd, self.ssthresh));
        self.ssthresh = self.halve(flight_size);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn undo_congestion_event(&mut self) {
        if let Some((cwnd, ssthresh)) = self.prior.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = self.ssthresh.max(ssthresh);
        }
    }

    fn on_rto(&mut self, _now: Instant, flight_size: usize, first_timeout: bool) {
        self.touched = true;
        self.prior = None;
        // RFC 5681 3.1: "When a TCP sender detects segment loss using the
        // retransmission timer and the given segment has not yet been resent
        // by way of the retransmission timer, the value of ssthresh MUST be
        // set to no more than the value given in equation (4)"; "...if an
        // RTO ... occurs again, ssthresh is held constant".
        if first_timeout {
            self.ssthresh = self.halve(flight_size);
        }
        // RFC 5681 3.1: "Furthermore, upon a timeout (as specified in
        // [RFC2988]) cwnd MUST be set to no more than the loss window, LW,
        // which equals 1 full-sized segment".
        self.cwnd = self.mss;
        self.bytes_acked = 0;
    }

    fn on_recovery_exit(&mut self, _now: Instant, flight_size: usize) {
        // RFC 6582 3.2 step 3 (full acknowledgment), option (1): "Set cwnd
        // to min (ssthresh, max(FlightSize, SMSS) + SMSS)". This avoids a
        // burst when little data is outstanding.
        self.touched = true;
        self.cwnd = self
            .ssthresh
            .min(flight_size.max(self.mss).saturating_add(self.mss));
        self.bytes_acked = 0;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        // RFC 5681 4.1: "if the TCP has not sent data in an interval exceeding
        // the retransmission timeout, ... cwnd [is reduced] to no more than RW
        // before beginning transmission", "RW = min(IW,cwnd)". ssthresh is
        // kept.
        let rw = self.iw().min(self.cwnd);
        self.cwnd = self.cwnd.min(rw);
        self.bytes_acked = 0;
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        // RFC 6928 2 / RFC 5681 3.1: IW is defined in terms of SMSS; until
        // the window has been used (no ACK, loss or override yet, i.e. no
        // data sent from the controller's point of view) recompute it.
        if !self.touched {
            self.cwnd = self.iw();
        }
    }

    fn set_window(&mut self, cwnd: usize) {
        self.touched = true;
        self.cwnd = cwnd;
    }

    fn name(&self) -> &'static str {
        "newreno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;
    const T: Instant = Instant::ZERO;

    /// IW = min(10*1000, max(2000, 14600)) = 10_000.
    fn cc() -> NewReno {
        NewReno::new(MSS, 10)
    }

    fn ack(c: &mut NewReno, n: usize) {
        c.on_ack(T, n, None, false);
    }

    #[test]
    fn undo_restores_cwnd_and_ssthresh_once() {
        let mut c = cc();
        c.on_congestion_event(T, 10 * MSS);
        assert_eq!((c.window(), c.ssthresh()), (5 * MSS, 5 * MSS));
        c.undo_congestion_event();
        assert_eq!((c.window(), c.ssthresh()), (10 * MSS, usize::MAX));
        c.on_congestion_event(T, 10 * MSS);
        c.on_rto(T, 10 * MSS, true);
        c.undo_congestion_event();
        assert_eq!(c.window(), MSS, "a timeout is not undone");
    }

    #[test]
    fn starts_at_iw_with_high_ssthresh() {
        let c = cc();
        assert_eq!(c.window(), 10_000);
        assert_eq!(c.ssthresh(), usize::MAX);
        assert_eq!(c.name(), "newreno");
        assert_eq!(NewReno::new(1460, 10).window(), 14_600);
        assert_eq!(NewReno::new(1460, 4).window(), 5_840);
        assert_eq!(NewReno::new(1460, 2).window(), 2_920);
    }

    #[test]
    fn slow_start_grows_by_min_acked_smss() {
        // RFC 5681 3.1 eq. (2) with RFC 3465 L = 1 SMSS.
        let mut c = cc();
        ack(&mut c, 1000);
        assert_eq!(c.window(), 11_000);
        ack(&mut c, 400); // partial segment: grows by N
        assert_eq!(c.window(), 11_400);
        ack(&mut c, 5000); // stretch ACK: capped at SMSS
        assert_eq!(c.window(), 12_400);
        ack(&mut c, 0);
        assert_eq!(c.window(), 12_400);
    }

    #[test]
    fn slow_start_roughly_doubles_per_rtt() {
        let mut c = cc();
        for _ in 0..10 {
            ack(&mut c, MSS);
        }
        assert_eq!(c.window(), 20_000);
    }

    #[test]
    fn congestion_avoidance_one_smss_per_window() {
        // RFC 5681 3.1 / RFC 3465 2.1 byte counting.
        let mut c = cc();
        c.on_congestion_event(T, 20_000);
        assert_eq!(c.window(), 10_000);
        assert_eq!(c.ssthresh(), 10_000);
        for _ in 0..9 {
            ack(&mut c, MSS);
        }
        assert_eq!(c.window(), 10_000);
        ack(&mut c, MSS); // a full cwnd acknowledged
        assert_eq!(c.window(), 11_000);
        // The counter restarts: the next SMSS needs another 11 000 bytes.
        ack(&mut c, 10_500);
        assert_eq!(c.window(), 11_000);
        ack(&mut c, 500);
        assert_eq!(c.window(), 12_000);
    }

    #[test]
    fn slow_start_hands_over_to_avoidance_at_ssthresh() {
        let mut c = cc();
        c.on_rto(T, 8_000, true); // ssthresh 4000, cwnd 1000
        assert_eq!((c.window(), c.ssthresh()), (1_000, 4_000));
        for _ in 0..3 {
            ack(&mut c, MSS);
        }
        assert_eq!(c.window(), 4_000); // reached ssthresh: now in CA
        ack(&mut c, MSS);
        assert_eq!(c.window(), 4_000);
    }

    #[test]
    fn app_limited_does_not_grow() {
        let mut c = cc();
        c.on_ack(T, MSS, Some(Duration::from_millis(10)), true);
        assert_eq!(c.window(), 10_000);
        c.on_congestion_event(T, 20_000);
        for _ in 0..20 {
            c.on_ack(T, MSS, None, true);
        }
        assert_eq!(c.window(), 10_000);
        // Nothing was accumulated while app-limited either.
        ack(&mut c, MSS);
        assert_eq!(c.window(), 10_000);
    }

    #[test]
    fn congestion_event_halves_flight() {
        // RFC 5681 3.2 step 2.
        let mut c = cc();
        c.on_congestion_event(T, 30_001);
        assert_eq!((c.ssthresh(), c.window()), (15_000, 15_000));
        // Floor of 2*SMSS.
        c.on_congestion_event(T, 3_000);
        assert_eq!((c.ssthresh(), c.window()), (2_000, 2_000));
        // Based on FlightSize, not cwnd.
        c.set_window(50_000);
        c.on_congestion_event(T, 10_000);
        assert_eq!(c.ssthresh(), 5_000);
    }

    #[test]
    fn rto_sets_loss_window_and_halves_once() {
        // RFC 5681 3.1 eq. (4) and the loss window.
        let mut c = cc();
        c.on_rto(T, 40_000, true);
        assert_eq!((c.ssthresh(), c.window()), (20_000, MSS));
        // Repeated timeouts of the same series keep ssthresh.
        c.on_rto(T, MSS, false);
        assert_eq!((c.ssthresh(), c.window()), (20_000, MSS));
        // A new series halves again, with the 2*SMSS floor.
        c.on_rto(T, 1_000, true);
        assert_eq!((c.ssthresh(), c.window()), (2_000, MSS));
    }

    #[test]
    fn recovery_exit_rfc6582() {
        // RFC 6582 3.2 step 3: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
        let mut c = cc();
        c.on_congestion_event(T, 20_000); // ssthresh 10_000
        c.set_window(13_000); // inflated by the caller
        c.on_recovery_exit(T, 20_000);
        assert_eq!(c.window(), 10_000);
        c.set_window(13_000);
        c.on_recovery_exit(T, 4_000);
        assert_eq!(c.window(), 5_000);
        c.set_window(13_000);
        c.on_recovery_exit(T, 0);
        assert_eq!(c.window(), 2 * MSS);
    }

    #[test]
    fn idle_restart_caps_at_iw() {
        // RFC 5681 4.1: cwnd = min(RW, cwnd), RW = min(IW, cwnd).
        let mut c = cc();
        c.set_window(50_000);
        c.on_idle_restart(T);
        assert_eq!(c.window(), 10_000);
        assert_eq!(c.ssthresh(), usize::MAX);
        // A window already below IW is kept.
        c.on_rto(T, 10_000, true);
        c.on_idle_restart(T);
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), 5_000);
    }

    #[test]
    fn set_mss_recomputes_iw_only_before_use() {
        let mut c = NewReno::new(536, 10);
        assert_eq!(c.window(), 5_360);
        c.set_mss(1460);
        assert_eq!(c.mss(), 1460);
        assert_eq!(c.window(), 14_600);
        ack(&mut c, 1460);
        assert_eq!(c.window(), 16_060);
        c.set_mss(1000);
        assert_eq!(c.window(), 16_060);
        // The new MSS drives later growth and floors.
        ack(&mut c, 5000);
        assert_eq!(c.window(), 17_060);
        c.on_rto(T, 0, true);
        assert_eq!((c.window(), c.ssthresh()), (1000, 2000));
        // MSS 0 is treated as 1 byte rather than dividing or stalling.
        let mut c = NewReno::new(0, 10);
        c.set_mss(0);
        assert_eq!(c.mss(), 1);
        assert!(c.window() > 0);
    }

    #[test]
    fn set_window_overrides() {
        let mut c = cc();
        c.set_window(12_345);
        assert_eq!(c.window(), 12_345);
        c.set_mss(9000); // window in use now: not recomputed
        assert_eq!(c.window(), 12_345);
    }

    #[test]
    fn growth_saturates() {
        let mut c = cc();
        c.set_window(usize::MAX - 10);
        ack(&mut c, MSS);
        assert_eq!(c.window(), usize::MAX);
        c.on_congestion_event(T, usize::MAX);
        c.set_window(usize::MAX);
        for _ in 0..3 {
            ack(&mut c, usize::MAX);
        }
        assert_eq!(c.window(), usize::MAX);
        c.on_recovery_exit(T, usize::MAX);
        assert_eq!(c.window(), usize::MAX / 2);
    }
}
