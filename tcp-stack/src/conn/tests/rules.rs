//! Regression tests for the defects found from outside (black-box probes
//! driving the stack with hand-built segments). Each is named after the
//! rule it checks and cites the section the code cites.

use super::*;

/// A scripted peer with timestamps (and SACK, window scaling as given):
/// the stack is in ESTABLISHED after a passive open.
struct TsPeer {
    /// The peer's TSval clock.
    tsval: u32,
    /// The last TSval the stack sent (what the peer echoes).
    echo: u32,
}

impl TsPeer {
    fn opts(&mut self) -> TcpOptions {
        self.tsval += 1;
        TcpOptions {
            timestamps: Some((self.tsval, self.echo)),
            ..TcpOptions::default()
        }
    }
    fn saw(&mut self, out: &[Out]) {
        if let Some(ts) = out.iter().rev().find_map(|o| o.tcp.options.timestamps) {
            self.echo = ts.0;
        }
    }
}

fn socket_established_ts(cfg: Config, syn_opts: TcpOptions) -> (Harness, TsPeer) {
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let mut peer = TsPeer {
        tsval: 100,
        echo: 0,
    };
    let syn = TcpOptions {
        timestamps: Some((peer.tsval, 0)),
        ..syn_opts
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], syn, 65535);
    h.peer_seq += 1;
    let synack = h.output();
    assert_eq!(synack.len(), 1);
    peer.saw(&synack);
    h.peer_ack = synack[0].tcp.seq + 1;
    let (seq, ack, o) = (h.peer_seq, h.peer_ack, peer.opts());
    h.send_opts(seq, Some(ack), TcpFlags::EMPTY, &[], o, 65535);
    h.conn = h.stack.accept(crate::ListenerId(0));
    assert!(h.stack.info(h.id()).unwrap().timestamps);
    (h, peer)
}

/// The peer, acting as a receiver that holds only in-order data, ACKs
/// whatever the stack sends in sequence until `end` is acknowledged or the
/// stack goes quiet for a minute.
#[track_caller]
fn deliver_in_order(h: &mut Harness, end: SeqNum) {
    let deadline = h.now + Duration::from_secs(60);
    while h.peer_ack != end {
        let mut out = h.output();
        if out.is_empty() {
            let Some(at) = h.stack.poll_timeout() else {
                panic!("stalled at {:?} (want {end:?}): no timer armed", h.peer_ack);
            };
            assert!(
                at <= deadline,
                "stalled at {:?}: next timer {at:?}",
                h.peer_ack
            );
            out = h.run_timers_until(at);
        }
        let mut advanced = false;
        for o in &out {
            let len = o.payload.len() + usize::from(o.flags().fin());
            if o.tcp.seq.diff(h.peer_ack) <= 0 && (o.tcp.seq + len).diff(h.peer_ack) > 0 {
                h.peer_ack = o.tcp.seq + len;
                advanced = true;
            }
        }
        if advanced {
            h.advance(Duration::from_millis(5));
            h.send(TcpFlags::EMPTY, &[]);
        }
    }
}

// ---------------------------------------------------------------------
// 1. RFC 2018 8: SACK reneging
// ---------------------------------------------------------------------

/// RFC 2018 8: the receiver may discard data it SACKed; after a
/// retransmission timeout the sender MUST retransmit the segment at the
/// left edge of the window whether or not it was SACKed. Here the peer
/// SACKs segments 2..10, receives the fast retransmission of segment 1,
/// then ACKs segment 1 alone with no SACK block: it reneged on 2..10.
#[test]
fn test_established_rfc2018_8_reneged_sack_is_retransmitted() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una + 1000, una + 10_000)]);
    let rtx = h.output();
    assert_eq!(rtx.first().map(|o| o.tcp.seq), Some(una), "fast retransmit");
    h.advance(Duration::from_millis(10));
    h.peer_ack = una + 1000;
    h.send(TcpFlags::EMPTY, &[]);
    assert!(
        h.stack.poll_timeout().is_some(),
        "data is unacknowledged: a retransmission timer must be armed"
    );
    deliver_in_order(&mut h, una + 10_000);
    // The application can go on sending.
    h.stack.send(h.id(), &[6u8; 3000]).unwrap();
    deliver_in_order(&mut h, una + 13_000);
}

