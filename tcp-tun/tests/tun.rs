//! Integration tests against real TUN devices.
//!
//! Every test creates its own interface (`utt<pid>x<n>`) and, when it needs
//! addresses, its own 10.200.X.0/24 and fd77:<pid>:<n>::/64, so tests can
//! run in parallel with each other and with other test binaries. Without root (or without
//! /dev/net/tun) the tests print a skip message and pass, unless `CI=true`,
//! where they fail instead.

use std::io::{self, ErrorKind, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tcp_tun::{Tun, TunBuilder, VirtioNetHdr};

/// Upper bound for every wait in these tests.
const TIMEOUT: Duration = Duration::from_secs(3);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique interface name: `utt` + pid + `x` + per-process counter.
fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("utt{}x{}", std::process::id(), n);
    assert!(name.len() < 16, "test interface name {name} too long");
    name
}

/// A /24 reserved for one test: 10.200.X.0/24 with the kernel side at .1
/// and the "device side" (our pretend stack) at .2.
struct Subnet {
    x: u8,
    // Holding this abstract-namespace socket reserves X among concurrently
    // running test processes; the kernel releases it if the process dies.
    _reservation: UnixDatagram,
}

impl Subnet {
    fn kernel(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.x, 1)
    }
    fn peer(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.x, 2)
    }
}

/// Whether any route in the routing table already points at 10.200.x.0/24.
fn subnet_routed(x: u8) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return false;
    };
    table.lines().skip(1).any(|line| {
        let dest = line.split_whitespace().nth(1).unwrap_or("");
        u32::from_str_radix(dest, 16)
            .map(|d| {
                let o = d.to_ne_bytes();
                o[0] == 10 && o[1] == 200 && o[2] == x
            })
            .unwrap_or(false)
    })
}

/// Picks a free 10.200.X.0/24 starting from a pid/counter derived X.
fn reserve_subnet() -> Subnet {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id().wrapping_mul(31).wrapping_add(n * 7)) % 250;
    for i in 0..250 {
        let x = ((start + i) % 250 + 2) as u8; // 2..=251
        let addr = UnixAddr::from_abstract_name(format!("tcp-tun-test-10.200.{x}.0"))
            .expect("abstract socket name");
        let Ok(sock) = UnixDatagram::bind_addr(&addr) else {
            continue; // another test process holds this subnet
        };
        if subnet_routed(x) {
            continue; // used by something else on the machine
        }
        return Subnet {
            x,
            _reservation: sock,
        };
    }
    panic!("no free 10.200.X.0/24 subnet found");
}

/// Prints a skip message, or panics when `CI=true`.
fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and TUN test cannot run: {reason}");
    }
    // Written to the stderr handle directly (not `eprintln!`) so the
    // message is visible even though libtest captures passing tests' output.
    let msg = format!("SKIPPED: {reason} (needs root or CAP_NET_ADMIN and /dev/net/tun)\n");
    let _ = io::stderr().write_all(msg.as_bytes());
}

/// Builds the device, or returns `None` after printing a skip message.
fn build_or_skip(builder: TunBuilder) -> Option<Tun> {
    if !Path::new("/dev/net/tun").exists() {
        skip("/dev/net/tun does not exist");
        return None;
    }
    match builder.build() {
        Ok(tun) => Some(tun),
        Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) => {
            skip(&format!("cannot create a TUN device: {e}"));
            None
        }
        Err(e) => panic!("creating TUN device failed: {e}"),
    }
}

fn sys_path(name: &str) -> String {
    format!("/sys/class/net/{name}")
}

fn exists(name: &str) -> bool {
    Path::new(&sys_path(name)).exists()
}

fn sysfs(name: &str, attr: &str) -> String {
    std::fs::read_to_string(format!("{}/{attr}", sys_path(name)))
        .unwrap_or_else(|e| panic!("reading {attr} of {name}: {e}"))
        .trim()
        .to_string()
}

fn sysfs_flags(name: &str) -> u32 {
    let raw = sysfs(name, "flags");
    u32::from_str_radix(raw.trim_start_matches("0x"), 16).expect("hex flags")
}

