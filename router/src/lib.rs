//! # vinet-router: the router daemon
//!
//! The one big decision: **admission is a pipeline in one order, and
//! nothing is answered before it is durable.** A request goes through
//! authenticate -> replay check -> payment -> scheduler (cost classes,
//! capacity, quotas) -> checker -> install, in the order of the paper's
//! Fig. 1, and the bundle, lease, debit and ledger entry of an admission
//! commit in one SQLite transaction before the client hears "admitted". On
//! start the router re-verifies everything it reloads, so it trusts neither
//! its own disk nor a crash.
//!
//! Here: the admission pipeline ([`admission`]), the router's directory
//! announcement ([`announce`]), the router's config
//! ([`config`]), the daemon's threads ([`daemon`]), the live packet path
//! ([`live`]: NFQUEUE and the raw socket for GENERATE, around the packet
//! engine's window runner), metrics ([`metrics`]), the scheduler
//! ([`scheduler`]), which sources a program discards ([`sources`]), and the
//! SQLite store ([`store`]); with `[overlay]`, virtual overlay networks
//! ([`overlay`]: the ON manager's participant server, and the partition the
//! ON lane serves GRE packets by). What a router computes over packets is
//! `vinet-engine`; what it says to clients is `vinet-proto`.
//!
//! **Architecture Invariant:** the router links no solver and no prover.
//!
//! **Architecture Invariant:** THIS_IP and THIS_SUBNET_IP come from the
//! verified identity certificate and nowhere else.

//! **Architecture Invariant:** no unsafe code but the system calls of
//! `live::nfqueue` (netlink, `recvmmsg`, `poll`), each block with its reason.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod announce;
pub mod config;
pub mod daemon;
pub mod live;
pub mod metrics;
#[cfg(unix)]
pub mod operator;
pub mod overlay;
pub mod scheduler;
pub mod sources;
pub mod store;
