#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifact_cli::fuzzing::local_path(data));
