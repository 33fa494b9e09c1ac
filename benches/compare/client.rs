//! The kernel-side client: the same blocking `std::net` code drives every
//! server under test. Each workload is bounded in time and in count, and
//! every socket has read/write timeouts, so a stuck server shows up as an
//! error, never as a hang.
//!
//! Wire protocol (first byte chooses the workload):
//! - `U`: the client streams bytes, half-closes; the server answers the
//!   byte count as a big-endian u64 and closes.
//! - `D` + u32 ms: the server streams bytes for that long, then closes.
//! - `E`: the server echoes 64-byte messages until EOF.
//! - `C`: the server answers one byte, then closes after the client's EOF.
//! - `I`: like `C`, but the client keeps the connection open (idle).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const RR_SIZE: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 64 * 1024;

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn ctx(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub bytes: u64,
    pub secs: f64,
}

impl Bulk {
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// Client -> server stream for `dur`; timed until the server's count arrives.
pub fn bulk_up(addr: SocketAddr, dur: Duration) -> io::Result<Bulk> {
    let mut s = connect(addr).map_err(ctx("connect"))?;
    let buf = vec![0xa5u8; CHUNK];
    let start = Instant::now();
    s.write_all(b"U").map_err(ctx("write"))?;
    let mut sent = 0u64;
    while start.elapsed() < dur {
        s.write_all(&buf).map_err(ctx("write"))?;
        sent += buf.len() as u64;
    }
    s.shutdown(Shutdown::Write).map_err(ctx("shutdown"))?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)
        .map_err(ctx("reading the server's byte count"))?;
    let secs = start.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    if got != sent {
        return Err(io::Error::other(format!(
            "server counted {got} bytes, client sent {sent}"
        )));
    }
    Ok(Bulk { bytes: sent, secs })
}

/// Server -> client stream for `dur`; timed until EOF.
pub fn bulk_down(addr: SocketAddr, dur: Duration) -> io::Result<Bulk> {
    let mut s = connect(addr).map_err(ctx("connect"))?;
    let mut req = [b'D', 0, 0, 0, 0];
    req[1..].copy_from_slice(&(dur.as_millis() as u32).to_be_bytes());
    let start = Instant::now();
    s.write_all(&req).map_err(ctx("write"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).map_err(ctx("read"))?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if start.elapsed() > dur + IO_TIMEOUT {
            return Err(io::Error::other("server did not stop streaming"));
        }
    }
    Ok(Bulk {
        bytes: got,
        secs: start.elapsed().as_secs_f64(),
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Rr {
    pub count: u64,
    pub secs: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// 64-byte request/response on one connection (TCP_NODELAY) for `dur`.
pub fn rr(addr: SocketAddr, dur: Duration) -> io::Result<Rr> {
    const MAX: usize = 5_000_000;
    let mut s = connect(addr).map_err(ctx("connect"))?;
    s.set_nodelay(true)?;
    s.write_all(b"E").map_err(ctx("write"))?;
    let req = [0x42u8; RR_SIZE];
    let mut resp = [0u8; RR_SIZE];
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while start.elapsed() < dur && lat.len() < MAX {
        let t = Instant::now();
        s.write_all(&req).map_err(ctx("write"))?;
        s.read_exact(&mut resp).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("read of response {} failed: {e}", lat.len()),
            )
        })?;
        lat.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    let secs = start.elapsed().as_secs_f64();
    if resp != req {
        return Err(io::Error::other("echo mismatch"));
    }
    if lat.is_empty() {
        return Err(io::Error::other("no transaction completed"));
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
    Ok(Rr {
        count: lat.len() as u64,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

#[derive(Debug, Clone)]
pub struct Cps {
    pub count: u64,
    pub secs: f64,
    pub failure: Option<String>,
}

/// Sequential connect, 1-byte exchange, close, for `dur` (at most 60,000).
pub fn cps(addr: SocketAddr, dur: Duration) -> Cps {
    const MAX: u64 = 60_000;
    let start = Instant::now();
    let mut count = 0;
    let mut failure = None;
    while start.elapsed() < dur && count < MAX {
        let r = (|| -> io::Result<()> {
            let mut s = connect(addr).map_err(ctx("connect"))?;
            s.write_all(b"C").map_err(ctx("write"))?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).map_err(ctx("read"))?;
            Ok(())
        })();
        if let Err(e) = r {
            failure = Some(format!("connection #{count}: {e}"));
            break;
        }
        count += 1;
    }
    Cps {
        count,
        secs: start.elapsed().as_secs_f64(),
        failure,
    }
}

/// Opens up to `n` idle connections (each confirmed by the server's byte);
/// stops at the first failure, returned beside what was opened.
pub fn open_idle(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, Option<String>) {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let r = (|| -> io::Result<TcpStream> {
            let mut s = connect(addr).map_err(ctx("connect"))?;
            s.write_all(b"I").map_err(ctx("write"))?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).map_err(ctx("read"))?;
            Ok(s)
        })();
        match r {
            Ok(s) => v.push(s),
            Err(e) => return (v, Some(format!("idle connection #{i}: {e}"))),
        }
    }
    (v, None)
}