/// RFC 2018 8: the same when the peer SACKs everything in flight,
/// [SND.UNA, SND.MAX), while its cumulative ACK stays at SND.UNA.
#[test]
fn test_established_rfc2018_8_sack_of_whole_flight_at_snd_una() {
    let mut h = socket_established_sack();
    h.stack.send(h.id(), &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una, una + 10_000)]);
    assert!(h.stack.poll_timeout().is_some());
    deliver_in_order(&mut h, una + 10_000);
}

// ---------------------------------------------------------------------
// 2. RFC 7323 4.3 / RFC 6298: implausible timestamp echoes
// ---------------------------------------------------------------------

/// RFC 7323 4.3, RFC 6298 2: an RTT sample comes only from an echo of a
/// TSval we sent recently. TSecr = 0 (as Linux ignores it), an echo from
/// the future or one older than the data in flight gives none.
#[test]
fn test_established_rfc7323_4_3_implausible_tsecr_is_not_an_rtt_sample() {
    let mut cfg = config();
    cfg.timestamps = true;
    let (mut h, mut peer) = socket_established_ts(cfg, TcpOptions::default());
    // A long-lived connection: our TSval clock is far from 0.
    h.advance(Duration::from_secs(3600));
    let bogus = |peer: &TsPeer| {
        [
            0,
            peer.echo.wrapping_add(5000),
            peer.echo.wrapping_sub(2_000_000),
        ]
    };
    for (i, tsecr) in bogus(&peer).into_iter().enumerate() {
        h.stack.send(h.id(), &[1u8; 500]).unwrap();
        let out = h.output();
        assert_eq!(out.len(), 1);
        peer.saw(&out);
        h.advance(Duration::from_millis(20));
        h.peer_ack += 500;
        let mut o = peer.opts();
        o.timestamps = Some((o.timestamps.unwrap().0, tsecr));
        let (seq, ack) = (h.peer_seq, h.peer_ack);
        h.send_opts(seq, Some(ack), TcpFlags::EMPTY, &[], o, 65535);
        let info = h.stack.info(h.id()).unwrap();
        assert!(
            info.srtt.is_none_or(|s| s < Duration::from_secs(1)),
            "echo #{i} {tsecr} became a sample: {info:?}"
        );
        assert!(info.rto <= Duration::from_secs(1), "{info:?}");
    }
    // The next loss is still retransmitted within the RTO.
    h.stack.send(h.id(), &[2u8; 500]).unwrap();
    h.output();
    let out = h.run_timers_until(h.now + Duration::from_millis(1100));
    assert!(out.iter().any(|o| o.payload.len() == 500), "{out:#?}");
}

// ---------------------------------------------------------------------
// 3. RFC 9293 3.10.7.4: sequence check before the SYN check
// ---------------------------------------------------------------------

/// RFC 9293 3.10.7.4 first check: in SYN-RECEIVED an unacceptable segment
/// (here a spoofed SYN far outside the window) gets an ACK and is dropped;
/// it must not reset the embryo (Linux `tcp_check_req`).
#[test]
fn test_syn_received_rfc9293_3_10_7_4_out_of_window_syn_is_acked_not_reset() {
    let (mut h, _) = socket_syn_received();
    let seq = h.peer_seq + (1usize << 31);
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let out = h.output();
    assert!(out.iter().all(|o| !o.flags().rst()), "{out:#?}");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags(), TcpFlags::ACK);
    // The genuine final ACK completes the handshake.
    h.send(TcpFlags::EMPTY, &[]);
    h.expect_none();
    assert!(h.stack.accept(crate::ListenerId(0)).is_some());
}

// ---------------------------------------------------------------------
// 4. RFC 5961 7: challenge ACKs limited per connection
// ---------------------------------------------------------------------

/// Completes a handshake from `remote` on the harness's listener; returns
/// (the peer's next seq, our next seq).
fn handshake_from(h: &mut Harness, remote: SocketAddrV4) -> (SeqNum, SeqNum) {
    let syn = TcpRepr {
        src_port: remote.port(),
        dst_port: LOCAL.port(),
        seq: SeqNum(REMOTE_ISS),
        flags: TcpFlags::SYN,
        window: 65535,
        ..TcpRepr::default()
    };
    h.stack
        .handle_packet(h.now, &packet(remote, LOCAL, &syn, &[]));
    let synack = h.expect_one();
    let ack = TcpRepr {
        seq: SeqNum(REMOTE_ISS + 1),
        ack: synack.tcp.seq + 1,
        flags: TcpFlags::ACK,
        ..syn
    };
    h.stack
        .handle_packet(h.now, &packet(remote, LOCAL, &ack, &[]));
    (SeqNum(REMOTE_ISS + 1), synack.tcp.seq + 1)
}

