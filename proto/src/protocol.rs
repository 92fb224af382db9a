//! The upload protocol between `vinetc` and `vinetd` (DESIGN section 7).
//!
//! **Channel.** TCP, then a Noise handshake `Noise_NK_25519_ChaChaPoly_BLAKE2s`
//! (the `snow` crate; nothing cryptographic is written here). In NK the client
//! knows the router's static X25519 key in advance (it is pinned: the
//! operator publishes the key `vinetd --config R.toml --print-key` prints,
//! and the client passes it as `--router-key`), so the client authenticates
//! the router and everything after the handshake is encrypted and
//! authenticated. The client is anonymous at the Noise level: it
//! authenticates each request with its ed25519 signature instead, which
//! the router can keep and re-verify.
//!
//! **Framing.** Every Noise message travels as a 2-byte big-endian length and
//! the ciphertext (at most 65,535 bytes, Noise's limit). An application
//! message is one or more Noise messages; the plaintext of the first begins
//! with the message's total length as 4 big-endian bytes, which the receiver
//! checks against its maximum BEFORE allocating anything. A connection
//! carries any number of request/reply exchanges.
//!
//! **Messages** (postcard): the client sends [`Wire`], the router answers
//! [`Reply`]. A [`Wire::Signed`] request carries the postcard bytes of a
//! [`Request`] and the client's ed25519 signature over
//! [`REQUEST_DOMAIN`] ++ those bytes. The request names the router's static
//! key (so it cannot be replayed at another router), a sequence number that
//! must be strictly greater than the last one the router accepted from that
//! client key, the client's key and identity certificate, and the operation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use snow::{HandshakeState, TransportState};
use vinet_checker::bytecode::Const;
use vinet_checker::cert::{Lemma, LemmaRef};

use crate::identity::SignedIdentity;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake: both sides speak this protocol version.
pub const PROLOGUE: &[u8] = b"vinet upload protocol v1";
/// Version of [`Request`].
pub const PROTOCOL_VERSION: u16 = 2;
/// What a client's signature covers, before the request's bytes.
pub const REQUEST_DOMAIN: &[u8] = b"vinet request v1\0";
/// Largest Noise message.
pub const NOISE_MAX: usize = 65_535;
const TAG: usize = 16;
/// Plaintext bytes per Noise message.
const CHUNK: usize = NOISE_MAX - TAG;
/// The largest reply a client accepts.
pub const MAX_REPLY: usize = 16 << 20;

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// A signed request.
    Signed(SignedRequest),
    /// The router's public status (no balance): needs no identity.
    PublicStatus,
}

/// A request and the client's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// postcard([`Request`]).
    pub body: Vec<u8>,
    /// ed25519 signature of [`REQUEST_DOMAIN`] ++ `body`.
    pub signature: Vec<u8>,
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The router's static Noise key: the request is for this router only.
    pub router: [u8; 32],
    /// Strictly increasing per client key.
    pub seq: u64,
    /// The client's clock, ms since the epoch (informative: the scheduler
    /// orders by the router's arrival time, which a client cannot choose).
    pub timestamp_ms: u64,
    /// The client's ed25519 key: must be the key the identity binds.
    pub client: [u8; 32],
    /// The client's identity certificate.
    pub identity: SignedIdentity,
    /// What to do.
    pub op: Op,
}

/// The operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Install a bundle (the `.vpc` bytes) with parameter values, paying `pay` credits.
    Upload {
        /// The bundle file's bytes.
        bundle: Vec<u8>,
        /// Credits offered: at least the price of the bundle's cost.
        pay: u64,
        /// Parameter values by name.
        params: Vec<(String, Const)>,
    },
    /// Extend a lease by one lifetime from now, paying `pay` credits.
    Renew {
        /// The lease.
        lease: u64,
        /// Credits offered.
        pay: u64,
    },
    /// End a lease now.
    Withdraw {
        /// The lease.
        lease: u64,
    },
    /// The router's status and this client's balance and leases.
    Status,
    /// Lemmas the router asked for (in dependency order).
    Lemmas {
        /// The lemmas.
        lemmas: Vec<Lemma>,
    },
}

