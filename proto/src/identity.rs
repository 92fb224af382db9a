//! Client identities (DESIGN section 7): ed25519 keys, and identity
//! certificates by which an operator's authority key binds a client key to an
//! address (an end user) or a prefix (an edge router).
//!
//! The router learns THIS_IP / THIS_SUBNET_IP from a verified certificate and
//! from nothing else. No cryptography is written here: signing and
//! verification are `ed25519-dalek`'s; this module only fixes what is signed.
//!
//! File formats (all written by `vinetc keygen` / `vinetc identity issue`):
//! - secret key: one text line `vinet-secret-key-v1 <64 hex digits>` (the
//!   32-byte ed25519 seed), written with mode 0600;
//! - public key: one text line `vinet-public-key-v1 <64 hex digits>`;
//! - identity: the bytes `VID1` followed by postcard([`SignedIdentity`]).
//!
//! What an authority signs: the domain string [`IDENTITY_DOMAIN`] followed by
//! postcard([`IdentityCert`]), so an identity signature can never be taken for
//! a request signature ([`crate::protocol`] signs under its own domain).

use ed25519_dalek::{Signature, Signer, Verifier};
/// The key types of this module's API (ed25519-dalek's).
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use vinet_vocab::Ipv4Prefix;

/// Magic of an identity file.
pub const IDENTITY_MAGIC: &[u8; 4] = b"VID1";
/// Version of [`IdentityCert`].
pub const IDENTITY_VERSION: u16 = 1;
/// What an authority's signature covers, before the certificate's bytes.
pub const IDENTITY_DOMAIN: &[u8] = b"vinet identity v1\0";
const SECRET_TAG: &str = "vinet-secret-key-v1";
const PUBLIC_TAG: &str = "vinet-public-key-v1";

/// What a client key is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// An end user: THIS_IP.
    EndUser {
        /// THIS_IP, host byte order.
        ip: u32,
    },
    /// An edge router acting as a client: THIS_SUBNET_IP and its own address.
    EdgeRouter {
        /// THIS_SUBNET_IP. On the wire, (network, length) as postcard writes
        /// a pair; one with host bits set does not decode.
        #[serde(with = "wire_prefix")]
        prefix: Ipv4Prefix,
        /// THIS_IP: the client router's address (GENERATE's only destination).
        router_ip: u32,
    },
}

impl Subject {
    /// The client's own address (THIS_IP).
    pub fn this_ip(&self) -> u32 {
        match *self {
            Subject::EndUser { ip } => ip,
            Subject::EdgeRouter { router_ip, .. } => router_ip,
        }
    }

    /// The destinations the client's programs are confined to, as a prefix
    /// (a /32 for an end user): (network, length), the router's key for them.
    pub fn dest(&self) -> (u32, u8) {
        match *self {
            Subject::EndUser { ip } => Ipv4Prefix::host(ip),
            Subject::EdgeRouter { prefix, .. } => prefix,
        }
        .into()
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Subject::EndUser { ip } => write!(f, "end user {}", ip4(ip)),
            Subject::EdgeRouter { prefix, router_ip } => write!(f, "edge router {} for {prefix}", ip4(router_ip)),
        }
    }
}

/// A prefix on the wire: the pair (network, length), refused on decode when
/// it is not a prefix (host bits set, a length over 32).
mod wire_prefix {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vinet_vocab::Ipv4Prefix;

    pub fn serialize<S: Serializer>(p: &Ipv4Prefix, s: S) -> Result<S::Ok, S::Error> {
        <(u32, u8)>::from(*p).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Prefix, D::Error> {
        let pair = <(u32, u8)>::deserialize(d)?;
        Ipv4Prefix::try_from(pair).map_err(serde::de::Error::custom)
    }
}

/// Dotted-quad text of a host-order address.
pub fn ip4(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// An identity certificate: the statement an authority signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCert {
    /// [`IDENTITY_VERSION`].
    pub version: u16,
    /// The client's ed25519 public key.
    pub client: [u8; 32],
    /// What the key is bound to.
    pub subject: Subject,
    /// Valid from (seconds since the Unix epoch).
    pub not_before: u64,
    /// Valid until (seconds since the Unix epoch), exclusive.
    pub not_after: u64,
    /// The signing authority's ed25519 public key (its id).
    pub authority: [u8; 32],
}

/// A certificate and the authority's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIdentity {
    /// The statement.
    pub cert: IdentityCert,
    /// ed25519 signature of [`IDENTITY_DOMAIN`] ++ postcard(cert).
    pub signature: Vec<u8>,
}

/// Why an identity, a key or a key file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a well-formed file or structure.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Signed by a key the router does not trust.
    #[error("identity issued by authority {0}, which this router does not trust")]
    UnknownAuthority(String),
    /// Outside its validity period.
    #[error("identity expired at {not_after} (now {now}, seconds since the epoch)")]
    Expired {
        /// End of validity.
        not_after: u64,
        /// The router's clock.
        now: u64,
    },
    /// Not valid yet.
    #[error("identity not valid before {not_before} (now {now}, seconds since the epoch)")]
    NotYetValid {
        /// Start of validity.
        not_before: u64,
        /// The router's clock.
        now: u64,
    },
    /// The authority's signature does not verify.
    #[error("the identity's signature does not verify against authority {0}")]
    BadSignature(String),
}

