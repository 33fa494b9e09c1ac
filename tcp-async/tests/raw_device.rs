//! Link-layer devices against the Linux kernel, at the device level (no
//! Ethernet in the core yet): an AF_PACKET [`RawDevice`] on one end of a
//! veth pair and a TAP, each in network namespaces the test creates and
//! removes (Drop guards), with hand-built frames. Needs root; without it
//! each test prints a visible skip, or fails under `CI=true`.

use std::future::poll_fn;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tcp_async::device::tun::TunDevice;
use tcp_async::device::{Device, Medium, RawDevice, TxHeaders, TxPacket};
use tcp_stack::wire::checksum;
use tcp_stack::wire::tcp::fill_partial_checksum;

const OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const KERNEL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const KERNEL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const BROADCAST: [u8; 6] = [0xff; 6];
const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;
/// Bound on every wait: generous, never a performance threshold.
const LIMIT: Duration = Duration::from_secs(10);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Reports a skip on stderr (the runner shows it); panics under CI=true.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this root test cannot run: {why}");
    }
    let _ = writeln!(io::stderr(), "skipping: {why}");
}

/// Why namespaces and veth pairs cannot be made here, if they cannot.
fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces and veth pairs need root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no `ip` command (iproute2)".into()),
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted (with the interfaces in it) on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("utcp-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Runs `f` on a thread inside the namespace (sockets and devices it
    /// opens stay there), with the Tokio runtime of the caller entered.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a namespace fd we own; it moves only this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            let _rt = handle.enter();
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Our namespace with veth end `veth0` (MAC [`OUR_MAC`], no address),
/// the kernel's with `veth1` ([`KERNEL_MAC`], [`KERNEL`]/24). IPv6 off on
/// both, so nothing but the test's frames cross. `tso`: whether `veth0`
/// keeps its segmentation and checksum offloads.
fn veth_pair(tso: bool) -> (Netns, Netns) {
    let ours = Netns::new("raw");
    let kernel = Netns::new("peer");
    ours.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", &kernel.0,
    ]);
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for (ns, dev, m) in [(&ours, "veth0", OUR_MAC), (&kernel, "veth1", KERNEL_MAC)] {
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns.0, "sysctl", "-qw"])
            .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
            .status();
        ns.ip(&["link", "set", dev, "address", &mac(m)]);
    }
    if !tso {
        run(&[
            "ip", "netns", "exec", &ours.0, "ethtool", "-K", "veth0", "tx", "off", "tso", "off",
            "gso", "off",
        ]);
    }
    kernel.ip(&["addr", "add", &format!("{KERNEL}/24"), "dev", "veth1"]);
    kernel.ip(&["link", "set", "veth1", "up"]);
    ours.ip(&["link", "set", "veth0", "up"]);
    (ours, kernel)
}

