//! ICMP errors and echo (RFC 792, RFC 1122 4.2.3.9, RFC 5927).

use super::*;

impl Stack {
    pub(super) fn handle_icmp(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8]) {
        self.stats.icmp_in += 1;
        let msg = match IcmpRepr::parse(payload) {
            Ok(m) => m,
            Err(e) => return self.count_drop(e),
        };
        match msg {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                if ip.src.is_broadcast() || ip.src.is_multicast() || ip.src.is_unspecified() {
                    self.stats.drop_malformed += 1;
                    return;
                }
                if self.control.len() >= MAX_CONTROL {
                    self.stats.drop_control_full += 1;
                    return;
                }
                let (rate, burst) = (self.cfg.icmp_msgs_per_sec, self.cfg.icmp_msgs_burst);
                if !self.icmp_bucket.allow(now, rate, burst) {
                    self.stats.icmp_rate_limited += 1;
                    return;
                }
                let reply = IcmpRepr::EchoReply { ident, seq, data };
                let len = reply.buffer_len();
                let mut pkt = vec![0u8; Ipv4Repr::HEADER_LEN + len];
                reply.emit(&mut pkt[Ipv4Repr::HEADER_LEN..]);
                self.ip_header(
                    &mut pkt,
                    ip.dst,
                    ip.src,
                    IpProtocol::Icmp,
                    len,
                    self.cfg.ttl,
                );
                self.stats.icmp_echo_replies += 1;
                self.control.push_back(pkt);
            }
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => self.icmp_error(now, data, Some((code, next_hop_mtu))),
            IcmpRepr::TimeExceeded { data, .. } => self.icmp_error(now, data, None),
            _ => {}
        }
    }

    /// An ICMP error quoting one of our TCP segments (RFC 1122 4.2.3.9, RFC 5927).
    pub(super) fn icmp_error(&mut self, now: Instant, quoted: &[u8], unreach: Option<(u8, u16)>) {
        // The quote is an IPv4 header plus at least 8 bytes of TCP header.
        if quoted.len() < 20 || quoted[0] >> 4 != 4 || quoted[9] != 6 {
            return;
        }
        let ihl = usize::from(quoted[0] & 0xf) * 4;
        if ihl < 20 || quoted.len() < ihl + 8 {
            return;
        }
        let src = Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]);
        let dst = Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]);
        let t = &quoted[ihl..];
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let seq = SeqNum(u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
        let tuple = (SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport));
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
        // RFC 5927 4.1: the quoted sequence number must be in flight.
        if seq.diff(conn.snd_una) < 0 || seq.diff(conn.snd_max) > 0 {
            return;
        }
        let _ = now;
        match unreach {
            Some((4, mtu)) => {
                // Fragmentation needed (RFC 1191): shrink the segment size and resend.
                let mtu = usize::from(mtu);
                if mtu >= 68 && mtu - 40 < conn.our_mss {
                    conn.our_mss = (mtu - 40).max(48);
                    conn.cc.set_mss(conn.send_mss());
                    conn.snd_nxt = conn.snd_una;
                }
            }
            Some((code, _)) => {
                let err = if code == 2 || code == 3 {
                    Error::ConnectionRefused
                } else {
                    Error::HostUnreachable
                };
                if conn.state == State::SynSent {
                    // A hard error while connecting (as Linux reports it).
                    conn.enter_closed(Some(err));
                } else {
                    conn.soft_error = Some(err);
                }
            }
            None => conn.soft_error = Some(Error::HostUnreachable),
        }
        self.after(id, true);
    }
}
