//! The shared state behind the interface: one [`Stack`] under a mutex, a
//! condition variable for the calls that block, and a time-keeping thread.
//!
//! packetdrill calls in from two threads at once: the main thread injects
//! and sniffs packets and makes non-blocking calls; a system-call thread
//! makes the calls a script expects to block. Every call takes the lock,
//! first runs the stack's timers that are due (so that nothing is seen out
//! of order), does its work, then drains `poll_transmit` into the outbound
//! queue that `netdev_receive` hands to packetdrill, stamped with the time
//! the stack emitted them. A call that would block waits on the condition
//! variable, which everyone who changes the state notifies: the packet
//! path, the socket calls, and the time-keeping thread, which sleeps until
//! the stack's next deadline and then runs its timers, so retransmissions,
//! delayed ACKs and TIME-WAIT expiry happen as the script clock advances.

use crate::clock::Clock;
use crate::errno::{Errno, SysResult};
use crate::flags::Flags;
use crate::socket::Socket;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};
use tcp_stack::{Instant, Stack};

/// Outbound datagrams kept for packetdrill at most; a script that never
/// sniffs must not make the shim grow without bound.
const MAX_OUTBOUND: usize = 65_536;

/// One datagram the stack sent, with the wall-clock time it left.
struct Outbound {
    bytes: Vec<u8>,
    stamp_us: u64,
}

/// What `netdev_receive` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A datagram of this length, sent at this time (µs since the epoch).
    Packet { len: usize, stamp_us: u64 },
    /// Nothing within the receive timeout.
    Nothing,
    /// Nothing for the whole sniff timeout: packetdrill is waiting for a
    /// packet that will not come.
    GiveUp,
}

/// Everything the lock protects.
pub struct Inner {
    pub stack: Stack,
    pub sockets: HashMap<RawFd, Socket>,
    outbound: VecDeque<Outbound>,
    scratch: Vec<u8>,
    /// When packetdrill started the current run of sniffs that found
    /// nothing (reset by any packet either way and by `usleep`).
    sniff_since: Option<StdInstant>,
    stopping: bool,
}

impl Inner {
    /// Drains the stack's output into the outbound queue (and its events,
    /// which the shim does not need: it asks the stack for state
    /// directly). Returns whether anything was sent.
    fn pump(&mut self, now: Instant, clock: &Clock, verbose: bool) -> bool {
        let mut sent = false;
        while let Some(n) = self.stack.poll_transmit(now, &mut self.scratch) {
            if self.outbound.len() >= MAX_OUTBOUND {
                self.outbound.pop_front();
            }
            let bytes = self.scratch[..n].to_vec();
            if verbose {
                eprintln!("tcp-packetdrill: {now} out {}", summary(&bytes));
            }
            self.outbound.push_back(Outbound {
                bytes,
                stamp_us: clock.wall_micros(now),
            });
            sent = true;
        }
        while self.stack.poll_event().is_some() {}
        sent
    }
}

/// How long a call may wait for its condition.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Not at all (a non-blocking descriptor or call).
    Never,
    /// Until the condition holds.
    Forever,
    /// Until the condition holds or this instant passes.
    Until(StdInstant),
}

impl Wait {
    pub fn blocking(nonblocking: bool) -> Wait {
        if nonblocking {
            Wait::Never
        } else {
            Wait::Forever
        }
    }
}

/// The state shared by packetdrill's threads and the time-keeping thread.
pub struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    pub clock: Clock,
    pub flags: Flags,
    /// Why the shim could not start (bad flags): every call then fails.
    init_error: Option<String>,
}

