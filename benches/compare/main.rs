//! The published comparison: Linux kernel TCP vs this project's stack vs
//! smoltcp, all driven by the same kernel-side client, in one run.
//!
//! `sudo CARGO_TARGET_DIR=target-bench cargo bench --bench compare`
//! (root is needed for network namespaces, veth and TUN devices).
//!
//! - A: kernel <-> kernel over a veth pair between two namespaces, MTU
//!   1500, with GSO/GRO/TSO on and then off (`ethtool -K`).
//! - B: kernel client <-> our stack (`tcp_async`) over TUN, MTU 1500.
//! - C: kernel client <-> smoltcp over TUN, MTU 1500.
//! - D: two `tcp_async` stacks over `MemoryDevice`, beside kernel loopback.
//! - E ("raw", link layer): a veth pair between two namespaces; the kernel
//!   client on one end (10.99.5.1/24), the server under test owning the
//!   other end through AF_PACKET: that end is up with no kernel address
//!   (IPv6 off on it, so the kernel never answers for the server's
//!   ports), GRO off. smoltcp on its own `smoltcp::phy::RawSocket`
//!   (medium Ethernet, the veth end's MAC) and our stack on
//!   `tcp_async::device::RawDevice`. smoltcp's reader has no virtio-net
//!   headers and needs whole, checksummed frames, so for it the client's
//!   veth end has TX checksum offload and TSO off (its GSO stays on: the
//!   kernel segments in software before the veth); ours takes virtio-net
//!   headers, and its client end keeps every offload. Bulk both ways,
//!   request/response and connections/s, reported against A's kernel
//!   over veth with offloads on (same run) and ours against smoltcp.
//!
//! Every TUN/veth lives in a namespace named `ubn<pid>*`, deleted at the
//! end (and by the next run if this one was killed). Environment:
//! `UBN_SECS` (seconds per measurement, default 3), `UBN_IDLE` (idle
//! connections, default 10000), `UBN_JSON` (output path, default
//! `target/bench-compare.json` under the workspace), `UBN_OFFLOAD=0` (B:
//! our TUN without checksum/TSO offloads, D: our memory pair without
//! super-packets; default on), `UBN_IPV6` (`1`, the default: A, B and D
//! also run bulk and request/response over IPv6, interleaved with their
//! IPv4 runs, and a table of IPv6/IPv4 ratios follows; `0`: IPv4 only;
//! `only`: just those workloads over both families, no idle,
//! connection-rate or smoltcp runs). smoltcp (C) stays IPv4 only.
//! `UBN_ONLY` (comma-separated subset of `A,B,C,D,E`, default all).
//! `UBN_RAW` (`1`, the default: E runs after D; `0`: no E; `only`: just
//! E and the baseline it is compared with, A with offloads on, IPv4,
//! without the idle workloads; everything else is skipped, only E's
//! table is printed): `sudo UBN_RAW=only UBN_SECS=2 cargo bench --bench
//! compare` takes about 30 s once built (45 s with ours). E is IPv4 only
//! (no E under `UBN_IPV6=only`). `UBN_RAW_RCVBUF=<bytes>` forces the
//! receive buffer of smoltcp's raw socket (default: the kernel's
//! `net.core.rmem_default`, which `RawSocket` keeps; it drops frames in
//! bulk kernel->smoltcp).

mod client;
mod kserver;
mod ours;
mod smol;
mod sys;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sys::Netns;

/// What the measurement needs from a server under test.
pub trait Server {
    fn addr(&self) -> SocketAddr;
    /// CPU time (user + system) of the server's thread(s) so far.
    fn cpu(&self) -> Option<Duration>;
    /// Segments the server side retransmitted so far.
    fn retrans(&self) -> Option<u64>;
    /// Moves the server's thread(s) to `cpu`.
    fn pin(&self, cpu: usize);
    /// Closes the idle connections the server holds, if it holds them itself.
    fn release_idle(&self);
    /// Frames its device dropped on receive so far (an AF_PACKET socket's
    /// full receive buffer), if it can tell.
    fn rx_drops(&self) -> Option<u64> {
        None
    }
}

type Metrics = BTreeMap<&'static str, f64>;

#[derive(Clone)]
enum Outcome {
    Ok(Metrics),
    Err(String),
}

struct Setup {
    key: &'static str,
    label: &'static str,
    results: Vec<(&'static str, Outcome)>,
}

impl Setup {
    fn new(key: &'static str, label: &'static str) -> Setup {
        Setup {
            key,
            label,
            results: Vec::new(),
        }
    }
    fn get(&self, workload: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|(w, _)| *w == workload)
            .map(|(_, o)| o)
    }
    fn metric(&self, workload: &str, m: &str) -> Option<f64> {
        match self.get(workload)? {
            Outcome::Ok(ms) => ms.get(m).copied(),
            Outcome::Err(_) => None,
        }
    }
    fn fail_all(&mut self, why: &str) {
        for w in WORKLOADS {
            self.results.push((w, Outcome::Err(why.to_string())));
        }
    }
}

const WORKLOADS: [&str; 8] = [
    "idle",
    "idle_after_traffic",
    "bulk_up",
    "bulk_down",
    "rr_same_cpu",
    "rr_cross_cpu",
    "cps_same_cpu",
    "cps_cross_cpu",
];

#[derive(Clone, Copy)]
struct Params {
    dur: Duration,
    idle: usize,
    /// Idle connections when both ends are in this process (2 fds each).
    idle_kernel_pair: usize,
    client_cpu: usize,
    other_cpu: usize,
    ipv6: Ipv6Mode,
}

/// `UBN_IPV6`: whether A, B and D also run their bulk and
/// request/response workloads over IPv6 (`1`, the default; `0` not), or
/// run only those, over both families (`only`: no idle, connection-rate
/// or smoltcp runs; the quick way to the IPv6/IPv4 ratios).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ipv6Mode {
    Off,
    On,
    Only,
}

impl Ipv6Mode {
    fn from_env() -> Ipv6Mode {
        match std::env::var("UBN_IPV6").as_deref() {
            Ok("0") => Ipv6Mode::Off,
            Ok(v) if v.eq_ignore_ascii_case("only") => Ipv6Mode::Only,
            _ => Ipv6Mode::On,
        }
    }
    fn on(self) -> bool {
        self != Ipv6Mode::Off
    }
}

/// `UBN_RAW`: whether E runs (`1`, the default; `0` not), or only E and
/// the part of A it is compared with (`only`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RawMode {
    Off,
    On,
    Only,
}

impl RawMode {
    fn from_env() -> RawMode {
        match std::env::var("UBN_RAW").as_deref() {
            Ok("0") => RawMode::Off,
            Ok(v) if v.eq_ignore_ascii_case("only") => RawMode::Only,
            _ => RawMode::On,
        }
    }
}

/// Which workloads [`run_workloads`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Everything.
    All,
    /// All but the idle workloads (E, and A under `UBN_RAW=only`).
    NoIdle,
    /// Only the [`CORE`] workloads (`UBN_IPV6=only`).
    Core,
}

impl Scope {
    fn core_if(core_only: bool) -> Scope {
        if core_only {
            Scope::Core
        } else {
            Scope::All
        }
    }
}

/// Runs `f` on a fresh thread inside `ns` pinned to `cpu`, waiting at most
/// `limit`; a thread still running then is abandoned and reported.
fn on_client<T: Send + 'static>(
    ns: &Arc<Netns>,
    cpu: usize,
    limit: Duration,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let ns = ns.clone();
    std::thread::Builder::new()
        .name("client".into())
        .spawn(move || {
            let r = ns.enter().and_then(|()| {
                sys::pin(0, cpu)?;
                f()
            });
            let _ = tx.send(r);
        })
        .map_err(|e| e.to_string())?;
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "hang: no result within {} s (client thread abandoned)",
            limit.as_secs()
        )),
    }
}

/// Counters around one workload.
struct Probe {
    t: Instant,
    server_cpu: Option<Duration>,
    proc_cpu: Duration,
    k_retrans: Option<u64>,
    s_retrans: Option<u64>,
    dev_drops: Option<u64>,
    s_drops: Option<u64>,
}

