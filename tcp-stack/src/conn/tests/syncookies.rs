//! The listener under pressure: the SYN queue, SYN cookies (RFC 4987 3.6),
//! SYN-ACK retries and the accept queue's limit.

use super::*;
use crate::SynCookies;

/// A SYN from `remote` with `options`.
fn syn_from(h: &mut Harness, remote: SocketAddrV4, seq: u32, options: TcpOptions) {
    let tcp = TcpRepr {
        src_port: remote.port(),
        dst_port: LOCAL.port(),
        seq: SeqNum(seq),
        flags: TcpFlags::SYN,
        window: 65535,
        options,
        ..TcpRepr::default()
    };
    h.stack
        .handle_packet(h.now, &packet(remote, LOCAL, &tcp, &[]));
}

/// A segment with ACK from `remote`.
#[allow(clippy::too_many_arguments)]
fn ack_from(
    h: &mut Harness,
    remote: SocketAddrV4,
    seq: SeqNum,
    ack: SeqNum,
    options: TcpOptions,
    window: u16,
    payload: &[u8],
) {
    let tcp = TcpRepr {
        src_port: remote.port(),
        dst_port: LOCAL.port(),
        seq,
        ack,
        flags: TcpFlags::ACK,
        window,
        options,
        ..TcpRepr::default()
    };
    h.stack
        .handle_packet(h.now, &packet(remote, LOCAL, &tcp, payload));
}

fn peer(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(REMOTE_IP, port)
}

/// A listener with backlog 1 (SYN queue of 8) filled by 8 half-open peers.
fn socket_listen_syn_queue_full(cfg: Config) -> (Harness, crate::ListenerId) {
    let mut h = Harness::new(cfg);
    let lid = h.stack.listen(LOCAL, 1).unwrap();
    for port in 0..8 {
        syn_from(&mut h, peer(6000 + port), 1, TcpOptions::default());
    }
    assert_eq!(h.output().len(), 8);
    assert_eq!(h.stack.connection_count(), 8);
    (h, lid)
}

/// RFC 4987 3.6: once the SYN queue is full, SYNs are answered with a
/// cookie SYN-ACK and no state is kept.
#[test]
fn test_listen_rfc4987_3_6_full_syn_queue_answers_with_cookies() {
    let (mut h, _) = socket_listen_syn_queue_full(config());
    for port in 0..100 {
        syn_from(&mut h, peer(7000 + port), 1, TcpOptions::default());
    }
    let out = h.output();
    assert_eq!(out.len(), 100);
    assert!(out
        .iter()
        .all(|o| o.flags() == TcpFlags::SYN | TcpFlags::ACK));
    assert_eq!(h.stack.connection_count(), 8, "no state for cookies");
    let st = h.stack.stats();
    assert_eq!(st.syncookies_sent, 100);
    assert_eq!(st.syn_queue_overflows, 100);
}

/// RFC 4987 3.6: the ACK carrying a valid cookie creates the connection in
/// ESTABLISHED on the accept queue; data in it is kept. With timestamps,
/// the window scale and SACK-permitted the SYN offered come back through
/// TSecr and decode exactly, and the MSS comes back from the cookie.
#[test]
fn test_listen_rfc4987_3_6_cookie_ack_establishes_with_options_and_data() {
    let mut cfg = config();
    cfg.timestamps = true;
    cfg.sack = true;
    cfg.window_scaling = true;
    cfg.recv_buffer = 1 << 20;
    cfg.recv_buffer_max = 1 << 20;
    cfg.syn_cookies = SynCookies::Always;
    let mut h = Harness::new(cfg);
    let lid = h.stack.listen(LOCAL, 4).unwrap();
    let syn_opts = TcpOptions {
        mss: Some(1448),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1000, 0)),
        ..TcpOptions::default()
    };
    syn_from(&mut h, REMOTE, REMOTE_ISS, syn_opts);
    let synack = h.expect_one();
    assert_eq!(h.stack.connection_count(), 0, "Always: no state");
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.tcp.ack, SeqNum(REMOTE_ISS + 1));
    assert_eq!(synack.tcp.options.window_scale, Some(5));
    assert!(synack.tcp.options.sack_permitted);
    let (tsval, tsecr) = synack.tcp.options.timestamps.unwrap();
    assert_eq!(tsecr, 1000);
    h.advance(Duration::from_millis(10));
    let ack_opts = TcpOptions {
        timestamps: Some((1010, tsval)),
        ..TcpOptions::default()
    };
    let seq = SeqNum(REMOTE_ISS + 1);
    ack_from(
        &mut h,
        REMOTE,
        seq,
        synack.tcp.seq + 1,
        ack_opts,
        100,
        b"hello",
    );
    let id = h
        .stack
        .accept(lid)
        .expect("the cookie connection is on the accept queue");
    h.conn = Some(id);
    assert_eq!(h.state(), State::Established);
    assert_eq!(h.stack.stats().syncookies_validated, 1);
    let info = h.stack.info(id).unwrap();
    assert!(
        info.window_scaling && info.sack && info.timestamps,
        "{info:?}"
    );
    // MSS 1448 travels as the table's 1440; timestamps take 12 of it.
    assert_eq!(info.mss, 1440 - 12);
    // The peer's window scale is exactly 7.
    assert_eq!(info.send_window, 100 << 7);
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(id, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    // The data is acknowledged, with timestamps continuing from the cookie's.
    let ack = h.run_timers_until(h.now + Duration::from_millis(100));
    assert!(ack.iter().any(|o| o.tcp.ack == seq + 5), "{ack:#?}");
    let ts = ack[0].tcp.options.timestamps.unwrap();
    assert!(ts.0.wrapping_sub(tsval) < 1000 && ts.1 == 1010, "{ts:?}");
}

