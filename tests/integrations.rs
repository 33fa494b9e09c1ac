//! The integrations between two user-space stacks joined in memory (no
//! root needed): axum's `serve` and `ConnectInfo`, its accept after the
//! stack stopped, hyper-util's client resolving a host name, tonic's
//! server and client; and the axum, grpc, hyper_client and tls examples'
//! in-memory demos run as programs.

#[path = "../examples/common/greeter.rs"]
mod greeter;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use axum::Router;
use bytes::Bytes;
use greeter::GreeterServer;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tcp_async::device::MemoryDevice;
use tcp_async::{HttpConnector, Stack, TcpListener};
use tcp_stack::Config;
use tonic::transport::{Endpoint, Server};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Stacks at 10.0.0.1 (server side) and 10.0.0.2 (client side).
fn stacks() -> (Stack, Stack) {
    let (da, db) = MemoryDevice::pair(1500);
    let config = |addr, seed| Config {
        seed,
        ..Config::with_addr(addr)
    };
    let a = Stack::builder(da).config(config(A, 1)).build().unwrap();
    let b = Stack::builder(db).config(config(B, 2)).build().unwrap();
    (a, b)
}

/// Runs `f`, panicking with `what` after `secs` seconds.
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

async fn get_body(client: &Client<HttpConnector, Empty<Bytes>>, uri: &str) -> String {
    let resp = within(20, uri, client.get(uri.parse().unwrap()))
        .await
        .unwrap_or_else(|e| panic!("GET {uri}: {e}"));
    assert!(resp.status().is_success(), "GET {uri}: {}", resp.status());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn axum_connect_info_and_serve_ends_with_the_stack() {
    let (a, b) = stacks();
    let app = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let listener = TcpListener::bind_with(&a, (A, 80)).await.unwrap();
    assert_eq!(
        Listener::local_addr(&listener).unwrap(),
        SocketAddr::from((A, 80))
    );
    let serve = tokio::spawn(
        axum::serve(
            listener.tap_io(|_| {}),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(a.stopped())
        .into_future(),
    );
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new(&b));
    let peer: SocketAddr = get_body(&client, "http://10.0.0.1/peer")
        .await
        .parse()
        .unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(B));

    a.shutdown().await;
    within(10, "axum::serve to end with the stack", serve)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn axum_accept_waits_after_the_stack_stopped() {
    let (a, _b) = stacks();
    let mut listener = TcpListener::bind_with(&a, (A, 80)).await.unwrap();
    a.shutdown().await;
    // No connection can come: `accept` neither returns nor fails (axum's
    // `serve` would spin on an error); `Stack::stopped` ends `serve`.
    let r = tokio::time::timeout(Duration::from_millis(300), Listener::accept(&mut listener)).await;
    assert!(r.is_err(), "accept returned after the stack stopped");
    within(5, "Stack::stopped", a.stopped()).await;
}

#[tokio::test]
async fn listener_stream_ends_when_the_stack_stops() {
    use futures::StreamExt;
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, (A, 7)).await.unwrap();
    let mut incoming = listener.into_stream();
    let (conn, accepted) = within(20, "connect+accept", async {
        tokio::join!(
            tcp_async::TcpStream::connect_with(&b, (A, 7)),
            incoming.next()
        )
    })
    .await;
    let accepted = accepted.expect("a connection").unwrap();
    assert_eq!(
        accepted.peer_addr().unwrap(),
        conn.unwrap().local_addr().unwrap()
    );
    a.shutdown().await;
    assert!(within(5, "the stream to end", incoming.next())
        .await
        .is_none());
    assert!(incoming.next().await.is_none());
}

#[tokio::test]
async fn hyper_connector_resolves_host_names() {
    let (a, _b) = stacks();
    // `localhost` resolves (through the system resolver) to 127.0.0.1,
    // which the stack answers for itself.
    let listener = TcpListener::bind_with(&a, "127.0.0.1:8080").await.unwrap();
    let app = Router::new().route("/", get(|| async { "by name" }));
    tokio::spawn(axum::serve(listener, app).into_future());
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new(&a));
    assert_eq!(get_body(&client, "http://localhost:8080/").await, "by name");
}

#[tokio::test]
async fn hyper_connector_refused_is_an_error() {
    let (_a, b) = stacks();
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new(&b));
    let r = within(
        20,
        "GET a closed port",
        client.get("http://10.0.0.1:9/".parse().unwrap()),
    )
    .await;
    let e = r.expect_err("nothing listens on port 9");
    assert!(e.is_connect(), "{e:?}");
}

#[tokio::test]
async fn tonic_unary_call_between_stacks() {
    let (a, b) = stacks();
    let listener = TcpListener::bind_with(&a, (A, 50051)).await.unwrap();
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer)
            .serve_with_incoming(listener.into_stream()),
    );
    let channel = within(
        20,
        "tonic connect",
        Endpoint::from_static("http://10.0.0.1:50051")
            .connect_with_connector(HttpConnector::new(&b)),
    )
    .await
    .unwrap();
    let message = within(20, "SayHello", greeter::say_hello(channel, "b"))
        .await
        .unwrap();
    // `Request::remote_addr` on the server: tonic's TcpConnectInfo from
    // `Connected for TcpStream`.
    assert!(message.starts_with("hello b, from 10.0.0.2:"), "{message}");
    // `into_stream` ends when the stack stops, and tonic's server with it
    // (on this one-thread runtime a stream that kept yielding the error
    // would keep the server's loop from ever yielding).
    a.shutdown().await;
    within(10, "the tonic server to end with the stack", server)
        .await
        .unwrap()
        .unwrap();
}

/// The built example `name`; `None` (visibly skipped) if not built.
fn example_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("path of this test binary");
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        return Some(path);
    }
    let why = format!("example {name} not built at {}", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {why}");
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipping: {why} (run cargo test --workspace)"
    );
    None
}

/// Runs example `name --memory`; asserts that it serves and finishes its
/// demo.
async fn memory_demo(name: &str) {
    let Some(bin) = example_bin(name) else {
        return;
    };
    let out = within(
        90,
        name,
        tokio::process::Command::new(&bin)
            .arg("--memory")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} --memory: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("listening"), "{name}: {stdout}");
    assert!(stdout.contains("demo finished"), "{name}: {stdout}");
}

#[tokio::test]
async fn axum_example_memory_demo() {
    memory_demo("axum").await;
}

#[tokio::test]
async fn grpc_example_memory_demo() {
    memory_demo("grpc").await;
}

#[tokio::test]
async fn hyper_client_example_memory_demo() {
    memory_demo("hyper_client").await;
}

#[tokio::test]
async fn tls_example_memory_demo() {
    memory_demo("tls").await;
}
