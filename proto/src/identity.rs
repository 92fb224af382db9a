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
use vinet_checker::mapped;
use vinet_checker::policy::ClientKind;
use vinet_vocab::{addr_text, v4_of, IpPrefix};

/// Magic of an identity file.
pub const IDENTITY_MAGIC: &[u8; 4] = b"VID1";
/// Version of [`IdentityCert`].
pub const IDENTITY_VERSION: u16 = 1;
/// What an authority's signature covers, before the certificate's bytes.
pub const IDENTITY_DOMAIN: &[u8] = b"vinet identity v1\0";
const SECRET_TAG: &str = "vinet-secret-key-v1";
const PUBLIC_TAG: &str = "vinet-public-key-v1";

/// Most addresses (an end user) or prefixes (an edge router) one identity binds.
pub const MAX_BOUND: usize = 8;

/// What a client key is bound to: the client's own addresses, IPv4 and IPv6.
/// Every address is 128-bit, IPv4 as IPv4-mapped (`vinet_checker::mapped`).
///
/// `EndUser` and `EdgeRouter` are the forms of one IPv4 address or prefix,
/// kept so that the identities issued before IPv6 decode as they did; `Host`
/// and `Site` (appended) bind several, of both families. [`Subject::host`]
/// and [`Subject::site`] pick the shortest form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// An end user with one IPv4 address: THIS_IP.
    EndUser {
        /// THIS_IP, host byte order.
        ip: u32,
    },
    /// An edge router acting as a client, for one IPv4 prefix.
    EdgeRouter {
        /// THIS_SUBNET_IP. On the wire, (network, length) as postcard writes
        /// a pair of IPv4 values; one with host bits set does not decode.
        #[serde(with = "wire_prefix")]
        prefix: IpPrefix,
        /// THIS_IP: the client router's address (GENERATE's only destination).
        router_ip: u32,
    },
    /// An end user with 1 to [`MAX_BOUND`] distinct addresses, IPv4 and IPv6.
    Host {
        /// Its addresses; a program runs once for each, THIS_IP bound to it.
        #[serde(with = "wire_list")]
        ips: Vec<u128>,
    },
    /// An edge router for 1 to [`MAX_BOUND`] prefixes, with one or two addresses of its own.
    Site {
        /// Its prefixes (no one inside another); a program runs once for each, THIS_SUBNET_IP bound to it.
        #[serde(with = "wire_list")]
        prefixes: Vec<IpPrefix>,
        /// Its own addresses, at most one a family: THIS_IP is the one of the prefix's family, else the first.
        #[serde(with = "wire_list")]
        routers: Vec<u128>,
    },
}

impl Subject {
    /// An end user with these addresses (refused: none, more than [`MAX_BOUND`], repeats).
    pub fn host(ips: Vec<u128>) -> Result<Subject, String> {
        check_list(&ips, "addresses", |a, b| a == b)?;
        Ok(match ips[..] {
            [a] if v4_of(a).is_some() => Subject::EndUser { ip: a as u32 },
            _ => Subject::Host { ips },
        })
    }

    /// An edge router for these prefixes with these addresses of its own (refused: no
    /// prefix or address, too many, a prefix inside another, two addresses of one family).
    pub fn site(prefixes: Vec<IpPrefix>, routers: Vec<u128>) -> Result<Subject, String> {
        check_list(&prefixes, "prefixes", |a, b| a.covers(*b) || b.covers(*a))?;
        check_list(&routers, "router addresses", |a, b| v4_of(*a).is_some() == v4_of(*b).is_some())?;
        if routers.len() > 2 {
            return Err("an edge router has at most one address of each family".into());
        }
        Ok(match (&prefixes[..], &routers[..]) {
            ([p], [r]) if p.is_v4() && v4_of(*r).is_some() => Subject::EdgeRouter { prefix: *p, router_ip: *r as u32 },
            _ => Subject::Site { prefixes, routers },
        })
    }

