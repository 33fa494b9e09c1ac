//! Scenario tests in the deterministic simulator: one behaviour each.
#![cfg(feature = "sim")]

use std::net::SocketAddrV4;
use tcp_stack::sim::app::{CloseOrder, Transfer, TransferSpec};
use tcp_stack::sim::{flags, LinkConfig, NodeId, SegmentBuilder, Sim, TcpSegment, TraceEvent};
use tcp_stack::{ConnId, Duration, Error, Event, Instant, SockOpt, State};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Listens on `server:port`, connects from `client`, waits for both ends.
#[track_caller]
fn establish(sim: &mut Sim, client: NodeId, server: NodeId, port: u16) -> (ConnId, ConnId) {
    let addr = SocketAddrV4::new(sim.addr(server), port);
    let listener = sim.stack_mut(server).listen(addr, 8).expect("listen");
    let now = sim.now();
    let cc = sim
        .stack_mut(client)
        .connect(now, None, addr)
        .expect("connect");
    let mut sc = None;
    let ok = sim.run_until(now + secs(30), |sim| {
        if sc.is_none() {
            sc = sim.stack_mut(server).accept(listener);
        }
        sc.is_some() && sim.stack(client).state(cc) == State::Established
    });
    assert!(ok, "handshake did not complete (seed {:#x})", sim.seed());
    (cc, sc.unwrap())
}

