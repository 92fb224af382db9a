//! The router directory (CONTRACT section 9): routers announce which source
//! prefixes they sit in front of, and a client finds the edge router nearest
//! a traffic source by the longest announced prefix that contains it.
//!
//! **Trust.** An announcement is believed only through a chain that ends at
//! an identity authority the client trusts, built from the identity
//! machinery of [`crate::identity`] and nothing new:
//!
//! 1. the operator's authority issues an ordinary identity certificate
//!    ([`Subject::EdgeRouter`]) to the router's *announcement key* (an
//!    ed25519 key made by `vinetc keygen`), binding it to the prefix the
//!    router may announce and to the router's address;
//! 2. the router signs, with that key, an [`Announcement`]: where clients
//!    reach it (address and port), its Noise static public key (what
//!    `vinetc upload --router-key` pins), the prefixes it serves, and an
//!    expiry. The signature covers [`ANNOUNCEMENT_DOMAIN`] followed by
//!    postcard of the announcement *and* of the identity, so neither can be
//!    swapped or taken for another kind of signature.
//!
//! An entry is used only when the identity verifies against a trusted
//! authority and is valid now, the announcement's signature verifies under
//! the identity's key, it has not expired (and was not issued in the future),
//! and every announced prefix lies inside the identity's prefix. So a router
//! can announce only what its operator's authority let it announce; the
//! authority key stays off the router, and an announcement can be re-signed
//! (a new port, a new Noise key, a new expiry) without going back to it.
//!
//! **Conflicts are refused, never settled silently.** Prefixes of one
//! announcement must not overlap. Of two announcements signed by the same
//! key, the later-issued one is used and the other reported as superseded.
//! When announcements of different keys claim the very same prefix, both
//! are refused (the directory cannot say which router is in front of it).
//! Nested prefixes of different routers are the normal case: the longest
//! wins.
//!
//! **Format.** A directory is one or more text files. Each announcement is
//! one line, `vinet-announcement-v1 <hex of postcard(SignedAnnouncement)>`;
//! blank lines and lines starting with `#` are comments (`vinetd announce`
//! writes one that describes the entry; nothing in it is trusted). Postcard
//! because the signature must cover exact bytes and postcard is canonical
//! (the encoding every other signed vinet object uses); a line of hex around
//! it because then a directory is concatenated with `cat`, diffed, mailed
//! and grepped, and a bad or truncated entry is one line with a number,
//! refused alone while the others are still read. Every line is untrusted
//! input: decoding is bounded ([`MAX_LINE`], [`MAX_PREFIXES`]) and never
//! panics.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use vinet_vocab::IpPrefix;

use crate::identity::{hex, IdentityError, SignedIdentity, Subject};

/// Version of [`Announcement`].
pub const ANNOUNCEMENT_VERSION: u16 = 1;
/// What an announcement's signature covers, before the signed bytes.
pub const ANNOUNCEMENT_DOMAIN: &[u8] = b"vinet announcement v1\0";
/// The tag that starts an announcement's line.
pub const LINE_TAG: &str = "vinet-announcement-v1";
/// The longest line read, in bytes (an announcement is a few hundred).
pub const MAX_LINE: usize = 16 * 1024;
/// The most prefixes one announcement may carry.
pub const MAX_PREFIXES: usize = 256;
/// How far in the future an announcement's issue time may be (clock skew), seconds.
pub const MAX_SKEW_SECS: u64 = 300;

/// What a router announces: the statement its announcement key signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// [`ANNOUNCEMENT_VERSION`].
    pub version: u16,
    /// Where clients send requests: IPv4 address, host byte order.
    pub address: u32,
    /// And port.
    pub port: u16,
    /// The router's Noise static public key (pinned by the client).
    pub noise_key: [u8; 32],
    /// The source prefixes the router sits in front of. On the wire, pairs
    /// (network, length); one that is no prefix does not decode.
    #[serde(with = "wire_prefixes")]
    pub prefixes: Vec<IpPrefix>,
    /// When it was signed (seconds since the Unix epoch).
    pub issued: u64,
    /// Valid until (seconds since the Unix epoch), exclusive.
    pub expires: u64,
}

