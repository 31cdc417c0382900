//! `POST /v1/traces` with an OTLP/JSON body: decode (with its normalising retry), then span
//! reading. The first byte chooses whether the rest is gzip-compressed.
#![no_main]

use closedloop_receiver::fuzzing::{self, OtlpEncoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&flags, body)) = data.split_first() {
        fuzzing::otlp(OtlpEncoding::Json, flags & 1 == 1, body);
    }
});
