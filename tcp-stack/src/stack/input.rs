//! Input: datagrams in, demultiplexed to connections and listeners (RFC 9293 3.10.7).

use super::*;

/// The IP header fields TCP input needs, either family.
struct IpIn {
    src: IpAddr,
    dst: IpAddr,
    /// ECN codepoint (RFC 3168 5).
    ecn: u8,
}

impl Stack {
    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Processes one IP datagram, IPv4 or IPv6 (told apart by the version
    /// nibble, as a Linux TUN with `IFF_NO_PI` does). Bad input is dropped
    /// and counted in [`Stats`]. With [`Config::ethernet`], one Ethernet II
    /// frame (IPv4, IPv6 or ARP; padding after the IP datagram is ignored).
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_meta(now, packet, RxMeta::default());
    }

    /// [`handle_packet`](Stack::handle_packet) with what the device knows
    /// about the datagram. A TCP segment may be larger than the MSS (a
    /// GRO/TSO super-segment of up to 64 KB from a device with offloads):
    /// it is handled as one segment.
    ///
    /// With [`Config::ethernet`], `packet` is an Ethernet II frame instead
    /// (see `stack/link.rs`).
    pub fn handle_packet_meta(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        if self.link.is_some() {
            return self.handle_frame(now, packet, meta);
        }
        self.handle_ip(now, packet, meta, false);
    }

    /// One datagram from the device, or `looped` back from the stack itself.
    pub(super) fn handle_ip(&mut self, now: Instant, packet: &[u8], meta: RxMeta, looped: bool) {
        match packet.first().map(|b| b >> 4) {
            Some(6) => self.handle_ipv6(now, packet, meta, looped),
            _ => self.handle_ipv4(now, packet, meta, looped),
        }
    }

    /// Whether a datagram from `src` to `dst` is ours to take. RFC 1122
    /// 3.2.1.3 (g) and RFC 4291 2.5.3: loopback addresses are internal to
    /// a host and MUST NOT appear outside it, so only looped datagrams may
    /// carry them (counted as malformed otherwise).
    fn accept_addresses(&mut self, src: IpAddr, dst: IpAddr, looped: bool) -> bool {
        let ours = if looped {
            self.is_local(dst)
        } else {
            self.cfg.addrs.contains(&dst)
        };
        if !ours {
            self.stats.drop_not_ours += 1;
            return false;
        }
        if !looped && src.is_loopback() {
            self.stats.drop_malformed += 1;
            return false;
        }
        true
    }

