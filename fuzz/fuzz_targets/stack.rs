//! `cargo +nightly fuzz run stack`: see `tcp_stack::fuzzing::run_stack`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcp_stack::fuzzing::run_stack(data));
