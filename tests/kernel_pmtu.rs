//! Path MTU discovery through a real router: the Linux kernel forwards our
//! datagrams from the TUN onto a narrower link, answers those that do not
//! fit with "fragmentation needed" (RFC 1191; the stack sets DF) or "packet
//! too big" (RFC 8201), and a bulk transfer to a kernel listener behind it
//! still arrives byte for byte, at the lowered MSS.
//!
//! Each test builds its own network in two fresh namespaces, so it changes
//! no sysctl of the test host and collides with no other test's addresses:
//!
//! ```text
//!  our stack ====TUN, MTU 1500==== router R ----veth, MTU 1000 or 1280---- peer P
//!  10.211.0.2                     .1      forwarding      10.212.0.1       10.212.0.2
//!  fd00:211::2                    ::1                     fd00:212::1      fd00:212::2
//! ```
//!
//! The TUN is created in our namespace (the stack keeps its file
//! descriptor) and then moved into R. P's route back to the TUN subnet
//! carries `advmss` for a 1500-byte path, as a host on a wide link far from
//! the bottleneck would announce: without it P's SYN-ACK would announce the
//! small MSS and no datagram of ours would ever be too big for the path.
//!
//! Needs root (CAP_NET_ADMIN), `/dev/net/tun` and `ip` from iproute2.

mod common;

use common::netns::{self, ip, Netns};
use common::{assert_pattern, recv_pattern, send_pattern, within};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use tcp_async::{Stack, TcpStream};
use tcp_stack::Config;
use tokio::io::AsyncWriteExt;

const PORT: u16 = 5001;

/// Prefix of the namespaces these tests make; the pid that made one follows.
const NETNS_PREFIX: &str = "utpmtu-";

/// Bytes of the transfer that meets the narrow link.
const BULK: u64 = 4 << 20;

/// Bytes of the second transfer, which starts at the learnt path MTU.
const FOLLOW_UP: u64 = 256 << 10;

/// MTU of the TUN (the first hop): what the stack starts from.
const TUN_MTU: usize = 1500;

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// MTU of the narrow link: IPv4 gets one well under the TUN's; IPv6
    /// cannot go below its minimum link MTU (RFC 8200 5).
    fn narrow_mtu(self) -> usize {
        match self {
            Family::V4 => 1000,
            Family::V6 => 1280,
        }
    }

    /// IP + TCP header bytes without options (RFC 9293 3.7.1).
    fn headers(self) -> usize {
        match self {
            Family::V4 => 40,
            Family::V6 => 60,
        }
    }

    /// The MSS a host on a `mtu`-byte link announces.
    fn mss_for(self, mtu: usize) -> usize {
        mtu - self.headers()
    }

    fn ours(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::new(10, 211, 0, 2).into(),
            Family::V6 => Ipv6Addr::new(0xfd00, 0x211, 0, 0, 0, 0, 0, 2).into(),
        }
    }

    fn peer(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::new(10, 212, 0, 2).into(),
            Family::V6 => Ipv6Addr::new(0xfd00, 0x212, 0, 0, 0, 0, 0, 2).into(),
        }
    }
}

/// One test's network (see the module docs). Fields drop in order: the
/// stack (and with it the TUN) first, then the namespaces.
struct PmtuNet {
    stack: Stack,
    family: Family,
    peer: Netns,
    _router: Netns,
}

