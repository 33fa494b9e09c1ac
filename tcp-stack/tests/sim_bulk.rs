//! Bulk transfer through a lossy, reordering bottleneck in the simulator.
#![cfg(feature = "sim")]

use tcp_stack::sim::app::{Transfer, TransferSpec};
use tcp_stack::sim::{LinkConfig, Sim};
use tcp_stack::Duration;

#[test]
fn bulk_16mib_with_window_scaling_under_loss_and_reordering() {
    let link = LinkConfig::ideal(Duration::from_millis(10))
        .bandwidth(100_000_000, 1 << 20)
        .loss(0.05)
        .reorder(0.05, Duration::from_millis(3));
    let (mut sim, c, s) = Sim::pair(0xb01c, link, |cfg| {
        cfg.recv_buffer = 1 << 20;
        cfg.send_buffer = 1 << 20;
        cfg.msl = Duration::from_secs(1);
    });
    let spec = TransferSpec {
        client_bytes: 16 << 20,
        server_bytes: 0,
        chunk: 64 * 1024,
        ..TransferSpec::default()
    };
    let mut t = Transfer::start(&mut sim, c, s, spec);
    let mut info = None;
    let deadline = sim.now() + Duration::from_secs(1800);
    let done = sim.run_until(deadline, |sim| {
        if info.is_none() {
            if let (Some(cc), Some(sc)) = (t.client_conn(), t.server_conn()) {
                let ci = sim.stack(c).info(cc);
                if ci.as_ref().is_some_and(|i| i.bytes_acked > 0) {
                    info = Some((ci, sim.stack(s).info(sc)));
                }
            }
        }
        t.poll(sim)
    });
    assert!(done, "not finished:\n{}", t.summary());
    t.assert_success();
    assert_eq!(t.server().verified, 16 << 20);
    let (ci, si) = info.expect("never saw the connection established");
    let (ci, si) = (ci.unwrap(), si.unwrap());
    assert!(ci.window_scaling && si.window_scaling, "{ci:?} {si:?}");
    // A 1 MiB buffer needs a scaled window to be offered at all.
    assert!(si.recv_window > 65535, "{si:?}");
    let st = sim.stack(c).stats();
    assert!(st.retransmits > 0, "{st:?}");
    let elapsed = t.elapsed().unwrap();
    eprintln!(
        "16 MiB in {elapsed:?} virtual, {} retransmits ({} fast), {} RTOs, link {:?}",
        st.retransmits,
        st.fast_retransmits,
        st.rto_expirations,
        sim.link_stats(c, s)
    );
}
