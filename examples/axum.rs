//! An axum app served over the user-space stack with `axum::serve`.
//!
//! ```text
//! cargo run --release --example axum -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --port 8080
//! curl http://10.7.0.2:8080/          # greeting
//! curl http://10.7.0.2:8080/peer      # the client's address (ConnectInfo)
//! curl --data-binary @FILE http://10.7.0.2:8080/echo
//! ```
//! Needs tcp-async's `axum` feature (on for the workspace's examples).
//! Without a TUN device (or with `--memory`) it runs an in-process demo: a
//! hyper-util client on a second stack, through `tcp_async::HttpConnector`.

mod common;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use common::{Net, Opts};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tcp_async::{HttpConnector, Stack, TcpListener};

const USAGE: &str = "usage: axum [device flags]   (port 8080 by default)
  routes: GET / (greeting), GET /peer (client address), POST /echo";

/// The greeting of `GET /`.
const GREETING: &str = "hello from axum on utcp\n";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { GREETING }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { format!("{peer}\n") }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
}

/// The in-memory demo: hyper-util's legacy client on the second stack.
async fn demo(client: &Stack, server: SocketAddr) -> Result<(), Error> {
    let client_addr = client.config().addrs[0];
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new(client));
    let get = |path: &str| {
        let uri: hyper::Uri = format!("http://{server}{path}").parse()?;
        Ok::<_, Error>(http.get(uri))
    };

    let resp = get("/")?.await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!("GET / -> {status}: {:?}", String::from_utf8_lossy(&body));
    if !status.is_success() || body != GREETING.as_bytes() {
        return Err("unexpected greeting".into());
    }

    let resp = get("/peer")?.await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let peer = String::from_utf8_lossy(&body).trim().to_owned();
    println!("GET /peer -> {peer} (the demo client is {client_addr})");
    match peer.parse::<SocketAddr>() {
        Ok(p) if p.ip() == client_addr => {}
        _ => return Err(format!("ConnectInfo said {peer:?}").into()),
    }

    let payload = Bytes::from(vec![b'x'; 200_000]);
    let req =
        hyper::Request::post(format!("http://{server}/echo")).body(Full::new(payload.clone()))?;
    let resp = http.request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    println!("POST /echo ({} B) -> {} B back", payload.len(), body.len());
    if body != payload {
        return Err("echo mismatch".into());
    }
    Ok(())
}

async fn run() -> Result<(), Error> {
    let opts = Opts::parse(USAGE, 8080, &[]);
    let net = common::setup(&opts)?;
    let stack = net.stack().clone();
    let listener = TcpListener::bind_with(&stack, opts.local()).await?;
    println!("axum listening on http://{}/", listener.local_addr()?);
    // `tap_io` gives axum's `ConnectInfo<SocketAddr>` (see
    // tcp_async::integrations::axum); it also sets TCP_NODELAY.
    let listener = listener.tap_io(|s| {
        let _ = s.set_nodelay(true);
    });
    let make = app().into_make_service_with_connect_info::<SocketAddr>();
    // `serve` ends when the stack is shut down (by Ctrl-C below).
    let stopped = stack.stopped();
    let server = tokio::spawn(async move {
        axum::serve(listener, make)
            .with_graceful_shutdown(stopped)
            .await
    });
    match &net {
        Net::Device { .. } => {
            common::ctrl_c().await;
            println!("interrupted");
            // Flushes the driver (and the pcap file) before exit.
            stack.shutdown().await;
        }
        Net::Memory { client, .. } => {
            for target in opts.targets() {
                tokio::time::timeout(Duration::from_secs(30), demo(client, target))
                    .await
                    .map_err(|_| "demo timed out")??;
            }
            stack.shutdown().await;
            println!("demo finished");
        }
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .map_err(|_| "axum::serve did not end with the stack")???;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
