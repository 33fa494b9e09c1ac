//! The fuzz harnesses on stable: the committed corpus, the seeds, and
//! pseudo-random inputs from a fixed seed (raw, and mutated seeds).

use super::stack::Fuzzer;
use super::*;
use crate::rng::Rng;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("corpus entry").path();
            let data = std::fs::read(&p).expect("corpus file");
            (p, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

/// Random inputs: raw bytes, and seeds with a few bytes changed, inserted
/// or removed.
fn random_inputs(seeds: &[Vec<u8>], n: usize, max_len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            if i % 2 == 0 || seeds.is_empty() {
                let len = rng.gen_range(0, max_len as u64 + 1) as usize;
                (0..len).map(|_| rng.next_u32() as u8).collect()
            } else {
                let mut v = seeds[i / 2 % seeds.len()].clone();
                for _ in 0..rng.gen_range(1, 8) {
                    let at = rng.gen_range(0, v.len() as u64 + 1) as usize;
                    match rng.gen_range(0, 3) {
                        0 if at < v.len() => v[at] = rng.next_u32() as u8,
                        1 => v.insert(at, rng.next_u32() as u8),
                        _ if at < v.len() => {
                            v.remove(at);
                        }
                        _ => {}
                    }
                }
                v
            }
        })
        .collect()
}

#[test]
fn wire_corpus_and_random_inputs() {
    let seeds: Vec<Vec<u8>> = corpus("wire").into_iter().map(|(_, d)| d).collect();
    for s in &seeds {
        run_wire(s);
    }
    for input in random_inputs(&seeds, 200_000, 120, 0x3173) {
        run_wire(&input);
    }
}

#[test]
fn stack_corpus_and_random_inputs() {
    let seeds: Vec<Vec<u8>> = corpus("stack").into_iter().map(|(_, d)| d).collect();
    for s in &seeds {
        run_stack(s);
    }
    for input in random_inputs(&seeds, 20_000, 400, 0x57ac) {
        run_stack(&input);
    }
}

#[test]
fn stack_ethernet_corpus_and_random_inputs() {
    let seeds: Vec<Vec<u8>> = corpus("stack").into_iter().map(|(_, d)| d).collect();
    let mut sent = 0;
    for s in &seeds {
        run_stack_ethernet(s);
        let (config, actions) = decode_actions(s);
        let mut f = Fuzzer::new_with(config, true);
        for a in &actions {
            f.apply(a, templates());
        }
        sent += f.stack.stats().packets_out;
    }
    // The peer's ARP/NA answers let the stack's datagrams out.
    assert!(seeds.is_empty() || sent > 0, "nothing sent over Ethernet");
    for input in random_inputs(&seeds, 5_000, 400, 0xe7e7) {
        run_stack_ethernet(&input);
    }
}

#[test]
fn seed_inputs_match_the_committed_corpus() {
    for target in ["wire", "stack"] {
        let committed = corpus(target);
        for (name, data) in seed_inputs(target) {
            let found = committed.iter().find(|(p, _)| p.ends_with(&name));
            let (path, bytes) = found.unwrap_or_else(|| panic!("{target}/{name} not committed"));
            assert_eq!(
                bytes,
                &data,
                "{} is stale: run `cargo test -p tcp-stack write_seed_corpus -- --ignored`",
                path.display()
            );
        }
    }
}

#[test]
fn seed_actions_decode_as_encoded() {
    for (name, data) in seed_inputs("stack") {
        let (config, actions) = decode_actions(&data);
        let mut again = vec![config];
        for a in &actions {
            a.encode(&mut again);
        }
        assert_eq!(again, data, "{name}");
    }
}

#[test]
fn listener_seed_replays_the_whole_exchange() {
    let (_, data) = seed_inputs("stack")
        .into_iter()
        .find(|(n, _)| n == "listener_exchange")
        .expect("seed");
    let (config, actions) = decode_actions(&data);
    let mut f = Fuzzer::new(config);
    for a in &actions {
        f.apply(a, templates());
    }
    let stats = f.stack.stats();
    assert_eq!(stats.connections_accepted, 1);
    // The replayed peer segments were all acceptable: no RST, no challenge ACK.
    assert_eq!((stats.rst_sent, stats.challenge_acks), (0, 0));
    assert_eq!(f.stack.connection_count(), 0, "the connection closed");
}

