//! The integrations against the Linux kernel as the peer, over a TUN
//! device: axum serving a kernel client (with `ConnectInfo`), hyper-util's
//! legacy client fetching from a kernel server, tonic both ways, and the
//! tls example answering `curl -k` from the kernel.
//!
//! Needs root (TUN); skips visibly without, and fails under CI=true.

mod common;
#[path = "../examples/common/greeter.rs"]
mod greeter;
#[allow(dead_code)]
#[path = "../examples/common/router.rs"]
mod router;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use common::{claim_subnet, next_n, pattern, test_addrs, within};
use greeter::GreeterServer;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use tcp_async::{HttpConnector, TcpListener};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

/// `GET path` with `Connection: close` over a kernel socket; the whole
/// response.
async fn kernel_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("kernel connect to {addr}: {e}"));
    let local = s.local_addr().unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    format!("{resp}\nkernel-local: {local}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serves_kernel_client_with_connect_info() {
    let Some(net) = common::kernel_net() else {
        return;
    };
    let app =
        Router::new()
            .route("/", get(|| async { "axum over utcp\n" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    format!("peer={peer}\n")
                }),
            );
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(8080))
        .await
        .unwrap();
    let serve = tokio::spawn(
        axum::serve(
            listener.tap_io(|_| {}),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(net.stack.stopped())
        .into_future(),
    );

    let resp = within(20, "GET /", kernel_get(net.our_addr(8080), "/")).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("axum over utcp"), "{resp}");

    // ConnectInfo saw the kernel's socket, port included.
    let resp = within(20, "GET /peer", kernel_get(net.our_addr(8080), "/peer")).await;
    let local = resp.rsplit("kernel-local: ").next().unwrap();
    assert!(resp.contains(&format!("peer={local}\n")), "{resp}");
    assert!(local.starts_with(&net.kernel.to_string()), "{resp}");

    // Shutting the stack down ends `serve` (through `Stack::stopped`).
    net.stack.shutdown().await;
    within(10, "axum::serve to end", serve)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_fetches_from_kernel_server() {
    let Some(net) = common::kernel_net() else {
        return;
    };
    let kernel = common::kernel_listener(net.kernel_addr(8000));
    tokio::spawn(async move {
        while let Ok((s, _)) = kernel.accept().await {
            tokio::spawn(router::serve_connection(s));
        }
    });
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new(&net.stack));
    let n = 300_000;
    for path in ["/", &format!("/bytes/{n}")] {
        let uri = format!("http://{}{path}", net.kernel_addr(8000));
        let resp = within(30, "GET from the kernel", client.get(uri.parse().unwrap()))
            .await
            .unwrap_or_else(|e| panic!("GET {uri}: {e}"));
        assert!(resp.status().is_success(), "GET {uri}: {}", resp.status());
        let body = within(30, "body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        if path == "/" {
            assert_eq!(body, router::GREETING.as_bytes());
        } else {
            let mut v = pattern::Verifier::new();
            v.update(&body);
            assert_eq!(body.len(), n, "GET {uri}: length");
            assert!(v.ok(), "GET {uri}: first wrong byte {:?}", v.first_mismatch);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_kernel_client_to_our_server() {
    let Some(net) = common::kernel_net() else {
        return;
    };
    let listener = TcpListener::bind_with(&net.stack, net.our_addr(50051))
        .await
        .unwrap();
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer)
            .serve_with_incoming(listener.into_stream()),
    );
    // tonic over Tokio's kernel sockets.
    let uri = format!("http://{}", net.our_addr(50051));
    let channel = within(
        20,
        "kernel tonic connect",
        Endpoint::from_shared(uri).unwrap().connect(),
    )
    .await
    .expect("kernel client connects to our tonic server");
    let message = within(20, "SayHello", greeter::say_hello(channel, "kernel"))
        .await
        .unwrap();
    // Request::remote_addr on our server: the kernel's address.
    assert!(
        message.starts_with(&format!("hello kernel, from {}:", net.kernel)),
        "{message}"
    );
    net.stack.shutdown().await;
    within(10, "tonic server to end", server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_our_client_to_kernel_server() {
    let Some(net) = common::kernel_net() else {
        return;
    };
    let incoming = TcpIncoming::from(common::kernel_listener(net.kernel_addr(50051)));
    tokio::spawn(
        Server::builder()
            .add_service(GreeterServer)
            .serve_with_incoming(incoming),
    );
    let uri = format!("http://{}", net.kernel_addr(50051));
    let channel = within(
        20,
        "our tonic connect",
        Endpoint::from_shared(uri)
            .unwrap()
            .connect_with_connector(HttpConnector::new(&net.stack)),
    )
    .await
    .expect("our client connects to the kernel's tonic server");
    let message = within(20, "SayHello", greeter::say_hello(channel, "utcp"))
        .await
        .unwrap();
    // The kernel's server saw our stack's address.
    assert!(
        message.starts_with(&format!("hello utcp, from {}:", net.ours)),
        "{message}"
    );
}

/// The built example `name`, or `None` after a visible skip.
fn example_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("path of this test binary");
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        Some(path)
    } else {
        common::skip(&format!(
            "example {name} not built at {} (run cargo test --workspace)",
            path.display()
        ));
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_example_answers_curl_from_kernel() {
    if common::no_tun() {
        return;
    }
    let Some(bin) = example_bin("tls") else {
        return;
    };
    let n = next_n();
    let (octet, _claim) = claim_subnet(n);
    let tun = format!("ui{}x{n}", std::process::id());
    assert!(tun.len() < 16, "TUN name too long: {tun}");
    let (kernel, ours) = (test_addrs(octet, 1).0, test_addrs(octet, 2).0);
    let mut child = tokio::process::Command::new(&bin)
        .args(["--tun", &tun, "--addr", &ours.to_string(), "--peer"])
        .arg(kernel.to_string())
        .args(["--prefix", "24", "--port", "8443"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    within(60, "the tls example to listen", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.contains("listening") {
                return;
            }
        }
        panic!(
            "tls exited before listening; printed:\n{}",
            printed.join("\n")
        );
    })
    .await;
    let url = format!("https://{ours}:8443/");
    let out = within(
        60,
        "curl -k",
        tokio::process::Command::new("curl")
            .args(["-k", "-sS", "--max-time", "30", &url])
            .output(),
    )
    .await
    .expect("running curl (is it installed?)");
    assert!(
        out.status.success(),
        "curl -k {url}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), router::GREETING);
    let _ = child.start_kill();
    let _ = child.wait().await;
}