fn bad(what: &'static str, reason: impl Into<String>) -> IdentityError {
    IdentityError::Malformed { what, reason: reason.into() }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse exactly `N` bytes of hex.
pub fn unhex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return Err(format!("expected {} hex digits, found {} characters", 2 * N, s.len()));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| format!("not hex: {:?}", &s[2 * i..2 * i + 2]))?;
    }
    Ok(out)
}

/// A fresh ed25519 signing key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text of a secret key file.
pub fn secret_key_text(k: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex(&k.to_bytes()))
}

/// The text of a public key file.
pub fn public_key_text(k: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(k.as_bytes()))
}

fn tagged<'a>(text: &'a str, tag: &str, what: &'static str) -> Result<&'a str, IdentityError> {
    let t = text.trim();
    t.strip_prefix(tag).map(str::trim).ok_or_else(|| bad(what, format!("expected a line starting with `{tag}`")))
}

/// Read a secret key file's text.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, IdentityError> {
    let h = tagged(text, SECRET_TAG, "secret key")?;
    Ok(SigningKey::from_bytes(&unhex::<32>(h).map_err(|e| bad("secret key", e))?))
}

/// Read a public key: a public key file's text, or bare hex.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, IdentityError> {
    let t = text.trim();
    let h = t.strip_prefix(PUBLIC_TAG).map(str::trim).unwrap_or(t);
    let b = unhex::<32>(h).map_err(|e| bad("public key", e))?;
    VerifyingKey::from_bytes(&b).map_err(|e| bad("public key", e.to_string()))
}

/// The bytes an authority signs for `cert`.
fn signed_bytes(cert: &IdentityCert) -> Vec<u8> {
    let mut m = IDENTITY_DOMAIN.to_vec();
    m.extend(postcard::to_allocvec(cert).expect("in-memory encoding"));
    m
}

/// Issue an identity: `authority` binds `client` to `subject` for
/// `[not_before, not_after)`.
pub fn issue(
    authority: &SigningKey, client: &VerifyingKey, subject: Subject, not_before: u64, not_after: u64,
) -> Result<SignedIdentity, IdentityError> {
    if not_after <= not_before {
        return Err(bad("identity", "it expires before it starts"));
    }
    let cert = IdentityCert {
        version: IDENTITY_VERSION,
        client: client.to_bytes(),
        subject,
        not_before,
        not_after,
        authority: authority.verifying_key().to_bytes(),
    };
    let signature = authority.sign(&signed_bytes(&cert)).to_bytes().to_vec();
    Ok(SignedIdentity { cert, signature })
}

impl SignedIdentity {
    /// The identity file's bytes.
    pub fn to_file(&self) -> Vec<u8> {
        let mut out = IDENTITY_MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).expect("in-memory encoding"));
        out
    }

    /// Read an identity file's bytes (the signature is not checked here).
    pub fn from_file(bytes: &[u8]) -> Result<SignedIdentity, IdentityError> {
        let body = bytes.strip_prefix(IDENTITY_MAGIC).ok_or_else(|| bad("identity", "wrong magic: not a vinet identity file"))?;
        let (v, rest): (SignedIdentity, _) = postcard::take_from_bytes(body).map_err(|e| bad("identity", e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad("identity", format!("{} trailing bytes", rest.len())));
        }
        Ok(v)
    }

    /// Verify against the trusted authority keys at time `now` (seconds since
    /// the epoch). On success, what the router may take from it.
    pub fn verify(&self, trusted: &[VerifyingKey], now: u64) -> Result<Verified, IdentityError> {
        let c = &self.cert;
        if c.version != IDENTITY_VERSION {
            return Err(bad("identity", format!("version {} (this router reads {IDENTITY_VERSION})", c.version)));
        }
        let Some(authority) = trusted.iter().find(|k| k.as_bytes() == &c.authority) else {
            return Err(IdentityError::UnknownAuthority(hex(&c.authority[..8])));
        };
        let sig = <[u8; 64]>::try_from(self.signature.as_slice())
            .map(|b| Signature::from_bytes(&b))
            .map_err(|_| IdentityError::BadSignature(hex(&c.authority[..8])))?;
        authority.verify(&signed_bytes(c), &sig).map_err(|_| IdentityError::BadSignature(hex(&c.authority[..8])))?;
        if now < c.not_before {
            return Err(IdentityError::NotYetValid { not_before: c.not_before, now });
        }
        if now >= c.not_after {
            return Err(IdentityError::Expired { not_after: c.not_after, now });
        }
        let client = VerifyingKey::from_bytes(&c.client).map_err(|e| bad("identity", format!("client key: {e}")))?;
        Ok(Verified { client, subject: c.subject, authority: *authority, not_after: c.not_after })
    }
}

