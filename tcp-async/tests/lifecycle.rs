//! A stack never hangs its users: when the runtime that runs its driver
//! shuts down, every pending and later operation on its sockets fails
//! (with the errors `Stack::shutdown` gives) instead of waiting forever.
//!
//! Each test builds the stacks on one runtime, uses their sockets from a
//! second one, and drops the first under them; the second bounds every
//! wait with [`LIMIT`], a hang guard only.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use tcp_async::{Stack, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

/// Nobody answers there: a connect to it stays in SYN-SENT.
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

struct World {
    a: Stack,
    b: Stack,
    client: TcpStream,
    server: TcpStream,
    /// A listener nobody connects to: its `accept` stays pending.
    idle: TcpListener,
}

/// Stacks and a live connection, made on `rt`, whose driver runs there.
fn world_on(rt: &Runtime) -> World {
    rt.block_on(async {
        let (a, b) = stacks();
        let listener = TcpListener::bind_with(&b, addr(B, 80)).await.unwrap();
        let (client, accepted) = within("connect+accept", async {
            tokio::join!(TcpStream::connect_with(&a, addr(B, 80)), listener.accept())
        })
        .await;
        let mut client = client.unwrap();
        let (mut server, _) = accepted.unwrap();
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        within("read", server.read_exact(&mut buf)).await.unwrap();
        let idle = TcpListener::bind_with(&b, addr(B, 81)).await.unwrap();
        World {
            a,
            b,
            client,
            server,
            idle,
        }
    })
}

fn second_runtime() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// Starts a pending read, accept, connect and readiness wait on `other`,
/// drops the driver's runtime with `stop`, then checks each fails.
fn pending_operations_fail_when(stop: impl FnOnce(Runtime)) {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let World {
        a,
        b,
        client,
        server,
        idle,
    } = world_on(&rt);
    let other = second_runtime();
    let _enter = other.enter();
    let read = tokio::spawn(async move {
        let mut client = client;
        let mut buf = [0u8; 16];
        let r = client.read(&mut buf).await;
        (r.map_err(|e| e.kind()), client)
    });
    let accept = tokio::spawn(async move { idle.accept().await.map(drop).map_err(|e| e.kind()) });
    let readable = tokio::spawn(async move {
        let r = server.readable().await;
        (r.map_err(|e| e.kind()), server)
    });
    let a2 = a.clone();
    let connect = tokio::spawn(async move {
        TcpStream::connect_with(&a2, SocketAddr::from((NOBODY, 80)))
            .await
            .map(drop)
            .map_err(|e| e.kind())
    });
    // Wait until the connect reached the driver (it is in SYN-SENT), so
    // the test sees a connection failing, not only a command.
    other.block_on(within("connect sent", async {
        while a.stats().await.unwrap().connections_opened < 2 {
            tokio::task::yield_now().await;
        }
    }));

    stop(rt);

    other.block_on(within("everything fails", async {
        let (r, mut client) = read.await.unwrap();
        assert_eq!(r, Err(ErrorKind::NotConnected), "pending read");
        assert_eq!(accept.await.unwrap(), Err(ErrorKind::NotConnected));
        assert_eq!(connect.await.unwrap(), Err(ErrorKind::NotConnected));
        let (r, server) = readable.await.unwrap();
        assert_eq!(r, Err(ErrorKind::NotConnected), "pending readiness");
        let mut buf = [0u8; 4];
        let e = server.try_read(&mut buf).unwrap_err();
        assert!(tcp_async::is_stack_stopped(&e), "{e}");
        // Later operations fail at once too.
        let e = client.write_all(b"more").await.unwrap_err();
        assert!(tcp_async::is_stack_stopped(&e), "{e}");
        let e = TcpStream::connect_with(&a, addr(B, 80)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotConnected);
        let e = TcpListener::bind_with(&b, addr(B, 82)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotConnected);
        assert_eq!(a.stats().await.unwrap_err().kind(), ErrorKind::NotConnected);
        // Shutting a dead stack down returns.
        a.shutdown().await;
        b.shutdown().await;
    }));
}

#[test]
fn dropping_the_runtime_fails_pending_operations() {
    pending_operations_fail_when(drop);
}

#[test]
fn shutdown_background_fails_pending_operations() {
    pending_operations_fail_when(Runtime::shutdown_background);
}

#[test]
fn shutdown_timeout_of_the_runtime_fails_pending_operations() {
    pending_operations_fail_when(|rt| rt.shutdown_timeout(LIMIT));
}

/// A current-thread runtime that is no longer driven still owns the driver:
/// commands sent meanwhile wait in the channel, and fail once it is dropped.
#[test]
fn commands_queued_for_an_idle_runtime_fail_when_it_is_dropped() {
    let rt = second_runtime();
    let World { a, client, .. } = world_on(&rt);
    let other = second_runtime();
    let _enter = other.enter();
    let connect = tokio::spawn(async move {
        TcpStream::connect_with(&a, SocketAddr::from((NOBODY, 80)))
            .await
            .map(drop)
            .map_err(|e| e.kind())
    });
    let read = tokio::spawn(async move {
        let mut client = client;
        let mut buf = [0u8; 16];
        client.read(&mut buf).await.map_err(|e| e.kind())
    });
    // Let both start waiting.
    other.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    drop(rt);
    other.block_on(within("both fail", async {
        assert_eq!(connect.await.unwrap(), Err(ErrorKind::NotConnected));
        assert_eq!(read.await.unwrap(), Err(ErrorKind::NotConnected));
    }));
}
