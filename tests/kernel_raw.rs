//! The stack on an Ethernet interface it owns, through an AF_PACKET socket
//! (`RawDevice`), with the Linux kernel on the other end of a veth pair:
//! echo with half-close both ways in both families, refused connections
//! both ways, ARP (RFC 826) and NDP (RFC 4861) resolution both ways,
//! off-link traffic through a kernel router via the configured gateway, and
//! a neighbour that never answers (`EHOSTUNREACH` once resolution gives up,
//! as on Linux).
//!
//! ```text
//!   root namespace (the kernel)              namespace utraw-… (ours)
//!   K: 10.210.X.1/24, fd00:210:X::1/64 ====veth==== O: no kernel address,
//!                                                   IPv6 off; the stack owns
//!                                                   it: 10.210.X.2, fd00:210:X::2
//! ```
//!
//! The stack's interface sits in a namespace of its own with no kernel
//! address and IPv6 disabled, so the kernel there never answers for our
//! addresses or ports (see the README, "Sharing an interface with the
//! kernel"). The AF_PACKET socket is opened by a thread that entered that
//! namespace; the socket keeps it.
//!
//! Needs root (CAP_NET_ADMIN) and `ip` from iproute2.

mod common;

use common::example::{args, Example, PATIENCE};
use common::netns::{ip, ip_output, Netns};
use common::{echo_conn, echo_exchange, kernel_echo_server, kernel_listener, within};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixListener;
use tcp_async::device::{Device, RawDevice};
use tcp_async::{Stack, TcpListener, TcpStream};
use tcp_stack::{Config, MacAddr, NeighbourState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 7;
/// A port nobody listens on, on either side.
const CLOSED: u16 = 9;
/// Prefix of the namespaces these tests make.
const NETNS_PREFIX: &str = "utraw-";

/// One test's link: the kernel on K (root namespace), O in a namespace of
/// its own with no kernel address, for the stack.
struct RawLink {
    /// The kernel's end of the veth pair (root namespace).
    kernel_if: String,
    /// Our end, in `ns`.
    ours_if: String,
    kernel: Ipv4Addr,
    kernel6: Ipv6Addr,
    ours: Ipv4Addr,
    ours6: Ipv6Addr,
    ns: Netns,
    _claim: UnixListener,
}

impl RawLink {
    /// The veth pair and the namespace; `None` after a visible skip.
    fn new() -> Option<RawLink> {
        if common::netns::skip("kernel_raw") {
            return None;
        }
        common::netns::remove_stale(NETNS_PREFIX);
        let n = common::next_n();
        let (octet, claim) = common::claim_subnet(n);
        let pid = std::process::id();
        let (kernel_if, ours_if) = (format!("urk{pid}x{n}"), format!("uro{pid}x{n}"));
        assert!(kernel_if.len() < 16, "interface name too long: {kernel_if}");
        let ns = Netns::new(format!("{NETNS_PREFIX}o-{pid}-{n}")).expect("our namespace");
        let (kernel, kernel6) = common::test_addrs(octet, 1);
        let (ours, ours6) = common::test_addrs(octet, 2);
        let setup = || -> io::Result<()> {
            ip(&[
                "link", "add", &kernel_if, "type", "veth", "peer", "name", &ours_if, "netns",
                &ns.name,
            ])?;
            // Our end: no kernel address of either family, so that kernel
            // never answers ARP, NDP or TCP for the stack.
            ns.sysctl(&format!("net/ipv6/conf/{ours_if}/disable_ipv6"), "1")?;
            ns.ip(&["link", "set", &ours_if, "up"])?;
            ip(&["addr", "add", &format!("{kernel}/24"), "dev", &kernel_if])?;
            ip(&[
                "addr",
                "add",
                &format!("{kernel6}/{}", common::PREFIX6),
                "dev",
                &kernel_if,
                "nodad",
            ])?;
            ip(&["link", "set", &kernel_if, "up"])
        };
        if let Err(e) = setup() {
            let _ = ip(&["link", "del", &kernel_if]);
            panic!("setting up the veth pair: {e}");
        }
        Some(RawLink {
            kernel_if,
            ours_if,
            kernel,
            kernel6,
            ours,
            ours6,
            ns,
            _claim: claim,
        })
    }

    fn ours(&self, v6: bool, port: u16) -> SocketAddr {
        let ip: IpAddr = if v6 {
            self.ours6.into()
        } else {
            self.ours.into()
        };
        SocketAddr::new(ip, port)
    }

    fn kernel(&self, v6: bool, port: u16) -> SocketAddr {
        let ip: IpAddr = if v6 {
            self.kernel6.into()
        } else {
            self.kernel.into()
        };
        SocketAddr::new(ip, port)
    }
}

impl Drop for RawLink {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes after.
        let _ = ip(&["link", "del", &self.kernel_if]);
    }
}