fn probe(server: &dyn Server, knss: &[&Netns]) -> Probe {
    Probe {
        t: Instant::now(),
        server_cpu: server.cpu(),
        proc_cpu: sys::process_cpu(),
        k_retrans: knss.iter().map(|n| n.retrans_segs()).sum::<Option<u64>>(),
        dev_drops: knss.iter().map(|n| n.dev_tx_drops()).sum::<Option<u64>>(),
        s_retrans: server.retrans(),
        s_drops: server.rx_drops(),
    }
}

fn delta_metrics(m: &mut Metrics, a: &Probe, b: &Probe, bytes: Option<u64>) {
    if let (Some(x), Some(y)) = (a.k_retrans, b.k_retrans) {
        m.insert("retrans_kernel", y.saturating_sub(x) as f64);
    }
    if let (Some(x), Some(y)) = (a.dev_drops, b.dev_drops) {
        m.insert("device_tx_drops", y.saturating_sub(x) as f64);
    }
    if let (Some(x), Some(y)) = (a.s_retrans, b.s_retrans) {
        m.insert("retrans_server", y.saturating_sub(x) as f64);
    }
    if let (Some(x), Some(y)) = (a.s_drops, b.s_drops) {
        m.insert("server_rx_drops", y.saturating_sub(x) as f64);
    }
    let scpu = match (a.server_cpu, b.server_cpu) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x).as_secs_f64()),
        _ => None,
    };
    let pcpu = b.proc_cpu.saturating_sub(a.proc_cpu).as_secs_f64();
    m.insert("wall_s", b.t.duration_since(a.t).as_secs_f64());
    if let Some(s) = scpu {
        m.insert("server_cpu_s", s);
    }
    m.insert("process_cpu_s", pcpu);
    if let Some(bytes) = bytes.filter(|&b| b > 0) {
        let gb = bytes as f64 / 1e9;
        if let Some(s) = scpu {
            m.insert("server_cpu_s_per_gb", s / gb);
        }
        m.insert("process_cpu_s_per_gb", pcpu / gb);
    }
}

