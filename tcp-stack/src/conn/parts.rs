//! The named parts of the transmission control block: state that belongs
//! to one algorithm lives together, so a reader sees what goes with what.
//! The RFC 9293 variables themselves (SND.*, RCV.*, ISS, IRS) stay flat in
//! [`Conn`](super::Conn), under the names RFC 9293 gives them.

use crate::seq::SeqNum;
use crate::state::State;

/// Proportional Rate Reduction (RFC 6937) during SACK recovery: how much
/// may be sent on each ACK so the window comes down to ssthresh smoothly.
#[derive(Debug, Clone)]
pub(crate) struct Prr {
    /// RecoverFS: the FlightSize when recovery began (at least 1: a divisor).
    pub recover_fs: usize,
    /// prr_delivered: bytes the peer received since recovery began.
    pub delivered: usize,
    /// prr_out: bytes sent since recovery began.
    pub out: usize,
    /// sndcnt: what may be sent now.
    pub allow: usize,
}

impl Default for Prr {
    fn default() -> Self {
        Prr {
            recover_fs: 1,
            delivered: 0,
            out: 0,
            allow: 0,
        }
    }
}

impl Prr {
    /// RFC 6937 initialization as recovery begins with `flight_size` bytes
    /// outstanding. RFC 6675 5 step (C): the first segment deemed lost is
    /// retransmitted at once, whatever pipe says, so one `mss` is allowed.
    pub fn start(flight_size: usize, mss: usize) -> Prr {
        Prr {
            recover_fs: flight_size.max(1),
            delivered: 0,
            out: 0,
            allow: mss,
        }
    }

    /// RFC 6937 3: an ACK in recovery reported `delivered` bytes; with
    /// `pipe` bytes in the network, decides how much may be sent now.
    pub fn on_ack(&mut self, delivered: usize, pipe: usize, ssthresh: usize, mss: usize) {
        self.delivered += delivered;
        self.allow = if pipe > ssthresh {
            // Proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let target = (self.delivered as u128 * ssthresh as u128)
                .div_ceil(self.recover_fs as u128) as usize;
            target.saturating_sub(self.out)
        } else {
            // Slow-start reduction bound (PRR-SSRB).
            let limit = self.delivered.saturating_sub(self.out).max(delivered) + mss;
            (ssthresh - pipe).min(limit)
        };
    }

    /// Accounts `n` bytes sent during recovery.
    pub fn on_sent(&mut self, n: usize) {
        self.out += n;
        self.allow = self.allow.saturating_sub(n);
    }
}

/// The tail loss probe's episode (RFC 8985 7). Whether a probe is owed on
/// the next output is `Pending::tlp`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tlp {
    /// SND.MAX when the outstanding probe went out (TLP.end_seq, RFC 8985
    /// 7.3): no further probe until it is acknowledged or SACKed (7.4).
    pub high: Option<SeqNum>,
    /// The probe being sent is new data: ignore cwnd and Nagle for it.
    pub new_data: bool,
}

/// Explicit Congestion Notification (RFC 3168). ECE and CWR are flags owed
/// on segments that go anyway, not segments of their own: so they live
/// here, not in `Pending`.
#[derive(Debug, Clone)]
pub(crate) struct Ecn {
    /// ECN negotiated (RFC 3168 6.1.1).
    pub enabled: bool,
    /// Set ECE on our ACKs: a CE mark arrived and no CWR yet (6.1.3).
    pub ece_pending: bool,
    /// Set CWR on the next new data segment: we reduced the window (6.1.2).
    pub cwr_pending: bool,
    /// No new reaction to ECE until SND.UNA passes this (6.1.2: once per
    /// window of data).
    pub recover: SeqNum,
    /// ECN bits for the IP header of the segment just produced.
    pub out: u8,
}

impl Ecn {
    /// Not negotiated yet, for a connection whose ISS is `iss`.
    pub fn new(iss: SeqNum) -> Ecn {
        Ecn {
            enabled: false,
            ece_pending: false,
            cwr_pending: false,
            recover: iss,
            out: 0,
        }
    }
}