/// RFC 4987 3.6: without timestamps a cookie connection falls back to no
/// window scaling and no SACK.
#[test]
fn test_listen_rfc4987_3_6_cookie_without_timestamps_has_no_ws_or_sack() {
    let mut cfg = config();
    cfg.sack = true;
    cfg.window_scaling = true;
    cfg.syn_cookies = SynCookies::Always;
    let mut h = Harness::new(cfg);
    let lid = h.stack.listen(LOCAL, 4).unwrap();
    let opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    syn_from(&mut h, REMOTE, REMOTE_ISS, opts);
    let synack = h.expect_one();
    assert_eq!(synack.tcp.options.window_scale, None);
    assert!(!synack.tcp.options.sack_permitted);
    let seq = SeqNum(REMOTE_ISS + 1);
    ack_from(
        &mut h,
        REMOTE,
        seq,
        synack.tcp.seq + 1,
        TcpOptions::default(),
        100,
        &[],
    );
    let id = h.stack.accept(lid).unwrap();
    let info = h.stack.info(id).unwrap();
    assert!(!info.window_scaling && !info.sack && !info.timestamps);
    assert_eq!(info.mss, 1460);
    assert_eq!(info.send_window, 100);
}

/// RFC 4987 3.6: cookie ACKs with a bad hash, an old counter or a wrong
/// sequence number create nothing; they are dropped (no RST) and counted.
#[test]
fn test_listen_rfc4987_3_6_bad_cookie_acks_create_nothing() {
    let mut cfg = config();
    cfg.syn_cookies = SynCookies::Always;
    let mut h = Harness::new(cfg);
    let lid = h.stack.listen(LOCAL, 4).unwrap();
    syn_from(&mut h, REMOTE, REMOTE_ISS, TcpOptions::default());
    let cookie = h.expect_one().tcp.seq;
    let seq = SeqNum(REMOTE_ISS + 1);
    let bad = [
        (seq, cookie + 2),
        (seq, cookie),
        (seq, cookie + 1 + (1usize << 8)),
        (seq + 1, cookie + 1),
        (seq - 1, cookie + 1),
    ];
    for (i, &(s, a)) in bad.iter().enumerate() {
        ack_from(&mut h, REMOTE, s, a, TcpOptions::default(), 1000, b"x");
        h.expect_none();
        assert_eq!(h.stack.stats().syncookies_rejected, i as u64 + 1);
    }
    // An old counter: the same cookie 200 s later (another SYN keeps
    // cookies "recently sent" so the ACK is still checked).
    h.advance(Duration::from_secs(200));
    syn_from(&mut h, peer(9999), 5, TcpOptions::default());
    h.output();
    ack_from(
        &mut h,
        REMOTE,
        seq,
        cookie + 1,
        TcpOptions::default(),
        1000,
        &[],
    );
    h.expect_none();
    assert_eq!(h.stack.stats().syncookies_rejected, 6);
    assert_eq!(h.stack.connection_count(), 0);
    assert!(h.stack.accept(lid).is_none());
    // Without a recent cookie, an ACK to a listener gets a RST as before.
    h.advance(Duration::from_secs(200));
    ack_from(
        &mut h,
        REMOTE,
        seq,
        cookie + 1,
        TcpOptions::default(),
        1000,
        &[],
    );
    assert!(h.expect_one().flags().rst());
}

/// `SynCookies::Off`: a full SYN queue evicts its oldest half-open
/// connection that already retransmitted its SYN-ACK, and takes the SYN.
#[test]
fn test_listen_syn_queue_full_without_cookies_evicts_oldest_retransmitted() {
    let cfg = Config {
        syn_cookies: SynCookies::Off,
        ..config()
    };
    let (mut h, _) = socket_listen_syn_queue_full(cfg);
    // Nothing retransmitted yet: the new SYN is dropped.
    syn_from(&mut h, peer(7000), 1, TcpOptions::default());
    h.expect_none();
    assert_eq!(h.stack.stats().drop_listen_overflow, 1);
    // After the SYN-ACK retransmissions, the oldest embryo makes room.
    let out = h.run_timers_until(h.now + Duration::from_millis(1100));
    assert_eq!(out.len(), 8, "{out:#?}");
    syn_from(&mut h, peer(7001), 1, TcpOptions::default());
    let synack = h.expect_one();
    assert_eq!(synack.tcp.dst_port, 7001);
    assert_eq!(h.stack.stats().syn_queue_evictions, 1);
    assert_eq!(h.stack.connection_count(), 8);
}

