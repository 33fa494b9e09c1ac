//! HTTPS (HTTP/1.1 over TLS, with tokio-rustls) on the user-space stack.
//! The certificate is self-signed, made at start with rcgen for the
//! stack's addresses and `localhost`.
//!
//! ```text
//! cargo run --release --example tls -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --port 8443
//! curl -k https://10.7.0.2:8443/            # greeting
//! curl -k https://10.7.0.2:8443/bytes/1000  # 1000 bytes
//! ```
//! The routes are the http example's. TLS needs no feature of tcp-async:
//! `TlsAcceptor::accept` takes its `TcpStream` as it takes Tokio's.
//! Without a TUN device (or with `--memory`) it runs an in-process demo: a
//! TLS client on a second stack, trusting the generated certificate.

mod common;

use bytes::Bytes;
use common::{router, Net, Opts};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tcp_async::{Stack, TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const USAGE: &str = "usage: tls [device flags]   (port 8443 by default)
  e.g. tls --tun utcp0 --addr 10.7.0.2 --peer 10.7.0.1 --prefix 24, then
  curl -k https://10.7.0.2:8443/";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A self-signed certificate for `names` and its key.
fn certificate(
    names: Vec<String>,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    Ok((cert.der().clone(), key.into()))
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> Result<(), Error> {
    loop {
        let (s, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(s).await {
                Ok(tls) => tls,
                Err(e) => {
                    println!("{peer}: TLS handshake: {e}");
                    return;
                }
            };
            if let Err(e) = router::serve_connection(tls).await {
                println!("{peer}: {e}");
            }
        });
    }
}

/// The in-memory demo: `GET /` over TLS from the second stack.
async fn demo(
    client: &Stack,
    server: SocketAddr,
    cert: CertificateDer<'static>,
) -> Result<(), Error> {
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect_with(client, server).await?;
    let tls = connector
        .connect(ServerName::from(server.ip().to_canonical()), tcp)
        .await?;
    let (_, session) = tls.get_ref();
    println!(
        "demo: TLS to {server}: {:?}, {:?}",
        session.protocol_version(),
        session.negotiated_cipher_suite().map(|s| s.suite())
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", server.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "GET / -> {status}: {:?}",
        String::from_utf8_lossy(&body).trim_end()
    );
    if body != router::GREETING.as_bytes() {
        return Err("unexpected greeting".into());
    }
    drop(sender);
    conn.await??;
    Ok(())
}

async fn run() -> Result<(), Error> {
    let opts = Opts::parse(USAGE, 8443, &[]);
    let net = common::setup(&opts)?;
    let mut names: Vec<String> = opts.addrs().iter().map(|a| a.to_string()).collect();
    names.push("localhost".into());
    let (cert, key) = certificate(names)?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind_with(net.stack(), opts.local()).await?;
    println!("HTTPS listening on https://{}/", listener.local_addr()?);
    let server = tokio::spawn(serve(listener, acceptor));
    match &net {
        Net::Device { .. } => {
            tokio::select! {
                r = server => r??,
                _ = common::ctrl_c() => {
                    println!("interrupted");
                    net.stack().shutdown().await;
                }
            }
        }
        Net::Memory { client, .. } => {
            for target in opts.targets() {
                tokio::time::timeout(Duration::from_secs(30), demo(client, target, cert.clone()))
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