impl Shared {
    fn lock(&self) -> SysResult<MutexGuard<'_, Inner>> {
        if self.init_error.is_some() {
            return Err(Errno::EINVAL);
        }
        // A poisoned lock means a call panicked half-way (and reported
        // EIO): the state may be torn, so every later call fails too.
        self.inner.lock().map_err(|_| Errno::EIO)
    }

    /// Runs `op` with the stack up to date, repeating it while it says
    /// `EAGAIN` and `wait` allows, waking whenever the state changes.
    /// `op` gets the stack's `now`; its effects are transmitted before the
    /// lock is released. After the deadline of `Wait::Until`, the last
    /// `EAGAIN` is returned.
    pub fn run<T>(
        &self,
        wait: Wait,
        mut op: impl FnMut(&mut Inner, Instant) -> SysResult<T>,
    ) -> SysResult<T> {
        let mut g = self.lock()?;
        loop {
            let now = self.clock.now();
            let timers_due = g.stack.poll_timeout().is_some_and(|t| t <= now);
            if timers_due {
                g.stack.handle_timeout(now);
            }
            let r = op(&mut g, now);
            let sent = g.pump(now, &self.clock, self.flags.verbose);
            let blocked = matches!(r, Err(Errno::EAGAIN));
            // Notify only on a change: a waiter that finds its condition
            // still false changes nothing, so waiters never wake each other
            // in a loop.
            if !blocked || sent || timers_due {
                self.changed.notify_all();
            }
            if !blocked {
                return r;
            }
            g = match wait {
                Wait::Never => return r,
                Wait::Forever => self.changed.wait(g).map_err(|_| Errno::EIO)?,
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(StdInstant::now());
                    if left.is_zero() {
                        return r;
                    }
                    self.changed
                        .wait_timeout(g, left)
                        .map_err(|_| Errno::EIO)?
                        .0
                }
            };
        }
    }

    /// packetdrill injects a datagram: IPv4 or IPv6 (RFC 8200), told apart
    /// by the stack from the version field; it drops anything else.
    pub fn netdev_send(&self, packet: &[u8]) -> SysResult<()> {
        if self.flags.verbose {
            eprintln!(
                "tcp-packetdrill: {} in  {}",
                self.clock.now(),
                summary(packet)
            );
        }
        self.run(Wait::Never, |inner, now| {
            inner.sniff_since = None;
            inner.stack.handle_packet(now, packet);
            Ok(())
        })
    }

    /// packetdrill sniffs the next datagram the stack sent. Waits at most
    /// the receive timeout; see [`Received`].
    pub fn netdev_receive(&self, buf: &mut [u8]) -> SysResult<Received> {
        if self.init_error.is_some() {
            // Fail the script's first sniff rather than leave packetdrill
            // retrying for ever.
            return Ok(Received::GiveUp);
        }
        let start = StdInstant::now();
        let wait = Wait::Until(start + self.flags.receive_timeout);
        let r = self.run(wait, |inner, _| match inner.outbound.pop_front() {
            Some(p) => {
                inner.sniff_since = None;
                let len = p.bytes.len().min(buf.len());
                buf[..len].copy_from_slice(&p.bytes[..len]);
                Ok(Received::Packet {
                    len,
                    stamp_us: p.stamp_us,
                })
            }
            None => Err(Errno::EAGAIN),
        });
        match r {
            Err(Errno::EAGAIN) => {}
            other => return other,
        }
        let mut g = self.lock()?;
        let since = *g.sniff_since.get_or_insert(start);
        let limit = self.flags.sniff_timeout;
        if !limit.is_zero() && since.elapsed() >= limit {
            g.sniff_since = None;
            eprintln!(
                "tcp-packetdrill: the stack sent nothing for {} ms while packetdrill \
                 waited for a packet (sniff_timeout_ms); failing the sniff",
                limit.as_millis()
            );
            return Ok(Received::GiveUp);
        }
        Ok(Received::Nothing)
    }

    /// The script clock's `usleep`.
    pub fn usleep(&self, d: Duration) -> SysResult<()> {
        self.lock()?.sniff_since = None;
        std::thread::sleep(d);
        Ok(())
    }

    /// The script clock's `gettimeofday`, in µs since the epoch.
    pub fn now_wall_micros(&self) -> u64 {
        self.clock.wall_micros(self.clock.now())
    }

    /// The time-keeping thread: runs the stack's timers at their deadlines.
    fn keep_time(&self) {
        let Ok(mut g) = self.lock() else { return };
        loop {
            if g.stopping {
                return;
            }
            let now = self.clock.now();
            let due = g.stack.poll_timeout().is_some_and(|t| t <= now);
            if due {
                g.stack.handle_timeout(now);
            }
            let sent = g.pump(now, &self.clock, self.flags.verbose);
            if due || sent {
                self.changed.notify_all();
            }
            let next = g.stack.poll_timeout();
            g = match next {
                Some(t) => {
                    let left = self
                        .clock
                        .std_instant(t)
                        .saturating_duration_since(StdInstant::now());
                    match self.changed.wait_timeout(g, left) {
                        Ok((g, _)) => g,
                        Err(_) => return,
                    }
                }
                None => match self.changed.wait(g) {
                    Ok(g) => g,
                    Err(_) => return,
                },
            };
        }
    }
}

/// The object behind packetdrill's `userdata`: the shared state and the
/// time-keeping thread, stopped and joined on drop (packetdrill's `free`).
pub struct Shim {
    pub shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
}

impl Shim {
    /// A shim configured by a `--so_flags` string; on bad flags, a failed
    /// one that says why.
    pub fn from_flags(flags: Option<&str>) -> Shim {
        match Flags::parse(flags) {
            Ok(f) => Shim::new(f)
                .unwrap_or_else(|e| Shim::failed(format!("cannot start the timer thread: {e}"))),
            Err(e) => Shim::failed(format!("bad --so_flags: {e}")),
        }
    }

    /// A shim with a running time-keeping thread.
    pub fn new(flags: Flags) -> std::io::Result<Shim> {
        let shared = Arc::new(Shared::new(flags, None));
        let s = Arc::clone(&shared);
        let timer = std::thread::Builder::new()
            .name("tcp-packetdrill-timers".into())
            .spawn(move || s.keep_time())?;
        Ok(Shim {
            shared,
            timer: Some(timer),
        })
    }

    /// A shim whose every call fails, after printing why.
    pub fn failed(why: String) -> Shim {
        eprintln!("tcp-packetdrill: {why}; every call will fail");
        Shim {
            shared: Arc::new(Shared::new(Flags::default(), Some(why))),
            timer: None,
        }
    }
}

