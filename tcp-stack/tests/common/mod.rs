//! Two stacks on a lossless link, stepped by hand.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use tcp_stack::{Config, ConnId, Duration, Instant, Stack, State};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A client stack `a` and a server stack `b` on a lossless link.
pub struct Pair {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
}

impl Pair {
    pub fn new() -> Pair {
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
    pub fn step(&mut self) {
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
    pub fn connect(&mut self, to: SocketAddrV4) -> bool {
        let c: ConnId = self.a.connect(self.now, None, to).unwrap();
        for _ in 0..10 {
            self.step();
        }
        self.a.state(c) == State::Established
    }
}
