//! smoltcp as the server, configured for throughput: 1 MiB receive and send
//! buffers per socket (window scaling follows), CUBIC congestion control,
//! Nagle off for request/response. A plain poll loop on one thread drives
//! `Interface::poll` over a TUN device (C, medium IP) or smoltcp's own
//! AF_PACKET device `smoltcp::phy::RawSocket` on a veth end (E, medium
//! Ethernet, the veth end's MAC) and waits in poll(2) on the device's fd
//! until smoltcp's next deadline. The server logic is the same for both.
//!
//! smoltcp has no retransmission counter, so the device counts them: a
//! transmitted segment carrying data (or SYN/FIN) that starts below the
//! highest sequence number already sent on its flow is a retransmission.
//! On the raw socket a thin wrapper around `RawSocket` does that counting
//! (frames are otherwise passed through as they are) and also counts
//! received frames carrying smoltcp's own source MAC: an AF_PACKET socket
//! bound with `ETH_P_ALL` also sees the interface's outgoing frames, except
//! the ones it sent itself (the kernel skips the originating socket); with
//! IPv6 off on that veth end the kernel sends nothing there, so the count
//! should stay 0, and it is reported if not.

use crate::client::RR_SIZE;
use crate::sys::{self, Netns};
use crate::Server;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RawSocket, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BUFFER: usize = 1 << 20;
/// Listening sockets kept ready for new connections.
const SPARE: usize = 8;
/// Upper bound on sockets (each has 2 MiB of lazily touched buffers).
pub const MAX_SOCKETS: usize = 12_000;

struct TunPhy {
    tun: tcp_tun::Tun,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// (initial, highest) sequence number sent per (src port, dst port).
    flows: HashMap<(u16, u16), (u32, u32)>,
    retrans: Arc<AtomicU64>,
}

struct Rx<'a>(&'a [u8]);

struct Tx<'a> {
    tun: &'a tcp_tun::Tun,
    buf: &'a mut Vec<u8>,
    flows: &'a mut HashMap<(u16, u16), (u32, u32)>,
    retrans: &'a AtomicU64,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let r = f(&mut self.buf[..len]);
        let pkt = &self.buf[..len];
        if count_retransmission(self.flows, pkt) {
            self.retrans.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.tun.send(pkt);
        r
    }
}

/// Tracks the flow's highest sequence number; true for a retransmission.
fn count_retransmission(flows: &mut HashMap<(u16, u16), (u32, u32)>, pkt: &[u8]) -> bool {
    if pkt.len() < 20 || pkt[9] != 6 {
        return false;
    }
    let ihl = usize::from(pkt[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]])).min(pkt.len());
    let Some(t) = pkt.get(ihl..total) else {
        return false;
    };
    if t.len() < 20 {
        return false;
    }
    let key = (
        u16::from_be_bytes([t[0], t[1]]),
        u16::from_be_bytes([t[2], t[3]]),
    );
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let doff = usize::from(t[12] >> 4) * 4;
    let (syn, fin) = (t[13] & 0x02 != 0, t[13] & 0x01 != 0);
    let len = t.len().saturating_sub(doff) as u32 + u32::from(syn) + u32::from(fin);
    if len == 0 {
        return false;
    }
    let end = seq.wrapping_add(len);
    match flows.get_mut(&key) {
        // A SYN with the flow's initial sequence number again is a
        // retransmitted SYN; any other SYN starts a new flow on this tuple.
        Some((isn, _)) if syn && *isn == seq => true,
        Some((_, max)) if !syn => {
            let retrans = (max.wrapping_sub(seq) as i32) > 0;
            if (end.wrapping_sub(*max) as i32) > 0 {
                *max = end;
            }
            retrans
        }
        _ => {
            flows.insert(key, (seq, end));
            false
        }
    }
}

impl AsRawFd for TunPhy {
    fn as_raw_fd(&self) -> RawFd {
        self.tun.as_raw_fd()
    }
}

/// smoltcp's `RawSocket` as it is, plus the retransmission count (on
/// transmitted IPv4 frames) and the count of received frames that carry
/// its own source MAC.
struct RawPhy {
    raw: RawSocket,
    mac: [u8; 6],
    flows: HashMap<(u16, u16), (u32, u32)>,
    retrans: Arc<AtomicU64>,
    looped: Arc<AtomicU64>,
}

struct RawRx<'a, T> {
    inner: T,
    mac: [u8; 6],
    looped: &'a AtomicU64,
}

