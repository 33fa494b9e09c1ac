//! `cargo +nightly fuzz run ring`: see `tcp_async::ring::fuzzing::run_ring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcp_async::ring::fuzzing::run_ring(data));
