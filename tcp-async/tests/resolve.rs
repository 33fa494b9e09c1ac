//! `bind` and `connect` take `tokio::net::ToSocketAddrs`: code generic over
//! tokio's trait calls them unchanged.

mod common;

use common::{stacks, within, A};
use tcp_async::{Stack, TcpListener, TcpStream};

async fn listen_on<T: tokio::net::ToSocketAddrs>(stack: &Stack, addr: T) -> TcpListener {
    TcpListener::bind_with(stack, addr).await.unwrap()
}

async fn connect_to<T: tokio::net::ToSocketAddrs>(stack: &Stack, addr: T) -> TcpStream {
    within("connect", TcpStream::connect_with(stack, addr))
        .await
        .unwrap()
}

#[tokio::test]
async fn generic_over_tokios_to_socket_addrs() {
    let (a, b) = stacks();
    let l1 = listen_on(&a, "10.0.0.1:1000").await;
    let l2 = listen_on(&a, (A, 1001)).await;
    let l3 = listen_on(&a, String::from("10.0.0.1:1002")).await;
    let _c1 = connect_to(&b, l1.local_addr().unwrap()).await;
    let _c2 = connect_to(&b, ("10.0.0.1", 1001)).await;
    let addrs = [l3.local_addr().unwrap()];
    let _c3 = connect_to(&b, &addrs[..]).await;
    for l in [&l1, &l2, &l3] {
        within("accept", l.accept()).await.unwrap();
    }
}
