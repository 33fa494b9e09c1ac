//! Fuzzing harnesses, shared by the cargo-fuzz targets in `fuzz/` and by
//! stable tests that replay a committed corpus plus seeded pseudo-random
//! inputs (`cargo test`).
//!
//! Compiled for tests and with the `fuzzing` feature; not a public API.
//!
//! - [`run_wire`]: every parser (IPv4, TCP with options, ICMP) on the
//!   bytes; whatever parses must emit back to an equal representation.
//! - [`run_stack`]: a whole [`Stack`](crate::Stack) driven by a sequence of
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
pub use stack::{decode_actions, run_stack, Action, Fuzzer};
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
    pub free: usize,
    /// Entries of the 4-tuple map.
    pub conn_map: usize,
    pub listener_map: usize,
    /// Entries in the timer heap (including stale ones).
    pub timers: usize,
    pub dirty: usize,
    pub events: usize,
    pub listener_events: usize,
    /// Queued control packets (RSTs, echo replies).
    pub control: usize,
    pub max_control: usize,
    pub conns: Vec<ConnSnapshot>,
    pub listeners: Vec<ListenerSnapshot>,
}

/// One listener's queues.
#[derive(Debug, Clone)]
pub struct ListenerSnapshot {
    pub addr: SocketAddr,
    pub backlog: usize,
    pub syn_queue: usize,
    pub accept_queue: usize,
}

/// One connection's sequence variables and buffer use.
#[derive(Debug, Clone)]
pub struct ConnSnapshot {
    pub id: ConnId,
    /// The application holds a handle.
    pub owned: bool,
    pub user_closed: bool,
    pub state: State,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    pub snd_max: SeqNum,
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    pub rcv_adv: SeqNum,
    pub rcv_wscale: u8,
    pub send_len: usize,
    pub send_cap: usize,
    pub recv_len: usize,
    pub recv_cap: usize,
    pub send_buffer_max: usize,
    pub recv_buffer_max: usize,
    /// Out-of-order ranges held, and the end offset (from RCV.NXT) of the last.
    pub assembler_ranges: usize,
    pub assembler_end: usize,
    pub sacked_bytes: usize,
    pub lost_bytes: usize,
    /// `Conn::retransmission_timer_invariant`.
    pub timer_invariant: bool,
    pub next_timer: Option<Instant>,
    /// Pending event bits.
    pub events: u8,
}