/// Who plays the client: the kernel (blocking `std::net` in a namespace)
/// or our own stack (the in-memory pair, D).
#[derive(Clone, Copy)]
enum Client<'a> {
    Kernel(&'a Arc<Netns>),
    Ours(&'a ours::StackThread),
}

/// The workloads measured for both address families: bulk both ways and
/// request/response.
const CORE: [&str; 4] = ["bulk_up", "bulk_down", "rr_same_cpu", "rr_cross_cpu"];

/// Runs one of the [`CORE`] workloads against `server`.
fn measure_core(
    name: &str,
    server: &dyn Server,
    client: Client<'_>,
    knss: &[&Netns],
    p: &Params,
) -> Outcome {
    let addr = server.addr();
    let limit = p.dur + Duration::from_secs(30);
    let dur = p.dur;
    let settle = || std::thread::sleep(Duration::from_millis(300));
    fn ours_result<T>(r: Option<io::Result<T>>) -> Result<T, String> {
        match r {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("hang: no result within the time limit".to_string()),
        }
    }
    match name {
        "bulk_up" | "bulk_down" => {
            let up = name == "bulk_up";
            server.pin(p.other_cpu);
            settle();
            let a = probe(server, knss);
            let c0 = match client {
                Client::Ours(cli) => sys::task_cpu(cli.tid),
                Client::Kernel(_) => None,
            };
            let r = match client {
                Client::Kernel(ns) => on_client(ns, p.client_cpu, limit, move || {
                    if up {
                        client::bulk_up(addr, dur)
                    } else {
                        client::bulk_down(addr, dur)
                    }
                }),
                Client::Ours(cli) => {
                    ours_result(cli.run(limit, ours::async_bulk(cli.stack.clone(), addr, up, dur)))
                }
            };
            std::thread::sleep(Duration::from_millis(100));
            let b = probe(server, knss);
            let c1 = match client {
                Client::Ours(cli) => sys::task_cpu(cli.tid),
                Client::Kernel(_) => None,
            };
            match r {
                Ok(bulk) => {
                    let mut m = Metrics::new();
                    m.insert("gbit_per_s", bulk.gbps());
                    m.insert("bytes", bulk.bytes as f64);
                    delta_metrics(&mut m, &a, &b, Some(bulk.bytes));
                    if let (Some(x), Some(y)) = (c0, c1) {
                        m.insert("client_cpu_s", y.saturating_sub(x).as_secs_f64());
                    }
                    Outcome::Ok(m)
                }
                Err(e) => Outcome::Err(e),
            }
        }
        _ => {
            let same = name == "rr_same_cpu";
            server.pin(if same { p.client_cpu } else { p.other_cpu });
            settle();
            let a = probe(server, knss);
            let r = match client {
                Client::Kernel(ns) => {
                    on_client(ns, p.client_cpu, limit, move || client::rr(addr, dur))
                }
                Client::Ours(cli) => {
                    ours_result(cli.run(limit, ours::async_rr(cli.stack.clone(), addr, dur)))
                }
            };
            let b = probe(server, knss);
            match r {
                Ok(rr) => {
                    let mut m = Metrics::new();
                    m.insert("transactions_per_s", rr.count as f64 / rr.secs);
                    m.insert("p50_us", rr.p50_us);
                    m.insert("p99_us", rr.p99_us);
                    delta_metrics(&mut m, &a, &b, None);
                    Outcome::Ok(m)
                }
                Err(e) => Outcome::Err(e),
            }
        }
    }
}

/// Runs the [`CORE`] workloads against every server in `runs` (all
/// reached by the same `client`), interleaved: each workload against each
/// server before the next workload, so that the IPv4 and IPv6 rows of a
/// setup see the same machine as far as possible.
fn run_core(
    runs: &mut [(&mut Setup, &dyn Server)],
    client: Client<'_>,
    knss: &[&Netns],
    p: &Params,
) {
    for name in CORE {
        for (setup, server) in runs.iter_mut() {
            let out = measure_core(name, *server, client, knss, p);
            eprint!("   [{}] ", setup.key);
            report_line(name, &out);
            setup.results.push((name, out));
        }
    }
}

/// Runs every workload against `server`; `knss` are the namespaces whose
/// kernel retransmissions count (the client's, and the server's for A).
/// `v6` is the same setup reached over IPv6: it gets the [`CORE`]
/// workloads, interleaved with `server`'s. `scope` leaves out the idle
/// workloads ([`Scope::NoIdle`]) or those and the connection-rate ones
/// ([`Scope::Core`]).
#[allow(clippy::too_many_arguments)]
fn run_workloads(
    setup: &mut Setup,
    server: &dyn Server,
    client_ns: &Arc<Netns>,
    knss: &[&Netns],
    kernel_ends: f64,
    p: &Params,
    v6: Option<(&mut Setup, &dyn Server)>,
    scope: Scope,
) {
    let addr = server.addr();
    let limit = p.dur + Duration::from_secs(30);
    let settle = || std::thread::sleep(Duration::from_millis(300));
    eprintln!("== {}", setup.label);
    // Idle connections first, and again after all the traffic. smoltcp
    // only after: its SocketSet keeps a slot for every socket ever added,
    // so 10,000 idle sockets first would slow down all its other workloads.
    let smoltcp = setup.key.starts_with("C_");
    if !smoltcp && scope == Scope::All {
        idle_run(setup, "idle", server, client_ns, kernel_ends, p);
    }

    {
        let mut runs: Vec<(&mut Setup, &dyn Server)> = vec![(&mut *setup, server)];
        if let Some((s6, srv6)) = v6 {
            runs.push((s6, srv6));
        }
        run_core(&mut runs, Client::Kernel(client_ns), knss, p);
    }
    if scope == Scope::Core {
        server.pin(p.other_cpu);
        return;
    }

    for (name, same) in [("cps_same_cpu", true), ("cps_cross_cpu", false)] {
        server.pin(if same { p.client_cpu } else { p.other_cpu });
        settle();
        let a = probe(server, knss);
        let dur = p.dur;
        let r = on_client(client_ns, p.client_cpu, limit, move || {
            Ok(client::cps(addr, dur))
        });
        let b = probe(server, knss);
        let out = match r {
            Ok(c) if c.count > 0 => {
                let mut m = Metrics::new();
                m.insert("connections_per_s", c.count as f64 / c.secs);
                m.insert("connections", c.count as f64);
                delta_metrics(&mut m, &a, &b, None);
                if let Some(f) = c.failure {
                    eprintln!("   {name}: stopped early: {f}");
                    setup
                        .results
                        .push(("cps_failure", Outcome::Err(format!("{name}: {f}"))));
                }
                Outcome::Ok(m)
            }
            Ok(c) => Outcome::Err(c.failure.unwrap_or_else(|| "no connection".into())),
            Err(e) => Outcome::Err(e),
        };
        report_line(name, &out);
        setup.results.push((name, out));
    }
    if scope == Scope::NoIdle {
        server.pin(p.other_cpu);
        return;
    }
    let name = if smoltcp {
        "idle"
    } else {
        "idle_after_traffic"
    };
    idle_run(setup, name, server, client_ns, kernel_ends, p);
    server.pin(p.other_cpu);
}

fn idle_run(
    setup: &mut Setup,
    name: &'static str,
    server: &dyn Server,
    client_ns: &Arc<Netns>,
    kernel_ends: f64,
    p: &Params,
) {
    // Free heap memory is returned to the kernel first, so that reused
    // memory does not hide growth.
    let addr = server.addr();
    let settle = || std::thread::sleep(Duration::from_millis(300));
    {
        server.pin(p.other_cpu);
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
        settle();
        let rss0 = sys::rss();
        let slab0 = sys::socket_slab_bytes();
        let n = if kernel_ends > 1.0 {
            p.idle_kernel_pair
        } else {
            p.idle
        };
        let r = on_client(
            client_ns,
            p.client_cpu,
            Duration::from_secs(180),
            move || Ok(client::open_idle(addr, n)),
        );
        let out = match r {
            Ok((conns, failure)) => {
                // Idle means idle for a while: our stack frees a ring's
                // storage once it stayed empty for one 200 ms ring sweep
                // period (so 200 to 400 ms after the last byte), and the
                // last connection opened exchanged its byte just now. One
                // second covers that for every stack (was 500 ms).
                std::thread::sleep(Duration::from_millis(1000));
                let opened = conns.len();
                let rss1 = sys::rss();
                let slab1 = sys::socket_slab_bytes();
                drop(conns);
                server.release_idle();
                // Let the closing handshakes finish (at most 20 s) so they
                // do not count in the next workload's retransmissions.
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(20)
                    && client_ns.closing_sockets().is_some_and(|n| n > 0)
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                std::thread::sleep(Duration::from_millis(500));
                if opened == 0 {
                    Outcome::Err(failure.unwrap_or_else(|| "no connection opened".into()))
                } else {
                    let mut m = Metrics::new();
                    let nf = opened as f64;
                    m.insert("connections", nf);
                    let rss = rss1.saturating_sub(rss0) as f64 / nf;
                    let slab = slab1 as f64 - slab0 as f64;
                    m.insert("rss_bytes_per_conn", rss);
                    m.insert("kernel_slab_bytes_per_conn_all_kernel_ends", slab / nf);
                    // The server's own cost: RSS, plus its share of the slab
                    // when the server is the kernel too.
                    let server_kernel = if kernel_ends > 1.0 {
                        slab / nf / kernel_ends
                    } else {
                        0.0
                    };
                    m.insert("server_bytes_per_conn", rss + server_kernel);
                    if let Some(f) = &failure {
                        eprintln!("   {name}: stopped after {opened}: {f}");
                        m.insert("incomplete", 1.0);
                    }
                    Outcome::Ok(m)
                }
            }
            Err(e) => Outcome::Err(e),
        };
        report_line(name, &out);
        setup.results.push((name, out));
    }
}

fn report_line(name: &str, o: &Outcome) {
    match o {
        Outcome::Ok(m) => {
            let s: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
            eprintln!("   {name}: {}", s.join(" "));
        }
        Outcome::Err(e) => eprintln!("   {name}: FAILED: {e}"),
    }
}

/// The IPv6 twin of a setup: measured if `p.ipv6` asks for it, else
/// marked skipped.
fn setup6(key: &'static str, label: &'static str, p: &Params) -> Setup {
    let mut s = Setup::new(key, label);
    if !p.ipv6.on() {
        s.fail_all("skipped (UBN_IPV6=0)");
    }
    s
}

/// The setups of A, B and D (their IPv6 twins in `v6`), in table order.
struct Measured {
    v4: Setup,
    v6: Setup,
}

/// A: kernel <-> kernel over veth, offloads on then off; both ends also
/// have IPv6 addresses (fd00:99:1::/64), for the IPv6 rows. With
/// `raw_only` (`UBN_RAW=only`), just what E is compared with: offloads on,
/// no idle workloads (offloads off is marked skipped).
fn setup_a(p: &Params, raw_only: bool) -> (Measured, Measured) {
    let mut on = Setup::new(
        "A_kernel_veth_offload_on",
        "A: kernel<->kernel veth, GSO/GRO/TSO on",
    );
    let mut off = Setup::new(
        "A_kernel_veth_offload_off",
        "A: kernel<->kernel veth, GSO/GRO/TSO off",
    );
    let mut on6 = setup6(
        "A_kernel_veth_offload_on_ipv6",
        "A: kernel<->kernel veth, GSO/GRO/TSO on, IPv6",
        p,
    );
    let mut off6 = setup6(
        "A_kernel_veth_offload_off_ipv6",
        "A: kernel<->kernel veth, GSO/GRO/TSO off, IPv6",
        p,
    );
    let r = (|| -> io::Result<_> {
        let srv_ns = Arc::new(Netns::create("a")?);
        let cli_ns = Arc::new(Netns::create("b")?);
        let (va, vb) = (format!("{}v", srv_ns.name), format!("{}v", cli_ns.name));
        sys::run(
            "ip",
            &[
                "link",
                "add",
                &va,
                "netns",
                &srv_ns.name,
                "mtu",
                "1500",
                "type",
                "veth",
                "peer",
                "name",
                &vb,
                "netns",
                &cli_ns.name,
                "mtu",
                "1500",
            ],
        )?;
        sys::ns_sh(
            &srv_ns.name,
            &format!("ip addr add 10.99.1.1/24 dev {va} && ip link set {va} up"),
        )?;
        sys::ns_sh(
            &cli_ns.name,
            &format!("ip addr add 10.99.1.2/24 dev {vb} && ip link set {vb} up"),
        )?;
        let server = kserver::KernelServer::start(
            srv_ns.clone(),
            SocketAddr::from((Ipv4Addr::new(10, 99, 1, 1), 5001)),
        )?;
        Ok((srv_ns, cli_ns, va, vb, server))
    })();
    let (srv_ns, cli_ns, va, vb, server) = match r {
        Ok(v) => v,
        Err(e) => {
            let why = format!("setup failed: {e}");
            for s in [&mut on, &mut off, &mut on6, &mut off6] {
                s.fail_all(&why);
            }
            return (Measured { v4: on, v6: on6 }, Measured { v4: off, v6: off6 });
        }
    };
    // IPv6 on the same veth (nodad: usable at once).
    let server6 = if p.ipv6.on() {
        let r = (|| -> io::Result<_> {
            sys::ns_sh(
                &srv_ns.name,
                &format!("ip -6 addr add {A6_SERVER}/64 dev {va} nodad"),
            )?;
            sys::ns_sh(
                &cli_ns.name,
                &format!("ip -6 addr add {A6_CLIENT}/64 dev {vb} nodad"),
            )?;
            kserver::KernelServer::start(srv_ns.clone(), SocketAddr::from((A6_SERVER, 5001)))
        })();
        match r {
            Ok(s) => Some(s),
            Err(e) => {
                let why = format!("IPv6 setup failed: {e}");
                on6.fail_all(&why);
                off6.fail_all(&why);
                None
            }
        }
    } else {
        None
    };
    if raw_only {
        off.fail_all("skipped (UBN_RAW=only)");
    }
    for (setup, setup6, state) in [(&mut on, &mut on6, "on"), (&mut off, &mut off6, "off")] {
        if raw_only && state == "off" {
            continue;
        }
        let cmd = |ns: &str, dev: &str| {
            sys::ns_sh(
                ns,
                &format!("ethtool -K {dev} gso {state} gro {state} tso {state}"),
            )
        };
        if let Err(e) = cmd(&srv_ns.name, &va).and_then(|()| cmd(&cli_ns.name, &vb)) {
            let why = format!("cannot switch offloads {state}: {e} (install ethtool)");
            setup.fail_all(&why);
            setup6.fail_all(&why);
            continue;
        }
        let v6 = server6.as_ref().map(|s6| (setup6, s6 as &dyn Server));
        run_workloads(
            setup,
            &server,
            &cli_ns,
            &[&srv_ns, &cli_ns],
            2.0,
            p,
            v6,
            if raw_only {
                Scope::NoIdle
            } else {
                Scope::core_if(p.ipv6 == Ipv6Mode::Only)
            },
        );
    }
    (Measured { v4: on, v6: on6 }, Measured { v4: off, v6: off6 })
}

/// IPv6 addresses of the setups (unique local, RFC 4193).
const A6_SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 1, 0, 0, 0, 0, 1);
const A6_CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 1, 0, 0, 0, 0, 2);
const B6_KERNEL: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 2, 0, 0, 0, 0, 1);
const B6_OURS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 2, 0, 0, 0, 0, 2);
const D6_SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 4, 0, 0, 0, 0, 1);
const D6_CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 4, 0, 0, 0, 0, 2);

