//! Input: datagrams in, demultiplexed to connections and listeners (RFC 9293 3.10.7).

use super::*;

impl Stack {
    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Processes one IPv4 datagram. Bad input is dropped and counted in [`Stats`].
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_meta(now, packet, RxMeta::default());
    }

    /// [`handle_packet`](Stack::handle_packet) with what the device knows
    /// about the datagram. A TCP segment may be larger than the MSS (a
    /// GRO/TSO super-segment of up to 64 KB from a device with offloads):
    /// it is handled as one segment.
    pub fn handle_packet_meta(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        self.handle_ipv4(now, packet, meta, false);
    }

    /// One datagram from the device, or `looped` back from the stack itself.
    pub(super) fn handle_ipv4(&mut self, now: Instant, packet: &[u8], meta: RxMeta, looped: bool) {
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
        // RFC 1122 3.2.1.3 (g): 127.0.0.0/8 is internal host loopback and
        // MUST NOT appear outside a host: only looped datagrams may carry it.
        let ours = if looped {
            self.is_local(repr.dst)
        } else {
            self.cfg.addrs.contains(&repr.dst)
        };
        if !ours {
            self.stats.drop_not_ours += 1;
            return;
        }
        if !looped && repr.src.is_loopback() {
            self.stats.drop_malformed += 1;
            return;
        }
        let payload = ip.payload();
        match repr.protocol {
            IpProtocol::Tcp => {
                let verify = self.cfg.verify_checksums && !meta.checksum_verified;
                self.handle_tcp(now, &repr, payload, verify)
            }
            IpProtocol::Icmp => self.handle_icmp(now, &repr, payload),
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

    pub(super) fn handle_tcp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], verify: bool) {
        let (tcp, data) = match TcpRepr::parse(payload, ip.src, ip.dst, verify) {
            Ok(x) => x,
            Err(e) => return self.count_drop(e),
        };
        if tcp.src_port == 0
            || tcp.dst_port == 0
            || ip.src.is_broadcast()
            || ip.src.is_multicast()
            || ip.src.is_unspecified()
        {
            self.stats.drop_malformed += 1;
            return;
        }
        let local = SocketAddrV4::new(ip.dst, tcp.dst_port);
        let remote = SocketAddrV4::new(ip.src, tcp.src_port);
        let seg = SegmentIn {
            now,
            // RFC 3168 5: CE codepoint (0b11) in the IP header.
            ce: ip.tos & 0b11 == 0b11,
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
            let (mut env, slots) = self.env_parts(now);
            let Some(conn) = slots[index as usize].conn.as_deref_mut() else {
                return;
            };
            let disposition = conn.on_segment(&mut env, &seg);
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
                    let floor = conn.snd_max + 65537;
                    self.remove(id);
                    self.handle_no_conn(now, local, remote, &seg, Some(floor));
                }
            }
            return;
        }
        self.handle_no_conn(now, local, remote, &seg, None);
    }

    pub(super) fn find_listener(&self, local: SocketAddrV4) -> Option<u32> {
        self.listener_map.get(&local).copied().or_else(|| {
            self.listener_map
                .get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
                .copied()
        })
    }

    /// A segment for a tuple with no connection: LISTEN (RFC 9293 3.10.7.2)
    /// or CLOSED (RFC 9293 3.10.7.1).
    pub(super) fn handle_no_conn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegmentIn,
        iss_floor: Option<SeqNum>,
    ) {
        let f = seg.flags;
        if let Some(lidx) = self.find_listener(local) {
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
        (send, recv): (usize, usize),
        iss: SeqNum,
        ts_offset: u32,
    ) -> (ConnId, Conn) {
        let id = self.next_id();
        let (sb, rb) = self.factory.buffers(id, send, recv);
        let conn = Conn::new(&self.cfg, local, remote, iss, ts_offset, sb, rb, now);
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
