#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vtoken_fuzz::pkcs10::run(data));
