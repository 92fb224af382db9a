//! # vinet-overlay: virtual overlay networks
//!
//! Birman's *overlay networks* (ONs) on vinet's routers (issue 13; K. Birman,
//! "Technology Challenges for Virtual Overlay Networks"). An ON is a virtual
//! network with a globally unique identifier, a set of access points and
//! guaranteed properties, built by *router partitioning*: every router on
//! the ON's paths sets resources aside for it, and serves its packets as if
//! it were a router of its own (section V.1). A *virtual* ON layers
//! protocols over an ON to strengthen its properties; the first one here is
//! redundancy: duplicate packets down disjoint paths, eliminate the copies
//! at the egress (sections V.2, VI).
//!
//! The one big decision: **everything here computes and decides, nothing
//! talks to the kernel or the network.** Packet formats are pure functions
//! over bytes, router partitioning and leases are data structures driven by
//! a `u64` nanosecond clock argument, and two-phase commit is a pair of
//! state machines that take messages and return messages. So all of it is
//! tested anywhere, deterministically, with time and crashes injected by the
//! tests (no test sleeps or measures the wall clock); the router and the
//! emulator carry the messages and own the sockets and tunnels. The one
//! exception is [`store`], which owns SQLite files, because durability is
//! what two-phase commit and leases are about (and [`monitor`]'s
//! `write_report`, which writes the report it otherwise builds as strings).
//!
//! How the pieces fit the paper:
//!
//! - [`gre`]: *ON identity on the wire*. The paper's "4-byte identifier ...
//!   behind the IP header" is the 32-bit Key of a GRE header (RFC 2784/2890),
//!   with GRE's sequence number for redundant paths; a classifier from a
//!   frame to its [`FlowId`].
//! - [`partition`]: *router partitioning* with strict service: an ON above
//!   its contract is dropped even on an idle router, so that TCP sees the
//!   limits it was promised. Admission refuses oversubscription; 10,000 ONs
//!   per router with O(1) per-packet classification and accounting.
//! - [`lease`]: reservations as *soft state*, refreshed like RSVP's (RFC 2205:
//!   refresh every R, release after (K + 0.5) x 1.5 x R).
//! - [`store`]: what must survive a restart: a router's leases, a manager's
//!   flow-id pool ("globally unique") and its two-phase-commit decision log.
//! - [`twopc`]: the manager's *two-phase commit* that allocates an ON's
//!   resources on every router of its paths, all or nothing, through crashes.
//! - [`paths`]: *node-disjoint paths* between two access points (Suurballe
//!   and Bhandari, with node splitting), so that no single router or link
//!   failure cuts an ON.
//! - [`frer`]: *duplicate suppression* at the egress: IEEE 802.1CB's vector
//!   recovery algorithm over GRE's sequence numbers.
//! - [`monitor`]: *VON management*: per-ON throughput, drops, loss and path
//!   health from the partition's and the recovery's counters, checked
//!   against a profile with edge-triggered alerts, and a report (Markdown
//!   and SVG plots).
//!
//! **Architecture Invariant:** nothing here panics on untrusted input: bytes
//! from the wire ([`gre::decode`]) and flow ids in packets
//! ([`partition::Partition::serve`]) are refused or classified, never
//! trusted; messages of two-phase commit may be lost, repeated or reordered.
//!
//! **API Boundary:** a [`partition::Reservation`] is built only by its
//! checking constructor (deserialization goes through it too); the
//! partition's sums and the lease table's schedule have no setters.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

pub mod endpoint;
pub mod frer;
pub mod gre;
pub mod lease;
pub mod monitor;
pub mod partition;
pub mod paths;
pub mod store;
pub mod twopc;

/// An ON's globally unique 32-bit identifier: the GRE key its packets carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowId(pub u32);
