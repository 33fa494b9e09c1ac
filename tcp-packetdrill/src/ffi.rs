//! The C boundary: packetdrill's `struct packetdrill_interface` and one
//! `extern "C"` function per slot. This is the only module (with
//! `hostfd`) that holds unsafe code; each function checks its pointers,
//! turns them into slices, calls the safe shim, and converts the result to
//! a C return value and `errno`. No panic crosses the boundary: each body
//! runs under `catch_unwind`, and a panic becomes -1 with EIO.

use crate::errno::{Errno, SysResult};
use crate::shim::{Received, Shim};
use libc::{
    c_char, c_int, c_uint, c_ulong, c_void, epoll_event, iovec, loff_t, msghdr, nfds_t, pollfd,
    size_t, sockaddr, socklen_t, ssize_t, timeval,
};
use std::ffi::CStr;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

// fcntl and ioctl are variadic in C. Rust cannot define a variadic
// function on stable, so their slots take the one optional argument as a
// fixed parameter. On the Linux x86-64 and AArch64 calling conventions a
// variadic integer or pointer argument travels in the same register as a
// fixed one would, so this reads what the caller passed; elsewhere it
// would not be sound, hence:
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("tcp-packetdrill's fcntl/ioctl slots assume Linux on x86-64 or AArch64");

/// packetdrill's `struct packetdrill_interface` (its `packetdrill.h`),
/// field for field. Every slot is filled; packetdrill calls them without
/// checking for NULL.
#[repr(C)]
pub struct PacketdrillInterface {
    pub userdata: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub socket: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub listen: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub accept:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut sockaddr, *mut socklen_t) -> c_int>,
    pub connect:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub read: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t) -> ssize_t>,
    pub readv: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub recv:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    pub recvfrom: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    pub recvmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut msghdr, c_int) -> ssize_t>,
    pub write: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t) -> ssize_t>,
    pub writev: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub send:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    pub sendto: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    pub sendmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *const msghdr, c_int) -> ssize_t>,
    /// C: `int (*fcntl)(void *, int fd, int cmd, ...)`; the optional
    /// argument is an `int` for the commands supported.
    pub fcntl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int>,
    /// C: `int (*ioctl)(void *, int fd, unsigned long request, ...)`; the
    /// optional argument is an `int *` for the requests supported.
    pub ioctl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_ulong, *mut c_int) -> c_int>,
    pub close: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub shutdown: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub getsockopt: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            c_int,
            c_int,
            *mut c_void,
            *mut socklen_t,
        ) -> c_int,
    >,
    pub setsockopt: Option<
        unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
    >,
    pub poll: Option<unsafe extern "C" fn(*mut c_void, *mut pollfd, nfds_t, c_int) -> c_int>,
    pub netdev_send: Option<unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> c_int>,
    pub netdev_receive:
        Option<unsafe extern "C" fn(*mut c_void, *mut c_void, *mut size_t, *mut i64) -> c_int>,
    pub usleep: Option<unsafe extern "C" fn(*mut c_void, c_uint) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(*mut c_void, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub epoll_ctl:
        Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut epoll_event) -> c_int>,
    pub epoll_wait:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut epoll_event, c_int, c_int) -> c_int>,
    pub pipe: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    pub splice: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut loff_t,
            c_int,
            *mut loff_t,
            size_t,
            c_uint,
        ) -> ssize_t,
    >,
}

