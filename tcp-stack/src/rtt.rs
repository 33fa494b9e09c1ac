//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! # Karn's algorithm is the caller's job
//! RFC 6298 3: "RTT samples MUST NOT be made using segments that were
//! retransmitted (and thus for which it is ambiguous whether the reply was
//! for the first instance of the packet or a later instance)." The estimator
//! cannot tell, so the connection must only call [`RttEstimator::sample`] for
//! segments that were transmitted exactly once (or use the RFC 7323 timestamp
//! echo, which is unambiguous). A backed-off RTO is kept until such a valid
//! sample arrives (RFC 6298 5: "the backed-off RTO is used for the next
//! retransmission ... until an acknowledgment is received for data that was
//! not retransmitted").
//!
//! All arithmetic is in integer microseconds and saturates, so no input panics.

use crate::time::Duration;

/// Smoothing gain for SRTT (RFC 6298 2.3: alpha = 1/8).
const ALPHA_SHIFT: u32 = 3;
/// Smoothing gain for RTTVAR (RFC 6298 2.3: beta = 1/4).
const BETA_SHIFT: u32 = 2;
/// Variance multiplier (RFC 6298 2: K = 4).
const K: u64 = 4;
/// Clock granularity G in microseconds (this stack's timers are exact to the
/// microsecond, but RFC 6298 2 assumes a real clock; 1 ms is a conservative G).
const G_MICROS: u64 = 1_000;
/// RFC 6298 5.7: the RTO after a retransmitted SYN.
const HANDSHAKE_RETRANSMITTED_RTO: u64 = 3_000_000;
/// The largest shift of a u64; any base of at least 2 us saturates before it.
const MAX_SHIFT: u32 = 63;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// RFC 6298 smoothed RTT, RTT variance and retransmission timeout.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    /// SRTT in microseconds; `None` until the first measurement.
    srtt: Option<u64>,
    /// RTTVAR in microseconds.
    rttvar: u64,
    /// The RTO before backoff and clamping, in microseconds.
    base_rto: u64,
    /// Number of consecutive [`backoff`](RttEstimator::backoff) calls since
    /// the last valid sample.
    backoff: u32,
    min_rtt: Option<u64>,
    min_rto: u64,
    max_rto: u64,
}

