#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vtoken_fuzz::c_abi::init(),
    |data: &[u8]| vtoken_fuzz::c_abi::run(data)
);
