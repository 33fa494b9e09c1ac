//! CUBIC congestion control (RFC 9438) with HyStart++ slow start (RFC 9406).
//!
//! Read first: RFC 9438 section 4 (the algorithm) and RFC 9406 section 4.2
//! (the HyStart++ pseudocode). As with [`NewReno`](super::NewReno), loss
//! detection and the fast recovery loop live in the connection; this type
//! only sizes the window.
//!
//! # Units
//! The RFCs express windows in segments; this type keeps every window in
//! bytes (`cwnd` as `usize`, the CUBIC state as `f64`) and converts with the
//! current SMSS where a formula needs segments (the constant C is in
//! segments per second cubed). Keeping bytes makes a later MSS change
//! harmless. All float results are clamped before they become `usize`
//! (`as` saturates, and no operation here can produce NaN), so no input
//! panics.
//!
//! # Time
//! `t` in RFC 9438 eq. (1) is the time spent in the current congestion
//! avoidance stage, measured from the `now` arguments. Time that goes
//! backwards counts as zero elapsed; time during which the sender was
//! application-limited is not counted (RFC 9438 5.8).
//!
//! # Rounds (HyStart++)
//! RFC 9406 4.2 ends a round when an ACK covers `windowEnd`, the SND.NXT
//! recorded at the round start. The controller sees no sequence numbers, so
//! by default it approximates a round as "as many bytes acknowledged as the
//! congestion window held when the round started" (for a window-limited
//! sender, SND.NXT - SND.UNA at the round start equals that window). A
//! connection that tracks `windowEnd` itself can call
//! [`CongestionController::on_round_start`] instead; after the first such
//! call the approximation is switched off.
//!
//! # RTT samples (HyStart++)
//! RFC 9406 wants every per-ACK RTT sample. `on_ack` receives the smoothed
//! RTT, so HyStart++ runs on the per-round minimum of the SRTT values seen
//! on ACKs. SRTT lags the raw RTT (gain 1/8 per sample, RFC 6298), so delay
//! increases are detected later and more softly than with raw samples.

use super::{initial_window, CongestionController};
use crate::time::{Duration, Instant};

/// RFC 9438 4.2 / 5: "C: constant that determines the aggressiveness of
/// CUBIC in competing with other congestion control algorithms in high-BDP
/// networks", 0.4 (segments / s^3).
const C: f64 = 0.4;
/// RFC 9438 4.6: "beta_cubic ... SHOULD be set to 0.7".
const BETA: f64 = 0.7;
/// RFC 9438 4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9406 4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;
/// RFC 9406 4.3: "L: ... 8 if not paced": the per-ACK slow start growth cap
/// in SMSS. The stack does not pace.
const L: usize = 8;

/// CUBIC (RFC 9438) with HyStart++ (RFC 9406) for the initial slow start.
#[derive(Debug, Clone)]
pub struct Cubic {
    /// SMSS in bytes (at least 1).
    mss: usize,
    /// Configured initial window in segments (RFC 6928).
    iw_segments: u32,
    cwnd: usize,
    ssthresh: usize,
    /// Sub-byte congestion avoidance growth carried between ACKs.
    frac: f64,
    /// RFC 9438 4.1.2 W_max in bytes; 0 until the first congestion event.
    w_max: f64,
    /// RFC 9438 4.1.2 cwnd_prior in bytes: cwnd before the last reduction.
    cwnd_prior: f64,
    /// The current congestion avoidance stage, started lazily on its first
    /// ACK (RFC 9438 4.2 "t_epoch").
    epoch: Option<Epoch>,
    /// RFC 9438 4.8: the next congestion avoidance stage follows a timeout.
    after_timeout: bool,
    hystart: HyStart,
    /// The state before the last congestion event (RFC 9438 4.9 undo).
    prior: Option<Prior>,
    /// Set by the first event that changes the window; until then
    /// [`set_mss`](CongestionController::set_mss) may recompute IW.
    touched: bool,
}

/// RFC 9438 4.9: what a spurious congestion event's undo restores.
#[derive(Debug, Clone)]
struct Prior {
    cwnd: usize,
    ssthresh: usize,
    w_max: f64,
    cwnd_prior: f64,
    epoch: Option<Epoch>,
    phase: Phase,
}

/// RFC 9438 4.1.2 state of one congestion avoidance stage.
#[derive(Debug, Clone)]
struct Epoch {
    /// Time spent in this stage while not application-limited ("t").
    elapsed: Duration,
    /// The latest `now` seen (time is never taken to run backwards).
    last: Instant,
    /// K in seconds (RFC 9438 eq. 2).
    k: f64,
    /// W_est in bytes (RFC 9438 4.3).
    w_est: f64,
}

/// RFC 9406 phases.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Standard slow start with the delay-increase check.
    SlowStart,
    /// Conservative Slow Start; `rounds` counts CSS rounds ended so far.
    Css { baseline: Duration, rounds: u32 },
    /// HyStart++ is over (loss, timeout, or CSS ended): RFC 5681 slow start
    /// from now on (RFC 9406 4.2: only the initial slow start uses it).
    Done,
}

/// RFC 9406 4.2 per-round RTT tracking.
#[derive(Debug, Clone)]
struct HyStart {
    phase: Phase,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// Bytes acknowledged in this round (approximate rounds).
    round_acked: usize,
    /// Window at the round start: the round ends once this many bytes are
    /// acknowledged (approximate rounds). 0 starts a round on the next ACK.
    round_len: usize,
    /// The connection reports round starts itself.
    external_rounds: bool,
    /// A round start reported by the connection, applied on the next ACK.
    round_pending: bool,
}

impl HyStart {
    fn new() -> Self {
        HyStart {
            phase: Phase::SlowStart,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            round_acked: 0,
            round_len: 0,
            external_rounds: false,
            round_pending: false,
        }
    }