/// Sends `data` from `(from, fc)` and reads it at `(to, tc)`; returns what arrived.
fn exchange(
    sim: &mut Sim,
    (from, fc): (NodeId, ConnId),
    (to, tc): (NodeId, ConnId),
    data: &[u8],
) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let deadline = sim.now() + secs(60);
    sim.run_until(deadline, |sim| {
        if sent < data.len() {
            if let Ok(n) = sim.stack_mut(from).send(fc, &data[sent..]) {
                sent += n;
            }
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = sim.stack_mut(to).recv(tc, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    });
    got
}

/// Segments `node` emitted, with their times, from the capture.
fn sent_by(sim: &Sim, node: NodeId) -> Vec<(Instant, TcpSegment)> {
    sim.trace()
        .iter()
        .filter(|e| e.event == TraceEvent::Sent && e.packet.from == Some(node))
        .filter_map(|e| Some((e.at, e.packet.tcp()?)))
        .collect()
}

/// Records each distinct state a connection passes through.
fn track(states: &mut Vec<State>, s: State) {
    if states.last() != Some(&s) {
        states.push(s);
    }
}

#[test]
fn handshake() {
    let (mut sim, c, s) = Sim::pair(1, LinkConfig::ideal(ms(10)), |_| {});
    sim.set_capture(true);
    let (cc, sc) = establish(&mut sim, c, s, 80);

    let segs: Vec<_> = sim
        .trace()
        .iter()
        .filter(|e| e.event == TraceEvent::Sent)
        .map(|e| (e.packet.from, e.packet.tcp().unwrap()))
        .collect();
    assert!(segs.len() >= 3, "{segs:?}");
    let (syn, synack, ack) = (&segs[0].1, &segs[1].1, &segs[2].1);
    assert_eq!(segs[0].0, Some(c));
    assert!(syn.syn() && !syn.is_ack(), "{syn}");
    assert_eq!(segs[1].0, Some(s));
    assert!(synack.syn() && synack.is_ack(), "{synack}");
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert_eq!(segs[2].0, Some(c));
    assert!(!ack.syn() && ack.is_ack(), "{ack}");
    assert_eq!(ack.seq, syn.seq.wrapping_add(1));
    assert_eq!(ack.ack, synack.seq.wrapping_add(1));

    assert!(sim
        .events(c)
        .contains(&(Instant::from_millis(20), Event::Connected(cc))));
    assert!(sim
        .events(s)
        .iter()
        .any(|(_, e)| matches!(e, Event::Incoming(_))));
    assert_eq!(sim.stack(s).state(sc), State::Established);
    assert_eq!(sim.stack(c).peer_addr(cc), sim.stack(s).local_addr(sc));
    assert_eq!(sim.stack(s).peer_addr(sc), sim.stack(c).local_addr(cc));
    for (node, conn) in [(c, cc), (s, sc)] {
        let info = sim.stack(node).info(conn).unwrap();
        assert!(
            info.window_scaling && info.timestamps && info.sack,
            "{info:?}"
        );
        assert!((1400..=1460).contains(&info.mss), "{info:?}");
    }
    let got = exchange(&mut sim, (c, cc), (s, sc), b"hello");
    assert_eq!(got, b"hello");
}

#[test]
fn simultaneous_open() {
    let (mut sim, a, b) = Sim::pair(2, LinkConfig::ideal(ms(10)), |_| {});
    sim.set_capture(true);
    let a_addr = SocketAddrV4::new(sim.addr(a), 5000);
    let b_addr = SocketAddrV4::new(sim.addr(b), 6000);
    let now = sim.now();
    let ca = sim
        .stack_mut(a)
        .connect(now, Some(a_addr.into()), b_addr)
        .unwrap();
    let cb = sim
        .stack_mut(b)
        .connect(now, Some(b_addr.into()), a_addr)
        .unwrap();
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let ok = sim.run_until(now + secs(30), |sim| {
        track(&mut sa, sim.stack(a).state(ca));
        track(&mut sb, sim.stack(b).state(cb));
        sa.last() == Some(&State::Established) && sb.last() == Some(&State::Established)
    });
    assert!(ok, "a: {sa:?} b: {sb:?}");
    // RFC 9293 3.5 figure 8: SYN-SENT -> SYN-RECEIVED -> ESTABLISHED on both sides.
    for states in [&sa, &sb] {
        assert_eq!(
            states,
            &vec![State::SynSent, State::SynReceived, State::Established]
        );
    }
    for node in [a, b] {
        let segs = sent_by(&sim, node);
        assert!(segs[0].1.syn() && !segs[0].1.is_ack(), "{}", segs[0].1);
        assert!(segs.iter().any(|(_, s)| s.syn() && s.is_ack()));
        assert!(segs.iter().all(|(_, s)| !s.rst()));
    }
    assert_eq!(exchange(&mut sim, (a, ca), (b, cb), b"ping"), b"ping");
    assert_eq!(exchange(&mut sim, (b, cb), (a, ca), b"pong"), b"pong");
}

fn run_transfer(
    sim: &mut Sim,
    c: NodeId,
    s: NodeId,
    spec: TransferSpec,
    limit: Duration,
) -> Transfer {
    let mut t = Transfer::start(sim, c, s, spec);
    let deadline = sim.now() + limit;
    let done = sim.run_until(deadline, |sim| t.poll(sim));
    assert!(
        done,
        "transfer not finished by {deadline} (seed {:#x}):\n{}",
        sim.seed(),
        t.summary()
    );
    t
}

#[test]
fn half_close_client_first_then_server_sends() {
    let link = LinkConfig::ideal(ms(5)).loss(0.01);
    let (mut sim, c, s) = Sim::pair(3, link, |cfg| cfg.msl = secs(2));
    let spec = TransferSpec {
        client_bytes: 50_000,
        server_bytes: 300_000,
        close: CloseOrder::ClientFirst,
        server_sends_after_eof: true,
        ..TransferSpec::default()
    };
    let t = run_transfer(&mut sim, c, s, spec, secs(300));
    t.assert_success();
    // The client sat in FIN-WAIT-2 while the whole server stream arrived.
    assert!(t.client().saw(State::FinWait2), "{:?}", t.client().states);
    assert!(t.client().saw(State::TimeWait), "{:?}", t.client().states);
    assert!(t.server().saw(State::CloseWait), "{:?}", t.server().states);
    assert!(t.server().saw(State::LastAck), "{:?}", t.server().states);
}

#[test]
fn half_close_server_first_then_client_sends() {
    let link = LinkConfig::ideal(ms(5)).loss(0.01);
    let (mut sim, c, s) = Sim::pair(4, link, |cfg| cfg.msl = secs(2));
    let spec = TransferSpec {
        client_bytes: 300_000,
        server_bytes: 50_000,
        close: CloseOrder::ServerFirst,
        client_sends_after_eof: true,
        ..TransferSpec::default()
    };
    let t = run_transfer(&mut sim, c, s, spec, secs(300));
    t.assert_success();
    assert!(t.server().saw(State::FinWait2), "{:?}", t.server().states);
    assert!(t.server().saw(State::TimeWait), "{:?}", t.server().states);
    assert!(t.client().saw(State::CloseWait), "{:?}", t.client().states);
    assert!(t.client().saw(State::LastAck), "{:?}", t.client().states);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut sim, c, s) = Sim::pair(5, LinkConfig::ideal(ms(10)), |cfg| cfg.msl = secs(2));
    sim.set_capture(true);
    let (cc, sc) = establish(&mut sim, c, s, 80);
    assert_eq!(exchange(&mut sim, (c, cc), (s, sc), b"x"), b"x");
    sim.run_for(secs(1));
    let t0 = sim.now();
    sim.stack_mut(c).shutdown(cc).unwrap();
    sim.stack_mut(s).shutdown(sc).unwrap();
    let (mut st_c, mut st_s) = (Vec::new(), Vec::new());
    let ok = sim.run_until(t0 + secs(30), |sim| {
        track(&mut st_c, sim.stack(c).state(cc));
        track(&mut st_s, sim.stack(s).state(sc));
        st_c.last() == Some(&State::Closed) && st_s.last() == Some(&State::Closed)
    });
    assert!(ok, "client {st_c:?} server {st_s:?}");
    let expect = vec![
        State::FinWait1,
        State::Closing,
        State::TimeWait,
        State::Closed,
    ];
    assert_eq!(st_c, expect);
    assert_eq!(st_s, expect);
    assert_eq!(sim.stack(c).error(cc), None);
    assert_eq!(sim.stack(s).error(sc), None);
    // Both FINs left at the same instant.
    for node in [c, s] {
        let fins: Vec<_> = sent_by(&sim, node)
            .into_iter()
            .filter(|(_, seg)| seg.fin())
            .collect();
        assert_eq!(fins.len(), 1, "{fins:?}");
        assert_eq!(fins[0].0, t0);
    }
}

