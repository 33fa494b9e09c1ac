//! What a connection sends, and when (RFC 9293 3.8.6, RFC 5681, RFC 6298).

use super::parts::Control;
use super::{Conn, Env, Timer};
use crate::error::Error;
use crate::seq::SeqNum;
use crate::state::State;
use crate::time::Duration;
use crate::wire::{SackBlocks, TcpFlags, TcpOptions, TcpRepr};

/// Persist interval cap (Linux uses TCP_RTO_MAX for probes; 60 s keeps a
/// reopened window from being noticed too late).
const MAX_PERSIST: Duration = Duration::from_secs(60);

impl Conn {
    /// Writes the next TCP segment due into `buf` (room for one segment:
    /// MTU minus the IPv4 header) and returns its length: the first step
    /// of [`Control::ORDER`] that is owed (`Conn::pending`) and produces a
    /// segment.
    pub fn poll_segment(&mut self, env: &mut Env, buf: &mut [u8]) -> Option<usize> {
        let mut last = None;
        while let Some(control) = self.pending.next(self.state, last) {
            if let Some(n) = self.send_control(env, buf, control) {
                return Some(n);
            }
            last = Some(control);
        }
        None
    }

    /// Serves one step of the order, clearing what it owed; `None` if it
    /// produced no segment (the next step is tried).
    fn send_control(&mut self, env: &mut Env, buf: &mut [u8], control: Control) -> Option<usize> {
        match control {
            Control::RstReply => {
                let seq = self.pending.rst_reply.take()?;
                Some(self.emit(env, buf, seq, TcpFlags::RST, 0, 0))
            }
            Control::Rst => {
                self.pending.rst = false;
                let seq = self.snd_max;
                Some(self.emit(env, buf, seq, TcpFlags::RST | TcpFlags::ACK, 0, 0))
            }
            Control::Syn => {
                self.pending.syn = false;
                Some(self.send_syn(env, buf))
            }
            Control::RtxHead => {
                self.pending.rtx_head = false;
                self.retransmit_head(env, buf)
            }
            Control::Tlp => {
                self.pending.tlp = false;
                self.send_tail_loss_probe(env, buf)
            }
            Control::KeepAlive => {
                self.pending.keepalive = false;
                // RFC 1122 4.2.3.6: SEG.SEQ = SND.NXT - 1, no data; elicits an ACK.
                let seq = self.snd_una - 1;
                Some(self.emit(env, buf, seq, TcpFlags::ACK, 0, 0))
            }
            Control::Data => {
                if self.sack_enabled && self.recovery.recover.is_some() {
                    match self.sack_recovery_output(env, buf) {
                        Ok(Some(n)) => return Some(n),
                        Ok(None) => {}
                        // The window is full: no new data either.
                        Err(()) => return None,
                    }
                }
                self.send_data(env, buf)
            }
            Control::Ack => {
                let seq = match self.state {
                    State::SynSent => {
                        // Nothing to acknowledge before the peer's SYN.
                        self.pending.ack = false;
                        self.pending.challenge = false;
                        return None;
                    }
                    State::SynReceived => self.snd_nxt,
                    // SND.MAX, not SND.NXT: after a timeout rewinds SND.NXT
                    // the peer may already hold later data, and would find
                    // SND.NXT below its window and drop the ACK (Linux
                    // likewise never moves snd_nxt back).
                    _ => self.snd_max,
                };
                // (`emit` clears the flags, as for every segment with ACK.)
                Some(self.emit(env, buf, seq, TcpFlags::ACK, 0, 0))
            }
        }
    }

