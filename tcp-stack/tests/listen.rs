//! The listen backlog, with connections a front end took from the accept
//! queue but its application has not accepted yet
//! (`Stack::set_listener_waiting`).

use std::net::{Ipv4Addr, SocketAddrV4};
use tcp_stack::{Config, ConnId, Duration, Instant, Stack, State};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A client stack `a` and a server stack `b` on a lossless link.
struct Pair {
    a: Stack,
    b: Stack,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let cfg = |addr, seed| Config {
            seed,
            ..Config::with_addr(addr)
        };
        Pair {
            a: Stack::new(cfg(A, 1)),
            b: Stack::new(cfg(B, 2)),
            now: Instant::from_micros(0),
        }
    }

    /// Carries packets both ways until both are quiet, then lets 1 ms pass.
    fn step(&mut self) {
        let mut buf = vec![0u8; 1500];
        loop {
            let mut moved = false;
            while let Some(n) = self.a.poll_transmit(self.now, &mut buf) {
                self.b.handle_packet(self.now, &buf[..n]);
                moved = true;
            }
            while let Some(n) = self.b.poll_transmit(self.now, &mut buf) {
                self.a.handle_packet(self.now, &buf[..n]);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_millis(1);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// Connects from `a` and lets 10 ms pass: established or not.
    fn connect(&mut self, to: SocketAddrV4) -> bool {
        let c: ConnId = self.a.connect(self.now, None, to).unwrap();
        for _ in 0..10 {
            self.step();
        }
        self.a.state(c) == State::Established
    }
}

#[test]
fn connections_a_front_end_holds_count_against_the_backlog() {
    let mut p = Pair::new();
    let addr = SocketAddrV4::new(B, 80);
    let l = p.b.listen(addr, 3).unwrap();
    // A front end took two and still holds them for its application.
    assert!(p.connect(addr));
    assert!(p.connect(addr));
    assert!(p.b.accept(l).is_some());
    assert!(p.b.accept(l).is_some());
    p.b.set_listener_waiting(l, 2).unwrap();
    // Room for one more in the accept queue, then the SYN is dropped.
    assert!(p.connect(addr));
    let overflows = p.b.stats().drop_listen_overflow;
    assert!(!p.connect(addr));
    assert_eq!(p.b.stats().drop_listen_overflow, overflows + 1);
    // The application accepted both: room again.
    p.b.set_listener_waiting(l, 0).unwrap();
    assert!(p.connect(addr));
}