/// Why a request was refused: a stable label (for metrics) and a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Refusal {
    /// Not decodable, wrong version, wrong router, bad parameters.
    Malformed,
    /// Larger than the router's maximum message.
    Oversized,
    /// The identity's authority is not trusted.
    UnknownAuthority,
    /// The identity has expired or is not valid yet.
    Expired,
    /// A signature (identity or request) does not verify.
    BadSignature,
    /// The request's key is not the key the identity binds.
    KeyMismatch,
    /// The identity's address is not one this router serves.
    NotServed,
    /// The sequence number is not greater than the last accepted.
    Replay,
    /// The payment is below the price or the balance cannot cover it.
    Payment,
    /// The admission queue is full (a flood).
    Busy,
    /// The program does not fit in capacity minus load.
    Capacity,
    /// The functionality-class quota for a source is full.
    Quota,
    /// The checker refused the bundle.
    Proof,
    /// A lemma sent by the client does not check.
    Lemma,
    /// No such lease of this client.
    NoSuchLease,
    /// The router failed internally (storage); nothing was admitted.
    Internal,
    /// A renewal would carry a lease past the policy's `max_lifetime` from its
    /// start, or past its identity's validity.
    Lifetime,
    /// The operator revoked (banned) the client's key.
    Revoked,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Oversized => "oversized",
            Refusal::UnknownAuthority => "unknown_authority",
            Refusal::Expired => "expired_identity",
            Refusal::BadSignature => "bad_signature",
            Refusal::KeyMismatch => "key_mismatch",
            Refusal::NotServed => "not_served",
            Refusal::Replay => "replay",
            Refusal::Payment => "payment",
            Refusal::Busy => "busy",
            Refusal::Capacity => "capacity",
            Refusal::Quota => "quota",
            Refusal::Proof => "proof",
            Refusal::Lemma => "lemma",
            Refusal::NoSuchLease => "no_such_lease",
            Refusal::Internal => "internal",
            Refusal::Lifetime => "lifetime",
            Refusal::Revoked => "revoked",
        }
    }

    /// Every refusal, for metrics.
    pub const ALL: [Refusal; 18] = [
        Refusal::Malformed,
        Refusal::Oversized,
        Refusal::UnknownAuthority,
        Refusal::Expired,
        Refusal::BadSignature,
        Refusal::KeyMismatch,
        Refusal::NotServed,
        Refusal::Replay,
        Refusal::Payment,
        Refusal::Busy,
        Refusal::Capacity,
        Refusal::Quota,
        Refusal::Proof,
        Refusal::Lemma,
        Refusal::NoSuchLease,
        Refusal::Internal,
        Refusal::Lifetime,
        Refusal::Revoked,
    ];
}

/// One installed program as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The lease id.
    pub lease: u64,
    /// The client's destination (address or prefix) as text.
    pub dest: String,
    /// Module id (hex).
    pub module: String,
    /// Certified complexity.
    pub complexity: u64,
    /// Whether it shares its instance with other leases.
    pub shared: bool,
    /// Lease end, ms since the epoch.
    pub expires_ms: u64,
    /// The latest end a renewal may give it, ms since the epoch.
    pub limit_ms: u64,
    /// Its program's parameters as bound: (name, value as `--param` takes it).
    pub params: Vec<(String, String)>,
    /// Packets seen by it.
    pub packets: u64,
    /// Packets it dropped.
    pub dropped: u64,
    /// Packets it generated.
    pub generated: u64,
}