struct RawTx<'a, T> {
    inner: T,
    flows: &'a mut HashMap<(u16, u16), (u32, u32)>,
    retrans: &'a AtomicU64,
}

impl<T: RxToken> RxToken for RawRx<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let (mac, looped) = (self.mac, self.looped);
        self.inner.consume(|frame| {
            if frame.get(6..12) == Some(&mac[..]) {
                looped.fetch_add(1, Ordering::Relaxed);
            }
            f(frame)
        })
    }
}

impl<T: TxToken> TxToken for RawTx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (flows, retrans) = (self.flows, self.retrans);
        self.inner.consume(len, |frame| {
            let r = f(frame);
            // EtherType IPv4: the IP packet follows the 14-byte header.
            if frame.len() > 14
                && frame[12..14] == [0x08, 0x00]
                && count_retransmission(flows, &frame[14..])
            {
                retrans.fetch_add(1, Ordering::Relaxed);
            }
            r
        })
    }
}

impl Device for RawPhy {
    type RxToken<'a> = RawRx<'a, <RawSocket as Device>::RxToken<'a>>;
    type TxToken<'a> = RawTx<'a, <RawSocket as Device>::TxToken<'a>>;

    fn receive(&mut self, now: SInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.raw.receive(now)?;
        Some((
            RawRx {
                inner: rx,
                mac: self.mac,
                looped: &self.looped,
            },
            RawTx {
                inner: tx,
                flows: &mut self.flows,
                retrans: &self.retrans,
            },
        ))
    }

    fn transmit(&mut self, now: SInstant) -> Option<Self::TxToken<'_>> {
        Some(RawTx {
            inner: self.raw.transmit(now)?,
            flows: &mut self.flows,
            retrans: &self.retrans,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.raw.capabilities()
    }
}

impl AsRawFd for RawPhy {
    fn as_raw_fd(&self) -> RawFd {
        self.raw.as_raw_fd()
    }
}

impl Device for TunPhy {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SInstant) -> Option<(Rx<'_>, Tx<'_>)> {
        let n = self.tun.recv(&mut self.rx).ok()?;
        Some((
            Rx(&self.rx[..n]),
            Tx {
                tun: &self.tun,
                buf: &mut self.tx,
                flows: &mut self.flows,
                retrans: &self.retrans,
            },
        ))
    }