/// B: kernel client <-> our stack over TUN. The TUN and the stack have
/// addresses of both families; the IPv6 rows reach the same stack through
/// the same TUN on a second listener.
fn setup_b(p: &Params) -> Measured {
    let label = if ours::offload() {
        "B: kernel client<->our stack (tcp_async) over TUN, offloads (TSO, checksum)"
    } else {
        "B: kernel client<->our stack (tcp_async) over TUN, no offloads (UBN_OFFLOAD=0)"
    };
    let mut s = Setup::new("B_ours_tun", label);
    let mut s6 = setup6(
        "B_ours_tun_ipv6",
        "B: kernel client<->our stack over TUN, IPv6",
        p,
    );
    let r = (|| -> io::Result<_> {
        let ns = Arc::new(Netns::create("t")?);
        let name = ns.name.clone();
        let kernel = Ipv4Addr::new(10, 99, 2, 1);
        let ours_ip = Ipv4Addr::new(10, 99, 2, 2);
        let v6 = p.ipv6.on();
        let mut addrs = vec![IpAddr::V4(ours_ip)];
        if v6 {
            addrs.push(IpAddr::V6(B6_OURS));
        }
        let st = Arc::new(ours::StackThread::start(
            "ours-tun",
            Some(ns.clone()),
            ours::config(&addrs, 7),
            move || {
                tcp_async::device::tun::TunDevice::new(ours::open_tun(
                    &name,
                    kernel,
                    v6.then_some(B6_KERNEL),
                    ours::offload(),
                )?)
            },
        )?);
        let server = ours::OursServer::start(st.clone(), SocketAddr::from((ours_ip, 5001)))?;
        let server6 = if v6 {
            Some(ours::OursServer::start(
                st,
                SocketAddr::from((B6_OURS, 5001)),
            )?)
        } else {
            None
        };
        Ok((ns, server, server6))
    })();
    match r {
        Ok((ns, server, server6)) => {
            let v6 = server6.as_ref().map(|srv6| (&mut s6, srv6 as &dyn Server));
            run_workloads(
                &mut s,
                &server,
                &ns,
                &[&ns],
                1.0,
                p,
                v6,
                Scope::core_if(p.ipv6 == Ipv6Mode::Only),
            );
            drop(server6);
            drop(server);
            drop(ns);
        }
        Err(e) => {
            let why = format!("setup failed: {e}");
            s.fail_all(&why);
            if p.ipv6.on() {
                s6.fail_all(&why);
            }
        }
    }
    Measured { v4: s, v6: s6 }
}

/// C: kernel client <-> smoltcp over TUN (IPv4 only).
fn setup_c(p: &Params) -> Setup {
    let mut s = Setup::new("C_smoltcp_tun", "C: kernel client<->smoltcp 0.14 over TUN");
    let r = (|| -> io::Result<_> {
        let ns = Arc::new(Netns::create("s")?);
        let server = smol::SmolServer::start(
            ns.clone(),
            &ns.name.clone(),
            Ipv4Addr::new(10, 99, 3, 1),
            Ipv4Addr::new(10, 99, 3, 2),
            5001,
        )?;
        Ok((ns, server))
    })();
    match r {
        Ok((ns, server)) => {
            let p2 = Params {
                idle: p.idle.min(smol::MAX_SOCKETS - 100),
                ..*p
            };
            run_workloads(&mut s, &server, &ns, &[&ns], 1.0, &p2, None, Scope::All);
            drop(server);
            drop(ns);
        }
        Err(e) => s.fail_all(&format!("setup failed: {e}")),
    }
    s
}

/// D: in-memory pair of our stacks, and kernel loopback; each also over
/// IPv6 (fd00:99:4::/64 on the pair, `::1` on `lo`).
fn setup_d(p: &Params) -> (Measured, Measured) {
    let mut mem = Setup::new(
        "D_ours_memory_pair",
        if ours::offload() {
            "D: our stack<->our stack over MemoryDevice, offloads (super-packets whole, as lo's GSO)"
        } else {
            "D: our stack<->our stack over MemoryDevice, no offloads (UBN_OFFLOAD=0)"
        },
    );
    let mut mem6 = setup6(
        "D_ours_memory_pair_ipv6",
        "D: our stack<->our stack over MemoryDevice, IPv6",
        p,
    );
    let mut lo = Setup::new("D_kernel_loopback", "D: kernel loopback (lo, MTU 65536)");
    let mut lo6 = setup6("D_kernel_loopback_ipv6", "D: kernel loopback (lo), IPv6", p);
    let v6 = p.ipv6.on();
    eprintln!("== {}", mem.label);
    let r = (|| -> io::Result<_> {
        let (da, db) = if ours::offload() {
            tcp_async::device::MemoryDevice::pair_with_offloads(1500)
        } else {
            tcp_async::device::MemoryDevice::pair(1500)
        };
        let sa = Ipv4Addr::new(10, 0, 0, 1);
        let ca = Ipv4Addr::new(10, 0, 0, 2);
        let (mut srv_addrs, mut cli_addrs) = (vec![IpAddr::V4(sa)], vec![IpAddr::V4(ca)]);
        if v6 {
            srv_addrs.push(IpAddr::V6(D6_SERVER));
            cli_addrs.push(IpAddr::V6(D6_CLIENT));
        }
        let srv = Arc::new(ours::StackThread::start(
            "ours-mem-srv",
            None,
            ours::config(&srv_addrs, 1),
            move || Ok(da),
        )?);
        let cli = ours::StackThread::start(
            "ours-mem-cli",
            None,
            ours::config(&cli_addrs, 2),
            move || Ok(db),
        )?;
        let server = ours::OursServer::start(srv.clone(), SocketAddr::from((sa, 5001)))?;
        let server6 = if v6 {
            Some(ours::OursServer::start(
                srv,
                SocketAddr::from((D6_SERVER, 5001)),
            )?)
        } else {
            None
        };
        Ok((server, server6, cli))
    })();
    match r {
        Ok((server, server6, cli)) => {
            let _ = sys::pin(cli.tid, p.client_cpu);
            server.pin(p.other_cpu);
            let mut runs: Vec<(&mut Setup, &dyn Server)> = vec![(&mut mem, &server)];
            if let Some(s6) = &server6 {
                runs.push((&mut mem6, s6));
            }
            run_core(&mut runs, Client::Ours(&cli), &[], p);
            drop(runs);
            let stats = server.retrans();
            if let Some(r) = stats {
                let mut m = Metrics::new();
                m.insert("server_retransmits_total", r as f64);
                mem.results.push(("retransmits", Outcome::Ok(m)));
            }
        }
        Err(e) => {
            let why = format!("setup failed: {e}");
            mem.fail_all(&why);
            if v6 {
                mem6.fail_all(&why);
            }
        }
    }

    eprintln!("== {}", lo.label);
    let r = (|| -> io::Result<_> {
        let ns = Arc::new(Netns::create("l")?);
        let server = kserver::KernelServer::start(
            ns.clone(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 5001)),
        )?;
        let server6 = if v6 {
            Some(kserver::KernelServer::start(
                ns.clone(),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 5001)),
            )?)
        } else {
            None
        };
        Ok((ns, server, server6))
    })();
    match r {
        Ok((ns, server, server6)) => {
            let mut runs: Vec<(&mut Setup, &dyn Server)> = vec![(&mut lo, &server)];
            if let Some(s6) = &server6 {
                runs.push((&mut lo6, s6));
            }
            run_core(&mut runs, Client::Kernel(&ns), &[&ns], p);
            drop(runs);
            drop(server6);
            drop(server);
            drop(ns);
        }
        Err(e) => {
            let why = format!("setup failed: {e}");
            lo.fail_all(&why);
            if v6 {
                lo6.fail_all(&why);
            }
        }
    }
    (Measured { v4: mem, v6: mem6 }, Measured { v4: lo, v6: lo6 })
}

