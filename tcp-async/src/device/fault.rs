//! A device wrapper that injects network faults, deterministically.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{Device, Medium, Offloads, RxChecksum, RxPacket, TxHeaders};

/// Which packets a [`FaultInjector`] applies its faults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Packets the driver sends.
    Send,
    /// Packets the driver receives.
    Recv,
    /// Both.
    #[default]
    Both,
}

impl Direction {
    fn includes(self, other: Direction) -> bool {
        self == Direction::Both || self == other
    }
}

/// The faults to inject. Probabilities are per packet, in `0.0..=1.0`.
///
/// `Faults::default()` injects nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Seeds the decisions: the same seed, settings and packets give the same
    /// decisions, per direction, in packet order.
    pub seed: u64,
    /// Chance a packet is dropped.
    pub loss: f64,
    /// Chance a packet is delivered twice.
    pub duplicate: f64,
    /// Chance a packet is held back by `reorder_delay`, letting later ones
    /// overtake it.
    pub reorder: f64,
    /// How long a reordered packet is held (on top of `delay`). Default 10 ms.
    pub reorder_delay: Duration,
    /// Chance one random bit of a packet is flipped.
    pub corrupt: f64,
    /// Latency added to every packet (order kept).
    pub delay: Duration,
    /// Which directions the faults apply to.
    pub apply_to: Direction,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            corrupt: 0.0,
            delay: Duration::ZERO,
            apply_to: Direction::Both,
        }
    }
}

/// What a [`FaultInjector`] has done so far, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets dropped: lost, or a held queue was full.
    pub dropped: u64,
    /// Packets delivered twice.
    pub duplicated: u64,
    /// Packets held back for reordering.
    pub reordered: u64,
    /// Packets with a bit flipped.
    pub corrupted: u64,
    /// Packets delayed by `delay`.
    pub delayed: u64,
}

/// Most packets held (delayed or reordered) per direction; more are dropped.
const MAX_HELD: usize = 65_536;

/// Most packets examined per `poll_recv` before yielding.
const RECV_BUDGET: usize = 64;

/// SplitMix64: tiny, fast, and good enough to decide packet fates.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a float in [0, 1).
        let x = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        x < p
    }
}

/// The fate of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decision {
    lose: bool,
    /// Byte index and bit to flip.
    corrupt: Option<(usize, u8)>,
    duplicate: bool,
    reorder: bool,
}

impl Decision {
    /// Always draws the same five numbers, so each packet's fate depends only
    /// on its position in the sequence.
    fn draw(rng: &mut SplitMix64, faults: &Faults, len: usize) -> Decision {
        let lose = rng.chance(faults.loss);
        let corrupt = rng.chance(faults.corrupt);
        let duplicate = rng.chance(faults.duplicate);
        let reorder = rng.chance(faults.reorder);
        let spot = rng.next_u64();
        Decision {
            lose,
            corrupt: (corrupt && len > 0).then(|| ((spot >> 3) as usize % len, (spot & 7) as u8)),
            duplicate,
            reorder,
        }
    }
}

