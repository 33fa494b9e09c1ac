//! `try_read_vectored` / `try_write_vectored` on the stream and on both
//! kinds of halves, the halves' `AsRef<TcpStream>`, and tokio's module
//! paths (`tcp_async::tcp::OwnedReadHalf`, ...).

mod common;

use common::{connected, stacks, within};
use std::io::{IoSlice, IoSliceMut};
use tcp_async::tcp::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
use tcp_async::TcpStream;

/// Writes `parts` gathered from `w`, reads them scattered at `r`.
async fn round_trip(w: &TcpStream, r: &TcpStream, write: impl Fn(&[IoSlice<'_>]) -> usize) {
    w.writable().await.unwrap();
    let n = write(&[IoSlice::new(b"hello "), IoSlice::new(b"world")]);
    assert_eq!(n, 11);
    let (mut x, mut y) = ([0u8; 4], [0u8; 16]);
    let mut got = 0;
    while got < 11 {
        within("readable", r.readable()).await.unwrap();
        let mut bufs = [IoSliceMut::new(&mut x[..]), IoSliceMut::new(&mut y[..])];
        match r.try_read_vectored(&mut bufs) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&x, b"hell");
    assert_eq!(&y[..7], b"o world");
}

#[tokio::test]
async fn vectored_io_on_streams_and_halves() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 900).await;
    round_trip(&client, &server, |bufs| {
        client.try_write_vectored(bufs).unwrap()
    })
    .await;

    // Borrowed halves.
    {
        let (cr, cw): (ReadHalf<'_>, WriteHalf<'_>) = client.split();
        let sref: &TcpStream = &server;
        round_trip(cw.as_ref(), sref, |bufs| {
            cw.try_write_vectored(bufs).unwrap()
        })
        .await;
        assert_eq!(cr.as_ref().peer_addr().unwrap(), sref.local_addr().unwrap());
        let (sr, _sw) = server.split();
        round_trip(cw.as_ref(), sr.as_ref(), |bufs| {
            cw.try_write_vectored(bufs).unwrap()
        })
        .await;
        let mut x = [0u8; 1];
        let e = sr
            .try_read_vectored(&mut [IoSliceMut::new(&mut x)])
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }

    // Owned halves.
    let (cr, cw): (OwnedReadHalf, OwnedWriteHalf) = client.into_split();
    let (sr, sw) = server.into_split();
    round_trip(cw.as_ref(), sr.as_ref(), |bufs| {
        cw.try_write_vectored(bufs).unwrap()
    })
    .await;
    round_trip(sw.as_ref(), cr.as_ref(), |bufs| {
        sw.try_write_vectored(bufs).unwrap()
    })
    .await;
    let mut x = [0u8; 1];
    let e = sr
        .try_read_vectored(&mut [IoSliceMut::new(&mut x)])
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    let err: ReuniteError = cr.reunite(sw).unwrap_err();
    drop(err);
    drop(cw);
    drop(sr);
}