/// Linux `tcp_synack_retries` (5): a half-open connection whose peer never
/// answers is dropped after five SYN-ACK retransmissions.
#[test]
fn test_syn_received_synack_retransmissions_are_bounded() {
    let (mut h, _) = socket_syn_received();
    let out = h.run_timers_until(h.now + Duration::from_secs(300));
    let synacks = out.iter().filter(|o| o.flags().syn()).count();
    assert_eq!(synacks, 5, "{out:#?}");
    assert_eq!(h.stack.connection_count(), 0);
}

/// As Linux with `tcp_abort_on_overflow` = 0: when the accept queue is
/// full, the final ACK of a handshake is dropped and the half-open
/// connection stays; the SYN-ACK retransmission lets it complete later.
#[test]
fn test_syn_received_final_ack_dropped_while_accept_queue_full() {
    let mut h = Harness::new(config());
    let lid = h.stack.listen(LOCAL, 1).unwrap();
    let (a, b) = (peer(5001), peer(5002));
    syn_from(&mut h, a, 100, TcpOptions::default());
    syn_from(&mut h, b, 200, TcpOptions::default());
    let synacks = h.output();
    assert_eq!(synacks.len(), 2);
    let iss = |port: u16| {
        synacks
            .iter()
            .find(|o| o.tcp.dst_port == port)
            .unwrap()
            .tcp
            .seq
    };
    let (ia, ib) = (iss(5001), iss(5002));
    ack_from(
        &mut h,
        a,
        SeqNum(101),
        ia + 1,
        TcpOptions::default(),
        1000,
        &[],
    );
    // The accept queue (backlog 1) is full: b's ACK is dropped.
    ack_from(
        &mut h,
        b,
        SeqNum(201),
        ib + 1,
        TcpOptions::default(),
        1000,
        &[],
    );
    h.expect_none();
    assert_eq!(h.stack.stats().accept_queue_overflows, 1);
    assert!(h.stack.accept(lid).is_some());
    assert!(h.stack.accept(lid).is_none());
    // b's SYN-ACK is retransmitted; b's ACK in reply completes it.
    let out = h.run_timers_until(h.now + Duration::from_millis(1100));
    assert!(out
        .iter()
        .any(|o| o.tcp.dst_port == 5002 && o.flags().syn()));
    ack_from(
        &mut h,
        b,
        SeqNum(201),
        ib + 1,
        TcpOptions::default(),
        1000,
        &[],
    );
    assert!(h.stack.accept(lid).is_some());
}

/// Bounded memory (Linux `tcp_mem`): at `max_buffer_memory`, as the front
/// end reports it, `connect` fails with `Exhausted` (ENOBUFS-like) and
/// SYNs are dropped and counted; below it both work again.
#[test]
fn test_listen_and_connect_refused_at_the_buffer_memory_limit() {
    let mut h = Harness::new(Config {
        max_buffer_memory: 1 << 20,
        ..config()
    });
    let lid = h.stack.listen(LOCAL, 4).unwrap();
    h.stack.set_buffer_memory(1 << 20);
    let local = SocketAddrV4::new(LOCAL_IP, 50000);
    assert_eq!(
        h.stack.connect(h.now, Some(local.into()), REMOTE),
        Err(Error::Exhausted)
    );
    syn_from(&mut h, peer(7000), 1, TcpOptions::default());
    h.expect_none();
    assert_eq!(h.stack.stats().drop_memory, 1);
    assert_eq!(h.stack.connection_count(), 0);
    // Memory freed: both work.
    h.stack.set_buffer_memory(512 << 10);
    syn_from(&mut h, peer(7000), 1, TcpOptions::default());
    assert!(h.expect_one().flags().syn());
    assert!(h.stack.connect(h.now, Some(local.into()), REMOTE).is_ok());
    assert!(h.stack.accept(lid).is_none());
}

/// Every resource bounded: a listener's bookkeeping of its half-open
/// connections does not grow with the connections it ever accepted (the
/// soak test found 8 bytes left behind per connection).
#[test]
fn test_listen_embryo_list_stays_bounded_over_many_connections() {
    let mut h = Harness::new(config());
    let lid = h.stack.listen(LOCAL, 4).unwrap();
    for i in 0..5000u32 {
        let remote = peer(1024 + (i % 60000) as u16);
        syn_from(&mut h, remote, i, TcpOptions::default());
        let synack = h.expect_one();
        ack_from(
            &mut h,
            remote,
            SeqNum(i + 1),
            synack.tcp.seq + 1,
            TcpOptions::default(),
            1000,
            &[],
        );
        let id = h.stack.accept(lid).unwrap();
        h.stack.abort(id).unwrap();
        h.output();
        assert!(
            h.stack.listener_embryo_entries(lid) <= 2 * 8 + 16 + 1,
            "{} entries after {i} connections",
            h.stack.listener_embryo_entries(lid)
        );
    }
}