/// The interface with every slot filled and `userdata` pointing at `shim`
/// (a leaked `Box`, reclaimed by the `free` slot).
pub fn interface(shim: Box<Shim>) -> PacketdrillInterface {
    PacketdrillInterface {
        userdata: Box::into_raw(shim).cast(),
        free: Some(pd_free),
        socket: Some(pd_socket),
        bind: Some(pd_bind),
        listen: Some(pd_listen),
        accept: Some(pd_accept),
        connect: Some(pd_connect),
        read: Some(pd_read),
        readv: Some(pd_readv),
        recv: Some(pd_recv),
        recvfrom: Some(pd_recvfrom),
        recvmsg: Some(pd_recvmsg),
        write: Some(pd_write),
        writev: Some(pd_writev),
        send: Some(pd_send),
        sendto: Some(pd_sendto),
        sendmsg: Some(pd_sendmsg),
        fcntl: Some(pd_fcntl),
        ioctl: Some(pd_ioctl),
        close: Some(pd_close),
        shutdown: Some(pd_shutdown),
        getsockopt: Some(pd_getsockopt),
        setsockopt: Some(pd_setsockopt),
        poll: Some(pd_poll),
        netdev_send: Some(pd_netdev_send),
        netdev_receive: Some(pd_netdev_receive),
        usleep: Some(pd_usleep),
        gettimeofday: Some(pd_gettimeofday),
        epoll_create: Some(pd_epoll_create),
        epoll_ctl: Some(pd_epoll_ctl),
        epoll_wait: Some(pd_epoll_wait),
        pipe: Some(pd_pipe),
        splice: Some(pd_splice),
    }
}

/// Reads the flags string packetdrill passes (NULL without `--so_flags`).
///
/// # Safety
/// `flags` is NULL or a NUL-terminated string.
pub unsafe fn flags_str(flags: *const c_char) -> Option<String> {
    if flags.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    Some(
        unsafe { CStr::from_ptr(flags) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn set_errno(e: Errno) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's lifetime.
    unsafe { *libc::__errno_location() = e.0 };
}

/// Runs `f` without letting a panic escape; maps its result to a C return
/// value, setting errno on failure.
fn guard<T: Into<i64>>(f: impl FnOnce() -> SysResult<T>) -> i64 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v.into(),
        Ok(Err(e)) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            eprintln!("tcp-packetdrill: a call panicked; failing it with EIO");
            set_errno(Errno::EIO);
            -1
        }
    }
}

fn int(v: i64) -> c_int {
    c_int::try_from(v).unwrap_or(-1)
}

fn ssize(v: i64) -> ssize_t {
    v as ssize_t
}

fn count(n: usize) -> SysResult<i64> {
    i64::try_from(n).map_err(|_| Errno::EINVAL)
}

/// The shim behind `userdata`.
///
/// # Safety
/// `userdata` is NULL or the pointer [`interface`] stored, not yet freed.
unsafe fn shim<'a>(userdata: *mut c_void) -> SysResult<&'a Shim> {
    // SAFETY: per the contract, a non-NULL pointer is a live Box<Shim>;
    // it is only read through shared references until `free`.
    unsafe { userdata.cast::<Shim>().as_ref() }.ok_or(Errno::EFAULT)
}

/// A byte slice from a C buffer; NULL is only accepted with length 0.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(p: *const c_void, len: usize) -> SysResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() || len > isize::MAX as usize {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid for `len` bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A mutable byte slice from a C buffer; NULL is only accepted with length 0.
///
/// # Safety
/// `p` is NULL or valid for writes of `len` bytes for `'a`, and not
/// otherwise accessed meanwhile.
unsafe fn bytes_mut<'a>(p: *mut c_void, len: usize) -> SysResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() || len > isize::MAX as usize {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid for `len` writable bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// Linux UIO_MAXIOV: the most iovecs one call takes.
const UIO_MAXIOV: usize = 1024;
/// The most bytes one vectored call moves (a short count is allowed).
const MAX_VECTORED: usize = 64 << 20;

/// The iovec array of a vectored call.
///
/// # Safety
/// `iov` is NULL or valid for reads of `n` iovecs.
unsafe fn iovecs<'a>(iov: *const iovec, n: usize) -> SysResult<&'a [iovec]> {
    if n > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    if n == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL, `n` iovecs readable per the contract.
    Ok(unsafe { std::slice::from_raw_parts(iov, n) })
}