/// An announcement, the identity of the key that signed it, and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnnouncement {
    /// The statement.
    pub announcement: Announcement,
    /// The authority's certificate for the announcement key.
    pub identity: SignedIdentity,
    /// ed25519 signature by `identity.cert.client` of
    /// [`ANNOUNCEMENT_DOMAIN`] ++ postcard(announcement) ++ postcard(identity).
    pub signature: Vec<u8>,
}

mod wire_prefixes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vinet_vocab::IpPrefix;

    // Version 1 announces IPv4 source prefixes only: pairs of IPv4 values.
    pub fn serialize<S: Serializer>(v: &[IpPrefix], s: S) -> Result<S::Ok, S::Error> {
        let v4 = |p: &IpPrefix| vinet_vocab::v4_of(p.net()).filter(|_| p.is_v4()).map(|n| (n, p.length() - 96));
        let pairs: Option<Vec<(u32, u8)>> = v.iter().map(v4).collect();
        pairs.ok_or_else(|| serde::ser::Error::custom("an announcement (version 1) carries IPv4 prefixes only"))?.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpPrefix>, D::Error> {
        let pairs = <Vec<(u32, u8)>>::deserialize(d)?;
        pairs.into_iter().map(|(n, l)| IpPrefix::v4(n, l).map_err(serde::de::Error::custom)).collect()
    }
}

/// The bytes the announcement key signs.
fn signed_bytes(a: &Announcement, id: &SignedIdentity) -> Vec<u8> {
    let mut m = ANNOUNCEMENT_DOMAIN.to_vec();
    m.extend(postcard::to_allocvec(a).expect("in-memory encoding"));
    m.extend(postcard::to_allocvec(id).expect("in-memory encoding"));
    m
}

/// Sign an announcement with the announcement key whose identity is `identity`.
/// Refused (with the reason) when the key is not the identity's, or the
/// announcement would not verify for a reason the signer can see.
pub fn sign(key: &SigningKey, identity: SignedIdentity, announcement: Announcement) -> Result<SignedAnnouncement, String> {
    if identity.cert.client != key.verifying_key().to_bytes() {
        return Err("the announcement key is not the key of its identity (issue the identity to the key's .pub)".into());
    }
    if let Err(e) = shape(&announcement, &identity.cert.subject) {
        return Err(e.to_string());
    }
    let signature = key.sign(&signed_bytes(&announcement, &identity)).to_bytes().to_vec();
    Ok(SignedAnnouncement { announcement, identity, signature })
}

/// Why a directory entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not a well-formed line or structure.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The identity of the announcement key does not hold.
    #[error("its identity: {0}")]
    Identity(IdentityError),
    /// The announcement key's identity is from an authority the client does not trust.
    #[error("its key's identity was issued by authority {0}, which is not trusted (--trust names the authorities to believe)")]
    Untrusted(String),
    /// The identity is an end user's, not an edge router's.
    #[error("its identity is an end user's ({0}), not an edge router's: it may announce no prefix")]
    NotARouter(String),
    /// The announcement's own signature does not verify.
    #[error("the announcement's signature does not verify under its key {0}")]
    BadSignature(String),
    /// Past its expiry.
    #[error("expired at {expires} (now {now}, seconds since the epoch)")]
    Expired {
        /// End of validity.
        expires: u64,
        /// The client's clock.
        now: u64,
    },
    /// Issued later than the clock allows.
    #[error("issued at {issued}, in the future (now {now}, seconds since the epoch)")]
    Future {
        /// Its issue time.
        issued: u64,
        /// The client's clock.
        now: u64,
    },
    /// A prefix outside what the authority let the key announce.
    #[error("announces {prefix}, outside {allowed}, the prefix its identity allows")]
    OutsideIdentity {
        /// The announced prefix.
        prefix: IpPrefix,
        /// The identity's prefix.
        allowed: IpPrefix,
    },
    /// Two prefixes of one announcement overlap.
    #[error("announces {0} and {1}, which overlap")]
    Overlap(IpPrefix, IpPrefix),
    /// Another key claims the same prefix.
    #[error("announces {prefix}, as does the entry at {other} signed by another key: both are refused rather than one chosen")]
    Conflict {
        /// The prefix claimed twice.
        prefix: IpPrefix,
        /// Where the other claim is.
        other: String,
    },
    /// A later announcement of the same key replaces it.
    #[error("superseded by the entry at {0}, which the same key signed no earlier")]
    Superseded(String),
}

