#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sentinela_host::fuzzing::aws_call_request(data));
