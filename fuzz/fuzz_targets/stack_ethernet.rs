//! `cargo +nightly fuzz run stack_ethernet -- fuzz/corpus/stack`: the stack
//! fuzz input with the Ethernet link layer on; see
//! `tcp_stack::fuzzing::run_stack_ethernet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcp_stack::fuzzing::run_stack_ethernet(data));
