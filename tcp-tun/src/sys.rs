//! Every `unsafe` block of the crate lives here: `open(2)`, `socket(2)`,
//! `read(2)`, `write(2)`, `poll(2)` and the interface ioctls (`struct
//! ifreq` ones on an `AF_INET` socket, the `struct in6_ifreq` one on an
//! `AF_INET6` socket).
//!
//! The functions in this module are thin and return raw OS errors; the
//! caller (`lib.rs`) adds context and picks the `io::ErrorKind`.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::{c_char, c_int, c_short, c_uchar, c_ulong, c_ushort, c_void};

/// Maximum length of an interface name, including the trailing NUL.
pub(crate) const IFNAMSIZ: usize = 16;

/// Path of the TUN/TAP clone device.
pub(crate) const TUN_PATH: &CStr = c"/dev/net/tun";

/// Mirror of the kernel's `struct ifmap` (only used to give `IfReq` the
/// kernel's size and alignment on every architecture).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfMap {
    mem_start: c_ulong,
    mem_end: c_ulong,
    base_addr: c_ushort,
    irq: c_uchar,
    dma: c_uchar,
    port: c_uchar,
}

/// The part of `struct ifreq` after the name (`ifr_ifru` in the kernel).
#[repr(C)]
#[derive(Clone, Copy)]
union IfReqData {
    addr: libc::sockaddr_in,
    flags: c_short,
    int: c_int,
    map: IfMap,
    data: *mut c_void,
}

/// Our own definition of the kernel's `struct ifreq`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct IfReq {
    name: [c_char; IFNAMSIZ],
    data: IfReqData,
}

// The layout must match the C definition the kernel copies in and out.
const _: () = assert!(mem::size_of::<IfReq>() == mem::size_of::<libc::ifreq>());
const _: () = assert!(mem::align_of::<IfReq>() == mem::align_of::<libc::ifreq>());

impl IfReq {
    /// An all-zero request for interface `name`. The caller has checked that
    /// `name` is shorter than `IFNAMSIZ` and has no NUL byte; longer names
    /// are truncated here so the array always stays NUL-terminated.
    pub(crate) fn new(name: &str) -> IfReq {
        // SAFETY: `IfReq` is plain old data (integers, a raw pointer and
        // arrays of them); the all-zero bit pattern is valid for every field.
        let mut req: IfReq = unsafe { mem::zeroed() };
        for (dst, &src) in req
            .name
            .iter_mut()
            .zip(name.as_bytes().iter().take(IFNAMSIZ - 1))
        {
            *dst = src as c_char;
        }
        req
    }

    /// The interface name as written back by the kernel.
    pub(crate) fn name(&self) -> String {
        let bytes: Vec<u8> = self
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn set_flags(&mut self, flags: c_short) {
        self.data.flags = flags;
    }

    fn flags(&self) -> c_short {
        // SAFETY: every bit pattern is a valid `c_short`, and the union was
        // zero-initialised so the bytes are always initialised.
        unsafe { self.data.flags }
    }

    fn set_int(&mut self, value: c_int) {
        self.data.int = value;
    }

    fn int(&self) -> c_int {
        // SAFETY: as for `flags`: initialised bytes, any bit pattern valid.
        unsafe { self.data.int }
    }

    fn set_ipv4(&mut self, addr: Ipv4Addr) {
        // SAFETY: all-zero is a valid `sockaddr_in` (plain integers).
        let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes(addr.octets());
        self.data.addr = sin;
    }

    fn ipv4(&self) -> Ipv4Addr {
        // SAFETY: initialised bytes; `sockaddr_in` is plain integers so any
        // bit pattern is valid.
        let sin = unsafe { self.data.addr };
        Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes())
    }
}

fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `ioctl(fd, request, &mut req)` for requests that take a `struct ifreq`.
fn ioctl_ifreq(fd: BorrowedFd<'_>, request: libc::Ioctl, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the call and
    // `req` points to a properly sized and aligned `struct ifreq` that the
    // kernel may read and write; every request passed here takes one.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut IfReq) }).map(drop)
}

