//! Closing: what a front end learns about connections still closing
//! after its application is gone.

mod common;

use common::{Pair, B};
use std::net::SocketAddrV4;
use tcp_stack::State;

/// Linux keeps delivering after `close()` without linger: a front end
/// whose application is gone drives the stack while
/// `active_connection_count` is not 0. TIME-WAIT (RFC 9293 3.4.2) only
/// guards the tuple and does not count.
#[test]
fn active_connections_leave_out_time_wait() {
    let mut p = Pair::new();
    let addr = SocketAddrV4::new(B, 80);
    let l = p.b.listen(addr, 4).unwrap();
    let ca = p.a.connect(p.now, None, addr).unwrap();
    p.step();
    let cb = p.b.accept(l).unwrap();
    assert_eq!(p.a.active_connection_count(), 1);
    p.a.send(ca, &[7; 100_000]).unwrap();
    p.a.close(ca).unwrap();
    // Data and FIN still to deliver: the closed connection is active.
    assert_eq!(p.a.active_connection_count(), 1);
    p.step();
    let mut buf = vec![0; 200_000];
    let mut got = 0;
    for _ in 0..1000 {
        match p.b.recv(cb, &mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => {}
        }
        p.step();
    }
    assert_eq!(got, 100_000);
    // FIN-WAIT-2 until the peer closes too.
    assert_eq!(p.a.state(ca), State::FinWait2);
    assert_eq!(p.a.active_connection_count(), 1);
    p.b.close(cb).unwrap();
    p.step();
    assert_eq!(p.a.state(ca), State::TimeWait);
    assert_eq!(p.a.active_connection_count(), 0);
    assert_eq!(p.a.connection_count(), 1);
}
