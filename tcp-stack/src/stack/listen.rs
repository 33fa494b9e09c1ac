//! The listener's side of the handshake: the SYN queue (half-open
//! connections), SYN cookies (RFC 4987 3.6) and the accept queue's limit.

use super::*;
use crate::config::SynCookies;
use crate::syncookie::{CookieOptions, Cookies};

/// How long after its last cookie a listener still checks ACKs for one:
/// two periods of the cookie's time counter (`syncookie.rs`).
const COOKIE_WINDOW: Duration = Duration::from_secs(128);

impl Stack {
    /// Most half-open connections listener `l` may hold: `max(backlog, 8)`,
    /// never above the stack-wide cap (Linux sizes its request queue from
    /// the backlog; `tcp_max_syn_backlog` bounds the whole).
    fn syn_queue_limit(&self, l: &Listener) -> usize {
        l.backlog.max(8).min(self.cfg.max_syn_backlog)
    }

    /// Entries in a listener's list of half-open connections (for bounds checks).
    #[doc(hidden)]
    pub fn listener_embryo_entries(&self, listener: ListenerId) -> usize {
        match self.listeners.get(listener.0 as usize) {
            Some(Some(l)) => l.embryos.len(),
            _ => 0,
        }
    }

    /// The accept queue of listener `lidx` holds `backlog` connections,
    /// those a front end took but still holds for its application included
    /// ([`Stack::set_listener_waiting`]).
    pub(super) fn accept_queue_full(&self, lidx: u32) -> bool {
        match self.listeners.get(lidx as usize) {
            Some(Some(l)) => l.accept_queue.len() + l.waiting >= l.backlog,
            _ => false,
        }
    }

    /// A SYN reached listener `lidx` (RFC 9293 3.10.7.2).
    pub(super) fn on_syn(
        &mut self,
        now: Instant,
        lidx: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn,
        iss_floor: Option<SeqNum>,
    ) {
        let Some(Some(l)) = self.listeners.get(lidx as usize) else {
            return;
        };
        // A full accept queue drops the SYN, as Linux does (the peer
        // retries); answering would only build more connections nobody takes.
        if self.accept_queue_full(lidx) {
            self.stats.accept_queue_overflows += 1;
            self.stats.drop_listen_overflow += 1;
            return;
        }
        // No memory for another connection's buffers: drop the SYN (the
        // peer retries), as `connect` fails then.
        if self.memory_exhausted() {
            self.stats.drop_memory += 1;
            return;
        }
        let full =
            l.syn_queue >= self.syn_queue_limit(l) || self.syn_total >= self.cfg.max_syn_backlog;
        if full {
            self.stats.syn_queue_overflows += 1;
        }
        // RFC 4987 3.6: no state for this SYN, a cookie instead. (A SYN
        // reopening a TIME-WAIT tuple needs its ISS above the old one, so
        // it never gets a cookie.)
        let cookie = iss_floor.is_none()
            && match self.cfg.syn_cookies {
                SynCookies::Off => false,
                SynCookies::WhenFull => full,
                SynCookies::Always => true,
            };
        if cookie {
            self.send_cookie_syn_ack(now, lidx, local, remote, seg);
            return;
        }
        if full && !self.evict_embryo(lidx) {
            self.stats.drop_listen_overflow += 1;
            return;
        }
        if self.live >= self.cfg.max_connections {
            self.stats.drop_listen_overflow += 1;
            return;
        }
        let Some(Some(l)) = self.listeners.get(lidx as usize) else {
            return;
        };
        let (buffers, v6_socket) = (l.buffers, l.v6_socket);
        let (id_hint, mut conn) = self.new_conn(now, local, remote, buffers, iss_floor);
        conn.v6_socket = v6_socket;
        let mut env = Env {
            now,
            cfg: &self.cfg,
            stats: &mut self.stats,
            challenge: &mut self.challenge,
            gso: false,
            gso_size: None,
        };
        conn.open_passive(&mut env, seg, ListenerId(lidx));
        let id = self.insert(conn, false);
        debug_assert_eq!(id, id_hint);
        if let Some(Some(l)) = self.listeners.get_mut(lidx as usize) {
            l.syn_queue += 1;
            l.embryos.push_back(id);
        }
        self.syn_total += 1;
        self.prune_embryos(lidx);
        self.after(id, true);
    }

