#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qga_proto::fuzz::decoder_splits(data));
