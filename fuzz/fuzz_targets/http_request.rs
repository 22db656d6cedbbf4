//! Fuzzes the whole sans-IO HTTP front: head framing, target normalization and routing.
//! Any panic is a bug: untrusted bytes must only ever produce a status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::http::api::parse_call;
use tessera::http::limits::HttpLimits;
use tessera::http::request::{Parsed, parse_head};
use tessera::http::route::route;
use tessera::http::target::Target;

fuzz_target!(|data: &[u8]| {
    let limits = HttpLimits::default();
    let mut target = Target::new();
    let mut rest = data;
    // Walk pipelined requests the way a connection does.
    while let Parsed::Complete(head) = parse_head(rest, &limits) {
        if target.parse(head.target, b"token").is_ok() {
            let _ = route(target.path());
            let _ = target.token();
        }
        // The operator API's parser sees the raw target and the Authorization header.
        let _ = parse_call(
            head.method,
            head.target,
            head.authorization,
            Some("0123456789abcdef"),
        );
        let used = head.head_len.saturating_add(head.body_len);
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
    // The target normalizer on raw bytes too, not only on what httparse accepts.
    let _ = target.parse(data, b"token");
});
