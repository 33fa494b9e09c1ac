//! A hyper client on the kernel side (over tokio::net::TcpStream) against
//! the http example's router served on our stack.

mod common;
#[path = "../examples/common/router.rs"]
mod router;

use bytes::Bytes;
use common::{kernel_net, pattern, within};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tcp_async::TcpListener;

const PORT: u16 = 8080;

async fn serve(listener: TcpListener) {
    loop {
        let (s, _) = listener.accept().await.expect("accept on our stack");
        tokio::spawn(async move {
            let _ = router::serve_connection(s).await;
        });
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn kernel_client(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("kernel connect to our HTTP server");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn request(
    sender: &mut Sender,
    method: Method,
    path: &str,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "utcp.test")
        .body(Full::new(body))
        .unwrap();
    // The connection takes the next request only once it has finished
    // with the previous one.
    sender
        .ready()
        .await
        .expect("connection ready for the next request");
    let resp = sender.send_request(req).await.expect("send_request");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_kernel_client_against_our_router() {
    let Some(net) = kernel_net() else { return };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(PORT))
        .await
        .unwrap();
    let server = tokio::spawn(serve(listener));
    let addr = net.our_addr(PORT);
    within(60, "http", async {
        // Several requests on one keep-alive connection.
        let mut c = kernel_client(addr).await;
        let (st, body) = request(&mut c, Method::GET, "/", Bytes::new()).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body, router::GREETING.as_bytes());

        let n = 4u64 << 20;
        let (st, body) = request(&mut c, Method::GET, &format!("/bytes/{n}"), Bytes::new()).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body.len() as u64, n);
        let mut v = pattern::Verifier::new();
        v.update(&body);
        assert_eq!(v.first_mismatch, None);

        let mut payload = vec![0u8; 3 << 20];
        pattern::fill(12345, &mut payload);
        let payload = Bytes::from(payload);
        let (st, body) = request(&mut c, Method::POST, "/echo", payload.clone()).await;
        assert_eq!(st, StatusCode::OK);
        assert!(body == payload, "POST /echo body differs");

        let (st, _) = request(&mut c, Method::GET, "/missing", Bytes::new()).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = request(&mut c, Method::GET, "/bytes/lots", Bytes::new()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, _) = request(&mut c, Method::GET, "/bytes/0", Bytes::new()).await;
        assert_eq!(st, StatusCode::OK);

        // Concurrent connections.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                tokio::spawn(async move {
                    let mut c = kernel_client(addr).await;
                    let body = Bytes::from(format!("request {i}").repeat(100));
                    let (st, back) = request(&mut c, Method::POST, "/echo", body.clone()).await;
                    assert_eq!(st, StatusCode::OK);
                    assert_eq!(back, body);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    server.abort();
}