/// The checks that need no key: the announcement's own shape, against its
/// identity's subject.
fn shape(a: &Announcement, subject: &Subject) -> Result<(), EntryError> {
    let malformed = |m: String| Err(EntryError::Malformed(m));
    if a.version != ANNOUNCEMENT_VERSION {
        return malformed(format!("version {} (this client reads {ANNOUNCEMENT_VERSION})", a.version));
    }
    if subject.kind() != vinet_checker::policy::ClientKind::EdgeRouter {
        return Err(EntryError::NotARouter(subject.to_string()));
    }
    let allowed = subject.dests();
    if a.address == 0 || a.port == 0 {
        return malformed(format!("address {} names no router", SocketAddrV4::new(Ipv4Addr::from(a.address), a.port)));
    }
    if a.expires <= a.issued {
        return malformed("it expires before it is issued".into());
    }
    if a.prefixes.is_empty() {
        return malformed("it announces no prefix".into());
    }
    if a.prefixes.len() > MAX_PREFIXES {
        return malformed(format!("{} prefixes (at most {MAX_PREFIXES})", a.prefixes.len()));
    }
    for p in &a.prefixes {
        if !allowed.iter().any(|a| a.covers(*p)) {
            return Err(EntryError::OutsideIdentity { prefix: *p, allowed: allowed[0] });
        }
    }
    let mut sorted = a.prefixes.clone();
    sorted.sort();
    // Sorted by (network, length): a prefix that overlaps another overlaps
    // the nearest earlier one that covers it, so checking each against the
    // widest so far is enough.
    let mut widest: Option<IpPrefix> = None;
    for p in sorted {
        if let Some(w) = widest.filter(|w| w.covers(p)) {
            return Err(EntryError::Overlap(w, p));
        }
        widest = Some(p);
    }
    Ok(())
}

/// A verified announcement: what a client may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where to send requests.
    pub address: SocketAddrV4,
    /// The router's Noise static public key, to pin.
    pub noise_key: [u8; 32],
    /// The prefixes it serves.
    pub prefixes: Vec<IpPrefix>,
    /// When it was signed.
    pub issued: u64,
    /// When it expires (the earlier of the announcement's and its identity's end).
    pub expires: u64,
    /// The announcement key.
    pub announcer: VerifyingKey,
    /// The authority that vouched for the key.
    pub authority: VerifyingKey,
    /// The router's own address, as its identity states it.
    pub router_ip: u128,
}

impl SignedAnnouncement {
    /// The entry's line (with its newline).
    pub fn to_line(&self) -> String {
        format!("{LINE_TAG} {}\n", hex(&postcard::to_allocvec(self).expect("in-memory encoding")))
    }

    /// Read one line (without its newline). Checks nothing but the encoding.
    pub fn from_line(line: &str) -> Result<SignedAnnouncement, EntryError> {
        let malformed = |m: String| EntryError::Malformed(m);
        if line.len() > MAX_LINE {
            return Err(malformed(format!("a line of {} bytes (at most {MAX_LINE})", line.len())));
        }
        let body =
            line.trim().strip_prefix(LINE_TAG).ok_or_else(|| malformed(format!("the line does not start with `{LINE_TAG}`")))?.trim();
        if body.len() % 2 != 0 {
            return Err(malformed(format!("{} hex digits, an odd number: the entry is cut short", body.len())));
        }
        let bytes = (0..body.len() / 2)
            .map(|i| body.get(2 * i..2 * i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| malformed("not hex".into()))?;
        let (v, rest): (SignedAnnouncement, _) = postcard::take_from_bytes(&bytes).map_err(|e| match e {
            postcard::Error::DeserializeUnexpectedEnd => malformed("the entry is cut short".into()),
            e => malformed(e.to_string()),
        })?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} bytes after the entry", rest.len())));
        }
        Ok(v)
    }

    /// Verify against the trusted authorities at `now` (seconds since the epoch).
    pub fn verify(&self, trusted: &[VerifyingKey], now: u64) -> Result<Entry, EntryError> {
        let id = self.identity.verify(trusted, now).map_err(|e| match e {
            IdentityError::UnknownAuthority(a) => EntryError::Untrusted(a),
            e => EntryError::Identity(e),
        })?;
        let a = &self.announcement;
        let sig = <[u8; 64]>::try_from(self.signature.as_slice())
            .map(|b| Signature::from_bytes(&b))
            .map_err(|_| EntryError::BadSignature(hex(&id.client.as_bytes()[..8])))?;
        id.client.verify(&signed_bytes(a, &self.identity), &sig).map_err(|_| EntryError::BadSignature(hex(&id.client.as_bytes()[..8])))?;
        shape(a, &id.subject)?;
        if now >= a.expires {
            return Err(EntryError::Expired { expires: a.expires, now });
        }
        if a.issued > now.saturating_add(MAX_SKEW_SECS) {
            return Err(EntryError::Future { issued: a.issued, now });
        }
        Ok(Entry {
            address: SocketAddrV4::new(Ipv4Addr::from(a.address), a.port),
            noise_key: a.noise_key,
            prefixes: a.prefixes.clone(),
            issued: a.issued,
            expires: a.expires.min(id.not_after),
            announcer: id.client,
            authority: id.authority,
            router_ip: id.subject.this_ip(),
        })
    }
}

