//! [`RawDevice`]: an Ethernet interface through an `AF_PACKET` socket.

mod sys;

use super::vnet::{self, gso_header};
use super::{Device, Medium, Offloads, RxPacket, TxHeaders, TxPacket};
use socket2::Socket;
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tcp_tun::VirtioNetHdr;
use tokio::io::unix::AsyncFd;

/// Bytes of an Ethernet header (destination, source, EtherType).
const ETH_HLEN: usize = 14;

/// Frames read by one `recvmmsg(2)`.
const RX_BATCH: usize = 16;

/// Frames written by one `sendmmsg(2)`.
const TX_BATCH: usize = 32;

/// A receive buffer: the largest IP super-packet behind an Ethernet header.
const FRAME_MAX: usize = ETH_HLEN + Offloads::MAX_SUPER_PACKET;

/// Counters of a [`RawDevice`], shared with whoever took them through
/// [`RawDevice::counters`] (the device itself moves into the driver).
#[derive(Debug, Default)]
pub struct RawCounters {
    /// `recvmmsg` calls that returned frames.
    pub rx_batches: AtomicU64,
    /// Frames those calls returned.
    pub rx_frames: AtomicU64,
    /// Frames received larger than MTU + 14 (GRO, or TSO of a local sender).
    pub rx_super: AtomicU64,
    /// Frames received with a partial checksum (vouched for, not checked).
    pub rx_partial: AtomicU64,
    /// Frames dropped on receive: truncated, or shorter than the
    /// virtio-net header.
    pub rx_dropped: AtomicU64,
    /// `sendmmsg` calls that sent frames (`poll_send_batch`).
    pub tx_batches: AtomicU64,
    /// Frames those calls sent.
    pub tx_frames: AtomicU64,
    /// Super-packets sent (`poll_send_gso`, or in a batch).
    pub tx_super: AtomicU64,
    /// Segments those super-packets hold.
    pub tx_super_segments: AtomicU64,
    /// Frames the kernel refused for lack of buffer or queue room
    /// (`ENOBUFS`): dropped, as a NIC's full queue drops.
    pub tx_dropped: AtomicU64,
}

/// Socket options [`RawDevice::open`] could not set; the device works
/// without them, in a degraded way (see [`RawDevice`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawDegraded {
    /// `PACKET_IGNORE_OUTGOING` (Linux 4.20): our own transmits are read
    /// back and dropped in user space by their packet type instead.
    pub ignore_outgoing: bool,
    /// `PACKET_QDISC_BYPASS` (Linux 3.14) refused: transmits go through
    /// the interface's queueing discipline. (With offloads it is never
    /// asked for, see [`RawDevice`]; that is not counted as degraded.)
    pub qdisc_bypass: bool,
    /// `PACKET_ADD_MEMBERSHIP` with `PACKET_MR_ALLMULTI`: only the multicast
    /// groups the kernel joined itself arrive (IPv6 neighbour discovery for
    /// our own solicited-node group may not).
    pub allmulti: bool,
    /// `PACKET_VNET_HDR`: no offloads (no TSO, every checksum checked, and
    /// a peer's partial checksums arrive unfinished).
    pub vnet_hdr: bool,
}