/// Polls `cond` with short sleeps until it holds or `TIMEOUT` passes.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Reads packets from the non-blocking TUN until `want` accepts one or the
/// timeout passes; other packets (e.g. IPv6 chatter) are ignored.
fn recv_matching(tun: &Tun, mut want: impl FnMut(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; tcp_tun::MAX_PACKET];
    loop {
        match tun.recv(&mut buf) {
            Ok(n) => {
                if want(&buf[..n]) {
                    return Some(buf[..n].to_vec());
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv from {}: {e}", tun.name()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(Duration::from_millis(5));
    }
}

/// Internet checksum (RFC 1071) over `data`, starting from `initial`.
fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 20-byte IPv4 header followed by `payload`, with a valid checksum.
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.push(0x45); // version 4, IHL 5
    p.push(0); // DSCP/ECN
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&0x1234u16.to_be_bytes()); // identification
    p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    p.push(64); // TTL
    p.push(proto);
    p.extend_from_slice(&[0, 0]); // checksum placeholder
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut udp = Vec::with_capacity(len);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(data);
    // Pseudo-header: src, dst, zero, protocol, UDP length.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(len as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let mut sum = checksum(&pseudo, 0);
    if sum == 0 {
        sum = 0xffff;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    ipv4_packet(*src.ip(), *dst.ip(), 17, &udp)
}

/// Minimal IPv4 view: (src, dst, protocol, payload), `None` if not IPv4.
fn parse_ipv4(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, &[u8])> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || total < ihl || total > p.len() {
        return None;
    }
    assert_eq!(checksum(&p[..ihl], 0), 0, "bad IPv4 header checksum");
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some((src, dst, p[9], &p[ihl..total]))
}

#[test]
fn create_configure_and_check_sysfs() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .mtu(1400)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    assert_eq!(tun.name(), name);
    assert!(exists(&name), "{name} missing from /sys/class/net");
    assert!(tun.index().is_some());
    // tun_flags is a TUN-specific sysfs attribute: IFF_TUN | IFF_NO_PI.
    assert_eq!(sysfs(&name, "tun_flags"), "0x1001");

    assert_eq!(sysfs(&name, "mtu"), "1400");
    assert_eq!(tun.mtu().unwrap(), 1400);
    assert_eq!(tun.address().unwrap(), Some((net.kernel(), 24)));
    assert!(tun.is_up().unwrap());
    assert_ne!(sysfs_flags(&name) & 0x1, 0, "IFF_UP not set");
    let oper = sysfs(&name, "operstate");
    assert!(oper == "up" || oper == "unknown", "operstate {oper}");

    tun.set_mtu(9000).unwrap();
    assert_eq!(sysfs(&name, "mtu"), "9000");
    assert_eq!(tun.mtu().unwrap(), 9000);
    assert_eq!(tun.set_mtu(20).unwrap_err().kind(), ErrorKind::InvalidInput);

    tun.set_address(net.kernel(), 28).unwrap();
    assert_eq!(tun.address().unwrap(), Some((net.kernel(), 28)));

    tun.set_up(false).unwrap();
    assert!(!tun.is_up().unwrap());
    assert_eq!(sysfs_flags(&name) & 0x1, 0, "IFF_UP still set");
    assert!(eventually(|| sysfs(&name, "operstate") == "down"));
}