/// Loss recovery: duplicate ACKs and NewReno fast recovery (RFC 5681 3.2,
/// RFC 6582), SACK recovery (RFC 6675, RFC 8985) and its undo when D-SACKs
/// show it was spurious (RFC 2883, RFC 3708). The scoreboard
/// (`Conn::sent`), RACK (`Conn::rack`) and PRR (`Conn::prr`) are parts of
/// their own; the fast retransmission owed is `Pending::rtx_head`.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    /// Consecutive duplicate ACKs (RFC 5681 3.2).
    pub dup_acks: u32,
    /// In fast recovery until SND.UNA passes this point (RFC 6582 "recover").
    pub recover: Option<SeqNum>,
    /// Highest SND.MAX at the last congestion event; no new fast recovery
    /// for losses below it (RFC 6582 3.2 step 1).
    pub high: SeqNum,
    /// Window inflation during NewReno fast recovery (bytes).
    pub inflation: usize,
    /// The last recovery's reduction may still be undone on D-SACKs (RFC 2883).
    pub undo_armed: bool,
    /// Retransmissions, and D-SACKs received, since the last recovery began.
    pub rtx: u32,
    pub dsacks: u32,
}

impl Recovery {
    /// Not in recovery, for a connection whose ISS is `iss`.
    pub fn new(iss: SeqNum) -> Recovery {
        Recovery {
            dup_acks: 0,
            recover: None,
            high: iss,
            inflation: 0,
            undo_armed: false,
            rtx: 0,
            dsacks: 0,
        }
    }
}

/// What the connection owes the peer on its next output beyond what the
/// send buffer asks for: control segments, probes and ACKs. Set by input
/// and timers, served (and cleared) by `Conn::poll_segment` in the order
/// of [`Control::ORDER`], the one place that order is written down.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    /// `<SEQ=x><CTL=RST>` answering an unacceptable ACK (RFC 9293 3.10.7.3/4).
    pub rst_reply: Option<SeqNum>,
    /// `<SEQ=SND.MAX><CTL=RST,ACK>`: an abort (RFC 9293 3.10.5), or data
    /// for an application that is gone (RFC 2525 2.17).
    pub rst: bool,
    /// Our SYN (or SYN,ACK), first or again.
    pub syn: bool,
    /// Retransmit one segment at SND.UNA: fast retransmit (RFC 5681 3.2),
    /// or the next hole after a NewReno partial ACK (RFC 6582 3.2).
    pub rtx_head: bool,
    /// A tail loss probe (RFC 8985 7.3).
    pub tlp: bool,
    /// A keep-alive probe (RFC 1122 4.2.3.6).
    pub keepalive: bool,
    /// One byte past a shut window (zero-window probe, RFC 9293 3.8.6.1);
    /// the data step sends it.
    pub window_probe: bool,
    /// An ACK must go out now.
    pub ack: bool,
    /// A challenge ACK (RFC 5961), already allowed by its rate limits.
    pub challenge: bool,
}

/// One step of `Conn::poll_segment`'s order of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    RstReply,
    Rst,
    Syn,
    RtxHead,
    Tlp,
    KeepAlive,
    Data,
    Ack,
}

impl Control {
    /// The order in which `Conn::poll_segment` serves what is owed; each
    /// call sends at most one segment, the first step that produces one.
    ///
    /// 1. `RstReply`, 2. `Rst`: a reset ends the exchange (RFC 9293 3.10.5,
    ///    3.10.7), so it goes before anything else the connection might
    ///    still owe; in CLOSED and LISTEN nothing else goes.
    /// 3. `Syn`: until the handshake completes nothing but our SYN (and in
    ///    SYN-RECEIVED an ACK) may go (RFC 9293 3.10.7.3); in the
    ///    synchronized states it is not looked at.
    /// 4. `RtxHead`: the fast retransmission at SND.UNA goes first whatever
    ///    the windows (RFC 5681 3.2 step 2, RFC 6582 3.2 step 3).
    /// 5. `Tlp`: the probe timeout fired (RFC 8985 7.3); the probe is itself
    ///    new data if the peer's window allows, else the last segment again.
    /// 6. `KeepAlive` (RFC 1122 4.2.3.6): set only with nothing in flight
    ///    and nothing queued, so it never competes with data.
    /// 7. `Data` (not a flag: always looked at, except in TIME-WAIT): in
    ///    SACK recovery the segments deemed lost as PRR allows (RFC 6675
    ///    NextSeg, RFC 6937), then new data and the FIN, or the zero-window
    ///    probe (`Pending::window_probe`).
    /// 8. `Ack` (or challenge ACK): last, because every segment above
    ///    carries the ACK and clears the flag (`emit`); a pure ACK goes only
    ///    if nothing could (RFC 9293 3.8.6.3). In SYN-SENT it is dropped.
    pub const ORDER: [Control; 8] = [
        Control::RstReply,
        Control::Rst,
        Control::Syn,
        Control::RtxHead,
        Control::Tlp,
        Control::KeepAlive,
        Control::Data,
        Control::Ack,
    ];