impl RttEstimator {
    /// An estimator with no measurement yet.
    ///
    /// `initial_rto` is used until the first sample (RFC 6298 2.1: "Until a
    /// round-trip time (RTT) measurement has been made for a segment sent
    /// between the sender and receiver, the sender SHOULD set RTO <- 1
    /// second"). `min_rto` and `max_rto` bound every RTO returned (RFC 6298
    /// 2.4 recommends a 1 s minimum, which many stacks lower to 200 ms;
    /// 2.5 allows a maximum of at least 60 s). If `min_rto > max_rto`,
    /// `max_rto` wins.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: 0,
            base_rto: micros(initial_rto),
            backoff: 0,
            min_rtt: None,
            min_rto: micros(min_rto),
            max_rto: micros(max_rto),
        }
    }

    /// Adds a measurement (RFC 6298 2.2/2.3; alpha=1/8, beta=1/4, K=4,
    /// G = 1 ms clock granularity); resets backoff.
    ///
    /// The caller must follow Karn's rule (see the module docs).
    pub fn sample(&mut self, rtt: Duration) {
        let r = micros(rtt);
        match self.srtt {
            None => {
                // RFC 6298 2.2: "When the first RTT measurement R is made, the
                // host MUST set SRTT <- R, RTTVAR <- R/2".
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RFC 6298 2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
                // SRTT <- (1 - alpha) * SRTT + alpha * R'" ... "The above SHOULD
                // be computed using alpha=1/8 and beta=1/4". RTTVAR is updated
                // first, with the old SRTT, as the RFC requires.
                // Computed in u128 so nothing overflows, and rounded down as a
                // whole so a constant RTT drives RTTVAR all the way to zero.
                let delta = u128::from(srtt.abs_diff(r));
                let var = u128::from(self.rttvar);
                self.rttvar = (((var << BETA_SHIFT) - var + delta) >> BETA_SHIFT) as u64;
                let (s, r) = (u128::from(srtt), u128::from(r));
                self.srtt = Some((((s << ALPHA_SHIFT) - s + r) >> ALPHA_SHIFT) as u64);
            }
        }
        // RFC 6298 2.2/2.3: "RTO <- SRTT + max (G, K*RTTVAR)".
        let srtt = self.srtt.unwrap_or(r);
        self.base_rto = srtt.saturating_add(G_MICROS.max(self.rttvar.saturating_mul(K)));
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        // A valid (Karn-clean) sample ends the backoff: RFC 6298 5 keeps the
        // backed-off RTO only until new data is acknowledged without
        // retransmission, at which point 2.3 recomputes RTO from scratch.
        self.backoff = 0;
    }

    /// Current RTO including exponential backoff, clamped to `[min_rto,
    /// max_rto]` (RFC 6298 2.4, 2.5, 5.5).
    ///
    /// RFC 6298 2.4: "Whenever RTO is computed, if it is less than 1 second,
    /// then the RTO SHOULD be rounded up to 1 second" (the configured minimum
    /// replaces the 1 s). 2.5: "A maximum value MAY be placed on RTO provided
    /// it is at least 60 seconds."
    pub fn rto(&self) -> Duration {
        // RFC 6298 2.4 then 5.5: the floor applies to the computed RTO, and
        // the backoff doubles the floored value.
        let backed_off = self
            .base_rto
            .max(self.min_rto)
            .saturating_mul(1u64 << self.backoff.min(MAX_SHIFT));
        Duration::from_micros(backed_off.min(self.max_rto))
    }

    /// Doubles the RTO after a timeout (RFC 6298 5.5: "The host MUST set RTO
    /// <- RTO * 2 ('back off the timer')"), saturating so it never overflows;
    /// [`rto`](Self::rto) stays capped at `max_rto`. The count keeps rising
    /// past the cap so the caller can give up after N retransmissions.
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Consecutive backoffs since the last sample or [`reset_backoff`](Self::reset_backoff).
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// Forgets the backoff, returning to the computed RTO.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Smoothed RTT, `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// RTT variance (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar)
    }

    /// Smallest sample seen so far.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(Duration::from_micros)
    }

    /// RFC 6298 5.7: after the SYN (or SYN-ACK) was retransmitted and the
    /// connection then established without an RTT sample, RTO restarts at 3 s.
    ///
    /// "If the timer expires awaiting the ACK of a SYN segment and the TCP
    /// implementation is using an RTO less than 3 seconds, the RTO MUST be
    /// re-initialized to 3 seconds when data transmission begins (i.e., after
    /// the three-way handshake completes)." Call it on entering ESTABLISHED
    /// when the handshake needed a retransmission. It clears the backoff and
    /// sets the base RTO to max(current base, 3 s); it does nothing if a valid
    /// RTT sample was already taken (the computed RTO is then better
    /// information). The result is still clamped to `[min_rto, max_rto]`.
    pub fn on_handshake_retransmitted(&mut self) {
        if self.srtt.is_some() {
            return;
        }
        self.base_rto = self.base_rto.max(HANDSHAKE_RETRANSMITTED_RTO);
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Linux-like bounds: 1 s initial, 200 ms min, 120 s max.
    fn est() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(120_000))
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let e = est();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), Duration::ZERO);
        assert_eq!(e.min_rtt(), None);
        assert_eq!(e.backoff_count(), 0);
    }

    #[test]
    fn first_sample_sets_srtt_and_rttvar() {
        // RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR).
        let mut e = est();
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
        assert_eq!(e.min_rtt(), Some(ms(100)));
    }

    #[test]
    fn subsequent_samples_smooth() {
        // RFC 6298 2.3 with alpha = 1/8, beta = 1/4, RTTVAR before SRTT.
        let mut e = est();
        e.sample(ms(100));
        e.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5.
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        // RTO = 112.5 + 4*62.5 = 362.5 ms.
        assert_eq!(e.rto(), Duration::from_micros(362_500));
        e.sample(ms(50));
        assert_eq!(e.min_rtt(), Some(ms(50)));
        // RTTVAR = 3/4*62.5 + 1/4*62.5 = 62.5; SRTT = 7/8*112.5 + 50/8 = 104.6875.
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(104_687)));
    }

    #[test]
    fn steady_rtt_converges() {
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        for _ in 0..200 {
            e.sample(ms(40));
        }
        assert_eq!(e.srtt(), Some(ms(40)));
        assert_eq!(e.rttvar(), Duration::ZERO);
        // RFC 6298 2.3: the variance term is at least G = 1 ms.
        assert_eq!(e.rto(), ms(41));
    }

    #[test]
    fn granularity_floor_applies() {
        // A zero RTT still yields RTO = 0 + max(G, 0) = 1 ms before clamping.
        let mut e = RttEstimator::new(ms(1000), Duration::ZERO, ms(60_000));
        e.sample(Duration::ZERO);
        assert_eq!(e.rto(), ms(1));
    }

    #[test]
    fn rto_clamped_to_min_and_max() {
        // RFC 6298 2.4 (minimum) and 2.5 (maximum).
        let mut e = est();
        e.sample(ms(10));
        assert_eq!(e.rto(), ms(200)); // 10 + 20 = 30 ms, rounded up
        let mut e = RttEstimator::new(ms(1000), ms(1000), ms(60_000));
        e.sample(ms(100));
        assert_eq!(e.rto(), ms(1000)); // the RFC's own 1 s minimum
        let mut e = est();
        e.sample(ms(100_000));
        assert_eq!(e.rto(), ms(120_000));
        // Inverted bounds: max wins, no panic.
        let e = RttEstimator::new(ms(1000), ms(5000), ms(2000));
        assert_eq!(e.rto(), ms(2000));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        // RFC 6298 5.5: RTO <- RTO * 2 on each expiry, up to the maximum.
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        let mut expect = 1000;
        for n in 1..=5 {
            e.backoff();
            expect *= 2;
            assert_eq!(e.backoff_count(), n);
            assert_eq!(e.rto(), ms(expect));
        }
        e.backoff(); // 64 s > 60 s
        assert_eq!(e.rto(), ms(60_000));
        for _ in 0..1000 {
            e.backoff();
        }
        assert_eq!(e.rto(), ms(60_000));
        assert_eq!(e.backoff_count(), 1006);
        e.reset_backoff();
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(1000));
    }

    #[test]
    fn backoff_never_overflows() {
        let mut e = RttEstimator::new(Duration::MAX, ms(1), Duration::MAX);
        for _ in 0..100 {
            e.backoff();
        }
        assert_eq!(e.rto(), Duration::from_micros(u64::MAX));
        let mut e = RttEstimator::new(ms(1), ms(1), Duration::MAX);
        e.backoff = u32::MAX;
        e.backoff();
        assert_eq!(e.backoff_count(), u32::MAX);
        assert_eq!(e.rto(), Duration::from_micros(u64::MAX));
        e.sample(Duration::MAX);
        e.sample(Duration::MAX);
        e.sample(Duration::ZERO);
        let _ = e.rto();
    }

    #[test]
    fn sample_resets_backoff() {
        let mut e = est();
        e.sample(ms(100));
        e.backoff();
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        e.sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        // RTTVAR = 3/4*50 = 37.5; RTO = 100 + 150 = 250 ms.
        assert_eq!(e.rto(), ms(250));
    }

    #[test]
    fn handshake_retransmitted_restarts_at_3s() {
        // RFC 6298 5.7.
        let mut e = est();
        e.backoff(); // SYN timed out once
        assert_eq!(e.rto(), ms(2000));
        e.on_handshake_retransmitted();
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(3000));
        // Backoff continues from 3 s.
        e.backoff();
        assert_eq!(e.rto(), ms(6000));
        // A later sample replaces it.
        e.sample(ms(100));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn handshake_retransmitted_keeps_larger_or_measured_rto() {
        let mut e = RttEstimator::new(ms(5000), ms(200), ms(60_000));
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(5000));
        let mut e = est();
        e.sample(ms(100));
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(300));
        // The maximum still applies.
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(2000));
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(2000));
    }
}