#[test]
fn connect_to_closed_port_is_refused() {
    let (mut sim, c, s) = Sim::pair(6, LinkConfig::ideal(ms(10)), |_| {});
    let now = sim.now();
    let dst = SocketAddrV4::new(sim.addr(s), 81);
    let cc = sim.stack_mut(c).connect(now, None, dst).unwrap();
    let ok = sim.run_until(now + secs(10), |sim| {
        sim.stack(c).state(cc) == State::Closed
    });
    assert!(ok);
    assert_eq!(sim.now(), Instant::from_millis(20));
    assert_eq!(sim.stack(c).error(cc), Some(Error::ConnectionRefused));
    assert!(sim.events(c).iter().any(|(_, e)| *e == Event::Reset(cc)));
    assert_eq!(sim.stack(s).stats().rst_sent, 1);
    let mut buf = [0u8; 8];
    assert!(sim.stack_mut(c).recv(cc, &mut buf).is_err());
}

#[test]
fn keepalive_detects_peer_reboot() {
    let (mut sim, c, s) = Sim::pair(7, LinkConfig::ideal(ms(10)), |_| {});
    sim.set_capture(true);
    let (cc, sc) = establish(&mut sim, c, s, 80);
    let params = SockOpt::KeepAliveParams {
        idle: secs(10),
        interval: secs(2),
        probes: 3,
    };
    sim.stack_mut(c).set_option(cc, params).unwrap();
    sim.stack_mut(c)
        .set_option(cc, SockOpt::KeepAlive(true))
        .unwrap();
    assert_eq!(exchange(&mut sim, (c, cc), (s, sc), b"hi"), b"hi");

    // A live peer answers the probes: the idle connection survives.
    let t0 = sim.now();
    sim.run_for(secs(38));
    assert_eq!(sim.stack(c).state(cc), State::Established);
    assert_eq!(sim.stack(s).state(sc), State::Established);
    let probes = sent_by(&sim, c)
        .into_iter()
        .filter(|(at, seg)| *at > t0 && seg.payload_len <= 1 && !seg.fin())
        .count();
    assert!(probes >= 3, "{probes} keep-alive probes in 38 s");

    // The peer reboots and forgets the connection; the next probe meets a RST.
    sim.crash(s);
    let t1 = sim.now();
    let ok = sim.run_until(t1 + secs(60), |sim| sim.stack(c).state(cc) == State::Closed);
    assert!(ok, "keep-alive never noticed the reboot");
    let err = sim.stack(c).error(cc);
    assert!(
        matches!(err, Some(Error::ConnectionReset | Error::TimedOut)),
        "{err:?}"
    );
    assert!(
        sim.now() - t1 <= secs(10 + 2 * 3 + 1),
        "took {:?}",
        sim.now() - t1
    );
    assert!(sim
        .events(c)
        .iter()
        .any(|(_, e)| matches!(e, Event::Reset(_) | Event::TimedOut(_))));
}

