#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vtoken_fuzz::token_file::init(),
    |data: &[u8]| vtoken_fuzz::token_file::run(data)
);