    /// Whether this step is served in `state` (others wait, untouched).
    fn served_in(self, state: State) -> bool {
        use Control::*;
        match state {
            State::Closed | State::Listen => matches!(self, RstReply | Rst),
            State::SynSent | State::SynReceived => matches!(self, RstReply | Rst | Syn | Ack),
            State::TimeWait => !matches!(self, Syn | Data),
            _ => self != Syn,
        }
    }
}

impl Pending {
    /// Whether `control` is owed.
    fn owes(&self, control: Control) -> bool {
        match control {
            Control::RstReply => self.rst_reply.is_some(),
            Control::Rst => self.rst,
            Control::Syn => self.syn,
            Control::RtxHead => self.rtx_head,
            Control::Tlp => self.tlp,
            Control::KeepAlive => self.keepalive,
            Control::Data => true,
            Control::Ack => self.ack || self.challenge,
        }
    }

    /// The next step owed and served in `state`, in [`Control::ORDER`],
    /// after `after` (from the start with `None`).
    pub fn next(&self, state: State, after: Option<Control>) -> Option<Control> {
        let from = after.map_or(0, |c| c as usize + 1);
        Control::ORDER[from..]
            .iter()
            .copied()
            .find(|&c| c.served_in(state) && self.owes(c))
    }

    /// Anything owed (the data step aside).
    pub fn any(&self) -> bool {
        self.rst_reply.is_some()
            || self.rst
            || self.syn
            || self.ack
            || self.challenge
            || self.rtx_head
            || self.keepalive
            || self.window_probe
            || self.tlp
    }

    /// The connection entered CLOSED: what it can no longer send is
    /// dropped. The RSTs stay, they are what it still sends; `tlp` stays
    /// too, unserved in CLOSED.
    pub fn cancel_on_close(&mut self) {
        self.syn = false;
        self.rtx_head = false;
        self.window_probe = false;
        self.keepalive = false;
        self.ack = false;
        self.challenge = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_declaration() {
        for (i, c) in Control::ORDER.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn handshake_serves_syn_before_ack_and_nothing_else() {
        let mut p = Pending {
            syn: true,
            ack: true,
            rtx_head: true,
            keepalive: true,
            ..Pending::default()
        };
        assert_eq!(p.next(State::SynReceived, None), Some(Control::Syn));
        assert_eq!(
            p.next(State::SynReceived, Some(Control::Syn)),
            Some(Control::Ack)
        );
        p.syn = false;
        assert_eq!(p.next(State::SynSent, None), Some(Control::Ack));
        assert_eq!(p.next(State::SynSent, Some(Control::Ack)), None);
    }

    #[test]
    fn resets_come_first_and_alone_in_closed() {
        let p = Pending {
            rst: true,
            rst_reply: Some(SeqNum(7)),
            ack: true,
            ..Pending::default()
        };
        assert_eq!(p.next(State::Established, None), Some(Control::RstReply));
        assert_eq!(
            p.next(State::Established, Some(Control::RstReply)),
            Some(Control::Rst)
        );
        assert_eq!(p.next(State::Closed, Some(Control::Rst)), None);
    }

    #[test]
    fn time_wait_skips_data() {
        let p = Pending {
            keepalive: true,
            ..Pending::default()
        };
        assert_eq!(p.next(State::TimeWait, None), Some(Control::KeepAlive));
        assert_eq!(p.next(State::TimeWait, Some(Control::KeepAlive)), None);
        assert_eq!(
            p.next(State::Established, Some(Control::KeepAlive)),
            Some(Control::Data)
        );
    }
}
