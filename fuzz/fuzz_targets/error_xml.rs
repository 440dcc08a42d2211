#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifact_cli::fuzzing::error_xml(data));