#[test]
fn fresh_device_is_down_without_address() {
    let name = unique_name();
    let Some(tun) = build_or_skip(TunBuilder::new().name(&name)) else {
        return;
    };
    assert!(exists(&name));
    assert!(!tun.is_up().unwrap());
    assert_eq!(tun.address().unwrap(), None);
    assert_eq!(tun.mtu().unwrap(), 1500);
    // Nothing is queued on a down device: the non-blocking read says so.
    let mut buf = [0u8; 2048];
    assert_eq!(
        tun.recv(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(!tun.wait_readable(Some(Duration::from_millis(20))).unwrap());
}

#[test]
fn name_template_is_resolved() {
    let template = format!("ut{}q%d", std::process::id());
    let Some(tun) = build_or_skip(TunBuilder::new().name(&template)) else {
        return;
    };
    let prefix = template.trim_end_matches("%d");
    let suffix = tun
        .name()
        .strip_prefix(prefix)
        .expect("kernel kept the prefix");
    assert!(suffix.parse::<u32>().is_ok(), "name {}", tun.name());
    assert!(exists(tun.name()));
}

#[test]
fn name_in_use_is_reported() {
    let name = unique_name();
    let Some(_tun) = build_or_skip(TunBuilder::new().name(&name)) else {
        return;
    };
    let err = Tun::create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");

    // The kernel's own answer: a non-persistent device already has its fd.
    let err = Tun::attach(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("in use"), "{err}");

    // Names of non-TUN interfaces.
    assert_eq!(Tun::create("lo").unwrap_err().kind(), ErrorKind::AddrInUse);
    assert_eq!(
        Tun::attach("lo").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn invalid_name_prefix_and_address_are_rejected() {
    // Rejected before anything is created, so no privileges are needed.
    let err = Tun::create("a-name-longer-than-15").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        Tun::attach(&unique_name()).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let name = unique_name();
    let err = TunBuilder::new()
        .name(&name)
        .address(Ipv4Addr::new(10, 200, 0, 1), 33)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("/33"), "{err}");
    assert!(!exists(&name), "device created despite invalid prefix");

    let Some(tun) = build_or_skip(TunBuilder::new().name(&name)) else {
        return;
    };
    let addr = Ipv4Addr::new(10, 200, 0, 1);
    for prefix in [0, 33, 64] {
        let err = tun.set_address(addr, prefix).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "/{prefix}: {err}");
    }
    let err = tun.set_address(Ipv4Addr::BROADCAST, 24).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(tun.address().unwrap(), None);
}

#[test]
fn kernel_to_device_udp() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    let sock = UdpSocket::bind((net.kernel(), 0)).unwrap();
    let sport = sock.local_addr().unwrap().port();
    let payload = b"kernel to tun";
    sock.send_to(payload, (net.peer(), 9999)).unwrap();

    let packet = recv_matching(
        &tun,
        |p| matches!(parse_ipv4(p), Some((_, dst, 17, _)) if dst == net.peer()),
    )
    .expect("no UDP packet for the peer read from the TUN within the timeout");
    let (src, dst, proto, udp) = parse_ipv4(&packet).unwrap();
    assert_eq!((src, dst, proto), (net.kernel(), net.peer(), 17));
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), sport);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 9999);
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        8 + payload.len()
    );
    assert_eq!(&udp[8..], payload);
}

#[test]
fn device_to_kernel_udp() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    let sock = UdpSocket::bind((net.kernel(), 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let dst = SocketAddrV4::new(net.kernel(), sock.local_addr().unwrap().port());
    let src = SocketAddrV4::new(net.peer(), 40000);
    let payload = b"tun to kernel";
    let packet = udp_packet(src, dst, payload);
    assert_eq!(tun.send(&packet).unwrap(), packet.len());

    let mut buf = [0u8; 1500];
    let mut got = None;
    assert!(
        eventually(|| match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                got = Some((buf[..n].to_vec(), from));
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("recv_from: {e}"),
        }),
        "kernel socket did not receive the datagram written to the TUN"
    );
    let (data, from) = got.unwrap();
    assert_eq!(data, payload);
    assert_eq!(from, src.into());
}

