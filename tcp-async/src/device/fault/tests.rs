use std::time::Duration;

use tokio::time::Instant;

use super::super::test_util::*;
use super::super::MemoryDevice;
use super::*;

/// A pair with room for every packet a test sends.
fn big_pair() -> (MemoryDevice, MemoryDevice) {
    MemoryDevice::pair_with_capacity(1500, 50_000)
}

/// Sends `count` numbered packets through an injector on the send side and
/// returns what arrives (without waiting for held packets) and the stats.
async fn through_send(faults: Faults, count: u32) -> (Vec<Vec<u8>>, FaultStats) {
    let (a, mut b) = big_pair();
    let mut inj = FaultInjector::new(a, faults);
    for i in 0..count {
        send(&mut inj, &numbered(i, 40 + (i % 50) as usize))
            .await
            .unwrap();
    }
    let got = drain_now(&mut b).await;
    (got, inj.stats())
}

/// Like [`through_send`], with the injector on the receiving side.
async fn through_recv(faults: Faults, count: u32) -> (Vec<Vec<u8>>, FaultStats) {
    let (mut a, b) = big_pair();
    let mut inj = FaultInjector::new(b, faults);
    for i in 0..count {
        send(&mut a, &numbered(i, 40 + (i % 50) as usize))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    // `poll_recv` yields after a bounded number of lost packets.
    while inj.get_ref().queued() > 0 {
        got.extend(drain_now(&mut inj).await);
    }
    (got, inj.stats())
}

/// Every packet ready now, ignoring tokio's cooperative budget.
async fn drain_now(dev: &mut impl Device) -> Vec<Vec<u8>> {
    tokio::task::unconstrained(async { std::iter::from_fn(|| try_recv(dev)).collect() }).await
}

fn numbers(packets: &[Vec<u8>]) -> Vec<u32> {
    packets.iter().map(|p| number(p)).collect()
}

#[tokio::test]
async fn test_no_faults_by_default() {
    let (got, stats) = through_send(Faults::default(), 500).await;
    assert_eq!(numbers(&got), (0..500).collect::<Vec<_>>());
    assert_eq!(stats, FaultStats::default());
}

#[tokio::test]
async fn test_loss_rate_near_configured_both_directions() {
    let faults = Faults {
        seed: 1,
        loss: 0.1,
        ..Faults::default()
    };
    for (got, stats) in [
        through_send(faults.clone(), 10_000).await,
        through_recv(faults.clone(), 10_000).await,
    ] {
        assert!((800..=1200).contains(&stats.dropped), "{stats:?}");
        assert_eq!(got.len() as u64, 10_000 - stats.dropped);
        let n = numbers(&got);
        assert!(n.windows(2).all(|w| w[0] < w[1]), "order kept");
        assert_eq!(stats.duplicated + stats.corrupted + stats.reordered, 0);
    }
}

#[tokio::test]
async fn test_same_seed_same_fates() {
    let faults = |seed| Faults {
        seed,
        loss: 0.1,
        duplicate: 0.1,
        corrupt: 0.1,
        ..Faults::default()
    };
    let first = through_send(faults(7), 2000).await;
    assert_eq!(first, through_send(faults(7), 2000).await);
    assert_ne!(first, through_send(faults(8), 2000).await);
    let first = through_recv(faults(7), 2000).await;
    assert_eq!(first, through_recv(faults(7), 2000).await);
}

#[tokio::test]
async fn test_only_the_configured_direction() {
    let faults = Faults {
        loss: 1.0,
        apply_to: Direction::Recv,
        ..Faults::default()
    };
    let (got, stats) = through_send(faults.clone(), 100).await;
    assert_eq!((got.len(), stats.dropped), (100, 0));
    let (got, stats) = through_recv(faults, 100).await;
    assert_eq!((got.len(), stats.dropped), (0, 100));
}

#[tokio::test]
async fn test_duplicate_delivers_twice_in_place() {
    let always = Faults {
        duplicate: 1.0,
        ..Faults::default()
    };
    for (got, stats) in [
        through_send(always.clone(), 100).await,
        through_recv(always.clone(), 100).await,
    ] {
        let want: Vec<u32> = (0..100).flat_map(|i| [i, i]).collect();
        assert_eq!(numbers(&got), want);
        assert_eq!(stats.duplicated, 100);
    }
    let half = Faults {
        seed: 3,
        duplicate: 0.5,
        ..Faults::default()
    };
    let (got, stats) = through_send(half, 2000).await;
    assert!((800..=1200).contains(&stats.duplicated), "{stats:?}");
    assert_eq!(got.len() as u64, 2000 + stats.duplicated);
}

#[tokio::test]
async fn test_corruption_flips_exactly_one_bit() {
    let faults = Faults {
        seed: 11,
        corrupt: 1.0,
        ..Faults::default()
    };
    for (got, stats) in [
        through_send(faults.clone(), 1000).await,
        through_recv(faults.clone(), 1000).await,
    ] {
        assert_eq!(stats.corrupted, 1000);
        assert_eq!(got.len(), 1000);
        for (i, p) in got.iter().enumerate() {
            let orig = numbered(i as u32, 40 + i % 50);
            assert_eq!(p.len(), orig.len());
            let flipped: u32 = p.iter().zip(&orig).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert_eq!(flipped, 1, "packet {i}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn test_delay_holds_every_packet_in_order() {
    let (mut a, b) = big_pair();
    let faults = Faults {
        delay: Duration::from_millis(100),
        apply_to: Direction::Recv,
        ..Faults::default()
    };
    let mut inj = FaultInjector::new(b, faults);
    let start = Instant::now();
    for i in 0..10 {
        send(&mut a, &numbered(i, 40)).await.unwrap();
    }
    assert!(try_recv(&mut inj).is_none());
    for i in 0..10 {
        assert_eq!(number(&recv(&mut inj).await.unwrap()), i);
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
    assert_eq!(inj.stats().delayed, 10);
}

fn reorder_faults(apply_to: Direction) -> Faults {
    Faults {
        seed: 5,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(30),
        apply_to,
        ..Faults::default()
    }
}

/// Sends 1000 packets 1 ms apart from `tx` to `rx`, then keeps polling both
/// (as a driver would) until the stragglers arrive; returns the arrival order.
async fn exchange(tx: &mut impl Device, rx: &mut impl Device) -> Vec<u32> {
    let mut got = Vec::new();
    for i in 0..1000 {
        send(tx, &numbered(i, 40)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        got.extend(drain_now(rx).await.iter().map(|p| number(p)));
    }
    let drain = async {
        loop {
            tokio::select! {
                p = recv(rx) => got.push(number(&p.unwrap())),
                _ = recv(tx) => unreachable!("nothing flows back"),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    got
}

#[track_caller]
fn assert_reordered_but_complete(got: &[u32], stats: FaultStats) {
    assert_eq!(got.len(), 1000);
    let mut sorted = got.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert!((150..=250).contains(&stats.reordered), "{stats:?}");
    let overtaken = got.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(overtaken > 100, "only {overtaken} inversions");
}

#[tokio::test(start_paused = true)]
async fn test_reorder_send_releases_every_packet_eventually() {
    let (a, mut b) = big_pair();
    let mut inj = FaultInjector::new(a, reorder_faults(Direction::Send));
    let got = exchange(&mut inj, &mut b).await;
    assert_eq!(inj.in_flight(), 0);
    assert_reordered_but_complete(&got, inj.stats());
}

#[tokio::test(start_paused = true)]
async fn test_reorder_recv_releases_every_packet_eventually() {
    let (mut a, b) = big_pair();
    let mut inj = FaultInjector::new(b, reorder_faults(Direction::Recv));
    let got = exchange(&mut a, &mut inj).await;
    assert_eq!(inj.in_flight(), 0);
    assert_reordered_but_complete(&got, inj.stats());
}

/// Accepts `credit` packets, then is busy (without a waker: the test polls
/// by hand).
struct Gate {
    inner: MemoryDevice,
    credit: usize,
}

impl Device for Gate {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, buf)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        if self.credit == 0 {
            return Poll::Pending;
        }
        self.credit -= 1;
        self.inner.poll_send(cx, packet)
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
}

#[tokio::test]
async fn test_busy_inner_device_changes_no_fates() {
    let faults = Faults {
        seed: 9,
        loss: 0.2,
        duplicate: 0.3,
        corrupt: 0.1,
        ..Faults::default()
    };
    let (want, want_stats) = through_send(faults.clone(), 300).await;
    let (a, mut b) = big_pair();
    let mut inj = FaultInjector::new(
        Gate {
            inner: a,
            credit: 0,
        },
        faults,
    );
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut busy = 0;
    for i in 0..300u32 {
        let p = numbered(i, 40 + (i % 50) as usize);
        while inj.poll_send(&mut cx, &p).is_pending() {
            busy += 1;
            inj.get_mut().credit += 1;
        }
    }
    assert!(busy > 100, "the gate was busy only {busy} times");
    inj.get_mut().credit = usize::MAX;
    assert!(inj.poll_recv(&mut cx, &mut [0; 1500]).is_pending());
    assert_eq!(inj.in_flight(), 0);
    assert_eq!(drain_now(&mut b).await, want);
    assert_eq!(inj.stats(), want_stats);
}