/// The router's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Capacity: cost units per window.
    pub capacity: u64,
    /// Load: the sum of installed distinct instances' complexities.
    pub load: u64,
    /// Installed leases (all clients).
    pub installed: u64,
    /// Distinct running instances.
    pub instances: u64,
    /// Requests waiting per cost class (class, count).
    pub queues: Vec<(u32, u64)>,
    /// Sources dropped for everyone.
    pub blocked_sources: Vec<String>,
    /// Why each of them is (one line each, in the same order): the source's
    /// owner can see what blocked it.
    pub block_reasons: Vec<String>,
    /// The asking client's balance (signed status only).
    pub balance: Option<u64>,
    /// The asking client's leases (signed status only).
    pub leases: Vec<LeaseInfo>,
    /// The router's price: credits per this many cost units ([`price`]).
    pub cost_units_per_credit: u64,
}

/// The price of a declared cost, in credits, at a router's rate: what an
/// upload or a renewal must pay at least.
pub fn price(cost: u64, cost_units_per_credit: u64) -> u64 {
    cost.div_ceil(cost_units_per_credit.max(1)).max(1)
}

/// What the router answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The program is installed and running.
    Admitted {
        /// Its lease.
        lease: u64,
        /// Module id (hex).
        module: String,
        /// Certified complexity (the load it added, unless shared).
        complexity: u64,
        /// Lease end, ms since the epoch.
        expires_ms: u64,
        /// True if it joined an instance already running (no load added).
        shared: bool,
        /// Credits debited.
        paid: u64,
        /// Balance after payment.
        balance: u64,
        /// What the admission set off, if anything: a source it made the
        /// router drop for everyone, and why.
        notice: Option<String>,
    },
    /// A lease was extended.
    Renewed {
        /// The lease.
        lease: u64,
        /// New end, ms since the epoch.
        expires_ms: u64,
        /// Balance after payment.
        balance: u64,
    },
    /// A lease was ended.
    Withdrawn {
        /// The lease.
        lease: u64,
    },
    /// The router's status.
    Status(Status),
    /// The certificate cites lemmas the router lacks: send them, then retry.
    /// (Version 2: lemmas are named as certificates cite them, by hash prefix.)
    NeedLemmas {
        /// Their references: each wants the lemma whose hash it begins.
        hashes: Vec<LemmaRef>,
    },
    /// Lemmas were checked and cached.
    LemmasAdmitted {
        /// How many were new.
        new: u64,
    },
    /// Refused: nothing was installed, nothing was debited.
    Refused {
        /// The category.
        reason: Refusal,
        /// One line for the client to print.
        message: String,
    },
}

/// Why a message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed or closed.
    #[error("connection: {}", io_text(.0))]
    Io(#[from] std::io::Error),
    /// Noise failed (handshake, or a message that does not authenticate).
    #[error("secure channel: {0}")]
    Noise(String),
    /// A message announced more bytes than allowed.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    Oversized {
        /// Announced size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// The bytes are not a message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// An I/O error in words a person reads (not "os error 11").
fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => "timed out: the other side sent nothing in time".into(),
        ConnectionRefused => "refused: nothing listens at that address (is vinetd running there?)".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "the other side closed the connection".into(),
        UnexpectedEof => "the other side closed the connection in the middle of a message".into(),
        _ => e.to_string(),
    }
}

/// A decoding error in words a person reads (not "Serde Deserialization Error").
fn decode_text(e: postcard::Error) -> String {
    use postcard::Error::*;
    match e {
        DeserializeUnexpectedEnd => "it ends before the message does (truncated)".into(),
        DeserializeBadEnum => "it names a kind of message this vinet does not know (another version?)".into(),
        DeserializeBadUtf8 | DeserializeBadChar => "it holds text that is not UTF-8".into(),
        e => format!("it is not a message of this vinet version ({e})"),
    }
}

fn noise_err(e: snow::Error) -> WireError {
    WireError::Noise(e.to_string())
}

