//! # vinet-engine: the packet engine
//!
//! The one big decision: **programs run per window, per client, over
//! columns.** Frames are gathered into windows of up to W packets; each
//! window's IP packets are stored as columns (addresses, protocols, ports
//! and whether a packet has them, TCP flags, sequence numbers, payload
//! offsets into one arena). The dispatch table (the paper's
//! Fig. 4) buckets a window's packets by the clients they are addressed to in
//! one pass, and each client's programs then run once over that client's
//! bucket, with packet sets as bitmaps over the bucket. Interpretation is paid
//! once per window and program, not once per packet, and a packet meets only
//! the programs of the clients it is addressed to, so the per-packet cost does
//! not grow with the number of installed programs.
//!
//! Two refinements keep that true at line rate (`benchmarks/runtime.md`):
//! windows can borrow their frames from the caller's buffer instead of
//! copying them ([`runner::Runner::push_slab`]), and a program that decides
//! each packet on its own (keyed filters, narrowings by protocol, port or TCP
//! flags, and DISCARD, like the firewall and the port firewall) also
//! gets a *plan* when it is prepared from its checked module, which the VM
//! and the dispatch table run without interpretation, metered the same way.
//!
//! Addresses are 128-bit everywhere, IPv4 as IPv4-mapped (`::ffff:a.b.c.d`):
//! IPv4 and IPv6 packets share the window, the VM's registers and groupings
//! and the dispatch table's indexes, and cost the same. The later fragments
//! of an IPv6 datagram get the verdict of its first ([`fragments`]).
//!
//! The engine computes and decides; it talks to no kernel, no database and
//! no network. Reading captures (pcap, pcapng) and policy files is the only
//! I/O it does, so everything here is tested anywhere, on recorded traffic.
//! The router crate (`vinet-router`) feeds it live packets.
//!
//! **API Boundary:** the VM ([`vm::Program`]) is built only from a
//! [`vinet_checker::Checked`]; there is no public path that runs bytecode the
//! checker has not accepted.
//!
//! **Architecture Invariant:** nothing on the packet path panics or indexes
//! out of bounds on any input: a frame that does not parse is counted and
//! forwarded untouched; a faulting program loses its effects for that window
//! and the router goes on.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dispatch;
pub mod fragments;
pub mod packet;
pub mod pcap;
mod pcapng;
pub mod policy_file;
pub mod runner;
pub mod stream;
pub mod vm;
pub mod window;

#[cfg(test)]
mod replay_tests;

#[cfg(test)]
mod reference_tests;
