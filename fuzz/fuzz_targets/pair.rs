#![no_main]
//! `pair`: see `tether_fuzz_targets::pair` for the input and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_fuzz_targets::pair::fuzz(data));
