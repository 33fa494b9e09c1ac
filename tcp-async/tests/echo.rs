//! Data round trips through two stacks.

mod common;

use common::*;
use std::io::IoSlice;
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[tokio::test]
async fn echo_small() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 7).await;
    let server_task = tokio::spawn(async move {
        let (mut r, mut w) = server.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
    });
    within("echo", async {
        client.write_all(b"hello, world").await.unwrap();
        let mut buf = [0; 12];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello, world");
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server_task.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn echo_large_both_ways_concurrently() {
    let (a, b) = stacks();
    echo_large(&a, &b, 2 * 1024 * 1024 + 17, 3).await;
}

/// Echoes `len` bytes from `b` through a server on `a`, writing and reading
/// concurrently; checks every byte and the server's count.
async fn echo_large(a: &tcp_async::Stack, b: &tcp_async::Stack, len: usize, seed: u8) {
    let (client, mut server) = connected(a, b, 7).await;
    let server_task = tokio::spawn(async move {
        let (mut r, mut w) = server.split();
        let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
        n
    });
    let data = pattern(len, seed);
    let (mut r, mut w) = client.into_split();
    let sent = data.clone();
    within("large echo", async move {
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "echoed bytes differ");
        assert_eq!(server_task.await.unwrap(), data.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn vectored_write_keeps_order() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 9).await;
    assert!(client.is_write_vectored());
    within("vectored", async {
        let parts: [&[u8]; 3] = [b"abc", b"", b"defgh"];
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let n = client.write_vectored(&slices).await.unwrap();
        assert_eq!(n, 8);
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcdefgh");
    })
    .await;
}

#[tokio::test]
async fn try_read_and_try_write() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 10).await;
    within("try_*", async {
        let mut buf = [0u8; 16];
        assert_eq!(
            server.try_read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        client.writable().await.unwrap();
        assert_eq!(client.try_write(b"ping").unwrap(), 4);
        let mut got = Vec::new();
        while got.len() < 4 {
            server.readable().await.unwrap();
            match server.try_read_buf(&mut got) {
                Ok(n) => assert!(n > 0),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, b"ping");
    })
    .await;
}

#[tokio::test]
async fn many_connections_echo_concurrently() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 7000)).await.unwrap();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (mut s, _) = listener.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut clients = Vec::new();
    for i in 0..32u8 {
        let b = b.clone();
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect_with(&b, addr(A, 7000)).await.unwrap();
            let data = pattern(50_000 + usize::from(i) * 100, i);
            let (mut r, mut w) = s.split();
            let write = async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let read = r.read_to_end(&mut got);
            let (_, n) = tokio::join!(write, read);
            n.unwrap();
            assert!(got == data, "connection {i} echoed different bytes");
        }));
    }
    within("32 echoes", async {
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_on_a_multi_thread_runtime() {
    let (a, b) = stacks();
    let (client, mut server) = connected(&a, &b, 11).await;
    let server_task = tokio::spawn(async move {
        let (mut r, mut w) = server.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let data = pattern(1024 * 1024, 6);
    let sent = data.clone();
    let (mut r, mut w) = client.into_split();
    within("multi-thread echo", async move {
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(1000) {
                w.write_all(chunk).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        writer.await.unwrap();
        server_task.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn slow_reader_reopens_a_zero_window() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 12)).await.unwrap();
    let socket = tcp_async::TcpSocket::new_v4_with(&b);
    socket.set_recv_buffer_size(4096).unwrap();
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(socket.connect(addr(A, 12)), listener.accept())
    })
    .await;
    let mut client = client.unwrap();
    let (mut server, _) = accepted.unwrap();
    let data = pattern(200_000, 12);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&sent).await.unwrap();
        server.shutdown().await.unwrap();
        server
    });
    within("zero window", async {
        // Let the 4 KiB window fill up and close.
        let mut first = [0; 1];
        client.peek(&mut first).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let info = client.tcp_info().await.unwrap();
        assert!(info.recv_window <= 4096);
        // Now read in small bites: each read frees space the peer must learn of.
        let mut got = Vec::new();
        let mut buf = [0; 700];
        loop {
            let n = client.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data);
        writer.await.unwrap();
    })
    .await;
}

/// Counts the super-packets a device is handed, forwarding everything.
struct CountingGso<D> {
    inner: D,
    supers: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<D: tcp_async::device::Device> tcp_async::device::Device for CountingGso<D> {
    fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.inner.poll_recv(cx, buf)
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
    fn offloads(&self) -> tcp_async::device::Offloads {
        self.inner.offloads()
    }
    fn poll_recv_meta(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<tcp_async::device::RxPacket>> {
        self.inner.poll_recv_meta(cx, buf)
    }
    fn poll_send_gso(
        &mut self,
        cx: &mut std::task::Context<'_>,
        packet: &[u8],
        segment_size: u16,
        headers: tcp_async::device::TxHeaders,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.supers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.poll_send_gso(cx, packet, segment_size, headers)
    }
}

/// Over a memory pair with offloads, both stacks send super-packets, which
/// arrive whole with partial checksums; 4 MiB echo byte-exact.
#[tokio::test]
async fn echo_large_over_offloaded_pair() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tcp_async::device::MemoryDevice;
    init_tracing();
    let (da, db) = MemoryDevice::pair_with_offloads(1500);
    let (sa, sb) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let da = CountingGso {
        inner: da,
        supers: sa.clone(),
    };
    let db = CountingGso {
        inner: db,
        supers: sb.clone(),
    };
    let a = tcp_async::Stack::builder(da)
        .config(config(A, 1))
        .build()
        .unwrap();
    let b = tcp_async::Stack::builder(db)
        .config(config(B, 2))
        .build()
        .unwrap();
    echo_large(&a, &b, 4 * 1024 * 1024 + 5, 9).await;
    let (supers_a, supers_b) = (sa.load(Ordering::Relaxed), sb.load(Ordering::Relaxed));
    assert!(supers_a > 0 && supers_b > 0, "{supers_a} {supers_b}");
    assert_eq!(a.stats().await.unwrap().drop_checksum, 0);
    assert_eq!(b.stats().await.unwrap().drop_checksum, 0);
}
