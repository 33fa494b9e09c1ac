//! The named parts of the transmission control block: state that belongs
//! to one algorithm lives together, so a reader sees what goes with what.
//! The RFC 9293 variables themselves (SND.*, RCV.*, ISS, IRS) stay flat in
//! [`Conn`](super::Conn), under the names RFC 9293 gives them.

use crate::seq::SeqNum;

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