    /// Whether the lists are what [`Subject::host`] and [`Subject::site`] accept.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Subject::Host { ips } => Subject::host(ips.clone()).map(drop),
            Subject::Site { prefixes, routers } => Subject::site(prefixes.clone(), routers.clone()).map(drop),
            _ => Ok(()),
        }
    }

    /// The client's kind: end user or edge router.
    pub fn kind(&self) -> ClientKind {
        match self {
            Subject::EndUser { .. } | Subject::Host { .. } => ClientKind::EndUser,
            Subject::EdgeRouter { .. } | Subject::Site { .. } => ClientKind::EdgeRouter,
        }
    }

    /// The client's first own address (THIS_IP of its first instance).
    pub fn this_ip(&self) -> u128 {
        self.instances()[0].0
    }

    /// The destinations the client's programs are confined to, as prefixes (an end
    /// user's addresses as /128s): the router's keys for them.
    pub fn dests(&self) -> Vec<IpPrefix> {
        self.instances().into_iter().map(|(ip, net)| net.unwrap_or(IpPrefix::host(ip))).collect()
    }

    /// What each instance of a program binds: THIS_IP, and THIS_SUBNET_IP for an edge
    /// router. A program is installed once for each (one per address or prefix), and
    /// each instance is confined to one of the client's own, as its proof shows.
    pub fn instances(&self) -> Vec<(u128, Option<IpPrefix>)> {
        match self {
            Subject::EndUser { ip } => vec![(mapped(*ip), None)],
            Subject::EdgeRouter { prefix, router_ip } => vec![(mapped(*router_ip), Some(*prefix))],
            Subject::Host { ips } => ips.iter().map(|&ip| (ip, None)).collect(),
            Subject::Site { prefixes, routers } => prefixes
                .iter()
                .map(|p| {
                    let same = routers.iter().find(|r| v4_of(**r).is_some() == p.is_v4());
                    (*same.unwrap_or(&routers[0]), Some(*p))
                })
                .collect(),
        }
    }
}

fn check_list<T>(items: &[T], what: &str, clash: impl Fn(&T, &T) -> bool) -> Result<(), String> {
    if items.is_empty() || items.len() > MAX_BOUND {
        return Err(format!("an identity binds 1 to {MAX_BOUND} {what}, not {}", items.len()));
    }
    for (i, a) in items.iter().enumerate() {
        if items[..i].iter().any(|b| clash(a, b)) {
            return Err(format!("two of the {what} overlap or are of one kind"));
        }
    }
    Ok(())
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: Vec<String>| v.join(", ");
        match self {
            Subject::EndUser { .. } | Subject::Host { .. } => {
                write!(f, "end user {}", list(self.instances().iter().map(|(ip, _)| addr_text(*ip)).collect()))
            }
            Subject::EdgeRouter { prefix, router_ip } => write!(f, "edge router {} for {prefix}", addr_text(mapped(*router_ip))),
            Subject::Site { prefixes, routers } => write!(
                f,
                "edge router {} for {}",
                list(routers.iter().map(|r| addr_text(*r)).collect()),
                list(prefixes.iter().map(|p| p.to_string()).collect())
            ),
        }
    }
}

/// An IPv4 prefix on the wire: the pair (network, length) of IPv4 values,
/// refused on decode when it is not a prefix (host bits set, a length over 32).
mod wire_prefix {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vinet_vocab::{v4_of, IpPrefix};