/// Bytes gathered from iovecs (for the write family).
///
/// # Safety
/// Each iovec's base is valid for reads of its length.
unsafe fn gather(iov: &[iovec]) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    for v in iov {
        let room = MAX_VECTORED - out.len();
        // SAFETY: per the contract.
        let b = unsafe { bytes(v.iov_base, v.iov_len.min(room)) }?;
        out.extend_from_slice(b);
    }
    Ok(out)
}

/// Scatters `data` into iovecs (for the read family).
///
/// # Safety
/// Each iovec's base is valid for writes of its length.
unsafe fn scatter(iov: &[iovec], mut data: &[u8]) -> SysResult<()> {
    for v in iov {
        if data.is_empty() {
            break;
        }
        let n = v.iov_len.min(data.len());
        // SAFETY: per the contract.
        let dst = unsafe { bytes_mut(v.iov_base, n) }?;
        dst.copy_from_slice(&data[..n]);
        data = &data[n..];
    }
    Ok(())
}

fn iov_total(iov: &[iovec]) -> usize {
    iov.iter()
        .fold(0usize, |t, v| t.saturating_add(v.iov_len))
        .min(MAX_VECTORED)
}

/// The raw bytes of an address given to bind() or connect(), for
/// `addr::parse` to check against the socket's family. Linux
/// move_addr_to_kernel: a length above `sockaddr_storage` is EINVAL.
///
/// # Safety
/// `addr` is NULL or valid for reads of `len` bytes.
unsafe fn sockaddr_bytes<'a>(addr: *const sockaddr, len: socklen_t) -> SysResult<&'a [u8]> {
    let len = len as usize;
    if len > crate::addr::SOCKADDR_STORAGE_LEN {
        return Err(Errno::EINVAL);
    }
    // SAFETY: per the contract.
    unsafe { bytes(addr.cast(), len) }
}

/// Writes a `sockaddr_in` (IPv4) or `sockaddr_in6` (IPv6) for an
/// address-returning call, truncated to the caller's length, and sets the
/// length to the full size (as Linux's move_addr_to_user). NULL pointers
/// mean the caller does not want it.
///
/// # Safety
/// `addr` is NULL or valid for writes of `*len` bytes; `len` is NULL or valid.
unsafe fn put_sockaddr(addr: *mut sockaddr, len: *mut socklen_t, a: SocketAddr) -> SysResult<()> {
    if addr.is_null() || len.is_null() {
        return Ok(());
    }
    let sa = crate::addr::encode(a);
    // SAFETY: `len` is non-NULL and valid per the contract.
    let room = unsafe { *len } as usize;
    let n = room.min(sa.len());
    // SAFETY: `addr` is valid for `*len` bytes per the contract.
    unsafe { bytes_mut(addr.cast(), n) }?.copy_from_slice(&sa[..n]);
    // SAFETY: as above.
    unsafe { *len = sa.len() as socklen_t };
    Ok(())
}

unsafe extern "C" fn pd_free(userdata: *mut c_void) {
    if userdata.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `userdata` is the Box<Shim> leaked by `interface`, and
        // packetdrill calls free once, after its last call.
        drop(unsafe { Box::from_raw(userdata.cast::<Shim>()) });
    }));
}

unsafe extern "C" fn pd_socket(ud: *mut c_void, domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY (all slots): `ud` is the pointer packetdrill got from
    // `interface`, and the buffers and lengths are the caller's, as the
    // corresponding libc calls require.
    int(guard(|| unsafe { shim(ud) }?.socket(domain, ty, proto)))
}

unsafe extern "C" fn pd_bind(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    int(guard(|| {
        let a = unsafe { sockaddr_bytes(addr, len) }?;
        unsafe { shim(ud) }?.bind(fd, a).map(|()| 0)
    }))
}

unsafe extern "C" fn pd_listen(ud: *mut c_void, fd: c_int, backlog: c_int) -> c_int {
    int(guard(|| {
        unsafe { shim(ud) }?.listen(fd, backlog).map(|()| 0)
    }))
}

