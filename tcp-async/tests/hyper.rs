//! hyper runs unchanged over these sockets (through `hyper_util`'s `TokioIo`).

mod common;

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tcp_async::{TcpListener, TcpStream};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{path}: {} bytes",
        body.len()
    )))))
}

#[tokio::test]
async fn http1_requests_over_one_connection() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 80)).await.unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
            .await
            .unwrap();
    });
    within("http", async {
        let stream = TcpStream::connect_with(&b, addr(A, 80)).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        for (path, len) in [("/a", 0usize), ("/big", 300_000), ("/b", 5)] {
            let req = Request::post(path)
                .header("host", "10.0.0.1")
                .body(Full::new(Bytes::from(pattern(len, 1))))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("{path}: {len} bytes").as_bytes());
        }
        drop(sender);
        conn.await.unwrap().unwrap();
        server.await.unwrap();
    })
    .await;
}
