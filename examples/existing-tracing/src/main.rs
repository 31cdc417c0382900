//! Adding closedloop to an existing tracing setup (work in progress).

fn main() {}