/// RFC 5961 7 and CVE-2016-5696: one connection's challenge ACKs must not
/// use up a budget that others share (an off-path attacker would observe
/// it). Linux limits per socket and randomises the global limit.
#[test]
fn test_established_rfc5961_7_challenge_ack_limit_is_per_connection() {
    let mut h = socket_established();
    let b = SocketAddrV4::new(REMOTE_IP, 4001);
    let (b_seq, _) = handshake_from(&mut h, b);
    let mut b_acks = 0;
    for i in 0..1000u32 {
        let rst = TcpRepr {
            src_port: b.port(),
            dst_port: LOCAL.port(),
            seq: b_seq + 1 + i as usize,
            flags: TcpFlags::RST,
            ..TcpRepr::default()
        };
        h.stack.handle_packet(h.now, &packet(b, LOCAL, &rst, &[]));
        b_acks += h.output().len();
    }
    assert!(b_acks >= 1, "B gets a challenge ACK");
    assert!(b_acks < 1000, "B's challenge ACKs are limited");
    // One inexact RST on A in the same second draws its challenge ACK.
    let seq = h.peer_seq + 1;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::ACK);
    assert_eq!(h.state(), State::Established);
}

// ---------------------------------------------------------------------
// 5. RFC 2883 / RFC 3708: undo only on D-SACKs of retransmitted data
// ---------------------------------------------------------------------

/// RFC 3708 2 / RFC 2883: only a D-SACK for retransmitted data shows a
/// retransmission was spurious. A duplicate of a segment that was never
/// retransmitted (the network duplicated it) must not undo the reduction.
#[test]
fn test_established_rfc3708_dsack_of_unretransmitted_data_does_not_undo() {
    let mut h = socket_established_sack();
    let id = h.id();
    h.stack
        .set_option(
            id,
            SockOpt::CongestionControl(crate::CongestionControl::NewReno),
        )
        .unwrap();
    h.stack.send(id, &[5u8; 10_000]).unwrap();
    assert_eq!(h.output().len(), 10);
    let una = h.peer_ack;
    let before = h.stack.info(id).unwrap();
    h.advance(Duration::from_millis(10));
    sack_ack(&mut h, &[(una + 1000, una + 10_000)]);
    assert_eq!(h.output().first().map(|o| o.tcp.seq), Some(una));
    let during = h.stack.info(id).unwrap();
    assert!(during.ssthresh < before.ssthresh, "{during:?}");
    // A D-SACK (inside the second block) of segment 3, which was never
    // retransmitted: the path duplicated it.
    h.advance(Duration::from_millis(1));
    sack_ack(
        &mut h,
        &[(una + 2000, una + 3000), (una + 1000, una + 10_000)],
    );
    let after = h.stack.info(id).unwrap();
    assert_eq!(
        after.ssthresh, during.ssthresh,
        "undone by an unrelated D-SACK"
    );
    assert!(after.cwnd <= during.cwnd + 1000, "{after:?} vs {during:?}");
}

// ---------------------------------------------------------------------
// 6. RFC 1122 4.2.2.13: reopening from TIME-WAIT with a higher ISS
// ---------------------------------------------------------------------

