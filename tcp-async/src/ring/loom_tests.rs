//! Loom models of the rings: every interleaving (up to a preemption bound) of
//! a producer and a consumer, with each byte access tracked, so a missing
//! Release/Acquire pair shows up as a data race or a wrong byte.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p tcp-async --lib ring --release`

use loom::thread;
use tcp_stack::{RecvBuffer, SendBuffer};

use super::*;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

#[test]
fn loom_send_ring_wraps_in_order() {
    model(|| {
        // Capacity 3, 4 bytes in chunks of 2: the second chunk wraps, and the
        // first write allocates while the consumer is already looking.
        let (mut w, mut r) = send_ring(3);
        let producer = thread::spawn(move || {
            let data = [1u8, 2, 3, 4];
            let mut sent = 0;
            while sent < data.len() {
                let n = w.write(&data[sent..(sent + 2).min(data.len())]);
                sent += n;
                if n == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut next = 1u8;
        while next <= 4 {
            let mut seg = [0u8; 2];
            let n = r.peek(0, &mut seg);
            for (i, b) in seg[..n].iter().enumerate() {
                assert_eq!(*b, next + i as u8);
            }
            if n == 0 {
                thread::yield_now();
                continue;
            }
            r.consume(n);
            next += n as u8;
        }
        producer.join().unwrap();
    });
}

#[test]
fn loom_send_ring_peek_at_offset_while_writing() {
    model(|| {
        let (mut w, r) = send_ring(4);
        assert_eq!(w.write(&[10]), 1);
        let producer = thread::spawn(move || {
            assert_eq!(w.write(&[11, 12]), 2);
        });
        let mut seg = [0u8; 2];
        let n = r.peek(1, &mut seg);
        assert!(n == 0 || seg[..n] == [11, 12][..n]);
        producer.join().unwrap();
        assert_eq!(r.peek(1, &mut seg), 2);
        assert_eq!(seg, [11, 12]);
    });
}

#[test]
fn loom_recv_ring_out_of_order_then_commit() {
    model(|| {
        // Capacity 2: the third byte reuses the first byte's cell.
        let (mut w, mut r) = recv_ring(2);
        let producer = thread::spawn(move || {
            assert_eq!(w.write_at(1, &[2]), 1);
            assert_eq!(w.write_at(0, &[1]), 1);
            w.commit(2);
            while RecvBuffer::free(&w) == 0 {
                thread::yield_now();
            }
            assert_eq!(w.write_at(0, &[3]), 1);
            w.commit(1);
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut buf = [0u8; 2];
            let n = r.read(&mut buf);
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2, 3]);
        producer.join().unwrap();
    });
}

#[test]
fn loom_borrowed_enqueue_never_races_owner_write() {
    model(|| {
        let (mut w, mut r) = send_ring(4);
        let app = thread::spawn(move || w.write(&[1, 2]));
        let stack = r.enqueue(&[3, 4]);
        let app = app.join().unwrap();
        let mut all = [0u8; 4];
        let n = r.peek(0, &mut all);
        assert_eq!(n, app + stack);
        // The application waits out a borrowed use rather than refuse.
        match (app, stack) {
            (2, 2) => assert!(all == [1, 2, 3, 4] || all == [3, 4, 1, 2]),
            (2, 0) => assert_eq!(all[..2], [1, 2]),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn loom_borrowed_read_never_races_owner_read() {
    model(|| {
        let (mut w, mut r) = recv_ring(2);
        w.write_at(0, &[1, 2]);
        w.commit(2);
        let app = thread::spawn(move || {
            let mut b = [0u8; 1];
            let n = r.read(&mut b);
            (n, b[0])
        });
        let mut b = [0u8; 1];
        let n = RecvBuffer::read(&mut w, &mut b);
        // The freed space can be refilled at once without racing the app.
        let refill = w.write_at(0, &[9]);
        let (an, ab) = app.join().unwrap();
        let mut got: Vec<u8> = Vec::new();
        if n == 1 {
            got.push(b[0]);
        }
        if an == 1 {
            got.push(ab);
        }
        got.sort_unstable();
        assert!(got == [1] || got == [1, 2], "{got:?}");
        if n == 1 {
            assert_eq!(refill, 1);
        }
    });
}

#[test]
fn loom_recv_release_races_read() {
    model(|| {
        // The driver frees the storage as soon as the reader caught up, then
        // re-allocates for the next byte; the reader reads a byte at a time.
        // A free before the last read finished, or a read through the freed
        // pointer, shows up as a race on the cells.
        let (mut w, mut r) = recv_ring(2);
        let producer = thread::spawn(move || {
            assert_eq!(w.write_at(0, &[1, 2]), 2);
            w.commit(2);
            while !w.release_if_idle() {
                thread::yield_now();
            }
            assert_eq!(w.write_at(0, &[3]), 1);
            w.commit(1);
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut b = [0u8; 1];
            let n = r.read(&mut b);
            got.extend_from_slice(&b[..n]);
            if n == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2, 3]);
        producer.join().unwrap();
    });
}

#[test]
fn loom_recv_release_races_peek() {
    model(|| {
        // A peek (no consume) keeps the storage: it is freed only once the
        // reader read everything.
        let (mut w, mut r) = recv_ring(2);
        assert_eq!(w.write_at(0, &[7]), 1);
        w.commit(1);
        let reader = thread::spawn(move || {
            let mut b = [0u8; 1];
            assert_eq!(r.peek(&mut b), 1);
            assert_eq!(b, [7]);
            assert_eq!(r.read(&mut b), 1);
            assert_eq!(b, [7]);
            assert_eq!(r.peek(&mut b), 0);
        });
        let released = w.release_if_idle() || w.release_if_idle();
        reader.join().unwrap();
        if !released {
            assert!(w.release_if_idle());
        }
    });
}

#[test]
fn loom_send_release_races_write() {
    model(|| {
        // The driver acks and frees while the application writes the next
        // byte: the write either waits for the free or lands first (and then
        // nothing is freed), and allocates again when needed.
        let (mut w, mut r) = send_ring(2);
        assert_eq!(w.write(&[1]), 1);
        let app = thread::spawn(move || {
            assert_eq!(w.write(&[2]), 1);
        });
        let mut b = [0u8; 1];
        assert_eq!(r.peek(0, &mut b), 1);
        assert_eq!(b, [1]);
        r.consume(1);
        r.release_if_idle();
        r.release_if_idle();
        app.join().unwrap();
        assert_eq!(r.peek(0, &mut b), 1);
        assert_eq!(b, [2]);
    });
}

#[test]
fn loom_recv_grow_races_read() {
    model(|| {
        // The driver grows the ring from 2 to 4 bytes while the reader reads
        // one byte at a time: the copy and the free of the old storage must
        // not overlap a read, and the reader must pick up the new storage
        // and capacity with the next bytes.
        let (mut w, mut r) = recv_ring(2);
        let producer = thread::spawn(move || {
            assert_eq!(w.write_at(0, &[1, 2]), 2);
            w.commit(1);
            while !w.grow(4) {
                thread::yield_now();
            }
            assert_eq!(w.write_at(1, &[3, 4]), 2);
            w.commit(3);
        });
        let mut got = Vec::new();
        while got.len() < 4 {
            let mut b = [0u8; 1];
            let n = r.read(&mut b);
            got.extend_from_slice(&b[..n]);
            if n == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2, 3, 4]);
        producer.join().unwrap();
    });
}

#[test]
fn loom_send_grow_races_write() {
    model(|| {
        // The driver grows the send ring from 2 to 4 bytes while the
        // application writes: the copy and the free of the old storage must
        // not overlap a write, and the writer must use the new storage and
        // capacity afterwards.
        let (mut w, mut r) = send_ring(2);
        let writer = thread::spawn(move || {
            let data = [1u8, 2, 3, 4];
            let mut n = 0;
            while n < data.len() {
                let k = w.write(&data[n..]);
                n += k;
                if k == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut grown = false;
        let mut got = Vec::new();
        while got.len() < 4 {
            if !grown {
                grown = r.grow(4);
            }
            let mut b = [0u8; 1];
            let n = r.peek(0, &mut b);
            got.extend_from_slice(&b[..n]);
            r.consume(n);
            if n == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2, 3, 4]);
        writer.join().unwrap();
    });
}
