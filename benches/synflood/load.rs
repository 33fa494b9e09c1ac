//! The legitimate side: kernel TCP clients (blocking `std::net` sockets) in
//! the attacker's namespace. Every socket has timeouts and every loop a
//! bound in count and time.

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One connection attempt: connect, send one byte, read its echo, close.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When the attempt ended, from the start of its series.
    pub at: Duration,
    /// Time to complete the handshake, if it completed in time.
    pub connect: Option<Duration>,
    /// Time to the echoed byte: the attempt succeeded.
    pub total: Option<Duration>,
    pub error: Option<String>,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.total.is_some()
    }
}

/// Connects to `addr`, sends `byte` and reads it back, all within `limit`.
pub fn attempt(addr: SocketAddr, limit: Duration, byte: u8, origin: Instant) -> Attempt {
    let start = Instant::now();
    let mut a = Attempt {
        at: Duration::ZERO,
        connect: None,
        total: None,
        error: None,
    };
    let r = (|| -> io::Result<()> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        sock.set_tcp_nodelay(true)?;
        sock.connect_timeout(&addr.into(), limit)
            .map_err(|e| io::Error::new(e.kind(), format!("connect: {e}")))?;
        a.connect = Some(start.elapsed());
        let left = limit
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::TimedOut, "connect took the whole limit")
            })?;
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        let mut s: TcpStream = sock.into();
        s.write_all(&[byte])?;
        let mut back = [0u8; 1];
        s.read_exact(&mut back)
            .map_err(|e| io::Error::new(e.kind(), format!("echo: {e}")))?;
        if back[0] != byte {
            return Err(io::Error::other("echo: wrong byte"));
        }
        let total = start.elapsed();
        if total > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "echo after the limit",
            ));
        }
        a.total = Some(total);
        Ok(())
    })();
    if let Err(e) = r {
        a.error = Some(e.to_string());
    }
    a.at = origin.elapsed();
    a
}

/// Sequential attempts for `dur` (at most `max`): the connection rate.
pub fn sequential(addr: SocketAddr, dur: Duration, max: usize, limit: Duration) -> Vec<Attempt> {
    let origin = Instant::now();
    let mut out = Vec::new();
    while origin.elapsed() < dur && out.len() < max {
        out.push(attempt(addr, limit, out.len() as u8, origin));
    }
    out
}

/// `per_sec` attempts a second for `dur`, each on its own thread (threads
/// inherit the caller's network namespace), so a slow one does not delay
/// the next. Returns them in start order.
pub fn paced(addr: SocketAddr, per_sec: f64, dur: Duration, limit: Duration) -> Vec<Attempt> {
    let origin = Instant::now();
    let n = (dur.as_secs_f64() * per_sec) as usize;
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        // Half a period in, so the first one meets the flood, not its absence.
        let due = origin + Duration::from_secs_f64((i as f64 + 0.5) / per_sec);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if origin.elapsed() > dur {
            break;
        }
        let spawned = std::thread::Builder::new()
            .name("legit".into())
            .spawn(move || attempt(addr, limit, i as u8, origin));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => threads.push(std::thread::spawn(move || Attempt {
                at: origin.elapsed(),
                connect: None,
                total: None,
                error: Some(format!("cannot spawn a client thread: {e}")),
            })),
        }
    }
    threads
        .into_iter()
        .map(|t| {
            t.join().unwrap_or_else(|_| Attempt {
                at: origin.elapsed(),
                connect: None,
                total: None,
                error: Some("client thread panicked".into()),
            })
        })
        .collect()
}

/// Connects until the server answers (at most `limit`).
pub fn wait_ready(addr: SocketAddr, limit: Duration) -> io::Result<()> {
    let origin = Instant::now();
    loop {
        let a = attempt(addr, Duration::from_secs(1), 0, origin);
        if a.ok() {
            return Ok(());
        }
        if origin.elapsed() > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "server at {addr} not answering after {} s: {}",
                    limit.as_secs(),
                    a.error.unwrap_or_default()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An established connection for request/response.
pub fn rr_open(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Request/response counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rr {
    pub transactions: u64,
    pub secs: f64,
    /// The longest single transaction.
    pub longest: Duration,
}

impl Rr {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.transactions as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// The longest wait for one echo before the connection counts as broken.
const RR_STALL: Duration = Duration::from_secs(10);

/// One-byte ping-pong on `s` until `stop` is set or `limit` passes.
pub fn rr(s: &mut TcpStream, stop: &AtomicBool, limit: Duration) -> io::Result<Rr> {
    let start = Instant::now();
    let mut r = Rr::default();
    let mut byte = 0u8;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        byte = byte.wrapping_add(1);
        let t0 = Instant::now();
        s.write_all(&[byte])?;
        let mut back = [0u8; 1];
        loop {
            match s.read(&mut back) {
                Ok(1) => break,
                Ok(_) => return Err(io::Error::other("request/response: server closed")),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if t0.elapsed() > RR_STALL {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("request/response: no echo for {} s", RR_STALL.as_secs()),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if back[0] != byte {
            return Err(io::Error::other("request/response: wrong byte echoed"));
        }
        r.transactions += 1;
        r.longest = r.longest.max(t0.elapsed());
    }
    r.secs = start.elapsed().as_secs_f64();
    Ok(r)
}

/// The `q` quantile (0..=1) of `v`, which is sorted here.
pub fn quantile(v: &mut [Duration], q: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    Some(v[i])
}
