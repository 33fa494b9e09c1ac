//! Linux TUN devices, configured through ioctls.
//!
//! This crate creates (or attaches to) a layer-3 TUN interface
//! (`IFF_TUN | IFF_NO_PI`: every `read` is exactly one IPv4/IPv6 packet with
//! no extra header; the first nibble tells the family), configures its
//! kernel side (IPv4 address and netmask, IPv6 addresses, MTU, up/down,
//! persistence) with the classic `SIOC*` interface ioctls on an `AF_INET`
//! (an `AF_INET6` one for IPv6 addresses) datagram socket, and exposes the
//! packet file descriptor.
//!
//! The kernel routes every destination in the configured prefixes (and any
//! route the administrator points at the interface) through the device, so
//! a stack behind it reaches off-link addresses with no gateway of its own.
//! Opt-in offloads ([`TunBuilder::offload`]) put a [`VirtioNetHdr`] in front
//! of every packet, for checksum offload and 64 KB TCP super-packets.
//!
//! The same builder makes a layer-2 TAP interface ([`TunBuilder::tap`],
//! `IFF_TAP | IFF_NO_PI`): every `read` is then one Ethernet frame, and the
//! offloads work the same (the virtio-net header's offsets count from the
//! frame start).
//!
//! It knows nothing about TCP, connections or async runtimes. The descriptor
//! is always non-blocking (`O_NONBLOCK | O_CLOEXEC`), so a runtime can wrap
//! the [`Tun`] directly (for example in `tokio::io::unix::AsyncFd<Tun>`,
//! since [`Tun`] implements [`AsRawFd`] and [`AsFd`]) and call
//! [`Tun::recv`] / [`Tun::send`] when it reports readiness.
//!
//! # Example
//!
//! ```no_run
//! use std::net::{Ipv4Addr, Ipv6Addr};
//! use std::time::Duration;
//! use tcp_tun::TunBuilder;
//!
//! # fn main() -> std::io::Result<()> {
//! // Kernel side 10.7.0.1/24 and fd00:7::1/64; our stack would use e.g.
//! // 10.7.0.2 and fd00:7::2.
//! let tun = TunBuilder::new()
//!     .name("utcp%d")
//!     .mtu(1500)
//!     .address(Ipv4Addr::new(10, 7, 0, 1), 24)
//!     .address6(Ipv6Addr::new(0xfd00, 7, 0, 0, 0, 0, 0, 1), 64)
//!     .up(true)
//!     .build()?;
//! println!("created {} with {:?}", tun.name(), tun.addresses6()?);
//!
//! let mut buf = vec![0u8; 65535];
//! if tun.wait_readable(Some(Duration::from_secs(1)))? {
//!     match tun.recv(&mut buf) {
//!         Ok(n) => println!("packet of {n} bytes, IP version {}", buf[0] >> 4),
//!         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
//!         Err(e) => return Err(e),
//!     }
//! }
//! // Dropping `tun` closes the fd; the kernel then removes the
//! // (non-persistent) interface.
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every fallible function returns [`std::io::Error`]. Setup and
//! configuration errors carry a message naming the interface and the
//! operation, keep the OS error as their [`source`](std::error::Error::source),
//! and use these kinds:
//!
//! | situation | [`ErrorKind`] | message |
//! |---|---|---|
//! | `/dev/net/tun` missing | `NotFound` | "/dev/net/tun not found: is the tun module loaded?" |
//! | `EPERM` / `EACCES` | `PermissionDenied` | "... run as root or grant CAP_NET_ADMIN" |
//! | [`Tun::create`] on a name that exists, or `EBUSY` | `AddrInUse` | "... name ... is in use ..." |
//! | [`Tun::attach`] on a name that does not exist | `NotFound` | |
//! | existing interface is not a compatible TUN device | `InvalidInput` | |
//! | bad name, address, prefix or MTU; IPv6 on an MTU below 1280 | `InvalidInput` | |
//! | IPv6 address already assigned with another prefix | `AddrInUse` | |
//! | IPv6 disabled on the interface or in the kernel | `Unsupported` | "... sysctl net.ipv6.conf.NAME.disable_ipv6 = 1 ..." |
//!
//! [`Tun::recv`] and [`Tun::send`] are on the hot path and return the raw OS
//! error unchanged: `WouldBlock` when no packet is queued (or the kernel
//! queue is full), `EIO` when sending while the interface is down, `EINVAL`
//! for a packet that is not IPv4/IPv6.
//!
//! # Lifetime
//!
//! Dropping a [`Tun`] closes its descriptor. The kernel removes a
//! non-persistent interface (with its addresses and routes) at that point;
//! one marked with [`Tun::set_persist`]`(true)` stays and can be re-opened
//! with [`Tun::attach`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

mod sys;
mod vnet;

pub use vnet::VirtioNetHdr;

/// Maximum interface name length in bytes (the kernel's `IFNAMSIZ - 1`).
pub const MAX_NAME_LEN: usize = sys::IFNAMSIZ - 1;

/// Smallest MTU accepted by [`Tun::set_mtu`] (the kernel's minimum for TUN).
pub const MIN_MTU: u32 = 68;

/// Largest MTU accepted by [`Tun::set_mtu`] (the kernel's maximum for TUN).
pub const MAX_MTU: u32 = 65535;

/// The smallest MTU on which Linux keeps IPv6 enabled (RFC 8200 5: every
/// link must carry 1280-byte packets); below it [`Tun::set_address6`] fails.
pub const MIN_MTU_IPV6: u32 = 1280;

/// The longest [`Tun::set_address6`] waits for the kernel to clear the
/// "tentative" flag of a new address.
pub const TENTATIVE_WAIT: Duration = Duration::from_secs(2);

