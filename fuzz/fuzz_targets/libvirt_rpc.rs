#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virt_proto::fuzz::rpc(data));
