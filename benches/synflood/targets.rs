//! The two servers under test and what can be read from them.
//!
//! - Ours: the `echo` example, a process of its own started with
//!   `ip netns exec`, serving on a TUN device in a fresh namespace. The
//!   attacker and the clients use the kernel side of the TUN, in the same
//!   namespace; the answers to spoofed sources come back through the TUN and
//!   are dropped there (no forwarding, no route out).
//! - Linux: a Tokio echo server on a kernel socket in one namespace, the
//!   attacker and the clients in another, joined by a veth pair;
//!   `tcp_syncookies=1` in the server's namespace. The server's namespace
//!   has permanent neighbour entries for every spoofed source, pointing at
//!   the attacker's veth, so that its answers leave as they do through the
//!   TUN (no ARP on a TUN) and die in the attacker's namespace the same way.

use crate::sys::{self, Netns};
use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The port both servers listen on.
pub const PORT: u16 = 7;
/// Listen backlog: what `tcp_async::TcpListener::bind` and
/// `tokio::net::TcpListener::bind` both use.
pub const BACKLOG: i32 = 1024;

/// How a target's memory is read: a process's VmRSS, or kernel slab bytes.
pub type MemFn = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// A server's counters when it ended, and a note if something went wrong.
pub type Final = (BTreeMap<String, u64>, Option<String>);

/// A server under flood, ready to measure.
pub struct Target {
    pub key: &'static str,
    pub label: &'static str,
    pub server: SocketAddr,
    /// The first three octets of the server's /24 (spoofed sources).
    pub net: [u8; 3],
    /// Where the attacker and the clients run.
    pub client_ns: Arc<Netns>,
    /// The TUN device the server reads, in `client_ns` (ours).
    pub tun: Option<String>,
    /// What `memory` measures, for the report.
    pub memory_label: &'static str,
    pub memory: MemFn,
    /// CPU time of the server process, if it is one, and the time its
    /// threads spent runnable but waiting for a CPU.
    pub cpu: Arc<dyn Fn() -> Option<(Duration, Duration)> + Send + Sync>,
    /// The server's TCP counters (cookies, queue overflows) so far.
    pub counters: Box<dyn Fn() -> BTreeMap<String, u64>>,
    /// Stops the server; returns its final counters if it only reports them
    /// when it ends (ours), with a note if something went wrong.
    pub stop: Box<dyn FnOnce() -> Final>,
    /// Namespaces, devices and threads; dropped after `stop`.
    pub keep: Vec<Box<dyn std::any::Any>>,
}

// ---------------------------------------------------------------- ours

/// The `echo` example binary: `UBN_ECHO_BIN`, or built now with
/// `cargo build --release --example echo` into the target directory this
/// benchmark runs from.
pub fn echo_binary() -> io::Result<PathBuf> {
    if let Ok(p) = std::env::var("UBN_ECHO_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // <target>/<profile>/deps/synflood-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| io::Error::other("cannot find the target directory"))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| io::Error::other("cannot find the target directory"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("synflood: building the echo example (cargo build --release --example echo)");
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "echo", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "building the echo example: {status}"
        )));
    }
    let bin = target_dir.join("release").join("examples").join("echo");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(io::Error::other(format!(
            "{} not found after the build",
            bin.display()
        )))
    }
}

/// `VmRSS` of process `pid`, bytes.
fn vm_rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// User + system CPU time of process `pid`.
fn proc_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Time the live threads of process `pid` spent runnable, waiting for a
/// CPU (`/proc/<pid>/task/*/schedstat`, second field, ns).
fn run_queue_wait(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(ns))
}

