//! The wire between the manager and its routers: signed postcard frames
//! over TCP.
//!
//! **Framing.** A frame is a 4-byte big-endian length and that many bytes
//! of postcard, at most [`MAX_FRAME`]. Postcard, not JSON lines: the
//! messages of [`vinet_overlay::twopc`] are serde types already and go as
//! they are; the length is known before anything is allocated or parsed, so
//! a peer cannot make the reader buffer an endless line; and a signature is
//! over exact bytes, which a binary encoding gives without canonicalising.
//!
//! **Authentication.** Each side knows the other's ed25519 public key in
//! advance (the router its manager's, the manager each router's, from the
//! routers file). On connecting, each sends a [`Hello`] with its public
//! key and a fresh random 16-byte nonce; a key that is not the expected one
//! ends the connection. Every later frame is a [`Signed`]: a counter, the
//! payload and a signature over a domain tag, the direction, *both* nonces,
//! the counter and the payload. The counter starts at 0 on each connection
//! and must go up by exactly one, so a frame cannot be replayed within a
//! connection, and the peer's fresh nonce under the signature means it
//! cannot be replayed into another one or reflected back to its sender.
//! There is no encryption: reservations are not secret, only their source
//! matters. (vinet-proto's Noise channel would also give privacy, but pulls
//! in the checker and the prover with it.)
//!
//! **Untrusted bytes never panic**: every failure is a [`WireError`] whose
//! `Display` is one line, and the connection is dropped.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;
use vinet_overlay::partition::{Reservation, Resources};
use vinet_overlay::twopc::{NodeId, ToCoordinator, ToParticipant, TxId};
use vinet_overlay::FlowId;

/// The largest frame accepted, in bytes.
pub const MAX_FRAME: usize = 4 << 20;

/// The protocol version in [`Hello`].
pub const VERSION: u8 = 1;

const DOMAIN: &[u8] = b"vinet-onmgr-frame-v1";

/// Why the wire failed; one line each.
#[derive(Debug, Error)]
pub enum WireError {
    /// The socket failed or closed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Bytes that do not decode as the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another version.
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u8),
    /// The peer's key is not the one expected.
    #[error("unknown peer key {0}")]
    UnknownKey(String),
    /// A frame out of sequence (a replay, or a lost frame).
    #[error("counter {got}, expected {expected}")]
    Counter {
        /// The counter received.
        got: u64,
        /// The counter expected.
        expected: u64,
    },
    /// A signature that does not verify.
    #[error("bad signature")]
    Signature,
}

/// The first frame each side sends, unsigned.
#[derive(Serialize, Deserialize)]
pub struct Hello {
    /// [`VERSION`].
    pub version: u8,
    /// The sender's ed25519 public key.
    pub key: [u8; 32],
    /// A fresh random nonce.
    pub nonce: [u8; 16],
}

/// Every frame after the [`Hello`]s.
#[derive(Serialize, Deserialize)]
pub struct Signed {
    /// 0, 1, 2, ... on each connection and direction.
    pub counter: u64,
    /// The postcard of the message.
    pub payload: Vec<u8>,
    /// The signature (see the module documentation).
    pub sig: Vec<u8>,
}

/// What the manager asks a router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRouter {
    /// A message of two-phase commit, as the overlay crate has it.
    TwoPc(ToParticipant),
    /// Refresh the active leases of these ONs.
    Refresh(Vec<FlowId>),
    /// List the leases (for the operator and the tests).
    Leases,
}

/// A lease as a router reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The ON.
    pub flow: FlowId,
    /// What it reserves.
    pub reservation: Reservation,
    /// In force (committed), or only prepared.
    pub active: bool,
    /// When it lapses, in Unix nanoseconds.
    pub expires_ns: u64,
    /// The transaction that made it.
    pub tx: Option<TxId>,
}

/// What a router answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromRouter {
    /// The answer of two-phase commit.
    TwoPc(ToCoordinator),
    /// Per ON asked: its new expiry, or why it was not refreshed.
    Refreshed(Vec<(FlowId, Result<u64, String>)>),
    /// The router's leases and capacity.
    Leases {
        /// The router.
        node: NodeId,
        /// Its capacity.
        capacity: Resources,
        /// Its leases.
        leases: Vec<LeaseView>,
    },
    /// The router could not handle the message (its store failed).
    Failed(String),
}

/// Parses a 64-digit hex public key.
pub fn parse_public(hex: &str) -> Result<VerifyingKey, String> {
    let b = unhex32(hex.trim())?;
    VerifyingKey::from_bytes(&b).map_err(|e| format!("public key: {e}"))
}