/// An X25519 static key pair for the router.
pub fn generate_router_key() -> Result<([u8; 32], [u8; 32]), String> {
    let kp =
        snow::Builder::new(NOISE_PARAMS.parse().map_err(|e: snow::Error| e.to_string())?).generate_keypair().map_err(|e| e.to_string())?;
    let private: [u8; 32] = kp.private.as_slice().try_into().map_err(|_| "key length")?;
    let public: [u8; 32] = kp.public.as_slice().try_into().map_err(|_| "key length")?;
    Ok((private, public))
}

/// The public key of a router's private key.
pub fn router_public_key(private: &[u8; 32]) -> Result<[u8; 32], String> {
    // snow derives public keys only inside handshakes: run an in-memory
    // Noise_XN handshake whose initiator holds the key, and read the static
    // key the responder learns.
    let e = |e: snow::Error| e.to_string();
    let params: snow::params::NoiseParams = "Noise_XN_25519_ChaChaPoly_BLAKE2s".parse().map_err(e)?;
    let mut i = snow::Builder::new(params.clone()).local_private_key(private).and_then(|b| b.build_initiator()).map_err(e)?;
    let mut r = snow::Builder::new(params).build_responder().map_err(e)?;
    let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
    let n = i.write_message(&[], &mut a).map_err(e)?;
    r.read_message(&a[..n], &mut b).map_err(e)?;
    let n = r.write_message(&[], &mut a).map_err(e)?;
    i.read_message(&a[..n], &mut b).map_err(e)?;
    let n = i.write_message(&[], &mut a).map_err(e)?;
    r.read_message(&a[..n], &mut b).map_err(e)?;
    let p = r.get_remote_static().ok_or("no static key")?;
    p.try_into().map_err(|_| "key length".to_string())
}

fn write_noise(stream: &mut TcpStream, msg: &[u8]) -> Result<(), WireError> {
    let len = u16::try_from(msg.len()).map_err(|_| WireError::Malformed("noise message too long".into()))?;
    let mut buf = Vec::with_capacity(2 + msg.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    stream.write_all(&buf)?;
    Ok(())
}

/// Fill `buf` by `deadline`: the socket's timeout is what is left of it before
/// every read, so a peer that dribbles a byte at a time gains nothing.
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request did not arrive whole in time").into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_noise<'b>(stream: &mut TcpStream, buf: &'b mut [u8; NOISE_MAX], deadline: Instant) -> Result<&'b [u8], WireError> {
    let mut len = [0u8; 2];
    read_by(stream, &mut len, deadline)?;
    let n = u16::from_be_bytes(len) as usize;
    read_by(stream, &mut buf[..n], deadline)?;
    Ok(&buf[..n])
}

/// An established, encrypted and authenticated connection.
pub struct Channel {
    stream: TcpStream,
    noise: TransportState,
    max_message: usize,
    /// How long a whole message may take to arrive, from its first byte (and
    /// the handshake, from the connection).
    timeout: Duration,
    cbuf: Box<[u8; NOISE_MAX]>,
    pbuf: Box<[u8; NOISE_MAX]>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("peer", &self.stream.peer_addr().ok()).finish_non_exhaustive()
    }
}

impl Channel {
    fn new(stream: TcpStream, hs: HandshakeState, max_message: usize, timeout: Duration) -> Result<Channel, WireError> {
        let noise = hs.into_transport_mode().map_err(noise_err)?;
        Ok(Channel { stream, noise, max_message, timeout, cbuf: Box::new([0; NOISE_MAX]), pbuf: Box::new([0; NOISE_MAX]) })
    }

