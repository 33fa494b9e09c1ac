//! ICMP and ICMPv6: echo, errors about our segments (RFC 792, RFC 4443,
//! RFC 1122 4.2.3.9, RFC 5927) and path MTU discovery (RFC 1191, RFC 8201).

use super::*;
use crate::wire::QuotedTcp;

/// How long a learnt path MTU holds (RFC 1191 6.3 and RFC 8201 5.3: ten
/// minutes, as Linux's `net.ipv4.route.mtu_expires`).
pub(crate) const PMTU_AGE: Duration = Duration::from_secs(600);

/// Most destinations with a learnt path MTU; beyond it the oldest entry
/// goes (Linux bounds its route exception cache the same way).
const MAX_PMTU_ENTRIES: usize = 4096;

/// The IPv6 minimum link MTU (RFC 8200 5): no path is assumed smaller.
const IPV6_MIN_MTU: usize = 1280;

/// Most bytes of an offending packet an ICMPv6 error quotes: the error must
/// fit the minimum MTU (RFC 4443 2.4 (c)).
const ICMPV6_QUOTE_MAX: usize = IPV6_MIN_MTU - Ipv6Repr::HEADER_LEN - 8;

/// An ICMP error about one of our segments, either family, as the TCP
/// layer sees it.
#[derive(Clone, Copy, Debug)]
pub(super) enum IcmpError {
    /// The path cannot carry datagrams above this many bytes (IPv4
    /// "fragmentation needed", IPv6 "packet too big").
    PathMtu(usize),
    /// Unreachable or a parameter problem: a hard error while connecting,
    /// soft afterwards (RFC 1122 4.2.3.9).
    Unreachable(Error),
    /// Time exceeded: always soft.
    Transient,
}