/// A [`RawLink`] with our stack on O.
struct RawNet {
    stack: Stack,
    our_mac: MacAddr,
    link: RawLink,
}

impl std::ops::Deref for RawNet {
    type Target = RawLink;
    fn deref(&self) -> &RawLink {
        &self.link
    }
}

/// The MAC address of interface `name` in the root namespace.
fn kernel_mac(name: &str) -> MacAddr {
    std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .unwrap_or_else(|e| panic!("MAC of {name}: {e}"))
        .trim()
        .parse()
        .expect("a MAC address")
}

/// Opens the AF_PACKET device on `ifname` inside `ns` (the socket belongs
/// to the namespace of the thread that opens it).
fn open_raw(ns: &Netns, ifname: &str) -> RawDevice {
    let rt = tokio::runtime::Handle::current();
    let ifname = ifname.to_owned();
    ns.enter(move || {
        let _guard = rt.enter();
        RawDevice::open(&ifname)
    })
    .unwrap_or_else(|e| panic!("RawDevice::open in {}: {e}", ns.name))
}

impl RawNet {
    /// The link and the stack on it; `None` after a visible skip.
    fn new() -> Option<RawNet> {
        let link = RawLink::new()?;
        let dev = open_raw(&link.ns, &link.ours_if);
        let our_mac = MacAddr(dev.mac_address().expect("a veth end has a MAC"));
        let config = Config {
            mtu: 1500,
            seed: u64::from(std::process::id()) << 16 | u64::from(link.ours.octets()[2]),
            ..Config::with_ethernet(
                our_mac,
                [(link.ours.into(), 24), (link.ours6.into(), common::PREFIX6)],
            )
        };
        let stack = Stack::builder(dev)
            .config(config)
            .build()
            .unwrap_or_else(|e| panic!("building the stack on {}: {e}", link.ours_if));
        Some(RawNet {
            stack,
            our_mac,
            link,
        })
    }
}

/// Sends a few messages one at a time and reads each back.
async fn ping_pong<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    for msg in ["hello", "over", "ethernet"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg.as_bytes());
    }
}

/// We connect to a kernel echo server we start at `at`: a few messages
/// one at a time, then `len` bytes with half-close, every byte checked.
async fn echo_through_kernel(stack: &Stack, at: SocketAddr, what: &str, len: u64) {
    let server = tokio::spawn(kernel_echo_server(kernel_listener(at)));
    let mut s = TcpStream::connect_with(stack, at)
        .await
        .unwrap_or_else(|e| panic!("{what}: our connect to {at}: {e}"));
    ping_pong(&mut s).await;
    echo_exchange(what, s, len).await;
    server.abort();
}