/// E: the kernel client's and the server's addresses on the veth pair.
const E_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 5, 1);
const E_SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 5, 2);

/// A veth pair for E between two new namespaces `ubn<pid><tag>s` (the
/// server's) and `ubn<pid><tag>c` (the kernel client's).
struct RawPair {
    srv_ns: Arc<Netns>,
    cli_ns: Arc<Netns>,
    /// The server's veth end (in `srv_ns`): up, no kernel address.
    dev: String,
    /// Its MAC address, which the server under test takes as its own.
    mac: [u8; 6],
}

/// Creates the pair: the client end gets [`E_CLIENT`]/24 and, unless
/// `client_offloads`, TX checksum offload and TSO off (an AF_PACKET
/// reader without virtio-net headers would otherwise see partial
/// checksums and 64 KB super-frames); the server end gets no address,
/// IPv6 off (no link-local address, no kernel frames on the link) and
/// GRO off (no merged frames), and is up. IPv6 is off on the client end
/// too: nothing but the measured traffic and ARP on the link.
fn raw_pair(tag: &str, client_offloads: bool) -> io::Result<RawPair> {
    let srv_ns = Arc::new(Netns::create(&format!("{tag}s"))?);
    let cli_ns = Arc::new(Netns::create(&format!("{tag}c"))?);
    let (vs, vc) = (format!("{}v", srv_ns.name), format!("{}v", cli_ns.name));
    sys::run(
        "ip",
        &[
            "link",
            "add",
            &vs,
            "netns",
            &srv_ns.name,
            "mtu",
            "1500",
            "type",
            "veth",
            "peer",
            "name",
            &vc,
            "netns",
            &cli_ns.name,
            "mtu",
            "1500",
        ],
    )?;
    // A kernel without IPv6 has no such sysctl; nothing to turn off then.
    let no_v6 =
        |dev: &str| format!("(echo 1 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6 || true)");
    sys::ns_sh(
        &srv_ns.name,
        &format!(
            "{} && ethtool -K {vs} gro off >/dev/null && ip link set {vs} up",
            no_v6(&vs)
        ),
    )
    .map_err(|e| io::Error::other(format!("{e} (install ethtool)")))?;
    let offl = if client_offloads {
        String::new()
    } else {
        format!(" && ethtool -K {vc} tx off tso off >/dev/null")
    };
    sys::ns_sh(
        &cli_ns.name,
        &format!(
            "{}{offl} && ip addr add {E_CLIENT}/24 dev {vc} && ip link set {vc} up",
            no_v6(&vc)
        ),
    )
    .map_err(|e| io::Error::other(format!("{e} (install ethtool)")))?;
    // The server's end must have no kernel address of either family.
    let addrs = sys::ns_output(&srv_ns.name, &format!("ip -o addr show dev {vs}"))?;
    if !addrs.trim().is_empty() {
        return Err(io::Error::other(format!(
            "{vs} has kernel addresses: {}",
            addrs.trim()
        )));
    }
    let mac = sys::if_mac(&srv_ns.name, &vs)?;
    Ok(RawPair {
        srv_ns,
        cli_ns,
        dev: vs,
        mac,
    })
}

/// Runs E's workloads (no idle ones) against `server` on `pair`.
fn run_raw(setup: &mut Setup, server: &dyn Server, pair: &RawPair, p: &Params) {
    run_workloads(
        setup,
        server,
        &pair.cli_ns,
        &[&pair.cli_ns, &pair.srv_ns],
        1.0,
        p,
        None,
        Scope::NoIdle,
    );
}

/// E: smoltcp on `smoltcp::phy::RawSocket`, then our stack on
/// `tcp_async::device::RawDevice` (if built), each on a veth pair of its
/// own, driven by the kernel client. IPv4 only.
fn setup_e(p: &Params) -> (Setup, Setup) {
    let smol_label = match smol::raw_rcvbuf() {
        None => "E: kernel client<->smoltcp 0.14 on its RawSocket (AF_PACKET) over veth",
        Some(_) => "E: kernel client<->smoltcp 0.14 on its RawSocket (AF_PACKET) over veth, receive buffer forced (UBN_RAW_RCVBUF)",
    };
    let mut smol = Setup::new("E_smoltcp_raw", smol_label);
    let mut ours = Setup::new(
        "E_ours_raw",
        "E: kernel client<->our stack (tcp_async) on RawDevice (AF_PACKET) over veth",
    );
    let p = Params {
        ipv6: Ipv6Mode::Off,
        ..*p
    };
    let r = raw_pair("es", false).and_then(|pair| {
        let server =
            smol::SmolServer::start_raw(pair.srv_ns.clone(), &pair.dev, pair.mac, E_SERVER, 5001)?;
        Ok((pair, server))
    });
    match r {
        Ok((pair, server)) => {
            run_raw(&mut smol, &server, &pair, &p);
            let looped = server.looped_frames();
            if looped > 0 {
                eprintln!("   warning: smoltcp's raw socket received {looped} frames with its own source MAC");
            }
            let mut m = Metrics::new();
            m.insert("own_frames_received_total", looped as f64);
            smol.results.push(("raw_socket", Outcome::Ok(m)));
            drop(server);
            drop(pair);
        }
        Err(e) => smol.fail_all(&format!("setup failed: {e}")),
    }

    {
        // Our device takes offloaded frames (virtio-net headers: partial
        // checksums, TSO super-packets), so the client end keeps its
        // offloads, as a kernel peer would.
        let r = raw_pair("eo", true).and_then(|pair| {
            let server = ours::start_raw(pair.srv_ns.clone(), &pair.dev, pair.mac, E_SERVER, 5001)?;
            Ok((pair, server))
        });
        match r {
            Ok((pair, server)) => {
                run_raw(&mut ours, &server, &pair, &p);
                drop(server);
                drop(pair);
            }
            Err(e) => ours.fail_all(&format!("setup failed: {e}")),
        }
    }
    (smol, ours)
}

// ---------------------------------------------------------------- report

struct Row {
    workload: &'static str,
    metric: &'static str,
    label: &'static str,
    higher_is_better: bool,
}