/// A buffer of this size always holds a whole packet read by [`Tun::recv`].
pub const MAX_PACKET: usize = 65535;

/// The `IFF_*` flags passed to `TUNSETIFF`. This is the single place they
/// are assembled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TunFlags {
    /// `IFF_MULTI_QUEUE`: several fds may attach to one device, one queue
    /// each.
    multi_queue: bool,
    /// `IFF_VNET_HDR`: a [`VirtioNetHdr`] precedes every packet (offloads).
    vnet_hdr: bool,
    /// `IFF_TAP` instead of `IFF_TUN`: Ethernet frames, not IP packets.
    tap: bool,
}

impl TunFlags {
    fn bits(self) -> libc::c_short {
        // Layer 3 (or with `tap` layer 2) device, no 4-byte
        // packet-information prefix.
        let kind = if self.tap {
            libc::IFF_TAP
        } else {
            libc::IFF_TUN
        };
        let mut bits = kind | libc::IFF_NO_PI;
        if self.multi_queue {
            bits |= libc::IFF_MULTI_QUEUE;
        }
        if self.vnet_hdr {
            bits |= libc::IFF_VNET_HDR;
        }
        // All TUNSETIFF flags fit in the 16-bit `ifr_flags`.
        bits as libc::c_short
    }
}

/// An I/O error with a human-readable context message; the underlying OS
/// error is kept as the source.
#[derive(Debug)]
struct Context {
    message: String,
    source: io::Error,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.source)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

fn with_context(source: io::Error, kind: ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, Context { message, source })
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, message)
}

fn is_permission_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Adds context to an error from one of the `SIOC*` ioctls.
fn ioctl_error(err: io::Error, name: &str, what: &str) -> io::Error {
    if is_permission_error(&err) {
        return with_context(
            err,
            ErrorKind::PermissionDenied,
            format!("{what} on {name}: permission denied: run as root or grant CAP_NET_ADMIN"),
        );
    }
    let kind = match err.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => ErrorKind::NotFound,
        Some(libc::EINVAL) | Some(libc::EADDRNOTAVAIL) => ErrorKind::InvalidInput,
        _ => err.kind(),
    };
    with_context(err, kind, format!("{what} on {name} failed"))
}

/// Checks an interface name the way the kernel's `dev_valid_name` does, plus
/// the `%d` template rule of `dev_alloc_name`.
fn validate_name(name: &str, allow_template: bool) -> io::Result<()> {
    if name.is_empty() {
        return Err(invalid_input("interface name is empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid_input(format!(
            "interface name {name:?} is {} bytes; Linux allows at most {MAX_NAME_LEN} (IFNAMSIZ is {})",
            name.len(),
            sys::IFNAMSIZ
        )));
    }
    if name == "." || name == ".." {
        return Err(invalid_input(format!(
            "interface name {name:?} is reserved"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(invalid_input(format!(
            "interface name {name:?} contains the forbidden character {c:?}"
        )));
    }
    let percents = name.matches('%').count();
    if percents > 0 {
        if !allow_template {
            return Err(invalid_input(format!(
                "interface name {name:?}: a %d template cannot name an existing device"
            )));
        }
        if percents > 1 || !name.contains("%d") {
            return Err(invalid_input(format!(
                "interface name {name:?}: the only allowed '%' is a single \"%d\""
            )));
        }
    }
    Ok(())
}

/// Checks an interface address and prefix length for [`Tun::set_address`].
fn validate_address(addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    if prefix == 0 || prefix > 32 {
        return Err(invalid_input(format!(
            "invalid prefix length /{prefix} for {addr}: must be 1..=32"
        )));
    }
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        return Err(invalid_input(format!(
            "{addr} cannot be an interface address (unspecified, broadcast or multicast)"
        )));
    }
    Ok(())
}

/// Checks an interface address and prefix length for [`Tun::set_address6`].
fn validate_address6(addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
    if prefix == 0 || prefix > 128 {
        return Err(invalid_input(format!(
            "invalid prefix length /{prefix} for {addr}: must be 1..=128"
        )));
    }
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(invalid_input(format!(
            "{addr} cannot be an interface address (unspecified, multicast or loopback)"
        )));
    }
    // RFC 4291 2.5.5.2: these only stand for IPv4 addresses in the socket
    // API; they never appear in an IPv6 header.
    if addr.to_ipv4_mapped().is_some() {
        return Err(invalid_input(format!(
            "{addr} is an IPv4-mapped address: use TunBuilder::address / Tun::set_address"
        )));
    }
    Ok(())
}

fn validate_mtu(mtu: u32) -> io::Result<()> {
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(invalid_input(format!(
            "MTU {mtu} is out of range: a TUN device accepts {MIN_MTU}..={MAX_MTU}"
        )));
    }
    Ok(())
}

/// The netmask for a prefix length (`prefix` must be at most 32).
fn netmask(prefix: u8) -> Ipv4Addr {
    debug_assert!(prefix <= 32);
    let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// The prefix length of a contiguous netmask, `None` if not contiguous.
fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Create,
    Attach,
}

/// Builder for a [`Tun`]: name, flags and the initial configuration.
///
/// Settings that are not given are left alone: the MTU stays at the kernel
/// default (1500), no address is assigned, the interface stays down and a
/// new device is not persistent.
#[derive(Clone, Debug, Default)]
#[must_use = "a TunBuilder does nothing until build() or attach() is called"]
pub struct TunBuilder {
    name: Option<String>,
    mtu: Option<u32>,
    address: Option<(Ipv4Addr, u8)>,
    address6: Option<(Ipv6Addr, u8)>,
    up: Option<bool>,
    persist: Option<bool>,
    flags: TunFlags,
}

