//! CUBIC (RFC 9438, with RFC 9406 HyStart++) against NewReno on a lossy
//! long-ish path in the simulator. Virtual time is deterministic, so the
//! comparison is exact and repeatable, not a wall-clock threshold.
#![cfg(feature = "sim")]

use tcp_stack::sim::app::{Transfer, TransferSpec};
use tcp_stack::sim::{LinkConfig, Sim};
use tcp_stack::{CongestionControl, Duration};

const BYTES: u64 = 8 << 20;

/// Transfers 8 MiB client to server over 100 Mbit/s, 20 ms one way, 0.5%
/// loss, and returns the virtual completion time.
fn transfer(cc: CongestionControl) -> Duration {
    let link = LinkConfig::ideal(Duration::from_millis(20))
        .bandwidth(100_000_000, 1 << 20)
        .loss(0.005);
    let (mut sim, c, s) = Sim::pair(0xc0b1c, link, |cfg| {
        cfg.recv_buffer = 4 << 20;
        cfg.send_buffer = 4 << 20;
        cfg.msl = Duration::from_secs(1);
        cfg.congestion_control = cc;
    });
    let spec = TransferSpec {
        client_bytes: BYTES,
        server_bytes: 0,
        chunk: 64 * 1024,
        ..TransferSpec::default()
    };
    let mut t = Transfer::start(&mut sim, c, s, spec);
    let deadline = sim.now() + Duration::from_secs(600);
    let done = sim.run_until(deadline, |sim| t.poll(sim));
    assert!(done, "{cc:?} not finished:\n{}", t.summary());
    t.assert_success();
    assert_eq!(t.server().verified, BYTES, "{cc:?}");
    let elapsed = t.elapsed().expect("finished transfer has a duration");
    let st = sim.stack(c).stats();
    eprintln!(
        "{cc:?}: 8 MiB in {elapsed:?} virtual, {} retransmits ({} fast), {} RTOs, link {:?}",
        st.retransmits,
        st.fast_retransmits,
        st.rto_expirations,
        sim.link_stats(c, s)
    );
    elapsed
}

#[test]
fn cubic_and_newreno_8mib_over_lossy_100mbit_20ms() {
    let reno = transfer(CongestionControl::NewReno);
    let cubic = transfer(CongestionControl::Cubic);
    eprintln!("NewReno {reno:?}, CUBIC {cubic:?}");
    // CUBIC may not lose more than 10% against NewReno.
    assert!(
        cubic.as_secs_f64() <= reno.as_secs_f64() * 1.10,
        "CUBIC {cubic:?} vs NewReno {reno:?}"
    );
}