/// A kernel client of our echo server at `at` on `stack`, past a few
/// messages one at a time: the kernel's stream, the peer address our
/// listener reported, and our echo task.
async fn kernel_client_of_our_echo(
    stack: &Stack,
    at: SocketAddr,
) -> (
    tokio::net::TcpStream,
    SocketAddr,
    tokio::task::JoinHandle<io::Result<u64>>,
) {
    let listener = TcpListener::bind_with(stack, at)
        .await
        .unwrap_or_else(|e| panic!("bind {at} on our stack: {e}"));
    let mut k = tokio::net::TcpStream::connect(at)
        .await
        .unwrap_or_else(|e| panic!("kernel connect to our {at}: {e}"));
    let (mine, peer) = listener.accept().await.expect("accept");
    let echo = tokio::spawn(echo_conn(mine));
    ping_pong(&mut k).await;
    (k, peer, echo)
}

/// The kernel connects to our listener; echo with half-close (RFC 9293
/// 3.6: our side keeps sending after the kernel's FIN).
async fn kernel_client_echo(v6: bool) {
    let Some(net) = RawNet::new() else { return };
    within(60, "kernel client over the raw device", async {
        let (s, peer, server) = kernel_client_of_our_echo(&net.stack, net.ours(v6, PORT)).await;
        assert_eq!(peer, s.local_addr().unwrap());
        echo_exchange("kernel client, 4 MiB over AF_PACKET", s, 4 << 20).await;
        let echoed = server.await.unwrap().expect("our echo side");
        assert_eq!(echoed, (4u64 << 20) + "hellooverethernet".len() as u64);
    })
    .await;
}

