//! The ring fuzz harness: the operations of both rings decoded from bytes
//! and checked against a `VecDeque` model, as the property tests in
//! `tests.rs` do with generated operations. Shared by the cargo-fuzz
//! target `ring` (`fuzz/`) and a stable test over the committed corpus.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;

use tcp_stack::{RecvBuffer, SendBuffer};
use tokio::io::ReadBuf;

use super::{recv_ring, send_ring};

/// At most this many operations are decoded from one input.
pub const MAX_OPS: usize = 512;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The next byte value written: every byte written is distinct from
    /// its neighbours, so a misplaced copy shows.
    fill: u8,
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn more(&self) -> bool {
        self.pos < self.data.len()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.fill = self.fill.wrapping_add(1);
                self.fill
            })
            .collect()
    }
}

/// Runs a ring fuzz input: byte 0 picks the ring (bit 0: receive side),
/// byte 1 its capacity, then operations.
///
/// # Panics
/// When the ring and the model disagree.
pub fn run_ring(data: &[u8]) {
    let mut r = Reader {
        data,
        pos: 0,
        fill: 0,
    };
    let kind = r.u8();
    let cap = usize::from(r.u8() % 64);
    if kind & 1 == 0 {
        send(&mut r, cap);
    } else {
        recv(&mut r, cap);
    }
}

fn send(input: &mut Reader<'_>, cap: usize) {
    let (mut w, mut r) = send_ring(cap);
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut ops = 0;
    while input.more() && ops < MAX_OPS {
        ops += 1;
        let free = cap - model.len();
        match input.u8() % 6 {
            0 => {
                let len = usize::from(input.u8() % 32);
                let d = input.bytes(len);
                let n = w.write(&d);
                assert_eq!(n, d.len().min(free), "write");
                model.extend(&d[..n]);
            }
            1 => {
                let len = usize::from(input.u8() % 32);
                let d = input.bytes(len);
                let n = r.enqueue(&d);
                assert_eq!(n, d.len().min(free), "enqueue");
                model.extend(&d[..n]);
            }
            2 => {
                let count = usize::from(input.u8() % 5);
                let bufs: Vec<Vec<u8>> = (0..count)
                    .map(|_| {
                        let len = usize::from(input.u8() % 16);
                        input.bytes(len)
                    })
                    .collect();
                let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                let all: Vec<u8> = bufs.concat();
                let n = w.write_vectored(&slices);
                assert_eq!(n, all.len().min(free), "write_vectored");
                model.extend(&all[..n]);
            }
            3 => {
                let offset = usize::from(input.u8() % 72);
                let len = usize::from(input.u8() % 72);
                let mut dst = vec![0xEE; len];
                let n = r.peek(offset, &mut dst);
                let want: Vec<u8> = model.iter().skip(offset).take(len).copied().collect();
                assert_eq!(&dst[..n], &want[..], "peek({offset}, {len})");
            }
            4 => {
                let n = usize::from(input.u8() % 72);
                r.consume(n);
                model.drain(..n.min(model.len()));
            }
            _ => {
                // Twice: the first call may only note the tail.
                r.release_if_idle();
                let released = r.release_if_idle();
                assert_eq!(released, model.is_empty(), "release_if_idle");
                assert_eq!(r.ring.has_storage(), !released, "storage after release");
            }
        }
        assert_eq!(w.len(), model.len(), "writer len");
        assert_eq!(SendBuffer::len(&r), model.len(), "reader len");
        assert_eq!(w.free(), cap - model.len(), "writer free");
        assert_eq!(SendBuffer::free(&r), cap - model.len(), "reader free");
        assert_eq!(w.capacity(), cap, "capacity");
    }
}