/// RFC 1122 4.2.2.13: a SYN may reopen a connection in TIME-WAIT only if
/// the new ISS is above any sequence number the old incarnation used
/// (Linux: the old SND.NXT + 65537).
#[test]
fn test_time_wait_rfc1122_4_2_2_13_reopen_iss_above_old_snd_nxt() {
    let mut h = socket_established();
    // Send a lot in no time: the ISN clock does not move.
    let mut sent = 0;
    for _ in 0..64 {
        sent += h.stack.send(h.id(), &[7u8; 8192]).unwrap();
        let end = h.peer_ack + 8192;
        deliver_in_order(&mut h, end);
    }
    assert_eq!(sent, 64 * 8192);
    h.stack.shutdown(h.id()).unwrap();
    let fin = h.expect_one();
    assert!(fin.flags().fin());
    h.peer_ack += 1;
    h.send(TcpFlags::FIN, &[]);
    assert_eq!(h.state(), State::TimeWait);
    let old_snd_nxt = h.peer_ack;
    h.output();
    let seq = h.peer_seq + 100_000;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let synack = h.expect_one();
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert!(
        synack.tcp.seq.diff(old_snd_nxt) > 0,
        "new ISS {:?} not above the old SND.NXT {old_snd_nxt:?}",
        synack.tcp.seq
    );
}

// ---------------------------------------------------------------------
// 7. RFC 6191 2: reuse SYN without timestamps
// ---------------------------------------------------------------------

/// RFC 6191 2: when the previous incarnation used timestamps but the new
/// SYN carries none, the sequence number decides (as Linux does): a SYN
/// above RCV.NXT reopens the connection.
#[test]
fn test_time_wait_rfc6191_2_syn_without_timestamps_reopens_by_sequence() {
    let mut cfg = config();
    cfg.timestamps = true;
    let (mut h, mut peer) = socket_established_ts(cfg, TcpOptions::default());
    h.stack.shutdown(h.id()).unwrap();
    let fin = h.output();
    peer.saw(&fin);
    h.peer_ack += 1;
    let (seq, ack, o) = (h.peer_seq, h.peer_ack, peer.opts());
    h.send_opts(seq, Some(ack), TcpFlags::FIN, &[], o, 65535);
    h.peer_seq += 1;
    assert_eq!(h.state(), State::TimeWait);
    h.output();
    let seq = h.peer_seq + 1000;
    h.send_raw(seq, None, TcpFlags::SYN, &[]);
    let out = h.expect_one();
    assert_eq!(out.flags(), TcpFlags::SYN | TcpFlags::ACK, "{out:#?}");
    assert_eq!(out.tcp.ack, seq + 1);
    assert_eq!(out.tcp.options.timestamps, None);
}

// ---------------------------------------------------------------------
// 8. RFC 9293 3.10.7.4: window update only from an acceptable ACK
// ---------------------------------------------------------------------

/// RFC 9293 3.10.7.4 fifth check: the send window is updated only if
/// SND.UNA =< SEG.ACK =< SND.NXT; an old ACK (below SND.UNA) on a newer
/// segment must not close the window.
#[test]
fn test_established_rfc9293_3_10_7_4_old_ack_does_not_update_window() {
    let mut h = socket_established();
    let old_ack = h.peer_ack;
    h.stack.send(h.id(), &[1u8; 500]).unwrap();
    let sent: usize = h.output().iter().map(|o| o.payload.len()).sum();
    h.peer_ack += sent;
    h.send(TcpFlags::PSH, b"a");
    // Newer data from the peer (SEG.SEQ > SND.WL1), but acknowledging an
    // old point (SEG.ACK < SND.UNA), window 0.
    let seq = h.peer_seq;
    h.send_opts(
        seq,
        Some(old_ack),
        TcpFlags::PSH,
        b"x",
        TcpOptions::default(),
        0,
    );
    h.peer_seq += 1;
    assert_eq!(h.stack.info(h.id()).unwrap().send_window, 65535);
    // New data still goes at once.
    h.stack.send(h.id(), &[2u8; 100]).unwrap();
    let out = h.output();
    assert!(out.iter().any(|o| o.payload.len() == 100), "{out:#?}");
}

// ---------------------------------------------------------------------
// 9. RFC 2018 4: SACK blocks in most-recent order
// ---------------------------------------------------------------------