    /// Drops the entries of `embryos` that are no longer half-open
    /// connections of listener `lidx` (established, or gone), once they
    /// outnumber the live ones: the list stays within a small multiple of
    /// the SYN queue, at O(1) amortized cost. (Without this, every
    /// connection a listener ever took left 8 bytes behind.)
    fn prune_embryos(&mut self, lidx: u32) {
        match self.listeners.get(lidx as usize) {
            Some(Some(l)) if l.embryos.len() > 2 * l.syn_queue + 16 => {
                self.drop_stale_embryos(lidx)
            }
            _ => {}
        }
    }

    /// Keeps in `embryos` only the live half-open connections of `lidx`.
    fn drop_stale_embryos(&mut self, lidx: u32) {
        let slots = &self.slots;
        if let Some(Some(l)) = self.listeners.get_mut(lidx as usize) {
            l.embryos.retain(|&id| embryo_of(slots, id, lidx).is_some());
            if l.embryos.capacity() > 4 * l.embryos.len().max(16) {
                l.embryos.shrink_to(2 * l.embryos.len().max(16));
            }
        }
    }

    /// Under SYN-queue pressure without cookies: drops the oldest half-open
    /// connection of listener `lidx` that already retransmitted its SYN-ACK
    /// (its peer is slow or gone; a fresh one is likelier to complete).
    /// Returns whether one went.
    fn evict_embryo(&mut self, lidx: u32) -> bool {
        self.drop_stale_embryos(lidx);
        let slots = &self.slots;
        let Some(Some(l)) = self.listeners.get_mut(lidx as usize) else {
            return false;
        };
        let retried = |id: &ConnId| embryo_of(slots, *id, lidx).is_some_and(|c| c.syn_retries > 0);
        let Some(id) = l
            .embryos
            .iter()
            .position(retried)
            .and_then(|i| l.embryos.remove(i))
        else {
            return false;
        };
        self.stats.syn_queue_evictions += 1;
        // Dropped silently, as Linux prunes its request queue.
        if let Some(c) = self.conn_mut(id) {
            c.enter_closed(None);
        }
        self.after(id, false);
        true
    }