/// A [`Device`] on an Ethernet interface (a veth, a NIC) through an
/// `AF_PACKET`/`SOCK_RAW` socket bound to it: whole Ethernet frames both
/// ways ([`Medium::Ethernet`]), beside the kernel's own stack on the same
/// interface.
///
/// The socket receives every EtherType (`ETH_P_ALL`), ignores our own
/// transmits (`PACKET_IGNORE_OUTGOING`), sends straight to the driver
/// (`PACKET_QDISC_BYPASS`, only without offloads: see below) and receives all multicast (`PACKET_MR_ALLMULTI`,
/// which IPv6 neighbour discovery needs for the solicited-node groups of
/// addresses the kernel does not know). [`mtu`](Device::mtu) is the
/// interface's (`SIOCGIFMTU`, the IP MTU; frames are 14 bytes longer) and
/// [`mac_address`](Device::mac_address) its hardware address
/// (`SIOCGIFHWADDR`).
///
/// # Offloads
///
/// With `PACKET_VNET_HDR` (any interface; the kernel segments in software
/// where the driver has no TSO) every frame carries a [`VirtioNetHdr`], as
/// on a TUN opened with offloads, and the device advertises [`Offloads`] of
/// 64 KB both ways: TCP super-packets out, their header built from the
/// core's [`TxHeaders`] (offsets counted from the frame start, Ethernet
/// header included), and super-packets from GRO or a local sender's TSO in,
/// their partial checksums reported as [`RxChecksum::Partial`] (completed
/// in software, at the offsets the kernel gave, for a plain
/// [`poll_recv`](Device::poll_recv)).
///
/// The socket then keeps the queueing discipline: a send that bypasses it
/// (`PACKET_QDISC_BYPASS`, `packet_direct_xmit`) drops every packet the
/// kernel must change on the way, so a super-packet to an interface
/// without TSO (`ethtool -K ... tso off`), which the kernel would cut in
/// software, was lost with `ENOBUFS` (measured on a veth, Linux 6.18).
///
/// # Batching
///
/// Receives read up to 16 frames per `recvmmsg(2)` into the device's own
/// buffers, then hand them out one per `poll_recv`: one system call per
/// batch instead of per frame, for one extra copy per frame. Measured
/// (`raw_device_rx_batching_measure`, 20,000 queued frames on a veth,
/// Linux 6.18, test profile, 2 shared cores): 60-byte frames 885-916 ns
/// per frame against 966-973 ns with one `recv` each (5-9% less); 1514-byte
/// frames 1037-1064 against 1040-1051 ns (the same: the kernel's per-frame
/// work dominates). TPACKET_V3 rings were not tried. Sends take up to 32
/// frames per `sendmmsg(2)`: the driver hands over what the core has due
/// in one [`Device::poll_send_batch`] call, so nothing waits for a batch
/// to fill (see `raw_device_tx_batching_measure` for what it saves);
/// `poll_send` and `poll_send_gso` remain one `sendmsg(2)` each.
///
/// # Degraded
///
/// An option the kernel refuses (an old kernel) is left off and reported
/// in [`degraded`](RawDevice::degraded) and `Debug`, rather than failing
/// the open; only the socket itself, its binding and the interface queries
/// are required.
pub struct RawDevice {
    fd: AsyncFd<Socket>,
    name: String,
    index: u32,
    mtu: usize,
    mac: [u8; 6],
    vnet: bool,
    degraded: RawDegraded,
    rx: RxQueue,
    counters: Arc<RawCounters>,
}

impl fmt::Debug for RawDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDevice")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("mtu", &self.mtu)
            .field("mac", &format_args!("{}", MacFmt(self.mac)))
            .field("vnet_hdr", &self.vnet)
            .field("degraded", &self.degraded)
            .field("rx_queued", &(self.rx.filled - self.rx.next))
            .finish()
    }
}

struct MacFmt([u8; 6]);

impl fmt::Display for MacFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Frames read by the last `recvmmsg`, handed out one at a time.
struct RxQueue {
    frames: Vec<Box<[u8]>>,
    hdrs: [[u8; VirtioNetHdr::LEN]; RX_BATCH],
    /// Per frame: its length (0: dropped).
    lens: [usize; RX_BATCH],
    filled: usize,
    next: usize,
}

impl RxQueue {
    fn new() -> RxQueue {
        RxQueue {
            frames: (0..RX_BATCH)
                .map(|_| vec![0u8; FRAME_MAX].into_boxed_slice())
                .collect(),
            hdrs: [[0; VirtioNetHdr::LEN]; RX_BATCH],
            lens: [0; RX_BATCH],
            filled: 0,
            next: 0,
        }
    }

