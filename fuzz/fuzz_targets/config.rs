//! The configuration file of `closedloop serve`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| closedloop_receiver::fuzzing::config(data));