/// A fresh [`veth_pair`] with a [`RawDevice`] on each end: ours on `veth0`
/// and one on the kernel's `veth1` that sees what arrives there. The
/// namespaces come first so that they outlive the devices.
fn raw_ends(tso: bool) -> ((Netns, Netns), RawDevice, RawDevice) {
    let (ours, kernel) = veth_pair(tso);
    let dev = ours.enter(|| RawDevice::open("veth0")).expect("open veth0");
    let tap = kernel
        .enter(|| RawDevice::open("veth1"))
        .expect("open veth1");
    ((ours, kernel), dev, tap)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

/// An ARP packet (RFC 826) for IPv4 over Ethernet.
fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// (op, sender MAC, sender IP, target IP) of an ARP frame.
fn parse_arp(frame: &[u8]) -> Option<(u16, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    if frame.len() < 42 || ethertype(frame) != ETH_ARP {
        return None;
    }
    let a = &frame[14..];
    let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
    Some((
        u16::from_be_bytes([a[6], a[7]]),
        a[8..14].try_into().ok()?,
        ip(14),
        ip(24),
    ))
}

/// An IPv4 header (no options) with its checksum.
fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

async fn send<D: Device>(dev: &mut D, frame: &[u8]) {
    poll_fn(|cx| dev.poll_send(cx, frame)).await.expect("send");
}

/// The next frame `keep` accepts, within [`LIMIT`].
async fn recv_until<D: Device>(dev: &mut D, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    tokio::time::timeout(LIMIT, async {
        loop {
            let n = poll_fn(|cx| dev.poll_recv(cx, &mut buf))
                .await
                .expect("recv");
            if keep(&buf[..n]) {
                return buf[..n].to_vec();
            }
        }
    })
    .await
    .expect("timed out waiting for a frame")
}

#[tokio::test]
async fn raw_device_arp_request_gets_the_kernels_reply() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    let (ours, _kernel) = veth_pair(true);
    let mut dev = ours.enter(|| RawDevice::open("veth0")).expect("open veth0");
    assert_eq!(dev.medium(), Medium::Ethernet);
    assert_eq!(dev.mac_address(), Some(OUR_MAC));
    assert_eq!(dev.mtu(), 1500);
    assert!(dev.has_vnet_hdr(), "{dev:?}");
    assert_eq!(dev.offloads().tso_max, 65535);
    let request = arp(1, OUR_MAC, OURS, [0; 6], KERNEL);
    send(&mut dev, &ethernet(BROADCAST, OUR_MAC, ETH_ARP, &request)).await;
    let reply = recv_until(
        &mut dev,
        |f| matches!(parse_arp(f), Some((2, _, spa, _)) if spa == KERNEL),
    )
    .await;
    assert_eq!(&reply[..6], &OUR_MAC, "reply sent to us");
    let (_, sha, _, tpa) = parse_arp(&reply).unwrap();
    assert_eq!((sha, tpa), (KERNEL_MAC, OURS));
    let c = dev.counters();
    assert!(c.rx_frames.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn raw_device_icmp_echo_gets_the_kernels_reply() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    let (ours, _kernel) = veth_pair(true);
    let mut dev = ours.enter(|| RawDevice::open("veth0")).expect("open veth0");
    // The kernel learns our address from our request (RFC 826 merge).
    let request = arp(1, OUR_MAC, OURS, [0; 6], KERNEL);
    send(&mut dev, &ethernet(BROADCAST, OUR_MAC, ETH_ARP, &request)).await;
    let reply = recv_until(&mut dev, |f| matches!(parse_arp(f), Some((2, ..)))).await;
    let (_, kernel_mac, ..) = parse_arp(&reply).unwrap();

    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"utcp raw device echo");
    let sum = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = ipv4(1, OURS, KERNEL, icmp.len());
    packet.extend_from_slice(&icmp);
    send(&mut dev, &ethernet(kernel_mac, OUR_MAC, ETH_IPV4, &packet)).await;
    let echo = recv_until(&mut dev, |f| {
        f.len() >= 42 && ethertype(f) == ETH_IPV4 && f[23] == 1 && f[34] == 0
    })
    .await;
    assert_eq!(&echo[..6], &OUR_MAC);
    assert_eq!(&echo[26..30], &KERNEL.octets(), "from the kernel");
    assert_eq!(&echo[38..42], &[0x12, 0x34, 0, 1], "same id and sequence");
    assert_eq!(&echo[42..], b"utcp raw device echo");
}

/// Payload bytes per part of [`super_frame`].
const SEGMENT: usize = 1000;
/// Payload bytes of [`super_frame`]: three whole parts and a short one.
const PAYLOAD: usize = 3 * SEGMENT + 200;

/// A TCP/IPv4 super-packet from us to the kernel's discard port (nobody
/// listens), its checksum partial, in a frame, and its header layout.
fn super_frame() -> (Vec<u8>, TxHeaders) {
    let mut tcp = vec![0u8; 20 + PAYLOAD];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&9u16.to_be_bytes()); // discard: nobody listens
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&1000u16.to_be_bytes());
    for (i, b) in tcp[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    fill_partial_checksum(&mut tcp, OURS, KERNEL);
    let mut frame = ethernet(
        KERNEL_MAC,
        OUR_MAC,
        ETH_IPV4,
        &ipv4(6, OURS, KERNEL, tcp.len()),
    );
    frame.extend_from_slice(&tcp);
    let headers = TxHeaders {
        link_len: 14,
        ip_len: 20,
        ipv6: false,
        tcp_len: 20,
        cwr: false,
    };
    (frame, headers)
}

/// The TCP checksum of `frame` (IPv4 without options) is complete.
fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let tcp = &frame[34..];
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&frame[26..34]);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    checksum::finish(checksum::combine(
        checksum::sum(&pseudo),
        checksum::sum(tcp),
    )) == 0
}