unsafe extern "C" fn pd_accept(
    ud: *mut c_void,
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    int(guard(|| {
        let (new, peer) = unsafe { shim(ud) }?.accept(fd)?;
        unsafe { put_sockaddr(addr, len, peer) }?;
        Ok(new)
    }))
}

unsafe extern "C" fn pd_connect(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    int(guard(|| {
        let a = unsafe { sockaddr_bytes(addr, len) }?;
        unsafe { shim(ud) }?.connect(fd, a).map(|()| 0)
    }))
}

unsafe extern "C" fn pd_read(ud: *mut c_void, fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    ssize(guard(|| {
        let b = unsafe { bytes_mut(buf, n) }?;
        count(unsafe { shim(ud) }?.recv(fd, b, 0)?)
    }))
}

/// The read family's vectored form: read into one buffer, then scatter.
unsafe fn recv_vectored(ud: *mut c_void, fd: c_int, iov: &[iovec], flags: c_int) -> SysResult<i64> {
    let mut tmp = vec![0u8; iov_total(iov)];
    let n = unsafe { shim(ud) }?.recv(fd, &mut tmp, flags)?;
    unsafe { scatter(iov, &tmp[..n]) }?;
    count(n)
}

unsafe extern "C" fn pd_readv(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    ssize(guard(|| {
        let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
        let iov = unsafe { iovecs(iov, n) }?;
        unsafe { recv_vectored(ud, fd, iov, 0) }
    }))
}

unsafe extern "C" fn pd_recv(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    ssize(guard(|| {
        let b = unsafe { bytes_mut(buf, n) }?;
        count(unsafe { shim(ud) }?.recv(fd, b, flags)?)
    }))
}

unsafe extern "C" fn pd_recvfrom(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    ssize(guard(|| {
        let b = unsafe { bytes_mut(buf, n) }?;
        let got = unsafe { shim(ud) }?.recv(fd, b, flags)?;
        // TCP gives no source address: Linux leaves msg_namelen at 0.
        if !addr.is_null() && !len.is_null() {
            unsafe { *len = 0 };
        }
        count(got)
    }))
}

unsafe extern "C" fn pd_recvmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *mut msghdr,
    flags: c_int,
) -> ssize_t {
    ssize(guard(|| {
        // SAFETY: per the slot contract, `msg` is NULL or a valid msghdr.
        let m = unsafe { msg.as_mut() }.ok_or(Errno::EFAULT)?;
        let iov = unsafe { iovecs(m.msg_iov, m.msg_iovlen) }?;
        let n = unsafe { recv_vectored(ud, fd, iov, flags) }?;
        m.msg_namelen = 0;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        Ok(n)
    }))
}

unsafe extern "C" fn pd_write(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
) -> ssize_t {
    ssize(guard(|| {
        let b = unsafe { bytes(buf, n) }?;
        count(unsafe { shim(ud) }?.send(fd, b, 0)?)
    }))
}

unsafe extern "C" fn pd_writev(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    ssize(guard(|| {
        let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
        let data = unsafe { gather(iovecs(iov, n)?) }?;
        count(unsafe { shim(ud) }?.send(fd, &data, 0)?)
    }))
}

unsafe extern "C" fn pd_send(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    ssize(guard(|| {
        let b = unsafe { bytes(buf, n) }?;
        count(unsafe { shim(ud) }?.send(fd, b, flags)?)
    }))
}

unsafe extern "C" fn pd_sendto(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    _addr: *const sockaddr,
    _len: socklen_t,
) -> ssize_t {
    // A connected TCP socket ignores the destination (tcp_sendmsg).
    ssize(guard(|| {
        let b = unsafe { bytes(buf, n) }?;
        count(unsafe { shim(ud) }?.send(fd, b, flags)?)
    }))
}