/// Opens `/dev/net/tun` non-blocking and close-on-exec.
pub(crate) fn open_tun() -> io::Result<OwnedFd> {
    // SAFETY: `TUN_PATH` is a NUL-terminated C string with static lifetime.
    let fd = cvt(unsafe {
        libc::open(
            TUN_PATH.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `AF_INET`/`SOCK_DGRAM` socket used only as a handle for the `SIOC*`
/// interface ioctls.
pub(crate) fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `socket` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `AF_INET6`/`SOCK_DGRAM` socket: the IPv6 address ioctls reach
/// `inet6_ioctl` only through a socket of that family. Fails with
/// `EAFNOSUPPORT` when the kernel has no IPv6 (`ipv6.disable=1`).
pub(crate) fn control_socket6() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `socket` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `TUNSETIFF`: creates or attaches to the device `name` (which may contain
/// `%d`) with the given `IFF_*` flags and returns the name the kernel chose.
pub(crate) fn tun_set_iff(fd: BorrowedFd<'_>, name: &str, flags: c_short) -> io::Result<String> {
    let mut req = IfReq::new(name);
    req.set_flags(flags);
    ioctl_ifreq(fd, libc::TUNSETIFF, &mut req)?;
    Ok(req.name())
}

/// `TUNSETPERSIST`: keeps (or stops keeping) the device after the last fd
/// is closed.
pub(crate) fn tun_set_persist(fd: BorrowedFd<'_>, persist: bool) -> io::Result<()> {
    // TUNSETPERSIST takes its argument by value, not through a pointer.
    let arg = c_ulong::from(persist);
    // SAFETY: `fd` is a live TUN descriptor; the request takes an integer
    // argument and dereferences no memory of ours.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, arg) }).map(drop)
}

/// `SIOCGIFFLAGS`.
pub(crate) fn get_flags(ctl: BorrowedFd<'_>, name: &str) -> io::Result<c_short> {
    let mut req = IfReq::new(name);
    ioctl_ifreq(ctl, libc::SIOCGIFFLAGS, &mut req)?;
    Ok(req.flags())
}

/// `SIOCSIFFLAGS`.
pub(crate) fn set_flags(ctl: BorrowedFd<'_>, name: &str, flags: c_short) -> io::Result<()> {
    let mut req = IfReq::new(name);
    req.set_flags(flags);
    ioctl_ifreq(ctl, libc::SIOCSIFFLAGS, &mut req)
}

/// `SIOCGIFMTU`.
pub(crate) fn get_mtu(ctl: BorrowedFd<'_>, name: &str) -> io::Result<c_int> {
    let mut req = IfReq::new(name);
    ioctl_ifreq(ctl, libc::SIOCGIFMTU, &mut req)?;
    Ok(req.int())
}

/// `SIOCSIFMTU`.
pub(crate) fn set_mtu(ctl: BorrowedFd<'_>, name: &str, mtu: c_int) -> io::Result<()> {
    let mut req = IfReq::new(name);
    req.set_int(mtu);
    ioctl_ifreq(ctl, libc::SIOCSIFMTU, &mut req)
}

/// `SIOCGIFINDEX`, asked through `ctl` so the answer comes from the
/// network namespace the device lives in.
pub(crate) fn get_index(ctl: BorrowedFd<'_>, name: &str) -> io::Result<c_int> {
    let mut req = IfReq::new(name);
    ioctl_ifreq(ctl, libc::SIOCGIFINDEX, &mut req)?;
    Ok(req.int())
}

/// `SIOCSIFADDR` with a `struct in6_ifreq` on an `AF_INET6` socket: adds
/// `addr/prefix` to the interface with index `index` (the kernel's
/// `addrconf_add_ifaddr`).
pub(crate) fn add_ipv6(
    ctl6: BorrowedFd<'_>,
    index: c_int,
    addr: Ipv6Addr,
    prefix: u8,
) -> io::Result<()> {
    let mut req = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: addr.octets(),
        },
        ifr6_prefixlen: u32::from(prefix),
        ifr6_ifindex: index,
    };
    // SAFETY: `ctl6` is a live AF_INET6 socket and `req` is a properly
    // sized and aligned `struct in6_ifreq` (libc's definition of the
    // kernel's `<linux/ipv6.h>` one) that lives across the call; the kernel
    // only reads it.
    cvt(unsafe {
        libc::ioctl(
            ctl6.as_raw_fd(),
            libc::SIOCSIFADDR,
            &mut req as *mut libc::in6_ifreq,
        )
    })
    .map(drop)
}

/// Which IPv4 setting an address ioctl touches.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AddrKind {
    /// `SIOCSIFADDR` / `SIOCGIFADDR`.
    Local,
    /// `SIOCSIFNETMASK` / `SIOCGIFNETMASK`.
    Netmask,
}

/// `SIOCSIFADDR` or `SIOCSIFNETMASK`.
pub(crate) fn set_ipv4(
    ctl: BorrowedFd<'_>,
    name: &str,
    kind: AddrKind,
    addr: Ipv4Addr,
) -> io::Result<()> {
    let mut req = IfReq::new(name);
    req.set_ipv4(addr);
    let request = match kind {
        AddrKind::Local => libc::SIOCSIFADDR,
        AddrKind::Netmask => libc::SIOCSIFNETMASK,
    };
    ioctl_ifreq(ctl, request, &mut req)
}

/// `SIOCGIFADDR` or `SIOCGIFNETMASK`.
pub(crate) fn get_ipv4(ctl: BorrowedFd<'_>, name: &str, kind: AddrKind) -> io::Result<Ipv4Addr> {
    let mut req = IfReq::new(name);
    let request = match kind {
        AddrKind::Local => libc::SIOCGIFADDR,
        AddrKind::Netmask => libc::SIOCGIFNETMASK,
    };
    ioctl_ifreq(ctl, request, &mut req)?;
    Ok(req.ipv4())
}

/// `if_nametoindex(3)`; `None` when no interface has that name.
pub(crate) fn if_index(name: &str) -> Option<u32> {
    let mut buf = [0u8; IFNAMSIZ];
    if name.len() >= IFNAMSIZ || name.as_bytes().contains(&0) {
        return None;
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `buf` is NUL-terminated (name is shorter than the buffer) and
    // outlives the call.
    let index = unsafe { libc::if_nametoindex(buf.as_ptr() as *const c_char) };
    (index != 0).then_some(index)
}

/// `read(2)`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call and `fd` is a live descriptor.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut c_void, buf.len()) })
}

/// `write(2)`.
pub(crate) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole
    // call and `fd` is a live descriptor.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr() as *const c_void, buf.len()) })
}

/// `poll(2)` for `POLLIN`; returns whether the fd became readable before
/// `timeout_ms` elapsed (negative: wait forever).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: c_int) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a single valid `pollfd` that lives across the call.
    let n = cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
}

