//! SEGMENT ARRIVES (RFC 9293 3.10.7) for a connection that exists.

use super::parts::Prr;
use super::rack::DUP_THRESH;
use super::sent::Mark;
use super::{ev, Conn, Disposition, Env, Timer};
use crate::error::Error;
use crate::seq::SeqNum;
use crate::state::State;
use crate::time::Duration;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOptions};

/// A parsed segment as a connection sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentIn<'a> {
    pub now: Instant,
    /// The IP header carried Congestion Experienced (RFC 3168).
    pub ce: bool,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl SegmentIn<'_> {
    /// SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293 3.4).
    pub fn len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }
}

/// RFC 7323 5.5: TS.Recent older than 24 days is invalid for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

impl Conn {
    /// Processes one segment addressed to this connection.
    pub fn on_segment(&mut self, env: &mut Env, seg: &SegmentIn) -> Disposition {
        self.stats.segments_received += 1;
        match self.state {
            State::Closed | State::Listen => Disposition::Keep,
            State::SynSent => {
                self.on_segment_syn_sent(env, seg);
                Disposition::Keep
            }
            _ => self.on_segment_synchronized(env, seg),
        }
    }

    /// RFC 9293 3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, env: &mut Env, seg: &SegmentIn) {
        let f = seg.flags;
        // First, check the ACK bit.
        if f.ack() {
            // If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless RST) and discard.
            if seg.ack.diff(self.iss) <= 0 || seg.ack.diff(self.snd_max) > 0 {
                if !f.rst() {
                    self.reply_rst_for(env, seg);
                }
                env.stats.drop_segment += 1;
                return;
            }
        }
        // Second, the RST bit.
        if f.rst() {
            // RFC 5961 3.2 leaves SYN-SENT as RFC 793: a RST is acceptable if it acks our SYN.
            if f.ack() {
                env.stats.rst_received += 1;
                self.enter_closed(Some(Error::ConnectionRefused));
            } else {
                env.stats.drop_segment += 1;
            }
            return;
        }
        // Fourth, the SYN bit.
        if !f.syn() {
            env.stats.drop_segment += 1;
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_adv = self.rcv_nxt;
        self.negotiate(env.cfg, seg);
        // RFC 3168 6.1.1: an ECN-setup SYN-ACK has ECE and not CWR.
        self.ecn.enabled =
            env.cfg.ecn && f.ack() && f.contains(TcpFlags::ECE) && !f.contains(TcpFlags::CWR);
        self.last_recv = env.now;
        if f.ack() {
            // Our SYN is acknowledged: SYN-SENT -> ESTABLISHED.
            self.enter_established(env, seg, true);
            self.raise(ev::CONNECTED | ev::WRITABLE);
            self.pending.ack = true;
            if !seg.payload.is_empty() {
                self.accept_text(env, seg.seq + 1, seg.payload);
            }
            if f.fin() {
                self.on_fin(env, seg.seq + 1 + seg.payload.len());
            }
            self.arm_keepalive(env.now);
        } else {
            // Simultaneous open (RFC 9293 3.5 figure 7): SYN-SENT -> SYN-RECEIVED,
            // send SYN,ACK with our original ISS.
            self.update_window_from_syn(seg);
            self.set_state(State::SynReceived);
            self.snd_nxt = self.iss;
            self.pending.syn = true;
            if !seg.payload.is_empty() {
                self.accept_text(env, seg.seq + 1, seg.payload);
            }
        }
    }

    /// `seg` acknowledged our SYN: ESTABLISHED, or FIN-WAIT-1 if the
    /// application closed meanwhile (RFC 9293 3.10.4: the queued FIN goes
    /// once established). `syn_window`: `seg` is a SYN, whose window is
    /// never scaled (RFC 7323 2.2).
    fn enter_established(&mut self, env: &mut Env, seg: &SegmentIn, syn_window: bool) {
        self.snd_una = seg.ack;
        if syn_window {
            self.update_window_from_syn(seg);
        } else {
            self.snd_wnd = usize::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
        }
        self.take_rtt_sample(env.now, seg, true);
        self.handshake_done(env.now);
        self.set_state(if self.fin_queued {
            State::FinWait1
        } else {
            State::Established
        });
        self.arm_keepalive(env.now);
    }

    /// The handshake finished: RTO bookkeeping (RFC 6298 5.7) and congestion state.
    fn handshake_done(&mut self, now: Instant) {
        self.timers.clear(Timer::Retransmit);
        self.pending.syn = false;
        if self.syn_retries > 0 && self.rtt.srtt().is_none() {
            self.rtt.on_handshake_retransmitted();
        }
        self.rtt.reset_backoff();
        self.snd_nxt = self.snd_nxt.max(self.snd_una);
        self.snd_max = self.snd_max.max(self.snd_una);
        self.recovery.high = self.snd_una;
        self.cc.set_mss(self.send_mss());
        self.last_send = now;
    }