/// A packet waiting for its release time.
#[derive(Debug)]
struct Held {
    at: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    /// Reversed, so the `BinaryHeap` pops the earliest (then oldest) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction's decisions and held packets.
#[derive(Debug)]
struct Lane {
    rng: SplitMix64,
    held: BinaryHeap<Held>,
    seq: u64,
}

impl Lane {
    fn new(seed: u64) -> Self {
        Lane {
            rng: SplitMix64(seed),
            held: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Holds `packet` until `at`; false (dropped) when the queue is full.
    fn hold(&mut self, at: Instant, packet: Vec<u8>) -> bool {
        if self.held.len() >= MAX_HELD {
            return false;
        }
        self.seq += 1;
        self.held.push(Held {
            at,
            seq: self.seq,
            packet,
        });
        true
    }

    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.peek()?.at <= now {
            self.held.pop().map(|h| h.packet)
        } else {
            None
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.at)
    }
}

/// Wraps a device and drops, duplicates, reorders, corrupts and delays its
/// packets.
///
/// Decisions come from a seeded generator, one stream per direction, so a
/// given seed and packet sequence always meet the same fates. Delayed and
/// reordered packets wait in the wrapper and are released by a timer it
/// holds: the next `poll_recv` or `poll_send` after the timer fires passes
/// them on, and the timer wakes the task that last polled either. The driver
/// therefore has to keep polling `poll_recv`, as it does anyway.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tcp_async::device::{Direction, FaultInjector, Faults, MemoryDevice};
///
/// let (a, _b) = MemoryDevice::pair(1500);
/// let faults = Faults {
///     seed: 42,
///     loss: 0.02,
///     delay: Duration::from_millis(20),
///     apply_to: Direction::Send,
///     ..Faults::default()
/// };
/// let dev = FaultInjector::new(a, faults);
/// assert_eq!(dev.stats().dropped, 0);
/// ```
#[derive(Debug)]
pub struct FaultInjector<D: Device> {
    inner: D,
    faults: Faults,
    send: Lane,
    recv: Lane,
    /// Due send-direction packets the inner device has not taken yet.
    send_backlog: VecDeque<Vec<u8>>,
    /// Due receive-direction packets for the next `poll_recv`.
    recv_ready: VecDeque<Vec<u8>>,
    /// Fires at the earliest release time; created on first use.
    sleep: Option<Pin<Box<Sleep>>>,
    stats: FaultStats,
}

impl<D: Device> FaultInjector<D> {
    /// Wraps `inner`, injecting `faults`.
    pub fn new(inner: D, faults: Faults) -> Self {
        FaultInjector {
            inner,
            send: Lane::new(faults.seed),
            // A separate stream, so interleaving does not change decisions.
            recv: Lane::new(faults.seed ^ 0x5DEE_CE66_D1CE_F00D),
            faults,
            send_backlog: VecDeque::new(),
            recv_ready: VecDeque::new(),
            sleep: None,
            stats: FaultStats::default(),
        }
    }

    /// What has been injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The faults being injected.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Packets held in the wrapper (delayed, reordered or waiting for the
    /// inner device).
    pub fn in_flight(&self) -> usize {
        self.send.held.len()
            + self.recv.held.len()
            + self.send_backlog.len()
            + self.recv_ready.len()
    }

    /// The wrapped device.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped device.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Draws a packet's fate and counts it. Returns the decision and how long
    /// to hold the packet (zero: pass it on now).
    fn decide(&mut self, dir: Direction, len: usize) -> (Decision, Duration) {
        let lane = match dir {
            Direction::Recv => &mut self.recv,
            _ => &mut self.send,
        };
        let d = Decision::draw(&mut lane.rng, &self.faults, len);
        if d.lose {
            self.stats.dropped += 1;
            return (d, Duration::ZERO);
        }
        let mut hold = self.faults.delay;
        if !hold.is_zero() {
            self.stats.delayed += 1;
        }
        if d.reorder {
            self.stats.reordered += 1;
            hold += self.faults.reorder_delay;
        }
        self.stats.corrupted += d.corrupt.is_some() as u64;
        self.stats.duplicated += d.duplicate as u64;
        (d, hold)
    }

    /// Holds `packet` (and its duplicate) in `dir`'s lane for `hold`.
    fn hold(&mut self, dir: Direction, hold: Duration, duplicate: bool, packet: Vec<u8>) {
        let at = Instant::now() + hold;
        let lane = match dir {
            Direction::Recv => &mut self.recv,
            _ => &mut self.send,
        };
        let mut kept = 0;
        if duplicate {
            kept += lane.hold(at, packet.clone()) as u64;
        }
        kept += lane.hold(at, packet) as u64;
        self.stats.dropped += 1 + duplicate as u64 - kept;
    }

    /// Moves due packets on, passes the send backlog to the inner device,
    /// and arms the timer for the next release.
    fn service(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.send.held.is_empty()
                && self.recv.held.is_empty()
                && self.send_backlog.is_empty()
            {
                return;
            }
            let now = Instant::now();
            while let Some(p) = self.send.pop_due(now) {
                self.send_backlog.push_back(p);
            }
            let ready = self.recv_ready.len();
            while let Some(p) = self.recv.pop_due(now) {
                self.recv_ready.push_back(p);
            }
            if self.recv_ready.len() > ready {
                // The driver may have polled `poll_recv` already this round.
                cx.waker().wake_by_ref();
            }
            self.flush_backlog(cx);
            let next = match (self.send.next_at(), self.recv.next_at()) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return,
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return;
            }
        }
    }