impl TunBuilder {
    /// A builder with nothing set (the name defaults to `tun%d`).
    pub fn new() -> TunBuilder {
        TunBuilder::default()
    }

    /// Interface name, shorter than `IFNAMSIZ` (at most 15 bytes). For
    /// [`build`](Self::build) it may contain one `%d`, which the kernel
    /// replaces with the lowest free number.
    pub fn name(mut self, name: impl Into<String>) -> TunBuilder {
        self.name = Some(name.into());
        self
    }

    /// MTU to set (68..=65535).
    pub fn mtu(mut self, mtu: u32) -> TunBuilder {
        self.mtu = Some(mtu);
        self
    }

    /// Kernel-side IPv4 address and prefix length (see [`Tun::set_address`]).
    pub fn address(mut self, addr: Ipv4Addr, prefix: u8) -> TunBuilder {
        self.address = Some((addr, prefix));
        self
    }

    /// Kernel-side IPv6 address and prefix length (see
    /// [`Tun::set_address6`]). Independent of [`address`](Self::address):
    /// give both for a dual-stack interface; the IPv4 one is configured
    /// first, then this one, then the link is brought [`up`](Self::up).
    pub fn address6(mut self, addr: Ipv6Addr, prefix: u8) -> TunBuilder {
        self.address6 = Some((addr, prefix));
        self
    }

    /// Bring the interface up (or down) after configuring it.
    pub fn up(mut self, up: bool) -> TunBuilder {
        self.up = Some(up);
        self
    }

    /// Mark the device persistent (it survives the fd being closed). Applied
    /// last, so a device whose configuration fails is never left behind.
    pub fn persist(mut self, persist: bool) -> TunBuilder {
        self.persist = Some(persist);
        self
    }

    /// Use `IFF_MULTI_QUEUE`: further queues are opened with
    /// [`attach`](Self::attach) on a builder with the same flag.
    pub fn multi_queue(mut self, multi_queue: bool) -> TunBuilder {
        self.flags.multi_queue = multi_queue;
        self
    }

    /// Open the device with offloads (default off): `IFF_VNET_HDR` with the
    /// 10-byte [`VirtioNetHdr`] (`TUNSETVNETHDRSZ`, little-endian fields via
    /// `TUNSETVNETLE`), and `TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 |
    /// TUN_F_TSO6 | TUN_F_TSO_ECN`.
    ///
    /// The kernel may then hand us packets whose TCP checksum is only
    /// partial and TCP super-packets up to 64 KB (larger than the MTU) of
    /// both families (`GSO_TCPV4`, `GSO_TCPV6`), and accepts the same from
    /// us. Packets must then go through
    /// [`Tun::recv_vnet`] and [`Tun::send_vnet`]; the plain
    /// [`recv`](Tun::recv) / [`send`](Tun::send) see the header as the first
    /// [`VirtioNetHdr::LEN`] bytes.
    pub fn offload(mut self, offload: bool) -> TunBuilder {
        self.flags.vnet_hdr = offload;
        self
    }

    /// Make a TAP device (`IFF_TAP`, default off): a layer-2 interface
    /// whose reads and writes are whole Ethernet frames (destination and
    /// source MAC, EtherType, payload; no preamble or FCS) instead of IP
    /// packets. The kernel side of the interface has its own MAC address
    /// (random, or set with `ip link`) and speaks ARP and IPv6 neighbour
    /// discovery; a stack behind it is another host on that Ethernet, with
    /// an address of its own choosing. Everything else (addresses, MTU,
    /// [`offload`](Self::offload), [`multi_queue`](Self::multi_queue),
    /// persistence) works as for TUN; the default name becomes `tap%d`, and
    /// [`attach`](Self::attach) needs this flag to match the device.
    pub fn tap(mut self, tap: bool) -> TunBuilder {
        self.flags.tap = tap;
        self
    }

    /// Creates a new device and applies the configuration.
    ///
    /// Fails with `AddrInUse` if an interface with this name already exists
    /// (use [`attach`](Self::attach) for an existing persistent device).
    /// The existence check and the creation are two steps, so a name taken
    /// concurrently by another process may instead attach to that device if
    /// it is a persistent TUN device with no fd open.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad name, address, prefix or MTU (checked before
    /// anything is created); `AddrInUse` for a name in use; the others of
    /// the crate-level [Errors](crate#errors) table, and those of the
    /// configuration calls ([`Tun::set_mtu`], [`Tun::set_address`],
    /// [`Tun::set_address6`], ...). A device created before a later step
    /// failed is removed again.
    pub fn build(&self) -> io::Result<Tun> {
        self.open(Mode::Create)
    }

    /// Attaches to an existing TUN device (normally a persistent one, or
    /// another queue of a multi-queue device) and applies the configuration.
    /// Fails with `NotFound` if there is no interface with this name.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), except that a missing interface is
    /// `NotFound`, a `%d` template is `InvalidInput`, and an interface that
    /// is not a compatible TUN device is `InvalidInput`.
    pub fn attach(&self) -> io::Result<Tun> {
        self.open(Mode::Attach)
    }

