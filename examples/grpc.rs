//! A gRPC server (tonic) on the user-space stack, or a gRPC client sending
//! over it.
//!
//! ```text
//! cargo run --release --example grpc -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --port 50051
//! grpcurl -plaintext -d '{"name":"kernel"}' 10.7.0.2:50051 helloworld.Greeter/SayHello
//!
//! # as a client of a gRPC server on the kernel side:
//! cargo run --release --example grpc -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --connect http://10.7.0.1:50051 --name utcp
//! ```
//! The service is `helloworld.Greeter/SayHello`, written by hand
//! (`examples/common/greeter.rs`: prost messages, no protoc); the reply
//! names the caller's address, as tonic's `Request::remote_addr` saw it.
//! Needs tcp-async's `tonic` feature (on for the workspace's examples).
//! Without a TUN device (or with `--memory`) it runs an in-process demo: a
//! tonic client on a second stack calls the server.

mod common;
#[path = "common/greeter.rs"]
mod greeter;

use common::{Net, Opts};
use greeter::GreeterServer;
use std::net::SocketAddr;
use std::time::Duration;
use tcp_async::{HttpConnector, Stack, TcpListener};
use tonic::transport::{Endpoint, Server};

const USAGE: &str = "usage: grpc [device flags] [--connect URI] [--name NAME]
  (port 50051 by default)
  --connect URI    call SayHello on URI (e.g. http://10.7.0.1:50051) instead of serving
  --name NAME      the name sent by --connect and the demo (default utcp)";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Calls `SayHello(name)` at `uri` over `stack`; returns the message.
async fn call(stack: &Stack, uri: String, name: &str) -> Result<String, Error> {
    let mut connector = HttpConnector::new(stack);
    connector.set_nodelay(true);
    let channel = Endpoint::from_shared(uri.clone())?
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector(connector)
        .await?;
    let message = greeter::say_hello(channel, name).await?;
    println!("SayHello({name:?}) at {uri} -> {message:?}");
    Ok(message)
}

async fn run() -> Result<(), Error> {
    let opts = Opts::parse(USAGE, 50051, &["connect", "name"]);
    let name = opts.get("name").unwrap_or("utcp").to_owned();
    let net = common::setup(&opts)?;
    let stack = net.stack().clone();

    if let Some(uri) = opts.get("connect") {
        let r = call(&stack, uri.to_owned(), &name).await;
        stack.shutdown().await;
        r?;
        return Ok(());
    }

    let listener = TcpListener::bind_with(&stack, opts.local()).await?;
    println!("gRPC listening on {}", listener.local_addr()?);
    // Ends when the stack is shut down.
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer)
            .serve_with_incoming(listener.into_stream()),
    );
    match &net {
        Net::Device { .. } => {
            common::ctrl_c().await;
            println!("interrupted");
            stack.shutdown().await;
        }
        Net::Memory { client, .. } => {
            for target in opts.targets() {
                let uri = match target {
                    SocketAddr::V4(a) => format!("http://{a}"),
                    SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
                };
                let call = call(client, uri, &name);
                let message = tokio::time::timeout(Duration::from_secs(30), call)
                    .await
                    .map_err(|_| "demo timed out")??;
                // The server saw the demo client's address.
                let from = message
                    .rsplit("from ")
                    .next()
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                match from {
                    Some(a) if client.config().addrs.contains(&a.ip().to_canonical()) => {}
                    _ => return Err(format!("unexpected reply {message:?}").into()),
                }
            }
            stack.shutdown().await;
            println!("demo finished");
        }
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .map_err(|_| "the gRPC server did not end with the stack")???;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