    /// Answers a SYN with a SYN cookie SYN-ACK (RFC 4987 3.6), keeping no state.
    fn send_cookie_syn_ack(
        &mut self,
        now: Instant,
        lidx: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn,
    ) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.drop_control_full += 1;
            return;
        }
        let Some(Some(l)) = self.listeners.get_mut(lidx as usize) else {
            return;
        };
        l.last_cookie = Some(now);
        let recv = l.buffers.1;
        let cfg = &self.cfg;
        let o = &seg.options;
        // RFC 4987 3.6: the MSS the SYN-ACK offers; no path MTU is known
        // here that the connection could not learn again.
        let our_mss = Conn::our_mss(cfg, remote.is_ipv6());
        // RFC 9293 3.7.1: without an MSS option the peer takes 536.
        let peer_mss = o.mss.unwrap_or(536);
        let iss = self.cookies.iss(now, local, remote, seg.seq, peer_mss);
        let ws = cfg.window_scaling && o.window_scale.is_some();
        let sack = cfg.sack && o.sack_permitted;
        let ecn = cfg.ecn && seg.flags.contains(TcpFlags::ECE) && seg.flags.contains(TcpFlags::CWR);
        let mut options = TcpOptions {
            mss: Some(our_mss as u16),
            ..TcpOptions::default()
        };
        if let (true, Some((tsval, _))) = (cfg.timestamps, o.timestamps) {
            // With timestamps the options ride in TSval's low bits.
            let ts_now =
                (now.total_millis() as u32).wrapping_add(self.cookies.ts_offset(local, remote));
            let opts = CookieOptions {
                wscale: if ws { o.window_scale } else { None },
                sack,
                ecn,
            };
            options.timestamps = Some((Cookies::tsval(ts_now, opts), tsval));
            options.sack_permitted = sack;
            if ws {
                options.window_scale = Some(Conn::recv_wscale(cfg, recv));
            }
        }
        let mut flags = TcpFlags::SYN | TcpFlags::ACK;
        if ecn && options.timestamps.is_some() {
            flags |= TcpFlags::ECE;
        }
        let tcp = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: iss,
            ack: seg.seq + 1,
            flags,
            // RFC 7323 2.2: the window of a SYN is never scaled.
            window: recv.min(65535) as u16,
            urgent: 0,
            options,
        };
        self.stats.syncookies_sent += 1;
        self.queue_tcp(local, remote, &tcp);
    }

    /// Whether listener `lidx` sent a cookie recently enough for an ACK to
    /// carry a valid one.
    pub(super) fn cookies_may_be_out(&self, lidx: u32, now: Instant) -> bool {
        self.cfg.syn_cookies != SynCookies::Off
            && matches!(
                self.listeners.get(lidx as usize),
                Some(Some(Listener { last_cookie: Some(at), .. }))
                    if now.saturating_duration_since(*at) <= COOKIE_WINDOW
            )
    }

    /// An ACK for listener `lidx` with no connection, while cookies are
    /// out (RFC 4987 3.6). A valid cookie creates the connection directly
    /// in ESTABLISHED, on the accept queue, with the data it carries; an
    /// invalid one is dropped and counted.
    pub(super) fn on_cookie_ack(
        &mut self,
        now: Instant,
        lidx: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn,
    ) {
        if seg.flags.rst() {
            return;
        }
        let Some(mss) = self.cookies.check(now, local, remote, seg.seq, seg.ack) else {
            self.stats.syncookies_rejected += 1;
            return;
        };
        if self.accept_queue_full(lidx) {
            // The peer's next segment (it thinks it is connected) retries.
            self.stats.accept_queue_overflows += 1;
            return;
        }
        if self.live >= self.cfg.max_connections {
            self.stats.drop_listen_overflow += 1;
            return;
        }
        if self.memory_exhausted() {
            self.stats.drop_memory += 1;
            return;
        }
        let Some(Some(l)) = self.listeners.get(lidx as usize) else {
            return;
        };
        let (buffers, v6_socket) = (l.buffers, l.v6_socket);
        self.stats.syncookies_validated += 1;
        // The SYN the cookie stands for, with the options it kept.
        let mut syn = *seg;
        syn.seq = seg.seq - 1;
        syn.ack = SeqNum(0);
        syn.flags = TcpFlags::SYN;
        syn.payload = &[];
        syn.options = TcpOptions {
            mss: Some(mss),
            ..TcpOptions::default()
        };
        match seg.options.timestamps {
            Some((tsval, tsecr)) if self.cfg.timestamps => {
                let kept = Cookies::decode_tsecr(tsecr);
                syn.options.window_scale = kept.wscale;
                syn.options.sack_permitted = kept.sack;
                syn.options.timestamps = Some((tsval, 0));
                if kept.ecn {
                    syn.flags |= TcpFlags::ECE | TcpFlags::CWR;
                }
            }
            // Without timestamps: no window scaling, no SACK, no ECN.
            _ => {}
        }
        let iss = seg.ack - 1;
        let ts_offset = self.cookies.ts_offset(local, remote);
        let (id_hint, mut conn) = self.new_conn_with(now, local, remote, buffers, iss, ts_offset);
        conn.v6_socket = v6_socket;
        let (mut env, _) = self.env_parts(now);
        conn.open_from_cookie(&mut env, &syn, ListenerId(lidx));
        let id = self.insert(conn, false);
        debug_assert_eq!(id, id_hint);
        // Counted as an embryo until the ACK below establishes it.
        if let Some(Some(l)) = self.listeners.get_mut(lidx as usize) {
            l.syn_queue += 1;
        }
        self.syn_total += 1;
        let (mut env, slots) = self.env_parts(now);
        let Some(conn) = slots[id.index as usize].conn.as_deref_mut() else {
            return;
        };
        match conn.on_segment(&mut env, seg) {
            Disposition::Established => {
                self.on_passive_established(id);
                self.after(id, true);
            }
            _ => {
                // Cannot happen for a validated cookie; never leave an embryo.
                if let Some(c) = self.conn_mut(id) {
                    c.enter_closed(None);
                }
                self.after(id, false);
            }
        }
    }
}

/// The connection behind `id` if it is still a half-open connection of
/// listener `lidx` (not accepted, not established, not gone).
fn embryo_of(slots: &[Slot], id: ConnId, lidx: u32) -> Option<&Conn> {
    let s = slots.get(id.index as usize)?;
    let c = s.conn.as_deref()?;
    (s.generation == id.generation
        && !s.owned
        && c.state == State::SynReceived
        && c.listener == Some(ListenerId(lidx)))
    .then_some(c)
}