    /// Our SYN (SYN-SENT) or SYN,ACK (SYN-RECEIVED), first or again, and
    /// the retransmission timer, bounded by the connect deadline.
    fn send_syn(&mut self, env: &mut Env, buf: &mut [u8]) -> usize {
        let flags = if self.state == State::SynSent {
            if env.cfg.ecn {
                // RFC 3168 6.1.1: ECN-setup SYN.
                TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR
            } else {
                TcpFlags::SYN
            }
        } else if self.ecn.enabled {
            TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE
        } else {
            TcpFlags::SYN | TcpFlags::ACK
        };
        let n = self.emit(env, buf, self.iss, flags, 0, 0);
        if self.snd_max == self.snd_una {
            self.flight_start = env.now;
        }
        if self.syn_retries > 0 {
            self.stats.retransmits += 1;
            env.stats.retransmits += 1;
        } else if self.rtt_seq.is_none() {
            self.rtt_seq = Some((self.iss + 1, env.now));
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        let rto = self.rtt.rto();
        let at = (env.now + rto).min(self.connect_deadline.max(env.now));
        self.timers.set(Timer::Retransmit, at);
        n
    }

    /// RFC 8985 7.3: a new segment if the peer's window allows, else the
    /// last segment sent again; then the retransmission timer.
    fn send_tail_loss_probe(&mut self, env: &mut Env, buf: &mut [u8]) -> Option<usize> {
        if self.snd_max == self.snd_una || self.recovery.recover.is_some() {
            return None;
        }
        let data_start = self.data_start();
        let unsent = self
            .send_buf
            .len()
            .saturating_sub(self.snd_max.since(data_start));
        let wnd_avail = (self.snd_una + self.snd_wnd).since(self.snd_max);
        let n = if unsent > 0 && wnd_avail > 0 && self.snd_nxt == self.snd_max {
            // One new segment, past cwnd and Nagle.
            self.tlp.new_data = true;
            let n = self.send_data(env, buf);
            self.tlp.new_data = false;
            n?
        } else {
            let data_end = if self.fin_sent() {
                self.fin_at
            } else {
                self.snd_max
            };
            let len = self.send_mss().min(data_end.since(self.snd_una));
            self.retransmit_at(env, buf, data_end - len, len.max(1))
        };
        self.tlp.high = Some(self.snd_max);
        self.timers.set(Timer::Retransmit, env.now + self.rtt.rto());
        Some(n)
    }

    /// Fast retransmit: one segment at SND.UNA, whatever the windows (RFC 5681 3.2).
    fn retransmit_head(&mut self, env: &mut Env, buf: &mut [u8]) -> Option<usize> {
        let outstanding = self.snd_max.since(self.snd_una);
        if outstanding == 0 {
            return None;
        }
        let seq = self.snd_una;
        Some(self.retransmit_at(env, buf, seq, outstanding))
    }

    /// RFC 6675 NextSeg/SetPipe: during SACK recovery, send while PRR
    /// allows, first the segments deemed lost (RACK's marks, RFC 8985 6.2).
    /// Returns `Err(())` when the window is full (nothing else may go).
    fn sack_recovery_output(&mut self, env: &mut Env, buf: &mut [u8]) -> Result<Option<usize>, ()> {
        let mss = self.send_mss();
        let hole = self.sent.first_lost();
        // RFC 6937: send only what PRR allows, a whole segment at a time.
        let want = hole.map_or(mss, |(a, b)| b.since(a).min(mss));
        if self.prr.allow < want {
            return Err(());
        }
        if let Some((a, b)) = hole {
            let n = self.retransmit_at(env, buf, a, b.since(a));
            return Ok(Some(n));
        }
        Ok(None)
    }

    /// Retransmits up to `max_len` bytes (and the FIN if it follows) at `seq`.
    fn retransmit_at(
        &mut self,
        env: &mut Env,
        buf: &mut [u8],
        seq: SeqNum,
        max_len: usize,
    ) -> usize {
        let data_len = self.send_buf.len();
        let offset = seq.since(self.data_start()).min(data_len);
        let (room, options) = self.payload_room(env, buf.len());
        let len = room.min(data_len - offset).min(max_len);
        let fin = self.fin_queued && offset + len == data_len && self.fin_sent();
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && offset + len == data_len {
            flags |= TcpFlags::PSH;
        }
        let n = self.emit_with(buf, seq, flags, offset, len, options);
        if self.sack_enabled {
            self.sent
                .on_send(seq, seq + len + usize::from(fin), env.now, true);
        }
        self.recovery.rtx += 1;
        self.prr_sent(len + usize::from(fin));
        self.stats.retransmits += 1;
        env.stats.retransmits += 1;
        if !self.timers.is_set(Timer::Retransmit) {
            self.timers.set(Timer::Retransmit, env.now + self.rtt.rto());
        }
        n
    }

    /// New data (or a go-back-N retransmission after a timeout), and the FIN.
    fn send_data(&mut self, env: &mut Env, buf: &mut [u8]) -> Option<usize> {
        let now = env.now;
        // Resending after a timeout: skip what the peer has SACKed.
        while self.snd_nxt.diff(self.snd_max) < 0 {
            match self.sent.sacked_run_end(self.snd_nxt) {
                Some(end) => self.snd_nxt = end.min(self.snd_max),
                None => break,
            }
        }
        let data_start = self.data_start();
        let buf_len = self.send_buf.len();
        let sent = self.snd_nxt.since(data_start).min(buf_len);
        let unsent = buf_len - sent;
        let fin_unsent = self.fin_queued && self.snd_nxt.diff(self.fin_at) <= 0;
        if unsent == 0 && !fin_unsent {
            self.timers.clear(Timer::Persist);
            return None;
        }
        let in_flight = if self.sack_enabled && self.recovery.recover.is_some() {
            // RFC 6675: the scoreboard's pipe estimate, not SND.NXT - SND.UNA.
            self.pipe()
        } else {
            self.snd_nxt.since(self.snd_una)
        };
        // RFC 5681 4.1: restart from the restart window after an idle RTO.
        if in_flight == 0
            && self.snd_max == self.snd_una
            && now.saturating_duration_since(self.last_send) > self.rtt.rto()
        {
            self.cc.on_idle_restart(now);
        }
        let mss = self.send_mss();
        let (room, options) = self.payload_room(env, buf.len());
        let wnd_avail = (self.snd_una + self.snd_wnd).since(self.snd_nxt);
        // RFC 3042 limited transmit: the first two duplicate ACKs each let
        // one new segment out.
        let limited =
            if self.recovery.recover.is_none() && (1..=2).contains(&self.recovery.dup_acks) {
                self.recovery.dup_acks as usize * mss
            } else {
                0
            };
        let cwnd = self.cc.window() + self.recovery.inflation + limited;
        let sack_recovery = self.sack_enabled && self.recovery.recover.is_some();
        let cwnd_avail = if self.tlp.new_data {
            mss
        } else if sack_recovery {
            // RFC 6937: in recovery PRR decides how much may go.
            self.prr.allow
        } else {
            cwnd.saturating_sub(in_flight)
        };
        let is_retx = self.snd_nxt.diff(self.snd_max) < 0;
        let probe = std::mem::take(&mut self.pending.window_probe);
        let single = is_retx || probe || self.tlp.new_data || sack_recovery;
        let max_len = self.gso_room(env, room, options.len(), buf.len(), single);
        let mut len = unsent.min(max_len).min(wnd_avail).min(cwnd_avail);
        if is_retx {
            // Do not run into data the peer already holds.
            if let Some(next) = self.sent.next_sacked_after(self.snd_nxt) {
                len = len.min(next.since(self.snd_nxt));
            }
        }
        if probe && len == 0 && unsent > 0 && in_flight == 0 {
            return Some(self.send_window_probe(env, buf, sent));
        }
        len = self.gso_trim(len, room, unsent, in_flight, fin_unsent);
        let fin = fin_unsent && len == unsent;
        // Sender silly window avoidance and Nagle (RFC 9293 3.8.6.2.1, RFC 1122 4.2.3.4).
        let send = if len == 0 {
            fin && (cwnd_avail > 0 || in_flight == 0)
        } else {
            len >= mss.min(room)
                || is_retx
                || self.tlp.new_data
                || probe
                || (len == unsent && (self.opts.nodelay || in_flight == 0 || fin))
                || (self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2 && in_flight == 0)
        };
        if !send {
            if unsent > 0 && in_flight == 0 && !self.timers.is_set(Timer::Persist) {
                // Nothing in flight to bring an ACK: probe the window (RFC 9293 3.8.6.1).
                self.arm_persist(env);
            }
            return None;
        }
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && len == unsent {
            flags |= TcpFlags::PSH;
        }
        let seq = self.snd_nxt;
        let n = self.emit_with(buf, seq, flags, sent, len, options);
        self.gso_sent(env, len, room);
        if is_retx {
            self.stats.retransmits += 1;
            env.stats.retransmits += 1;
        } else {
            self.stats.bytes_sent += len as u64;
            if self.rtt_seq.is_none() && len > 0 {
                self.rtt_seq = Some((seq + len, now));
            }
        }
        if sack_recovery {
            self.prr_sent(len + usize::from(fin));
        }
        if self.sack_enabled {
            self.sent
                .on_send(seq, seq + len + usize::from(fin), now, is_retx);
        }
        if self.snd_max == self.snd_una {
            self.flight_start = now;
        }
        self.snd_nxt = seq + len + usize::from(fin);
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.last_send = now;
        if !self.timers.is_set(Timer::Retransmit) {
            // RFC 6298 5.1.
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }
        if self.unacked_since.is_none() {
            self.unacked_since = Some(now);
        }
        if !is_retx && !self.tlp.new_data {
            self.arm_tlp(now);
        }
        Some(n)
    }

    fn arm_persist(&mut self, env: &Env) {
        let backoff = 1u32 << self.persist_backoff.min(16);
        let ivl = (self.rtt.rto() * backoff)
            .min(env.cfg.max_rto)
            .min(MAX_PERSIST);
        self.timers.set(Timer::Persist, env.now + ivl);
    }

    /// A zero-window probe (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17): one new
    /// byte past the window. SND.NXT stays put (the byte is not "in flight"
    /// for the retransmission timer; the persist timer repeats the probe),
    /// but SND.MAX covers it so the peer may acknowledge it if it has room.
    fn send_window_probe(&mut self, env: &mut Env, buf: &mut [u8], offset: usize) -> usize {
        let seq = self.snd_nxt;
        let n = self.emit(env, buf, seq, TcpFlags::ACK, offset, 1);
        if self.snd_max == self.snd_una {
            self.flight_start = env.now;
        }
        self.snd_max = self.snd_max.max(seq + 1);
        self.arm_persist(env);
        n
    }

    /// Builds one segment in `buf`: header, options, `len` bytes of the send
    /// buffer from `offset`, checksum.
    pub(super) fn emit(
        &mut self,
        env: &mut Env,
        buf: &mut [u8],
        seq: SeqNum,
        flags: TcpFlags,
        offset: usize,
        len: usize,
    ) -> usize {
        let options = self.options_for(env, flags);
        self.emit_with(buf, seq, flags, offset, len, options)
    }

    /// `emit` with the options already computed (the data paths size the
    /// payload from them, so they are built once per segment).
    #[allow(clippy::too_many_arguments)]
    fn emit_with(
        &mut self,
        buf: &mut [u8],
        seq: SeqNum,
        flags: TcpFlags,
        offset: usize,
        len: usize,
        options: TcpOptions,
    ) -> usize {
        let syn = flags.syn();
        let rst = flags.rst();
        let mut flags = flags;
        self.ecn.out = 0;
        if self.ecn.enabled && !syn && !rst {
            if self.ecn.ece_pending && flags.ack() {
                flags |= TcpFlags::ECE;
            }
            // New data only (RFC 3168 6.1.5: not retransmissions, not pure ACKs).
            if len > 0 && seq.diff(self.snd_max) >= 0 {
                self.ecn.out = 0b10;
                if self.ecn.cwr_pending {
                    flags |= TcpFlags::CWR;
                    self.ecn.cwr_pending = false;
                }
            }
        }
        let window = if rst {
            0
        } else if syn {
            // RFC 7323 2.2: the window in a SYN is not scaled.
            self.recv_window().min(65535) as u16
        } else {
            let shift = if self.ws_enabled { self.rcv_wscale } else { 0 };
            let mut units = self.recv_window() >> shift;
            // RFC 9293 3.8.6 (SHLD-14): the right edge should not move
            // left. The scaled field counts 2^shift-byte units; rounding the
            // offered window down would pull the edge back by up to a
            // unit, so round it up (as Linux does), even if that offers a
            // little more than the buffer holds: what arrives beyond it is
            // dropped and sent again later. Once the buffer is full the
            // window closes instead, retreating over the bytes it cannot
            // take (senders MUST be robust against that, RFC 9293 3.8.6):
            // a window kept open there would draw data we drop, again and
            // again, instead of zero-window probes.
            let offered = self.rcv_adv.since(self.rcv_nxt);
            if self.recv_buf.free() == 0 {
                units = 0;
            } else if units << shift < offered {
                units = offered.div_ceil(1 << shift);
            }
            units.min(65535) as u16
        };
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: if flags.ack() { self.rcv_nxt } else { SeqNum(0) },
            flags,
            window,
            urgent: 0,
            options,
        };
        let hl = repr.header_len();
        let len = len.min(buf.len().saturating_sub(hl));
        repr.emit(&mut buf[..hl]);
        let copied = if len > 0 {
            self.send_buf.peek(offset, &mut buf[hl..hl + len])
        } else {
            0
        };
        // The stack fills the checksum: complete, or partial for a
        // super-segment (one pass over the bytes either way).
        let total = hl + copied;

        if !rst {
            let shift = if syn || !self.ws_enabled {
                0
            } else {
                self.rcv_wscale
            };
            let edge = self.rcv_nxt + (usize::from(window) << shift);
            if edge.diff(self.rcv_adv) > 0 || !self.state.is_synchronized() {
                self.rcv_adv = edge;
            }
        }
        if flags.ack() {
            // A D-SACK block is reported once.
            if !rst && self.sack_enabled {
                self.dsack = None;
            }
            self.last_ack_sent = self.rcv_nxt;
            self.pending.ack = false;
            self.pending.challenge = false;
            self.unacked_segments = 0;
            self.timers.clear(Timer::DelayedAck);
        }
        self.stats.segments_sent += 1;
        total
    }