/// Where an entry was read: a file's name and a line number.
pub type At = String;

/// The lines of one directory file that are entries, each with where it is
/// (`NAME:LINE`) and what it decoded to. Comments and blank lines are skipped;
/// bytes that are not text are a malformed entry on their line.
pub fn parse_file(name: &str, bytes: &[u8]) -> Vec<(At, Result<SignedAnnouncement, EntryError>)> {
    let mut out = vec![];
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let at = format!("{name}:{}", n + 1);
        let line = match std::str::from_utf8(raw) {
            Ok(l) => l.trim(),
            Err(_) => {
                out.push((at, Err(EntryError::Malformed("the line is not text".into()))));
                continue;
            }
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push((at, SignedAnnouncement::from_line(line)));
    }
    out
}

/// A verified directory: the entries it uses and those it refused, each with
/// where it was read.
#[derive(Debug, Default)]
pub struct Directory {
    /// Entries that verified and conflict with none.
    pub entries: Vec<(At, Entry)>,
    /// Entries refused, with the reason.
    pub refused: Vec<(At, EntryError)>,
}

impl Directory {
    /// Verify every entry read, then refuse the superseded and the conflicting.
    pub fn build(read: Vec<(At, Result<SignedAnnouncement, EntryError>)>, trusted: &[VerifyingKey], now: u64) -> Directory {
        let mut dir = Directory::default();
        let mut good: Vec<(At, Entry)> = vec![];
        for (at, r) in read {
            match r.and_then(|s| s.verify(trusted, now)) {
                Ok(e) => good.push((at, e)),
                Err(e) => dir.refused.push((at, e)),
            }
        }
        // One announcement per key: the latest issued (on a tie, the first read).
        let mut latest: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for (i, (_, e)) in good.iter().enumerate() {
            let k = e.announcer.to_bytes();
            match latest.get(&k) {
                Some(&j) if good[j].1.issued >= e.issued => {}
                _ => {
                    latest.insert(k, i);
                }
            }
        }
        let mut keep = vec![false; good.len()];
        for (i, (_, e)) in good.iter().enumerate() {
            let j = latest[&e.announcer.to_bytes()];
            if i == j {
                keep[i] = true;
            } else {
                dir.refused.push((good[i].0.clone(), EntryError::Superseded(good[j].0.clone())));
            }
        }
        // The same prefix from different keys: refuse every claimant.
        let mut claims: BTreeMap<IpPrefix, Vec<usize>> = BTreeMap::new();
        for (i, (_, e)) in good.iter().enumerate().filter(|(i, _)| keep[*i]) {
            for p in &e.prefixes {
                claims.entry(*p).or_default().push(i);
            }
        }
        let mut conflict: Vec<Option<EntryError>> = vec![None; good.len()];
        for (prefix, who) in claims.iter().filter(|(_, w)| w.len() > 1) {
            for &i in who {
                let other = who.iter().find(|&&j| j != i).map(|&j| good[j].0.clone()).unwrap_or_default();
                conflict[i].get_or_insert(EntryError::Conflict { prefix: *prefix, other });
            }
        }
        for (i, (at, e)) in good.into_iter().enumerate() {
            match conflict[i].take() {
                Some(why) => dir.refused.push((at, why)),
                None if keep[i] => dir.entries.push((at, e)),
                None => {}
            }
        }
        dir.refused.sort_by(|a, b| natural(&a.0).cmp(&natural(&b.0)));
        dir
    }

