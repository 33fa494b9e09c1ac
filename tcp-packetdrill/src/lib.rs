//! # tcp-packetdrill: the stack as a packetdrill shared object
//!
//! [packetdrill] can test a TCP stack that lives in a shared object instead
//! of the kernel: `packetdrill --so_filename=libtcp_packetdrill.so
//! --so_flags='local=192.168.0.1 ...' --local_ip=192.168.0.1 script.pkt`
//! (add `--ip_version=ipv6` or `--ip_version=ipv4-mapped-ipv6` for IPv6).
//! It dlopens the object, calls [`packetdrill_interface_init`], and from
//! then on makes every socket call, injects every inbound packet, sniffs
//! every outbound one and reads the clock through the function pointers of
//! the `struct packetdrill_interface` that call filled in. Behind them runs
//! one [`tcp_stack::Stack`].
//!
//! ## What packetdrill needs, and how the shim gives it
//! - **Two threads.** The main thread injects and sniffs packets and makes
//!   the calls a script expects to finish at once; a second thread makes
//!   the calls a script expects to block. The stack sits behind one mutex;
//!   blocking calls wait on a condition variable (`shim`).
//! - **Real time.** Scripts are timed by the real clock, read only through
//!   the shim's `gettimeofday` and `usleep` (`clock`); a time-keeping thread
//!   runs the stack's timers at their deadlines, so retransmissions,
//!   delayed ACKs and TIME-WAIT happen as the script's clock advances.
//! - **Sniffing with a bound.** `netdev_receive` waits at most
//!   `receive_timeout_ms` and returns -1 when nothing came. packetdrill's
//!   shared-object netdev simply calls again after -1, so a packet that
//!   never comes would be awaited for ever: after `sniff_timeout_ms` of
//!   nothing, the shim hands back an empty packet, which packetdrill
//!   rejects, failing the script.
//! - **Real descriptors.** packetdrill closes the descriptors a script left
//!   open with libc's `close()`, so each socket is a real descriptor
//!   (`hostfd`), mapped to the stack's handle.
//! - **Linux's answers.** Return values and errno follow Linux (`socket`,
//!   `io`, `sockopt` name the kernel functions they follow); `TCP_INFO` is
//!   Linux's `struct tcp_info`.
//! - **Flags.** `--so_flags` sets the local addresses and stack options
//!   (`flags`: `local=`, `rto_min_ms=`, `sack=`, `timestamps=`, `cc=`, ...).
//! - **IPv4 and IPv6.** packetdrill's three `--ip_version`s all work, as
//!   on Linux (`addr`):
//!   - `ipv4`: AF_INET sockets, `sockaddr_in`, IPv4 packets;
//!   - `ipv6`: AF_INET6 sockets, `sockaddr_in6`, IPv6 packets (RFC 8200).
//!     The shim must be told the IPv6 address, e.g.
//!     `--local_ip=fd3d:fa7b:d17d::1 --so_flags='local=192.168.0.1
//!     local=fd3d:fa7b:d17d::1'` (`local=` may be repeated);
//!   - `ipv4-mapped-ipv6`: AF_INET6 sockets given IPv4-mapped addresses
//!     `::ffff:a.b.c.d` (RFC 4291 2.5.5.2), IPv4 packets.
//!
//!   An AF_INET6 socket on `[::]` takes IPv4 too and reports IPv4 peers
//!   IPv4-mapped, unless `IPV6_V6ONLY` (default 0, Linux's
//!   `net.ipv6.bindv6only`); `SO_DOMAIN` gives the socket's family. An
//!   address of the other family is EAFNOSUPPORT (a short one EINVAL), as
//!   in Linux's inet_bind / inet6_bind and tcp_v4_connect / tcp_v6_connect.
//!   packetdrill has no getsockname/getpeername slot; addresses leave the
//!   shim through accept() only (recvfrom and recvmsg give none for TCP,
//!   as Linux).
//!
//! The slots packetdrill has for epoll, pipe and splice fail with ENOSYS.
//!
//! [packetdrill]: https://github.com/google/packetdrill
#![deny(unsafe_op_in_unsafe_fn)]

pub mod addr;
pub mod clock;
pub mod errno;
pub mod ffi;
pub mod flags;
mod hostfd;
mod io;
pub mod shim;
mod socket;
mod sockopt;

use ffi::PacketdrillInterface;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The entry point packetdrill looks up with `dlsym`: fills `ifc` with a
/// new shim configured by `flags` (packetdrill's `--so_flags`, or NULL).
///
/// Bad flags do not abort packetdrill: the error is printed, and every
/// call of the interface then fails (socket calls with EINVAL), so the
/// script fails at its first line.
///
/// # Safety
/// `flags` is NULL or a NUL-terminated string; `ifc` is NULL or points to
/// a writable `struct packetdrill_interface`.
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut PacketdrillInterface,
) {
    if ifc.is_null() {
        return;
    }
    // SAFETY: per this function's contract.
    let flags = unsafe { ffi::flags_str(flags) };
    let built = catch_unwind(AssertUnwindSafe(|| {
        shim::Shim::from_flags(flags.as_deref())
    }));
    let shim = match built {
        Ok(s) => s,
        Err(_) => shim::Shim::failed("initialisation panicked".into()),
    };
    // SAFETY: `ifc` is non-NULL and writable per the contract; `write`
    // does not read (or drop) the uninitialised or zeroed old contents.
    unsafe { ifc.write(ffi::interface(Box::new(shim))) };
}