    /// Client side: connect and authenticate the router by its pinned static key.
    pub fn connect(addr: &str, router_key: &[u8; 32], timeout: Duration) -> Result<Channel, WireError> {
        use std::net::ToSocketAddrs;
        let sa = addr.to_socket_addrs()?.next().ok_or_else(|| WireError::Malformed(format!("{addr}: no address")))?;
        let mut stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse().map_err(noise_err)?)
            .prologue(PROLOGUE)
            .and_then(|b| b.remote_public_key(router_key))
            .and_then(|b| b.build_initiator())
            .map_err(noise_err)?;
        let mut buf = [0u8; NOISE_MAX];
        let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
        write_noise(&mut stream, &buf[..n])?;
        let mut rbuf = [0u8; NOISE_MAX];
        let msg = read_noise(&mut stream, &mut rbuf, Instant::now() + timeout)?;
        hs.read_message(msg, &mut buf).map_err(|e| WireError::Noise(format!("{e} (is --router-key the router's key?)")))?;
        Channel::new(stream, hs, MAX_REPLY, timeout)
    }

    /// Router side: complete the handshake on an accepted connection. The
    /// handshake must arrive whole within `timeout` of the call, and so must
    /// every later message from its first byte.
    pub fn accept(mut stream: TcpStream, private: &[u8; 32], timeout: Duration, max_message: usize) -> Result<Channel, WireError> {
        let deadline = Instant::now() + timeout;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse().map_err(noise_err)?)
            .prologue(PROLOGUE)
            .and_then(|b| b.local_private_key(private))
            .and_then(|b| b.build_responder())
            .map_err(noise_err)?;
        let mut rbuf = [0u8; NOISE_MAX];
        let mut buf = [0u8; NOISE_MAX];
        let msg = read_noise(&mut stream, &mut rbuf, deadline)?;
        hs.read_message(msg, &mut buf).map_err(noise_err)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
        write_noise(&mut stream, &buf[..n])?;
        Channel::new(stream, hs, max_message, timeout)
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// Send one application message.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), WireError> {
        let total = u32::try_from(msg.len()).map_err(|_| WireError::Oversized { size: msg.len(), max: u32::MAX as usize })?;
        let mut first = Vec::with_capacity(CHUNK);
        first.extend_from_slice(&total.to_be_bytes());
        let head = msg.len().min(CHUNK - 4);
        first.extend_from_slice(&msg[..head]);
        let mut out = Vec::with_capacity(msg.len() + 64);
        let seal = |plain: &[u8], out: &mut Vec<u8>, noise: &mut TransportState, cbuf: &mut [u8; NOISE_MAX]| -> Result<(), WireError> {
            let n = noise.write_message(plain, cbuf).map_err(noise_err)?;
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&cbuf[..n]);
            Ok(())
        };
        seal(&first, &mut out, &mut self.noise, &mut self.cbuf)?;
        for chunk in msg[head..].chunks(CHUNK) {
            seal(chunk, &mut out, &mut self.noise, &mut self.cbuf)?;
        }
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Receive one application message. `Ok(None)` when the peer closed the
    /// connection cleanly between messages. Between messages the peer may stay silent for the channel's timeout;
    /// once a message's first byte is in, the whole message must arrive
    /// within the timeout.
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let mut len = [0u8; 2];
        self.stream.set_read_timeout(Some(self.timeout))?;
        match self.stream.read(&mut len[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let deadline = Instant::now() + self.timeout;
        read_by(&mut self.stream, &mut len[1..], deadline)?;
        let n = u16::from_be_bytes(len) as usize;
        read_by(&mut self.stream, &mut self.cbuf[..n], deadline)?;
        let p = self.noise.read_message(&self.cbuf[..n], &mut self.pbuf[..]).map_err(noise_err)?;
        if p < 4 {
            return Err(WireError::Malformed("first chunk shorter than its length prefix".into()));
        }
        let total = u32::from_be_bytes(self.pbuf[..4].try_into().expect("4 bytes")) as usize;
        if total > self.max_message {
            return Err(WireError::Oversized { size: total, max: self.max_message });
        }
        if p - 4 > total {
            return Err(WireError::Malformed("first chunk longer than the message".into()));
        }
        let mut msg = Vec::with_capacity(total);
        msg.extend_from_slice(&self.pbuf[4..p]);
        while msg.len() < total {
            let chunk = read_noise(&mut self.stream, &mut self.cbuf, deadline)?;
            let p = self.noise.read_message(chunk, &mut self.pbuf[..]).map_err(noise_err)?;
            if p == 0 || msg.len() + p > total {
                return Err(WireError::Malformed("chunks do not add up to the announced length".into()));
            }
            msg.extend_from_slice(&self.pbuf[..p]);
        }
        Ok(Some(msg))
    }

    /// Read and discard up to `limit` bytes (the rest of a refused message),
    /// so that a client still writing it gets to read the refusal.
    pub fn drain(&mut self, limit: usize) {
        let mut buf = [0u8; 16 << 10];
        let mut left = limit;
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        while left > 0 {
            match self.stream.read(&mut buf[..left.min(16 << 10)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n,
            }
        }
    }

    /// Write only the first `keep` bytes of a message's encoding, as a
    /// client that disconnects mid-upload does (fault-injection tests).
    #[doc(hidden)]
    pub fn send_partial(&mut self, msg: &[u8], keep: usize) -> Result<(), WireError> {
        let total = u32::try_from(msg.len()).map_err(|_| WireError::Oversized { size: msg.len(), max: u32::MAX as usize })?;
        let mut plain = total.to_be_bytes().to_vec();
        plain.extend_from_slice(&msg[..msg.len().min(CHUNK - 4)]);
        let n = self.noise.write_message(&plain, &mut self.cbuf[..]).map_err(noise_err)?;
        let mut out = (n as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&self.cbuf[..n]);
        self.stream.write_all(&out[..keep.min(out.len())])?;
        Ok(())
    }

    /// Set the socket's read timeout.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.stream.set_read_timeout(t)
    }
}

