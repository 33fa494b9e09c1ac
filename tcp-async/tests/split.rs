//! Borrowed and owned splits.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn borrowed_halves_work_concurrently() {
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 3000).await;
    let data = pattern(500_000, 9);
    within("split", async {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let c2s = async {
            cw.write_all(&data).await.unwrap();
            cw.shutdown().await.unwrap();
        };
        let s_echo = async {
            tokio::io::copy(&mut sr, &mut sw).await.unwrap();
            sw.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let read = cr.read_to_end(&mut got);
        let (_, _, n) = tokio::join!(c2s, s_echo, read);
        assert_eq!(n.unwrap(), data.len());
        assert!(got == data);
    })
    .await;
}

#[tokio::test]
async fn owned_halves_move_to_tasks_and_reunite() {
    let (a, b) = stacks();
    let (client, mut server) = connected(&a, &b, 3001).await;
    let (mut r, mut w) = client.into_split();
    assert_eq!(r.peer_addr().unwrap(), w.peer_addr().unwrap());
    within("owned", async {
        let writer = tokio::spawn(async move {
            w.write_all(b"from a task").await.unwrap();
            w
        });
        let w = writer.await.unwrap();
        let mut buf = [0; 11];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from a task");
        server.write_all(b"back").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0; 4];
            r.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
            r
        });
        let r = reader.await.unwrap();
        let mut stream = r.reunite(w).expect("same stream");
        stream.write_all(b"!").await.unwrap();
        let mut one = [0; 1];
        server.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"!");
    })
    .await;
}

#[tokio::test]
async fn reunite_rejects_halves_of_different_streams() {
    let (a, b) = stacks();
    let (c1, _s1) = connected(&a, &b, 3002).await;
    let (c2, _s2) = connected(&a, &b, 3003).await;
    let (r1, _w1) = c1.into_split();
    let (_r2, w2) = c2.into_split();
    let err = r1.reunite(w2).unwrap_err();
    assert!(err.to_string().contains("not from the same socket"));
}

#[tokio::test]
async fn dropping_owned_write_half_shuts_down() {
    let (a, b) = stacks();
    let (client, mut server) = connected(&a, &b, 3004).await;
    let (mut r, mut w) = client.into_split();
    within("drop write half", async {
        w.write_all(b"last words").await.unwrap();
        drop(w);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
        // The read half still works.
        server.write_all(b"still here").await.unwrap();
        let mut buf = [0; 10];
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");
    })
    .await;
}

#[tokio::test]
async fn forgotten_owned_write_half_does_not_shut_down() {
    let (a, b) = stacks();
    let (client, server) = connected(&a, &b, 3005).await;
    let (_r, w) = client.into_split();
    w.forget();
    let mut buf = [0; 1];
    let r =
        tokio::time::timeout(std::time::Duration::from_millis(200), server.peek(&mut buf)).await;
    assert!(r.is_err(), "no FIN expected, got {r:?}");
}
