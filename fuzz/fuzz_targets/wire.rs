//! `cargo +nightly fuzz run wire`: see `tcp_stack::fuzzing::run_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcp_stack::fuzzing::run_wire(data));