const ROWS: &[Row] = &[
    Row {
        workload: "bulk_up",
        metric: "gbit_per_s",
        label: "bulk kernel->stack Gbit/s",
        higher_is_better: true,
    },
    Row {
        workload: "bulk_up",
        metric: "server_cpu_s_per_gb",
        label: "  server CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_up",
        metric: "process_cpu_s_per_gb",
        label: "  both ends CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_up",
        metric: "retrans_server",
        label: "  retransmits (server)",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_up",
        metric: "retrans_kernel",
        label: "  retransmits (kernel)",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_up",
        metric: "device_tx_drops",
        label: "  kernel TX drops on veth/TUN",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "gbit_per_s",
        label: "bulk stack->kernel Gbit/s",
        higher_is_better: true,
    },
    Row {
        workload: "bulk_down",
        metric: "server_cpu_s_per_gb",
        label: "  server CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "process_cpu_s_per_gb",
        label: "  both ends CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "retrans_server",
        label: "  retransmits (server)",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "retrans_kernel",
        label: "  retransmits (kernel)",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "device_tx_drops",
        label: "  kernel TX drops on veth/TUN",
        higher_is_better: false,
    },
    Row {
        workload: "rr_same_cpu",
        metric: "transactions_per_s",
        label: "64B RR same CPU tx/s",
        higher_is_better: true,
    },
    Row {
        workload: "rr_same_cpu",
        metric: "p50_us",
        label: "  p50 us",
        higher_is_better: false,
    },
    Row {
        workload: "rr_same_cpu",
        metric: "p99_us",
        label: "  p99 us",
        higher_is_better: false,
    },
    Row {
        workload: "rr_cross_cpu",
        metric: "transactions_per_s",
        label: "64B RR cross CPU tx/s",
        higher_is_better: true,
    },
    Row {
        workload: "rr_cross_cpu",
        metric: "p50_us",
        label: "  p50 us",
        higher_is_better: false,
    },
    Row {
        workload: "rr_cross_cpu",
        metric: "p99_us",
        label: "  p99 us",
        higher_is_better: false,
    },
    Row {
        workload: "cps_same_cpu",
        metric: "connections_per_s",
        label: "conn/s same CPU",
        higher_is_better: true,
    },
    Row {
        workload: "cps_cross_cpu",
        metric: "connections_per_s",
        label: "conn/s cross CPU",
        higher_is_better: true,
    },
    Row {
        workload: "idle",
        metric: "connections",
        label: "idle connections held",
        higher_is_better: true,
    },
    Row {
        workload: "idle",
        metric: "server_bytes_per_conn",
        label: "  server bytes/conn",
        higher_is_better: false,
    },
    Row {
        workload: "idle",
        metric: "rss_bytes_per_conn",
        label: "  process RSS bytes/conn",
        higher_is_better: false,
    },
    Row {
        workload: "idle",
        metric: "kernel_slab_bytes_per_conn_all_kernel_ends",
        label: "  kernel slab bytes/conn",
        higher_is_better: false,
    },
    Row {
        workload: "idle_after_traffic",
        metric: "server_bytes_per_conn",
        label: "  after traffic: server B/conn",
        higher_is_better: false,
    },
    Row {
        workload: "idle_after_traffic",
        metric: "kernel_slab_bytes_per_conn_all_kernel_ends",
        label: "  after traffic: slab B/conn",
        higher_is_better: false,
    },
];

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn cell(s: &Setup, r: &Row, notes: &mut Vec<String>) -> String {
    match s.get(r.workload) {
        Some(Outcome::Ok(m)) => m.get(r.metric).map_or("n/a".into(), |v| fmt_num(*v)),
        Some(Outcome::Err(e)) => {
            let note = format!("{} / {}: {e}", s.key, r.workload);
            let idx = notes.iter().position(|n| *n == note).unwrap_or_else(|| {
                notes.push(note);
                notes.len() - 1
            });
            format!("FAIL[{}]", idx + 1)
        }
        None => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// One line of a fixed-width text table: the first column left-aligned
/// in its width, the others right-aligned, trailing spaces trimmed.
fn table_line(widths: &[usize], cols: &[String]) -> String {
    let mut l = String::new();
    for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
        if i == 0 {
            let _ = write!(l, "{c:<w$}");
        } else {
            let _ = write!(l, " {c:>w$}");
        }
    }
    l.trim_end().to_string() + "\n"
}

fn table(main: &[&Setup], d: &[&Setup]) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let mut out = String::new();
    let (a_on, a_off, b, c) = (main[0], main[1], main[2], main[3]);
    let headers = [
        "metric",
        "A kernel veth offl.on",
        "A kernel veth offl.off",
        "B ours TUN",
        "C smoltcp TUN",
        "B/A(off)",
        "B/C",
    ];
    let widths = [27, 22, 23, 14, 14, 9, 9];
    let line = |cols: &[String]| table_line(&widths, cols);
    out += &line(&headers.map(String::from));
    out += &line(&widths.map(|w| "-".repeat(w)));
    for r in ROWS {
        let fr = |x: Option<f64>| x.map_or("".into(), |v| format!("{v:.2}x"));
        let bm = b.metric(r.workload, r.metric);
        out += &line(&[
            r.label.to_string(),
            cell(a_on, r, &mut notes),
            cell(a_off, r, &mut notes),
            cell(b, r, &mut notes),
            cell(c, r, &mut notes),
            fr(ratio(bm, a_off.metric(r.workload, r.metric))),
            fr(ratio(bm, c.metric(r.workload, r.metric))),
        ]);
    }
    out += "\n";
    let dh = ["metric", "D ours mem pair", "D kernel lo", "ours/lo"];
    let dw = [27, 16, 12, 9];
    let dline = |cols: &[String]| table_line(&dw, cols);
    out += &dline(&dh.map(String::from));
    out += &dline(&dw.map(|w| "-".repeat(w)));
    for r in ROWS.iter().filter(|r| {
        matches!(
            r.workload,
            "bulk_up" | "bulk_down" | "rr_same_cpu" | "rr_cross_cpu"
        ) && !r.metric.starts_with("retrans")
            && r.metric != "device_tx_drops"
    }) {
        let m = d[0].metric(r.workload, r.metric);
        let l = d[1].metric(r.workload, r.metric);
        let label = r
            .label
            .replace("kernel->stack", "client->server")
            .replace("stack->kernel", "server->client");
        out += &dline(&[
            label,
            cell(d[0], r, &mut notes),
            cell(d[1], r, &mut notes),
            ratio(m, l).map_or("".into(), |v| format!("{v:.2}x")),
        ]);
    }
    for s in main.iter().chain(d) {
        if let Some(Outcome::Err(e)) = s.get("cps_failure") {
            notes.push(format!("{} early stop: {e}", s.key));
        }
    }
    (out, notes)
}

/// The IPv6 rows: for each setup measured over both families, its IPv4
/// and IPv6 figures of the [`CORE`] workloads and their ratio.
fn family_table(pairs: &[(&str, &Measured)], notes: &mut Vec<String>) -> String {
    let mut out = String::new();
    let widths = [31, 10, 10, 8];
    let line = |cols: &[String]| table_line(&widths, cols);
    out += &line(&["metric", "IPv4", "IPv6", "IPv6/IPv4"].map(String::from));
    out += &line(&widths.map(|w| "-".repeat(w)));
    for (name, m) in pairs {
        // Setups left out by UBN_ONLY are left out here too.
        if matches!(m.v4.get("bulk_up"), Some(Outcome::Err(e)) if e.starts_with("skipped")) {
            continue;
        }
        out += &line(&[name.to_string()]);
        for r in FAMILY_ROWS {
            let v4 = m.v4.metric(r.workload, r.metric);
            let v6 = m.v6.metric(r.workload, r.metric);
            out += &line(&[
                format!("  {}", r.label.trim_start()),
                cell(&m.v4, r, notes),
                cell(&m.v6, r, notes),
                ratio(v6, v4).map_or("".into(), |v| format!("{v:.3}")),
            ]);
        }
    }
    out
}

/// The rows of [`family_table`]: throughput, CPU and latency.
const FAMILY_ROWS: &[Row] = &[
    Row {
        workload: "bulk_up",
        metric: "gbit_per_s",
        label: "bulk kernel->stack Gbit/s",
        higher_is_better: true,
    },
    Row {
        workload: "bulk_up",
        metric: "process_cpu_s_per_gb",
        label: "  both ends CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "gbit_per_s",
        label: "bulk stack->kernel Gbit/s",
        higher_is_better: true,
    },
    Row {
        workload: "bulk_down",
        metric: "process_cpu_s_per_gb",
        label: "  both ends CPU s/GB",
        higher_is_better: false,
    },
    Row {
        workload: "rr_same_cpu",
        metric: "transactions_per_s",
        label: "64B RR same CPU tx/s",
        higher_is_better: true,
    },
    Row {
        workload: "rr_same_cpu",
        metric: "p99_us",
        label: "  p99 us",
        higher_is_better: false,
    },
    Row {
        workload: "rr_cross_cpu",
        metric: "transactions_per_s",
        label: "64B RR cross CPU tx/s",
        higher_is_better: true,
    },
    Row {
        workload: "rr_cross_cpu",
        metric: "p99_us",
        label: "  p99 us",
        higher_is_better: false,
    },
];

