#![no_main]
//! `endpoint`: see `tether_fuzz_targets::endpoint` for the input and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_fuzz_targets::endpoint::fuzz(data));
