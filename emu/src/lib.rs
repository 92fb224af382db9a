//! vinet-emu: a network of vinet routers in Linux network namespaces.
//!
//! The VInet paper argues about a network (programs placed at the edge router
//! near the traffic's source, deployment that is partial, worms and spam), and
//! plans to validate it by emulation with scripted timed events. This crate is
//! that emulator. Its one big decision is to emulate with the real pieces and
//! nothing else: every host and router is a network namespace, every link a
//! veth pair (shaped by tc), every programmable edge router a real `vinetd`
//! on NFQUEUE, every upload a real `vinetc upload` of a bundle proved by the
//! real prover; only the traffic (background, spam, a scanning worm) is made
//! by the emulator's own agent, one process per host. So what a run measures
//! is what the routers do, not what a model of them predicts, and the price is
//! size: a run is bounded by what one machine's namespaces and processes hold
//! (EXPERIMENTS.md gives the figures).
//!
//! The layers follow the rule of keeping what is pure apart from what makes
//! system calls: [`scenario`] parses the file, [`topology`] turns it into a
//! concrete plan (addresses, routes, deployment, the checked script) with no
//! system call, so every scenario mistake is found, located, before a
//! namespace exists; [`netns`] owns namespaces and processes (created from the
//! plan, removed by drop guards and by `vinet-emu clean`); [`agent`] is the
//! traffic agent run inside each host; [`load`] the bulk upload client (the
//! only module that links vinet's own crates: the client side of the upload
//! protocol); [`overlay`] the overlay networks of a run (the ON managers,
//! the routers' participants, their management namespace, GRE counters,
//! tunnels and the consistency check); [`transfer`] the TCP transfer and
//! UDP stream run inside an ON; [`run`] drives a run and measures;
//! [`report`] writes the results and plots; [`export`] writes a plan as a
//! containerlab topology.
#![deny(missing_docs)]

pub mod agent;
pub mod export;
pub mod load;
pub mod netns;
pub mod overlay;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod topology;
pub mod transfer;