/// The counters of the echo example's `stats: Stats { name: value, ... }`
/// line.
fn parse_stats(log: &str) -> Option<BTreeMap<String, u64>> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("stats: Stats {"))?;
    let body = line.split_once('{')?.1.trim_end_matches('}');
    Some(
        body.split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                Some((k.trim().to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// The echo example in namespace `ubn<pid>fo` on TUN `ubn<pid>fot`:
/// kernel side 10.98.0.1/24, our stack 10.98.0.2.
pub fn ours(echo: &Path) -> io::Result<Target> {
    let ns = Arc::new(Netns::create("fo")?);
    sys::ns_sh(&ns.name, "echo 0 > /proc/sys/net/ipv4/ip_forward")?;
    let tun = format!("{}t", ns.name);
    let log_path = std::env::temp_dir().join(format!("{}-echo.log", ns.name));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(echo)
        .args(["--tun", &tun, "--addr", "10.98.0.2", "--peer", "10.98.0.1"])
        .args([
            "--prefix",
            "24",
            "--port",
            &PORT.to_string(),
            "--mode",
            "echo",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe. The child (`ip` execs the echo
    // binary in place) is killed if this thread dies, so a killed run
    // leaves no server behind.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id();
    let proc = EchoProcess {
        child,
        log: log_path,
    };
    Ok(Target {
        key: "ours",
        label: "the echo example (tcp_async) on a TUN, in its own process",
        server: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 98, 0, 2), PORT)),
        net: [10, 98, 0],
        client_ns: ns.clone(),
        tun: Some(tun),
        memory_label: "VmRSS of the echo process",
        memory: Arc::new(move || vm_rss(pid)),
        cpu: Arc::new(move || Some((proc_cpu(pid)?, run_queue_wait(pid)?))),
        counters: Box::new(BTreeMap::new),
        stop: Box::new(move || proc.stop()),
        keep: vec![Box::new(ns)],
    })
}

struct EchoProcess {
    child: Child,
    log: PathBuf,
}

impl EchoProcess {
    /// SIGINT (the example prints its counters and exits), SIGKILL after 5 s.
    fn stop(mut self) -> Final {
        let mut note = None;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        note = Some(format!("echo example exited with {status}"));
                    }
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    note = Some("echo example did not exit within 5 s of SIGINT; killed".into());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let stats = parse_stats(&log).unwrap_or_else(|| {
            note.get_or_insert_with(|| "no stats line in the echo example's output".into());
            BTreeMap::new()
        });
        if let Some(err) = log.lines().find(|l| l.starts_with("error")) {
            note = Some(format!("echo example: {err}"));
        }
        (stats, note)
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

// ---------------------------------------------------------------- Linux

/// Slab caches a flood fills in the kernel: request socks (SYN queue),
/// sockets, socket buffers.
const FLOOD_SLABS: &[&str] = &[
    "request_sock_TCP",
    "TCP",
    "skbuff_head_cache",
    "skbuff_small_head",
];

/// Bytes in [`FLOOD_SLABS`], system-wide.
pub fn flood_slab_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    Some(
        text.lines()
            .skip(2)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 4 || !FLOOD_SLABS.contains(&f[0]) {
                    return None;
                }
                Some(f[1].parse::<u64>().ok()? * f[3].parse::<u64>().ok()?)
            })
            .sum(),
    )
}

/// The TcpExt counters of namespace `ns` that say what a listener did
/// with SYNs.
fn nstat(ns: &Netns) -> BTreeMap<String, u64> {
    const KEYS: &[&str] = &[
        "SyncookiesSent",
        "SyncookiesRecv",
        "SyncookiesFailed",
        "ListenOverflows",
        "ListenDrops",
        "TCPReqQFullDoCookies",
        "TCPReqQFullDrop",
    ];
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut out = BTreeMap::new();
            if ns.enter().is_err() {
                return out;
            }
            let Ok(text) = std::fs::read_to_string("/proc/thread-self/net/netstat") else {
                return out;
            };
            let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
            if let (Some(h), Some(v)) = (lines.next(), lines.next()) {
                for (k, v) in h.split_whitespace().zip(v.split_whitespace()) {
                    if KEYS.contains(&k) {
                        if let Ok(v) = v.parse() {
                            out.insert(k.to_string(), v);
                        }
                    }
                }
            }
            out
        })
        .join()
        .unwrap_or_default()
    })
}