unsafe extern "C" fn pd_sendmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *const msghdr,
    flags: c_int,
) -> ssize_t {
    ssize(guard(|| {
        // SAFETY: per the slot contract, `msg` is NULL or a valid msghdr.
        let m = unsafe { msg.as_ref() }.ok_or(Errno::EFAULT)?;
        let data = unsafe { gather(iovecs(m.msg_iov, m.msg_iovlen)?) }?;
        count(unsafe { shim(ud) }?.send(fd, &data, flags)?)
    }))
}

unsafe extern "C" fn pd_fcntl(ud: *mut c_void, fd: c_int, cmd: c_int, arg: c_int) -> c_int {
    // `arg` is only looked at for F_SETFL and F_SETFD, which pass one.
    int(guard(|| unsafe { shim(ud) }?.fcntl(fd, cmd, arg)))
}

unsafe extern "C" fn pd_ioctl(
    ud: *mut c_void,
    fd: c_int,
    request: c_ulong,
    arg: *mut c_int,
) -> c_int {
    int(guard(|| {
        let shim = unsafe { shim(ud) }?;
        let supported = matches!(request, libc::FIONREAD | libc::FIONBIO | libc::TIOCOUTQ);
        if !supported {
            // Checked before `arg` is touched: other requests may pass none.
            return shim.ioctl(fd, request, &mut 0).map(|()| 0);
        }
        // SAFETY: the supported requests take an `int *` (NULL is EFAULT).
        let arg = unsafe { arg.as_mut() }.ok_or(Errno::EFAULT)?;
        shim.ioctl(fd, request, arg).map(|()| 0)
    }))
}

unsafe extern "C" fn pd_close(ud: *mut c_void, fd: c_int) -> c_int {
    int(guard(|| unsafe { shim(ud) }?.close(fd).map(|()| 0)))
}

unsafe extern "C" fn pd_shutdown(ud: *mut c_void, fd: c_int, how: c_int) -> c_int {
    int(guard(|| unsafe { shim(ud) }?.shutdown(fd, how).map(|()| 0)))
}

unsafe extern "C" fn pd_getsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    int(guard(|| {
        // SAFETY: `len` is NULL or valid, per the slot contract.
        let len = unsafe { len.as_mut() }.ok_or(Errno::EFAULT)?;
        // Linux: a negative length (as int) is EINVAL.
        let room = usize::try_from(*len as c_int).map_err(|_| Errno::EINVAL)?;
        let out = unsafe { bytes_mut(val, room) }?;
        let n = unsafe { shim(ud) }?.getsockopt(fd, level, name, out)?;
        *len = n as socklen_t;
        Ok(0)
    }))
}

unsafe extern "C" fn pd_setsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    int(guard(|| {
        let v = unsafe { bytes(val, len as usize) }?;
        unsafe { shim(ud) }?
            .setsockopt(fd, level, name, v)
            .map(|()| 0)
    }))
}

unsafe extern "C" fn pd_poll(
    ud: *mut c_void,
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
) -> c_int {
    int(guard(|| {
        let n = usize::try_from(n).map_err(|_| Errno::EINVAL)?;
        let fds: &mut [pollfd] = if n == 0 {
            &mut []
        } else if fds.is_null() {
            return Err(Errno::EFAULT);
        } else {
            // SAFETY: non-NULL, `n` pollfds per the slot contract.
            unsafe { std::slice::from_raw_parts_mut(fds, n) }
        };
        count(unsafe { shim(ud) }?.shared.poll(fds, timeout)?)
    }))
}

unsafe extern "C" fn pd_netdev_send(ud: *mut c_void, buf: *const c_void, n: size_t) -> c_int {
    int(guard(|| {
        let b = unsafe { bytes(buf, n) }?;
        unsafe { shim(ud) }?.netdev_send(b).map(|()| 0)
    }))
}

