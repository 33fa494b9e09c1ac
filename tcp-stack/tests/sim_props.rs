//! Property tests: seeded lossy transfers must deliver every byte exactly
//! once, in order, both ways, and both ends must close cleanly.
#![cfg(feature = "sim")]

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tcp_stack::sim::app::{CloseOrder, Transfer, TransferSpec};
use tcp_stack::sim::{LinkConfig, Sim};
use tcp_stack::{Duration, State};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures print the seed; no regression files in the tree.
        failure_persistence: None,
        // The same cases on every run, like the simulator itself.
        rng_seed: RngSeed::Fixed(0x5eed_5eed),
        ..ProptestConfig::default()
    }
}

fn close_order() -> impl Strategy<Value = CloseOrder> {
    prop_oneof![
        Just(CloseOrder::ClientFirst),
        Just(CloseOrder::ServerFirst),
        Just(CloseOrder::Whenever),
    ]
}

/// Runs one transfer to completion (or the deadline) and checks the outcome.
fn check(seed: u64, link: LinkConfig, spec: TransferSpec) -> Result<Transfer, TestCaseError> {
    let (mut sim, c, s) = Sim::pair(seed, link.clone(), |cfg| {
        cfg.msl = Duration::from_secs(2);
    });
    let close = spec.close;
    let spec_text = format!("{spec:?}");
    let mut t = Transfer::start(&mut sim, c, s, spec);
    let deadline = sim.now() + Duration::from_secs(3600);
    let done = sim.run_until(deadline, |sim| t.poll(sim));
    let why = || {
        format!(
            "seed {seed:#x}, link {link:?}\n{spec_text}\n{}",
            t.summary()
        )
    };
    prop_assert!(done, "not finished: {}", why());
    prop_assert!(t.succeeded(), "failed: {}", why());
    let (cl, sv) = (t.client(), t.server());
    prop_assert_eq!(cl.states.last(), Some(&State::Closed), "{}", why());
    prop_assert_eq!(sv.states.last(), Some(&State::Closed), "{}", why());
    // The side that closed first ends in TIME-WAIT; the other does not.
    match close {
        CloseOrder::ClientFirst => {
            prop_assert!(cl.saw(State::TimeWait), "{}", why());
            prop_assert!(!sv.saw(State::TimeWait), "{}", why());
        }
        CloseOrder::ServerFirst => {
            prop_assert!(sv.saw(State::TimeWait), "{}", why());
            prop_assert!(!cl.saw(State::TimeWait), "{}", why());
        }
        CloseOrder::Whenever => {
            prop_assert!(
                cl.saw(State::TimeWait) || sv.saw(State::TimeWait),
                "{}",
                why()
            );
        }
    }
    Ok(t)
}

proptest! {
    #![proptest_config(config(100))]

    /// Loss, duplication, reordering and corruption in both directions,
    /// receivers that renege on SACKed data (RFC 2018 8: forged SACK blocks
    /// the cumulative ACK never covers) and zeroed timestamp echoes (RFC
    /// 7323 4.3).
    #[test]
    fn lossy_transfers_deliver_every_byte_once_in_order(
        seed in any::<u64>(),
        loss in 0.0..0.10f64,
        duplicate in 0.0..0.05f64,
        (renege, zero_tsecr) in (0.0..0.05f64, 0.0..0.05f64),
        reorder in 0.0..0.10f64,
        reorder_ms in 1u64..40,
        corrupt in 0.0..0.05f64,
        latency_ms in 1u64..50,
        client_bytes in 0u64..40_000,
        server_bytes in 0u64..40_000,
        chunk in 1usize..20_000,
        close in close_order(),
    ) {
        let link = LinkConfig::ideal(Duration::from_millis(latency_ms))
            .loss(loss)
            .duplicate(duplicate)
            .reorder(reorder, Duration::from_millis(reorder_ms))
            .corrupt(corrupt)
            .renege(renege)
            .zero_tsecr(zero_tsecr);
        let spec = TransferSpec { client_bytes, server_bytes, seed, close, chunk, ..TransferSpec::default() };
        check(seed, link, spec)?;
    }
}

proptest! {
    #![proptest_config(config(60))]

    /// After one side shuts down it still receives everything the other
    /// sends: the other side only starts sending after the end of stream.
    #[test]
    fn half_closed_connections_deliver_everything(
        seed in any::<u64>(),
        loss in 0.0..0.08f64,
        reorder in 0.0..0.08f64,
        first_bytes in 0u64..20_000,
        late_bytes in 1u64..60_000,
        client_first in any::<bool>(),
    ) {
        let link = LinkConfig::ideal(Duration::from_millis(10))
            .loss(loss)
            .reorder(reorder, Duration::from_millis(10))
            .duplicate(0.01)
            .corrupt(0.01);
        let spec = if client_first {
            TransferSpec {
                client_bytes: first_bytes,
                server_bytes: late_bytes,
                close: CloseOrder::ClientFirst,
                server_sends_after_eof: true,
                seed,
                ..TransferSpec::default()
            }
        } else {
            TransferSpec {
                client_bytes: late_bytes,
                server_bytes: first_bytes,
                close: CloseOrder::ServerFirst,
                client_sends_after_eof: true,
                seed,
                ..TransferSpec::default()
            }
        };
        let t = check(seed, link, spec)?;
        let (closer, other) = if client_first { (t.client(), t.server()) } else { (t.server(), t.client()) };
        // (FIN-WAIT-2 may be skipped: the peer's data, FIN and ACK of our FIN can share a segment.)
        prop_assert!(closer.saw(State::FinWait1), "{}", t.summary());
        prop_assert!(other.saw(State::CloseWait), "{}", t.summary());
        prop_assert_eq!(closer.verified, late_bytes);
    }
}

proptest! {
    #![proptest_config(config(50))]

    /// A rate-limited bottleneck with a small tail-drop queue plus random loss.
    #[test]
    fn bottleneck_transfers_complete(
        seed in any::<u64>(),
        rate_kbps in 500u64..20_000,
        queue_pkts in 4usize..40,
        loss in 0.0..0.03f64,
        latency_ms in 1u64..80,
        client_bytes in 1u64..150_000,
        server_bytes in 0u64..30_000,
    ) {
        let link = LinkConfig::ideal(Duration::from_millis(latency_ms))
            .bandwidth(rate_kbps * 1000, queue_pkts * 1500)
            .loss(loss);
        let spec = TransferSpec { client_bytes, server_bytes, seed, ..TransferSpec::default() };
        check(seed, link, spec)?;
    }
}
