#![no_main]
//! `frame_decode`: see `tether_fuzz_targets::frame_decode` for the input and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_fuzz_targets::frame_decode::fuzz(data));
