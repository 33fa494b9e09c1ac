//! The optional Ethernet link layer ([`Config::ethernet`]): frames in and
//! out (RFC 894, RFC 2464), ARP (RFC 826), Neighbour Discovery's address
//! resolution and NUD (RFC 4861 7), and Linux-like next-hop choice.
//!
//! Connections and control produce IP datagrams exactly as without it;
//! `transmit` decides local (loopback) versus link first, then puts the
//! frame header in front, or parks the datagram on its unresolved
//! neighbour.

use super::neighbour::{Action, Lookup, Neighbours, Pending, Update};
use super::*;
use crate::wire::icmpv6::NdpRepr;
use crate::wire::{ArpOp, ArpRepr, EtherType, EthernetFrame, EthernetRepr, MacAddr};

/// Length of the Ethernet II header in front of every datagram.
pub(crate) const ETH_HLEN: usize = 14;

/// Most link control frames (ARP, NS, NA) waiting to go; beyond it they
/// are dropped (`Stats::drop_link_control_full`).
const MAX_LINK_OUT: usize = 256;

/// ff02::1, all nodes (RFC 4291 2.7.1).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The link layer's state inside the stack.
pub(super) struct Link {
    pub mac: MacAddr,
    pub link_local: Option<Ipv6Addr>,
    pub neigh: Neighbours,
    /// Link control frames (ARP, NS, NA), complete: sent before anything else.
    out: VecDeque<Vec<u8>>,
    /// Frames whose neighbour just resolved, in the order they were queued.
    ready: VecDeque<Pending>,
    /// Source MAC of the frame being handled (for RFC 4861 7.3.1
    /// confirmation and replies to NS without a source LL option).
    rx_src: Option<MacAddr>,
}