    /// The entry nearest `addr`: the one with the longest prefix containing it,
    /// and that prefix.
    pub fn locate(&self, addr: u128) -> Option<(&At, &Entry, IpPrefix)> {
        self.entries
            .iter()
            .flat_map(|(at, e)| e.prefixes.iter().filter(|p| p.contains(addr)).map(move |p| (at, e, *p)))
            .max_by_key(|(_, _, p)| p.length())
    }
}

/// Sort key of `NAME:LINE`: the name, then the line as a number.
fn natural(at: &str) -> (&str, u64) {
    match at.rsplit_once(':') {
        Some((n, l)) => (n, l.parse().unwrap_or(0)),
        None => (at, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::issue;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    /// A router's announcement key `k`, certified by authority key 1 for `allowed`.
    fn announce(k: u8, allowed: &str, prefixes: &[&str], issued: u64, expires: u64) -> SignedAnnouncement {
        let id =
            issue(&key(1), &key(k).verifying_key(), Subject::EdgeRouter { prefix: p(allowed), router_ip: 0x0a00_0001 }, 0, 10_000).unwrap();
        let a = Announcement {
            version: ANNOUNCEMENT_VERSION,
            address: 0x7f00_0001,
            port: 7700 + u16::from(k),
            noise_key: [k; 32],
            prefixes: prefixes.iter().map(|s| p(s)).collect(),
            issued,
            expires,
        };
        sign(&key(k), id, a).unwrap()
    }

    fn build(entries: &[SignedAnnouncement], now: u64) -> Directory {
        let text: String = entries.iter().map(SignedAnnouncement::to_line).collect();
        Directory::build(parse_file("dir", text.as_bytes()), &[key(1).verifying_key()], now)
    }

    #[test]
    fn lines_round_trip_and_verify() {
        let s = announce(2, "10.0.0.0/8", &["10.1.0.0/16", "10.2.0.0/16"], 100, 200);
        let line = s.to_line();
        assert!(line.starts_with("vinet-announcement-v1 ") && line.ends_with('\n'));
        let back = SignedAnnouncement::from_line(line.trim_end()).unwrap();
        assert_eq!(back, s);
        let e = back.verify(&[key(1).verifying_key()], 150).unwrap();
        assert_eq!(e.address.to_string(), "127.0.0.1:7702");
        assert_eq!(e.noise_key, [2; 32]);
        assert_eq!(e.announcer, key(2).verifying_key());
    }

    #[test]
    fn hostile_entries_are_refused_with_reasons() {
        let trusted = [key(1).verifying_key()];
        let good = announce(2, "10.0.0.0/8", &["10.1.0.0/16"], 100, 200);
        // A changed statement: the signature no longer verifies.
        let mut forged = good.clone();
        forged.announcement.prefixes = vec![p("10.0.0.0/8")];
        assert!(matches!(forged.verify(&trusted, 150), Err(EntryError::BadSignature(_))), "{:?}", forged.verify(&trusted, 150));
        let mut forged = good.clone();
        forged.announcement.noise_key = [9; 32];
        assert!(matches!(forged.verify(&trusted, 150), Err(EntryError::BadSignature(_))));
        let mut short = good.clone();
        short.signature.truncate(10);
        assert!(matches!(short.verify(&trusted, 150), Err(EntryError::BadSignature(_))));
        // Expired, issued in the future.
        assert_eq!(good.verify(&trusted, 200), Err(EntryError::Expired { expires: 200, now: 200 }));
        let future = announce(2, "10.0.0.0/8", &["10.1.0.0/16"], 1000, 2000);
        assert!(matches!(future.verify(&trusted, 500), Err(EntryError::Future { .. })));
        // An untrusted authority.
        let e = good.verify(&[key(7).verifying_key()], 150).unwrap_err();
        assert!(matches!(e, EntryError::Untrusted(_)), "{e}");
        assert!(e.to_string().contains("which is not trusted"), "{e}");
        // An identity that is not valid yet, or any more.
        let mut later = good.clone();
        later.identity = issue(&key(1), &key(2).verifying_key(), good.identity.cert.subject.clone(), 160, 10_000).unwrap();
        assert!(matches!(later.verify(&trusted, 150), Err(EntryError::Identity(IdentityError::NotYetValid { .. }))));
        assert!(matches!(later.verify(&trusted, 10_000), Err(EntryError::Identity(IdentityError::Expired { .. }))));
        // A prefix outside the identity's, and overlapping prefixes: refused by the signer and the reader.
        let id = good.identity.clone();
        let mut a = good.announcement.clone();
        a.prefixes = vec![p("11.0.0.0/16")];
        assert!(sign(&key(2), id.clone(), a.clone()).unwrap_err().contains("outside 10.0.0.0/8"));
        let sig = key(2).sign(&signed_bytes(&a, &id)).to_bytes().to_vec();
        let outside = SignedAnnouncement { announcement: a.clone(), identity: id.clone(), signature: sig };
        assert_eq!(outside.verify(&trusted, 150), Err(EntryError::OutsideIdentity { prefix: p("11.0.0.0/16"), allowed: p("10.0.0.0/8") }));
        a.prefixes = vec![p("10.2.0.0/16"), p("10.1.0.0/16"), p("10.1.3.0/24")];
        let sig = key(2).sign(&signed_bytes(&a, &id)).to_bytes().to_vec();
        let overlap = SignedAnnouncement { announcement: a.clone(), identity: id.clone(), signature: sig };
        assert_eq!(overlap.verify(&trusted, 150), Err(EntryError::Overlap(p("10.1.0.0/16"), p("10.1.3.0/24"))));
        // The key signing is not the identity's key.
        assert!(sign(&key(3), id.clone(), good.announcement.clone()).is_err());
        // An end user's identity announces nothing.
        let user = issue(&key(1), &key(4).verifying_key(), Subject::EndUser { ip: 0x0a01_0001 }, 0, 10_000).unwrap();
        let sig = key(4).sign(&signed_bytes(&good.announcement, &user)).to_bytes().to_vec();
        let user = SignedAnnouncement { announcement: good.announcement.clone(), identity: user, signature: sig };
        assert!(matches!(user.verify(&trusted, 150), Err(EntryError::NotARouter(_))));
    }

    #[test]
    fn truncated_and_garbled_lines() {
        let line = announce(2, "10.0.0.0/8", &["10.1.0.0/16"], 100, 200).to_line();
        let line = line.trim_end();
        for cut in [LINE_TAG.len() + 1, LINE_TAG.len() + 3, line.len() - 2, line.len() - 1] {
            let e = SignedAnnouncement::from_line(&line[..cut]).unwrap_err();
            assert!(e.to_string().contains("cut short"), "{cut}: {e}");
        }
        // Cut anywhere, a line is refused (never read as a shorter entry).
        for cut in 0..line.len() {
            assert!(SignedAnnouncement::from_line(&line[..cut]).is_err(), "{cut}");
        }
        assert!(SignedAnnouncement::from_line(&format!("{line}00")).unwrap_err().to_string().contains("after the entry"));
        assert!(SignedAnnouncement::from_line("vinet-announcement-v2 00").is_err());
        assert!(SignedAnnouncement::from_line(&format!("{LINE_TAG} zz")).unwrap_err().to_string().contains("not hex"));
        let file = format!("# a comment\n\n{line}\n{}\n\u{0}\u{ff}\n", &line[..line.len() / 2]);
        let mut bytes = file.into_bytes();
        bytes.extend([0xff, 0xfe, b'\n']);
        let read = parse_file("d.van", &bytes);
        let at: Vec<&str> = read.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(at, ["d.van:3", "d.van:4", "d.van:5", "d.van:6"]);
        assert!(read[0].1.is_ok() && read[1].1.is_err() && read[2].1.is_err() && read[3].1.is_err());
    }

    #[test]
    fn longest_prefix_wins_and_conflicts_are_refused() {
        let wide = announce(2, "10.0.0.0/8", &["10.0.0.0/8"], 100, 500);
        let narrow = announce(3, "10.1.0.0/16", &["10.1.2.0/24", "10.1.4.0/24"], 100, 500);
        let d = build(&[wide.clone(), narrow.clone()], 150);
        assert!(d.refused.is_empty(), "{:?}", d.refused);
        let (at, e, pre) = d.locate(vinet_checker::mapped(u32::from(Ipv4Addr::new(10, 1, 2, 9)))).unwrap();
        assert_eq!((at.as_str(), e.noise_key, pre), ("dir:2", [3; 32], p("10.1.2.0/24")));
        let (_, e, pre) = d.locate(vinet_checker::mapped(u32::from(Ipv4Addr::new(10, 1, 3, 9)))).unwrap();
        assert_eq!((e.noise_key, pre), ([2; 32], p("10.0.0.0/8")));
        assert!(d.locate(vinet_checker::mapped(u32::from(Ipv4Addr::new(11, 0, 0, 1)))).is_none());

        // Re-announcing with the same key: the later one is used.
        let newer = announce(3, "10.1.0.0/16", &["10.1.2.0/24"], 120, 500);
        let d = build(&[newer, narrow.clone()], 150);
        assert_eq!(d.entries.len(), 1);
        assert_eq!(d.refused, vec![("dir:2".to_string(), EntryError::Superseded("dir:1".into()))]);
        assert!(
            d.locate(vinet_checker::mapped(u32::from(Ipv4Addr::new(10, 1, 4, 1)))).is_none(),
            "the older announcement's prefix is gone"
        );

        // Two keys claim one prefix: neither is used; the others still are.
        let rival = announce(4, "10.1.0.0/16", &["10.1.2.0/24"], 100, 500);
        let d = build(&[wide, narrow, rival], 150);
        assert_eq!(d.entries.len(), 1, "{:?}", d.refused);
        let why: Vec<String> = d.refused.iter().map(|(a, e)| format!("{a}: {e}")).collect();
        assert_eq!(why.len(), 2);
        assert!(why[0].starts_with("dir:2: announces 10.1.2.0/24, as does the entry at dir:3"), "{why:?}");
        assert!(why[1].starts_with("dir:3: announces 10.1.2.0/24, as does the entry at dir:2"), "{why:?}");
        let (_, e, _) = d.locate(vinet_checker::mapped(u32::from(Ipv4Addr::new(10, 1, 2, 9)))).unwrap();
        assert_eq!(e.noise_key, [2; 32], "falls back to the /8");
    }

    proptest::proptest! {
        /// A directory file changed anywhere (bytes replaced, or cut short)
        /// never panics the reader, and what it still uses is what was signed.
        #[test]
        fn damaged_files_use_only_what_was_signed(at in 0usize..2000, byte in proptest::num::u8::ANY, cut in proptest::bool::ANY) {
            let entries = [announce(2, "10.0.0.0/8", &["10.0.0.0/8"], 100, 500), announce(3, "10.1.0.0/16", &["10.1.2.0/24"], 100, 500)];
            let mut bytes: Vec<u8> = entries.iter().map(SignedAnnouncement::to_line).collect::<String>().into_bytes();
            let i = at % bytes.len();
            if cut { bytes.truncate(i) } else { bytes[i] = byte }
            let d = Directory::build(parse_file("f", &bytes), &[key(1).verifying_key()], 150);
            let good: Vec<Entry> = entries.iter().map(|e| e.verify(&[key(1).verifying_key()], 150).unwrap()).collect();
            for (_, e) in &d.entries {
                proptest::prop_assert!(good.contains(e));
            }
        }

        /// No bytes make the reader panic.
        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Directory::build(parse_file("f", &bytes), &[key(1).verifying_key()], 150);
        }

        /// No payload behind the tag makes the decoder panic, nor does any
        /// single-byte change of a good entry make it verify as something else.
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), at in 0usize..400, bit in 0u8..8) {
            let _ = SignedAnnouncement::from_line(&format!("{LINE_TAG} {}", hex(&bytes)));
            let good = announce(2, "10.0.0.0/8", &["10.1.0.0/16"], 100, 200);
            let mut raw = postcard::to_allocvec(&good).unwrap();
            let i = at % raw.len();
            raw[i] ^= 1 << bit;
            if let Ok(s) = SignedAnnouncement::from_line(&format!("{LINE_TAG} {}", hex(&raw))) {
                if let Ok(e) = s.verify(&[key(1).verifying_key()], 150) {
                    // A change that still verifies decodes to the same statement.
                    proptest::prop_assert_eq!(e, good.verify(&[key(1).verifying_key()], 150).unwrap());
                }
            }
        }
    }
}
