//! # tcp-stack: a sans-IO, deterministic TCP/IPv4 core
//!
//! ## Determinism contract
//! - No I/O, no syscalls, no threads, no locks, no wall clock, no global RNG.
//! - Time comes in as `now` ([`Instant`], microseconds from an arbitrary epoch).
//! - Randomness (ISN key, ephemeral ports) comes from [`Config::seed`].
//! - The same inputs in the same order produce the same outputs, bit for bit.
//!
//! ## Call order
//! Feed input with [`Stack::handle_packet`] and [`Stack::handle_timeout`] and
//! the socket calls; then drain [`Stack::poll_transmit`] until `None` and
//! [`Stack::poll_event`]; then sleep until [`Stack::poll_timeout`].
#![forbid(unsafe_code)]

pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod config;
mod conn;
pub mod error;
pub mod isn;
pub mod rng;
pub mod rtt;
pub mod seq;
pub mod stack;
pub mod state;
pub mod time;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

pub use buffer::{BufferFactory, RecvBuffer, SendBuffer, VecRecvBuffer, VecSendBuffer};
pub use config::{Config, CongestionControl};
pub use error::{Error, Result};
pub use seq::SeqNum;
pub use stack::{SockOpt, Stack, Stats, TcpInfo};
pub use state::{ConnId, Event, ListenerId, State};
pub use time::{Duration, Instant};