impl Stack {
    pub(super) fn handle_icmp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8]) {
        self.stats.icmp_in += 1;
        let msg = match IcmpRepr::parse(payload) {
            Ok(m) => m,
            Err(e) => return self.count_drop(e),
        };
        match msg {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                if !self.may_send_icmp(now, ip.src.into()) {
                    return;
                }
                let reply = IcmpRepr::EchoReply { ident, seq, data };
                let len = reply.buffer_len();
                let mut pkt = vec![0u8; Ipv4Repr::HEADER_LEN + len];
                reply.emit(&mut pkt[Ipv4Repr::HEADER_LEN..]);
                let hdr = IpHeader {
                    src: ip.dst.into(),
                    dst: ip.src.into(),
                    protocol: IpProtocol::Icmp,
                    hop_limit: self.cfg.ttl,
                    ecn: 0,
                    dscp: 0,
                    flow_label: 0,
                };
                self.ip_header(&mut pkt, &hdr, len);
                self.stats.icmp_echo_replies += 1;
                self.control.push_back(pkt);
            }
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => {
                let err = match code {
                    // RFC 1191 3: fragmentation needed and DF set. A
                    // next-hop MTU below 68 (RFC 791's minimum; 0 from
                    // routers older than RFC 1191) says nothing usable.
                    4 if next_hop_mtu >= 68 => IcmpError::PathMtu(usize::from(next_hop_mtu)),
                    4 => return,
                    // Protocol and port unreachable (RFC 1122 4.2.3.9).
                    2 | 3 => IcmpError::Unreachable(Error::ConnectionRefused),
                    // Net unreachable, unknown, prohibited, or unreachable
                    // for the TOS (RFC 1122 3.2.2.1 codes 0, 6, 9, 11):
                    // ENETUNREACH, as Linux `icmp_err_convert`.
                    0 | 6 | 9 | 11 => IcmpError::Unreachable(Error::NetworkUnreachable),
                    _ => IcmpError::Unreachable(Error::HostUnreachable),
                };
                if let Some(q) = QuotedTcp::parse_v4(data) {
                    self.icmp_error(now, q, err);
                }
            }
            IcmpRepr::TimeExceeded { data, .. } => {
                if let Some(q) = QuotedTcp::parse_v4(data) {
                    self.icmp_error(now, q, IcmpError::Transient);
                }
            }
            _ => {}
        }
    }

    /// ICMPv6 (RFC 4443). Neighbour Discovery and MLD messages (a Linux
    /// TUN's kernel side sends router solicitations and MLD reports) are
    /// counted and ignored: the device has no link layer.
    pub(super) fn handle_icmpv6(&mut self, now: Instant, ip: &Ipv6Repr, payload: &[u8]) {
        self.stats.icmp_in += 1;
        // RFC 4861: NS and NA, with a link layer.
        if self.link.is_some() && matches!(payload.first(), Some(135 | 136)) {
            return self.handle_ndp(now, ip, payload);
        }
        let msg = match Icmpv6Repr::parse(payload, ip.src, ip.dst) {
            Ok(m) => m,
            Err(e) => return self.count_drop(e),
        };
        match msg {
            Icmpv6Repr::EchoRequest { ident, seq, data } => {
                // RFC 4443 4.2: the reply goes back from the address the
                // request was sent to (one of ours: checked on input).
                if !self.may_send_icmp(now, ip.src.into()) {
                    return;
                }
                let reply = Icmpv6Repr::EchoReply { ident, seq, data };
                self.queue_icmpv6(ip.dst, ip.src, &reply);
                self.stats.icmp_echo_replies += 1;
            }
            Icmpv6Repr::PacketTooBig { mtu, data } => {
                // RFC 8201 4: never below the IPv6 minimum link MTU.
                let mtu = usize::try_from(mtu).unwrap_or(usize::MAX);
                if let Some(q) = QuotedTcp::parse_v6(data) {
                    self.icmp_error(now, q, IcmpError::PathMtu(mtu.max(IPV6_MIN_MTU)));
                }
            }
            Icmpv6Repr::DstUnreachable { code, data } => {
                // RFC 4443 3.1 codes, mapped as Linux `icmpv6_err_convert`.
                let err = match code {
                    0 => Error::NetworkUnreachable,
                    4 => Error::ConnectionRefused,
                    _ => Error::HostUnreachable,
                };
                if let Some(q) = QuotedTcp::parse_v6(data) {
                    self.icmp_error(now, q, IcmpError::Unreachable(err));
                }
            }
            Icmpv6Repr::ParamProblem { data, .. } => {
                if let Some(q) = QuotedTcp::parse_v6(data) {
                    self.icmp_error(now, q, IcmpError::Unreachable(Error::HostUnreachable));
                }
            }
            Icmpv6Repr::TimeExceeded { data, .. } => {
                if let Some(q) = QuotedTcp::parse_v6(data) {
                    self.icmp_error(now, q, IcmpError::Transient);
                }
            }
            _ => {}
        }
    }

    /// Whether an ICMP message may go to `dst` now: a unicast destination
    /// (RFC 1122 3.2.2, RFC 4443 2.4 (e)), room in the control queue, and a
    /// token from the rate limit (RFC 4443 2.4 (f), RFC 1812 4.3.2.8).
    fn may_send_icmp(&mut self, now: Instant, dst: IpAddr) -> bool {
        if addr::bad_source(dst) {
            self.stats.drop_malformed += 1;
            return false;
        }
        if self.control.len() >= MAX_CONTROL {
            self.stats.drop_control_full += 1;
            return false;
        }
        let (rate, burst) = (self.cfg.icmp_msgs_per_sec, self.cfg.icmp_msgs_burst);
        if !self.icmp_bucket.allow(now, rate, burst) {
            self.stats.icmp_rate_limited += 1;
            return false;
        }
        true
    }

    /// Queues an ICMPv6 message from `src` to `dst`.
    fn queue_icmpv6(&mut self, src: Ipv6Addr, dst: Ipv6Addr, msg: &Icmpv6Repr) {
        let len = msg.buffer_len();
        let mut pkt = vec![0u8; Ipv6Repr::HEADER_LEN + len];
        msg.emit(src, dst, &mut pkt[Ipv6Repr::HEADER_LEN..]);
        let hdr = IpHeader {
            src: src.into(),
            dst: dst.into(),
            protocol: IpProtocol::Icmpv6,
            hop_limit: self.cfg.hop_limit,
            ecn: 0,
            dscp: 0,
            flow_label: 0,
        };
        self.ip_header(&mut pkt, &hdr, len);
        self.control.push_back(pkt);
    }

    /// Answers an IPv6 datagram dropped for an unrecognised option or
    /// routing type with a Parameter Problem (RFC 8200 4.2, 4.4; RFC 4443
    /// 3.4), quoting as much of it as fits the minimum MTU. Never about an
    /// ICMPv6 error or to a multicast or unspecified source (RFC 4443 2.4
    /// (e)); rate-limited.
    pub(super) fn send_param_problem(
        &mut self,
        now: Instant,
        packet: &[u8],
        code: u8,
        pointer: usize,
    ) {
        let ip = Ipv6Packet::new_unchecked(packet);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_loopback() || !self.may_send_icmp(now, IpAddr::V6(src)) {
            return;
        }
        let quote = &packet[..packet.len().min(ICMPV6_QUOTE_MAX)];
        let msg = Icmpv6Repr::ParamProblem {
            code,
            pointer: u32::try_from(pointer).unwrap_or(u32::MAX),
            data: quote,
        };
        self.queue_icmpv6(dst, src, &msg);
    }

    /// The MSS a learnt path MTU to `dst` allows (RFC 1191, RFC 8201), and
    /// when it was learnt, if one is known and not older than [`PMTU_AGE`].
    pub(super) fn path_mss(&mut self, now: Instant, dst: IpAddr) -> Option<(usize, Instant)> {
        let &(mtu, learnt) = self.pmtu.get(&dst)?;
        if now.saturating_duration_since(learnt) >= PMTU_AGE {
            // RFC 1191 6.3: an estimate this old is forgotten.
            self.pmtu.remove(&dst);
            return None;
        }
        Some((mss_for_mtu(dst, mtu), learnt))
    }

    /// Records that the path to `dst` carries at most `mtu` bytes.
    fn learn_path_mtu(&mut self, now: Instant, dst: IpAddr, mtu: usize) {
        if self.pmtu.len() >= MAX_PMTU_ENTRIES && !self.pmtu.contains_key(&dst) {
            let oldest = self
                .pmtu
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.pmtu.remove(&k);
            }
        }
        self.pmtu.insert(dst, (mtu, now));
    }

    /// An ICMP error quoting one of our TCP segments (RFC 1122 4.2.3.9,
    /// RFC 5927), either family.
    pub(super) fn icmp_error(&mut self, now: Instant, q: QuotedTcp, err: IcmpError) {
        let tuple = (
            SocketAddr::new(q.src, q.src_port),
            SocketAddr::new(q.dst, q.dst_port),
        );
        let Some(&index) = self.conns.get(&tuple) else {
            return;
        };
        let id = ConnId {
            index,
            generation: self.slots[index as usize].generation,
        };
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        // RFC 5927 4.1: the quoted sequence number must be in flight, or
        // the message is a blind attack (or stale) and is ignored.
        if q.seq.diff(conn.snd_una) < 0 || q.seq.diff(conn.snd_max) > 0 {
            self.stats.icmp_ignored += 1;
            return;
        }
        match err {
            IcmpError::PathMtu(mtu) => {
                let mss = mss_for_mtu(q.dst, mtu);
                if mss < conn.our_mss {
                    self.learn_path_mtu(now, q.dst, mtu);
                    self.lower_mss_to(now, q.dst, mss);
                    self.stats.pmtu_reductions += 1;
                }
            }
            IcmpError::Unreachable(err) => {
                if conn.state == State::SynSent {
                    // A hard error while connecting (as Linux reports it).
                    conn.enter_closed(Some(err));
                } else {
                    conn.soft_error = Some(err);
                    conn.raise(ev::SOFT_ERROR);
                }
                self.after(id, true);
            }
            IcmpError::Transient => {
                conn.soft_error = Some(Error::HostUnreachable);
                conn.raise(ev::SOFT_ERROR);
                self.after(id, true);
            }
        }
    }

    /// Every connection to `dst` sends segments of at most `mss` bytes from
    /// now on, and resends what it has in flight (RFC 1191 6.4: the
    /// datagrams sent at the old size were lost).
    fn lower_mss_to(&mut self, now: Instant, dst: IpAddr, mss: usize) {
        let ids: Vec<ConnId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.conn
                    .as_deref()
                    .is_some_and(|c| c.remote.ip() == dst && c.our_mss > mss)
            })
            .map(|(i, s)| ConnId {
                index: i as u32,
                generation: s.generation,
            })
            .collect();
        for id in ids {
            if let Some(conn) = self.conn_mut(id) {
                conn.our_mss = mss;
                conn.pmtu_since = Some(now);
                conn.cc.set_mss(conn.send_mss());
                conn.snd_nxt = conn.snd_una;
            }
            self.after(id, true);
        }
    }
}

/// RFC 1191 6.3, RFC 8201 5.3: a connection whose MSS path MTU discovery
/// lowered [`PMTU_AGE`] ago goes back to the link's MSS (called before it
/// sends); if the path is still narrow, the next "too big" lowers it again.
pub(super) fn age_path_mtu(conn: &mut Conn, cfg: &Config, now: Instant) {
    let Some(since) = conn.pmtu_since else {
        return;
    };
    if now.saturating_duration_since(since) >= PMTU_AGE {
        conn.pmtu_since = None;
        conn.our_mss = Conn::our_mss(cfg, conn.remote.is_ipv6());
        conn.cc.set_mss(conn.send_mss());
    }
}

/// The MSS a path MTU leaves: less the IP and TCP headers (RFC 9293
/// 3.7.1), and never below what the family must carry (IPv4: 68 - 40,
/// taken as 48 as before; IPv6: 1280 - 60).
fn mss_for_mtu(dst: IpAddr, mtu: usize) -> usize {
    match dst {
        IpAddr::V4(_) => mtu.saturating_sub(40).max(48),
        IpAddr::V6(_) => mtu.max(IPV6_MIN_MTU) - 60,
    }
}
