//! Two stacks in one process, joined by an in-memory cable.
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::Config;

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Bound on every wait: generous, never a performance threshold.
pub const LIMIT: Duration = Duration::from_secs(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn config(addr: Ipv4Addr, seed: u64) -> Config {
    Config {
        seed,
        ..Config::with_addr(addr)
    }
}

/// Stacks at 10.0.0.1 (`a`) and 10.0.0.2 (`b`), with the given configs.
pub fn stacks_with(a: Config, b: Config) -> (Stack, Stack) {
    init_tracing();
    let (da, db) = MemoryDevice::pair(1500);
    let a = Stack::builder(da).config(a).build().unwrap();
    let b = Stack::builder(db).config(b).build().unwrap();
    (a, b)
}

/// Stacks at 10.0.0.1 (`a`) and 10.0.0.2 (`b`) with default settings.
pub fn stacks() -> (Stack, Stack) {
    stacks_with(config(A, 1), config(B, 2))
}

pub fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// Runs `f` under [`LIMIT`], panicking with `what` if it takes longer.
#[track_caller]
pub fn within<F: Future>(what: &'static str, f: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    async move {
        match tokio::time::timeout(LIMIT, f).await {
            Ok(v) => v,
            Err(_) => panic!("timed out: {what} (at {caller})"),
        }
    }
}

/// A connection from `b` (client) to a listener on `a` (server) at `port`.
pub async fn connected(a: &Stack, b: &Stack, port: u16) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind_with(a, addr(A, port)).await.unwrap();
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(b, addr(A, port)), listener.accept())
    })
    .await;
    (client.unwrap(), accepted.unwrap().0)
}

/// Deterministic test payload.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed as u32)
                .to_le_bytes()[1]
        })
        .collect()
}

/// A memory end that calls `on_recv` with each packet it hands to the
/// driver, just before. It is dropped with the device, so a closure that
/// owns a sender also tells when the driver dropped the device.
pub struct Observed<F> {
    pub inner: MemoryDevice,
    pub on_recv: F,
}

impl<F: FnMut(&[u8]) + Send + 'static> tcp_async::device::Device for Observed<F> {
    fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = self.inner.poll_recv(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = r {
            (self.on_recv)(&buf[..n]);
        }
        r
    }

    fn poll_send(
        &mut self,
        cx: &mut std::task::Context<'_>,
        packet: &[u8],
    ) -> std::task::Poll<std::io::Result<()>> {
        self.inner.poll_send(cx, packet)
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
}
