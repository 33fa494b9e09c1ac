//! Shared fixture of the kernel-peer tests: a TUN device per test with the
//! Linux kernel on one side (10.210.X.1) and a user-space stack on the
//! other (10.210.X.2).
//!
//! X is picked from a process-wide counter plus the pid, and claimed by
//! binding the abstract Unix socket `@utcp-test-net-X`: the kernel releases
//! it when the process dies, so parallel test binaries never share a /24.
//! The TUN device is not persistent: it disappears when the stack drops it.
#![allow(dead_code)]

#[path = "../../examples/common/device.rs"]
pub mod device;
#[path = "../../examples/common/pattern.rs"]
pub mod pattern;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tcp_async::Stack;
use tcp_stack::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// MTU of the test links.
pub const MTU: usize = 1500;

/// One test's network: the TUN device (inside `stack`), the kernel's and our
/// addresses, and the claim on the /24.
pub struct KernelNet {
    pub name: String,
    pub kernel: Ipv4Addr,
    pub ours: Ipv4Addr,
    pub stack: Stack,
    _claim: UnixListener,
}

impl KernelNet {
    pub fn kernel_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.kernel, port))
    }
    pub fn our_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ours, port))
    }
}

/// Is 10.210.`octet`.0/24 routed anywhere already (by someone not using our claims)?
fn subnet_in_use(octet: u8) -> bool {
    let dest = u32::from_le_bytes([10, 210, octet, 0]);
    std::fs::read_to_string("/proc/net/route")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|d| u32::from_str_radix(d, 16).ok())
                    == Some(dest)
            })
        })
        .unwrap_or(false)
}

/// Claims a free third octet of 10.210.0.0/16 for this test.
fn claim_subnet(n: u32) -> (u8, UnixListener) {
    let start = std::process::id()
        .wrapping_mul(37)
        .wrapping_add(n.wrapping_mul(7));
    for i in 0..254u32 {
        let octet = (start.wrapping_add(i) % 254 + 1) as u8;
        let name = format!("utcp-test-net-{octet}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract socket name");
        if let Ok(claim) = UnixListener::bind_addr(&addr) {
            if subnet_in_use(octet) {
                continue;
            }
            return (octet, claim);
        }
    }
    panic!("no free /24 in 10.210.0.0/16");
}

/// Skips (returns `None` after printing "skipping: ...") when TUN devices
/// cannot be made here; panics instead when CI=true.
fn skip_reason() -> Option<String> {
    let why = device::tun_unavailable()?;
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the kernel-peer tests cannot run: {why}");
    }
    println!("skipping: {why}");
    Some(why)
}

/// A fresh TUN + stack; the stack's device is whatever `wrap` makes of the
/// TUN device (a fault injector, a pcap writer, or the device itself).
/// Call inside the Tokio runtime.
pub fn kernel_net_with<F>(wrap: F) -> Option<KernelNet>
where
    F: FnOnce(tcp_async::device::tun::TunDevice) -> io::Result<Stackable>,
{
    kernel_net_opts(true, wrap)
}

/// [`kernel_net_with`] choosing whether the TUN has offloads (checksum,
/// TSO; the default is on).
pub fn kernel_net_opts<F>(offload: bool, wrap: F) -> Option<KernelNet>
where
    F: FnOnce(tcp_async::device::tun::TunDevice) -> io::Result<Stackable>,
{
    if skip_reason().is_some() {
        return None;
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (octet, claim) = claim_subnet(n);
    let name = format!("ut{}x{n}", std::process::id());
    assert!(name.len() < 16, "TUN name too long: {name}");
    let kernel = Ipv4Addr::new(10, 210, octet, 1);
    let ours = Ipv4Addr::new(10, 210, octet, 2);
    let tun = device::open_tun_with(&name, Some(kernel), 24, MTU, offload)
        .unwrap_or_else(|e| panic!("creating TUN {name}: {e}"));
    let config = Config {
        mtu: MTU,
        seed: (u64::from(std::process::id()) << 16) | u64::from(n),
        ..Config::with_addr(ours)
    };
    let stack = wrap(tun)
        .and_then(|s| s.build(config))
        .unwrap_or_else(|e| panic!("building the stack on {name}: {e}"));
    Some(KernelNet {
        name,
        kernel,
        ours,
        stack,
        _claim: claim,
    })
}

/// A device ready to go under a stack (type erasure over the wrappers).
pub struct Stackable(Box<dyn FnOnce(Config) -> io::Result<Stack>>);

impl Stackable {
    pub fn new<D: tcp_async::device::Device + Send + 'static>(dev: D) -> Self {
        Stackable(Box::new(move |config| {
            Stack::builder(dev).config(config).build()
        }))
    }
    fn build(self, config: Config) -> io::Result<Stack> {
        (self.0)(config)
    }
}