    /// Copies the next queued frame into `buf` (truncating it to `buf`),
    /// skipping dropped ones.
    fn pop(&mut self, buf: &mut [u8], vnet: bool) -> Option<(VirtioNetHdr, usize)> {
        while self.next < self.filled && self.lens[self.next] == 0 {
            self.next += 1;
        }
        if self.next >= self.filled {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let hdr = if vnet {
            VirtioNetHdr::decode(&self.hdrs[i]).unwrap_or_default()
        } else {
            VirtioNetHdr::plain()
        };
        let n = self.lens[i].min(buf.len());
        buf[..n].copy_from_slice(&self.frames[i][..n]);
        Some((hdr, n))
    }
}

impl RawDevice {
    /// Opens an `AF_PACKET` socket on the Ethernet interface `ifname` (in
    /// the calling thread's network namespace) and registers it with the
    /// Tokio reactor. See the type docs for the options it sets.
    ///
    /// # Errors
    ///
    /// - `InvalidInput`: a name that cannot be an interface name.
    /// - `PermissionDenied`: no `CAP_NET_RAW`.
    /// - `NotFound`: no interface of that name (named in the message).
    /// - `Unsupported`: the interface is not Ethernet (`ARPHRD_ETHER`).
    /// - `Other`: outside a Tokio runtime (with I/O enabled).
    /// - the raw OS error of a failed `bind(2)` or reactor registration.
    pub fn open(ifname: &str) -> io::Result<RawDevice> {
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let raw = sys::open(ifname)?;
        // SAFETY: `Socket` owns its fd (closed only when the socket drops)
        // and `as_raw_fd` always returns that same fd, so it stays open and
        // unchanged for the `AsyncFd`'s whole life.
        let fd = unsafe { AsyncFd::register(raw.socket) }.map_err(io::Error::from)?;
        Ok(RawDevice {
            fd,
            name: ifname.to_owned(),
            index: raw.index,
            mtu: raw.mtu,
            mac: raw.mac,
            vnet: !raw.degraded.vnet_hdr,
            degraded: raw.degraded,
            rx: RxQueue::new(),
            counters: Arc::default(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The options that could not be set (all `false` on a current kernel).
    pub fn degraded(&self) -> RawDegraded {
        self.degraded
    }

    /// Whether frames carry a virtio-net header (`PACKET_VNET_HDR`), which
    /// enables the offloads.
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet
    }

    /// The counters.
    pub fn counters(&self) -> Arc<RawCounters> {
        self.counters.clone()
    }

    /// The socket.
    pub fn get_ref(&self) -> &Socket {
        self.fd.get_ref()
    }

    fn poll_recv_hdr(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(VirtioNetHdr, usize)>> {
        loop {
            if let Some(frame) = self.rx.pop(buf, self.vnet) {
                return Poll::Ready(Ok(frame));
            }
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let (rx, vnet, mtu) = (&mut self.rx, self.vnet, self.mtu);
            // `try_io` clears the readiness on `WouldBlock`: poll again.
            let Ok(result) = guard.try_io(|sock| sys::recv_batch(sock.as_raw_fd(), rx, vnet))
            else {
                continue;
            };
            let stats = result?;
            // A short batch drained the socket's queue (`recvmmsg` stops
            // at the first `EAGAIN`): clear the readiness now rather than
            // learn it from a second, empty call. A frame queued after the
            // call raises a new edge-triggered event, so none is missed
            // (`tokio`'s own streams do the same after a short read).
            if stats.frames < RX_BATCH as u64 {
                guard.clear_ready();
            }
            let c = &self.counters;
            c.rx_batches.fetch_add(1, Ordering::Relaxed);
            c.rx_frames.fetch_add(stats.frames, Ordering::Relaxed);
            c.rx_dropped.fetch_add(stats.dropped, Ordering::Relaxed);
            let big = rx.lens[..rx.filled]
                .iter()
                .filter(|&&n| n > mtu + ETH_HLEN)
                .count();
            c.rx_super.fetch_add(big as u64, Ordering::Relaxed);
        }
    }

    /// The virtio-net header of a super-packet, from the layout the core
    /// gave (the device never parses TCP).
    fn gso_hdr(
        &self,
        frame: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> io::Result<VirtioNetHdr> {
        if !self.vnet {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this packet socket has no virtio-net header (PACKET_VNET_HDR)",
            ));
        }
        gso_header(headers, segment_size, frame.len()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a TCP super-packet (headers say no TCP header, or more than the frame)",
            )
        })
    }

    /// Writes one frame (after `hdr` with a virtio-net header); false if
    /// the kernel dropped it for lack of room (counted).
    fn send_one(&self, hdr: &VirtioNetHdr, frame: &[u8]) -> io::Result<bool> {
        let sock = self.fd.get_ref();
        let result = if self.vnet {
            let head = hdr.encode();
            sock.send_vectored(&[IoSlice::new(&head), IoSlice::new(frame)])
        } else {
            sock.send(frame)
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.counters.tx_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn poll_send_hdr(
        &mut self,
        cx: &mut Context<'_>,
        hdr: &VirtioNetHdr,
        frame: &[u8],
    ) -> Poll<io::Result<bool>> {
        // Write first, consult the reactor only after `WouldBlock` (as for
        // a TUN: a packet socket's send rarely blocks).
        match self.send_one(hdr, frame) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let this = &*self;
            if let Ok(result) = guard.try_io(|_| this.send_one(hdr, frame)) {
                return Poll::Ready(result);
            }
        }
    }
}

impl Device for RawDevice {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let (hdr, len) = ready!(self.poll_recv_hdr(cx, buf))?;
        vnet::complete_rx(&hdr, &mut buf[..len]);
        Poll::Ready(Ok(len))
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, frame: &[u8]) -> Poll<io::Result<()>> {
        self.poll_send_hdr(cx, &VirtioNetHdr::plain(), frame)
            .map_ok(drop)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    fn mac_address(&self) -> Option<[u8; 6]> {
        Some(self.mac)
    }

    fn offloads(&self) -> Offloads {
        Offloads::super_packets(self.vnet)
    }

    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        let (hdr, len) = ready!(self.poll_recv_hdr(cx, buf))?;
        Poll::Ready(Ok(vnet::rx_packet(&hdr, len, &self.counters.rx_partial)))
    }

    /// Up to 32 frames per `sendmmsg(2)`, each with its virtio-net header
    /// (a super-packet's built from its `headers`, as in `poll_send_gso`).
    ///
    /// # Errors
    /// The first frame's: as `poll_send_gso` for a super-packet the device
    /// cannot send; a frame the kernel drops for lack of room (`ENOBUFS`)
    /// is counted in `tx_dropped` and reported as taken, as in `poll_send`.
    fn poll_send_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &[TxPacket<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut frames: [&[u8]; TX_BATCH] = [&[]; TX_BATCH];
        let mut hdrs = [[0u8; VirtioNetHdr::LEN]; TX_BATCH];
        // Segments of each super-packet (0: a plain frame), for the counters.
        let mut segments = [0u64; TX_BATCH];
        let mut n = 0;
        for p in batch.iter().take(TX_BATCH) {
            let hdr = match p.segment_size {
                None => VirtioNetHdr::plain(),
                Some(size) => match self.gso_hdr(p.data, size, p.headers) {
                    Ok(hdr) => {
                        segments[n] = vnet::segments(&hdr, p.data.len()).max(1);
                        hdr
                    }
                    // Send what came before; this one fails on the next call.
                    Err(_) if n > 0 => break,
                    Err(e) => return Poll::Ready(Err(e)),
                },
            };
            frames[n] = p.data;
            hdrs[n] = hdr.encode();
            n += 1;
        }
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let (frames, hdrs) = (&frames[..n], &hdrs[..n]);
        let vnet = self.vnet;
        let send = |fd: &Socket| sys::send_batch(fd.as_raw_fd(), frames, hdrs, vnet);
        // Write first, consult the reactor only after `WouldBlock` (as for
        // one frame).
        let result = match send(self.fd.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => loop {
                let mut guard = ready!(self.fd.poll_write_ready(cx))?;
                if let Ok(result) = guard.try_io(|fd| send(fd.get_ref())) {
                    break result;
                }
            },
            result => result,
        };
        let c = &self.counters;
        match result {
            Ok(sent) => {
                c.tx_batches.fetch_add(1, Ordering::Relaxed);
                c.tx_frames.fetch_add(sent as u64, Ordering::Relaxed);
                let supers = segments[..sent].iter().filter(|&&s| s > 0);
                c.tx_super
                    .fetch_add(supers.clone().count() as u64, Ordering::Relaxed);
                c.tx_super_segments
                    .fetch_add(supers.sum::<u64>(), Ordering::Relaxed);
                Poll::Ready(Ok(sent))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                c.tx_dropped.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Ok(1))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// # Errors
    /// `Unsupported` without `PACKET_VNET_HDR`; `InvalidInput` if `headers`
    /// describe no TCP header within `frame`.
    fn poll_send_gso(
        &mut self,
        cx: &mut Context<'_>,
        frame: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        let hdr = self.gso_hdr(frame, segment_size, headers)?;
        let sent = ready!(self.poll_send_hdr(cx, &hdr, frame))?;
        if sent {
            let c = &self.counters;
            c.tx_super.fetch_add(1, Ordering::Relaxed);
            c.tx_super_segments
                .fetch_add(vnet::segments(&hdr, frame.len()), Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}
