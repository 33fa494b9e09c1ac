//! A deterministic network simulator for testing [`Stack`](crate::Stack)s
//! (feature `sim`).
//!
//! - Virtual time only: [`Sim::now`] starts at zero and jumps from event to
//!   event; no wall clock is read, so a minute of keep-alive idling costs
//!   nothing.
//! - Seeded: every random choice (loss, duplication, reordering, corruption)
//!   comes from per-link [`Rng`](crate::rng::Rng)s derived from the
//!   simulation seed; the same seed and the same application calls give the
//!   same packet trace ([`Sim::trace_hash`]).
//! - Links are per direction ([`LinkConfig`]): latency, an optional
//!   bottleneck rate with a tail-drop queue, loss, duplication, reordering,
//!   single-bit corruption and an MTU. Links can be blackholed
//!   ([`Sim::set_link_up`]) and nodes crashed ([`Sim::crash`]).
//! - Packets can be observed, rewritten or dropped in flight
//!   ([`Sim::set_hook`]), recorded ([`Sim::set_capture`]), and forged ones
//!   injected ([`Sim::inject`], built with [`SegmentBuilder`]).
//! - [`app::Transfer`] plays both applications of a connection and checks
//!   that every byte arrives exactly once, in order.
//!
//! ```ignore
//! use tcp_stack::sim::{app::{Transfer, TransferSpec}, LinkConfig, Sim};
//! let mut sim = Sim::new(7);
//! let a = sim.add_host("client", "10.0.0.1".parse().unwrap());
//! let b = sim.add_host("server", "10.0.0.2".parse().unwrap());
//! sim.link(a, b, LinkConfig::lossy(0.05));
//! let mut t = Transfer::start(&mut sim, a, b, TransferSpec::default());
//! let deadline = sim.now() + tcp_stack::Duration::from_secs(600);
//! sim.run_until(deadline, |s| t.poll(s));
//! t.assert_success();
//! ```

pub mod app;
mod link;
mod network;
mod packet;

pub use link::{DropReason, LinkConfig, LinkStats};
pub use network::{Hook, Host, NodeId, Sim, SimStats, Stalled, TraceEntry, TraceEvent};
pub use packet::{
    checksums_ok, flags, ip_dst, ipv4_dst, Packet, SegmentBuilder, TcpSegment, Verdict,
};

#[cfg(test)]
mod tests;