#[tokio::test]
async fn raw_device_super_packet_crosses_a_tso_veth_whole() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    // veth0 keeps TSO: the super-packet crosses whole and arrives as one
    // frame with a partial checksum, which the receiving device reports.
    let (_ns, mut dev, mut tap) = raw_ends(true);
    assert!(tap.offloads().rx_max >= 65535);
    let (frame, headers) = super_frame();
    for meta in [true, false] {
        poll_fn(|cx| dev.poll_send_gso(cx, &frame, SEGMENT as u16, headers))
            .await
            .expect("send super-packet");
        let mut buf = vec![0u8; 65536];
        let got = tokio::time::timeout(LIMIT, async {
            loop {
                let (n, checksum) = if meta {
                    let p = poll_fn(|cx| tap.poll_recv_meta(cx, &mut buf))
                        .await
                        .unwrap();
                    (p.len, Some(p.checksum))
                } else {
                    (
                        poll_fn(|cx| tap.poll_recv(cx, &mut buf)).await.unwrap(),
                        None,
                    )
                };
                let f = &buf[..n];
                if f.len() >= 54
                    && ethertype(f) == ETH_IPV4
                    && f[23] == 6
                    && f[26..30] == OURS.octets()
                {
                    return (f.to_vec(), checksum);
                }
            }
        })
        .await
        .expect("timed out waiting for the super-packet");
        let (f, checksum) = got;
        assert_eq!(f.len(), frame.len(), "one frame, whole");
        if meta {
            assert_eq!(checksum, Some(tcp_async::device::RxChecksum::Partial));
        } else {
            assert!(
                tcp_checksum_ok(&f),
                "a plain receive completes the checksum"
            );
        }
    }
    let c = tap.counters();
    assert_eq!(c.rx_super.load(Ordering::Relaxed), 2);
    assert_eq!(c.rx_partial.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn raw_device_super_packet_leaves_segmented() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    if Command::new("ethtool").arg("--version").output().is_err() {
        return skip("no ethtool to turn off veth0's TSO");
    }
    // No TSO nor checksum offload on veth0: the kernel must cut the
    // super-packet and finish the checksums itself.
    let (_ns, mut dev, mut tap) = raw_ends(false);

    let (frame, headers) = super_frame();
    poll_fn(|cx| dev.poll_send_gso(cx, &frame, SEGMENT as u16, headers))
        .await
        .expect("send super-packet");
    let c = dev.counters();
    assert_eq!(c.tx_dropped.load(Ordering::Relaxed), 0, "{dev:?}");
    assert_eq!(c.tx_super_segments.load(Ordering::Relaxed), 4);

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let f = recv_until(&mut tap, |f| {
            f.len() >= 54 && ethertype(f) == ETH_IPV4 && f[23] == 6 && f[26..30] == OURS.octets()
        })
        .await;
        seen.push(f);
    }
    let mut seq = 1000u32;
    for (i, f) in seen.iter().enumerate() {
        assert!(f.len() <= 14 + 1500, "part {i} is {} bytes", f.len());
        let tcp = &f[34..];
        assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), seq);
        let len = tcp.len() - 20;
        assert_eq!(len, if i < 3 { SEGMENT } else { 200 }, "part {i}");
        // A complete checksum: pseudo-header plus segment sums to zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&OURS.octets());
        pseudo.extend_from_slice(&KERNEL.octets());
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let sum = checksum::combine(checksum::sum(&pseudo), checksum::sum(tcp));
        assert_eq!(checksum::finish(sum), 0, "part {i} checksum");
        seq += len as u32;
    }
}

#[tokio::test]
async fn tap_device_reads_the_kernels_arp_request() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    if let Err(e) = std::fs::metadata("/dev/net/tun") {
        return skip(&format!("/dev/net/tun: {e}"));
    }
    let ns = Netns::new("tap");
    for offload in [false, true] {
        let (mut dev, socket) = ns.enter(move || {
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
            let tap = tcp_tun::Tun::builder()
                // A name per round: the previous TAP may still be going.
                .name(if offload { "utap1" } else { "utap0" })
                .tap(true)
                .offload(offload)
                .address(KERNEL, 24)
                .up(true)
                .build()
                .unwrap_or_else(|e| panic!("TAP device (offload {offload}): {e}"));
            assert!(tap.is_tap());
            let dev = TunDevice::new(tap).expect("TunDevice");
            // A datagram to a neighbour behind the TAP: the kernel asks
            // for its MAC first.
            let socket = std::net::UdpSocket::bind("192.0.2.1:0").expect("udp socket");
            (dev, socket)
        });
        assert_eq!(dev.medium(), Medium::Ethernet);
        assert_eq!(dev.mac_address(), None);
        let target = Ipv4Addr::new(192, 0, 2, 77);
        socket.send_to(b"hello", (target, 9)).expect("send_to");
        let request = recv_until(
            &mut dev,
            |f| matches!(parse_arp(f), Some((1, _, _, tpa)) if tpa == target),
        )
        .await;
        assert_eq!(&request[..6], &BROADCAST);
        let (_, _, spa, _) = parse_arp(&request).unwrap();
        assert_eq!(spa, KERNEL, "offload {offload}");
        drop(dev);
    }
}