/// A public key as 64 hex digits.
pub fn public_hex(k: &VerifyingKey) -> String {
    hex(k.as_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 || !s.is_ascii() {
        return Err("expected 64 hex digits".into());
    }
    let mut out = [0u8; 32];
    for (k, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * k..2 * k + 2], 16).map_err(|_| "expected 64 hex digits".to_string())?;
    }
    Ok(out)
}

const KEY_TAG: &str = "vinet-onmgr-key-v1";

/// Writes a new secret key to `path` (mode 0600, refusing to overwrite)
/// and returns its public half.
pub fn generate_key(path: &Path) -> Result<VerifyingKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{KEY_TAG} {}", hex(&seed)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key.verifying_key())
}

/// Reads a secret key written by [`generate_key`].
pub fn load_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let hexed = text.trim().strip_prefix(KEY_TAG).ok_or_else(|| format!("{}: not a {KEY_TAG} file", path.display()))?;
    Ok(SigningKey::from_bytes(&unhex32(hexed.trim()).map_err(|e| format!("{}: {e}", path.display()))?))
}

fn write_frame(s: &mut TcpStream, bytes: &[u8]) -> Result<(), WireError> {
    if bytes.len() > MAX_FRAME {
        return Err(WireError::TooLong(bytes.len()));
    }
    let len = u32::try_from(bytes.len()).map_err(|_| WireError::TooLong(bytes.len()))?;
    let mut buf = Vec::with_capacity(4 + bytes.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    s.write_all(&buf)?;
    Ok(())
}

fn read_frame(s: &mut TcpStream) -> Result<Vec<u8>, WireError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(b).map_err(|e| WireError::Malformed(e.to_string()))
}

fn encode<T: Serialize>(m: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_allocvec(m).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Which end of a connection: the one that connected, or the one that accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Dialer,
    Acceptor,
}

/// An authenticated connection.
pub struct Channel {
    stream: TcpStream,
    me: SigningKey,
    peer: VerifyingKey,
    role: Role,
    my_nonce: [u8; 16],
    peer_nonce: [u8; 16],
    sent: u64,
    received: u64,
}