    fn transmit(&mut self, _: SInstant) -> Option<Tx<'_>> {
        Some(Tx {
            tun: &self.tun,
            buf: &mut self.tx,
            flows: &mut self.flows,
            retrans: &self.retrans,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}

enum Mode {
    New,
    DownHeader(Vec<u8>),
    Up(u64),
    Down(Instant),
    Echo,
    One,
    Done,
}

struct Conn {
    handle: SocketHandle,
    mode: Mode,
    used: bool,
}

pub struct SmolServer {
    addr: SocketAddr,
    tid: i32,
    retrans: Arc<AtomicU64>,
    /// Raw socket only: received frames with smoltcp's own source MAC.
    looped: Arc<AtomicU64>,
    /// Raw socket only: a duplicate of its fd, for `PACKET_STATISTICS`.
    packet_fd: Option<OwnedFd>,
    /// Frames the raw socket dropped so far (summed: reading resets them).
    drops: AtomicU64,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _ns: Arc<Netns>,
}

/// `UBN_RAW_RCVBUF`: bytes of receive buffer forced on smoltcp's raw
/// socket; unset (the default), `RawSocket` keeps the kernel's default
/// (`net.core.rmem_default`, typically 208 KiB), as smoltcp leaves it.
pub fn raw_rcvbuf() -> Option<usize> {
    std::env::var("UBN_RAW_RCVBUF").ok()?.parse().ok()
}

/// What a server thread builds in its namespace: the device, the
/// interface's hardware address, and for a raw socket a duplicate of its
/// fd (the socket stays with the thread: `RawSocket` is not `Send`).
struct Made<D> {
    dev: D,
    hw: HardwareAddress,
    packet_fd: Option<OwnedFd>,
}

impl SmolServer {
    /// Creates TUN `tun_name` in `ns` (kernel side `kernel`/24) and serves
    /// on `ours:port`.
    pub fn start(
        ns: Arc<Netns>,
        tun_name: &str,
        kernel: Ipv4Addr,
        ours: Ipv4Addr,
        port: u16,
    ) -> io::Result<SmolServer> {
        let name = tun_name.to_string();
        Self::spawn(ns, ours, port, move |retrans, _| {
            let tun = crate::ours::open_tun(&name, kernel, None, false)?;
            Ok(Made {
                dev: TunPhy {
                    tun,
                    rx: vec![0; 65536],
                    tx: vec![0; 65536],
                    flows: HashMap::new(),
                    retrans,
                },
                hw: HardwareAddress::Ip,
                packet_fd: None,
            })
        })
    }

    /// Opens `smoltcp::phy::RawSocket` (medium Ethernet) on `ifname` in
    /// `ns` (an interface that is up and has no kernel address) and serves
    /// on `ours:port` with the interface's MAC address `mac`.
    pub fn start_raw(
        ns: Arc<Netns>,
        ifname: &str,
        mac: [u8; 6],
        ours: Ipv4Addr,
        port: u16,
    ) -> io::Result<SmolServer> {
        let name = ifname.to_string();
        Self::spawn(ns, ours, port, move |retrans, looped| {
            let raw = RawSocket::new(&name, Medium::Ethernet)?;
            // SAFETY: the fd is the raw socket's, open for this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(raw.as_raw_fd()) };
            if let Some(bytes) = raw_rcvbuf() {
                sys::force_rcvbuf(fd, bytes)?;
            }
            let packet_fd = fd.try_clone_to_owned()?;
            Ok(Made {
                dev: RawPhy {
                    raw,
                    mac,
                    flows: HashMap::new(),
                    retrans,
                    looped,
                },
                hw: HardwareAddress::Ethernet(EthernetAddress(mac)),
                packet_fd: Some(packet_fd),
            })
        })
    }

    /// Runs the server on a new thread inside `ns`, over the device `make`
    /// builds there (given the retransmission and looped-frame counters).
    fn spawn<D, F>(ns: Arc<Netns>, ours: Ipv4Addr, port: u16, make: F) -> io::Result<SmolServer>
    where
        D: Device + AsRawFd,
        F: FnOnce(Arc<AtomicU64>, Arc<AtomicU64>) -> io::Result<Made<D>> + Send + 'static,
    {
        let retrans = Arc::new(AtomicU64::new(0));
        let looped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (r2, l2, s2, ns2) = (retrans.clone(), looped.clone(), stop.clone(), ns.clone());
        let thread = std::thread::Builder::new()
            .name("smoltcp".into())
            .spawn(move || {
                let made = ns2.enter().and_then(|()| make(r2, l2));
                drop(ns2);
                let mut made = match made {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok((sys::gettid(), made.packet_fd.take())));
                run(made.dev, made.hw, ours, port, &s2);
            })?;
        let (tid, packet_fd) = rx.recv().map_err(io::Error::other)??;
        Ok(SmolServer {
            addr: SocketAddr::V4(SocketAddrV4::new(ours, port)),
            tid,
            retrans,
            looped,
            packet_fd,
            drops: AtomicU64::new(0),
            stop,
            thread: Some(thread),
            _ns: ns,
        })
    }

    /// Raw socket only: received frames that carried smoltcp's own MAC.
    pub fn looped_frames(&self) -> u64 {
        self.looped.load(Ordering::Relaxed)
    }
}

impl Drop for SmolServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_socket(port: u16) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; BUFFER]),
        tcp::SocketBuffer::new(vec![0u8; BUFFER]),
    );
    s.set_congestion_control(tcp::CongestionControl::Cubic);
    s.listen(port).expect("listen on a fresh socket");
    s
}

fn run<D: Device + AsRawFd>(
    mut dev: D,
    hw: HardwareAddress,
    ours: Ipv4Addr,
    port: u16,
    stop: &AtomicBool,
) {
    let mut cfg = Config::new(hw);
    cfg.random_seed = 0x5eed;
    let mut iface = Interface::new(cfg, &mut dev, SInstant::now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(ours), 24));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let mut conns: Vec<Conn> = Vec::new();
    let pattern = vec![0x5au8; 64 * 1024];
    let mut tmp = vec![0u8; 64 * 1024];
    let fd = dev.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let listening = conns
            .iter()
            .filter(|c| sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::Listen)
            .count();
        for _ in listening..SPARE {
            if conns.len() >= MAX_SOCKETS {
                break;
            }
            let handle = sockets.add(new_socket(port));
            conns.push(Conn {
                handle,
                mode: Mode::New,
                used: false,
            });
        }
        let now = SInstant::now();
        iface.poll(now, &mut dev, &mut sockets);
        let mut busy = false;
        let mut listening = conns
            .iter()
            .filter(|c| sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::Listen)
            .count();
        let mut i = 0;
        while i < conns.len() {
            let s = sockets.get_mut::<tcp::Socket>(conns[i].handle);
            if s.state() == tcp::State::Closed && conns[i].used {
                if listening >= SPARE {
                    // Enough listeners: free this socket (and its buffers),
                    // so past connections cost nothing.
                    sockets.remove(conns[i].handle);
                    conns.swap_remove(i);
                    continue;
                }
                listening += 1;
            }
            busy |= step(&mut conns[i], s, port, &pattern, &mut tmp);
            i += 1;
        }
        if busy {
            continue;
        }
        let now = SInstant::now();
        let wait = iface
            .poll_delay(now, &sockets)
            .map_or(100, |d| d.total_millis().min(100) as i32);
        if wait > 0 {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, wait) };
        }
    }
}

