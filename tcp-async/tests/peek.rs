//! `peek` and `poll_peek` look without consuming.

mod common;

use common::*;
use std::future::poll_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};

#[tokio::test]
async fn peek_does_not_consume() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 4000).await;
    within("peek", async {
        client.write_all(b"peekaboo").await.unwrap();
        let mut buf = [0; 8];
        let mut n = 0;
        while n < 8 {
            n = server.peek(&mut buf).await.unwrap();
        }
        assert_eq!(&buf, b"peekaboo");
        // Peeking twice returns the same bytes.
        let mut again = [0; 4];
        assert_eq!(server.peek(&mut again).await.unwrap(), 4);
        assert_eq!(&again, b"peek");
        let mut read = [0; 8];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"peekaboo");
    })
    .await;
}

#[tokio::test]
async fn poll_peek_waits_for_data_and_sees_end_of_stream() {
    let (a, b) = stacks();
    let (mut client, server) = connected(&a, &b, 4001).await;
    within("poll_peek", async {
        let peeker = async {
            let mut storage = [0u8; 16];
            let mut rb = ReadBuf::new(&mut storage);
            let n = poll_fn(|cx| server.poll_peek(cx, &mut rb)).await.unwrap();
            assert!(n > 0);
            assert_eq!(rb.filled(), &b"hi"[..n]);
        };
        let writer = async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            client.write_all(b"hi").await.unwrap();
        };
        tokio::join!(peeker, writer);
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        let mut server = server;
        server.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"hi");
        let mut buf = [0; 4];
        assert_eq!(server.peek(&mut buf).await.unwrap(), 0);
    })
    .await;
}