/// Numbered test frames of `payload` bytes (EtherType 0x88b5, local
/// experimental): frame `i` carries `i` in its first payload bytes.
fn numbered_frames(count: u32, payload: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut body = vec![0x5a; payload];
            body[..4].copy_from_slice(&i.to_be_bytes());
            ethernet(KERNEL_MAC, OUR_MAC, 0x88b5, &body)
        })
        .collect()
}

/// Sends all of `frames` through `poll_send_batch`, as the driver does
/// (what the device did not take is offered again); returns the calls.
async fn send_batched(dev: &mut RawDevice, frames: &[Vec<u8>]) -> usize {
    let mut next = 0;
    let mut calls = 0;
    while next < frames.len() {
        let batch: Vec<TxPacket<'_>> = frames[next..]
            .iter()
            .take(32)
            .map(|f| TxPacket {
                data: f,
                ..TxPacket::default()
            })
            .collect();
        let taken = poll_fn(|cx| dev.poll_send_batch(cx, &batch))
            .await
            .expect("send batch");
        assert!(
            (1..=batch.len()).contains(&taken),
            "took {taken} of {}",
            batch.len()
        );
        next += taken;
        calls += 1;
    }
    calls
}

/// `poll_send_batch` writes up to 32 frames per `sendmmsg(2)`: 100 frames
/// arrive at the kernel's end whole and in order, in at most 4 system
/// calls (fewer than one per frame), and a super-packet in a batch gets
/// its virtio-net header (it crosses a TSO veth whole, as with
/// `poll_send_gso`).
#[tokio::test]
async fn raw_device_batch_sends_many_frames_per_call_in_order() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    let (_ns, mut dev, mut tap) = raw_ends(true);
    force_rcvbuf(tap.get_ref().as_raw_fd(), 64 << 20);
    let frames = numbered_frames(100, 200);
    let calls = send_batched(&mut dev, &frames).await;
    let c = dev.counters();
    assert_eq!(c.tx_frames.load(Ordering::Relaxed), 100);
    assert_eq!(c.tx_batches.load(Ordering::Relaxed), calls as u64);
    assert!(calls <= 4, "{calls} sendmmsg calls for 100 frames");
    for (i, frame) in frames.iter().enumerate() {
        let got = recv_until(&mut tap, |f| ethertype(f) == 0x88b5).await;
        assert_eq!(&got, frame, "frame {i} arrives whole and in order");
    }

    // A plain frame, a super-packet and a plain frame in one batch.
    let (sup, headers) = super_frame();
    let before = numbered_frames(1, 100).remove(0);
    let batch = [
        TxPacket {
            data: &before,
            ..TxPacket::default()
        },
        TxPacket {
            data: &sup,
            segment_size: Some(SEGMENT as u16),
            headers,
        },
        TxPacket {
            data: &before,
            ..TxPacket::default()
        },
    ];
    let taken = poll_fn(|cx| dev.poll_send_batch(cx, &batch))
        .await
        .expect("batch");
    assert_eq!(taken, 3);
    assert_eq!(
        recv_until(&mut tap, |f| ethertype(f) == 0x88b5).await,
        before
    );
    let got = recv_until(&mut tap, |f| {
        ethertype(f) == ETH_IPV4 && f.len() >= 54 && f[23] == 6
    })
    .await;
    assert_eq!(got.len(), sup.len(), "the super-packet crosses whole");
    assert_eq!(
        recv_until(&mut tap, |f| ethertype(f) == 0x88b5).await,
        before
    );
    assert_eq!(c.tx_super.load(Ordering::Relaxed), 1);
}

/// Measures the send batching choice (`cargo test -p tcp-async --test
/// raw_device -- --ignored --nocapture`): the same burst of frames written
/// by one `sendmsg(2)` each (`poll_send`) and by `sendmmsg(2)` of 32
/// (`poll_send_batch`). Prints the cost per frame of each.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn raw_device_tx_batching_measure() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    const FRAMES: u32 = 20_000;
    // Nobody reads the kernel's end: the kernel drops the frames there,
    // after the same send path.
    let (_ns, mut dev, _peer) = raw_ends(false);
    for payload in [46, 1500] {
        let frames = numbered_frames(FRAMES, payload);
        for round in 0..3 {
            let start = std::time::Instant::now();
            for f in &frames {
                send(&mut dev, f).await;
            }
            let single_ns = start.elapsed().as_nanos() as f64 / f64::from(FRAMES);
            let start = std::time::Instant::now();
            let calls = send_batched(&mut dev, &frames).await;
            let batched_ns = start.elapsed().as_nanos() as f64 / f64::from(FRAMES);
            let _ = writeln!(
                io::stderr(),
                "tx of {FRAMES} frames of {} bytes, round {round}: sendmsg per frame \
                 {single_ns:.0} ns/frame; sendmmsg x32: {batched_ns:.0} ns/frame ({calls} calls)",
                frames[0].len()
            );
        }
    }
}

