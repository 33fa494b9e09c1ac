//! getsockopt and setsockopt, and TCP_INFO in Linux's `struct tcp_info`
//! layout. Values and errors follow Linux's sock_setsockopt /
//! sk_getsockopt and do_tcp_setsockopt / do_tcp_getsockopt.

use crate::errno::{Errno, SysResult};
use crate::shim::{Shared, Wait};
use crate::socket::{Kind, Opts, Socket};
use std::os::fd::RawFd;
use tcp_stack::{CongestionControl, Stack, State, TcpInfo};

/// Linux TCP_MSS_DEFAULT: what TCP_MAXSEG reads before a connection
/// exists and without a user setting.
const TCP_MSS_DEFAULT: i32 = 536;
/// Linux TCP_MIN_MSS and MAX_TCP_WINDOW: the range TCP_MAXSEG accepts.
const TCP_MIN_MSS: i32 = 88;
const MAX_TCP_WINDOW: i32 = 32767;
/// Linux MAX_TCP_KEEPIDLE / MAX_TCP_KEEPINTVL (seconds) and MAX_TCP_KEEPCNT.
const MAX_TCP_KEEP_SECS: i32 = 32767;
const MAX_TCP_KEEPCNT: i32 = 127;
/// Linux SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF on x86-64 (2 * the skb
/// truesize of a minimal packet): the smallest buffers getsockopt reports.
const SOCK_MIN_SNDBUF: usize = 4608;
const SOCK_MIN_RCVBUF: usize = 2304;
/// The smallest buffer handed to the stack for a SO_SNDBUF/SO_RCVBUF value.
const MIN_STACK_BUFFER: usize = 1024;
/// Linux TCP_CA_NAME_MAX: TCP_CONGESTION's buffer size.
const TCP_CA_NAME_MAX: usize = 16;
/// Linux TCP_INFINITE_SSTHRESH.
const TCP_INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

impl Shared {
    /// getsockopt(): writes at most `out.len()` bytes, returns how many.
    pub fn getsockopt(&self, fd: RawFd, level: i32, name: i32, out: &mut [u8]) -> SysResult<usize> {
        self.run(Wait::Never, |inner, _| {
            let stack = &inner.stack;
            let s = inner.sockets.get_mut(&fd).ok_or(Errno::EBADF)?;
            let value = get(stack, s, level, name)?;
            let n = value.len().min(out.len());
            out[..n].copy_from_slice(&value[..n]);
            Ok(n)
        })
    }

    /// setsockopt(). Options set before the connection exists are kept and
    /// applied when it does.
    pub fn setsockopt(&self, fd: RawFd, level: i32, name: i32, val: &[u8]) -> SysResult<()> {
        self.run(Wait::Never, |inner, _| {
            let s = inner.sockets.get_mut(&fd).ok_or(Errno::EBADF)?;
            if level == libc::IPPROTO_IPV6 {
                return set_ipv6(s, name, val);
            }
            set(&mut s.opts, level, name, val)?;
            match &s.kind {
                Kind::Conn(c) => {
                    let c = *c;
                    let opts = s.opts.clone();
                    opts.apply(&mut inner.stack, c);
                }
                Kind::Listener { id, .. } => {
                    let id = *id;
                    let (snd, rcv) = s.opts.buffers(&inner.stack);
                    let _ = inner.stack.set_listener_buffers(id, snd, rcv);
                }
                Kind::Fresh => {}
            }
            Ok(())
        })
    }
}

fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn secs(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn get(stack: &Stack, s: &mut Socket, level: i32, name: i32) -> SysResult<Vec<u8>> {
    let cfg = stack.config();
    let info = s.conn().and_then(|c| stack.info(c));
    let o = &s.opts;
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => int(o.reuseaddr.into()),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => int(o.keepalive.unwrap_or(cfg.keepalive).into()),
        (libc::SOL_SOCKET, libc::SO_TYPE) => int(libc::SOCK_STREAM),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => {
            int(if s.v6 { libc::AF_INET6 } else { libc::AF_INET })
        }
        // do_ipv6_getsockopt; an AF_INET socket has no IPv6 level
        // (ip_getsockopt: ENOPROTOOPT, the catch-all below).
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.v6 => int(o.v6_only.into()),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(libc::IPPROTO_TCP),
        (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
            int(matches!(s.kind, Kind::Listener { .. }).into())
        }
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let (onoff, secs) = o.linger.unwrap_or((0, 0));
            [onoff.to_ne_bytes(), secs.to_ne_bytes()].concat()
        }
        // Linux doubles the value set (room for its bookkeeping) and
        // reports that; unset, the buffer in use.
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(clamp(match o.sndbuf {
            Some(v) => v.saturating_mul(2).max(SOCK_MIN_SNDBUF),
            None => info.as_ref().map_or(cfg.send_buffer, |i| i.send_buffer),
        })),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(clamp(match o.rcvbuf {
            Some(v) => v.saturating_mul(2).max(SOCK_MIN_RCVBUF),
            None => info.as_ref().map_or(cfg.recv_buffer, |i| i.recv_buffer),
        })),
        // sock_error(): the pending error, cleared by reading it.
        (libc::SOL_SOCKET, libc::SO_ERROR) => int(s.take_error(stack).map_or(0, |e| e.0)),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => int(o.nodelay.unwrap_or(cfg.nodelay).into()),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => int(match &info {
            // do_tcp_getsockopt: mss_cache once connected, the user's
            // value (or the default) while in CLOSE or LISTEN.
            Some(i) if i.state != State::Closed => clamp(i.mss),
            _ => o.maxseg.filter(|&m| m != 0).unwrap_or(TCP_MSS_DEFAULT),
        }),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => {
            int(o.keepidle.map_or(secs(cfg.keepalive_idle), |v| v as i32))
        }
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => int(o
            .keepintvl
            .map_or(secs(cfg.keepalive_interval), |v| v as i32)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
            int(o.keepcnt.map_or(cfg.keepalive_probes as i32, |v| v as i32))
        }
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
            int(o.user_timeout_ms.map_or(0, |v| v as i32))
        }
        // do_tcp_getsockopt: linger2, or tcp_fin_timeout when 0; -1 stays.
        (libc::IPPROTO_TCP, libc::TCP_LINGER2) => int(match o.linger2 {
            Some(v) if v != 0 => v,
            _ => secs(cfg.fin_wait2_timeout),
        }),
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let kind = o.cc.unwrap_or(cfg.congestion_control);
            let name: &[u8] = match kind {
                CongestionControl::NewReno => b"reno",
                CongestionControl::Cubic => b"cubic",
            };
            let mut v = vec![0; TCP_CA_NAME_MAX];
            v[..name.len()].copy_from_slice(name);
            v
        }
        (libc::IPPROTO_TCP, libc::TCP_INFO) => {
            let state = match s.kind {
                Kind::Fresh => State::Closed,
                Kind::Listener { .. } => State::Listen,
                Kind::Conn(_) => info.as_ref().map_or(State::Closed, |i| i.state),
            };
            tcp_info(stack, state, info.as_ref()).to_vec()
        }
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

fn set(o: &mut Opts, level: i32, name: i32, val: &[u8]) -> SysResult<()> {
    if level == libc::SOL_SOCKET && name == libc::SO_LINGER {
        // sock_setsockopt: optlen < sizeof(struct linger) is EINVAL.
        let onoff = read_int(val)?;
        let secs = read_int(val.get(4..).unwrap_or(&[]))?;
        o.linger = Some((onoff, secs));
        return Ok(());
    }
    if level == libc::IPPROTO_TCP && name == libc::TCP_CONGESTION {
        let name = val.split(|&b| b == 0).next().unwrap_or(&[]);
        o.cc = Some(match name {
            b"reno" => CongestionControl::NewReno,
            b"cubic" => CongestionControl::Cubic,
            // tcp_set_congestion_control: an unknown name is ENOENT.
            _ => return Err(Errno::ENOENT),
        });
        return Ok(());
    }
    let known = matches!(
        (level, name),
        (
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR | libc::SO_KEEPALIVE | libc::SO_SNDBUF | libc::SO_RCVBUF
        ) | (
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY
                | libc::TCP_MAXSEG
                | libc::TCP_KEEPIDLE
                | libc::TCP_KEEPINTVL
                | libc::TCP_KEEPCNT
                | libc::TCP_USER_TIMEOUT
                | libc::TCP_LINGER2
        )
    );
    if !known {
        // Including SO_ERROR (read-only), TCP_INFO and TCP_CORK (corking
        // is not implemented by the core).
        return Err(Errno::ENOPROTOOPT);
    }
    // Integer options: optlen < sizeof(int) is EINVAL.
    let v = read_int(val)?;
    let buffer = |v: i32| usize::try_from(v).unwrap_or(0).max(MIN_STACK_BUFFER);
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => o.reuseaddr = v != 0,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = Some(v != 0),
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => o.sndbuf = Some(buffer(v)),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => o.rcvbuf = Some(buffer(v)),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => o.nodelay = Some(v != 0),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
            if v != 0 && !(TCP_MIN_MSS..=MAX_TCP_WINDOW).contains(&v) {
                return Err(Errno::EINVAL);
            }
            o.maxseg = Some(v);
        }
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL) => {
            if !(1..=MAX_TCP_KEEP_SECS).contains(&v) {
                return Err(Errno::EINVAL);
            }
            let v = Some(v as u32);
            if name == libc::TCP_KEEPIDLE {
                o.keepidle = v;
            } else {
                o.keepintvl = v;
            }
        }
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
            if !(1..=MAX_TCP_KEEPCNT).contains(&v) {
                return Err(Errno::EINVAL);
            }
            o.keepcnt = Some(v as u32);
        }
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
            o.user_timeout_ms = Some(u32::try_from(v).map_err(|_| Errno::EINVAL)?);
        }
        // do_tcp_setsockopt: a negative value is kept as -1.
        (libc::IPPROTO_TCP, libc::TCP_LINGER2) => o.linger2 = Some(v.max(-1)),
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(())
}

