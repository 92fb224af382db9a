//! # vinet-vocab: one home for each notion vinet's crates share
#![forbid(unsafe_code)]
#![deny(missing_docs)]
