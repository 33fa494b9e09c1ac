//! `take_error` (`SO_ERROR`) and the Linux error sequence after a reset:
//! `ConnectionReset` once, then reads give the end of stream and writes
//! `BrokenPipe`.

mod common;

use common::{connected, stacks, within};
use std::io::ErrorKind;
use tcp_async::TcpSocket;

#[tokio::test]
async fn take_error_reports_a_reset_once_then_reads_end_and_writes_break() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 1100).await;
    assert!(client.take_error().unwrap().is_none());
    server.set_zero_linger().unwrap();
    drop(server);
    within("reset", client.readable()).await.unwrap();
    let err = client.take_error().unwrap().expect("the reset is pending");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(client.take_error().unwrap().is_none(), "reported once");
    // Already reported: reads give the end of stream, writes EPIPE.
    let mut buf = [0u8; 8];
    assert_eq!(client.try_read(&mut buf).unwrap(), 0);
    let err = client.try_write(b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn a_read_takes_the_error_before_take_error() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 1101).await;
    server.set_zero_linger().unwrap();
    drop(server);
    within("reset", client.readable()).await.unwrap();
    let mut buf = [0u8; 8];
    let err = client.try_read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(client.take_error().unwrap().is_none());
    assert_eq!(client.try_read(&mut buf).unwrap(), 0);
}

#[tokio::test]
async fn an_unconnected_socket_has_no_error() {
    let (a, _b) = stacks();
    assert!(TcpSocket::new_v4_with(&a).take_error().unwrap().is_none());
}
