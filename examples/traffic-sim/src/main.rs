//! The `traffic-sim` binary (work in progress).

fn main() {}
