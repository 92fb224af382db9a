//! # vinet-vocab: one home for each notion vinet's crates share
//!
//! The language front end, the policy reader, the router's configuration and
//! the command-line tools all speak of the same few things: addresses and prefixes (IPv4 and IPv6),
//! the names of the functionality classes, of the routines and of the units
//! of a LIFETIME, and install-time parameter values given as text. Each of
//! them is written here once, as a type or a table, and every crate reads it
//! from here, so that `10.0.0.7` means the same prefix in a router's `serves`
//! as on `vinetc run --this-subnet`, and `--param Word1=42` the same value for
//! `vinetc run` as for `vinetc upload`.
//!
//! **Architecture Invariant:** this crate computes, it never does I/O. It
//! depends on the checker (for the types the names map to: [`Class`],
//! [`UnitCosts`], [`Const`]) and on `thiserror`, and on nothing that touches a
//! file, a socket, a key or a terminal.
//!
//! **API Boundary:** the checker, the trusted base, keeps its own types and
//! does not depend on this crate; this crate maps names and text to them.
//!
//! [`Class`]: vinet_checker::bytecode::Class
//! [`UnitCosts`]: vinet_checker::policy::UnitCosts
//! [`Const`]: vinet_checker::bytecode::Const
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod names;
pub mod params;
pub mod prefix;

pub use prefix::{addr_const, addr_text, parse_addr, v4_of, IpPrefix, PrefixError};

/// A policy's digest, for logs and caches (kept out of the trusted base,
/// which has no use for it): blake3 of its postcard encoding.
pub fn policy_digest(policy: &vinet_checker::Policy) -> [u8; 32] {
    *blake3::hash(&postcard::to_allocvec(policy).expect("in-memory encoding")).as_bytes()
}