/// A row of E's table only: frames the server's AF_PACKET socket dropped.
const RAW_DROP_ROWS: &[Row] = &[
    Row {
        workload: "bulk_up",
        metric: "server_rx_drops",
        label: "  AF_PACKET drops (server)",
        higher_is_better: false,
    },
    Row {
        workload: "bulk_down",
        metric: "server_rx_drops",
        label: "  AF_PACKET drops (server)",
        higher_is_better: false,
    },
];

/// The rows of [`raw_table`]: [`ROWS`] without the idle workloads, with
/// the AF_PACKET drops after each bulk workload's device drops.
fn raw_rows() -> Vec<&'static Row> {
    let mut rows = Vec::new();
    for r in ROWS.iter().filter(|r| !r.workload.starts_with("idle")) {
        rows.push(r);
        if r.metric == "device_tx_drops" {
            rows.extend(RAW_DROP_ROWS.iter().filter(|d| d.workload == r.workload));
        }
    }
    rows
}

/// The ratios of E: (JSON key suffix, numerator, denominator).
fn raw_ratio_pairs<'a>(
    a_on: &'a Setup,
    smol: &'a Setup,
    ours: &'a Setup,
) -> [(&'static str, &'a Setup, &'a Setup); 3] {
    [
        ("smoltcp_raw_vs_kernel_veth_offload_on", smol, a_on),
        ("ours_raw_vs_kernel_veth_offload_on", ours, a_on),
        ("ours_raw_vs_smoltcp_raw", ours, smol),
    ]
}

/// E's table: the kernel over veth with offloads on (A, same run),
/// smoltcp and our stack on AF_PACKET, and their ratios.
fn raw_table(a_on: &Setup, smol: &Setup, ours: &Setup, notes: &mut Vec<String>) -> String {
    let mut out = String::new();
    let headers = [
        "metric",
        "A kernel veth offl.on",
        "E smoltcp raw",
        "E ours raw",
        "smol/A",
        "ours/A",
        "ours/smol",
    ];
    let widths = [27, 22, 14, 12, 8, 8, 9];
    let line = |cols: &[String]| table_line(&widths, cols);
    out += &line(&headers.map(String::from));
    out += &line(&widths.map(|w| "-".repeat(w)));
    let pairs = raw_ratio_pairs(a_on, smol, ours);
    for r in raw_rows() {
        let fr = |(_, x, y): &(&str, &Setup, &Setup)| {
            ratio(
                x.metric(r.workload, r.metric),
                y.metric(r.workload, r.metric),
            )
            .map_or("".into(), |v| format!("{v:.2}x"))
        };
        // Ratios of counts of drops or retransmissions say little.
        let counted = r.metric.starts_with("retrans") || r.metric.ends_with("drops");
        let ratios = if counted {
            [String::new(), String::new(), String::new()]
        } else {
            pairs.each_ref().map(fr)
        };
        let [r1, r2, r3] = ratios;
        out += &line(&[
            r.label.to_string(),
            cell(a_on, r, notes),
            cell(smol, r, notes),
            cell(ours, r, notes),
            r1,
            r2,
            r3,
        ]);
    }
    for s in [a_on, smol, ours] {
        if let Some(Outcome::Err(e)) = s.get("cps_failure") {
            notes.push(format!("{} early stop: {e}", s.key));
        }
    }
    if let Some(n) = smol.metric("raw_socket", "own_frames_received_total") {
        if n > 0.0 {
            notes.push(format!(
                "E_smoltcp_raw: its raw socket received {n} frames with its own source MAC"
            ));
        }
    }
    out
}

/// E's ratios for the JSON, e.g.
/// "bulk_up.gbit_per_s.ours_raw_vs_smoltcp_raw".
fn raw_ratios(a_on: &Setup, smol: &Setup, ours: &Setup) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for r in raw_rows() {
        if r.metric.starts_with("retrans") || r.metric.ends_with("drops") {
            continue;
        }
        for (name, x, y) in raw_ratio_pairs(a_on, smol, ours) {
            let q = ratio(
                x.metric(r.workload, r.metric),
                y.metric(r.workload, r.metric),
            );
            if let Some(q) = q {
                v.push((format!("{}.{}.{name}", r.workload, r.metric), q));
            }
        }
    }
    v
}

