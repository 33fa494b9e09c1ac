//! Tokio front end for `tcp-stack`: a drop-in for `tokio::net`.
//!
//! [`TcpListener`], [`TcpStream`] and [`TcpSocket`] have the names,
//! signatures and semantics of their `tokio::net` namesakes (hyper serves
//! and sends over them unchanged through `hyper_util::rt::TokioIo`; the
//! features `axum`, `hyper-util` and `tonic` add the adapters those crates
//! need, see [`integrations`]),
//! but the TCP/IP behind them is the user-space `tcp_stack::Stack`,
//! exchanging raw IPv4 and IPv6 datagrams with a [`Device`](device::Device): a TUN
//! interface ([`device::tun::TunDevice`]), or an in-memory link
//! ([`device::MemoryDevice::pair`]) joining two stacks in one process.
//!
//! ```
//! use tcp_async::{device::MemoryDevice, Config, Stack, TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // Two stacks in one process, joined by an in-memory link.
//! let (a, b) = MemoryDevice::pair(1500);
//! let server = Stack::builder(a).config(Config::with_addr("10.0.0.1".parse().unwrap())).build()?;
//! let client = Stack::builder(b).config(Config::with_addr("10.0.0.2".parse().unwrap())).build()?;
//!
//! let listener = TcpListener::bind_with(&server, "10.0.0.1:7").await?;
//! tokio::spawn(async move {
//!     let (mut s, _) = listener.accept().await.unwrap();
//!     let (mut r, mut w) = s.split();
//!     tokio::io::copy(&mut r, &mut w).await.unwrap();
//! });
//! let mut c = TcpStream::connect_with(&client, "10.0.0.1:7").await?;
//! c.write_all(b"ping").await?;
//! let mut buf = [0; 4];
//! c.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! **One driver task per stack.** [`Stack::builder`]`(device).build()`
//! spawns a task that owns the device and the `tcp_stack::Stack` (a
//! deterministic, sans-IO state machine). Each round it takes control
//! commands from handles, tells the core which connections' buffers the
//! application touched (`notify_send`/`notify_recv`), reads a bounded batch
//! of packets into `handle_packet`, runs `handle_timeout` if the clock has
//! passed the core's deadline, drains `poll_event` (waking application
//! tasks), and drains `poll_transmit` into the device. It then sleeps until
//! the core's next deadline, a device wake-up, or a handle's wake-up. The
//! sleep is re-armed only when the deadline changes, and the clock is
//! checked before a fired sleep is trusted. Batches are bounded and the task
//! yields after a few rounds, so a busy connection cannot starve the others
//! or the runtime. Core time is microseconds since the driver started,
//! taken from `tokio::time::Instant` (so paused test time works).
//!
//! **Lock-free data path.** A connection's TCP buffers *are* two
//! single-producer/single-consumer byte rings ([`ring`]): the core holds the
//! driver halves (installed through `tcp_stack::Stack::set_buffer_factory`),
//! the application the other halves, inside an `Arc<Shared>` together with
//! the waiting tasks (a small list per direction: every waiter is woken)
//! and an atomic flag word (connected, peer
//! FIN, failed + error code, write shut down, closed, stack aborted). A
//! write copies into the send ring, sets a dirty bit and, if it was the
//! first one, pushes the connection id on an unbounded queue, which wakes
//! the driver; the driver clears the bits and calls `notify_send`. A read
//! copies out of the receive ring and, when the buffer had been at least
//! half full (the window may open), does the same for `notify_recv`. No
//! mutex is taken per read or write. Because `tokio::net::TcpStream` reads
//! and writes through `&self`, each ring half sits in a claim cell (one
//! uncontended compare-and-swap; only two application tasks using the same
//! direction of one socket at once could ever contend, never the driver).
//!
//! **Memory on demand.** Ring storage is allocated, uninitialised, on a
//! ring's first write. Every 200 ms, while some connection's rings hold
//! storage, the driver sweeps them and frees the storage of rings that
//! stayed empty and quiet since the previous sweep; the next write
//! allocates again. The receive ring also grows when the core's receive
//! autotuning asks (up to `recv_buffer_max`). An idle connection thus holds
//! no ring storage, and a busy one allocates nothing per packet (a grow
//! allocates once per step).
//!
//! **Control path.** Connect, listen, shutdown, close, options, `tcp_info`
//! and statistics go through an unbounded command channel, with `oneshot`
//! replies where an answer is needed. The factory's map from `ConnId` to the
//! application halves is under a mutex: it is touched once per connection.
//! Accepted connections are moved by the driver from the core's accept
//! queue to the listener's; the core counts the listener's queue against
//! the backlog (each `accept` tells the driver, which tells the core), so
//! the backlog keeps its meaning: `backlog + 1` connections wait, as on
//! Linux.
//!
//! **Memory orderings.**
//! - Ring bytes: the producer copies then publishes its position with
//!   `Release`; the consumer loads it with `Acquire` (see [`ring`]).
//! - Driver → application: the driver publishes ring data, then sets flags
//!   with a `Release` RMW, then wakes the waiters. The application
//!   tries its operation, registers its waker (the waiter list's mutex
//!   orders registration and wake), and tries again; so a wake-up
//!   between the first try and the registration is never lost. A reader that
//!   finds the ring empty loads the flags with `Acquire` and, on a FIN or an
//!   error, reads the ring once more: data published before the FIN is
//!   visible then, and is returned before the end of stream.
//! - Failure: the error code is stored before the `FAILED` bit is set with
//!   `Release`, so a reader that sees `FAILED` (`Acquire`) sees the code.
//! - Application → driver: the ring update happens before the dirty bit's
//!   `AcqRel` `fetch_or` and the queue push (which synchronizes the driver's
//!   pop with it); the driver's `AcqRel` `swap` of the bits happens before
//!   its core call reads the ring. A bit set after that swap finds the bits
//!   clear and pushes again, so no update is missed.
//!
//! **Lifetimes, like a kernel.** Every socket holds a [`Stack`] handle, so
//! the driver runs while any stack handle or socket exists. Dropping a
//! [`TcpStream`] closes it through the core: reset if received data was
//! left unread, otherwise a graceful close continues in the background.
//! Dropping an [`OwnedWriteHalf`] shuts the write direction down, as in
//! Tokio. When the last handle is dropped, the driver keeps running while
//! any graceful close is in progress, as Linux keeps delivering after
//! `close()` without linger: the data already written, then the FIN, reach
//! the peer. It stops once every connection is closed or in TIME-WAIT
//! (TIME-WAIT is not kept), which the core's timeouts bound: the FIN-WAIT-2
//! timeout, and the user timeout for unacknowledged data (a peer that keeps
//! its window shut but answers the probes keeps the connection, and so the
//! driver, alive). [`Stack::shutdown`] stops gracefully: a FIN on every
//! connection, then a bounded wait for them to finish, then a reset of the
//! rest; [`Stack::abort`] resets them all at once. The driver is a task of
//! the runtime that built the stack: if that runtime shuts down, the task
//! is dropped and stops too. However it stops, every operation on the
//! stack and its sockets then fails with one error, `NotConnected` whose
//! source is [`StackStopped`] (see [`is_stack_stopped`]), instead of
//! waiting, from any runtime or thread; only reads still return the data
//! received before the stop, and the end of stream if the peer had closed.
//!
//! **Loopback.** A connection to one of the stack's own addresses, or to
//! 127.0.0.0/8, never reaches the device: the core loops its datagrams
//! back inside itself (RFC 1122 3.2.1.3), so two services on one stack
//! talk as over Linux's `lo`, and the driver is not involved. The stack
//! answers for 127.0.0.0/8 without it being in `Config::addrs`; the
//! device's host (the kernel behind a TUN) is not reachable there.
//!
//! **Tracing.** Each connection has a `tcp_conn` span; the driver tracks
//! each connection's last-known state and emits a `debug` event (`state
//! change`, with `from` and `to`) when it differs. States are sampled once
//! per driver round, and only while `debug` is enabled, so two transitions
//! within one round show as one; a connection the application closed is
//! no longer followed (the core releases its handle at `close`).
//!
//! # Differences from `tokio::net`
//!
//! - Both families as Linux with `net.ipv6.bindv6only=0`: a listener on
//!   `[::]:p` also accepts IPv4, reporting those peers IPv4-mapped
//!   (`::ffff:a.b.c.d`), unless [`TcpSocket::set_only_v6`]; the stack's
//!   addresses of both families are in `tcp_stack::Config::addrs`.
//! - `set_linger` with a non-zero timeout never blocks the drop: the close
//!   goes on in the background and is reset if data is still
//!   unacknowledged when the timeout passes ([`TcpStream::set_linger`]).
//! - After [`Stack::shutdown`], `accept` fails with `NotConnected`
//!   ([`StackStopped`], as every operation on a stopped stack), then again
//!   only after a one-second pause each time (no spinning). Not
//!   `ConnectionAborted`, which axum and hyper retry at once. Readiness
//!   fails with it too, as tokio's does once its I/O driver is gone.
//! - [`TcpStream::tcp_info`] is an extension (`async`: it asks the driver).

#![warn(missing_docs)]

pub mod device;
pub mod ring;

pub mod integrations;

mod driver;
mod error;
mod factory;
mod shared;
mod stack;
pub mod tcp;
mod waiters;

pub use error::{is_stack_stopped, StackStopped};
pub use stack::{
    clear_default, clear_runtime_default, default_stack, set_default, set_runtime_default, Builder,
    DefaultGuard, Stack,
};
pub use tcp::{
    Incoming, IntoIncoming, OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, TcpListener,
    TcpSocket, TcpStream, ToSocketAddrs, WriteHalf,
};
pub use tcp_stack::{
    Config, EthernetConfig, ListenerInfo, MacAddr, NeighbourInfo, NeighbourState, State, Stats,
    TcpInfo,
};

#[cfg(feature = "hyper-util")]
pub use integrations::hyper::HttpConnector;
pub use integrations::ListenerStream;
