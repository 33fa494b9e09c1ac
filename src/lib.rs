//! `utcp`: a user-space TCP/IPv4 stack for Tokio.
//!
//! This facade re-exports the three layers:
//! - [`stack`] (`tcp-stack`): the sans-IO, deterministic TCP/IPv4 core;
//! - [`net`] (`tcp-async`): the Tokio front end, a drop-in for `tokio::net`;
//! - [`tun`] (`tcp-tun`): the Linux TUN device.
#![forbid(unsafe_code)]

pub use tcp_async as net;
pub use tcp_stack as stack;
pub use tcp_tun as tun;