#[test]
fn active_seed_replays_the_whole_exchange() {
    let (_, data) = seed_inputs("stack")
        .into_iter()
        .find(|(n, _)| n == "active_exchange")
        .expect("seed");
    let (config, actions) = decode_actions(&data);
    let mut f = Fuzzer::new(config);
    for a in &actions {
        f.apply(a, templates());
    }
    let stats = f.stack.stats();
    assert_eq!(stats.connections_opened, 1);
    assert_eq!((stats.rst_sent, stats.challenge_acks), (0, 0));
    // The stack closed first, then read the peer's 2000 bytes and FIN.
    let snap = f.stack.fuzz_snapshot();
    assert_eq!(snap.conns.len(), 1);
    assert_eq!(snap.conns[0].state, crate::State::TimeWait);
}

/// Writes the seed inputs into `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes files: run by hand when the harness or the recording changes"]
fn write_seed_corpus() {
    for target in ["wire", "stack"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, data) in seed_inputs(target) {
            std::fs::write(dir.join(name), data).expect("write");
        }
    }
}

/// Prints the seed inputs as actions and the templates (to read a crash
/// input, decode it the same way: `decode_actions`).
#[test]
#[ignore = "prints only"]
fn print_seed_actions() {
    for (name, data) in seed_inputs("stack") {
        let (_, actions) = decode_actions(&data);
        eprintln!("{name}: {actions:?}");
    }
    for (i, t) in templates().iter().enumerate() {
        eprintln!("{i}: {:?} len {}", t.tcp, t.payload.len());
    }
}

/// Prints a stack input as actions while it runs: `FUZZ_INPUT=path cargo test -p
/// tcp-stack --lib print_stack_input -- --ignored --nocapture`.
#[test]
#[ignore = "prints only"]
fn print_stack_input() {
    let Ok(path) = std::env::var("FUZZ_INPUT") else {
        return;
    };
    let data = std::fs::read(path).expect("read FUZZ_INPUT");
    let (config, actions) = decode_actions(&data);
    eprintln!("config {config:#04x}");
    let mut f = Fuzzer::new(config);
    for a in actions {
        eprintln!("{a:?}");
        f.apply(&a, templates());
    }
}

/// Sums the stack's counters over a corpus directory, to see how deep the
/// fuzzer gets: `FUZZ_CORPUS=dir cargo test -p tcp-stack --lib
/// stack_corpus_stats -- --ignored --nocapture`.
#[test]
#[ignore = "prints only"]
fn stack_corpus_stats() {
    let Ok(dir) = std::env::var("FUZZ_CORPUS") else {
        return;
    };
    let mut inputs = 0;
    let mut reached = std::collections::BTreeMap::<&str, usize>::new();
    for e in std::fs::read_dir(dir).expect("corpus dir") {
        let data = std::fs::read(e.expect("entry").path()).expect("read");
        let (config, actions) = decode_actions(&data);
        let mut f = Fuzzer::new(config);
        for a in &actions {
            f.apply(a, templates());
        }
        inputs += 1;
        let s = f.stack.stats().clone();
        for (name, v) in [
            ("accepted", s.connections_accepted),
            ("opened", s.connections_opened),
            ("retransmits", s.retransmits),
            ("fast_retransmits", s.fast_retransmits),
            ("rto_expirations", s.rto_expirations),
            ("sack_reneging", s.sack_reneging),
            ("challenge_acks", s.challenge_acks),
            ("ecn_reductions", s.ecn_reductions),
            ("rst_received", s.rst_received),
            ("drop_listen_overflow", s.drop_listen_overflow),
        ] {
            if v > 0 {
                *reached.entry(name).or_default() += 1;
            }
        }
    }
    eprintln!("{inputs} inputs; inputs where each counter moved: {reached:#?}");
}