/// packetdrill: "Sniff the next packet leaving the TCP stack ... Set
/// @count to 0 if received nothing ... Return 0 on success or -1 on
/// error." Nothing within the receive timeout is -1 (packetdrill calls
/// again); after the sniff timeout an empty packet (count 0, return 0)
/// makes packetdrill fail the script instead of sniffing for ever.
unsafe extern "C" fn pd_netdev_receive(
    ud: *mut c_void,
    buf: *mut c_void,
    count_p: *mut size_t,
    time_usecs: *mut i64,
) -> c_int {
    int(guard(|| {
        // SAFETY: `count_p` is NULL or valid, per the slot contract.
        let count_ref = unsafe { count_p.as_mut() }.ok_or(Errno::EFAULT)?;
        let b = unsafe { bytes_mut(buf, *count_ref) }?;
        match unsafe { shim(ud) }?.netdev_receive(b)? {
            Received::Packet { len, stamp_us } => {
                *count_ref = len;
                // SAFETY: NULL or valid, per the slot contract.
                if let Some(t) = unsafe { time_usecs.as_mut() } {
                    *t = i64::try_from(stamp_us).unwrap_or(i64::MAX);
                }
                Ok(0)
            }
            Received::GiveUp => {
                *count_ref = 0;
                Ok(0)
            }
            Received::Nothing => {
                *count_ref = 0;
                Err(Errno::EAGAIN)
            }
        }
    }))
}

unsafe extern "C" fn pd_usleep(ud: *mut c_void, usec: c_uint) -> c_int {
    int(guard(|| {
        let d = Duration::from_micros(usec.into());
        unsafe { shim(ud) }?.usleep(d).map(|()| 0)
    }))
}

unsafe extern "C" fn pd_gettimeofday(ud: *mut c_void, tv: *mut timeval, _tz: *mut c_void) -> c_int {
    int(guard(|| {
        let us = unsafe { shim(ud) }?.now_wall_micros();
        // SAFETY: `tv` is NULL or valid, per the slot contract.
        if let Some(tv) = unsafe { tv.as_mut() } {
            tv.tv_sec = (us / 1_000_000) as libc::time_t;
            tv.tv_usec = (us % 1_000_000) as libc::suseconds_t;
        }
        Ok(0)
    }))
}

fn enosys() -> i64 {
    guard(|| SysResult::<i32>::Err(Errno::ENOSYS))
}

unsafe extern "C" fn pd_epoll_create(_: *mut c_void, _: c_int) -> c_int {
    int(enosys())
}

unsafe extern "C" fn pd_epoll_ctl(
    _: *mut c_void,
    _: c_int,
    _: c_int,
    _: c_int,
    _: *mut epoll_event,
) -> c_int {
    int(enosys())
}

unsafe extern "C" fn pd_epoll_wait(
    _: *mut c_void,
    _: c_int,
    _: *mut epoll_event,
    _: c_int,
    _: c_int,
) -> c_int {
    int(enosys())
}

unsafe extern "C" fn pd_pipe(_: *mut c_void, _: *mut c_int) -> c_int {
    int(enosys())
}

unsafe extern "C" fn pd_splice(
    _: *mut c_void,
    _: c_int,
    _: *mut loff_t,
    _: c_int,
    _: *mut loff_t,
    _: size_t,
    _: c_uint,
) -> ssize_t {
    ssize(enosys())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Positions of the slots in packetdrill.h: 33 pointers in a row.
    #[test]
    fn layout_matches_packetdrill_h() {
        let p = size_of::<*const c_void>();
        assert_eq!(size_of::<PacketdrillInterface>(), 33 * p);
        assert_eq!(offset_of!(PacketdrillInterface, free), p);
        assert_eq!(offset_of!(PacketdrillInterface, fcntl), 17 * p);
        assert_eq!(offset_of!(PacketdrillInterface, poll), 23 * p);
        assert_eq!(offset_of!(PacketdrillInterface, netdev_send), 24 * p);
        assert_eq!(offset_of!(PacketdrillInterface, gettimeofday), 27 * p);
        assert_eq!(offset_of!(PacketdrillInterface, splice), 32 * p);
    }
}
