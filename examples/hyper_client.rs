//! hyper-util's legacy `Client` sending over the user-space stack, through
//! `tcp_async::HttpConnector`.
//!
//! ```text
//! python3 -m http.server --bind 10.7.0.1 8000 &   # a kernel-side server
//! cargo run --release --example hyper_client -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --url http://10.7.0.1:8000/
//! ```
//! It prints the status, the headers' count and the body's length, then
//! exits (non-zero on a failed request). Needs tcp-async's `hyper-util`
//! feature (on for the workspace's examples). Without a TUN device (or
//! with `--memory`) it runs an in-process demo: a hyper server on a second
//! stack, which the client fetches from.

mod common;

use bytes::Bytes;
use common::{router, Net, Opts};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tcp_async::{HttpConnector, Stack, TcpListener};

const USAGE: &str = "usage: hyper_client [device flags] --url URL
  --url URL        what to GET (http only; default http://PEER:PORT/)";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// GETs `url` on `stack`; returns the body.
async fn fetch(stack: &Stack, url: &str) -> Result<Bytes, Error> {
    let mut connector = HttpConnector::new(stack);
    connector.set_nodelay(true);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let resp = client.get(url.parse()?).await?;
    let status = resp.status();
    let headers = resp.headers().len();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "GET {url} -> {status}, {headers} headers, {} B body",
        body.len()
    );
    if !status.is_success() {
        return Err(format!("status {status}").into());
    }
    Ok(body)
}

/// The in-memory demo's server: the http example's routes, on `stack`.
async fn demo_server(stack: Stack, addr: SocketAddr) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind_with(&stack, addr).await?;
    let local = listener.local_addr()?;
    println!("demo HTTP server listening on http://{local}/");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(router::serve_connection(s));
        }
    });
    Ok(local)
}

async fn run() -> Result<(), Error> {
    let opts = Opts::parse(USAGE, 8000, &["url"]);
    let net = common::setup(&opts)?;
    let url = match (&net, opts.get("url")) {
        (Net::Memory { client, .. }, _) => {
            let ip = opts.demo_client_addr();
            let server = demo_server(client.clone(), SocketAddr::new(ip, opts.port)).await?;
            format!("http://{server}/bytes/100000")
        }
        (Net::Device { .. }, Some(url)) => url.to_owned(),
        (Net::Device { .. }, None) => match opts.peer {
            Some(peer) => format!("http://{}/", SocketAddr::new(peer, opts.port)),
            None => return Err("no --url and no --peer to fetch from".into()),
        },
    };
    let r = tokio::time::timeout(Duration::from_secs(30), fetch(net.stack(), &url))
        .await
        .map_err(|_| "request timed out")?;
    net.stack().shutdown().await;
    let body = r?;
    if let Net::Memory { .. } = net {
        let mut v = common::pattern::Verifier::new();
        v.update(&body);
        if body.len() != 100_000 || !v.ok() {
            return Err("unexpected body".into());
        }
        println!("demo finished");
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