#[test]
fn zero_window_held_for_a_minute_then_reopened() {
    let (mut sim, c, s) = Sim::pair(8, LinkConfig::ideal(ms(10)), |cfg| {
        cfg.recv_buffer = 64 * 1024;
        cfg.msl = secs(2);
        // The persist backoff is bounded by the largest RTO.
        cfg.max_rto = secs(20);
    });
    sim.set_capture(true);
    let spec = TransferSpec {
        client_bytes: 1 << 20,
        server_bytes: 0,
        ..TransferSpec::default()
    };
    let mut t = Transfer::start(&mut sim, c, s, spec);
    let start = sim.now();
    let reopen = start + secs(60);
    t.pause_server_reads(reopen);
    let done = sim.run_until(reopen - ms(1), |sim| t.poll(sim));
    assert!(!done, "{}", t.summary());
    assert_eq!(t.server().verified, 0);

    let zero_at = sent_by(&sim, s)
        .into_iter()
        .find(|(_, seg)| seg.window == 0 && !seg.syn())
        .map(|(at, _)| at)
        .expect("the server never advertised a zero window");
    assert!(zero_at < start + secs(5), "{zero_at}");
    // With the window closed, everything the client sends is a window probe.
    let probes: Vec<Instant> = sent_by(&sim, c)
        .into_iter()
        .filter(|(at, _)| *at > zero_at + ms(100))
        .map(|(at, _)| at)
        .collect();
    assert!(
        probes.len() >= 5,
        "only {} probes: {probes:?}",
        probes.len()
    );
    let mut last = zero_at;
    for at in probes.iter().copied().chain([reopen]) {
        assert!(at - last <= secs(21), "probing paused: {probes:?}");
        last = at;
    }
    assert_eq!(
        sim.stack(c).state(t.client_conn().unwrap()),
        State::Established
    );
    assert_eq!(t.client().error, None);

    let done = sim.run_until(reopen + secs(300), |sim| t.poll(sim));
    assert!(done);
    t.assert_success();
}

#[test]
fn user_timeout_on_dead_link() {
    let (mut sim, c, s) = Sim::pair(9, LinkConfig::ideal(ms(10)), |_| {});
    let (cc, _sc) = establish(&mut sim, c, s, 80);
    sim.stack_mut(c)
        .set_option(cc, SockOpt::UserTimeout(secs(10)))
        .unwrap();
    sim.run_for(secs(1));
    sim.set_link_up(c, s, false);
    let t0 = sim.now();
    let sent = sim.stack_mut(c).send(cc, &[7u8; 10_000]).unwrap();
    assert_eq!(sent, 10_000);
    let ok = sim.run_until(t0 + secs(200), |sim| {
        sim.stack(c).state(cc) == State::Closed
    });
    assert!(ok, "connection outlived its user timeout");
    assert_eq!(sim.stack(c).error(cc), Some(Error::TimedOut));
    let took = sim.now() - t0;
    assert!(took >= secs(10) && took <= secs(25), "took {took:?}");
    assert!(sim.events(c).iter().any(|(_, e)| *e == Event::TimedOut(cc)));
    assert!(sim.stack(c).stats().rto_expirations > 0);
}

/// An established, quiet connection with some data exchanged, and the next
/// sequence number each side expects.
struct Quiet {
    sim: Sim,
    c: NodeId,
    s: NodeId,
    cc: ConnId,
    sc: ConnId,
    /// The server's RCV.NXT (next sequence number from the client).
    server_rcv_nxt: u32,
}

fn quiet_connection(seed: u64) -> Quiet {
    let (mut sim, c, s) = Sim::pair(seed, LinkConfig::ideal(ms(10)), |_| {});
    sim.set_capture(true);
    let (cc, sc) = establish(&mut sim, c, s, 80);
    assert_eq!(exchange(&mut sim, (c, cc), (s, sc), &[1; 3000]).len(), 3000);
    assert_eq!(exchange(&mut sim, (s, sc), (c, cc), &[2; 700]).len(), 700);
    sim.run_for(secs(2));
    let last = sent_by(&sim, c).last().unwrap().1.clone();
    Quiet {
        server_rcv_nxt: last.seq_end(),
        sim,
        c,
        s,
        cc,
        sc,
    }
}

