//! Shared fixture of the kernel-peer tests: a TUN device per test with the
//! Linux kernel on one side (10.210.X.1 and fd00:210:X::1) and a
//! user-space stack answering for both families on the other (10.210.X.2
//! and fd00:210:X::2), a /24 and a /64.
//!
//! X is picked from a process-wide counter plus the pid, and claimed by
//! binding the abstract Unix socket `@utcp-test-net-X`: the kernel releases
//! it when the process dies, so parallel test binaries never share a
//! subnet. The TUN device is not persistent: it disappears when the stack
//! drops it. Where the kernel keeps IPv6 off (`disable_ipv6`), the network
//! is IPv4 only; [`kernel_net6`] then skips.
#![allow(dead_code)]

#[path = "../../examples/common/device.rs"]
pub mod device;
pub mod example;
pub mod netns;
#[path = "../../examples/common/pattern.rs"]
pub mod pattern;

use std::future::Future;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
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
/// addresses of both families, and the claim on the subnets.
pub struct KernelNet {
    pub name: String,
    pub kernel: Ipv4Addr,
    pub ours: Ipv4Addr,
    /// The kernel's IPv6 address (configured only when `has_v6`).
    pub kernel6: Ipv6Addr,
    /// Our IPv6 address (the stack's only when `has_v6`).
    pub ours6: Ipv6Addr,
    /// Whether the kernel and the stack have their IPv6 addresses.
    pub has_v6: bool,
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
    /// `[kernel6]:port`.
    ///
    /// # Panics
    /// If the network has no IPv6 (see [`kernel_net6`]).
    #[track_caller]
    pub fn kernel6_addr(&self, port: u16) -> SocketAddr {
        assert!(self.has_v6, "this network has no IPv6: use kernel_net6()");
        SocketAddr::V6(SocketAddrV6::new(self.kernel6, port, 0, 0))
    }
    /// `[ours6]:port`.
    ///
    /// # Panics
    /// If the network has no IPv6 (see [`kernel_net6`]).
    #[track_caller]
    pub fn our6_addr(&self, port: u16) -> SocketAddr {
        assert!(self.has_v6, "this network has no IPv6: use kernel_net6()");
        SocketAddr::V6(SocketAddrV6::new(self.ours6, port, 0, 0))
    }
}

/// The test subnets of claim `octet`: 10.210.`octet`.0/24 and
/// fd00:210:`octet`::/64; host `host` in each.
pub fn test_addrs(octet: u8, host: u8) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(10, 210, octet, host),
        Ipv6Addr::new(0xfd00, 0x210, u16::from(octet), 0, 0, 0, 0, u16::from(host)),
    )
}

/// Prefix length of the IPv6 test subnets.
pub const PREFIX6: u8 = 64;

/// Is 10.210.`octet`.0/24 or fd00:210:`octet`::/64 routed anywhere
/// already (by someone not using our claims)?
fn subnet_in_use(octet: u8) -> bool {
    let dest = u32::from_le_bytes([10, 210, octet, 0]);
    let v4 = std::fs::read_to_string("/proc/net/route")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|d| u32::from_str_radix(d, 16).ok())
                    == Some(dest)
            })
        })
        .unwrap_or(false);
    // /proc/net/ipv6_route: destination as 32 hex digits, then its prefix
    // length in hex.
    let (_, net6) = test_addrs(octet, 0);
    let dest6: String = net6.octets().iter().map(|b| format!("{b:02x}")).collect();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route")
        .map(|t| {
            t.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.next() == Some(dest6.as_str()) && f.next() == Some("40")
            })
        })
        .unwrap_or(false);
    v4 || v6
}

/// Claims a free `octet` of the test subnets (see [`test_addrs`]) for
/// this test; the claim lasts as long as the returned socket. `n` spreads
/// the claims of one process.
pub fn claim_subnet(n: u32) -> (u8, UnixListener) {
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

/// A new number for [`claim_subnet`] and TUN names.
pub fn next_n() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Reports a skipped test on stderr (the runner shows it); panics instead
/// when CI=true, where every kernel-peer test must run.
#[track_caller]
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this kernel-peer test cannot run: {why}");
    }
    // Straight to fd 2: the test runner captures `eprintln!` as it does
    // `println!`, and a skip must show.
    let _ = writeln!(io::stderr(), "skipping: {why}");
}

/// Skips (returns `Some(why)` after reporting it) when TUN devices cannot
/// be made here; panics instead when CI=true.
fn skip_reason() -> Option<String> {
    let why = device::tun_unavailable()?;
    skip(&why);
    Some(why)
}

/// True (after a visible skip; a panic under CI=true) when TUN devices
/// cannot be made here.
pub fn no_tun() -> bool {
    skip_reason().is_some()
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
    let n = next_n();
    let (octet, claim) = claim_subnet(n);
    let name = format!("ut{}x{n}", std::process::id());
    assert!(name.len() < 16, "TUN name too long: {name}");
    let (kernel, kernel6) = test_addrs(octet, 1);
    let (ours, ours6) = test_addrs(octet, 2);
    let both = [(kernel.into(), 24), (kernel6.into(), PREFIX6)];
    let (tun, has_v6) = match device::open_tun_addrs(&name, &both, MTU, offload) {
        Ok(tun) => (tun, true),
        // IPv6 is off on this host: the IPv4 tests still run.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            let _ = writeln!(io::stderr(), "{name}: no IPv6 ({e}); IPv4 only");
            let tun = device::open_tun_addrs(&name, &both[..1], MTU, offload)
                .unwrap_or_else(|e| panic!("creating TUN {name}: {e}"));
            (tun, false)
        }
        Err(e) => panic!("creating TUN {name}: {e}"),
    };
    let addrs: Vec<IpAddr> = if has_v6 {
        vec![ours.into(), ours6.into()]
    } else {
        vec![ours.into()]
    };
    let config = Config {
        mtu: MTU,
        seed: (u64::from(std::process::id()) << 16) | u64::from(n),
        ..Config::with_addrs(addrs)
    };
    let stack = wrap(tun)
        .and_then(|s| s.build(config))
        .unwrap_or_else(|e| panic!("building the stack on {name}: {e}"));
    Some(KernelNet {
        name,
        kernel,
        ours,
        kernel6,
        ours6,
        has_v6,
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

/// [`kernel_net`] for a test that needs IPv6: skips (visibly; a failure
/// under CI=true) where the kernel has IPv6 off.
pub fn kernel_net6() -> Option<KernelNet> {
    let net = kernel_net()?;
    if !net.has_v6 {
        skip("IPv6 is disabled here (net.ipv6.conf.default.disable_ipv6 = 1?)");
        return None;
    }
    Some(net)
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
/// cookie check and are answered with RST). Either family.
pub fn kernel_listener(addr: SocketAddr) -> tokio::net::TcpListener {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("kernel socket");
    sock.set_reuseaddr(true).expect("SO_REUSEADDR");
    sock.bind(addr).expect("kernel bind");
    sock.listen(1024).expect("kernel listen")
}
