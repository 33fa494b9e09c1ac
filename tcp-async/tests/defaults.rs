//! The default stack of `TcpListener::bind`, `TcpStream::connect` and
//! `TcpSocket::new_v4`: scoped to a thread (`Stack::enter`), per runtime
//! (`set_runtime_default`), or process-wide (`set_default`), in that order,
//! so two runtimes or parallel tests each keep their own.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use tcp_async::device::MemoryDevice;
use tcp_async::{Stack, TcpListener, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

fn runtime() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// A server stack at `10.0.n.1` and a client stack at `10.0.n.2`.
fn pair(n: u8) -> (Stack, Stack) {
    let (da, db) = MemoryDevice::pair(1500);
    let server = Stack::builder(da)
        .config(config(Ipv4Addr::new(10, 0, n, 1), 1))
        .build()
        .unwrap();
    let client = Stack::builder(db)
        .config(config(Ipv4Addr::new(10, 0, n, 2), 2))
        .build()
        .unwrap();
    (server, client)
}

fn first_addr(stack: &Stack) -> IpAddr {
    stack.config().addrs[0]
}

/// Binds and connects through the default stack, which must be `server`:
/// its address is the only one a bind can take.
async fn serve_on_default(n: u8, client: &Stack) {
    let ip = Ipv4Addr::new(10, 0, n, 1);
    let listener = TcpListener::bind(addr(ip, 80)).await.unwrap();
    assert_eq!(listener.local_addr().unwrap(), addr(ip, 80));
    let (c, s) = within("connect+accept", async {
        tokio::join!(
            TcpStream::connect_with(client, addr(ip, 80)),
            listener.accept()
        )
    })
    .await;
    let mut c = c.unwrap();
    let (mut s, _) = s.unwrap();
    c.write_all(&[n]).await.unwrap();
    let mut b = [0u8];
    within("read", s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [n]);
    // The other thread's stack is not this one: its address is not ours.
    let other = Ipv4Addr::new(10, 0, 3 - n, 1);
    let e = TcpListener::bind(addr(other, 80)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
    // TcpSocket takes the same default.
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(addr(ip, 81)).unwrap();
    drop(sock.listen(8).unwrap());
}

/// Two runtimes on two threads, each with its own runtime default, bind at
/// the same time.
#[test]
fn two_runtimes_keep_their_own_defaults() {
    init_tracing();
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [1u8, 2]
        .into_iter()
        .map(|n| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                rt.block_on(async {
                    let (server, client) = pair(n);
                    server.set_runtime_default().unwrap();
                    // Both are set before either binds.
                    barrier.wait();
                    serve_on_default(n, &client).await;
                    let own = tcp_async::clear_runtime_default().unwrap();
                    assert_eq!(first_addr(&own), first_addr(&server));
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Two threads with a scoped default each, on one multi-thread runtime's
/// handle: the scope is the thread's.
#[test]
fn scoped_defaults_are_per_thread() {
    init_tracing();
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [1u8, 2]
        .into_iter()
        .map(|n| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                let (server, client) = rt.block_on(async { pair(n) });
                let _guard = server.enter();
                barrier.wait();
                rt.block_on(serve_on_default(n, &client));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Scoped before runtime before process-wide; a guard restores the
/// previous scoped default, and clearing falls back to the next.
#[test]
fn precedence_scoped_then_runtime_then_process() {
    init_tracing();
    let rt = runtime();
    rt.block_on(async {
        let (global, runtime_wide) = pair(7);
        let (scoped, inner) = pair(8);
        let default = || first_addr(&tcp_async::default_stack().unwrap());

        assert!(tcp_async::set_default(global.clone()).is_none());
        assert_eq!(default(), first_addr(&global));
        runtime_wide.set_runtime_default().unwrap();
        assert_eq!(default(), first_addr(&runtime_wide));
        {
            let _outer = scoped.enter();
            assert_eq!(default(), first_addr(&scoped));
            {
                let _inner = inner.enter();
                assert_eq!(default(), first_addr(&inner));
            }
            assert_eq!(default(), first_addr(&scoped));
            // Another thread does not see this thread's scope.
            let seen =
                std::thread::spawn(|| tcp_async::default_stack().map(|s| first_addr(&s)).ok())
                    .join()
                    .unwrap();
            assert_eq!(seen, Some(first_addr(&global)), "no runtime there");
        }
        assert_eq!(default(), first_addr(&runtime_wide));
        assert!(tcp_async::clear_runtime_default().is_some());
        assert_eq!(default(), first_addr(&global));
        assert!(tcp_async::clear_default().is_some());
        let e = tcp_async::default_stack().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    });
}

/// Outside a runtime there is no runtime default to set.
#[test]
fn runtime_default_needs_a_runtime() {
    let rt = runtime();
    let (stack, _) = rt.block_on(async { pair(9) });
    let e = tcp_async::set_runtime_default(stack).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(tcp_async::clear_runtime_default().is_none());
}
