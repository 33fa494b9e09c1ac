//! The receiver's estimate of the peer's segment size, for the rule "ACK
//! at least every second full-sized segment" (RFC 1122 4.2.3.2, RFC 9293
//! 3.8.6.3). What counts as full-sized is learnt from what arrives, as
//! Linux's `tcp_measure_rcv_mss` does: the peer's segments may be smaller
//! than either side's MSS (options, a smaller path MTU on its side), and a
//! default that only grows would never count them.

/// RFC 9293 3.7.1: the default send MSS (536) bounds the initial guess.
const DEFAULT_MSS: usize = 536;
/// Smallest segment size ever taken as full-sized (Linux `TCP_MIN_MSS`).
const MIN_MSS: usize = 88;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RcvMss {
    /// Current estimate of a full-sized segment's payload.
    mss: usize,
    /// Payload of the previous segment considered for shrinking the estimate.
    last_seg: usize,
}

impl Default for RcvMss {
    fn default() -> Self {
        RcvMss {
            mss: DEFAULT_MSS,
            last_seg: 0,
        }
    }
}

impl RcvMss {
    /// The initial guess once the handshake fixed the sizes: no more than
    /// either MSS, half the receive buffer or the 536-byte default, and no
    /// less than 88 bytes (Linux `tcp_initialize_rcv_mss`).
    pub fn init(send_mss: usize, our_mss: usize, recv_buffer: usize) -> RcvMss {
        let hint = send_mss
            .min(our_mss)
            .min(recv_buffer / 2)
            .clamp(MIN_MSS, DEFAULT_MSS);
        RcvMss {
            mss: hint,
            last_seg: 0,
        }
    }

    pub fn get(&self) -> usize {
        self.mss
    }

    /// An in-order segment carrying `len` payload bytes arrived (for a
    /// super-segment, the size of its parts). `remnant`: it had PSH or FIN,
    /// so it may be the short tail of a write rather than a full segment.
    /// A larger segment raises the estimate at once (up to `our_mss`); two
    /// equal smaller ones in a row lower it, unless they are small and end a
    /// write.
    pub fn measure(&mut self, len: usize, remnant: bool, our_mss: usize) {
        let last = std::mem::take(&mut self.last_seg);
        if len >= self.mss {
            self.mss = len.min(our_mss).max(MIN_MSS);
            return;
        }
        if len >= DEFAULT_MSS || (len >= MIN_MSS && !remnant) {
            self.last_seg = len;
            if len == last {
                self.mss = len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_guess_is_bounded_by_both_mss_and_the_default() {
        assert_eq!(RcvMss::init(1448, 1460, 1 << 20).get(), 536);
        assert_eq!(RcvMss::init(460, 460, 1 << 20).get(), 460);
        assert_eq!(RcvMss::init(1460, 1460, 100).get(), 88);
    }

    #[test]
    fn grows_at_once_and_shrinks_on_two_equal_segments() {
        let mut m = RcvMss::init(1448, 1460, 1 << 20);
        m.measure(1448, false, 1460);
        assert_eq!(m.get(), 1448);
        m.measure(400, false, 1460);
        assert_eq!(m.get(), 1448, "one smaller segment is not enough");
        m.measure(400, false, 1460);
        assert_eq!(m.get(), 400);
        // Small writes with PSH never lower it.
        let mut m = RcvMss::init(1448, 1460, 1 << 20);
        m.measure(100, true, 1460);
        m.measure(100, true, 1460);
        assert_eq!(m.get(), 536);
        // Super-segments are capped at our MSS.
        m.measure(64_000, false, 1460);
        assert_eq!(m.get(), 1460);
    }
}