/// RFC 2018 4: the first block reports the most recently received
/// segment; the others SHOULD repeat the most recently reported blocks.
#[test]
fn test_established_rfc2018_4_sack_blocks_most_recent_first() {
    let mut h = socket_established_sack();
    let base = h.peer_seq;
    let ack = h.peer_ack;
    let mut last = Vec::new();
    // Islands of 300 bytes at +1000, +2000, ... +5000 (inside the 8 KiB window).
    let island = |k: usize| (base + k, base + k + 300);
    for k in [1000usize, 2000, 3000, 4000, 5000] {
        h.send_raw(base + k, Some(ack), TcpFlags::EMPTY, &[9u8; 300]);
        let out = h.expect_one();
        last = out.tcp.options.sack.as_slice().to_vec();
        assert_eq!(last[0], island(k), "newest first");
    }
    assert_eq!(
        last,
        vec![island(5000), island(4000), island(3000), island(2000)],
        "each block repeated in most-recent order"
    );
    // A segment extending the oldest island comes first; the others
    // follow in the order last reported.
    h.send_raw(base + 1300, Some(ack), TcpFlags::EMPTY, &[9u8; 100]);
    let out = h.expect_one();
    assert_eq!(
        out.tcp.options.sack.as_slice(),
        &[
            (base + 1000, base + 1400),
            island(5000),
            island(4000),
            island(3000)
        ]
    );
}

// ---------------------------------------------------------------------
// 10. RFC 9293 3.8.6: the right edge never moves left through rounding
// ---------------------------------------------------------------------

/// RFC 9293 3.8.6 (SHLD-14): the advertised right edge must not move
/// left. With a window scale of 8 the window is a multiple of 256 bytes;
/// rounding it down would shrink the edge (Linux rounds up).
#[test]
fn test_established_rfc9293_3_8_6_scaled_window_edge_never_moves_left() {
    let mut cfg = config();
    cfg.window_scaling = true;
    cfg.recv_buffer = 1 << 20;
    cfg.recv_buffer_max = 65535 << 8;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let opts = TcpOptions {
        window_scale: Some(7),
        ..TcpOptions::default()
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], opts, 65535);
    h.peer_seq += 1;
    let synack = h.expect_one();
    assert_eq!(synack.tcp.options.window_scale, Some(8));
    h.peer_ack = synack.tcp.seq + 1;
    h.send(TcpFlags::EMPTY, &[]);
    h.conn = h.stack.accept(crate::ListenerId(0));
    let mut edge: Option<SeqNum> = None;
    let mut moved_left = 0;
    for _ in 0..40 {
        h.send(TcpFlags::EMPTY, &[3u8; 1074]);
        h.advance(Duration::from_millis(50));
        for o in h.output() {
            let e = o.tcp.ack + (usize::from(o.tcp.window) << 8);
            if edge.is_some_and(|prev| e.diff(prev) < 0) {
                moved_left += 1;
            }
            edge = Some(edge.map_or(e, |prev| if e.diff(prev) > 0 { e } else { prev }));
        }
    }
    assert!(edge.is_some());
    assert_eq!(moved_left, 0, "the right edge moved left");
}

// ---------------------------------------------------------------------
// 11. RFC 1122 4.2.3.2: ACK every second full-sized segment
// ---------------------------------------------------------------------

/// RFC 1122 4.2.3.2, RFC 9293 3.8.6.3: an ACK SHOULD go for at least every
/// second full-sized segment. With an MTU of 500 the segments are 460
/// bytes; "full-sized" is learnt from what arrives (Linux `rcv_mss`), not
/// from a 536-byte default that only grows.
#[test]
fn test_established_rfc1122_4_2_3_2_small_mss_every_second_segment_acked() {
    let mut cfg = config();
    cfg.mtu = 500;
    let mut h = Harness::new(cfg);
    h.stack.listen(LOCAL, 4).unwrap();
    let opts = TcpOptions {
        mss: Some(460),
        ..TcpOptions::default()
    };
    let seq = h.peer_seq;
    h.send_opts(seq, None, TcpFlags::SYN, &[], opts, 65535);
    h.peer_seq += 1;
    h.peer_ack = h.expect_one().tcp.seq + 1;
    h.send(TcpFlags::EMPTY, &[]);
    h.conn = h.stack.accept(crate::ListenerId(0));
    for pair in 0..3 {
        h.send(TcpFlags::EMPTY, &[1u8; 460]);
        h.expect_none();
        h.send(TcpFlags::EMPTY, &[1u8; 460]);
        let ack = h.expect_one();
        assert_eq!(ack.tcp.ack, h.peer_seq, "pair {pair}");
    }
}

