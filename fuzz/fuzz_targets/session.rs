#![no_main]
//! `session`: see `tether_fuzz_targets::session` for the input and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_fuzz_targets::session::fuzz(data));