impl PmtuNet {
    /// Builds the network for `family`, the TUN with or without offloads
    /// (with them, the stack hands the kernel TSO super-packets, which
    /// the router must check segment by segment against the narrow link).
    /// `None` when the test is skipped. Call inside the Tokio runtime.
    fn new(family: Family, offload: bool) -> Option<PmtuNet> {
        if netns::skip("kernel_pmtu") {
            return None;
        }
        netns::remove_stale(NETNS_PREFIX);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tun_name = format!("utm{pid}x{n}");
        let (veth_r, veth_p) = (format!("utv{pid}r{n}"), format!("utv{pid}p{n}"));
        assert!(veth_r.len() < 16, "interface name too long: {veth_r}");
        let router = Netns::new(format!("{NETNS_PREFIX}r-{pid}-{n}")).expect("router namespace");
        let peer = Netns::new(format!("{NETNS_PREFIX}p-{pid}-{n}")).expect("peer namespace");

        let tun = common::device::open_tun_with(&tun_name, None, 0, TUN_MTU, offload)
            .unwrap_or_else(|e| panic!("creating TUN {tun_name}: {e}"));
        let narrow = family.narrow_mtu().to_string();
        let wide_mss = family.mss_for(TUN_MTU).to_string();
        let setup = || -> io::Result<()> {
            // The router: the TUN's kernel side, forwarding in both families.
            ip(&["link", "set", &tun_name, "netns", &router.name])?;
            router.sysctl("net/ipv4/ip_forward", "1")?;
            router.sysctl("net/ipv6/conf/all/forwarding", "1")?;
            router.ip(&["link", "set", &tun_name, "up"])?;
            router.ip(&["addr", "add", "10.211.0.1/24", "dev", &tun_name])?;
            router.ip(&["addr", "add", "fd00:211::1/64", "dev", &tun_name, "nodad"])?;
            // The narrow link.
            router.ip(&[
                "link", "add", &veth_r, "mtu", &narrow, "type", "veth", "peer", "name", &veth_p,
                "mtu", &narrow, "netns", &peer.name,
            ])?;
            router.ip(&["link", "set", &veth_r, "up"])?;
            peer.ip(&["link", "set", &veth_p, "up"])?;
            // Addresses of the tested family only: the kernel refuses IPv6
            // on a link below 1280 bytes. The peer announces the MSS of a
            // wide link.
            match family {
                Family::V4 => {
                    router.ip(&["addr", "add", "10.212.0.1/24", "dev", &veth_r])?;
                    peer.ip(&["addr", "add", "10.212.0.2/24", "dev", &veth_p])?;
                    peer.ip(&[
                        "route",
                        "add",
                        "10.211.0.0/24",
                        "via",
                        "10.212.0.1",
                        "advmss",
                        &wide_mss,
                    ])?;
                }
                Family::V6 => {
                    router.ip(&["addr", "add", "fd00:212::1/64", "dev", &veth_r, "nodad"])?;
                    peer.ip(&["addr", "add", "fd00:212::2/64", "dev", &veth_p, "nodad"])?;
                    peer.ip(&[
                        "-6",
                        "route",
                        "add",
                        "fd00:211::/64",
                        "via",
                        "fd00:212::1",
                        "advmss",
                        &wide_mss,
                    ])?;
                }
            }
            router.wait_no_tentative()?;
            peer.wait_no_tentative()
        };
        setup().unwrap_or_else(|e| panic!("setting up the path MTU network: {e}"));

        let config = Config {
            mtu: TUN_MTU,
            seed: (u64::from(pid) << 16) | u64::from(n),
            ..Config::with_addrs([Family::V4.ours(), Family::V6.ours()])
        };
        let stack = Stack::builder(tun)
            .config(config)
            .build()
            .unwrap_or_else(|e| panic!("building the stack on {tun_name}: {e}"));
        Some(PmtuNet {
            stack,
            family,
            peer,
            _router: router,
        })
    }

    fn peer_addr(&self) -> SocketAddr {
        SocketAddr::new(self.family.peer(), PORT)
    }

    /// A kernel listener in the peer namespace.
    fn listen(&self) -> tokio::net::TcpListener {
        let addr = self.peer_addr();
        let std = self
            .peer
            .enter(|| std::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("kernel listener on {addr}: {e}"));
        std.set_nonblocking(true).expect("non-blocking listener");
        tokio::net::TcpListener::from_std(std).expect("listener into Tokio")
    }
}

