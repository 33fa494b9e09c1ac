//! Connection timers: a small enum indexing a fixed table; the next
//! deadline is the minimum.

use crate::time::Instant;

/// The timers of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission (RFC 6298), also for SYN and SYN-ACK.
    Retransmit = 0,
    /// Zero-window probes (RFC 9293 3.8.6.1).
    Persist = 1,
    /// Delayed ACK (RFC 9293 3.8.6.3).
    DelayedAck = 2,
    /// Keep-alive (RFC 1122 4.2.3.6).
    KeepAlive = 3,
    /// TIME-WAIT 2*MSL (RFC 9293 3.4.2), or the orphan FIN-WAIT-2 timeout.
    Close = 4,
    /// Tail loss probe (RFC 8985 7).
    Probe = 5,
    /// End of the reordering window before loss marking (RFC 8985 6.2).
    Reorder = 6,
    /// End of a non-zero `SO_LINGER` wait after `close`: what is still
    /// unacknowledged then is given up with RST.
    Linger = 7,
}

const N: usize = 8;

/// Deadlines, `None` when unarmed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; N],
}

impl Timers {
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.at[t as usize] = Some(at);
    }
    /// Arms `t` unless it is already armed.
    pub fn set_if_unset(&mut self, t: Timer, at: Instant) {
        if self.at[t as usize].is_none() {
            self.at[t as usize] = Some(at);
        }
    }
    pub fn clear(&mut self, t: Timer) {
        self.at[t as usize] = None;
    }
    pub fn clear_all(&mut self) {
        self.at = [None; N];
    }
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.at[t as usize]
    }
    pub fn is_set(&self, t: Timer) -> bool {
        self.at[t as usize].is_some()
    }
    /// Earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
    /// Whether `t` is due at `now`; disarms it if so.
    pub fn take_due(&mut self, t: Timer, now: Instant) -> bool {
        match self.at[t as usize] {
            Some(at) if at <= now => {
                self.at[t as usize] = None;
                true
            }
            _ => false,
        }
    }
}