    /// The options a segment with `flags` carries now.
    fn options_for(&self, env: &Env, flags: TcpFlags) -> TcpOptions {
        let syn = flags.syn();
        let rst = flags.rst();
        let mut options = TcpOptions::default();
        let initial_syn = syn && self.state == State::SynSent;
        if syn {
            options.mss = Some(self.our_mss as u16);
            let ws = if initial_syn {
                env.cfg.window_scaling
            } else {
                self.ws_enabled
            };
            if ws {
                options.window_scale = Some(self.rcv_wscale);
            }
            options.sack_permitted = if initial_syn {
                env.cfg.sack
            } else {
                self.sack_enabled
            };
        }
        let ts = if initial_syn {
            env.cfg.timestamps
        } else {
            self.ts_enabled
        };
        if ts && !rst {
            let ecr = if flags.ack() { self.ts_recent } else { 0 };
            options.timestamps = Some((self.ts_now(env.now), ecr));
        }
        if self.sack_enabled && !syn && !rst && (!self.assembler.is_empty() || self.dsack.is_some())
        {
            options.sack = self.sack_blocks();
        }
        options
    }

    /// Largest payload of a data segment sent now into a buffer of
    /// `buf_len` bytes: the MSS less the options actually carried (RFC 9293
    /// 3.7.1; SACK blocks make the header grow), and what fits the buffer.
    /// Returns the room and the options of that segment.
    fn payload_room(&self, env: &Env, buf_len: usize) -> (usize, TcpOptions) {
        let options = self.options_for(env, TcpFlags::ACK);
        let mss = self.peer_mss.min(self.our_mss);
        let room = mss
            .min(buf_len.saturating_sub(20))
            .saturating_sub(options.len())
            .max(1);
        (room, options)
    }