    fn open(&self, mode: Mode) -> io::Result<Tun> {
        let default = if self.flags.tap { "tap%d" } else { "tun%d" };
        let requested = self.name.as_deref().unwrap_or(default);
        validate_name(requested, mode == Mode::Create)?;
        if let Some((addr, prefix)) = self.address {
            validate_address(addr, prefix)?;
        }
        if let Some((addr, prefix)) = self.address6 {
            validate_address6(addr, prefix)?;
        }
        if let Some(mtu) = self.mtu {
            validate_mtu(mtu)?;
        }

        let exists = !requested.contains('%') && sys::if_index(requested).is_some();
        match mode {
            Mode::Create if exists => {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!(
                        "cannot create TUN device {requested}: the interface name is in use \
                         (use Tun::attach for an existing persistent device)"
                    ),
                ))
            }
            Mode::Attach if !exists => {
                return Err(io::Error::new(
                    ErrorKind::NotFound,
                    format!("cannot attach to TUN device {requested}: no such interface"),
                ))
            }
            _ => {}
        }

        let fd = sys::open_tun().map_err(open_error)?;
        let name = sys::tun_set_iff(fd.as_fd(), requested, self.flags.bits())
            .map_err(|e| set_iff_error(e, requested, mode))?;
        let ctl = sys::control_socket().map_err(|e| {
            with_context(
                e,
                ErrorKind::Other,
                "cannot open the AF_INET control socket for interface ioctls".into(),
            )
        })?;
        let tun = Tun {
            fd,
            ctl,
            name,
            offload: self.flags.vnet_hdr,
            tap: self.flags.tap,
        };

        // If any step fails, dropping `tun` removes a non-persistent device.
        if self.flags.vnet_hdr {
            tun.enable_offloads()?;
        }
        if let Some(mtu) = self.mtu {
            tun.set_mtu(mtu)?;
        }
        if let Some((addr, prefix)) = self.address {
            tun.set_address(addr, prefix)?;
        }
        if let Some((addr, prefix)) = self.address6 {
            tun.set_address6(addr, prefix)?;
        }
        if let Some(up) = self.up {
            tun.set_up(up)?;
        }
        if let Some(persist) = self.persist {
            tun.set_persist(persist)?;
        }
        Ok(tun)
    }
}

fn open_error(err: io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => with_context(
            err,
            ErrorKind::NotFound,
            "/dev/net/tun not found: is the tun module loaded?".into(),
        ),
        _ if is_permission_error(&err) => with_context(
            err,
            ErrorKind::PermissionDenied,
            "cannot open /dev/net/tun: run as root or grant CAP_NET_ADMIN".into(),
        ),
        _ => with_context(err, ErrorKind::Other, "cannot open /dev/net/tun".into()),
    }
}

fn set_iff_error(err: io::Error, name: &str, mode: Mode) -> io::Error {
    let verb = match mode {
        Mode::Create => "create",
        Mode::Attach => "attach to",
    };
    if is_permission_error(&err) {
        return with_context(
            err,
            ErrorKind::PermissionDenied,
            format!(
                "cannot {verb} TUN device {name}: run as root or grant CAP_NET_ADMIN \
                 (a persistent device may also belong to another user)"
            ),
        );
    }
    match err.raw_os_error() {
        Some(libc::EBUSY) => with_context(
            err,
            ErrorKind::AddrInUse,
            format!(
                "cannot {verb} TUN device {name}: the name is in use \
                 (the device is already open by another file descriptor)"
            ),
        ),
        Some(libc::EINVAL) => with_context(
            err,
            ErrorKind::InvalidInput,
            format!(
                "cannot {verb} TUN device {name}: an interface with this name exists but is \
                 not a TUN device with matching flags (TAP, multi-queue or another type)"
            ),
        ),
        Some(libc::ENFILE) => with_context(
            err,
            ErrorKind::AddrInUse,
            format!("cannot {verb} TUN device {name}: no free number for the %d template"),
        ),
        _ => {
            let kind = err.kind();
            with_context(
                err,
                kind,
                format!("cannot {verb} TUN device {name} (TUNSETIFF)"),
            )
        }
    }
}

/// An open TUN device (`IFF_TUN | IFF_NO_PI`) with a non-blocking fd.
///
/// Each [`recv`](Tun::recv) returns one whole IP packet sent by the kernel
/// into the interface; each [`send`](Tun::send) injects one IP packet into
/// the kernel as if received on the interface; both are IPv4 or IPv6,
/// told apart by the first nibble. Configuration methods use ioctls on a
/// private `AF_INET` control socket (an `AF_INET6` one for
/// [`set_address6`](Tun::set_address6)).
///
/// `Tun` is `Send + Sync`; all methods take `&self`.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    ctl: OwnedFd,
    name: String,
    /// Opened with `IFF_VNET_HDR` and offloads enabled.
    offload: bool,
    /// A TAP device (Ethernet frames).
    tap: bool,
}

impl Tun {
    /// Creates a new TUN device named `name` (may contain `%d`; at most 15
    /// bytes). The interface starts down with no address.
    ///
    /// # Errors
    ///
    /// As [`TunBuilder::build`].
    pub fn create(name: &str) -> io::Result<Tun> {
        TunBuilder::new().name(name).build()
    }

    /// Attaches to the existing persistent TUN device `name`.
    ///
    /// # Errors
    ///
    /// As [`TunBuilder::attach`].
    pub fn attach(name: &str) -> io::Result<Tun> {
        TunBuilder::new().name(name).attach()
    }

    /// Shorthand for [`TunBuilder::new`].
    pub fn builder() -> TunBuilder {
        TunBuilder::new()
    }

    /// The interface name (with any `%d` already resolved by the kernel).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index, if the interface still exists.
    pub fn index(&self) -> Option<u32> {
        sys::if_index(&self.name)
    }