/// A Tokio echo server on a kernel socket (2 worker threads, as
/// `#[tokio::main]` gives the echo example on this machine's 2 CPUs).
struct KernelEcho {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KernelEcho {
    fn start(ns: Arc<Netns>, addr: SocketAddr) -> io::Result<KernelEcho> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kernel-echo".into())
            .spawn(move || {
                let setup = (|| -> io::Result<_> {
                    ns.enter()?;
                    let sock = socket2::Socket::new(
                        socket2::Domain::IPV4,
                        socket2::Type::STREAM,
                        Some(socket2::Protocol::TCP),
                    )?;
                    sock.set_reuse_address(true)?;
                    sock.bind(&addr.into())?;
                    sock.listen(BACKLOG)?;
                    sock.set_nonblocking(true)?;
                    // The runtime's threads start from this one, in `ns`.
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()?;
                    Ok((rt, std::net::TcpListener::from(sock)))
                })();
                let (rt, std_listener) = match setup {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let accept = async {
                        loop {
                            let Ok((s, _)) = listener.accept().await else {
                                continue;
                            };
                            tokio::spawn(kernel_echo_conn(s));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stop_rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(KernelEcho {
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("kernel echo server did not start")),
        }
    }
}

/// The same loop as the echo example's `--mode echo`.
async fn kernel_echo_conn(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
}

impl Drop for KernelEcho {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The transmit queue length of device `dev` in namespace `ns` (for a TUN:
/// packets the kernel holds for the reader before it drops).
pub fn queue_len(ns: &str, dev: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", dev])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "qlen")
        .nth(1)?
        // `-o` ends each line with a backslash.
        .trim_end_matches('\\')
        .parse()
        .ok()
}

/// Runs `ip -n <ns> -batch` on `lines`.
fn ip_batch(ns: &str, lines: &str) -> io::Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?
        .write_all(lines.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `ethtool -K <dev> gro on`.
const ETHTOOL_SGRO: u32 = 0x2c;
/// `ethtool -K <dev> tso ...` (every TSO feature).
const ETHTOOL_STSO: u32 = 0x1f;

/// Sets one offload of `dev` in `ns` through the `SIOCETHTOOL` ioctl, as
/// `ethtool -K` does.
fn ethtool_set(ns: &Netns, dev: &str, cmd: u32, on: bool) -> io::Result<()> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    if dev.len() >= libc::IFNAMSIZ {
        return Err(io::Error::other("device name too long"));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter()?;
            let mut val = EthtoolValue {
                cmd,
                data: u32::from(on),
            };
            // SAFETY: ifreq is plain data; zeroed is valid.
            let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, b) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
                *d = b as libc::c_char;
            }
            ifr.ifr_ifru.ifru_data = (&mut val as *mut EthtoolValue).cast();
            // SAFETY: a datagram socket for the ioctl, closed below; `ifr`
            // and `val` outlive the call.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let rc = libc::ioctl(fd, SIOCETHTOOL, &mut ifr);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if rc != 0 {
                    return Err(err);
                }
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("thread panicked")))
    })
}

/// The pid of the kernel thread `napi/<dev>-*` (threaded NAPI).
fn napi_thread(dev: &str) -> Option<u32> {
    let want = format!("napi/{dev}-");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with(&want).then_some(pid)
    })
}

/// How the veth hands packets to the server's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Veth {
    /// The default: `netif_rx` into the per-CPU backlog, processed in the
    /// sender's softirq, on the sender's CPU, before its `sendmmsg`
    /// returns. The attacker pays for the server's work and cannot outrun it.
    Backlog,
    /// GRO and threaded NAPI on the server's end, TSO off on the
    /// attacker's (a veth only uses NAPI for packets from a peer without
    /// TSO): a 256-packet ring drained by a kernel thread `napi/<dev>-<id>`,
    /// as a NIC's receive ring is drained by its interrupt's softirq. An
    /// attacker faster than that thread fills the ring, and the excess is
    /// dropped.
    ThreadedNapi,
}

