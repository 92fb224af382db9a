//! Placeholder until the harness move lands.
fn main() {}
