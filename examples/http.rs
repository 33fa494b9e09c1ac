//! HTTP/1.1 server (hyper) on the user-space stack.
//!
//! ```text
//! cargo run --release --example http -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --port 8080
//! curl http://10.7.0.2:8080/            # greeting
//! curl http://10.7.0.2:8080/bytes/1000  # 1000 bytes
//! curl --data-binary @FILE http://10.7.0.2:8080/echo
//! curl http://10.7.0.2:8080/debug/connections   # like `ss -tni`
//! curl http://10.7.0.2:8080/debug/stats         # like `nstat -a`
//! ```
//! Over IPv6: `--addr fd00:7::2 --peer fd00:7::1 --prefix 64`, then
//! `curl -g http://[fd00:7::2]:8080/`; with `--addr6 fd00:7::2 --peer6
//! fd00:7::1` beside the IPv4 flags it listens on `[::]:8080` for both.
//! Without a TUN device (or with `--memory`) it runs an in-process demo.

mod common;

use bytes::Bytes;
use common::{pattern, router, Net, Opts};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tcp_async::{Stack, TcpListener, TcpStream};

const USAGE: &str = "usage: http [device flags]   (port 8080 by default)
  e.g. http --tun ut6 --addr fd00:7::2 --peer fd00:7::1 --prefix 64, then
  curl -g http://[fd00:7::2]:8080/";

async fn serve(listener: TcpListener, stack: Stack) -> io::Result<()> {
    loop {
        let (s, peer) = listener.accept().await?;
        let stack = stack.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(req, stack.clone()));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), service)
                .await;
            if let Err(e) = served {
                println!("{peer}: {e}");
            }
        });
    }
}

/// The demo router, plus the stack's own view of itself as text:
/// `/debug/connections` (every listener and connection, one `ss -tni`
/// line each) and `/debug/stats` (the counters as `nstat -a` prints them).
async fn route(
    req: Request<Incoming>,
    stack: Stack,
) -> Result<Response<router::RespBody>, Infallible> {
    if req.method() != Method::GET || !req.uri().path().starts_with("/debug/") {
        return router::route(req).await;
    }
    let text = match req.uri().path() {
        "/debug/connections" => debug_connections(&stack).await,
        "/debug/stats" => stack.stats().await.map(|s| s.to_string()),
        _ => return router::route(req).await,
    };
    let (status, body) = match text {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    let body = Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {});
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.boxed())
        .expect("static response parts are valid"))
}

async fn debug_connections(stack: &Stack) -> io::Result<String> {
    let mut text = String::new();
    for l in stack.listeners().await? {
        let _ = writeln!(text, "{l}");
    }
    for c in stack.connections().await? {
        let _ = writeln!(text, "{c}");
    }
    Ok(text)
}

/// The in-memory demo: a hyper client on the second stack.
async fn demo(
    client: &tcp_async::Stack,
    server: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    let stream = TcpStream::connect_with(client, server).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);

    println!("demo: connected to {server}");
    let host = server.to_string();
    let get = |path: &str| {
        Request::builder()
            .uri(path)
            .header("host", &host)
            .body(Full::new(Bytes::new()))
    };

    sender.ready().await?;
    let resp = sender.send_request(get("/")?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "GET / -> {status}: {:?}",
        String::from_utf8_lossy(&body).trim_end()
    );
    if status != StatusCode::OK || body != router::GREETING.as_bytes() {
        return Err("unexpected greeting".into());
    }

    let n = 1_000_000u64;
    sender.ready().await?;
    let resp = sender.send_request(get(&format!("/bytes/{n}"))?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let mut v = pattern::Verifier::new();
    v.update(&body);
    println!(
        "GET /bytes/{n} -> {status}: {} B, pattern {}",
        body.len(),
        if v.ok() { "ok" } else { "WRONG" }
    );
    if body.len() as u64 != n || !v.ok() {
        return Err("unexpected /bytes body".into());
    }

    let payload = Bytes::from(vec![b'x'; 300_000]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/echo")
        .header("host", &host)
        .body(Full::new(payload.clone()))?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "POST /echo ({} B) -> {status}: {} B back",
        payload.len(),
        body.len()
    );
    if body != payload {
        return Err("echo mismatch".into());
    }

    for path in ["/debug/connections", "/debug/stats"] {
        sender.ready().await?;
        let resp = sender.send_request(get(path)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        println!("GET {path} -> {status}:\n{}", text.trim_end());
        // The demo's own connection is listed; the counters are named.
        let expect = if path == "/debug/stats" {
            "UtcpConnectionsAccepted"
        } else {
            "ESTAB"
        };
        if status != StatusCode::OK || !text.contains(expect) {
            return Err(format!("unexpected {path} body").into());
        }
    }

    sender.ready().await?;
    let resp = sender
        .send_request(
            Request::builder()
                .uri("/nope")
                .header("host", &host)
                .body(Full::new(Bytes::new()))?,
        )
        .await?;
    println!("GET /nope -> {}", resp.status());
    drop(sender);
    conn.await??;
    Ok(())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let opts = Opts::parse(USAGE, 8080, &[]);
    let net = common::setup(&opts)?;
    let listener = TcpListener::bind_with(net.stack(), opts.local()).await?;
    println!("HTTP listening on http://{}/", listener.local_addr()?);
    let server = tokio::spawn(serve(listener, net.stack().clone()));
    match &net {
        Net::Device { .. } => {
            tokio::select! {
                r = server => r??,
                _ = common::ctrl_c() => {
                    println!("interrupted");
                    // Flushes the driver (and the pcap file) before exit.
                    net.stack().shutdown().await;
                }
            }
        }
        Net::Memory { client, .. } => {
            for target in opts.targets() {
                tokio::time::timeout(Duration::from_secs(30), demo(client, target))
                    .await
                    .map_err(|_| "demo timed out")??;
            }
            println!("demo finished");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
