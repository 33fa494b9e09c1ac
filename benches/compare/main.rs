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
//!
//! Every TUN/veth lives in a namespace named `ubn<pid>*`, deleted at the
//! end (and by the next run if this one was killed). Environment:
//! `UBN_SECS` (seconds per measurement, default 3), `UBN_IDLE` (idle
//! connections, default 10000), `UBN_JSON` (output path, default
//! `target/bench-compare.json` under the workspace), `UBN_OFFLOAD=0` (B:
//! our TUN without checksum/TSO offloads, D: our memory pair without
//! super-packets; default on).

mod client;
mod kserver;
mod ours;
mod smol;
mod sys;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
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
}

fn probe(server: &dyn Server, knss: &[&Netns]) -> Probe {
    Probe {
        t: Instant::now(),
        server_cpu: server.cpu(),
        proc_cpu: sys::process_cpu(),
        k_retrans: knss.iter().map(|n| n.retrans_segs()).sum::<Option<u64>>(),
        dev_drops: knss.iter().map(|n| n.dev_tx_drops()).sum::<Option<u64>>(),
        s_retrans: server.retrans(),
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

/// Runs every workload against `server`; `knss` are the namespaces whose
/// kernel retransmissions count (the client's, and the server's for A).
fn run_workloads(
    setup: &mut Setup,
    server: &dyn Server,
    client_ns: &Arc<Netns>,
    knss: &[&Netns],
    kernel_ends: f64,
    p: &Params,
) {
    let addr = server.addr();
    let limit = p.dur + Duration::from_secs(30);
    let settle = || std::thread::sleep(Duration::from_millis(300));
    eprintln!("== {}", setup.label);
    // Idle connections first, and again after all the traffic. smoltcp
    // only after: its SocketSet keeps a slot for every socket ever added,
    // so 10,000 idle sockets first would slow down all its other workloads.
    let smoltcp = setup.key.starts_with("C_");
    if !smoltcp {
        idle_run(setup, "idle", server, client_ns, kernel_ends, p);
    }

    for up in [true, false] {
        let name = if up { "bulk_up" } else { "bulk_down" };
        server.pin(p.other_cpu);
        settle();
        let a = probe(server, knss);
        let dur = p.dur;
        let r = on_client(client_ns, p.client_cpu, limit, move || {
            if up {
                client::bulk_up(addr, dur)
            } else {
                client::bulk_down(addr, dur)
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let b = probe(server, knss);
        let out = match r {
            Ok(bulk) => {
                let mut m = Metrics::new();
                m.insert("gbit_per_s", bulk.gbps());
                m.insert("bytes", bulk.bytes as f64);
                delta_metrics(&mut m, &a, &b, Some(bulk.bytes));
                Outcome::Ok(m)
            }
            Err(e) => Outcome::Err(e),
        };
        report_line(name, &out);
        setup.results.push((name, out));
    }

    for (name, same) in [("rr_same_cpu", true), ("rr_cross_cpu", false)] {
        server.pin(if same { p.client_cpu } else { p.other_cpu });
        settle();
        let a = probe(server, knss);
        let dur = p.dur;
        let r = on_client(client_ns, p.client_cpu, limit, move || {
            client::rr(addr, dur)
        });
        let b = probe(server, knss);
        let out = match r {
            Ok(rr) => {
                let mut m = Metrics::new();
                m.insert("transactions_per_s", rr.count as f64 / rr.secs);
                m.insert("p50_us", rr.p50_us);
                m.insert("p99_us", rr.p99_us);
                delta_metrics(&mut m, &a, &b, None);
                Outcome::Ok(m)
            }
            Err(e) => Outcome::Err(e),
        };
        report_line(name, &out);
        setup.results.push((name, out));
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

/// A: kernel <-> kernel over veth, offloads on then off.
fn setup_a(p: &Params) -> (Setup, Setup) {
    let mut on = Setup::new(
        "A_kernel_veth_offload_on",
        "A: kernel<->kernel veth, GSO/GRO/TSO on",
    );
    let mut off = Setup::new(
        "A_kernel_veth_offload_off",
        "A: kernel<->kernel veth, GSO/GRO/TSO off",
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
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 99, 1, 1), 5001)),
        )?;
        Ok((srv_ns, cli_ns, va, vb, server))
    })();
    let (srv_ns, cli_ns, va, vb, server) = match r {
        Ok(v) => v,
        Err(e) => {
            let why = format!("setup failed: {e}");
            on.fail_all(&why);
            off.fail_all(&why);
            return (on, off);
        }
    };
    for (setup, state) in [(&mut on, "on"), (&mut off, "off")] {
        let cmd = |ns: &str, dev: &str| {
            sys::ns_sh(
                ns,
                &format!("ethtool -K {dev} gso {state} gro {state} tso {state}"),
            )
        };
        if let Err(e) = cmd(&srv_ns.name, &va).and_then(|()| cmd(&cli_ns.name, &vb)) {
            setup.fail_all(&format!(
                "cannot switch offloads {state}: {e} (install ethtool)"
            ));
            continue;
        }
        run_workloads(setup, &server, &cli_ns, &[&srv_ns, &cli_ns], 2.0, p);
    }
    (on, off)
}

/// B: kernel client <-> our stack over TUN.
fn setup_b(p: &Params) -> Setup {
    let label = if ours::offload() {
        "B: kernel client<->our stack (tcp_async) over TUN, offloads (TSO, checksum)"
    } else {
        "B: kernel client<->our stack (tcp_async) over TUN, no offloads (UBN_OFFLOAD=0)"
    };
    let mut s = Setup::new("B_ours_tun", label);
    let r = (|| -> io::Result<_> {
        let ns = Arc::new(Netns::create("t")?);
        let name = ns.name.clone();
        let kernel = Ipv4Addr::new(10, 99, 2, 1);
        let ours_ip = Ipv4Addr::new(10, 99, 2, 2);
        let st = ours::StackThread::start(
            "ours-tun",
            Some(ns.clone()),
            ours::config(ours_ip, 7),
            move || {
                tcp_async::device::tun::TunDevice::new(ours::open_tun(
                    &name,
                    kernel,
                    ours::offload(),
                )?)
            },
        )?;
        let server = ours::OursServer::start(st, SocketAddrV4::new(ours_ip, 5001))?;
        Ok((ns, server))
    })();
    match r {
        Ok((ns, server)) => {
            run_workloads(&mut s, &server, &ns, &[&ns], 1.0, p);
            drop(server);
            drop(ns);
        }
        Err(e) => s.fail_all(&format!("setup failed: {e}")),
    }
    s
}

/// C: kernel client <-> smoltcp over TUN.
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
            run_workloads(&mut s, &server, &ns, &[&ns], 1.0, &p2);
            drop(server);
            drop(ns);
        }
        Err(e) => s.fail_all(&format!("setup failed: {e}")),
    }
    s
}