    pub fn serialize<S: Serializer>(p: &IpPrefix, s: S) -> Result<S::Ok, S::Error> {
        match v4_of(p.net()) {
            Some(net) if p.is_v4() => (net, p.length() - 96).serialize(s),
            _ => Err(serde::ser::Error::custom("not an IPv4 prefix")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpPrefix, D::Error> {
        let (net, len) = <(u32, u8)>::deserialize(d)?;
        IpPrefix::v4(net, len).map_err(serde::de::Error::custom)
    }
}

/// A list of addresses or prefixes on the wire, refused on decode when it is
/// empty or longer than [`MAX_BOUND`] (what [`Subject::host`] and
/// [`Subject::site`] check again when a certificate is verified).
mod wire_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: super::Wire>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(T::to_raw).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: super::Wire>(d: D) -> Result<Vec<T>, D::Error> {
        let raw = Vec::<T::Raw>::deserialize(d)?;
        if raw.is_empty() || raw.len() > super::MAX_BOUND {
            return Err(serde::de::Error::custom(format!("a list of {} addresses or prefixes", raw.len())));
        }
        raw.into_iter().map(|r| T::from_raw(r).map_err(serde::de::Error::custom)).collect()
    }
}

/// What a list of [`Subject`] holds, and how it is read from the wire.
trait Wire: Sized {
    type Raw: Serialize + for<'de> Deserialize<'de>;
    fn to_raw(&self) -> Self::Raw;
    fn from_raw(r: Self::Raw) -> Result<Self, String>;
}

impl Wire for u128 {
    type Raw = u128;
    fn to_raw(&self) -> u128 {
        *self
    }
    fn from_raw(r: u128) -> Result<u128, String> {
        Ok(r)
    }
}

impl Wire for IpPrefix {
    type Raw = (u128, u8);
    fn to_raw(&self) -> (u128, u8) {
        (*self).into()
    }
    fn from_raw(r: (u128, u8)) -> Result<IpPrefix, String> {
        IpPrefix::try_from(r).map_err(|e| e.to_string())
    }
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
    subject.check().map_err(|e| bad("identity", e))?;
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
        c.subject.check().map_err(|e| bad("identity", e))?;
        Ok(Verified { client, subject: c.subject.clone(), authority: *authority, not_after: c.not_after })
    }
}

/// A verified identity: the only source of THIS_IP / THIS_SUBNET_IP.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        assert_eq!(v.subject.this_ip(), mapped(0x0a00_0307));
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
        let net: IpPrefix = "10.1.0.0/16".parse().unwrap();
        let s = Subject::EdgeRouter { prefix: net, router_ip: 0x0a01_0001 };
        let id = issue(&auth, &key(3).verifying_key(), s.clone(), 0, 10).unwrap();
        assert_eq!(id.verify(&[auth.verifying_key()], 5).unwrap().subject.dests(), vec![net]);
        assert_eq!(s.to_string(), "edge router 10.1.0.1 for 10.1.0.0/16");
        assert_eq!(Subject::EndUser { ip: 0x0a01_0007 }.dests(), vec![IpPrefix::host(mapped(0x0a01_0007))]);
        assert!(issue(&auth, &key(3).verifying_key(), s, 10, 10).is_err());
    }

    /// Issue 15: an identity binds several addresses or prefixes, IPv4 and IPv6;
    /// a program runs once for each, THIS_IP (THIS_SUBNET_IP) bound to it.
    #[test]
    fn dual_stack_subjects() {
        let v6: u128 = "fd00:3::2".parse::<std::net::Ipv6Addr>().unwrap().into();
        let v4 = mapped(0x0a00_0302);
        let host = Subject::host(vec![v4, v6]).unwrap();
        assert_eq!(host.to_string(), "end user 10.0.3.2, fd00:3::2");
        assert_eq!(host.instances(), vec![(v4, None), (v6, None)]);
        assert_eq!(host.kind(), ClientKind::EndUser);
        assert_eq!(Subject::host(vec![v4]).unwrap(), Subject::EndUser { ip: 0x0a00_0302 }, "one IPv4 address: the old form");
        assert_eq!(Subject::host(vec![v6]).unwrap(), Subject::Host { ips: vec![v6] });
        assert!(Subject::host(vec![]).is_err() && Subject::host(vec![v4, v4]).is_err());
        assert!(Subject::host(vec![v6; MAX_BOUND + 1]).is_err());
        let p4: IpPrefix = "10.1.0.0/16".parse().unwrap();
        let p6: IpPrefix = "2001:db8:1::/48".parse().unwrap();
        let r6: u128 = "2001:db8:1::1".parse::<std::net::Ipv6Addr>().unwrap().into();
        let site = Subject::site(vec![p4, p6], vec![mapped(0x0a01_0001), r6]).unwrap();
        assert_eq!(site.to_string(), "edge router 10.1.0.1, 2001:db8:1::1 for 10.1.0.0/16, 2001:db8:1::/48");
        assert_eq!(site.instances(), vec![(mapped(0x0a01_0001), Some(p4)), (r6, Some(p6))], "THIS_IP of the prefix's family");
        assert_eq!(site.dests(), vec![p4, p6]);
        assert!(Subject::site(vec![p4, "10.1.2.0/24".parse().unwrap()], vec![r6]).is_err(), "nested prefixes");
        assert!(Subject::site(vec![p6], vec![r6, r6 + 1]).is_err(), "two IPv6 router addresses");
        // Signed, written, read and verified.
        let auth = key(1);
        let id = issue(&auth, &key(3).verifying_key(), site.clone(), 0, 10).unwrap();
        let back = SignedIdentity::from_file(&id.to_file()).unwrap();
        assert_eq!(back.verify(&[auth.verifying_key()], 5).unwrap().subject, site);
        // A list the constructors refuse does not issue, nor verify when forged.
        assert!(issue(&auth, &key(3).verifying_key(), Subject::Host { ips: vec![v6, v6] }, 0, 10).is_err());
        let mut forged = issue(&auth, &key(3).verifying_key(), Subject::Host { ips: vec![v6] }, 0, 10).unwrap();
        forged.cert.subject = Subject::Host { ips: vec![v6, v6] };
        forged.signature = auth.sign(&signed_bytes(&forged.cert)).to_bytes().to_vec();
        assert!(forged.verify(&[auth.verifying_key()], 5).unwrap_err().to_string().contains("overlap"));
        let empty = postcard::to_allocvec(&Subject::Host { ips: vec![] }).unwrap();
        assert!(postcard::from_bytes::<Subject>(&empty).is_err());
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
