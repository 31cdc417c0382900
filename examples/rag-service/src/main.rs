//! The `rag-service` binary (work in progress).

fn main() {}
