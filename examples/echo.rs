//! Echo / discard / source server on the user-space stack.
//!
//! ```text
//! cargo run --release --example echo -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --port 7 --mode echo|discard|source:N
//! ```
//! then from the kernel side, e.g. `nc 10.7.0.2 7`. Over IPv6, `--addr
//! fd00:7::2 --peer fd00:7::1 --prefix 64` (then `nc fd00:7::2 7`); for
//! both families add `--addr6 fd00:7::2 --peer6 fd00:7::1` to the IPv4
//! flags: it then listens on `[::]:7`. Without a TUN device (or with
//! `--memory`) it runs an in-process demo and exits.

mod common;

use common::{pattern, Net, Opts};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: echo [device flags] --mode echo|discard|source:N   (port 7 by default)
  e.g. echo --tun ut6 --addr fd00:7::2 --peer fd00:7::1 --prefix 64 --port 7 --mode echo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Send back everything received; half-close after the peer's FIN.
    Echo,
    /// Read to EOF, then close.
    Discard,
    /// Send N pattern bytes, then close.
    Source(u64),
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "echo" => Ok(Mode::Echo),
            "discard" => Ok(Mode::Discard),
            _ => match s.strip_prefix("source:").map(str::parse) {
                Some(Ok(n)) => Ok(Mode::Source(n)),
                _ => Err(format!("bad --mode {s:?}: echo, discard or source:N")),
            },
        }
    }
}

/// Serves one connection; returns (bytes received, bytes sent).
async fn handle(mut s: TcpStream, mode: Mode) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut rx, mut tx) = (0u64, 0u64);
    match mode {
        Mode::Echo => loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            rx += n as u64;
            s.write_all(&buf[..n]).await?;
            tx += n as u64;
        },
        Mode::Discard => loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            rx += n as u64;
        },
        Mode::Source(len) => {
            while tx < len {
                let n = (len - tx).min(buf.len() as u64) as usize;
                pattern::fill(tx, &mut buf[..n]);
                s.write_all(&buf[..n]).await?;
                tx += n as u64;
            }
        }
    }
    s.shutdown().await?;
    Ok((rx, tx))
}

/// Accepts forever, one task per connection.
async fn serve(listener: TcpListener, mode: Mode) -> io::Result<()> {
    loop {
        let (s, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let start = Instant::now();
            match handle(s, mode).await {
                Ok((rx, tx)) => println!(
                    "{peer}: done, received {rx} B, sent {tx} B in {:.3} s",
                    start.elapsed().as_secs_f64()
                ),
                Err(e) => println!("{peer}: error: {e}"),
            }
        });
    }
}

/// The in-memory demo client: a few exchanges against the server, taking
/// the `servers` (one per family) in turn.
async fn demo(client: &tcp_async::Stack, servers: &[SocketAddr], mode: Mode) -> io::Result<()> {
    for (round, server) in (1..=3u64).zip(servers.iter().cycle()) {
        let mut s = TcpStream::connect_with(client, server).await?;
        println!("demo {round}: connected to {server}");
        let msg = format!("demo message {round}: hello over a user-space TCP stack\n");
        let mut reply = Vec::new();
        match mode {
            Mode::Echo => {
                s.write_all(msg.as_bytes()).await?;
                s.shutdown().await?;
                s.read_to_end(&mut reply).await?;
                println!(
                    "demo {round}: sent {} B, echoed back {} B: {:?}",
                    msg.len(),
                    reply.len(),
                    String::from_utf8_lossy(&reply).trim_end()
                );
                if reply != msg.as_bytes() {
                    return Err(io::Error::other("echo mismatch"));
                }
            }
            Mode::Discard => {
                let data = vec![7u8; 100_000 * round as usize];
                s.write_all(&data).await?;
                s.shutdown().await?;
                s.read_to_end(&mut reply).await?;
                println!(
                    "demo {round}: sent {} B to discard, server closed after {} B",
                    data.len(),
                    reply.len()
                );
            }
            Mode::Source(len) => {
                s.read_to_end(&mut reply).await?;
                let mut v = pattern::Verifier::new();
                v.update(&reply);
                println!(
                    "demo {round}: received {} B of {len} from source, pattern {}",
                    reply.len(),
                    if v.ok() { "ok" } else { "WRONG" }
                );
                if reply.len() as u64 != len || !v.ok() {
                    return Err(io::Error::other("source mismatch"));
                }
            }
        }
    }
    Ok(())
}

async fn run() -> io::Result<()> {
    let opts = Opts::parse(USAGE, 7, &["mode"]);
    let mode: Mode = match opts.get("mode").unwrap_or("echo").parse() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let net = common::setup(&opts)?;
    let listener = TcpListener::bind_with(net.stack(), opts.local()).await?;
    println!("listening on {} ({mode:?})", listener.local_addr()?);
    let server = tokio::spawn(serve(listener, mode));
    match &net {
        Net::Device { .. } => {
            tokio::select! {
                r = server => r.map_err(io::Error::other)??,
                _ = common::ctrl_c() => {
                    println!("interrupted");
                    // The stack's counters, one line (the SYN flood
                    // benchmark reads the cookie and queue counters here).
                    match net.stack().stats().await {
                        Ok(stats) => println!("stats: {stats:?}"),
                        Err(e) => println!("stats: unavailable: {e}"),
                    }
                    // Flushes the driver (and the pcap file) before exit.
                    net.stack().shutdown().await;
                }
            }
        }
        Net::Memory { client, .. } => {
            let r =
                tokio::time::timeout(Duration::from_secs(30), demo(client, &opts.targets(), mode))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "demo timed out"))?;
            r?;
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
