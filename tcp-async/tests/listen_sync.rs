//! `TcpSocket::bind` and `listen` as tokio's: synchronous, with the
//! conflicts reported by `bind`, port 0 chosen at bind, and `SO_REUSEPORT`
//! listeners sharing a port.

mod common;

use common::{addr, config, stacks, within, Observed, A, B};
use std::io::ErrorKind;
use tcp_async::{TcpListener, TcpSocket, TcpStream};

/// `listen` does not wait for the driver: it works on a current-thread
/// runtime before the driver task ever ran, and connections arrive.
#[tokio::test(flavor = "current_thread")]
async fn listen_is_synchronous_on_the_drivers_thread() {
    let (a, b) = stacks();
    let socket = TcpSocket::new_v4_with(&a);
    socket.bind(addr(A, 0)).unwrap();
    let local = socket.local_addr().unwrap();
    assert_ne!(local.port(), 0, "bind to port 0 chose a port");
    let listener = socket.listen(8).unwrap();
    assert_eq!(listener.local_addr().unwrap(), local);
    let (client, accepted) = within("connect+accept", async {
        tokio::join!(TcpStream::connect_with(&b, local), listener.accept())
    })
    .await;
    let (client, (server, peer)) = (client.unwrap(), accepted.unwrap());
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.local_addr().unwrap(), local);
}

/// Linux `bind()`: EADDRINUSE at bind time against a listener (also through
/// the wildcard), and the address is free again once the listener is gone.
#[tokio::test]
async fn bind_reports_addr_in_use_and_the_port_comes_back() {
    let (a, _b) = stacks();
    let listener = TcpListener::bind_with(&a, addr(A, 700)).await.unwrap();
    let socket = TcpSocket::new_v4_with(&a);
    let err = socket.bind(addr(A, 700)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let socket = TcpSocket::new_v4_with(&a);
    socket.set_reuseaddr(true).unwrap();
    let err = socket.bind("0.0.0.0:700".parse().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let err = TcpListener::bind_with(&a, addr(A, 700)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    // Binding twice is EINVAL.
    let socket = TcpSocket::new_v4_with(&a);
    socket.bind(addr(A, 701)).unwrap();
    assert_eq!(
        socket.bind(addr(A, 702)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    drop(listener);
    let again = TcpSocket::new_v4_with(&a);
    again.bind(addr(A, 700)).unwrap();
    again.listen(4).unwrap();
}

/// Two sockets with `SO_REUSEADDR` may bind one address while neither
/// listens; only one of them may then listen.
#[tokio::test]
async fn reuseaddr_shares_a_bound_address_not_a_listener() {
    let (a, _b) = stacks();
    let s1 = TcpSocket::new_v4_with(&a);
    let s2 = TcpSocket::new_v4_with(&a);
    for s in [&s1, &s2] {
        s.set_reuseaddr(true).unwrap();
        s.bind(addr(A, 710)).unwrap();
    }
    let _l1 = s1.listen(4).unwrap();
    assert_eq!(s2.listen(4).unwrap_err().kind(), ErrorKind::AddrInUse);
}

/// `SO_REUSEPORT`: listeners that all set it share the port and new
/// connections are spread among them (by the four-tuple's hash).
#[tokio::test]
async fn reuseport_listeners_share_connections() {
    let (a, b) = stacks();
    let listen = || {
        let s = TcpSocket::new_v4_with(&a);
        s.set_reuseport(true).unwrap();
        assert!(s.reuseport().unwrap());
        s.bind(addr(A, 720)).unwrap();
        s.listen(64).unwrap()
    };
    let (l1, l2) = (listen(), listen());
    // One without it still conflicts.
    let plain = TcpSocket::new_v4_with(&a);
    assert_eq!(
        plain.bind(addr(A, 720)).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    let mut clients = Vec::new();
    for _ in 0..16 {
        let c = within("connect", TcpStream::connect_with(&b, addr(A, 720)))
            .await
            .unwrap();
        clients.push(c);
    }
    let count = |l: &TcpListener| {
        let mut n = 0;
        while let std::task::Poll::Ready(r) =
            l.poll_accept(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            r.unwrap();
            n += 1;
        }
        n
    };
    // Let the driver move the connections to the listeners' queues.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (n1, n2) = (count(&l1), count(&l2));
    assert_eq!(n1 + n2, 16);
    assert!(n1 > 0 && n2 > 0, "spread: {n1} and {n2}");
}

/// A one-shot action run when a packet is handed to the driver.
type Hook = std::sync::Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// `listen()` returns before the driver has seen the listener (it is a
/// command to the driver task), but a SYN that arrives after it returned
/// must still find the listener, as on Linux, where `listen()` returns
/// with the socket in LISTEN (RFC 9293 3.10.1: a passive OPEN, then SYNs
/// are accepted). Here the listen happens after the driver read its
/// commands for the round and before it reads the SYN from the device: the
/// driver must take the commands that came before a packet first, or the
/// SYN draws a RST (it did: `connect` refused about once in 120 tries on a
/// multi-threaded runtime).
#[tokio::test]
async fn a_syn_right_after_listen_finds_the_listener() {
    let (da, db) = tcp_async::device::MemoryDevice::pair(1500);
    let hook: Hook = Default::default();
    // The hook runs once, when the first packet is handed over, just
    // before: between the driver's reading of its commands and of that
    // packet.
    let first = hook.clone();
    let a = tcp_async::Stack::builder(Observed {
        inner: da,
        on_recv: move |_: &[u8]| {
            if let Some(hook) = first.lock().unwrap().take() {
                hook();
            }
        },
    })
    .config(config(A, 1))
    .build()
    .unwrap();
    let b = tcp_async::Stack::builder(db)
        .config(config(B, 2))
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = a.clone();
    *hook.lock().unwrap() = Some(Box::new(move || {
        let socket = TcpSocket::new_v4_with(&server);
        socket.bind(addr(A, 80)).unwrap();
        tx.send(socket.listen(16).unwrap()).unwrap();
    }));
    // The SYN reaches `a`'s device; reading it runs the hook (the listen),
    // then the driver handles the SYN.
    let client = within("connect", TcpStream::connect_with(&b, addr(A, 80))).await;
    let listener = rx.try_recv().expect("the hook ran when the SYN was read");
    let client = client.expect("the SYN found the listener: no RST");
    let (server, peer) = within("accept", listener.accept()).await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop(server);
}
