//! One direction of a simulated link: latency, serialization, a tail-drop
//! queue, and seeded impairments (loss, duplication, reordering, corruption).

use crate::rng::Rng;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;

/// The behaviour of one direction of a link.
///
/// Impairments are applied in this order: the link being down, the MTU, the
/// bottleneck queue (tail drop), loss on the wire, extra delay for reordered
/// packets, corruption (one random bit flipped), duplication (a second copy
/// arrives together with the first).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bottleneck rate in bits per second; `None` means infinitely fast
    /// (no serialization delay and no queue).
    pub bandwidth_bps: Option<u64>,
    /// Bytes the bottleneck queue holds (including the packet being
    /// serialized); a packet that does not fit is dropped (tail drop).
    pub queue_bytes: usize,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_delay`, letting
    /// later packets overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Probability that one random bit of the packet is flipped.
    pub corrupt: f64,
    /// Largest datagram the link carries; bigger ones are dropped.
    pub mtu: usize,
    /// Probability that an ACK gets a forged SACK block for data just above
    /// its cumulative ACK that the receiver does not hold (starting at the
    /// ACK itself, or one segment above it). To the sender this is a
    /// receiver reneging on SACKed data (RFC 2018 8).
    pub renege: f64,
    /// Probability that a segment's timestamp echo (TSecr) is zeroed, as a
    /// buggy peer or middlebox does (RFC 7323 4.3).
    pub zero_tsecr: f64,
    /// A datagram above `mtu` is answered, as a router on the path does,
    /// with ICMP "fragmentation needed" carrying the MTU (IPv4, RFC 1191
    /// 4) or ICMPv6 "packet too big" (RFC 4443 3.2), from its destination's
    /// address; without it, it vanishes (a black hole).
    pub too_big_icmp: bool,
}

impl Default for LinkConfig {
    /// A perfect 10 ms link of unlimited rate.
    fn default() -> Self {
        LinkConfig::ideal(Duration::from_millis(10))
    }
}

impl LinkConfig {
    /// No rate limit and no impairments, only `latency`.
    pub fn ideal(latency: Duration) -> Self {
        LinkConfig {
            latency,
            bandwidth_bps: None,
            queue_bytes: usize::MAX,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            mtu: 1500,
            renege: 0.0,
            zero_tsecr: 0.0,
            too_big_icmp: false,
        }
    }

    /// A clean local network: 100 us, 1 Gbit/s, 256 KiB queue.
    pub fn lan() -> Self {
        LinkConfig::ideal(Duration::from_micros(100)).bandwidth(1_000_000_000, 256 * 1024)
    }

    /// A clean wide-area path: 25 ms, 100 Mbit/s, 1 MiB queue.
    pub fn wan() -> Self {
        LinkConfig::ideal(Duration::from_millis(25)).bandwidth(100_000_000, 1024 * 1024)
    }

    /// A hostile path: `loss` loss, 1% duplication, 5% reordering by 15 ms,
    /// 1% corruption, 10 ms latency.
    pub fn lossy(loss: f64) -> Self {
        LinkConfig::ideal(Duration::from_millis(10))
            .loss(loss)
            .duplicate(0.01)
            .reorder(0.05, Duration::from_millis(15))
            .corrupt(0.01)
    }

    /// Sets the one-way propagation delay.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Limits the rate to `bps` with a queue of `queue_bytes`.
    pub fn bandwidth(mut self, bps: u64, queue_bytes: usize) -> Self {
        self.bandwidth_bps = Some(bps.max(1));
        self.queue_bytes = queue_bytes;
        self
    }

    /// Sets the probability that a packet is lost.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the probability that a packet is delivered twice.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the probability that a packet is held back by `delay`.
    pub fn reorder(mut self, p: f64, delay: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = delay;
        self
    }

    /// Sets the probability that one random bit of a packet is flipped.
    pub fn corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Sets the probability that an ACK gets a forged SACK block (see
    /// [`renege`](Self::renege)).
    pub fn renege(mut self, p: f64) -> Self {
        self.renege = p;
        self
    }

    /// Sets the probability that a segment's TSecr is zeroed.
    pub fn zero_tsecr(mut self, p: f64) -> Self {
        self.zero_tsecr = p;
        self
    }

    /// Sets the largest datagram the link carries.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Answers datagrams above the MTU with ICMP (see [`too_big_icmp`](Self::too_big_icmp)).
    pub fn too_big_icmp(mut self, on: bool) -> Self {
        self.too_big_icmp = on;
        self
    }

    /// Time to serialize `len` bytes at the configured rate.
    fn serialization(&self, len: usize) -> Duration {
        match self.bandwidth_bps {
            None => Duration::ZERO,
            Some(bps) => {
                let bits = (len as u128) * 8 * 1_000_000_000;
                let nanos = bits.div_ceil(u128::from(bps));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        }
    }
}

/// Why a packet did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Random loss on the wire.
    Loss,
    /// The bottleneck queue was full.
    QueueFull,
    /// Larger than the link MTU.
    TooBig,
    /// The link is down (blackholed).
    LinkDown,
    /// A packet hook returned [`Verdict::Drop`](super::Verdict::Drop).
    Hook,
    /// No node owns the destination address, or there is no link to it.
    Unroutable,
}

/// Counters of one link direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered to the link.
    pub offered: u64,
    /// Copies scheduled for delivery (duplicates included).
    pub scheduled: u64,
    /// Bytes in the copies scheduled for delivery.
    pub bytes_scheduled: u64,
    /// Packets lost on the wire ([`DropReason::Loss`]).
    pub lost: u64,
    /// Packets dropped by a full bottleneck queue ([`DropReason::QueueFull`]).
    pub queue_drops: u64,
    /// Packets dropped for exceeding the MTU ([`DropReason::TooBig`]).
    pub too_big: u64,
    /// Packets dropped while the link was down ([`DropReason::LinkDown`]).
    pub down_drops: u64,
    /// Packets delivered twice.
    pub duplicated: u64,
    /// Packets held back by the reorder delay.
    pub reordered: u64,
    /// Packets with one bit flipped.
    pub corrupted: u64,
    /// ACKs given a forged SACK block (`LinkConfig::renege`).
    pub reneged: u64,
    /// Segments whose TSecr was zeroed.
    pub tsecr_zeroed: u64,
}

/// The result of offering a packet to a link.
#[derive(Debug, Default)]
pub(crate) struct Transmission {
    /// Copies to deliver and when (0, 1 or 2 entries).
    pub arrivals: Vec<(Instant, Vec<u8>)>,
    pub dropped: Option<DropReason>,
}

/// One direction of a link with its own random stream.
pub(crate) struct Link {
    pub config: LinkConfig,
    pub up: bool,
    pub stats: LinkStats,
    rng: Rng,
    /// When the serializer is free again.
    busy_until: Instant,
    /// Serialization end times and sizes of packets in the queue.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Link {
            config,
            up: true,
            stats: LinkStats::default(),
            rng: Rng::new(seed),
            busy_until: Instant::ZERO,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }

    /// Offers `data`, emitted at `now`, to the link.
    #[cfg(test)]
    pub fn transmit(&mut self, now: Instant, data: Vec<u8>) -> Transmission {
        self.transmit_frame(now, data, 0)
    }

    /// [`transmit`](Self::transmit) for a datagram behind `link_len` bytes
    /// of link header (an Ethernet frame): the MTU and the TCP-level
    /// impairments apply to the datagram behind the header.
    pub fn transmit_frame(
        &mut self,
        now: Instant,
        mut data: Vec<u8>,
        link_len: usize,
    ) -> Transmission {
        self.stats.offered += 1;
        let mut out = Transmission::default();
        if !self.up {
            self.stats.down_drops += 1;
            out.dropped = Some(DropReason::LinkDown);
            return out;
        }
        if data.len().saturating_sub(link_len) > self.config.mtu {
            self.stats.too_big += 1;
            out.dropped = Some(DropReason::TooBig);
            return out;
        }
        let depart = if self.config.bandwidth_bps.is_some() {
            while let Some(&(end, len)) = self.queue.front() {
                if end > now {
                    break;
                }
                self.queue.pop_front();
                self.queued_bytes -= len;
            }
            if self.queued_bytes.saturating_add(data.len()) > self.config.queue_bytes {
                self.stats.queue_drops += 1;
                out.dropped = Some(DropReason::QueueFull);
                return out;
            }
            let start = self.busy_until.max(now);
            let end = start + self.config.serialization(data.len());
            self.busy_until = end;
            self.queue.push_back((end, data.len()));
            self.queued_bytes += data.len();
            end
        } else {
            now
        };
        if self.chance(self.config.loss) {
            self.stats.lost += 1;
            out.dropped = Some(DropReason::Loss);
            return out;
        }
        let mut arrival = depart + self.config.latency;
        if self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            arrival += self.config.reorder_delay;
        }
        if self.config.renege > 0.0 || self.config.zero_tsecr > 0.0 {
            // Behind the link header, if any (the datagram may grow).
            let mut ip = data.split_off(link_len.min(data.len()));
            self.mangle_tcp(&mut ip);
            data.append(&mut ip);
        }
        if !data.is_empty() && self.chance(self.config.corrupt) {
            self.stats.corrupted += 1;
            let bit = self.rng.gen_range(0, data.len() as u64 * 8) as usize;
            data[bit / 8] ^= 1 << (bit % 8);
        }
        if self.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            out.arrivals.push((arrival, data.clone()));
        }
        out.arrivals.push((arrival, data));
        self.stats.scheduled += out.arrivals.len() as u64;
        for (_, d) in &out.arrivals {
            self.stats.bytes_scheduled += d.len() as u64;
        }
        out
    }
}

impl Link {
    /// The TCP-level impairments: a forged SACK block (reneging) and a
    /// zeroed timestamp echo. The segment is re-emitted with valid
    /// checksums; anything that does not parse is left alone.
    fn mangle_tcp(&mut self, data: &mut Vec<u8>) {
        use crate::wire::tcp::fill_checksum;
        use crate::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpRepr};
        let Ok(ip) = Ipv4Packet::new_checked(&data[..]) else {
            return;
        };
        let Ok(mut ip_repr) = Ipv4Repr::parse(&ip) else {
            return;
        };
        if ip_repr.protocol != IpProtocol::Tcp {
            return;
        }
        let Ok((mut tcp, payload)) = TcpRepr::parse(ip.payload(), ip_repr.src, ip_repr.dst, true)
        else {
            return;
        };
        if !tcp.flags.ack() || tcp.flags.syn() || tcp.flags.rst() {
            return;
        }
        let payload = payload.to_vec();
        let mut changed = false;
        if tcp.options.timestamps.is_some() && self.chance(self.config.zero_tsecr) {
            if let Some((tsval, _)) = tcp.options.timestamps {
                tcp.options.timestamps = Some((tsval, 0));
                self.stats.tsecr_zeroed += 1;
                changed = true;
            }
        }
        if self.chance(self.config.renege) {
            let mut options = tcp.options;
            let above = if self.rng.gen_bool(0.5) { 0 } else { 1000 };
            let len = self.rng.gen_range(1, 5) as usize * 1000;
            let left = tcp.ack + above;
            let mut blocks = crate::wire::SackBlocks::default();
            blocks.push(left, left + len);
            for &(l, r) in options.sack.as_slice() {
                blocks.push(l, r);
            }
            options.sack = blocks;
            if options.len() <= crate::wire::TcpOptions::MAX_LEN {
                tcp.options = options;
                self.stats.reneged += 1;
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let hl = tcp.header_len();
        ip_repr.payload_len = hl + payload.len();
        let mut out = vec![0u8; Ipv4Repr::HEADER_LEN + hl + payload.len()];
        tcp.emit(&mut out[Ipv4Repr::HEADER_LEN..Ipv4Repr::HEADER_LEN + hl]);
        out[Ipv4Repr::HEADER_LEN + hl..].copy_from_slice(&payload);
        fill_checksum(&mut out[Ipv4Repr::HEADER_LEN..], ip_repr.src, ip_repr.dst);
        ip_repr.emit(&mut out);
        *data = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ideal_link_only_delays() {
        let mut l = Link::new(LinkConfig::ideal(ms(7)), 1);
        let t = l.transmit(Instant::from_millis(3), vec![1, 2, 3]);
        assert_eq!(t.dropped, None);
        assert_eq!(t.arrivals, vec![(Instant::from_millis(10), vec![1, 2, 3])]);
    }

    #[test]
    fn serialization_and_tail_drop() {
        // 8 kbit/s: one 1000-byte packet takes exactly one second.
        let cfg = LinkConfig::ideal(ms(0)).bandwidth(8_000, 2500);
        let mut l = Link::new(cfg, 1);
        let now = Instant::ZERO;
        let a = l.transmit(now, vec![0; 1000]);
        let b = l.transmit(now, vec![0; 1000]);
        let c = l.transmit(now, vec![0; 1000]);
        assert_eq!(a.arrivals[0].0, Instant::from_millis(1000));
        assert_eq!(b.arrivals[0].0, Instant::from_millis(2000));
        assert_eq!(c.dropped, Some(DropReason::QueueFull));
        // Once the first packet left the queue there is room again.
        let d = l.transmit(Instant::from_millis(1000), vec![0; 1000]);
        assert_eq!(d.arrivals[0].0, Instant::from_millis(3000));
        // An idle link starts serializing at once.
        let e = l.transmit(Instant::from_millis(10_000), vec![0; 500]);
        assert_eq!(e.arrivals[0].0, Instant::from_millis(10_500));
        assert_eq!(l.stats.queue_drops, 1);
    }

    #[test]
    fn mtu_and_down() {
        let mut l = Link::new(LinkConfig::default().mtu(100), 1);
        assert_eq!(
            l.transmit(Instant::ZERO, vec![0; 101]).dropped,
            Some(DropReason::TooBig)
        );
        l.up = false;
        assert_eq!(
            l.transmit(Instant::ZERO, vec![0; 10]).dropped,
            Some(DropReason::LinkDown)
        );
    }

    #[test]
    fn impairment_rates_are_roughly_right() {
        let cfg = LinkConfig::ideal(ms(10))
            .loss(0.1)
            .duplicate(0.05)
            .reorder(0.2, ms(5))
            .corrupt(0.3);
        let mut l = Link::new(cfg, 42);
        let n = 20_000;
        let mut late = 0;
        let mut flipped = 0;
        for _ in 0..n {
            let t = l.transmit(Instant::ZERO, vec![0u8; 40]);
            for (at, d) in &t.arrivals {
                if *at == Instant::from_millis(15) {
                    late += 1;
                }
                let ones: u32 = d.iter().map(|b| b.count_ones()).sum();
                assert!(ones <= 1);
                flipped += ones;
            }
        }
        let frac = |x: u64| x as f64 / n as f64;
        assert!((frac(l.stats.lost) - 0.1).abs() < 0.01);
        let kept = n as f64 * 0.9;
        assert!((l.stats.duplicated as f64 / kept - 0.05).abs() < 0.01);
        assert!((l.stats.reordered as f64 / kept - 0.2).abs() < 0.02);
        assert!((l.stats.corrupted as f64 / kept - 0.3).abs() < 0.02);
        assert!(late > 0 && flipped > 0);
    }

    #[test]
    fn same_seed_same_choices() {
        let run = |seed| {
            let mut l = Link::new(LinkConfig::lossy(0.2), seed);
            (0..500)
                .map(|i| {
                    l.transmit(Instant::from_millis(i), vec![i as u8; 60])
                        .arrivals
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