    /// RFC 2018 4: the first block holds the most recently received segment,
    /// then the others in the order they were last reported (as many as
    /// the option space allows; `TcpOptions` keeps what fits).
    fn sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        // RFC 2883 4: a D-SACK block, if any, comes first.
        if let Some((l, r)) = self.dsack {
            blocks.push(l, r);
        }
        let base = self.rcv_nxt;
        let held = |(_, r): (SeqNum, SeqNum)| {
            // A block is still held if its last byte is beyond RCV.NXT and
            // the assembler has it (it may have grown by merging).
            let last = (r - 1).diff(base);
            let (s, e) = self
                .assembler
                .range_containing(usize::try_from(last).ok()?)?;
            Some((base + s, base + e))
        };
        let mut listed = SackBlocks::default();
        for &b in self.sack_recent.as_slice() {
            if let Some(b) = held(b) {
                if !listed.as_slice().contains(&b) {
                    listed.push(b.0, b.1);
                }
            }
        }
        for (s, e) in self.assembler.iter() {
            let b = (base + s, base + e);
            if !listed.as_slice().contains(&b) && !listed.push(b.0, b.1) {
                break;
            }
        }
        for &(l, r) in listed.as_slice() {
            if !blocks.push(l, r) {
                break;
            }
        }
        blocks
    }

    /// Out-of-order data just arrived: the block holding it moves to the
    /// front of the reporting order, the others keep theirs (RFC 2018 4:
    /// "repeat the most recently reported SACK blocks").
    pub(super) fn note_sack_arrival(&mut self) {
        let base = self.rcv_nxt;
        let Some((s, e)) = self.assembler.last_added() else {
            return;
        };
        let mut order = SackBlocks::default();
        order.push(base + s, base + e);
        for &(l, r) in self.sack_recent.as_slice() {
            // Blocks that merged into the new one, or were acknowledged, go.
            let inside = l.diff(base + s) >= 0 && r.diff(base + e) <= 0;
            if !inside && r.diff(base) > 0 && !order.push(l, r) {
                break;
            }
        }
        self.sack_recent = order;
    }

    /// Runs this connection's timers that are due.
    pub fn on_timeout(&mut self, env: &mut Env) {
        let now = env.now;
        if self.timers.take_due(Timer::Close, now) {
            // End of TIME-WAIT (RFC 9293 3.10.8), or orphan FIN-WAIT-2 timeout.
            self.enter_closed(None);
            return;
        }
        if self.timers.take_due(Timer::Linger, now) && self.has_unacked() {
            // SO_LINGER ran out with data unacknowledged: give it up with
            // RST (as BSD and Windows do; Linux only stops waiting and
            // lets the close go on, which drop cannot wait for here).
            self.abort(Error::ConnectionAborted);
            self.error = None;
            return;
        }
        if self.timers.take_due(Timer::Retransmit, now) {
            self.on_rto(env);
            if self.state == State::Closed {
                return;
            }
        }
        if self.timers.take_due(Timer::Persist, now) {
            // Probes that the peer answers keep the connection alive however
            // long the window stays shut; silence for the user timeout ends it.
            if now.saturating_duration_since(self.last_recv) >= self.opts.user_timeout {
                self.enter_closed(Some(Error::TimedOut));
                return;
            }
            // An orphan (the application closed it) whose peer answers
            // probes but never opens its window would live for ever: give
            // up after `orphan_retries` probes and reset it, as Linux does
            // (`tcp_orphan_retries`, `tcp_probe_timer`).
            if self.user_closed && self.persist_backoff >= env.cfg.orphan_retries {
                env.stats.orphans_reset += 1;
                self.abort(Error::TimedOut);
                return;
            }
            self.persist_backoff += 1;
            self.pending.window_probe = true;
        }
        if self.timers.take_due(Timer::Probe, now)
            && self.recovery.recover.is_none()
            && self.tlp.high.is_none()
            && self.snd_max != self.snd_una
        {
            self.pending.tlp = true;
        }
        if self.timers.take_due(Timer::Reorder, now) && self.rack_detect_loss(now) {
            // RFC 8985 6.3: the reordering timer expired: what is now
            // overdue is lost; recover (or let PRR send it within recovery).
            if self.recovery.recover.is_some() {
                self.prr_on_ack(0);
            }
            self.maybe_enter_sack_recovery(env);
        }
        if self.timers.take_due(Timer::DelayedAck, now) {
            self.pending.ack = true;
        }
        if self.timers.take_due(Timer::KeepAlive, now) {
            self.on_keepalive(env);
        }
    }

    fn user_timed_out(&mut self, env: &mut Env) -> bool {
        if let Some(since) = self.unacked_since {
            if env.now.saturating_duration_since(since) >= self.opts.user_timeout {
                let err = self.soft_error.unwrap_or(Error::TimedOut);
                let err = if err == Error::HostUnreachable {
                    err
                } else {
                    Error::TimedOut
                };
                self.enter_closed(Some(err));
                return true;
            }
        }
        false
    }

    /// The retransmission timer expired (RFC 6298 5.4-5.7, RFC 5681 3.1).
    fn on_rto(&mut self, env: &mut Env) {
        let now = env.now;
        env.stats.rto_expirations += 1;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            // A passive open gives up after `synack_retries` retransmissions
            // (Linux `tcp_synack_retries`), an active one at its deadline.
            let passive = self.listener.is_some() && self.state == State::SynReceived;
            if now >= self.connect_deadline
                || (passive && self.syn_retries >= env.cfg.synack_retries)
            {
                if self.listener.is_some() && self.state == State::SynReceived {
                    // An embryonic passive connection just goes away.
                    self.enter_closed(None);
                } else {
                    let err = self.soft_error.unwrap_or(Error::TimedOut);
                    self.enter_closed(Some(err));
                }
                return;
            }
            self.syn_retries += 1;
            self.rtt.backoff();
            self.rtt_seq = None;
            self.snd_nxt = self.iss;
            self.pending.syn = true;
            return;
        }
        if self.snd_max == self.snd_una {
            return;
        }
        if self.user_timed_out(env) {
            return;
        }
        let flight = self.congestion_flight();
        let first = self.consecutive_rtos == 0;
        self.consecutive_rtos = self.consecutive_rtos.saturating_add(1);
        self.cc.on_rto(now, flight, first);
        self.rtt.backoff();
        // Karn: no sample from anything sent before the timeout.
        self.rtt_seq = None;
        // Go back N: resend from SND.UNA as the window allows.
        self.snd_nxt = self.snd_una;
        self.recovery.recover = None;
        self.recovery.high = self.snd_max;
        self.recovery.inflation = 0;
        // RFC 2018 8: "after a retransmit timeout the data sender SHOULD
        // turn off all of the SACKed bits" and MUST retransmit the segment
        // at the left edge of the window. The SACKed data need not be sent
        // again after a first timeout, unless the head itself is SACKed:
        // then the receiver reneged (Linux `tcp_timeout_mark_lost`). A
        // second timeout in a row suggests reneging too, so then the
        // scoreboard is dropped and everything goes again.
        if !first || self.sent.is_sacked(self.snd_una) {
            self.sent.clear_sacks();
        }
        // RFC 8985 6.3: the head, and whatever RACK finds overdue, is lost.
        let reo_wnd = self.reo_wnd();
        self.rack
            .mark_losses_on_rto(&mut self.sent, self.snd_una, now, reo_wnd);
        self.recovery.undo_armed = false;
        self.tlp.high = None;
        self.pending.tlp = false;
        self.timers.clear(Timer::Probe);
        self.recovery.dup_acks = 0;
        self.pending.rtx_head = false;
        // RFC 6298 5.5-5.6: back off and restart the timer now, whatever
        // the output finds to send, so unacknowledged data always has a
        // retransmission timer.
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
    }

    /// RFC 1122 4.2.3.6 keep-alive.
    fn on_keepalive(&mut self, env: &mut Env) {
        let now = env.now;
        if !self.opts.keepalive || !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if self.snd_max != self.snd_una || !self.send_buf.is_empty() {
            // Data is outstanding: the retransmission timer watches the peer.
            self.arm_keepalive(now);
            return;
        }
        if self.keepalive_sent >= self.opts.keepalive_probes {
            self.enter_closed(Some(Error::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.pending.keepalive = true;
        self.timers
            .set(Timer::KeepAlive, now + self.opts.keepalive_interval);
    }

    /// Whether `poll_segment` could produce something now (cheap check).
    pub fn wants_output(&self) -> bool {
        self.pending.any()
            || (self.sack_enabled && self.recovery.recover.is_some())
            || (self.state.is_synchronized()
                && self.state != State::TimeWait
                && (self.snd_nxt.since(self.data_start()) < self.send_buf.len()
                    || (self.fin_queued && self.snd_nxt.diff(self.fin_at) <= 0)))
    }
}