fn recv(input: &mut Reader<'_>, cap: usize) {
    let mut cap = cap;
    let (mut w, mut r) = recv_ring(cap);
    // Readable bytes, then the out-of-order area (relative to the tail);
    // `None`: never written, any value is fine.
    let mut readable: VecDeque<Option<u8>> = VecDeque::new();
    let mut pending: Vec<Option<u8>> = vec![None; cap];
    let mut ops = 0;
    while input.more() && ops < MAX_OPS {
        ops += 1;
        let free = cap - readable.len();
        match input.u8() % 9 {
            0 => {
                let offset = usize::from(input.u8() % 72);
                let len = usize::from(input.u8() % 32);
                let d = input.bytes(len);
                let n = w.write_at(offset, &d);
                let want = if offset >= free {
                    0
                } else {
                    d.len().min(free - offset)
                };
                assert_eq!(n, want, "write_at({offset}, {len})");
                for (i, b) in d[..n].iter().enumerate() {
                    pending[offset + i] = Some(*b);
                }
            }
            1 => {
                let n = usize::from(input.u8() % 72);
                w.commit(n);
                let n = n.min(free);
                readable.extend(pending.drain(..n));
                pending.resize(cap, None);
            }
            op @ (2..=4) => {
                let len = usize::from(input.u8() % 72);
                let mut dst = vec![0u8; len];
                let n = match op {
                    2 => r.read(&mut dst),
                    3 => w.read(&mut dst),
                    _ => {
                        let mut rb = ReadBuf::new(&mut dst);
                        let n = r.read_buf(&mut rb);
                        assert_eq!(rb.filled().len(), n, "read_buf filled");
                        n
                    }
                };
                assert_eq!(n, len.min(readable.len()), "read({len})");
                assert_matches(readable.drain(..n), &dst[..n]);
            }
            op @ (5 | 6) => {
                let len = usize::from(input.u8() % 72);
                let mut dst = vec![0u8; len];
                let n = if op == 5 {
                    r.peek(&mut dst)
                } else {
                    w.peek(&mut dst)
                };
                assert_eq!(n, len.min(readable.len()), "peek({len})");
                assert_matches(readable.iter().copied(), &dst[..n]);
            }
            7 => {
                w.release_if_idle();
                let released = w.release_if_idle();
                let ooo = pending.iter().any(Option::is_some);
                assert_eq!(released, readable.is_empty() && !ooo, "release_if_idle");
                if released {
                    pending.iter_mut().for_each(|b| *b = None);
                }
            }
            _ => {
                let extra = usize::from(input.u8() % 8);
                let head = r.ring.head.load(Ordering::Relaxed);
                let tail = r.ring.tail.load(Ordering::Relaxed);
                let grown = w.grow(cap + extra);
                // Refused only when the bytes straddle the position wrap.
                assert_eq!(grown, extra == 0 || head <= tail, "grow(+{extra})");
                if grown {
                    cap += extra;
                    pending.resize(cap, None);
                }
            }
        }
        assert_eq!(r.len(), readable.len(), "reader len");
        assert_eq!(RecvBuffer::len(&w), readable.len(), "writer len");
        assert_eq!(RecvBuffer::free(&w), cap - readable.len(), "writer free");
        assert_eq!(r.capacity(), cap, "capacity");
    }
}

/// Bytes from `model` (`None` = never written) match `got`.
#[track_caller]
fn assert_matches(model: impl Iterator<Item = Option<u8>>, got: &[u8]) {
    for (i, (m, g)) in model.zip(got).enumerate() {
        if let Some(m) = m {
            assert_eq!(m, *g, "byte {i}");
        }
    }
}

/// Seed inputs: each operation of both rings at a few capacities.
pub fn seed_inputs() -> Vec<(String, Vec<u8>)> {
    vec![
        // Send ring, capacity 8: write 5, peek, consume 3, write 6 (wraps),
        // vectored write, enqueue, release.
        (
            "send_wrap".to_string(),
            vec![
                0, 8, 0, 5, 3, 0, 8, 4, 3, 0, 6, 2, 2, 1, 2, 1, 1, 3, 3, 1, 16, 5, 4, 40, 5,
            ],
        ),
        // Receive ring, capacity 8: out-of-order write, in-order write,
        // commit, reads of each kind, peeks, grow, release.
        (
            "recv_ooo".to_string(),
            vec![
                1, 8, 0, 4, 3, 0, 0, 4, 1, 6, 2, 3, 5, 8, 6, 8, 3, 2, 4, 1, 1, 7, 8, 3, 0, 0, 2, 1,
                2, 2, 8, 7,
            ],
        ),
        // Zero capacity: nothing is ever held.
        ("send_zero".to_string(), vec![0, 0, 0, 3, 1, 3, 3, 0, 2, 5]),
        ("recv_zero".to_string(), vec![1, 0, 0, 0, 3, 1, 3, 2, 4, 7]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ring");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus in {}", dir.display());
        files
            .iter()
            .map(|p| std::fs::read(p).expect("read"))
            .collect()
    }

    /// The committed corpus, then pseudo-random inputs from a fixed seed.
    #[test]
    fn ring_corpus_and_random_inputs() {
        for input in corpus() {
            run_ring(&input);
        }
        let mut x: u64 = 0x7269_6e67;
        let mut next = move || {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        };
        for _ in 0..50_000 {
            let len = usize::from(next()) + 2;
            let input: Vec<u8> = (0..len).map(|_| next()).collect();
            run_ring(&input);
        }
    }

    #[test]
    fn seed_inputs_match_the_committed_corpus() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ring");
        for (name, data) in seed_inputs() {
            let committed = std::fs::read(dir.join(&name)).unwrap_or_default();
            assert_eq!(
                committed, data,
                "fuzz/corpus/ring/{name} is stale: run `cargo test -p tcp-async write_seed_corpus -- --ignored`"
            );
        }
    }

    #[test]
    #[ignore = "writes files: run by hand when the seeds change"]
    fn write_seed_corpus() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ring");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, data) in seed_inputs() {
            std::fs::write(dir.join(name), data).expect("write");
        }
    }
}