impl Shared {
    fn new(flags: Flags, init_error: Option<String>) -> Shared {
        let inner = Inner {
            stack: Stack::new(flags.config.clone()),
            sockets: HashMap::new(),
            outbound: VecDeque::new(),
            scratch: vec![0; flags.config.mtu.max(1500)],
            sniff_since: None,
            stopping: false,
        };
        Shared {
            inner: Mutex::new(inner),
            changed: Condvar::new(),
            clock: Clock::new(),
            flags,
            init_error,
        }
    }
}

impl std::ops::Deref for Shim {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Ok(mut g) = self.shared.inner.lock() {
            g.stopping = true;
            // Descriptors packetdrill has not closed yet (it closes its
            // leftovers with libc's close() before freeing the shim).
            for (_, s) in g.sockets.drain() {
                s.host.close();
            }
        }
        self.shared.changed.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

/// A one-line description of an IPv4 or IPv6 TCP datagram for the
/// verbose log. IPv6 is read as the stack sends it, the TCP header right
/// after the fixed header (RFC 8200 3); a packet with extension headers is
/// only named by its addresses.
fn summary(p: &[u8]) -> String {
    use std::net::{IpAddr, SocketAddr};
    use tcp_stack::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket};
    let (src, dst, tcp_bytes) = match p.first().map(|b| b >> 4) {
        Some(4) => match Ipv4Packet::new_checked(p) {
            Ok(ip) => (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                (ip.protocol() == IpProtocol::Tcp).then(|| ip.payload().to_vec()),
            ),
            Err(_) => return format!("{} bytes (bad IPv4)", p.len()),
        },
        Some(6) => match Ipv6Packet::new_checked(p) {
            Ok(ip) => (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                (ip.next_header() == IpProtocol::Tcp).then(|| ip.payload().to_vec()),
            ),
            Err(_) => return format!("{} bytes (bad IPv6)", p.len()),
        },
        _ => return format!("{} bytes (neither IPv4 nor IPv6)", p.len()),
    };
    let Some(Ok(tcp)) = tcp_bytes.as_deref().map(TcpPacket::new_checked) else {
        return format!("{src} > {dst} {} bytes (not TCP)", p.len());
    };
    let fl = tcp.flags();
    let names = [
        (fl.syn(), 'S'),
        (fl.fin(), 'F'),
        (fl.rst(), 'R'),
        (fl.psh(), 'P'),
        (fl.ack(), '.'),
    ];
    let f: String = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
    format!(
        "{} > {} {f} seq {} ack {} win {} len {}",
        SocketAddr::new(src, tcp.src_port()),
        SocketAddr::new(dst, tcp.dst_port()),
        tcp.seq().0,
        tcp.ack().0,
        tcp.window(),
        tcp.payload().len()
    )
}

#[cfg(test)]
mod tests {
    use super::summary;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use tcp_stack::wire::tcp::fill_checksum;
    use tcp_stack::wire::{IpProtocol, Ipv4Repr, Ipv6Repr, TcpFlags, TcpOptions, TcpRepr};
    use tcp_stack::SeqNum;

    fn tcp() -> TcpRepr {
        TcpRepr {
            src_port: 8080,
            dst_port: 40000,
            seq: SeqNum(7),
            ack: SeqNum(9),
            flags: TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
            window: 1000,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    fn packet(src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let t = tcp();
        let len = t.segment_len(3);
        let h = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ip = Ipv4Repr {
                    src: s,
                    dst: d,
                    protocol: IpProtocol::Tcp,
                    payload_len: len,
                    ttl: 64,
                    tos: 0,
                    ident: 0,
                    dont_frag: true,
                };
                let mut b = vec![0; ip.total_len()];
                ip.emit(&mut b);
                b
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ip = Ipv6Repr {
                    src: s,
                    dst: d,
                    next_header: IpProtocol::Tcp,
                    payload_len: len,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                };
                let mut b = vec![0; Ipv6Repr::HEADER_LEN + len];
                ip.emit(&mut b);
                b
            }
            _ => unreachable!(),
        };
        let mut b = h;
        let off = b.len() - len;
        t.emit(&mut b[off..]);
        fill_checksum(&mut b[off..], src, dst);
        b
    }

    /// The verbose log reads IPv6 packets (RFC 8200 3) as well as IPv4.
    #[test]
    fn verbose_summary_reads_both_families() {
        let six = packet(
            IpAddr::V6(Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        );
        assert_eq!(
            summary(&six),
            "[fd3d:fa7b:d17d::1]:8080 > [2001:db8::1]:40000 S. seq 7 ack 9 win 1000 len 3"
        );
        let four = packet(
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        );
        assert_eq!(
            summary(&four),
            "192.168.0.1:8080 > 192.0.2.1:40000 S. seq 7 ack 9 win 1000 len 3"
        );
        assert!(summary(&[0x50, 0, 0]).contains("neither IPv4 nor IPv6"));
    }
}
