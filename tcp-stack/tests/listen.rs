//! The listen backlog, with connections a front end took from the accept
//! queue but its application has not accepted yet
//! (`Stack::set_listener_waiting`).

mod common;

use common::{Pair, B};
use std::net::SocketAddrV4;

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