/// D: in-memory pair of our stacks, and kernel loopback.
fn setup_d(p: &Params) -> (Setup, Setup) {
    let mut mem = Setup::new(
        "D_ours_memory_pair",
        if ours::offload() {
            "D: our stack<->our stack over MemoryDevice, offloads (super-packets whole, as lo's GSO)"
        } else {
            "D: our stack<->our stack over MemoryDevice, no offloads (UBN_OFFLOAD=0)"
        },
    );
    let mut lo = Setup::new("D_kernel_loopback", "D: kernel loopback (lo, MTU 65536)");
    eprintln!("== {}", mem.label);
    let r = (|| -> io::Result<_> {
        let (da, db) = if ours::offload() {
            tcp_async::device::MemoryDevice::pair_with_offloads(1500)
        } else {
            tcp_async::device::MemoryDevice::pair(1500)
        };
        let sa = Ipv4Addr::new(10, 0, 0, 1);
        let srv =
            ours::StackThread::start("ours-mem-srv", None, ours::config(sa, 1), move || Ok(da))?;
        let cli = ours::StackThread::start(
            "ours-mem-cli",
            None,
            ours::config(Ipv4Addr::new(10, 0, 0, 2), 2),
            move || Ok(db),
        )?;
        let server = ours::OursServer::start(srv, SocketAddrV4::new(sa, 5001))?;
        Ok((server, cli))
    })();
    match r {
        Ok((server, cli)) => {
            let _ = sys::pin(cli.tid, p.client_cpu);
            server.pin(p.other_cpu);
            let addr = server.addr();
            for up in [true, false] {
                let name = if up { "bulk_up" } else { "bulk_down" };
                std::thread::sleep(Duration::from_millis(200));
                let a = probe(&server, &[]);
                let c0 = sys::task_cpu(cli.tid);
                let stack = cli.stack.clone();
                let r = cli.run(
                    p.dur + Duration::from_secs(30),
                    ours::async_bulk(stack, addr, up, p.dur),
                );
                std::thread::sleep(Duration::from_millis(100));
                let b = probe(&server, &[]);
                let c1 = sys::task_cpu(cli.tid);
                let out = match r {
                    Some(Ok(bulk)) => {
                        let mut m = Metrics::new();
                        m.insert("gbit_per_s", bulk.gbps());
                        m.insert("bytes", bulk.bytes as f64);
                        delta_metrics(&mut m, &a, &b, Some(bulk.bytes));
                        if let (Some(x), Some(y)) = (c0, c1) {
                            m.insert("client_cpu_s", y.saturating_sub(x).as_secs_f64());
                        }
                        Outcome::Ok(m)
                    }
                    Some(Err(e)) => Outcome::Err(e.to_string()),
                    None => Outcome::Err("hang: no result within the time limit".into()),
                };
                report_line(name, &out);
                mem.results.push((name, out));
            }
            for (name, same) in [("rr_same_cpu", true), ("rr_cross_cpu", false)] {
                server.pin(if same { p.client_cpu } else { p.other_cpu });
                std::thread::sleep(Duration::from_millis(200));
                let stack = cli.stack.clone();
                let r = cli.run(
                    p.dur + Duration::from_secs(30),
                    ours::async_rr(stack, addr, p.dur),
                );
                let out = match r {
                    Some(Ok(rr)) => {
                        let mut m = Metrics::new();
                        m.insert("transactions_per_s", rr.count as f64 / rr.secs);
                        m.insert("p50_us", rr.p50_us);
                        m.insert("p99_us", rr.p99_us);
                        Outcome::Ok(m)
                    }
                    Some(Err(e)) => Outcome::Err(e.to_string()),
                    None => Outcome::Err("hang: no result within the time limit".into()),
                };
                report_line(name, &out);
                mem.results.push((name, out));
            }
            let stats = server.retrans();
            if let Some(r) = stats {
                let mut m = Metrics::new();
                m.insert("server_retransmits_total", r as f64);
                mem.results.push(("retransmits", Outcome::Ok(m)));
            }
        }
        Err(e) => mem.fail_all(&format!("setup failed: {e}")),
    }

    eprintln!("== {}", lo.label);
    let r = (|| -> io::Result<_> {
        let ns = Arc::new(Netns::create("l")?);
        let server = kserver::KernelServer::start(
            ns.clone(),
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001)),
        )?;
        Ok((ns, server))
    })();
    match r {
        Ok((ns, server)) => {
            for up in [true, false] {
                let name = if up { "bulk_up" } else { "bulk_down" };
                server.pin(p.other_cpu);
                std::thread::sleep(Duration::from_millis(200));
                let a = probe(&server, &[&ns]);
                let (addr, dur) = (server.addr(), p.dur);
                let r = on_client(
                    &ns,
                    p.client_cpu,
                    dur + Duration::from_secs(30),
                    move || {
                        if up {
                            client::bulk_up(addr, dur)
                        } else {
                            client::bulk_down(addr, dur)
                        }
                    },
                );
                std::thread::sleep(Duration::from_millis(100));
                let b = probe(&server, &[&ns]);
                let out = match r {
                    Ok(bulk) => {
                        let mut m = Metrics::new();
                        m.insert("gbit_per_s", bulk.gbps());
                        m.insert("bytes", bulk.bytes as f64);
                        delta_metrics(&mut m, &a, &b, Some(bulk.bytes));
                        Outcome::Ok(m)
                    }
                    Err(e) => Outcome::Err(e),
                };
                report_line(name, &out);
                lo.results.push((name, out));
            }
            for (name, same) in [("rr_same_cpu", true), ("rr_cross_cpu", false)] {
                server.pin(if same { p.client_cpu } else { p.other_cpu });
                std::thread::sleep(Duration::from_millis(200));
                let (addr, dur) = (server.addr(), p.dur);
                let r = on_client(
                    &ns,
                    p.client_cpu,
                    dur + Duration::from_secs(30),
                    move || client::rr(addr, dur),
                );
                let out = match r {
                    Ok(rr) => {
                        let mut m = Metrics::new();
                        m.insert("transactions_per_s", rr.count as f64 / rr.secs);
                        m.insert("p50_us", rr.p50_us);
                        m.insert("p99_us", rr.p99_us);
                        Outcome::Ok(m)
                    }
                    Err(e) => Outcome::Err(e),
                };
                report_line(name, &out);
                lo.results.push((name, out));
            }
            drop(server);
            drop(ns);
        }
        Err(e) => lo.fail_all(&format!("setup failed: {e}")),
    }
    (mem, lo)
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
    let line = |cols: &[String]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i == 0 {
                let _ = write!(l, "{:<w$}", c, w = widths[i]);
            } else {
                let _ = write!(l, " {:>w$}", c, w = widths[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
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
    let dline = |cols: &[String]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i == 0 {
                let _ = write!(l, "{:<w$}", c, w = dw[i]);
            } else {
                let _ = write!(l, " {:>w$}", c, w = dw[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
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

fn json(setups: &[&Setup], p: &Params, cpu: &str, kernel: &str, notes: &[String]) -> String {
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
    let p = Params {
        dur: Duration::from_secs(env("UBN_SECS", 3)),
        idle: env("UBN_IDLE", 10_000) as usize,
        idle_kernel_pair: (env("UBN_IDLE", 10_000) as usize)
            .min((nofile.saturating_sub(300) / 2) as usize),
        client_cpu: 0,
        other_cpu: 1 % cpus,
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

    // UBN_ONLY=A,B,C,D runs a subset (the others are marked skipped).
    let only = std::env::var("UBN_ONLY").unwrap_or_else(|_| "A,B,C,D".into());
    let want = |k: &str| only.split(',').any(|x| x.trim().eq_ignore_ascii_case(k));
    let skipped = |key, label| {
        let mut s = Setup::new(key, label);
        s.fail_all("skipped (UBN_ONLY)");
        s
    };
    let (a_on, a_off) = if want("A") {
        setup_a(&p)
    } else {
        (
            skipped("A_kernel_veth_offload_on", "A"),
            skipped("A_kernel_veth_offload_off", "A"),
        )
    };
    let b = if want("B") {
        setup_b(&p)
    } else {
        skipped("B_ours_tun", "B")
    };
    let c = if want("C") {
        setup_c(&p)
    } else {
        skipped("C_smoltcp_tun", "C")
    };
    let (d_mem, d_lo) = if want("D") {
        setup_d(&p)
    } else {
        (
            skipped("D_ours_memory_pair", "D"),
            skipped("D_kernel_loopback", "D"),
        )
    };

    sys::remove_own_namespaces();

    let load_after = loadavg();

    let (tab, notes) = table(&[&a_on, &a_off, &b, &c], &[&d_mem, &d_lo]);
    println!();
    println!("Machine: {cpu}, {cpus} vCPU, Linux {kernel}; MTU 1500; {} s per measurement; ratios = ours / other", p.dur.as_secs());
    println!();
    println!("Load average (1 min) before/after: {load_before} / {load_after} (other work on the machine skews every figure)");
    println!();
    print!("{tab}");
    if !notes.is_empty() {
        println!();
        for (i, n) in notes.iter().enumerate() {
            println!("[{}] {n}", i + 1);
        }
    }
    let path = std::env::var("UBN_JSON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-compare.json").to_string()
    });
    let all = [&a_on, &a_off, &b, &c, &d_mem, &d_lo];
    if let Some(dir) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut notes = notes;
    notes.push(format!(
        "load average (1 min) before/after: {load_before} / {load_after}"
    ));
    match std::fs::write(&path, json(&all, &p, &cpu, &kernel, &notes)) {
        Ok(()) => println!("\nJSON: {path}"),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}
