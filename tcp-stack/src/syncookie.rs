//! SYN cookies (RFC 4987 3.6): when a listener's SYN queue is full, the
//! SYN-ACK's sequence number carries what the connection needs, and no
//! state is kept until the peer's ACK comes back with it.
//!
//! The cookie (our ISS) is
//!
//! ```text
//!   bits 31..4  the top 28 bits of SipHash-2-4(key; 4-tuple, the client's
//!               ISN, a coarse time counter, the MSS index)
//!   bit  3      the time counter's lowest bit
//!   bits 2..0   the MSS, as an index into `MSS_TABLE`
//! ```
//!
//! The counter advances every 64 s; a returning ACK validates with the
//! current counter or the previous one only, so a cookie lives 64 to 128 s
//! (Linux: two one-minute counters). Every field is under the hash: an ACK
//! whose acknowledgment or sequence number is off by one, or whose counter
//! is older, fails (2^-28 chance of a forgery per attempt).
//!
//! With timestamps (RFC 7323), the SYN-ACK's TSval carries the peer's
//! window scale, SACK-permitted and ECN in its low 6 bits, as Linux does
//! (`cookie_init_timestamp`), and the ACK's TSecr echoes them back, so a
//! cookie connection loses none of them. Without timestamps it falls back
//! to no window scaling and no SACK.

use crate::isn::{siphash24, tuple_bytes};
use crate::seq::SeqNum;
use crate::time::Instant;
use std::net::SocketAddr;

/// The MSS values a cookie can carry: the largest not above the peer's MSS
/// is used (88 is the smallest MSS worth sending, RFC 9293 3.7.1 / Linux
/// `TCP_MIN_MSS`; then the common path values).
pub(crate) const MSS_TABLE: [u16; 8] = [88, 536, 1220, 1300, 1380, 1440, 1460, 8960];

/// Seconds per step of the cookie's time counter.
const PERIOD_SECS: u64 = 64;

/// TSval bits carrying the options (Linux `TSBITS`).
const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
/// Window scale field: 4 bits, 0xf for "no window scaling".
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;

/// Options a cookie connection keeps through its TSval (with timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CookieOptions {
    /// The peer's window shift, if it offered window scaling.
    pub wscale: Option<u8>,
    pub sack: bool,
    pub ecn: bool,
}

/// The secret and the arithmetic of SYN cookies.
pub(crate) struct Cookies {
    key: [u8; 16],
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies(<secret>)")
    }
}

impl Cookies {
    pub fn new(key: [u8; 16]) -> Cookies {
        Cookies { key }
    }

    fn counter(now: Instant) -> u32 {
        (now.total_micros() / 1_000_000 / PERIOD_SECS) as u32
    }

    fn tag(&self, local: SocketAddr, remote: SocketAddr, cisn: u32, counter: u32, idx: u32) -> u32 {
        let tuple = tuple_bytes(local, remote);
        let t = tuple.as_slice();
        let mut msg = [0u8; 48];
        msg[..t.len()].copy_from_slice(t);
        msg[t.len()..t.len() + 4].copy_from_slice(&cisn.to_be_bytes());
        msg[t.len() + 4..t.len() + 8].copy_from_slice(&counter.to_be_bytes());
        msg[t.len() + 8..t.len() + 12].copy_from_slice(&idx.to_be_bytes());
        (siphash24(self.key, &msg[..t.len() + 12]) as u32) & !0xf
    }

    /// The index of the MSS a cookie carries for a peer offering `mss`.
    pub fn mss_index(mss: u16) -> u32 {
        MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
    }

    /// The cookie ISS for a SYN with sequence number `cisn` offering `mss`.
    pub fn iss(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        cisn: SeqNum,
        mss: u16,
    ) -> SeqNum {
        let counter = Self::counter(now);
        let idx = Self::mss_index(mss);
        SeqNum(self.tag(local, remote, cisn.0, counter, idx) | (counter & 1) << 3 | idx)
    }

    /// Checks the cookie in an ACK (`seg_ack - 1`) for the client ISN
    /// `seg_seq - 1`; the MSS it carries if it is valid now.
    pub fn check(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg_seq: SeqNum,
        seg_ack: SeqNum,
    ) -> Option<u16> {
        let cookie = (seg_ack - 1).0;
        let cisn = (seg_seq - 1).0;
        let now_counter = Self::counter(now);
        // The counter's low bit picks the current or the previous counter;
        // anything older fails the tag.
        let counter = if now_counter & 1 == (cookie >> 3) & 1 {
            now_counter
        } else {
            now_counter.wrapping_sub(1)
        };
        let idx = cookie & 7;
        (self.tag(local, remote, cisn, counter, idx) == cookie & !0xf)
            .then_some(MSS_TABLE[idx as usize])
    }