impl Quiet {
    /// Injects a segment "from the client" to the server; returns what the
    /// server sent in the next second.
    fn inject(&mut self, flags: u8, seq: u32) -> Vec<TcpSegment> {
        let v4 = |a: std::net::SocketAddr| match a {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!("an IPv4 scenario"),
        };
        let src = v4(self.sim.stack(self.c).local_addr(self.cc).unwrap());
        let dst = v4(self.sim.stack(self.s).local_addr(self.sc).unwrap());
        let bytes = SegmentBuilder::new(src, dst).seq(seq).flags(flags).build();
        let t = self.sim.now();
        self.sim.inject(self.s, bytes);
        self.sim.run_for(secs(1));
        sent_by(&self.sim, self.s)
            .into_iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, seg)| seg)
            .collect()
    }

    #[track_caller]
    fn assert_survives(&mut self) {
        let (c, s, cc, sc) = (self.c, self.s, self.cc, self.sc);
        assert_eq!(self.sim.stack(s).state(sc), State::Established);
        assert_eq!(self.sim.stack(c).state(cc), State::Established);
        let got = exchange(&mut self.sim, (c, cc), (s, sc), b"still here");
        assert_eq!(got, b"still here");
        let got = exchange(&mut self.sim, (s, sc), (c, cc), b"me too");
        assert_eq!(got, b"me too");
    }

    #[track_caller]
    fn assert_challenge_ack(&self, reply: &[TcpSegment]) {
        assert_eq!(reply.len(), 1, "{reply:?}");
        let ack = &reply[0];
        assert!(
            ack.is_ack() && !ack.rst() && !ack.syn() && ack.payload_len == 0,
            "{ack}"
        );
        assert_eq!(ack.ack, self.server_rcv_nxt, "{ack}");
        assert_eq!(self.sim.stack(self.s).stats().challenge_acks, 1);
    }
}

#[test]
fn rst_in_window_gets_challenge_ack() {
    let mut q = quiet_connection(10);
    // RFC 5961 3.2: in the window but not exactly RCV.NXT.
    let reply = q.inject(flags::RST, q.server_rcv_nxt.wrapping_add(1000));
    q.assert_challenge_ack(&reply);
    q.assert_survives();
}

#[test]
fn rst_at_exact_sequence_resets() {
    let mut q = quiet_connection(11);
    let reply = q.inject(flags::RST, q.server_rcv_nxt);
    assert!(reply.is_empty(), "{reply:?}");
    assert_eq!(q.sim.stack(q.s).state(q.sc), State::Closed);
    assert_eq!(q.sim.stack(q.s).error(q.sc), Some(Error::ConnectionReset));
}

#[test]
fn rst_outside_window_is_ignored() {
    let mut q = quiet_connection(12);
    let reply = q.inject(flags::RST, q.server_rcv_nxt.wrapping_add(1 << 30));
    assert!(reply.is_empty(), "{reply:?}");
    q.assert_survives();
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    let mut q = quiet_connection(13);
    // RFC 5961 4.2: any SYN in a synchronized state, in window or not.
    let reply = q.inject(flags::SYN, q.server_rcv_nxt.wrapping_add(5000));
    q.assert_challenge_ack(&reply);
    assert_eq!(q.sim.stack(q.s).stats().rst_sent, 0);
    q.assert_survives();
}

#[test]
fn time_wait_lasts_two_msl() {
    let msl = secs(5);
    let (mut sim, c, s) = Sim::pair(14, LinkConfig::ideal(ms(10)), |cfg| cfg.msl = msl);
    let spec = TransferSpec {
        client_bytes: 10_000,
        server_bytes: 10_000,
        ..TransferSpec::default()
    };
    let t = run_transfer(&mut sim, c, s, spec, secs(60));
    t.assert_success();
    let tw = t.client().time_in(State::TimeWait).expect("no TIME-WAIT");
    assert!(
        tw >= msl * 2 && tw <= msl * 2 + ms(50),
        "TIME-WAIT lasted {tw:?}\n{}",
        t.summary()
    );
    assert!(!t.server().saw(State::TimeWait));
    assert_eq!(t.client().states.last(), Some(&State::Closed));
}

#[test]
fn same_seed_same_trace() {
    let run = |seed: u64| {
        let (mut sim, c, s) = Sim::pair(seed, LinkConfig::lossy(0.05), |cfg| cfg.msl = secs(1));
        let spec = TransferSpec {
            client_bytes: 100_000,
            server_bytes: 30_000,
            seed,
            ..TransferSpec::default()
        };
        // Determinism must hold whether or not the transfer succeeds.
        let mut t = Transfer::start(&mut sim, c, s, spec);
        sim.run_until(Instant::from_millis(600_000), |sim| t.poll(sim));
        (sim.trace_hash(), t.summary(), sim.stats().clone())
    };
    let a = run(99);
    assert_eq!(a, run(99));
    assert_ne!(a.0, run(100).0);
}