    fn handle_ipv4(&mut self, now: Instant, packet: &[u8], meta: RxMeta, looped: bool) {
        self.stats.packets_in += 1;
        let ip = match Ipv4Packet::new_checked(packet) {
            Ok(p) => p,
            Err(_) => {
                self.stats.drop_malformed += 1;
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&ip) {
            Ok(r) => r,
            Err(e) => return self.count_drop(e),
        };
        if !self.accept_addresses(repr.src.into(), repr.dst.into(), looped) {
            return;
        }
        let payload = ip.payload();
        match repr.protocol {
            IpProtocol::Tcp => {
                let verify = self.cfg.verify_checksums && !meta.checksum_verified;
                let ip = IpIn {
                    src: repr.src.into(),
                    dst: repr.dst.into(),
                    ecn: repr.tos & 0b11,
                };
                self.handle_tcp(now, &ip, payload, verify)
            }
            IpProtocol::Icmp => self.handle_icmp(now, &repr, payload),
            _ => self.stats.drop_protocol += 1,
        }
    }

    /// An IPv6 datagram (RFC 8200): extension headers walked by the wire
    /// parser, which drops fragments (no reassembly), type 0 routing
    /// headers (RFC 5095) and unknown options whose action bits say so
    /// (RFC 8200 4.2), answering those with a Parameter Problem where RFC
    /// 8200 asks for one.
    fn handle_ipv6(&mut self, now: Instant, packet: &[u8], meta: RxMeta, looped: bool) {
        self.stats.packets_in += 1;
        let ip = match Ipv6Packet::new_checked(packet) {
            Ok(p) => p,
            Err(e) => return self.count_drop(e),
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (repr, offset) = match Ipv6Repr::parse_detailed(&ip) {
            Ok(r) => r,
            Err(drop) => {
                // RFC 8200 4.2, 4.4: Parameter Problem code 2 (unrecognised
                // option, where its action bits ask for one) or code 0
                // (unrecognised routing type, pointing at that field).
                let problem = match drop {
                    Ipv6Drop::UnknownOption {
                        pointer,
                        icmp: true,
                    } => Some((2, pointer)),
                    Ipv6Drop::RoutingType0 { pointer } | Ipv6Drop::UnknownRouting { pointer } => {
                        Some((0, pointer))
                    }
                    _ => None,
                };
                if let Some((code, pointer)) = problem {
                    if !looped && self.cfg.addrs.contains(&IpAddr::V6(dst)) {
                        self.send_param_problem(now, packet, code, pointer);
                    }
                }
                return self.count_drop(drop.into());
            }
        };
        let end = (offset + repr.payload_len).min(packet.len());
        let payload = packet.get(offset..end).unwrap_or(&[]);
        // RFC 4861 7.2.1: with a link layer, all-nodes and our
        // solicited-node groups are ours, for Neighbour Discovery only.
        if !looped && dst.is_multicast() && self.listens_to(dst) {
            if repr.next_header == IpProtocol::Icmpv6 && matches!(payload.first(), Some(135 | 136))
            {
                self.stats.icmp_in += 1;
                return self.handle_ndp(now, &repr, payload);
            }
            self.stats.drop_not_ours += 1;
            return;
        }
        if !self.accept_addresses(src.into(), dst.into(), looped) {
            return;
        }
        match repr.next_header {
            IpProtocol::Tcp => {
                let verify = self.cfg.verify_checksums && !meta.checksum_verified;
                let ip = IpIn {
                    src: src.into(),
                    dst: dst.into(),
                    ecn: repr.traffic_class & 0b11,
                };
                self.handle_tcp(now, &ip, payload, verify)
            }
            IpProtocol::Icmpv6 => self.handle_icmpv6(now, &repr, payload),
            _ => self.stats.drop_protocol += 1,
        }
    }

    /// Counts a packet dropped for a wire-format error.
    pub(super) fn count_drop(&mut self, e: WireError) {
        match e {
            WireError::Fragmented => self.stats.drop_fragment += 1,
            WireError::BadChecksum => self.stats.drop_checksum += 1,
            WireError::Truncated | WireError::Malformed => self.stats.drop_malformed += 1,
        }
    }

    fn handle_tcp(&mut self, now: Instant, ip: &IpIn, payload: &[u8], verify: bool) {
        let (tcp, data) = match TcpRepr::parse(payload, ip.src, ip.dst, verify) {
            Ok(x) => x,
            Err(e) => return self.count_drop(e),
        };
        if tcp.src_port == 0 || tcp.dst_port == 0 || addr::bad_source(ip.src) {
            self.stats.drop_malformed += 1;
            return;
        }
        let local = SocketAddr::new(ip.dst, tcp.dst_port);
        let remote = SocketAddr::new(ip.src, tcp.src_port);
        let seg = SegmentIn {
            now,
            // RFC 3168 5: CE codepoint (0b11) in the IP header.
            ce: ip.ecn == 0b11,
            seq: tcp.seq,
            ack: tcp.ack,
            flags: tcp.flags,
            window: tcp.window,
            options: tcp.options,
            payload: data,
        };
        if let Some(&index) = self.conns.get(&(local, remote)) {
            let generation = self.slots[index as usize].generation;
            let id = ConnId { index, generation };
            let Some(conn) = self.slots[index as usize].conn.as_deref() else {
                return;
            };
            if conn.state == State::SynReceived
                && seg.flags.ack()
                && !seg.flags.rst()
                && !seg.flags.syn()
            {
                if let Some(lid) = conn.listener {
                    if self.accept_queue_full(lid.0) {
                        // As Linux (`tcp_abort_on_overflow` = 0): with the
                        // accept queue full the final ACK is dropped; the
                        // SYN-ACK retransmission retries the handshake.
                        self.stats.accept_queue_overflows += 1;
                        return;
                    }
                }
            }
            let snd_una = conn.snd_una;
            let (mut env, slots) = self.env_parts(now);
            let Some(conn) = slots[index as usize].conn.as_deref_mut() else {
                return;
            };
            let disposition = conn.on_segment(&mut env, &seg);
            // RFC 4861 7.3.1: an ACK of new data confirms the next hop.
            let confirm = conn.snd_una.diff(snd_una) > 0 && conn.state.is_synchronized();
            let snd_max = conn.snd_max;
            if confirm && self.link.is_some() {
                self.confirm_neighbour(now, remote.ip());
            }
            match disposition {
                Disposition::Keep => self.after(id, true),
                Disposition::Established => {
                    self.on_passive_established(id);
                    self.after(id, true);
                }
                Disposition::ReopenFromTimeWait => {
                    // RFC 1122 4.2.2.13: the new incarnation's ISS must be
                    // above any sequence number the old one used (Linux:
                    // the old SND.NXT + 65537, whatever the ISN clock says).
                    let floor = snd_max + 65537;
                    self.remove(id);
                    self.handle_no_conn(now, local, remote, &seg, Some(floor));
                }
            }
            return;
        }
        self.handle_no_conn(now, local, remote, &seg, None);
    }

    /// A segment for a tuple with no connection: LISTEN (RFC 9293 3.10.7.2)
    /// or CLOSED (RFC 9293 3.10.7.1).
    pub(super) fn handle_no_conn(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn,
        iss_floor: Option<SeqNum>,
    ) {
        let f = seg.flags;
        if let Some(lidx) = self.find_listener(local, remote) {
            if f.rst() {
                return;
            }
            if f.ack() {
                if !f.syn() && self.cookies_may_be_out(lidx, now) {
                    // RFC 4987 3.6: the ACK completing a cookie handshake.
                    self.on_cookie_ack(now, lidx, local, remote, seg);
                    return;
                }
                // <SEQ=SEG.ACK><CTL=RST>
                self.queue_rst(local, remote, seg.ack, None);
                return;
            }
            // A SYN+FIN is discarded, as Linux does (`tcp_rcv_state_process`
            // in LISTEN). RFC 9293 3.10.7.2 would take the SYN and queue the
            // FIN, but no client opens that way: it is a scanner's probe,
            // and answering it only tells the scanner the port is open.
            if !f.syn() || f.fin() {
                self.stats.drop_segment += 1;
                return;
            }
            self.on_syn(now, lidx, local, remote, seg, iss_floor);
            return;
        }
        // CLOSED: never answer a RST; otherwise reset (RFC 9293 3.10.7.1).
        if f.rst() {
            return;
        }
        if f.ack() {
            self.queue_rst(local, remote, seg.ack, None);
        } else {
            self.queue_rst(local, remote, SeqNum(0), Some(seg.seq + seg.len()));
        }
    }

    /// A CLOSED connection for the tuple, with its ISN (RFC 6528),
    /// timestamp offset and buffers from the factory; also the id the next
    /// `insert` will give it.
    pub(super) fn new_conn(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        (send, recv): (usize, usize),
        iss_floor: Option<SeqNum>,
    ) -> (ConnId, Conn) {
        let iss = match (self.isn.isn(now, local, remote), iss_floor) {
            (clock, Some(floor)) if clock.diff(floor) < 0 => floor,
            (clock, _) => clock,
        };
        let ts_offset = self.rng.next_u32();
        self.new_conn_with(now, local, remote, (send, recv), iss, ts_offset)
    }

    /// [`new_conn`](Stack::new_conn) with the ISS and timestamp offset given
    /// (a SYN cookie fixed them).
    pub(super) fn new_conn_with(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        (send, recv): (usize, usize),
        iss: SeqNum,
        ts_offset: u32,
    ) -> (ConnId, Conn) {
        let id = self.next_id();
        let (sb, rb) = self.factory.buffers(id, send, recv);
        let mut conn = Conn::new(&self.cfg, local, remote, iss, ts_offset, sb, rb, now);
        conn.flow_label = self.flow_label(local, remote);
        // RFC 1191 / RFC 8201: start from what the path is known to carry.
        if let Some((mss, learnt)) = self.path_mss(now, remote.ip()) {
            if mss < conn.our_mss {
                conn.our_mss = mss;
                conn.pmtu_since = Some(learnt);
            }
        }
        (id, conn)
    }

    /// The id the next `insert` will return.
    pub(super) fn next_id(&self) -> ConnId {
        match self.free.last() {
            Some(&index) => ConnId {
                index,
                generation: self.slots[index as usize].generation,
            },
            None => ConnId {
                index: self.slots.len() as u32,
                generation: 0,
            },
        }
    }

    pub(super) fn on_passive_established(&mut self, id: ConnId) {
        let Some(lid) = self.conn(id).and_then(|c| c.listener) else {
            return;
        };
        match self.listeners.get_mut(lid.0 as usize) {
            Some(Some(l)) => {
                l.syn_queue = l.syn_queue.saturating_sub(1);
                self.syn_total = self.syn_total.saturating_sub(1);
                l.accept_queue.push_back(id);
                if !l.in_events {
                    l.in_events = true;
                    self.events.push_back(EventSource::Listener(lid));
                }
            }
            _ => {
                // The listener is gone: reset the connection.
                if let Some(c) = self.conn_mut(id) {
                    c.abort(Error::ConnectionAborted);
                }
            }
        }
    }
}