    /// Sets the kernel-side IPv4 address and netmask (`SIOCSIFADDR` then
    /// `SIOCSIFNETMASK`), which also installs the route for the prefix.
    ///
    /// `prefix` must be 1..=32, and `addr` must not be unspecified,
    /// broadcast or multicast (`InvalidInput`). Setting the address first
    /// briefly gives the interface the classful default mask before the
    /// netmask is applied; configure before [`set_up`](Tun::set_up)`(true)`
    /// to avoid a transient route.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad address or prefix (or one the kernel
    /// refuses); `PermissionDenied` without `CAP_NET_ADMIN`; `NotFound` if
    /// the interface is gone.
    pub fn set_address(&self, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        validate_address(addr, prefix)?;
        sys::set_ipv4(self.ctl.as_fd(), &self.name, sys::AddrKind::Local, addr)
            .map_err(|e| ioctl_error(e, &self.name, &format!("setting address {addr}")))?;
        let mask = netmask(prefix);
        sys::set_ipv4(self.ctl.as_fd(), &self.name, sys::AddrKind::Netmask, mask).map_err(|e| {
            ioctl_error(
                e,
                &self.name,
                &format!("setting netmask {mask} (/{prefix})"),
            )
        })
    }

    /// The kernel-side IPv4 address and prefix length, `None` if none is
    /// assigned.
    ///
    /// # Errors
    ///
    /// The ioctl's error with context (`NotFound` if the interface is gone);
    /// `InvalidData` for a non-contiguous netmask.
    pub fn address(&self) -> io::Result<Option<(Ipv4Addr, u8)>> {
        let addr = match sys::get_ipv4(self.ctl.as_fd(), &self.name, sys::AddrKind::Local) {
            Ok(addr) => addr,
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => return Ok(None),
            Err(e) => return Err(ioctl_error(e, &self.name, "reading address")),
        };
        let mask = sys::get_ipv4(self.ctl.as_fd(), &self.name, sys::AddrKind::Netmask)
            .map_err(|e| ioctl_error(e, &self.name, "reading netmask"))?;
        let prefix = prefix_len(mask).ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("{} has a non-contiguous netmask {mask}", self.name),
            )
        })?;
        Ok(Some((addr, prefix)))
    }

    /// Adds a kernel-side IPv6 address (`SIOCSIFADDR` with a `struct
    /// in6_ifreq` on an `AF_INET6` socket), which also installs the route
    /// for the prefix.
    ///
    /// Unlike IPv4, an interface holds several IPv6 addresses: this adds
    /// one beside any others (once up, the kernel also gives the TUN a
    /// random link-local `fe80::/64` one). Adding an address that is
    /// already there with the same prefix succeeds and changes nothing.
    /// The TUN has `IFF_NOARP`, so the kernel skips duplicate address
    /// detection, but it does so from a work queue: the address stays
    /// "tentative" (unusable: `bind` fails, packets to it are dropped) for
    /// a moment after the ioctl, usually well under a millisecond, longer
    /// on a busy machine. This call waits (polling `/proc/net/if_inet6`,
    /// at most [`TENTATIVE_WAIT`]) until the kernel clears the flag, so the
    /// address is usable when it returns.
    ///
    /// # Errors
    ///
    /// - `InvalidInput`: `prefix` not 1..=128; `addr` unspecified,
    ///   multicast, loopback or IPv4-mapped; an MTU below
    ///   [`MIN_MTU_IPV6`] (Linux turns IPv6 off on such a link).
    /// - `AddrInUse`: `addr` is already assigned with another prefix.
    /// - `Unsupported`: IPv6 is disabled on the interface (the sysctl
    ///   `net.ipv6.conf.<name>.disable_ipv6` is 1, inherited from
    ///   `net.ipv6.conf.default.disable_ipv6` when the device was created;
    ///   setting `net.ipv6.conf.all.disable_ipv6` also sets the default),
    ///   or the kernel has no IPv6 at all (`ipv6.disable=1`). The message
    ///   names the sysctl; this crate never changes it.
    pub fn set_address6(&self, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
        validate_address6(addr, prefix)?;
        let what = format!("adding IPv6 address {addr}/{prefix}");
        let ctl6 = sys::control_socket6().map_err(|e| {
            if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
                with_context(
                    e,
                    ErrorKind::Unsupported,
                    format!(
                        "{what} on {}: the kernel has no IPv6 (booted with ipv6.disable=1?)",
                        self.name
                    ),
                )
            } else {
                with_context(
                    e,
                    ErrorKind::Other,
                    "cannot open the AF_INET6 control socket for interface ioctls".into(),
                )
            }
        })?;
        let index = sys::get_index(self.ctl.as_fd(), &self.name)
            .map_err(|e| ioctl_error(e, &self.name, "reading the interface index"))?;
        let err = match sys::add_ipv6(ctl6.as_fd(), index, addr, prefix) {
            Ok(()) => {
                self.wait_not_tentative(addr);
                return Ok(());
            }
            Err(e) => e,
        };
        match err.raw_os_error() {
            // addrconf_add_dev answers EACCES when disable_ipv6 is set.
            Some(libc::EACCES) if self.ipv6_disabled() => Err(with_context(
                err,
                ErrorKind::Unsupported,
                format!(
                    "{what} on {name}: IPv6 is disabled on {name} \
                     (sysctl net.ipv6.conf.{name}.disable_ipv6 = 1, inherited from \
                     net.ipv6.conf.default.disable_ipv6 or .all); \
                     enable it with: sysctl -w net.ipv6.conf.{name}.disable_ipv6=0",
                    name = self.name
                ),
            )),
            // ipv6_add_dev refuses a device whose MTU is below 1280.
            Some(libc::EINVAL) if self.mtu().is_ok_and(|m| m < MIN_MTU_IPV6) => Err(with_context(
                err,
                ErrorKind::InvalidInput,
                format!(
                    "{what} on {}: the MTU is below {MIN_MTU_IPV6}, the IPv6 minimum, \
                         so Linux keeps IPv6 off on this link",
                    self.name
                ),
            )),
            Some(libc::EEXIST) => match self.addresses6() {
                Ok(list) if list.contains(&(addr, prefix)) => Ok(()),
                _ => Err(with_context(
                    err,
                    ErrorKind::AddrInUse,
                    format!(
                        "{what} on {}: {addr} is already assigned with another prefix",
                        self.name
                    ),
                )),
            },
            _ => Err(ioctl_error(err, &self.name, &what)),
        }
    }

    /// Polls `/proc/net/if_inet6` until `addr` is listed without
    /// `IFA_F_TENTATIVE`, for at most [`TENTATIVE_WAIT`]; gives up silently
    /// (the address is assigned either way).
    fn wait_not_tentative(&self, addr: Ipv6Addr) {
        const IFA_F_TENTATIVE: u32 = 0x40;
        let deadline = std::time::Instant::now() + TENTATIVE_WAIT;
        let mut pause = Duration::from_micros(50);
        loop {
            let Ok(table) = read_if_inet6() else { return };
            let tentative = parse_if_inet6(&table)
                .find(|e| e.name == self.name && e.addr == addr)
                .is_some_and(|e| e.flags & IFA_F_TENTATIVE != 0);
            if !tentative || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Whether `net.ipv6.conf.<name>.disable_ipv6` reads 1.
    fn ipv6_disabled(&self) -> bool {
        let path = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.name);
        std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
    }

    /// The interface's IPv6 addresses with their prefix lengths, kernel
    /// link-local ones included, in the kernel's order (read from
    /// `/proc/net/if_inet6` of the calling thread's network namespace).
    /// Empty when the interface has none or the kernel has no IPv6.
    ///
    /// # Errors
    ///
    /// The error reading `/proc/net/if_inet6`, with context, other than its
    /// absence.
    pub fn addresses6(&self) -> io::Result<Vec<(Ipv6Addr, u8)>> {
        let table = match read_if_inet6() {
            Ok(table) => table,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                let kind = e.kind();
                return Err(with_context(
                    e,
                    kind,
                    format!("reading /proc/net/if_inet6 for {}", self.name),
                ));
            }
        };
        Ok(parse_if_inet6(&table)
            .filter(|entry| entry.name == self.name)
            .map(|entry| (entry.addr, entry.prefix))
            .collect())
    }

    /// Sets the MTU (`SIOCSIFMTU`); must be 68..=65535.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an MTU out of range (or one the kernel refuses);
    /// `PermissionDenied` without `CAP_NET_ADMIN`; `NotFound` if the
    /// interface is gone.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        validate_mtu(mtu)?;
        sys::set_mtu(self.ctl.as_fd(), &self.name, mtu as libc::c_int)
            .map_err(|e| ioctl_error(e, &self.name, &format!("setting MTU {mtu}")))
    }

    /// The current MTU (`SIOCGIFMTU`).
    ///
    /// # Errors
    ///
    /// The ioctl's error with context (`NotFound` if the interface is gone).
    pub fn mtu(&self) -> io::Result<u32> {
        let mtu = sys::get_mtu(self.ctl.as_fd(), &self.name)
            .map_err(|e| ioctl_error(e, &self.name, "reading MTU"))?;
        Ok(mtu.max(0) as u32)
    }

    /// Brings the interface up or down (`IFF_UP` via `SIOCGIFFLAGS` /
    /// `SIOCSIFFLAGS`).
    ///
    /// # Errors
    ///
    /// `PermissionDenied` without `CAP_NET_ADMIN`; `NotFound` if the
    /// interface is gone; otherwise the ioctl's error with context.
    pub fn set_up(&self, up: bool) -> io::Result<()> {
        let what = if up { "bringing up" } else { "bringing down" };
        let flags = sys::get_flags(self.ctl.as_fd(), &self.name)
            .map_err(|e| ioctl_error(e, &self.name, "reading interface flags"))?;
        let up_bit = libc::IFF_UP as libc::c_short;
        let new = if up { flags | up_bit } else { flags & !up_bit };
        if new == flags {
            return Ok(());
        }
        sys::set_flags(self.ctl.as_fd(), &self.name, new)
            .map_err(|e| ioctl_error(e, &self.name, what))
    }

    /// Whether the interface is administratively up (`IFF_UP`).
    ///
    /// # Errors
    ///
    /// The ioctl's error with context (`NotFound` if the interface is gone).
    pub fn is_up(&self) -> io::Result<bool> {
        let flags = sys::get_flags(self.ctl.as_fd(), &self.name)
            .map_err(|e| ioctl_error(e, &self.name, "reading interface flags"))?;
        Ok(flags & libc::IFF_UP as libc::c_short != 0)
    }

    /// Makes the device persistent (`TUNSETPERSIST`): it then stays after
    /// this `Tun` is dropped, until `set_persist(false)` and the last fd is
    /// closed.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` without `CAP_NET_ADMIN`; otherwise the ioctl's
    /// error with context.
    pub fn set_persist(&self, persist: bool) -> io::Result<()> {
        sys::tun_set_persist(self.fd.as_fd(), persist)
            .map_err(|e| ioctl_error(e, &self.name, "TUNSETPERSIST"))
    }

    /// Reads one IP packet into `buf` and returns its length.
    ///
    /// Non-blocking: returns `WouldBlock` when no packet is queued. `buf`
    /// should be at least [`mtu`](Tun::mtu) bytes ([`MAX_PACKET`] is always
    /// enough): with a shorter buffer the kernel silently truncates the
    /// packet to `buf.len()` bytes and discards the rest.
    ///
    /// # Errors
    ///
    /// The raw OS error of `read(2)`: `WouldBlock` when no packet is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.fd.as_fd(), buf)
    }

    /// Writes one IP packet (starting with the IPv4/IPv6 header) and returns
    /// the number of bytes written (the whole packet on success).
    ///
    /// Non-blocking: may return `WouldBlock`. The kernel rejects packets
    /// whose first nibble is not 4 or 6 (`EINVAL`) and fails with `EIO`
    /// while the interface is down.
    ///
    /// # Errors
    ///
    /// The raw OS error of `write(2)`: `WouldBlock` when the kernel queue is
    /// full, `EINVAL` for a packet that is not IPv4/IPv6, `EIO` while the
    /// interface is down.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        sys::write(self.fd.as_fd(), packet)
    }

    /// Whether the device was opened with [`TunBuilder::offload`]: every
    /// packet then carries a [`VirtioNetHdr`].
    pub fn has_offload(&self) -> bool {
        self.offload
    }

    /// Whether this is a TAP device ([`TunBuilder::tap`]): its packets are
    /// Ethernet frames.
    pub fn is_tap(&self) -> bool {
        self.tap
    }

    /// Header size, byte order and offload features (see
    /// [`TunBuilder::offload`]).
    fn enable_offloads(&self) -> io::Result<()> {
        let fd = self.fd.as_fd();
        sys::tun_set_vnet_hdr_sz(fd, VirtioNetHdr::LEN as libc::c_int)
            .map_err(|e| ioctl_error(e, &self.name, "TUNSETVNETHDRSZ"))?;
        if let Err(e) = sys::tun_set_vnet_le(fd, true) {
            // Without it the kernel uses host order, little-endian here too.
            if cfg!(target_endian = "big") {
                return Err(ioctl_error(e, &self.name, "TUNSETVNETLE"));
            }
        }
        let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
        sys::tun_set_offload(fd, features)
            .map_err(|e| ioctl_error(e, &self.name, "TUNSETOFFLOAD (checksum, TSO4, TSO6)"))
    }

    /// Reads one packet of a device opened with offloads: its
    /// [`VirtioNetHdr`], and the IP packet (possibly a super-packet larger
    /// than the MTU, up to 64 KB) into `buf`, whose length is returned.
    ///
    /// Non-blocking like [`recv`](Tun::recv). A read shorter than the
    /// header fails with `InvalidData`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Tun::recv), and `InvalidData` for a read shorter than the
    /// header.
    pub fn recv_vnet(&self, buf: &mut [u8]) -> io::Result<(VirtioNetHdr, usize)> {
        let mut head = [0u8; VirtioNetHdr::LEN];
        let n = sys::read2(self.fd.as_fd(), &mut head, buf)?;
        match (
            n.checked_sub(VirtioNetHdr::LEN),
            VirtioNetHdr::decode(&head),
        ) {
            (Some(len), Some(hdr)) => Ok((hdr, len)),
            _ => Err(io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "{}: read of {n} bytes is shorter than the virtio-net header",
                    self.name
                ),
            )),
        }
    }

    /// Writes one packet of a device opened with offloads, preceded by
    /// `hdr` ([`VirtioNetHdr::plain`] for a packet with a complete
    /// checksum), and returns the packet bytes written (header excluded).
    ///
    /// Non-blocking like [`send`](Tun::send); the kernel rejects a header
    /// inconsistent with the packet with `EINVAL`.
    ///
    /// # Errors
    ///
    /// As [`send`](Tun::send), and `EINVAL` for a header inconsistent with
    /// the packet.
    pub fn send_vnet(&self, hdr: &VirtioNetHdr, packet: &[u8]) -> io::Result<usize> {
        let n = sys::write2(self.fd.as_fd(), &hdr.encode(), packet)?;
        Ok(n.saturating_sub(VirtioNetHdr::LEN))
    }

    /// Reads up to `bufs.len()` packets, one per buffer, storing each length
    /// in `lens`, and stops at the first `WouldBlock`.
    ///
    /// Returns the number of packets read. Returns `WouldBlock` only if no
    /// packet at all was available (so readiness-based callers can clear
    /// their readiness). Only as many packets as `lens.len()` are read.
    ///
    /// # Errors
    ///
    /// As [`recv`](Tun::recv); an error after the first packet is returned
    /// (and the packets read before it are lost to the caller), except
    /// `WouldBlock`, which ends the batch.
    pub fn recv_batch(&self, bufs: &mut [&mut [u8]], lens: &mut [usize]) -> io::Result<usize> {
        let mut count = 0;
        for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            match self.recv(buf) {
                Ok(n) => {
                    *len = n;
                    count += 1;
                }
                Err(e) if count > 0 && e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }

    /// Blocks (with `poll(2)`) until a packet can be read or `timeout`
    /// elapses (`None`: wait forever). Returns whether the fd is readable.
    /// Meant for synchronous users and tests; async users rely on their
    /// runtime's readiness instead.
    ///
    /// # Errors
    ///
    /// The raw OS error of `poll(2)` (`Interrupted` when a signal arrives).
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let ms = match timeout {
            None => -1,
            Some(t) => {
                // Round up so a short timeout does not become a busy poll.
                let ms = t.as_micros().div_ceil(1000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        sys::poll_readable(self.fd.as_fd(), ms)
    }
}

/// `/proc/thread-self/net/if_inet6` (the calling thread's namespace, as
/// for the ioctls), or `/proc/net/if_inet6` on kernels before 3.17.
fn read_if_inet6() -> io::Result<String> {
    std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        .or_else(|_| std::fs::read_to_string("/proc/net/if_inet6"))
}

/// One line of `/proc/net/if_inet6`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IfInet6<'a> {
    addr: Ipv6Addr,
    index: u32,
    prefix: u8,
    /// `IFA_F_*` bits (`IFA_F_TENTATIVE` is 0x40).
    flags: u32,
    name: &'a str,
}

/// Parses `/proc/net/if_inet6`: per line 32 hex digits of address, then
/// interface index, prefix length, scope and flags in hex, then the
/// interface name. Malformed lines are skipped.
fn parse_if_inet6(table: &str) -> impl Iterator<Item = IfInet6<'_>> {
    table.lines().filter_map(|line| {
        let mut f = line.split_whitespace();
        let addr = f.next().filter(|a| a.len() == 32)?;
        let addr = Ipv6Addr::from(u128::from_str_radix(addr, 16).ok()?);
        let index = u32::from_str_radix(f.next()?, 16).ok()?;
        let prefix = u8::from_str_radix(f.next()?, 16).ok()?;
        let _scope = f.next()?;
        let flags = u32::from_str_radix(f.next()?, 16).ok()?;
        let name = f.next()?;
        Some(IfInet6 {
            addr,
            index,
            prefix,
            flags,
            name,
        })
    })
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_tun_no_pi() {
        let bits = TunFlags::default().bits() as i32;
        assert_eq!(bits, libc::IFF_TUN | libc::IFF_NO_PI);
        let mq = TunFlags {
            multi_queue: true,
            ..TunFlags::default()
        }
        .bits() as i32;
        assert_eq!(mq, libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE);
        let vnet = TunFlags {
            vnet_hdr: true,
            ..TunFlags::default()
        }
        .bits() as i32;
        assert_eq!(vnet, libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR);
    }

    #[test]
    fn flags_tap_replace_tun() {
        let tap = TunFlags {
            tap: true,
            vnet_hdr: true,
            ..TunFlags::default()
        }
        .bits() as i32;
        assert_eq!(tap, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR);
    }

    #[test]
    fn netmask_and_prefix_round_trip() {
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(8), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(31), Ipv4Addr::new(255, 255, 255, 254));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        for p in 0..=32 {
            assert_eq!(prefix_len(netmask(p)), Some(p));
        }
        assert_eq!(prefix_len(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn name_validation() {
        assert!(validate_name("tun0", true).is_ok());
        assert!(validate_name("utcp%d", true).is_ok());
        assert!(validate_name("a23456789012345", false).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\0b",
            "a234567890123456",
        ] {
            let err = validate_name(bad, true).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(validate_name("x%d", false).is_err());
        assert!(validate_name("x%s", true).is_err());
        assert!(validate_name("x%d%d", true).is_err());
        let err = validate_name("this-name-is-too-long", true).unwrap_err();
        assert!(err.to_string().contains("at most 15"), "{err}");
    }

    #[test]
    fn address_validation() {
        let a = Ipv4Addr::new(10, 200, 1, 1);
        assert!(validate_address(a, 24).is_ok());
        assert!(validate_address(a, 32).is_ok());
        for p in [0, 33, 255] {
            let err = validate_address(a, p).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("prefix"), "{err}");
        }
        for bad in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
        ] {
            assert_eq!(
                validate_address(bad, 24).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn address6_validation() {
        let a: Ipv6Addr = "fd00:77::1".parse().unwrap();
        assert!(validate_address6(a, 64).is_ok());
        assert!(validate_address6(a, 128).is_ok());
        assert!(validate_address6("fe80::1".parse().unwrap(), 64).is_ok());
        for p in [0, 129, 255] {
            let err = validate_address6(a, p).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("1..=128"), "{err}");
        }
        for bad in ["::", "::1", "ff02::1", "::ffff:10.0.0.1"] {
            let err = validate_address6(bad.parse().unwrap(), 64).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn if_inet6_lines_parse() {
        let table = "\
fd000077000000000000000000000001 2d1 40 00 c0 utt1x0
fe8000000000000092d3a7f6290e26f5 2d1 40 20 80     utt1x0
00000000000000000000000000000001 01 80 10 80       lo
garbage line
";
        let rows: Vec<_> = parse_if_inet6(table).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            IfInet6 {
                addr: "fd00:77::1".parse().unwrap(),
                index: 0x2d1,
                prefix: 64,
                flags: 0xc0,
                name: "utt1x0",
            }
        );
        assert_eq!(
            rows[1].addr,
            "fe80::92d3:a7f6:290e:26f5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!((rows[2].addr, rows[2].prefix), (Ipv6Addr::LOCALHOST, 128));
    }

    #[test]
    fn mtu_validation() {
        assert!(validate_mtu(68).is_ok());
        assert!(validate_mtu(1500).is_ok());
        assert!(validate_mtu(65535).is_ok());
        assert!(validate_mtu(67).is_err());
        assert!(validate_mtu(65536).is_err());
    }

    #[test]
    fn errors_carry_message_kind_and_source() {
        let err = open_error(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err
            .to_string()
            .contains("/dev/net/tun not found: is the tun module loaded?"));
        let src = err.get_ref().and_then(|e| e.source()).unwrap();
        let os = src.downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::ENOENT));

        let err = open_error(io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("CAP_NET_ADMIN"));

        let err = set_iff_error(io::Error::from_raw_os_error(libc::EPERM), "x", Mode::Create);
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err
            .to_string()
            .contains("run as root or grant CAP_NET_ADMIN"));

        let err = set_iff_error(io::Error::from_raw_os_error(libc::EBUSY), "x", Mode::Attach);
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert!(err.to_string().contains("in use"));

        let err = ioctl_error(
            io::Error::from_raw_os_error(libc::EINVAL),
            "x",
            "setting MTU",
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn ifreq_name_round_trip() {
        let req = sys::IfReq::new("utt123");
        assert_eq!(req.name(), "utt123");
        // Over-long names are truncated, never left unterminated.
        let req = sys::IfReq::new("0123456789abcdefXYZ");
        assert_eq!(req.name(), "0123456789abcde");
    }
}