/// A verified identity: the only source of THIS_IP / THIS_SUBNET_IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The client's key.
    pub client: VerifyingKey,
    /// Its address or prefix.
    pub subject: Subject,
    /// The authority that vouched for it.
    pub authority: VerifyingKey,
    /// End of validity.
    pub not_after: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn issue_verify_and_files() {
        let (auth, client) = (key(1), key(2));
        let id = issue(&auth, &client.verifying_key(), Subject::EndUser { ip: 0x0a00_0307 }, 100, 200).unwrap();
        let back = SignedIdentity::from_file(&id.to_file()).unwrap();
        assert_eq!(back, id);
        let v = back.verify(&[key(9).verifying_key(), auth.verifying_key()], 150).unwrap();
        assert_eq!(v.subject.this_ip(), 0x0a00_0307);
        assert_eq!(v.client, client.verifying_key());
        // Unknown authority, expiry, not yet valid.
        assert!(matches!(id.verify(&[key(9).verifying_key()], 150), Err(IdentityError::UnknownAuthority(_))));
        assert!(matches!(id.verify(&[auth.verifying_key()], 200), Err(IdentityError::Expired { .. })));
        assert!(matches!(id.verify(&[auth.verifying_key()], 99), Err(IdentityError::NotYetValid { .. })));
        // Any change to the statement breaks the signature.
        let mut forged = id.clone();
        forged.cert.subject = Subject::EndUser { ip: 0x0a00_0308 };
        assert!(matches!(forged.verify(&[auth.verifying_key()], 150), Err(IdentityError::BadSignature(_))));
        let mut forged = id.clone();
        forged.cert.not_after = 10_000;
        assert!(matches!(forged.verify(&[auth.verifying_key()], 150), Err(IdentityError::BadSignature(_))));
        let mut short = id.clone();
        short.signature.pop();
        assert!(matches!(short.verify(&[auth.verifying_key()], 150), Err(IdentityError::BadSignature(_))));
        // Files.
        assert!(SignedIdentity::from_file(b"VID2").is_err());
        let mut f = id.to_file();
        f.push(0);
        assert!(SignedIdentity::from_file(&f).is_err());
        for cut in 0..f.len() - 1 {
            assert!(SignedIdentity::from_file(&f[..cut]).is_err());
        }
    }

    #[test]
    fn edge_router_subjects_and_bad_prefixes() {
        let auth = key(1);
        let net: Ipv4Prefix = "10.1.0.0/16".parse().unwrap();
        let s = Subject::EdgeRouter { prefix: net, router_ip: 0x0a01_0001 };
        let id = issue(&auth, &key(3).verifying_key(), s, 0, 10).unwrap();
        assert_eq!(id.verify(&[auth.verifying_key()], 5).unwrap().subject.dest(), (0x0a01_0000, 16));
        assert_eq!(s.to_string(), "edge router 10.1.0.1 for 10.1.0.0/16");
        assert_eq!(Subject::EndUser { ip: 0x0a01_0007 }.dest(), (0x0a01_0007, 32));
        assert!(issue(&auth, &key(3).verifying_key(), s, 10, 10).is_err());
    }

    /// The wire form of a subject is what it was when the prefix was a bare
    /// (network, length) pair, and a pair that is no prefix does not decode.
    #[test]
    fn prefixes_on_the_wire() {
        #[derive(Serialize)]
        enum Pair {
            #[allow(dead_code)]
            EndUser {
                ip: u32,
            },
            EdgeRouter {
                prefix: (u32, u8),
                router_ip: u32,
            },
        }
        let good = postcard::to_allocvec(&Pair::EdgeRouter { prefix: (0x0a01_0000, 16), router_ip: 7 }).unwrap();
        let s = Subject::EdgeRouter { prefix: "10.1.0.0/16".parse().unwrap(), router_ip: 7 };
        assert_eq!(postcard::to_allocvec(&s).unwrap(), good);
        assert_eq!(postcard::from_bytes::<Subject>(&good).unwrap(), s);
        for bad in [(0x0a01_0001, 16), (0x0a01_0000, 33)] {
            let b = postcard::to_allocvec(&Pair::EdgeRouter { prefix: bad, router_ip: 7 }).unwrap();
            let e = postcard::from_bytes::<Subject>(&b).unwrap_err();
            assert!(matches!(e, postcard::Error::SerdeDeCustom), "{bad:?}: {e}");
        }
    }

    #[test]
    fn key_files_round_trip() {
        let k = generate_key().unwrap();
        assert_eq!(parse_secret_key(&secret_key_text(&k)).unwrap().to_bytes(), k.to_bytes());
        let p = k.verifying_key();
        assert_eq!(parse_public_key(&public_key_text(&p)).unwrap(), p);
        assert_eq!(parse_public_key(&hex(p.as_bytes())).unwrap(), p);
        assert!(parse_secret_key("vinet-secret-key-v1 12").is_err());
        assert!(parse_secret_key(&public_key_text(&p)).is_err());
        assert!(parse_public_key("zz").is_err());
        assert_eq!(unhex::<2>("0aFf"), Ok([0x0a, 0xff]));
        assert!(unhex::<2>("0aF").is_err());
        assert!(unhex::<2>("éé").is_err());
    }
}
