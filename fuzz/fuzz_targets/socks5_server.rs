#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jet_fuzz::socks5_server(data));