impl Channel {
    /// Connects to `addr`, whose key must be `peer`. Every read and write
    /// gives up after `timeout`.
    pub fn connect(addr: SocketAddr, me: &SigningKey, peer: &VerifyingKey, timeout: Duration) -> Result<Channel, WireError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        Channel::start(stream, me, Role::Dialer, timeout, |k| (k == peer).then_some(*k))
    }

    /// Answers a connection whose key `allowed` accepts (returning it).
    pub fn accept(
        stream: TcpStream, me: &SigningKey, timeout: Duration, allowed: impl Fn(&VerifyingKey) -> Option<VerifyingKey>,
    ) -> Result<Channel, WireError> {
        Channel::start(stream, me, Role::Acceptor, timeout, allowed)
    }

    fn start(
        mut stream: TcpStream, me: &SigningKey, role: Role, timeout: Duration, allowed: impl Fn(&VerifyingKey) -> Option<VerifyingKey>,
    ) -> Result<Channel, WireError> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut my_nonce = [0u8; 16];
        getrandom::fill(&mut my_nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let hello = Hello { version: VERSION, key: me.verifying_key().to_bytes(), nonce: my_nonce };
        write_frame(&mut stream, &encode(&hello)?)?;
        let theirs: Hello = decode(&read_frame(&mut stream)?)?;
        if theirs.version != VERSION {
            return Err(WireError::Version(theirs.version));
        }
        let key = VerifyingKey::from_bytes(&theirs.key).map_err(|_| WireError::UnknownKey(hex(&theirs.key)))?;
        let peer = allowed(&key).ok_or_else(|| WireError::UnknownKey(hex(&theirs.key)))?;
        Ok(Channel { stream, me: me.clone(), peer, role, my_nonce, peer_nonce: theirs.nonce, sent: 0, received: 0 })
    }

    /// The peer's key.
    pub fn peer(&self) -> &VerifyingKey {
        &self.peer
    }

    fn transcript(from: Role, dialer_nonce: &[u8; 16], acceptor_nonce: &[u8; 16], counter: u64, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::with_capacity(DOMAIN.len() + 41 + payload.len());
        t.extend_from_slice(DOMAIN);
        t.push(match from {
            Role::Dialer => 0,
            Role::Acceptor => 1,
        });
        t.extend_from_slice(dialer_nonce);
        t.extend_from_slice(acceptor_nonce);
        t.extend_from_slice(&counter.to_be_bytes());
        t.extend_from_slice(payload);
        t
    }

    fn nonces(&self) -> (&[u8; 16], &[u8; 16]) {
        match self.role {
            Role::Dialer => (&self.my_nonce, &self.peer_nonce),
            Role::Acceptor => (&self.peer_nonce, &self.my_nonce),
        }
    }

    /// Signs and sends one message.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), WireError> {
        let payload = encode(msg)?;
        let (d, a) = self.nonces();
        let sig = self.me.sign(&Channel::transcript(self.role, d, a, self.sent, &payload));
        let frame = Signed { counter: self.sent, payload, sig: sig.to_bytes().to_vec() };
        write_frame(&mut self.stream, &encode(&frame)?)?;
        self.sent += 1;
        Ok(())
    }

    /// Receives, checks and decodes one message.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        let frame: Signed = decode(&read_frame(&mut self.stream)?)?;
        if frame.counter != self.received {
            return Err(WireError::Counter { got: frame.counter, expected: self.received });
        }
        let sig = Signature::from_slice(&frame.sig).map_err(|_| WireError::Signature)?;
        let from = match self.role {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        };
        let (d, a) = self.nonces();
        self.peer.verify(&Channel::transcript(from, d, a, frame.counter, &frame.payload), &sig).map_err(|_| WireError::Signature)?;
        self.received += 1;
        decode(&frame.payload)
    }

    /// Sends `msg` and waits for the answer.
    pub fn call<Q: Serialize, A: DeserializeOwned>(&mut self, msg: &Q) -> Result<A, WireError> {
        self.send(msg)?;
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn pair(server_allows: VerifyingKey) -> (std::thread::JoinHandle<Result<Channel, WireError>>, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            Channel::accept(s, &key(2), Duration::from_secs(5), |k| (*k == server_allows).then_some(*k))
        });
        (h, addr)
    }

    #[test]
    fn messages_go_both_ways_signed() {
        let (h, addr) = pair(key(1).verifying_key());
        let mut c = Channel::connect(addr, &key(1), &key(2).verifying_key(), Duration::from_secs(5)).unwrap();
        let mut s = h.join().unwrap().unwrap();
        c.send(&ToRouter::Leases).unwrap();
        assert_eq!(s.recv::<ToRouter>().unwrap(), ToRouter::Leases);
        s.send(&FromRouter::Failed("x".into())).unwrap();
        assert_eq!(c.recv::<FromRouter>().unwrap(), FromRouter::Failed("x".into()));
    }

    #[test]
    fn an_unknown_key_is_refused_on_both_sides() {
        let (h, addr) = pair(key(9).verifying_key());
        let _ = Channel::connect(addr, &key(1), &key(2).verifying_key(), Duration::from_secs(5));
        assert!(matches!(h.join().unwrap(), Err(WireError::UnknownKey(_))));
        let (h, addr) = pair(key(1).verifying_key());
        let r = Channel::connect(addr, &key(1), &key(3).verifying_key(), Duration::from_secs(5));
        assert!(matches!(r, Err(WireError::UnknownKey(_))));
        drop(h.join());
    }

    #[test]
    fn replayed_tampered_and_garbage_frames_are_refused() {
        let (h, addr) = pair(key(1).verifying_key());
        let mut c = Channel::connect(addr, &key(1), &key(2).verifying_key(), Duration::from_secs(5)).unwrap();
        let mut s = h.join().unwrap().unwrap();
        // Capture a genuine frame by signing it by hand, then send it twice.
        let payload = encode(&ToRouter::Leases).unwrap();
        let (d, a) = (*c.nonces().0, *c.nonces().1);
        let sig = c.me.sign(&Channel::transcript(Role::Dialer, &d, &a, 0, &payload)).to_bytes().to_vec();
        let frame = encode(&Signed { counter: 0, payload: payload.clone(), sig: sig.clone() }).unwrap();
        write_frame(&mut c.stream, &frame).unwrap();
        write_frame(&mut c.stream, &frame).unwrap();
        assert!(s.recv::<ToRouter>().is_ok());
        assert!(matches!(s.recv::<ToRouter>(), Err(WireError::Counter { got: 0, expected: 1 })));
        // A tampered payload under a genuine signature.
        let mut bad = payload;
        bad[0] ^= 1;
        let sig1 = c.me.sign(&Channel::transcript(Role::Dialer, &d, &a, 1, &[0])).to_bytes().to_vec();
        write_frame(&mut c.stream, &encode(&Signed { counter: 1, payload: bad, sig: sig1 }).unwrap()).unwrap();
        assert!(matches!(s.recv::<ToRouter>(), Err(WireError::Signature)));
        // Garbage and an oversized length.
        write_frame(&mut c.stream, &[0xff; 7]).unwrap();
        assert!(matches!(s.recv::<ToRouter>(), Err(WireError::Malformed(_))));
        c.stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert!(matches!(s.recv::<ToRouter>(), Err(WireError::TooLong(_))));
    }
}
