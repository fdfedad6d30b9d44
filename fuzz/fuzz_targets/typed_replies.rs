#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qga_proto::fuzz::typed_replies(data));
