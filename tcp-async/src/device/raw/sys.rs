//! The `AF_PACKET` socket: creation, interface queries, options, and the
//! batched receive and send. All the `unsafe` of the raw device lives here.

use super::{RawDegraded, RxQueue, RX_BATCH, TX_BATCH};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use tcp_tun::VirtioNetHdr;

/// A configured, bound, non-blocking packet socket and what was learnt of
/// its interface.
pub(super) struct Opened {
    pub socket: Socket,
    pub index: u32,
    pub mtu: usize,
    pub mac: [u8; 6],
    pub degraded: RawDegraded,
}

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` take it.
fn eth_p_all() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// Checks `name` as the kernel's `dev_valid_name` does.
fn validate_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    Ok(())
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// An `SIOCGIF*` query on `fd`: an error names the interface, and a
/// missing one is `NotFound`.
fn query(fd: RawFd, name: &str, request: libc::Ioctl, what: &str) -> io::Result<libc::ifreq> {
    let mut req = ifreq(name);
    // SAFETY: every `SIOCGIF*` request reads the name and writes the union
    // of the `ifreq` we pass, which lives across the call.
    if unsafe { libc::ioctl(fd, request, &mut req as *mut libc::ifreq) } < 0 {
        let err = io::Error::last_os_error();
        let kind = match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => io::ErrorKind::NotFound,
            _ => err.kind(),
        };
        return Err(io::Error::new(
            kind,
            format!("{what} of interface {name}: {err}"),
        ));
    }
    Ok(req)
}

/// `setsockopt(SOL_PACKET, opt)` with `value`.
fn set_packet_opt<T>(fd: RawFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size we pass; the kernel copies it.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            opt,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(super) fn open(name: &str) -> io::Result<Opened> {
    validate_name(name)?;
    // Protocol 0: nothing is received until `bind` names one, after the
    // options below (so no frame is queued without its virtio-net header).
    let socket =
        Socket::new(Domain::PACKET, Type::RAW, None).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("AF_PACKET socket for {name}: {e}: run as root or grant CAP_NET_RAW"),
            ),
            _ => e,
        })?;
    let fd = socket.as_raw_fd();
    let req = query(fd, name, libc::SIOCGIFINDEX, "SIOCGIFINDEX")?;
    // SAFETY: SIOCGIFINDEX wrote the `ifru_ifindex` member.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    let req = query(fd, name, libc::SIOCGIFHWADDR, "SIOCGIFHWADDR")?;
    // SAFETY: SIOCGIFHWADDR wrote the `ifru_hwaddr` member.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "interface {name} is not Ethernet (hardware type {})",
                hw.sa_family
            ),
        ));
    }
    let mut mac = [0u8; 6];
    for (m, &b) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *m = b as u8;
    }
    let req = query(fd, name, libc::SIOCGIFMTU, "SIOCGIFMTU")?;
    // SAFETY: SIOCGIFMTU wrote the `ifru_mtu` member.
    let mtu = usize::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(0);

    let one: libc::c_int = 1;
    let mut degraded = RawDegraded::default();
    if let Err(e) = set_packet_opt(fd, libc::PACKET_VNET_HDR, &one) {
        tracing::warn!(error = %e, iface = name, "PACKET_VNET_HDR refused: no offloads");
        degraded.vnet_hdr = true;
    }
    if let Err(e) = set_packet_opt(fd, libc::PACKET_IGNORE_OUTGOING, &one) {
        tracing::debug!(error = %e, iface = name, "PACKET_IGNORE_OUTGOING refused");
        degraded.ignore_outgoing = true;
    }
    // Not with offloads: a bypassing send (`packet_direct_xmit`) drops any
    // packet the kernel would have to change on the way (a super-packet
    // segmented in software when the interface has no TSO, or a checksum
    // finished for lack of checksum offload), failing with ENOBUFS.
    if degraded.vnet_hdr {
        if let Err(e) = set_packet_opt(fd, libc::PACKET_QDISC_BYPASS, &one) {
            tracing::debug!(error = %e, iface = name, "PACKET_QDISC_BYPASS refused");
            degraded.qdisc_bypass = true;
        }
    }
    // SAFETY: `packet_mreq` is plain old data; all zeroes is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
    mreq.mr_ifindex = index;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as libc::c_ushort;
    if let Err(e) = set_packet_opt(fd, libc::PACKET_ADD_MEMBERSHIP, &mreq) {
        tracing::warn!(error = %e, iface = name, "PACKET_MR_ALLMULTI refused");
        degraded.allmulti = true;
    }

    // SAFETY: the closure writes a `sockaddr_ll`, which fits in the
    // zeroed `sockaddr_storage` it is given, and sets its length.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let ll = storage.cast::<libc::sockaddr_ll>();
            (*ll).sll_family = libc::AF_PACKET as libc::c_ushort;
            (*ll).sll_protocol = eth_p_all();
            (*ll).sll_ifindex = index;
            *len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }?;
    socket
        .bind(&addr)
        .map_err(|e| io::Error::new(e.kind(), format!("bind to interface {name}: {e}")))?;
    socket.set_nonblocking(true)?;
    Ok(Opened {
        socket,
        index: u32::try_from(index).unwrap_or(0),
        mtu,
        mac,
        degraded,
    })
}

/// What one `recvmmsg` brought.
pub(super) struct Batch {
    /// Frames read (including dropped ones).
    pub frames: u64,
    /// Of those, frames dropped: truncated, too short for the virtio-net
    /// header, or our own transmits read back.
    pub dropped: u64,
}

/// Reads up to [`RX_BATCH`] frames into `rx` with one `recvmmsg(2)`
/// (each after its virtio-net header when `vnet`), replacing what it held.
/// `WouldBlock` when none is queued.
pub(super) fn recv_batch(fd: RawFd, rx: &mut RxQueue, vnet: bool) -> io::Result<Batch> {
    // SAFETY (zeroed): iovec, msghdr, mmsghdr and sockaddr_ll are plain
    // old data; all zeroes is a valid value of each.
    let mut iovs: [[libc::iovec; 2]; RX_BATCH] = unsafe { mem::zeroed() };
    let mut addrs: [libc::sockaddr_ll; RX_BATCH] = unsafe { mem::zeroed() };
    let mut msgs: [libc::mmsghdr; RX_BATCH] = unsafe { mem::zeroed() };
    let RxQueue { frames, hdrs, .. } = rx;
    for (i, ((iov, msg), addr)) in iovs
        .iter_mut()
        .zip(msgs.iter_mut())
        .zip(addrs.iter_mut())
        .enumerate()
    {
        let frame = libc::iovec {
            iov_base: frames[i].as_mut_ptr().cast(),
            iov_len: frames[i].len(),
        };
        if vnet {
            iov[0] = libc::iovec {
                iov_base: hdrs[i].as_mut_ptr().cast(),
                iov_len: VirtioNetHdr::LEN,
            };
            iov[1] = frame;
        } else {
            iov[0] = frame;
        }
        msg.msg_hdr.msg_iov = iov.as_mut_ptr();
        msg.msg_hdr.msg_iovlen = if vnet { 2 } else { 1 };
        msg.msg_hdr.msg_name = (addr as *mut libc::sockaddr_ll).cast();
        msg.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    }
    // SAFETY: every message points at buffers (frames and headers in `rx`,
    // iovecs and addresses on this stack frame) that outlive the call and
    // are described by their true lengths.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            RX_BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        rx.filled = 0;
        rx.next = 0;
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).min(RX_BATCH);
    let head = if vnet { VirtioNetHdr::LEN } else { 0 };
    let mut dropped = 0;
    for i in 0..n {
        let msg = &msgs[i].msg_hdr;
        let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
        let ours = addrs[i].sll_pkttype == libc::PACKET_OUTGOING;
        let len = (msgs[i].msg_len as usize).checked_sub(head);
        rx.lens[i] = match len {
            Some(len) if !truncated && !ours => len,
            _ => {
                dropped += 1;
                0
            }
        };
    }
    rx.filled = n;
    rx.next = 0;
    Ok(Batch {
        frames: n as u64,
        dropped,
    })
}

/// Writes `frames` with one `sendmmsg(2)`, each after its virtio-net
/// header from `hdrs` when `vnet`; returns how many the kernel took (at
/// least one). The first frame's error otherwise: `WouldBlock` when the
/// socket has no room, `ENOBUFS` when the kernel dropped it.
pub(super) fn send_batch(
    fd: RawFd,
    frames: &[&[u8]],
    hdrs: &[[u8; VirtioNetHdr::LEN]],
    vnet: bool,
) -> io::Result<usize> {
    let n = frames.len().min(TX_BATCH).min(hdrs.len());
    // SAFETY (zeroed): iovec and mmsghdr are plain old data; all zeroes is
    // a valid value of each.
    let mut iovs: [[libc::iovec; 2]; TX_BATCH] = unsafe { mem::zeroed() };
    let mut msgs: [libc::mmsghdr; TX_BATCH] = unsafe { mem::zeroed() };
    for i in 0..n {
        // `iov_base` is `*mut` in C; the kernel only reads what is sent.
        let frame = libc::iovec {
            iov_base: frames[i].as_ptr().cast_mut().cast(),
            iov_len: frames[i].len(),
        };
        if vnet {
            iovs[i][0] = libc::iovec {
                iov_base: hdrs[i].as_ptr().cast_mut().cast(),
                iov_len: VirtioNetHdr::LEN,
            };
            iovs[i][1] = frame;
        } else {
            iovs[i][0] = frame;
        }
        // The socket is bound to its interface: no destination address.
        msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
        msgs[i].msg_hdr.msg_iovlen = if vnet { 2 } else { 1 };
    }
    // SAFETY: the first `n` messages point at iovecs on this stack frame
    // that describe, by their true lengths, the caller's frames and
    // headers, all of which outlive the call; the kernel only reads them.
    let sent =
        unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((sent as usize).clamp(1, n.max(1)))
}
