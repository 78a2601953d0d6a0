#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jet_fuzz::omemo_open(data));