#[test]
fn device_to_kernel_icmp_echo() {
    if std::fs::read_to_string("/proc/sys/net/ipv4/icmp_echo_ignore_all")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
    {
        let msg = "SKIPPED: net.ipv4.icmp_echo_ignore_all=1, the kernel will not answer\n";
        let _ = io::stderr().write_all(msg.as_bytes());
        return;
    }
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let data = b"ping over tun";
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&1u16.to_be_bytes());
    icmp.extend_from_slice(data);
    let sum = checksum(&icmp, 0);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let request = ipv4_packet(net.peer(), net.kernel(), 1, &icmp);
    assert_eq!(tun.send(&request).unwrap(), request.len());

    let reply = recv_matching(&tun, |p| {
        matches!(parse_ipv4(p), Some((_, dst, 1, m)) if dst == net.peer() && m.first() == Some(&0))
    })
    .expect("no ICMP echo reply read from the TUN within the timeout");
    let (src, _, _, msg) = parse_ipv4(&reply).unwrap();
    assert_eq!(src, net.kernel());
    assert_eq!(checksum(msg, 0), 0, "bad ICMP checksum");
    assert_eq!(u16::from_be_bytes([msg[4], msg[5]]), id);
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 1);
    assert_eq!(&msg[8..], data);
}

#[test]
fn send_while_down_and_garbage_fail() {
    let name = unique_name();
    let Some(tun) = build_or_skip(TunBuilder::new().name(&name)) else {
        return;
    };
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 200, 0, 2),
        Ipv4Addr::new(10, 200, 0, 1),
        17,
        &[0; 8],
    );
    let err = tun.send(&packet).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    tun.set_up(true).unwrap();
    let err = tun.send(&[0x10; 40]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}

#[test]
fn non_persistent_device_disappears_on_drop() {
    let name = unique_name();
    let Some(tun) = build_or_skip(TunBuilder::new().name(&name).up(true)) else {
        return;
    };
    assert!(exists(&name));
    drop(tun);
    assert!(
        eventually(|| !exists(&name)),
        "{name} still in /sys/class/net after drop"
    );
}

/// Removes a persistent test device even if the test panics.
struct PersistentCleanup(String);

impl Drop for PersistentCleanup {
    fn drop(&mut self) {
        if exists(&self.0) {
            if let Ok(tun) = Tun::attach(&self.0) {
                let _ = tun.set_persist(false);
            }
        }
    }
}

#[test]
fn persistent_device_survives_drop_and_can_be_attached() -> io::Result<()> {
    let name = unique_name();
    let Some(tun) = build_or_skip(TunBuilder::new().name(&name).mtu(1300).persist(true)) else {
        return Ok(());
    };
    let _cleanup = PersistentCleanup(name.clone());
    drop(tun);
    sleep(Duration::from_millis(50));
    assert!(exists(&name), "persistent device vanished");

    let tun = Tun::attach(&name)?;
    assert_eq!(tun.name(), name);
    assert_eq!(tun.mtu()?, 1300);
    tun.set_persist(false)?;
    drop(tun);
    assert!(
        eventually(|| !exists(&name)),
        "{name} still exists after persist(false) and drop"
    );
    Ok(())
}

#[test]
fn recv_batch_reads_several_packets() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    let sock = UdpSocket::bind((net.kernel(), 0)).unwrap();
    for i in 0..3u8 {
        sock.send_to(&[i; 10], (net.peer(), 7000)).unwrap();
    }
    let mut storage = vec![vec![0u8; 2048]; 4];
    let mut lens = [0usize; 4];
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < 3 && Instant::now() < deadline {
        if !tun.wait_readable(Some(Duration::from_millis(50))).unwrap() {
            continue;
        }
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.as_mut_slice()).collect();
        let n = match tun.recv_batch(&mut bufs, &mut lens) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => panic!("recv_batch: {e}"),
        };
        assert!(n >= 1);
        for (buf, &len) in bufs.iter().zip(&lens).take(n) {
            if let Some((_, dst, 17, udp)) = parse_ipv4(&buf[..len]) {
                if dst == net.peer() {
                    seen.push(udp[8]);
                }
            }
        }
    }
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn short_buffer_truncates_the_packet() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .up(true),
    ) else {
        return;
    };
    let sock = UdpSocket::bind((net.kernel(), 0)).unwrap();
    sock.send_to(&[7; 100], (net.peer(), 7000)).unwrap();
    // Only the 20-byte IPv4 header fits; the rest of the packet is dropped.
    let mut small = [0u8; 20];
    let mut found = false;
    assert!(eventually(|| {
        match tun.recv(&mut small) {
            Ok(n) => {
                assert_eq!(n, small.len());
                let total = u16::from_be_bytes([small[2], small[3]]);
                found = small[0] == 0x45 && small[16..20] == net.peer().octets() && total == 128;
                found
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("recv: {e}"),
        }
    }));
    assert!(found);
}