/// Sends `len` pattern bytes on a new connection of ours to the peer,
/// half-closes, and has the kernel check them; returns our stream (still
/// open, for `tcp_info`) and its MSS before the first byte went out.
async fn transfer(
    what: &str,
    net: &PmtuNet,
    listener: &tokio::net::TcpListener,
    len: u64,
) -> (TcpStream, tokio::net::TcpStream, usize) {
    let sender = async {
        let mut s = TcpStream::connect_with(&net.stack, net.peer_addr()).await?;
        let mss_at_start = s.tcp_info().await?.mss;
        let sum = send_pattern(&mut s, len).await?;
        s.shutdown().await?;
        io::Result::Ok((s, sum, mss_at_start))
    };
    let receiver = async {
        let (mut s, _) = listener.accept().await?;
        let got = recv_pattern(&mut s).await?;
        io::Result::Ok((s, got))
    };
    let ((ours, sum, mss_at_start), (theirs, got)) =
        tokio::try_join!(sender, receiver).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got.checksum, sum, "{what}: checksum");
    assert_pattern(what, got, len);
    (ours, theirs, mss_at_start)
}

/// Our client sends a bulk stream to the kernel listener behind the narrow
/// link: the router's ICMP lowers the MSS (RFC 1191 6.4 / RFC 8201 4: the
/// segments in flight are resent smaller), every byte arrives, and a second
/// connection to the same destination starts at the learnt path MTU.
async fn bulk_through_narrow_link(family: Family, offload: bool) {
    let Some(net) = PmtuNet::new(family, offload) else {
        return;
    };
    let what = format!(
        "{family:?} (offload {offload}) through a {}-byte link",
        family.narrow_mtu()
    );
    let path_mss = family.mss_for(family.narrow_mtu());
    let listener = net.listen();
    let start = Instant::now();

    let (ours, _theirs, mss_at_start) =
        within(60, &what, transfer(&what, &net, &listener, BULK)).await;
    common::report(&what, BULK, start);
    // Without this the test would pass with no ICMP at all.
    assert!(
        mss_at_start > path_mss,
        "{what}: the connection started at MSS {mss_at_start}, which already fits the path \
         (the peer's advmss did not take)"
    );
    let info = ours.tcp_info().await.expect("tcp_info");
    let stats = net.stack.stats().await.expect("stats");
    println!(
        "{what}: MSS {mss_at_start} -> {}, retransmits {}, ICMP in {}, ignored {}, PMTU reductions {}",
        info.mss, info.retransmits, stats.icmp_in, stats.icmp_ignored, stats.pmtu_reductions
    );
    assert!(
        info.mss <= path_mss,
        "{what}: MSS {} after the transfer, the path carries {path_mss}",
        info.mss
    );
    assert!(
        stats.icmp_in >= 1,
        "{what}: the router's ICMP never arrived"
    );
    assert!(
        stats.pmtu_reductions >= 1,
        "{what}: no path MTU reduction (stats {stats:?})"
    );

    // RFC 1191 6.3 / RFC 8201 5.2: the path MTU is kept per destination, so
    // a new connection sends at the smaller size from its first segment.
    let reductions = stats.pmtu_reductions;
    let follow_up = format!("{what}, second connection");
    let (ours2, _theirs2, mss2) = within(
        60,
        &follow_up,
        transfer(&follow_up, &net, &listener, FOLLOW_UP),
    )
    .await;
    assert!(
        mss2 <= path_mss,
        "{follow_up}: started at MSS {mss2}, the learnt path carries {path_mss}"
    );
    let info2 = ours2.tcp_info().await.expect("tcp_info");
    assert!(info2.mss <= path_mss, "{follow_up}: MSS {}", info2.mss);
    let stats2 = net.stack.stats().await.expect("stats");
    assert_eq!(
        stats2.pmtu_reductions, reductions,
        "{follow_up}: needed another reduction, so it did not start at the learnt MTU"
    );
}

/// IPv4: "fragmentation needed and DF set" with the next-hop MTU (RFC 1191).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_bulk_through_router_learns_path_mtu() {
    bulk_through_narrow_link(Family::V4, true).await;
}

/// IPv4 on a TUN without offloads: every datagram is a plain one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_bulk_through_router_learns_path_mtu_without_offload() {
    bulk_through_narrow_link(Family::V4, false).await;
}

/// IPv6: "packet too big" (RFC 8201) down to the 1280-byte minimum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_bulk_through_router_learns_path_mtu() {
    bulk_through_narrow_link(Family::V6, true).await;
}

/// IPv6 on a TUN without offloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_bulk_through_router_learns_path_mtu_without_offload() {
    bulk_through_narrow_link(Family::V6, false).await;
}