    /// Whether this ACK begins a new round; consumes the round marker.
    fn round_starts(&mut self, bytes_acked: usize, cwnd: usize) -> bool {
        let start = if self.external_rounds {
            std::mem::take(&mut self.round_pending)
        } else {
            self.round_acked >= self.round_len
        };
        if start {
            self.round_acked = 0;
            self.round_len = cwnd;
        }
        self.round_acked = self.round_acked.saturating_add(bytes_acked);
        start
    }

    /// RFC 9406 4.2: "lastRoundMinRTT = currentRoundMinRTT;
    /// currentRoundMinRTT = infinity; rttSampleCount = 0".
    fn new_round(&mut self) {
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
    }

    /// RFC 9406 4.2: "currentRoundMinRTT = min(currentRoundMinRTT,
    /// currRTT); rttSampleCount += 1".
    fn sample(&mut self, rtt: Duration) {
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        self.samples = self.samples.saturating_add(1);
    }
}

impl Cubic {
    /// A controller starting at the RFC 6928 initial window for `mss` and
    /// `initial_window_segments` (see [`initial_window`]), with ssthresh
    /// arbitrarily high (RFC 5681 3.1) and HyStart++ armed.
    pub fn new(mss: usize, initial_window_segments: u32) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            iw_segments: initial_window_segments,
            cwnd: initial_window(mss, initial_window_segments),
            ssthresh: usize::MAX,
            frac: 0.0,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch: None,
            after_timeout: false,
            hystart: HyStart::new(),
            prior: None,
            touched: false,
        }
    }

    /// The current SMSS.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Whether HyStart++ is in Conservative Slow Start (RFC 9406 4.2).
    pub fn in_css(&self) -> bool {
        matches!(self.hystart.phase, Phase::Css { .. })
    }

    fn iw(&self) -> usize {
        initial_window(self.mss, self.iw_segments)
    }

    fn mss_f(&self) -> f64 {
        self.mss as f64
    }

    /// RFC 9438 eq. (1) in bytes: W_cubic(t) = C*(t-K)^3 + W_max, with
    /// C in segments/s^3 scaled by SMSS.
    fn w_cubic(&self, k: f64, t: f64) -> f64 {
        let d = t - k;
        C * d * d * d * self.mss_f() + self.w_max
    }

    /// Clamps a byte count computed in floating point into `[mss, MAX]`.
    fn to_window(&self, bytes: f64) -> usize {
        // `as` saturates (and maps NaN to 0, which the max then lifts).
        (bytes as usize).max(self.mss)
    }

    /// RFC 9438 4.6: "ssthresh = flight_size * beta_cubic", "ssthresh =
    /// max(ssthresh, 2)" (segments).
    fn reduced_ssthresh(&self, flight_size: usize) -> usize {
        ((flight_size as f64 * BETA) as usize).max(self.mss.saturating_mul(2))
    }

    /// Opens a congestion avoidance stage at `now` (RFC 9438 4.2).
    fn start_epoch(&mut self, now: Instant) {
        let cwnd_epoch = self.cwnd as f64;
        let k = if self.after_timeout || self.w_max <= cwnd_epoch {
            // RFC 9438 4.8: "During the first congestion avoidance stage
            // after a timeout, CUBIC increases its congestion window size
            // using Figure 1, where ... K is set to 0, and W_max is set to
            // the congestion window size at the beginning of the current
            // congestion avoidance stage." The same applies when no
            // congestion event has set W_max yet (HyStart++ ended slow
            // start) or the window already exceeds it: the curve starts
            // at its plateau and turns convex, never below cwnd_epoch.
            self.w_max = cwnd_epoch;
            0.0
        } else {
            // RFC 9438 eq. (2): K = cubic_root((W_max - cwnd_epoch) / C),
            // in segments. Right after a reduction with cwnd_epoch =
            // beta_cubic * W_max this is cubic_root(W_max*(1-beta_cubic)/C).
            ((self.w_max - cwnd_epoch) / self.mss_f() / C).cbrt()
        };
        self.after_timeout = false;
        self.frac = 0.0;
        self.epoch = Some(Epoch {
            elapsed: Duration::ZERO,
            last: now,
            k,
            // RFC 9438 4.3: "W_est is set equal to cwnd_epoch at the start
            // of the congestion avoidance stage"; 4.8 likewise after a
            // timeout.
            w_est: cwnd_epoch,
        });
    }

    /// Slow start growth for one ACK, with HyStart++ while it is active.
    fn slow_start(&mut self, bytes_acked: usize, rtt: Option<Duration>) {
        if self.hystart.phase == Phase::Done {
            // RFC 5681 3.1 eq. (2) with RFC 3465 L = 1 SMSS, as NewReno.
            self.cwnd = self.cwnd.saturating_add(bytes_acked.min(self.mss));
            return;
        }
        let hs = &mut self.hystart;
        if hs.round_starts(bytes_acked, self.cwnd) {
            hs.new_round();
            if let Phase::Css { rounds, .. } = &mut hs.phase {
                // RFC 9406 4.2: "CSS lasts at most CSS_ROUNDS rounds. If
                // the transition into CSS happens in the middle of a round,
                // that partial round counts towards the limit."
                *rounds += 1;
                if *rounds >= CSS_ROUNDS {
                    // "If CSS_ROUNDS rounds are complete, enter congestion
                    // avoidance by setting the ssthresh to the current
                    // cwnd."
                    hs.phase = Phase::Done;
                    self.ssthresh = self.cwnd;
                    return;
                }
            }
        }
        // RFC 9406 4.2: "cwnd = cwnd + min(N, L * SMSS)" in slow start,
        // "cwnd = cwnd + (min(N, L * SMSS) / CSS_GROWTH_DIVISOR)" in CSS.
        let mut growth = bytes_acked.min(self.mss.saturating_mul(L));
        if self.in_css() {
            growth /= CSS_GROWTH_DIVISOR;
        }
        self.cwnd = self.cwnd.saturating_add(growth);

        let Some(rtt) = rtt else { return };
        let hs = &mut self.hystart;
        hs.sample(rtt);
        if hs.samples < N_RTT_SAMPLE {
            return;
        }
        let (Some(cur), Some(last)) = (hs.current_round_min, hs.last_round_min) else {
            return;
        };
        match hs.phase {
            Phase::SlowStart => {
                // RFC 9406 4.2: "RttThresh = max(MIN_RTT_THRESH,
                // min(lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH))";
                // "if (currentRoundMinRTT >= (lastRoundMinRTT + RttThresh))
                // cssBaselineMinRtt = currentRoundMinRTT; exit slow start
                // and enter CSS".
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last.saturating_add(thresh) {
                    hs.phase = Phase::Css {
                        baseline: cur,
                        rounds: 0,
                    };
                }
            }
            Phase::Css { baseline, .. } => {
                // RFC 9406 4.2: "if (currentRoundMinRTT <
                // cssBaselineMinRtt) cssBaselineMinRtt = infinity; resume
                // slow start including HyStart++".
                if cur < baseline {
                    hs.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }

    /// Congestion avoidance growth for one ACK (RFC 9438 4.2 to 4.5).
    fn congestion_avoidance(&mut self, now: Instant, bytes_acked: usize, rtt: Option<Duration>) {
        if self.epoch.is_none() {
            self.start_epoch(now);
        }
        let mss = self.mss_f();
        let cwnd = self.cwnd as f64;
        let acked = bytes_acked as f64;
        let cwnd_prior = self.cwnd_prior;
        let Some(e) = self.epoch.as_mut() else { return };
        // t = t_current - t_epoch, without time running backwards.
        e.elapsed = e
            .elapsed
            .saturating_add(now.saturating_duration_since(e.last));
        e.last = e.last.max(now);
        let t = e.elapsed.as_secs_f64();
        let k = e.k;

        // RFC 9438 4.3: "W_est = W_est + alpha_cubic * segments_acked /
        // cwnd" (segments); "Once W_est has grown to reach the cwnd at the
        // time of most recently setting ssthresh -- that is, W_est >=
        // cwnd_prior -- the sender SHOULD set alpha_cubic to 1".
        let alpha = if e.w_est >= cwnd_prior { 1.0 } else { ALPHA };
        e.w_est += alpha * acked * mss / cwnd;
        let w_est = e.w_est;

        let next = if self.w_cubic(k, t) < w_est {
            // RFC 9438 4.3: "If W_cubic(t) is less than W_est, then CUBIC
            // is in the Reno-friendly region and cwnd SHOULD be set to
            // W_est at each reception of a new ACK." (Never lowered here:
            // a reduction is only ever a congestion response.)
            self.frac = 0.0;
            w_est.max(cwnd)
        } else {
            // RFC 9438 4.2: target = W_cubic(t + RTT), clamped to
            // [cwnd, 1.5 * cwnd] ("cwnd MUST NOT be increased by more than
            // 50% per RTT"). 4.4 (concave, cwnd < W_max) and 4.5 (convex,
            // cwnd >= W_max): "cwnd MUST be incremented by (target -
            // cwnd) / cwnd for each received new ACK" (per segment acked;
            // in bytes, (target - cwnd) * bytes_acked / cwnd, at most the
            // whole gap).
            let rtt = rtt.map_or(0.0, |r| r.as_secs_f64());
            let target = self.w_cubic(k, t + rtt).clamp(cwnd, 1.5 * cwnd);
            let gap = target - cwnd;
            let inc = (gap * acked / cwnd).min(gap);
            let next = cwnd + inc + self.frac;
            let whole = next.floor();
            self.frac = next - whole;
            whole
        };
        self.cwnd = self.to_window(next).max(self.cwnd);
    }
}

impl CongestionController for Cubic {
    /// cwnd rounded down to whole segments (at least one).
    ///
    /// RFC 9438 counts cwnd in segments; the byte-exact value grows by
    /// fractions of a segment. A sender that only emits full-sized segments
    /// (sender SWS avoidance) cannot fill a fractional remainder, and a
    /// connection that flags "flight < cwnd" as application-limited would
    /// then stop the growth for good. Whole segments keep the window
    /// fillable; the fraction is kept internally and not lost.
    fn window(&self) -> usize {
        (self.cwnd - self.cwnd % self.mss).max(self.mss)
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: usize,
        rtt: Option<Duration>,
        app_limited: bool,
    ) {
        if bytes_acked == 0 {
            return;
        }
        self.touched = true;
        if app_limited {
            // RFC 9438 5.8: "CUBIC does not increase cwnd when a flow is
            // application limited", and the app-limited time is kept out
            // of t.
            if let Some(e) = self.epoch.as_mut() {
                e.last = e.last.max(now);
            }
            return;
        }
        if self.cwnd < self.ssthresh {
            // RFC 9438 4.10: slow start while cwnd < ssthresh, with
            // HyStart++ (RFC 9406) for the initial one.
            self.slow_start(bytes_acked, rtt);
        } else {
            self.congestion_avoidance(now, bytes_acked, rtt);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight_size: usize) {
        self.touched = true;
        self.prior = Some(Prior {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
            epoch: self.epoch.clone(),
            phase: self.hystart.phase,
        });
        // RFC 9406 4.2: "If loss or ECN-marking is observed anytime during
        // standard slow start or CSS, enter congestion avoidance"
        // (through the reduction below).
        self.hystart.phase = Phase::Done;
        let cwnd = self.cwnd as f64;
        // RFC 9438 4.7 fast convergence: "if cwnd < W_max and fast
        // convergence enabled, further reduce W_max: W_max = cwnd * (1 +
        // beta_cubic) / 2; otherwise, remember cwnd before reduction:
        // W_max = cwnd".
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        // RFC 9438 4.6: "cwnd_prior = cwnd"; "ssthresh = flight_size *
        // beta_cubic"; "cwnd = max(ssthresh, 2)"; "ssthresh =
        // max(ssthresh, 2)" (the recovery inflation is the caller's).
        self.cwnd_prior = cwnd;
        self.ssthresh = self.reduced_ssthresh(flight_size);
        self.cwnd = self.ssthresh;
        self.frac = 0.0;
        // RFC 9438 4.2: t restarts with the next congestion avoidance
        // stage.
        self.epoch = None;
    }

    fn undo_congestion_event(&mut self) {
        // RFC 9438 4.9: "cwnd = cwnd_prior", "ssthresh = ssthresh_prior",
        // "W_max = W_max_prior", and the congestion avoidance stage (K,
        // t_epoch, W_est) as it was.
        if let Some(p) = self.prior.take() {
            self.cwnd = self.cwnd.max(p.cwnd);
            self.ssthresh = self.ssthresh.max(p.ssthresh);
            self.w_max = p.w_max;
            self.cwnd_prior = p.cwnd_prior;
            self.epoch = p.epoch;
            self.hystart.phase = p.phase;
            self.frac = 0.0;
        }
    }

    fn on_rto(&mut self, _now: Instant, flight_size: usize, first_timeout: bool) {
        self.touched = true;
        self.prior = None;
        self.hystart.phase = Phase::Done;
        // RFC 9438 4.8: "In the case of a timeout, CUBIC follows Reno to
        // reduce cwnd [RFC5681] but sets ssthresh using beta_cubic (same as
        // in Section 4.6)". As RFC 5681 3.1, ssthresh is only reduced on
        // the first timeout of a series.
        if first_timeout {
            self.cwnd_prior = self.cwnd as f64;
            self.ssthresh = self.reduced_ssthresh(flight_size);
        }
        // RFC 5681 3.1: cwnd = LW = 1 SMSS.
        self.cwnd = self.mss;
        self.frac = 0.0;
        // RFC 9438 4.8: W_max and K are reset when the next congestion
        // avoidance stage begins (see `start_epoch`).
        self.after_timeout = true;
        self.epoch = None;
    }

    fn on_recovery_exit(&mut self, _now: Instant, flight_size: usize) {
        // RFC 9438 4.6 keeps cwnd = ssthresh after recovery; as in NewReno,
        // RFC 6582 3.2 step 3 option (1) "cwnd = min (ssthresh,
        // max(FlightSize, SMSS) + SMSS)" avoids a burst when little is
        // outstanding.
        self.touched = true;
        self.cwnd = self
            .ssthresh
            .min(flight_size.max(self.mss).saturating_add(self.mss))
            .max(self.mss);
        self.frac = 0.0;
        self.epoch = None;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        // RFC 5681 4.1: cwnd = min(RW, cwnd), RW = min(IW, cwnd). The idle
        // time must not count as congestion avoidance time (RFC 9438 5.8),
        // so the stage restarts.
        self.cwnd = self.cwnd.min(self.iw()).max(self.mss);
        self.frac = 0.0;
        self.epoch = None;
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        // RFC 6928 2 / RFC 5681 3.1: IW follows SMSS until the window is
        // used.
        if !self.touched {
            self.cwnd = self.iw();
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    fn set_window(&mut self, cwnd: usize) {
        // Never below one segment: a zero window would stall the sender.
        self.touched = true;
        self.cwnd = cwnd.max(self.mss);
        self.frac = 0.0;
    }

    fn on_round_start(&mut self, _now: Instant) {
        self.hystart.external_rounds = true;
        self.hystart.round_pending = true;
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;
    const MS: Duration = Duration::from_millis(1);

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// A controller in congestion avoidance right after a loss at
    /// `segments` full-sized segments (flight = cwnd).
    fn after_loss(segments: usize) -> Cubic {
        let mut c = Cubic::new(MSS, 10);
        c.set_window(segments * MSS);
        c.on_congestion_event(Instant::ZERO, segments * MSS);
        c
    }

    /// RFC 9438 4.9: an undo restores cwnd, ssthresh and W_max, and slow
    /// start if that is where the spurious event struck; not after a timeout.
    #[test]
    fn undo_restores_the_state_before_a_spurious_event() {
        let mut c = Cubic::new(MSS, 10);
        c.on_congestion_event(Instant::ZERO, 10 * MSS);
        assert_eq!(c.window(), 7 * MSS);
        c.undo_congestion_event();
        assert_eq!((c.window(), c.ssthresh()), (10 * MSS, usize::MAX));
        // Slow start again: one SMSS per SMSS acknowledged.
        c.on_ack(Instant::ZERO + MS, MSS, Some(MS), false);
        assert_eq!(c.window(), 11 * MSS);
        // In congestion avoidance W_max comes back too.
        let mut c = after_loss(100);
        let w_max = c.w_max;
        c.on_congestion_event(Instant::ZERO, 70 * MSS);
        assert!(c.w_max < w_max);
        c.undo_congestion_event();
        assert_eq!((c.window(), c.w_max), (70 * MSS, w_max));
        // Only once, and never across a timeout.
        c.undo_congestion_event();
        assert_eq!(c.window(), 70 * MSS);
        c.on_congestion_event(Instant::ZERO, 70 * MSS);
        c.on_rto(Instant::ZERO, 49 * MSS, true);
        c.undo_congestion_event();
        assert_eq!(c.window(), MSS);
    }

    /// Feeds ACKs of one SMSS each, window-limited, for `span` starting at
    /// `*now`, spacing them so a window's worth arrives per `rtt`.
    fn drive(c: &mut Cubic, now: &mut Instant, span: Duration, rtt: Duration) {
        let end = *now + span;
        while *now < end {
            let n = (c.window() / MSS).max(1) as u32;
            let step = (rtt / n).max(Duration::from_micros(1));
            *now += step;
            c.on_ack(*now, MSS, Some(rtt), false);
        }
    }

    #[test]
    fn test_new_starts_in_slow_start() {
        let c = Cubic::new(1460, 10);
        assert_eq!(c.window(), 14_600);
        assert_eq!(c.ssthresh(), usize::MAX);
        assert_eq!(c.name(), "cubic");
        assert!(!c.in_css());
    }

    #[test]
    fn test_k_and_w_cubic_match_rfc_formulas() {
        // Loss at W = 100 segments: W_max = 100, cwnd_epoch = 70.
        // RFC 9438 eq. (2): K = cbrt((100 - 70) / 0.4) = cbrt(75)
        // = 4.217163... s, which equals cbrt(W_max * (1 - beta) / C).
        let mut c = after_loss(100);
        assert_eq!((c.window(), c.ssthresh()), (70_000, 70_000));
        c.on_ack(Instant::ZERO, MSS, Some(100 * MS), false);
        let k = c.epoch.as_ref().unwrap().k;
        assert!(close(k, 4.217_163_326, 1e-6), "K = {k}");
        // RFC 9438 eq. (1) by hand, in segments:
        // W(0) = 0.4 * (-4.217163)^3 + 100 = 100 - 30 = 70
        // W(1) = 0.4 * (-3.217163)^3 + 100 = 100 - 13.31924 = 86.68076
        // W(K) = 100
        // W(6) = 0.4 * (1.782837)^3 + 100 = 100 + 2.26670 = 102.26670
        let seg = |t: f64| c.w_cubic(k, t) / MSS as f64;
        assert!(close(seg(0.0), 70.0, 1e-6), "{}", seg(0.0));
        assert!(close(seg(1.0), 86.680_76, 1e-4), "{}", seg(1.0));
        assert!(close(seg(k), 100.0, 1e-9));
        assert!(close(seg(6.0), 102.266_70, 1e-4), "{}", seg(6.0));
        // W_max = 1000 segments: K = cbrt(300 / 0.4) = cbrt(750) = 9.085603.
        let mut c = after_loss(1000);
        c.on_ack(Instant::ZERO, MSS, None, false);
        let k = c.epoch.as_ref().unwrap().k;
        assert!(close(k, 9.085_602_964, 1e-6), "K = {k}");
    }

    #[test]
    fn test_congestion_avoidance_concave_then_convex() {
        // RFC 9438 4.4 / 4.5: growth slows towards W_max (concave), stalls
        // around t = K, and then accelerates (convex). A large window and
        // long RTT keep the Reno-friendly estimate out of the way.
        let mut c = after_loss(1000); // K = 9.09 s, cwnd_epoch = 700 segments
        let rtt = 100 * MS;
        let mut now = Instant::ZERO;
        let mut at = Vec::new(); // window in segments at t = 0, 1, ..., 14 s
        for _ in 0..15 {
            at.push(c.window() / MSS);
            drive(&mut c, &mut now, Duration::from_secs(1), rtt);
        }
        let growth: Vec<i64> = at.windows(2).map(|w| w[1] as i64 - w[0] as i64).collect();
        // Concave: each second adds less than the one before, up to K.
        for i in 1..8 {
            assert!(growth[i] < growth[i - 1], "not concave: {at:?}");
        }
        // Near the plateau: W_max is approached, not overshot, around K.
        assert!((990..=1005).contains(&at[9]), "{at:?}");
        // Convex: growth increases again beyond K.
        for i in 11..14 {
            assert!(growth[i] > growth[i - 1], "not convex: {at:?}");
        }
        assert!(at[14] > 1000);
        // Tracks W_cubic(t) closely (ACK clocking lags by about one RTT).
        let w = |t: f64| 0.4 * (t - 9.085_603_f64).powi(3) + 1000.0;
        for (t, &seg) in at.iter().enumerate().skip(1) {
            let expect = w(t as f64);
            assert!(
                (seg as f64 - expect).abs() < 0.03 * expect,
                "t = {t}: {seg} vs {expect}"
            );
        }
    }

    #[test]
    fn test_target_clamped_to_one_and_a_half_cwnd_per_rtt() {
        // RFC 9438 4.2: a long RTT would put W_cubic(t + RTT) far above
        // cwnd; growth per RTT is capped at 50%.
        let mut c = after_loss(100);
        let mut now = Instant::ZERO;
        c.on_ack(now, MSS, Some(Duration::from_secs(20)), false);
        // 20 s into the stage at a 20 s "RTT": W_cubic is enormous.
        now += Duration::from_secs(20);
        c.on_ack(now, MSS, Some(Duration::from_secs(20)), false);
        let before = c.window();
        // One window of ACKs can add at most half a window.
        for _ in 0..before / MSS {
            c.on_ack(now, MSS, Some(Duration::from_secs(20)), false);
        }
        assert!(
            c.window() <= before + before / 2 + MSS,
            "{before} -> {}",
            c.window()
        );
        assert!(c.window() > before + before / 3);
    }

    #[test]
    fn test_reno_friendly_region_dominates_small_window_short_rtt() {
        // W = 10 segments, RTT 1 ms: K = cbrt(7.5) = 1.96 s, during which
        // Reno would add ~1 segment per ms. RFC 9438 4.3: cwnd follows W_est.
        let mut c = after_loss(10);
        let rtt = MS;
        let mut now = Instant::ZERO;
        // First RTT (7 ACKs): alpha_cubic = 3 * 0.3 / 1.7 = 0.5294 segments
        // per RTT.
        for _ in 0..7 {
            now += rtt / 7;
            c.on_ack(now, MSS, Some(rtt), false);
        }
        let e = c.epoch.as_ref().unwrap();
        let w_est = e.w_est / MSS as f64;
        assert!(close(w_est, 7.0 + ALPHA, 0.05), "W_est = {w_est}");
        assert!(close(ALPHA, 0.529_411_76, 1e-8));
        // After 100 ms: about 100 Reno increments, versus W_cubic(0.1 s) =
        // 10 + 0.4 * (0.1 - 1.957)^3 = 7.44 segments.
        drive(&mut c, &mut now, 100 * MS, rtt);
        let k = c.epoch.as_ref().unwrap().k;
        let t = c.epoch.as_ref().unwrap().elapsed.as_secs_f64();
        let cubic = c.w_cubic(k, t) / MSS as f64;
        let seg = c.window() as f64 / MSS as f64;
        assert!(close(cubic, 7.44, 0.05), "W_cubic = {cubic}");
        assert!(seg > 80.0, "cwnd = {seg} segments");
        let w_est = c.epoch.as_ref().unwrap().w_est;
        assert!(close(c.cwnd as f64, w_est, 1.0));
    }

    #[test]
    fn test_multiplicative_decrease_beta_0_7() {
        // RFC 9438 4.6: ssthresh = flight_size * 0.7, cwnd = ssthresh.
        let mut c = Cubic::new(MSS, 10);
        c.set_window(100_000);
        c.on_congestion_event(Instant::ZERO, 100_000);
        assert_eq!((c.ssthresh(), c.window()), (70_000, 70_000));
        assert!(close(c.w_max, 100_000.0, 1e-9));
        assert!(close(c.cwnd_prior, 100_000.0, 1e-9));
        // Based on flight size, not cwnd.
        c.set_window(50_000);
        c.on_congestion_event(Instant::ZERO, 20_000);
        assert_eq!((c.ssthresh(), c.window()), (14_000, 14_000));
        // Floor of 2 SMSS.
        c.on_congestion_event(Instant::ZERO, 1_000);
        assert_eq!((c.ssthresh(), c.window()), (2_000, 2_000));
    }

    #[test]
    fn test_fast_convergence_reduces_w_max() {
        // RFC 9438 4.7.
        let mut c = Cubic::new(MSS, 10);
        c.set_window(100_000);
        c.on_congestion_event(Instant::ZERO, 100_000);
        assert!(close(c.w_max, 100_000.0, 1e-9));
        // A second loss below W_max: W_max = 80 * (1 + 0.7) / 2 = 68.
        c.set_window(80_000);
        c.on_congestion_event(Instant::ZERO, 80_000);
        assert!(close(c.w_max, 68_000.0, 1e-6), "{}", c.w_max);
        assert_eq!(c.window(), 56_000);
        // K = cbrt((68 - 56) / 0.4) = cbrt(30) = 3.107233 s.
        c.on_ack(Instant::ZERO, MSS, None, false);
        let k = c.epoch.as_ref().unwrap().k;
        assert!(close(k, 3.107_232_506, 1e-6), "K = {k}");
        // A loss above W_max just remembers cwnd.
        c.set_window(90_000);
        c.on_congestion_event(Instant::ZERO, 90_000);
        assert!(close(c.w_max, 90_000.0, 1e-9));
    }

    #[test]
    fn test_rto_resets_to_one_mss_and_restarts_curve() {
        // RFC 9438 4.8 and RFC 5681 3.1.
        let mut c = after_loss(100);
        let mut now = Instant::ZERO;
        drive(&mut c, &mut now, Duration::from_secs(2), 50 * MS);
        let cwnd = c.window();
        c.on_rto(now, cwnd, true);
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), (cwnd as f64 * 0.7) as usize);
        assert!(c.epoch.is_none());
        // A repeated timeout keeps ssthresh.
        let ssthresh = c.ssthresh();
        c.on_rto(now, MSS, false);
        assert_eq!((c.window(), c.ssthresh()), (MSS, ssthresh));
        // RFC 5681 slow start (HyStart++ is over) back to ssthresh.
        while c.window() < c.ssthresh() {
            c.on_ack(now, MSS, Some(50 * MS), false);
        }
        assert!(c.epoch.is_none());
        let cwnd_epoch = c.cwnd as f64;
        c.on_ack(now, MSS, Some(50 * MS), false);
        // First congestion avoidance ACK: K = 0, W_max = cwnd_epoch,
        // W_est = cwnd_epoch (plus this ACK's Reno increment).
        let e = c.epoch.as_ref().unwrap();
        assert_eq!(e.k, 0.0);
        assert_eq!(c.w_max, cwnd_epoch);
        assert!(e.w_est > cwnd_epoch && e.w_est < cwnd_epoch + MSS as f64);
        assert!(!c.after_timeout);
    }

    #[test]
    fn test_app_limited_does_not_grow_or_age_the_curve() {
        let mut c = after_loss(100);
        let mut now = Instant::ZERO;
        c.on_ack(now, MSS, Some(100 * MS), false);
        let cwnd = c.cwnd;
        // 10 s of app-limited ACKs: no growth, no elapsed time (RFC 9438 5.8).
        for _ in 0..1000 {
            now += 10 * MS;
            c.on_ack(now, MSS, Some(100 * MS), true);
        }
        assert_eq!(c.cwnd, cwnd);
        assert_eq!(c.epoch.as_ref().unwrap().elapsed, Duration::ZERO);
        // The next window-limited ACK continues from t = 0, not t = 10 s
        // (which would jump towards 1.5 * cwnd).
        now += MS;
        c.on_ack(now, MSS, Some(100 * MS), false);
        // (W_cubic(0.101 s) - cwnd) / cwnd per segment is ~30 bytes here; at
        // t = 10 s the clamp would allow 500.
        assert!(c.cwnd > cwnd && c.cwnd < cwnd + 100, "{cwnd} -> {}", c.cwnd);
        // Slow start does not grow either.
        let mut c = Cubic::new(MSS, 10);
        c.on_ack(now, MSS, Some(10 * MS), true);
        assert_eq!(c.window(), 10_000);
    }

    #[test]
    fn test_window_is_whole_segments() {
        let mut c = Cubic::new(1448, 10);
        assert_eq!(c.window(), 14_480);
        // 0.7 * 10 segments = 7 segments; 0.7 * 9 = 6.3 is reported as 6.
        c.on_congestion_event(Instant::ZERO, 9 * 1448);
        assert_eq!(c.ssthresh(), 9122);
        assert_eq!(c.window(), 6 * 1448);
        // Growth accumulates below a segment and shows once it completes.
        let mut now = Instant::ZERO;
        while c.window() == 6 * 1448 {
            now += MS;
            c.on_ack(now, 1448, Some(40 * MS), false);
        }
        assert_eq!(c.window(), 7 * 1448);
        // Never below one segment.
        c.set_window(100);
        assert_eq!(c.window(), 1448);
    }

    #[test]
    fn test_time_going_backwards_counts_as_zero() {
        let mut c = after_loss(100);
        c.on_ack(Instant::from_millis(5000), MSS, Some(100 * MS), false);
        let w = c.window();
        c.on_ack(Instant::ZERO, MSS, Some(100 * MS), false);
        assert_eq!(c.epoch.as_ref().unwrap().elapsed, Duration::ZERO);
        assert!(c.window() >= w);
        // Returning to the later time does not double count.
        c.on_ack(Instant::from_millis(5000), MSS, Some(100 * MS), false);
        assert_eq!(c.epoch.as_ref().unwrap().elapsed, Duration::ZERO);
    }

    /// Feeds one approximate HyStart++ round: a window's worth of SMSS
    /// ACKs, all with `rtt`.
    fn round(c: &mut Cubic, now: &mut Instant, rtt: Duration) {
        let n = c.window() / MSS;
        for _ in 0..n {
            *now += rtt / n as u32;
            c.on_ack(*now, MSS, Some(rtt), false);
        }
    }

    #[test]
    fn test_hystart_exits_slow_start_on_rtt_increase() {
        // RFC 9406 4.2: lastRoundMinRTT 50 ms gives RttThresh =
        // clamp(50 / 8 = 6.25 ms, 4, 16); a round at 57 ms enters CSS.
        let mut c = Cubic::new(MSS, 10);
        let mut now = Instant::ZERO;
        round(&mut c, &mut now, 50 * MS);
        round(&mut c, &mut now, 50 * MS);
        assert!(!c.in_css());
        assert_eq!(c.window(), 40_000); // doubling per round
        round(&mut c, &mut now, 57 * MS);
        assert!(c.in_css());
        assert_eq!(c.ssthresh(), usize::MAX);
        // CSS grows by a quarter of slow start; after CSS_ROUNDS rounds
        // (the partial one counts) congestion avoidance starts with
        // ssthresh = cwnd.
        let mut rounds = 0;
        while c.ssthresh() == usize::MAX {
            let before = c.window();
            round(&mut c, &mut now, 60 * MS);
            rounds += 1;
            assert!(rounds <= CSS_ROUNDS, "CSS never ended");
            if c.in_css() {
                let grown = c.window() - before;
                assert!(grown <= before / 4 + MSS, "{before} -> {}", c.window());
            }
        }
        assert_eq!(rounds, CSS_ROUNDS);
        // ssthresh = cwnd at the round start; the rest of that round was
        // congestion avoidance.
        assert!(c.window() >= c.ssthresh());
        assert!(c.window() < c.ssthresh() + 2 * MSS);
        assert!(c.window() < 80_000 * 2, "{}", c.window());
        assert!(!c.in_css());
        // Congestion avoidance from here, K = 0 at W_max = cwnd_epoch.
        c.on_ack(now, MSS, Some(60 * MS), false);
        assert_eq!(c.epoch.as_ref().unwrap().k, 0.0);
    }

    #[test]
    fn test_hystart_threshold_is_clamped() {
        // 200 ms base RTT: 200 / 8 = 25 ms is clamped to 16 ms.
        let mut c = Cubic::new(MSS, 10);
        let mut now = Instant::ZERO;
        round(&mut c, &mut now, 200 * MS);
        round(&mut c, &mut now, 215 * MS);
        assert!(!c.in_css());
        round(&mut c, &mut now, 215 * MS);
        round(&mut c, &mut now, 231 * MS);
        assert!(c.in_css());
        // 10 ms base RTT: 1.25 ms is raised to 4 ms.
        let mut c = Cubic::new(MSS, 10);
        round(&mut c, &mut now, 10 * MS);
        round(&mut c, &mut now, 13 * MS);
        assert!(!c.in_css());
        round(&mut c, &mut now, 17 * MS);
        assert!(c.in_css());
    }

    #[test]
    fn test_hystart_flat_rtt_stays_in_slow_start() {
        let mut c = Cubic::new(MSS, 10);
        let mut now = Instant::ZERO;
        for _ in 0..10 {
            round(&mut c, &mut now, 50 * MS);
            assert!(!c.in_css());
        }
        assert_eq!(c.ssthresh(), usize::MAX);
        assert_eq!(c.window(), 10_000 << 10);
        // Jitter below the threshold does not trigger either.
        let mut c = Cubic::new(MSS, 10);
        for i in 0..10 {
            round(&mut c, &mut now, (50 + 5 * (i % 2)) * MS);
            assert!(!c.in_css());
        }
    }

    #[test]
    fn test_hystart_css_returns_to_slow_start_when_rtt_drops() {
        // RFC 9406 4.2: a CSS round whose minimum RTT falls below the
        // baseline means the exit was spurious.
        let mut c = Cubic::new(MSS, 10);
        let mut now = Instant::ZERO;
        round(&mut c, &mut now, 50 * MS);
        round(&mut c, &mut now, 70 * MS);
        assert!(c.in_css());
        round(&mut c, &mut now, 49 * MS);
        assert!(!c.in_css());
        assert_eq!(c.ssthresh(), usize::MAX);
        let before = c.window();
        round(&mut c, &mut now, 49 * MS);
        assert_eq!(c.window(), 2 * before);
    }

    #[test]
    fn test_hystart_needs_n_rtt_samples() {
        // Fewer than N_RTT_SAMPLE samples in a round: no decision.
        let mut c = Cubic::new(MSS, 2);
        let mut now = Instant::ZERO;
        round(&mut c, &mut now, 50 * MS); // 2 ACKs
        round(&mut c, &mut now, 90 * MS); // 4 ACKs
        assert!(!c.in_css());
        // Stretch ACKs grow by at most L = 8 SMSS each.
        let mut c = Cubic::new(MSS, 10);
        c.on_ack(now, 20 * MSS, Some(50 * MS), false);
        assert_eq!(c.window(), 18_000);
    }

    #[test]
    fn test_hystart_external_rounds() {
        // With on_round_start, rounds follow the caller, not byte counts.
        let mut c = Cubic::new(MSS, 10);
        let now = Instant::ZERO;
        c.on_round_start(now);
        for _ in 0..30 {
            c.on_ack(now, MSS, Some(50 * MS), false);
        }
        c.on_round_start(now);
        for _ in 0..8 {
            c.on_ack(now, MSS, Some(60 * MS), false);
        }
        assert!(c.in_css());
    }

    #[test]
    fn test_loss_ends_hystart() {
        let mut c = Cubic::new(MSS, 10);
        let mut now = Instant::ZERO;
        round(&mut c, &mut now, 50 * MS);
        c.on_congestion_event(now, 20_000);
        c.on_recovery_exit(now, 5_000);
        assert_eq!(c.window(), 6_000);
        assert_eq!(c.hystart.phase, Phase::Done);
        // RFC 5681 slow start up to ssthresh = 14_000.
        c.on_ack(now, 5 * MSS, Some(50 * MS), false);
        assert_eq!(c.window(), 7_000);
    }

    #[test]
    fn test_idle_restart_and_set_mss() {
        let mut c = Cubic::new(536, 10);
        assert_eq!(c.window(), 5_360);
        c.set_mss(1460);
        assert_eq!((c.mss(), c.window()), (1460, 14_600));
        c.set_window(100_000);
        c.on_idle_restart(Instant::ZERO);
        assert_eq!(c.window(), 14_600);
        c.on_rto(Instant::ZERO, 0, true);
        assert_eq!((c.window(), c.ssthresh()), (1460, 2920));
        c.set_mss(9000);
        assert_eq!(c.window(), 9000);
        c.set_window(0);
        assert_eq!(c.window(), 9000);
        let mut c = Cubic::new(0, 0);
        c.set_mss(0);
        assert!(c.window() >= 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ack {
            at: u64,
            bytes: usize,
            rtt: Option<u64>,
            app_limited: bool,
        },
        Congestion(usize),
        Rto(usize, bool),
        RecoveryExit(usize),
        Idle,
        Mss(usize),
        Window(usize),
        Round,
    }

    fn any_usize() -> impl Strategy<Value = usize> {
        prop_oneof![0..200_000usize, any::<usize>(), Just(usize::MAX)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (
                prop_oneof![0..100_000_000u64, any::<u64>()],
                any_usize(),
                proptest::option::of(prop_oneof![0..1_000_000u64, any::<u64>()]),
                any::<bool>()
            )
                .prop_map(|(at, bytes, rtt, app_limited)| Op::Ack {
                    at,
                    bytes,
                    rtt,
                    app_limited
                }),
            1 => any_usize().prop_map(Op::Congestion),
            1 => (any_usize(), any::<bool>()).prop_map(|(f, b)| Op::Rto(f, b)),
            1 => any_usize().prop_map(Op::RecoveryExit),
            1 => Just(Op::Idle),
            1 => prop_oneof![0..10_000usize, any::<usize>()].prop_map(Op::Mss),
            1 => any_usize().prop_map(Op::Window),
            1 => Just(Op::Round),
        ]
    }

    proptest! {
        #[test]
        fn prop_no_panic_window_at_least_one_mss(
            mss in prop_oneof![0..10_000usize, any::<usize>()],
            iw in any::<u32>(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut c = Cubic::new(mss, iw);
            for op in ops {
                match op {
                    Op::Ack { at, bytes, rtt, app_limited } => c.on_ack(
                        Instant::from_micros(at),
                        bytes,
                        rtt.map(Duration::from_micros),
                        app_limited,
                    ),
                    Op::Congestion(f) => c.on_congestion_event(Instant::ZERO, f),
                    Op::Rto(f, first) => c.on_rto(Instant::ZERO, f, first),
                    Op::RecoveryExit(f) => c.on_recovery_exit(Instant::ZERO, f),
                    Op::Idle => c.on_idle_restart(Instant::ZERO),
                    Op::Mss(m) => c.set_mss(m),
                    Op::Window(w) => c.set_window(w),
                    Op::Round => c.on_round_start(Instant::ZERO),
                }
                prop_assert!(c.window() >= c.mss());
                prop_assert!(c.mss() >= 1);
                prop_assert!(c.w_max.is_finite() && c.w_max >= 0.0);
                prop_assert!(c.cwnd_prior.is_finite());
                prop_assert!(c.frac.is_finite() && (0.0..1.0).contains(&c.frac));
                if let Some(e) = &c.epoch {
                    prop_assert!(e.k.is_finite() && e.w_est.is_finite());
                }
            }
        }
    }
}
