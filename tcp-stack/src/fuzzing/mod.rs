//! Fuzzing harnesses, shared by the cargo-fuzz targets in `fuzz/` and by
//! stable tests that replay a committed corpus plus seeded pseudo-random
//! inputs (`cargo test`).
//!
//! Compiled for tests and with the `fuzzing` feature; not a public API.
//!
//! - [`run_wire`]: every parser (IPv4, TCP with options, ICMP, Ethernet, ARP, NS/NA) on the
//!   bytes; whatever parses must emit back to an equal representation.
//! - [`run_stack`] (and [`run_stack_ethernet`], the same with `Config::ethernet`): a whole [`Stack`](crate::Stack) driven by a sequence of
//!   actions decoded from the bytes (peer segments mutated from a recorded
//!   exchange, ICMP, time steps, socket calls), with invariants checked
//!   after every step ([`check_invariants`]).
//!
//! A violated invariant panics with a message naming the rule; so do the
//! core's `debug_assert!`s, so fuzz with debug assertions on (cargo-fuzz's
//! default).

mod exchange;
mod invariants;
mod reader;
mod stack;
mod wire;

#[cfg(test)]
mod regressions;
#[cfg(test)]
mod tests;

pub use exchange::{seed_inputs, templates, Template};
pub use invariants::check_invariants;
pub use stack::{decode_actions, run_stack, run_stack_ethernet, Action, Fuzzer};
pub use wire::run_wire;

use crate::seq::SeqNum;
use crate::state::{ConnId, State};
use crate::time::Instant;
use std::net::SocketAddr;

/// A copy of the stack's bookkeeping (see `Stack::fuzz_snapshot`).
#[derive(Debug, Clone)]
pub struct StackSnapshot {
    /// Connections in any state.
    pub live: usize,
    /// Slots allocated (live + free).
    pub slots: usize,
    /// Free slots.
    pub free: usize,
    /// Entries of the 4-tuple map.
    pub conn_map: usize,
    /// Entries of the listening-address map.
    pub listener_map: usize,
    /// Entries in the timer heap (including stale ones).
    pub timers: usize,
    /// Connections queued to be polled for output.
    pub dirty: usize,
    /// Connections and listeners queued with pending events.
    pub events: usize,
    /// How many of `events` are listeners.
    pub listener_events: usize,
    /// Queued control packets (RSTs, echo replies).
    pub control: usize,
    /// The bound on `control`.
    pub max_control: usize,
    /// Every connection.
    pub conns: Vec<ConnSnapshot>,
    /// Every open listener.
    pub listeners: Vec<ListenerSnapshot>,
}

/// One listener's queues.
#[derive(Debug, Clone)]
pub struct ListenerSnapshot {
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// Its backlog, after clamping.
    pub backlog: usize,
    /// Half-open connections counted against its SYN queue.
    pub syn_queue: usize,
    /// Established connections waiting for `accept`.
    pub accept_queue: usize,
}

/// One connection's sequence variables and buffer use.
#[derive(Debug, Clone)]
pub struct ConnSnapshot {
    /// Its handle.
    pub id: ConnId,
    /// The application holds a handle.
    pub owned: bool,
    /// The application closed its handle.
    pub user_closed: bool,
    /// RFC 9293 3.3.2 state.
    pub state: State,
    /// Local address (as on the wire, not IPv4-mapped).
    pub local: SocketAddr,
    /// Remote address (as on the wire, not IPv4-mapped).
    pub remote: SocketAddr,
    /// ISS: initial send sequence number (RFC 9293 3.3.1).
    pub iss: SeqNum,
    /// SND.UNA: oldest unacknowledged sequence number (RFC 9293 3.3.1).
    pub snd_una: SeqNum,
    /// SND.NXT: next sequence number to send (RFC 9293 3.3.1).
    pub snd_nxt: SeqNum,
    /// The highest sequence number sent so far (SND.NXT can move back
    /// below it on a retransmission).
    pub snd_max: SeqNum,
    /// IRS: initial receive sequence number (RFC 9293 3.3.1).
    pub irs: SeqNum,
    /// RCV.NXT: next sequence number expected (RFC 9293 3.3.1).
    pub rcv_nxt: SeqNum,
    /// Right edge of the window last advertised.
    pub rcv_adv: SeqNum,
    /// Our window shift (RFC 7323 2).
    pub rcv_wscale: u8,
    /// Bytes in the send buffer.
    pub send_len: usize,
    /// Send buffer capacity.
    pub send_cap: usize,
    /// Bytes in the receive buffer.
    pub recv_len: usize,
    /// Receive buffer capacity.
    pub recv_cap: usize,
    /// Upper bound of send buffer auto-sizing.
    pub send_buffer_max: usize,
    /// Upper bound of receive buffer auto-tuning.
    pub recv_buffer_max: usize,
    /// Out-of-order ranges held.
    pub assembler_ranges: usize,
    /// End offset (from RCV.NXT) of the last out-of-order range, 0 if none.
    pub assembler_end: usize,
    /// Bytes in flight the peer SACKed.
    pub sacked_bytes: usize,
    /// Bytes in flight deemed lost (RACK marks or an RTO).
    pub lost_bytes: usize,
    /// `Conn::retransmission_timer_invariant`.
    pub timer_invariant: bool,
    /// The earliest of its timers.
    pub next_timer: Option<Instant>,
    /// Pending event bits.
    pub events: u8,
}