/// Linux: server namespace `ubn<pid>fs` (10.97.0.2) and attacker/client
/// namespace `ubn<pid>fa` (10.97.0.1), veth between them (`fn`/`fb` for
/// threaded NAPI).
pub fn linux(veth: Veth) -> io::Result<Target> {
    let (s_tag, c_tag) = match veth {
        Veth::Backlog => ("fs", "fa"),
        Veth::ThreadedNapi => ("fn", "fb"),
    };
    let srv = Arc::new(Netns::create(s_tag)?);
    let cli = Arc::new(Netns::create(c_tag)?);
    let (vs, va) = (format!("{}v", srv.name), format!("{}v", cli.name));
    sys::run(
        "ip",
        &[
            "link", "add", &vs, "netns", &srv.name, "type", "veth", "peer", "name", &va, "netns",
            &cli.name,
        ],
    )?;
    sys::ns_sh(
        &srv.name,
        &format!(
            "ip addr add 10.97.0.2/24 dev {vs} && ip link set {vs} up && \
             echo 1 > /proc/sys/net/ipv4/tcp_syncookies && \
             echo 0 > /proc/sys/net/ipv4/ip_forward"
        ),
    )?;
    sys::ns_sh(
        &cli.name,
        &format!(
            "ip addr add 10.97.0.1/24 dev {va} && ip link set {va} up && \
             echo 0 > /proc/sys/net/ipv4/ip_forward"
        ),
    )?;
    let show = Command::new("ip")
        .args(["-n", &cli.name, "-o", "link", "show", &va])
        .output()?;
    let text = String::from_utf8_lossy(&show.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| io::Error::other(format!("no MAC address for {va}: {text}")))?
        .to_string();
    let neigh: String = (3..=254)
        .map(|h| format!("neigh replace 10.97.0.{h} lladdr {mac} dev {vs} nud permanent\n"))
        .collect();
    ip_batch(&srv.name, &neigh)?;
    let mut napi = None;
    if veth == Veth::ThreadedNapi {
        ethtool_set(&srv, &vs, ETHTOOL_SGRO, true)?;
        ethtool_set(&cli, &va, ETHTOOL_STSO, false)?;
        sys::ns_sh(&srv.name, &format!("echo 1 > /sys/class/net/{vs}/threaded"))?;
        napi = Some(napi_thread(&vs).ok_or_else(|| io::Error::other("no napi thread"))?);
    }
    let server = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 97, 0, 2), PORT));
    let echo = KernelEcho::start(srv.clone(), server)?;
    let srv_for_counters = srv.clone();
    let (key, label) = match veth {
        Veth::Backlog => (
            "linux",
            "kernel TCP (tcp_syncookies=1) over veth, Tokio echo server",
        ),
        Veth::ThreadedNapi => (
            "linux-napi",
            "as linux, with GRO and threaded NAPI on the server's veth end and TSO off on the attacker's (receive in a kernel thread, 256-packet ring)",
        ),
    };
    Ok(Target {
        key,
        label,
        server,
        net: [10, 97, 0],
        client_ns: cli.clone(),
        tun: None,
        memory_label:
            "kernel slab: request_sock_TCP, TCP, skbuff_head_cache, skbuff_small_head (system-wide)",
        memory: Arc::new(flood_slab_bytes),
        // Threaded NAPI: the kernel thread that receives (and answers) the
        // flood; otherwise the work hides in other threads' softirqs.
        cpu: Arc::new(move || Some((proc_cpu(napi?)?, run_queue_wait(napi?)?))),
        counters: Box::new(move || nstat(&srv_for_counters)),
        stop: Box::new(|| (BTreeMap::new(), None)),
        // Server first, then the namespaces.
        keep: vec![Box::new(echo), Box::new(srv), Box::new(cli)],
    })
}
