//! Super-segments for devices with TCP segmentation offload.
//!
//! With `Env::gso` set, new in-order data may leave as one super-segment:
//! one TCP header, then several parts of exactly `room` payload bytes (the
//! MSS less the options carried) and possibly a shorter last part. The
//! device (a NIC, or the Linux kernel behind a TUN) cuts it as Linux's
//! `tcp_gso_segment` does: every part gets a copy of the header with its
//! own sequence number, FIN and PSH only on the last part, CWR only on the
//! first. The core therefore never puts CWR in a super-segment (it goes
//! alone, so no `VIRTIO_NET_HDR_GSO_ECN` is needed), while a FIN after the
//! last byte is fine.
//!
//! The rest of the core sees the super-segment as what it is, a run of
//! bytes from SND.NXT: congestion control, PRR, SACK and RTT sampling all
//! count bytes or sequence numbers, not packets. Only the segment counters
//! are per part.

use super::{Conn, Env};

impl Conn {
    /// The most payload `send_data` may put in one segment: `room` (one
    /// MSS-sized part), or with GSO as many whole parts as fit in a
    /// `buf_len`-byte TCP segment with `options_len` bytes of options.
    /// `single`: this send must be one ordinary segment (a retransmission,
    /// a probe, recovery).
    pub(super) fn gso_room(
        &self,
        env: &Env,
        room: usize,
        options_len: usize,
        buf_len: usize,
        single: bool,
    ) -> usize {
        if !env.gso || single || (self.ecn.enabled && self.ecn.cwr_pending) {
            return room;
        }
        let header = 20 + options_len;
        let parts = buf_len.saturating_sub(header) / room.max(1);
        room * parts.max(1)
    }

    /// Nagle for the last part (RFC 1122 4.2.3.4 applied as Linux's
    /// `tcp_mss_split_point` does): a super-segment of `len > room` bytes
    /// ends with a short part only when a single segment of that size
    /// could go now, i.e. it ends the data (or carries the FIN) and Nagle
    /// is off or nothing was in flight; otherwise the short part is left
    /// for later.
    pub(super) fn gso_trim(
        &self,
        len: usize,
        room: usize,
        unsent: usize,
        in_flight: usize,
        fin_unsent: bool,
    ) -> usize {
        let tail = len % room.max(1);
        if len <= room || tail == 0 {
            return len;
        }
        let tail_may_go = len == unsent && (self.opts.nodelay || in_flight == 0 || fin_unsent);
        if tail_may_go {
            len
        } else {
            len - tail
        }
    }

    /// Records that `len` payload bytes just went in parts of `room`: tells
    /// the stack the part size and counts the parts as segments.
    pub(super) fn gso_sent(&mut self, env: &mut Env, len: usize, room: usize) {
        if len > room {
            env.gso_size = u16::try_from(room).ok();
            self.stats.segments_sent += (len.div_ceil(room) - 1) as u64;
        }
    }
}
