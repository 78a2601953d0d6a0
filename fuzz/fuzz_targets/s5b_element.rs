#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jet_fuzz::s5b_element(data));
