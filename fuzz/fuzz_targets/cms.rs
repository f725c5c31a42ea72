#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vtoken_fuzz::cms::run(data));