/// Sets `SO_RCVBUFFORCE` (root) so a whole measured burst fits.
fn force_rcvbuf(fd: i32, bytes: i32) {
    // SAFETY: a live fd and an int option of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", io::Error::last_os_error());
}

/// Measures the receive batching choice (`cargo test -p tcp-async --test
/// raw_device -- --ignored --nocapture`): a burst of full-size frames is
/// queued at once on two sockets of one veth end, then drained by a
/// [`RawDevice`] (`recvmmsg` of 16, one copy out per frame) and by a plain
/// packet socket (one `recv` per frame, straight into the caller's
/// buffer). Prints the cost per frame of each.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn raw_device_rx_batching_measure() {
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    const FRAMES: usize = 20_000;
    let (ours, kernel) = veth_pair(true);
    let (mut dev, plain) = ours.enter(|| {
        let dev = RawDevice::open("veth0").expect("open veth0");
        let plain = RawDevice::open("veth0").expect("open veth0 again");
        (dev, plain)
    });
    // The second device's socket, read with plain `recv` below.
    let plain_sock = plain.get_ref();
    plain_sock.set_nonblocking(true).unwrap();
    force_rcvbuf(dev.get_ref().as_raw_fd(), 256 << 20);
    force_rcvbuf(plain_sock.as_raw_fd(), 256 << 20);
    let mut sender = kernel.enter(|| RawDevice::open("veth1").expect("open veth1"));
    let mut buf = vec![0u8; 65536];
    for payload in [1500, 46] {
        let frame = ethernet(OUR_MAC, KERNEL_MAC, 0x88b5, &vec![0x5a; payload]);
        for _ in 0..FRAMES {
            send(&mut sender, &frame).await;
        }
        // Let the kernel's softirq finish delivering.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let start = std::time::Instant::now();
        let mut single = 0usize;
        // SAFETY: `buf` is a live, writable buffer of the length passed.
        while unsafe {
            libc::recv(
                plain_sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
            )
        } > 0
        {
            single += 1;
        }
        let single_ns = start.elapsed().as_nanos() as f64 / single.max(1) as f64;

        // The same frames, queued on the device's socket too; Tokio's
        // cooperative budget makes `poll_recv` yield now and then, as the
        // driver would.
        let start = std::time::Instant::now();
        let mut batched = 0usize;
        while batched < single {
            poll_fn(|cx| dev.poll_recv(cx, &mut buf))
                .await
                .expect("recv");
            batched += 1;
        }
        let batched_ns = start.elapsed().as_nanos() as f64 / batched.max(1) as f64;
        let _ = writeln!(
            io::stderr(),
            "rx of {FRAMES} frames of {} bytes: recvmmsg x16 + copy: {batched} frames, \
             {batched_ns:.0} ns/frame; recv per frame: {single} frames, {single_ns:.0} ns/frame",
            frame.len()
        );
        assert!(batched > 0 && single > 0);
    }
}

#[tokio::test]
async fn raw_device_open_errors_name_the_interface() {
    // Checked before any socket: no privilege needed.
    for bad in ["", "a/b", "name with space", "sixteen-chars-xx"] {
        let e = RawDevice::open(bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    if let Some(why) = unavailable() {
        return skip(&why);
    }
    let ns = Netns::new("err");
    let e = ns.enter(|| RawDevice::open("nosuchif0")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("nosuchif0"), "{e}");
    // Loopback is not Ethernet.
    let e = ns.enter(|| RawDevice::open("lo")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    // Without privilege: a thread that gave up root (the raw setresuid
    // system call changes only the calling thread, which drops its
    // capabilities with its uid) and then exits.
    let e = ns
        .enter(|| {
            // SAFETY: changes this thread's ids only; it ends right after.
            let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            assert_eq!(rc, 0, "setresuid: {}", io::Error::last_os_error());
            RawDevice::open("lo")
        })
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("CAP_NET_RAW"), "{e}");
}
