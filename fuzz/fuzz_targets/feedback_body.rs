//! `POST /v1/feedback`: the JSON body, its validation and the token check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| closedloop_receiver::fuzzing::feedback_body(data));