// ---------------------------------------------------------------- JSON

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            '\n' => o += "\\n",
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o + "\""
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json(
    setups: &[&Setup],
    fam: &[(&str, &Measured)],
    p: &Params,
    cpu: &str,
    kernel: &str,
    notes: &[String],
    raw: &[(String, f64)],
) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(
        o,
        "  \"machine\": {{\"cpu\": {}, \"kernel\": {}, \"cpus\": {}}},",
        json_str(cpu),
        json_str(kernel),
        sys::cpus()
    );
    let _ = writeln!(
        o,
        "  \"params\": {{\"seconds_per_measurement\": {}, \"idle_connections\": {}, \"mtu\": 1500, \"our_buffers\": {}, \"smoltcp_buffers\": {}, \"smoltcp_version\": \"0.14\"}},",
        p.dur.as_secs_f64(),
        p.idle,
        ours::BUFFER,
        smol::BUFFER
    );
    o += "  \"setups\": {\n";
    for (i, s) in setups.iter().enumerate() {
        let _ = write!(
            o,
            "    {}: {{\"label\": {}",
            json_str(s.key),
            json_str(s.label)
        );
        for (w, out) in &s.results {
            let _ = write!(o, ", {}: ", json_str(w));
            match out {
                Outcome::Ok(m) => {
                    let parts: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{}: {}", json_str(k), json_num(*v)))
                        .collect();
                    let _ = write!(o, "{{{}}}", parts.join(", "));
                }
                Outcome::Err(e) => {
                    let _ = write!(o, "{{\"error\": {}}}", json_str(e));
                }
            }
        }
        o += if i + 1 < setups.len() { "},\n" } else { "}\n" };
    }
    o += "  },\n  \"ratios\": {";
    let (a_off, b, c) = (setups[1], setups[2], setups[3]);
    let mut parts = Vec::new();
    for r in ROWS {
        let bm = b.metric(r.workload, r.metric);
        for (other, name) in [
            (a_off, "vs_kernel_offload_off"),
            (c, "vs_smoltcp"),
            (setups[0], "vs_kernel_offload_on"),
        ] {
            if let Some(v) = ratio(bm, other.metric(r.workload, r.metric)) {
                parts.push(format!(
                    "\n    {}: {}",
                    json_str(&format!("{}.{}.{}", r.workload, r.metric, name)),
                    json_num(v)
                ));
            }
        }
        let _ = r.higher_is_better;
    }
    o += &parts.join(",");
    // IPv6 over IPv4 of the same setup, e.g. "B_ours_tun.bulk_up.gbit_per_s".
    o += "\n  },\n  \"ipv6_over_ipv4\": {";
    let mut parts = Vec::new();
    for (_, m) in fam {
        for r in FAMILY_ROWS {
            let v = ratio(
                m.v6.metric(r.workload, r.metric),
                m.v4.metric(r.workload, r.metric),
            );
            if let Some(v) = v {
                parts.push(format!(
                    "\n    {}: {}",
                    json_str(&format!("{}.{}.{}", m.v4.key, r.workload, r.metric)),
                    json_num(v)
                ));
            }
        }
    }
    o += &parts.join(",");
    // E: smoltcp and ours on AF_PACKET against A (offloads on) and each other.
    o += "\n  },\n  \"raw_ratios\": {";
    let parts: Vec<String> = raw
        .iter()
        .map(|(k, v)| format!("\n    {}: {}", json_str(k), json_num(*v)))
        .collect();
    o += &parts.join(",");
    o += "\n  },\n  \"notes\": [";
    o += &notes
        .iter()
        .map(|n| json_str(n))
        .collect::<Vec<_>>()
        .join(", ");
    o += "]\n}\n";
    o
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` and friends: nothing to list.
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("compare: must run as root (network namespaces, veth, TUN); nothing measured");
        std::process::exit(1);
    }
    sys::remove_stale_namespaces();
    let nofile = sys::raise_nofile();
    // A fixed mmap threshold: glibc's dynamic one rises after the first large
    // free, after which 1 MiB socket buffers come from the heap, zeroed, and
    // fully resident; the idle-memory figures would then depend on what ran
    // before. With the threshold fixed they count the pages really touched.
    // SAFETY: mallopt only changes allocator tuning.
    // UBN_DYNAMIC_MMAP=1 keeps glibc's default to show the difference.
    if std::env::var("UBN_DYNAMIC_MMAP").map_or(true, |v| v != "1") {
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cpus = sys::cpus();
    let raw = RawMode::from_env();
    let p = Params {
        dur: Duration::from_secs(env("UBN_SECS", 3)),
        idle: env("UBN_IDLE", 10_000) as usize,
        idle_kernel_pair: (env("UBN_IDLE", 10_000) as usize)
            .min((nofile.saturating_sub(300) / 2) as usize),
        client_cpu: 0,
        other_cpu: 1 % cpus,
        // UBN_RAW=only: E is IPv4 only, so is its baseline.
        ipv6: if raw == RawMode::Only {
            Ipv6Mode::Off
        } else {
            Ipv6Mode::from_env()
        },
    };
    // Watchdog: whatever happens, the run ends and the namespaces go.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(30 * 60));
        eprintln!("compare: watchdog fired after 30 min; cleaning up");
        sys::remove_own_namespaces();
        std::process::exit(3);
    });
    let (cpu, kernel) = sys::machine();
    let load_before = loadavg();
    eprintln!(
        "compare: {cpu}, Linux {kernel}, {cpus} CPUs, {} s per measurement",
        p.dur.as_secs()
    );

    // UBN_ONLY=A,B,C,D,E runs a subset (the others are marked skipped);
    // UBN_RAW=only means A (its offloads-on half) and E.
    let only = match raw {
        RawMode::Only => "A,E".to_string(),
        _ => std::env::var("UBN_ONLY").unwrap_or_else(|_| "A,B,C,D,E".into()),
    };
    let why_skipped = if raw == RawMode::Only {
        "skipped (UBN_RAW=only)"
    } else {
        "skipped (UBN_ONLY)"
    };
    let want = |k: &str| only.split(',').any(|x| x.trim().eq_ignore_ascii_case(k));
    let skipped = |key, label| {
        let mut s = Setup::new(key, label);
        s.fail_all(why_skipped);
        s
    };
    let skipped_pair = |key, key6, label| Measured {
        v4: skipped(key, label),
        v6: skipped(key6, label),
    };
    let (a_on, a_off) = if want("A") {
        setup_a(&p, raw == RawMode::Only)
    } else {
        (
            skipped_pair(
                "A_kernel_veth_offload_on",
                "A_kernel_veth_offload_on_ipv6",
                "A",
            ),
            skipped_pair(
                "A_kernel_veth_offload_off",
                "A_kernel_veth_offload_off_ipv6",
                "A",
            ),
        )
    };
    let b = if want("B") {
        setup_b(&p)
    } else {
        skipped_pair("B_ours_tun", "B_ours_tun_ipv6", "B")
    };
    // smoltcp has no IPv6 rows, so the IPv6-only mode leaves it out.
    let c = if want("C") && p.ipv6 != Ipv6Mode::Only {
        setup_c(&p)
    } else {
        skipped("C_smoltcp_tun", "C")
    };
    let (d_mem, d_lo) = if want("D") {
        setup_d(&p)
    } else {
        (
            skipped_pair("D_ours_memory_pair", "D_ours_memory_pair_ipv6", "D"),
            skipped_pair("D_kernel_loopback", "D_kernel_loopback_ipv6", "D"),
        )
    };
    // E is IPv4 only, like smoltcp: not in the IPv6-only mode.
    let run_e = raw != RawMode::Off && want("E") && p.ipv6 != Ipv6Mode::Only;
    let (e_smol, e_ours) = if run_e {
        setup_e(&p)
    } else {
        let why = match raw {
            RawMode::Off => "skipped (UBN_RAW=0)",
            _ if p.ipv6 == Ipv6Mode::Only => "skipped (UBN_IPV6=only)",
            _ => "skipped (UBN_ONLY)",
        };
        let mut s = Setup::new("E_smoltcp_raw", "E");
        let mut o = Setup::new("E_ours_raw", "E");
        s.fail_all(why);
        o.fail_all(why);
        (s, o)
    };

    sys::remove_own_namespaces();

    let load_after = loadavg();

    let (tab, mut notes) = table(&[&a_on.v4, &a_off.v4, &b.v4, &c], &[&d_mem.v4, &d_lo.v4]);
    if p.ipv6 == Ipv6Mode::Only || raw == RawMode::Only {
        // The main table is not printed: neither are its notes.
        notes.clear();
    }
    let raw_tab = if run_e {
        raw_table(&a_on.v4, &e_smol, &e_ours, &mut notes)
    } else {
        String::new()
    };
    let fam: [(&str, &Measured); 5] = [
        ("A kernel veth, offloads on", &a_on),
        ("A kernel veth, offloads off", &a_off),
        (
            if ours::offload() {
                "B ours TUN, offloads"
            } else {
                "B ours TUN, no offloads"
            },
            &b,
        ),
        (
            if ours::offload() {
                "D ours memory pair, offloads"
            } else {
                "D ours memory pair, no offloads"
            },
            &d_mem,
        ),
        ("D kernel lo", &d_lo),
    ];
    let fam_tab = if p.ipv6.on() {
        family_table(&fam, &mut notes)
    } else {
        String::new()
    };
    println!();
    println!("Machine: {cpu}, {cpus} vCPU, Linux {kernel}; MTU 1500; {} s per measurement; ratios = ours / other", p.dur.as_secs());
    println!();
    println!("Load average (1 min) before/after: {load_before} / {load_after} (other work on the machine skews every figure)");
    println!();
    if p.ipv6 != Ipv6Mode::Only && raw != RawMode::Only {
        print!("{tab}");
    }
    if run_e {
        if raw != RawMode::Only {
            println!();
        }
        println!("E: link layer (AF_PACKET on a veth end, UBN_RAW); smoltcp's kernel client end without TX checksum offload and TSO (its reader takes no virtio-net headers), ours' with every offload; ratios against A with offloads on, measured in this run:");
        println!();
        print!("{raw_tab}");
    }
    if p.ipv6.on() {
        if p.ipv6 != Ipv6Mode::Only {
            println!();
        }
        println!("IPv6 rows (UBN_IPV6), each setup's workloads run over both families, interleaved; smoltcp is IPv4 only:");
        println!();
        print!("{fam_tab}");
    }
    if !notes.is_empty() {
        println!();
        for (i, n) in notes.iter().enumerate() {
            println!("[{}] {n}", i + 1);
        }
    }
    let path = std::env::var("UBN_JSON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-compare.json").to_string()
    });
    let all = [
        &a_on.v4, &a_off.v4, &b.v4, &c, &d_mem.v4, &d_lo.v4, &a_on.v6, &a_off.v6, &b.v6, &d_mem.v6,
        &d_lo.v6, &e_smol, &e_ours,
    ];
    if let Some(dir) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    notes.push(format!(
        "load average (1 min) before/after: {load_before} / {load_after}"
    ));
    match std::fs::write(
        &path,
        json(
            &all,
            &fam,
            &p,
            &cpu,
            &kernel,
            &notes,
            &raw_ratios(&a_on.v4, &e_smol, &e_ours),
        ),
    ) {
        Ok(()) => println!("\nJSON: {path}"),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}