/// Runs the application side of one socket; true if it moved data.
fn step(c: &mut Conn, s: &mut tcp::Socket, port: u16, pattern: &[u8], tmp: &mut [u8]) -> bool {
    match s.state() {
        tcp::State::Listen | tcp::State::SynReceived => return false,
        tcp::State::Closed => {
            if c.used {
                c.used = false;
                c.mode = Mode::New;
                s.set_nagle_enabled(true);
                let _ = s.listen(port);
            }
            return false;
        }
        _ => c.used = true,
    }
    let mut moved = false;
    loop {
        match &mut c.mode {
            Mode::New => {
                let mut b = [0u8; 1];
                match s.recv_slice(&mut b) {
                    Ok(1) => {
                        moved = true;
                        c.mode = match b[0] {
                            b'U' => Mode::Up(0),
                            b'D' => Mode::DownHeader(Vec::new()),
                            b'E' => {
                                s.set_nagle_enabled(false);
                                Mode::Echo
                            }
                            b'C' | b'I' => {
                                let _ = s.send_slice(b"c");
                                Mode::One
                            }
                            _ => {
                                s.close();
                                Mode::Done
                            }
                        };
                        continue;
                    }
                    _ => {
                        if !s.may_recv() {
                            s.close();
                            c.mode = Mode::Done;
                        }
                        return moved;
                    }
                }
            }
            Mode::DownHeader(h) => {
                let mut b = [0u8; 4];
                let want = 4 - h.len();
                if let Ok(n) = s.recv_slice(&mut b[..want]) {
                    h.extend_from_slice(&b[..n]);
                }
                if h.len() == 4 {
                    let ms = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                    c.mode = Mode::Down(Instant::now() + Duration::from_millis(ms.into()));
                    moved = true;
                    continue;
                }
                return moved;
            }
            Mode::Up(n) => {
                while let Ok(k) = s.recv(|b| (b.len(), b.len())) {
                    if k == 0 {
                        break;
                    }
                    *n += k as u64;
                    moved = true;
                }
                if !s.may_recv() {
                    let _ = s.send_slice(&n.to_be_bytes());
                    s.close();
                    c.mode = Mode::Done;
                }
                return moved;
            }
            Mode::Down(deadline) => {
                if Instant::now() >= *deadline {
                    s.close();
                    c.mode = Mode::Done;
                    return moved;
                }
                while s.can_send() {
                    match s.send_slice(pattern) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => moved = true,
                    }
                }
                // Keep polling until the deadline even when the buffer is full.
                return moved;
            }
            Mode::Echo => {
                while let Ok(k) = s.recv_slice(&mut tmp[..RR_SIZE * 16]) {
                    if k == 0 {
                        break;
                    }
                    let _ = s.send_slice(&tmp[..k]);
                    moved = true;
                }
                if !s.may_recv() {
                    s.close();
                    c.mode = Mode::Done;
                }
                return moved;
            }
            Mode::One => {
                while let Ok(k) = s.recv(|b| (b.len(), b.len())) {
                    if k == 0 {
                        break;
                    }
                }
                if !s.may_recv() {
                    s.close();
                    c.mode = Mode::Done;
                }
                return moved;
            }
            Mode::Done => return moved,
        }
    }
}

impl Server for SmolServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn cpu(&self) -> Option<Duration> {
        sys::task_cpu(self.tid)
    }
    fn retrans(&self) -> Option<u64> {
        Some(self.retrans.load(Ordering::Relaxed))
    }
    fn pin(&self, cpu: usize) {
        let _ = sys::pin(self.tid, cpu);
    }
    fn release_idle(&self) {}
    fn rx_drops(&self) -> Option<u64> {
        let fd = self.packet_fd.as_ref()?;
        let d = sys::packet_drops(fd.as_fd())?;
        Some(self.drops.fetch_add(d, Ordering::Relaxed) + d)
    }
}