    /// SEGMENT ARRIVES in SYN-RECEIVED and the synchronized states.
    fn on_segment_synchronized(&mut self, env: &mut Env, seg: &SegmentIn) -> Disposition {
        let f = seg.flags;

        // Simultaneous open: the peer's SYN,ACK in SYN-RECEIVED acknowledging our
        // SYN completes the handshake (its SYN is the one we already have).
        if self.state == State::SynReceived
            && f.syn()
            && f.ack()
            && !f.rst()
            && seg.seq == self.irs
            && seg.ack == self.snd_max
            && self.listener.is_none()
        {
            self.enter_established(env, seg, true);
            self.raise(ev::CONNECTED | ev::WRITABLE);
            self.pending.ack = true;
            return Disposition::Keep;
        }
        // A retransmitted SYN in SYN-RECEIVED: our SYN,ACK was lost; send it
        // again. Any other SYN goes through the sequence check first (RFC
        // 9293 3.10.7.4; Linux `tcp_check_req`): one outside the window is
        // only ACKed, so a spoofer knowing the 4-tuple cannot reset the embryo.
        if self.state == State::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && seg.seq == self.irs
        {
            self.snd_nxt = self.iss;
            self.pending.syn = true;
            return Disposition::Keep;
        }

        // RFC 7323 5.3 PAWS: reject old duplicates by timestamp (not RSTs).
        if self.ts_enabled && !f.rst() {
            if let Some((tsval, _)) = seg.options.timestamps {
                let stale = env.now.saturating_duration_since(self.ts_recent_at) > PAWS_IDLE;
                if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 && !stale {
                    env.stats.drop_segment += 1;
                    self.pending.ack = true;
                    return Disposition::Keep;
                }
            }
        }

        // First: is the sequence number acceptable? (RFC 9293 3.10.7.4 table)
        if !self.seq_acceptable(seg) {
            env.stats.drop_segment += 1;
            if !seg.payload.is_empty() && (seg.seq + seg.payload.len()).diff(self.rcv_nxt) <= 0 {
                // RFC 2883: report the duplicate in a D-SACK block.
                self.dsack = Some((seg.seq, seg.seq + seg.payload.len()));
            }
            if !f.rst() {
                // A SYN in TIME-WAIT is judged below (it may reopen).
                if self.state == State::TimeWait && f.syn() && !f.ack() {
                    return self.syn_in_time_wait(env, seg);
                }
                if self.state == State::TimeWait && f.fin() && seg.seq + seg.len() == self.rcv_nxt {
                    // A retransmission of the peer's FIN: acknowledge it and
                    // restart the 2 MSL timeout (RFC 9293 3.10.7.4, TIME-WAIT).
                    self.timers
                        .set(Timer::Close, env.now + env.cfg.msl + env.cfg.msl);
                }
                self.pending.ack = true;
            }
            return Disposition::Keep;
        }

        // Second: the RST bit, with RFC 5961 3.2 protection.
        if f.rst() {
            env.stats.rst_received += 1;
            if seg.seq == self.rcv_nxt {
                match self.state {
                    State::SynReceived if self.listener.is_some() => {
                        // Passive open: back to LISTEN, i.e. this embryo goes away.
                        self.enter_closed(None);
                    }
                    State::SynReceived => self.enter_closed(Some(Error::ConnectionRefused)),
                    // RFC 1337 3: ignore RST in TIME-WAIT (no "assassination"):
                    // the 2 MSL wait protects the next incarnation.
                    State::TimeWait => {}
                    State::Closing | State::LastAck => self.enter_closed(None),
                    // Linux `tcp_reset()`: in CLOSE-WAIT the peer already
                    // ended its stream; the reset only means our data will
                    // not be taken: EPIPE, and reads stay at end of stream.
                    State::CloseWait => {
                        self.enter_closed(Some(Error::BrokenPipe));
                        self.raise(ev::RESET);
                    }
                    _ => self.enter_closed(Some(Error::ConnectionReset)),
                }
            } else {
                self.challenge_ack(env);
            }
            return Disposition::Keep;
        }

        // Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2).
        if f.syn() {
            if self.state == State::TimeWait {
                return self.syn_in_time_wait(env, seg);
            }
            if self.state == State::SynReceived && self.listener.is_some() {
                // RFC 9293 3.10.7.4 fourth, SYN-RECEIVED: a SYN in the window
                // of a passive open returns it to LISTEN (this embryo goes;
                // Linux resets it too).
                self.pending.rst = true;
                self.enter_closed(None);
                return Disposition::Keep;
            }
            self.challenge_ack(env);
            return Disposition::Keep;
        }

        // Fifth: the ACK field.
        if !f.ack() {
            env.stats.drop_segment += 1;
            return Disposition::Keep;
        }
        let mut disposition = Disposition::Keep;
        if self.state == State::SynReceived {
            // RFC 9293: if SND.UNA < SEG.ACK =< SND.NXT, enter ESTABLISHED.
            if seg.ack.diff(self.snd_una) > 0 && seg.ack.diff(self.snd_max) <= 0 {
                self.enter_established(env, seg, false);
                if self.listener.is_some() {
                    disposition = Disposition::Established;
                } else {
                    self.raise(ev::CONNECTED);
                }
                self.raise(ev::WRITABLE);
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                self.reply_rst_for(env, seg);
                env.stats.drop_segment += 1;
                return Disposition::Keep;
            }
        }
        if !self.process_ack(env, seg) {
            return disposition;
        }
        // Timestamps: RFC 7323 4.3 update TS.Recent if SEG.SEQ =< Last.ACK.sent.
        if self.ts_enabled {
            if let Some((tsval, _)) = seg.options.timestamps {
                if seg.seq.diff(self.last_ack_sent) <= 0
                    && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0
                {
                    self.ts_recent = tsval;
                    self.ts_recent_at = env.now;
                }
            }
        }
        self.last_recv = env.now;
        self.keepalive_sent = 0;
        if matches!(self.state, State::Established | State::CloseWait) {
            self.arm_keepalive(env.now);
        }

        // RFC 3168 6.1.3: echo CE with ECE until the sender's CWR.
        if self.ecn.enabled {
            if seg.flags.contains(TcpFlags::CWR) {
                self.ecn.ece_pending = false;
            }
            if seg.ce && !seg.payload.is_empty() {
                self.ecn.ece_pending = true;
                self.pending.ack = true;
            }
        }

        // Sixth: URG is not supported beyond treating data in-band (RFC 6093).
        // Seventh: segment text.
        if !seg.payload.is_empty() {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.user_closed {
                        // Data for an application that is gone: reset (RFC 9293 3.10.4 /
                        // RFC 2525 2.17), as Linux does.
                        self.pending.rst = true;
                        self.enter_closed(None);
                        return disposition;
                    }
                    if seg.seq == self.rcv_nxt {
                        // RFC 1122 4.2.3.2: learn what full-sized means here.
                        // (A super-segment counts as parts of our MSS.)
                        let remnant = f.contains(TcpFlags::PSH) || f.fin();
                        self.rcv_mss
                            .measure(seg.payload.len(), remnant, self.our_mss);
                    }
                    self.accept_text(env, seg.seq, seg.payload);
                }
                // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already sent
                // FIN; ignore the text.
                _ => {}
            }
        }

        // Eighth: the FIN bit.
        if f.fin() {
            let fin_seq = seg.seq + seg.payload.len();
            self.on_fin(env, fin_seq);
        }
        disposition
    }

    /// RFC 9293 3.10.7.4 "first check sequence number", with the RST
    /// acceptability of RFC 5961 3.2 applied later.
    fn seq_acceptable(&self, seg: &SegmentIn) -> bool {
        let wnd = self
            .rcv_adv
            .since(self.rcv_nxt)
            .max(if self.state == State::SynReceived {
                1
            } else {
                0
            });
        let len = seg.len();
        let nxt = self.rcv_nxt;
        // A segment that straddles RCV.NXT is acceptable if any part lies in the window.
        match (len, wnd) {
            // Zero-length segments: RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND. The
            // right edge is inclusive (as in Linux) so that a peer that filled
            // the window exactly can still be heard; with a zero window this
            // is SEG.SEQ = RCV.NXT, as RFC 9293 requires.
            (0, _) => seg.seq.diff(nxt) >= 0 && seg.seq.diff(nxt + wnd) <= 0,
            (_, 0) => {
                // Zero window: only ACK/RST/URG processing; text is not acceptable,
                // but RFC 9293 says to still process ACKs: treat a segment starting
                // at RCV.NXT as acceptable so its ACK is used; its text is trimmed.
                seg.seq == nxt
            }
            _ => {
                // RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND, or the segment's
                // later bytes reach into the window: then it covers RCV.NXT
                // itself. Both in unsigned distances modulo 2^32, so a
                // sequence number 2^31 away (unordered) is never taken for
                // one that overlaps.
                seg.seq.in_range(nxt, nxt + wnd) || nxt.in_range(seg.seq, seg.seq + len)
            }
        }
    }

    /// RFC 5961 7: a challenge ACK, limited per connection (at most one
    /// per `challenge_ack_interval`, as Linux's per-socket limit) and by a
    /// randomised stack-wide ceiling (see `RateLimiter`).
    fn challenge_ack(&mut self, env: &mut Env) {
        let recent = self.last_challenge.is_some_and(|at| {
            env.now.saturating_duration_since(at) < env.cfg.challenge_ack_interval
        });
        if !recent && env.challenge.allow(env.now, env.cfg.challenge_ack_limit) {
            env.stats.challenge_acks += 1;
            self.last_challenge = Some(env.now);
            self.pending.challenge = true;
        } else {
            env.stats.challenge_acks_suppressed += 1;
        }
    }

    /// RFC 9293 3.10.7.4 / RFC 6191: a SYN in TIME-WAIT may start a new
    /// incarnation if it is newer than what the old one saw; otherwise challenge.
    fn syn_in_time_wait(&mut self, env: &mut Env, seg: &SegmentIn) -> Disposition {
        let newer_seq = seg.seq.diff(self.rcv_nxt) > 0;
        // RFC 6191 2: timestamps decide only when both incarnations use
        // them; a SYN without TSopt (timestamps will not be used) is judged
        // by its sequence number, as Linux does.
        let acceptable = match (self.ts_enabled, seg.options.timestamps) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => newer_seq,
        };
        if acceptable {
            Disposition::ReopenFromTimeWait
        } else {
            self.challenge_ack(env);
            Disposition::Keep
        }
    }

    /// The fifth check for synchronized states. Returns false if the segment
    /// must be dropped.
    fn process_ack(&mut self, env: &mut Env, seg: &SegmentIn) -> bool {
        let ack = seg.ack;
        // RFC 5961 5.2: acceptable iff SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT.
        if ack.diff(self.snd_max) > 0 {
            // Acks something not yet sent: send an ACK, drop.
            self.pending.ack = true;
            env.stats.drop_segment += 1;
            return false;
        }
        let max_wnd = self.max_snd_wnd.max(1);
        if ack.diff(self.snd_una - max_wnd) < 0 {
            self.pending.ack = true;
            env.stats.drop_segment += 1;
            return false;
        }

        let acked = ack.since(self.snd_una);
        let old_wnd = self.snd_wnd;
        let sacked_before = self.sent.sacked_bytes();
        let was_in_recovery = self.recovery.recover.is_some();
        // RFC 3168 6.1.2: ECE means congestion; react once per window of data.
        if self.ecn.enabled
            && seg.flags.contains(TcpFlags::ECE)
            && self.recovery.recover.is_none()
            && self.snd_una.diff(self.ecn.recover) >= 0
            && self.snd_max != self.snd_una
        {
            let flight = self.congestion_flight();
            self.cc.on_congestion_event(env.now, flight);
            self.ecn.recover = self.snd_max;
            self.ecn.cwr_pending = true;
            env.stats.ecn_reductions += 1;
        }
        // Window update (RFC 9293 3.10.7.4): only "if SND.UNA =< SEG.ACK =<
        // SND.NXT" (the upper bound was checked above; an older ACK, even
        // on a newer segment, must not touch the window), and then if
        // SND.WL1 < SEG.SEQ, or equal and SND.WL2 =< SEG.ACK.
        if ack.diff(self.snd_una) >= 0
            && (self.snd_wl1.diff(seg.seq) < 0
                || (self.snd_wl1 == seg.seq && self.snd_wl2.diff(ack) <= 0))
        {
            self.snd_wnd = usize::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
        }
        if self.snd_wnd > 0 && old_wnd == 0 {
            // The window opened: leave persist mode. A probe byte still
            // unacknowledged is now ordinary data in flight: it gets the
            // retransmission timer (RFC 6298 5.1).
            self.timers.clear(Timer::Persist);
            self.persist_backoff = 0;
            self.pending.window_probe = false;
            if self.snd_max != self.snd_una && !self.timers.is_set(Timer::Retransmit) {
                self.timers.set(Timer::Retransmit, env.now + self.rtt.rto());
            }
        }

        let mut dsack_seen = false;
        if self.sack_enabled {
            for (i, &(l, r)) in seg.options.sack.as_slice().iter().enumerate() {
                // RFC 2883 4: a first block below the cumulative ACK, or
                // inside the second block, reports a duplicate.
                let dsack = i == 0
                    && (r.diff(ack) <= 0
                        || seg
                            .options
                            .sack
                            .as_slice()
                            .get(1)
                            .is_some_and(|&(l2, r2)| l.diff(l2) >= 0 && r.diff(r2) <= 0));
                if dsack {
                    dsack_seen = true;
                    self.on_dsack(l, r);
                } else {
                    // No TSecr test for SACKed data: the receiver echoes
                    // TS.Recent, which out-of-order segments do not update
                    // (RFC 7323 4.3), so it would predate a retransmission
                    // that did arrive. The min-RTT test remains (as Linux).
                    let (rack, now) = (&mut self.rack, env.now);
                    self.sent.on_sack(l, r, |d| rack.on_delivered(now, None, d));
                }
            }
        }
        if acked > 0 {
            self.on_new_ack(env, seg, acked);
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && self.snd_wnd == old_wnd
            && self.snd_wnd > 0
            && self.snd_nxt != self.snd_una
        {
            // RFC 5681 2: a duplicate ACK.
            self.on_dup_ack(env);
        }

        // RFC 8985 7.4: the tail loss probe's episode ends once the probe
        // is acknowledged or SACKed; RACK (below) then marks whatever was
        // sent before it and is still missing.
        if let Some(high) = self.tlp.high {
            if ack.diff(high) >= 0 || self.sent.is_sacked(high - 1) {
                self.tlp.high = None;
            }
        }
        if self.sack_enabled && self.snd_una != self.snd_max && self.sent.is_sacked(self.snd_una) {
            // RFC 2018 8: the ACK stops at data the peer SACKed: it
            // reneged (discarded what it had SACKed), or SACKs in a way no
            // receiver holding the data would. As Linux
            // (`tcp_check_sack_reneging`), give it max(SRTT/2, 10 ms) for
            // more ACKs to set this right; then the retransmission timeout
            // forgets the SACKs and resends from the left edge.
            env.stats.sack_reneging += 1;
            let grace = self
                .rtt
                .srtt()
                .map_or(Duration::ZERO, |s| s / 2)
                .max(Duration::from_millis(10));
            let at = env.now + grace;
            if self.timers.get(Timer::Retransmit).is_none_or(|t| t > at) {
                self.timers.set(Timer::Retransmit, at);
            }
        }
        if self.sack_enabled {
            let left_recovery = was_in_recovery && self.recovery.recover.is_none();
            self.rack
                .end_ack(dsack_seen, self.snd_una, self.snd_nxt, left_recovery);
            self.rack_detect_loss(env.now);
        }
        if self.sack_enabled && self.recovery.recover.is_some() {
            // RFC 6937 DeliveredData: change in SND.UNA plus change in SACKed bytes.
            let delivered = (acked + self.sent.sacked_bytes()).saturating_sub(sacked_before);
            self.prr_on_ack(delivered);
        }
        self.maybe_enter_sack_recovery(env);

        // State transitions driven by our FIN being acknowledged.
        if self.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.set_state(State::FinWait2);
                    self.fin_wait2_since = env.now;
                    if self.user_closed {
                        // Orphaned: do not wait for the peer's FIN forever.
                        self.timers
                            .set(Timer::Close, env.now + env.cfg.fin_wait2_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(env),
                State::LastAck => {
                    self.enter_closed(None);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    fn on_new_ack(&mut self, env: &mut Env, seg: &SegmentIn, acked: usize) {
        let ack = seg.ack;
        // Bytes of data acknowledged (the FIN occupies a sequence number, not a byte).
        let data_acked = acked.min(self.send_buf.len());
        let send_buf_full = self.send_buf.free() < self.send_mss();
        self.send_buf.consume(data_acked);
        self.stats.bytes_acked += data_acked as u64;
        self.snd_una = ack;
        if self.snd_nxt.diff(ack) < 0 {
            // Acknowledges data sent before a timeout rewound SND.NXT.
            self.snd_nxt = ack;
        }
        // RFC 6298 5 and Karn's algorithm: the backed-off RTO stays until a
        // valid RTT sample (`RttEstimator::sample` ends the backoff), not
        // merely until new data is acknowledged; Linux likewise resets
        // `icsk_backoff` only on a valid measurement.
        self.take_rtt_sample(env.now, seg, true);
        self.consecutive_rtos = 0;
        self.persist_backoff = 0;
        if self.sack_enabled {
            let echo = self.echo_millis(env.now, seg);
            let (rack, now) = (&mut self.rack, env.now);
            self.sent
                .on_cumulative_ack(ack, |d| rack.on_delivered(now, echo, d));
        }

        // Congestion control and NewReno recovery (RFC 6582 3.2).
        if let Some(recover) = self.recovery.recover {
            if ack.diff(recover) >= 0 {
                // Full acknowledgment: leave fast recovery.
                self.recovery.recover = None;
                self.recovery.inflation = 0;
                self.recovery.dup_acks = 0;
                let flight = self.flight_size();
                self.cc.on_recovery_exit(env.now, flight);
            } else if self.sack_enabled {
                // RFC 6675: the scoreboard drives retransmissions; nothing to do.
            } else {
                // Partial acknowledgment: retransmit the next hole, deflate.
                self.recovery.inflation = self.recovery.inflation.saturating_sub(data_acked);
                if data_acked >= self.send_mss() {
                    self.recovery.inflation += self.send_mss();
                }
                self.pending.rtx_head = true;
                env.stats.fast_retransmits += 1;
            }
        } else {
            self.recovery.dup_acks = 0;
            // RFC 9406 rounds: a round ends when an ACK covers what was sent
            // at its start.
            if ack.diff(self.round_end) >= 0 {
                self.cc.on_round_start(env.now);
                self.round_end = self.snd_nxt;
            }
            // The sender was application-limited if one more full segment
            // would still have fit (RFC 7661 spirit): no window growth then.
            let app_limited = self.flight_size() + acked + self.send_mss() <= self.cc.window();
            let rtt = self.last_rtt.or(self.rtt.srtt());
            self.cc.on_ack(env.now, data_acked.max(1), rtt, app_limited);
        }
        self.size_send_buffer(send_buf_full);

        // RFC 6298 5.2/5.3: stop the timer when all is acked, else restart it.
        if self.snd_una == self.snd_max {
            self.timers.clear(Timer::Retransmit);
            self.unacked_since = None;
        } else {
            self.timers.set(Timer::Retransmit, env.now + self.rtt.rto());
            self.unacked_since = Some(env.now);
        }
        self.arm_tlp(env.now);
        if data_acked > 0 && self.state.can_send() && !self.fin_queued {
            self.raise(ev::WRITABLE);
        }
    }

    fn on_dup_ack(&mut self, env: &mut Env) {
        self.recovery.dup_acks += 1;
        let mss = self.send_mss();
        if self.sack_enabled {
            // Recovery entry and retransmissions follow the scoreboard.
            return;
        }
        if self.recovery.recover.is_some() {
            // RFC 5681 3.2 step 4: inflate by one segment per further duplicate.
            self.recovery.inflation += mss;
            return;
        }
        // RFC 6582 3.2 step 1/2: enter fast recovery on the third duplicate
        // unless the loss is below the last recovery point.
        if self.recovery.dup_acks == 3 && self.snd_una.diff(self.recovery.high) >= 0 {
            let flight = self.flight_size();
            self.cc.on_congestion_event(env.now, flight);
            self.recovery.recover = Some(self.snd_max);
            self.recovery.high = self.snd_max;
            self.recovery.inflation = 3 * mss;
            self.pending.rtx_head = true;
            self.rtt_seq = None;
            env.stats.fast_retransmits += 1;
        }
    }

    /// RTT sampling: Karn's algorithm on one timed segment at a time (RFC 6298 3).
    fn take_rtt_sample(&mut self, now: Instant, seg: &SegmentIn, advanced: bool) {
        // RFC 7323 4 (RTTM): with timestamps, every ACK of new data gives a
        // sample from TSecr (1 ms ticks); retransmission ambiguity does not
        // arise because TSecr echoes the TSval of the segment that arrived.
        if self.ts_enabled && advanced {
            // An implausible echo (see `echo_age`) falls back to the
            // Karn-timed segment below.
            if let Some(ms) = self.echo_age(now, seg) {
                let rtt = Duration::from_millis(u64::from(ms));
                self.rtt.sample(rtt);
                self.last_rtt = Some(rtt);
                self.rtt_seq = None;
                return;
            }
        }
        if let Some((seq, sent_at)) = self.rtt_seq {
            if seg.ack.diff(seq) >= 0 {
                let rtt = now.saturating_duration_since(sent_at);
                self.rtt.sample(rtt);
                self.last_rtt = Some(rtt);
                self.rtt_seq = None;
            }
        }
    }

    /// How long ago (ms) we sent the TSval this segment echoes, if the echo
    /// is plausible. RFC 7323 4.3 and RFC 6298: only an echo of a TSval we
    /// sent recently may become an RTT sample. Linux ignores TSecr = 0,
    /// and a value in the future, or older than the oldest data in flight
    /// (`flight_start`), was never sent for what this ACK covers: one such
    /// echo would otherwise set SRTT to hours and the RTO to its maximum.
    fn echo_age(&self, now: Instant, seg: &SegmentIn) -> Option<u32> {
        let (_, tsecr) = seg.options.timestamps?;
        if !self.ts_enabled || tsecr == 0 {
            return None;
        }
        let age = self.ts_now(now).wrapping_sub(tsecr);
        // (+1: TSvals are whole milliseconds, truncated.)
        let flight = now.saturating_duration_since(self.flight_start).as_millis() + 1;
        (age < 1 << 31 && u128::from(age) <= flight).then_some(age)
    }

    /// The ACK's TSecr as our clock in milliseconds (RFC 8985 6.2 step 2
    /// compares it with send times), if plausible (see `echo_age`).
    fn echo_millis(&self, now: Instant, seg: &SegmentIn) -> Option<u32> {
        self.echo_age(now, seg)?;
        seg.options
            .timestamps
            .map(|(_, ecr)| ecr.wrapping_sub(self.ts_offset))
    }

    /// RFC 6675 5 with RACK-TLP (RFC 8985 6.2): enter loss recovery once
    /// RACK deems a segment lost. A peer that sends duplicate ACKs without
    /// SACK blocks gets the RFC 6675 DupThresh rule, the head marked lost.
    pub(super) fn maybe_enter_sack_recovery(&mut self, env: &mut Env) {
        if !self.sack_enabled
            || self.recovery.recover.is_some()
            || self.snd_max == self.snd_una
            || self.snd_una.diff(self.recovery.high) < 0
        {
            return;
        }
        if self.recovery.dup_acks as usize >= DUP_THRESH && self.sent.sacked_bytes() == 0 {
            let una = self.snd_una;
            self.sent.mark_lost_where(|rec| {
                if rec.start.diff(una) <= 0 {
                    Mark::Lost
                } else {
                    Mark::Stop
                }
            });
        }
        if self.sent.lost_bytes() == 0 {
            return;
        }
        // RFC 6937 initialization; RFC 6675 5 step (C): the first segment
        // deemed lost goes at once.
        self.prr = Prr::start(self.flight_size(), self.send_mss());
        // The reduction is undone if this proves spurious (RFC 2883).
        self.recovery.undo_armed = true;
        self.sent.forget_retransmissions();
        self.recovery.rtx = 0;
        self.recovery.dsacks = 0;
        let flight = self.congestion_flight();
        self.cc.on_congestion_event(env.now, flight);
        self.recovery.recover = Some(self.snd_max);
        self.recovery.high = self.snd_max;
        self.recovery.inflation = 0;
        self.rtt_seq = None;
        env.stats.fast_retransmits += 1;
        // In recovery the reordering window may differ (RFC 8985 6.2 step 4).
        self.rack_detect_loss(env.now);
    }

    /// A D-SACK block (RFC 2883): something arrived twice at the peer. If
    /// it reports one of our retransmissions, that one was spurious: the
    /// path reorders. Once every retransmission of the last recovery is
    /// reported so, undo its window reduction. A D-SACK of data we never
    /// retransmitted only shows the network duplicated a packet, and says
    /// nothing about the recovery (RFC 3708 2, RFC 2883 5).
    fn on_dsack(&mut self, left: SeqNum, right: SeqNum) {
        if !self.sent.claim_dsack(left, right) {
            return;
        }
        self.recovery.dsacks += 1;
        if self.recovery.undo_armed
            && self.recovery.rtx > 0
            && self.recovery.dsacks >= self.recovery.rtx
        {
            self.cc.undo_congestion_event();
            self.recovery.undo_armed = false;
            // Nothing was lost after all: leave recovery without the exit's
            // window moderation (as Linux's D-SACK undo does), unless RACK
            // still holds segments it deems lost.
            if self.recovery.recover.is_some() && self.sent.lost_bytes() == 0 {
                self.recovery.recover = None;
                self.recovery.high = self.snd_una;
                self.recovery.inflation = 0;
            }
        }
    }

    /// Stores in-window text at `seq` (RFC 9293 3.10.7.4 seventh), reassembling
    /// out-of-order data in the receive buffer.
    pub(super) fn accept_text(&mut self, env: &mut Env, seq: SeqNum, data: &[u8]) {
        // Trim what we already have.
        let (seq, data) = if seq.diff(self.rcv_nxt) < 0 {
            let skip = self.rcv_nxt.since(seq);
            if skip >= data.len() {
                // Entirely old: a duplicate; ACK at once, with a D-SACK
                // block (RFC 2883) so the peer learns it retransmitted needlessly.
                self.dsack = Some((seq, seq + data.len()));
                self.pending.ack = true;
                return;
            }
            (self.rcv_nxt, &data[skip..])
        } else {
            (seq, data)
        };
        let offset = seq.since(self.rcv_nxt);
        let stored = self.recv_buf.write_at(offset, data);
        if stored == 0 {
            // No room at all (window probe or a peer overrunning the window).
            env.stats.drop_segment += 1;
            self.pending.ack = true;
            return;
        }
        let had_holes = !self.assembler.is_empty();
        self.assembler.add(offset, stored);
        if offset > 0 && self.sack_enabled {
            self.note_sack_arrival();
        }
        let ready = self.assembler.pop_front();
        if ready > 0 {
            self.recv_buf.commit(ready);
            self.rcv_nxt += ready;
            self.stats.bytes_received += ready as u64;
            if self.recv_buffer_max > self.recv_buf.capacity() {
                self.autotune(env.now, ready);
            }
            self.raise(ev::READABLE);
            // A FIN that arrived early is now in order.
            if let Some(fin) = self.fin_recv_seq {
                if fin == self.rcv_nxt {
                    self.fin_recv_seq = None;
                    self.on_fin(env, fin);
                }
            }
        }
        if offset > 0 || had_holes {
            // RFC 5681 4.2: out-of-order data, or data filling a hole: ACK at once.
            self.pending.ack = true;
        } else {
            // RFC 9293 3.8.6.3 / RFC 1122 4.2.3.2: ACK at least every second
            // full-sized segment; otherwise delay. Full-sized is the peer's
            // segment size as learnt from what arrives (`RcvMss`); smaller
            // segments wait for the timer. A super-segment (GRO/TSO,
            // larger than the MSS) counts as the full-sized segments it holds.
            let full = stored / self.rcv_mss.get().max(1);
            self.unacked_segments = self
                .unacked_segments
                .saturating_add(u32::try_from(full).unwrap_or(u32::MAX));
            // TCP_QUICKACK (`SockOpt::QuickAck`): no delay while it is set.
            if self.unacked_segments >= 2 || self.opts.quickack {
                self.pending.ack = true;
            } else {
                self.timers
                    .set_if_unset(Timer::DelayedAck, env.now + env.cfg.delayed_ack);
            }
        }
    }

    /// The peer's FIN at `fin_seq` (RFC 9293 3.10.7.4 eighth).
    fn on_fin(&mut self, env: &mut Env, fin_seq: SeqNum) {
        if fin_seq != self.rcv_nxt {
            // Out of order: remember it, ACK what we have.
            if fin_seq.diff(self.rcv_nxt) > 0 {
                self.fin_recv_seq = Some(fin_seq);
            }
            self.pending.ack = true;
            return;
        }
        match self.state {
            State::SynReceived | State::Established => {
                self.rcv_nxt += 1;
                self.set_state(State::CloseWait);
                self.raise(ev::PEER_CLOSED | ev::READABLE);
            }
            State::FinWait1 => {
                self.rcv_nxt += 1;
                self.raise(ev::PEER_CLOSED | ev::READABLE);
                if self.fin_acked() {
                    self.enter_time_wait(env);
                } else {
                    // Simultaneous close.
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => {
                self.rcv_nxt += 1;
                self.raise(ev::PEER_CLOSED | ev::READABLE);
                self.enter_time_wait(env);
            }
            State::TimeWait => {
                // A retransmitted FIN: restart the 2 MSL timeout (RFC 9293 3.10.7.4).
                self.timers
                    .set(Timer::Close, env.now + env.cfg.msl + env.cfg.msl);
            }
            // CLOSE-WAIT, CLOSING, LAST-ACK: remain.
            _ => {}
        }
        self.pending.ack = true;
    }

    fn enter_time_wait(&mut self, env: &mut Env) {
        self.set_state(State::TimeWait);
        self.timers.clear_all();
        self.timers
            .set(Timer::Close, env.now + env.cfg.msl + env.cfg.msl);
        self.fin_was_received = true;
    }

    /// Queues `<SEQ=SEG.ACK><CTL=RST>` for an unacceptable ACK (RFC 9293 3.10.7.3/4).
    fn reply_rst_for(&mut self, env: &mut Env, seg: &SegmentIn) {
        let _ = env;
        self.pending.rst_reply = Some(seg.ack);
    }

    /// RFC 1122 4.2.3.6: keep-alive after an idle period.
    /// (Re)arms the keep-alive timer counting idle time from `now`.
    pub(crate) fn arm_keepalive(&mut self, now: Instant) {
        if self.opts.keepalive {
            self.timers
                .set(Timer::KeepAlive, now + self.opts.keepalive_idle);
        } else {
            self.timers.clear(Timer::KeepAlive);
        }
    }
}