/// RFC 1122 4.2.3.2: a peer whose segments are smaller than any MSS (400
/// bytes here, say a smaller MTU on its side): two equal segments in a row
/// teach the size (Linux `tcp_measure_rcv_mss`), and from then on every
/// second one is ACKed at once.
#[test]
fn test_established_rfc1122_4_2_3_2_rcv_mss_learnt_from_equal_segments() {
    let mut h = socket_established();
    let mut immediate = 0;
    for _ in 0..8 {
        h.send(TcpFlags::EMPTY, &[1u8; 400]);
        immediate += h.output().len();
    }
    assert!(
        immediate >= 3,
        "only {immediate} immediate ACKs for 8 segments"
    );
}

// ---------------------------------------------------------------------
// Choices where Linux and the RFCs allow more than one behaviour
// ---------------------------------------------------------------------

/// A SYN+FIN to a listener is discarded, as Linux does
/// (`tcp_rcv_state_process`); RFC 9293 3.10.7.2 would process the SYN and
/// queue the FIN, but the combination is a scanning trick, not a client.
#[test]
fn test_listen_syn_fin_is_discarded() {
    let mut h = socket_listen();
    h.send_raw(h.peer_seq, None, TcpFlags::SYN | TcpFlags::FIN, &[]);
    h.expect_none();
    assert_eq!(h.stack.stats().drop_segment, 1);
}

/// RFC 9293 3.1 (MUST-7): an illegal option length must not crash us. We
/// drop the whole segment and count it (Linux keeps the segment and stops
/// parsing options; see `TcpOptions::parse` for why we differ).
#[test]
fn test_established_rfc9293_3_1_malformed_option_length_drops_segment() {
    let mut h = socket_established();
    for bad in [[8u8, 0, 0, 0], [8, 1, 0, 0], [2, 9, 0, 0]] {
        let tcp = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: h.peer_seq,
            ack: h.peer_ack,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 65535,
            ..TcpRepr::default()
        };
        // A 24-byte header: 4 option bytes with an illegal length, then data.
        let mut seg = vec![0u8; 24 + 3];
        tcp.emit(&mut seg[..20]);
        seg[12] = 6 << 4;
        seg[20..24].copy_from_slice(&bad);
        seg[24..].copy_from_slice(b"bad");
        fill_checksum(&mut seg, REMOTE_IP, LOCAL_IP);
        let mut pkt = vec![0u8; 20];
        pkt.extend_from_slice(&seg);
        Ipv4Repr {
            src: REMOTE_IP,
            dst: LOCAL_IP,
            protocol: IpProtocol::Tcp,
            payload_len: seg.len(),
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: true,
        }
        .emit(&mut pkt);
        let before = h.stack.stats().drop_malformed;
        h.stack.handle_packet(h.now, &pkt);
        assert_eq!(h.stack.stats().drop_malformed, before + 1, "{bad:?}");
        h.expect_none();
        assert_eq!(h.state(), State::Established);
    }
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Err(Error::WouldBlock));
}

/// Linux `tcp_close()` (the orphan FIN-WAIT-2 timeout, `tcp_fin_timeout`):
/// an application that shut down its side, saw the FIN acknowledged, and
/// only then released the socket, must not leave the connection in
/// FIN-WAIT-2 for ever when the peer never sends its FIN.
#[test]
fn test_fin_wait_2_close_after_fin_acked_arms_the_orphan_timeout() {
    let mut cfg = config();
    cfg.fin_wait2_timeout = Duration::from_secs(5);
    let mut h = socket_established_with(cfg);
    h.stack.shutdown(h.id()).unwrap();
    assert!(h.expect_one().flags().fin());
    h.peer_ack += 1;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.state(), State::FinWait2);
    // Only now is the handle released.
    h.stack.close(h.id()).unwrap();
    h.run_timers_until(h.now + Duration::from_secs(6));
    assert_eq!(h.stack.connection_count(), 0);
}

/// Linux `tcp_reset()`: a reset in CLOSE-WAIT (the peer's FIN already
/// arrived) is EPIPE, not ECONNRESET: writes fail with `BrokenPipe`, and
/// reads still see the end of stream (the FIN came first).
#[test]
fn test_close_wait_rst_is_broken_pipe_and_reads_end_of_stream() {
    let mut h = socket_close_wait();
    let seq = h.peer_seq;
    h.send_raw(seq, None, TcpFlags::RST, &[]);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.stack.error(h.id()), Some(Error::BrokenPipe));
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.id(), &mut buf), Ok(0));
    assert_eq!(h.stack.send(h.id(), b"x"), Err(Error::BrokenPipe));
}

