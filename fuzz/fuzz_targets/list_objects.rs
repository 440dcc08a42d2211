#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifact_cli::fuzzing::list_objects(data));