/// The solicited-node multicast address of `ip` (RFC 4291 2.7.1:
/// ff02::1:ff00:0/104 plus its low 24 bits).
pub(crate) fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// fe80::/10 (RFC 4291 2.5.6): always on-link.
fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `ip` lies in `prefix`/`len` (same family).
fn in_prefix(ip: IpAddr, prefix: IpAddr, len: u8) -> bool {
    match (ip, prefix) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

/// Where a datagram goes on the link.
enum Hop {
    /// A multicast MAC (RFC 2464 7), no resolution.
    Multicast(MacAddr),
    /// A neighbour to resolve: the destination itself or a gateway.
    Neighbour(IpAddr),
}

impl Link {
    pub(super) fn new(cfg: &crate::config::EthernetConfig, rng: &mut Rng) -> Link {
        let n = cfg.neighbour.clone();
        // RFC 4861 6.3.2: ReachableTime is a uniformly distributed random
        // value between 0.5 and 1.5 times BASE_REACHABLE_TIME.
        let base = n.reachable_time.as_micros() as u64;
        let r = base / 2 + rng.next_u64() % base.max(1);
        let reachable = Duration::from_micros(r);
        Link {
            mac: cfg.mac,
            link_local: cfg.link_local.then(|| cfg.mac.link_local()),
            neigh: Neighbours::new(n, reachable),
            out: VecDeque::new(),
            ready: VecDeque::new(),
            rx_src: None,
        }
    }
}

impl Stack {
    /// Our MAC address, with [`Config::ethernet`].
    pub fn mac(&self) -> Option<MacAddr> {
        self.link.as_ref().map(|l| l.mac)
    }

    /// The IPv6 link-local address derived from the MAC (RFC 4862 5.3),
    /// with [`Config::ethernet`] and its `link_local`.
    pub fn link_local_addr(&self) -> Option<Ipv6Addr> {
        self.link.as_ref().and_then(|l| l.link_local)
    }

    /// The neighbour cache (ARP and NDP), as `ip neigh` lists it; empty
    /// without [`Config::ethernet`].
    pub fn neighbours(&self) -> Vec<NeighbourInfo> {
        self.link
            .as_ref()
            .map(|l| l.neigh.info())
            .unwrap_or_default()
    }

    /// Sets up the link layer at `Stack::new`: the link-local address is
    /// answered for, and a gratuitous ARP per IPv4 address is queued.
    pub(super) fn init_link(&mut self) {
        let Some(eth) = self.cfg.ethernet.clone() else {
            return;
        };
        assert!(
            eth.mac.is_unicast(),
            "Config::ethernet: the MAC must be unicast"
        );
        for (ip, len) in &eth.prefixes {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            assert!(
                *len <= max,
                "Config::ethernet: prefix {ip}/{len} is too long"
            );
        }
        // A gateway must itself be on-link (Linux refuses such a route
        // with "Nexthop has invalid gateway").
        let on_link = |g: IpAddr| eth.prefixes.iter().any(|&(p, len)| in_prefix(g, p, len));
        if let Some(g) = eth.gateway_v4 {
            assert!(
                on_link(g.into()),
                "Config::ethernet: gateway {g} is not on-link"
            );
        }
        if let Some(g) = eth.gateway_v6 {
            assert!(
                is_link_local(g) || on_link(g.into()),
                "Config::ethernet: gateway {g} is not on-link"
            );
        }
        let mut rng = Rng::new(self.cfg.seed ^ 0x4861_4861_4861_4861);
        let link = Link::new(&eth, &mut rng);
        if let Some(ll) = link.link_local {
            if !self.cfg.addrs.contains(&IpAddr::V6(ll)) {
                self.cfg.addrs.push(IpAddr::V6(ll));
            }
        }
        self.link = Some(Box::new(link));
        // RFC 826 / RFC 5227 3: a gratuitous ARP (request, sender = target
        // = our address, broadcast) announces each IPv4 address.
        let v4: Vec<Ipv4Addr> = self
            .cfg
            .addrs
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        for a in v4 {
            self.queue_arp(ArpOp::Request, MacAddr::BROADCAST, MacAddr::ZERO, a, a);
        }
    }

    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Whether a frame to `dst` is for us (RFC 2464 7, RFC 4861 7.2.1: our
    /// MAC, broadcast, all-nodes, and our solicited-node groups).
    fn accepts_mac(&self, mac: MacAddr, dst: MacAddr) -> bool {
        if dst == mac || dst.is_broadcast() {
            return true;
        }
        if dst == MacAddr::ipv6_multicast(ALL_NODES) {
            return true;
        }
        self.cfg.addrs.iter().any(|a| match a {
            IpAddr::V6(a) => dst == MacAddr::ipv6_multicast(solicited_node(*a)),
            IpAddr::V4(_) => false,
        })
    }

    /// Whether an IPv6 multicast destination is a group we listen to:
    /// all-nodes or one of our solicited-node addresses.
    pub(super) fn listens_to(&self, dst: Ipv6Addr) -> bool {
        self.link.is_some()
            && (dst == ALL_NODES
                || self.cfg.addrs.iter().any(|a| match a {
                    IpAddr::V6(a) => solicited_node(*a) == dst,
                    IpAddr::V4(_) => false,
                }))
    }

    /// One Ethernet frame from the device.
    pub(super) fn handle_frame(&mut self, now: Instant, frame: &[u8], meta: RxMeta) {
        let Some(mac) = self.mac() else {
            return;
        };
        let Ok(f) = EthernetFrame::new_checked(frame) else {
            self.stats.link_drop_malformed += 1;
            return;
        };
        let eth = EthernetRepr::parse(&f);
        if !self.accepts_mac(mac, eth.dst) {
            self.stats.link_drop_not_ours += 1;
            return;
        }
        // A group address is never a source (IEEE 802.3 3.2.3).
        if eth.src.is_multicast() {
            self.stats.link_drop_malformed += 1;
            return;
        }
        match eth.ethertype {
            EtherType::Ipv4 | EtherType::Ipv6 => {
                let is_v6 = eth.ethertype == EtherType::Ipv6;
                let payload = f.payload();
                // The EtherType must agree with the version nibble.
                let version = payload.first().map(|b| b >> 4);
                if version != Some(if is_v6 { 6 } else { 4 }) {
                    self.stats.link_drop_malformed += 1;
                    return;
                }
                if let Some(l) = self.link.as_deref_mut() {
                    l.rx_src = Some(eth.src);
                }
                // Ethernet padding past the IP length is trimmed by the IP
                // layer (IPv4 total length, IPv6 payload length).
                self.handle_ip(now, payload, meta, false);
                if let Some(l) = self.link.as_deref_mut() {
                    l.rx_src = None;
                }
            }
            EtherType::Arp => self.handle_arp(now, eth.src, f.payload()),
            EtherType::Unknown(_) => self.stats.link_drop_ethertype += 1,
        }
    }

    /// RFC 826 "Packet Reception".
    fn handle_arp(&mut self, now: Instant, frame_src: MacAddr, payload: &[u8]) {
        self.stats.arp_in += 1;
        let Ok(arp) = ArpRepr::parse(payload) else {
            self.stats.arp_dropped += 1;
            return;
        };
        let Some(mac) = self.mac() else {
            return;
        };
        // Our own frames echoed back, or a group sender: never learnt.
        if arp.sender_mac == mac || !arp.sender_mac.is_unicast() || frame_src == mac {
            self.stats.arp_dropped += 1;
            return;
        }
        let sender = IpAddr::V4(arp.sender_ip);
        let target_is_us = self.cfg.addrs.contains(&IpAddr::V4(arp.target_ip));
        let learnable = !arp.sender_ip.is_unspecified()
            && !addr::bad_source(sender)
            && !self.cfg.addrs.contains(&sender);
        if learnable {
            // RFC 826: "If the pair <protocol type, sender protocol
            // address> is already in my translation table, update the
            // sender hardware address field ... ?Am I the target protocol
            // address? If Merge_flag is false, add the triplet".
            let update = Update {
                mac: arp.sender_mac,
                confirmed: arp.op == ArpOp::Reply && target_is_us,
                overrides: true,
                create: target_is_us,
            };
            self.neighbour_update(now, sender, update);
        }
        // RFC 826: "?Is the opcode ares_op$REQUEST? (NOW look at the
        // opcode!!) Yes: Swap hardware and protocol fields, putting the
        // local hardware and protocol addresses in the sender fields. Set
        // the ar$op field to ares_op$REPLY. Send the packet to the (new)
        // target hardware address". Only for our addresses.
        if arp.op == ArpOp::Request && target_is_us {
            self.stats.arp_replies += 1;
            self.queue_arp(
                ArpOp::Reply,
                arp.sender_mac,
                arp.sender_mac,
                arp.target_ip,
                arp.sender_ip,
            );
        }
    }

    /// A Neighbour Solicitation or Advertisement (ICMPv6 135/136) to one
    /// of our addresses or groups. Validation per RFC 4861 7.1.1 / 7.1.2.
    pub(super) fn handle_ndp(&mut self, now: Instant, ip: &Ipv6Repr, payload: &[u8]) {
        let Some(mac) = self.mac() else {
            return;
        };
        let Ok(msg) = NdpRepr::parse(payload, ip.src, ip.dst) else {
            self.stats.ndp_invalid += 1;
            return;
        };
        // RFC 4861 7.1.1/7.1.2: "The IP Hop Limit field has a value of
        // 255" (the sender is on the link), "Target Address is not a
        // multicast address".
        if ip.hop_limit != 255 || msg.target().is_multicast() {
            self.stats.ndp_invalid += 1;
            return;
        }
        let target_ours = self.cfg.addrs.contains(&IpAddr::V6(msg.target()));
        match msg {
            NdpRepr::NeighborSolicit { target, source_ll } => {
                if ip.src.is_unspecified() {
                    // RFC 4861 7.1.1: from the unspecified address (DAD),
                    // "the IP destination address is a solicited-node
                    // multicast address" and "there is no source
                    // link-layer address option".
                    if ip.dst != solicited_node(target) || source_ll.is_some() {
                        self.stats.ndp_invalid += 1;
                        return;
                    }
                }
                if !target_ours {
                    return;
                }
                // RFC 4861 7.2.3: the source LL option updates (or
                // creates, STALE) the entry of the source.
                if let (false, Some(ll)) = (ip.src.is_unspecified(), source_ll) {
                    let update = Update {
                        mac: ll,
                        confirmed: false,
                        overrides: true,
                        create: true,
                    };
                    self.neighbour_update(now, IpAddr::V6(ip.src), update);
                }
                // RFC 4861 7.2.4: a solicited NA (S=1, O=1, R=0, target LL
                // option) to the source; to all-nodes with S=0 when the
                // source is unspecified.
                let (dst, solicited, dst_mac) = if ip.src.is_unspecified() {
                    (ALL_NODES, false, MacAddr::ipv6_multicast(ALL_NODES))
                } else {
                    let rx = self.link.as_ref().and_then(|l| l.rx_src);
                    match source_ll.or(rx) {
                        Some(m) => (ip.src, true, m),
                        None => return,
                    }
                };
                let na = NdpRepr::NeighborAdvert {
                    router: false,
                    solicited,
                    overrides: true,
                    target,
                    target_ll: Some(mac),
                };
                self.queue_ndp(target, dst, dst_mac, &na);
            }
            NdpRepr::NeighborAdvert {
                solicited,
                overrides,
                target,
                target_ll,
                ..
            } => {
                // RFC 4861 7.1.2: "If the IP Destination Address is a
                // multicast address the Solicited flag is zero."
                if ip.dst.is_multicast() && solicited {
                    self.stats.ndp_invalid += 1;
                    return;
                }
                if target_ours {
                    // Someone else claims our address (RFC 4862 5.4.4);
                    // nothing to learn.
                    return;
                }
                let target = IpAddr::V6(target);
                // RFC 4861 7.2.5: no entry, silently discard; without a
                // target LL option only a confirmation can be taken.
                let known = self.link.as_ref().and_then(|l| {
                    l.neigh
                        .entries
                        .get(&target)
                        .map(|e| (e.mac, e.state == NeighbourState::Incomplete))
                });
                let Some((cached, incomplete)) = known else {
                    return;
                };
                let ll = match (target_ll, cached) {
                    (Some(ll), _) => ll,
                    (None, Some(m)) if !incomplete => m,
                    _ => return,
                };
                let update = Update {
                    mac: ll,
                    confirmed: solicited,
                    overrides: overrides || incomplete,
                    create: false,
                };
                self.neighbour_update(now, target, update);
            }
        }
    }

    /// Applies an update; datagrams that were waiting go out first.
    fn neighbour_update(&mut self, now: Instant, ip: IpAddr, update: Update) {
        let mac = update.mac;
        let Some(link) = self.link.as_deref_mut() else {
            return;
        };
        if let Some(pending) = link.neigh.update(now, ip, update) {
            for (mut datagram, seg, headers) in pending {
                let ethertype = if ip.is_ipv4() {
                    EtherType::Ipv4
                } else {
                    EtherType::Ipv6
                };
                let mut frame = vec![0u8; ETH_HLEN];
                // link header
                EthernetRepr {
                    dst: mac,
                    src: link.mac,
                    ethertype,
                }
                .emit(&mut frame);
                frame.append(&mut datagram);
                link.neigh.pending_bytes += frame.len();
                link.ready.push_back((frame, seg, framed(headers)));
            }
        }
    }

    /// Upper-layer confirmation (RFC 4861 7.3.1): a segment of `remote`'s
    /// connection acknowledged new data and came in the frame being
    /// handled; if that frame's source is the cached MAC of `remote`'s
    /// next hop, the entry is REACHABLE again.
    pub(super) fn confirm_neighbour(&mut self, now: Instant, remote: IpAddr) {
        let Some(from) = self.link.as_ref().and_then(|l| l.rx_src) else {
            return;
        };
        let Some(Hop::Neighbour(hop)) = self.next_hop(remote) else {
            return;
        };
        if let Some(l) = self.link.as_deref_mut() {
            l.neigh.confirm(now, hop, from);
        }
    }

    // ------------------------------------------------------------------
    // Output
    // ------------------------------------------------------------------

    /// The next hop towards `dst` (Linux-like): multicast maps directly;
    /// on-link if a prefix (or fe80::/10) covers it; else the family's
    /// gateway; else none.
    fn next_hop(&self, dst: IpAddr) -> Option<Hop> {
        let eth = self.cfg.ethernet.as_ref()?;
        if let IpAddr::V6(d) = dst {
            if d.is_multicast() {
                // RFC 2464 7.
                return Some(Hop::Multicast(MacAddr::ipv6_multicast(d)));
            }
            if is_link_local(d) {
                return Some(Hop::Neighbour(dst));
            }
        }
        if eth.prefixes.iter().any(|&(p, len)| in_prefix(dst, p, len)) {
            return Some(Hop::Neighbour(dst));
        }
        match dst {
            IpAddr::V4(_) => eth.gateway_v4.map(|g| Hop::Neighbour(IpAddr::V4(g))),
            IpAddr::V6(_) => eth.gateway_v6.map(|g| Hop::Neighbour(IpAddr::V6(g))),
        }
    }

    /// With a link layer, whether `dst` (not local) has a next hop.
    pub(super) fn routable(&self, dst: IpAddr) -> bool {
        self.link.is_none() || self.is_local(dst) || self.next_hop(dst).is_some()
    }

    /// A frame the link layer has ready (control frames first, then the
    /// datagrams of a neighbour that just resolved), copied into `buf`.
    pub(super) fn link_queued(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        let link = self.link.as_deref_mut()?;
        while let Some(f) = link.out.pop_front() {
            if let Some(dst) = buf.get_mut(..f.len()) {
                dst.copy_from_slice(&f);
                return Some(Transmit {
                    len: f.len(),
                    segment_size: None,
                    headers: framed(TxHeaders::of_datagram(&f[ETH_HLEN.min(f.len())..])),
                });
            }
        }
        while let Some((f, seg, headers)) = link.ready.pop_front() {
            link.neigh.pending_bytes = link.neigh.pending_bytes.saturating_sub(f.len());
            if let Some(dst) = buf.get_mut(..f.len()) {
                dst.copy_from_slice(&f);
                self.stats.packets_out += 1;
                return Some(Transmit {
                    len: f.len(),
                    segment_size: seg,
                    headers,
                });
            }
        }
        None
    }

    /// Puts the frame header in front of the datagram to `dst` at
    /// `buf[ETH_HLEN..ETH_HLEN + t.len]`, or parks it on its unresolved
    /// neighbour (`None`: nothing to send for it now).
    pub(super) fn frame_datagram(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        t: Transmit,
        dst: IpAddr,
    ) -> Option<Transmit> {
        let datagram = &buf[ETH_HLEN..ETH_HLEN + t.len];
        let ethertype = if dst.is_ipv4() {
            EtherType::Ipv4
        } else {
            EtherType::Ipv6
        };
        let hop = match self.next_hop(dst) {
            Some(Hop::Multicast(mac)) => return Some(self.put_header(buf, mac, ethertype, t)),
            Some(Hop::Neighbour(ip)) => ip,
            None => {
                self.stats.drop_no_route += 1;
                return None;
            }
        };
        let link = self.link.as_deref_mut()?;
        match link.neigh.lookup(now, hop) {
            Lookup::Send(mac) => Some(self.put_header(buf, mac, ethertype, t)),
            Lookup::Queue => {
                let dropped = link.neigh.enqueue(hop, datagram, t.segment_size, t.headers);
                self.stats.neigh_queue_drops += dropped;
                None
            }
            Lookup::Fail => {
                let copy = datagram.to_vec();
                self.stats.neigh_failed_drops += 1;
                self.link_failure(now, &copy);
                None
            }
            Lookup::Missing => {
                // The datagram's source, the solicitation's (RFC 4861 7.2.2).
                let src = match datagram.first().map(|b| b >> 4) {
                    Some(6) => IpAddr::V6(Ipv6Packet::new_unchecked(datagram).src_addr()),
                    _ => IpAddr::V4(Ipv4Packet::new_unchecked(datagram).src_addr()),
                };
                if !link.neigh.create_incomplete(now, hop, Some(src)) {
                    self.stats.neigh_table_full += 1;
                    return None;
                }
                let dropped = link.neigh.enqueue(hop, datagram, t.segment_size, t.headers);
                self.stats.neigh_queue_drops += dropped;
                self.solicit(hop, None, Some(src));
                None
            }
        }
    }

    fn put_header(
        &mut self,
        buf: &mut [u8],
        dst: MacAddr,
        ethertype: EtherType,
        t: Transmit,
    ) -> Transmit {
        let src = self.mac().unwrap_or(MacAddr::ZERO);
        // link header
        EthernetRepr {
            dst,
            src,
            ethertype,
        }
        .emit(buf);
        Transmit {
            len: t.len + ETH_HLEN,
            segment_size: t.segment_size,
            headers: framed(t.headers),
        }
    }

    /// A datagram whose next hop did not resolve: as Linux
    /// (`ip_link_failure` -> `icmp_send(ICMP_HOST_UNREACH)`), the TCP
    /// layer hears of it as of an ICMP host unreachable quoting it
    /// (RFC 1122 4.2.3.9: hard while connecting, soft afterwards).
    fn link_failure(&mut self, now: Instant, datagram: &[u8]) {
        let quote = match datagram.first().map(|b| b >> 4) {
            Some(6) => crate::wire::QuotedTcp::parse_v6(datagram),
            _ => crate::wire::QuotedTcp::parse_v4(datagram),
        };
        if let Some(q) = quote {
            self.icmp_error(now, q, icmp::IcmpError::Unreachable(Error::HostUnreachable));
        }
    }

    /// Sends a solicitation for `ip`: an ARP request or an NS, broadcast /
    /// solicited-node multicast (`unicast` None) or unicast (NUD probe).
    fn solicit(&mut self, ip: IpAddr, unicast: Option<MacAddr>, src: Option<IpAddr>) {
        let Some(mac) = self.mac() else {
            return;
        };
        self.stats.neigh_solicits += 1;
        match ip {
            IpAddr::V4(target) => {
                let ours = src
                    .and_then(|s| match s {
                        IpAddr::V4(a) if self.cfg.addrs.contains(&s) => Some(a),
                        _ => None,
                    })
                    .or_else(|| {
                        self.cfg.addrs.iter().find_map(|a| match a {
                            IpAddr::V4(a) => Some(*a),
                            IpAddr::V6(_) => None,
                        })
                    });
                let Some(ours) = ours else {
                    return;
                };
                let dst = unicast.unwrap_or(MacAddr::BROADCAST);
                self.queue_arp(ArpOp::Request, dst, MacAddr::ZERO, ours, target);
            }
            IpAddr::V6(target) => {
                // RFC 4861 7.2.2: from the source of the datagram that
                // prompted it when that is ours, else one of ours (the
                // link-local for a link-local target).
                let link_local = self.link_local_addr();
                let ours = src
                    .and_then(|s| match s {
                        IpAddr::V6(a) if self.cfg.addrs.contains(&s) => Some(a),
                        _ => None,
                    })
                    .or(if is_link_local(target) {
                        link_local
                    } else {
                        None
                    })
                    .or_else(|| {
                        self.cfg.addrs.iter().find_map(|a| match a {
                            IpAddr::V6(a) => Some(*a),
                            IpAddr::V4(_) => None,
                        })
                    });
                let Some(ours) = ours else {
                    return;
                };
                let (dst, dst_mac) = match unicast {
                    Some(m) => (target, m),
                    None => {
                        let g = solicited_node(target);
                        (g, MacAddr::ipv6_multicast(g))
                    }
                };
                let ns = NdpRepr::NeighborSolicit {
                    target,
                    source_ll: Some(mac),
                };
                self.queue_ndp(ours, dst, dst_mac, &ns);
            }
        }
    }

    fn push_link_frame(&mut self, frame: Vec<u8>) {
        let Some(link) = self.link.as_deref_mut() else {
            return;
        };
        if link.out.len() >= MAX_LINK_OUT {
            self.stats.drop_link_control_full += 1;
            return;
        }
        link.out.push_back(frame);
    }

    fn queue_arp(
        &mut self,
        op: ArpOp,
        dst: MacAddr,
        target_mac: MacAddr,
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    ) {
        let Some(mac) = self.mac() else {
            return;
        };
        let mut frame = vec![0u8; ETH_HLEN + ArpRepr::LEN];
        EthernetRepr {
            dst,
            src: mac,
            ethertype: EtherType::Arp,
        }
        .emit(&mut frame);
        ArpRepr {
            op,
            sender_mac: mac,
            sender_ip,
            target_mac,
            target_ip,
        }
        .emit(&mut frame[ETH_HLEN..]);
        self.push_link_frame(frame);
    }

    /// An NS or NA from `src` to `dst` (hop limit 255, RFC 4861 7.1).
    fn queue_ndp(&mut self, src: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr, msg: &NdpRepr) {
        let Some(mac) = self.mac() else {
            return;
        };
        let len = msg.buffer_len();
        let ip_at = ETH_HLEN;
        let body_at = ip_at + Ipv6Repr::HEADER_LEN;
        let mut frame = vec![0u8; body_at + len];
        EthernetRepr {
            dst: dst_mac,
            src: mac,
            ethertype: EtherType::Ipv6,
        }
        .emit(&mut frame);
        msg.emit(src, dst, &mut frame[body_at..]);
        let hdr = IpHeader {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            protocol: IpProtocol::Icmpv6,
            hop_limit: 255,
            ecn: 0,
            dscp: 0,
            flow_label: 0,
        };
        self.ip_header(&mut frame[ip_at..], &hdr, len);
        self.push_link_frame(frame);
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    pub(super) fn link_deadline(&mut self) -> Option<Instant> {
        self.link.as_deref_mut()?.neigh.next_deadline()
    }

    /// Runs the due neighbour timers: retransmitted solicitations, NUD
    /// probes, failures (whose waiting datagrams are answered as by an
    /// ICMP host unreachable).
    pub(super) fn link_timeout(&mut self, now: Instant) {
        let Some(link) = self.link.as_deref_mut() else {
            return;
        };
        let mut actions = Vec::new();
        link.neigh.on_timeout(now, &mut actions);
        for a in actions {
            match a {
                Action::Solicit { ip, unicast, src } => self.solicit(ip, unicast, src),
                Action::Failed { pending } => {
                    self.stats.neigh_res_failed += 1;
                    for (datagram, _, _) in pending {
                        self.stats.neigh_failed_drops += 1;
                        self.link_failure(now, &datagram);
                    }
                }
            }
        }
    }
}

/// `headers` of a datagram once the Ethernet header is in front of it, for
/// a device's offloads (a virtio-net header's `csum_start` counts it).
fn framed(headers: TxHeaders) -> TxHeaders {
    TxHeaders {
        link_len: ETH_HLEN as u8,
        ..headers
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