/// setsockopt(IPPROTO_IPV6, ...): IPV6_V6ONLY on an AF_INET6 socket, as
/// Linux's do_ipv6_setsockopt: EINVAL when the value is shorter than an
/// int or the socket already has a port (bound, listening or connected).
/// An AF_INET socket has no IPv6 level (ip_setsockopt: ENOPROTOOPT).
fn set_ipv6(s: &mut Socket, name: i32, val: &[u8]) -> SysResult<()> {
    if !s.v6 || name != libc::IPV6_V6ONLY {
        return Err(Errno::ENOPROTOOPT);
    }
    let v = read_int(val)?;
    if s.bound.is_some() || !matches!(s.kind, Kind::Fresh) {
        return Err(Errno::EINVAL);
    }
    s.opts.v6_only = v != 0;
    Ok(())
}

fn read_int(val: &[u8]) -> SysResult<i32> {
    let b: [u8; 4] = val
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Errno::EINVAL)?;
    Ok(i32::from_ne_bytes(b))
}

/// Byte offsets of Linux's `struct tcp_info` (include/uapi/linux/tcp.h).
mod tcpi {
    pub const STATE: usize = 0;
    pub const OPTIONS: usize = 5;
    pub const RTO: usize = 8;
    pub const ATO: usize = 12;
    pub const SND_MSS: usize = 16;
    pub const RCV_MSS: usize = 20;
    pub const UNACKED: usize = 24;
    pub const PMTU: usize = 60;
    pub const RTT: usize = 68;
    pub const RTTVAR: usize = 72;
    pub const SND_SSTHRESH: usize = 76;
    pub const SND_CWND: usize = 80;
    pub const ADVMSS: usize = 84;
    pub const TOTAL_RETRANS: usize = 100;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const SEGS_OUT: usize = 136;
    pub const SEGS_IN: usize = 140;
    pub const BYTES_SENT: usize = 200;
    pub const SND_WND: usize = 228;
    pub const RCV_WND: usize = 232;
    /// Size of the struct as of Linux 6.x with AccECN counters.
    pub const LEN: usize = 280;
}

/// Linux TCPI_OPT_* bits of `tcpi_options`.
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;

/// Linux's TCP state numbers (include/net/tcp_states.h).
fn linux_state(s: State) -> u8 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