/// RFC 2018 8 and RFC 7323 4.3 end to end: a path whose ACKs now and then
/// carry SACK blocks for data the receiver does not hold (to the sender,
/// reneging) and zeroed timestamp echoes, besides loss and duplication.
/// Every byte arrives once, in order, and nothing stalls; the sender saw
/// reneging and its RTO stayed sane.
#[test]
fn reneging_receiver_and_zero_tsecr_echoes_still_deliver_everything() {
    let link = LinkConfig::ideal(ms(10))
        .loss(0.01)
        .duplicate(0.02)
        .renege(0.05)
        .zero_tsecr(0.05);
    let (mut sim, c, s) = Sim::pair(0x2018, link, |cfg| cfg.msl = secs(2));
    let spec = TransferSpec {
        client_bytes: 2 << 20,
        server_bytes: 256 << 10,
        ..TransferSpec::default()
    };
    let mut t = Transfer::start(&mut sim, c, s, spec);
    let deadline = sim.now() + secs(600);
    let done = sim.run_until(deadline, |sim| t.poll(sim));
    assert!(done && t.succeeded(), "{}", t.summary());
    let ls = sim.link_stats(s, c).clone();
    assert!(ls.reneged > 20 && ls.tsecr_zeroed > 20, "{ls:?}");
    let st = sim.stack(c).stats().clone();
    assert!(st.sack_reneging > 0, "{st:?}");
    eprintln!(
        "reneging path: done in {:?}; {} reneging ACKs seen, {} retransmits, {} RTOs",
        t.elapsed(),
        st.sack_reneging,
        st.retransmits,
        st.rto_expirations
    );
    // Zero echoes never became RTT samples: 2 MiB over a 20 ms path, with
    // the RTO far from the hours a zero echo would give.
    assert!(t.elapsed().unwrap() < secs(120), "{}", t.summary());
}

/// RFC 4987 3.6 under a flood: 100,000 spoofed SYNs (from addresses no
/// node owns, so nobody answers the SYN-ACKs) fill the SYN queue; the
/// listener keeps no state beyond it and answers with cookies, and a
/// legitimate connect then completes in one round trip.
#[test]
fn syn_flood_of_100k_spoofed_syns_leaves_a_legitimate_connect_instant() {
    let (mut sim, c, s) = Sim::pair(0x4987, LinkConfig::ideal(ms(5)), |_| {});
    let addr = SocketAddrV4::new(sim.addr(s), 80);
    let listener = sim.stack_mut(s).listen(addr, 128).unwrap();
    let t0 = sim.now();
    for i in 0..100_000u32 {
        let src = SocketAddrV4::new(
            std::net::Ipv4Addr::new(10, 99, (i >> 16) as u8, (i >> 8) as u8),
            1024 + (i % 60_000) as u16,
        );
        let syn = SegmentBuilder::new(src, addr)
            .seq(i.wrapping_mul(2_654_435_761))
            .flags(flags::SYN)
            .window(65535)
            .options(&[2, 4, 0x05, 0xb4])
            .build();
        // Spread over one second.
        sim.inject_at(s, t0 + Duration::from_micros(u64::from(i) * 10), syn);
    }
    sim.run_until(t0 + secs(1), |_| false);
    let st = sim.stack(s).stats().clone();
    assert!(st.syncookies_sent >= 99_000, "{st:?}");
    assert!(
        sim.stack(s).connection_count() <= 128,
        "{} connections held",
        sim.stack(s).connection_count()
    );
    // The legitimate client, right after the flood.
    let start = sim.now();
    let cc = sim.stack_mut(c).connect(start, None, addr).unwrap();
    let mut sc = None;
    let ok = sim.run_until(start + secs(5), |sim| {
        if sc.is_none() {
            sc = sim.stack_mut(s).accept(listener);
        }
        sc.is_some() && sim.stack(c).state(cc) == State::Established
    });
    assert!(ok, "the legitimate connect did not complete");
    let took = sim.now() - start;
    // One round trip (10 ms) plus the final ACK's way (5 ms).
    assert!(took <= ms(16), "took {took:?}");
    assert!(sim.stack(s).stats().syncookies_validated >= 1);
    // And it carries data both ways.
    let sc = sc.unwrap();
    let got = exchange(&mut sim, (c, cc), (s, sc), b"after the flood");
    assert_eq!(got, b"after the flood");
}
