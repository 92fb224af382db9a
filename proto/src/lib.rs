//! # vinet-proto: what a client and a router say to each other
//!
//! The one big decision: **a request is authenticated by what it carries,
//! not by the channel it came on.** Every request is signed by the client's
//! ed25519 key and carries the client's identity certificate (an authority's
//! signature binding that key to an address or a prefix). The Noise channel
//! (`Noise_NK_25519_ChaChaPoly_BLAKE2s`, the client pinning the router's
//! static key) keeps requests and replies private and tied to one router, but
//! the router learns who is asking, and so THIS_IP and THIS_SUBNET_IP, from
//! the signed identity alone.
//!
//! Here: identities, keys and key files ([`identity`], [`keyfile`]), the
//! channel and the signed request and reply types ([`protocol`]), and the
//! client side of each request ([`client`]), and the router directory by
//! which routers announce the prefixes they serve ([`directory`]). Both
//! `vinetc` and `vinetd` use this crate; nothing here knows how a router
//! admits, schedules or stores.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod clock;
pub mod directory;
pub mod identity;
pub mod keyfile;
pub mod protocol;