    /// A timestamp offset for the tuple that needs no state (RFC 7323 5.4
    /// wants it per connection; a cookie connection must find it again).
    pub fn ts_offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        let tuple = tuple_bytes(local, remote);
        let t = tuple.as_slice();
        let mut msg = [0u8; 37];
        msg[..t.len()].copy_from_slice(t);
        msg[t.len()] = 0x7e;
        siphash24(self.key, &msg[..t.len() + 1]) as u32
    }

    /// The TSval of a cookie SYN-ACK: our clock `ts_now` with its low 6 bits
    /// replaced by `opts`, never ahead of the clock (Linux
    /// `cookie_init_timestamp`).
    pub fn tsval(ts_now: u32, opts: CookieOptions) -> u32 {
        let mut bits = opts.wscale.map_or(TS_WSCALE_NONE, |w| u32::from(w.min(14)));
        if opts.sack {
            bits |= TS_SACK;
        }
        if opts.ecn {
            bits |= TS_ECN;
        }
        let ts = (ts_now & !TS_MASK) | bits;
        if (ts.wrapping_sub(ts_now) as i32) > 0 {
            ts.wrapping_sub(1 << TS_BITS)
        } else {
            ts
        }
    }

    /// The options an ACK's TSecr carries back.
    pub fn decode_tsecr(tsecr: u32) -> CookieOptions {
        let w = tsecr & 0xf;
        CookieOptions {
            wscale: (w != TS_WSCALE_NONE).then_some(w as u8),
            sack: tsecr & TS_SACK != 0,
            ecn: tsecr & TS_ECN != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const L: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);
    const R: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 40000);

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    /// RFC 4987 3.6: the MSS decodes exactly (as the table value not above
    /// the peer's), and the cookie validates for 64 to 128 s.
    #[test]
    fn rfc4987_3_6_cookie_round_trip_and_lifetime() {
        let c = Cookies::new([7; 16]);
        let cisn = SeqNum(123_456);
        for (offered, want) in [
            (1460, 1460),
            (1448, 1440),
            (536, 536),
            (500, 88),
            (9000, 8960),
        ] {
            let iss = c.iss(at(1000), L, R, cisn, offered);
            assert_eq!(c.check(at(1000), L, R, cisn + 1, iss + 1), Some(want));
            // The next counter still accepts it; the one after does not.
            assert_eq!(c.check(at(1000 + 64), L, R, cisn + 1, iss + 1), Some(want));
            assert_eq!(c.check(at(1000 + 200), L, R, cisn + 1, iss + 1), None);
        }
    }

    /// RFC 4987 3.6: a wrong hash, an old counter or any sequence number
    /// off by one fails.
    #[test]
    fn rfc4987_3_6_forged_or_stale_cookies_fail() {
        let c = Cookies::new([9; 16]);
        let cisn = SeqNum(u32::MAX - 1);
        let iss = c.iss(at(5000), L, R, cisn, 1460);
        let now = at(5000);
        assert!(c.check(now, L, R, cisn + 1, iss + 1).is_some());
        for d in [1u32, 2, 8, 16, 1 << 20] {
            assert_eq!(
                c.check(now, L, R, cisn + 1, iss + 1 + d as usize),
                None,
                "ack +{d}"
            );
            assert_eq!(
                c.check(now, L, R, cisn + 1, iss + 1 - d as usize),
                None,
                "ack -{d}"
            );
            assert_eq!(
                c.check(now, L, R, cisn + 1 + d as usize, iss + 1),
                None,
                "seq +{d}"
            );
        }
        let other = SocketAddr::new(R.ip(), R.port() + 1);
        assert_eq!(
            c.check(now, L, other, cisn + 1, iss + 1),
            None,
            "other tuple"
        );
        assert_eq!(
            Cookies::new([8; 16]).check(now, L, R, cisn + 1, iss + 1),
            None,
            "other key"
        );
        assert_eq!(
            c.check(at(5000 + 3 * 64), L, R, cisn + 1, iss + 1),
            None,
            "old counter"
        );
        // Valid across a counter step only backwards in time's direction.
        assert_eq!(
            c.check(at(5000 - 64), L, R, cisn + 1, iss + 1),
            None,
            "future counter"
        );
    }

    /// RFC 7323 with RFC 4987: window scale, SACK and ECN ride in the low
    /// bits of TSval and decode exactly; the TSval never runs ahead.
    #[test]
    fn rfc4987_cookie_timestamp_options_decode_exactly() {
        for wscale in [None, Some(0), Some(7), Some(14)] {
            for sack in [false, true] {
                for ecn in [false, true] {
                    let opts = CookieOptions { wscale, sack, ecn };
                    for now in [0u32, 5, 63, 64, 1_000_000, u32::MAX] {
                        let ts = Cookies::tsval(now, opts);
                        assert!((ts.wrapping_sub(now) as i32) <= 0);
                        assert!(now.wrapping_sub(ts) < 64);
                        assert_eq!(Cookies::decode_tsecr(ts), opts);
                    }
                }
            }
        }
    }
}
