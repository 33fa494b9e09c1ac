//! A client on the user-space stack: connects to a (kernel) server, sends N
//! bytes, half-closes, reads to EOF, prints the counts and checksums.
//!
//! ```text
//! # on the kernel side, e.g.:  nc -l 10.7.0.1 9000 > /dev/null   (or an echo server)
//! cargo run --release --example client -- --tun utcp0 --addr 10.7.0.2 \
//!     --peer 10.7.0.1 --prefix 24 --connect 10.7.0.1:9000 --send 1000000
//! ```
//! Over IPv6: `--addr fd00:7::2 --peer fd00:7::1 --prefix 64 --connect
//! [fd00:7::1]:9000` (kernel side e.g. `nc -l fd00:7::1 9000`). Without a
//! TUN device (or with `--memory`) it runs against an in-process echo server
//! on a second user-space stack (on `[::]` for dual stack, and at the
//! `--connect` address's family).

mod common;

use common::{pattern, Net, Opts};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tcp_async::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: client [device flags] --connect IP:PORT --send N
  IP:PORT is 10.7.0.1:9000 or, for IPv6, [fd00:7::1]:9000";

/// What one run did.
struct Report {
    sent: u64,
    sent_sum: u64,
    received: u64,
    received_sum: u64,
    secs: f64,
}

/// Sends `len` pattern bytes while reading concurrently; half-closes after
/// the last byte; reads to EOF.
async fn transfer(stream: TcpStream, len: u64) -> io::Result<Report> {
    let start = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let writer = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sum = pattern::Fnv64::new();
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(buf.len() as u64) as usize;
            pattern::fill(off, &mut buf[..n]);
            wr.write_all(&buf[..n]).await?;
            sum.update(&buf[..n]);
            off += n as u64;
        }
        wr.shutdown().await?;
        io::Result::Ok((off, sum.value(), wr))
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sum = pattern::Fnv64::new();
        let mut total = 0u64;
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
            total += n as u64;
        }
        io::Result::Ok((total, sum.value()))
    };
    let (w, r) = tokio::try_join!(writer, reader)?;
    Ok(Report {
        sent: w.0,
        sent_sum: w.1,
        received: r.0,
        received_sum: r.1,
        secs: start.elapsed().as_secs_f64(),
    })
}

fn print(report: &Report) {
    let mbit = |b: u64| b as f64 * 8.0 / report.secs.max(1e-9) / 1e6;
    println!(
        "sent {} bytes (fnv64 {:016x}), received {} bytes (fnv64 {:016x}) in {:.3} s ({:.1} Mbit/s out, {:.1} Mbit/s in)",
        report.sent,
        report.sent_sum,
        report.received,
        report.received_sum,
        report.secs,
        mbit(report.sent),
        mbit(report.received)
    );
}

/// The in-memory demo's echo peer.
async fn echo_peer(listener: TcpListener) -> io::Result<()> {
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = s.shutdown().await;
        });
    }
}

async fn run() -> io::Result<()> {
    let opts = Opts::parse(USAGE, 9000, &["connect", "send"]);
    let len: u64 = match opts.get("send").unwrap_or("1000000").parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("--send: not a number\n{USAGE}");
            std::process::exit(2);
        }
    };
    let connect: Option<SocketAddr> = match opts.get("connect").map(str::parse) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            eprintln!("--connect: expected IP:PORT\n{USAGE}");
            std::process::exit(2);
        }
    };
    let net = common::setup(&opts)?;
    let target = match (&net, connect) {
        (Net::Device { .. }, Some(a)) => a,
        (Net::Device { .. }, None) => {
            eprintln!("--connect IP:PORT is required with a TUN device\n{USAGE}");
            std::process::exit(2);
        }
        (Net::Memory { client, .. }, connect) => {
            // The demo peer's address of the family --connect asks for
            // (else of --addr's); for dual stack it listens on [::].
            let addrs = opts.demo_client_addrs();
            let want_v6 = connect.map_or(opts.addr.is_ipv6(), |c| c.is_ipv6());
            let ip = addrs
                .iter()
                .copied()
                .find(|a| a.is_ipv6() == want_v6)
                .unwrap_or(addrs[0]);
            let peer = SocketAddr::new(ip, opts.port);
            let bind = if opts.dual_stack() {
                SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), opts.port)
            } else {
                peer
            };
            let listener = TcpListener::bind_with(client, bind).await?;
            println!(
                "demo echo peer listening on {}, reached at {peer}",
                listener.local_addr()?
            );
            tokio::spawn(echo_peer(listener));
            peer
        }
    };
    println!("connecting to {target}, sending {len} bytes");
    let work = async {
        let stream = TcpStream::connect_with(net.stack(), target)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {target}: {e}")))?;
        println!(
            "connected {} -> {}",
            stream.local_addr()?,
            stream.peer_addr()?
        );
        transfer(stream, len).await
    };
    let report = tokio::time::timeout(Duration::from_secs(600), work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
    print(&report);
    if let Net::Memory { .. } = net {
        if report.received != report.sent || report.received_sum != report.sent_sum {
            return Err(io::Error::other("demo: echo did not match"));
        }
        println!("demo finished: echo matched");
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
