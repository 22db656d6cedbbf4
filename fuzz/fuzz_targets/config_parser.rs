//! Fuzz target for the config language: `tessera::config::parse` must return (a `Config` or
//! errors) for every UTF-8 input, never panic, overflow the stack or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tessera::config::parse(s, "fuzz.conf");
    }
});