/// `TUNSETVNETHDRSZ`: the size of the virtio-net header in front of every
/// packet (only meaningful with `IFF_VNET_HDR`).
pub(crate) fn tun_set_vnet_hdr_sz(fd: BorrowedFd<'_>, size: c_int) -> io::Result<()> {
    // SAFETY: `fd` is a live TUN descriptor; the request reads one `int`
    // through the pointer, which points to a live local for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size as *const c_int) })
        .map(drop)
}

/// `TUNSETVNETLE`: little-endian virtio-net header fields (1) or the
/// default legacy rule, host byte order (0).
pub(crate) fn tun_set_vnet_le(fd: BorrowedFd<'_>, le: bool) -> io::Result<()> {
    let arg = c_int::from(le);
    // SAFETY: as for `tun_set_vnet_hdr_sz`: one `int` read through a
    // pointer to a live local.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETLE, &arg as *const c_int) }).map(drop)
}

/// `TUNSETOFFLOAD`: which `TUN_F_*` offloads the kernel may hand us
/// (checksum-partial packets, TSO super-packets).
pub(crate) fn tun_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // TUNSETOFFLOAD takes its argument by value, not through a pointer.
    let arg = c_ulong::from(flags);
    // SAFETY: `fd` is a live TUN descriptor; the request takes an integer
    // argument and dereferences no memory of ours.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, arg) }).map(drop)
}

/// `readv(2)` into a header buffer then a packet buffer; returns the total
/// bytes read (header included).
pub(crate) fn read2(fd: BorrowedFd<'_>, head: &mut [u8], body: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_mut_ptr() as *mut c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_mut_ptr() as *mut c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs describe buffers valid for writes of their
    // lengths for the whole call (exclusive borrows), `iov` holds exactly
    // 2 entries, and `fd` is a live descriptor.
    cvt_size(unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 2) })
}

/// `writev(2)` of a header then a packet; returns the total bytes written.
pub(crate) fn write2(fd: BorrowedFd<'_>, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs describe buffers valid for reads of their lengths
    // for the whole call (the kernel only reads through them despite the
    // `*mut` in `iovec`), `iov` holds 2 entries, `fd` is live.
    cvt_size(unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) })
}