    /// Sends backlogged packets until the inner device is busy.
    fn flush_backlog(&mut self, cx: &mut Context<'_>) {
        while let Some(p) = self.send_backlog.front() {
            match self.inner.poll_send(cx, p) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "fault injector: delayed packet not sent");
                }
                Poll::Pending => return,
            }
            self.send_backlog.pop_front();
        }
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.service(cx);
        for _ in 0..RECV_BUDGET {
            if let Some(p) = self.recv_ready.pop_front() {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                return Poll::Ready(Ok(n));
            }
            let n = match self.inner.poll_recv(cx, buf) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Arms the timer for anything held during this call.
                    self.service(cx);
                    if self.recv_ready.is_empty() {
                        return Poll::Pending;
                    }
                    continue;
                }
            };
            if !self.faults.apply_to.includes(Direction::Recv) {
                return Poll::Ready(Ok(n));
            }
            let (d, hold) = self.decide(Direction::Recv, n);
            if d.lose {
                continue;
            }
            if let Some((byte, bit)) = d.corrupt {
                buf[byte] ^= 1 << bit;
            }
            if !hold.is_zero() {
                self.hold(Direction::Recv, hold, d.duplicate, buf[..n].to_vec());
                continue;
            }
            if d.duplicate {
                self.recv_ready.push_back(buf[..n].to_vec());
            }
            return Poll::Ready(Ok(n));
        }
        // Bounded work per poll: come back later.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes the packet unless earlier held packets still wait for the inner
    /// device. A packet the inner device refuses after its fate was drawn is
    /// kept and sent later, so fates never depend on `Pending`.
    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        self.service(cx);
        if !self.send_backlog.is_empty() {
            // The inner device's `Pending` during the flush registered `cx`.
            return Poll::Pending;
        }
        if !self.faults.apply_to.includes(Direction::Send) {
            return self.inner.poll_send(cx, packet);
        }
        let (d, hold) = self.decide(Direction::Send, packet.len());
        if d.lose {
            return Poll::Ready(Ok(()));
        }
        let mut corrupted = None;
        if let Some((byte, bit)) = d.corrupt {
            let mut p = packet.to_vec();
            p[byte] ^= 1 << bit;
            corrupted = Some(p);
        }
        if !hold.is_zero() {
            let p = corrupted.unwrap_or_else(|| packet.to_vec());
            self.hold(Direction::Send, hold, d.duplicate, p);
            self.service(cx);
            return Poll::Ready(Ok(()));
        }
        let p = corrupted.as_deref().unwrap_or(packet);
        if d.duplicate {
            self.send_backlog.push_back(p.to_vec());
        }
        match self.inner.poll_send(cx, p) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                self.send_backlog.clear();
                return Poll::Ready(Err(e));
            }
            Poll::Pending => self.send_backlog.push_front(p.to_vec()),
        }
        self.flush_backlog(cx);
        Poll::Ready(Ok(()))
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn mac_address(&self) -> Option<[u8; 6]> {
        self.inner.mac_address()
    }

    /// The inner device's offloads in the directions without faults. Faults
    /// act on whole packets with complete checksums, so that a corrupted
    /// packet is caught by the stack: with receive faults nothing is
    /// vouched for (the inner device completes partial checksums in plain
    /// `poll_recv`), with send faults no super-packets are taken.
    fn offloads(&self) -> Offloads {
        let inner = self.inner.offloads();
        Offloads {
            rx_max: if self.faults.apply_to.includes(Direction::Recv) {
                0
            } else {
                inner.rx_max
            },
            tso_max: if self.faults.apply_to.includes(Direction::Send) {
                0
            } else {
                inner.tso_max
            },
        }
    }

    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        if self.faults.apply_to.includes(Direction::Recv) {
            return self.poll_recv(cx, buf).map_ok(|len| RxPacket {
                len,
                checksum: RxChecksum::Unverified,
            });
        }
        // Held packets of the send direction still need the timer serviced.
        self.service(cx);
        self.inner.poll_recv_meta(cx, buf)
    }

    fn poll_send_gso(
        &mut self,
        cx: &mut Context<'_>,
        packet: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        if self.faults.apply_to.includes(Direction::Send) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a fault injector on the send path takes no super-packets",
            )));
        }
        self.service(cx);
        self.inner.poll_send_gso(cx, packet, segment_size, headers)
    }
}

#[cfg(test)]
mod tests;
