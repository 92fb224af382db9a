//! # vinet-onmgr: the ON manager
//!
//! Birman's ON manager (issue 13, section VI) as a service: it "first
//! check\[s\] the request against an approximation of the network state,
//! then ... perform\[s\] a 2-phase commit to actually allocate the desired
//! router resources", and keeps them allocated by refreshing their leases.
//! The state machines are vinet-overlay's; this crate carries their
//! messages and owns the sockets, threads and clocks.
//!
//! The one big decision: **the manager keeps nothing durable of its own
//! beyond the overlay store** (its flow-id pool, labelled with each ON's
//! paths, and the coordinator's decision log). The picture of the network's
//! free capacity and the state of each ON are derived from them on demand,
//! so recovery after a crash is opening the store: the coordinator
//! re-announces what it decided and aborts what it had not, and nothing
//! else can disagree with the log.
//!
//! - [`wire`]: signed postcard frames between the manager and its routers;
//! - [`router`]: the participant server a router hosts ([`router::serve`]);
//! - [`config`]: the manager's routers file, a router's configuration;
//! - [`manager`]: admission, paths, two-phase commit, refresh, recovery;
//! - [`state`]: where the store is, the manager's own SQLite or etcd;
//! - [`etcd`]: state shared by several managers (`serve --etcd`): the pool,
//!   each router's room and every manager's log, by compare-and-swap;
//! - [`control`]: the operator's `request`, `release` and `status`.
//!
//! **Architecture Invariant:** bytes from the network (frames, control
//! lines) never panic the manager or a router: they are refused with a
//! one-line reason, and routers count what they refuse.
//!
//! With etcd the store is shared, and so is the picture: each router's
//! room is kept there as sums that admission updates by compare-and-swap
//! together with the flow id, since another manager may be admitting onto
//! the same router at the same moment ([`etcd`]).
//!
//! **Not here yet:** a live manager taking over a dead one's log; TLS to
//! etcd. See the crate's README.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod control;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod manager;
pub mod router;
pub mod state;
pub mod wire;