/// RFC 6298 5 (Karn's algorithm): after timeouts the backed-off RTO is
/// kept until a valid RTT sample; an ACK of retransmitted data gives none
/// (without timestamps), so it must not reset the backoff. The next new
/// data's ACK, timed cleanly, does.
#[test]
fn test_established_rfc6298_5_backoff_kept_until_a_valid_sample() {
    let mut h = socket_established();
    let rto0 = h.stack.info(h.id()).unwrap().rto;
    h.stack.send(h.id(), &[1u8; 100]).unwrap();
    h.output();
    // Three timeouts: the RTO doubles three times.
    let mut rtx = 0;
    while rtx < 3 {
        let at = h.stack.poll_timeout().unwrap();
        rtx += h.run_timers_until(at).len();
    }
    let backed_off = h.stack.info(h.id()).unwrap().rto;
    assert_eq!(backed_off, rto0 * 8);
    // The retransmission is acknowledged: an ambiguous ACK, no sample.
    h.peer_ack += 100;
    h.send(TcpFlags::EMPTY, &[]);
    assert_eq!(h.stack.info(h.id()).unwrap().rto, backed_off);
    // New data, acknowledged without retransmission: a valid sample.
    h.stack.send(h.id(), &[2u8; 100]).unwrap();
    h.output();
    h.advance(Duration::from_millis(10));
    h.peer_ack += 100;
    h.send(TcpFlags::EMPTY, &[]);
    assert!(h.stack.info(h.id()).unwrap().rto < backed_off);
}

/// Found by the `stack` fuzz target: the timer heap gained a stale entry
/// each time an earlier timer (here the delayed ACK) fired while a later
/// one (the retransmission timer) stood, so a peer drawing delayed ACKs
/// grew it until the later deadline. Every resource is bounded: the heap
/// stays within a small multiple of the connections.
#[test]
fn test_established_timer_heap_stays_bounded_under_delayed_acks() {
    let mut h = socket_established();
    // A retransmission timer far in the future: unacknowledged data and
    // a long RTO.
    h.stack.send(h.id(), &[1u8; 100]).unwrap();
    h.output();
    for _ in 0..10_000 {
        // One small segment: a delayed ACK is armed, earlier than the RTO,
        // and fires.
        h.send(TcpFlags::PSH, b"x");
        h.advance(Duration::from_millis(41));
        h.output();
        assert!(h.stack.timer_heap_len() <= 2 * h.stack.connection_count() + 64 + 1);
        if h.stack.info(h.id()).is_none() {
            break;
        }
    }
}

/// Linux `tcp_orphan_retries` (8): an orphaned connection whose peer
/// answers every zero-window probe but never opens its window must not
/// live for ever (every resource bounded). It is reset after 8 probes.
#[test]
fn test_fin_wait_1_orphan_behind_a_shut_window_is_reset_after_orphan_retries() {
    let mut h = socket_established();
    let (seq, ack) = (h.peer_seq, h.peer_ack);
    h.send_opts(seq, Some(ack), TcpFlags::ACK, &[], TcpOptions::default(), 0);
    h.stack.send(h.id(), b"blocked").unwrap();
    h.expect_none();
    h.stack.close(h.id()).unwrap();
    assert_eq!(h.stack.connection_count(), 1);
    let mut probes = 0;
    let mut reset = false;
    for _ in 0..100 {
        let Some(at) = h.stack.poll_timeout() else {
            break;
        };
        for o in h.run_timers_until(at) {
            if o.flags().rst() {
                reset = true;
            } else if o.payload.len() == 1 {
                probes += 1;
                // The peer is alive: it answers, window still shut.
                let (seq, ack) = (h.peer_seq, h.peer_ack);
                h.send_opts(seq, Some(ack), TcpFlags::ACK, &[], TcpOptions::default(), 0);
            }
        }
        if h.stack.connection_count() == 0 {
            break;
        }
    }
    assert_eq!(
        h.stack.connection_count(),
        0,
        "the orphan lives on after {probes} probes"
    );
    assert!(reset, "the peer is told with a RST");
    assert_eq!(probes, 8);
    assert_eq!(h.stack.stats().orphans_reset, 1);
}
