//! This project's stack as the server: a single-threaded Tokio runtime on a
//! dedicated (pinnable) thread runs the `tcp_async` driver (over
//! `tcp_async::device::tun::TunDevice`, or for E `RawDevice` on a veth end
//! once it exists, see [`start_raw`]) and one task per connection. Also
//! the in-memory pair (two `tcp_async` stacks over `MemoryDevice`).

use crate::client::{Bulk, Rr, RR_SIZE};
use crate::sys::{self, Netns};
use crate::Server;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcp_async::device::Device;
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Socket buffers of our stack in every run (the same as smoltcp's).
pub const BUFFER: usize = 1 << 20;

/// Whether our TUN uses offloads (checksum, TSO): on unless
/// `UBN_OFFLOAD=0`.
pub fn offload() -> bool {
    std::env::var("UBN_OFFLOAD").map_or(true, |v| v != "0")
}

/// Creates a TUN device in the calling thread's namespace with the kernel
/// side at `kernel`/24 (and `kernel6`/64 if given), MTU 1500, up; with
/// offloads if `offloads` (a kernel refusing them gets a plain device).
/// smoltcp gets a plain IPv4-only one: it knows nothing of virtio-net
/// headers.
pub fn open_tun(
    name: &str,
    kernel: Ipv4Addr,
    kernel6: Option<Ipv6Addr>,
    offloads: bool,
) -> io::Result<tcp_tun::Tun> {
    let mut builder = tcp_tun::TunBuilder::new()
        .name(name)
        .mtu(1500)
        .address(kernel, 24)
        .up(true);
    if let Some(a) = kernel6 {
        builder = builder.address6(a, 64);
    }
    match builder.clone().offload(offloads).build() {
        Err(e) if offloads && e.kind() == io::ErrorKind::InvalidInput => builder.build(),
        result => result,
    }
}

/// Our stack's configuration, answering for `addrs` (one per family for
/// the runs with IPv6 rows).
pub fn config(addrs: &[IpAddr], seed: u64) -> Config {
    Config {
        mtu: 1500,
        seed,
        send_buffer: BUFFER,
        recv_buffer: BUFFER,
        ..Config::with_addrs(addrs.iter().copied())
    }
}

/// E: our stack owning `ifname` (in `ns`: up, no kernel address) through
/// `tcp_async::device::RawDevice` (AF_PACKET), answering as `addr`/24 with
/// the interface's MAC `mac`, serving the same workloads as over TUN on
/// `addr:port`.
pub fn start_raw(
    ns: Arc<Netns>,
    ifname: &str,
    mac: [u8; 6],
    addr: Ipv4Addr,
    port: u16,
) -> io::Result<OursServer> {
    let name = ifname.to_string();
    let cfg = Config {
        mtu: 1500,
        seed: 11,
        send_buffer: BUFFER,
        recv_buffer: BUFFER,
        ..Config::with_ethernet(tcp_stack::MacAddr(mac), [(IpAddr::V4(addr), 24)])
    };
    let st = Arc::new(StackThread::start("ours-raw", Some(ns), cfg, move || {
        tcp_async::device::RawDevice::open(&name)
    })?);
    OursServer::start(st, SocketAddr::from((addr, port)))
}

/// A runtime thread running a `tcp_async` stack (and whatever is spawned on it).
pub struct StackThread {
    pub tid: i32,
    pub handle: tokio::runtime::Handle,
    pub stack: Stack,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StackThread {
    /// Starts a current-thread runtime on a new thread (inside `ns` if
    /// given) and builds a stack over the device `make` returns there.
    pub fn start<D, F>(name: &str, ns: Option<Arc<Netns>>, cfg: Config, make: F) -> io::Result<Self>
    where
        D: Device,
        F: FnOnce() -> io::Result<D> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let setup = || -> io::Result<(tokio::runtime::Runtime, Stack)> {
                    if let Some(ns) = &ns {
                        ns.enter()?;
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let stack = rt.block_on(async {
                        let dev = make()?;
                        Stack::builder(dev).config(cfg).build()
                    })?;
                    Ok((rt, stack))
                };
                let res = setup();
                drop(ns);
                match res {
                    Ok((rt, stack)) => {
                        let _ = tx.send(Ok((sys::gettid(), rt.handle().clone(), stack.clone())));
                        rt.block_on(async {
                            let _ = stop_rx.await;
                            stack.shutdown().await;
                        });
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let (tid, handle, stack) = rx.recv().map_err(io::Error::other)??;
        Ok(StackThread {
            tid,
            handle,
            stack,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Runs `fut` on the stack's runtime and waits (at most `limit`) for it.
    pub fn run<T: Send + 'static>(
        &self,
        limit: Duration,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(limit).ok()
    }

    pub fn retransmits(&self) -> Option<u64> {
        let st = self.stack.clone();
        let s = self.run(Duration::from_secs(5), async move { st.stats().await })?;
        s.ok().map(|s| s.retransmits)
    }
}

impl Drop for StackThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            // Bounded: a stuck driver must not hang the benchmark.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                eprintln!("warning: our stack's runtime thread did not stop within 5 s");
            }
        }
    }
}

/// Our stack serving the workloads on `addr`. Several may share one
/// stack (a listener per address family).
pub struct OursServer {
    addr: SocketAddr,
    pub st: Arc<StackThread>,
}

impl OursServer {
    pub fn start(st: Arc<StackThread>, addr: SocketAddr) -> io::Result<OursServer> {
        let stack = st.stack.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        st.handle.spawn(async move {
            match TcpListener::bind_with(&stack, addr).await {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    while let Ok((s, _)) = l.accept().await {
                        tokio::spawn(async move {
                            let _ = serve(s).await;
                        });
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(io::Error::other)??;
        Ok(OursServer { addr, st })
    }
}

/// The server side of the protocol in `client.rs`, on our stack.
pub async fn serve(mut s: TcpStream) -> io::Result<()> {
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode).await?;
    match mode[0] {
        b'U' => {
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            loop {
                let k = s.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            s.write_all(&n.to_be_bytes()).await?;
        }
        b'D' => {
            let mut ms = [0u8; 4];
            s.read_exact(&mut ms).await?;
            let dur = Duration::from_millis(u32::from_be_bytes(ms).into());
            let buf = vec![0x5au8; 64 * 1024];
            let start = Instant::now();
            while start.elapsed() < dur {
                s.write_all(&buf).await?;
            }
        }
        b'E' => {
            s.set_nodelay(true)?;
            let mut buf = [0u8; RR_SIZE];
            while s.read_exact(&mut buf).await.is_ok() {
                s.write_all(&buf).await?;
            }
        }
        b'C' | b'I' => {
            s.write_all(b"c").await?;
            let mut b = [0u8; 16];
            while s.read(&mut b).await? > 0 {}
        }
        _ => {}
    }
    s.shutdown().await
}

impl Server for OursServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn cpu(&self) -> Option<Duration> {
        sys::task_cpu(self.st.tid)
    }
    fn retrans(&self) -> Option<u64> {
        self.st.retransmits()
    }
    fn pin(&self, cpu: usize) {
        let _ = sys::pin(self.st.tid, cpu);
    }
    fn release_idle(&self) {}
}

/// The async twin of `client::bulk_up`/`bulk_down`/`rr`, for the in-memory
/// pair where the client is our stack too.
pub async fn async_bulk(
    stack: Stack,
    addr: SocketAddr,
    up: bool,
    dur: Duration,
) -> io::Result<Bulk> {
    let mut s = TcpStream::connect_with(&stack, addr).await?;
    let start = Instant::now();
    if up {
        let buf = vec![0xa5u8; 64 * 1024];
        s.write_all(b"U").await?;
        let mut sent = 0u64;
        while start.elapsed() < dur {
            s.write_all(&buf).await?;
            sent += buf.len() as u64;
        }
        s.shutdown().await?;
        let mut c = [0u8; 8];
        s.read_exact(&mut c).await?;
        if u64::from_be_bytes(c) != sent {
            return Err(io::Error::other("byte count mismatch"));
        }
        Ok(Bulk {
            bytes: sent,
            secs: start.elapsed().as_secs_f64(),
        })
    } else {
        let mut req = [b'D', 0, 0, 0, 0];
        req[1..].copy_from_slice(&(dur.as_millis() as u32).to_be_bytes());
        s.write_all(&req).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok(Bulk {
            bytes: got,
            secs: start.elapsed().as_secs_f64(),
        })
    }
}

pub async fn async_rr(stack: Stack, addr: SocketAddr, dur: Duration) -> io::Result<Rr> {
    let mut s = TcpStream::connect_with(&stack, addr).await?;
    s.set_nodelay(true)?;
    s.write_all(b"E").await?;
    let req = [0x42u8; RR_SIZE];
    let mut resp = [0u8; RR_SIZE];
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while start.elapsed() < dur && lat.len() < 5_000_000 {
        let t = Instant::now();
        s.write_all(&req).await?;
        s.read_exact(&mut resp).await?;
        lat.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    let secs = start.elapsed().as_secs_f64();
    if lat.is_empty() {
        return Err(io::Error::other("no transaction completed"));
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
    Ok(Rr {
        count: lat.len() as u64,
        secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    })
}
