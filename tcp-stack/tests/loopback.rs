//! Datagrams a stack sends to itself (one of its addresses, or
//! 127.0.0.0/8) are looped back inside it and never reach the device.

use std::net::{Ipv4Addr, SocketAddrV4};
use tcp_stack::{Config, ConnId, Duration, Error, Instant, ListenerId, Stack, State};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Runs `stack` alone (no device) for `ms` milliseconds of 1 ms steps,
/// with `app` called each step; panics if a datagram is for the device.
fn run(stack: &mut Stack, now: &mut Instant, ms: u64, mut app: impl FnMut(&mut Stack)) {
    let mut buf = vec![0u8; 1500];
    for _ in 0..ms {
        app(stack);
        loop {
            if let Some(n) = stack.poll_transmit(*now, &mut buf) {
                panic!("{n} bytes for the device");
            }
            match stack.poll_timeout() {
                Some(t) if t <= *now => stack.handle_timeout(*now),
                _ => break,
            }
        }
        *now += Duration::from_millis(1);
        stack.handle_timeout(*now);
    }
}

/// Connects to `to` on the same stack; returns both ends once established.
fn self_connect(
    stack: &mut Stack,
    now: &mut Instant,
    l: ListenerId,
    to: SocketAddrV4,
) -> (ConnId, ConnId) {
    let c = stack.connect(*now, None, to).unwrap();
    run(stack, now, 1, |_| {});
    assert_eq!(stack.state(c), State::Established);
    let s = stack.accept(l).expect("the listener got the connection");
    (c, s)
}

/// RFC 1122 3.2.1.3 and Linux: datagrams for one of the host's own
/// addresses are delivered inside the host (loopback), never sent on a
/// link.
#[test]
fn connect_to_own_address_loops_back() {
    let mut stack = Stack::new(Config::with_addr(A));
    let mut now = Instant::from_micros(0);
    let to = SocketAddrV4::new(A, 80);
    let l = stack.listen(to, 4).unwrap();
    let (c, s) = self_connect(&mut stack, &mut now, l, to);
    assert_eq!(stack.local_addr(c).map(|a| a.ip()), Some(A.into()));
    // A bulk transfer: the loopback queue's bound pauses output, it never
    // drops, so nothing is retransmitted.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    let mut buf = vec![0u8; 1 << 16];
    run(&mut stack, &mut now, 2000, |st| {
        if sent < data.len() {
            sent += st.send(c, &data[sent..]).unwrap_or(0);
        }
        while let Ok(n @ 1..) = st.recv(s, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    });
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    let stats = stack.stats().clone();
    assert_eq!(stats.retransmits, 0, "{stats:?}");
    assert!(stats.loopback > 0);
    assert_eq!(stats.packets_out, stats.packets_in);
}

/// RFC 1122 3.2.1.3 (g): 127.0.0.0/8 is internal host loopback and MUST
/// NOT appear outside a host. The stack answers for it by loopback only.
#[test]
fn loopback_addresses_stay_inside_the_stack() {
    let mut stack = Stack::new(Config::with_addr(A));
    let mut now = Instant::from_micros(0);
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80);
    let l = stack.listen(to, 4).unwrap();
    let (c, _) = self_connect(&mut stack, &mut now, l, to);
    // As Linux routes 127.0.0.0/8: from 127.0.0.1.
    assert_eq!(
        stack.local_addr(c),
        Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, stack.local_addr(c).unwrap().port()).into())
    );
    // A closed port is refused, over loopback too.
    let refused = stack
        .connect(
            now,
            None,
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 81),
        )
        .unwrap();
    run(&mut stack, &mut now, 1, |_| {});
    assert_eq!(stack.error(refused), Some(Error::ConnectionRefused));
    // A loopback source cannot reach another host (Linux: EINVAL).
    let from = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let err = stack
        .connect(now, Some(from.into()), SocketAddrV4::new(B, 80))
        .unwrap_err();
    assert_eq!(err, Error::InvalidInput);
}

/// RFC 1122 3.2.1.3 (g): a datagram from the device to or from
/// 127.0.0.0/8 is dropped.
#[test]
fn loopback_addresses_from_the_device_are_dropped() {
    let mut a = Stack::new(Config::with_addr(A));
    let mut b = Stack::new(Config::with_addr(B));
    let now = Instant::from_micros(0);
    let mut buf = vec![0u8; 1500];
    // A SYN from B to A, then rewritten to 127.0.0.1, then from 127.0.0.1.
    b.connect(now, None, SocketAddrV4::new(A, 80)).unwrap();
    let n = b.poll_transmit(now, &mut buf).unwrap();
    let syn = buf[..n].to_vec();
    let with = |src: Ipv4Addr, dst: Ipv4Addr| {
        let mut p = tcp_stack::wire::Ipv4Packet::new_unchecked(syn.clone());
        p.set_src_addr(src);
        p.set_dst_addr(dst);
        p.fill_checksum();
        p.into_inner()
    };
    a.handle_packet(now, &with(B, Ipv4Addr::LOCALHOST));
    assert_eq!(a.stats().drop_not_ours, 1);
    a.handle_packet(now, &with(Ipv4Addr::LOCALHOST, A));
    assert_eq!(a.stats().drop_malformed, 1);
    assert_eq!(a.poll_transmit(now, &mut buf), None);
    // The original is answered (RST: no listener), so the checks above
    // were not about something else.
    a.handle_packet(now, &syn);
    assert!(a.poll_transmit(now, &mut buf).is_some());
}