/// With offloads, packets carry a virtio-net header both ways: the kernel's
/// UDP comes checksum-partial (it never crossed a wire), and a plain header
/// in front of our complete packet is accepted.
#[test]
fn offload_device_exchanges_udp_with_vnet_headers() {
    let name = unique_name();
    let net = reserve_subnet();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .offload(true)
            .up(true),
    ) else {
        return;
    };
    assert!(tun.has_offload());
    let sock = UdpSocket::bind((net.kernel(), 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let payload = b"kernel to tun, offloaded";
    sock.send_to(payload, (net.peer(), 9999)).unwrap();

    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; tcp_tun::MAX_PACKET];
    let (hdr, packet) = loop {
        match tun.recv_vnet(&mut buf) {
            Ok((hdr, n)) => {
                if matches!(parse_ipv4(&buf[..n]), Some((_, dst, 17, _)) if dst == net.peer()) {
                    break (hdr, buf[..n].to_vec());
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no UDP packet from the kernel");
                sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("recv_vnet: {e}"),
        }
    };
    let (_, _, _, udp) = parse_ipv4(&packet).unwrap();
    assert_eq!(&udp[8..], payload);
    assert!(!hdr.is_gso(), "{hdr:?}");
    if hdr.needs_csum() {
        assert_eq!(usize::from(hdr.csum_start), packet.len() - udp.len());
        assert_eq!(hdr.csum_offset, 6, "UDP checksum field");
    }

    let dst = SocketAddrV4::new(net.kernel(), sock.local_addr().unwrap().port());
    let src = SocketAddrV4::new(net.peer(), 40000);
    let out = udp_packet(src, dst, b"tun to kernel, offloaded");
    assert_eq!(
        tun.send_vnet(&tcp_tun::VirtioNetHdr::plain(), &out)
            .unwrap(),
        out.len()
    );
    let mut rbuf = [0u8; 1500];
    let mut got = None;
    assert!(
        eventually(|| match sock.recv_from(&mut rbuf) {
            Ok((n, _)) => {
                got = Some(rbuf[..n].to_vec());
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("recv_from: {e}"),
        }),
        "kernel socket did not receive the datagram written with a vnet header"
    );
    assert_eq!(got.unwrap(), b"tun to kernel, offloaded");
}

// ---------------------------------------------------------------- IPv6 ---

/// An IPv6 /64 for one test: fd77:<pid high>:<pid low>:<n>::/64 (inside the
/// ULA fd00::/8), unique per process and test; kernel side ::1, the
/// pretend stack ::2.
struct Subnet6(u16, u16, u16);

impl Subnet6 {
    fn new() -> Subnet6 {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Subnet6((pid >> 16) as u16, pid as u16, n as u16)
    }
    fn host(&self, h: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, self.0, self.1, self.2, 0, 0, 0, h)
    }
    fn kernel(&self) -> Ipv6Addr {
        self.host(1)
    }
    fn peer(&self) -> Ipv6Addr {
        self.host(2)
    }
}

/// `IFA_F_TENTATIVE`: duplicate address detection has not finished.
const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_DADFAILED`.
const IFA_F_DADFAILED: u32 = 0x08;

/// The `IFA_F_*` flags of `addr` on `name` from /proc/net/if_inet6.
fn if_inet6_flags(name: &str, addr: Ipv6Addr) -> Option<u32> {
    let hex = format!("{:032x}", u128::from(addr));
    let table = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() == 6 && f[0] == hex && f[5] == name)
            .then(|| u32::from_str_radix(f[4], 16).expect("hex flags"))
    })
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 8.1): source,
/// destination, upper-layer length (32 bits), zeros, next header.
fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(len as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, next_header]);
    // `checksum` complements; undo that to get the running sum.
    u32::from(!checksum(&bytes, 0))
}

/// A 40-byte IPv6 header (no extension headers) followed by `payload`.
fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, class 0, flow 0
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(64); // hop limit
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// Minimal IPv6 view: (src, dst, next header, payload), `None` if not IPv6.
fn parse_ipv6(p: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8, &[u8])> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
    let payload = p.get(40..40 + len)?;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
    Some((src, dst, p[6], payload))
}

/// A TCP header (20 bytes plus `options`) and `data`, with a complete
/// checksum for IPv6 `src` -> `dst`.
fn tcp6_segment(
    src: SocketAddrV6,
    dst: SocketAddrV6,
    seq: u32,
    ack: u32,
    flags: u8,
    options: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&src.port().to_be_bytes());
    t.extend_from_slice(&dst.port().to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push((((20 + options.len()) / 4) << 4) as u8);
    t.push(flags);
    t.extend_from_slice(&65535u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    t.extend_from_slice(options);
    t.extend_from_slice(data);
    let sum = checksum(&t, pseudo6(*src.ip(), *dst.ip(), 6, t.len()));
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    t
}

/// Checks an IPv6 address: the builder's address6 and the IPv4 address
/// coexist, /proc/net/if_inet6 lists ours as usable at once (no DAD on a
/// NOARP device), and re-adding it is harmless.
#[test]
fn dual_stack_addresses_are_configured_and_usable_at_once() {
    let name = unique_name();
    let net = reserve_subnet();
    let net6 = Subnet6::new();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address(net.kernel(), 24)
            .address6(net6.kernel(), 64)
            .up(true),
    ) else {
        return;
    };
    assert_eq!(tun.address().unwrap(), Some((net.kernel(), 24)));
    let list = tun.addresses6().unwrap();
    assert!(list.contains(&(net6.kernel(), 64)), "{list:?}");
    let flags = if_inet6_flags(&name, net6.kernel()).expect("address in /proc/net/if_inet6");
    assert_eq!(
        flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED),
        0,
        "flags {flags:#x}"
    );

    // Same address and prefix again: accepted, nothing changes.
    tun.set_address6(net6.kernel(), 64).unwrap();
    let again = tun.addresses6().unwrap();
    assert_eq!(again.iter().filter(|a| a.0 == net6.kernel()).count(), 1);
    // A second address beside the first.
    tun.set_address6(net6.host(3), 64).unwrap();
    assert!(tun.addresses6().unwrap().contains(&(net6.host(3), 64)));
    // The same address with another prefix is refused by the kernel.
    let err = tun.set_address6(net6.kernel(), 80).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");

    for (addr, prefix) in [
        (net6.kernel(), 0),
        (net6.kernel(), 129),
        (Ipv6Addr::UNSPECIFIED, 64),
        (Ipv6Addr::LOCALHOST, 128),
        ("ff02::1".parse().unwrap(), 64),
        ("::ffff:10.1.2.3".parse().unwrap(), 96),
    ] {
        let err = tun.set_address6(addr, prefix).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{addr}/{prefix}: {err}"
        );
    }
    // The builder checks before creating anything.
    let other = unique_name();
    let err = TunBuilder::new()
        .name(&other)
        .address6(net6.host(4), 129)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("/129"), "{err}");
    assert!(!exists(&other));
}

/// Linux keeps IPv6 off below a 1280-byte MTU; the error says so.
#[test]
fn address6_on_a_small_mtu_is_explained() {
    let name = unique_name();
    let Some(tun) = build_or_skip(TunBuilder::new().name(&name).mtu(1200)) else {
        return;
    };
    let err = tun.set_address6(Subnet6::new().kernel(), 64).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("1280"), "{err}");
}

/// The kernel routes a datagram for the /64 through the TUN: one IPv6
/// packet, read with IFF_NO_PI (first nibble 6, no prefix).
#[test]
fn kernel_to_device_udp6() {
    let name = unique_name();
    let net6 = Subnet6::new();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address6(net6.kernel(), 64)
            .up(true),
    ) else {
        return;
    };
    // Binds at once: the address is not tentative when build() returns.
    let sock = UdpSocket::bind((net6.kernel(), 0)).unwrap();
    let sport = sock.local_addr().unwrap().port();
    let payload = b"kernel to tun over IPv6";
    sock.send_to(payload, (net6.peer(), 9999)).unwrap();

    let packet = recv_matching(
        &tun,
        |p| matches!(parse_ipv6(p), Some((_, dst, 17, _)) if dst == net6.peer()),
    )
    .expect("no UDP/IPv6 packet for the peer read from the TUN within the timeout");
    assert_eq!(packet[0] >> 4, 6);
    let (src, _, _, udp) = parse_ipv6(&packet).unwrap();
    assert_eq!(src, net6.kernel());
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), sport);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 9999);
    assert_eq!(&udp[8..], payload);
    assert_eq!(
        checksum(udp, pseudo6(src, net6.peer(), 17, udp.len())),
        0,
        "bad UDP checksum"
    );
}

/// A hand-built ICMPv6 echo request written into the TUN reaches the
/// kernel, whose echo reply comes back out of the TUN.
#[test]
fn device_to_kernel_icmpv6_echo() {
    if std::fs::read_to_string("/proc/sys/net/ipv6/icmp/echo_ignore_all")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
    {
        let msg = "SKIPPED: net.ipv6.icmp.echo_ignore_all=1, the kernel will not answer\n";
        let _ = io::stderr().write_all(msg.as_bytes());
        return;
    }
    let name = unique_name();
    let net6 = Subnet6::new();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address6(net6.kernel(), 64)
            .up(true),
    ) else {
        return;
    };
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let data = b"ping6 over tun";
    // RFC 4443 4.1: type 128, code 0, checksum, identifier, sequence.
    let mut icmp = vec![128, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&7u16.to_be_bytes());
    icmp.extend_from_slice(data);
    let sum = checksum(&icmp, pseudo6(net6.peer(), net6.kernel(), 58, icmp.len()));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let request = ipv6_packet(net6.peer(), net6.kernel(), 58, &icmp);
    assert_eq!(tun.send(&request).unwrap(), request.len());

    let reply = recv_matching(&tun, |p| {
        matches!(parse_ipv6(p), Some((_, dst, 58, m)) if dst == net6.peer() && m.first() == Some(&129))
    })
    .expect("no ICMPv6 echo reply read from the TUN within the timeout");
    let (src, dst, _, msg) = parse_ipv6(&reply).unwrap();
    assert_eq!(src, net6.kernel());
    assert_eq!(checksum(msg, pseudo6(src, dst, 58, msg.len())), 0);
    assert_eq!(u16::from_be_bytes([msg[4], msg[5]]), id);
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 7);
    assert_eq!(&msg[8..], data);
}

/// In a fresh network namespace (entered by one thread only) IPv6 works
/// out of the box; after `net.ipv6.conf.all.disable_ipv6=1` a new TUN
/// inherits the setting and address6 fails with an error naming the
/// per-device sysctl.
#[test]
fn address6_in_fresh_netns_and_with_ipv6_disabled() {
    let handle = std::thread::spawn(|| {
        // SAFETY: unshare(2) with a constant flag; it affects this thread
        // only, which exits at the end of the closure.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let net6 = Subnet6::new();
        let name = unique_name();
        let tun = TunBuilder::new()
            .name(&name)
            .address6(net6.kernel(), 64)
            .up(true)
            .build()
            .expect("TUN with IPv6 in a fresh netns");
        assert!(tun.addresses6().unwrap().contains(&(net6.kernel(), 64)));
        drop(tun);

        // /proc/sys/net follows the calling thread's namespace.
        std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")
            .expect("setting net.ipv6.conf.all.disable_ipv6 in the new netns");
        let name = unique_name();
        let err = TunBuilder::new()
            .name(&name)
            .address6(net6.kernel(), 64)
            .up(true)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let sysctl = format!("net.ipv6.conf.{name}.disable_ipv6");
        assert!(err.to_string().contains(&sysctl), "{err}");
        assert!(!exists(&name), "failed device left behind");
        // Without an IPv6 address the device still comes up.
        let tun = TunBuilder::new().name(&name).up(true).build().unwrap();
        assert_eq!(tun.addresses6().unwrap(), []);
        Ok(())
    });
    if let Err(e) = handle.join().unwrap() {
        skip(&format!("cannot enter a new network namespace: {e}"));
    }
}

/// With offloads the kernel may hand us TCP/IPv6 super-packets
/// (`TUN_F_TSO6`): a kernel TCP connection to the pretend stack's address,
/// whose handshake we answer by hand, sends its first flight as one
/// `GSO_TCPV6` packet larger than the MTU, checksum partial.
#[test]
fn offload_device_receives_tcpv6_super_packets() {
    let name = unique_name();
    let net6 = Subnet6::new();
    let Some(tun) = build_or_skip(
        TunBuilder::new()
            .name(&name)
            .address6(net6.kernel(), 64)
            .offload(true)
            .up(true),
    ) else {
        return;
    };
    let peer = SocketAddrV6::new(net6.peer(), 8080, 0, 0);
    let connect = std::thread::spawn(move || {
        let mut stream = TcpStream::connect_timeout(&peer.into(), TIMEOUT)?;
        stream.set_nonblocking(true)?;
        // As much as the socket buffer takes; we never acknowledge it.
        let _ = stream.write(&[0x5a; 60_000]);
        Ok::<_, io::Error>(stream)
    });

    let mut buf = vec![0u8; tcp_tun::MAX_PACKET];
    let mut next = |want: &dyn Fn(&VirtioNetHdr, &[u8]) -> bool| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match tun.recv_vnet(&mut buf) {
                Ok((hdr, n)) if want(&hdr, &buf[..n]) => return (hdr, buf[..n].to_vec()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "timed out reading the TUN");
                    sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("recv_vnet: {e}"),
            }
        }
    };
    let tcp_to_peer = |p: &[u8], flags: u8| matches!(parse_ipv6(p), Some((_, dst, 6, t)) if dst == net6.peer() && t[13] & flags == flags);
    // SYN from the kernel.
    let (_, syn) = next(&|_, p| tcp_to_peer(p, 0x02));
    let (src, _, _, t) = parse_ipv6(&syn).unwrap();
    let kernel = SocketAddrV6::new(src, u16::from_be_bytes([t[0], t[1]]), 0, 0);
    let isn = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    // SYN-ACK with MSS 1440 (an MTU of 1500) and no window scaling.
    let mss = [2, 4, 0x05, 0xa0];
    let syn_ack = tcp6_segment(peer, kernel, 1000, isn.wrapping_add(1), 0x12, &mss, &[]);
    let packet = ipv6_packet(net6.peer(), src, 6, &syn_ack);
    tun.send_vnet(&VirtioNetHdr::plain(), &packet).unwrap();
    let _stream = connect.join().unwrap().expect("kernel connect");

    // Data: the first flight (initial window of 10 segments).
    let (hdr, data) = next(&|_, p| {
        matches!(parse_ipv6(p), Some((_, dst, 6, t)) if dst == net6.peer()
            && t.len() > usize::from(t[12] >> 4) * 4)
    });
    assert!(
        data.len() > 1500,
        "no super-packet: {} bytes, {hdr:?}",
        data.len()
    );
    assert_eq!(hdr.gso_kind(), VirtioNetHdr::GSO_TCPV6, "{hdr:?}");
    assert!(hdr.needs_csum(), "{hdr:?}");
    assert_eq!(hdr.csum_start, 40, "TCP starts after the fixed IPv6 header");
    assert_eq!(hdr.csum_offset, VirtioNetHdr::TCP_CSUM_OFFSET);
    // Our SYN-ACK had no timestamp option, so segments carry the full MSS.
    assert_eq!(hdr.gso_size, 1440);
}
