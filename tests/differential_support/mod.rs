//! The bytecode-level differential soundness test, shared by
//! `tests/differential.rs` and the cargo-fuzz target `fuzz/fuzz_targets/differential.rs`
//! (which includes this directory by path): a generator of random modules
//! ([`gen`]) and the oracle that puts them through both verifiers and the VM
//! ([`oracle`]).

pub mod gen;
pub mod oracle;
