//! The client side of the upload protocol, as `vinetc upload/renew/withdraw/status`
//! and the tests use it: a connection pinned to the router's key, requests
//! signed with the client's key and numbered from the client's sequence file.
//!
//! **Sequence numbers.** Each request needs a number greater than the last
//! one the router accepted from the key. The client keeps the last number it
//! used in `<KEY>.seq` beside the key file and takes
//! `max(last + 1, microseconds since the epoch)`, so numbers keep growing
//! even if the file is lost (as long as the clock does not go back).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::identity::SignedIdentity;
use crate::protocol::{self, Channel, Op, Reply, Request, SignedRequest, Wire, WireError, PROTOCOL_VERSION};

/// A connected client.
pub struct Client {
    ch: Channel,
    router: [u8; 32],
    key: Option<(SigningKey, SignedIdentity)>,
    seq_file: Option<PathBuf>,
    /// Force the next sequence number (tests of replay and reordering).
    pub next_seq: Option<u64>,
    /// The last signed request sent (so a test can replay it).
    pub last_sent: Option<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The path of a key's sequence file.
pub fn seq_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".seq");
    p.into()
}

/// The next sequence number for a key file, recorded in its `.seq` file.
pub fn next_seq(key: &Path) -> Result<u64, String> {
    let p = seq_path(key);
    let last = std::fs::read_to_string(&p).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let seq = now.max(last + 1);
    std::fs::write(&p, format!("{seq}\n")).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(seq)
}

impl Client {
    /// Connect to `addr`, authenticating the router by its pinned key.
    pub fn connect(addr: &str, router: [u8; 32], timeout: Duration) -> Result<Client, WireError> {
        Ok(Client { ch: Channel::connect(addr, &router, timeout)?, router, key: None, seq_file: None, next_seq: None, last_sent: None })
    }

    /// Sign requests with `key`, presenting `identity`; numbers come from
    /// `key_file`'s sequence file (or [`Client::next_seq`]).
    pub fn with_identity(mut self, key: SigningKey, identity: SignedIdentity, key_file: Option<PathBuf>) -> Client {
        self.key = Some((key, identity));
        self.seq_file = key_file;
        self
    }

    /// The channel (tests).
    pub fn channel(&mut self) -> &mut Channel {
        &mut self.ch
    }

    /// Send raw message bytes and read the reply.
    pub fn exchange(&mut self, msg: &[u8]) -> Result<Reply, WireError> {
        self.ch.send(msg)?;
        let bytes = self.ch.recv()?.ok_or_else(|| WireError::Malformed("the router closed the connection without a reply".into()))?;
        protocol::decode(&bytes).map_err(WireError::Malformed)
    }

    /// Build and sign a request.
    pub fn sign(&mut self, op: Op) -> Result<SignedRequest, String> {
        let Some((key, identity)) = &self.key else { return Err("no key and identity given".into()) };
        let seq = match self.next_seq.take() {
            Some(s) => s,
            None => match &self.seq_file {
                Some(f) => next_seq(f)?,
                None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            },
        };
        let req = Request {
            version: PROTOCOL_VERSION,
            router: self.router,
            seq,
            timestamp_ms: crate::clock::now_ms(),
            client: key.verifying_key().to_bytes(),
            identity: identity.clone(),
            op,
        };
        Ok(protocol::sign(&req, key))
    }

    /// Sign and send a request; the router's reply.
    pub fn request(&mut self, op: Op) -> Result<Reply, String> {
        let s = self.sign(op)?;
        let bytes = protocol::encode(&Wire::Signed(s));
        self.last_sent = Some(bytes.clone());
        self.exchange(&bytes).map_err(|e| e.to_string())
    }

    /// The public status.
    pub fn public_status(&mut self) -> Result<Reply, String> {
        self.exchange(&protocol::encode(&Wire::PublicStatus)).map_err(|e| e.to_string())
    }
}
