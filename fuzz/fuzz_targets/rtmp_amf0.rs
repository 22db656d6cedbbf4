//! Fuzzes the AMF0 decoder: arbitrary bytes must decode or fail with an error, never panic
//! or recurse without bound; whatever decodes must re-encode and decode to as many values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    let _ = amf0::decode(data);
    if let Ok(values) = amf0::decode_all(data) {
        let again = amf0::encode_all(&values);
        let back = amf0::decode_all(&again).expect("our own encoding decodes");
        assert_eq!(back.len(), values.len());
    }
});
