//! Output: what the connections and the control queue send, timers and events.

use super::*;

impl Stack {
    /// Queues a RST for a segment that matches no connection.
    pub(super) fn queue_rst(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seq: SeqNum,
        ack: Option<SeqNum>,
    ) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.drop_control_full += 1;
            return;
        }
        let mut flags = TcpFlags::RST;
        if ack.is_some() {
            flags |= TcpFlags::ACK;
        }
        let tcp = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack: ack.unwrap_or(SeqNum(0)),
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        self.stats.rst_sent += 1;
        self.queue_tcp(local, remote, &tcp);
    }

    /// Queues a header-only TCP segment that belongs to no connection (a
    /// RST, a cookie SYN-ACK) with its IP header and checksum. The caller
    /// checked the control queue's bound.
    pub(super) fn queue_tcp(&mut self, local: SocketAddr, remote: SocketAddr, tcp: &TcpRepr) {
        let ihl = ip_header_len(remote.ip());
        let hl = tcp.header_len();
        let mut pkt = vec![0u8; ihl + hl];
        tcp.emit(&mut pkt[ihl..]);
        fill_checksum(&mut pkt[ihl..], local.ip(), remote.ip());
        let ip = IpHeader {
            src: local.ip(),
            dst: remote.ip(),
            protocol: IpProtocol::Tcp,
            hop_limit: self.default_hop_limit(remote.ip()),
            ecn: 0,
            dscp: 0,
            flow_label: self.flow_label(local, remote),
        };
        self.ip_header(&mut pkt, &ip, hl);
        self.control.push_back(pkt);
    }

    /// The TTL (IPv4) or hop limit (IPv6) of datagrams no connection sends.
    pub(super) fn default_hop_limit(&self, dst: IpAddr) -> u8 {
        match dst {
            IpAddr::V4(_) => self.cfg.ttl,
            IpAddr::V6(_) => self.cfg.hop_limit,
        }
    }

    /// The flow label of a 4-tuple (RFC 6437 3: a keyed hash of the
    /// tuple, 20 bits, so one flow keeps one label and labels do not
    /// reveal anything); 0 for IPv4.
    pub(super) fn flow_label(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        if local.is_ipv4() {
            return 0;
        }
        let mut h = KeyedState(self.port_key ^ 0x6437_6437_6437_6437).build_hasher();
        h.write(crate::isn::tuple_bytes(local, remote).as_slice());
        // RFC 6437 3: zero means "no label"; never use it for a flow.
        (h.finish() as u32 & 0xF_FFFF).max(1)
    }

    /// Writes the IP header of a datagram carrying `payload_len` bytes
    /// into the front of `buf`: IPv4 (DF set, RFC 1191) or IPv6 (RFC 8200).
    pub(super) fn ip_header(&mut self, buf: &mut [u8], ip: &IpHeader, payload_len: usize) {
        match (ip.src, ip.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                Ipv4Repr {
                    src,
                    dst,
                    protocol: ip.protocol,
                    payload_len,
                    ttl: ip.hop_limit,
                    tos: (ip.dscp & !0b11) | (ip.ecn & 0b11),
                    ident: self.ip_ident,
                    dont_frag: true,
                }
                .emit(buf);
            }
            (src, dst) => Ipv6Repr {
                src: v6_of(src),
                dst: v6_of(dst),
                next_header: ip.protocol,
                payload_len,
                hop_limit: ip.hop_limit,
                traffic_class: ip.ecn & 0b11,
                flow_label: ip.flow_label,
            }
            .emit(buf),
        }
    }

    // ------------------------------------------------------------------
    // Output, timers, events
    // ------------------------------------------------------------------

    /// Writes the next IPv4 datagram due into `buf` (at least `mtu` bytes
    /// recommended) and returns its length, or `None` if nothing is due.
    /// Connections take turns, one segment each.
    ///
    /// With [`Config::ethernet`] the output is an Ethernet II frame: the
    /// datagram is written at `buf[14..]` behind the frame header, so `buf`
    /// needs `mtu + 14` bytes, and the length returned (and
    /// [`Transmit::len`] of [`poll_transmit_gso`](Stack::poll_transmit_gso))
    /// counts the whole frame. ARP and Neighbour Discovery frames come out
    /// here too, before any TCP output.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.transmit(now, buf, false).map(|t| t.len)
    }

    /// [`poll_transmit`](Stack::poll_transmit) for a device with TCP
    /// segmentation offload: new in-order data may go as one super-segment
    /// of several full-MSS parts (see [`Transmit::segment_size`]) filling
    /// `buf` up to 65535 bytes, within the congestion and peer windows and
    /// Nagle's rule. Retransmissions, probes, SYN/RST and segments with CWR
    /// stay single segments. With a `buf` of at most `mtu` bytes this is
    /// `poll_transmit`.
    pub fn poll_transmit_gso(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.transmit(now, buf, true)
    }

    /// The next datagram for the device. Those for the stack itself
    /// (RFC 1122 3.2.1.3) are queued as input for the next `handle_timeout`
    /// instead, which `poll_timeout` reports due at once; while the queue
    /// is full, output pauses until then.
    ///
    /// With [`Config::ethernet`], link control frames (ARP, NS, NA) go
    /// first, then datagrams whose neighbour just resolved; each datagram
    /// is written at `buf[14..]` and framed, or parked on its unresolved
    /// neighbour while the next one is produced.
    pub(super) fn transmit(&mut self, now: Instant, buf: &mut [u8], gso: bool) -> Option<Transmit> {
        let off = if self.link.is_some() {
            link::ETH_HLEN
        } else {
            0
        };
        loop {
            if let Some(t) = self.link_queued(buf) {
                return Some(t);
            }
            if self.loopback.bytes >= LOOPBACK_BYTES {
                return None;
            }
            let t = self.transmit_next(now, buf.get_mut(off..)?, gso)?;
            let datagram = &buf[off..off + t.len];
            let dst = datagram_dst(datagram);
            if !dst.is_some_and(|dst| self.is_local(dst)) {
                if off == 0 {
                    return Some(t);
                }
                // The core built it, so its header parses; never frame
                // what does not.
                let Some(dst) = dst else { continue };
                match self.frame_datagram(now, buf, t, dst) {
                    Some(t) => return Some(t),
                    None => continue,
                }
            }
            let mut copy = self.loopback.spare.pop().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(datagram);
            self.loopback.bytes += copy.len();
            self.loopback.since.get_or_insert(now);
            self.loopback.queue.push_back(copy);
            self.stats.loopback += 1;
        }
    }

    /// Handles the datagrams the stack sent itself (see `transmit`).
    pub(super) fn handle_loopback(&mut self, now: Instant) {
        // Only those queued so far: handling them queues none (`transmit`
        // does), but stay bounded anyway.
        for _ in 0..self.loopback.queue.len() {
            let Some(datagram) = self.loopback.queue.pop_front() else {
                break;
            };
            self.loopback.bytes -= datagram.len();
            // It never crossed a wire: its TCP checksum, complete or partial
            // (a super-segment), is not checked.
            let meta = RxMeta {
                checksum_verified: true,
            };
            self.handle_ip(now, &datagram, meta, true);
            if self.loopback.spare.len() < LOOPBACK_SPARE {
                self.loopback.spare.push(datagram);
            }
        }
        self.loopback.since = None;
    }

    pub(super) fn transmit_next(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        gso: bool,
    ) -> Option<Transmit> {
        let plain = |buf: &[u8], len| {
            Some(Transmit {
                len,
                segment_size: None,
                headers: TxHeaders::of_datagram(&buf[..len]),
            })
        };
        if let Some(pkt) = self.control.front() {
            if pkt.len() <= buf.len() {
                let pkt = self.control.pop_front()?;
                buf[..pkt.len()].copy_from_slice(&pkt);
                self.stats.packets_out += 1;
                return plain(buf, pkt.len());
            }
            // Caller's buffer too small: drop it rather than wedge the queue.
            self.control.pop_front();
        }
        let limit = if gso && buf.len() > self.cfg.mtu {
            buf.len().min(usize::from(u16::MAX))
        } else {
            buf.len().min(self.cfg.mtu)
        };
        let gso = limit > self.cfg.mtu;
        if limit < Ipv4Repr::HEADER_LEN + 60 {
            return None;
        }
        while let Some(id) = self.dirty.pop_front() {
            let Some(slot) = self.slots.get_mut(id.index as usize) else {
                continue;
            };
            if slot.generation != id.generation {
                continue;
            }
            slot.in_dirty = false;
            let Some(ihl) = slot.conn.as_deref().map(|c| ip_header_len(c.remote.ip())) else {
                continue;
            };
            if limit < ihl + 60 {
                // No room for this family's headers: it waits for a bigger buffer.
                slot.in_dirty = true;
                self.dirty.push_front(id);
                return None;
            }
            let (mut env, slots) = self.env_parts(now);
            env.gso = gso;
            let Some(conn) = slots[id.index as usize].conn.as_deref_mut() else {
                continue;
            };
            icmp::age_path_mtu(conn, env.cfg, now);
            let seg_buf = &mut buf[ihl..limit];
            let produced = conn.poll_segment(&mut env, seg_buf);
            let segment_size = env.gso_size;
            match produced {
                Some(n) => {
                    let ip = IpHeader {
                        src: conn.local.ip(),
                        dst: conn.remote.ip(),
                        protocol: IpProtocol::Tcp,
                        hop_limit: conn.opts.ttl,
                        // RFC 3168 6.1.2: new data of an ECN connection is ECT(0).
                        ecn: conn.ecn.out,
                        dscp: conn.opts.tos,
                        flow_label: conn.flow_label,
                    };
                    let tcp = TcpPacket::new_unchecked(&seg_buf[..n]);
                    let tcp_hl = tcp.header_len();
                    let headers = TxHeaders {
                        link_len: 0,
                        ip_len: ihl as u16,
                        ipv6: ip.dst.is_ipv6(),
                        tcp_len: u8::try_from(tcp_hl).unwrap_or(0),
                        cwr: tcp.flags().contains(TcpFlags::CWR),
                    };
                    if tcp.flags().rst() {
                        self.stats.rst_sent += 1;
                    }
                    self.ip_header(buf, &ip, n);
                    let len = ihl + n;
                    self.stats.packets_out += 1;
                    let segment = &mut buf[ihl..len];
                    match segment_size {
                        None => fill_checksum(segment, ip.src, ip.dst),
                        Some(size) => {
                            fill_partial_checksum(segment, ip.src, ip.dst);
                            // Count the datagrams the super-segment becomes.
                            let parts = (n - tcp_hl).div_ceil(usize::from(size));
                            self.stats.packets_out += parts as u64 - 1;
                            // The parts take consecutive IP ids (Linux GSO).
                            let extra = u16::try_from(parts - 1).unwrap_or(u16::MAX);
                            self.ip_ident = self.ip_ident.wrapping_add(extra);
                        }
                    }
                    // Round robin: back of the queue if it has more.
                    self.after(id, true);
                    return Some(Transmit {
                        len,
                        segment_size,
                        headers,
                    });
                }
                None => self.after(id, false),
            }
        }
        None
    }

    /// The earliest instant at which [`handle_timeout`](Stack::handle_timeout)
    /// must be called. Datagrams the stack sent itself (to one of its
    /// addresses or 127.0.0.0/8) are handled there: while some wait, this
    /// is the time they were sent, already past.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let timer = match (self.next_timer(), self.link_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (timer, self.loopback.since) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        }
    }

    /// Timers are cancelled lazily, so the heap may hold stale entries:
    /// one each time a connection's deadline moved earlier, or an earlier
    /// timer fired while a later one stood. A peer drawing delayed ACKs
    /// under a long retransmission timeout would grow it until that
    /// deadline. Once the heap holds more than twice the live connections
    /// (plus slack), it is rebuilt from the slots' real deadlines: O(n)
    /// at most once per n pushes, and the heap stays bounded.
    pub(super) fn compact_timers_if_bloated(&mut self) {
        if self.timers.len() <= 2 * self.live + 64 {
            return;
        }
        let mut entries = std::mem::take(&mut self.timers).into_vec();
        entries.clear();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            slot.scheduled = slot.conn.as_deref().and_then(|c| c.timers.next());
            if let Some(t) = slot.scheduled {
                entries.push(Reverse((t, index as u32, slot.generation)));
            }
        }
        self.timers = BinaryHeap::from(entries);
    }

    /// The stack is going away: resets every connection (RFC 9293 3.10.5
    /// ABORT: a RST in the synchronized states), orphans included, so no
    /// peer waits for a stack that will never answer again. Drain
    /// `poll_transmit` afterwards to send the RSTs.
    pub fn reset_all(&mut self) {
        let ids: Vec<ConnId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(i, s)| ConnId {
                index: i as u32,
                generation: s.generation,
            })
            .collect();
        for id in ids {
            if let Some(c) = self.conn_mut(id) {
                c.abort(Error::ConnectionAborted);
                // The application learns from the stack stopping, not
                // from per-connection events.
                c.events = 0;
            }
            self.after(id, true);
        }
    }

    /// Tells the stack how much memory its connections' buffers hold now
    /// (a front end whose buffers allocate lazily measures it). At or
    /// above `Config::max_buffer_memory`, new connections are refused.
    pub fn set_buffer_memory(&mut self, bytes: usize) {
        self.buffer_memory = bytes;
    }

    /// The buffer memory is at its limit: no new connections.
    pub(crate) fn memory_exhausted(&self) -> bool {
        self.buffer_memory >= self.cfg.max_buffer_memory
    }

    /// Number of entries in the timer heap (for bounds checks).
    #[doc(hidden)]
    pub fn timer_heap_len(&self) -> usize {
        self.timers.len()
    }

    /// The earliest connection timer.
    pub(super) fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            // The common case: the top entry is current; leave the heap alone.
            if let Some(slot) = self.slots.get(index as usize) {
                if slot.generation == generation
                    && slot.scheduled == Some(t)
                    && slot.conn.as_deref().and_then(|c| c.timers.next()) == Some(t)
                {
                    return Some(t);
                }
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(t) {
                continue;
            }
            // Timers are cancelled lazily: re-check the connection's real deadline.
            let actual = slot.conn.as_deref().and_then(|c| c.timers.next());
            slot.scheduled = actual;
            if let Some(a) = actual {
                self.timers.push(Reverse((a, index, generation)));
                if a == t {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`, after handling the datagrams the
    /// stack sent itself.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.loopback.queue.is_empty() {
            self.handle_loopback(now);
        }
        if self.link.is_some() {
            self.link_timeout(now);
        }
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(t) {
                continue;
            }
            slot.scheduled = None;
            let id = ConnId { index, generation };
            let (mut env, slots) = self.env_parts(now);
            if let Some(conn) = slots[index as usize].conn.as_deref_mut() {
                conn.on_timeout(&mut env);
            }
            self.after(id, true);
        }
    }

    /// Next application-visible event.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(&src) = self.events.front() {
            match src {
                EventSource::Listener(lid) => {
                    self.events.pop_front();
                    if let Some(Some(l)) = self.listeners.get_mut(lid.0 as usize) {
                        l.in_events = false;
                        if !l.accept_queue.is_empty() {
                            return Some(Event::Incoming(lid));
                        }
                    }
                }
                EventSource::Conn(id) => {
                    let Some(slot) = self.slots.get_mut(id.index as usize) else {
                        self.events.pop_front();
                        continue;
                    };
                    let conn = match slot.conn.as_deref_mut() {
                        Some(c) if slot.generation == id.generation => c,
                        _ => {
                            self.events.pop_front();
                            continue;
                        }
                    };
                    const ORDER: [u8; 8] = [
                        ev::CONNECTED,
                        ev::READABLE,
                        ev::WRITABLE,
                        ev::PEER_CLOSED,
                        ev::RESET,
                        ev::TIMED_OUT,
                        ev::CLOSED,
                        ev::SOFT_ERROR,
                    ];
                    let bit = ORDER.into_iter().find(|b| conn.events & b != 0);
                    let Some(bit) = bit else {
                        slot.in_events = false;
                        self.events.pop_front();
                        continue;
                    };
                    conn.events &= !bit;
                    if conn.events == 0 {
                        slot.in_events = false;
                        self.events.pop_front();
                    }
                    return Some(match bit {
                        ev::CONNECTED => Event::Connected(id),
                        ev::READABLE => Event::Readable(id),
                        ev::WRITABLE => Event::Writable(id),
                        ev::PEER_CLOSED => Event::PeerClosed(id),
                        ev::RESET => Event::Reset(id),
                        ev::TIMED_OUT => Event::TimedOut(id),
                        ev::SOFT_ERROR => Event::SoftError(id),
                        _ => Event::Closed(id),
                    });
                }
            }
        }
        None
    }
}