/// We connect to a kernel listener; echo with half-close.
async fn our_client_echo(v6: bool) {
    let Some(net) = RawNet::new() else { return };
    let listener = kernel_listener(net.kernel(v6, PORT));
    let server = tokio::spawn(kernel_echo_server(listener));
    within(60, "our client over the raw device", async {
        let mut s = TcpStream::connect_with(&net.stack, net.kernel(v6, PORT))
            .await
            .expect("our connect to the kernel listener");
        assert_eq!(s.local_addr().unwrap().ip(), net.ours(v6, 0).ip());
        ping_pong(&mut s).await;
        echo_exchange("our client, 4 MiB over AF_PACKET", s, 4 << 20).await;
    })
    .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ipv4_kernel_client_echo_with_half_close() {
    kernel_client_echo(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ipv4_our_client_echo_with_half_close() {
    our_client_echo(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ipv6_kernel_client_echo_with_half_close() {
    kernel_client_echo(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ipv6_our_client_echo_with_half_close() {
    our_client_echo(true).await;
}

/// RFC 9293 3.10.7.1: a SYN to a closed port draws a RST, both ways, both
/// families.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_connection_refused_both_ways() {
    let Some(net) = RawNet::new() else { return };
    within(30, "refused connections over the raw device", async {
        for v6 in [false, true] {
            let err = TcpStream::connect_with(&net.stack, net.kernel(v6, CLOSED))
                .await
                .expect_err("nobody listens on the kernel's port");
            assert_eq!(
                err.kind(),
                io::ErrorKind::ConnectionRefused,
                "ours, v6={v6}"
            );
            let err = tokio::net::TcpStream::connect(net.ours(v6, CLOSED))
                .await
                .expect_err("nobody listens on our port");
            assert_eq!(
                err.kind(),
                io::ErrorKind::ConnectionRefused,
                "kernel's, v6={v6}"
            );
        }
    })
    .await;
}

/// `Tcp: OutRsts` of the kernel in `ns` (its `/proc/net/snmp`).
fn ns_tcp_out_rsts(ns: &Netns) -> u64 {
    let snmp = ns
        .enter(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
        .expect("reading the namespace's /proc/net/snmp");
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (
        tcp.next().expect("Tcp header"),
        tcp.next().expect("Tcp values"),
    );
    let i = names
        .split_whitespace()
        .position(|n| n == "OutRsts")
        .expect("OutRsts column");
    values
        .split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .expect("OutRsts value")
}

/// Coexistence: the kernel of the stack's namespace has no address on the
/// interface, so it never answers for our ports. A refused connection is
/// refused by our RST alone, and after echo both ways and refusals that
/// kernel sent no RST at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_kernel_without_address_never_answers_for_our_ports() {
    let Some(net) = RawNet::new() else { return };
    within(60, "traffic beside a kernel with no address", async {
        let (k, _, echo) = kernel_client_of_our_echo(&net.stack, net.ours(false, PORT)).await;
        drop(k);
        let _ = echo.await;
        let err = tokio::net::TcpStream::connect(net.ours(false, CLOSED))
            .await
            .expect_err("nobody listens there");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    })
    .await;
    assert_eq!(
        ns_tcp_out_rsts(&net.ns),
        0,
        "the kernel beside the stack sent RSTs for the stack's segments"
    );
}

/// The kernel's neighbour table entry for `ip` on `dev`: `(lladdr, state)`.
fn kernel_neighbour(dev: &str, ip: IpAddr) -> Option<(String, String)> {
    let out = ip_output(&["neigh", "show", &ip.to_string(), "dev", dev]).ok()?;
    let line = out.lines().next()?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mac = words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))?;
    Some((mac.to_string(), words.last()?.to_string()))
}

/// ARP (RFC 826) and NDP (RFC 4861 7.2): after a connection each way in
/// each family, the kernel has our MAC for our addresses, and our stack
/// has the kernel's MAC for its addresses, in a usable state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_arp_and_ndp_learnt_both_ways() {
    let Some(net) = RawNet::new() else { return };
    let kmac = kernel_mac(&net.kernel_if);
    within(60, "ARP and NDP both ways", async {
        for v6 in [false, true] {
            // We resolve the kernel: our connect.
            let listener = kernel_listener(net.kernel(v6, PORT));
            let server = tokio::spawn(kernel_echo_server(listener));
            let mut s = TcpStream::connect_with(&net.stack, net.kernel(v6, PORT))
                .await
                .expect("our connect");
            ping_pong(&mut s).await;
            drop(s);
            server.abort();
            // The kernel resolves us: its connect.
            let (k, _, echo) = kernel_client_of_our_echo(&net.stack, net.ours(v6, PORT)).await;
            drop(k);
            let _ = echo.await;
        }
    })
    .await;
    for ip in [IpAddr::from(net.ours), IpAddr::from(net.ours6)] {
        let (mac, state) = kernel_neighbour(&net.kernel_if, ip)
            .unwrap_or_else(|| panic!("the kernel has no neighbour entry for {ip}"));
        assert_eq!(mac, net.our_mac.to_string(), "the kernel's entry for {ip}");
        assert_ne!(state, "FAILED", "the kernel's entry for {ip}");
    }
    let ours = net.stack.neighbours().await.expect("our neighbour table");
    for ip in [IpAddr::from(net.kernel), IpAddr::from(net.kernel6)] {
        let entry = ours
            .iter()
            .find(|e| e.ip == ip)
            .unwrap_or_else(|| panic!("we have no neighbour entry for {ip}: {ours:?}"));
        assert_eq!(entry.mac, Some(kmac), "our entry for {ip}");
        assert!(
            !matches!(
                entry.state,
                NeighbourState::Incomplete | NeighbourState::Failed
            ),
            "our entry for {ip}: {entry:?}"
        );
    }
}

/// A neighbour that never answers: our connect fails with
/// `HostUnreachable` once ARP (RFC 826; RFC 1122 2.3.2.1) or NDP (RFC 4861
/// 7.3.3: MAX_MULTICAST_SOLICIT) gives up, as a Linux `connect` gets
/// EHOSTUNREACH, well before the connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_unanswered_neighbour_gives_host_unreachable() {
    let Some(net) = RawNet::new() else { return };
    let (silent, silent6) = {
        let mut o = net.kernel.octets();
        o[3] = 99;
        let mut o6 = net.kernel6.octets();
        o6[15] = 0x99;
        (Ipv4Addr::from(o), Ipv6Addr::from(o6))
    };
    for ip in [IpAddr::from(silent), IpAddr::from(silent6)] {
        let err = within(30, "connect to a silent neighbour", async {
            TcpStream::connect_with(&net.stack, SocketAddr::new(ip, PORT))
                .await
                .expect_err("nobody has this address")
        })
        .await;
        assert_eq!(
            err.kind(),
            io::ErrorKind::HostUnreachable,
            "connect to {ip}"
        );
    }
    let ours = net.stack.neighbours().await.expect("our neighbour table");
    assert!(
        !ours
            .iter()
            .any(|e| e.ip == IpAddr::from(silent) && e.mac.is_some()),
        "a silent neighbour was resolved: {ours:?}"
    );
}

/// Off-link: the stack sends to a destination outside its prefixes through
/// the configured gateway (a kernel router namespace forwarding between
/// our link and another), in both families.
///
/// ```text
///  ours (ns O) ==veth== router (ns R) ==veth== kernel (root)
///  10.210.A.2          .1       10.210.B.1      10.210.B.2
///  fd00:210:A::2       ::1   fd00:210:B::1      fd00:210:B::2
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_off_link_traffic_through_gateway() {
    if common::netns::skip("kernel_raw") {
        return;
    }
    common::netns::remove_stale(NETNS_PREFIX);
    let n = common::next_n();
    let pid = std::process::id();
    let (a, claim_a) = common::claim_subnet(n);
    let (b, claim_b) = common::claim_subnet(n + 1000);
    let ours_ns = Netns::new(format!("{NETNS_PREFIX}o-{pid}-{n}")).expect("our namespace");
    let router = Netns::new(format!("{NETNS_PREFIX}r-{pid}-{n}")).expect("router namespace");
    let (r_ours, o_if) = (format!("urr{pid}x{n}"), format!("uro{pid}x{n}"));
    let (r_far, far_if) = (format!("urf{pid}x{n}"), format!("urk{pid}x{n}"));
    let (gw, gw6) = common::test_addrs(a, 1);
    let (ours, ours6) = common::test_addrs(a, 2);
    let (r_b, r_b6) = common::test_addrs(b, 1);
    let (far, far6) = common::test_addrs(b, 2);
    let setup = || -> io::Result<()> {
        // Made here, then each end moved where it belongs.
        ip(&[
            "link", "add", &o_if, "type", "veth", "peer", "name", &r_ours,
        ])?;
        ip(&["link", "set", &o_if, "netns", &ours_ns.name])?;
        ip(&["link", "set", &r_ours, "netns", &router.name])?;
        ip(&[
            "link", "add", &far_if, "type", "veth", "peer", "name", &r_far,
        ])?;
        ip(&["link", "set", &r_far, "netns", &router.name])?;
        router.sysctl("net/ipv4/ip_forward", "1")?;
        router.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        ours_ns.sysctl(&format!("net/ipv6/conf/{o_if}/disable_ipv6"), "1")?;
        ours_ns.ip(&["link", "set", &o_if, "up"])?;
        router.ip(&["addr", "add", &format!("{gw}/24"), "dev", &r_ours])?;
        router.ip(&["addr", "add", &format!("{gw6}/64"), "dev", &r_ours, "nodad"])?;
        router.ip(&["addr", "add", &format!("{r_b}/24"), "dev", &r_far])?;
        router.ip(&["addr", "add", &format!("{r_b6}/64"), "dev", &r_far, "nodad"])?;
        router.ip(&["link", "set", &r_ours, "up"])?;
        router.ip(&["link", "set", &r_far, "up"])?;
        ip(&["addr", "add", &format!("{far}/24"), "dev", &far_if])?;
        ip(&[
            "addr",
            "add",
            &format!("{far6}/64"),
            "dev",
            &far_if,
            "nodad",
        ])?;
        ip(&["link", "set", &far_if, "up"])?;
        ip(&[
            "route",
            "add",
            &format!("{ours}/32"),
            "via",
            &r_b.to_string(),
        ])?;
        ip(&[
            "-6",
            "route",
            "add",
            &format!("{ours6}/128"),
            "via",
            &r_b6.to_string(),
        ])
    };
    let cleanup = || {
        let _ = ip(&["link", "del", &far_if]);
    };
    if let Err(e) = setup() {
        cleanup();
        panic!("setting up the routed network: {e}");
    }
    struct Cleanup<F: Fn()>(F);
    impl<F: Fn()> Drop for Cleanup<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _cleanup = Cleanup(cleanup);
    let dev = open_raw(&ours_ns, &o_if);
    let mac = MacAddr(dev.mac_address().expect("MAC"));
    let mut config = Config {
        seed: (u64::from(pid) << 16) | u64::from(n),
        ..Config::with_ethernet(mac, [(ours.into(), 24), (ours6.into(), 64)])
    };
    let eth = config.ethernet.as_mut().expect("ethernet config");
    eth.gateway_v4 = Some(gw);
    eth.gateway_v6 = Some(gw6);
    let stack = Stack::builder(dev).config(config).build().expect("stack");
    within(60, "off-link echo through the gateway", async {
        for target in [IpAddr::from(far), IpAddr::from(far6)] {
            let addr = SocketAddr::new(target, PORT);
            echo_through_kernel(
                &stack,
                addr,
                "off-link echo via the gateway, 1 MiB",
                1 << 20,
            )
            .await;
        }
    })
    .await;
    // The router resolved us and we resolved only the router: every frame
    // went to the gateway's MAC.
    let neighbours = stack.neighbours().await.expect("neighbours");
    assert!(
        neighbours
            .iter()
            .any(|e| e.ip == IpAddr::from(gw) && e.mac.is_some()),
        "the gateway was not resolved: {neighbours:?}"
    );
    assert!(
        !neighbours
            .iter()
            .any(|e| e.ip == IpAddr::from(far) || e.ip == IpAddr::from(far6)),
        "an off-link destination was resolved on the link: {neighbours:?}"
    );
    drop(stack);
    drop((claim_a, claim_b));
}

/// The examples' `--raw IFNAME` (a public contract): `echo` owns O through
/// AF_PACKET with `--addr/--prefix`, configuring nothing in the kernel, and
/// serves the kernel's client in both families; `client` connects out to a
/// kernel listener, resolving the kernel's MAC itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_examples_echo_and_client() {
    let Some(link) = RawLink::new() else { return };
    let ours = link.ours.to_string();
    let ours6 = link.ours6.to_string();
    let Some(mut echo) = Example::spawn_in(
        Some(&link.ns.name),
        "echo",
        &args(&[
            "--raw",
            &link.ours_if,
            "--addr",
            &ours,
            "--prefix",
            "24",
            "--addr6",
            &ours6,
            "--prefix6",
            "64",
            "--port",
            "7",
            "--mode",
            "echo",
        ]),
    ) else {
        return;
    };
    echo.wait_for("listening").await;
    for v6 in [false, true] {
        let msg = format!("hello over AF_PACKET, v6={v6}");
        let back = within(PATIENCE, "kernel echo through the echo example", async {
            let mut s = tokio::net::TcpStream::connect(link.ours(v6, PORT))
                .await
                .expect("kernel connect to the echo example");
            s.write_all(msg.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            back
        })
        .await;
        assert_eq!(back, msg.as_bytes());
    }
    drop(echo);

    const SEND: u64 = 300_000;
    let listener = kernel_listener(link.kernel(false, 9000));
    let server = tokio::spawn(kernel_echo_server(listener));
    let Some(client) = Example::spawn_in(
        Some(&link.ns.name),
        "client",
        &args(&[
            "--raw",
            &link.ours_if,
            "--addr",
            &ours,
            "--prefix",
            "24",
            "--connect",
            &link.kernel(false, 9000).to_string(),
            "--send",
            &SEND.to_string(),
        ]),
    ) else {
        return;
    };
    let (status, log) = client.finish().await;
    assert!(status.success(), "client --raw failed:\n{log}");
    // "sent N bytes (fnv64 X), received N bytes (fnv64 X) in ...": the
    // kernel echoed every byte.
    let line = log
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no report line:\n{log}"));
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || "(),".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    // sent N bytes fnv64 X received N bytes fnv64 X in ...
    assert_eq!(
        words.get(1),
        Some(&SEND.to_string().as_str()),
        "sent: {line}"
    );
    assert_eq!(
        words.get(6),
        Some(&SEND.to_string().as_str()),
        "received: {line}"
    );
    assert_eq!(words.get(4), words.get(9), "checksums: {line}");
    assert!(words.get(4).is_some(), "no checksum: {line}");
    server.abort();
}

/// A TAP device (`TunBuilder::tap`): the kernel side is an Ethernet host
/// with its own MAC; the stack, the other host on that wire, picks its own
/// MAC (a TAP device has none for it: `Device::mac_address` is `None`),
/// resolves the kernel with ARP and NDP and is resolved by it. Echo with
/// half-close both ways in both families, with offloads (virtio-net
/// headers whose checksum offsets count the 14-byte link header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_echo_both_ways_both_families() {
    if common::netns::skip("kernel_raw (TAP)") {
        return;
    }
    let n = common::next_n();
    let (octet, _claim) = common::claim_subnet(n);
    let name = format!("utp{}x{n}", std::process::id());
    assert!(name.len() < 16, "TAP name too long: {name}");
    let (kernel, kernel6) = common::test_addrs(octet, 1);
    let (ours, ours6) = common::test_addrs(octet, 2);
    let tap = tcp_tun::Tun::builder()
        .name(&name)
        .tap(true)
        .offload(true)
        .mtu(1500)
        .address(kernel, 24)
        .address6(kernel6, common::PREFIX6)
        .up(true)
        .build()
        .unwrap_or_else(|e| panic!("TAP device {name}: {e}"));
    // The kernel's IPv6 address is usable once duplicate address
    // detection is over (RFC 4862 5.4; nobody answers for it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ip_output(&["-6", "addr", "show", "dev", &name, "tentative"])
        .is_ok_and(|out| !out.trim().is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: IPv6 address still tentative"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dev = tcp_async::device::tun::TunDevice::new(tap).expect("TunDevice on the TAP");
    assert_eq!(dev.mac_address(), None, "the TAP's MAC is the kernel's");
    // Locally administered, unicast (IEEE 802: bit 1 set, bit 0 clear).
    let mac = MacAddr([0x02, 0x75, 0x74, 0x63, octet, n as u8]);
    let config = Config {
        seed: u64::from(std::process::id()) << 16 | u64::from(n),
        ..Config::with_ethernet(mac, [(ours.into(), 24), (ours6.into(), common::PREFIX6)])
    };
    let stack = Stack::builder(dev)
        .config(config)
        .build()
        .expect("stack on the TAP");
    within(60, "echo over a TAP device", async {
        for ip in [IpAddr::from(ours), IpAddr::from(ours6)] {
            let (k, _, echo) = kernel_client_of_our_echo(&stack, SocketAddr::new(ip, PORT)).await;
            echo_exchange("kernel client over TAP, 2 MiB", k, 2 << 20).await;
            echo.await.unwrap().expect("our echo side");
        }
        for ip in [IpAddr::from(kernel), IpAddr::from(kernel6)] {
            let at = SocketAddr::new(ip, PORT + 1);
            echo_through_kernel(&stack, at, "our client over TAP, 2 MiB", 2 << 20).await;
        }
    })
    .await;
}