/// A fresh TUN + stack talking to the kernel directly.
pub fn kernel_net() -> Option<KernelNet> {
    kernel_net_with(|tun| Ok(Stackable::new(tun)))
}

/// Runs `fut`, panicking with `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s: {what}"),
    }
}

/// Size of the bulk transfers in bytes: `UTCP_BULK_MIB` MiB, 64 by default.
pub fn bulk_len() -> u64 {
    let mib = std::env::var("UTCP_BULK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(64);
    mib << 20
}

/// Writes the first `len` bytes of the pattern stream; returns its checksum.
pub async fn send_pattern<W: AsyncWrite + Unpin>(w: &mut W, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sum = pattern::Fnv64::new();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        pattern::fill(off, &mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        sum.update(&buf[..n]);
        off += n as u64;
    }
    Ok(sum.value())
}

/// What a reader got: length, checksum, first byte not matching the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: u64,
    pub checksum: u64,
    pub first_mismatch: Option<u64>,
}

/// Reads to EOF, checking the bytes against the pattern stream.
pub async fn recv_pattern<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Received> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sum = pattern::Fnv64::new();
    let mut v = pattern::Verifier::new();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        v.update(&buf[..n]);
    }
    Ok(Received {
        len: v.offset,
        checksum: sum.value(),
        first_mismatch: v.first_mismatch,
    })
}

/// Asserts that `got` is exactly the first `len` bytes of the pattern.
pub fn assert_pattern(what: &str, got: Received, len: u64) {
    assert_eq!(got.first_mismatch, None, "{what}: first wrong byte");
    assert_eq!(got.len, len, "{what}: length");
    assert_eq!(
        got.checksum,
        pattern::stream_checksum(len),
        "{what}: checksum"
    );
}

/// Prints a transfer's rate (shown with `--nocapture`).
pub fn report(what: &str, bytes: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {bytes} B in {secs:.3} s = {:.1} Mbit/s",
        bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
}

/// Echoes until EOF, then half-closes; returns the bytes echoed.
pub async fn echo_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    s.shutdown().await?;
    Ok(total)
}

/// Sends `len` pattern bytes, half-closes, and concurrently reads the echo
/// to EOF; asserts that it is the same bytes.
pub async fn echo_exchange<S>(what: &str, s: S, len: u64)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = async {
        let sum = send_pattern(&mut wr, len).await?;
        wr.shutdown().await?;
        io::Result::Ok(sum)
    };
    let (sent, got) =
        tokio::try_join!(writer, recv_pattern(&mut rd)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got.checksum, sent, "{what}: echo checksum");
    assert_pattern(what, got, len);
}

/// Accepts on our stack forever, echoing on each connection in its own task.
pub async fn our_echo_server(listener: tcp_async::TcpListener) {
    loop {
        let (s, _) = listener.accept().await.expect("accept on our stack");
        tokio::spawn(async move {
            let _ = echo_conn(s).await;
        });
    }
}

/// Accepts on a kernel listener forever, echoing on each connection.
pub async fn kernel_echo_server(listener: tokio::net::TcpListener) {
    loop {
        let (s, _) = listener.accept().await.expect("accept on the kernel");
        tokio::spawn(async move {
            let _ = echo_conn(s).await;
        });
    }
}

/// A kernel listener with a 1024-deep accept queue (tokio's `bind` asks for
/// only 128: with 200 simultaneous connects the queue overflows, the kernel
/// falls back to SYN cookies, and data segments past the first fail the
/// cookie check and are answered with RST).
pub fn kernel_listener(addr: SocketAddr) -> tokio::net::TcpListener {
    let sock = tokio::net::TcpSocket::new_v4().expect("kernel socket");
    sock.set_reuseaddr(true).expect("SO_REUSEADDR");
    sock.bind(addr).expect("kernel bind");
    sock.listen(1024).expect("kernel listen")
}
