//! What must hold after every step of the stack harness.

use super::{ConnSnapshot, StackSnapshot};
use crate::config::Config;
use crate::state::State;

/// Limits the harness knows from how it configured the stack.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest send buffer a connection may reach.
    pub send_buffer: usize,
    /// Largest receive buffer a connection may reach.
    pub recv_buffer: usize,
}

/// Names a connection in a message (formatted only when one is written).
struct Who<'a>(&'a ConnSnapshot);

impl core::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = self.0;
        write!(f, "{:?} {} {}->{}", c.id, c.state, c.local, c.remote)
    }
}

/// Checks the stack-wide and per-connection invariants. `drained`: the
/// caller drained `poll_transmit` and `poll_event` until `None`.
///
/// # Errors
/// The first violated rule, in words.
pub fn check_invariants(
    s: &StackSnapshot,
    cfg: &Config,
    bounds: &Bounds,
    drained: bool,
) -> Result<(), String> {
    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }
    // Memory bounds.
    ensure!(
        s.live <= cfg.max_connections,
        "{} connections exceed Config::max_connections {}",
        s.live,
        cfg.max_connections
    );
    ensure!(
        s.live == s.conns.len() && s.slots == s.live + s.free,
        "slot bookkeeping: live {} conns {} slots {} free {}",
        s.live,
        s.conns.len(),
        s.slots,
        s.free
    );
    ensure!(
        s.slots <= cfg.max_connections,
        "{} slots allocated for at most {} connections",
        s.slots,
        cfg.max_connections
    );
    ensure!(
        s.conn_map <= s.live,
        "the tuple map has {} entries for {} connections",
        s.conn_map,
        s.live
    );
    ensure!(
        s.listener_map == s.listeners.len(),
        "listener map {} for {} listeners",
        s.listener_map,
        s.listeners.len()
    );
    ensure!(
        s.control <= s.max_control,
        "control queue {} over its bound",
        s.control
    );
    // Lazily cancelled entries linger; the stack rebuilds the heap once it
    // holds more than twice the live connections plus 64, and the slots
    // never shrink.
    ensure!(
        s.timers <= 2 * s.slots + 64,
        "timer heap holds {} entries for {} slots",
        s.timers,
        s.slots
    );
    // poll_event returns None only once its queue is empty.
    ensure!(
        s.events == 0,
        "{} events queued after poll_event gave None",
        s.events
    );
    if drained {
        ensure!(
            s.dirty == 0 && s.control == 0,
            "output queued (dirty {}, control {}) after poll_transmit gave None",
            s.dirty,
            s.control
        );
    }
    for l in &s.listeners {
        ensure!(
            l.accept_queue <= l.backlog,
            "listener {}: accept queue {} over backlog {}",
            l.addr,
            l.accept_queue,
            l.backlog
        );
        ensure!(
            l.syn_queue <= l.backlog.max(8),
            "listener {}: SYN queue {} over its bound",
            l.addr,
            l.syn_queue
        );
    }
    for c in &s.conns {
        let who = Who(c);
        ensure!(c.state != State::Listen, "{who}: a connection in LISTEN");
        // RFC 9293 3.3.1: SND.UNA <= SND.NXT (<= the highest sent).
        ensure!(
            c.snd_nxt.diff(c.snd_una) >= 0,
            "{who}: SND.NXT {} before SND.UNA {}",
            c.snd_nxt,
            c.snd_una
        );
        ensure!(
            c.snd_max.diff(c.snd_nxt) >= 0,
            "{who}: SND.NXT {} past SND.MAX {}",
            c.snd_nxt,
            c.snd_max
        );
        let flight = c.snd_max.since(c.snd_una);
        // Bytes in flight are held in the send buffer (plus SYN and FIN).
        ensure!(
            flight <= c.send_len + 2,
            "{who}: {} sequence numbers in flight but {} bytes buffered",
            flight,
            c.send_len
        );
        ensure!(
            c.sacked_bytes <= flight && c.lost_bytes <= flight,
            "{who}: SACKed {} / lost {} bytes of a flight of {}",
            c.sacked_bytes,
            c.lost_bytes,
            flight
        );
        // Buffers within their limits.
        ensure!(
            c.send_len <= c.send_cap && c.send_cap <= bounds.send_buffer,
            "{who}: send buffer {} of {} (limit {})",
            c.send_len,
            c.send_cap,
            bounds.send_buffer
        );
        ensure!(
            c.recv_len <= c.recv_cap && c.recv_cap <= bounds.recv_buffer,
            "{who}: receive buffer {} of {} (limit {})",
            c.recv_len,
            c.recv_cap,
            bounds.recv_buffer
        );
        // Out-of-order bytes are held in the free part of the receive buffer.
        ensure!(
            c.assembler_end <= c.recv_cap - c.recv_len,
            "{who}: out-of-order data up to offset {} but only {} bytes free",
            c.assembler_end,
            c.recv_cap - c.recv_len
        );
        if c.state.is_synchronized() {
            // The window offered is backed by buffer space (up to the
            // rounding of the window scale).
            let window = c.rcv_adv.since(c.rcv_nxt);
            ensure!(
                window <= c.recv_cap + (1usize << c.rcv_wscale),
                "{who}: window {} over a buffer of {}",
                window,
                c.recv_cap
            );
        }
        ensure!(
            c.timer_invariant,
            "{who}: unacknowledged data without a retransmission timer"
        );
        // No event for a connection the application does not hold.
        ensure!(
            c.events == 0 || (c.owned && !c.user_closed),
            "{who}: events {:#x} pending for a connection nobody holds",
            c.events
        );
        if drained {
            // Orphans that reached CLOSED are reclaimed once their RST is out.
            ensure!(
                c.state != State::Closed || (c.owned && !c.user_closed),
                "{who}: CLOSED orphan not reclaimed"
            );
        }
    }
    Ok(())
}

/// What may only move forward within one connection between two steps:
/// SND.UNA and the highest sequence number sent (RFC 9293 3.3.1; SND.NXT
/// alone moves back, to retransmit), RCV.NXT, and the right edge of the
/// window offered (RFC 9293 3.8.6: never shrunk).
///
/// # Errors
/// The first variable that moved back.
pub fn check_progress(before: &ConnSnapshot, after: &ConnSnapshot) -> Result<(), String> {
    let who = Who(after);
    let moves = [
        ("SND.UNA", before.snd_una, after.snd_una),
        ("SND.MAX", before.snd_max, after.snd_max),
    ];
    for (name, b, a) in moves {
        if a.diff(b) < 0 {
            return Err(format!("{who}: {name} moved back from {b} to {a}"));
        }
    }
    if before.state.is_synchronized() && after.state.is_synchronized() {
        let moves = [
            ("RCV.NXT", before.rcv_nxt, after.rcv_nxt),
            ("the window's right edge", before.rcv_adv, after.rcv_adv),
        ];
        for (name, b, a) in moves {
            if a.diff(b) < 0 {
                return Err(format!("{who}: {name} moved back from {b} to {a}"));
            }
        }
    }
    Ok(())
}