/// Decode a value with nothing left over.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(decode_text)?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the message", rest.len()));
    }
    Ok(v)
}

/// Encode a value.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("in-memory encoding")
}

/// Sign a request.
pub fn sign(req: &Request, key: &SigningKey) -> SignedRequest {
    let body = encode(req);
    let mut m = REQUEST_DOMAIN.to_vec();
    m.extend_from_slice(&body);
    SignedRequest { signature: key.sign(&m).to_bytes().to_vec(), body }
}

/// A request whose signature verified against its own `client` key. The
/// identity is still to be verified against the router's authorities.
#[derive(Debug)]
pub struct Authentic {
    /// The request.
    pub request: Request,
    /// The key that signed it.
    pub key: VerifyingKey,
}

/// Decode a signed request and verify its signature by the key it names.
pub fn open(s: &SignedRequest) -> Result<Authentic, (Refusal, String)> {
    let request: Request = decode(&s.body).map_err(|e| (Refusal::Malformed, format!("malformed request: {e}")))?;
    if request.version != PROTOCOL_VERSION {
        return Err((Refusal::Malformed, format!("request version {} (this router speaks {PROTOCOL_VERSION})", request.version)));
    }
    let key = VerifyingKey::from_bytes(&request.client)
        .map_err(|_| (Refusal::Malformed, "the request's client key is not an ed25519 key".into()))?;
    let sig = <[u8; 64]>::try_from(s.signature.as_slice())
        .map(|b| Signature::from_bytes(&b))
        .map_err(|_| (Refusal::BadSignature, "the request's signature is not 64 bytes".into()))?;
    let mut m = REQUEST_DOMAIN.to_vec();
    m.extend_from_slice(&s.body);
    key.verify_strict(&m, &sig).map_err(|_| (Refusal::BadSignature, "the request's signature does not verify".into()))?;
    Ok(Authentic { request, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        let e = WireError::from(std::io::Error::from(std::io::ErrorKind::WouldBlock)).to_string();
        assert_eq!(e, "connection: timed out: the other side sent nothing in time");
        assert!(!e.contains("os error"));
        let bad = decode::<Wire>(&[0xff, 0xff]).unwrap_err();
        assert!(!bad.contains("Serde") && bad.starts_with("it "), "{bad}");
        assert_eq!(decode::<Wire>(&[]).unwrap_err(), "it ends before the message does (truncated)");
    }
    use crate::identity::{issue, Subject};
    use proptest::prelude::*;

    fn request(op: Op) -> (Request, SigningKey) {
        let client = SigningKey::from_bytes(&[2; 32]);
        let id = issue(&SigningKey::from_bytes(&[1; 32]), &client.verifying_key(), Subject::EndUser { ip: 7 }, 0, 10).unwrap();
        let r = Request {
            version: PROTOCOL_VERSION,
            router: [5; 32],
            seq: 1,
            timestamp_ms: 0,
            client: client.verifying_key().to_bytes(),
            identity: id,
            op,
        };
        (r, client)
    }

    #[test]
    fn sign_and_open() {
        let (r, k) = request(Op::Status);
        let s = sign(&r, &k);
        let a = open(&s).unwrap();
        assert_eq!(a.request, r);
        let mut bad = s.clone();
        bad.body[3] ^= 1;
        assert!(open(&bad).is_err());
        let mut bad = s.clone();
        bad.signature[0] ^= 1;
        assert_eq!(open(&bad).unwrap_err().0, Refusal::BadSignature);
        let mut bad = s;
        bad.signature.truncate(10);
        assert_eq!(open(&bad).unwrap_err().0, Refusal::BadSignature);
    }

    #[test]
    fn channel_round_trip_and_limits() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (private, public) = generate_router_key().unwrap();
        assert_eq!(router_public_key(&private).unwrap(), public);
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ch = Channel::accept(s, &private, Duration::from_secs(5), 200_000).unwrap();
            let mut got = vec![];
            while let Ok(Some(m)) = ch.recv() {
                ch.send(&m).unwrap();
                got.push(m.len());
            }
            // The oversized one is refused before it is read.
            got
        });
        let mut c = Channel::connect(&addr, &public, Duration::from_secs(5)).unwrap();
        for n in [0usize, 1, CHUNK - 4, CHUNK - 3, CHUNK, 3 * CHUNK + 17, 200_000] {
            let m: Vec<u8> = (0..n).map(|i| i as u8).collect();
            c.send(&m).unwrap();
            assert_eq!(c.recv().unwrap().unwrap(), m, "{n}");
        }
        c.send(&vec![0; 200_001]).unwrap();
        assert!(c.recv().is_err(), "the router closes on an oversized message");
        let got = server.join().unwrap();
        assert_eq!(got.len(), 7);
        // A client with the wrong pinned key fails the handshake.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            Channel::accept(s, &private, Duration::from_secs(5), 1000).is_ok()
        });
        let (_, other) = generate_router_key().unwrap();
        assert!(Channel::connect(&addr, &other, Duration::from_secs(5)).is_err());
        assert!(!t.join().unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random bytes never panic the decoders.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode::<Wire>(&bytes);
            let _ = decode::<Request>(&bytes);
            if let Ok(Wire::Signed(s)) = decode::<Wire>(&bytes) {
                let _ = open(&s);
            }
        }

        /// Mutations of a valid request never panic and never verify.
        #[test]
        fn mutated_requests(pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let (r, k) = request(Op::Upload { bundle: vec![1, 2, 3], pay: 9, params: vec![("SrcIP".into(), Const::Addr(3))] });
            let w = encode(&Wire::Signed(sign(&r, &k)));
            let mut m = w.clone();
            let i = pos.index(m.len());
            m[i] ^= val | 1;
            if let Ok(Wire::Signed(s)) = decode::<Wire>(&m) {
                if let Ok(a) = open(&s) {
                    // Only a change outside body and signature (none exists) could verify.
                    prop_assert_eq!(a.request, r.clone());
                }
            }
            let c = cut.index(w.len());
            prop_assert!(decode::<Wire>(&w[..c]).is_err());
        }
    }
}