/// A `struct tcp_info` (native byte order). Filled: state, options, rto,
/// ato, snd_mss, rcv_mss, unacked, pmtu, rtt, rttvar, snd_ssthresh,
/// snd_cwnd, advmss, total_retrans, bytes_acked, bytes_received,
/// segs_out, segs_in, bytes_sent, snd_wnd, rcv_wnd; the rest is zero.
pub fn tcp_info(stack: &Stack, state: State, info: Option<&TcpInfo>) -> [u8; tcpi::LEN] {
    let mut b = [0u8; tcpi::LEN];
    let mut put32 = |off: usize, v: u64| {
        let v = u32::try_from(v).unwrap_or(u32::MAX);
        b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    };
    let cfg = stack.config();
    let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let advmss = cfg.mtu.saturating_sub(40) as u64;
    put32(tcpi::PMTU, cfg.mtu as u64);
    put32(tcpi::ADVMSS, advmss);
    put32(tcpi::ATO, us(cfg.delayed_ack));
    if let Some(i) = info {
        let mss = i.mss.max(1);
        put32(tcpi::RTO, us(i.rto));
        put32(tcpi::SND_MSS, i.mss as u64);
        put32(tcpi::RCV_MSS, i.rcv_mss as u64);
        put32(tcpi::UNACKED, i.in_flight.div_ceil(mss) as u64);
        put32(tcpi::RTT, i.srtt.map_or(0, us));
        put32(tcpi::RTTVAR, us(i.rttvar));
        let ssthresh = i.ssthresh / mss;
        put32(
            tcpi::SND_SSTHRESH,
            u64::from(TCP_INFINITE_SSTHRESH).min(ssthresh as u64),
        );
        put32(tcpi::SND_CWND, (i.cwnd / mss) as u64);
        put32(tcpi::TOTAL_RETRANS, i.retransmits);
        put32(tcpi::SEGS_OUT, i.segments_sent);
        put32(tcpi::SEGS_IN, i.segments_received);
        put32(tcpi::SND_WND, i.send_window as u64);
        put32(tcpi::RCV_WND, i.recv_window as u64);
    } else {
        // Linux reports the initial RTO before a connection exists.
        put32(tcpi::RTO, us(cfg.initial_rto));
        put32(tcpi::SND_MSS, TCP_MSS_DEFAULT as u64);
        put32(tcpi::RCV_MSS, TCP_MSS_DEFAULT as u64);
    }
    let mut put64 = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    if let Some(i) = info {
        put64(tcpi::BYTES_ACKED, i.bytes_acked);
        put64(tcpi::BYTES_RECEIVED, i.bytes_received);
        put64(tcpi::BYTES_SENT, i.bytes_sent);
    }
    b[tcpi::STATE] = linux_state(state);
    if let Some(i) = info {
        b[tcpi::OPTIONS] = (if i.timestamps { TCPI_OPT_TIMESTAMPS } else { 0 })
            | (if i.sack { TCPI_OPT_SACK } else { 0 })
            | (if i.window_scaling { TCPI_OPT_WSCALE } else { 0 });
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn tcp_info_offsets_match_linux() {
        type T = libc::tcp_info;
        assert_eq!(tcpi::STATE, offset_of!(T, tcpi_state));
        assert_eq!(tcpi::OPTIONS, offset_of!(T, tcpi_options));
        assert_eq!(tcpi::RTO, offset_of!(T, tcpi_rto));
        assert_eq!(tcpi::ATO, offset_of!(T, tcpi_ato));
        assert_eq!(tcpi::SND_MSS, offset_of!(T, tcpi_snd_mss));
        assert_eq!(tcpi::RCV_MSS, offset_of!(T, tcpi_rcv_mss));
        assert_eq!(tcpi::UNACKED, offset_of!(T, tcpi_unacked));
        assert_eq!(tcpi::PMTU, offset_of!(T, tcpi_pmtu));
        assert_eq!(tcpi::RTT, offset_of!(T, tcpi_rtt));
        assert_eq!(tcpi::RTTVAR, offset_of!(T, tcpi_rttvar));
        assert_eq!(tcpi::SND_SSTHRESH, offset_of!(T, tcpi_snd_ssthresh));
        assert_eq!(tcpi::SND_CWND, offset_of!(T, tcpi_snd_cwnd));
        assert_eq!(tcpi::ADVMSS, offset_of!(T, tcpi_advmss));
        assert_eq!(tcpi::TOTAL_RETRANS, offset_of!(T, tcpi_total_retrans));
        assert_eq!(tcpi::BYTES_ACKED, offset_of!(T, tcpi_bytes_acked));
        assert_eq!(tcpi::BYTES_RECEIVED, offset_of!(T, tcpi_bytes_received));
        assert_eq!(tcpi::SEGS_OUT, offset_of!(T, tcpi_segs_out));
        assert_eq!(tcpi::SEGS_IN, offset_of!(T, tcpi_segs_in));
        assert_eq!(tcpi::BYTES_SENT, offset_of!(T, tcpi_bytes_sent));
        assert_eq!(tcpi::SND_WND, offset_of!(T, tcpi_snd_wnd));
        assert_eq!(tcpi::RCV_WND, offset_of!(T, tcpi_rcv_wnd));
        assert_eq!(tcpi::LEN, size_of::<T>());
    }

    #[test]
    fn linger_and_int_options_need_full_length() {
        let mut o = Opts::default();
        let e = set(&mut o, libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0, 0, 0]);
        assert_eq!(e, Err(Errno::EINVAL));
        let lin = [1i32.to_ne_bytes(), 0i32.to_ne_bytes()].concat();
        set(&mut o, libc::SOL_SOCKET, libc::SO_LINGER, &lin).unwrap();
        assert_eq!(o.linger, Some((1, 0)));
        let e = set(&mut o, libc::IPPROTO_TCP, libc::TCP_NODELAY, &[1]);
        assert_eq!(e, Err(Errno::EINVAL));
        let e = set(
            &mut o,
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &50i32.to_ne_bytes(),
        );
        assert_eq!(e, Err(Errno::EINVAL));
        let e = set(
            &mut o,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &1i32.to_ne_bytes(),
        );
        assert_eq!(e, Err(Errno::ENOPROTOOPT));
    }
}
